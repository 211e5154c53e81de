//! Saga instance endpoints over a real `LogStore` and a running saga: pages of
//! instances, one instance with its status, state and history, and the JSON 4xx for an
//! unknown instance or a bad query.

mod common;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use common::*;
use eventum_core::{
    CommandAccepted, CommandEnvelope, CommandSender, EventStore, ExpectedVersion, NewEvent,
    RecordedEvent, SendError, StreamName, SubscriptionTarget,
};
use eventum_log::{LogConfig, LogStore};
use eventum_sagas::{Action, Saga, SagaConfig, SagaRunner, SystemClock, Trigger};
use eventum_server::{ServerConfig, router};
use serde_json::json;

/// Starts on `JobStarted`, asks for `RunJob`, completes on `JobDone`.
struct JobSaga;

impl Saga for JobSaga {
    type State = u32;
    fn name(&self) -> &str {
        "jobs"
    }
    fn source(&self) -> SubscriptionTarget {
        SubscriptionTarget::Category("job".into())
    }
    fn correlate(&self, event: &RecordedEvent) -> Option<String> {
        Some(event.stream.trim_start_matches("job-").to_owned())
    }
    fn starts(&self, event: &RecordedEvent) -> bool {
        event.event_type == "JobStarted"
    }
    fn handle(&self, _: &u32, trigger: &Trigger<'_>) -> Vec<Action> {
        match trigger.event_type() {
            Some("JobStarted") => vec![Action::send("RunJob", json!({}))],
            Some("JobDone") => vec![Action::Complete],
            _ => vec![],
        }
    }
    fn evolve(&self, steps: &mut u32, _: &Trigger<'_>) {
        *steps += 1;
    }
}

/// Accepts every command without doing anything.
struct Accept;

#[async_trait]
impl CommandSender for Accept {
    async fn send(&self, command: CommandEnvelope) -> Result<CommandAccepted, SendError> {
        Ok(CommandAccepted {
            stream: String::new(),
            version: None,
            position: None,
            event_ids: vec![command.command_id],
            duplicate: false,
        })
    }
}

async fn append(store: &Arc<LogStore>, stream: &str, event_type: &str) {
    store
        .append(
            &StreamName::new(stream).unwrap(),
            ExpectedVersion::Any,
            vec![NewEvent::new(event_type, &json!({})).unwrap()],
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn instances_are_listed_and_shown_with_their_history() {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::open(dir.path(), LogConfig::default()).unwrap();
    let events: Arc<dyn EventStore> = store.clone();
    let runner = SagaRunner::start(
        events.clone(),
        Arc::new(Accept),
        JobSaga,
        SagaConfig::default(),
        Arc::new(SystemClock),
    )
    .await
    .unwrap();
    append(&store, "job-a", "JobStarted").await;
    append(&store, "job-b", "JobStarted").await;
    append(&store, "job-a", "JobDone").await;
    let app = router(events, ServerConfig::default());

    let mut a = serde_json::Value::Null;
    for _ in 0..200 {
        let reply = get(&app, "/sagas/jobs/instances/a").await;
        if reply.status == 200 && reply.json()["instance"]["status"] == "completed" {
            a = reply.json();
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        a["instance"]["status"], "completed",
        "instance a never completed"
    );
    assert_eq!(a["instance"]["state"], 2, "two steps folded");
    let history = a["history"].as_array().unwrap();
    assert!(
        history.len() >= 3,
        "started, two handled events: {history:?}"
    );

    let mut page = serde_json::Value::Null;
    for _ in 0..200 {
        page = get(&app, "/sagas/jobs/instances?limit=10").await.json();
        if page["instances"].as_array().is_some_and(|i| i.len() == 2) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let statuses: Vec<(String, String)> = page["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["key"].as_str().unwrap().into(),
                i["status"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        statuses,
        [
            ("a".into(), "completed".into()),
            ("b".into(), "running".into())
        ]
    );
    let one = get(&app, "/sagas/jobs/instances?limit=1").await.json();
    assert_eq!(one["instances"].as_array().unwrap().len(), 1);
    assert!(one["next_from"].is_u64(), "a next page: {one}");

    get(&app, "/sagas/jobs/instances/zzz")
        .await
        .assert_error(404, "not_found");
    get(&app, "/sagas/jobs/instances?limit=x")
        .await
        .assert_error(400, "malformed_request");
    get(&app, "/sagas/jobs/instances?color=red")
        .await
        .assert_error(400, "malformed_request");
    runner.stop().await.unwrap();
}
