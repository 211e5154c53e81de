//! Orders bounded context: the `Order` aggregate. An order is created PENDING and ends in
//! exactly one terminal state, CONFIRMED or CANCELLED (with a reason); once terminal, the
//! other terminal command is refused and the same one changes nothing.

use eventum_runtime::{Aggregate, Command, DomainError};
use serde::{Deserialize, Serialize};

/// Most lines one order may have.
pub const ORDER_LINES_MAX: usize = 100;
/// Largest quantity of one line.
pub const LINE_QUANTITY_MAX: i64 = 10_000;
/// Longest shipping address, in characters.
pub const ADDRESS_CHARS_MAX: usize = 500;
/// Longest payment method name, in characters.
pub const PAYMENT_METHOD_CHARS_MAX: usize = 32;

/// One line of an order, priced when the order was placed (KRW, whole won).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderLine {
    pub product_id: u64,
    pub quantity: i64,
    pub unit_price: i64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum OrderStatus {
    #[default]
    Pending,
    Confirmed,
    Cancelled,
}

impl OrderStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Pending => "PENDING",
            OrderStatus::Confirmed => "CONFIRMED",
            OrderStatus::Cancelled => "CANCELLED",
        }
    }
    pub fn is_terminal(self) -> bool {
        self != OrderStatus::Pending
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all_fields = "camelCase")]
pub enum OrderCommand {
    PlaceOrder {
        order_id: String,
        user_id: String,
        order_items: Vec<OrderLine>,
        shipping_address: String,
        payment_method: String,
        total_amount: i64,
        /// RFC 3339, set by the interface: `decide` reads no clock.
        created_at: String,
    },
    ConfirmOrder {
        order_id: String,
    },
    CancelOrder {
        order_id: String,
        reason: String,
    },
}

impl Command for OrderCommand {
    const TYPES: &'static [&'static str] = &["PlaceOrder", "ConfirmOrder", "CancelOrder"];
    fn command_type(&self) -> &'static str {
        match self {
            Self::PlaceOrder { .. } => "PlaceOrder",
            Self::ConfirmOrder { .. } => "ConfirmOrder",
            Self::CancelOrder { .. } => "CancelOrder",
        }
    }
    fn validate(&self) -> Result<(), String> {
        let Self::PlaceOrder {
            order_items,
            shipping_address,
            payment_method,
            total_amount,
            ..
        } = self
        else {
            return Ok(());
        };
        check_lines(order_items.iter().map(|l| (l.product_id, l.quantity)))?;
        check_address(shipping_address)?;
        check_payment_method(payment_method)?;
        let sum: i64 = order_items.iter().map(|l| l.quantity * l.unit_price).sum();
        if sum != *total_amount {
            return Err(format!(
                "totalAmount {total_amount} is not the sum of the lines ({sum})"
            ));
        }
        Ok(())
    }
}

/// The rules of an order's lines, shared by the HTTP layer (before any lookup) and the
/// command.
pub fn check_lines(lines: impl ExactSizeIterator<Item = (u64, i64)>) -> Result<(), String> {
    let n = lines.len();
    if n == 0 {
        return Err("orderItems must not be empty".into());
    }
    if n > ORDER_LINES_MAX {
        return Err(format!(
            "orderItems has {n} lines; the limit is {ORDER_LINES_MAX}"
        ));
    }
    for (i, (product_id, quantity)) in lines.enumerate() {
        if quantity <= 0 || quantity > LINE_QUANTITY_MAX {
            return Err(format!(
                "orderItems[{i}] (product {product_id}): quantity must be 1 to {LINE_QUANTITY_MAX}, got {quantity}"
            ));
        }
    }
    Ok(())
}

pub fn check_address(address: &str) -> Result<(), String> {
    let n = address.trim().chars().count();
    if n == 0 {
        return Err("shippingAddress is required".into());
    }
    if n > ADDRESS_CHARS_MAX {
        return Err(format!(
            "shippingAddress is longer than {ADDRESS_CHARS_MAX} characters"
        ));
    }
    Ok(())
}

