//! The web dashboard's server (`mmm serve`, `mmm run --dashboard`): the JSON API, the
//! WebSocket and SSE streams, Prometheus metrics and the page, all read from the store, so it
//! shows every job whichever process runs it (docs/api.md).
//!
//! [`router`] builds the routes from an [`AppState`] without a listener, so tests can drive it;
//! [`serve`] runs it on a listener until a shutdown future resolves. Every store read runs in
//! `spawn_blocking` (the `Store` trait is synchronous).
//!
//! Security: [`check_bind`] refuses an address other than loopback without a token; with a
//! token every request (HTTP and the WebSocket upgrade) must carry it, as
//! `Authorization: Bearer TOKEN` or `?token=TOKEN`. No CORS headers are sent, and WebSocket
//! upgrades from a page of another origin are refused.

mod api;
mod assets;
mod auth;
mod cache;
mod control;
mod error;
mod hub;
mod item;
mod logs;
mod prometheus;
mod runs;
mod sse;
mod stats;
mod summary;
mod ws;

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use axum::serve::{ListenerExt, TapIo};

pub use error::ApiError;
pub use summary::JobSummary;

use mmm_runs::watch::Watch;
use mmm_store::Store;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The store the dashboard reads.
    pub store: Arc<dyn Store>,
    /// The token every request must carry; `None` on loopback without `--token`.
    pub token: Option<Arc<str>>,
    /// Reads shared by the WebSocket clients.
    cache: Arc<cache::Cache>,
    /// The live feed of each job a WebSocket client follows.
    hubs: Arc<hub::Hubs>,
    /// The observed runs (`mmm serve --runs`), if any.
    runs: Option<Arc<Watch>>,
    /// How long `/metrics` keeps a finished job's own series after its record last changed.
    metrics_retention: Duration,
}

/// `/metrics` keeps a finished job's own series this long by default.
pub const DEFAULT_METRICS_RETENTION: Duration = Duration::from_secs(15 * 60);

impl AppState {
    /// A state reading `store`, requiring `token` when given.
    pub fn new(store: Arc<dyn Store>, token: Option<String>) -> Self {
        AppState {
            store,
            token: token.map(Arc::from),
            cache: Arc::default(),
            hubs: Arc::default(),
            runs: None,
            metrics_retention: DEFAULT_METRICS_RETENTION,
        }
    }

    /// The same state, keeping a finished job's own `/metrics` series for `retention` after
    /// its record last changed (then only the series by name count it).
    pub fn with_metrics_retention(mut self, retention: Duration) -> Self {
        self.metrics_retention = retention;
        self
    }

    /// The same state, also showing the runs `watch` observes (the Runs tab, `/api/runs`,
    /// the `runs` WebSocket feed).
    pub fn with_runs(mut self, watch: Watch) -> Self {
        self.runs = Some(Arc::new(watch));
        self
    }
}

