//! What a CNI runtime hands `weft-cni`: the environment (`CNI_COMMAND`, `CNI_CONTAINERID`,
//! `CNI_NETNS`, `CNI_IFNAME`, `CNI_ARGS`) and the network configuration on stdin, parsed and
//! checked into [`Invocation`] and [`NetConf`]. Pure: nothing here talks to weftd.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

use serde_json::Value;

use super::{CniError, code};

/// The CNI versions `weft-cni` speaks, oldest first (what VERSION answers). They fall into
/// three result shapes, 0.1/0.2, 0.3/0.4 and 1.x (see [`super::result`]); CHECK needs 0.4.0
/// or later, GC and STATUS are 1.1 commands.
pub const SUPPORTED_VERSIONS: &[&str] = &[
    "0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0",
];

/// The newest CNI version `weft-cni` speaks.
pub const LATEST_VERSION: &str = "1.1.0";

/// One CNI operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// Attach a container: adopt its namespace, Connect it, print the result.
    Add,
    /// Detach a container (idempotent: the spec has DEL succeed when there is nothing to
    /// remove, and runtimes may call it more than once).
    Del,
    /// Verify a container's attachment against its prevResult.
    Check,
    /// Report the versions spoken.
    Version,
    /// Remove attachments not in `cni.dev/valid-attachments`.
    Gc,
    /// Whether the plugin can serve ADDs.
    Status,
}

/// The environment of one invocation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invocation {
    /// `CNI_COMMAND`.
    pub command: Command,
    /// `CNI_CONTAINERID` (empty for VERSION, GC, STATUS).
    pub container_id: String,
    /// `CNI_NETNS`, the path of the container's namespace file (may be empty for DEL, which
    /// a runtime may send after the namespace is gone).
    pub netns: String,
    /// `CNI_IFNAME`: the interface to make inside the container (checked for ADD, DEL and
    /// CHECK only).
    pub ifname: String,
    /// `CNI_ARGS`, parsed. `IP`, `MAC`, `K8S_POD_NAME` and `K8S_POD_NAMESPACE` are read; any
    /// other key is kept and ignored, with or without `IgnoreUnknown`.
    pub args: BTreeMap<String, String>,
}

/// An error in the `CNI_*` variables: the spec's code 4 (invalid environment variables).
fn env_err(msg: impl Into<String>) -> CniError {
    CniError::new(code::INVALID_ENV, msg)
}

/// Parses `CNI_ARGS`: `KEY=VALUE` pairs separated by `;` (`IgnoreUnknown=1;IP=10.0.0.5`).
/// Empty pairs are skipped (so `""` and `";;"` give none); a repeated key keeps its last
/// value. A pair without `=` or with an empty key is code 4.
pub fn parse_cni_args(s: &str) -> Result<BTreeMap<String, String>, CniError> {
    let mut out = BTreeMap::new();
    for pair in s.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').ok_or_else(|| {
            env_err(format!(
                "CNI_ARGS: {pair:?} is not KEY=VALUE (pairs separated by ';')"
            ))
        })?;
        if k.is_empty() {
            return Err(env_err(format!("CNI_ARGS: {pair:?} has an empty key")));
        }
        out.insert(k.to_string(), v.to_string());
    }
    Ok(out)
}

