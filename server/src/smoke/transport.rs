//! Sends the client's requests to a base URL over HTTP or HTTPS (native root certificates, as a
//! vendor's API Gateway deployment needs) and collects the whole answer.

use bytes::Bytes;
use http::{Request, Response, Uri};
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use std::time::Duration;

type Error = Box<dyn std::error::Error + Send + Sync>;

pub struct Transport {
    /// Scheme, authority and any path prefix (an API Gateway stage), without a trailing slash.
    base: String,
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    timeout: Duration,
}

impl Transport {
    pub fn new(base_url: &str, timeout: Duration) -> Result<Self, Error> {
        let base = base_url.trim_end_matches('/').to_owned();
        let uri: Uri = base
            .parse()
            .map_err(|e| format!("--base-url {base_url}: not a URL ({e})"))?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.authority().is_none() {
            return Err(format!("--base-url {base_url}: give http:// or https:// and a host").into());
        }
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_native_roots(rustls::crypto::aws_lc_rs::default_provider())
            .map_err(|e| format!("cannot load the system's root certificates: {e}"))?
            .https_or_http()
            .enable_http1()
            .build();
        Ok(Self {
            base,
            client: Client::builder(TokioExecutor::new()).build(connector),
            timeout,
        })
    }

    /// Sends `req` (whose URI is a path and query) to the base URL.
    pub async fn send(&self, req: Request<Bytes>) -> Result<Response<Bytes>, Error> {
        let (mut parts, body) = req.into_parts();
        let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let url = format!("{}{target}", self.base);
        parts.uri = url.parse().map_err(|e| format!("{url}: {e}"))?;
        let sent = self.client.request(Request::from_parts(parts, Full::new(body)));
        let resp = tokio::time::timeout(self.timeout, sent)
            .await
            .map_err(|_| format!("{url}: no answer within {} s", self.timeout.as_secs()))?
            .map_err(|e| format!("{url}: {}", license_api::store::ErrorChain(&e)))?;
        let (parts, body) = resp.into_parts();
        let bytes = tokio::time::timeout(self.timeout, body.collect())
            .await
            .map_err(|_| format!("{url}: the body did not arrive within {} s", self.timeout.as_secs()))?
            .map_err(|e| format!("{url}: reading the body: {e}"))?
            .to_bytes();
        Ok(Response::from_parts(parts, bytes))
    }
}
