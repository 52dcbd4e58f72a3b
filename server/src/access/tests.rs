//! The access decision over every RPC weftd serves (from the descriptor sets, so an RPC added
//! to a .proto without a class fails here), every role, and the messages.

use prost::Message;

use super::*;

/// Every method path in the descriptor sets weftd serves: weft.v1, health, reflection v1 and
/// v1alpha.
fn every_method() -> Vec<String> {
    let sets = [
        weft_proto::FILE_DESCRIPTOR_SET,
        tonic_health::pb::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
    ];
    let mut out = Vec::new();
    for bytes in sets {
        let set = prost_types::FileDescriptorSet::decode(bytes).unwrap();
        for file in set.file {
            let package = file.package().to_string();
            for svc in &file.service {
                for m in &svc.method {
                    out.push(format!("/{package}.{}/{}", svc.name(), m.name()));
                }
            }
        }
    }
    out
}

fn weft_methods() -> Vec<String> {
    every_method()
        .into_iter()
        .filter(|m| m.starts_with("/weft.v1."))
        .collect()
}

fn group(gid: u32, name: &str) -> NamedGroup {
    NamedGroup {
        gid,
        name: name.into(),
    }
}

fn policy() -> Policy {
    Policy {
        socket_group: Some(group(4000, "weft")),
        read_only_group: Some(group(4001, "weft-ro")),
    }
}

fn unix(uid: u32, gid: u32, groups: &[u32]) -> Peer {
    Peer::Unix(Some(Creds {
        uid,
        gid,
        pid: Some(42),
        groups: groups.to_vec(),
    }))
}

#[test]
fn every_rpc_in_the_protos_is_classified() {
    let all = every_method();
    assert!(all.len() >= 24, "descriptor sets look empty: {all:?}");
    for m in &all {
        assert_ne!(
            classify(m),
            Class::Unknown,
            "{m} has no access class: add it to READS or WRITES in access.rs"
        );
    }
    // Both tables name only methods that exist, and none twice.
    for m in READS.iter().chain(WRITES) {
        assert!(
            all.iter().any(|a| a == m),
            "{m} is in a table but not in the protos"
        );
    }
    assert!(READS.iter().all(|r| !WRITES.contains(r)));
    assert_eq!(READS.len() + WRITES.len(), weft_methods().len());
}

#[test]
fn reads_are_get_list_watch_and_system_info_only() {
    for m in weft_methods() {
        let name = m.rsplit('/').next().unwrap();
        let reads = ["Get", "List", "Watch"].iter().any(|p| name.starts_with(p));
        assert_eq!(classify(&m) == Class::Read, reads, "{m}");
    }
    assert_eq!(
        classify("/weft.v1.SystemService/GetSystemInfo"),
        Class::Read
    );
    assert_eq!(classify("/grpc.health.v1.Health/Check"), Class::Health);
    assert_eq!(classify("/grpc.health.v1.Health/Watch"), Class::Health);
    assert_eq!(
        classify("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"),
        Class::Read
    );
    assert_eq!(classify("/weft.v1.LinkService/Nope"), Class::Unknown);
    assert_eq!(classify("garbage"), Class::Unknown);
}

#[test]
fn root_socket_group_and_tls_may_call_everything() {
    let p = policy();
    let peers = [
        unix(0, 0, &[]),
        unix(1000, 4000, &[]),
        unix(1000, 1000, &[27, 4000]),
        // In both groups: the fuller one wins.
        unix(1000, 1000, &[4001, 4000]),
        Peer::Tls {
            addr: Some("10.0.0.1:5000".parse().unwrap()),
        },
    ];
    for peer in &peers {
        assert_eq!(p.role(peer), Role::Full, "{peer:?}");
        for m in every_method() {
            assert_eq!(p.decide(&m, peer), Ok(()), "{peer:?} {m}");
        }
        // Unknown paths are left to the router (UNIMPLEMENTED).
        assert_eq!(p.decide("/weft.v1.LinkService/Nope", peer), Ok(()));
    }
}