/// A container id as the spec allows: alphanumerics, `_`, `.` and `-`, starting with an
/// alphanumeric (the spec's `CNI_CONTAINERID` rule).
fn valid_container_id(id: &str) -> bool {
    id.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

/// An interface name as the spec allows: 1 to 15 bytes, not `.` or `..`, no `/`, `:` or
/// whitespace. These are the kernel's own rules (`dev_valid_name`, with `IFNAMSIZ` 16 bytes
/// counting the NUL), which libcni's `ValidateInterfaceName` checks too.
fn valid_ifname(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 15
        && n != "."
        && n != ".."
        && !n.chars().any(|c| c == '/' || c == ':' || c.is_whitespace())
}

impl Invocation {
    /// Reads and checks the CNI variables from `get` (the process environment, or a map in
    /// tests). Errors are code 4 (invalid environment variables). ADD, DEL and CHECK need a
    /// valid container id and interface name, ADD and CHECK a namespace path too; VERSION,
    /// GC and STATUS need none of them. Each message names the variable and what it must be.
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Result<Self, CniError> {
        let var = |k: &str| get(k).unwrap_or_default();
        let command = match var("CNI_COMMAND").as_str() {
            "ADD" => Command::Add,
            "DEL" => Command::Del,
            "CHECK" => Command::Check,
            "VERSION" => Command::Version,
            "GC" => Command::Gc,
            "STATUS" => Command::Status,
            "" => {
                return Err(env_err(
                    "CNI_COMMAND is not set (ADD, DEL, CHECK, VERSION, GC or STATUS)",
                ));
            }
            other => {
                return Err(env_err(format!(
                    "CNI_COMMAND {other:?} is unknown: use ADD, DEL, CHECK, VERSION, GC or STATUS"
                )));
            }
        };
        let inv = Invocation {
            command,
            container_id: var("CNI_CONTAINERID"),
            netns: var("CNI_NETNS"),
            ifname: var("CNI_IFNAME"),
            args: parse_cni_args(&var("CNI_ARGS"))?,
        };
        if matches!(command, Command::Add | Command::Del | Command::Check) {
            if !valid_container_id(&inv.container_id) {
                return Err(env_err(format!(
                    "CNI_CONTAINERID {:?} must be letters, digits, '_', '.' and '-', starting \
                     with a letter or digit",
                    inv.container_id
                )));
            }
            if !valid_ifname(&inv.ifname) {
                return Err(env_err(format!(
                    "CNI_IFNAME {:?} must be 1 to 15 bytes without '/', ':' or spaces",
                    inv.ifname
                )));
            }
            if command != Command::Del && inv.netns.is_empty() {
                return Err(env_err(
                    "CNI_NETNS is not set: give the container's namespace file",
                ));
            }
        }
        Ok(inv)
    }
}

/// A port mapping from the `portMappings` capability, in the shape the CNI conventions
/// document (and the reference `portmap` plugin reads): one port each side, no ranges.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortMapping {
    /// `hostPort`, 1 to 65535.
    pub host_port: u32,
    /// `containerPort`, 1 to 65535.
    pub container_port: u32,
    /// `protocol`, lower-cased ("tcp" when absent); weftd takes tcp, udp and sctp.
    pub protocol: String,
    /// `hostIP` ("" for every address); not checked here, weftd validates it on Connect.
    pub host_ip: String,
}

/// The network configuration one invocation gets on stdin. Keys weft-cni does not use
/// (`type`, `ipam`, ...) are ignored; `runtimeConfig` carries the capabilities the runtime
/// filled in (`ips`, `mac`, `portMappings`, `aliases`).
#[derive(Clone, Debug, PartialEq)]
pub struct NetConf {
    /// `cniVersion`: the version results are written in.
    pub cni_version: String,
    /// `name`: the CNI network's name.
    pub name: String,
    /// `network`: the weft network (default: `name`).
    pub network: String,
    /// `socket`: weftd's socket (default: weftd's default, `/run/weft/weftd.sock`).
    pub socket: PathBuf,
    /// Static addresses: the `ips` capability, or `IP=` of `CNI_ARGS`. At most one per
    /// family, prefix lengths dropped (the network's subnet decides the prefix).
    pub ips: Vec<IpAddr>,
    /// Static MAC: the `mac` capability, or `MAC=` of `CNI_ARGS`; empty lets weftd derive
    /// one from the lease (Docker's 02:42 and the IPv4 address).
    pub mac: String,
    /// The `portMappings` capability.
    pub port_mappings: Vec<PortMapping>,
    /// The `aliases` capability's names for this network: the list under the configuration's
    /// `name`, else under `network`.
    pub aliases: Vec<String>,
    /// `prevResult` (DEL, CHECK), as sent; `None` when absent or null.
    pub prev_result: Option<Value>,
    /// `cni.dev/valid-attachments` (GC): (container id, ifname) pairs; `None` when absent.
    pub valid_attachments: Option<Vec<(String, String)>>,
    /// The configuration's `dns` object (`nameservers`, `domain`, `search`, `options`), if
    /// any: its search and options go into ADD's result beside weft's resolver.
    pub dns: Option<Value>,
}

