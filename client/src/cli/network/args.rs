//! The flags of `weft network`: every subcommand and its options, as clap parses them, and
//! the endpoint flags that `weft ns create --network` borrows. Nothing here talks to weftd;
//! [`super::request`] turns these into requests.
//!
//! The doc comments are the `--help` text, word for word: change them and `weft network
//! --help` changes too. The flags follow `docker network`'s names wherever weft has the same
//! idea (`--subnet`, `--gateway`, `--ip-range`, `--opt`, `--filter`, `-p/--publish`).

use clap::{Args, Subcommand};
use weft::v1::{ConnectRequest, PublishedPort};

use crate::cli::{
    parse::{self, Filter},
    watch::{ListFlags, WatchFlags},
};

/// `--opt` keys (docker's bridge driver options) that weft understands. Each maps onto a
/// Network field that also has a flag of its own; any other key is refused, so a compose file
/// written for docker fails loudly instead of losing a setting.
pub mod opt {
    /// Inter-container traffic on the network (`enable_icc`).
    pub const ENABLE_ICC: &str = "com.docker.network.bridge.enable_icc";
    /// Masquerading of outgoing traffic (`masquerade`).
    pub const MASQUERADE: &str = "com.docker.network.bridge.enable_ip_masquerade";
    /// The bridge's name (`bridge_name`).
    pub const BRIDGE_NAME: &str = "com.docker.network.bridge.name";
    /// The MTU (`mtu`).
    pub const MTU: &str = "com.docker.network.driver.mtu";
}

/// `weft network ...`
#[derive(Debug, Subcommand)]
pub enum NetworkCmd {
    /// Create a bridge network.
    Create(Box<CreateArgs>),
    /// List networks (--watch: then every change).
    #[command(visible_alias = "list")]
    Ls(LsArgs),
    /// Watch networks: every current one, then every change (endpoints included), one line
    /// each as it happens.
    ///
    /// Runs until interrupted or weftd ends the stream; --timeout does not apply.
    Watch(WatchArgs),
    /// Show networks in detail, with endpoints and address use.
    Inspect {
        /// Network names.
        #[arg(required = true, value_name = "NAME")]
        names: Vec<String>,
    },
    /// Remove networks (they must have no endpoints).
    #[command(visible_aliases = ["remove", "delete"])]
    Rm {
        /// Network names.
        #[arg(required = true, value_name = "NAME")]
        names: Vec<String>,
        /// Do not fail for a network that does not exist (Docker's `network rm -f`).
        #[arg(long, short = 'f')]
        force: bool,
        /// Answer at once instead of waiting until the network is gone.
        #[arg(long)]
        no_wait: bool,
        /// Plan only: print what weftd would change, and change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Remove every network without endpoints (that matches the filters).
    Prune(PruneArgs),
    /// Connect a namespace to a network.
    Connect(Box<ConnectArgs>),
    /// Disconnect a namespace from a network.
    Disconnect {
        /// The network.
        network: String,
        /// The namespace.
        namespace: String,
        /// Do not fail when the namespace is not connected to the network (or either does not
        /// exist): the wanted end state holds already.
        #[arg(long, short = 'f')]
        force: bool,
        /// Answer at once instead of waiting until the endpoint is gone.
        #[arg(long)]
        no_wait: bool,
        /// Plan only: print what weftd would change, and change nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

/// `weft network create`
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Network name.
    pub name: String,
    /// Driver; only "bridge" exists.
    #[arg(long, short = 'd', default_value = "bridge", value_parser = ["bridge"])]
    pub driver: String,
    /// A subnet in CIDR notation, IPv4 or IPv6 (repeatable; default: one IPv4 subnet from
    /// weftd's pool).
    #[arg(long = "subnet", value_name = "CIDR", value_parser = parse::cidr)]
    pub subnets: Vec<String>,
    /// The gateway of the subnet that contains it (repeatable; default: its first address).
    #[arg(long = "gateway", value_name = "IP", value_parser = parse::ip)]
    pub gateways: Vec<String>,
    /// Lease addresses only from this range of the subnet that contains it (repeatable).
    #[arg(long = "ip-range", value_name = "CIDR", value_parser = parse::cidr)]
    pub ip_ranges: Vec<String>,
    /// An address weftd never leases, NAME=IP, as Docker's (repeatable; the name is only for
    /// you): it goes to the `reserved` addresses of the --subnet that contains it.
    #[arg(long = "aux-address", value_name = "NAME=IP", value_parser = parse::key_value)]
    pub aux_addresses: Vec<(String, String)>,
    /// No traffic to or from outside the network.
    #[arg(long)]
    pub internal: bool,
    /// Give the network an IPv6 subnet too: from weftd's IPv6 pool unless --subnet names one.
    #[arg(long)]
    pub ipv6: bool,
    /// Names of the network's endpoints resolve: weftd serves DNS on its gateways (the
    /// default, as on a user-defined Docker network).
    #[arg(long, overrides_with = "no_dns")]
    pub dns: bool,
    /// No DNS on the network (as Docker's default bridge): its namespaces' resolv.conf
    /// does not name its gateways.
    #[arg(long, overrides_with = "dns")]
    pub no_dns: bool,
    /// A driver option KEY=VALUE: com.docker.network.bridge.enable_icc,
    /// com.docker.network.bridge.enable_ip_masquerade, com.docker.network.bridge.name,
    /// com.docker.network.driver.mtu (repeatable).
    #[arg(long = "opt", short = 'o', value_name = "KEY=VALUE", value_parser = parse::key_value)]
    pub opts: Vec<(String, String)>,
    /// A label, KEY=VALUE (repeatable).
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse::label)]
    pub labels: Vec<(String, String)>,
    /// Name of the Linux bridge (at most 15 bytes; default: generated).
    #[arg(long, value_name = "NAME")]
    pub bridge_name: Option<String>,
    /// MTU of the bridge and every endpoint (default 1500).
    #[arg(long, value_name = "N")]
    pub mtu: Option<u32>,
    /// Answer at once instead of waiting until the network is Ready.
    #[arg(long)]
    pub no_wait: bool,
    /// Plan only: print what weftd would change, and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Make the call safe to retry: a retry with the same ID gets the first call's answer
    /// instead of making anything again (1 to 128 bytes).
    #[arg(long, value_name = "ID", value_parser = parse::request_id)]
    pub request_id: Option<String>,
}

