//! Cross-origin requests to the Management API (docs/management.md, *CORS*): browsers may call it only
//! from the origins configured (`MANAGEMENT_CORS_ORIGINS`, `--management-cors-origin`); none by
//! default. An allowed origin gets `Access-Control-Allow-Origin` on every answer, and a preflight
//! `OPTIONS` on a route's path the methods and headers the API takes.

use crate::http::ApiRequest;

/// Most origins configured.
pub const MAX_ORIGINS: usize = 20;

/// The environment variable of the Lambda function (comma-separated origins).
pub const ENV: &str = "MANAGEMENT_CORS_ORIGINS";

/// The headers of a preflight's answer besides the origin.
pub const PREFLIGHT_HEADERS: [(&str, &str); 3] = [
    ("access-control-allow-methods", "GET, POST, PUT, PATCH, DELETE"),
    (
        "access-control-allow-headers",
        "authorization, content-type, idempotency-key",
    ),
    ("access-control-max-age", "600"),
];

/// The origins allowed to call the Management API from a browser.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Origins(Vec<String>);

/// One origin as browsers send it: `scheme://host[:port]`, nothing more.
pub fn parse_origin(text: &str) -> Result<String, String> {
    let text = text.trim();
    let url = url::Url::parse(text).map_err(|e| format!("`{text}` is not an origin: {e}"))?;
    let origin = url.origin().ascii_serialization();
    if origin != text || !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "`{text}` is not an origin like https://admin.example.com (scheme, host, port only)"
        ));
    }
    Ok(origin)
}

impl Origins {
    pub fn new(origins: Vec<String>) -> Result<Self, String> {
        if origins.len() > MAX_ORIGINS {
            return Err(format!("at most {MAX_ORIGINS} CORS origins"));
        }
        origins
            .iter()
            .map(|o| parse_origin(o))
            .collect::<Result<_, _>>()
            .map(Self)
    }

    /// [`ENV`], comma-separated; unset or empty: none.
    pub fn from_env() -> Result<Self, String> {
        let text = std::env::var(ENV).unwrap_or_default();
        let list = text
            .split(',')
            .map(str::trim)
            .filter(|o| !o.is_empty())
            .map(str::to_owned);
        Self::new(list.collect()).map_err(|e| format!("{ENV}: {e}"))
    }

    /// The request's `Origin`, if it is allowed.
    pub fn allowed(&self, req: &ApiRequest) -> Option<String> {
        let origin = req.headers.get(http::header::ORIGIN)?.to_str().ok()?;
        self.0.iter().any(|o| o == origin).then(|| origin.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_bare_origins_are_accepted() {
        assert_eq!(
            parse_origin("https://a.example.com:8443").unwrap(),
            "https://a.example.com:8443"
        );
        for bad in [
            "https://a.example.com/",
            "https://a.example.com/x",
            "*",
            "ftp://a",
            "a.example.com",
        ] {
            assert!(parse_origin(bad).is_err(), "{bad}");
        }
    }
}
