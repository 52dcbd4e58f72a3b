//! The peers' side of the DNS benchmark: aardvark-dns's configuration and process, and
//! dnsperf's output.

use std::{fmt::Write as _, fs, net::Ipv4Addr, path::Path, process::Command, time::Duration};

use anyhow::{Context, Result, bail, ensure};
use nix::{
    sys::signal::{Signal, kill},
    unistd::Pid,
};

use super::Record;
use crate::stats::Samples;

/// aardvark-dns's configuration file for one network (its name is the file's name), as
/// netavark writes it: the listen address(es) and optionally the network's upstream servers on
/// the first line, then a line per container `id ipv4s ipv6s names` (comma-separated lists,
/// an empty field for none, names = the container's name then its aliases).
pub fn aardvark_config(listen: &[Ipv4Addr], upstreams: &[Ipv4Addr], records: &[Record]) -> String {
    let join = |v: &[Ipv4Addr]| {
        v.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",")
    };
    let mut s = join(listen);
    if !upstreams.is_empty() {
        s.push(' ');
        s.push_str(&join(upstreams));
    }
    s.push('\n');
    for (i, r) in records.iter().enumerate() {
        let names = std::iter::once(r.name.as_str())
            .chain(r.aliases.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(",");
        let _ = writeln!(s, "{:064x} {}  {names}", i + 1, r.addr);
    }
    s
}

/// What one dnsperf run reported.
#[derive(Clone, Debug, Default)]
pub struct Dnsperf {
    /// Queries sent.
    pub sent: u64,
    /// Queries answered.
    pub completed: u64,
    /// Queries lost (timed out).
    pub lost: u64,
    /// Answers per response code, as dnsperf lists them (`NOERROR`, `NXDOMAIN`, ...).
    pub rcodes: Vec<(String, u64)>,
    /// dnsperf's "Queries per second".
    pub qps: f64,
    /// dnsperf's average latency.
    pub avg: Duration,
    /// The latency of every answer (`-v`).
    pub latency: Samples,
}

impl Dnsperf {
    /// The number of answers with `rcode`.
    pub fn rcode(&self, rcode: &str) -> u64 {
        self.rcodes
            .iter()
            .find(|(c, _)| c == rcode)
            .map_or(0, |(_, n)| *n)
    }
}

/// Parses dnsperf's output: its statistics block and, with `-v`, a line per answer
/// `> RCODE name type seconds` (a lost query is `> T name type`, with no latency).
pub fn parse_dnsperf(out: &str) -> Result<Dnsperf> {
    let mut d = Dnsperf::default();
    let first_num = |v: &str| -> Result<f64> {
        let t = v.split_whitespace().next().unwrap_or_default();
        t.parse::<f64>()
            .with_context(|| format!("dnsperf: not a number: {v:?}"))
    };
    let mut seen_qps = false;
    for line in out.lines() {
        if let Some(rest) = line.strip_prefix("> ") {
            let f: Vec<&str> = rest.split_whitespace().collect();
            if f.len() >= 4
                && f[0] != "T"
                && let Ok(secs) = f[f.len() - 1].parse::<f64>()
            {
                d.latency.push(Duration::from_secs_f64(secs.max(0.0)));
            }
            continue;
        }
        let Some((key, value)) = line.trim().split_once(':') else {
            continue;
        };
        let value = value.trim();
        match key {
            "Queries sent" => d.sent = first_num(value)? as u64,
            "Queries completed" => d.completed = first_num(value)? as u64,
            "Queries lost" => d.lost = first_num(value)? as u64,
            "Queries per second" => {
                d.qps = first_num(value)?;
                seen_qps = true;
            }
            "Average Latency (s)" => d.avg = Duration::from_secs_f64(first_num(value)?.max(0.0)),
            "Response codes" => {
                // "NOERROR 5 (50.00%), NXDOMAIN 5 (50.00%)"
                for part in value.split(',') {
                    let f: Vec<&str> = part.split_whitespace().collect();
                    if let [code, n, ..] = f[..] {
                        d.rcodes.push((code.to_string(), n.parse().unwrap_or(0)));
                    }
                }
            }
            _ => {}
        }
    }
    ensure!(
        seen_qps,
        "dnsperf printed no statistics; its output:\n{}",
        tail(out, 15)
    );
    Ok(d)
}

/// The last `n` lines of `s`.
fn tail(s: &str, n: usize) -> String {
    let all: Vec<&str> = s.lines().collect();
    all[all.len().saturating_sub(n)..].join("\n")
}

/// An aardvark-dns (1.4's `run` forks: the server is a daemon whose pid is in
/// `<config>/aardvark.pid`), killed when dropped. `weft-bench cleanup` kills those of a dead
/// run (their command line names the run's temp dir).
pub struct Aardvark {
    pid: Option<i32>,
}

