//! The `weft` command line: flags (clap derive), the connection to weftd, and dispatch to the
//! `ns`, `link`, `network` and `system` verbs.
//!
//! Each verb first turns its flags into a request (a bad combination is a usage error, exit 2,
//! before anything is dialled), then connects (lazily, once per run), calls weftd with the
//! `--timeout` as the gRPC deadline, and prints the answer as a table or, with `--format`, as
//! the proto objects in JSON, through a Go template or in Docker's shape (see [`format`]). Failures become one `Error: ...` line on stderr and exit 1 (see
//! [`error`]). Watches are the exception to the deadline: they stream until interrupted (see
//! [`watch`]). `--dry-run` on a mutating verb prints weftd's plan instead (see [`plan`]).
//!
//! Where things are:
//!
//! - one folder per noun ([`ns`], [`link`], [`network`]), each with `args.rs` (the clap
//!   definitions: flags and help text), `request.rs` (flags to proto requests, pure and unit
//!   tested) and `mod.rs` (what each verb sends and prints); [`system`] is small enough to be
//!   one file;
//! - [`mutate`]: the skeleton every create, set, rm, connect, disconnect and prune runs on;
//! - [`format`]: `--format` (JSON by prost-reflect, templates by gotmpl), and [`table`], the
//!   human output, one function per proto message;
//! - [`parse`]: flag values (labels, CIDRs, port and route specs, durations);
//! - [`error`]: how failures are worded, and which stop a list of names;
//! - this file: the global flags, [`Ctx`] (connection, deadline, printing) and the loops
//!   shared by the read verbs ([`each`], [`inspect_each`], [`print_list`]).
//!
//! A new mutating verb takes a `Verb` for its name and flags, builds its request in its
//! noun's `request.rs`, and calls [`mutate::Verb::apply`] (one object back) or
//! [`mutate::Verb::send`] and [`mutate::print_fields`]; error wording, dry runs and the
//! Ready check then behave like every other verb's.

pub mod docs;
pub mod error;
pub mod format;
pub mod link;
pub mod mutate;
pub mod network;
pub mod ns;
pub mod parse;
pub mod plan;
pub mod system;
pub mod table;
pub mod watch;

use std::{future::Future, io::Write, path::PathBuf, time::Duration};

use anyhow::Result;
use clap::{CommandFactory, Parser, Subcommand, error::ErrorKind};
use serde_json::Value;
use tokio::sync::OnceCell;
use weft::{
    Client, DEFAULT_SOCKET, Host, TlsFiles,
    v1::{Phase, Status},
};

use self::{
    error::{Target, Unreachable},
    format::{Format, Shown},
};

/// How long a call may take beyond its gRPC deadline before the CLI gives up on its own (the
/// server normally answers at the deadline). Without it, a weftd that accepted the connection
/// and then hung would hang the CLI too.
const GRACE: Duration = Duration::from_secs(5);

/// The help heading of the flags every subcommand takes.
const GLOBAL: &str = "Global options";

/// weft: the command line for weftd, the network control plane.
///
/// Exit codes: 0 success, 1 weftd refused or failed a request (or is unreachable), 2 usage.
#[derive(Debug, Parser)]
#[command(name = "weft", version = weft_proto::LONG_VERSION, propagate_version = true)]
pub struct Cli {
    /// weftd's Unix socket.
    #[arg(long, global = true, help_heading = GLOBAL, env = "WEFT_SOCKET", value_name = "PATH", default_value = DEFAULT_SOCKET)]
    pub socket: PathBuf,

    /// Connect to weftd over TCP at ADDR (host:port) instead of the socket; the same as
    /// `--host tcp://ADDR`.
    #[arg(long, global = true, help_heading = GLOBAL, value_name = "ADDR")]
    pub tcp: Option<String>,

