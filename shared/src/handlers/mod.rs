//! Endpoint handlers: plain async functions of (request, state, principal), one module per endpoint
//! (the root probe, which needs no key, gets no principal). Each returns `Result<ApiResponse,
//! ApiError>`; [`handle_with`] turns errors into responses in the one shared way. Which endpoints exist,
//! the access each needs and which handler serves each is declared once, in [`endpoints`], which also
//! authenticates every request with that access before its handler runs.

mod activate;
mod bundle;
mod change_password;
mod check;
mod check_feature;
mod consumption;
mod customer_license_users;
mod deactivate;
pub mod endpoints;
mod floating_borrow;
mod floating_release;
mod lookup;
mod oauth;
mod offline;
#[cfg(feature = "openapi")]
pub mod openapi;
mod product_details;
mod runner;
mod sso_url;
pub(crate) mod trial_key;
mod user_licenses;
mod variables;

pub use activate::activate;
pub use deactivate::deactivate;
pub use endpoints::{function, handle, handle_with, Descriptor, Endpoint, Handler};
pub(crate) use runner::Attempts;
pub use runner::OFFLINE_REQUEST_RETENTION_DAYS;

use crate::auth::Principal;
use crate::error::ApiError;
use crate::http::{ApiRequest, ApiResponse};
use crate::request::{LicenseRequest, Params};
use crate::state::AppState;
use http::Method;

/// The request's license fields, parsed from where its method carries them (query string for GET and
/// HEAD, JSON body otherwise), with its credentials resolved to a license key or user. The caller was
/// authenticated before (with the access of its endpoint's row, `endpoints`), so an unauthenticated
/// caller learns nothing about the body.
async fn license_request(
    req: &ApiRequest,
    state: &AppState,
    principal: &Principal,
) -> Result<LicenseRequest, ApiError> {
    Ok(license_request_with(req, state, principal, |_| Ok(())).await?.0)
}

/// [`license_request`] for an endpoint that reads more of the request's parameters: `more` parses
/// them, before any credential is resolved, so a malformed request costs no identity provider a call.
async fn license_request_with<T>(
    req: &ApiRequest,
    state: &AppState,
    principal: &Principal,
    more: impl FnOnce(&Params) -> Result<T, ApiError>,
) -> Result<(LicenseRequest, T), ApiError> {
    let params = if matches!(req.method, Method::GET | Method::HEAD) {
        Params::from_query(req.query.as_deref())?
    } else {
        Params::from_json(&req.body)?
    };
    let request = LicenseRequest::parse(&params)?;
    let more = more(&params)?;
    Ok((resolved(state, principal, request).await?, more))
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

/// Serves a request for any path: the local server's entry point. The Management API
/// (`crate::management::routes`) shares the listener.
pub async fn route(req: &ApiRequest, state: &AppState) -> ApiResponse {
    if req.path.starts_with(crate::management::routes::PREFIX) {
        return crate::management::routes::handle(state, req).await;
    }
    match Endpoint::for_path(&req.path) {
        Some(endpoint) => handle(endpoint, req, state).await,
        None => ApiResponse::error(&ApiError::NotFound),
    }
}
