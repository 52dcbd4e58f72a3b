//! A connect's published ports in its transaction: host ports left out of the request
//! chosen (from the host's ip_local_port_range, or the asked range) and every mapping
//! checked against the stored ones and recorded. Each batch of candidates is one indexed
//! query (`port_mappings_port`, migration 0004), so the 10,000th port costs what the first did.

use std::collections::HashSet;

use super::{
    StoreError,
    raw::{Arg, Raw},
};
use crate::model::{
    EndpointSpec, HostPorts, PortSpec, Protocol,
    connect::{no_free_port, port_taken},
    port::port_candidates,
};

/// How many candidate host ports a choice checks with one query.
const PORT_BATCH: usize = 64;

/// Whether two host addresses ("" is every address) collide: the same, or either is every.
fn collides(a: &str, b: &str) -> bool {
    a.is_empty() || b.is_empty() || a == b
}

/// The ports of the endpoint as they will be stored: fixed ones as asked, and for each one
/// weft chooses ([`HostPorts::Ephemeral`] from `local`, the host's ip_local_port_range;
/// [`HostPorts::OneOf`] from its range) the first candidate that no stored mapping and no
/// port of this request holds on a colliding address. Fixed ports are taken into account
/// first, so a choice never lands on a port the same request names. Runs in the connect's
/// transaction: a concurrent connect waits for it and then sees its mappings, and the
/// primary key on mappings guards the same a second time.
///
/// Ephemeral choices start at a point derived from the endpoint's id (so endpoints spread
/// over the range instead of all probing its start); a range's choice starts at its first
/// port, as Docker's does. Each batch of candidates is one indexed query.
pub(super) fn resolve_ports(
    raw: Raw<'_>,
    id: &str,
    ports: &[PortSpec],
    local: &std::ops::RangeInclusive<u16>,
) -> Result<Vec<PortSpec>, StoreError> {
    let mut held: Vec<(String, Protocol, u16)> = Vec::new();
    for p in ports.iter().filter(|p| p.is_fixed()) {
        let ip = p.host_ip.map(|a| a.to_string()).unwrap_or_default();
        held.extend(p.pairs().map(|(h, _)| (ip.clone(), p.protocol, h)));
    }
    let seed = id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let mut out = Vec::with_capacity(ports.len());
    for (i, p) in ports.iter().enumerate() {
        let (range, seed, ephemeral) = match p.host_ports() {
            HostPorts::Fixed => {
                out.push(p.clone());
                continue;
            }
            HostPorts::Ephemeral => (local.clone(), seed.wrapping_add(i as u64), true),
            HostPorts::OneOf(r) => (r, 0, false),
        };
        let ip = p.host_ip.map(|a| a.to_string()).unwrap_or_default();
        let mut candidates = port_candidates(&range, seed).peekable();
        let mut chosen = None;
        while chosen.is_none() && candidates.peek().is_some() {
            let batch: Vec<u16> = candidates.by_ref().take(PORT_BATCH).collect();
            let marks = vec!["?"; batch.len()].join(", ");
            let sql = format!(
                "SELECT host_port FROM port_mappings WHERE protocol = ? AND host_port IN ({marks}) \
                 AND (host_ip = ? OR host_ip = '' OR ? = '')"
            );
            let proto = p.protocol.as_str();
            let mut args: Vec<Arg<'_>> = vec![proto.into()];
            args.extend(batch.iter().map(|h| Arg::Int(i64::from(*h))));
            args.extend([Arg::Text(&ip), Arg::Text(&ip)]);
            // Only "?" placeholders are formatted in; the ports are bound.
            let taken = raw.rows(&sql, &args, |r| r.at::<i64>(0))?;
            let taken: HashSet<i64> = taken.into_iter().collect();
            chosen = batch.into_iter().find(|h| {
                !taken.contains(&i64::from(*h))
                    && !held.iter().any(|(hip, proto, hp)| {
                        *proto == p.protocol && hp == h && collides(hip, &ip)
                    })
            });
        }
        let Some(h) = chosen else {
            return Err(no_free_port(i, &range, p.protocol, &ip, ephemeral).into());
        };
        held.push((ip, p.protocol, h));
        out.push(p.resolved(h));
    }
    Ok(out)
}

/// Records the published ports of endpoint `id`; ALREADY_EXISTS naming the holder of a host
/// port that is taken. A mapping on every address conflicts with one on any address, and the
/// other way round.
pub(super) fn publish_ports(
    raw: Raw<'_>,
    id: &str,
    endpoint: &EndpointSpec,
) -> Result<(), StoreError> {
    for p in &endpoint.ports {
        let host_ip = p.host_ip.map(|a| a.to_string()).unwrap_or_default();
        let proto = p.protocol.as_str();
        for (h, c) in p.pairs() {
            let conflict = raw.optional(
                "SELECT m.host_ip, n.name FROM port_mappings m \
                 JOIN endpoints e ON e.id = m.endpoint_id \
                 JOIN namespaces n ON n.id = e.namespace_id \
                 WHERE m.protocol = ? AND m.host_port = ? \
                 AND (m.host_ip = ? OR m.host_ip = '' OR ? = '')",
                &[
                    proto.into(),
                    i64::from(h).into(),
                    (&host_ip).into(),
                    (&host_ip).into(),
                ],
                |r| Ok((r.at::<String>(0)?, r.at::<String>(1)?)),
            )?;
            if let Some((ip, holder)) = conflict {
                return Err(port_taken(h, p.protocol, &ip, &holder).into());
            }
            raw.execute(
                "INSERT INTO port_mappings (endpoint_id, host_ip, protocol, host_port, \
                 container_port) VALUES (?, ?, ?, ?, ?)",
                &[
                    id.into(),
                    (&host_ip).into(),
                    proto.into(),
                    i64::from(h).into(),
                    i64::from(c).into(),
                ],
            )?;
        }
    }
    Ok(())
}