    /// Where weftd is: unix:///path/to/weftd.sock or tcp://HOST:PORT (TCP needs --tls-cert,
    /// --tls-key and --tls-ca). Also from WEFT_HOST, which an explicit --socket overrides.
    /// Given before the command, as Docker's `-H` (`weft -H tcp://h:7443 ns ls`): after
    /// `link ls` and `link watch`, `--host` keeps its older meaning, the host namespace.
    #[arg(long, short = 'H', help_heading = GLOBAL, value_name = "URL")]
    pub host: Option<Host>,

    /// Client certificate (PEM) to present to weftd over TCP.
    #[arg(long, global = true, help_heading = GLOBAL, env = "WEFT_TLS_CERT", value_name = "PATH")]
    pub tls_cert: Option<PathBuf>,

    /// Private key (PEM) of --tls-cert.
    #[arg(long, global = true, help_heading = GLOBAL, env = "WEFT_TLS_KEY", value_name = "PATH")]
    pub tls_key: Option<PathBuf>,

    /// CA certificate (PEM) that signed weftd's certificate.
    #[arg(long, global = true, help_heading = GLOBAL, env = "WEFT_TLS_CA", value_name = "PATH")]
    pub tls_ca: Option<PathBuf>,

    /// Output format: table, json (proto3 canonical JSON, as grpcurl prints it), docker
    /// (`network inspect` only: Docker's shape) or a Go template applied to each object, e.g.
    /// '{{.Name}} {{.Bridge}}' (fields: see README, "Output formats").
    #[arg(long, global = true, help_heading = GLOBAL, alias = "output", value_name = "FORMAT", default_value = "table", value_parser = parse_format)]
    pub format: Format,