/// An error in the network configuration on stdin: the spec's code 7 (invalid network config).
fn conf_err(msg: impl Into<String>) -> CniError {
    CniError::new(code::INVALID_CONFIG, msg)
}

/// The version of the configuration on stdin, as far as it can be read: for VERSION (whose
/// stdin may be just `{"cniVersion":...}` or nothing) and for error replies.
pub fn peek_version(stdin: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(stdin).ok()?;
    v.get("cniVersion")?.as_str().map(str::to_string)
}

/// Whether `v` is a version `weft-cni` speaks.
pub fn supported(v: &str) -> bool {
    SUPPORTED_VERSIONS.contains(&v)
}

/// Splits "10.0.0.5/24" or "10.0.0.5" into the address. The prefix length is dropped
/// unchecked: weftd gives an endpoint its network's prefix. `what` names the field in the
/// error (code 7).
fn parse_ip(s: &str, what: &str) -> Result<IpAddr, CniError> {
    let host = s.split_once('/').map_or(s, |(a, _)| a);
    host.trim().parse().map_err(|_| {
        conf_err(format!(
            "{what}: {s:?} is not an IP address (10.0.0.5 or 10.0.0.5/24)"
        ))
    })
}

/// The string field `key` of a JSON object: None when absent, an error when not a string.
fn str_field<'a>(v: &'a Value, key: &str) -> Result<Option<&'a str>, CniError> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(conf_err(format!("{key:?} must be a string"))),
    }
}

