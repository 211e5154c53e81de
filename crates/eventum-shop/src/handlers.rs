//! The command handlers that span aggregates or call the outside world: reserving an
//! order's stock across its products (`ReserveStock`, `ReleaseStock`, `CommitStock`) and
//! taking its payment from the simulated provider (`CapturePayment`, `RefundPayment`).
//! Both flows (saga and choreography) send these. Every sub-command's id is derived from
//! the command's id, and every step is idempotent, so a retried command (after a crash or a
//! timeout) converges on the same outcome.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use eventum_core::CommandAccepted;
use eventum_runtime::{
    Aggregate, Command, CommandContext, CommandHandler, CommandMeta, DispatchError, Repository,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::batcher::ProductBatcher;
use crate::orders::OrderLine;
use crate::payments::{Payment, PaymentCommand, ProviderConfig};
use crate::products::ProductCommand;
use crate::reservations::{Reservation, ReservationCommand, ReservationStatus};

/// Routes an aggregate's commands to a repository that others share.
pub struct Shared<A: Aggregate>(pub Arc<Repository<A>>);

#[async_trait]
impl<A: Aggregate> CommandHandler for Shared<A> {
    type Command = A::Command;
    async fn handle(
        &self,
        command: A::Command,
        ctx: &CommandContext,
    ) -> Result<CommandAccepted, DispatchError> {
        self.0.execute(&command, ctx).await
    }
}

/// The context of a sub-command: its id derived from the parent's id and `label`.
fn sub_context(parent: &CommandContext, label: &str, command_type: &'static str) -> CommandContext {
    CommandContext {
        command_type,
        meta: CommandMeta {
            command_id: Uuid::new_v5(&parent.meta.command_id, label.as_bytes()),
            correlation_id: parent.meta.correlation_id,
            causation_id: parent.meta.command_id,
            principal: None,
        },
    }
}

async fn run<A: Aggregate>(
    repo: &Repository<A>,
    parent: &CommandContext,
    label: &str,
    command: A::Command,
) -> Result<CommandAccepted, DispatchError> {
    let ctx = sub_context(parent, label, command.command_type());
    repo.execute(&command, &ctx).await
}

fn nothing(stream: String) -> CommandAccepted {
    CommandAccepted {
        stream,
        version: None,
        position: None,
        event_ids: Vec::new(),
        duplicate: true,
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all_fields = "camelCase")]
pub enum StockCommand {
    ReserveStock {
        order_id: String,
        user_id: String,
        order_items: Vec<OrderLine>,
        total_amount: i64,
        payment_method: String,
    },
    ReleaseStock {
        order_id: String,
    },
    CommitStock {
        order_id: String,
    },
}

impl Command for StockCommand {
    const TYPES: &'static [&'static str] = &["ReserveStock", "ReleaseStock", "CommitStock"];
    fn command_type(&self) -> &'static str {
        match self {
            Self::ReserveStock { .. } => "ReserveStock",
            Self::ReleaseStock { .. } => "ReleaseStock",
            Self::CommitStock { .. } => "CommitStock",
        }
    }
}

/// The product service's side of the flow. Product commands go through the batcher, so
/// that concurrent orders of one product share appends.
pub struct StockHandler {
    pub products: Arc<ProductBatcher>,
    pub reservations: Arc<Repository<Reservation>>,
}

impl StockHandler {
    async fn product(
        &self,
        parent: &CommandContext,
        label: &str,
        command: ProductCommand,
    ) -> Result<CommandAccepted, DispatchError> {
        let ctx = sub_context(parent, label, command.command_type());
        self.products.execute(command, ctx).await
    }
}

/// Quantities per product, products in ascending id order (a fixed order, so that two
/// orders never wait on each other's products in opposite orders).
fn per_product(lines: &[OrderLine]) -> BTreeMap<u64, i64> {
    let mut merged = BTreeMap::new();
    for line in lines {
        *merged.entry(line.product_id).or_insert(0) += line.quantity;
    }
    merged
}

impl StockHandler {
    async fn reserve(
        &self,
        ctx: &CommandContext,
        order_id: &str,
        user_id: &str,
        lines: &[OrderLine],
        total_amount: i64,
        payment_method: &str,
    ) -> Result<CommandAccepted, DispatchError> {
        let current = self.reservations.load(order_id).await?;
        if current.state.status != ReservationStatus::None {
            return Ok(nothing(format!("reservation-{order_id}")));
        }
        let mut reserved = Vec::new();
        let mut failure = None;
        for (product_id, quantity) in per_product(lines) {
            let command = ProductCommand::ReserveProductStock {
                product_id,
                order_id: order_id.to_owned(),
                quantity,
            };
            match self
                .product(ctx, &format!("reserve-{product_id}"), command)
                .await
            {
                Ok(_) => reserved.push(product_id),
                Err(DispatchError::Rejected { message, .. }) => {
                    failure = Some(message);
                    break;
                }
                // Technical: the caller retries the whole command; what was reserved
                // stays reserved for this order and is found again.
                Err(e) => return Err(e),
            }
        }
        let record = match failure {
            None => ReservationCommand::RecordStockReserved {
                order_id: order_id.to_owned(),
                user_id: user_id.to_owned(),
                order_items: lines.to_vec(),
                total_amount,
                payment_method: payment_method.to_owned(),
            },
            Some(reason) => {
                for product_id in reserved {
                    let command = ProductCommand::ReleaseProductStock {
                        product_id,
                        order_id: order_id.to_owned(),
                    };
                    self.product(ctx, &format!("undo-{product_id}"), command)
                        .await?;
                }
                ReservationCommand::RecordStockReservationFailed {
                    order_id: order_id.to_owned(),
                    user_id: user_id.to_owned(),
                    reason,
                }
            }
        };
        run(&self.reservations, ctx, "record", record).await
    }

