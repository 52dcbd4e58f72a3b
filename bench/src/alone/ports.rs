//! Published ports at 10 and 10,000 mappings: the cost of one more Connect with a port (fixed
//! or picked by weftd) and of one kernel map element, with few and with many present (issue
//! 12's target: the add at 10,000 within 1.2x of the add at 10). Split from `alone` for size.

use super::*;

/// The result of [`ports`].
#[derive(Debug, Default)]
pub struct Ports {
    /// Mappings present in the small case.
    pub small: usize,
    /// Mappings present in the large case.
    pub large: usize,
    /// weft: Connect with one published port, at `small` mappings.
    pub weft_port_small: Samples,
    /// ... at `large` mappings.
    pub weft_port_large: Samples,
    /// weft: Connect with one published port whose host port is left out (weftd picks it from
    /// [`EPHEMERAL_RANGE`], which holds the existing mappings), at `small` mappings.
    pub weft_eph_small: Samples,
    /// ... at `large` mappings.
    pub weft_eph_large: Samples,
    /// weft: Connect without ports, at `small` mappings (to isolate the port's cost).
    pub weft_plain_small: Samples,
    /// ... at `large` mappings.
    pub weft_plain_large: Samples,
    /// weft: the one Connect that publishes `large - small` ports at once.
    pub weft_bulk: Duration,
    /// Port mappings in weft's maps at the large point (read back from the kernel).
    pub kernel_count: usize,
    /// Kernel layer alone: add one mapping at `small` mappings.
    pub fw_small: Samples,
    /// ... at `large` mappings.
    pub fw_large: Samples,
}

/// The scratch hosts' `ip_local_port_range` in the port benchmark: it holds the existing
/// mappings (20000 on), so a picked port is chosen among them, not beside them.
pub const EPHEMERAL_RANGE: (u16, u16) = (20_000, 60_999);

/// Host ports `from..=to` mapped pairwise onto container ports from `container` on.
fn range(from: u16, to: u16, container: u16) -> PublishedPort {
    PublishedPort {
        host_port: from.into(),
        host_port_end: if to > from { to.into() } else { 0 },
        container_port: container.into(),
        container_port_end: if to > from {
            u32::from(container) + u32::from(to - from)
        } else {
            0
        },
        protocol: "tcp".into(),
        ..Default::default()
    }
}

