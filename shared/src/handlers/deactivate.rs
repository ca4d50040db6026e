//! `POST /api/v4/deactivate_license` (SPEC §2.3): frees the device's slot. Answers `license_deactivated`
//! as text/plain. Offline deactivation (`offline`) is the same operation with the consumptions the request
//! reports and a record of the request in the write.

use super::lookup::{self, Resolved, UserCheck};
use super::runner::{self, WriteOp};
use crate::auth::{Access, Authenticated};
use crate::error::ApiError;
use crate::http::{ApiRequest, ApiResponse};
use crate::request::LicenseRequest;
use crate::rules::{self, Consumptions};
use crate::state::AppState;
use crate::store::write::Write;
use crate::store::{DeactivationPlan, Rejection, WriteToken};
use crate::time::Timestamp;

/// The answer to every successful deactivation (SPEC §8).
pub const DEACTIVATED: &str = "license_deactivated";

pub async fn handle(req: &ApiRequest, state: &AppState) -> Result<ApiResponse, ApiError> {
    let (auth, request) = super::authenticated(req, state, Access::Write).await?;
    deactivate(state, &auth, &request).await?;
    Ok(ApiResponse::text(DEACTIVATED))
}

pub async fn deactivate(state: &AppState, auth: &Authenticated, req: &LicenseRequest) -> Result<(), ApiError> {
    let none = Consumptions::default();
    let op = Deactivation::new(state, auth, req, &none);
    runner::run(state, &op, None).await?.online().map(drop)
}

/// A deactivation of one license's device, adding the consumptions it reports: the rules' decision
/// for [`runner::run`].
pub(super) struct Deactivation<'a> {
    app: &'a AppState,
    auth: &'a Authenticated,
    req: &'a LicenseRequest,
    consumptions: &'a Consumptions,
    now: Timestamp,
}

impl<'a> Deactivation<'a> {
    pub fn new(
        app: &'a AppState,
        auth: &'a Authenticated,
        req: &'a LicenseRequest,
        consumptions: &'a Consumptions,
    ) -> Self {
        Self {
            app,
            auth,
            req,
            consumptions,
            now: Timestamp::now(),
        }
    }
}

impl WriteOp for Deactivation<'_> {
    type State = Resolved;
    type Plan = DeactivationPlan;

    async fn load(&self, after: Option<&Rejection>) -> Result<Resolved, ApiError> {
        let mut resolved = lookup::load(self.app, self.auth, self.req, UserCheck::Concealed).await?;
        if let Some(Rejection::Seat(_)) = after {
            runner::mark_gone_seat(self.app, &mut resolved.ctx).await?;
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

    fn now(&self) -> Timestamp {
        self.now
    }

    fn decide(&self, resolved: &Resolved) -> Result<DeactivationPlan, ApiError> {
        let mut plan = rules::plan_deactivation(&resolved.ctx, &self.req.hardware_id, self.now)?;
        plan.charges = rules::plan_consumptions(&resolved.ctx, self.consumptions, self.now)?;
        Ok(plan)
    }

    fn write(&self, plan: &DeactivationPlan, token: &WriteToken) -> Write {
        plan.write(token)
    }
}
