//! `GET /api/v4/sso_url` (SPEC §7): the sign-in URL of a customer account's identity provider, which
//! the client opens in a browser; the provider redirects back with the `code` or `id_token` the client
//! then activates with. The product must be one whose licenses SSO can name (user-based); the URL
//! itself, with its `state` and self-authenticating `nonce`, comes from the single sign-on resolver
//! (`identity::oidc`, docs/sso.md). Answers `{"url": ...}`, signed like every JSON answer.

use super::lookup;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::http::{ApiRequest, ApiResponse};
use crate::model::AuthorizationMethod;
use crate::request::{Params, SsoUrlRequest};
use crate::rules;
use crate::state::AppState;

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(serde::Serialize)]
#[cfg_attr(feature = "openapi", schema(as = SsoUrlAnswer))]
pub(super) struct SignIn {
    url: String,
}

pub async fn handle(req: &ApiRequest, state: &AppState, principal: Principal) -> Result<ApiResponse, ApiError> {
    let request = SsoUrlRequest::parse(&Params::from_query(req.query.as_deref())?)?;
    principal.ensure_product(&request.product)?;
    let sso = state.identity.sso()?;
    let product = lookup::product_doc(state, &principal.company, &request.product).await?;
    let product = rules::usable_product(product)?;
    if product.authorization_method != AuthorizationMethod::User {
        return Err(ApiError::Validation(format!(
            "product `{}` is key-based; single sign-on names license users of user-based products",
            product.code
        )));
    }
    let url = sso.sign_in_url(&principal, &request).await?;
    Ok(ApiResponse::signed_json(&SignIn { url }, &state.signer))
}
