//! Shared by the saga integration tests: `Services`, a command sender that plays the
//! payment, stock and shipping services against the real store (deduplicating by command
//! id through a per-command stream, so executions are recorded durably), the order
//! orchestrator the tests run, and helpers to open stores and wait for statuses.

// Each test binary uses a different subset.
#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use eventum_core::{
    AppendError, Causation, CommandAccepted, CommandEnvelope, CommandSender, EventStore,
    ExpectedVersion, NewEvent, ReadDirection, RecordedEvent, SendError, StreamName,
    SubscriptionTarget,
};
use eventum_log::{LogConfig, LogStore, OpenError};
use eventum_sagas::records::InstanceRecord;
use eventum_sagas::{
    InstanceView, Orchestrator, SagaConfig, SagaHandle, SagaRunner, SagaStatus, Status, StepDef,
    SystemClock,
};
use serde_json::json;

/// Upper bound on any wait in these tests: a broken runner fails the test, not hangs it.
pub const WAIT: Duration = Duration::from_secs(20);

/// The category orders and service results live in.
pub const CATEGORY: &str = "orders";

/// Opens `dir`, waiting for a lock a previous instance (or a killed child) still holds.
pub fn open(dir: &Path) -> Arc<LogStore> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match LogStore::open(dir, LogConfig::default()) {
            Ok(store) => return store,
            Err(OpenError::Locked { .. }) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("open {}: {e}", dir.display()),
        }
    }
}

/// What each command's service emits: (success event, failure event).
fn outcomes(command_type: &str) -> (&'static str, &'static str) {
    match command_type {
        "ProcessPayment" => ("PaymentProcessed", "PaymentFailed"),
        "RefundPayment" => ("PaymentRefunded", "RefundFailed"),
        "ReserveStock" => ("StockReserved", "StockFailed"),
        "ReleaseStock" => ("StockReleased", "ReleaseFailed"),
        "ScheduleShipment" => ("ShipmentScheduled", "ShipmentFailed"),
        "CancelShipment" => ("ShipmentCancelled", "CancelFailed"),
        "NotifyCustomer" => ("CustomerNotified", "NotifyFailed"),
        _ => ("Done", "Failed"),
    }
}

/// Plays the services. An order's data steers them:
/// `fail_at` (command type → failure event), `reject_at` (command type → rejected),
/// `silent_at` (command type → executed, no answer), `comp_fail_times` (compensation
/// attempts below this fail).
pub struct Services {
    store: Arc<dyn EventStore>,
    /// Send calls, duplicates included.
    pub sends: AtomicU64,
    /// Technical failures still to inject (each send fails once while positive).
    pub fail_technically: AtomicU32,
    /// Commands that ran (not duplicates), in this process.
    pub executed: Mutex<Vec<CommandEnvelope>>,
}

impl Services {
    pub fn new(store: Arc<dyn EventStore>) -> Arc<Self> {
        Arc::new(Self {
            store,
            sends: AtomicU64::new(0),
            fail_technically: AtomicU32::new(0),
            executed: Mutex::new(Vec::new()),
        })
    }

    pub fn executed_types(&self) -> Vec<String> {
        self.executed
            .lock()
            .unwrap()
            .iter()
            .map(|c| c.command_type.clone())
            .collect()
    }
}

fn is_compensation(command_type: &str) -> bool {
    matches!(
        command_type,
        "RefundPayment" | "ReleaseStock" | "CancelShipment"
    )
}

