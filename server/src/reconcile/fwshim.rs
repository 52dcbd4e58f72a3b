//! TEMPORARY: stand-ins for the firewall API of `kernel::firewall` while it is being written,
//! so the crate builds. Removed when the module lands.
#![allow(missing_docs, dead_code, async_fn_in_trait)]

use std::net::IpAddr;

use crate::kernel::{Kernel, KernelError, NsRef};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Proto {
    Tcp,
    Udp,
    Sctp,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FirewallNetwork {
    pub bridge: String,
    pub subnets: Vec<ipnet::IpNet>,
    pub internal: bool,
    pub icc: bool,
    pub masquerade: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortMapping {
    pub host_ip: Option<IpAddr>,
    pub proto: Proto,
    pub host_port: u16,
    pub dest: IpAddr,
    pub dest_port: u16,
}

pub trait FwExt {
    async fn sync_firewall(&self, n: &[FirewallNetwork]) -> Result<bool, KernelError>;
    async fn add_port_mappings(&self, m: &[PortMapping]) -> Result<(), KernelError>;
    async fn del_port_mappings(&self, m: &[PortMapping]) -> Result<(), KernelError>;
    async fn list_port_mappings(&self) -> Result<Vec<PortMapping>, KernelError>;
    async fn ensure_sysctl(&self, ns: &NsRef, key: &str, value: &str) -> Result<bool, KernelError>;
}

fn todo(op: &str) -> KernelError {
    KernelError::Netlink {
        op: op.into(),
        errno: None,
        message: "firewall support is not built yet".into(),
    }
}

impl FwExt for Kernel {
    async fn sync_firewall(&self, _: &[FirewallNetwork]) -> Result<bool, KernelError> {
        Err(todo("sync firewall"))
    }
    async fn add_port_mappings(&self, _: &[PortMapping]) -> Result<(), KernelError> {
        Err(todo("add port mappings"))
    }
    async fn del_port_mappings(&self, _: &[PortMapping]) -> Result<(), KernelError> {
        Err(todo("del port mappings"))
    }
    async fn list_port_mappings(&self) -> Result<Vec<PortMapping>, KernelError> {
        Err(todo("list port mappings"))
    }
    async fn ensure_sysctl(&self, _: &NsRef, _: &str, _: &str) -> Result<bool, KernelError> {
        Err(todo("sysctl"))
    }
}
