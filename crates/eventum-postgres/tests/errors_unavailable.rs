//! A PostgreSQL server that goes away is `Unavailable`, not a hang and not a domain
//! error: the store is reached through a TCP proxy this test kills.

mod common;

use std::time::Duration;

use eventum_core::{
    AppendError, EventStore, ExpectedVersion, NewEvent, ReadDirection, ReadError, StorageErrorKind,
    StreamName,
};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Forwards 127.0.0.1:<port> to the test server; dropping the returned handle list kills
/// the listener and every forwarded connection.
async fn start_proxy(target: String) -> (u16, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let mut conns = tokio::task::JoinSet::new();
        loop {
            let Ok((mut inbound, _)) = listener.accept().await else {
                return;
            };
            let target = target.clone();
            conns.spawn(async move {
                if let Ok(mut outbound) = TcpStream::connect(target).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    (port, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_server_is_unavailable() {
    let mut config = common::fresh_config();
    let guard = common::Guard {
        store: None,
        config: config.clone(),
    };
    let direct: tokio_postgres::Config = config.url.parse().unwrap();
    let host = "127.0.0.1";
    let port = direct.get_ports().first().copied().unwrap_or(5432);
    let (proxy_port, proxy) = start_proxy(format!("{host}:{port}")).await;
    config.url = format!("postgres://postgres@127.0.0.1:{proxy_port}/test");
    config.pool_wait_ms_max = 1_000;
    config.connect_timeout_ms = 1_000;
    let store = common::open(config).await;
    let stream = StreamName::new("dead-1").unwrap();
    store
        .append(
            &stream,
            ExpectedVersion::NoStream,
            vec![NewEvent::from_json("T", "1").unwrap()],
        )
        .await
        .unwrap();

    // Aborting the task drops the listener and, with its JoinSet, every connection.
    proxy.abort();
    let _ = proxy.await;
    tokio::time::sleep(Duration::from_millis(100)).await;

    let append = tokio::time::timeout(
        Duration::from_secs(10),
        store.append(
            &stream,
            ExpectedVersion::Any,
            vec![NewEvent::from_json("T", "2").unwrap()],
        ),
    )
    .await
    .expect("an append to a dead server fails promptly");
    match append {
        Err(AppendError::Storage(e)) => assert_eq!(e.kind, StorageErrorKind::Unavailable, "{e}"),
        other => panic!("expected Unavailable, got {other:?}"),
    }
    let read = tokio::time::timeout(
        Duration::from_secs(10),
        store.read_all(None, ReadDirection::Forward, 10),
    )
    .await
    .expect("a read from a dead server fails promptly");
    match read {
        Err(ReadError::Storage(e)) => assert_eq!(e.kind, StorageErrorKind::Unavailable, "{e}"),
        other => panic!("expected Unavailable, got {other:?}"),
    }
    drop(store);
    drop(guard);
}
