//! Products bounded context, order side: the `Reservation` aggregate records, per order,
//! the outcome of reserving its stock — `StockReserved`, `StockReservationFailed`, later
//! `StockReleased` — the events the order flow follows (topics `stock-reserved` and
//! `stock-reservation-failed` of seed 004).

use eventum_runtime::{Aggregate, Command, DomainError};
use serde::{Deserialize, Serialize};

use crate::orders::OrderLine;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all_fields = "camelCase")]
pub enum ReservationCommand {
    RecordStockReserved {
        order_id: String,
        user_id: String,
        order_items: Vec<OrderLine>,
        total_amount: i64,
        payment_method: String,
    },
    RecordStockReservationFailed {
        order_id: String,
        user_id: String,
        reason: String,
    },
    RecordStockReleased {
        order_id: String,
    },
}

impl Command for ReservationCommand {
    const TYPES: &'static [&'static str] = &[
        "RecordStockReserved",
        "RecordStockReservationFailed",
        "RecordStockReleased",
    ];
    fn command_type(&self) -> &'static str {
        match self {
            Self::RecordStockReserved { .. } => "RecordStockReserved",
            Self::RecordStockReservationFailed { .. } => "RecordStockReservationFailed",
            Self::RecordStockReleased { .. } => "RecordStockReleased",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all_fields = "camelCase")]
pub enum ReservationEvent {
    StockReserved {
        order_id: String,
        user_id: String,
        order_items: Vec<OrderLine>,
        total_amount: i64,
        payment_method: String,
    },
    StockReservationFailed {
        order_id: String,
        user_id: String,
        reason: String,
    },
    StockReleased {
        order_id: String,
        user_id: String,
        order_items: Vec<OrderLine>,
    },
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReservationStatus {
    #[default]
    None,
    Reserved,
    Failed,
    Released,
}

#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ReservationError {
    #[error("the stock of order {0} has an outcome already")]
    AlreadyDecided(String),
}

impl DomainError for ReservationError {
    fn code(&self) -> &str {
        "reservation_decided"
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Reservation {
    pub status: ReservationStatus,
    pub user_id: String,
    pub order_items: Vec<OrderLine>,
}

impl Aggregate for Reservation {
    const CATEGORY: &'static str = "reservation";
    type Command = ReservationCommand;
    type Event = ReservationEvent;
    type Error = ReservationError;

    fn aggregate_id(command: &ReservationCommand) -> String {
        match command {
            ReservationCommand::RecordStockReserved { order_id, .. }
            | ReservationCommand::RecordStockReservationFailed { order_id, .. }
            | ReservationCommand::RecordStockReleased { order_id } => order_id.clone(),
        }
    }

    fn decide(
        &self,
        command: &ReservationCommand,
    ) -> Result<Vec<ReservationEvent>, ReservationError> {
        use ReservationCommand as C;
        use ReservationEvent as E;
        use ReservationStatus as S;
        Ok(match (command, self.status) {
            (
                C::RecordStockReserved {
                    order_id,
                    user_id,
                    order_items,
                    total_amount,
                    payment_method,
                },
                S::None,
            ) => vec![E::StockReserved {
                order_id: order_id.clone(),
                user_id: user_id.clone(),
                order_items: order_items.clone(),
                total_amount: *total_amount,
                payment_method: payment_method.clone(),
            }],
            (
                C::RecordStockReservationFailed {
                    order_id,
                    user_id,
                    reason,
                },
                S::None,
            ) => vec![E::StockReservationFailed {
                order_id: order_id.clone(),
                user_id: user_id.clone(),
                reason: reason.clone(),
            }],
            (C::RecordStockReserved { .. }, S::Reserved | S::Released)
            | (C::RecordStockReservationFailed { .. }, S::Failed) => vec![],
            (C::RecordStockReleased { order_id }, S::Reserved) => vec![E::StockReleased {
                order_id: order_id.clone(),
                user_id: self.user_id.clone(),
                order_items: self.order_items.clone(),
            }],
            // Nothing was reserved, or it is released already: nothing to release.
            (C::RecordStockReleased { .. }, _) => vec![],
            (command, _) => {
                return Err(ReservationError::AlreadyDecided(Self::aggregate_id(
                    command,
                )));
            }
        })
    }

    fn evolve(mut self, event: &ReservationEvent) -> Self {
        match event {
            ReservationEvent::StockReserved {
                user_id,
                order_items,
                ..
            } => {
                self.status = ReservationStatus::Reserved;
                self.user_id = user_id.clone();
                self.order_items = order_items.clone();
            }
            ReservationEvent::StockReservationFailed { user_id, .. } => {
                self.status = ReservationStatus::Failed;
                self.user_id = user_id.clone();
            }
            ReservationEvent::StockReleased { .. } => self.status = ReservationStatus::Released,
        }
        self
    }
}
