//! The service's HTTP routes; every error is a JSON body from `eventum-server`'s one
//! error-code → status table.

use axum::Router;
use axum::routing::{get, post};

use crate::service::Service;
use crate::{commands_http as c, queries_http as q};

pub fn router(service: Service) -> Router {
    Router::new()
        .route("/requirements", post(c::create).get(q::list_requirements))
        .route("/requirements/{id}", get(q::get_requirement).put(c::update))
        .route(
            "/requirements/{id}/approval-request",
            post(c::request_approval),
        )
        .route(
            "/requirements/{id}/approval",
            post(c::approve).get(q::approval),
        )
        .route("/requirements/{id}/audit", get(q::audit))
        .route("/users/{user}/notifications", get(q::notifications))
        .route("/admin/projections/requirement-audit", get(q::audit_status))
        .route(
            "/admin/projections/requirement-audit/rebuild",
            post(q::rebuild_audit),
        )
        .with_state(service)
}
