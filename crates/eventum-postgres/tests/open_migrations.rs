//! Opening: migrations are applied once and recorded, a schema from a newer build is
//! refused with a clear error, bad configuration is refused, and an unreachable server is
//! `Unavailable`.

mod common;

use eventum_core::{ErrorCode, EventStore, ExpectedVersion, NewEvent, StreamName};
use eventum_postgres::migrate::{MIGRATIONS, latest_version};
use eventum_postgres::{OpenError, PgConfig, PgStore};

async fn admin() -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(&common::test_url(), tokio_postgres::NoTls)
        .await
        .expect("connect to the test server (start PostgreSQL: `service postgresql start`)");
    tokio::spawn(connection);
    client
}

#[tokio::test]
async fn migrations_apply_once_and_data_survives_reopen() {
    let config = common::fresh_config();
    let guard = common::Guard {
        store: None,
        config: config.clone(),
    };
    let store = common::open(config.clone()).await;
    let s = StreamName::new("m-1").unwrap();
    store
        .append(
            &s,
            ExpectedVersion::NoStream,
            vec![NewEvent::from_json("T", "1").unwrap()],
        )
        .await
        .unwrap();
    drop(store);
    let store = common::open(config.clone()).await;
    assert_eq!(store.head_position(), Some(0), "reopen reads the head");
    let rows = admin()
        .await
        .query(
            &format!(
                "SELECT version, name FROM {}.schema_migrations ORDER BY version",
                config.schema
            ),
            &[],
        )
        .await
        .unwrap();
    let recorded: Vec<(i32, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    let known: Vec<(i32, String)> = MIGRATIONS
        .iter()
        .map(|m| (m.version, m.name.to_owned()))
        .collect();
    assert_eq!(recorded, known, "each migration recorded exactly once");
    drop(store);
    drop(guard);
}

#[tokio::test]
async fn a_newer_schema_is_refused() {
    let config = common::fresh_config();
    let guard = common::Guard {
        store: None,
        config: config.clone(),
    };
    drop(common::open(config.clone()).await);
    admin()
        .await
        .execute(
            &format!(
                "INSERT INTO {}.schema_migrations (version, name) VALUES ($1, 'future')",
                config.schema
            ),
            &[&(latest_version() + 1)],
        )
        .await
        .unwrap();
    match PgStore::open(config.clone()).await {
        Err(OpenError::SchemaTooNew { found, known, .. }) => {
            assert_eq!((found, known), (latest_version() + 1, latest_version()));
        }
        Err(e) => panic!("expected SchemaTooNew, got {e}"),
        Ok(_) => panic!("a newer schema was opened"),
    }
    drop(guard);
}

#[tokio::test]
async fn bad_config_and_dead_server_are_typed_errors() {
    let bad = PgConfig::new(common::test_url()).with_schema("Robert'); DROP TABLE x;--");
    assert!(matches!(
        PgStore::open(bad).await,
        Err(OpenError::InvalidConfig(_))
    ));
    // Nothing listens on port 1.
    let mut dead = PgConfig::new("postgres://postgres@127.0.0.1:1/test");
    dead.connect_timeout_ms = 2_000;
    match PgStore::open(dead).await {
        Err(e) => assert_eq!(e.code(), ErrorCode::Unavailable, "{e}"),
        Ok(_) => panic!("opened a store on a dead port"),
    }
}
