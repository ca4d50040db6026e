//! The OAuth client-credentials endpoints (SPEC §7, docs/oauth.md). `GET /api/v4/oauth_url` tells a
//! client configured with only `client_id`/`client_secret` where to fetch its access token: an absolute
//! URL, from the deployment's public URL when one is configured, else from the request's own host (and
//! path, so an API Gateway stage prefix is kept). `POST /api/v4/oauth_token` is that token endpoint
//! (RFC 6749 §4.4): the client's credentials, in the form body or HTTP Basic (§2.3.1), checked against
//! the argon2id hash of its secret, for a token of `token::TokenKeys`. Neither needs a key: they are
//! how such a client starts. Every error of the token endpoint also carries RFC 6749's `error`.

use super::Endpoint;
use crate::auth::Claimant;
use crate::catalog::MAX_CLIENT_SECRET_LEN;
use crate::error::ApiError;
use crate::http::{ApiRequest, ApiResponse};
use crate::ids::OAuthClientId;
use crate::model::OAuthClientRecord;
use crate::password;
use crate::request::Params;
use crate::secret::{ExposeSecret, SecretString};
use crate::state::AppState;
use crate::token::{AccessClaims, TOKEN_LIFETIME};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::SystemTime;

/// The one `login_type` this server issues tokens for, and its `grant_type`.
pub const CLIENT_CREDENTIALS: &str = "client_credentials";

/// Longest token request body: its fields at their bounds, percent-encoded, with room to spare.
pub const MAX_TOKEN_REQUEST_BYTES: usize = 8192;

/// Longest `Host` header used to build a URL: a DNS name (253) and a port.
const MAX_HOST_LEN: usize = 260;

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Serialize)]
#[cfg_attr(feature = "openapi", schema(as = OauthUrlAnswer))]
pub(super) struct UrlAnswer<'a> {
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
        return Ok(base.join(Endpoint::OauthToken.path()));
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
    Ok(format!(
        "{}://{host}{prefix}{}",
        scheme(&req.headers),
        Endpoint::OauthToken.path()
    ))
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

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Serialize)]
#[cfg_attr(feature = "openapi", schema(as = OauthTokenAnswer))]
pub(super) struct TokenAnswer<'a> {
    access_token: String,
    expires_in: u64,
    token_type: &'a str,
}

/// `POST /api/v4/oauth_token` → `{"access_token", "expires_in": 480, "token_type": "Bearer"}`, not to
/// be cached. Its errors are answered here, with RFC 6749's fields ([`ApiResponse::oauth_error`]).
pub async fn token(req: &ApiRequest, state: &AppState) -> Result<ApiResponse, ApiError> {
    Ok(issue(req, state).await.unwrap_or_else(|e| ApiResponse::oauth_error(&e)))
}

async fn issue(req: &ApiRequest, state: &AppState) -> Result<ApiResponse, ApiError> {
    let credentials = TokenRequest::parse(&req.headers, &req.body)?.credentials;
    // The client first: only a client that proved itself learns that no tokens can be issued.
    let client = authenticate(state, credentials.ok_or(ApiError::InvalidClient)?).await?;
    let Some(keys) = state.token_keys.as_deref() else {
        tracing::error!(
            "a token was asked for, but no token keys are configured: set TOKEN_KEY_SSM_PARAMETER (the \
             template's TokenKeyParameterName), TOKEN_KEY_FILE or TOKEN_KEY_PEM; license-server: `keygen` \
             writes token-key.pem, `serve --token-key FILE` (docs/oauth.md)"
        );
        return Err(ApiError::TokenKeysMissing);
    };
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let claims = AccessClaims::new(client.id.as_str(), client.company.as_str(), client.read_only, now);
    let answer = TokenAnswer {
        access_token: keys.issue(&claims),
        expires_in: TOKEN_LIFETIME.as_secs(),
        token_type: "Bearer",
    };
    Ok(ApiResponse::signed_json(&answer, &state.signer).not_stored())
}

