//! Eventum's HTTP/JSON API: a thin layer over [`EventStore`] for appends, reads of
//! streams, `$all` and categories, SSE subscriptions, an OpenAPI document and a docs UI.
//! It holds no storage logic; every rule it checks comes from `eventum-core`.

mod api;
pub mod config;
pub mod error;
mod extract;
mod groups;
pub mod groups_model;
pub mod model;
mod reads;
mod sagas;
pub mod shutdown;
mod state;
mod streams;
mod subscribe;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::serve::{Listener, ListenerExt};
use eventum_core::EventStore;
use eventum_groups::GroupService;
use tokio::net::{TcpListener, TcpStream};

pub use config::{DEFAULT_LISTEN_ADDR, ServerConfig};
pub use error::{ApiError, status_for};
pub use shutdown::Shutdown;

use state::AppState;

/// `listener`, with Nagle's algorithm off on every connection it accepts. A Server-Sent
/// Events or WebSocket response is a run of small writes; with Nagle on, each one written
/// while the previous is unacknowledged waits for the client's delayed ACK (40 ms on
/// Linux), which put 40 ms into the tail of every live subscription.
fn without_nagle(listener: TcpListener) -> impl Listener<Io = TcpStream, Addr = SocketAddr> {
    listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::warn!(error = %e, "cannot turn Nagle's algorithm off on a connection");
        }
    })
}

/// Serves `app` on `listener` until `shutdown` resolves, then stops accepting and waits for
/// in-flight requests. Every HTTP server of ours (`eventum serve`, the shop gateway, the
/// requirements service) serves through this, so each accepts connections the same way
/// (Nagle off, see [`without_nagle`]).
pub async fn serve_app(
    listener: TcpListener,
    app: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(without_nagle(listener), app)
        .with_graceful_shutdown(shutdown)
        .await
}

/// The application router over `store`. Subscriptions it serves end only when their client
/// leaves or the store closes; [`serve`] also ends them on shutdown.
pub fn router(store: Arc<dyn EventStore>, config: ServerConfig) -> axum::Router {
    api::build(AppState::new(store, config))
}

/// [`router`] that also serves consumer groups (`/groups`) through `groups`.
pub fn router_with_groups(
    store: Arc<dyn EventStore>,
    groups: Arc<GroupService>,
    config: ServerConfig,
) -> axum::Router {
    api::build(AppState::new(store, config).with_groups(Some(groups)))
}

/// Serves the API on `listener` until `shutdown` resolves, then stops accepting, ends open
/// subscriptions and waits for in-flight requests to finish.
pub async fn serve(
    store: Arc<dyn EventStore>,
    config: ServerConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with_groups(store, None, config, listener, shutdown).await
}

/// [`serve`], also serving consumer groups when `groups` is given. The caller shuts the
/// group service down after this returns (it writes the final checkpoints).
pub async fn serve_with_groups(
    store: Arc<dyn EventStore>,
    groups: Option<Arc<GroupService>>,
    config: ServerConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with_routes(store, groups, None, config, listener, shutdown).await
}

/// [`serve_with_groups`], also serving an application's own `routes` (an embedded
/// service such as the shop) beside the store's API. The routes must not overlap the
/// store's paths and must not set a fallback.
pub async fn serve_with_routes(
    store: Arc<dyn EventStore>,
    groups: Option<Arc<GroupService>>,
    routes: Option<axum::Router>,
    config: ServerConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let state = AppState::new(store, config).with_groups(groups);
    let signal = state.shutdown.clone();
    let mut app = api::build(state);
    if let Some(routes) = routes {
        app = routes.merge(app);
    }
    serve_app(listener, app, async move {
        shutdown.await;
        tracing::info!("shutting down: ending subscriptions, finishing requests");
        signal.send_replace(true);
    })
    .await
}

#[cfg(test)]
mod tests {
    use axum::serve::Listener;

    use super::*;

    #[tokio::test]
    async fn accepted_connections_have_nagle_off() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut listener = without_nagle(listener);
        let client = TcpStream::connect(addr);
        let ((server_side, _), client) = tokio::join!(listener.accept(), client);
        drop(client.unwrap());
        assert!(
            server_side.nodelay().unwrap(),
            "the server's side has Nagle on"
        );
    }
}
