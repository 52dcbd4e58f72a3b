//! Arbitrary bytes, decoded (prost) as weft.v1 request messages, through the conversion and
//! model validation weftd's handlers run before the store (`weftd::api::precheck`).
//!
//! The first byte picks the request; for the kinds that need two messages (an UpdateLink
//! and the link it changes, a Connect and the network it joins) the next two bytes give the
//! length of the first. Bytes that do not decode are skipped. What must hold, whatever the
//! input:
//! - nothing panics (no unwrap on client data, no overflow: debug assertions are on);
//! - every refusal is INVALID_ARGUMENT and names a field ("field: problem");
//! - the request id's fingerprint of a message decoded twice from the same bytes is the same
//!   (maps decode into hash maps with a fresh order each time);
//! - a valid network's subnets and a valid connect's ports can be walked (capacity,
//!   candidates, port pairs) without a panic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use weft_proto::v1 as pb;
use weftd::{api::precheck, service::ServiceError};

/// A refusal must be INVALID_ARGUMENT with "field: problem".
fn refused(e: ServiceError) {
    match e {
        ServiceError::InvalidArgument(m) => {
            let (field, problem) = m
                .split_once(": ")
                .unwrap_or_else(|| panic!("a refusal that names no field: {m:?}"));
            assert!(!field.is_empty() && !problem.is_empty(), "{m:?}");
        }
        other => panic!("a check before the store answered {other:?}"),
    }
}

/// Decodes `bytes` twice as `M` and runs `f` on both, asserting the fingerprints agree.
fn twice<M: Message + Default, T>(
    bytes: &[u8],
    f: impl Fn(M) -> Result<(weftd::service::RequestId, T), ServiceError>,
) -> Option<T> {
    let (Ok(a), Ok(b)) = (M::decode(bytes), M::decode(bytes)) else {
        return None;
    };
    match (f(a), f(b)) {
        (Ok((ra, spec)), Ok((rb, _))) => {
            assert_eq!(ra, rb, "one body, two fingerprints");
            Some(spec)
        }
        (Err(e), Err(_)) => {
            refused(e);
            None
        }
        (a, b) => panic!("one body, two verdicts: {:?} / {:?}", a.is_ok(), b.is_ok()),
    }
}

/// Walks what a valid network hands out: capacity, the first few lease candidates.
fn walk_network(net: &weftd::service::NewNetwork) {
    for s in &net.spec.subnets {
        let _ = s.capacity();
        for a in s.candidates(None).take(4) {
            assert!(s.subnet.contains(&a), "{a} leased outside {}", s.subnet);
            assert!(
                s.check_static(a).is_ok(),
                "{a} is a candidate but not usable"
            );
        }
    }
}

/// Splits `data` into two messages' bytes: a two-byte length, then the first, then the rest.
fn split(data: &[u8]) -> Option<(&[u8], &[u8])> {
    let (len, rest) = data.split_first_chunk::<2>()?;
    let n = usize::from(u16::from_le_bytes(*len)).min(rest.len());
    Some(rest.split_at(n))
}

fuzz_target!(|data: &[u8]| {
    let Some((&kind, rest)) = data.split_first() else {
        return;
    };
    match kind % 6 {
        0 => {
            twice(rest, precheck::create_namespace);
        }
        1 => {
            twice(rest, precheck::create_link);
        }
        2 => {
            if let Some(net) = twice(rest, precheck::create_network) {
                walk_network(&net);
            }
        }
        3 => {
            if let Some(spec) = twice(rest, precheck::connect) {
                for p in &spec.endpoint.ports {
                    assert!(p.pairs().count() >= 1);
                }
            }
        }
        4 => {
            let Some((first, second)) = split(rest) else {
                return;
            };
            let Some(current) = twice(first, precheck::create_link) else {
                return;
            };
            let Ok(update) = pb::UpdateLinkRequest::decode(second) else {
                return;
            };
            let named_peer = kind & 0x80 != 0;
            if let Err(e) = precheck::update_link(&current, &update, named_peer) {
                refused(e);
            }
        }
        _ => {
            let Some((first, second)) = split(rest) else {
                return;
            };
            let Some(net) = twice(first, precheck::create_network) else {
                return;
            };
            walk_network(&net);
            let Some(spec) = twice(second, precheck::connect) else {
                return;
            };
            match precheck::connect_to(&net, &spec) {
                Ok(()) | Err(ServiceError::FailedPrecondition(_)) => {}
                Err(e) => refused(e),
            }
        }
    }
});
