//! The flags of `weft link`: every subcommand and its options, as clap parses them. Nothing
//! here talks to weftd; [`super::request`] turns these into requests.
//!
//! The doc comments are the `--help` text, word for word: change them and `weft link --help`
//! changes too. A link is always named by (namespace, name); `--ns` defaults to `""`, the host.

use clap::{Args, Subcommand, ValueEnum};
use weft::v1::Route;

use crate::cli::{
    parse,
    watch::{ListFlags, WatchFlags},
};

/// `weft link ...`
#[derive(Debug, Subcommand)]
pub enum LinkCmd {
    /// Create a veth pair or a bridge.
    Create(Box<CreateArgs>),
    /// List links (all namespaces unless --ns or --host-ns; --watch: then every change).
    #[command(visible_alias = "list")]
    Ls(LsArgs),
    /// Watch links: every current one, then every change, one line each as it happens.
    ///
    /// Runs until interrupted or weftd ends the stream; --timeout does not apply.
    Watch(WatchArgs),
    /// Show links in detail (a veth pair may be named by either end).
    Inspect(RefArgs),
    /// Remove links; naming either end of a veth pair removes the pair.
    #[command(visible_alias = "delete")]
    Rm {
        /// The links.
        #[command(flatten)]
        refs: RefArgs,
        /// Answer at once instead of waiting until the interfaces are gone.
        #[arg(long)]
        no_wait: bool,
        /// Plan only: print what weftd would change, and change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Change a link in place; only the fields given change.
    Set(SetArgs),
}

/// The kinds `weft link create --type` accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LinkKind {
    /// A veth pair (needs --peer).
    Veth,
    /// A Linux bridge.
    Bridge,
}

/// `weft link create`
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Interface name (1 to 15 bytes).
    pub name: String,
    /// Namespace of the interface; empty (the default) is the host.
    #[arg(long, value_name = "NS", default_value = "")]
    pub ns: String,
    /// What to create.
    #[arg(long = "type", value_enum, value_name = "TYPE")]
    pub kind: LinkKind,
    /// Name of the veth peer.
    #[arg(long, value_name = "NAME", required_if_eq("kind", "veth"))]
    pub peer: Option<String>,
    /// Namespace of the veth peer; default: the same as --ns ("" for the host).
    #[arg(long, value_name = "NS", requires = "peer")]
    pub peer_ns: Option<String>,
    /// MTU in bytes.
    #[arg(long, value_name = "N")]
    pub mtu: Option<u32>,
    /// MAC address (default: random).
    #[arg(long, value_name = "MAC", value_parser = parse::mac)]
    pub mac: Option<String>,
    /// Bring the interface up.
    #[arg(long)]
    pub up: bool,
    /// Enslave the interface to this bridge (in the same namespace).
    #[arg(long, value_name = "BR")]
    pub master: Option<String>,
    /// An address in CIDR notation (repeatable).
    #[arg(long = "addr", value_name = "CIDR", value_parser = parse::cidr)]
    pub addrs: Vec<String>,
    /// A route DEST[,via=GW][,metric=N], DEST a CIDR or `default` (repeatable).
    #[arg(long = "route", value_name = "SPEC", value_parser = parse::route)]
    pub routes: Vec<Route>,
    /// MTU of the peer (default: the link's).
    #[arg(long, value_name = "N", requires = "peer")]
    pub peer_mtu: Option<u32>,
    /// MAC address of the peer.
    #[arg(long, value_name = "MAC", value_parser = parse::mac, requires = "peer")]
    pub peer_mac: Option<String>,
    /// Bring the peer up.
    #[arg(long, requires = "peer")]
    pub peer_up: bool,
    /// Enslave the peer to this bridge (in the peer's namespace).
    #[arg(long, value_name = "BR", requires = "peer")]
    pub peer_master: Option<String>,
    /// An address of the peer (repeatable).
    #[arg(long = "peer-addr", value_name = "CIDR", value_parser = parse::cidr, requires = "peer")]
    pub peer_addrs: Vec<String>,
    /// A route through the peer (repeatable).
    #[arg(long = "peer-route", value_name = "SPEC", value_parser = parse::route, requires = "peer")]
    pub peer_routes: Vec<Route>,
    /// A label, KEY=VALUE (repeatable).
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse::label)]
    pub labels: Vec<(String, String)>,
    /// Answer at once (phase Pending) instead of waiting until the link is Ready.
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