    /// Deadline of each call; writes wait up to this long for the kernel to match (e.g. 30s,
    /// 2m). A watch has none: this bounds only reaching weftd.
    #[arg(long, global = true, help_heading = GLOBAL, env = "WEFT_TIMEOUT", value_name = "DURATION", default_value = "60s", value_parser = parse::duration)]
    pub timeout: Duration,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Parses `--format` (see [`Format`]).
fn parse_format(s: &str) -> Result<Format, String> {
    s.parse()
}

/// `--format` with its template parsed: how [`Ctx`] prints.
pub enum Shape {
    /// Aligned columns for lists, `Key: value` for inspect.
    Table,
    /// proto3 canonical JSON.
    Json,
    /// Docker's `network inspect` shape.
    Docker,
    /// A Go template, rendered per object.
    Template(Box<gotmpl::Template>),
}

/// The object kinds.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Network namespaces (like `ip netns`).
    #[command(subcommand, visible_alias = "namespace")]
    Ns(ns::NsCmd),
    /// Interfaces: veth pairs and bridges, with addresses and routes.
    #[command(subcommand)]
    Link(link::LinkCmd),
    /// Docker-style bridge networks and the namespaces connected to them.
    #[command(subcommand, visible_alias = "net")]
    Network(network::NetworkCmd),
    /// weftd itself: version, settings and counters.
    #[command(subcommand)]
    System(system::SystemCmd),
    /// Show weftd's version, settings and counters (the same as `weft system info`).
    Info,
    /// Show the client's and weftd's versions and git commits, like `docker version`.
    Version,
    /// Print a shell completion script: `weft completion bash > /etc/bash_completion.d/weft`.
    Completion {
        /// The shell: bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Write man pages (weft.1 and one per subcommand, weft-network-connect.1, ...) into DIR.
    #[command(hide = true)]
    Man {
        /// The directory to write them into (created if missing).
        dir: std::path::PathBuf,
    },
}

/// Where to find weftd, most explicit first: `--tcp`, `--host`, `--socket` (flag or
/// WEFT_SOCKET, `socket_given`), then WEFT_HOST (`env_host`), then the default socket.
pub fn target(cli: &Cli, socket_given: bool, env_host: Option<&str>) -> Result<Target> {
    if let Some(addr) = &cli.tcp {
        return Ok(Target::Tcp(addr.clone()));
    }
    let host = match (&cli.host, env_host) {
        (Some(h), _) => Some(h.clone()),
        (None, Some(h)) if !socket_given && !h.is_empty() => Some(
            h.parse::<Host>()
                .map_err(|e| usage(&[], format!("WEFT_HOST: {e}")))?,
        ),
        _ => None,
    };
    Ok(match host {
        Some(Host::Tcp(addr)) => Target::Tcp(addr),
        Some(Host::Unix(path)) => Target::Unix(path),
        None => Target::Unix(cli.socket.clone()),
    })
}

/// Runs a parsed command line; `socket_given` says whether `--socket` or WEFT_SOCKET was set
/// (they then win over WEFT_HOST).
pub async fn run(cli: Cli, socket_given: bool) -> Result<()> {
    let target = target(
        &cli,
        socket_given,
        std::env::var("WEFT_HOST").ok().as_deref(),
    )?;
    let shape = match &cli.format {
        Format::Table => Shape::Table,
        Format::Json => Shape::Json,
        Format::Docker => {
            if !matches!(
                cli.command,
                Command::Network(network::NetworkCmd::Inspect { .. })
            ) {
                return Err(usage(
                    &[],
                    "--format docker is only for `weft network inspect` (Docker's shape of a \
                     network); use json or a template elsewhere",
                ));
            }
            Shape::Docker
        }
        Format::Template(src) => {
            Shape::Template(Box::new(format::template(src).map_err(|e| usage(&[], e))?))
        }
    };
    let ctx = Ctx {
        tls: TlsFiles {
            cert: cli.tls_cert.clone(),
            key: cli.tls_key.clone(),
            ca: cli.tls_ca.clone(),
        },
        target,
        shape,
        timeout: cli.timeout,
        client: OnceCell::new(),
    };
    match cli.command {
        Command::Ns(cmd) => ns::run(&ctx, cmd).await,
        Command::Link(cmd) => link::run(&ctx, cmd).await,
        Command::Network(cmd) => network::run(&ctx, cmd).await,
        Command::System(cmd) => system::run(&ctx, cmd).await,
        Command::Info => system::run(&ctx, system::SystemCmd::Info).await,
        Command::Version => system::version(&ctx).await,
        Command::Completion { shell } => docs::completion(shell),
        Command::Man { dir } => docs::man(&dir),
    }
}

/// A usage error for the subcommand at `path` (e.g. `["link", "create"]`): printed by clap
/// with that subcommand's usage line, exit code 2.
pub fn usage(path: &[&str], msg: impl std::fmt::Display) -> anyhow::Error {
    let mut cmd = Cli::command();
    cmd.build();
    // Walk down by value: a built subcommand knows its full name (`weft link create`), which
    // is what its usage line shows. The clones happen only on this error path.
    let mut sub = cmd;
    for p in path {
        let Some(next) = sub.find_subcommand(p).cloned() else {
            break;
        };
        sub = next;
    }
    anyhow::Error::new(sub.error(ErrorKind::ArgumentConflict, msg))
}

/// What every verb needs: where weftd is, how to print, and the connection.
pub struct Ctx {
    /// The socket or TCP address of weftd (`--socket`, `--host`, `--tcp`).
    target: Target,
    /// The TLS files for TCP.
    tls: TlsFiles,
    /// `--format`: table, JSON, Docker's shape or a template.
    shape: Shape,
    /// `--timeout`: the gRPC deadline of every call, and the bound on dialling.
    timeout: Duration,
    /// The connection, made by the first call that needs one: usage errors, `--network
    /// host` and the like never dial at all.
    client: OnceCell<Client>,
}

impl Ctx {
    /// The output format.
    pub fn shape(&self) -> &Shape {
        &self.shape
    }

    /// Whether the output is the table (the default), where verbs print words of their own.
    pub fn is_table(&self) -> bool {
        matches!(self.shape, Shape::Table)
    }

