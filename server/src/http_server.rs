//! HTTP/1.1 serving with hyper: the limits of docs/limits.md (connection caps, header and body
//! timeouts, per-IP, per-API-key and password-check rates), body size limits per route, request heads
//! checked so malformed HTTP gets the SPEC error body ([`crate::head`]), one log line per request, a
//! panicking handler answered as a 500 without disturbing other requests, and graceful shutdown
//! (in-flight requests finish, new connections stop).

use crate::head::{HeadCheck, InFlight};
use crate::limits::{AddressSlot, AddressSlots, Admit, Limits, RateLimiters};
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::FutureExt;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use license_api::auth::{self, Admission};
use license_api::error::ApiError;
use license_api::handlers::{self, Endpoint};
use license_api::http::{log_request, ApiRequest, ApiResponse, SIGNATURE_HEADER};
use license_api::ids::{ApiKeyId, Username};
use license_api::offline::transport::MAX_UPLOAD_BYTES;
use license_api::request::MAX_BODY_BYTES;
use license_api::state::AppState;
use std::convert::Infallible;
use std::future::Future;
use std::net::IpAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How long shutdown waits for in-flight requests.
const DRAIN: Duration = Duration::from_secs(10);

/// How often idle rate-limit buckets are forgotten.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// What answers a request once it passed the limits: the API's router, or a stand-in in tests.
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
    let route: Route = Arc::new(move |req: ApiRequest| {
        let state = state.clone();
        async move { handlers::route(&req, &state).await }.boxed()
    });
    serve_route(listener, route, limits, shutdown).await
}

/// The accept loop: at most `limits.max_connections` connections are open; while all are taken the
/// server stops accepting and new clients wait in the kernel's listen backlog. An address over its own
/// cap is answered 429 at once, so one client cannot hold every connection.
pub async fn serve_route(
    listener: TcpListener,
    route: Route,
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
    let serving = Serving {
        route,
        rates: Arc::new(RateLimiters::new(limits)),
        header_timeout: limits.header_timeout,
        body_timeout: limits.body_timeout,
    };
    let pruner = spawn_pruner(serving.rates.clone());
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
    route: Route,
    rates: Arc<RateLimiters>,
    header_timeout: Duration,
    body_timeout: Duration,
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
        let (route, rates, body_timeout) = (self.route.clone(), self.rates.clone(), self.body_timeout);
        let in_flight = Arc::new(InFlight::default());
        let service = hyper::service::service_fn({
            let in_flight = in_flight.clone();
            move |req| {
                let (route, rates, answering) = (route.clone(), rates.clone(), in_flight.answering());
                async move {
                    let resp = handle(req, peer, &route, &rates, body_timeout).await;
                    drop(answering);
                    Ok::<_, Infallible>(resp)
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

/// The largest body `path` takes: offline uploads carry a base64 or multipart request file and get
/// the larger limit docs/limits.md promises them.
fn body_limit(path: &str) -> usize {
    match Endpoint::for_path(path) {
        Some(
            Endpoint::ActivateOffline
            | Endpoint::DeactivateOffline
            | Endpoint::ActivateBundleOffline
            | Endpoint::DeactivateBundleOffline,
        ) => MAX_UPLOAD_BYTES,
        _ => MAX_BODY_BYTES,
    }
}

/// The limits applied once a request proved who it is: its verified API key's rate, and password
/// checks per client address and per username.
struct RequestAdmission {
    rates: Arc<RateLimiters>,
    client: IpAddr,
}

impl Admission for RequestAdmission {
    fn verified_key(&self, key: &ApiKeyId) -> Result<(), ApiError> {
        self.rates.check_key(key)
    }

    fn password_check(&self, username: &Username) -> Result<(), ApiError> {
        self.rates.check_password(self.client, username)
    }
}

async fn handle(
    req: hyper::Request<Incoming>,
    peer: IpAddr,
    route: &Route,
    rates: &Arc<RateLimiters>,
    body_timeout: Duration,
) -> hyper::Response<Full<Bytes>> {
    let started = Instant::now();
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_owned();
    let client = rates.client(peer, &parts.headers);
    let mut retry_after = None;
    // After a chunked body the head check cannot find the next request head (crate::head).
    let mut close = parts.headers.contains_key(http::header::TRANSFER_ENCODING);
    let limit = body_limit(&path);
    // The address's rate first: a client over it costs neither a body read nor a store round trip.
    let resp = if let Err(wait) = rates.check_ip(client) {
        retry_after = Some(wait);
        ApiResponse::error(&ApiError::TooManyRequests)
    } else {
        match tokio::time::timeout(body_timeout, Limited::new(body, limit).collect()).await {
            Ok(Ok(collected)) => {
                let api = ApiRequest {
                    method: parts.method.clone(),
                    path: path.clone(),
                    query: parts.uri.query().map(str::to_owned),
                    headers: parts.headers,
                    body: collected.to_bytes(),
                };
                let admission = Arc::new(RequestAdmission {
                    rates: rates.clone(),
                    client,
                });
                answer(route, api, admission).await
            }
            Ok(Err(e)) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
                ApiResponse::error(&ApiError::PayloadTooLarge(limit))
            }
            Ok(Err(e)) => ApiResponse::error(&ApiError::Validation(format!("could not read the request body: {e}"))),
            Err(_elapsed) => {
                // The rest of the body may still trickle in: this connection cannot carry another request.
                close = true;
                ApiResponse::error(&ApiError::Validation(format!(
                    "could not read the request body: not received within {} s",
                    body_timeout.as_secs()
                )))
            }
        }
    };
    log_request(&parts.method, &path, &resp, started);
    let mut builder = hyper::Response::builder()
        .status(resp.status)
        .header(http::header::CONTENT_TYPE, resp.content_type);
    if let Some(sig) = &resp.signature {
        builder = builder.header(SIGNATURE_HEADER, sig);
    }
    if resp.status == 429 {
        // Whole seconds, rounded up; a busy password pool (no wait known) frees up within about one.
        let secs = retry_after.map_or(1, |w| w.as_secs() + u64::from(w.subsec_nanos() > 0));
        builder = builder.header(http::header::RETRY_AFTER, secs.max(1));
    }
    if close {
        builder = builder.header(http::header::CONNECTION, "close");
    }
    builder
        .body(Full::new(resp.body))
        .unwrap_or_else(|_| hyper::Response::new(Full::new(Bytes::new())))
}

/// Runs the route under the request's admission limits; a panic becomes a SPEC-shaped 500 for this request only (the panic hook has
/// already logged where it happened).
async fn answer(route: &Route, api: ApiRequest, admission: Arc<dyn Admission>) -> ApiResponse {
    match AssertUnwindSafe(auth::admitted(admission, route(api)))
        .catch_unwind()
        .await
    {
        Ok(resp) => resp,
        Err(_panic) => ApiResponse::error(&ApiError::internal("the request handler panicked")),
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