impl Aardvark {
    /// Starts `bin --config <config> -p 53 run` in the network namespace `net_ns`, inside a
    /// private mount namespace whose `/etc/resolv.conf` is `resolv` (so its upstreams are the
    /// bench's, never the host's). Returns once the daemon has written its pid.
    pub fn start(bin: &Path, net_ns: &Path, config: &Path, resolv: &Path) -> Result<Self> {
        let out = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "--", "sh", "-c"])
            .arg(
                "mount --bind \"$1\" /etc/resolv.conf && \
                 exec nsenter --net=\"$2\" \"$3\" --config \"$4\" -p 53 run",
            )
            .arg("sh")
            .arg(resolv)
            .arg(net_ns)
            .arg(bin)
            .arg(config)
            .stdin(std::process::Stdio::null())
            .output()
            .context("run unshare (util-linux) for aardvark-dns")?;
        let pid_file = config.join("aardvark.pid");
        let pid = fs::read_to_string(&pid_file)
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok());
        if !out.status.success() || pid.is_none() {
            if let Some(p) = pid {
                let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
            }
            bail!(
                "aardvark-dns did not start ({}): {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout).trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(Self { pid })
    }

    /// Its process id.
    pub fn pid(&self) -> Option<i32> {
        self.pid
    }
}

impl Drop for Aardvark {
    fn drop(&mut self) {
        if let Some(p) = self.pid.take() {
            let pid = Pid::from_raw(p);
            let _ = kill(pid, Signal::SIGTERM);
            for _ in 0..100 {
                if kill(pid, None).is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = kill(pid, Signal::SIGKILL);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::rec;

    #[test]
    fn aardvark_config_is_netavarks_format() {
        let gw: Ipv4Addr = "10.212.0.1".parse().expect("gw");
        let recs = [
            rec("d0", &["svc0"], "10.212.0.2"),
            rec("d1", &["api"], "10.212.0.3"),
        ];
        let s = aardvark_config(&[gw], &[], &recs);
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0], "10.212.0.1");
        // id, ipv4s, (empty) ipv6s, names: four space-separated fields, as aardvark splits.
        let f: Vec<&str> = lines[1].split(' ').collect();
        assert_eq!(f.len(), 4);
        assert_eq!(f[0].len(), 64);
        assert_eq!(&f[1..], ["10.212.0.2", "", "d0,svc0"]);
        assert!(lines[2].ends_with(" 10.212.0.3  d1,api"));
        assert_ne!(lines[1].split(' ').next(), lines[2].split(' ').next());
        let up: Ipv4Addr = "10.212.0.254".parse().expect("up");
        let s = aardvark_config(&[gw], &[up], &recs[..1]);
        assert!(s.starts_with("10.212.0.1 10.212.0.254\n"));
    }

    const VERBOSE: &str = "DNS Performance Testing Tool
Version 2.10.0

[Status] Command line: dnsperf -s 10.212.0.1 -d /tmp/q -l 2 -v
[Status] Sending queries (to 10.212.0.1:53)
> NOERROR d1 A 0.001308
> NOERROR d1 A 0.000100
> T d1 A
> NXDOMAIN nope A 0.002000
[Status] Testing complete (time limit)

Statistics:

  Queries sent:         4
  Queries completed:    3 (75.00%)
  Queries lost:         1 (25.00%)

  Response codes:       NOERROR 2 (66.67%), NXDOMAIN 1 (33.33%)
  Average packet size:  request 20, response 36
  Run time (s):         2.000091
  Queries per second:   59776.280179

  Average Latency (s):  0.001520 (min 0.000012, max 0.020581)
  Latency StdDev (s):   0.000960

";

    #[test]
    fn parses_dnsperf() {
        let d = parse_dnsperf(VERBOSE).expect("parse");
        assert_eq!((d.sent, d.completed, d.lost), (4, 3, 1));
        assert_eq!(d.rcode("NOERROR"), 2);
        assert_eq!(d.rcode("NXDOMAIN"), 1);
        assert_eq!(d.rcode("SERVFAIL"), 0);
        assert!((d.qps - 59776.28).abs() < 0.01);
        assert_eq!(d.avg, Duration::from_micros(1520));
        assert_eq!(d.latency.len(), 3);
        assert_eq!(d.latency.p50(), Duration::from_micros(1308));
        assert_eq!(d.latency.max(), Duration::from_millis(2));
        // Without -v: the statistics, no latencies.
        let quiet: String = VERBOSE
            .lines()
            .filter(|l| !l.starts_with("> "))
            .map(|l| format!("{l}\n"))
            .collect();
        let d = parse_dnsperf(&quiet).expect("parse");
        assert!(d.latency.is_empty());
        assert_eq!(d.completed, 3);
        // No statistics (dnsperf failed): an error carrying its output.
        let e = parse_dnsperf("Error: invalid server").expect_err("no stats");
        assert!(format!("{e:#}").contains("invalid server"));
    }
}