    /// Releases (or commits) the products of a reserved order, then records a release.
    async fn close(
        &self,
        ctx: &CommandContext,
        order_id: &str,
        commit: bool,
    ) -> Result<CommandAccepted, DispatchError> {
        let current = self.reservations.load(order_id).await?;
        if current.state.status != ReservationStatus::Reserved {
            return Ok(nothing(format!("reservation-{order_id}")));
        }
        let mut last = None;
        for product_id in per_product(&current.state.order_items).into_keys() {
            let order_id = order_id.to_owned();
            let command = if commit {
                ProductCommand::CommitProductStock {
                    product_id,
                    order_id,
                }
            } else {
                ProductCommand::ReleaseProductStock {
                    product_id,
                    order_id,
                }
            };
            last = Some(
                self.product(ctx, &format!("close-{product_id}"), command)
                    .await?,
            );
        }
        if commit {
            return Ok(last.unwrap_or_else(|| nothing(format!("reservation-{order_id}"))));
        }
        let record = ReservationCommand::RecordStockReleased {
            order_id: order_id.to_owned(),
        };
        run(&self.reservations, ctx, "record-release", record).await
    }
}

#[async_trait]
impl CommandHandler for StockHandler {
    type Command = StockCommand;
    async fn handle(
        &self,
        command: StockCommand,
        ctx: &CommandContext,
    ) -> Result<CommandAccepted, DispatchError> {
        match command {
            StockCommand::ReserveStock {
                order_id,
                user_id,
                order_items,
                total_amount,
                payment_method,
            } => {
                self.reserve(
                    ctx,
                    &order_id,
                    &user_id,
                    &order_items,
                    total_amount,
                    &payment_method,
                )
                .await
            }
            StockCommand::ReleaseStock { order_id } => self.close(ctx, &order_id, false).await,
            StockCommand::CommitStock { order_id } => self.close(ctx, &order_id, true).await,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all_fields = "camelCase")]
pub enum PaymentFlowCommand {
    CapturePayment {
        order_id: String,
        user_id: String,
        total_amount: i64,
        payment_method: String,
    },
    RefundPayment {
        order_id: String,
    },
}

impl Command for PaymentFlowCommand {
    const TYPES: &'static [&'static str] = &["CapturePayment", "RefundPayment"];
    fn command_type(&self) -> &'static str {
        match self {
            Self::CapturePayment { .. } => "CapturePayment",
            Self::RefundPayment { .. } => "RefundPayment",
        }
    }
}

/// The payment service's side of the flow: asks the simulated provider, records the
/// verdict.
pub struct PaymentHandler {
    pub payments: Arc<Repository<Payment>>,
    pub provider: ProviderConfig,
}

#[async_trait]
impl CommandHandler for PaymentHandler {
    type Command = PaymentFlowCommand;
    async fn handle(
        &self,
        command: PaymentFlowCommand,
        ctx: &CommandContext,
    ) -> Result<CommandAccepted, DispatchError> {
        match command {
            PaymentFlowCommand::CapturePayment {
                order_id,
                user_id,
                total_amount,
                payment_method,
            } => {
                let current = self.payments.load(&order_id).await?;
                if current.version.is_some() {
                    // Decided already: the provider is not asked twice.
                    return Ok(nothing(format!("payment-{order_id}")));
                }
                if self.provider.latency_ms > 0 {
                    tokio::time::sleep(Duration::from_millis(self.provider.latency_ms)).await;
                }
                let verdict = self
                    .provider
                    .authorize(&order_id, &payment_method, total_amount);
                let record = PaymentCommand::RecordPaymentVerdict {
                    order_id,
                    user_id,
                    amount: total_amount,
                    payment_method,
                    verdict,
                };
                run(&self.payments, ctx, "verdict", record).await
            }
            PaymentFlowCommand::RefundPayment { order_id } => {
                run(
                    &self.payments,
                    ctx,
                    "refund",
                    PaymentCommand::RecordRefund { order_id },
                )
                .await
            }
        }
    }
}
