//! Dry runs: the controller's `plan_*` methods over the fake kernel list the changes a real
//! call would make, in its order, and make no kernel write (the rows come from store calls
//! with `dry_run`, so nothing is stored either).
//!
//! Plans are compared as "action kind target" lines, as the API shows them (`veth1 in
//! namespace "ns1"`, `br0 in the host namespace`); details are checked where they carry the
//! point (the mark, the MTU, the master). Each test also checks that the kernel's write count
//! did not move and that the object did not appear in the kernel or the store.
//!
//! A plan is computed by the same converge code as a real reconcile, run against a `DryRun`
//! kernel that passes reads through to the fake and records each write as a planned change
//! instead of making it; that is why a plan lists the steps in the real order and why
//! planning what is already there plans nothing. What is not a kernel write of the converge
//! code (a lease, the ruleset as a whole, the forwarding sysctls) is added to the plan by
//! reconcile/dryrun.rs in the order a real call makes it. Rows for a new object come from
//! the store's create calls with `dry_run = true`: the transaction is rolled back, so the
//! row (id, leases) is what a real call would record, and nothing is kept.

use super::{H, connect_spec, net_spec, ns_spec, rich_veth, tcp};
use crate::{
    kernel::{KernelOps, NetnsOps, NsRef},
    model::{LinkKind, PlannedChange},
};

/// "action kind target" of each planned change: the part a test can compare exactly (the
/// detail text is free-form, so tests look into it only where it carries the point).
fn lines(plan: &[PlannedChange]) -> Vec<String> {
    plan.iter()
        .map(|c| format!("{} {} {}", c.action, c.kind, c.target))
        .collect()
}

/// A dry-run create names the bind mount and the loopback change; the kernel and store stay
/// untouched.
#[tokio::test]
async fn plan_for_a_new_namespace_lists_the_file_and_its_loopback_and_writes_nothing() {
    let h = H::new().await;
    let row = h
        .store()
        .create_namespace(&ns_spec("ns1"), None, true)
        .await
        .unwrap();
    let plan = h.ctl.plan_namespace(&row).await;
    let file = h.ns_path("ns1").display().to_string();
    assert_eq!(
        lines(&plan),
        vec![
            format!("create namespace {file}"),
            "set link lo in namespace \"ns1\"".to_string()
        ]
    );
    assert_eq!(h.k.writes(), 0);
    assert!(!h.k.is_netns(&h.ns_path("ns1")));
    assert!(h.store().namespace_by_name("ns1").await.unwrap().is_none());
}

/// Planning what is already there plans nothing; a delete plans one unmount.
#[tokio::test]
async fn plan_for_an_existing_namespace_is_empty_and_its_removal_is_one_delete() {
    let h = H::new().await;
    let id = h.namespace("ns1").await;
    let row = h.store().namespace_by_id(&id).await.unwrap().unwrap();
    let writes = h.k.writes();
    assert!(h.ctl.plan_namespace(&row).await.is_empty());
    let removal = h.ctl.plan_namespace_removal(&row);
    assert_eq!(
        lines(&removal),
        vec![format!("delete namespace {}", h.ns_path("ns1").display())]
    );
    assert_eq!(h.k.writes(), writes);
    assert!(h.k.is_netns(&h.ns_path("ns1")));
}

/// An adopted namespace is never deleted, and the plan says so.
#[tokio::test]
async fn plan_for_removing_an_adopted_namespace_only_forgets_it() {
    let h = H::new().await;
    let mut spec = ns_spec("runtime");
    spec.adopted_path = Some("/proc/77/ns/net".into());
    let row = h.store().create_namespace(&spec, None, true).await.unwrap();
    let plan = h.ctl.plan_namespace_removal(&row);
    assert_eq!(lines(&plan), vec!["remove namespace /proc/77/ns/net"]);
    assert!(
        plan[0].detail.contains("never deleted"),
        "{}",
        plan[0].detail
    );
}

/// A dry-run link create runs the real converge code: same steps, same order, no writes.
/// The `set link` lines after the create are the mark, MTU and up flag of each end, which
/// the real call sets in a second request on the interface it just made.
#[tokio::test]
async fn plan_for_a_new_veth_lists_create_marks_address_and_route_and_writes_nothing() {
    let h = H::new().await;
    h.namespace("ns1").await;
    let row = h
        .store()
        .create_link(&rich_veth(), None, true)
        .await
        .unwrap();
    let writes = h.k.writes();
    let plan = h.ctl.plan_link(&row.id, &row.spec).await.unwrap();
    assert_eq!(
        lines(&plan),
        vec![
            "create link vh1 in the host namespace",
            "set link vh1 in the host namespace",
            "set link vi1 in namespace \"ns1\"",
            "add address 10.9.0.2/24 on vi1 in namespace \"ns1\"",
            "add route 10.10.0.0/16 via 10.9.0.1 on vi1 in namespace \"ns1\"",
        ]
    );
    assert_eq!(plan[0].detail, "veth, peer vi1 in namespace \"ns1\"");
    assert!(plan[1].detail.contains("mtu 1400"), "{}", plan[1].detail);
    assert!(
        plan[1].detail.contains(&format!("alias weft:{}", row.id)),
        "{}",
        plan[1].detail
    );
    assert_eq!(h.k.writes(), writes);
    assert!(h.k.link(&NsRef::Host, "vh1").is_none());
    assert!(h.store().link_by_id(&row.id).await.unwrap().is_none());
}