/// The help of `weft link ls -q`, which prints more than names.
const LS_QUIET_HELP: &str = "Print only NAMESPACE/NAME of each link";

/// The help of `weft link ls --watch`, which names this noun's watch command.
const LS_WATCH_HELP: &str =
    "After the list, print every change as it happens (the same as `weft link watch`)";

/// `weft link ls`: the help of `--watch` (and `-q`) names this noun.
#[derive(Debug, Args)]
#[command(mut_arg("quiet", |a| a.help(LS_QUIET_HELP)))]
#[command(mut_arg("watch", |a| a.help(LS_WATCH_HELP)))]
pub struct LsArgs {
    /// Only links with an end in this namespace ("" is the host).
    #[arg(long, value_name = "NS", conflicts_with = "host_ns")]
    pub ns: Option<String>,
    /// Only links with an end in the host namespace (same as --ns ""); `--host` is the
    /// same flag (weft's own `--host URL` goes before the command).
    #[arg(long, alias = "host")]
    pub host_ns: bool,
    /// The selector, `-q`, `--watch` and the watch flags.
    #[command(flatten)]
    pub list: ListFlags,
}

/// `weft link watch`
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Only links with an end in this namespace ("" is the host).
    #[arg(long, value_name = "NS", conflicts_with = "host_ns")]
    pub ns: Option<String>,
    /// Only links with an end in the host namespace (same as --ns ""); `--host` is the
    /// same flag (weft's own `--host URL` goes before the command).
    #[arg(long, alias = "host")]
    pub host_ns: bool,
    /// Label selector: comma-separated KEY=VALUE, KEY!=VALUE, KEY or !KEY.
    #[arg(long, short = 'l', value_name = "SEL", default_value = "")]
    pub selector: String,
    /// Where to start and when to stop.
    #[command(flatten)]
    pub flags: WatchFlags,
}

/// Links named on the command line: names in one namespace.
#[derive(Debug, Args)]
pub struct RefArgs {
    /// Interface names.
    #[arg(required = true, value_name = "NAME")]
    pub names: Vec<String>,
    /// Their namespace; empty (the default) is the host.
    #[arg(long, value_name = "NS", default_value = "")]
    pub ns: String,
}

/// `weft link set`
#[derive(Debug, Args)]
pub struct SetArgs {
    /// Interface name (either end of a veth pair).
    pub name: String,
    /// Its namespace; empty (the default) is the host.
    #[arg(long, value_name = "NS", default_value = "")]
    pub ns: String,
    /// New MTU.
    #[arg(long, value_name = "N")]
    pub mtu: Option<u32>,
    /// New MAC address.
    #[arg(long, value_name = "MAC", value_parser = parse::mac)]
    pub mac: Option<String>,
    /// Bring the interface up.
    #[arg(long, conflicts_with = "down")]
    pub up: bool,
    /// Bring the interface down.
    #[arg(long)]
    pub down: bool,
    /// Enslave the interface to this bridge.
    #[arg(long, value_name = "BR", conflicts_with = "nomaster")]
    pub master: Option<String>,
    /// Release the interface from its bridge.
    #[arg(long)]
    pub nomaster: bool,
    /// Replace the address list with these (repeatable).
    #[arg(long = "addr", value_name = "CIDR", value_parser = parse::cidr, conflicts_with = "noaddr")]
    pub addrs: Vec<String>,
    /// Remove every address.
    #[arg(long)]
    pub noaddr: bool,
    /// Replace the route list with these, DEST[,via=GW][,metric=N] (repeatable).
    #[arg(long = "route", value_name = "SPEC", value_parser = parse::route, conflicts_with = "noroute")]
    pub routes: Vec<Route>,
    /// Remove every route.
    #[arg(long)]
    pub noroute: bool,
    /// Replace the link's labels with these, KEY=VALUE (repeatable).
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse::label)]
    pub labels: Vec<(String, String)>,
    /// Answer at once instead of waiting until the change is applied.
    #[arg(long)]
    pub no_wait: bool,
    /// Plan only: print what weftd would change, and change nothing.
    #[arg(long)]
    pub dry_run: bool,
}
