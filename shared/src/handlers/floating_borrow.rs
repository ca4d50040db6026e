//! `POST /api/v4/floating/borrow` (SPEC §9 "Floating cloud"): holds the caller's floating cloud slot
//! until `borrowed_until`, so the device can run without checking in. **Decision**
//! `license_not_borrowable` without `can_borrow` or for a time not after now or beyond
//! `max_borrow_time` hours (`rules::floating`). It takes a slot when the device holds none
//! (`floating_not_available` when none is free). Answers the license object with the check fields,
//! `is_borrowed` and `borrowed_until` set, signed.

use super::activate::ident;
use super::lookup::{self, Resolved, UserCheck};
use crate::audit::Change;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::http::{ApiRequest, ApiResponse};
use crate::render::{license_object, Identity, View};
use crate::request::{LicenseRequest, Params};
use crate::rules::{self, floating, floating::SlotChange};
use crate::state::AppState;
use crate::time::Timestamp;

pub async fn handle(req: &ApiRequest, state: &AppState, principal: Principal) -> Result<ApiResponse, ApiError> {
    let params = Params::from_json(&req.body)?;
    let until = borrowed_until(&params)?;
    let request = super::resolved(state, &principal, LicenseRequest::parse(&params)?).await?;
    let now = Timestamp::now();
    let mut attempts = super::Attempts::new(state, &principal);
    let Resolved { mut ctx, user } = loop {
        let mut resolved = lookup::load(state, &principal, &request, UserCheck::Concealed).await?;
        rules::check(&resolved.ctx, &request.hardware_id)?;
        let change = SlotChange::Borrow(until);
        let plan = floating::plan(&resolved.ctx.license, &request.hardware_id, now, change)?
            .ok_or(ApiError::LicenseNotBorrowable(until))?;
        let detail = serde_json::json!({ "hardware_id": request.hardware_id.as_str(), "until": until.to_string() });
        let change = Change::on_license("floating.borrow", &plan.addr, detail);
        if super::check::record(state, &mut attempts, &[], std::slice::from_ref(&plan), Some(&change)).await? {
            plan.applied_to(&mut resolved.ctx.license);
            break resolved;
        }
    };
    let device = ctx
        .device
        .take()
        .ok_or_else(|| ApiError::internal("borrowing device missing"))?;
    let who = Identity {
        hardware_id: &request.hardware_id,
        ident: ident(&request),
        user: user.as_ref().zip(ctx.seat.as_ref()),
    };
    let body = license_object(&ctx, &device, &who, View::check(&request), now, &state.signer);
    Ok(ApiResponse::signed_json(&body, &state.signer))
}

/// The required `borrowed_until` date-time.
fn borrowed_until(params: &Params) -> Result<Timestamp, ApiError> {
    let text = params
        .string("borrowed_until")?
        .ok_or_else(|| ApiError::MissingParameters("borrowed_until".into()))?;
    Timestamp::parse_iso(&text)
        .ok_or_else(|| ApiError::Validation("borrowed_until must be a date-time such as 2030-12-31T23:59:59Z".into()))
}