pub fn check_payment_method(method: &str) -> Result<(), String> {
    let n = method.chars().count();
    if n == 0 {
        return Err("paymentMethod is required".into());
    }
    if n > PAYMENT_METHOD_CHARS_MAX
        || !method
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
    {
        return Err(format!(
            "paymentMethod must be 1 to {PAYMENT_METHOD_CHARS_MAX} of A-Z, 0-9, '_' (such as CREDIT_CARD)"
        ));
    }
    Ok(())
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all_fields = "camelCase")]
pub enum OrderEvent {
    OrderCreated {
        order_id: String,
        user_id: String,
        order_items: Vec<OrderLine>,
        shipping_address: String,
        payment_method: String,
        total_amount: i64,
        created_at: String,
    },
    OrderConfirmed {
        order_id: String,
        user_id: String,
    },
    OrderCancelled {
        order_id: String,
        user_id: String,
        reason: String,
    },
}

#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum OrderError {
    #[error("order {0} does not exist")]
    NotFound(String),
    #[error("order {0} exists already with other contents")]
    AlreadyExists(String),
    #[error("order {0} is {1} and cannot change")]
    AlreadyTerminal(String, &'static str),
}

impl DomainError for OrderError {
    fn code(&self) -> &str {
        match self {
            OrderError::NotFound(_) => "order_not_found",
            OrderError::AlreadyExists(_) => "order_exists",
            OrderError::AlreadyTerminal(..) => "order_terminal",
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Order {
    /// The creation event; `None` before the order exists.
    pub created: Option<OrderEvent>,
    pub status: OrderStatus,
    pub reason: Option<String>,
}

impl Order {
    pub fn user_id(&self) -> Option<&str> {
        match &self.created {
            Some(OrderEvent::OrderCreated { user_id, .. }) => Some(user_id),
            _ => None,
        }
    }
}

impl Aggregate for Order {
    const CATEGORY: &'static str = "order";
    type Command = OrderCommand;
    type Event = OrderEvent;
    type Error = OrderError;

    fn aggregate_id(command: &OrderCommand) -> String {
        match command {
            OrderCommand::PlaceOrder { order_id, .. }
            | OrderCommand::ConfirmOrder { order_id }
            | OrderCommand::CancelOrder { order_id, .. } => order_id.clone(),
        }
    }

    fn decide(&self, command: &OrderCommand) -> Result<Vec<OrderEvent>, OrderError> {
        use OrderCommand as C;
        use OrderEvent as E;
        if let C::PlaceOrder {
            order_id,
            user_id,
            order_items,
            shipping_address,
            payment_method,
            total_amount,
            created_at,
        } = command
        {
            let event = E::OrderCreated {
                order_id: order_id.clone(),
                user_id: user_id.clone(),
                order_items: order_items.clone(),
                shipping_address: shipping_address.trim().to_owned(),
                payment_method: payment_method.clone(),
                total_amount: *total_amount,
                created_at: created_at.clone(),
            };
            return match &self.created {
                None => Ok(vec![event]),
                Some(existing) if *existing == event => Ok(vec![]),
                Some(_) => Err(OrderError::AlreadyExists(order_id.clone())),
            };
        }
        let id = Self::aggregate_id(command);
        let Some(user_id) = self.user_id().map(str::to_owned) else {
            return Err(OrderError::NotFound(id));
        };
        match (command, self.status) {
            (C::ConfirmOrder { .. }, OrderStatus::Pending) => Ok(vec![E::OrderConfirmed {
                order_id: id,
                user_id,
            }]),
            (C::CancelOrder { reason, .. }, OrderStatus::Pending) => Ok(vec![E::OrderCancelled {
                order_id: id,
                user_id,
                reason: reason.clone(),
            }]),
            (C::ConfirmOrder { .. }, OrderStatus::Confirmed)
            | (C::CancelOrder { .. }, OrderStatus::Cancelled) => Ok(vec![]),
            (_, status) => Err(OrderError::AlreadyTerminal(id, status.as_str())),
        }
    }

    fn evolve(mut self, event: &OrderEvent) -> Self {
        match event {
            OrderEvent::OrderCreated { .. } => {
                self.created = Some(event.clone());
                self.status = OrderStatus::Pending;
            }
            OrderEvent::OrderConfirmed { .. } => self.status = OrderStatus::Confirmed,
            OrderEvent::OrderCancelled { reason, .. } => {
                self.status = OrderStatus::Cancelled;
                self.reason = Some(reason.clone());
            }
        }
        self
    }
}
