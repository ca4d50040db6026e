//! Typed configuration from the environment, read once at cold start. Every problem is reported with
//! the variable's name so a misconfigured function fails fast and says why.

use crate::secret::{ExposeSecret, SecretString};
use crate::state::{DEFAULT_LAST_SEEN_INTERVAL, MAX_LAST_SEEN_INTERVAL};
use std::path::PathBuf;
use std::time::Duration;

/// Where a deployment key comes from; the same three ways for every key, named by its own variables
/// ([`KeyVars`]).
#[derive(Clone, Debug)]
pub enum KeySource {
    /// `SIGNING_KEY_PEM` / `SEALING_KEY_BASE64`: the key text itself (local use; prefer a file or a
    /// secret store in AWS). Kept secret so that logging the configuration cannot print the key.
    Inline(SecretString),
    /// `SIGNING_KEY_FILE` / `SEALING_KEY_FILE`: path to a file holding the key text.
    File(PathBuf),
    /// `SIGNING_KEY_SSM_PARAMETER` / `SEALING_KEY_SSM_PARAMETER`: name of an SSM SecureString parameter
    /// holding the key text (AWS).
    SsmParameter(String),
}

/// The signing key's source (the name it had before the sealing key shared the mechanism).
pub type SigningKeySource = KeySource;

/// The environment variables naming one key's source.
struct KeyVars {
    ssm: &'static str,
    file: &'static str,
    inline: &'static str,
    /// How an error names the group.
    group: &'static str,
    /// The message when more than one is set.
    exactly_one: &'static str,
}

const SIGNING_KEY_VARS: KeyVars = KeyVars {
    ssm: "SIGNING_KEY_SSM_PARAMETER",
    file: "SIGNING_KEY_FILE",
    inline: "SIGNING_KEY_PEM",
    group: "SIGNING_KEY_*",
    exactly_one: "set exactly one of SIGNING_KEY_SSM_PARAMETER, SIGNING_KEY_FILE and SIGNING_KEY_PEM",
};

const SEALING_KEY_VARS: KeyVars = KeyVars {
    ssm: "SEALING_KEY_SSM_PARAMETER",
    file: "SEALING_KEY_FILE",
    inline: "SEALING_KEY_BASE64",
    group: "SEALING_KEY_*",
    exactly_one: "set at most one of SEALING_KEY_SSM_PARAMETER, SEALING_KEY_FILE and SEALING_KEY_BASE64",
};

const TOKEN_KEY_VARS: KeyVars = KeyVars {
    ssm: "TOKEN_KEY_SSM_PARAMETER",
    file: "TOKEN_KEY_FILE",
    inline: "TOKEN_KEY_PEM",
    group: "TOKEN_KEY_*",
    exactly_one: "set at most one of TOKEN_KEY_SSM_PARAMETER, TOKEN_KEY_FILE and TOKEN_KEY_PEM",
};

/// The source the variables in `vars` name, `None` if none is set.
fn key_source(get: impl Fn(&str) -> Option<String>, vars: &KeyVars) -> Result<Option<KeySource>, ConfigError> {
    Ok(Some(match (get(vars.ssm), get(vars.file), get(vars.inline)) {
        (Some(name), None, None) => KeySource::SsmParameter(name),
        (None, Some(path), None) => KeySource::File(path.into()),
        (None, None, Some(text)) => KeySource::Inline(text.into()),
        (None, None, None) => return Ok(None),
        _ => {
            return Err(ConfigError::Invalid {
                name: vars.group,
                reason: vars.exactly_one.into(),
            })
        }
    }))
}

