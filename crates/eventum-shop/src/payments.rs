//! Payments bounded context: the simulated provider (deterministic rules, configurable
//! latency) and the `Payment` aggregate, one per order: captured or declined once, and
//! refunded at most once after a capture.

use eventum_runtime::{Aggregate, Command, DomainError};
use serde::{Deserialize, Serialize};

/// The payment method the simulated provider always declines.
pub const DECLINED_CARD: &str = "DECLINED_CARD";

/// The simulated provider's rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderConfig {
    /// Amounts above this (KRW) are declined. Default 10,000,000.
    pub amount_max: i64,
    /// Time one authorization takes, in milliseconds. Default 0.
    pub latency_ms: u64,
}

impl Default for ProviderConfig {
    fn default() -> Self {
        Self {
            amount_max: 10_000_000,
            latency_ms: 0,
        }
    }
}

/// What the provider answered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all_fields = "camelCase")]
pub enum Verdict {
    Approved { transaction_id: String },
    Declined { reason: String },
}

impl ProviderConfig {
    /// The provider's decision; deterministic, so a retried capture gets the same answer.
    /// The transaction id is derived from the order id for the same reason.
    pub fn authorize(&self, order_id: &str, method: &str, amount: i64) -> Verdict {
        if method == DECLINED_CARD {
            return Verdict::Declined {
                reason: "payment declined: card declined".into(),
            };
        }
        if amount > self.amount_max {
            return Verdict::Declined {
                reason: format!(
                    "payment declined: amount {amount} exceeds the limit {}",
                    self.amount_max
                ),
            };
        }
        let id = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, order_id.as_bytes());
        Verdict::Approved {
            transaction_id: format!("tx-{}", id.simple()),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all_fields = "camelCase")]
pub enum PaymentCommand {
    /// Records the provider's verdict for an order's payment.
    RecordPaymentVerdict {
        order_id: String,
        user_id: String,
        amount: i64,
        payment_method: String,
        verdict: Verdict,
    },
    RecordRefund {
        order_id: String,
    },
}

impl Command for PaymentCommand {
    const TYPES: &'static [&'static str] = &["RecordPaymentVerdict", "RecordRefund"];
    fn command_type(&self) -> &'static str {
        match self {
            Self::RecordPaymentVerdict { .. } => "RecordPaymentVerdict",
            Self::RecordRefund { .. } => "RecordRefund",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all_fields = "camelCase")]
pub enum PaymentEvent {
    PaymentCompleted {
        order_id: String,
        user_id: String,
        amount: i64,
        payment_method: String,
        transaction_id: String,
    },
    PaymentFailed {
        order_id: String,
        user_id: String,
        amount: i64,
        reason: String,
    },
    PaymentRefunded {
        order_id: String,
        user_id: String,
        amount: i64,
        transaction_id: String,
    },
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum PaymentStatus {
    #[default]
    None,
    Captured,
    Declined,
    Refunded,
}

#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum PaymentError {
    #[error("the payment of order {0} has a verdict already")]
    AlreadyDecided(String),
}

impl DomainError for PaymentError {
    fn code(&self) -> &str {
        "payment_decided"
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Payment {
    pub status: PaymentStatus,
    pub user_id: String,
    pub amount: i64,
    pub transaction_id: String,
}

impl Aggregate for Payment {
    const CATEGORY: &'static str = "payment";
    type Command = PaymentCommand;
    type Event = PaymentEvent;
    type Error = PaymentError;

    fn aggregate_id(command: &PaymentCommand) -> String {
        match command {
            PaymentCommand::RecordPaymentVerdict { order_id, .. }
            | PaymentCommand::RecordRefund { order_id } => order_id.clone(),
        }
    }

    fn decide(&self, command: &PaymentCommand) -> Result<Vec<PaymentEvent>, PaymentError> {
        use PaymentCommand as C;
        use PaymentEvent as E;
        match command {
            C::RecordPaymentVerdict {
                order_id,
                user_id,
                amount,
                payment_method,
                verdict,
            } => {
                if self.status != PaymentStatus::None {
                    // The same verdict again is a retry; another one is a bug upstream.
                    let same = match verdict {
                        Verdict::Approved { transaction_id } => {
                            *transaction_id == self.transaction_id
                        }
                        Verdict::Declined { .. } => self.status == PaymentStatus::Declined,
                    };
                    return if same {
                        Ok(vec![])
                    } else {
                        Err(PaymentError::AlreadyDecided(order_id.clone()))
                    };
                }
                Ok(vec![match verdict {
                    Verdict::Approved { transaction_id } => E::PaymentCompleted {
                        order_id: order_id.clone(),
                        user_id: user_id.clone(),
                        amount: *amount,
                        payment_method: payment_method.clone(),
                        transaction_id: transaction_id.clone(),
                    },
                    Verdict::Declined { reason } => E::PaymentFailed {
                        order_id: order_id.clone(),
                        user_id: user_id.clone(),
                        amount: *amount,
                        reason: reason.clone(),
                    },
                }])
            }
            // Only a captured payment is refunded; anything else has nothing to refund.
            C::RecordRefund { order_id } if self.status == PaymentStatus::Captured => {
                Ok(vec![E::PaymentRefunded {
                    order_id: order_id.clone(),
                    user_id: self.user_id.clone(),
                    amount: self.amount,
                    transaction_id: self.transaction_id.clone(),
                }])
            }
            C::RecordRefund { .. } => Ok(vec![]),
        }
    }

    fn evolve(mut self, event: &PaymentEvent) -> Self {
        match event {
            PaymentEvent::PaymentCompleted {
                user_id,
                amount,
                transaction_id,
                ..
            } => {
                self.status = PaymentStatus::Captured;
                self.user_id = user_id.clone();
                self.amount = *amount;
                self.transaction_id = transaction_id.clone();
            }
            PaymentEvent::PaymentFailed {
                user_id, amount, ..
            } => {
                self.status = PaymentStatus::Declined;
                self.user_id = user_id.clone();
                self.amount = *amount;
            }
            PaymentEvent::PaymentRefunded { .. } => self.status = PaymentStatus::Refunded,
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_declines_the_declined_card_and_amounts_over_the_limit_only() {
        let p = ProviderConfig {
            amount_max: 1000,
            latency_ms: 0,
        };
        assert!(matches!(
            p.authorize("o", DECLINED_CARD, 1),
            Verdict::Declined { .. }
        ));
        assert!(matches!(
            p.authorize("o", "CREDIT_CARD", 1001),
            Verdict::Declined { .. }
        ));
        assert_eq!(
            p.authorize("o", "CREDIT_CARD", 1000),
            p.authorize("o", "CREDIT_CARD", 1000)
        );
        assert!(matches!(
            p.authorize("o", "CREDIT_CARD", 1000),
            Verdict::Approved { .. }
        ));
    }
}