    /// Prints objects in the `--format` asked for: a JSON array, each through the template,
    /// the Docker shape, or `table()`.
    pub fn print_objects<T: Shown>(
        &self,
        objs: &[T],
        table: impl FnOnce() -> String,
    ) -> Result<()> {
        match &self.shape {
            Shape::Table => self.print(&table()),
            Shape::Json => self.print_json(&Value::Array(objs.iter().map(Shown::json).collect())),
            Shape::Template(t) => {
                let data: Vec<Value> = objs.iter().map(Shown::data).collect();
                self.print(&format::render_each(t, &data)?)
            }
            Shape::Docker => {
                let docker: Option<Vec<Value>> = objs.iter().map(Shown::docker).collect();
                match docker {
                    Some(v) => self.print_json(&Value::Array(v)),
                    None => Err(anyhow::anyhow!(
                        "--format docker is only for `weft network inspect`"
                    )),
                }
            }
        }
    }

    /// Prints one object: as [`Ctx::print_objects`], but JSON is the object, not an array.
    pub fn print_one<T: Shown>(&self, obj: &T, table: impl FnOnce() -> String) -> Result<()> {
        match &self.shape {
            Shape::Json => self.print_json(&obj.json()),
            _ => self.print_objects(std::slice::from_ref(obj), table),
        }
    }

    /// Prints a JSON object the CLI makes itself (a dry run, `rm`'s `deleted`, `version`): as
    /// it is, through the template (keys capitalized: see [`format::data_of`]), or `table()`.
    /// `v` is made only when it is printed: an object's JSON goes through the descriptors of
    /// weft.v1, which take a millisecond or more to load, and a table needs none of it.
    pub fn print_value(
        &self,
        v: impl FnOnce() -> Value,
        table: impl FnOnce() -> String,
    ) -> Result<()> {
        match &self.shape {
            Shape::Table => self.print(&table()),
            Shape::Template(t) => self.print(&format::render_each(t, &[format::data_of(&v())])?),
            Shape::Json | Shape::Docker => self.print_json(&v()),
        }
    }

    /// The connection, dialled on first use.
    pub(crate) async fn client(&self) -> Result<Client, Unreachable> {
        self.client
            .get_or_try_init(|| async {
                let host = match &self.target {
                    Target::Unix(path) => Host::Unix(path.clone()),
                    Target::Tcp(addr) => Host::Tcp(addr.clone()),
                };
                let connect = Client::connect(&host, &self.tls);
                match tokio::time::timeout(self.timeout, connect).await {
                    Ok(Ok(c)) => Ok(c),
                    Ok(Err(weft::ConnectError::Tls(msg))) => Err(Unreachable(msg)),
                    Ok(Err(e)) => Err(error::connect_error(&self.target, &e)),
                    Err(_) => Err(error::unreachable(&self.target, Some("connect timed out"))),
                }
            })
            .await
            .cloned()
    }

    /// Wraps a message in a request carrying the `--timeout` as its gRPC deadline. weftd reads
    /// the deadline too: a write waits for the kernel only until then, and answers with the
    /// object as it stands (see [`Ctx::check_applied`]).
    pub fn req<T>(&self, msg: T) -> tonic::Request<T> {
        let mut r = tonic::Request::new(msg);
        r.set_timeout(self.timeout);
        r
    }

    /// Calls weftd for a read: `f` gets the client and returns the call; `what` names the
    /// operation in error messages (`list namespaces`).
    pub async fn call<T, F, Fut>(&self, what: &str, f: F) -> Result<T>
    where
        F: FnOnce(Client) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        self.call_inner(what, f, false).await
    }

