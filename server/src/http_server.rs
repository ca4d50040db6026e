//! The accept loop of the standalone server: the connection limits of docs/limits.md (the global and
//! per-address connection caps, the header timeout), request heads checked so malformed HTTP gets the
//! SPEC error body ([`crate::head`]), and graceful shutdown (in-flight requests finish, new connections
//! stop). Each connection is served by hyper with the axum router of [`crate::router`] as its service,
//! which applies the per-request limits.

use crate::head::{HeadCheck, InFlight};
use crate::limits::{AddressSlot, AddressSlots, Admit, Limits, RateLimiters};
use crate::router::{self, Dispatch, Peer};
use axum::Router;
use futures::future::BoxFuture;
use futures::FutureExt;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use license_api::error::ApiError;
use license_api::handlers;
use license_api::http::{ApiRequest, ApiResponse};
use license_api::state::AppState;
use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower::Service;

/// How long shutdown waits for in-flight requests.
const DRAIN: Duration = Duration::from_secs(10);

/// How often idle rate-limit buckets are forgotten.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// What answers any request once it passed the limits, whatever its path: a stand-in for the API in
/// tests of the limits.
pub type Route = Arc<dyn Fn(ApiRequest) -> BoxFuture<'static, ApiResponse> + Send + Sync>;

/// Serves until `shutdown` completes, then drains open connections. Rate and per-address limits are a
/// deployment policy, so this embedding entry point applies none ([`Limits::unlimited`]);
/// `license-server serve` uses [`serve_with`].
pub async fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    serve_with(listener, state, &Limits::unlimited(), shutdown).await
}

/// Serves the License API under `limits` until `shutdown` completes, then drains open connections.
pub async fn serve_with(
    listener: TcpListener,
    state: Arc<AppState>,
    limits: &Limits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let dispatch: Dispatch = Arc::new(move |endpoint, req: ApiRequest| {
        let state = state.clone();
        async move {
            match endpoint {
                Some(endpoint) => handlers::handle(endpoint, &req, &state).await,
                // 404/405, or an endpoint under a spelling of its path the router does not list.
                None => handlers::route(&req, &state).await,
            }
        }
        .boxed()
    });
    serve_dispatch(listener, dispatch, limits, shutdown).await
}

/// Serves `route` for every path under `limits` (the routes' body limits included).
pub async fn serve_route(
    listener: TcpListener,
    route: Route,
    limits: &Limits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let dispatch: Dispatch = Arc::new(move |_endpoint, req| route(req));
    serve_dispatch(listener, dispatch, limits, shutdown).await
}

/// The accept loop: at most `limits.max_connections` connections are open; while all are taken the
/// server stops accepting and new clients wait in the kernel's listen backlog. An address over its own
/// cap is answered 429 at once, so one client cannot hold every connection.
async fn serve_dispatch(
    listener: TcpListener,
    dispatch: Dispatch,
    limits: &Limits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    // The rest is on `license-server serve`'s `limits` line.
    tracing::info!(
        max_connections_per_ip = limits.connections_per_ip(),
        password_checks_per_ip_per_minute = limits.passwords_per_ip,
        password_checks_per_user_per_minute = limits.passwords_per_user,
        "limits per address and username"
    );
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let per_address = AddressSlots::new(limits.connections_per_ip());
    let rates = Arc::new(RateLimiters::new(limits));
    let pruner = spawn_pruner(rates.clone());
    let serving = Serving {
        router: router::router(dispatch, rates, limits.body_timeout),
        header_timeout: limits.header_timeout,
    };
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_closed) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Typically EMFILE: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        match per_address.admit(peer.ip()) {
            Admit::Serve(address_slot) => serving.spawn(stream, peer.ip(), &graceful, (slot, address_slot)),
            Admit::Refuse(address_slot) => refuse(stream, peer.ip(), address_slot),
            Admit::Close => {}
        }
    }
    drop(listener);
    pruner.abort();
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(DRAIN) => tracing::warn!("shutdown: connections still open after {DRAIN:?}"),
    }
    Ok(())
}

/// Forgets idle rate-limit buckets every [`PRUNE_EVERY`].
fn spawn_pruner(rates: Arc<RateLimiters>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(PRUNE_EVERY);
        loop {
            every.tick().await;
            rates.prune();
        }
    })
}

/// Answers a connection over its address's cap with 429 and closes it; it holds its place in the
/// address's count until closed.
fn refuse(stream: TcpStream, peer: IpAddr, address_slot: AddressSlot) {
    tracing::info!(peer = %peer, "connection refused: too many open from this address");
    tokio::spawn(async move {
        let mut refusing = HeadCheck::refusing(stream, &ApiError::TooManyRequests);
        let _ = tokio::io::copy(&mut refusing, &mut tokio::io::sink()).await;
        drop(address_slot);
    });
}

/// What serves each accepted connection.
struct Serving {
    router: Router,
    header_timeout: Duration,
}

impl Serving {
    /// Serves `stream` on its own task until it closes, holding its global and per-address slots.
    fn spawn(
        &self,
        stream: TcpStream,
        peer: IpAddr,
        graceful: &GracefulShutdown,
        held: (OwnedSemaphorePermit, AddressSlot),
    ) {
        let _ = stream.set_nodelay(true);
        let in_flight = Arc::new(InFlight::default());
        let service = hyper::service::service_fn({
            let (router, in_flight) = (self.router.clone(), in_flight.clone());
            move |mut req: hyper::Request<Incoming>| {
                let answering = in_flight.answering();
                req.extensions_mut().insert(Peer(peer));
                // A Router is always ready, so it is called without `poll_ready`.
                let answer = router.clone().call(req);
                async move {
                    let resp = answer.await;
                    drop(answering);
                    resp
                }
            }
        });
        let conn = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(self.header_timeout)
            .serve_connection(TokioIo::new(HeadCheck::new(stream, in_flight)), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(held);
        });
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
    tracing::info!("shutting down");
}