/// The help of `weft network ls --watch`, which names this noun's watch command.
const LS_WATCH_HELP: &str =
    "After the list, print every change as it happens (the same as `weft network watch`)";

/// `weft network ls`: the help of `--watch` (and `-q`) names this noun.
#[derive(Debug, Args)]
#[command(mut_arg("watch", |a| a.help(LS_WATCH_HELP)))]
pub struct LsArgs {
    /// label=KEY, label=KEY=VALUE, label!=KEY[=VALUE], or name=PART (repeatable).
    #[arg(long = "filter", short = 'f', value_name = "FILTER", value_parser = parse::filter)]
    pub filters: Vec<Filter>,
    /// The selector, `-q`, `--watch` and the watch flags.
    #[command(flatten)]
    pub list: ListFlags,
}

/// `weft network watch`
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// label=KEY, label=KEY=VALUE, label!=KEY[=VALUE], or name=PART (repeatable).
    #[arg(long = "filter", short = 'f', value_name = "FILTER", value_parser = parse::filter)]
    pub filters: Vec<Filter>,
    /// Label selector: comma-separated KEY=VALUE, KEY!=VALUE, KEY or !KEY.
    #[arg(long, short = 'l', value_name = "SEL", default_value = "")]
    pub selector: String,
    /// Where to start and when to stop.
    #[command(flatten)]
    pub flags: WatchFlags,
}

/// `weft network prune`
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// label=KEY, label=KEY=VALUE or label!=KEY[=VALUE] (repeatable).
    #[arg(long = "filter", value_name = "FILTER", value_parser = parse::filter)]
    pub filters: Vec<Filter>,
    /// Do not ask for confirmation.
    #[arg(long, short = 'f')]
    pub force: bool,
    /// Plan only: print what weftd would remove, and remove nothing (asks nothing).
    #[arg(long)]
    pub dry_run: bool,
}