impl NetConf {
    /// Parses stdin against the invocation (whose `CNI_ARGS` also carry `IP=`/`MAC=`).
    /// Code 6 when stdin is not JSON, 1 for a version not spoken, 7 for a bad field, 2 for two
    /// addresses of one family, 4 for a bad `IP=`. The capabilities win over `CNI_ARGS`.
    pub fn parse(stdin: &[u8], inv: &Invocation) -> Result<Self, CniError> {
        let v: Value = serde_json::from_slice(stdin).map_err(|e| {
            CniError::new(
                code::DECODE,
                format!("the network configuration on stdin is not JSON: {e}"),
            )
        })?;
        if !v.is_object() {
            return Err(CniError::new(
                code::DECODE,
                "the network configuration must be a JSON object",
            ));
        }
        let cni_version = str_field(&v, "cniVersion")?
            .ok_or_else(|| conf_err("\"cniVersion\" is missing (1.0.0, say)"))?
            .to_string();
        if !supported(&cni_version) {
            return Err(CniError::new(
                code::INCOMPATIBLE_VERSION,
                format!(
                    "CNI version {cni_version:?} is not supported: weft-cni speaks {}",
                    SUPPORTED_VERSIONS.join(", ")
                ),
            ));
        }
        let name = str_field(&v, "name")?
            .filter(|n| !n.is_empty())
            .ok_or_else(|| conf_err("\"name\" is missing: name the network"))?
            .to_string();
        let network = str_field(&v, "network")?
            .filter(|n| !n.is_empty())
            .unwrap_or(&name)
            .to_string();
        let socket = str_field(&v, "socket")?
            .filter(|s| !s.is_empty())
            .unwrap_or(crate::DEFAULT_SOCKET)
            .into();
        let rc = v.get("runtimeConfig").cloned().unwrap_or(Value::Null);
        let mut ips = Vec::new();
        if let Some(list) = rc.get("ips").and_then(Value::as_array) {
            for ip in list {
                let s = ip
                    .as_str()
                    .ok_or_else(|| conf_err("runtimeConfig.ips must be strings"))?;
                ips.push(parse_ip(s, "runtimeConfig.ips")?);
            }
        }
        // `IP=` of CNI_ARGS (podman's way) counts when the capability gave none.
        if let Some(s) = inv.args.get("IP").filter(|_| ips.is_empty()) {
            for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                let ip = parse_ip(part, "CNI_ARGS IP").map_err(|e| env_err(e.msg))?;
                if !ips.contains(&ip) {
                    ips.push(ip);
                }
            }
        }
        for v4 in [true, false] {
            if ips.iter().filter(|a| a.is_ipv4() == v4).count() > 1 {
                return Err(CniError::new(
                    code::UNSUPPORTED_FIELD,
                    format!(
                        "more than one IPv{} address asked for ({ips:?}): a weft endpoint has one \
                         address per family",
                        if v4 { 4 } else { 6 }
                    ),
                ));
            }
        }
        let mac = str_field(&rc, "mac")?
            .map(str::to_string)
            .or_else(|| inv.args.get("MAC").cloned())
            .unwrap_or_default();
        let port_mappings = match rc.get("portMappings") {
            Some(Value::Array(list)) => list.iter().map(port_mapping).collect::<Result<_, _>>()?,
            None | Some(Value::Null) => Vec::new(),
            Some(_) => return Err(conf_err("runtimeConfig.portMappings must be a list")),
        };
        let aliases = rc
            .get("aliases")
            .and_then(|a| a.get(&name).or_else(|| a.get(&network)))
            .and_then(Value::as_array)
            .map(|l| {
                l.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        // libcni sends the list under both names (a spec typo kept for compatibility).
        let valid_attachments = ["cni.dev/valid-attachments", "cni.dev/attachments"]
            .iter()
            .find_map(|k| v.get(*k).and_then(Value::as_array))
            .map(|l| {
                l.iter()
                    .map(|a| {
                        let f = |k| {
                            a.get(k)
                                .and_then(Value::as_str)
                                .unwrap_or_default()
                                .to_string()
                        };
                        (f("containerID"), f("ifname"))
                    })
                    .collect()
            });
        Ok(NetConf {
            cni_version,
            name,
            network,
            socket,
            ips,
            mac,
            port_mappings,
            aliases,
            prev_result: v.get("prevResult").filter(|p| !p.is_null()).cloned(),
            valid_attachments,
            dns: match v.get("dns") {
                None | Some(Value::Null) => None,
                Some(d @ Value::Object(_)) => Some(d.clone()),
                Some(_) => {
                    return Err(conf_err(
                        "\"dns\" must be an object ({\"search\": [...], \"options\": [...]})",
                    ));
                }
            },
        })
    }
}

/// One `portMappings` entry of `runtimeConfig` (hostPort, containerPort, protocol, hostIP).
fn port_mapping(v: &Value) -> Result<PortMapping, CniError> {
    let port = |k: &str| -> Result<u32, CniError> {
        v.get(k)
            .and_then(Value::as_u64)
            .filter(|p| (1..=65535).contains(p))
            .and_then(|p| u32::try_from(p).ok())
            .ok_or_else(|| {
                conf_err(format!(
                    "runtimeConfig.portMappings: {k} must be 1 to 65535"
                ))
            })
    };
    Ok(PortMapping {
        host_port: port("hostPort")?,
        container_port: port("containerPort")?,
        protocol: str_field(v, "protocol")?
            .unwrap_or("tcp")
            .to_ascii_lowercase(),
        host_ip: str_field(v, "hostIP")?.unwrap_or_default().to_string(),
    })
}

/// The weft namespace object for a container: `cni-` and the container id with anything
/// outside weft's name rules replaced by `-`; an id too long for 64 bytes is cut and ends
/// with a hash of the whole id, so different ids never share a name.
pub fn namespace_name(container_id: &str) -> String {
    let clean: String = container_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    let name = format!("cni-{clean}");
    if name.len() <= 64 && clean == container_id {
        return name;
    }
    let hash = format!("{:016x}", fnv1a(0, container_id.as_bytes()));
    let keep = 64 - 4 - 1 - hash.len();
    format!("cni-{}-{hash}", &clean[..clean.len().min(keep)])
}

/// FNV-1a (64 bits) of `data`, from a `seed`ed offset basis: two seeds give two independent
/// hashes of the same bytes, which [`request_id`] joins into 128 bits. Stable across Rust
/// releases, which matters: a DEL run by an upgraded plugin must derive the namespace name
/// the ADD did.
fn fnv1a(seed: u64, data: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325_u64 ^ seed;
    for b in data {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The Connect `request_id` of an attachment: a 128-bit hash of the container id, interface,
/// network and the namespace object's uid, so a retried ADD replays the first Connect, and a
/// new life of the container (a new namespace object) makes a new endpoint. `cni-` and 32 hex
/// digits, 36 bytes, well inside weftd's 128-byte limit on request ids.
pub fn request_id(container_id: &str, ifname: &str, network: &str, ns_uid: &str) -> String {
    let data = [container_id, ifname, network, ns_uid].join("\0");
    format!(
        "cni-{:016x}{:016x}",
        fnv1a(0, data.as_bytes()),
        fnv1a(0x9e37_79b9_7f4a_7c15, data.as_bytes())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inv(vars: &[(&str, &str)]) -> Result<Invocation, CniError> {
        let map: BTreeMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Invocation::from_env(|k| map.get(k).cloned())
    }

    #[test]
    fn cni_args_parse_and_refuse_garbage() {
        let a =
            parse_cni_args("IgnoreUnknown=1;K8S_POD_NAME=web-0;IP=10.0.0.5;MAC=02:00:00:00:00:05")
                .unwrap();
        assert_eq!(a["K8S_POD_NAME"], "web-0");
        assert_eq!(a["IP"], "10.0.0.5");
        assert_eq!(a["MAC"], "02:00:00:00:00:05");
        assert!(parse_cni_args("").unwrap().is_empty());
        assert!(parse_cni_args(";;").unwrap().is_empty());
        assert_eq!(parse_cni_args("IP").unwrap_err().code, code::INVALID_ENV);
        assert_eq!(parse_cni_args("=x").unwrap_err().code, code::INVALID_ENV);
    }

    #[test]
    fn env_is_checked_per_command() {
        let add = [
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "abc"),
            ("CNI_NETNS", "/proc/1/ns/net"),
            ("CNI_IFNAME", "eth0"),
        ];
        assert_eq!(inv(&add).unwrap().command, Command::Add);
        assert_eq!(
            inv(&[("CNI_COMMAND", "VERSION")]).unwrap().command,
            Command::Version
        );
        assert_eq!(inv(&[("CNI_COMMAND", "GC")]).unwrap().command, Command::Gc);
        for bad in [
            vec![],
            vec![("CNI_COMMAND", "FROB")],
            vec![
                ("CNI_COMMAND", "ADD"),
                ("CNI_CONTAINERID", "abc"),
                ("CNI_IFNAME", "eth0"),
            ],
            vec![
                ("CNI_COMMAND", "ADD"),
                ("CNI_CONTAINERID", "-x"),
                ("CNI_NETNS", "/n"),
                ("CNI_IFNAME", "eth0"),
            ],
            vec![
                ("CNI_COMMAND", "DEL"),
                ("CNI_CONTAINERID", "abc"),
                ("CNI_IFNAME", "a/b"),
            ],
            vec![
                ("CNI_COMMAND", "DEL"),
                ("CNI_CONTAINERID", "abc"),
                ("CNI_IFNAME", "sixteen-bytes-xx"),
            ],
        ] {
            assert_eq!(inv(&bad).unwrap_err().code, code::INVALID_ENV, "{bad:?}");
        }
        // DEL may come without a namespace (containerd after the container died).
        let del = inv(&[
            ("CNI_COMMAND", "DEL"),
            ("CNI_CONTAINERID", "abc"),
            ("CNI_IFNAME", "eth0"),
        ]);
        assert_eq!(del.unwrap().netns, "");
    }

    #[test]
    fn conf_defaults_capabilities_and_cni_args() {
        let i = inv(&[
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "abc"),
            ("CNI_NETNS", "/n"),
            ("CNI_IFNAME", "eth0"),
            (
                "CNI_ARGS",
                "IgnoreUnknown=1;IP=10.0.0.9;MAC=02:00:00:00:00:09",
            ),
        ])
        .unwrap();
        let c = NetConf::parse(
            br#"{"cniVersion":"1.0.0","name":"web","type":"weft-cni"}"#,
            &i,
        )
        .unwrap();
        assert_eq!(c.network, "web");
        assert_eq!(c.socket, PathBuf::from(crate::DEFAULT_SOCKET));
        assert_eq!(c.ips, vec!["10.0.0.9".parse::<IpAddr>().unwrap()]);
        assert_eq!(c.mac, "02:00:00:00:00:09");
        let c = NetConf::parse(
            br#"{"cniVersion":"1.1.0","name":"web","network":"w2","socket":"/s",
                "runtimeConfig":{"ips":["10.0.0.7/24"],"mac":"02:00:00:00:00:07",
                "portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"TCP"}],
                "aliases":{"web":["db","cache"]}}}"#,
            &i,
        )
        .unwrap();
        assert_eq!(c.network, "w2");
        assert_eq!(c.socket, PathBuf::from("/s"));
        // The capability wins over IP= of CNI_ARGS.
        assert_eq!(c.ips, vec!["10.0.0.7".parse::<IpAddr>().unwrap()]);
        assert_eq!(c.mac, "02:00:00:00:00:07");
        assert_eq!(c.port_mappings[0].protocol, "tcp");
        assert_eq!(c.port_mappings[0].host_port, 8080);
        assert_eq!(c.aliases, vec!["db", "cache"]);
    }

    #[test]
    fn conf_errors_have_their_codes() {
        let i = inv(&[("CNI_COMMAND", "VERSION")]).unwrap();
        assert_eq!(NetConf::parse(b"{nope", &i).unwrap_err().code, code::DECODE);
        assert_eq!(NetConf::parse(b"[]", &i).unwrap_err().code, code::DECODE);
        let e = NetConf::parse(br#"{"cniVersion":"9.9.9","name":"x"}"#, &i).unwrap_err();
        assert_eq!(e.code, code::INCOMPATIBLE_VERSION);
        assert_eq!(
            NetConf::parse(br#"{"cniVersion":"1.0.0"}"#, &i)
                .unwrap_err()
                .code,
            code::INVALID_CONFIG
        );
        let bad_port = br#"{"cniVersion":"1.0.0","name":"x","runtimeConfig":{"portMappings":[{"hostPort":0,"containerPort":80}]}}"#;
        assert_eq!(
            NetConf::parse(bad_port, &i).unwrap_err().code,
            code::INVALID_CONFIG
        );
        let two = br#"{"cniVersion":"1.0.0","name":"x","runtimeConfig":{"ips":["10.0.0.7","10.0.0.8/24"]}}"#;
        assert_eq!(
            NetConf::parse(two, &i).unwrap_err().code,
            code::UNSUPPORTED_FIELD
        );
        let gc = br#"{"cniVersion":"1.1.0","name":"x","cni.dev/attachments":[{"containerID":"c","ifname":"eth0"}]}"#;
        let list = NetConf::parse(gc, &i).unwrap().valid_attachments;
        assert_eq!(list, Some(vec![("c".to_string(), "eth0".to_string())]));
        let none = br#"{"cniVersion":"1.1.0","name":"x"}"#;
        assert_eq!(NetConf::parse(none, &i).unwrap().valid_attachments, None);
    }

    #[test]
    fn namespace_names_follow_weft_rules() {
        assert_eq!(namespace_name("abc123"), "cni-abc123");
        assert_eq!(namespace_name("default-web1"), "cni-default-web1");
        let long = "a".repeat(64);
        let n = namespace_name(&long);
        assert_eq!(n.len(), 64);
        assert_ne!(n, namespace_name(&format!("{}b", "a".repeat(63))));
        let odd = namespace_name("x:y");
        assert!(odd.starts_with("cni-x-y-"), "{odd}");
        assert_ne!(odd, namespace_name("x-y"));
    }

    #[test]
    fn request_ids_are_stable_and_distinct() {
        let a = request_id("c1", "eth0", "web", "u1");
        assert_eq!(a, request_id("c1", "eth0", "web", "u1"));
        assert!(a.len() <= 128);
        assert_ne!(a, request_id("c1", "eth1", "web", "u1"));
        assert_ne!(a, request_id("c1", "eth0", "web", "u2"));
        assert_ne!(a, request_id("c1", "eth0", "db", "u1"));
    }
}
