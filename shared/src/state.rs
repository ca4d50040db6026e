//! What every handler needs, built once per process and shared by reference: [`Core`], what reading
//! and writing the store takes (all the Management API and the command line need), and [`AppState`], the
//! License API's, which adds the signer and the keys of its clients' credentials.

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

/// The state of an operation that signs nothing: the Management API's (the `management` Lambda function,
/// the `license-server` commands) and the License API's write loop. Built without a signing key, so
/// neither the function nor a command reads or generates one.
pub struct Core {
    pub store: Arc<dyn Store>,
    /// Caches API key and OAuth client records; a revocation through the Management API drops them.
    pub auth: Authenticator,
    /// How long a request may keep retrying its writes before it answers 503 `service_busy`; below the
    /// Lambda timeout (10 s in `template.yaml`) so the client always gets a SPEC-shaped answer.
    pub deadline: Duration,
    /// Opens the secrets stored sealed (`sealed`); `None` when the deployment configured none, and
    /// then an operation that needs one answers with a logged configuration error.
    pub sealing_key: Option<Arc<SealingKey>>,
    /// How long the audit records of changes are kept, in days (`audit`, docs/audit.md).
    pub audit_retention_days: i64,
    /// The origins browsers may call the Management API from (`management::cors`); none by default.
    pub management_cors: crate::management::cors::Origins,
}

impl Core {
    /// The defaults: nothing cached, no sealing key, no CORS origin; set the public fields to change them.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            auth: Authenticator::new(Duration::ZERO),
            deadline: DEFAULT_DEADLINE,
            sealing_key: None,
            audit_retention_days: crate::audit::DEFAULT_RETENTION_DAYS,
            management_cors: Default::default(),
        }
    }
}

/// The License API's state: [`Core`] (reached through `Deref`, so `state.store` and a `&AppState` passed
/// where a `&Core` is taken both work) with the signer of its answers and its clients' identity keys.
pub struct AppState {
    pub core: Core,
    pub signer: Signer,
    /// Turns license credentials into the license user they name (single sign-on).
    pub identity: Resolvers,
    /// How often a device's checks are recorded: a check whose device was last seen less than this long
    /// ago, and whose hardware details are unchanged, writes nothing (`rules::plan_check`).
    pub last_seen_interval: Duration,
    /// Sign and verify OAuth access tokens (`token`); `None`: no bearer token is accepted.
    pub token_keys: Option<Arc<TokenKeys>>,
    /// Where clients reach the API, for the URLs it hands out (`oauth_url`); `None`: taken from each
    /// request's own `Host` (and `X-Forwarded-Proto`).
    pub public_url: Option<PublicUrl>,
}

impl std::ops::Deref for AppState {
    type Target = Core;

    fn deref(&self) -> &Core {
        &self.core
    }
}

/// Default for [`Core::deadline`].
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(8);

/// Default for [`AppState::last_seen_interval`]: `last_seen_at` is then exact to the hour, which is what
/// "is this installation still in use" needs, and a device that checks more often than hourly (an SDK
/// watchdog, restarts) writes at most once an hour.
pub const DEFAULT_LAST_SEEN_INTERVAL: Duration = Duration::from_secs(3600);

/// Longest [`AppState::last_seen_interval`] accepted: beyond a day `last_seen_at` says little.
pub const MAX_LAST_SEEN_INTERVAL: Duration = Duration::from_secs(86_400);

impl AppState {
    pub fn new(store: Arc<dyn Store>, signer: Signer, api_key_cache: Duration) -> Self {
        let core = Core {
            auth: Authenticator::new(api_key_cache),
            ..Core::new(store)
        };
        Self::over(core, signer)
    }

    /// The License API's state over `core`, with the defaults of its own settings.
    pub fn over(core: Core, signer: Signer) -> Self {
        Self {
            core,
            signer,
            identity: Resolvers::default(),
            last_seen_interval: DEFAULT_LAST_SEEN_INTERVAL,
            token_keys: None,
            public_url: None,
        }
    }

    pub fn with_management_cors(mut self, management_cors: crate::management::cors::Origins) -> Self {
        self.core.management_cors = management_cors;
        self
    }

    pub fn with_audit_retention_days(mut self, audit_retention_days: i64) -> Self {
        self.core.audit_retention_days = audit_retention_days;
        self
    }

    pub fn with_deadline(mut self, deadline: Duration) -> Self {
        self.core.deadline = deadline;
        self
    }

    pub fn with_last_seen_interval(self, last_seen_interval: Duration) -> Self {
        Self {
            last_seen_interval,
            ..self
        }
    }

    /// Also hands the keys to [`Core::auth`], which verifies bearer tokens with them.
    pub fn with_token_keys(mut self, token_keys: Option<TokenKeys>) -> Self {
        let token_keys = token_keys.map(Arc::new);
        self.core.auth = self.core.auth.with_token_keys(token_keys.clone());
        Self { token_keys, ..self }
    }

    pub fn with_public_url(self, public_url: Option<PublicUrl>) -> Self {
        Self { public_url, ..self }
    }

    pub fn with_sealing_key(mut self, sealing_key: Option<SealingKey>) -> Self {
        self.core.sealing_key = sealing_key.map(Arc::new);
        self
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
        let resolver = OidcResolver::new(Arc::new(accounts), transport).with_nonce_key(nonce_key);
        Self {
            identity: Resolvers {
                sso: Some(Arc::new(resolver)),
            },
            ..self
        }
    }
}
