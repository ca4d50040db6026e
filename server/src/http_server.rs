//! HTTP/1.1 serving with hyper: the limits of docs/limits.md (connection cap, header and body timeouts,
//! per-IP and per-API-key rates), body size limit, one log line per request, a panicking handler
//! answered as a 500 without disturbing other requests, and graceful shutdown (in-flight requests
//! finish, new connections stop).

use crate::limits::{Limits, RateLimiters};
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::FutureExt;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use license_api::error::ApiError;
use license_api::handlers;
use license_api::http::{log_request, ApiRequest, ApiResponse, SIGNATURE_HEADER};
use license_api::request::MAX_BODY_BYTES;
use license_api::state::AppState;
use std::convert::Infallible;
use std::future::Future;
use std::net::IpAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// How long shutdown waits for in-flight requests.
const DRAIN: Duration = Duration::from_secs(10);

/// How often idle rate-limit buckets are forgotten.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// What answers a request once it passed the limits: the API's router, or a stand-in in tests.
pub type Route = Arc<dyn Fn(ApiRequest) -> BoxFuture<'static, ApiResponse> + Send + Sync>;

/// Serves until `shutdown` completes, then drains open connections. Rate limits are a deployment
/// policy, so this embedding entry point applies none; `license-server serve` uses [`serve_with`].
pub async fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let limits = Limits {
        per_ip: None,
        per_key: None,
        ..Limits::default()
    };
    serve_with(listener, state, &limits, shutdown).await
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
/// server stops accepting and new clients wait in the kernel's listen backlog.
pub async fn serve_route(
    listener: TcpListener,
    route: Route,
    limits: &Limits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let rates = Arc::new(RateLimiters::new(limits));
    let pruner = tokio::spawn({
        let rates = rates.clone();
        async move {
            let mut every = tokio::time::interval(PRUNE_EVERY);
            loop {
                every.tick().await;
                rates.prune();
            }
        }
    });
    let body_timeout = limits.body_timeout;
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
        let _ = stream.set_nodelay(true);
        let route = route.clone();
        let rates = rates.clone();
        let peer = peer.ip();
        let service = hyper::service::service_fn(move |req| {
            let (route, rates) = (route.clone(), rates.clone());
            async move { Ok::<_, Infallible>(handle(req, peer, &route, &rates, body_timeout).await) }
        });
        let conn = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_timeout)
            .serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    pruner.abort();
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(DRAIN) => tracing::warn!("shutdown: connections still open after {DRAIN:?}"),
    }
    Ok(())
}

async fn handle(
    req: hyper::Request<Incoming>,
    peer: IpAddr,
    route: &Route,
    rates: &RateLimiters,
    body_timeout: Duration,
) -> hyper::Response<Full<Bytes>> {
    let started = Instant::now();
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_owned();
    let mut retry_after = None;
    let mut close = false;
    // Limits first: a client over its rate costs neither a body read nor a store round trip.
    let resp = if let Err(wait) = rates.check(peer, &parts.headers) {
        retry_after = Some(wait);
        ApiResponse::error(&ApiError::TooManyRequests)
    } else {
        match tokio::time::timeout(body_timeout, Limited::new(body, MAX_BODY_BYTES).collect()).await {
            Ok(Ok(collected)) => {
                let api = ApiRequest {
                    method: parts.method.clone(),
                    path: path.clone(),
                    query: parts.uri.query().map(str::to_owned),
                    headers: parts.headers,
                    body: collected.to_bytes(),
                };
                answer(route, api).await
            }
            Ok(Err(e)) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
                ApiResponse::error(&ApiError::PayloadTooLarge(MAX_BODY_BYTES))
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

/// Runs the route; a panic becomes a SPEC-shaped 500 for this request only (the panic hook has
/// already logged where it happened).
async fn answer(route: &Route, api: ApiRequest) -> ApiResponse {
    match AssertUnwindSafe(route(api)).catch_unwind().await {
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
