//! The checks a request meets before anything reads the store or the kernel, as one public
//! function per request kind: the same conversion (`convert`) and model validation the
//! handlers run, in the same order, without a daemon. The fuzz target (`fuzz/` at the repo
//! root) feeds it arbitrary requests, so whatever a client can send is proven to end in an
//! answer and never in a panic.
//!
//! Each function returns what the handler would refuse the request with (INVALID_ARGUMENT
//! for all but [`connect_to`], which may also say FAILED_PRECONDITION), or the settled
//! values a valid request would go on with. Checks that need stored facts are run against
//! facts the caller supplies: [`connect_to`] checks a Connect against a network as if it
//! were stored.

use weft_proto::v1 as pb;

use super::convert::{self, CreateRpc};
use crate::{
    model::{ConnectSpec, Invalid, LinkSpec, NamespaceSpec},
    service::{Checked, NewNetwork, RequestId, ServiceError},
};

/// Splits `req` as a handler does (request id, fingerprint) and converts and validates its
/// body.
fn create<M: CreateRpc>(
    req: M,
) -> Result<(RequestId, <M::Kind as crate::service::Make>::Spec), ServiceError> {
    let (body, request, _call) = convert::create_parts(tonic::Request::new(req));
    let spec = body.spec()?;
    spec.check()?;
    Ok((request, spec))
}

/// A CreateNamespace: the request id's fingerprint and the validated spec.
pub fn create_namespace(
    req: pb::CreateNamespaceRequest,
) -> Result<(RequestId, NamespaceSpec), ServiceError> {
    create(req)
}

/// A CreateLink: the request id's fingerprint and the validated spec.
pub fn create_link(req: pb::CreateLinkRequest) -> Result<(RequestId, LinkSpec), ServiceError> {
    create(req)
}

/// A CreateNetwork: the request id's fingerprint and the validated network (its bridge name
/// generated when the request has none).
pub fn create_network(
    req: pb::CreateNetworkRequest,
) -> Result<(RequestId, NewNetwork), ServiceError> {
    create(req)
}

/// A Connect: the request id's fingerprint and the validated spec.
pub fn connect(req: pb::ConnectRequest) -> Result<(RequestId, ConnectSpec), ServiceError> {
    create(req)
}

/// An UpdateLink of the link `current` (as a CreateLink body made it): the field mask applied
/// as the handler applies it, and the result validated. `named_peer` says the request named
/// the peer end.
pub fn update_link(
    current: &LinkSpec,
    req: &pb::UpdateLinkRequest,
    named_peer: bool,
) -> Result<LinkSpec, ServiceError> {
    let body = req
        .link
        .as_ref()
        .ok_or_else(|| Invalid::new("link", "the request needs the link to change"))?;
    let mask = req
        .update_mask
        .as_ref()
        .map(|m| m.paths.clone())
        .unwrap_or_default();
    let spec = convert::apply_update(current, body, &mask, named_peer)?;
    spec.validate()?;
    Ok(spec)
}

/// A Connect to the network `net` (validated as a CreateNetwork body): what the store checks
/// against the network once it has read it, without the leases: the static addresses and
/// the published ports against the network's subnets and switches.
pub fn connect_to(net: &NewNetwork, spec: &ConnectSpec) -> Result<(), ServiceError> {
    spec.check_ports(&net.spec)?;
    for s in &net.spec.subnets {
        spec.lease_ask(s)?;
    }
    spec.check_families(&net.spec)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    //! The prechecks answer as the handlers do.

    use super::*;

    /// A network body with one subnet.
    fn network(subnet: &str, internal: bool) -> NewNetwork {
        create_network(pb::CreateNetworkRequest {
            network: Some(pb::Network {
                name: "n".into(),
                internal,
                subnets: vec![pb::Subnet {
                    subnet: subnet.into(),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        })
        .unwrap()
        .1
    }

    #[test]
    /// Valid requests pass with their settled values; bad ones are refused naming a field.
    fn prechecks_answer_as_the_handlers_do() {
        let (_, spec) = create_namespace(pb::CreateNamespaceRequest {
            namespace: Some(pb::Namespace {
                name: "a".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(spec.name, "a");
        let e = create_namespace(pb::CreateNamespaceRequest {
            namespace: Some(pb::Namespace {
                name: "-rf".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .unwrap_err();
        assert!(e.to_string().starts_with("namespace.name: "), "{e}");
        let e = create_link(pb::CreateLinkRequest::default()).unwrap_err();
        assert!(e.to_string().starts_with("link: "), "{e}");
        assert!(matches!(
            create_network(pb::CreateNetworkRequest {
                network: Some(pb::Network {
                    name: "n".into(),
                    subnets: vec![pb::Subnet {
                        subnet: "127.0.0.0/24".into(),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
                ..Default::default()
            }),
            Err(ServiceError::InvalidArgument(m)) if m.starts_with("network.subnets[0].subnet: ")
        ));
        let (_, c) = connect(pb::ConnectRequest {
            network: "n".into(),
            namespace: "x".into(),
            ipv6_address: "fd00::9".into(),
            published_ports: vec![pb::PublishedPort {
                host_port: 80,
                container_port: 80,
                ..Default::default()
            }],
            ..Default::default()
        })
        .unwrap();
        assert!(matches!(
            connect_to(&network("10.0.0.0/24", false), &c),
            Err(ServiceError::InvalidArgument(m)) if m.starts_with("ipv6_address: ")
        ));
        assert!(matches!(
            connect_to(&network("10.0.0.0/24", true), &c),
            Err(ServiceError::FailedPrecondition(m)) if m.starts_with("published_ports: ")
        ));
        assert!(connect_to(&network("fd00::/64", false), &c).is_ok());
    }
}
