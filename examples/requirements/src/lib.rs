//! The requirements-tracking service from seed 000 on the Eventum runtime: the
//! requirement aggregate and its commands, a read model with queries, an audit-log
//! projection, a notification consumer, `RequirementApprovalSaga`, and HTTP endpoints.

pub mod domain;