/// An update plans the diff against the kernel, not a rebuild. The lines are sorted before
/// comparing: the order among one end's address and route changes is not the point here.
#[tokio::test]
async fn plan_for_a_converged_link_is_empty_and_an_update_plans_only_the_difference() {
    let h = H::new().await;
    h.namespace("ns1").await;
    let id = h.link(&rich_veth()).await;
    let writes = h.k.writes();
    assert!(h.ctl.plan_link(&id, &rich_veth()).await.unwrap().is_empty());
    let mut spec = rich_veth();
    if let LinkKind::Veth { peer } = &mut spec.kind {
        peer.mtu = 9000;
        peer.addresses = vec![super::net("10.9.0.3/24")];
        peer.routes.clear();
    }
    let plan = h.ctl.plan_link(&id, &spec).await.unwrap();
    let mut got = lines(&plan);
    got.sort();
    assert_eq!(
        got,
        vec![
            "add address 10.9.0.3/24 on vi1 in namespace \"ns1\"",
            "remove address 10.9.0.2/24 on vi1 in namespace \"ns1\"",
            "remove route 10.10.0.0/16 via 10.9.0.1 on vi1 in namespace \"ns1\"",
            "set link vi1 in namespace \"ns1\"",
        ]
    );
    assert_eq!(h.k.writes(), writes);
    assert_eq!(h.k.link(&h.ns("ns1"), "vi1").unwrap().mtu, 1400);
}

/// A veth's peer goes with it, so its removal is planned as one delete.
#[tokio::test]
async fn plan_for_removing_a_veth_is_one_delete_and_writes_nothing() {
    let h = H::new().await;
    h.namespace("ns1").await;
    let id = h.link(&rich_veth()).await;
    let writes = h.k.writes();
    let plan = h.ctl.plan_link_removal(&id, &rich_veth()).await.unwrap();
    assert_eq!(lines(&plan), vec!["delete link vh1 in the host namespace"]);
    assert_eq!(h.k.writes(), writes);
    assert!(h.k.link(&NsRef::Host, "vh1").is_some());
}

/// A dry run refuses an unmarked interface exactly as the real call would: the same
/// permanent error and message, so a dry run reports the refusal the real call would meet.
#[tokio::test]
async fn plan_for_a_name_held_by_a_foreign_interface_is_refused() {
    let h = H::new().await;
    h.namespace("ns1").await;
    h.k.add_foreign_link(&NsRef::Host, "vh1", "veth");
    let row = h
        .store()
        .create_link(&rich_veth(), None, true)
        .await
        .unwrap();
    let writes = h.k.writes();
    let err = h.ctl.plan_link(&row.id, &row.spec).await.unwrap_err();
    assert!(!err.is_transient());
    assert!(err.to_string().contains("not owned by weft"), "{err}");
    assert_eq!(h.k.writes(), writes);
    assert_eq!(h.k.link(&NsRef::Host, "vh1").unwrap().alias, None);
}

/// A dry-run network lists the bridge, each gateway, the ruleset and the forwarding sysctls.
#[tokio::test]
async fn plan_for_a_new_network_lists_bridge_gateways_rules_and_forwarding() {
    let h = H::new().await;
    let spec = net_spec("web", "br-web", &["10.88.0.0/24", "fd00:1::/64"]);
    let row = h
        .store()
        .create_network(&spec, &Default::default(), false, None, true)
        .await
        .unwrap();
    let plan = h.ctl.plan_network(&row).await.unwrap();
    let got = lines(&plan);
    assert_eq!(got[0], "create link br-web in the host namespace");
    assert_eq!(got[1], "set link br-web in the host namespace");
    let mut addrs = got[2..4].to_vec();
    addrs.sort();
    assert_eq!(
        addrs,
        vec![
            "add address 10.88.0.1/24 on br-web in the host namespace",
            "add address fd00:1::1/64 on br-web in the host namespace",
        ]
    );
    assert_eq!(
        got[4..],
        [
            "set sysctl net.ipv4.conf.br-web.route_localnet",
            "set firewall tables inet weft, bridge weft",
            "set sysctl net.ipv4.ip_forward",
            "set sysctl net.ipv6.conf.all.forwarding",
        ]
    );
    assert!(plan[5].detail.contains("br-web"), "{}", plan[5].detail);
    assert_eq!(h.k.writes(), 0);
    assert!(h.k.firewall().is_none());
}

