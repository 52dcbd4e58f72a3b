//! Watch streams: the current objects, then every change; a client that reconnects with the
//! last revision it saw gets what it missed, and one whose revision is too old (or from
//! before a restart) is told to list again.

mod common;

use std::time::Duration;

use common::*;
use tokio_stream::StreamExt;
use tonic::Code;
use weft::v1::{
    DeleteNamespaceRequest, EventType, WatchNamespacesRequest, WatchNamespacesResponse,
};

async fn next(s: &mut tonic::Streaming<WatchNamespacesResponse>) -> WatchNamespacesResponse {
    tokio::time::timeout(Duration::from_secs(10), s.next())
        .await
        .expect("a watch event within 10 s")
        .expect("the stream goes on")
        .expect("no error")
}

async fn watch(
    c: &weft::Client,
    since: u64,
) -> Result<tonic::Streaming<WatchNamespacesResponse>, tonic::Status> {
    c.namespaces()
        .watch_namespaces(WatchNamespacesRequest {
            since_revision: since,
            ..Default::default()
        })
        .await
        .map(tonic::Response::into_inner)
}

#[tokio::test(flavor = "multi_thread")]
async fn watch_resumes_after_a_reconnect() {
    let mut sb = Sandbox::new("watch").await;
    let c = sb.client();
    let a = create_ns(&c, "a").await;

    let mut s = watch(&c, 0).await.unwrap();
    let first = next(&mut s).await;
    assert_eq!(first.r#type(), EventType::Added);
    assert_eq!(first.namespace.as_ref().unwrap().name, "a");
    let seen = first.revision;
    assert!(seen > 0);
    // Live: a new namespace shows up (ADDED, then its status as it converges).
    create_ns(&c, "b").await;
    let ev = next(&mut s).await;
    assert_eq!(ev.namespace.as_ref().unwrap().name, "b");
    assert_eq!(ev.r#type(), EventType::Added);
    assert!(ev.revision > seen);
    let mut last = ev.revision;
    while let Ok(Some(Ok(ev))) = tokio::time::timeout(Duration::from_millis(500), s.next()).await {
        last = ev.revision;
    }
    drop(s);

    // Missed while disconnected: c created, a deleted.
    create_ns(&c, "c").await;
    rpc(c.namespaces().delete_namespace(DeleteNamespaceRequest {
        name: "a".into(),
        ..Default::default()
    }))
    .await
    .unwrap();
    let mut s = watch(&c, last).await.unwrap();
    let mut got = Vec::new();
    while let Ok(Some(Ok(ev))) = tokio::time::timeout(Duration::from_secs(1), s.next()).await {
        assert!(
            ev.revision > last,
            "a resumed stream only reports what came after {last}"
        );
        got.push((ev.r#type(), ev.namespace.unwrap()));
    }
    assert!(
        got.iter()
            .any(|(t, n)| *t == EventType::Modified && n.name == "c"),
        "c was missed: {got:?}"
    );
    assert!(
        got.iter()
            .any(|(t, n)| *t == EventType::Deleted && n.uid == a.uid),
        "a's deletion was missed: {got:?}"
    );
    assert!(
        !got.iter().any(|(_, n)| n.name == "b"),
        "b did not change after {last}: {got:?}"
    );
    // And it goes on live.
    create_ns(&c, "d").await;
    let ev = next(&mut s).await;
    assert_eq!(ev.namespace.as_ref().unwrap().name, "d");

    // A revision weftd never issued, and one from before a restart: list again.
    expect_code(watch(&c, 12345).await, Code::FailedPrecondition);
    sb.restart().await;
    let c = sb.client();
    let st = expect_code(watch(&c, last).await, Code::FailedPrecondition);
    assert!(st.message().contains("list again"), "{}", st.message());
}

/// Many streams hold the same objects (shared between them since issue 14): each still gets
/// every change, and a deletion still carries the object's last state, not just its uid.
#[tokio::test(flavor = "multi_thread")]
async fn many_watch_streams_each_get_every_change_with_the_last_state() {
    let sb = Sandbox::new("wmany").await;
    let c = sb.client();
    let a = create_ns(&c, "a").await;
    let second = weft::Client::connect_unix(sb.socket()).await.unwrap();
    let mut streams = Vec::new();
    for i in 0..40 {
        let conn = if i % 2 == 0 { &c } else { &second };
        let mut s = watch(conn, 0).await.unwrap();
        let first = next(&mut s).await;
        assert_eq!(first.r#type(), EventType::Added);
        assert_eq!(first.namespace.as_ref().unwrap().name, "a");
        streams.push(s);
    }
    let b = create_ns(&c, "b").await;
    rpc(c.namespaces().delete_namespace(DeleteNamespaceRequest {
        name: "a".into(),
        ..Default::default()
    }))
    .await
    .unwrap();
    for (i, s) in streams.iter_mut().enumerate() {
        let (mut added_b, mut deleted_a) = (false, false);
        while !(added_b && deleted_a) {
            let ev = next(s).await;
            let n = ev.namespace.as_ref().unwrap();
            match ev.r#type() {
                EventType::Added => {
                    assert_eq!(n.uid, b.uid, "stream {i}: only b is new");
                    added_b = true;
                }
                EventType::Deleted => {
                    assert_eq!(n.uid, a.uid, "stream {i}");
                    assert_eq!(n.name, "a", "stream {i}: the last state, not a tombstone");
                    assert!(
                        n.status.is_some(),
                        "stream {i}: the last state has a status"
                    );
                    deleted_a = true;
                }
                _ => {}
            }
        }
    }
}

/// Watches a client opens and never reads do not hold up another client's watch: a stream's
/// initial list takes one of a few turns only while it reads the store, not while it waits
/// for its client. 600 namespaces are more ADDED messages than a stream's channel (256) and
/// the HTTP/2 window hold, so the three unread streams stay blocked in their sends.
#[tokio::test(flavor = "multi_thread")]
async fn watches_nobody_reads_do_not_hold_up_a_new_one() {
    const N: usize = 600;
    let sb = Sandbox::new("wslow").await;
    let mut tasks = Vec::new();
    for t in 0..4 {
        let c = sb.client();
        tasks.push(tokio::spawn(async move {
            for i in (t..N).step_by(4) {
                create_ns(&c, &format!("s{i}")).await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let slow = weft::Client::connect_unix(sb.socket()).await.unwrap();
    let mut unread = Vec::new();
    for _ in 0..3 {
        unread.push(watch(&slow, 0).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let other = weft::Client::connect_unix(sb.socket()).await.unwrap();
    let mut s = watch(&other, 0).await.unwrap();
    for got in 0..N {
        let ev = next(&mut s).await;
        assert_eq!(ev.r#type(), EventType::Added, "message {got}");
    }
    drop(unread);
}