/// `weft network connect`
#[derive(Debug, Args)]
pub struct ConnectArgs {
    /// The network.
    pub network: String,
    /// The weft namespace to connect.
    pub namespace: String,
    /// How the endpoint looks.
    #[command(flatten)]
    pub endpoint: EndpointFlags,
    /// Do not add a default route via the gateway.
    #[arg(long)]
    pub no_default_route: bool,
    /// Answer at once instead of waiting until the endpoint is Ready.
    #[arg(long)]
    pub no_wait: bool,
    /// Plan only: print what weftd would change, and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Make the call safe to retry: a retry with the same ID gets the first call's answer
    /// instead of making another endpoint or lease (1 to 128 bytes).
    #[arg(long, value_name = "ID", value_parser = parse::request_id)]
    pub request_id: Option<String>,
}

/// The flags that shape an endpoint, shared by `weft network connect` and `weft ns create
/// --network`.
#[derive(Debug, Default, Args)]
pub struct EndpointFlags {
    /// A static IPv4 address in the network's IPv4 subnet.
    #[arg(long, value_name = "IP", value_parser = parse::ipv4)]
    pub ip: Option<String>,
    /// A static IPv6 address in the network's IPv6 subnet.
    #[arg(long, value_name = "IP", value_parser = parse::ipv6)]
    pub ip6: Option<String>,
    /// A static MAC address for the inside interface.
    #[arg(long, value_name = "MAC", value_parser = parse::mac)]
    pub mac: Option<String>,
    /// An extra name for the endpoint on the network (repeatable).
    #[arg(long = "alias", value_name = "NAME")]
    pub aliases: Vec<String>,
    /// Publish a port, as `docker run -p` (repeatable):
    /// [HOST_IP:][HOST_PORT[-END]:]CONTAINER_PORT[-END][/tcp|udp|sctp]. `80` or
    /// `127.0.0.1::80` takes a free host port from the host's ip_local_port_range;
    /// `9000-9010:80` takes one free port of the range; `9000-9001:90-91` maps pairwise. The
    /// answer shows the host ports taken.
    #[arg(long = "publish", short = 'p', value_name = "SPEC", value_parser = parse::port)]
    pub ports: Vec<PublishedPort>,
    /// Interface name inside the namespace (default eth0).
    #[arg(long, value_name = "NAME")]
    pub interface: Option<String>,
}

impl EndpointFlags {
    /// The first of these flags that was given, as typed on the command line (for messages
    /// about flags that need a network).
    pub fn first_given(&self) -> Option<&'static str> {
        [
            (self.ip.is_some(), "--ip"),
            (self.ip6.is_some(), "--ip6"),
            (self.mac.is_some(), "--mac"),
            (!self.aliases.is_empty(), "--alias"),
            (!self.ports.is_empty(), "-p/--publish"),
            (self.interface.is_some(), "--interface"),
        ]
        .into_iter()
        .find_map(|(given, flag)| given.then_some(flag))
    }

    /// The Connect request that attaches `namespace` to `network` with these flags. Unset
    /// flags are empty strings: weftd then leases addresses, picks a MAC and names the
    /// interface `eth0`. The caller sets `dry_run` and `request_id`.
    pub fn connect_request(
        &self,
        network: &str,
        namespace: &str,
        skip_default_route: bool,
        wait: bool,
    ) -> ConnectRequest {
        ConnectRequest {
            dry_run: false,
            request_id: String::new(),
            network: network.to_string(),
            namespace: namespace.to_string(),
            interface_name: self.interface.clone().unwrap_or_default(),
            ipv4_address: self.ip.clone().unwrap_or_default(),
            ipv6_address: self.ip6.clone().unwrap_or_default(),
            mac_address: self.mac.clone().unwrap_or_default(),
            aliases: self.aliases.clone(),
            published_ports: self.ports.clone(),
            skip_default_route,
            wait: Some(wait),
        }
    }
}