/// The client the credentials prove, or `invalid_client` for every failure alike. An unknown client's
/// secret is checked against a dummy hash and a revoked client's against its own, so the time taken
/// does not tell which clients exist (`password::verify_blocking`).
async fn authenticate(state: &AppState, credentials: ClientCredentials) -> Result<OAuthClientRecord, ApiError> {
    let ClientCredentials { id, secret } = credentials;
    let id = OAuthClientId::parse(&id).map_err(|_| ApiError::InvalidClient)?;
    if !(1..=MAX_CLIENT_SECRET_LEN).contains(&secret.expose_secret().len()) {
        return Err(ApiError::InvalidClient);
    }
    // Read from the store, not the authenticator's cache: a rotated secret stops at once here.
    let record = state.store.oauth_client(&id).await.map_err(ApiError::store)?;
    let stored = record.as_ref().map(|r| r.secret_hash.clone());
    let matches = password::verify_limited(Claimant::Client(&id), secret.expose_secret().to_owned(), stored).await?;
    match record {
        Some(client) if matches && !client.revoked => Ok(client),
        other => {
            let reason = match other {
                None => "unknown client",
                Some(c) if c.revoked => "revoked client",
                Some(_) => "wrong secret",
            };
            tracing::info!(client_id = %id, reason, "token request refused");
            Err(ApiError::InvalidClient)
        }
    }
}

/// A client's credentials as the request carries them, not yet checked.
struct ClientCredentials {
    id: String,
    secret: SecretString,
}

/// What a token request says (RFC 6749 §4.4.2): `grant_type=client_credentials`, and the client's
/// credentials once, in the body or in `Authorization: Basic` (§2.3.1). Other fields (`scope`) are
/// ignored: a token's scope follows from its client.
struct TokenRequest {
    credentials: Option<ClientCredentials>,
}

impl TokenRequest {
    fn parse(headers: &http::HeaderMap, body: &[u8]) -> Result<Self, ApiError> {
        let content_type = headers.get(http::header::CONTENT_TYPE).map(|v| v.as_bytes());
        if content_type.is_some_and(|t| !t.to_ascii_lowercase().starts_with(b"application/x-www-form-urlencoded")) {
            return Err(ApiError::InvalidRequest(
                "the token request must be a form: Content-Type application/x-www-form-urlencoded".into(),
            ));
        }
        if body.len() > MAX_TOKEN_REQUEST_BYTES {
            return Err(ApiError::PayloadTooLarge(MAX_TOKEN_REQUEST_BYTES));
        }
        let mut fields = BTreeMap::new();
        for (name, value) in url::form_urlencoded::parse(body) {
            if fields.insert(name.clone(), value).is_some() {
                return Err(ApiError::InvalidRequest(format!("`{name}` is given more than once")));
            }
        }
        let field = |name: &str| fields.get(name).map(|v| v.as_ref()).filter(|v: &&str| !v.is_empty());
        match field("grant_type") {
            None => {
                return Err(ApiError::InvalidRequest(
                    "`grant_type` is required: grant_type=client_credentials".into(),
                ))
            }
            Some(CLIENT_CREDENTIALS) => {}
            Some(_) => return Err(ApiError::UnsupportedGrantType),
        }
        let basic = headers
            .get(http::header::AUTHORIZATION)
            .map(|v| basic_credentials(v.as_bytes()))
            .transpose()?;
        let twice =
            || ApiError::InvalidRequest("send the client's credentials once: in the body or as HTTP Basic".into());
        let credentials = match (basic, field("client_id"), field("client_secret")) {
            (Some(_), _, Some(_)) => return Err(twice()),
            (Some(b), Some(id), None) if id != b.id => return Err(twice()),
            (Some(b), _, None) => Some(b),
            (None, Some(id), Some(secret)) => Some(ClientCredentials {
                id: id.to_owned(),
                secret: SecretString::from(secret.to_owned()),
            }),
            (None, _, _) => None,
        };
        Ok(Self { credentials })
    }
}

