//! Endpoint handlers: plain async functions of (request, state), one module per endpoint. Each returns
//! `Result<ApiResponse, ApiError>`; [`handle`] turns errors into responses in the one shared way.

mod activate;
mod bundle;
mod check;
mod deactivate;
mod lookup;
mod offline;
mod runner;

pub use activate::activate;
pub use deactivate::deactivate;
pub(crate) use runner::Attempts;
pub use runner::OFFLINE_REQUEST_RETENTION_DAYS;

use crate::auth::{Access, Principal};
use crate::error::ApiError;
use crate::http::{ApiRequest, ApiResponse};
use crate::request::{LicenseRequest, Params};
use crate::state::AppState;
use http::Method;
use std::time::SystemTime;

/// Authenticates the request, then parses its license fields from where its method carries them
/// (query string for GET and HEAD, JSON body otherwise) and resolves its credentials to a license key or
/// user. Authentication comes first, so an unauthenticated caller learns nothing about the body.
async fn authenticated(
    req: &ApiRequest,
    state: &AppState,
    access: Access,
) -> Result<(Principal, LicenseRequest), ApiError> {
    let principal = state
        .auth
        .authenticate(&req.headers, &*state.store, access, SystemTime::now())
        .await?;
    let params = if matches!(req.method, Method::GET | Method::HEAD) {
        Params::from_query(req.query.as_deref())?
    } else {
        Params::from_json(&req.body)?
    };
    let request = resolved(state, &principal, LicenseRequest::parse(&params)?).await?;
    Ok((principal, request))
}

/// `request` with its credentials resolved (`identity::Resolvers`), once the principal may name its
/// product: an identity provider is asked only on behalf of a caller allowed to ask.
async fn resolved(
    state: &AppState,
    principal: &Principal,
    mut request: LicenseRequest,
) -> Result<LicenseRequest, ApiError> {
    principal.ensure_product(&request.product)?;
    state.identity.resolve(principal, &mut request).await?;
    Ok(request)
}

/// Every endpoint this server implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `GET /`: the "is online" probe.
    Root,
    ActivateLicense,
    DeactivateLicense,
    CheckLicense,
    ActivateOffline,
    DeactivateOffline,
    ActivateBundle,
    CheckBundle,
    DeactivateBundle,
    ActivateBundleOffline,
    DeactivateBundleOffline,
}

impl Endpoint {
    pub const ALL: [Endpoint; 11] = [
        Self::Root,
        Self::ActivateLicense,
        Self::DeactivateLicense,
        Self::CheckLicense,
        Self::ActivateOffline,
        Self::DeactivateOffline,
        Self::ActivateBundle,
        Self::CheckBundle,
        Self::DeactivateBundle,
        Self::ActivateBundleOffline,
        Self::DeactivateBundleOffline,
    ];

    pub fn path(self) -> &'static str {
        match self {
            Self::Root => "/",
            Self::ActivateLicense => "/api/v4/activate_license",
            Self::DeactivateLicense => "/api/v4/deactivate_license",
            Self::CheckLicense => "/api/v4/check_license",
            Self::ActivateOffline => "/api/v4/activate_offline",
            Self::DeactivateOffline => "/api/v4/deactivate_offline",
            Self::ActivateBundle => "/api/v4/activate_bundle",
            Self::CheckBundle => "/api/v4/check_bundle",
            Self::DeactivateBundle => "/api/v4/deactivate_bundle",
            Self::ActivateBundleOffline => "/api/v4/activate_bundle_offline",
            Self::DeactivateBundleOffline => "/api/v4/deactivate_bundle_offline",
        }
    }

    pub fn method(self) -> Method {
        match self {
            Self::Root | Self::CheckLicense | Self::CheckBundle => Method::GET,
            Self::ActivateLicense
            | Self::DeactivateLicense
            | Self::ActivateOffline
            | Self::DeactivateOffline
            | Self::ActivateBundle
            | Self::DeactivateBundle
            | Self::ActivateBundleOffline
            | Self::DeactivateBundleOffline => Method::POST,
        }
    }

    /// Whether this endpoint serves `method`: its own, and HEAD where that is GET.
    pub fn accepts(self, method: &Method) -> bool {
        *method == self.method() || (*method == Method::HEAD && self.method() == Method::GET)
    }

    /// The endpoint a path names; tolerates a trailing slash and an API Gateway stage prefix.
    pub fn for_path(path: &str) -> Option<Self> {
        let trimmed = path.trim_end_matches('/');
        if trimmed.is_empty() {
            return Some(Self::Root);
        }
        Self::ALL
            .into_iter()
            .find(|e| *e != Self::Root && trimmed.ends_with(e.path()))
    }
}

/// Serves one request for a known endpoint.
pub async fn handle(endpoint: Endpoint, req: &ApiRequest, state: &AppState) -> ApiResponse {
    let result = if !endpoint.accepts(&req.method) {
        Err(ApiError::MethodNotAllowed)
    } else {
        match endpoint {
            Endpoint::Root => Ok(ApiResponse::text("License API is online")),
            Endpoint::ActivateLicense => activate::handle(req, state).await,
            Endpoint::DeactivateLicense => deactivate::handle(req, state).await,
            Endpoint::CheckLicense => check::handle(req, state).await,
            Endpoint::ActivateOffline => offline::handle_activation(req, state).await,
            Endpoint::DeactivateOffline => offline::handle_deactivation(req, state).await,
            Endpoint::ActivateBundle => bundle::handle_activation(req, state).await,
            Endpoint::CheckBundle => bundle::handle_check(req, state).await,
            Endpoint::DeactivateBundle => bundle::handle_deactivation(req, state).await,
            Endpoint::ActivateBundleOffline => offline::handle_bundle_activation(req, state).await,
            Endpoint::DeactivateBundleOffline => offline::handle_bundle_deactivation(req, state).await,
        }
    };
    result.unwrap_or_else(|e| ApiResponse::error(&e))
}

/// The answer to a request no route serves — on AWS, what the HTTP API's `$default` route function
/// says: 405 when the path names an endpoint that takes another method, else 404. It needs no state, so
/// that function has no store, key or permissions. A path [`Endpoint::for_path`] recognises that still
/// reached it with an accepted method (a trailing slash the gateway does not route) gets 404: the gateway
/// has no route there, and this function cannot serve it.
pub fn unrouted(req: &ApiRequest) -> ApiResponse {
    let err = match Endpoint::for_path(&req.path) {
        Some(endpoint) if !endpoint.accepts(&req.method) => ApiError::MethodNotAllowed,
        _ => ApiError::NotFound,
    };
    ApiResponse::error(&err)
}

/// Serves a request for any path: the local server's entry point.
pub async fn route(req: &ApiRequest, state: &AppState) -> ApiResponse {
    match Endpoint::for_path(&req.path) {
        Some(endpoint) => handle(endpoint, req, state).await,
        None => ApiResponse::error(&ApiError::NotFound),
    }
}
