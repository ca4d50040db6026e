//! `POST /api/v4/activate_license` (SPEC §2.2): the rules decide, the store writes atomically, and a
//! write that lost a race is re-decided against the state that won (`runner`), so the answer is always
//! the one the rules give for the real state. Offline activation (`offline`) is the same operation with a
//! record of the request in the write.

use super::lookup::{self, Resolved, UserCheck};
use super::runner::{self, Call, WriteOp};
use crate::audit::Change;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::http::{ApiRequest, ApiResponse};
use crate::plan::{ActivationPlan, LicenseAddr, Slot, WriteToken};
use crate::render::{license_object, Identity, View};
use crate::request::{Credentials, LicenseRequest};
use crate::rules::{self, Transport};
use crate::signing::Signer;
use crate::state::AppState;
use crate::store::write::Write;
use crate::store::Rejection;
use crate::time::Timestamp;

pub async fn handle(req: &ApiRequest, state: &AppState, principal: Principal) -> Result<ApiResponse, ApiError> {
    let request = super::license_request(req, state, &principal).await?;
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
    let op = Activation::new(state, principal, req, transport);
    runner::run(&op, None).await?.online()
}

/// An activation of one license's device: the rules' decision for [`runner::run`].
pub(super) struct Activation<'a> {
    on: Call<'a>,
    transport: Transport,
}

impl<'a> Activation<'a> {
    pub fn new(app: &'a AppState, principal: &'a Principal, req: &'a LicenseRequest, transport: Transport) -> Self {
        Self {
            on: Call::new(app, principal, req),
            transport,
        }
    }
}

impl WriteOp for Activation<'_> {
    type State = Resolved;
    type Plan = ActivationPlan;

    async fn load(&self, after: Option<&Rejection>) -> Result<Resolved, ApiError> {
        let how = UserCheck::activation(after);
        lookup::load(self.on.app, self.on.principal, self.on.req, how).await
    }

    async fn complete(&self, resolved: &mut Resolved) -> Result<(), ApiError> {
        if rules::needs_transfer_source(&resolved.ctx) {
            let addr = LicenseAddr::of(&resolved.ctx.license);
            resolved.ctx.transfer_source = self.on.app.store.released_slot(&addr).await.map_err(ApiError::store)?;
        }
        Ok(())
    }

    fn absorb(&self, resolved: &mut Resolved, refusal: &Rejection) -> bool {
        match refusal {
            Rejection::License(Some(current)) => {
                resolved.ctx.license = (**current).clone();
                resolved.ctx.transfer_source = None;
            }
            Rejection::Seat(Some(current)) => resolved.ctx.seat = Some(current.clone()),
            // The device changed under us (activated, or activated and deactivated again), an item is
            // gone, or the released slot was taken: read everything again.
            _ => return false,
        }
        true
    }

    fn call(&self) -> &Call<'_> {
        &self.on
    }

    fn decide(&self, resolved: &Resolved) -> Result<ActivationPlan, ApiError> {
        rules::plan_activation(&resolved.ctx, self.on.req, self.on.now, self.transport)
    }

    fn write(&self, plan: &ActivationPlan, token: &WriteToken) -> Write {
        plan.write(token)
    }

    fn change(&self, _: &Resolved, plan: &ActivationPlan) -> Option<Change> {
        Some(activation_change(plan))
    }
}

/// The audit record's description of an activation: the device and, for a user's, the user.
pub(super) fn activation_change(plan: &ActivationPlan) -> Change {
    let mut detail = serde_json::json!({ "hardware_id": plan.device.hardware_id.as_str() });
    if let Some((user, _)) = &plan.seat {
        detail["user"] = user.as_str().into();
    }
    if let Slot::Transfer { .. } = plan.slot {
        detail["transfer"] = true.into();
    }
    Change::on_license("license.activate", &plan.addr, detail)
}
