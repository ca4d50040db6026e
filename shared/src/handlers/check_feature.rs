//! `GET /api/v4/check_license_feature` (SPEC §9): one feature of the license's product, as the
//! `product_features` item of a check shows it (a consumption feature with the license's total). The
//! device must be active on the license and the license pass a check's gates; the answer is decided
//! from that one read and writes nothing. A feature whose `expiry_date` has passed answers
//! `license_feature_expired` (SPEC's decision) unless the request sends `include_expired_features=true`,
//! which asks for expired features too.

use super::consumption::feature_code;
use super::lookup::{self, UserCheck};
use crate::auth::Principal;
use crate::error::ApiError;
use crate::http::{ApiRequest, ApiResponse};
use crate::render;
use crate::rules;
use crate::state::AppState;
use crate::time::Timestamp;

pub async fn handle(req: &ApiRequest, state: &AppState, principal: Principal) -> Result<ApiResponse, ApiError> {
    let (request, code) = super::license_request_with(req, state, &principal, feature_code).await?;
    let now = Timestamp::now();
    let resolved = lookup::load(state, &principal, &request, UserCheck::Concealed).await?;
    let ctx = &resolved.ctx;
    rules::check(ctx, &request.hardware_id)?;
    let feature = ctx
        .product
        .features
        .iter()
        .find(|f| f.code == code)
        .ok_or_else(|| ApiError::InvalidLicenseFeatureCode(code.clone(), ""))?;
    if !request.include_expired_features {
        rules::usable_feature(feature, now)?;
    }
    let body = render::feature(feature, &ctx.license, now);
    Ok(ApiResponse::signed_json(&body, &state.signer))
}
