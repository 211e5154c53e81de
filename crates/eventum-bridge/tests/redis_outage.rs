//! A real broker outage for the Redis sink: a private redis-server (append-only file,
//! fsync always, in a tempdir) is killed while events keep coming; the relay retries
//! with its checkpoint held, reconnects once the server is back on the same port and
//! files, and every event ends up exactly once, in order. Needs the `redis-server`
//! binary (`apt-get install redis-server`); fails without it.

mod common;

use std::ffi::OsString;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use eventum_bridge::{RedisSink, RedisSinkConfig, Relay, RelayConfig, RelayState, header};

use common::*;

const WAIT: Duration = Duration::from_secs(60);

fn start_server(port: u16, dir: &Path) -> BrokerProcess {
    let port_text = port.to_string();
    let args: Vec<OsString> = [
        "--bind",
        "127.0.0.1",
        "--port",
        &port_text,
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
        "--save",
        "",
        "--dir",
    ]
    .iter()
    .map(OsString::from)
    .chain([dir.as_os_str().to_owned()])
    .collect();
    BrokerProcess::start("redis-server", &args, port, "apt-get install redis-server")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_rides_out_a_redis_outage() {
    let port = free_port();
    let redis_dir = tempfile::tempdir().unwrap();
    let server = start_server(port, redis_dir.path());
    let url = format!("redis://127.0.0.1:{port}");
    let sink = Arc::new(
        RedisSink::connect(
            &url,
            RedisSinkConfig {
                key_prefix: "outage".into(),
                connect_timeout_ms: 300,
                response_timeout_ms: 500,
                ..RedisSinkConfig::default()
            },
        )
        .await
        .unwrap(),
    );

    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir);
    let mut ids = append_events(&store, 40).await;
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

    drop(server); // SIGKILL
    ids.extend(append_events(&store, 40).await);
    let mut progress = relay.progress();
    progress
        .wait_for(|p| p.publish_failures_total >= 2)
        .await
        .unwrap();
    assert_eq!(progress.borrow().state, RelayState::Retrying);
    assert!(progress.borrow().next_position < head_next(&store));

    let _server = start_server(port, redis_dir.path());
    assert!(
        relay.wait_acknowledged(head_next(&store), WAIT).await,
        "the relay did not resume: {:?}",
        relay.progress().borrow()
    );
    relay.stop().await.unwrap();

    let client = redis::Client::open(url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let mut all = Vec::new();
    for key in ["outage:order-events", "outage:user-events"] {
        let entries: Vec<(String, Vec<String>)> = redis::cmd("XRANGE")
            .arg(key)
            .arg("-")
            .arg("+")
            .query_async(&mut conn)
            .await
            .unwrap();
        for (entry_id, fields) in entries {
            let position: u64 = entry_id.strip_suffix("-1").unwrap().parse().unwrap();
            let ce_id = fields
                .chunks(2)
                .find(|p| p[0] == header::CE_ID)
                .map(|p| p[1].clone())
                .unwrap();
            all.push((position, ce_id));
        }
    }
    all.sort();
    let got: Vec<String> = all.into_iter().map(|(_, id)| id).collect();
    let expected: Vec<String> = ids.iter().map(|id| id.to_string()).collect();
    assert_eq!(got, expected, "every event once, in order");
}
