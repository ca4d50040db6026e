//! The standalone server's axum router: one route per endpoint of [`Endpoint::ALL`], each with its
//! body limit, and a fallback for every other path (the SPEC `404`/`405`, and the spellings
//! [`Endpoint::for_path`] tolerates: a trailing slash, a stage prefix). Every request passes the same
//! tower layers, outermost first: the request log line (`TraceLayer`), a panicking handler answered
//! `500` in the SPEC shape (`CatchPanicLayer`), and the per-client-IP rate, taken before the body is
//! read. The handler then reads the body within its route's limit and the body deadline, and answers
//! under the per-API-key and password admission ([`RequestAdmission`]).
//!
//! The body deadline is not tower-http's `RequestBodyTimeoutLayer`: that one restarts with every
//! frame, so a client trickling one byte per interval would never meet it; here the whole body must
//! arrive within `--body-timeout-seconds` (docs/limits.md).

use crate::limits::RateLimiters;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::any;
use axum::Router;
use bytes::Bytes;
use futures::future::BoxFuture;
use http::header::{CONNECTION, CONTENT_TYPE, RETRY_AFTER, TRANSFER_ENCODING};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use license_api::auth::{self, Admission, Claimant, Via};
use license_api::error::ApiError;
use license_api::handlers::endpoints::Input;
use license_api::handlers::Endpoint;
use license_api::http::{ApiRequest, ApiResponse, SIGNATURE_HEADER};
use license_api::offline::transport::MAX_UPLOAD_BYTES;
use license_api::request::MAX_BODY_BYTES;
use std::any::Any;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;
use tracing::Span;

/// What answers a request once it passed the limits: `Some` endpoint for a routed path, `None` from
/// the fallback.
pub type Dispatch = Arc<dyn Fn(Option<Endpoint>, ApiRequest) -> BoxFuture<'static, ApiResponse> + Send + Sync>;

/// The TCP peer of the connection a request came on; the accept loop puts it on every request.
#[derive(Clone, Copy, Debug)]
pub struct Peer(pub IpAddr);

/// The address a request's limits count against (the peer, or the trusted proxy's report of it).
#[derive(Clone, Copy, Debug)]
struct Client(IpAddr);

/// The error code of an answer, for the request log line.
#[derive(Clone, Copy, Debug)]
struct ErrorCode(&'static str);

/// What every route shares.
struct Shared {
    dispatch: Dispatch,
    rates: Arc<RateLimiters>,
    body_timeout: Duration,
}

/// The router: every endpoint, the fallback, and the layers of the module docs.
pub fn router(dispatch: Dispatch, rates: Arc<RateLimiters>, body_timeout: Duration) -> Router {
    let shared = Arc::new(Shared {
        dispatch,
        rates,
        body_timeout,
    });
    let mut router = Router::new();
    for endpoint in Endpoint::ALL {
        // Every method: the handler answers a wrong one 405 in the SPEC shape, as on AWS.
        let route = any(move |State(shared): State<Arc<Shared>>, req: Request| async move {
            shared.answer(Some(endpoint), req).await
        });
        router = router.route(endpoint.path(), route);
    }
    let trace = TraceLayer::new_for_http()
        .make_span_with(
            |req: &Request| tracing::info_span!("request", method = %req.method(), path = %req.uri().path()),
        )
        .on_request(())
        .on_response(log_answer)
        // Server faults are logged with their cause where they happen (`ApiResponse::error`).
        .on_failure(());
    router
        .fallback(|State(shared): State<Arc<Shared>>, req: Request| async move { shared.answer(None, req).await })
        .layer(middleware::from_fn_with_state(shared.clone(), per_ip))
        .layer(CatchPanicLayer::custom(panicked))
        .layer(trace)
        .with_state(shared)
}

/// The request log line, inside the request's span (method and path).
fn log_answer(resp: &Response, latency: Duration, _span: &Span) {
    tracing::info!(
        status = resp.status().as_u16(),
        latency_ms = (latency.as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0,
        error_code = resp.extensions().get::<ErrorCode>().map(|c| c.0),
        "answered"
    );
}

/// A panic becomes a SPEC-shaped 500 for this request only; the panic hook has already logged where it
/// happened.
fn panicked(_panic: Box<dyn Any + Send>) -> Response {
    response(
        &ApiResponse::error(&ApiError::internal("the request handler panicked")),
        None,
        false,
    )
}

/// The address's rate first: a client over it costs neither a body read nor a store round trip.
async fn per_ip(State(shared): State<Arc<Shared>>, mut req: Request, next: Next) -> Response {
    let peer = req
        .extensions()
        .get::<Peer>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |p| p.0);
    let client = shared.rates.client(peer, req.headers());
    if let Err(wait) = shared.rates.check_ip(client) {
        let close = req.headers().contains_key(TRANSFER_ENCODING);
        return response(&ApiResponse::error(&ApiError::TooManyRequests), Some(wait), close);
    }
    req.extensions_mut().insert(Client(client));
    next.run(req).await
}

/// The largest body an endpoint takes: offline uploads carry a base64 or multipart request file and
/// get the larger limit docs/limits.md promises them.
fn body_limit(endpoint: Option<Endpoint>) -> usize {
    match endpoint.map(|e| e.descriptor().input) {
        Some(Input::Upload) => MAX_UPLOAD_BYTES,
        _ => MAX_BODY_BYTES,
    }
}

/// Why a body was not read; `close` when the rest of it may still arrive, so the connection cannot
/// carry another request.
struct Unread {
    error: ApiError,
    close: bool,
}

impl Shared {
    /// Reads the body and answers the request.
    async fn answer(&self, endpoint: Option<Endpoint>, req: Request) -> Response {
        let (parts, body) = req.into_parts();
        let client = parts
            .extensions
            .get::<Client>()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0);
        // After a chunked body the head check cannot find the next request head (crate::head).
        let mut close = parts.headers.contains_key(TRANSFER_ENCODING);
        // The fallback may still serve an endpoint, under another spelling of its path.
        let limit = body_limit(endpoint.or_else(|| Endpoint::for_path(parts.uri.path())));
        let resp = match self.read_body(body, limit).await {
            Ok(body) => {
                let api = ApiRequest {
                    path: parts.uri.path().to_owned(),
                    query: parts.uri.query().map(str::to_owned),
                    method: parts.method,
                    headers: parts.headers,
                    body,
                };
                let admission = Arc::new(RequestAdmission {
                    rates: self.rates.clone(),
                    client,
                });
                auth::admitted(admission, (self.dispatch)(endpoint, api)).await
            }
            Err(unread) => {
                close |= unread.close;
                ApiResponse::error(&unread.error)
            }
        };
        response(&resp, None, close)
    }

    /// The whole body, within `limit` bytes and the body deadline.
    async fn read_body(&self, body: Body, limit: usize) -> Result<Bytes, Unread> {
        let unread = |error, close| Unread { error, close };
        match tokio::time::timeout(self.body_timeout, Limited::new(body, limit).collect()).await {
            Ok(Ok(collected)) => Ok(collected.to_bytes()),
            Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => {
                Err(unread(ApiError::PayloadTooLarge(limit), false))
            }
            Ok(Err(e)) => Err(unread(
                ApiError::Validation(format!("could not read the request body: {e}")),
                false,
            )),
            Err(_elapsed) => Err(unread(
                ApiError::Validation(format!(
                    "could not read the request body: not received within {} s",
                    self.body_timeout.as_secs()
                )),
                true,
            )),
        }
    }
}

