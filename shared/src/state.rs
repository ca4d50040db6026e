//! What every handler needs, built once per process and shared by reference.

use crate::auth::Authenticator;
use crate::config::PublicUrl;
use crate::identity::nonce::NonceKey;
use crate::identity::oidc::{OidcResolver, ProviderTransport, StoredAccounts};
use crate::identity::Resolvers;
use crate::sealed::SealingKey;
use crate::signing::Signer;
use crate::store::Store;
use crate::token::TokenKeys;
use std::sync::Arc;
use std::time::Duration;

pub struct AppState {
    pub store: Arc<dyn Store>,
    pub signer: Signer,
    pub auth: Authenticator,
    /// Turns license credentials into the license user they name (single sign-on).
    pub identity: Resolvers,
    /// How long a request may keep retrying its writes before it answers 503 `service_busy`; below the
    /// Lambda timeout (10 s in `template.yaml`) so the client always gets a SPEC-shaped answer.
    pub deadline: Duration,
    /// How often a device's checks are recorded: a check whose device was last seen less than this long
    /// ago, and whose hardware details are unchanged, writes nothing (`rules::plan_check`).
    pub last_seen_interval: Duration,
    /// Opens the secrets stored sealed (`sealed`); `None` when the deployment configured none, and
    /// then an operation that needs one answers with a logged configuration error.
    pub sealing_key: Option<Arc<SealingKey>>,
    /// Sign and verify OAuth access tokens (`token`); `None`: no bearer token is accepted.
    pub token_keys: Option<Arc<TokenKeys>>,
    /// Where clients reach the API, for the URLs it hands out (`oauth_url`); `None`: taken from each
    /// request's own `Host` (and `X-Forwarded-Proto`).
    pub public_url: Option<PublicUrl>,
    /// How long the audit records of changes are kept, in days (`audit`, docs/audit.md).
    pub audit_retention_days: i64,
    /// The origins browsers may call the Management API from (`management::cors`); none by default.
    pub management_cors: crate::management::cors::Origins,
}

/// Default for [`AppState::deadline`].
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(8);

/// Default for [`AppState::last_seen_interval`]: `last_seen_at` is then exact to the hour, which is what
/// "is this installation still in use" needs, and a device that checks more often than hourly (an SDK
/// watchdog, restarts) writes at most once an hour.
pub const DEFAULT_LAST_SEEN_INTERVAL: Duration = Duration::from_secs(3600);

/// Longest [`AppState::last_seen_interval`] accepted: beyond a day `last_seen_at` says little.
pub const MAX_LAST_SEEN_INTERVAL: Duration = Duration::from_secs(86_400);

impl AppState {
    pub fn new(store: Arc<dyn Store>, signer: Signer, api_key_cache: Duration) -> Self {
        Self {
            store,
            signer,
            auth: Authenticator::new(api_key_cache),
            identity: Resolvers::default(),
            deadline: DEFAULT_DEADLINE,
            last_seen_interval: DEFAULT_LAST_SEEN_INTERVAL,
            sealing_key: None,
            token_keys: None,
            public_url: None,
            audit_retention_days: crate::audit::DEFAULT_RETENTION_DAYS,
            management_cors: Default::default(),
        }
    }

    pub fn with_management_cors(self, management_cors: crate::management::cors::Origins) -> Self {
        Self {
            management_cors,
            ..self
        }
    }

    pub fn with_audit_retention_days(self, audit_retention_days: i64) -> Self {
        Self {
            audit_retention_days,
            ..self
        }
    }

    pub fn with_deadline(self, deadline: Duration) -> Self {
        Self { deadline, ..self }
    }

    pub fn with_last_seen_interval(self, last_seen_interval: Duration) -> Self {
        Self {
            last_seen_interval,
            ..self
        }
    }

    /// Also hands the keys to [`AppState::auth`], which verifies bearer tokens with them.
    pub fn with_token_keys(self, token_keys: Option<TokenKeys>) -> Self {
        let token_keys = token_keys.map(Arc::new);
        Self {
            auth: self.auth.with_token_keys(token_keys.clone()),
            token_keys,
            ..self
        }
    }

    pub fn with_public_url(self, public_url: Option<PublicUrl>) -> Self {
        Self { public_url, ..self }
    }

    pub fn with_sealing_key(self, sealing_key: Option<SealingKey>) -> Self {
        Self {
            sealing_key: sealing_key.map(Arc::new),
            ..self
        }
    }

    /// Single sign-on with the customer accounts the store holds (docs/sso.md): their client secrets
    /// are sealed, and the nonces of sign-in URLs are MACed with a key derived from the sealing key, so
    /// without a sealing key SSO stays off (grants and `sso_url` answer "not configured"). The
    /// providers' transport is HTTPS unless `transport` opts into plain HTTP (tests on loopback).
    pub fn with_sso(self, transport: ProviderTransport) -> Self {
        let Some(sealing_key) = self.sealing_key.clone() else {
            return self;
        };
        let nonce_key = NonceKey::derived(&sealing_key);
        let accounts = StoredAccounts::new(self.store.clone(), sealing_key, self.auth.ttl());
        match OidcResolver::new(Arc::new(accounts), transport) {
            Ok(resolver) => Self {
                identity: Resolvers {
                    sso: Some(Arc::new(resolver.with_nonce_key(nonce_key))),
                },
                ..self
            },
            Err(e) => {
                tracing::error!(error = %e, "single sign-on is off: the system's TLS root certificates could not be loaded");
                self
            }
        }
    }
}
