//! A real broker outage: the relay publishes to a private nats-server (started by the
//! test on a free port, JetStream in a tempdir), the server is killed while events keep
//! coming, the relay retries with its checkpoint held, and once the server is back on the
//! same port and storage it resumes by itself: every event exactly once, in order.
//! Needs the `nats-server` binary (`apt-get install nats-server`); fails without it.

mod common;

use std::ffi::OsString;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use eventum_bridge::{NatsSink, NatsSinkConfig, Relay, RelayConfig, RelayState, header};

use common::*;

const WAIT: Duration = Duration::from_secs(60);

fn start_server(port: u16, store_dir: &Path) -> BrokerProcess {
    let port_text = port.to_string();
    let args: Vec<OsString> = ["-a", "127.0.0.1", "-p", &port_text, "-js", "-sd"]
        .iter()
        .map(OsString::from)
        .chain([store_dir.as_os_str().to_owned()])
        .collect();
    BrokerProcess::start("nats-server", &args, port, "apt-get install nats-server")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_rides_out_a_broker_outage() {
    let port = free_port();
    let jetstream_dir = tempfile::tempdir().unwrap();
    let server = start_server(port, jetstream_dir.path());
    let url = format!("nats://127.0.0.1:{port}");
    let sink = Arc::new(
        NatsSink::connect(
            &url,
            NatsSinkConfig {
                subject_prefix: "outage".into(),
                ack_timeout_ms: 500,
                ..NatsSinkConfig::default()
            },
        )
        .await
        .unwrap(),
    );
    sink.ensure_stream("OUTAGE", Duration::from_secs(300))
        .await
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir);
    let mut ids = append_events(&store, 50).await;
    let relay = Relay::spawn(
        store.clone(),
        sink.clone(),
        RelayConfig {
            retry_delay_ms_min: 50,
            retry_delay_ms_max: 400,
            ..RelayConfig::named("outage")
        },
    )
    .unwrap();
    assert!(relay.wait_acknowledged(head_next(&store), WAIT).await);

    drop(server); // SIGKILL: the broker is gone.
    ids.extend(append_events(&store, 50).await);
    let mut progress = relay.progress();
    progress
        .wait_for(|p| p.publish_failures_total >= 2)
        .await
        .unwrap();
    let during = progress.borrow().clone();
    assert_eq!(during.state, RelayState::Retrying);
    assert!(
        during.next_position < head_next(&store),
        "nothing unacknowledged counted"
    );

    let _server = start_server(port, jetstream_dir.path());
    assert!(
        relay.wait_acknowledged(head_next(&store), WAIT).await,
        "the relay did not resume: {:?}",
        relay.progress().borrow()
    );
    relay.stop().await.unwrap();

    let stream = sink.jetstream().get_stream("OUTAGE").await.unwrap();
    assert_eq!(stream.get_info().await.unwrap().state.messages, 100);
    for (seq, id) in ids.iter().enumerate() {
        let m = stream.get_raw_message(seq as u64 + 1).await.unwrap();
        assert_eq!(
            m.headers.get(header::CE_ID).unwrap().as_str(),
            id.to_string()
        );
    }
}
