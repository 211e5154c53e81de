//! The orchestrated order flow (the default style): `OrderSaga` drives each order from
//! `OrderCreated` to one terminal state — reserve stock, capture payment, confirm — and
//! compensates in reverse when a step fails: refund a captured payment, release reserved
//! stock, cancel the order. Pure logic; `eventum_sagas::SagaRunner` runs it.

use eventum_core::{RecordedEvent, SubscriptionTarget};
use eventum_sagas::{Action, Saga, Trigger};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::partition::Partition;

/// Saga name prefix; partition `i` of `n` runs as `shop-order-{i}`.
pub const SAGA_NAME_PREFIX: &str = "shop-order";

/// The event types the saga follows.
pub const FOLLOWED: [&str; 9] = [
    "OrderCreated",
    "StockReserved",
    "StockReservationFailed",
    "StockReleased",
    "PaymentCompleted",
    "PaymentFailed",
    "PaymentRefunded",
    "OrderConfirmed",
    "OrderCancelled",
];

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Stage {
    #[default]
    Start,
    Reserving,
    Paying,
    Confirming,
    Refunding,
    Releasing,
    Cancelling,
    Done,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct OrderSagaState {
    pub stage: Stage,
    pub order_id: String,
    /// Why the order is being cancelled, once it is.
    pub reason: Option<String>,
}

/// One partition of the order saga: the instances whose order id hashes to it.
#[derive(Clone, Debug)]
pub struct OrderSaga {
    name: String,
    partition: Partition,
}

impl OrderSaga {
    pub fn new(partition: Partition) -> Self {
        Self {
            name: format!("{SAGA_NAME_PREFIX}-{}", partition.index),
            partition,
        }
    }

    fn step(&self, state: &OrderSagaState, trigger: &Trigger<'_>) -> (Vec<Action>, OrderSagaState) {
        let mut next = state.clone();
        let mut actions = Vec::new();
        // Built only by the arms that send it.
        let order = || json!({"orderId": state.order_id});
        let send = |actions: &mut Vec<Action>, command: &str, payload: Value| {
            actions.push(Action::send(command, payload));
        };
        let cancel = |next: &mut OrderSagaState, actions: &mut Vec<Action>, reason: String| {
            actions.push(Action::send(
                "CancelOrder",
                json!({"orderId": next.order_id, "reason": reason}),
            ));
            next.reason = Some(reason);
            next.stage = Stage::Cancelling;
        };
        match trigger {
            Trigger::Event(e) => {
                let data: Value = serde_json::from_slice(&e.data).unwrap_or_default();
                let reason = data["reason"].as_str().unwrap_or("").to_owned();
                match (state.stage, e.event_type.as_str()) {
                    (Stage::Start, "OrderCreated") => {
                        next.order_id = data["orderId"].as_str().unwrap_or_default().to_owned();
                        send(&mut actions, "ReserveStock", data);
                        next.stage = Stage::Reserving;
                    }
                    (Stage::Reserving, "StockReserved") => {
                        send(&mut actions, "CapturePayment", data);
                        next.stage = Stage::Paying;
                    }
                    (Stage::Reserving, "StockReservationFailed") => {
                        cancel(&mut next, &mut actions, reason);
                    }
                    (Stage::Paying, "PaymentCompleted") => {
                        send(&mut actions, "ConfirmOrder", order());
                        next.stage = Stage::Confirming;
                    }
                    (Stage::Paying, "PaymentFailed") => {
                        actions.push(Action::Compensate {
                            reason: reason.clone(),
                        });
                        send(&mut actions, "ReleaseStock", order());
                        next.reason = Some(reason);
                        next.stage = Stage::Releasing;
                    }
                    (Stage::Confirming, "OrderConfirmed") => {
                        // The sale is final: the product forgets the reservation. Not a
                        // step anyone waits for.
                        send(&mut actions, "CommitStock", order());
                        actions.push(Action::Complete);
                        next.stage = Stage::Done;
                    }
                    (Stage::Refunding, "PaymentRefunded") => {
                        send(&mut actions, "ReleaseStock", order());
                        next.stage = Stage::Releasing;
                    }
                    (Stage::Releasing, "StockReleased") => {
                        let reason = state.reason.clone().unwrap_or_default();
                        cancel(&mut next, &mut actions, reason);
                    }
                    (Stage::Cancelling, "OrderCancelled") => {
                        actions.push(Action::Compensated { reason });
                        next.stage = Stage::Done;
                    }
                    _ => {}
                }
            }
            Trigger::CommandRejected(r) => {
                let why = format!("{} refused: {}", r.command_type, r.message);
                match (state.stage, r.command_type.as_str()) {
                    (Stage::Reserving, "ReserveStock") => cancel(&mut next, &mut actions, why),
                    (Stage::Paying, "CapturePayment") => {
                        actions.push(Action::Compensate {
                            reason: why.clone(),
                        });
                        send(&mut actions, "ReleaseStock", order());
                        next.reason = Some(why);
                        next.stage = Stage::Releasing;
                    }
                    // Paid, then confirming failed: give the money back first.
                    (Stage::Confirming, "ConfirmOrder") => {
                        actions.push(Action::Compensate {
                            reason: why.clone(),
                        });
                        send(&mut actions, "RefundPayment", order());
                        next.reason = Some(why);
                        next.stage = Stage::Refunding;
                    }
                    (Stage::Done, _) => {}
                    _ => {
                        actions.push(Action::Fail { reason: why });
                        next.stage = Stage::Done;
                    }
                }
            }
            Trigger::Deadline(_) => {}
        }
        (actions, next)
    }
}

impl Saga for OrderSaga {
    type State = OrderSagaState;

    fn name(&self) -> &str {
        &self.name
    }

    fn source(&self) -> SubscriptionTarget {
        SubscriptionTarget::All
    }

    fn correlate(&self, event: &RecordedEvent) -> Option<String> {
        // Every runner sees every event of `$all`: the filter must be cheap. The order id
        // is the id of the stream each followed event lives in, so no JSON is parsed.
        if !FOLLOWED.contains(&event.event_type.as_str()) {
            return None;
        }
        let order_id = stream_id(&event.stream)?;
        self.partition.owns(order_id).then(|| order_id.to_owned())
    }

    fn starts(&self, event: &RecordedEvent) -> bool {
        event.event_type == "OrderCreated"
    }

    fn handle(&self, state: &Self::State, trigger: &Trigger<'_>) -> Vec<Action> {
        self.step(state, trigger).0
    }

    fn evolve(&self, state: &mut Self::State, trigger: &Trigger<'_>) {
        *state = self.step(state, trigger).1;
    }

    /// One decision gives both halves: the event's data is parsed once per step.
    fn decide(&self, state: &Self::State, trigger: &Trigger<'_>) -> (Vec<Action>, Self::State) {
        self.step(state, trigger)
    }
}

/// The id part of a stream name (`order-{id}` → `{id}`).
pub fn stream_id(stream: &str) -> Option<&str> {
    stream.split_once('-').map(|(_, id)| id)
}

/// The `orderId` field of an event's data.
pub fn order_id_of(event: &RecordedEvent) -> Option<String> {
    #[derive(Deserialize)]
    struct WithOrder {
        #[serde(rename = "orderId")]
        order_id: String,
    }
    serde_json::from_slice::<WithOrder>(&event.data)
        .ok()
        .map(|w| w.order_id)
}
