//! CNI results: an endpoint weftd answered, written as the spec's result JSON in the
//! configuration's `cniVersion` (the 0.1/0.2 `ip4`/`ip6` shape, the 0.3/0.4 shape with
//! `version` on each IP, or the 1.x shape), and the addresses read back from a prevResult of
//! any of them. Pure.

use serde_json::{Value, json};

use crate::v1::Endpoint;

/// The result of an ADD for `ep`, its inside interface living in `sandbox` (CNI_NETNS), in
/// CNI version `version`. The host end is interface 0, the container's interface 1; each IP
/// names interface 1 and its gateway, and each family with a gateway gets a default route.
/// `dns` is [`dns`]'s, from the endpoint and the configuration's `dns` object. The host end
/// has no `mac` and no `sandbox`: an interface without `sandbox` is the spec's host
/// interface, and an IP's `interface` is an index into `interfaces`.
pub fn add_result(ep: &Endpoint, sandbox: &str, version: &str, conf_dns: Option<&Value>) -> Value {
    let dns = dns(ep, conf_dns);
    let fams = [
        (&ep.ipv4_address, &ep.ipv4_gateway, "4", "0.0.0.0/0"),
        (&ep.ipv6_address, &ep.ipv6_gateway, "6", "::/0"),
    ];
    if version.starts_with("0.1.") || version.starts_with("0.2.") {
        let mut out = json!({ "cniVersion": version, "dns": dns });
        for (addr, gw, fam, dst) in fams {
            if addr.is_empty() {
                continue;
            }
            let mut ip = json!({ "ip": addr });
            if !gw.is_empty() {
                ip["gateway"] = json!(gw);
                ip["routes"] = json!([{ "dst": dst, "gw": gw }]);
            }
            out[format!("ip{fam}")] = ip;
        }
        return out;
    }
    let legacy = version.starts_with("0.");
    let host = json!({ "name": ep.host_interface_name });
    let inside = json!({ "name": ep.interface_name, "mac": ep.mac_address, "sandbox": sandbox });
    let mut ips = Vec::new();
    let mut routes = Vec::new();
    for (addr, gw, fam, dst) in fams {
        if addr.is_empty() {
            continue;
        }
        let mut ip = json!({ "address": addr, "interface": 1 });
        if legacy {
            ip["version"] = json!(fam);
        }
        if !gw.is_empty() {
            ip["gateway"] = json!(gw);
            routes.push(json!({ "dst": dst, "gw": gw }));
        }
        ips.push(ip);
    }
    json!({
        "cniVersion": version,
        "interfaces": [host, inside],
        "ips": ips,
        "routes": routes,
        "dns": dns,
    })
}

/// The result's `dns`: `nameservers` are the endpoint's resolvers (weftd's, on the network's
/// gateways, when the network has DNS), else the configuration's own; `domain`, `search` and
/// `options` come from the configuration's `dns`, as the CNI spec has plugins do. Empty
/// fields are left out, so a network without DNS and a configuration without `dns` give `{}`.
pub fn dns(ep: &Endpoint, conf: Option<&Value>) -> Value {
    let mut out = serde_json::Map::new();
    let from_conf = |k: &str| {
        conf.and_then(|c| c.get(k))
            .filter(|v| !v.is_null())
            .cloned()
    };
    if !ep.dns_servers.is_empty() {
        out.insert("nameservers".into(), json!(ep.dns_servers));
    } else if let Some(n) = from_conf("nameservers") {
        out.insert("nameservers".into(), n);
    }
    for k in ["domain", "search", "options"] {
        if let Some(v) = from_conf(k) {
            out.insert(k.into(), v);
        }
    }
    Value::Object(out)
}

/// The addresses (CIDR) a prevResult of any version gives its container: `ips[].address`, or
/// `ip4.ip`/`ip6.ip` of the 0.1/0.2 shape. Entries without an address string are skipped;
/// CHECK compares the list as a set.
pub fn prev_addresses(prev: &Value) -> Vec<String> {
    if let Some(ips) = prev.get("ips").and_then(Value::as_array) {
        return ips
            .iter()
            .filter_map(|i| i.get("address").and_then(Value::as_str))
            .map(str::to_string)
            .collect();
    }
    ["ip4", "ip6"]
        .iter()
        .filter_map(|k| prev.get(*k)?.get("ip")?.as_str().map(str::to_string))
        .collect()
}

