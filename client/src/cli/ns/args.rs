//! The flags of `weft ns`: every subcommand and its options, as clap parses them. Nothing
//! here talks to weftd; [`super::request`] turns these into requests.
//!
//! The doc comments are the `--help` text, word for word: change them and `weft ns --help`
//! changes too.

use clap::{Args, Subcommand};

use crate::cli::{
    network::EndpointFlags,
    parse::{self, NetworkMode},
    watch::{ListFlags, WatchFlags},
};

/// `weft ns ...`
#[derive(Debug, Subcommand)]
pub enum NsCmd {
    /// Create a namespace: a bind mount under /run/netns like `ip netns add`, or adopt one
    ///
    /// --network MODE (or --net) gives it one of Docker's network modes, as `docker run
    /// --network MODE` does:
    ///
    ///   none          (the default) a namespace with only loopback, no network attached
    ///   bridge        create it and connect it to the default network, named `bridge`
    ///   NETWORK       any other value: create it and connect it to the network of that name
    ///   host          the workload uses the host namespace (/proc/1/ns/net): nothing is
    ///                 created and NAME is unused; prints that path
    ///   container:X   the workload shares the weft namespace X: nothing is created and NAME
    ///                 is unused; prints X's path (an error if X does not exist)
    ///
    /// With bridge or NETWORK, --ip, --ip6, --mac, --alias, -p/--publish and --interface shape
    /// the endpoint as in `weft network connect`, and the output adds the endpoint. If the
    /// connect fails, the namespace just created is removed again and the error is reported
    /// (exit 1).
    #[command(verbatim_doc_comment)]
    Create(Box<CreateArgs>),
    /// List namespaces (--watch: then every change).
    #[command(visible_alias = "list")]
    Ls(LsArgs),
    /// Watch namespaces: every current one, then every change, one line each as it happens.
    ///
    /// Runs until interrupted or weftd ends the stream; --timeout does not apply.
    Watch(WatchArgs),
    /// Show namespaces in detail.
    Inspect {
        /// Namespace names.
        #[arg(required = true, value_name = "NAME")]
        names: Vec<String>,
    },
    /// Remove namespaces (they must hold no weft links, unless --force). Adopted ones are
    /// only forgotten.
    #[command(visible_alias = "delete")]
    Rm {
        /// Namespace names.
        #[arg(required = true, value_name = "NAME")]
        names: Vec<String>,
        /// First disconnect the namespace from its networks and delete the links with an end
        /// in it, as `docker rm -f` takes a container off its networks.
        #[arg(long, short = 'f', conflicts_with = "dry_run")]
        force: bool,
        /// Answer at once instead of waiting until the namespace is gone.
        #[arg(long)]
        no_wait: bool,
        /// Plan only: print what weftd would change, and change nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

/// `weft ns create`
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Namespace name (letters, digits, '.', '_', '-'; at most 64 bytes).
    pub name: String,
    /// A label, KEY=VALUE (repeatable).
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse::label)]
    pub labels: Vec<(String, String)>,
    /// Adopt an existing namespace file (e.g. /proc/PID/ns/net) instead of creating one.
    #[arg(long, value_name = "PATH")]
    pub path: Option<String>,
    /// Answer at once (phase Pending) instead of waiting until the namespace is Ready.
    #[arg(long)]
    pub no_wait: bool,
    /// Docker's network mode: none (default), bridge, host, container:NAME, or a network's
    /// name.
    #[arg(long = "network", visible_alias = "net", value_name = "MODE", value_parser = parse::network_mode)]
    pub network: Option<NetworkMode>,
    /// Plan only: print what weftd would change (with --network bridge or NETWORK, for both
    /// steps), and change nothing. With host or container:X, which change nothing anyway, the
    /// command does what it does without.
    #[arg(long)]
    pub dry_run: bool,
    /// Make the call safe to retry: a retry with the same ID gets the first call's answer
    /// instead of making anything again (1 to 128 bytes; with --network, the connect step
    /// uses ID/connect).
    #[arg(long, value_name = "ID", value_parser = parse::request_id)]
    pub request_id: Option<String>,
    /// The endpoint, with --network bridge or NETWORK.
    #[command(
        flatten,
        next_help_heading = "Endpoint options (--network bridge or NETWORK)"
    )]
    pub endpoint: EndpointFlags,
}

/// The help of `weft ns ls --watch`, which names this noun's watch command.
const LS_WATCH_HELP: &str =
    "After the list, print every change as it happens (the same as `weft ns watch`)";

/// `weft ns ls`: the help of `--watch` (and `-q`) names this noun.
#[derive(Debug, Args)]
#[command(mut_arg("watch", |a| a.help(LS_WATCH_HELP)))]
pub struct LsArgs {
    /// The selector, `-q`, `--watch` and the watch flags.
    #[command(flatten)]
    pub list: ListFlags,
}

/// `weft ns watch`
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Label selector: comma-separated KEY=VALUE, KEY!=VALUE, KEY or !KEY.
    #[arg(long, short = 'l', value_name = "SEL", default_value = "")]
    pub selector: String,
    /// Where to start and when to stop.
    #[command(flatten)]
    pub flags: WatchFlags,
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    /// `list` and `namespace` are aliases of `ls` and `ns`, and `delete` of `rm`, as in
    /// docker and ip; the flags of `rm` default to waiting and really removing.
    #[test]
    fn aliases_parse() {
        for argv in [["weft", "ns", "list"], ["weft", "namespace", "ls"]] {
            assert!(matches!(
                Cli::try_parse_from(argv).unwrap().command,
                Command::Ns(NsCmd::Ls(_))
            ));
        }
        let cli = Cli::try_parse_from(["weft", "ns", "delete", "a", "b"]).unwrap();
        assert!(
            matches!(cli.command, Command::Ns(NsCmd::Rm { names, no_wait: false, dry_run: false, force: false }) if names == ["a", "b"])
        );
    }
}
