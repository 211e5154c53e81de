//! The shop of seed 004, event-driven on Eventum: bounded contexts (users, products,
//! orders, payments, notifications) as aggregates, the order flow as an orchestrated saga
//! or as choreography, read models, and the HTTP/WebSocket API with JWT auth.

pub mod accounts;
pub mod audit;
pub mod auth;
pub mod batcher;
pub mod checkout;
pub mod choreography;
pub mod config;
pub mod error;
pub mod handlers;
pub mod http;
pub mod notifications;
pub mod ops;
pub mod orders;
pub mod partition;
pub mod payments;
pub mod products;
pub mod reservations;
pub mod saga;
pub mod service;
pub mod services;
pub mod users;
pub mod views;

pub use config::{FlowStyle, HashingConfig, ShopConfig};
pub use ops::{OrderItemRequest, OrderRequest};
pub use service::{RunningShop, Shop};
