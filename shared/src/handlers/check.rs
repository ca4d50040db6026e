//! `GET /api/v4/check_license` (SPEC §3 "Check"): reads the license and records the check on the device
//! concurrently, so a warm key-based check costs one round trip of latency. The record is a conditional
//! write carrying every condition the check rules decide (`store::write::CheckPlan`): a check that is
//! refused changes no device. What the API key alone decides (its product restriction) is decided
//! before any store I/O.

use super::activate::ident;
use super::lookup::{self, UserCheck};
use crate::auth::{Access, Principal};
use crate::error::ApiError;
use crate::http::{ApiRequest, ApiResponse};
use crate::model::LicenseUser;
use crate::render::{license_object, Identity, View};
use crate::request::{Credentials, LicenseRequest};
use crate::rules::{self, LicenseContext};
use crate::state::AppState;
use crate::store::{LicenseAddr, Rejection, WriteToken};
use crate::time::Timestamp;

pub async fn handle(req: &ApiRequest, state: &AppState) -> Result<ApiResponse, ApiError> {
    let (principal, request) = super::authenticated(req, state, Access::Read).await?;
    principal.ensure_product(&request.product)?;
    let now = Timestamp::now();
    let mut attempts = super::Attempts::new(state);
    let (ctx, user) = loop {
        let (decision, recorded) = attempt(state, &principal, &request, now, attempts.token()).await?;
        match (decision, recorded) {
            (Ok(checked), Ok(())) => break checked,
            // Both refuse: the read's error is the answer, and nothing was written.
            (Err(e), Err(Rejection::Device(_) | Rejection::License(_) | Rejection::Seat(_) | Rejection::Stale)) => {
                return Err(e)
            }
            (_, Err(Rejection::Store(e))) => return Err(ApiError::store(e)),
            (Err(e), _) if attempts.ensure_time_left().is_err() => return Err(e),
            // The read and the write saw different states (a concurrent change), or the write's outcome
            // is unknown: check again, within the deadline.
            _ => attempts.back_off(true).await?,
        }
    };
    let device = ctx
        .device
        .as_ref()
        .ok_or_else(|| ApiError::internal("checked device missing"))?;
    let who = Identity {
        hardware_id: &request.hardware_id,
        ident: ident(&request),
        user: user.as_ref().zip(ctx.seat.as_ref()),
    };
    let body = license_object(&ctx, device, &who, View::Check, now, &state.signer);
    Ok(ApiResponse::signed_json(&body, &state.signer))
}

type Checked = (LicenseContext, Option<LicenseUser>);

/// One read with its concurrent conditional write: the rules' decision on what was read, and the write's
/// outcome. Errors that come before the write (the user's record) return early.
async fn attempt(
    state: &AppState,
    principal: &Principal,
    request: &LicenseRequest,
    now: Timestamp,
    token: &WriteToken,
) -> Result<(Result<Checked, ApiError>, Result<(), Rejection>), ApiError> {
    let store = &*state.store;
    // Key-based: the license's address is known from the request, so the read and the write go out
    // together. User-based: the user's record names the license first.
    match &request.credentials {
        // A bundle's member: whether the license belongs to that bundle is known only once it is read,
        // and a refused check must write nothing, so the write waits for the read.
        Credentials::Key(_) if request.bundle_code.is_some() => {
            let mut read = lookup::read_context(state, principal, request, true).await?;
            let product = lookup::product(&mut read, request)?;
            let license = lookup::key_license(&mut read, request)?;
            let plan = rules::plan_check(LicenseAddr::of(&license), request, None, now);
            let recorded = store.record_check(&plan, token).await;
            let ctx = LicenseContext {
                device: read.device.take(),
                ..LicenseContext::new(product, read.company.take().unwrap_or_default(), license)
            };
            Ok((rules::check(&ctx, &request.hardware_id).map(|()| (ctx, None)), recorded))
        }
        Credentials::Key(key) => {
            let addr = LicenseAddr::Key {
                company: principal.company.clone(),
                product: request.product.clone(),
                key: key.clone(),
            };
            let plan = rules::plan_check(addr, request, None, now);
            let (read, recorded) = tokio::join!(
                lookup::read_context(state, principal, request, true),
                store.record_check(&plan, token)
            );
            let decision = read.and_then(|mut read| {
                let product = lookup::product(&mut read, request)?;
                let license = lookup::key_license(&mut read, request)?;
                let ctx = LicenseContext {
                    device: read.device.take(),
                    ..LicenseContext::new(product, read.company.take().unwrap_or_default(), license)
                };
                rules::check(&ctx, &request.hardware_id)?;
                Ok((ctx, None))
            });
            Ok((decision, recorded))
        }
        _ => {
            let mut read = lookup::read_context(state, principal, request, false).await?;
            let product = lookup::product(&mut read, request)?;
            let (user, addr) =
                lookup::user_license(state, &mut read, &principal.company, request, UserCheck::Concealed).await?;
            let plan = rules::plan_check(addr.clone(), request, Some(user.email.clone()), now);
            let (found, recorded) = tokio::join!(
                store.read_license(&addr, Some(&user.email), &request.hardware_id),
                store.record_check(&plan, token)
            );
            let decision = found.map_err(ApiError::store).and_then(|found| {
                let (Some(license), Some(seat)) = (found.license, found.seat) else {
                    return Err(lookup::CONCEALED);
                };
                lookup::ensure_active(found.device.as_ref())?;
                let ctx = LicenseContext {
                    seat: Some(seat),
                    device: found.device,
                    ..LicenseContext::new(product, read.company.take().unwrap_or_default(), license)
                };
                rules::check(&ctx, &request.hardware_id)?;
                Ok((ctx, Some(user)))
            });
            Ok((decision, recorded))
        }
    }
}