/// The limits applied once a request proved who it is: its verified API key's or OAuth client's rate,
/// and password and client-secret checks per client address and per username or client id.
struct RequestAdmission {
    rates: Arc<RateLimiters>,
    client: IpAddr,
}

impl Admission for RequestAdmission {
    fn verified(&self, caller: &Via) -> Result<(), ApiError> {
        self.rates.check_caller(caller)
    }

    fn password_check(&self, claimant: Claimant<'_>) -> Result<(), ApiError> {
        self.rates.check_password(self.client, claimant)
    }
}

/// An [`ApiResponse`] on the wire. A 429 says when to retry: `retry_after` rounded up to whole
/// seconds, or 1 where no wait is known (a key's bucket refills within one, and so does a busy
/// password pool).
fn response(resp: &ApiResponse, retry_after: Option<Duration>, close: bool) -> Response {
    let mut builder = Response::builder()
        .status(resp.status)
        .header(CONTENT_TYPE, resp.content_type);
    if let Some(sig) = &resp.signature {
        builder = builder.header(SIGNATURE_HEADER, sig);
    }
    for (name, value) in resp.extra_headers() {
        builder = builder.header(name, value);
    }
    if resp.status == 429 {
        let secs = retry_after.map_or(1, |w| w.as_secs() + u64::from(w.subsec_nanos() > 0));
        builder = builder.header(RETRY_AFTER, secs.max(1));
    }
    if close {
        builder = builder.header(CONNECTION, "close");
    }
    if let Some(code) = resp.error_code {
        builder = builder.extension(ErrorCode(code));
    }
    builder
        .body(Body::from(resp.body.clone()))
        .unwrap_or_else(|_| Response::new(Body::empty()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::Limits;
    use futures::FutureExt;
    use http::Method;
    use tower::Service;

    /// A router whose dispatch answers with the path of the endpoint it was given.
    fn echo() -> Router {
        let dispatch: Dispatch = Arc::new(|endpoint: Option<Endpoint>, _req| {
            async move { ApiResponse::text(endpoint.map_or("fallback", Endpoint::path)) }.boxed()
        });
        router(
            dispatch,
            Arc::new(RateLimiters::new(&Limits::unlimited())),
            Duration::from_secs(1),
        )
    }

    async fn send(router: &Router, method: Method, path: &str, body: Vec<u8>) -> (u16, String) {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .body(Body::from(body))
            .unwrap();
        let resp = router.clone().call(req).await.unwrap();
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn every_endpoint_path_reaches_its_own_endpoint_and_others_the_fallback() {
        let router = echo();
        for endpoint in Endpoint::ALL {
            let answer = send(&router, endpoint.method(), endpoint.path(), Vec::new()).await;
            assert_eq!(answer, (200, endpoint.path().to_owned()));
            // Another method still reaches the endpoint, whose handler answers it 405.
            let answer = send(&router, Method::DELETE, endpoint.path(), Vec::new()).await;
            assert_eq!(answer, (200, endpoint.path().to_owned()));
        }
        for path in ["/nope", "/api/v4/check_license/", "/prod/api/v4/activate_license"] {
            assert_eq!(
                send(&router, Method::GET, path, Vec::new()).await,
                (200, "fallback".into()),
                "{path}"
            );
        }
    }

    #[tokio::test]
    async fn the_fallback_keeps_an_offline_endpoints_body_limit_under_another_spelling() {
        let router = echo();
        let upload = vec![b'A'; 100 * 1024];
        assert_eq!(
            send(&router, Method::POST, "/api/v4/activate_offline/", upload.clone())
                .await
                .0,
            200
        );
        let (status, body) = send(&router, Method::POST, "/api/v4/activate_license/", upload).await;
        assert_eq!(status, 413, "{body}");
        assert!(body.contains("payload_too_large"), "{body}");
    }
}
