//! The AWS Lambda adapter: process setup for a function's `main`, and conversion between API Gateway
//! events (via lambda_http) and the transport-neutral [`ApiRequest`]/[`ApiResponse`].

use crate::config::{Config, ConfigError, KeySource, SigningKeySource};
use crate::handlers::{self, function, Endpoint, Handler};
use crate::http::{ApiRequest, ApiResponse, SIGNATURE_HEADER};
use crate::sealed::SealingKey;
use crate::secret::{ExposeSecret, SecretString};
use crate::signing::Signer;
use crate::state::{AppState, Core};
use crate::store::dynamo::DynamoStore;
use crate::token::TokenKeys;
use crate::BoxError;
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

/// Fetches a key's text from an SSM SecureString parameter (decrypted with its KMS key). A secret, so
/// this copy of the key is wiped once parsed.
async fn key_from_ssm(sdk: &aws_config::SdkConfig, name: &str) -> Result<SecretString, ConfigError> {
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
    Ok(out
        .parameter
        .and_then(|p| p.value)
        .ok_or_else(|| failed("the parameter has no value".into()))?
        .into())
}

/// The text of an optional key: from the environment or a file, else from SSM.
async fn optional_key(
    sdk: &aws_config::SdkConfig,
    source: Option<&KeySource>,
) -> Result<Option<SecretString>, ConfigError> {
    let Some(source) = source else { return Ok(None) };
    if let Some(text) = source.read_local()? {
        return Ok(Some(text));
    }
    match source {
        KeySource::SsmParameter(name) => Ok(Some(key_from_ssm(sdk, name).await?)),
        _ => Ok(None),
    }
}

/// Everything a function needs, built once per cold start: one AWS configuration shared by the
/// DynamoDB client and (when the keys live there) the SSM reads of the signing and sealing keys.
pub async fn build_state(config: &Config) -> Result<AppState, BoxError> {
    let local = config.local_signer()?;
    let sdk = lambda_sdk_config();
    let signer = match (local, &config.signing_key) {
        (Some(signer), _) => signer,
        (None, SigningKeySource::SsmParameter(name)) => {
            Signer::from_pem(key_from_ssm(&sdk, name.as_str()).await?.expose_secret()).map_err(ConfigError::from)?
        }
        (None, _) => return Err("signing key source yielded no key".into()),
    };
    let token_keys = optional_key(&sdk, config.token_key.as_ref())
        .await?
        .map(|text| TokenKeys::from_pem(text.expose_secret()))
        .transpose()
        .map_err(ConfigError::from)?;
    let core = Core {
        auth: crate::auth::Authenticator::new(config.api_key_cache),
        ..build_core(&sdk, config).await?
    };
    Ok(AppState::over(core, signer)
        .with_last_seen_interval(config.last_seen_interval)
        .with_public_url(config.public_url.clone())
        .with_token_keys(token_keys)
        .with_sso(crate::identity::oidc::ProviderTransport::HttpsOnly))
}

/// What the `management` function needs: the store and the sealing key. It signs nothing, so it reads
/// no signing key (nor token keys).
async fn build_core(sdk: &aws_config::SdkConfig, config: &Config) -> Result<Core, BoxError> {
    let sealing_key = optional_key(sdk, config.sealing_key.as_ref())
        .await?
        .map(|text| SealingKey::from_text(text.expose_secret()))
        .transpose()
        .map_err(ConfigError::from)?;
    let store = DynamoStore::new(
        crate::store::dynamo::client_from(sdk, config.dynamodb_endpoint.as_deref()),
        &config.table,
    );
    Ok(Core {
        sealing_key: sealing_key.map(Arc::new),
        audit_retention_days: config.audit_retention_days,
        ..Core::new(Arc::new(store))
    })
}

/// The request as the handlers see it. API Gateway sends `Host` and `X-Forwarded-Proto`; where an event
/// lacks them, lambda_http built the URI from the request context's domain name (and `https`): that
/// host and scheme become the headers, so a handler that builds an absolute URL (`oauth_url`) reads
/// them in one place, as on the local server.
pub fn to_api_request(req: Request) -> ApiRequest {
    let (mut parts, body) = req.into_parts();
    let gateway = [
        (http::header::HOST, parts.uri.authority().map(|a| a.as_str())),
        (
            http::header::HeaderName::from_static("x-forwarded-proto"),
            parts.uri.scheme_str(),
        ),
    ];
    for (name, value) in gateway {
        if let (false, Some(Ok(value))) = (
            parts.headers.contains_key(&name),
            value.map(http::HeaderValue::from_str),
        ) {
            parts.headers.insert(name, value);
        }
    }
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
    for (name, value) in resp.extra_headers() {
        builder = builder.header(name, value);
    }
    let body = match String::from_utf8(resp.body.to_vec()) {
        Ok(text) => Body::Text(text),
        Err(e) => Body::Binary(e.into_bytes()),
    };
    builder.body(body).unwrap_or_else(|_| Response::new(Body::Empty))
}

/// Every function answers the "is online" probe, whichever of them API Gateway routes `GET /` to.
fn is_probe(req: &ApiRequest) -> bool {
    Endpoint::for_path(&req.path) == Some(Endpoint::Root)
}

/// One invocation of the function of `handler`: convert, handle, log one line, convert back. Never
/// fails: errors are responses.
pub async fn serve_with<H: Handler>(
    handler: H,
    state: &AppState,
    event: Request,
) -> Result<Response<Body>, Infallible> {
    let started = Instant::now();
    let req = to_api_request(event);
    let resp = if is_probe(&req) {
        handlers::handle_with(function::Root, &req, state).await
    } else {
        handlers::handle_with(handler, &req, state).await
    };
    Ok(respond(&req, resp, started))
}

