//! The read-model store: lookups kept in step with documents, the inbox dropping
//! repeated deliveries (and its bound), general transactions that commit all or nothing,
//! and typed errors for bad input that write nothing.

mod common;

use std::sync::Arc;

use common::*;
use eventum_core::ErrorCode;
use eventum_projections::{
    InvalidRequest, Lookup, ProjectionRunner, QueryError, RunnerConfig, StoreConfig, TxError,
};
use serde_json::{Value, json};
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookups_follow_documents_as_they_change_and_disappear() {
    let (log_dir, rm_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let log = open_log(log_dir.path());
    let models = open_models(rm_dir.path());
    let runner = ProjectionRunner::start(
        models.clone(),
        log.clone(),
        Arc::new(Orders { version: 1 }),
        RunnerConfig::default(),
    )
    .await
    .unwrap();
    let last = append_orders(&*log, 0, 300).await;
    within("orders", runner.wait_for_position(last))
        .await
        .unwrap();
    let expected = fold_orders(&read_log(&*log).await, 1);
    for status in ["open", "shipped", "nonexistent"] {
        let mut found = Vec::new();
        let mut from: Option<String> = None;
        loop {
            let page = models
                .find("orders", "by_status", status, from.as_deref(), 3)
                .unwrap();
            assert!(page.len() <= 3);
            let done = page.len() < 3;
            for d in page {
                if Some(&d.key) != from.as_ref() {
                    found.push((d.key, d.doc));
                }
            }
            if done {
                break;
            }
            from = found.last().map(|(k, _)| k.clone());
        }
        let wanted: Vec<(String, Value)> = expected
            .iter()
            .filter(|(_, d)| d["status"] == status)
            .map(|(k, d)| (k.clone(), d.clone()))
            .collect();
        assert_eq!(found, wanted, "status {status}");
    }
    // Both statuses occur, and cancelled orders are gone from every lookup.
    assert!(expected.values().any(|d| d["status"] == "open"));
    assert!(expected.values().any(|d| d["status"] == "shipped"));
    assert!(expected.len() < 17, "some orders were cancelled");
    assert_eq!(
        models.get("orders", "order-1").unwrap(),
        expected.get("order-1").cloned()
    );
    runner.stop().await.unwrap();
}

#[tokio::test]
async fn the_inbox_drops_a_repeated_delivery_with_its_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let models = open_models(dir.path());
    models
        .define_model("payments", vec![Lookup::field("by_customer", "/customer")])
        .unwrap();
    let ids: Vec<Uuid> = (0..20).map(|_| Uuid::now_v7()).collect();
    // At-least-once delivery: every event arrives twice, some a third time out of order.
    let mut deliveries: Vec<(u64, Uuid)> = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        deliveries.push((i as u64, *id));
        deliveries.push((i as u64, *id));
        if i % 4 == 3 {
            deliveries.push((i as u64 - 2, ids[i - 2]));
        }
    }
    let mut applied = 0;
    for (position, id) in deliveries {
        let done = models
            .transaction(|tx| {
                if !tx.inbox_check_and_record("payment-handler", id)? {
                    return Ok::<_, TxError>(false);
                }
                let customer = format!("c{}", position % 3);
                let mut doc = tx
                    .get("payments", &customer)?
                    .unwrap_or(json!({"customer": customer, "total": 0}));
                doc["total"] = json!(doc["total"].as_u64().unwrap() + position);
                tx.put("payments", &customer, doc)?;
                tx.set_checkpoint("payment-handler", position + 1)?;
                Ok(true)
            })
            .unwrap();
        applied += u64::from(done);
    }
    assert_eq!(applied, 20, "each event took effect once");
    let total: u64 = (0..3)
        .map(|c| {
            models.get("payments", &format!("c{c}")).unwrap().unwrap()["total"]
                .as_u64()
                .unwrap()
        })
        .sum();
    assert_eq!(total, (0..20).sum::<u64>());
    assert_eq!(models.checkpoint("payment-handler").unwrap(), Some(20));
    let c1 = models
        .find("payments", "by_customer", "c1", None, 10)
        .unwrap();
    assert_eq!(c1.len(), 1);
    assert_eq!(c1[0].key, "c1");
}

#[tokio::test]
async fn async_callers_get_the_same_all_or_nothing_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let models = open_models(dir.path());
    models.define_model("m", vec![]).unwrap();
    let id = Uuid::now_v7();
    for expected in [true, false] {
        let fresh = models
            .transaction_async(move |tx| {
                let fresh = tx.inbox_check_and_record("h", id)?;
                if fresh {
                    tx.put("m", "k", json!({"n": 1}))?;
                }
                Ok::<_, TxError>(fresh)
            })
            .await
            .unwrap();
        assert_eq!(fresh, expected);
    }
    let failed: Result<(), TxError> = models
        .transaction_async(|tx| {
            tx.put("m", "k", json!({"n": 2}))?;
            Err(TxError::ModelNotFound { model: "x".into() })
        })
        .await;
    assert!(failed.is_err());
    assert_eq!(models.get("m", "k").unwrap(), Some(json!({"n": 1})));
}

#[test]
fn the_inbox_keeps_the_last_n_ids_per_consumer() {
    let dir = tempfile::tempdir().unwrap();
    let models = open_models_with(
        dir.path(),
        StoreConfig {
            inbox_ids_max: 5,
            ..StoreConfig::default()
        },
    );
    let ids: Vec<Uuid> = (0..12).map(|_| Uuid::now_v7()).collect();
    for id in &ids {
        let fresh = models
            .transaction(|tx| tx.inbox_check_and_record("a", *id))
            .unwrap();
        assert!(fresh);
    }
    // Another consumer's inbox is separate.
    assert!(
        models
            .transaction(|tx| tx.inbox_check_and_record("b", ids[11]))
            .unwrap()
    );
    models
        .transaction(|tx| {
            for (i, id) in ids.iter().enumerate() {
                assert_eq!(tx.inbox_contains("a", *id)?, i >= 7, "id {i}");
            }
            Ok::<_, TxError>(())
        })
        .unwrap();
}

