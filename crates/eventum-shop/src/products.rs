//! Products bounded context: the `Product` aggregate — catalog entry, price and stock,
//! with one open reservation per order. Stock never goes negative: a reservation larger
//! than the available stock is refused.

use std::collections::BTreeMap;

use eventum_runtime::{Aggregate, Command, DomainError};
use serde::{Deserialize, Serialize};

/// Longest product name, in characters.
pub const NAME_CHARS_MAX: usize = 200;
/// Largest price (KRW, whole won) and stock accepted.
pub const PRICE_MAX: i64 = 1_000_000_000;
pub const STOCK_MAX: i64 = 1_000_000_000;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all_fields = "camelCase")]
pub enum ProductCommand {
    CreateProduct {
        product_id: u64,
        name: String,
        description: String,
        price: i64,
        stock: i64,
    },
    /// Sets the available stock (an admin's restock or correction).
    SetProductStock {
        product_id: u64,
        stock: i64,
    },
    ReserveProductStock {
        product_id: u64,
        order_id: String,
        quantity: i64,
    },
    ReleaseProductStock {
        product_id: u64,
        order_id: String,
    },
    /// The order is confirmed: its reservation becomes a sale and is forgotten.
    CommitProductStock {
        product_id: u64,
        order_id: String,
    },
}

impl Command for ProductCommand {
    const TYPES: &'static [&'static str] = &[
        "CreateProduct",
        "SetProductStock",
        "ReserveProductStock",
        "ReleaseProductStock",
        "CommitProductStock",
    ];
    fn command_type(&self) -> &'static str {
        match self {
            Self::CreateProduct { .. } => "CreateProduct",
            Self::SetProductStock { .. } => "SetProductStock",
            Self::ReserveProductStock { .. } => "ReserveProductStock",
            Self::ReleaseProductStock { .. } => "ReleaseProductStock",
            Self::CommitProductStock { .. } => "CommitProductStock",
        }
    }
    fn validate(&self) -> Result<(), String> {
        match self {
            Self::CreateProduct {
                name, price, stock, ..
            } => {
                let n = name.trim().chars().count();
                if n == 0 || n > NAME_CHARS_MAX {
                    return Err(format!("name must be 1 to {NAME_CHARS_MAX} characters"));
                }
                if !(0..=PRICE_MAX).contains(price) {
                    return Err(format!("price must be 0 to {PRICE_MAX}"));
                }
                check_stock(*stock)
            }
            Self::SetProductStock { stock, .. } => check_stock(*stock),
            Self::ReserveProductStock { quantity, .. } if *quantity <= 0 => {
                Err("quantity must be positive".into())
            }
            _ => Ok(()),
        }
    }
}

fn check_stock(stock: i64) -> Result<(), String> {
    if !(0..=STOCK_MAX).contains(&stock) {
        return Err(format!("stock must be 0 to {STOCK_MAX}"));
    }
    Ok(())
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all_fields = "camelCase")]
pub enum ProductEvent {
    ProductCreated {
        product_id: u64,
        name: String,
        description: String,
        price: i64,
        stock: i64,
    },
    ProductStockSet {
        product_id: u64,
        stock: i64,
    },
    ProductStockReserved {
        product_id: u64,
        order_id: String,
        quantity: i64,
        stock_after: i64,
    },
    ProductStockReleased {
        product_id: u64,
        order_id: String,
        quantity: i64,
        stock_after: i64,
    },
    ProductStockCommitted {
        product_id: u64,
        order_id: String,
        quantity: i64,
    },
}

#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ProductError {
    #[error("product {0} does not exist")]
    NotFound(u64),
    #[error("product {0} exists already")]
    AlreadyExists(u64),
    #[error(
        "insufficient stock for product {product_id}: {requested} requested, {available} available"
    )]
    InsufficientStock {
        product_id: u64,
        requested: i64,
        available: i64,
    },
}