/// Why the server could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    /// An address other than loopback was asked for without a token.
    #[error(
        "binding {addr} exposes the dashboard beyond this machine, so it needs a token: pass \
         --token TOKEN (or bind 127.0.0.1)"
    )]
    TokenRequired {
        /// The address asked for.
        addr: IpAddr,
    },
    /// The listener could not be opened.
    #[error("could not listen on {addr}; is the port taken? pick another with --port")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// No port from `first` on was free.
    #[error("no free port from {first} to {last} on {ip}; pick one with --port")]
    NoFreePort {
        /// The address.
        ip: IpAddr,
        /// The first port tried.
        first: u16,
        /// The last port tried.
        last: u16,
    },
    /// The server stopped with an I/O error.
    #[error("the dashboard server stopped")]
    Serve {
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// Checks that `bind` may be served with `token`: loopback addresses may go without one, any
/// other address requires one (a blank token counts as none).
pub fn check_bind(bind: IpAddr, token: Option<&str>) -> Result<(), WebError> {
    let has_token = token.is_some_and(|t| !t.trim().is_empty());
    if bind.is_loopback() || has_token {
        Ok(())
    } else {
        Err(WebError::TokenRequired { addr: bind })
    }
}

/// The dashboard's routes over `state`.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(assets::index))
        .route("/assets/{name}", get(assets::asset))
        .route("/api/jobs", get(api::jobs))
        .route("/api/jobs/{id}", get(api::job))
        .route("/api/jobs/{id}/agents", get(api::agents))
        .route("/api/jobs/{id}/items", get(api::items))
        .route("/api/jobs/{id}/snapshots", get(api::snapshots))
        .route("/api/jobs/{id}/history", get(api::snapshots))
        .route("/api/jobs/{id}/ledger", get(api::ledger))
        .route("/api/jobs/{id}/items/{item}", get(item::item))
        .route("/api/jobs/{id}/items/{item}/log", get(logs::item_log))
        .route("/api/jobs/{id}/eta-accuracy", get(api::eta_accuracy))
        .route("/api/jobs/{id}/export", get(api::export))
        .route("/api/jobs/{id}/events", get(sse::events))
        .route("/api/jobs/{id}/control", post(control::control))
        .route("/api/stats", get(stats::stats))
        .route("/api/runs", get(runs::runs))
        .route("/ws", get(ws::upgrade))
        .route("/metrics", get(prometheus::metrics))
        .route("/healthz", get(api::healthz))
        .fallback(api::not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ))
        .with_state(state)
}

/// Binds `ip:port`; with `search`, the next free port up to 100 further when it is taken.
pub async fn bind(
    ip: IpAddr,
    port: u16,
    search: bool,
) -> Result<tokio::net::TcpListener, WebError> {
    let last = if search {
        port.saturating_add(100)
    } else {
        port
    };
    for candidate in port..=last {
        let addr = SocketAddr::new(ip, candidate);
        match tokio::net::TcpListener::bind(addr).await {
            Ok(listener) => return Ok(listener),
            Err(e) if search && e.kind() == std::io::ErrorKind::AddrInUse => continue,
            Err(source) => return Err(WebError::Bind { addr, source }),
        }
    }
    Err(WebError::NoFreePort {
        ip,
        first: port,
        last,
    })
}

/// Serves the dashboard on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), WebError> {
    axum::serve(without_delay(listener), router(state))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|source| WebError::Serve { source })
}

/// `listener`, with TCP_NODELAY set on every connection it accepts. Without it, a WebSocket
/// message written while the previous one is still unacknowledged waits for the client's
/// delayed ACK (40 ms on Linux): that was most of the dashboard's event latency (p99 45-49 ms
/// in the runner's process, 15-22 ms without it).
fn without_delay(
    listener: tokio::net::TcpListener,
) -> TapIo<tokio::net::TcpListener, fn(&mut tokio::net::TcpStream)> {
    fn set_nodelay(stream: &mut tokio::net::TcpStream) {
        // A connection that refuses the option is still served, only later.
        let _ = stream.set_nodelay(true);
    }
    listener.tap_io(set_nodelay)
}

/// Runs a blocking store read off the async threads.
async fn blocking<T, F>(f: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, ApiError> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| ApiError::Internal("a store read stopped unexpectedly".into()))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_required_off_loopback() {
        let any: IpAddr = "0.0.0.0".parse().unwrap();
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        let local6: IpAddr = "::1".parse().unwrap();
        assert!(check_bind(local, None).is_ok());
        assert!(check_bind(local6, None).is_ok());
        assert!(matches!(
            check_bind(any, None),
            Err(WebError::TokenRequired { .. })
        ));
        assert!(check_bind(any, Some("  ")).is_err());
        assert!(check_bind(any, Some("s3cret")).is_ok());
    }

    #[tokio::test]
    async fn accepted_connections_send_without_delay() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut listener = without_delay(listener);
        let _client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (accepted, _) = axum::serve::Listener::accept(&mut listener).await;
        assert!(accepted.nodelay().unwrap(), "TCP_NODELAY is not set");
    }
}