/// A published-port add at `small` vs `large` existing mappings, both sizes side by side and
/// interleaved sample by sample, so machine noise hits both alike:
/// - end to end: two fresh weftds (scratch hosts `h-ports10`, `h-ports10k`), each with network
///   `ports` and one endpoint publishing `small` resp. `large` ports; a sample is a Connect of
///   a new namespace with one published port, and one without ports for comparison (each
///   disconnected again, so the counts stay put; the next round starts once both hosts are
///   back to their interfaces before it, since a reaper's veth delete holds the kernel's RTNL
///   lock, shared by every namespace, for a grace period, and a Connect meeting one waited
///   10-30 ms whatever its ports);
/// - the kernel layer alone: two scratch hosts with weft's tables, `small` resp. `large`
///   elements; a sample is [`Kernel::add_port_mappings`] of one element (removed again).
pub async fn ports(
    run: &Run,
    weftd_bin: &std::path::Path,
    small: usize,
    large: usize,
    samples: usize,
) -> Result<Ports> {
    ensure!(
        (1..large).contains(&small) && large <= 30_000,
        "need 1 <= small < large <= 30,000"
    );
    let mut out = Ports {
        small,
        large,
        ..Default::default()
    };
    // Host ports 20000.. in ranges of at most 1,000.
    let ranges = |count: usize| -> Vec<PublishedPort> {
        let mut v = Vec::new();
        let mut p = 20_000;
        while p < 20_000 + count {
            let end = (p + 999).min(20_000 + count - 1);
            v.push(range(p as u16, end as u16, p as u16));
            p = end + 1;
        }
        v
    };
    let mut daemons = Vec::new();
    let mut hosts = Vec::new();
    for (tag, count) in [("ports10", small), ("ports10k", large)] {
        let host = run.scratch_ns(&format!("h-{tag}"))?;
        Kernel::new(Some(host.clone()), run.subdir(&format!("{tag}-sysctl"))?)?
            .ensure_sysctl(
                &NsRef::Host,
                "net/ipv4/ip_local_port_range",
                &format!("{}\t{}", EPHEMERAL_RANGE.0, EPHEMERAL_RANGE.1),
            )
            .await?;
        let mut w = Weftd::new(weftd_bin, &host, run.subdir(tag)?)?;
        w.start().await?;
        let c = w.client()?;
        methods::create_network(&c, "ports", "wbp", "10.212.0.0/16".parse()?).await?;
        methods::create_namespace(&c, "pbase").await?;
        for s in 0..samples {
            for prefix in ["pa", "pn", "pe"] {
                methods::create_namespace(&c, &format!("{prefix}{s}")).await?;
            }
        }
        let t = Instant::now();
        methods::connect(&c, "ports", "pbase", ranges(count)).await?;
        if count == large {
            out.weft_bulk = t.elapsed();
            let reader = Kernel::new(Some(host.clone()), run.subdir("ports-reader")?)?;
            out.kernel_count = reader.list_port_mappings().await?.len();
        }
        daemons.push((w, c));
        hosts.push(Kernel::new(
            Some(host.clone()),
            run.subdir(&format!("{tag}-reader"))?,
        )?);
    }
    // Let the bulk connect's echoes and the first element checks pass.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut settled = Vec::new();
    for h in &hosts {
        settled.push(h.list_links(&NsRef::Host).await?.len());
    }
    for s in 0..samples {
        check_stop()?;
        let port = vec![range(40_000 + s as u16, 40_000 + s as u16, 80)];
        let left_out = vec![PublishedPort {
            container_port: 80,
            protocol: "tcp".into(),
            ..Default::default()
        }];
        let (pa, pn, pe) = (format!("pa{s}"), format!("pn{s}"), format!("pe{s}"));
        // Rotate which daemon and which kind of call goes first: 0 a fixed port, 1 none,
        // 2 a port left out.
        for k in 0..6 {
            let which = (s + k) % 6;
            let (d, kind) = (which / 3, which % 3);
            let c = &daemons[d].1;
            let t = Instant::now();
            let (ns, ports) = match kind {
                0 => (&pa, port.clone()),
                1 => (&pn, Vec::new()),
                _ => (&pe, left_out.clone()),
            };
            methods::connect(c, "ports", ns, ports).await?;
            let e = t.elapsed();
            match (d, kind) {
                (0, 0) => out.weft_port_small.push(e),
                (0, 1) => out.weft_plain_small.push(e),
                (0, _) => out.weft_eph_small.push(e),
                (_, 0) => out.weft_port_large.push(e),
                (_, 1) => out.weft_plain_large.push(e),
                (_, _) => out.weft_eph_large.push(e),
            }
        }
        for (_, c) in &daemons {
            for ns in [&pa, &pn, &pe] {
                methods::disconnect(c, "ports", ns).await?;
            }
        }
        // The retired veths gone (untimed) before the next round.
        for (h, want) in hosts.iter().zip(&settled) {
            let t = Instant::now();
            while h.list_links(&NsRef::Host).await?.len() > *want {
                ensure!(
                    t.elapsed() < Duration::from_secs(10),
                    "retired veths still in a scratch host after 10 s"
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }
    for (w, _) in &mut daemons {
        w.check_alive()?;
    }
    drop(daemons);

    // The kernel layer alone.
    let mapping = |port: usize| PortMapping {
        host_ip: None,
        proto: Proto::Tcp,
        host_port: port as u16,
        dest: IpAddr::V4(Ipv4Addr::new(10, 213, (port >> 8) as u8, port as u8)),
        dest_port: 80,
    };
    let mut kernels = Vec::new();
    for (tag, count) in [("fw10", small), ("fw10k", large)] {
        let host = run.scratch_ns(&format!("h-{tag}"))?;
        let k = Kernel::new(Some(host), run.subdir(tag)?)?;
        k.sync_firewall(&[FirewallNetwork {
            bridge: "wbf".into(),
            subnets: vec!["10.213.0.0/16".parse()?],
            internal: false,
            icc: true,
            masquerade: true,
            dns_servers: Vec::new(),
        }])
        .await?;
        let bulk: Vec<PortMapping> = (20_000..20_000 + count).map(mapping).collect();
        k.add_port_mappings(&bulk).await?;
        kernels.push(k);
    }
    for s in 0..samples.max(20) {
        check_stop()?;
        for j in 0..2 {
            let which = (s + j) % 2;
            let k = &kernels[which];
            let m = [mapping(40_000 + s)];
            let t = Instant::now();
            k.add_port_mappings(&m).await?;
            let e = t.elapsed();
            k.del_port_mappings(&m).await?;
            if which == 0 {
                out.fw_small.push(e);
            } else {
                out.fw_large.push(e);
            }
        }
    }
    Ok(out)
}

impl Ports {
    /// The table.
    pub fn table(&self) -> Table {
        let mut t = Table::new([
            "what",
            &format!("p50 ms at {}", self.small),
            &format!("p50 ms at {}", self.large),
            "ratio",
        ]);
        t.row([
            "weft: Connect with one published port".into(),
            ms(self.weft_port_small.p50()),
            ms(self.weft_port_large.p50()),
            ratio(self.weft_port_large.p50(), self.weft_port_small.p50()),
        ]);
        t.row([
            format!(
                "weft: Connect with one port, host port left out (picked in {}-{})",
                EPHEMERAL_RANGE.0, EPHEMERAL_RANGE.1
            ),
            ms(self.weft_eph_small.p50()),
            ms(self.weft_eph_large.p50()),
            ratio(self.weft_eph_large.p50(), self.weft_eph_small.p50()),
        ]);
        t.row([
            "weft: Connect without ports (same state)".into(),
            ms(self.weft_plain_small.p50()),
            ms(self.weft_plain_large.p50()),
            ratio(self.weft_plain_large.p50(), self.weft_plain_small.p50()),
        ]);
        t.row([
            "kernel layer: add_port_mappings of one element".into(),
            ms(self.fw_small.p50()),
            ms(self.fw_large.p50()),
            ratio(self.fw_large.p50(), self.fw_small.p50()),
        ]);
        t.row([
            format!(
                "weft: one Connect publishing {} ports (once; {} mappings then in the kernel)",
                self.large - self.small,
                self.kernel_count
            ),
            String::new(),
            ms(self.weft_bulk),
            String::new(),
        ]);
        t
    }
}
