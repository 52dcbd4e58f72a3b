//! The values that cross the kernel seam: which namespace ([`NsRef`]), what an interface
//! looks like ([`LinkState`]), a change to one ([`LinkChange`]), and a route
//! ([`RouteState`]). Plain data, shared by the real kernel, the dry run and the fake.

use std::{path::Path, sync::Arc};

use ipnet::IpNet;

/// A network namespace weft acts in.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum NsRef {
    /// The host namespace: `--host-netns` or weftd's own.
    Host,
    /// A namespace file (a bind mount under the netns dir, or an adopted path). Shared: the
    /// monitor's tables and the bulk check's id cache hold one allocation of a namespace's
    /// path between them (at 10,000 namespaces, three copies of each path were ~1.2 MB).
    Path(Arc<Path>),
}

impl NsRef {
    /// The namespace file at `path`.
    pub fn path(path: impl AsRef<Path>) -> Self {
        NsRef::Path(Arc::from(path.as_ref()))
    }
}

/// Which network namespace a file names: the (device, inode) `stat` reports for its nsfs
/// file. Two paths name the same namespace exactly when their identities are equal, whatever
/// the paths (`/proc/<pid>/ns/net`, a bind mount, a runtime's file).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NsIdentity {
    /// The nsfs device.
    pub dev: u64,
    /// The namespace's inode number.
    pub ino: u64,
}

/// `dev:ino`, as weft stores it.
impl std::fmt::Display for NsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.dev, self.ino)
    }
}

/// What the kernel says about one interface.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LinkState {
    /// ifindex in its namespace.
    pub index: u32,
    /// Interface name.
    pub name: String,
    /// IFLA_INFO_KIND ("veth", "bridge", ...), if any.
    pub kind: Option<String>,
    /// MTU.
    pub mtu: u32,
    /// MAC address, lower-case "aa:bb:cc:dd:ee:ff".
    pub mac: Option<String>,
    /// IFF_UP is set.
    pub up: bool,
    /// ifindex of the master (bridge), if enslaved.
    pub master: Option<u32>,
    /// IFLA_IFALIAS; weft's ownership mark is `weft:<uid>`.
    pub alias: Option<String>,
    /// Every address on the interface (including link-local ones), with prefix length.
    pub addresses: Vec<IpNet>,
    /// The interface group (`IFLA_GROUP`; 0 is the kernel's default).
    pub group: u32,
    /// A bridge port in hairpin mode (`IFLA_BRPORT_MODE`): frames may leave by the port they
    /// came in on. False for an interface that is no bridge port.
    pub hairpin: bool,
    /// `IFLA_LINK` where it names another interface: for a veth, its peer's ifindex, in the
    /// peer's namespace.
    pub link: Option<u32>,
    /// `IFLA_LINK_NETNSID`: the id, in this interface's namespace, of the namespace its
    /// [`LinkState::link`] lives in, when that is another one (a veth whose peer is
    /// elsewhere). Read from the host, a host end's is the id the monitor hears its
    /// endpoint's namespace by (see `reconcile::check`, which takes the ids from there).
    pub link_netnsid: Option<i32>,
}

/// The interface group every interface weft creates is born in ("WEFN" in ASCII): the
/// kernel ignores `IFLA_IFALIAS` in the `RTM_NEWLINK` that creates an interface (it honours
/// it only on an existing one), but it applies `IFLA_GROUP` at creation, to a veth's peer
/// too. So an interface in this group without an alias is one weft made and had not marked
/// yet (a crash or a failed request between the create and the mark); the request that
/// marks it (alias `weft:<uid>`) puts it back in group 0.
pub const NEWBORN_GROUP: u32 = 0x5745_464E;

impl LinkState {
    /// True for an interface weft created and has not marked yet: group [`NEWBORN_GROUP`]
    /// and no alias. Whose it is follows from its name and namespace, which only the object
    /// that planned them uses.
    pub fn is_newborn(&self) -> bool {
        self.group == NEWBORN_GROUP && self.alias.as_deref().is_none_or(str::is_empty)
    }
}

/// A change to apply to one interface; `None` fields are left alone.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LinkChange {
    /// New MTU.
    pub mtu: Option<u32>,
    /// New MAC, "aa:bb:cc:dd:ee:ff".
    pub mac: Option<String>,
    /// Bring up (true) or down (false).
    pub up: Option<bool>,
    /// Enslave to this ifindex (`Some(Some(i))`) or release from any master (`Some(None)`).
    pub master: Option<Option<u32>>,
    /// New alias (the ownership mark).
    pub alias: Option<String>,
    /// New name (the kernel refuses to rename an interface that is up: EBUSY).
    pub name: Option<String>,
    /// New interface group.
    pub group: Option<u32>,
    /// Hairpin mode of the bridge port (`IFLA_BRPORT_MODE`). Sent as a second request, after
    /// the others (so after a new master): only a port's master applies it.
    pub hairpin: Option<bool>,
    /// Sets the interface's IPv6 address generation mode to none (`IFLA_INET6_ADDR_GEN_MODE`,
    /// `ip link set .. addrgenmode none`): when it next comes up it gets no link-local address,
    /// so it sends no DAD probes and no router solicitations. False leaves the mode alone. The
    /// kernel applies it after any up in the same request, so it goes in a request of its own
    /// before the one that brings the interface up.
    pub ipv6_addr_gen_none: bool,
}

/// A route weft manages, as the kernel reports it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RouteState {
    /// Destination network (0.0.0.0/0 or ::/0 for a default route).
    pub destination: IpNet,
    /// Gateway, if any.
    pub gateway: Option<std::net::IpAddr>,
    /// Priority (0 when the kernel reported none).
    pub metric: u32,
}

impl RouteState {
    /// The route in words: "default via 10.0.0.1 metric 5", "10.1.0.0/16".
    pub fn describe(&self) -> String {
        let mut t = if self.destination.prefix_len() == 0 {
            "default".to_string()
        } else {
            self.destination.to_string()
        };
        if let Some(g) = self.gateway {
            t.push_str(&format!(" via {g}"));
        }
        if self.metric != 0 {
            t.push_str(&format!(" metric {}", self.metric));
        }
        t
    }

    /// The metric the kernel will report for this route once added: `metric`, except that an
    /// IPv6 route added with metric 0 gets the kernel's default 1024. Compare desired routes
    /// to [`Kernel::list_routes`](super::RouteOps::list_routes) by this value to avoid
    /// re-adding such routes forever.
    pub fn kernel_metric(&self) -> u32 {
        match (self.destination, self.metric) {
            (IpNet::V6(_), 0) => 1024,
            (_, metric) => metric,
        }
    }
}

/// The route protocol number weft stamps on its routes, so it only ever removes its own.
pub const RTPROT_WEFT: u8 = 87;
