//! The AWS Lambda adapter: process setup for a function's `main`, and conversion between API Gateway
//! events (via lambda_http) and the transport-neutral [`ApiRequest`]/[`ApiResponse`].

use crate::config::{Config, ConfigError, SigningKeySource};
use crate::error::BoxError;
use crate::handlers::{self, Endpoint};
use crate::http::{ApiRequest, ApiResponse, SIGNATURE_HEADER};
use crate::secret::{ExposeSecret, SecretString};
use crate::signing::Signer;
use crate::state::AppState;
use crate::store::dynamo::DynamoStore;
use bytes::Bytes;
use lambda_http::{Body, Request, Response};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

/// JSON logs to stdout (CloudWatch), level from `RUST_LOG` or `AWS_LAMBDA_LOG_LEVEL` (a plain level:
/// `error`, `warn`, `info`, `debug`, `trace`), default `info`. A level, not a filter expression: the
/// filter parser would pull a regex engine into every function.
pub fn init_tracing() {
    let level = std::env::var("RUST_LOG")
        .or_else(|_| std::env::var("AWS_LAMBDA_LOG_LEVEL"))
        .ok()
        .and_then(|l| {
            l.trim()
                .to_lowercase()
                .parse::<tracing_subscriber::filter::LevelFilter>()
                .ok()
        })
        .unwrap_or(tracing_subscriber::filter::LevelFilter::INFO);
    tracing_subscriber::fmt()
        .json()
        .with_max_level(level)
        .with_current_span(false)
        .with_target(false)
        .without_time()
        .init();
}

/// The AWS configuration of a Lambda function: region and credentials from the environment Lambda
/// sets (`AWS_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`). Using them
/// directly, rather than the full default provider chain (profiles, SSO, STS, IMDS), keeps that code out
/// of the function binaries and its probing out of the cold start.
pub fn lambda_sdk_config() -> aws_config::SdkConfig {
    let region = std::env::var("AWS_REGION")
        .or_else(|_| std::env::var("AWS_DEFAULT_REGION"))
        .unwrap_or_else(|_| "us-east-1".into());
    aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(region))
        .credentials_provider(aws_sdk_dynamodb::config::SharedCredentialsProvider::new(
            aws_config::environment::EnvironmentVariableCredentialsProvider::new(),
        ))
        .build()
}

/// A DynamoDB client for an AWS configuration, optionally at another endpoint (e.g. DynamoDB Local).
pub fn dynamodb_client_from(sdk: &aws_config::SdkConfig, endpoint: Option<&str>) -> aws_sdk_dynamodb::Client {
    let mut builder = aws_sdk_dynamodb::config::Builder::from(sdk);
    if let Some(url) = endpoint {
        builder = builder.endpoint_url(url);
    }
    aws_sdk_dynamodb::Client::from_conf(builder.build())
}

/// Fetches the signing key PEM from an SSM SecureString parameter (decrypted with its KMS key).
async fn signer_from_ssm(sdk: &aws_config::SdkConfig, name: &str) -> Result<Signer, ConfigError> {
    let failed = |source: BoxError| ConfigError::Ssm {
        name: name.to_owned(),
        source,
    };
    let out = aws_sdk_ssm::Client::new(sdk)
        .get_parameter()
        .name(name)
        .with_decryption(true)
        .send()
        .await
        .map_err(|e| failed(Box::new(e)))?;
    // A secret, so this copy of the private key is wiped once parsed.
    let pem: SecretString = out
        .parameter
        .and_then(|p| p.value)
        .ok_or_else(|| failed("the parameter has no value".into()))?
        .into();
    Ok(Signer::from_pem(pem.expose_secret())?)
}

/// Everything a function needs, built once per cold start: one AWS configuration shared by the
/// DynamoDB client and (when the key lives there) the SSM read of the signing key.
pub async fn build_state(config: &Config) -> Result<AppState, BoxError> {
    let local = config.local_signer()?;
    let sdk = lambda_sdk_config();
    let signer = match (local, &config.signing_key) {
        (Some(signer), _) => signer,
        (None, SigningKeySource::SsmParameter(name)) => signer_from_ssm(&sdk, name.as_str()).await?,
        (None, _) => return Err("signing key source yielded no key".into()),
    };
    let store = DynamoStore::new(
        dynamodb_client_from(&sdk, config.dynamodb_endpoint.as_deref()),
        &config.table,
    );
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
    // Whichever function API Gateway routes `GET /` to answers the "is online" probe.
    let endpoint = if Endpoint::for_path(&req.path) == Some(Endpoint::Root) {
        Endpoint::Root
    } else {
        endpoint
    };
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
