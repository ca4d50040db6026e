//! What every handler needs, built once per process and shared by reference.

use crate::auth::Authenticator;
use crate::signing::Signer;
use crate::store::Store;
use std::sync::Arc;
use std::time::Duration;

pub struct AppState {
    pub store: Arc<dyn Store>,
    pub signer: Signer,
    pub auth: Authenticator,
}

impl AppState {
    pub fn new(store: Arc<dyn Store>, signer: Signer, api_key_cache: Duration) -> Self {
        Self {
            store,
            signer,
            auth: Authenticator::new(api_key_cache),
        }
    }
}
