//! Concurrent disconnects (issue 14, item 6): the endpoints [`super::concurrent`] made,
//! disconnected from several clients at once (each its own connection), against the floor's
//! serial disconnects of as many endpoints; and a mass disconnect's veths: the time from the
//! first Disconnect until the scratch host's `/proc/net/dev` lists none of those endpoints'
//! host ends and the last delete has let RTNL go (weft answers a Disconnect when the endpoint
//! is cut off; its reaper deletes the veths in batches afterwards).

use std::{
    collections::HashSet,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, anyhow};
use weft::v1::GetNetworkRequest;

use super::{Concurrent, Daemon};
use crate::{
    methods,
    sandbox::{DevList, check_stop, poll_pause, rtnl_passed},
    stats::{Samples, Table, ms, secs},
};

/// How long the veth poll waits for the host ends to go before it gives up.
const VETH_DEADLINE: Duration = Duration::from_secs(20);

/// The result of [`disconnects`].
#[derive(Debug, Default)]
pub struct Disconnects {
    /// Disconnects in all.
    pub n: usize,
    /// Concurrent clients.
    pub clients: usize,
    /// Wall time of the concurrent disconnects.
    pub wall: Duration,
    /// Each disconnect's latency.
    pub lat: Samples,
    /// CPU weftd used meanwhile.
    pub cpu: Duration,
    /// From the first Disconnect until no host end of those endpoints was listed (None: some
    /// were still there after [`VETH_DEADLINE`]).
    pub veths_gone: Option<Duration>,
    /// The same, from the last Disconnect's answer.
    pub veths_after_last: Option<Duration>,
    /// Host ends still listed at the deadline.
    pub veths_left: usize,
}

/// How many of `names` `devs` (the scratch host's `/proc/net/dev`) lists.
fn listed(devs: &DevList, names: &HashSet<String>) -> Result<usize> {
    Ok(devs.names()?.iter().filter(|n| names.contains(*n)).count())
}