/// The real network reconcile also turns on `route_localnet` for the bridge (published
/// ports answer on 127/8); a dry run should say so.
#[tokio::test]
async fn plan_for_a_new_network_lists_every_sysctl_the_real_call_sets() {
    let h = H::new().await;
    let spec = net_spec("web", "br-web", &["10.88.0.0/24"]);
    let row = h
        .store()
        .create_network(&spec, &Default::default(), false, None, true)
        .await
        .unwrap();
    let plan = h.ctl.plan_network(&row).await.unwrap();
    assert!(
        lines(&plan).iter().any(|l| l.contains("route_localnet")),
        "{:?}",
        lines(&plan)
    );
}

/// Network teardown is planned firewall first, then the bridge.
#[tokio::test]
async fn plan_for_removing_a_network_lists_its_rules_then_its_bridge() {
    let h = H::new().await;
    let id = h.network("web", "br-web", &["10.88.0.0/24"]).await;
    let row = h.store().network_by_id(&id).await.unwrap().unwrap();
    let writes = h.k.writes();
    let plan = h.ctl.plan_network_removal(&row).await.unwrap();
    assert_eq!(
        lines(&plan),
        vec![
            "set firewall tables inet weft, bridge weft",
            "delete link br-web in the host namespace",
        ]
    );
    assert_eq!(h.k.writes(), writes);
    assert!(h.k.link(&NsRef::Host, "br-web").is_some());
}

/// A dry-run connect lists the lease, the veth, its addresses and route, and the DNAT element.
#[tokio::test]
async fn plan_for_a_connect_lists_lease_veth_route_and_port_and_writes_nothing() {
    let h = H::new().await;
    h.network("web", "br-web", &["10.88.0.0/24"]).await;
    h.namespace("ns1").await;
    let net = h.store().network_by_name("web").await.unwrap().unwrap();
    let ep = h
        .store()
        .connect(&connect_spec("web", "ns1", vec![tcp(8080, 80)]), None, true)
        .await
        .unwrap();
    let writes = h.k.writes();
    let plan = h.ctl.plan_endpoint(&ep, &net).await.unwrap();
    let a = ep.addresses[0].addr();
    let host = &ep.host_ifname;
    assert_eq!(
        lines(&plan),
        vec![
            format!("add lease {a} on network \"web\""),
            format!("create link {host} in the host namespace"),
            format!("set sysctl net.ipv6.conf.{host}.disable_ipv6"),
            format!("set link {host} in the host namespace"),
            "set link eth0 in namespace \"ns1\"".to_string(),
            "set link eth0 in namespace \"ns1\"".to_string(),
            format!("add address {a}/24 on eth0 in namespace \"ns1\""),
            "add route default via 10.88.0.1 on eth0 in namespace \"ns1\"".to_string(),
            format!("add port-mapping *:8080/tcp -> {a}:80"),
        ]
    );
    assert!(
        plan[3].detail.contains("master br-web"),
        "{}",
        plan[3].detail
    );
    assert_eq!(plan[4].detail, "addrgenmode none");
    assert_eq!(h.k.writes(), writes);
    assert!(h.k.link(&h.ns("ns1"), "eth0").is_none());
    assert!(h.k.mappings().is_empty());
    assert!(h.store().list_endpoints(None).await.unwrap().is_empty());
}

/// A dry-run disconnect plans DNAT first, then the veth, then the lease.
#[tokio::test]
async fn plan_for_a_disconnect_lists_port_then_veth_then_lease_and_writes_nothing() {
    let h = H::new().await;
    h.network("web", "br-web", &["10.88.0.0/24"]).await;
    h.namespace("ns1").await;
    let net = h.store().network_by_name("web").await.unwrap().unwrap();
    let ep = h.connect("web", "ns1", vec![tcp(8080, 80)]).await;
    let writes = h.k.writes();
    let plan = h.ctl.plan_endpoint_removal(&ep, &net).await.unwrap();
    let a = ep.addresses[0].addr();
    assert_eq!(
        lines(&plan),
        vec![
            format!("remove port-mapping *:8080/tcp -> {a}:80"),
            format!("delete link {} in the host namespace", ep.host_ifname),
            format!("remove lease {a} on network \"web\""),
        ]
    );
    assert_eq!(h.k.writes(), writes);
    assert_eq!(h.k.mappings().len(), 1);
    assert!(h.k.link(&h.ns("ns1"), "eth0").is_some());
}

/// A port of a bridge that does not exist yet is planned with the bridge's name, as the real
/// call would set it (the dry run stands an index in for the bridge).
#[tokio::test]
async fn plan_for_a_port_of_a_missing_bridge_names_the_bridge() {
    let h = H::new().await;
    h.namespace("ns1").await;
    let mut spec = super::veth("vh1", "vi1", "ns1");
    spec.end.master = Some("br-later".into());
    let row = h.store().create_link(&spec, None, true).await.unwrap();
    let writes = h.k.writes();
    let plan = h.ctl.plan_link(&row.id, &row.spec).await.unwrap();
    let set = plan
        .iter()
        .find(|c| c.action == "set" && c.target.starts_with("vh1 "))
        .expect("the host end is set");
    assert!(set.detail.contains("master br-later"), "{}", set.detail);
    assert_eq!(h.k.writes(), writes, "a dry run wrote to the kernel");
}
