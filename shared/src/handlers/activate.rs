//! `POST /api/v4/activate_license` (SPEC §2.2): the rules decide, the store writes atomically, and a
//! write that lost a race is re-decided against the state that won, so the answer is always the one
//! the rules give for the real state.

use super::lookup::{self, Resolved};
use crate::auth::{Access, Authenticated};
use crate::error::ApiError;
use crate::http::{ApiRequest, ApiResponse};
use crate::model::Device;
use crate::render::{license_object, Identity, View};
use crate::request::{Credentials, LicenseRequest};
use crate::rules::{self, Transport};
use crate::state::AppState;
use crate::store::{LicenseAddr, Rejection};
use crate::time::Timestamp;

pub async fn handle(req: &ApiRequest, state: &AppState) -> Result<ApiResponse, ApiError> {
    let (auth, request) = super::authenticated(req, state, Access::Write).await?;
    let resolved = activate(state, &auth, &request, Transport::Online).await?;
    let now = Timestamp::now();
    let device = resolved
        .ctx
        .device
        .as_ref()
        .ok_or_else(|| ApiError::internal("activated device missing"))?;
    let seat = resolved.ctx.seat.as_ref();
    let who = Identity {
        hardware_id: &request.hardware_id,
        ident: ident(&request),
        user: resolved.user.as_ref().zip(seat),
    };
    let body = license_object(&resolved.ctx, device, &who, View::Activation, now, &state.signer);
    Ok(ApiResponse::signed_json(&body, &state.signer))
}

/// The license key or username as the request carried it.
pub(super) fn ident(req: &LicenseRequest) -> &str {
    match &req.credentials {
        Credentials::Key(k) => k.as_str(),
        Credentials::User { as_sent, .. } => as_sent.as_str(),
        Credentials::Sso => "",
    }
}

/// Activates `req.hardware_id`; returns the context as it stands after the write.
pub async fn activate(
    state: &AppState,
    auth: &Authenticated,
    req: &LicenseRequest,
    transport: Transport,
) -> Result<Resolved, ApiError> {
    let mut resolved = lookup::load(state, auth, req, true).await?;
    let now = Timestamp::now();
    let mut attempts = super::Attempts::new(state);
    loop {
        let ctx = &mut resolved.ctx;
        if rules::needs_transfer_source(ctx) {
            let addr = LicenseAddr::of(&ctx.license);
            ctx.transfer_source = state.store.released_slot(&addr).await.map_err(ApiError::store)?;
        }
        let plan = rules::plan_activation(ctx, req, now, transport)?;
        let outcome = attempts
            .write(|token| {
                let plan = &plan;
                async move { state.store.activate_device(plan, &token).await }
            })
            .await;
        match outcome {
            Ok(()) => {
                rules::apply_activation(&mut ctx.license, &plan);
                if let Some(seat) = &mut ctx.seat {
                    seat.total_activations += 1;
                }
                ctx.device = Some(Device {
                    write_token: Some(attempts.token().as_str().to_owned()),
                    ..plan.device
                });
                return Ok(resolved);
            }
            // An earlier attempt whose answer was lost did commit: answer from the state it left.
            Err(Rejection::Device(Some(d))) if attempts.wrote(&d) => {
                return lookup::load(state, auth, req, false).await;
            }
            Err(Rejection::Device(Some(d))) if d.active => return Err(ApiError::LicenseDeviceExists),
            Err(Rejection::License(Some(current))) => {
                ctx.license = *current;
                ctx.transfer_source = None;
            }
            Err(Rejection::Seat(Some(current))) => ctx.seat = Some(current),
            // The device changed under us (activated and deactivated again), an item is gone, or the
            // released slot was taken: read everything again.
            Err(Rejection::Device(_) | Rejection::License(None) | Rejection::Seat(None) | Rejection::Stale) => {
                resolved = lookup::load(state, auth, req, false).await?;
            }
            Err(Rejection::Conflict | Rejection::Unknown(_)) => return Err(ApiError::Contention),
            Err(Rejection::Store(e)) => return Err(ApiError::store(e)),
        }
        attempts.next_plan()?;
    }
}
