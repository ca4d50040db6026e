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
    let mut resolved = lookup::load(state, auth, req, false).await?;
    let now = Timestamp::now();
    let mut attempts = super::Attempts::new(state);
    let mut charge_seat = true;
    loop {
        let mut plan = rules::plan_deactivation(&resolved.ctx, &req.hardware_id, now)?;
        if !charge_seat {
            plan.seat = None;
        }
        let outcome = attempts
            .write(|token| {
                let plan = &plan;
                async move { state.store.deactivate_device(plan, &token).await }
            })
            .await;
        match outcome {
            Ok(()) => return Ok(()),
            // An earlier attempt whose answer was lost did commit.
            Err(Rejection::Device(Some(d))) if attempts.wrote(&d) => return Ok(()),
            Err(Rejection::License(Some(current))) => resolved.ctx.license = *current,
            Err(Rejection::Seat(seat)) => {
                // The device's activation charged a seat that is gone or already at 0: the stored
                // counts are inconsistent. Free the slot without the seat rather than keep the device
                // active forever, and say so loudly.
                tracing::error!(
                    license = resolved.ctx.license.id,
                    seat = ?seat.map(|s| s.total_activations),
                    "seat missing or at 0 while its device is active; releasing without it"
                );
                charge_seat = false;
            }
            // Someone deactivated (and maybe re-activated) the device first, or an item changed: which
            // answer applies depends on the state as it is now, so read it again.
            Err(Rejection::Device(_) | Rejection::License(None) | Rejection::Stale) => {
                resolved = lookup::load(state, auth, req, false).await?;
            }
            Err(Rejection::Conflict | Rejection::Unknown(_)) => return Err(ApiError::Contention),
            Err(Rejection::Store(e)) => return Err(ApiError::store(e)),
        }
        attempts.next_plan()?;
    }
}