#[async_trait]
impl CommandSender for Services {
    async fn send(&self, command: CommandEnvelope) -> Result<CommandAccepted, SendError> {
        self.sends.fetch_add(1, Ordering::SeqCst);
        if self
            .fail_technically
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(SendError::Failed("injected technical failure".into()));
        }
        let p = &command.payload;
        let t = command.command_type.as_str();
        if p["reject_at"] == t {
            return Err(SendError::Rejected {
                code: "refused".into(),
                message: format!("{t} refused by the test"),
            });
        }
        let (ok, failed) = outcomes(t);
        let attempt = p["attempt"].as_u64().unwrap_or(0);
        let comp_fails = p["comp_fail_times"].as_u64().unwrap_or(0);
        let result = if p["silent_at"] == t {
            None
        } else if p["fail_at"] == t || (is_compensation(t) && attempt < comp_fails) {
            Some(failed)
        } else {
            Some(ok)
        };
        let causation = Causation::caused_by_command(&command);
        let order_id = p["order_id"].clone();
        let mut events = vec![
            causation.stamp(
                NewEvent::new(
                    "CommandExecuted",
                    &json!({
                        "command_id": command.command_id,
                        "command_type": t,
                        "order_id": order_id,
                        "attempt": attempt,
                    }),
                )
                .unwrap(),
            ),
        ];
        if let Some(result) = result {
            events.push(causation.stamp(
                NewEvent::new(result, &json!({"order_id": order_id, "attempt": attempt})).unwrap(),
            ));
        }
        // One stream per command id, created with `no_stream`: a second execution of the
        // same id cannot be written, which is what the real bus guarantees.
        let stream = StreamName::new(format!("{CATEGORY}-cmd-{}", command.command_id)).unwrap();
        match self
            .store
            .append(&stream, ExpectedVersion::NoStream, events)
            .await
        {
            Ok(r) => {
                self.executed.lock().unwrap().push(command.clone());
                Ok(CommandAccepted {
                    stream: stream.to_string(),
                    version: Some(r.next_expected_version),
                    position: Some(r.position),
                    event_ids: Vec::new(),
                    duplicate: false,
                })
            }
            Err(AppendError::WrongExpectedVersion { .. }) => Ok(CommandAccepted {
                stream: stream.to_string(),
                version: None,
                position: None,
                event_ids: Vec::new(),
                duplicate: true,
            }),
            Err(e) => Err(SendError::Failed(e.to_string())),
        }
    }
}

/// The order saga: payment, stock, shipping, each compensable.
pub fn order_saga(timeout_ms: Option<u64>) -> Orchestrator {
    let step = |name: &str,
                cmd: &str,
                ok: &str,
                fail: &str,
                comp: &str,
                comp_ok: &str,
                comp_fail: &str| {
        let s = StepDef::new(name, cmd)
            .succeeded_on(ok)
            .failed_on(fail)
            .compensate_with(comp, comp_ok)
            .compensation_failed_on(comp_fail);
        match timeout_ms {
            Some(t) => s.timeout_ms(t),
            None => s,
        }
    };
    Orchestrator::new(
        "order",
        SubscriptionTarget::Category(CATEGORY.into()),
        "OrderPlaced",
        "order_id",
    )
    .step(step(
        "payment",
        "ProcessPayment",
        "PaymentProcessed",
        "PaymentFailed",
        "RefundPayment",
        "PaymentRefunded",
        "RefundFailed",
    ))
    .step(step(
        "stock",
        "ReserveStock",
        "StockReserved",
        "StockFailed",
        "ReleaseStock",
        "StockReleased",
        "ReleaseFailed",
    ))
    .step(step(
        "shipping",
        "ScheduleShipment",
        "ShipmentScheduled",
        "ShipmentFailed",
        "CancelShipment",
        "ShipmentCancelled",
        "CancelFailed",
    ))
    .compensation_retries_max(2)
}

/// Starts [`order_saga`] (no timeouts) on the system clock.
pub async fn start_order_saga(
    store: Arc<dyn EventStore>,
    sender: Arc<dyn CommandSender>,
    config: SagaConfig,
) -> SagaHandle {
    SagaRunner::start(
        store,
        sender,
        order_saga(None),
        config,
        Arc::new(SystemClock),
    )
    .await
    .unwrap()
}