    /// Calls weftd for a change (create, update, delete, connect...), as [`Ctx::call`].
    pub async fn write<T, F, Fut>(&self, what: &str, f: F) -> Result<T>
    where
        F: FnOnce(Client) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        self.call_inner(what, f, true).await
    }

    /// [`Ctx::call`] and [`Ctx::write`]: dials if need be, runs the call with a local
    /// deadline of `--timeout` plus [`GRACE`] (in case weftd does not answer at the gRPC
    /// deadline), and turns a failure into the CLI's error, `write` shaping its wording.
    async fn call_inner<T, F, Fut>(&self, what: &str, f: F, write: bool) -> Result<T>
    where
        F: FnOnce(Client) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let client = self.client().await?;
        let status = match tokio::time::timeout(self.timeout + GRACE, f(client)).await {
            Ok(Ok(resp)) => return Ok(resp.into_inner()),
            Ok(Err(status)) => status,
            Err(_) => tonic::Status::deadline_exceeded(""),
        };
        Err(self.rpc_error(what, &status, write))
    }

    /// The error for a call that failed with `status`, as [`Ctx::call`] reports it.
    pub fn rpc_error(&self, what: &str, status: &tonic::Status, write: bool) -> anyhow::Error {
        error::rpc(&self.target, self.timeout, what, status, write)
    }

    /// After a write that waited for its result: Ready is success; Failed, or still Pending
    /// when weftd answered at the deadline, is an error (exit 1) carrying the status message.
    /// `what` names the operation, `inspect` the command that shows the object.
    pub fn check_applied(
        &self,
        what: &str,
        status: Option<&Status>,
        waited: bool,
        inspect: &str,
    ) -> Result<()> {
        if !waited {
            return Ok(());
        }
        let message = status.map(|s| s.message.as_str()).filter(|m| !m.is_empty());
        match status.and_then(|s| Phase::try_from(s.phase).ok()) {
            Some(Phase::Failed) => Err(anyhow::anyhow!(
                "{what}: accepted, but applying it failed: {} (`{inspect}` shows its state)",
                message.unwrap_or("no reason given")
            )),
            Some(Phase::Pending) => Err(anyhow::anyhow!(
                "{what}: accepted, but not applied within {}{} (weftd keeps trying; `{inspect}` \
                 shows its state; --timeout to wait longer)",
                error::humantime(self.timeout),
                message.map(|m| format!(": {m}")).unwrap_or_default()
            )),
            _ => Ok(()),
        }
    }

    /// Prints to stdout. A closed pipe (`weft ns ls | head -1`) is not an error.
    pub fn print(&self, s: &str) -> Result<()> {
        self.print_open(s).map(drop)
    }

    /// Prints to stdout and flushes; `false` when nobody reads any more (a closed pipe, as in
    /// `weft ns watch | head -3`), which is not an error either.
    pub fn print_open(&self, s: &str) -> Result<bool> {
        let mut out = std::io::stdout().lock();
        match out.write_all(s.as_bytes()).and_then(|()| out.flush()) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Prints a JSON value: pretty, with a trailing newline (see [`format::render`]).
    pub fn print_json(&self, v: &Value) -> Result<()> {
        self.print(&format::render(v))
    }
}

/// Prints an error the way `main` does, for commands that go on after one.
pub fn report(err: &anyhow::Error) {
    eprintln!("Error: {err:#}");
}

/// Runs `f` for each item, one after the other, printing each failure and going on (as
/// `docker rm A B C` does); stops at once if weftd is unreachable, since every later item
/// would fail the same way. Returns the successes, or `Reported` if anything failed (after the
/// caller has had the chance to print the successes: see [`Partial::finish`]).
pub async fn each<I, T, F, Fut>(items: I, mut f: F) -> Result<Partial<T>>
where
    I: IntoIterator,
    F: FnMut(I::Item) -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let mut done = Partial {
        ok: Vec::new(),
        failed: false,
    };
    for item in items {
        match f(item).await {
            Ok(v) => done.ok.push(v),
            Err(e) if e.is::<Unreachable>() => return Err(e),
            Err(e) => {
                report(&e);
                done.failed = true;
            }
        }
    }
    Ok(done)
}

