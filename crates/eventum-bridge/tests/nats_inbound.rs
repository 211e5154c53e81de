//! Inbound from a real NATS JetStream into a handler through the read-model inbox:
//! re-published duplicates are dropped, a restarted durable consumer resumes, and the
//! handler's effects happen once per event id.

mod common;

use std::sync::Arc;
use std::time::Duration;

use async_nats::HeaderMap;
use eventum_bridge::{
    HandlerError, NatsInbound, NatsInboundConfig, NatsSink, NatsSinkConfig, Relay, RelayConfig,
    header,
};
use serde_json::json;

use common::*;

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicates_are_dropped_and_a_restart_resumes() {
    let url = nats_url();
    let client = match async_nats::connect(&url).await {
        Ok(c) => c,
        Err(e) => unreachable("NATS", &url, e, "nats-server -js"),
    };
    let prefix = unique("t");
    let sink = Arc::new(NatsSink::from_client(
        client.clone(),
        NatsSinkConfig {
            subject_prefix: prefix.clone(),
            ..NatsSinkConfig::default()
        },
    ));
    let stream_name = prefix.to_uppercase();
    sink.ensure_stream(&stream_name, Duration::from_secs(120))
        .await
        .unwrap();
    let js = sink.jetstream().clone();

    // 100 events through the relay, then 20 of them re-published without JetStream's
    // dedupe id (as a second bridge or a replay would): 120 messages in the stream.
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir);
    append_events(&store, 100).await;
    let relay = Relay::spawn(
        store.clone(),
        sink.clone(),
        RelayConfig::named("inbound-src"),
    )
    .unwrap();
    assert!(relay.wait_acknowledged(head_next(&store), WAIT).await);
    relay.stop().await.unwrap();
    let stream = js.get_stream(&stream_name).await.unwrap();
    for seq in 1..=20 {
        let m = stream.get_raw_message(seq).await.unwrap();
        let mut headers = HeaderMap::new();
        for (name, values) in m.headers.iter() {
            if name.to_string() != "Nats-Msg-Id" {
                headers.insert(name.clone(), values[0].clone());
            }
        }
        js.publish_with_headers(m.subject.to_string(), headers, m.payload.clone())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    assert_eq!(stream.get_info().await.unwrap().state.messages, 120);

    let models_dir = tempfile::tempdir().unwrap();
    let models = seen_models(&models_dir);
    let handler = |tx: &mut eventum_projections::StoreTx<'_>,
                   m: &eventum_bridge::InboundMessage|
     -> Result<(), HandlerError> {
        assert!(m.header(header::CE_TYPE).is_some());
        count_seen(tx, m)
    };
    let config = NatsInboundConfig {
        batch_messages_max: 16,
        // A fetch abandoned by the stop is redelivered after this.
        ack_wait_ms: 2_000,
        ..NatsInboundConfig::new(&stream_name, "shop-inbound", &format!("{prefix}.>"))
    };

    // The first consumer stops part-way; the second (same durable name) finishes.
    let first = NatsInbound::spawn(js.clone(), models.clone(), config.clone(), handler)
        .await
        .unwrap();
    first
        .progress()
        .wait_for(|p| p.handled_total >= 30)
        .await
        .unwrap();
    let first_rx = first.progress();
    first.stop().await.unwrap();
    let first_progress = first_rx.borrow().clone();
    let second = NatsInbound::spawn(js.clone(), models.clone(), config, handler)
        .await
        .unwrap();
    let mut progress = second.progress();
    let done = tokio::time::timeout(
        WAIT,
        progress.wait_for(|p| {
            first_progress.handled_total
                + first_progress.duplicates_total
                + p.handled_total
                + p.duplicates_total
                >= 120
        }),
    )
    .await;
    assert!(done.is_ok(), "consumers did not see all 120 messages");
    let p = second.progress().borrow().clone();
    second.stop().await.unwrap();

    assert_eq!(first_progress.handled_total + p.handled_total, 100);
    assert_eq!(first_progress.duplicates_total + p.duplicates_total, 20);
    assert_eq!(seen_total(&models), 100);
    let first_id = stream.get_raw_message(1).await.unwrap();
    let id = first_id
        .headers
        .get(header::CE_ID)
        .unwrap()
        .as_str()
        .to_owned();
    assert_eq!(models.get("seen", &id).unwrap().unwrap()["times"], json!(1));

    js.delete_stream(&stream_name).await.unwrap();
}