/// Disconnects every endpoint of network `conc` (`c0`..) from `clients` concurrent clients
/// and then polls the host until their veths are gone.
pub async fn disconnects(d: &mut Daemon, clients: usize) -> Result<Disconnects> {
    let n = d.endpoints;
    let c = d.weftd.client()?;
    let net = c
        .networks()
        .get_network(GetNetworkRequest {
            name: "conc".into(),
        })
        .await?
        .into_inner()
        .network
        .ok_or_else(|| anyhow!("GetNetwork conc answered no network"))?;
    let names: HashSet<String> = net
        .endpoints
        .iter()
        .filter(|e| e.namespace.starts_with('c'))
        .map(|e| e.host_interface_name.clone())
        .collect();
    let devs = DevList::open(d.weftd.host_ns())?;
    let netns_dir = tempfile::tempdir().context("a temp dir for the RTNL probe")?;
    let rtnl = weftd::kernel::Kernel::new(
        Some(d.weftd.host_ns().to_path_buf()),
        netns_dir.path().to_path_buf(),
    )?;
    let mut conns = Vec::new();
    for _ in 0..clients {
        conns.push(d.weftd.new_client().await?);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let cpu0 = d.weftd.cpu()?;
    let t0 = Instant::now();
    let mut out = Disconnects {
        n,
        clients,
        lat: from_clients(conns, n, false).await?,
        ..Default::default()
    };
    out.wall = t0.elapsed();
    out.cpu = d.weftd.cpu()?.saturating_sub(cpu0);
    // The poll starts once the last Disconnect has answered: its veth is retired before
    // that answer, so none can be gone earlier, and `ip -j link` of 1,000 veths every 10 ms
    // during the calls took a sixth of the two cores from the daemon being timed. It reads
    // `/proc/net/dev` (no process, no RTNL), not `ip -j link`, whose dump holds RTNL, which
    // the reaper's deletes need; once it lists none, one request waits for RTNL, so the
    // last delete is finished, not just begun. At 1,000 the two polls timed the same
    // (BENCHMARKS.md, session 35); this one costs the machine less.
    let (gone, left) = loop {
        let read = Instant::now();
        if listed(&devs, &names)? == 0 {
            // Unlisted when its delete starts; gone once that delete lets RTNL go.
            rtnl_passed(&rtnl).await?;
            break (Some(t0.elapsed()), 0);
        }
        if t0.elapsed() > VETH_DEADLINE {
            break (None, listed(&devs, &names)?);
        }
        tokio::time::sleep(poll_pause(read.elapsed())).await;
    };
    out.veths_gone = gone;
    out.veths_after_last = gone.map(|g| g.saturating_sub(out.wall));
    out.veths_left = left;
    d.endpoints = 0;
    d.weftd.check_alive()?;
    Ok(out)
}

/// Connects (or with `connect` false, disconnects) namespaces `c0`..`c{n-1}` to network
/// `conc` from one task per client in `conns`, client j taking i = j, j + k, ...; returns
/// each call's latency.
pub(crate) async fn from_clients(
    conns: Vec<weft::Client>,
    n: usize,
    connect: bool,
) -> Result<Samples> {
    let k = conns.len();
    let mut tasks = tokio::task::JoinSet::new();
    for (j, client) in conns.into_iter().enumerate() {
        tasks.spawn(async move {
            let mut lat = Vec::new();
            for i in (j..n).step_by(k) {
                check_stop()?;
                let ns = format!("c{i}");
                let t = Instant::now();
                if connect {
                    methods::connect(&client, "conc", &ns, Vec::new()).await?;
                } else {
                    methods::disconnect(&client, "conc", &ns).await?;
                }
                lat.push(t.elapsed());
            }
            Ok::<_, anyhow::Error>(lat)
        });
    }
    Samples::gather(tasks, "a client").await
}

impl Disconnects {
    /// The table, with the floor's serial disconnects and connects from `conc`.
    pub fn table(&self, conc: &Concurrent) -> Table {
        let per = |d: Duration, n: usize| ms(d / n.max(1) as u32);
        let mut t = Table::new([
            "what",
            "wall s",
            "per call p50 ms",
            "p99 ms",
            "CPU ms per call",
        ]);
        t.row([
            format!(
                "weft, {} disconnects from {} concurrent clients",
                self.n, self.clients
            ),
            secs(self.wall),
            ms(self.lat.p50()),
            ms(self.lat.p99()),
            format!("{} weftd", per(self.cpu, self.n)),
        ]);
        t.row([
            format!(
                "floor, {} serial disconnects in-process",
                conc.floor_disc.len()
            ),
            secs(conc.floor_disc_wall),
            ms(conc.floor_disc.p50()),
            ms(conc.floor_disc.p99()),
            "–".into(),
        ]);
        t.row([
            format!(
                "floor, {} disconnects from {} concurrent in-process tasks",
                conc.floor_conc_disc.len(),
                conc.clients
            ),
            secs(conc.floor_conc_disc_wall),
            ms(conc.floor_conc_disc.p50()),
            ms(conc.floor_conc_disc.p99()),
            "–".into(),
        ]);
        t.row([
            format!("floor, {} serial connects in-process", conc.n),
            secs(conc.floor_wall),
            ms(conc.floor.p50()),
            ms(conc.floor.p99()),
            per(conc.floor_cpu, conc.n),
        ]);
        t.row([
            format!(
                "first Disconnect -> none of the {} host veths listed (`/proc/net/dev`, polled after the last answer)",
                self.n
            ),
            self.veths_gone
                .map(secs)
                .unwrap_or_else(|| format!("> {} ({} left)", secs(VETH_DEADLINE), self.veths_left)),
            String::new(),
            String::new(),
            String::new(),
        ]);
        t.row([
            "of which after the last Disconnect's answer".to_string(),
            self.veths_after_last.map(secs).unwrap_or_default(),
            String::new(),
            String::new(),
            String::new(),
        ]);
        t
    }
}