#[test]
fn a_failed_transaction_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let models = open_models(dir.path());
    models.define_model("m", vec![]).unwrap();
    let id = Uuid::now_v7();
    let result: Result<(), TxError> = models.transaction(|tx| {
        assert!(tx.inbox_check_and_record("h", id)?);
        tx.put("m", "k", json!({"a": 1}))?;
        tx.set_checkpoint("h", 9)?;
        // The last write breaks a bound: the whole transaction is refused.
        tx.put("m", "", json!({}))
    });
    assert_eq!(result, Err(TxError::InvalidInput(InvalidRequest::EmptyKey)));
    assert_eq!(models.get("m", "k").unwrap(), None);
    assert_eq!(models.checkpoint("h").unwrap(), None);
    assert!(
        models
            .transaction(|tx| tx.inbox_check_and_record("h", id))
            .unwrap()
    );
}

#[test]
fn bad_inputs_get_typed_errors_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let models = open_models_with(
        dir.path(),
        StoreConfig {
            doc_bytes_max: 100,
            key_bytes_max: 16,
            lookup_value_bytes_max: 8,
            query_limit_max: 50,
            ..StoreConfig::default()
        },
    );
    models
        .define_model("m", vec![Lookup::field("by_s", "/s")])
        .unwrap();
    let put = |key: &str, doc: Value| models.transaction(|tx| tx.put("m", key, doc));

    let e = put("k", json!({"pad": "x".repeat(200)})).unwrap_err();
    assert!(
        matches!(e, TxError::InvalidInput(InvalidRequest::DocTooLarge { .. })),
        "{e:?}"
    );
    assert_eq!(e.code(), ErrorCode::InvalidInput);
    let e = put(&"k".repeat(17), json!({})).unwrap_err();
    assert!(matches!(
        e,
        TxError::InvalidInput(InvalidRequest::KeyTooLong { .. })
    ));
    let e = put("k", json!({"s": "123456789"})).unwrap_err();
    assert!(matches!(
        e,
        TxError::InvalidInput(InvalidRequest::LookupValueTooLong { .. })
    ));
    assert_eq!(models.get("m", "k").unwrap(), None, "nothing was written");
    assert!(models.list("m", None, 50).unwrap().is_empty());

    put("k", json!({"s": "ok"})).unwrap();
    assert_eq!(models.find("m", "by_s", "ok", None, 50).unwrap().len(), 1);

    for limit in [0, 51] {
        let e = models.list("m", None, limit).unwrap_err();
        assert_eq!(
            e,
            QueryError::InvalidInput(InvalidRequest::LimitOutOfRange { limit, max: 50 })
        );
    }
    let e = models.find("m", "by_x", "ok", None, 10).unwrap_err();
    assert!(matches!(
        e,
        QueryError::InvalidInput(InvalidRequest::UnknownLookup { .. })
    ));
    let e = models.get("nope", "k").unwrap_err();
    assert_eq!(e.code(), ErrorCode::NotFound);
    let e = models.get("no/pe", "k").unwrap_err();
    assert!(matches!(
        e,
        QueryError::InvalidInput(InvalidRequest::BadNameCharacter { .. })
    ));

    let e = models
        .transaction(|tx| tx.inbox_check_and_record("$p/orders/1", Uuid::now_v7()))
        .unwrap_err();
    assert!(matches!(
        e,
        TxError::InvalidInput(InvalidRequest::ReservedConsumerName(_))
    ));
    let e = models
        .transaction(|tx| tx.put("absent", "k", json!({})))
        .unwrap_err();
    assert_eq!(
        e,
        TxError::ModelNotFound {
            model: "absent".into()
        }
    );
    let e = models
        .define_model("m", vec![Lookup::field("other", "/o")])
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::AlreadyExists);
    let e = models
        .define_model("m2", vec![Lookup::field("x", "no-slash")])
        .unwrap_err();
    assert!(matches!(
        e,
        TxError::InvalidInput(InvalidRequest::BadLookupPointer { .. })
    ));

    // A second handle on the same directory is refused while the first is open.
    match eventum_projections::ReadModelStore::open(dir.path(), StoreConfig::default()) {
        Err(e @ eventum_projections::OpenError::Locked { .. }) => {
            assert_eq!(e.code(), ErrorCode::Unavailable)
        }
        Err(other) => panic!("unexpected {other}"),
        Ok(_) => panic!("opened twice"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_code_cannot_write_a_projections_read_model() {
    let (log_dir, rm_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let log = open_log(log_dir.path());
    let models = open_models(rm_dir.path());
    let runner = ProjectionRunner::start(
        models.clone(),
        log.clone(),
        Arc::new(Counter),
        RunnerConfig::default(),
    )
    .await
    .unwrap();
    let e = models
        .transaction(|tx| tx.put("counter", "k", json!({})))
        .unwrap_err();
    assert_eq!(
        e,
        TxError::ModelOwnedByProjection {
            model: "counter".into()
        }
    );
    assert_eq!(e.code(), ErrorCode::Forbidden);
    let e = models.define_model("counter", vec![]).unwrap_err();
    assert_eq!(e.code(), ErrorCode::Forbidden);
    runner.stop().await.unwrap();
}