#[test]
fn read_only_group_may_read_and_nothing_else() {
    let p = policy();
    for peer in [unix(1000, 4001, &[]), unix(1000, 1000, &[4001])] {
        assert_eq!(p.role(&peer), Role::ReadOnly);
        for m in every_method() {
            let got = p.decide(&m, &peer);
            match classify(&m) {
                Class::Health | Class::Read => assert_eq!(got, Ok(()), "{m}"),
                _ => {
                    let msg = got.expect_err(&m);
                    assert!(msg.contains("read-only"), "{msg}");
                    assert!(msg.contains(&m), "{msg}");
                    assert!(msg.contains("join group weft"), "{msg}");
                    assert!(msg.contains("uid 1000"), "{msg}");
                }
            }
        }
        assert!(p.decide("/weft.v1.LinkService/Nope", &peer).is_err());
    }
}

#[test]
fn strangers_get_only_the_health_check() {
    let p = policy();
    let peers = [
        unix(1000, 1000, &[27, 100]),
        // Membership is by gid, not by name or uid.
        unix(4000, 1000, &[]),
        Peer::Unix(None),
    ];
    for peer in &peers {
        assert_eq!(p.role(peer), Role::Stranger, "{peer:?}");
        for m in every_method() {
            let got = p.decide(&m, peer);
            if classify(&m) == Class::Health {
                assert_eq!(got, Ok(()), "{m}");
            } else {
                let msg = got.expect_err(&m);
                assert!(msg.contains("join group weft"), "{msg}");
                assert!(msg.contains("gid 4000"), "{msg}");
                assert!(msg.contains("weft-ro to read only"), "{msg}");
            }
        }
    }
}

#[test]
fn without_a_socket_group_only_root_has_full_access() {
    let p = Policy::default();
    assert_eq!(p.role(&unix(0, 0, &[])), Role::Full);
    let msg = p
        .decide("/weft.v1.NamespaceService/ListNamespaces", &unix(5, 5, &[]))
        .unwrap_err();
    assert!(msg.contains("only root"), "{msg}");
    assert!(msg.contains("--socket-group"), "{msg}");
    assert!(!msg.contains("read only"), "{msg}");
}

#[test]
fn socket_file_mode_follows_the_groups() {
    assert_eq!(Policy::default().socket_file(), (None, 0o600));
    let sg = Policy {
        socket_group: Some(group(4000, "weft")),
        read_only_group: None,
    };
    assert_eq!(sg.socket_file(), (Some(4000), 0o660));
    assert_eq!(policy().socket_file(), (Some(4000), 0o666));
}

#[test]
fn groups_are_read_only_from_the_connecting_processes_status() {
    let status = "Name:\tcat\nUid:\t1000\t1001\t1001\t1001\nGid:\t50\t51\t51\t51\n\
                  Groups:\t4 24 4000 \nNSpid:\t1\n";
    assert_eq!(
        groups_from_status(status, 1001, 51),
        Some(vec![4, 24, 4000])
    );
    // Another process (pid reused): the effective ids differ.
    assert_eq!(groups_from_status(status, 1000, 51), None);
    assert_eq!(groups_from_status(status, 1001, 50), None);
    let none = "Uid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nGroups:\t\n";
    assert_eq!(groups_from_status(none, 0, 0), Some(vec![]));
    assert_eq!(groups_from_status("", 0, 0), None);
}

#[test]
fn numeric_groups_need_no_entry_and_names_must_exist() {
    let g = NamedGroup::resolve("socket-group", "4242424").unwrap();
    assert_eq!(g.gid, 4242424);
    assert_eq!(g.name, "4242424");
    let root = NamedGroup::resolve("socket-group", "root").unwrap();
    assert_eq!(root.gid, 0);
    let err = NamedGroup::resolve("read-only-group", "no-such-group-xyz").unwrap_err();
    assert!(err.contains("--read-only-group no-such-group-xyz"), "{err}");
    assert!(err.contains("numeric gid"), "{err}");
}

#[test]
fn peer_keys_are_per_uid_and_per_address() {
    assert_eq!(unix(1000, 1, &[]).key(), "uid:1000");
    let tls = Peer::Tls {
        addr: Some("10.0.0.1:5000".parse().unwrap()),
    };
    assert_eq!(tls.key(), "tls:10.0.0.1");
}
