//! `GET /api/v4/check_license` (SPEC §3 "Check"): one consistent read decides the check — every gate,
//! including those kept on shared items (product disabled or archived, product and company
//! blacklists) — and a refused check writes nothing. An accepted one is recorded on its device alone,
//! and only when due (`rules::plan_check`): most checks write nothing, and no check writes an item
//! another license's requests touch, so checks never conflict with requests on other licenses. What
//! the API key alone decides (its product restriction) is decided before any store I/O. A floating
//! cloud license's check also takes or refreshes the device's slot (`rules::floating`) in the same
//! write, on the license item: no free slot → `floating_not_available`, nothing written.

use super::activate::ident;
use super::lookup::{self, Resolved, UserCheck};
use crate::audit::Change;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::http::{ApiRequest, ApiResponse};
use crate::plan::{CheckPlan, FloatingPlan};
use crate::render::{license_object, Identity, View};
use crate::rules::{self, floating, floating::SlotChange};
use crate::state::AppState;
use crate::store::write::checks_write;
use crate::store::Rejection;
use crate::time::Timestamp;

pub async fn handle(req: &ApiRequest, state: &AppState, principal: Principal) -> Result<ApiResponse, ApiError> {
    let request = super::license_request(req, state, &principal).await?;
    principal.ensure_product(&request.product)?;
    let now = Timestamp::now();
    let mut attempts = super::Attempts::new(state, &principal);
    let Resolved { ctx, user } = loop {
        let mut resolved = lookup::load(state, &principal, &request, UserCheck::Concealed).await?;
        rules::check(&resolved.ctx, &request.hardware_id)?;
        let due = rules::plan_check(&resolved.ctx, &request, now, state.last_seen_interval);
        let slot = floating::plan(&resolved.ctx.license, &request.hardware_id, now, SlotChange::Hold)?;
        if due.is_none() && slot.is_none() {
            break resolved;
        }
        if record(state, &mut attempts, due.as_slice(), slot.as_slice(), None).await? {
            if let Some(slot) = slot {
                slot.applied_to(&mut resolved.ctx.license);
            }
            break resolved;
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
    let body = license_object(&ctx, device, &who, View::check(&request), now, &state.signer);
    Ok(ApiResponse::signed_json(&body, &state.signer))
}

/// Records accepted checks (one device, or a bundle's members) and the floating cloud slots they take
/// or refresh (one per floating cloud license checked), in one write; `false` when the store refused
/// because a device changed since the read (deactivated, re-activated, or recorded by a concurrent
/// check) or a license's slots did: the caller reads again and decides again, within the deadline.
/// `change`: the audit record of a borrow or release; a check's own writes (last seen, details, a
/// slot held while it checks in) are not audited (docs/audit.md).
pub(super) async fn record(
    state: &AppState,
    attempts: &mut super::Attempts,
    plans: &[CheckPlan],
    slots: &[FloatingPlan],
    change: Option<&Change>,
) -> Result<bool, ApiError> {
    let mut write = checks_write(plans);
    write.items.extend(slots.iter().map(FloatingPlan::write));
    let recorded = attempts
        .write(
            change,
            |_| write.clone(),
            |write, token| async move { state.store.record_checks(&write, &token).await },
        )
        .await;
    match recorded {
        Ok(()) => Ok(true),
        Err(Rejection::Store(e)) => Err(ApiError::store(e)),
        Err(Rejection::Conflict | Rejection::Unknown(_)) => Err(ApiError::Contention),
        Err(_) => attempts.next_plan().map(|()| false),
    }
}
