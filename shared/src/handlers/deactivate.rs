//! `POST /api/v4/deactivate_license` (SPEC §2.3): frees the device's slot. Answers `license_deactivated`
//! as text/plain. Offline deactivation (`offline`) is the same loop with the consumptions the request
//! reports and a record of the request in the write.

use super::lookup::{self, UserCheck};
use super::{replay_or, Once, Outcome};
use crate::auth::{Access, Principal};
use crate::error::ApiError;
use crate::http::{ApiRequest, ApiResponse};
use crate::request::LicenseRequest;
use crate::rules::{self, Consumptions};
use crate::state::AppState;
use crate::store::{LicenseAddr, Rejection};
use crate::time::Timestamp;

/// The answer to every successful deactivation (SPEC §8).
pub const DEACTIVATED: &str = "license_deactivated";

pub async fn handle(req: &ApiRequest, state: &AppState) -> Result<ApiResponse, ApiError> {
    let (principal, request) = super::authenticated(req, state, Access::Write).await?;
    deactivate(state, &principal, &request).await?;
    Ok(ApiResponse::text(DEACTIVATED))
}

pub async fn deactivate(state: &AppState, principal: &Principal, req: &LicenseRequest) -> Result<(), ApiError> {
    deactivate_once(state, principal, req, &Consumptions::default(), None)
        .await?
        .resolved()
        .map(drop)
}

/// Deactivates `req.hardware_id`, adding `consumptions` and recording `once` (an offline request) in the
/// same write when given.
pub(super) async fn deactivate_once(
    state: &AppState,
    principal: &Principal,
    req: &LicenseRequest,
    consumptions: &Consumptions,
    once: Option<&Once<'_>>,
) -> Result<Outcome, ApiError> {
    let mut resolved = lookup::load(state, principal, req, UserCheck::Concealed).await?;
    let now = Timestamp::now();
    let mut attempts = super::Attempts::new(state);
    let mut charge_seat = true;
    loop {
        let addr = LicenseAddr::of(&resolved.ctx.license);
        let planned = rules::plan_deactivation(&resolved.ctx, &req.hardware_id, now).and_then(|mut plan| {
            plan.charges = rules::plan_consumptions(&resolved.ctx, consumptions, now)?;
            Ok(plan)
        });
        let mut plan = match planned {
            Ok(plan) => plan,
            Err(e) => return replay_or(state, once, &addr, e).await,
        };
        if !charge_seat {
            plan.seat = None;
        }
        let mut after = resolved.clone();
        rules::apply_charges(&mut after.ctx.license, &plan.charges);
        plan.once = super::record_of(once, &after, now)?;
        let answer = plan.once.as_ref().map(|r| r.answer.clone());
        let outcome = attempts
            .write(|token| {
                let plan = &plan;
                async move { state.store.deactivate_device(plan, &token).await }
            })
            .await;
        match outcome {
            Ok(()) => {
                return Ok(Outcome::Applied {
                    resolved: Box::new(after),
                    answer,
                })
            }
            Err(Rejection::Done(done)) => return Ok(Outcome::Replayed(done.answer)),
            // An earlier attempt whose answer was lost did commit.
            Err(Rejection::Device(Some(d))) if attempts.wrote(&d) => {
                if once.is_some() {
                    let lost = ApiError::internal("an applied offline deactivation left no record");
                    return replay_or(state, once, &addr, lost).await;
                }
                return Ok(Outcome::Applied {
                    resolved: Box::new(after),
                    answer,
                });
            }
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
                resolved = lookup::load(state, principal, req, UserCheck::Concealed).await?;
            }
            Err(Rejection::Conflict | Rejection::Unknown(_)) => return Err(ApiError::Contention),
            Err(Rejection::Store(e)) => return Err(ApiError::store(e)),
        }
        attempts.next_plan()?;
    }
}
