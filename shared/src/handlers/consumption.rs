//! `POST /api/v4/add_consumption` and `POST /api/v4/add_feature_consumption` (SPEC §9): usage a client
//! syncs, added to the license's or a feature's counter. The device must be active on the license, as
//! for a check. The charge is the one offline deactivation makes (`rules::plan_consumptions` and these
//! share `rules::charge`), written through the same loop (`runner::run`): every rule — unlimited,
//! overages, negative amounts, periodic reset, ±(2^53 − 1) — is a condition of the license's write,
//! and the device is checked in that write too, so a concurrent deactivation refuses it.

use super::lookup::{self, Resolved, UserCheck};
use super::runner::{self, Call, WriteOp};
use crate::audit::Change;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::http::{ApiRequest, ApiResponse};
use crate::ids::MAX_ID_LEN;
use crate::plan::{ConsumptionPlan, Counter, WriteToken};
use crate::render;
use crate::request::{LicenseRequest, Params};
use crate::rules::{self, Consume, Overages};
use crate::state::AppState;
use crate::store::write::Write;
use crate::store::Rejection;
use crate::time::Timestamp;

pub async fn handle_license(req: &ApiRequest, state: &AppState, principal: Principal) -> Result<ApiResponse, ApiError> {
    let (request, consume) = super::license_request_with(req, state, &principal, |p| {
        Ok(Consume::License {
            amount: amount(p)?,
            overages: Overages {
                allow: p.bool("allow_overages")?,
                max: p.integer("max_overages")?,
            },
        })
    })
    .await?;
    let (after, now) = add(state, &principal, &request, &consume).await?;
    let body = render::consumption_answer(&after.ctx, now);
    Ok(ApiResponse::signed_json(&body, &state.signer))
}

pub async fn handle_feature(req: &ApiRequest, state: &AppState, principal: Principal) -> Result<ApiResponse, ApiError> {
    let (request, consume) = super::license_request_with(req, state, &principal, |p| {
        Ok(Consume::Feature {
            code: feature_code(p)?,
            amount: amount(p)?,
        })
    })
    .await?;
    let (after, now) = add(state, &principal, &request, &consume).await?;
    let Consume::Feature { code, .. } = &consume else {
        return Err(ApiError::internal("a feature consumption without its feature"));
    };
    let feature = rules::consumption_feature(&after.ctx, code)?;
    let body = render::feature(feature, &after.ctx.license, now);
    Ok(ApiResponse::signed_json(&body, &state.signer))
}

/// `consumptions`: an integer, 1 when absent (SPEC §9); its range is the rules' to check.
fn amount(p: &Params) -> Result<i64, ApiError> {
    Ok(p.integer("consumptions")?.unwrap_or(1))
}

/// `feature`: the code of one of the product's features, required.
pub(super) fn feature_code(p: &Params) -> Result<String, ApiError> {
    let code = p.required("feature")?;
    if code.len() > MAX_ID_LEN {
        return Err(ApiError::Validation(format!(
            "`feature` is longer than {MAX_ID_LEN} bytes"
        )));
    }
    Ok(code)
}

/// Adds `consume` to the license `req` names: the state the write left, and the time it was decided
/// at (the answer shows the counters' periods as of then).
async fn add(
    state: &AppState,
    principal: &Principal,
    req: &LicenseRequest,
    consume: &Consume,
) -> Result<(Resolved, Timestamp), ApiError> {
    let op = Consumption {
        on: Call::new(state, principal, req),
        consume,
    };
    let after = runner::run(&op, None).await?.online()?;
    Ok((after, op.on.now))
}

/// A consumption added to one license: the rules' decision for [`runner::run`].
struct Consumption<'a> {
    on: Call<'a>,
    consume: &'a Consume,
}

impl WriteOp for Consumption<'_> {
    type State = Resolved;
    type Plan = ConsumptionPlan;

    fn call(&self) -> &Call<'_> {
        &self.on
    }

    async fn load(&self, _after: Option<&Rejection>) -> Result<Resolved, ApiError> {
        lookup::load(self.on.app, self.on.principal, self.on.req, UserCheck::Concealed).await
    }

    fn absorb(&self, resolved: &mut Resolved, refusal: &Rejection) -> bool {
        match refusal {
            // The license that won (another request's charge, or a re-import): decide again on it.
            Rejection::License(Some(current)) => {
                resolved.ctx.license = (**current).clone();
                true
            }
            // The device was deactivated or re-activated: which answer applies needs a new read.
            _ => false,
        }
    }

    fn decide(&self, resolved: &Resolved) -> Result<ConsumptionPlan, ApiError> {
        rules::plan_consumption(&resolved.ctx, &self.on.req.hardware_id, self.consume, self.on.now)
    }

    fn write(&self, plan: &ConsumptionPlan, _token: &WriteToken) -> Write {
        plan.write()
    }

    /// A consumption of 0 changes nothing and records nothing.
    fn change(&self, _: &Resolved, plan: &ConsumptionPlan) -> Option<Change> {
        let charges: Vec<_> = plan
            .charges
            .iter()
            .filter(|c| c.amount != 0)
            .map(|c| match &c.counter {
                Counter::Consumptions => serde_json::json!({ "amount": c.amount }),
                Counter::Feature(f) => serde_json::json!({ "feature": f, "amount": c.amount }),
            })
            .collect();
        let detail = serde_json::json!({ "hardware_id": plan.device.hardware_id.as_str(), "charges": charges });
        (!charges.is_empty()).then(|| Change::on_license("license.consume", &plan.addr, detail))
    }
}
