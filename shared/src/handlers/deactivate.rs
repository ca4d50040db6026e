//! `POST /api/v4/deactivate_license` (SPEC §2.3): frees the device's slot. Answers `license_deactivated`
//! as text/plain.

use super::lookup;
use crate::auth::{Access, Authenticated};
use crate::error::ApiError;
use crate::http::{ApiRequest, ApiResponse};
use crate::request::LicenseRequest;
use crate::rules;
use crate::state::AppState;
use crate::store::Rejection;
use crate::time::Timestamp;

pub async fn handle(req: &ApiRequest, state: &AppState) -> Result<ApiResponse, ApiError> {
    let (auth, request) = super::authenticated(req, state, Access::Write).await?;
    deactivate(state, &auth, &request).await?;
    Ok(ApiResponse::text("license_deactivated"))
}

pub async fn deactivate(state: &AppState, auth: &Authenticated, req: &LicenseRequest) -> Result<(), ApiError> {
    let resolved = lookup::load(state, auth, req, false).await?;
    let mut plan = rules::plan_deactivation(&resolved.ctx, &req.hardware_id, Timestamp::now())?;
    for attempt in 0..super::MAX_ATTEMPTS {
        match state.store.deactivate_device(&plan).await {
            Ok(()) => return Ok(()),
            // Someone deactivated it first. Which error applies depends on the license as it is now,
            // not as it was read, so this losing path pays one more read.
            Err(Rejection::DeviceNotActive) => {
                let current = state.store.get_license(&plan.addr).await.map_err(ApiError::internal)?;
                let license = current.as_ref().unwrap_or(&resolved.ctx.license);
                return Err(rules::inactive_device_error(license));
            }
            Err(Rejection::SeatChanged(_)) => {
                // The user was removed from the license (or their count is already 0): free the slot
                // without charging a seat rather than leave the device active forever.
                tracing::warn!(
                    license = resolved.ctx.license.id,
                    "seat missing on deactivation; releasing without it"
                );
                plan.seat = None;
            }
            Err(Rejection::LicenseChanged(_)) => {
                return Err(ApiError::internal("license counter below its active devices"));
            }
            Err(Rejection::Conflict) => super::backoff(attempt).await,
            Err(Rejection::DeviceActive) => return Err(ApiError::internal("deactivation rejected as an activation")),
            Err(Rejection::Store(e)) => return Err(ApiError::internal(e)),
        }
    }
    Err(ApiError::Contention)
}