impl KeySource {
    /// The key text of an inline or file source; `None` for SSM, which the Lambda adapter reads with
    /// its AWS client. A secret, so the copy read from a file is wiped once parsed.
    pub fn read_local(&self) -> Result<Option<SecretString>, ConfigError> {
        match self {
            KeySource::Inline(text) => Ok(Some(text.clone())),
            KeySource::File(path) => std::fs::read_to_string(path)
                .map(|text| Some(text.into()))
                .map_err(|source| ConfigError::KeyFile {
                    path: path.clone(),
                    source,
                }),
            KeySource::SsmParameter(_) => Ok(None),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Config {
    /// `TABLE_NAME`: the DynamoDB table.
    pub table: String,
    /// `DYNAMODB_ENDPOINT`: a non-AWS endpoint such as DynamoDB Local.
    pub dynamodb_endpoint: Option<String>,
    pub signing_key: SigningKeySource,
    /// `SEALING_KEY_*` (optional): the key that seals stored secrets (`sealed`); needed once the
    /// catalog holds OAuth clients.
    pub sealing_key: Option<KeySource>,
    /// `TOKEN_KEY_*` (optional): the ES256 keys of OAuth access tokens (`token`); without them no
    /// bearer token is accepted.
    pub token_key: Option<KeySource>,
    /// `API_KEY_CACHE_SECONDS` (default 60, at most 60): how long API key records are cached.
    pub api_key_cache: Duration,
    /// `LAST_SEEN_INTERVAL_SECONDS` (default 3600, at most 86400): how often a device's checks are
    /// recorded (`AppState::last_seen_interval`).
    pub last_seen_interval: Duration,
    /// `PUBLIC_URL` (optional): the base URL clients reach the API at (`AppState::public_url`).
    pub public_url: Option<PublicUrl>,
    /// `AUDIT_RETENTION_DAYS` (default 400, 1 to 3650): how long audit records are kept (docs/audit.md).
    pub audit_retention_days: i64,
}

/// The base URL clients reach the API at, e.g. `https://licenses.example.com` or an API Gateway stage
/// `https://abc123.execute-api.eu-west-1.amazonaws.com/prod`: absolute, `http` or `https`, no query or
/// fragment, at most [`MAX_PUBLIC_URL_LEN`] bytes; kept without its trailing slash. The URLs the API
/// hands out (the OAuth token endpoint's, `oauth_url`) are this plus the endpoint's path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicUrl(String);

/// Longest [`PublicUrl`].
pub const MAX_PUBLIC_URL_LEN: usize = 1024;

impl PublicUrl {
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim().trim_end_matches('/');
        if text.len() > MAX_PUBLIC_URL_LEN {
            return Err(format!("longer than {MAX_PUBLIC_URL_LEN} bytes"));
        }
        let url = url::Url::parse(text).map_err(|e| format!("`{text}` is not an absolute URL: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") || !url.has_host() {
            return Err(format!("`{text}` is not an http or https URL with a host"));
        }
        if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
            return Err(format!(
                "`{text}` has a query, a fragment or credentials; give the base URL only"
            ));
        }
        Ok(Self(text.to_owned()))
    }

    /// The absolute URL of `path` (which starts with `/`).
    pub fn join(&self, path: &str) -> String {
        format!("{}{path}", self.0)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {0} is required")]
    Missing(&'static str),
    #[error("environment variable {name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
    #[error("cannot read key file {path}: {source}")]
    KeyFile { path: PathBuf, source: std::io::Error },
    #[error("signing key: {0}")]
    Key(#[from] crate::signing::KeyError),
    #[error("sealing key: {0}")]
    SealingKey(#[from] crate::sealed::SealError),
    #[error("token key: {0}")]
    TokenKey(#[from] crate::token::TokenKeyError),
    #[error("cannot read key parameter {name} from SSM")]
    Ssm {
        name: String,
        #[source]
        source: crate::BoxError,
    },
}

/// Longest API key cache the documentation promises (revocation takes effect within this time).
pub const MAX_API_KEY_CACHE: Duration = Duration::from_secs(60);

/// `LAST_SEEN_INTERVAL_SECONDS`: whole seconds up to [`MAX_LAST_SEEN_INTERVAL`]; a larger value is an
/// error rather than silently lowered, since it is a choice about what `last_seen_at` means.
fn last_seen_interval(v: &str) -> Result<Duration, ConfigError> {
    let invalid = |reason: String| ConfigError::Invalid {
        name: "LAST_SEEN_INTERVAL_SECONDS",
        reason,
    };
    let secs: u64 = v
        .parse()
        .map_err(|_| invalid(format!("`{v}` is not a whole number of seconds")))?;
    let max = MAX_LAST_SEEN_INTERVAL.as_secs();
    if secs > max {
        return Err(invalid(format!("{secs} is more than {max} (one day)")));
    }
    Ok(Duration::from_secs(secs))
}

/// `AUDIT_RETENTION_DAYS`: whole days from 1 to [`crate::audit::MAX_RETENTION_DAYS`].
fn audit_retention_days(v: &str) -> Result<i64, ConfigError> {
    let max = crate::audit::MAX_RETENTION_DAYS;
    v.parse::<i64>()
        .ok()
        .filter(|d| (1..=max).contains(d))
        .ok_or_else(|| ConfigError::Invalid {
            name: "AUDIT_RETENTION_DAYS",
            reason: format!("`{v}` is not a whole number of days from 1 to {max}"),
        })
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// An empty value counts as unset: `template.yaml` declares the local-only variables
    /// (`DYNAMODB_ENDPOINT`, `SIGNING_KEY_PEM`) with empty defaults so that `sam local --env-vars` can set
    /// them, and on AWS they must change nothing.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| get(name).filter(|v| !v.is_empty());
        let table = get("TABLE_NAME").ok_or(ConfigError::Missing("TABLE_NAME"))?;
        let signing_key = key_source(get, &SIGNING_KEY_VARS)?
            .ok_or(ConfigError::Missing("SIGNING_KEY_SSM_PARAMETER (or SIGNING_KEY_FILE)"))?;
        let sealing_key = key_source(get, &SEALING_KEY_VARS)?;
        let token_key = key_source(get, &TOKEN_KEY_VARS)?;
        let api_key_cache = match get("API_KEY_CACHE_SECONDS") {
            None => MAX_API_KEY_CACHE,
            Some(v) => {
                let secs: u64 = v.parse().map_err(|_| ConfigError::Invalid {
                    name: "API_KEY_CACHE_SECONDS",
                    reason: format!("`{v}` is not a whole number"),
                })?;
                Duration::from_secs(secs).min(MAX_API_KEY_CACHE)
            }
        };
        let last_seen_interval = match get("LAST_SEEN_INTERVAL_SECONDS") {
            None => DEFAULT_LAST_SEEN_INTERVAL,
            Some(v) => last_seen_interval(&v)?,
        };
        let public_url = get("PUBLIC_URL")
            .map(|v| PublicUrl::parse(&v))
            .transpose()
            .map_err(|reason| ConfigError::Invalid {
                name: "PUBLIC_URL",
                reason,
            })?;
        let audit_retention_days = match get("AUDIT_RETENTION_DAYS") {
            None => crate::audit::DEFAULT_RETENTION_DAYS,
            Some(v) => audit_retention_days(&v)?,
        };
        Ok(Self {
            public_url,
            audit_retention_days,
            table,
            dynamodb_endpoint: get("DYNAMODB_ENDPOINT"),
            signing_key,
            sealing_key,
            token_key,
            api_key_cache,
            last_seen_interval,
        })
    }

    /// Reads and parses a signing key given inline or as a file; `None` for a key in SSM, which the
    /// Lambda adapter fetches with its AWS client.
    pub fn local_signer(&self) -> Result<Option<crate::signing::Signer>, ConfigError> {
        match self.signing_key.read_local()? {
            Some(pem) => Ok(Some(crate::signing::Signer::from_pem(pem.expose_secret())?)),
            None => Ok(None),
        }
    }

    /// The sealing key given inline or as a file; `None` when unset or in SSM (see
    /// [`Self::local_signer`]).
    pub fn local_sealing_key(&self) -> Result<Option<crate::sealed::SealingKey>, ConfigError> {
        match self
            .sealing_key
            .as_ref()
            .map(KeySource::read_local)
            .transpose()?
            .flatten()
        {
            Some(text) => Ok(Some(crate::sealed::SealingKey::from_text(text.expose_secret())?)),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn names_the_missing_variable() {
        let err = Config::from_lookup(lookup(&[])).unwrap_err();
        assert_eq!(err.to_string(), "environment variable TABLE_NAME is required");
        let err = Config::from_lookup(lookup(&[("TABLE_NAME", "t")])).unwrap_err();
        assert!(err.to_string().contains("SIGNING_KEY_SSM_PARAMETER"));
        let both = Config::from_lookup(lookup(&[
            ("TABLE_NAME", "t"),
            ("SIGNING_KEY_FILE", "k"),
            ("SIGNING_KEY_PEM", "p"),
        ]));
        assert!(both.is_err());
        let ssm = Config::from_lookup(lookup(&[
            ("TABLE_NAME", "t"),
            ("SIGNING_KEY_SSM_PARAMETER", "/license-api/key"),
        ]))
        .unwrap();
        assert!(matches!(ssm.signing_key, SigningKeySource::SsmParameter(ref n) if n == "/license-api/key"));
    }

    #[test]
    fn empty_values_are_unset() {
        // What template.yaml sets on AWS: the local-only variables declared, empty.
        let aws = Config::from_lookup(lookup(&[
            ("TABLE_NAME", "t"),
            ("SIGNING_KEY_SSM_PARAMETER", "/license-api/key"),
            ("SIGNING_KEY_PEM", ""),
            ("DYNAMODB_ENDPOINT", ""),
            ("SEALING_KEY_SSM_PARAMETER", ""),
            ("TOKEN_KEY_SSM_PARAMETER", ""),
        ]))
        .unwrap();
        assert!(matches!(aws.signing_key, SigningKeySource::SsmParameter(ref n) if n == "/license-api/key"));
        assert_eq!(aws.dynamodb_endpoint, None);
        // The optional keys' parameters left at their empty default: no sealing key, no token keys.
        assert!(aws.sealing_key.is_none() && aws.token_key.is_none());
        // What `sam local --env-vars` sets: the SSM parameter emptied, an inline key and a local endpoint.
        let local = Config::from_lookup(lookup(&[
            ("TABLE_NAME", "t"),
            ("SIGNING_KEY_SSM_PARAMETER", ""),
            ("SIGNING_KEY_PEM", "pem"),
            ("DYNAMODB_ENDPOINT", "http://172.17.0.1:8000"),
        ]))
        .unwrap();
        assert!(matches!(local.signing_key, SigningKeySource::Inline(_)));
        assert_eq!(local.dynamodb_endpoint.as_deref(), Some("http://172.17.0.1:8000"));
        let err = Config::from_lookup(lookup(&[("TABLE_NAME", ""), ("SIGNING_KEY_FILE", "k")])).unwrap_err();
        assert_eq!(err.to_string(), "environment variable TABLE_NAME is required");
    }

    #[test]
    fn debug_redacts_an_inline_signing_key() {
        let pem =
            "-----BEGIN PRIVATE KEY-----\nTUlJRXZRSUJBREFOQmdrcWhraUc5dzBCQVFFRkFBU0NCS2N3\n-----END PRIVATE KEY-----";
        let c = Config::from_lookup(lookup(&[("TABLE_NAME", "t"), ("SIGNING_KEY_PEM", pem)])).unwrap();
        let printed = format!("{c:?}");
        assert!(
            !printed.contains("TUlJRXZR") && !printed.contains("PRIVATE KEY"),
            "{printed}"
        );
        assert!(printed.contains("REDACTED"), "{printed}");
        assert!(matches!(&c.signing_key, SigningKeySource::Inline(s) if s.expose_secret() == pem));
    }

    #[test]
    fn reads_the_last_seen_interval_and_names_a_bad_one() {
        let with = |v: &str| {
            Config::from_lookup(lookup(&[
                ("TABLE_NAME", "t"),
                ("SIGNING_KEY_FILE", "k"),
                ("LAST_SEEN_INTERVAL_SECONDS", v),
            ]))
        };
        assert_eq!(with("").unwrap().last_seen_interval, DEFAULT_LAST_SEEN_INTERVAL);
        assert_eq!(with("0").unwrap().last_seen_interval, Duration::ZERO);
        assert_eq!(with("86400").unwrap().last_seen_interval, MAX_LAST_SEEN_INTERVAL);
        for bad in ["86401", "-1", "1h"] {
            let err = with(bad).unwrap_err().to_string();
            assert!(err.contains("LAST_SEEN_INTERVAL_SECONDS"), "{err}");
        }
    }

    #[test]
    fn reads_the_audit_retention_and_names_a_bad_one() {
        let with = |v: &str| {
            Config::from_lookup(lookup(&[
                ("TABLE_NAME", "t"),
                ("SIGNING_KEY_FILE", "k"),
                ("AUDIT_RETENTION_DAYS", v),
            ]))
        };
        assert_eq!(
            with("").unwrap().audit_retention_days,
            crate::audit::DEFAULT_RETENTION_DAYS
        );
        assert_eq!(with("1").unwrap().audit_retention_days, 1);
        assert_eq!(with("3650").unwrap().audit_retention_days, 3650);
        for bad in ["0", "3651", "-1", "1y"] {
            let err = with(bad).unwrap_err().to_string();
            assert!(err.contains("AUDIT_RETENTION_DAYS") && err.contains(bad), "{err}");
        }
    }

    #[test]
    fn reads_an_optional_sealing_key_from_one_source() {
        let base = [("TABLE_NAME", "t"), ("SIGNING_KEY_FILE", "k")];
        let none = Config::from_lookup(lookup(&base)).unwrap();
        assert!(none.sealing_key.is_none());
        assert!(none.local_sealing_key().unwrap().is_none());
        let (_, text) = crate::sealed::SealingKey::generate().unwrap();
        let inline = Config::from_lookup(lookup(&[
            base[0],
            base[1],
            ("SEALING_KEY_BASE64", text.expose_secret()),
        ]))
        .unwrap();
        assert!(inline.local_sealing_key().unwrap().is_some());
        assert!(!format!("{inline:?}").contains(text.expose_secret()));
        let ssm = Config::from_lookup(lookup(&[base[0], base[1], ("SEALING_KEY_SSM_PARAMETER", "/p")])).unwrap();
        assert!(matches!(ssm.sealing_key, Some(KeySource::SsmParameter(ref n)) if n == "/p"));
        let two = Config::from_lookup(lookup(&[
            base[0],
            base[1],
            ("SEALING_KEY_SSM_PARAMETER", "/p"),
            ("SEALING_KEY_FILE", "f"),
        ]))
        .unwrap_err();
        assert!(two.to_string().contains("SEALING_KEY_*"), "{two}");
        let bad = Config::from_lookup(lookup(&[base[0], base[1], ("SEALING_KEY_BASE64", "short")])).unwrap();
        let err = bad.local_sealing_key().unwrap_err().to_string();
        assert!(err.starts_with("sealing key:") && err.contains("keygen"), "{err}");
        let missing = Config::from_lookup(lookup(&[
            base[0],
            base[1],
            ("SEALING_KEY_FILE", "/nonexistent/sealing-key"),
        ]))
        .unwrap();
        let err = missing.local_sealing_key().unwrap_err().to_string();
        assert!(err.contains("/nonexistent/sealing-key"), "{err}");
    }

    #[test]
    fn reads_optional_token_keys() {
        let base = [("TABLE_NAME", "t"), ("SIGNING_KEY_FILE", "k")];
        assert!(Config::from_lookup(lookup(&base)).unwrap().token_key.is_none());
        let pem = crate::token::TokenKeys::generate_pem().unwrap();
        let inline = Config::from_lookup(lookup(&[base[0], base[1], ("TOKEN_KEY_PEM", pem.expose_secret())])).unwrap();
        let text = inline.token_key.as_ref().unwrap().read_local().unwrap().unwrap();
        assert!(crate::token::TokenKeys::from_pem(text.expose_secret()).is_ok());
        assert!(!format!("{inline:?}").contains("PRIVATE"));
        let two = Config::from_lookup(lookup(&[
            base[0],
            base[1],
            ("TOKEN_KEY_PEM", "p"),
            ("TOKEN_KEY_FILE", "f"),
        ]));
        assert!(two.unwrap_err().to_string().contains("TOKEN_KEY_*"));
    }

    #[test]
    fn caps_the_api_key_cache() {
        let c = Config::from_lookup(lookup(&[
            ("TABLE_NAME", "t"),
            ("SIGNING_KEY_FILE", "k"),
            ("API_KEY_CACHE_SECONDS", "600"),
        ]))
        .unwrap();
        assert_eq!(c.api_key_cache, MAX_API_KEY_CACHE);
        assert!(Config::from_lookup(lookup(&[
            ("TABLE_NAME", "t"),
            ("SIGNING_KEY_FILE", "k"),
            ("API_KEY_CACHE_SECONDS", "x")
        ]))
        .is_err());
    }

    #[test]
    fn a_public_url_is_an_absolute_base_url() {
        let ok = PublicUrl::parse("https://abc.execute-api.eu-west-1.amazonaws.com/prod/").unwrap();
        assert_eq!(
            ok.join("/api/v4/oauth_token"),
            "https://abc.execute-api.eu-west-1.amazonaws.com/prod/api/v4/oauth_token"
        );
        for bad in [
            "",
            "licenses.example.com",
            "ftp://x.example",
            "https://x.example/?a=b",
            "https://x.example/#f",
            "https://user:pw@x.example",
        ] {
            assert!(PublicUrl::parse(bad).is_err(), "{bad}");
        }
        assert!(PublicUrl::parse(&format!("https://x.example/{}", "a".repeat(MAX_PUBLIC_URL_LEN))).is_err());
        let base = [("TABLE_NAME", "t"), ("SIGNING_KEY_FILE", "k")];
        assert!(Config::from_lookup(lookup(&base)).unwrap().public_url.is_none());
        let set = Config::from_lookup(lookup(&[base[0], base[1], ("PUBLIC_URL", "https://l.example")])).unwrap();
        assert_eq!(set.public_url, Some(PublicUrl::parse("https://l.example").unwrap()));
        let err = Config::from_lookup(lookup(&[base[0], base[1], ("PUBLIC_URL", "nope")])).unwrap_err();
        assert!(err.to_string().contains("PUBLIC_URL"), "{err}");
    }
}