/// Appends an `OrderPlaced` for `order_id` with extra data fields.
pub async fn place_order(
    store: &dyn EventStore,
    order_id: &str,
    extra: serde_json::Value,
) -> RecordedEvent {
    let mut data = json!({"order_id": order_id});
    if let serde_json::Value::Object(m) = extra {
        data.as_object_mut().unwrap().extend(m);
    }
    let stream = StreamName::new(format!("{CATEGORY}-{order_id}")).unwrap();
    let event = NewEvent::new("OrderPlaced", &data).unwrap();
    store
        .append(&stream, ExpectedVersion::Any, vec![event])
        .await
        .unwrap();
    store
        .read_stream(&stream, None, ReadDirection::Backward, 1)
        .await
        .unwrap()
        .remove(0)
}

/// Waits until `key` satisfies `done`; panics with its last view after [`WAIT`].
pub async fn wait_for(
    status: &SagaStatus,
    key: &str,
    done: impl Fn(&InstanceView) -> bool,
) -> InstanceView {
    let started = Instant::now();
    loop {
        let view = status.instance(key).await.unwrap();
        if let Some(v) = &view
            && done(v)
        {
            return v.clone();
        }
        assert!(
            started.elapsed() < WAIT,
            "instance {key} did not get there in {WAIT:?}: {view:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

pub async fn wait_for_status(status: &SagaStatus, key: &str, expected: Status) -> InstanceView {
    wait_for(status, key, |v| v.status == expected).await
}

/// Every key the instance registry lists, page by page.
pub async fn listed(status: &SagaStatus) -> HashSet<String> {
    let mut keys = HashSet::new();
    let mut from = Some(0);
    while let Some(f) = from {
        let page = status.list(f, 100).await.unwrap();
        keys.extend(page.instances.into_iter().map(|i| i.key));
        from = page.next_from;
    }
    keys
}

/// Every event of the store, in position order.
pub async fn all_events(store: &dyn EventStore) -> Vec<RecordedEvent> {
    let mut out: Vec<RecordedEvent> = Vec::new();
    loop {
        let from = out.last().map_or(0, |e| e.position + 1);
        let page = store
            .read_all(Some(from), ReadDirection::Forward, 1000)
            .await
            .unwrap();
        let done = page.len() < 1000;
        out.extend(page);
        if done {
            return out;
        }
    }
}

/// The command types executed for `order_id`, in the order they ran (from the log).
pub async fn executed_for(store: &dyn EventStore, order_id: &str) -> Vec<String> {
    all_events(store)
        .await
        .into_iter()
        .filter(|e| e.event_type == "CommandExecuted")
        .filter_map(|e| {
            let d: serde_json::Value = serde_json::from_slice(&e.data).unwrap();
            (d["order_id"] == order_id).then(|| d["command_type"].as_str().unwrap().to_owned())
        })
        .collect()
}

/// The records of `key`'s instance stream.
pub async fn history(status: &SagaStatus, key: &str) -> Vec<InstanceRecord> {
    status
        .history(key, 0, 10_000)
        .await
        .unwrap()
        .into_iter()
        .map(|h| h.record)
        .collect()
}

/// How many records of each type an instance stream holds.
pub fn count_types(records: &[InstanceRecord]) -> HashMap<&'static str, usize> {
    let mut m = HashMap::new();
    for r in records {
        *m.entry(r.type_name()).or_default() += 1;
    }
    m
}

/// Checks that every trigger of `key` was recorded once, with consecutive step numbers.
pub fn assert_steps_once(key: &str, records: &[InstanceRecord]) {
    let mut ids = HashSet::new();
    let mut steps = Vec::new();
    for r in records {
        let (step, id) = match r {
            InstanceRecord::EventHandled { step, event_id, .. } => (*step, *event_id),
            InstanceRecord::DeadlineFired {
                step, deadline_id, ..
            } => (*step, *deadline_id),
            InstanceRecord::CommandRejected {
                step, command_id, ..
            } => (*step, *command_id),
            _ => continue,
        };
        assert!(ids.insert(id), "{key}: trigger {id} recorded twice");
        steps.push(step);
    }
    assert_eq!(steps, (0..steps.len() as u64).collect::<Vec<_>>(), "{key}");
    let started = records
        .iter()
        .filter(|r| matches!(r, InstanceRecord::SagaStarted { .. }))
        .count();
    assert_eq!(started, 1, "{key}");
}