/// `Basic base64(id ":" secret)`, each part form-urlencoded (RFC 6749 §2.3.1). Another scheme, or a
/// Basic value that does not decode, is a client authentication that failed: `invalid_client` (§5.2).
fn basic_credentials(header: &[u8]) -> Result<ClientCredentials, ApiError> {
    let bad = || ApiError::InvalidClient;
    let text = std::str::from_utf8(header).map_err(|_| bad())?.trim();
    let (scheme, encoded) = text.split_once(' ').ok_or_else(bad)?;
    if !scheme.eq_ignore_ascii_case("basic") || encoded.len() > MAX_TOKEN_REQUEST_BYTES {
        return Err(bad());
    }
    let decoded =
        SecretString::from(String::from_utf8(B64.decode(encoded.trim()).map_err(|_| bad())?).map_err(|_| bad())?);
    let (id, secret) = decoded.expose_secret().split_once(':').ok_or_else(bad)?;
    Ok(ClientCredentials {
        id: form_decoded(id),
        secret: SecretString::from(form_decoded(secret)),
    })
}

/// One form-urlencoded value decoded (`+` is a space, `%XX` a byte). A raw `&` or `=`, which an encoder
/// never leaves, is taken as itself.
fn form_decoded(raw: &str) -> String {
    let escaped = raw.replace('&', "%26").replace('=', "%3D");
    url::form_urlencoded::parse(escaped.as_bytes())
        .next()
        .map(|(value, _)| value.into_owned())
        .unwrap_or_default()
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

    fn form(headers: &[(&str, &str)], body: &str) -> Result<Option<(String, String)>, String> {
        let mut h = http::HeaderMap::new();
        for (name, value) in headers {
            h.insert(
                http::header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        TokenRequest::parse(&h, body.as_bytes())
            .map(|r| r.credentials.map(|c| (c.id, c.secret.expose_secret().to_owned())))
            .map_err(|e| e.oauth_error().to_owned())
    }

    #[test]
    fn token_requests_carry_credentials_once_in_the_body_or_as_basic() {
        let grant = "grant_type=client_credentials";
        let pair = |id: &str, secret: &str| Ok(Some((id.to_owned(), secret.to_owned())));
        assert_eq!(
            form(&[], &format!("{grant}&client_id=ci&client_secret=s%2B1+x")),
            pair("ci", "s+1 x")
        );
        // Basic values are form-urlencoded (RFC 6749 §2.3.1): `ci:s+1 x` is sent as `ci:s%2B1+x`.
        let basic = format!("Basic {}", B64.encode("ci:s%2B1+x"));
        assert_eq!(form(&[("authorization", &basic)], grant), pair("ci", "s+1 x"));
        assert_eq!(
            form(&[("authorization", &basic)], &format!("{grant}&client_id=ci")),
            pair("ci", "s+1 x")
        );
        let raw = format!("Basic {}", B64.encode("ci:a=b&c:d"));
        assert_eq!(form(&[("authorization", &raw)], grant), pair("ci", "a=b&c:d"));
        // No credentials: the handler answers invalid_client.
        assert_eq!(form(&[], grant), Ok(None));
        assert_eq!(form(&[], &format!("{grant}&client_id=ci")), Ok(None));
        for (headers, body, error) in [
            (
                vec![("authorization", basic.as_str())],
                format!("{grant}&client_secret=s"),
                "invalid_request",
            ),
            (
                vec![("authorization", basic.as_str())],
                format!("{grant}&client_id=other"),
                "invalid_request",
            ),
            (vec![("authorization", "Bearer x")], grant.to_owned(), "invalid_client"),
            (vec![("authorization", "Basic !!!")], grant.to_owned(), "invalid_client"),
            (
                vec![("content-type", "application/json")],
                grant.to_owned(),
                "invalid_request",
            ),
            (vec![], "client_id=ci&client_secret=s".to_owned(), "invalid_request"),
            (vec![], format!("{grant}&grant_type=password"), "invalid_request"),
            (
                vec![],
                "grant_type=password&client_id=ci&client_secret=s".to_owned(),
                "unsupported_grant_type",
            ),
            (
                vec![],
                format!("{grant}&pad={}", "x".repeat(MAX_TOKEN_REQUEST_BYTES)),
                "invalid_request",
            ),
        ] {
            assert_eq!(
                form(&headers, &body).map(|_| ()),
                Err(error.to_owned()),
                "{headers:?} {body:.60}"
            );
        }
        let typed = [("content-type", "application/x-www-form-urlencoded; charset=UTF-8")];
        assert_eq!(
            form(&typed, &format!("{grant}&client_id=ci&client_secret=s&scope=x")),
            pair("ci", "s")
        );
    }
}
