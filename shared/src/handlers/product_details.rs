//! `GET /api/v4/product_details` (SPEC §9): what a client reads about a product at start-up, named by
//! its short code alone — no license, no device. One read of the product; its custom fields and its
//! latest version (of the request's `env`, if given) only when asked for.

use super::lookup;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::http::{ApiRequest, ApiResponse};
use crate::render;
use crate::request::{Params, ProductDetailsRequest};
use crate::rules;
use crate::state::AppState;

pub async fn handle(req: &ApiRequest, state: &AppState, principal: Principal) -> Result<ApiResponse, ApiError> {
    let request = ProductDetailsRequest::parse(&Params::from_query(req.query.as_deref())?)?;
    principal.ensure_product(&request.product)?;
    let product = lookup::product_doc(state, &principal.company, &request.product).await?;
    let product = rules::usable_product(product)?;
    let latest = request
        .include_latest_version
        .then(|| product.latest_version(request.env.as_deref()));
    let answer = render::product_answer(&product, request.include_custom_fields, latest);
    Ok(ApiResponse::signed_json(&answer, &state.signer))
}
