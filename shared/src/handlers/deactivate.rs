//! `POST /api/v4/deactivate_license` (SPEC §2.3): frees the device's slot. Answers `license_deactivated`
//! as text/plain. Offline deactivation (`offline`) is the same operation with the consumptions the request
//! reports and a record of the request in the write.

use super::lookup::{self, Resolved, UserCheck};
use super::runner::{self, Call, WriteOp};
use crate::audit::Change;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::http::{ApiRequest, ApiResponse};
use crate::plan::{DeactivationPlan, WriteToken};
use crate::request::LicenseRequest;
use crate::rules::{self, Consumptions};
use crate::state::{AppState, Core};
use crate::store::write::Write;
use crate::store::Rejection;

/// The answer to every successful deactivation (SPEC §8).
pub const DEACTIVATED: &str = "license_deactivated";

pub async fn handle(req: &ApiRequest, state: &AppState, principal: Principal) -> Result<ApiResponse, ApiError> {
    let request = super::license_request(req, state, &principal).await?;
    deactivate(state, &principal, &request).await?;
    Ok(ApiResponse::text(DEACTIVATED))
}

pub async fn deactivate(state: &Core, principal: &Principal, req: &LicenseRequest) -> Result<(), ApiError> {
    let none = Consumptions::default();
    let op = Deactivation::new(state, principal, req, &none);
    runner::run(&op, None).await?.online().map(drop)
}

/// A deactivation of one license's device, adding the consumptions it reports: the rules' decision
/// for [`runner::run`].
pub(super) struct Deactivation<'a> {
    on: Call<'a>,
    consumptions: &'a Consumptions,
}

impl<'a> Deactivation<'a> {
    pub fn new(
        app: &'a Core,
        principal: &'a Principal,
        req: &'a LicenseRequest,
        consumptions: &'a Consumptions,
    ) -> Self {
        Self {
            on: Call::new(app, principal, req),
            consumptions,
        }
    }
}

impl WriteOp for Deactivation<'_> {
    type State = Resolved;
    type Plan = DeactivationPlan;

    async fn load(&self, after: Option<&Rejection>) -> Result<Resolved, ApiError> {
        let mut resolved = lookup::load(self.on.app, self.on.principal, self.on.req, UserCheck::Release).await?;
        if let Some(Rejection::Seat(_)) = after {
            runner::mark_gone_seat(self.on.app, &mut resolved.ctx).await?;
        }
        Ok(resolved)
    }

    fn absorb(&self, resolved: &mut Resolved, refusal: &Rejection) -> bool {
        match refusal {
            Rejection::License(Some(current)) => resolved.ctx.license = (**current).clone(),
            // Someone deactivated (and maybe re-activated) the device first, a seat refused, or an item
            // changed: which answer applies depends on the state as it is now, so read it again.
            _ => return false,
        }
        true
    }

    fn call(&self) -> &Call<'_> {
        &self.on
    }

    fn decide(&self, resolved: &Resolved) -> Result<DeactivationPlan, ApiError> {
        let mut plan = rules::plan_deactivation(&resolved.ctx, &self.on.req.hardware_id, self.on.now)?;
        plan.charges = rules::plan_consumptions(&resolved.ctx, self.consumptions, self.on.now)?;
        Ok(plan)
    }

    fn write(&self, plan: &DeactivationPlan, token: &WriteToken) -> Write {
        plan.write(token)
    }

    fn change(&self, _: &Resolved, plan: &DeactivationPlan) -> Option<Change> {
        Some(deactivation_change(plan))
    }
}

/// The audit record's description of a deactivation: the device, and how many consumption counters
/// its request file reported.
pub(super) fn deactivation_change(plan: &DeactivationPlan) -> Change {
    let mut detail = serde_json::json!({ "hardware_id": plan.hardware_id.as_str() });
    if !plan.charges.is_empty() {
        detail["consumption_counters"] = plan.charges.len().into();
    }
    Change::on_license("license.deactivate", &plan.addr, detail)
}