/// `ls` without `--watch`: prints `list` in the `--format` asked for, or with `-q` (`quiet`)
/// one `name` per line, or as `table` lays it out (with a header, even when empty).
pub fn print_list<T: Shown>(
    ctx: &Ctx,
    list: &[T],
    quiet: bool,
    name: fn(&T) -> String,
    table: fn(&[T]) -> String,
) -> Result<()> {
    if quiet && ctx.is_table() {
        return ctx.print(
            &list
                .iter()
                .map(|o| format!("{}\n", name(o)))
                .collect::<String>(),
        );
    }
    ctx.print_objects(list, || table(list))
}

/// `inspect NAME...`: `get` fetches one object per name (printing each failure and going on,
/// as [`each`]), then they are printed together in the `--format` asked for (a JSON array) or
/// as the `describe` blocks separated by blank lines; exit 1 if any name failed.
pub async fn inspect_each<T, F, Fut>(
    ctx: &Ctx,
    names: Vec<String>,
    get: F,
    describe: fn(&T) -> String,
) -> Result<()>
where
    T: Shown,
    F: FnMut(String) -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let done = each(names, get).await?;
    ctx.print_objects(&done.ok, || {
        done.ok.iter().map(describe).collect::<Vec<_>>().join("\n")
    })?;
    done.finish()
}

/// The outcome of [`each`]: what succeeded, and whether anything failed.
pub struct Partial<T> {
    /// The results of the items that succeeded, in order.
    pub ok: Vec<T>,
    /// Whether any item failed (its error already printed).
    failed: bool,
}

impl<T> Partial<T> {
    /// `Err(Reported)` if any item failed (its error is already printed), for exit code 1.
    pub fn finish(&self) -> Result<()> {
        if self.failed {
            Err(error::Reported.into())
        } else {
            Ok(())
        }
    }
}

