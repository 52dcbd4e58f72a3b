//! `weft-cni`, a CNI 1.1 plugin that puts containers on weft networks: ADD adopts the
//! container's namespace (`CNI_NETNS`) as a weft namespace object and Connects it, DEL
//! Disconnects and forgets it, CHECK compares a prevResult with weftd's endpoint and the
//! namespace, GC removes CNI-made endpoints that are no valid attachment, STATUS says whether
//! weftd and the network can serve ADDs, VERSION lists the versions spoken.
//!
//! The plugin never changes the kernel: every change is a call to weftd over its Unix
//! socket. Only CHECK reads the container's namespace (its interfaces and addresses), to see
//! what weftd cannot vouch for. Results and errors are the spec's JSON on stdout, errors with
//! the spec's codes ([`code`]) and exit status 1.
//!
//! # Data flow
//! [`run`] reads the environment into an [`Invocation`] ([`config`]), then `ops` parses the
//! configuration into a [`NetConf`], calls weftd, and turns the answer into a result
//! ([`result`]) or a [`CniError`]. Nothing is kept between invocations: a retried ADD finds
//! its earlier work through weftd, as the namespace object's name and the Connect's request
//! id are derived from the container id (the request id also from interface, network and the
//! object's uid), so a retry replays rather than duplicates.

pub mod config;
mod netns;
mod ops;
pub mod result;

use serde_json::{Value, json};

pub use config::{Command, Invocation, NetConf};
pub use ops::{LABEL_CONTAINER, LABEL_IFNAME, LABEL_POD_NAME, LABEL_POD_NAMESPACE};

/// The error codes of the CNI spec, and weft-cni's own (100 and up).
///
/// The spec's "Error" section reserves 1 to 99 for the well-known codes below (50 to 99 for
/// STATUS) and leaves 100 and up to plugins. Each constant says when weft-cni uses it.
pub mod code {
    /// Incompatible CNI version: a `cniVersion` not in `SUPPORTED_VERSIONS`, or CHECK asked
    /// in a version before 0.4.0 (the version that introduced CHECK).
    pub const INCOMPATIBLE_VERSION: u32 = 1;
    /// Unsupported field in the network configuration: more than one static address of a
    /// family (a weft endpoint has one address per family).
    pub const UNSUPPORTED_FIELD: u32 = 2;
    /// Container unknown or does not exist: ADD's `CNI_NETNS` is not a network namespace, or
    /// CHECK cannot enter it. The spec reads this code as "no network cleanup needed".
    pub const UNKNOWN_CONTAINER: u32 = 3;
    /// Invalid necessary environment variables: a missing or malformed `CNI_*` variable, a
    /// bad `IP=` in `CNI_ARGS`, or a `CNI_NETNS` path weftd rejects as malformed.
    pub const INVALID_ENV: u32 = 4;
    /// I/O failure: only the binary's own (stdin unreadable, the async runtime not starting).
    pub const IO: u32 = 5;
    /// Failed to decode content: stdin is not JSON, or not a JSON object.
    pub const DECODE: u32 = 6;
    /// Invalid network config: a bad field, a weft network that does not exist, a second
    /// interface of one container on one network, CHECK without `prevResult`, GC without
    /// `cni.dev/valid-attachments`.
    pub const INVALID_CONFIG: u32 = 7;
    /// Try again later (weftd unreachable or busy): no socket, no answer within the
    /// invocation's 60 s, or a transient gRPC status. The runtime may retry the same call.
    pub const TRY_AGAIN_LATER: u32 = 11;
    /// STATUS: the plugin cannot serve ADDs (weftd unreachable, or the network not Ready).
    pub const NOT_AVAILABLE: u32 = 50;
    /// weft-cni's own: weftd refused the request (its message says why), or Connect made an
    /// endpoint that is not Ready.
    pub const WEFTD_REFUSED: u32 = 100;
    /// weft-cni's own: CHECK found the attachment different from its prevResult.
    pub const CHECK_FAILED: u32 = 101;
}

/// A CNI error: its code, message and details, written as the spec's error JSON. The spec
/// has a failed plugin print this on stdout and exit non-zero: [`run`] puts both in its
/// [`Outcome`], which the binary prints and exits with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CniError {
    /// The spec's error code ([`code`]).
    pub code: u32,
    /// A short message.
    pub msg: String,
    /// Longer details (may be empty).
    pub details: String,
}

