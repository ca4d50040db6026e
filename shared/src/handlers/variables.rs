//! Device variables (SPEC §9): `POST /api/v4/track_device_variables` merges the variables sent into the
//! active device's — the same storage and per-device bound as activation's `variables` — and
//! `GET /api/v4/get_device_variables` lists them. Both name the license and device as a check does and
//! refuse as it does. Tracking is a write of the one loop (`runner`): conditioned on the device's last
//! write as read, so two processes tracking one device at once each merge into what the other stored.

use super::lookup::{self, Resolved, UserCheck};
use super::runner::{self, Call, WriteOp};
use crate::auth::Principal;
use crate::error::ApiError;
use crate::http::{ApiRequest, ApiResponse};
use crate::plan::{VariablesPlan, WriteToken};
use crate::render::{self, VariableIds};
use crate::rules;
use crate::state::AppState;
use crate::store::write::Write;
use crate::store::Rejection;

/// `track_device_variables`: answers the variables sent, as stored.
pub async fn track(req: &ApiRequest, state: &AppState, principal: Principal) -> Result<ApiResponse, ApiError> {
    let request = super::license_request(req, state, &principal).await?;
    if request.variables.is_empty() {
        return Err(ApiError::MissingParameters("variables".into()));
    }
    let op = Tracking {
        on: Call::new(state, &principal, &request),
    };
    let after = runner::run(&op, None).await?.online()?;
    let device = tracked_device(&after)?;
    let sent = |name: &str| request.variables.iter().any(|(n, _)| n == name);
    Ok(ApiResponse::signed_json(
        &render::variables(device, sent, VariableIds::Omitted),
        &state.signer,
    ))
}

/// `get_device_variables`: every variable the device holds.
pub async fn list(req: &ApiRequest, state: &AppState, principal: Principal) -> Result<ApiResponse, ApiError> {
    let request = super::license_request(req, state, &principal).await?;
    let resolved = lookup::load(state, &principal, &request, UserCheck::Concealed).await?;
    rules::check(&resolved.ctx, &request.hardware_id)?;
    let device = tracked_device(&resolved)?;
    Ok(ApiResponse::signed_json(
        &render::variables(device, |_| true, VariableIds::Shown),
        &state.signer,
    ))
}

fn tracked_device(resolved: &Resolved) -> Result<&crate::model::Device, ApiError> {
    resolved
        .ctx
        .device
        .as_ref()
        .ok_or_else(|| ApiError::internal("the device of an accepted variables request is missing"))
}

/// A tracking of one device's variables: the rules' decision for [`runner::run`].
struct Tracking<'a> {
    on: Call<'a>,
}

impl WriteOp for Tracking<'_> {
    type State = Resolved;
    type Plan = VariablesPlan;
    /// The device's update alone, conditioned on its last write token and recording its own.
    const ALONE: bool = true;

    fn call(&self) -> &Call<'_> {
        &self.on
    }

    async fn load(&self, _after: Option<&Rejection>) -> Result<Resolved, ApiError> {
        lookup::load(self.on.app, self.on.principal, self.on.req, UserCheck::Concealed).await
    }

    fn absorb(&self, resolved: &mut Resolved, refusal: &Rejection) -> bool {
        match refusal {
            // Another write of the device won: merge into what it stored.
            Rejection::Device(Some(current)) => {
                resolved.ctx.device = Some((**current).clone());
                true
            }
            _ => false,
        }
    }

    fn decide(&self, resolved: &Resolved) -> Result<VariablesPlan, ApiError> {
        let req = self.on.req;
        rules::plan_tracking(&resolved.ctx, &req.hardware_id, &req.variables, self.on.now)
    }

    fn write(&self, plan: &VariablesPlan, token: &WriteToken) -> Write {
        plan.write(token)
    }

    /// Not audited: a device's variables are its own report of itself, like a check's details, and
    /// a record would turn this one-item update into a transaction (docs/audit.md).
    fn change(&self, _: &Self::State, _: &Self::Plan) -> Option<crate::audit::Change> {
        None
    }
}
