//! What every handler needs, built once per process and shared by reference.

use crate::auth::Authenticator;
use crate::identity::Resolvers;
use crate::signing::Signer;
use crate::store::Store;
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
}

/// Default for [`AppState::deadline`].
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(8);

impl AppState {
    pub fn new(store: Arc<dyn Store>, signer: Signer, api_key_cache: Duration) -> Self {
        Self {
            store,
            signer,
            auth: Authenticator::new(api_key_cache),
            identity: Resolvers::default(),
            deadline: DEFAULT_DEADLINE,
        }
    }

    pub fn with_deadline(self, deadline: Duration) -> Self {
        Self { deadline, ..self }
    }
}