impl DomainError for ProductError {
    fn code(&self) -> &str {
        match self {
            ProductError::NotFound(_) => "product_not_found",
            ProductError::AlreadyExists(_) => "product_exists",
            ProductError::InsufficientStock { .. } => "insufficient_stock",
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Product {
    pub product_id: Option<u64>,
    pub name: String,
    pub description: String,
    pub price: i64,
    /// Available stock (reserved units are already taken out).
    pub stock: i64,
    /// Open reservations: order id → quantity. Closed by release or commit, so this
    /// holds only orders in flight.
    pub reservations: BTreeMap<String, i64>,
}

impl Product {
    pub fn reserved(&self) -> i64 {
        self.reservations.values().sum()
    }
}

impl Aggregate for Product {
    const CATEGORY: &'static str = "product";
    type Command = ProductCommand;
    type Event = ProductEvent;
    type Error = ProductError;

    fn aggregate_id(command: &ProductCommand) -> String {
        match command {
            ProductCommand::CreateProduct { product_id, .. }
            | ProductCommand::SetProductStock { product_id, .. }
            | ProductCommand::ReserveProductStock { product_id, .. }
            | ProductCommand::ReleaseProductStock { product_id, .. }
            | ProductCommand::CommitProductStock { product_id, .. } => product_id.to_string(),
        }
    }

    fn decide(&self, command: &ProductCommand) -> Result<Vec<ProductEvent>, ProductError> {
        use ProductCommand as C;
        use ProductEvent as E;
        if let C::CreateProduct {
            product_id,
            name,
            description,
            price,
            stock,
        } = command
        {
            if self.product_id.is_some() {
                return Err(ProductError::AlreadyExists(*product_id));
            }
            return Ok(vec![E::ProductCreated {
                product_id: *product_id,
                name: name.trim().to_owned(),
                description: description.clone(),
                price: *price,
                stock: *stock,
            }]);
        }
        let Some(id) = self.product_id else {
            let id = Self::aggregate_id(command).parse().unwrap_or_default();
            return Err(ProductError::NotFound(id));
        };
        Ok(match command {
            C::CreateProduct { .. } => unreachable!("handled above"),
            C::SetProductStock { stock, .. } if *stock == self.stock => vec![],
            C::SetProductStock { stock, .. } => vec![E::ProductStockSet {
                product_id: id,
                stock: *stock,
            }],
            // One reservation per order: a repeated reservation is already done.
            C::ReserveProductStock { order_id, .. } if self.reservations.contains_key(order_id) => {
                vec![]
            }
            C::ReserveProductStock {
                order_id, quantity, ..
            } => {
                if *quantity > self.stock {
                    return Err(ProductError::InsufficientStock {
                        product_id: id,
                        requested: *quantity,
                        available: self.stock,
                    });
                }
                vec![E::ProductStockReserved {
                    product_id: id,
                    order_id: order_id.clone(),
                    quantity: *quantity,
                    stock_after: self.stock - quantity,
                }]
            }
            C::ReleaseProductStock { order_id, .. } => match self.reservations.get(order_id) {
                None => vec![],
                Some(quantity) => vec![E::ProductStockReleased {
                    product_id: id,
                    order_id: order_id.clone(),
                    quantity: *quantity,
                    stock_after: self.stock + quantity,
                }],
            },
            C::CommitProductStock { order_id, .. } => match self.reservations.get(order_id) {
                None => vec![],
                Some(quantity) => vec![E::ProductStockCommitted {
                    product_id: id,
                    order_id: order_id.clone(),
                    quantity: *quantity,
                }],
            },
        })
    }

    fn evolve(mut self, event: &ProductEvent) -> Self {
        use ProductEvent as E;
        match event {
            E::ProductCreated {
                product_id,
                name,
                description,
                price,
                stock,
            } => {
                self.product_id = Some(*product_id);
                self.name = name.clone();
                self.description = description.clone();
                self.price = *price;
                self.stock = *stock;
            }
            E::ProductStockSet { stock, .. } => self.stock = *stock,
            E::ProductStockReserved {
                order_id, quantity, ..
            } => {
                self.stock -= quantity;
                self.reservations.insert(order_id.clone(), *quantity);
            }
            E::ProductStockReleased {
                order_id, quantity, ..
            } => {
                self.stock += quantity;
                self.reservations.remove(order_id);
            }
            E::ProductStockCommitted { order_id, .. } => {
                self.reservations.remove(order_id);
            }
        }
        self
    }
}
