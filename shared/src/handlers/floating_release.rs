//! `POST /api/v4/floating/release` (SPEC §9 "Floating cloud"): frees the caller's floating cloud slot
//! so another device can take it at once instead of after `floating_timeout`. Answers
//! `license_released` as text/plain. The device must be active on the license, as for a check; a
//! release by a device that holds no slot (or of a license that is not floating cloud) writes nothing
//! and answers the same, so a retried release never fails.

use super::lookup::{self, UserCheck};
use crate::audit::Change;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::http::{ApiRequest, ApiResponse};
use crate::rules::{self, floating, floating::SlotChange};
use crate::state::AppState;
use crate::time::Timestamp;

/// The answer to every successful release (SPEC §9).
pub const RELEASED: &str = "license_released";

pub async fn handle(req: &ApiRequest, state: &AppState, principal: Principal) -> Result<ApiResponse, ApiError> {
    let request = super::license_request(req, state, &principal).await?;
    let now = Timestamp::now();
    let mut attempts = super::Attempts::new(state, &principal);
    loop {
        let resolved = lookup::load(state, &principal, &request, UserCheck::Concealed).await?;
        rules::check(&resolved.ctx, &request.hardware_id)?;
        let license = &resolved.ctx.license;
        if !license.floating.contains_key(request.hardware_id.as_str()) {
            break;
        }
        let Some(plan) = floating::plan(license, &request.hardware_id, now, SlotChange::Release)? else {
            break;
        };
        let detail = serde_json::json!({ "hardware_id": request.hardware_id.as_str() });
        let change = Change::on_license("floating.release", &plan.addr, detail);
        if super::check::record(state, &mut attempts, &[], std::slice::from_ref(&plan), Some(&change)).await? {
            break;
        }
    }
    Ok(ApiResponse::text(RELEASED))
}