/// The container interface of a prevResult: (name, MAC) of the first interface with a
/// `sandbox`, if the result lists interfaces.
pub fn prev_container_interface(prev: &Value) -> Option<(String, String)> {
    prev.get("interfaces")?
        .as_array()?
        .iter()
        .find(|i| {
            i.get("sandbox")
                .and_then(Value::as_str)
                .is_some_and(|s| !s.is_empty())
        })
        .map(|i| {
            let f = |k| {
                i.get(k)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            };
            (f("name"), f("mac"))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep() -> Endpoint {
        Endpoint {
            network: "web".into(),
            namespace: "cni-c1".into(),
            interface_name: "eth0".into(),
            ipv4_address: "10.7.0.2/24".into(),
            ipv4_gateway: "10.7.0.1".into(),
            mac_address: "02:42:0a:07:00:02".into(),
            host_interface_name: "wv0123456789ab".into(),
            ..Default::default()
        }
    }

    #[test]
    fn result_1x_lists_both_interfaces_ips_and_routes() {
        let r = add_result(&ep(), "/run/netns/c1", "1.0.0", None);
        assert_eq!(r["cniVersion"], "1.0.0");
        assert_eq!(r["interfaces"][0]["name"], "wv0123456789ab");
        assert!(r["interfaces"][0].get("sandbox").is_none());
        assert_eq!(r["interfaces"][1]["name"], "eth0");
        assert_eq!(r["interfaces"][1]["sandbox"], "/run/netns/c1");
        assert_eq!(r["interfaces"][1]["mac"], "02:42:0a:07:00:02");
        assert_eq!(
            r["ips"],
            json!([{"address":"10.7.0.2/24","gateway":"10.7.0.1","interface":1}])
        );
        assert_eq!(r["routes"], json!([{"dst":"0.0.0.0/0","gw":"10.7.0.1"}]));
        assert_eq!(r["dns"], json!({}));
        assert_eq!(prev_addresses(&r), vec!["10.7.0.2/24"]);
        assert_eq!(
            prev_container_interface(&r),
            Some(("eth0".to_string(), "02:42:0a:07:00:02".to_string()))
        );
    }

    #[test]
    fn result_0x_shapes() {
        let r = add_result(&ep(), "/n", "0.4.0", None);
        assert_eq!(r["ips"][0]["version"], "4");
        let mut e = ep();
        e.ipv6_address = "fd00::2/64".into();
        e.ipv6_gateway = "fd00::1".into();
        let r = add_result(&e, "/n", "0.2.0", None);
        assert_eq!(r["ip4"]["ip"], "10.7.0.2/24");
        assert_eq!(r["ip6"]["routes"][0]["dst"], "::/0");
        assert!(r.get("interfaces").is_none());
        assert_eq!(prev_addresses(&r), vec!["10.7.0.2/24", "fd00::2/64"]);
    }

    /// The endpoint's resolvers are the nameservers; search and options come from the
    /// configuration, whose own nameservers count only when weft has none (a network
    /// without DNS); in every result version.
    #[test]
    fn dns_carries_the_endpoints_resolvers_and_the_configurations_options() {
        let conf = json!({"nameservers": ["192.0.2.53"], "search": ["corp.example"],
                          "options": ["ndots:2"]});
        let mut e = ep();
        e.dns_servers = vec!["10.7.0.1".into()];
        for v in ["1.0.0", "0.4.0", "0.2.0"] {
            let r = add_result(&e, "/n", v, Some(&conf));
            assert_eq!(
                r["dns"],
                json!({"nameservers": ["10.7.0.1"], "search": ["corp.example"],
                       "options": ["ndots:2"]}),
                "{v}"
            );
        }
        assert_eq!(
            dns(&ep(), Some(&conf))["nameservers"],
            json!(["192.0.2.53"])
        );
        assert_eq!(dns(&e, None), json!({"nameservers": ["10.7.0.1"]}));
    }
}
