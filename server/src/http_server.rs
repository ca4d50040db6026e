//! HTTP/1.1 serving with hyper: body size limit, header read timeout, one log line per request, and
//! graceful shutdown (in-flight requests finish, new connections stop).

use bytes::Bytes;
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
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

/// How long shutdown waits for in-flight requests.
const DRAIN: Duration = Duration::from_secs(10);

/// Serves until `shutdown` completes, then drains open connections.
pub async fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let state = state.clone();
                let service = hyper::service::service_fn(move |req| {
                    let state = state.clone();
                    async move { Ok::<_, Infallible>(handle(req, &state).await) }
                });
                let conn = http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(Duration::from_secs(10))
                    .serve_connection(TokioIo::new(stream), service);
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(DRAIN) => tracing::warn!("shutdown: connections still open after {DRAIN:?}"),
    }
    Ok(())
}

async fn handle(req: hyper::Request<Incoming>, state: &AppState) -> hyper::Response<Full<Bytes>> {
    let started = Instant::now();
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_owned();
    let resp = match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => {
            let api = ApiRequest {
                method: parts.method.clone(),
                path: path.clone(),
                query: parts.uri.query().map(str::to_owned),
                headers: parts.headers,
                body: collected.to_bytes(),
            };
            handlers::route(&api, state).await
        }
        Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
            ApiResponse::error(&ApiError::PayloadTooLarge(MAX_BODY_BYTES))
        }
        Err(e) => ApiResponse::error(&ApiError::Validation(format!("could not read the request body: {e}"))),
    };
    log_request(&parts.method, &path, &resp, started);
    let mut builder = hyper::Response::builder()
        .status(resp.status)
        .header(http::header::CONTENT_TYPE, resp.content_type);
    if let Some(sig) = &resp.signature {
        builder = builder.header(SIGNATURE_HEADER, sig);
    }
    builder
        .body(Full::new(resp.body))
        .unwrap_or_else(|_| hyper::Response::new(Full::new(Bytes::new())))
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
