//! `POST /api/v4/activate_license` (SPEC §2.2): the rules decide, the store writes atomically, and a
//! write that lost a race is re-decided against the state that won, so the answer is always the one
//! the rules give for the real state. Offline activation (`offline`) is the same loop with a record of
//! the request in the write.

use super::lookup::{self, Resolved, UserCheck};
use super::{replay_or, Once, Outcome};
use crate::auth::{Access, Principal};
use crate::error::ApiError;
use crate::http::{ApiRequest, ApiResponse};
use crate::model::Device;
use crate::render::{license_object, Identity, View};
use crate::request::{Credentials, LicenseRequest};
use crate::rules::{self, Transport};
use crate::signing::Signer;
use crate::state::AppState;
use crate::store::{LicenseAddr, Rejection};
use crate::time::Timestamp;

pub async fn handle(req: &ApiRequest, state: &AppState) -> Result<ApiResponse, ApiError> {
    let (principal, request) = super::authenticated(req, state, Access::Write).await?;
    let resolved = activate(state, &principal, &request, Transport::Online).await?;
    let object = activation_object(&resolved, &request, Timestamp::now(), &state.signer)?;
    Ok(ApiResponse::signed_json(&object, &state.signer))
}

/// The license object describing `resolved` after an activation of `request`'s device.
pub(super) fn activation_object<'a>(
    resolved: &'a Resolved,
    request: &'a LicenseRequest,
    now: Timestamp,
    signer: &Signer,
) -> Result<crate::render::LicenseObject<'a>, ApiError> {
    let device = resolved
        .ctx
        .device
        .as_ref()
        .ok_or_else(|| ApiError::internal("activated device missing"))?;
    let who = Identity {
        hardware_id: &request.hardware_id,
        ident: ident(request),
        user: resolved.user.as_ref().zip(resolved.ctx.seat.as_ref()),
    };
    Ok(license_object(
        &resolved.ctx,
        device,
        &who,
        View::Activation,
        now,
        signer,
    ))
}

/// The license key or username as the request carried it.
pub(super) fn ident(req: &LicenseRequest) -> &str {
    match &req.credentials {
        Credentials::Key(k) => k.as_str(),
        Credentials::User { as_sent, .. } => as_sent.as_str(),
        Credentials::Sso(_) => "",
    }
}

/// Activates `req.hardware_id`; returns the context as it stands after the write.
pub async fn activate(
    state: &AppState,
    principal: &Principal,
    req: &LicenseRequest,
    transport: Transport,
) -> Result<Resolved, ApiError> {
    activate_once(state, principal, req, transport, None).await?.resolved()
}

/// Activates `req.hardware_id`, recording `once` (an offline request) in the same write when given.
pub(super) async fn activate_once(
    state: &AppState,
    principal: &Principal,
    req: &LicenseRequest,
    transport: Transport,
    once: Option<&Once<'_>>,
) -> Result<Outcome, ApiError> {
    let mut resolved = lookup::load(state, principal, req, UserCheck::Password).await?;
    let now = Timestamp::now();
    let mut attempts = super::Attempts::new(state);
    loop {
        if rules::needs_transfer_source(&resolved.ctx) {
            let addr = LicenseAddr::of(&resolved.ctx.license);
            resolved.ctx.transfer_source = state.store.released_slot(&addr).await.map_err(ApiError::store)?;
        }
        let addr = LicenseAddr::of(&resolved.ctx.license);
        let mut plan = match rules::plan_activation(&resolved.ctx, req, now, transport) {
            Ok(plan) => plan,
            Err(e) => return replay_or(state, once, &addr, e).await,
        };
        // The state this write leaves, which the answer describes.
        let mut after = resolved.clone();
        rules::apply_activation(&mut after.ctx.license, &plan);
        if let Some(seat) = &mut after.ctx.seat {
            seat.total_activations += 1;
        }
        after.ctx.device = Some(plan.device.clone());
        plan.once = super::record_of(once, &after, now)?;
        let answer = plan.once.as_ref().map(|r| r.answer.clone());
        let outcome = attempts
            .write(|token| {
                let plan = &plan;
                async move { state.store.activate_device(plan, &token).await }
            })
            .await;
        match outcome {
            Ok(()) => {
                after.ctx.device = Some(Device {
                    write_token: Some(attempts.token().as_str().to_owned()),
                    ..plan.device
                });
                return Ok(Outcome::Applied {
                    resolved: Box::new(after),
                    answer,
                });
            }
            Err(Rejection::Done(done)) => return Ok(Outcome::Replayed(done.answer)),
            // An earlier attempt whose answer was lost did commit: answer from the state it left.
            Err(Rejection::Device(Some(d))) if attempts.wrote(&d) => {
                if once.is_some() {
                    let lost = ApiError::internal("an applied offline activation left no record");
                    return replay_or(state, once, &addr, lost).await;
                }
                let resolved = lookup::load(state, principal, req, UserCheck::Verified).await?;
                return Ok(Outcome::Applied {
                    resolved: Box::new(resolved),
                    answer: None,
                });
            }
            Err(Rejection::Device(Some(d))) if d.active => {
                return replay_or(state, once, &addr, ApiError::LicenseDeviceExists).await;
            }
            Err(Rejection::License(Some(current))) => {
                resolved.ctx.license = *current;
                resolved.ctx.transfer_source = None;
            }
            Err(Rejection::Seat(Some(current))) => resolved.ctx.seat = Some(current),
            // The device changed under us (activated and deactivated again), an item is gone, or the
            // released slot was taken: read everything again.
            Err(Rejection::Device(_) | Rejection::License(None) | Rejection::Seat(None) | Rejection::Stale) => {
                resolved = lookup::load(state, principal, req, UserCheck::Verified).await?;
            }
            Err(Rejection::Conflict | Rejection::Unknown(_)) => return Err(ApiError::Contention),
            Err(Rejection::Store(e)) => return Err(ApiError::store(e)),
        }
        attempts.next_plan()?;
    }
}
