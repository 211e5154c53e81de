//! The requirements-tracking service from seed 000 on the Eventum runtime: the
//! requirement aggregate and its commands, a read model with queries, an audit-log
//! projection, a notification consumer, `RequirementApprovalSaga`, and HTTP endpoints.

pub mod approval_saga;
mod commands_http;
pub mod domain;
pub mod http;
pub mod notify;
mod queries_http;
pub mod service;
pub mod views;

pub use service::{Running, Service, ServiceConfig};
