//! JSON document read models on PostgreSQL: a `DocumentProjection` folds events into
//! documents (no SQL), queries read them by key, in pages and by field; a new projection
//! version empties and rebuilds the model; a document over the size bound stops the
//! projection with nothing of its batch committed.

mod common;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use common::*;
use eventum_core::{
    EventStore, ExpectedVersion, NewEvent, RecordedEvent, StreamName, SubscriptionTarget,
};
use eventum_postgres_projections::{
    ConsumerError, ConsumerState, DocumentProjection, DocumentTx, HandlerError, InvalidInput,
    PgConsumer, QueryError,
};
use serde_json::{Value, json};

/// Orders by id, with a per-customer count; version 2 also stamps each order.
struct Orders {
    version: u64,
}

#[async_trait]
impl DocumentProjection for Orders {
    fn name(&self) -> &str {
        "orders"
    }
    fn version(&self) -> u64 {
        self.version
    }
    fn target(&self) -> SubscriptionTarget {
        SubscriptionTarget::Category("order".into())
    }
    fn keys(&self, event: &RecordedEvent) -> Vec<String> {
        vec![event.stream.clone()]
    }
    async fn apply(
        &self,
        docs: &mut DocumentTx<'_, '_>,
        event: &RecordedEvent,
    ) -> Result<(), HandlerError> {
        let data: Value = serde_json::from_slice(&event.data)?;
        let key = event.stream.as_str();
        match event.event_type.as_str() {
            "OrderPlaced" => {
                let mut doc = json!({
                    "status": "placed",
                    "customer": {"id": data["customer"]},
                    "tags": data["tags"],
                    "note": data["note"],
                });
                if self.version >= 2 {
                    doc["v"] = json!(2);
                }
                docs.put(key, doc).await?;
                let customer = format!("customer-{}", data["customer"].as_str().unwrap_or("?"));
                let summary = docs.document_mut(&customer).await?;
                let n = summary
                    .as_ref()
                    .and_then(|d| d["orders"].as_u64())
                    .unwrap_or(0);
                *summary = Some(json!({"kind": "customer", "orders": n + 1}));
            }
            "OrderShipped" => {
                if let Some(doc) = docs.document_mut(key).await?.as_mut() {
                    doc["status"] = json!("shipped");
                }
            }
            "OrderCancelled" => {
                docs.delete(key).await?;
            }
            _ => {}
        }
        Ok(())
    }
}

fn event(event_type: &str, data: Value) -> NewEvent {
    NewEvent::from_json(event_type, data.to_string()).unwrap()
}

async fn append(env: &Env, stream: &str, e: NewEvent) -> u64 {
    env.store
        .append(
            &StreamName::new(stream).unwrap(),
            ExpectedVersion::Any,
            vec![e],
        )
        .await
        .unwrap()
        .position
}

async fn place(env: &Env, order: u32, customer: &str, tags: Value) -> u64 {
    append(
        env,
        &format!("order-{order:03}"),
        event(
            "OrderPlaced",
            json!({"customer": customer, "tags": tags, "note": "x"}),
        ),
    )
    .await
}

async fn run_to(env: &Env, version: u64, position: u64) -> PgConsumer {
    let consumer = PgConsumer::start_projection(
        env.models.clone(),
        env.store.clone(),
        Arc::new(Orders { version }),
        consumer_config(),
    )
    .await
    .unwrap();
    tokio::time::timeout(
        Duration::from_secs(30),
        consumer.wait_for_position(position),
    )
    .await
    .expect("the projection caught up within 30 s")
    .unwrap();
    consumer
}