impl CniError {
    /// An error with `code` and `msg`.
    pub fn new(code: u32, msg: impl Into<String>) -> Self {
        CniError {
            code,
            msg: msg.into(),
            details: String::new(),
        }
    }

    /// The spec's error JSON, in CNI version `version`; `details` is left out when empty
    /// (the spec makes it optional).
    pub fn to_json(&self, version: &str) -> Value {
        let mut v = json!({ "cniVersion": version, "code": self.code, "msg": self.msg });
        if !self.details.is_empty() {
            v["details"] = json!(self.details);
        }
        v
    }
}

impl std::fmt::Display for CniError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CNI error {}: {}", self.code, self.msg)
    }
}

/// What one invocation prints on stdout and exits with.
#[derive(Debug)]
pub struct Outcome {
    /// The JSON to print (none for a successful DEL, CHECK, GC or STATUS).
    pub stdout: Option<Value>,
    /// The exit status: 0 on success, 1 on error.
    pub status: i32,
}

/// Runs one invocation: the environment read by `get`, the configuration on `stdin`.
/// Errors are written in the configuration's `cniVersion` when it is one weft-cni speaks,
/// else in [`config::LATEST_VERSION`] (also for a stdin that is not JSON). Never fails
/// itself: every problem becomes an [`Outcome`] with status 1.
pub async fn run(get: impl Fn(&str) -> Option<String>, stdin: &[u8]) -> Outcome {
    let version = config::peek_version(stdin)
        .filter(|v| config::supported(v))
        .unwrap_or_else(|| config::LATEST_VERSION.to_string());
    let res = match Invocation::from_env(get) {
        Ok(inv) => ops::dispatch(&inv, stdin, &version).await,
        Err(e) => Err(e),
    };
    match res {
        Ok(stdout) => Outcome { stdout, status: 0 },
        Err(e) => Outcome {
            stdout: Some(e.to_json(&version)),
            status: 1,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[tokio::test]
    async fn version_and_early_errors_need_no_weftd() {
        // VERSION with nothing on stdin answers in the newest version.
        let o = run(env(&[("CNI_COMMAND", "VERSION")]), b"").await;
        assert_eq!(o.status, 0);
        let v = o.stdout.unwrap();
        assert_eq!(v["cniVersion"], "1.1.0");
        assert_eq!(v["supportedVersions"].as_array().unwrap().len(), 7);
        // CHECK of a 0.3.1 configuration: incompatible version, in that version.
        let check = &[
            ("CNI_COMMAND", "CHECK"),
            ("CNI_CONTAINERID", "c1"),
            ("CNI_NETNS", "/proc/1/ns/net"),
            ("CNI_IFNAME", "eth0"),
        ];
        let o = run(env(check), br#"{"cniVersion":"0.3.1","name":"web"}"#).await;
        assert_eq!(o.status, 1);
        let e = o.stdout.unwrap();
        assert_eq!(
            (e["code"].as_u64(), e["cniVersion"].as_str()),
            (Some(1), Some("0.3.1"))
        );
        // An unknown command: invalid environment.
        let o = run(env(&[("CNI_COMMAND", "FROB")]), b"{}").await;
        assert_eq!(o.stdout.unwrap()["code"], 4);
        // weftd's socket missing: try again later.
        let add = &[
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "c1"),
            ("CNI_NETNS", "/proc/1/ns/net"),
            ("CNI_IFNAME", "eth0"),
        ];
        let conf = br#"{"cniVersion":"1.0.0","name":"web","socket":"/nonexistent/weftd.sock"}"#;
        let o = run(env(add), conf).await;
        assert_eq!(o.stdout.unwrap()["code"], 11);
    }

    #[test]
    fn errors_are_the_spec_json() {
        let e = CniError::new(code::INVALID_CONFIG, "no network");
        assert_eq!(
            e.to_json("1.0.0"),
            json!({"cniVersion":"1.0.0","code":7,"msg":"no network"})
        );
        let mut e = e;
        e.details = "more".into();
        assert_eq!(e.to_json("1.1.0")["details"], "more");
    }
}
