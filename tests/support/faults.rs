//! A fault-injecting HTTP client for the AWS SDK, in front of DynamoDB Local. Per call it passes the
//! request through or injects one fault: a `ThrottlingException`, a `TransactionCanceledException` with a
//! `TransactionConflict`, a timeout after the request reached DynamoDB, a dropped response (forwarded and
//! applied, answer lost), or a connection that never reached it. A [`Policy`] picks the fault from the
//! operation name and how many calls of that operation came before.

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector as Tcp, Client};
use hyper_util::rt::TokioExecutor;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Fault {
    Pass,
    /// 400 `ThrottlingException`; nothing reaches DynamoDB.
    Throttle,
    /// 400 `TransactionCanceledException` with reason `TransactionConflict` (to a transaction; to a
    /// single-item write, `TransactionConflictException`); nothing reaches DynamoDB.
    TransactionConflict,
    /// The request reaches DynamoDB and is applied, then the client sees a timeout.
    TimeoutAfterApply,
    /// The request reaches DynamoDB and is applied, then the connection drops before the answer.
    DropResponse,
    /// The connection fails before anything is sent.
    Unreachable,
    /// `BatchGetItem` answers every key as unprocessed (what throttling looks like to a batch read).
    Unprocessed,
}

impl Fault {
    /// Every fault a write can meet (all but `Pass`).
    pub const ALL: [Fault; 5] = [
        Fault::Throttle,
        Fault::TransactionConflict,
        Fault::TimeoutAfterApply,
        Fault::DropResponse,
        Fault::Unreachable,
    ];
}

/// (operation such as `TransactWriteItems`, number of earlier calls of it) → the fault for this call.
pub type Policy = Arc<dyn Fn(&str, usize) -> Fault + Send + Sync>;

#[derive(Clone)]
pub struct Faults {
    policy: Policy,
    calls: Arc<Mutex<HashMap<String, usize>>>,
    injected: Arc<Mutex<Vec<(String, Fault)>>>,
    http: Client<Tcp, Full<Bytes>>,
}

impl std::fmt::Debug for Faults {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Faults").field("injected", &self.injected).finish()
    }
}

impl Faults {
    pub fn new(policy: impl Fn(&str, usize) -> Fault + Send + Sync + 'static) -> Self {
        Self {
            policy: Arc::new(policy),
            calls: Arc::default(),
            injected: Arc::default(),
            http: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    /// Faults injected so far, in order.
    pub fn injected(&self) -> Vec<(String, Fault)> {
        self.injected.lock().unwrap().clone()
    }

    pub fn http_client(&self) -> SharedHttpClient {
        SharedHttpClient::new(self.clone())
    }

    async fn serve(&self, request: HttpRequest) -> Result<HttpResponse, ConnectorError> {
        let operation = request
            .headers()
            .get("x-amz-target")
            .and_then(|t| t.rsplit('.').next())
            .unwrap_or("")
            .to_owned();
        let nth = {
            let mut calls = self.calls.lock().unwrap();
            let n = calls.entry(operation.clone()).or_insert(0);
            *n += 1;
            *n - 1
        };
        let fault = (self.policy)(&operation, nth);
        if fault != Fault::Pass {
            self.injected.lock().unwrap().push((operation.clone(), fault));
        }
        let lost = |what: &str| format!("injected fault: {what} ({operation})");
        match fault {
            Fault::Throttle => {
                return Ok(error(
                    "ThrottlingException",
                    "Rate of requests exceeds the allowed throughput.",
                    "",
                ))
            }
            Fault::TransactionConflict if operation != "TransactWriteItems" => {
                return Ok(error(
                    "TransactionConflictException",
                    "Operation was rejected because there is an ongoing transaction for the item.",
                    "",
                ))
            }
            Fault::TransactionConflict => return Ok(error(
                "TransactionCanceledException",
                "Transaction cancelled, please refer cancellation reasons for specific reasons [TransactionConflict]",
                r#","CancellationReasons":[{"Code":"TransactionConflict","Message":"Transaction is ongoing for the item"}]"#,
            )),
            Fault::Unreachable => return Err(ConnectorError::io(lost("connection refused").into())),
            Fault::Unprocessed => return Ok(unprocessed(&request)),
            Fault::Pass | Fault::TimeoutAfterApply | Fault::DropResponse => {}
        }
        let response = self.forward(request).await?;
        match fault {
            Fault::TimeoutAfterApply => Err(ConnectorError::timeout(lost("timed out after apply").into())),
            Fault::DropResponse => Err(ConnectorError::io(lost("response dropped").into())),
            _ => Ok(response),
        }
    }

    async fn forward(&self, request: HttpRequest) -> Result<HttpResponse, ConnectorError> {
        let body = Bytes::copy_from_slice(request.body().bytes().unwrap_or_default());
        let request = request
            .try_into_http1x()
            .map_err(|e| ConnectorError::other(e.into(), None))?;
        let (parts, _) = request.into_parts();
        let response = self
            .http
            .request(http::Request::from_parts(parts, Full::new(body)))
            .await
            .map_err(|e| ConnectorError::io(e.into()))?;
        let (parts, body) = response.into_parts();
        let bytes = body
            .collect()
            .await
            .map_err(|e| ConnectorError::io(e.into()))?
            .to_bytes();
        HttpResponse::try_from(http::Response::from_parts(parts, SdkBody::from(bytes)))
            .map_err(|e| ConnectorError::other(e.into(), None))
    }
}

/// A DynamoDB JSON-protocol error answer.
fn error(kind: &str, message: &str, extra: &str) -> HttpResponse {
    let body = format!(r#"{{"__type":"com.amazonaws.dynamodb.v20120810#{kind}","message":"{message}"{extra}}}"#);
    let response = http::Response::builder()
        .status(400)
        .header("content-type", "application/x-amz-json-1.0")
        .body(SdkBody::from(body))
        .expect("valid response");
    HttpResponse::try_from(response).expect("valid response")
}

/// A `BatchGetItem` answer that processed none of the requested keys.
fn unprocessed(request: &HttpRequest) -> HttpResponse {
    let asked: serde_json::Value =
        serde_json::from_slice(request.body().bytes().unwrap_or_default()).unwrap_or_default();
    let tables = asked["RequestItems"].as_object().cloned().unwrap_or_default();
    let responses: serde_json::Map<_, _> = tables.keys().map(|t| (t.clone(), serde_json::json!([]))).collect();
    let body = serde_json::json!({"Responses": responses, "UnprocessedKeys": tables}).to_string();
    let response = http::Response::builder()
        .status(200)
        .header("content-type", "application/x-amz-json-1.0")
        .body(SdkBody::from(body))
        .expect("valid response");
    HttpResponse::try_from(response).expect("valid response")
}

impl HttpConnector for Faults {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let this = self.clone();
        HttpConnectorFuture::new(async move { this.serve(request).await })
    }
}

impl HttpClient for Faults {
    fn http_connector(&self, _: &HttpConnectorSettings, _: &RuntimeComponents) -> SharedHttpConnector {
        SharedHttpConnector::new(self.clone())
    }
}