/// [`serve_with`] for an endpoint chosen at run time, through [`handlers::handle`]: the tests serve
/// every function from one process. A function binary names its handler instead, linking no other.
pub async fn serve(endpoint: Endpoint, state: &AppState, event: Request) -> Result<Response<Body>, Infallible> {
    let started = Instant::now();
    let req = to_api_request(event);
    let endpoint = if is_probe(&req) { Endpoint::Root } else { endpoint };
    Ok(respond(&req, handlers::handle(endpoint, &req, state).await, started))
}

/// One invocation of the function behind the HTTP API's `$default` route, which gets every request no
/// other route matches: the SPEC error (404 `not_found`, 405 `method_not_allowed`) instead of API
/// Gateway's own `{"message":"Not Found"}`, which has no `code`.
pub async fn serve_default_route(event: Request) -> Result<Response<Body>, Infallible> {
    let started = Instant::now();
    let req = to_api_request(event);
    let resp = handlers::unrouted(&req);
    Ok(respond(&req, resp, started))
}

/// One invocation of the `management` function (`/api/management/{proxy+}`): the Management API's
/// routes (`management::routes`, docs/management.md).
pub async fn serve_management(state: &Core, event: Request) -> Result<Response<Body>, Infallible> {
    let started = Instant::now();
    let req = to_api_request(event);
    let resp = crate::management::routes::handle(state, &req).await;
    Ok(respond(&req, resp, started))
}

/// The whole `main` of the `management` function: config, state, then the runtime loop.
pub async fn run_management() -> Result<(), lambda_http::Error> {
    init_tracing();
    let config = Config::from_env().inspect_err(|e| tracing::error!(error = %e, "invalid configuration"))?;
    let origins = crate::management::cors::Origins::from_env()
        .inspect_err(|e| tracing::error!(error = %e, "invalid configuration"))?;
    let state = Core {
        management_cors: origins,
        ..build_core(&lambda_sdk_config(), &config)
            .await
            .inspect_err(|e| tracing::error!(error = %e, "startup failed"))?
    };
    let state = &state;
    lambda_http::run(lambda_http::service_fn(move |event| serve_management(state, event))).await
}

/// Logs the request line and converts the answer. A HEAD answer keeps its status and headers but not
/// its body (RFC 9110 §9.3.2), like the local server's.
fn respond(req: &ApiRequest, mut resp: ApiResponse, started: Instant) -> Response<Body> {
    crate::http::log_request(&req.method, &req.path, &resp, started);
    if req.method == http::Method::HEAD {
        resp.body = Bytes::new();
    }
    to_lambda_response(resp)
}

/// The whole body of a function's `main`: config, state, then the Lambda runtime loop serving
/// `handler`, e.g. `run(handlers::function::ActivateLicense)` (the generated `functions/*/src/main.rs`).
pub async fn run<H: Handler>(handler: H) -> Result<(), lambda_http::Error> {
    init_tracing();
    let config = Config::from_env().inspect_err(|e| tracing::error!(error = %e, "invalid configuration"))?;
    let state = build_state(&config)
        .await
        .inspect_err(|e| tracing::error!(error = %e, "startup failed"))?;
    let state = &state;
    lambda_http::run(lambda_http::service_fn(move |event| serve_with(handler, state, event))).await
}

/// The whole `main` of the `$default` route function. It has no configuration and no state: it reads
/// nothing and answers from the request alone.
pub async fn run_default_route() -> Result<(), lambda_http::Error> {
    init_tracing();
    lambda_http::run(lambda_http::service_fn(serve_default_route)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn default_route(method: http::Method, path: &str) -> (u16, String) {
        let event = http::Request::builder()
            .method(method)
            .uri(path)
            .body(Body::Empty)
            .expect("valid request");
        let resp = serve_default_route(event).await.unwrap_or_else(|e| match e {});
        let body = match resp.body() {
            Body::Text(t) => t.clone(),
            Body::Empty => String::new(),
            other => panic!("unexpected body {other:?}"),
        };
        (resp.status().as_u16(), body)
    }

    #[tokio::test]
    async fn default_route_answers_spec_errors() {
        for (method, path, status, code) in [
            (http::Method::GET, "/api/v4/no_such_endpoint", 404, "not_found"),
            (http::Method::GET, "/favicon.ico", 404, "not_found"),
            (http::Method::POST, "/api/v4/check_license", 405, "method_not_allowed"),
            (http::Method::GET, "/api/v4/activate_license", 405, "method_not_allowed"),
            (http::Method::OPTIONS, "/", 405, "method_not_allowed"),
            // A spelling the gateway does not route to the endpoint, with the endpoint's own method.
            (http::Method::GET, "/api/v4/check_license/", 404, "not_found"),
        ] {
            let (got, body) = default_route(method.clone(), path).await;
            let body: serde_json::Value = serde_json::from_str(&body).expect("JSON error body");
            assert_eq!((got, body["code"].as_str()), (status, Some(code)), "{method} {path}");
            assert_eq!(body["status"], status);
        }
    }

    #[tokio::test]
    async fn default_route_head_has_status_and_no_body() {
        assert_eq!(
            default_route(http::Method::HEAD, "/api/v4/activate_license").await,
            (405, String::new())
        );
    }
}
