//! The AWS Lambda adapter: process setup for a function's `main`, and conversion between API Gateway
//! events (via lambda_http) and the transport-neutral [`ApiRequest`]/[`ApiResponse`].

use crate::config::Config;
use crate::error::BoxError;
use crate::handlers::{self, Endpoint};
use crate::http::{ApiRequest, ApiResponse, SIGNATURE_HEADER};
use crate::state::AppState;
use crate::store::dynamo::DynamoStore;
use bytes::Bytes;
use lambda_http::{Body, Request, Response};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

/// JSON logs to stdout (CloudWatch), level from `RUST_LOG` or `AWS_LAMBDA_LOG_LEVEL`, default `info`.
pub fn init_tracing() {
    let filter = std::env::var("RUST_LOG")
        .or_else(|_| std::env::var("AWS_LAMBDA_LOG_LEVEL").map(|l| l.to_lowercase()))
        .unwrap_or_else(|_| "info".into());
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_current_span(false)
        .with_target(false)
        .without_time()
        .init();
}

/// A DynamoDB client from the default AWS configuration, or for `endpoint` (e.g. DynamoDB Local).
pub async fn dynamodb_client(endpoint: Option<&str>) -> aws_sdk_dynamodb::Client {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    if let Some(url) = endpoint {
        loader = loader.endpoint_url(url);
    }
    aws_sdk_dynamodb::Client::new(&loader.load().await)
}

/// Everything a function needs, built once per cold start.
pub async fn build_state(config: &Config) -> Result<AppState, BoxError> {
    let signer = config.signer()?;
    let client = dynamodb_client(config.dynamodb_endpoint.as_deref()).await;
    let store = DynamoStore::new(client, &config.table);
    Ok(AppState::new(Arc::new(store), signer, config.api_key_cache))
}

pub fn to_api_request(req: Request) -> ApiRequest {
    let (parts, body) = req.into_parts();
    let body = match body {
        Body::Empty => Bytes::new(),
        Body::Text(text) => Bytes::from(text),
        Body::Binary(bytes) => Bytes::from(bytes),
        _ => Bytes::new(),
    };
    ApiRequest {
        method: parts.method,
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers: parts.headers,
        body,
    }
}

pub fn to_lambda_response(resp: ApiResponse) -> Response<Body> {
    let mut builder = Response::builder()
        .status(resp.status)
        .header(http::header::CONTENT_TYPE, resp.content_type);
    if let Some(sig) = &resp.signature {
        builder = builder.header(SIGNATURE_HEADER, sig);
    }
    let body = match String::from_utf8(resp.body.to_vec()) {
        Ok(text) => Body::Text(text),
        Err(e) => Body::Binary(e.into_bytes()),
    };
    builder.body(body).unwrap_or_else(|_| Response::new(Body::Empty))
}

/// One invocation: convert, handle, log one line, convert back. Never fails: errors are responses.
pub async fn serve(endpoint: Endpoint, state: &AppState, event: Request) -> Result<Response<Body>, Infallible> {
    let started = Instant::now();
    let req = to_api_request(event);
    let resp = handlers::handle(endpoint, &req, state).await;
    crate::http::log_request(&req.method, &req.path, &resp, started);
    Ok(to_lambda_response(resp))
}

/// The whole body of a function's `main`: config, state, then the Lambda runtime loop.
pub async fn run(endpoint: Endpoint) -> Result<(), lambda_http::Error> {
    init_tracing();
    let config = Config::from_env().inspect_err(|e| tracing::error!(error = %e, "invalid configuration"))?;
    let state = build_state(&config)
        .await
        .inspect_err(|e| tracing::error!(error = %e, "startup failed"))?;
    let state = &state;
    lambda_http::run(lambda_http::service_fn(move |event| serve(endpoint, state, event))).await
}
