//! The bus round trip on both implementations: typed events, wildcards and
//! queue groups (each message to exactly one member).

#![expect(clippy::unwrap_used)] // a test fails by panicking

use std::time::Duration;

use arvis_shared::bus::events::{ReplyEvent, ReplyKind};
use arvis_shared::bus::{Bus, Event as _, subjects};
use arvis_testkit::NatsServer;

fn reply(channel: &str) -> ReplyEvent {
    ReplyEvent {
        v: 1,
        kind: ReplyKind::Message,
        platform: "web".into(),
        channel_id: channel.into(),
        conversation_id: Some("conv_1".into()),
        job_id: 7,
        agent_id: 2,
        message_id: Some(9),
        content: "Hi there!".into(),
        timestamp: 0,
        failure: None,
    }
}

async fn round_trip(bus: Bus) {
    let mut exact = bus.subscribe(&subjects::reply("web", "web-a.b")).await.unwrap();
    let mut all = bus.subscribe(subjects::REPLIES_ALL).await.unwrap();
    let mut q1 = bus.queue_subscribe("arvis.test.work", "workers").await.unwrap();
    let mut q2 = bus.queue_subscribe("arvis.test.work", "workers").await.unwrap();
    bus.flush().await.unwrap();

    bus.publish(&reply("web-a.b")).await.unwrap();
    bus.publish(&reply("other")).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), exact.next()).await.unwrap().unwrap();
    assert_eq!(got.decode::<ReplyEvent>().unwrap(), reply("web-a.b"));
    assert_eq!(got.subject, reply("web-a.b").subject());
    for expected in ["web-a.b", "other"] {
        let m = tokio::time::timeout(Duration::from_secs(5), all.next()).await.unwrap().unwrap();
        assert_eq!(m.decode::<ReplyEvent>().unwrap().channel_id, expected);
    }
    // The exact subscription must not see the other channel.
    assert!(tokio::time::timeout(Duration::from_millis(200), exact.next()).await.is_err());

    for i in 0..100u32 {
        bus.publish_raw("arvis.test.work".into(), i.to_string().into()).await.unwrap();
    }
    bus.flush().await.unwrap();
    let mut received = Vec::new();
    loop {
        tokio::select! {
            Some(m) = q1.next() => received.push(m.payload),
            Some(m) = q2.next() => received.push(m.payload),
            () = tokio::time::sleep(Duration::from_millis(500)) => break,
        }
    }
    received.sort();
    received.dedup();
    assert_eq!(received.len(), 100, "each queued message reaches exactly one member");
}

#[tokio::test]
async fn the_in_process_bus_round_trips() {
    round_trip(Bus::local()).await;
}

#[tokio::test]
async fn the_nats_bus_round_trips() {
    let server = NatsServer::start();
    round_trip(Bus::connect_nats(&server.url()).await.unwrap()).await;
}