/// The same text, shell-quoted if it needs to be, for the commands suggested in messages
/// (`weft ns inspect 'my ns'`): a user can paste the hint as it is. Single quotes inside are
/// written as `'\''`, the one form every POSIX shell reads.
pub fn sh(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/' | ':' | '@' | '=')
        });
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A table never makes the JSON of what it prints (an object's JSON loads the descriptors
    /// of weft.v1: 3 ms of a 6 ms `weft network disconnect --dry-run`); JSON does.
    #[test]
    fn only_what_is_printed_is_made() {
        let ctx = |shape| Ctx {
            target: Target::Unix(PathBuf::from("/nonexistent/weftd.sock")),
            tls: TlsFiles::default(),
            shape,
            timeout: Duration::from_secs(1),
            client: OnceCell::new(),
        };
        ctx(Shape::Table)
            .print_value(|| panic!("the JSON was made for a table"), String::new)
            .unwrap();
        let mut made = false;
        ctx(Shape::Json)
            .print_value(
                || {
                    made = true;
                    Value::Null
                },
                || panic!("a table was made for JSON"),
            )
            .unwrap();
        assert!(made);
    }

    /// clap's own checks of the whole definition: ids, conflicts, `requires`, the `mut_arg`
    /// overrides of the `ls` help lines, no two flags with one name.
    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    /// `--socket`, `--tcp`, `--format` and `--timeout` work before or after the subcommand, as
    /// in docker and kubectl; `--output` is an alias of `--format`.
    #[test]
    fn global_flags_go_anywhere() {
        let cli =
            Cli::try_parse_from(["weft", "ns", "ls", "--format", "json", "--socket", "/tmp/s"])
                .unwrap();
        assert_eq!(cli.format, Format::Json);
        assert_eq!(cli.socket, PathBuf::from("/tmp/s"));
        let out = Cli::try_parse_from(["weft", "--output", "{{.Name}}", "ns", "ls"]).unwrap();
        assert_eq!(out.format, Format::Template("{{.Name}}".into()));
        assert_eq!(cli.timeout, Duration::from_secs(60));
        let cli = Cli::try_parse_from([
            "weft",
            "--tcp",
            "127.0.0.1:7000",
            "--timeout",
            "5s",
            "ns",
            "list",
        ])
        .unwrap();
        assert_eq!(cli.tcp.as_deref(), Some("127.0.0.1:7000"));
        assert_eq!(cli.timeout, Duration::from_secs(5));
    }

    /// `--host` and WEFT_HOST take unix:// and tcp:// URLs; an explicit --socket or --tcp wins
    /// over WEFT_HOST, and --host over --socket.
    #[test]
    fn host_flag_and_env() {
        let parse = |args: &[&str]| Cli::try_parse_from(args.iter().copied()).unwrap();
        let t = |cli: &Cli, given, env| match target(cli, given, env).unwrap() {
            Target::Unix(p) => format!("unix:{}", p.display()),
            Target::Tcp(a) => format!("tcp:{a}"),
        };
        let cli = parse(&["weft", "--host", "tcp://10.0.0.1:7443", "ns", "ls"]);
        assert_eq!(t(&cli, false, None), "tcp:10.0.0.1:7443");
        assert_eq!(t(&cli, true, Some("unix:///x")), "tcp:10.0.0.1:7443");
        let cli = parse(&["weft", "-H", "unix:///tmp/w.sock", "ns", "ls"]);
        assert_eq!(t(&cli, false, None), "unix:/tmp/w.sock");
        let cli = parse(&["weft", "ns", "ls"]);
        assert_eq!(t(&cli, false, None), format!("unix:{DEFAULT_SOCKET}"));
        assert_eq!(t(&cli, false, Some("tcp://h:1")), "tcp:h:1");
        let cli = parse(&["weft", "ns", "ls", "--socket", "/tmp/s"]);
        assert_eq!(t(&cli, true, Some("tcp://h:1")), "unix:/tmp/s");
        let cli = parse(&["weft", "ns", "ls", "--tcp", "h:2"]);
        assert_eq!(t(&cli, false, Some("tcp://h:1")), "tcp:h:2");
        let err = Cli::try_parse_from(["weft", "--host", "http://x", "ns", "ls"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("tcp://host:port"), "{err}");
        let cli = parse(&["weft", "ns", "ls"]);
        assert!(target(&cli, false, Some("bogus")).is_err());
        let cli = parse(&[
            "weft",
            "ns",
            "ls",
            "--tls-cert",
            "c.pem",
            "--tls-key",
            "k.pem",
            "--tls-ca",
            "ca.pem",
        ]);
        assert_eq!(cli.tls_ca, Some(PathBuf::from("ca.pem")));
    }

    /// A value a parser refuses is clap's usage error: exit 2, with the parser's message.
    #[test]
    fn bad_flag_values_are_usage_errors() {
        let err =
            Cli::try_parse_from(["weft", "ns", "create", "x", "--label", "nokey"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("KEY=VALUE"), "{err}");
        let err = Cli::try_parse_from(["weft", "--format", "yaml", "ns", "ls"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        // `-o` is `network create`'s `--opt` now, as in Docker; elsewhere it does not exist.
        let err = Cli::try_parse_from(["weft", "-o", "json", "ns", "ls"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
    }

    /// A usage error found after clap (a bad flag combination) looks like clap's own: exit 2 and
    /// the usage line of the subcommand, not of `weft`.
    #[test]
    fn usage_errors_exit_2_with_the_subcommand_usage() {
        let e = usage(&["link", "create"], "bad combination");
        let clap_err = e.downcast_ref::<clap::Error>().unwrap();
        assert_eq!(clap_err.exit_code(), 2);
        let text = clap_err.to_string();
        assert!(text.contains("bad combination"), "{text}");
        assert!(text.contains("weft link create"), "{text}");
    }

    /// Names in suggested commands are quoted only when the shell needs it.
    #[test]
    fn shell_quoting() {
        assert_eq!(sh("ns1"), "ns1");
        assert_eq!(sh(""), "''");
        assert_eq!(sh("a b"), "'a b'");
    }
}