#[tokio::test]
async fn a_document_projection_serves_get_list_and_find() {
    let env = env().await;
    for i in 0..12 {
        let customer = if i % 3 == 0 { "c-a" } else { "c-b" };
        place(&env, i, customer, json!(["gift", format!("t{}", i % 2)])).await;
    }
    append(&env, "order-003", event("OrderShipped", json!({}))).await;
    append(&env, "order-004", event("OrderShipped", json!({}))).await;
    let last = append(&env, "order-005", event("OrderCancelled", json!({}))).await;
    let consumer = run_to(&env, 1, last).await;
    let m = &env.models;

    assert_eq!(
        m.get("orders", "order-003").await.unwrap(),
        Some(
            json!({"status": "shipped", "customer": {"id": "c-a"}, "tags": ["gift", "t1"], "note": "x"})
        )
    );
    assert_eq!(m.get("orders", "order-005").await.unwrap(), None, "deleted");
    assert_eq!(
        m.get("orders", "customer-c-b").await.unwrap(),
        Some(json!({"kind": "customer", "orders": 8}))
    );
    // Pages in key order: 11 orders + 2 customers.
    let mut keys = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = m.list("orders", after.as_deref(), 5).await.unwrap();
        if page.is_empty() {
            break;
        }
        after = page.last().map(|d| d.key.clone());
        keys.extend(page.into_iter().map(|d| d.key));
    }
    assert_eq!(keys.len(), 13);
    assert!(keys.windows(2).all(|w| w[0] < w[1]));
    // By field, by nested field, by array element.
    let shipped = m
        .find("orders", "/status", &json!("shipped"), None, 100)
        .await
        .unwrap();
    let shipped: Vec<&str> = shipped.iter().map(|d| d.key.as_str()).collect();
    assert_eq!(shipped, vec!["order-003", "order-004"]);
    let of_a = m
        .find("orders", "/customer/id", &json!("c-a"), None, 100)
        .await
        .unwrap();
    assert_eq!(of_a.len(), 4, "orders 0, 3, 6, 9");
    let t1 = m
        .find("orders", "/tags", &json!("t1"), None, 100)
        .await
        .unwrap();
    let t1: Vec<&str> = t1.iter().map(|d| d.key.as_str()).collect();
    assert_eq!(
        t1,
        vec![
            "order-001",
            "order-003",
            "order-007",
            "order-009",
            "order-011"
        ],
        "order-005 (t1) was deleted"
    );
    let paged = m
        .find("orders", "/tags", &json!("gift"), Some("order-009"), 100)
        .await
        .unwrap();
    assert_eq!(paged.len(), 2, "order-010, order-011");
    // Bounds.
    assert!(matches!(
        m.list("orders", None, 0).await,
        Err(QueryError::Invalid(InvalidInput::BadLimit { .. }))
    ));
    assert!(matches!(
        m.list("orders", None, 1_001).await,
        Err(QueryError::Invalid(InvalidInput::BadLimit { .. }))
    ));
    assert!(matches!(
        m.find("orders", "status", &json!("x"), None, 10).await,
        Err(QueryError::Invalid(InvalidInput::BadPointer(_)))
    ));
    consumer.stop().await.unwrap();
}

#[tokio::test]
async fn a_new_version_empties_the_model_and_rebuilds_it() {
    let env = env().await;
    for i in 0..5 {
        place(&env, i, "c-a", json!([])).await;
    }
    let last = append(&env, "order-001", event("OrderCancelled", json!({}))).await;
    run_to(&env, 1, last).await.stop().await.unwrap();
    assert_eq!(env.models.model_version("orders").await.unwrap(), Some(1));
    // A document no fold of the log produces: a rebuild must remove it.
    let mut client = env.models.client().await.unwrap();
    let tx = client.transaction().await.unwrap();
    {
        let mut docs = DocumentTx::new(&tx, "orders", env.models.config());
        docs.put("stray", json!({"x": 1})).await.unwrap();
        docs.flush().await.unwrap();
    }
    tx.commit().await.unwrap();

    let consumer = run_to(&env, 2, last).await;
    assert_eq!(env.models.model_version("orders").await.unwrap(), Some(2));
    assert_eq!(env.models.get("orders", "stray").await.unwrap(), None);
    assert_eq!(
        env.models
            .get("orders", "order-000")
            .await
            .unwrap()
            .unwrap()["v"],
        json!(2)
    );
    assert_eq!(env.models.get("orders", "order-001").await.unwrap(), None);
    assert_eq!(
        env.models.get("orders", "customer-c-a").await.unwrap(),
        Some(json!({"kind": "customer", "orders": 5})),
        "counted once per event after the rebuild"
    );
    assert_eq!(consumer.status().events_handled, 6);
    consumer.stop().await.unwrap();
    // The same version again: nothing is rebuilt.
    let again = run_to(&env, 2, last).await;
    assert_eq!(again.status().events_handled, 0);
    again.stop().await.unwrap();
}

#[tokio::test]
async fn an_oversized_document_stops_the_projection_with_nothing_of_its_batch_committed() {
    let env = env().await;
    for i in 0..3 {
        place(&env, i, "c-a", json!([])).await;
    }
    // A read side with a 1,000-byte document bound, on the same schema.
    let mut config = eventum_postgres_projections::ReadConfig::new(common::pg::test_url())
        .with_schema(&env.schema);
    config.doc_bytes_max = 1_000;
    let models = eventum_postgres_projections::PgReadModels::open(config)
        .await
        .unwrap();
    let big = "x".repeat(2_000);
    append(
        &env,
        "order-100",
        event(
            "OrderPlaced",
            json!({"customer": "c-a", "tags": [], "note": big}),
        ),
    )
    .await;
    let consumer = PgConsumer::start_projection(
        models,
        env.store.clone(),
        Arc::new(Orders { version: 1 }),
        eventum_postgres_projections::ConsumerConfig {
            batch_events_max: 100,
            batch_latency_ms_max: 300,
            ..consumer_config()
        },
    )
    .await
    .unwrap();
    let mut rx = consumer.watch();
    let error = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            if let ConsumerState::Failed(e) = &rx.borrow_and_update().state {
                return e.clone();
            }
            rx.changed().await.unwrap();
        }
    })
    .await
    .unwrap();
    assert!(
        matches!(&error, ConsumerError::Batch { first: 0, source, .. } if source.message.contains("at most")),
        "{error}"
    );
    assert_eq!(env.models.checkpoint("orders").await.unwrap(), Some(0));
    assert!(
        env.models
            .list("orders", None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(inbox_len(&env, "orders").await, 0);
}
