//! The OAuth client-credentials endpoints (SPEC §7, docs/oauth.md). `GET /api/v4/oauth_url` tells a
//! client configured with only `client_id`/`client_secret` where to fetch its access token: an absolute
//! URL, from the deployment's public URL when one is configured, else from the request's own host (and
//! path, so an API Gateway stage prefix is kept). It needs no key: it is how a client starts.

use super::Endpoint;
use crate::error::ApiError;
use crate::http::{ApiRequest, ApiResponse};
use crate::request::Params;
use crate::state::AppState;
use serde::Serialize;

/// The one `login_type` this server issues tokens for.
pub const CLIENT_CREDENTIALS: &str = "client_credentials";

/// Path of the token endpoint, which `oauth_url` names.
const TOKEN_PATH: &str = "/api/v4/oauth_token";

/// Longest `Host` header used to build a URL: a DNS name (253) and a port.
const MAX_HOST_LEN: usize = 260;

#[derive(Serialize)]
struct UrlAnswer<'a> {
    url: String,
    login_type: &'a str,
}

/// `GET /api/v4/oauth_url?login_type=client_credentials` → `{"url", "login_type"}`. A missing
/// `login_type` is `missing_parameters`, another value `validation_error` (SPEC §1.1: the codes of a
/// request the server cannot serve as asked).
pub async fn url(req: &ApiRequest, state: &AppState) -> Result<ApiResponse, ApiError> {
    let params = Params::from_query(req.query.as_deref())?;
    let login_type = params.required("login_type")?;
    if login_type != CLIENT_CREDENTIALS {
        return Err(ApiError::Validation(format!(
            "`login_type` must be `{CLIENT_CREDENTIALS}`: the only OAuth flow this server offers"
        )));
    }
    let answer = UrlAnswer {
        url: token_url(req, state)?,
        login_type: CLIENT_CREDENTIALS,
    };
    Ok(ApiResponse::signed_json(&answer, &state.signer))
}

/// The token endpoint's absolute URL: the configured public URL's, else this request's scheme, host and
/// path prefix (what precedes `/api/v4/oauth_url`: an API Gateway stage, a reverse proxy's prefix).
fn token_url(req: &ApiRequest, state: &AppState) -> Result<String, ApiError> {
    if let Some(base) = &state.public_url {
        return Ok(base.join(TOKEN_PATH));
    }
    let host = req
        .headers
        .get(http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| is_authority(h))
        .ok_or_else(|| {
            ApiError::Validation(
                "the request has no valid Host header to build the token endpoint's URL from (or the \
                 server needs its public URL configured: PUBLIC_URL, `serve --public-url`)"
                    .into(),
            )
        })?;
    let prefix = req
        .path
        .trim_end_matches('/')
        .strip_suffix(Endpoint::OauthUrl.path())
        .unwrap_or("");
    Ok(format!("{}://{host}{prefix}{TOKEN_PATH}", scheme(&req.headers)))
}

/// A `host[:port]` with nothing else (no user info, path or spaces).
fn is_authority(host: &str) -> bool {
    host.len() <= MAX_HOST_LEN
        && !host.contains('@')
        && host.parse::<http::uri::Authority>().is_ok_and(|a| a.as_str() == host)
}

/// `X-Forwarded-Proto`'s first value when it is `http` or `https` (a proxy, API Gateway), else `http`
/// (the standalone server speaks plain HTTP).
fn scheme(headers: &http::HeaderMap) -> &'static str {
    let forwarded = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .map(str::trim);
    match forwarded {
        Some(p) if p.eq_ignore_ascii_case("https") => "https",
        _ => "http",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_bare_authority_is_a_host() {
        for ok in ["licenses.example.com", "127.0.0.1:8080", "[::1]:80", "a.b"] {
            assert!(is_authority(ok), "{ok}");
        }
        let long = "a".repeat(MAX_HOST_LEN + 1);
        for bad in [
            "",
            "user@evil.example",
            "evil.example/path",
            "a b",
            "x?y",
            long.as_str(),
        ] {
            assert!(!is_authority(bad), "{bad}");
        }
    }

    #[test]
    fn the_scheme_is_https_only_when_forwarded_so() {
        let with = |v: &str| {
            let mut h = http::HeaderMap::new();
            h.insert("x-forwarded-proto", v.parse().unwrap());
            scheme(&h)
        };
        assert_eq!(scheme(&http::HeaderMap::new()), "http");
        assert_eq!(with("https"), "https");
        assert_eq!(with("HTTPS, http"), "https");
        assert_eq!(with("http"), "http");
        assert_eq!(with("gopher"), "http");
    }
}
