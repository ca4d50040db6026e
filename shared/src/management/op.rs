//! What every management operation shares: one page of a listing, and the one audited write of a
//! change that needs no re-decision (of a create: with its `Idempotency-Key` record).

use crate::audit::Change;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::handlers::Attempts;
use crate::state::Core;
use crate::store::write::Write;
use crate::store::Rejection;
use serde::Serialize;

/// Items of one page when the caller names no `limit`.
pub const DEFAULT_PAGE: usize = 100;
/// Most items one page holds (`?limit=`).
pub const MAX_PAGE: usize = 1000;

/// One page of a listing: `cursor` names where the next starts (`None`: this is the last).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Page<T> {
    pub items: Vec<T>,
    pub cursor: Option<String>,
}

/// The page size a caller asked for, within 1..=[`MAX_PAGE`].
pub fn page_limit(limit: Option<usize>) -> Result<usize, ApiError> {
    match limit.unwrap_or(DEFAULT_PAGE) {
        n @ 1..=MAX_PAGE => Ok(n),
        n => Err(ApiError::Validation(format!("limit: {n} is outside 1..={MAX_PAGE}"))),
    }
}

/// Applies `write` with the audit record of `change` as its last item, retrying with the same token
/// while the outcome is unknown (`Attempts::write`); a refused condition is returned to the caller.
pub(crate) async fn write_once(
    state: &Core,
    principal: &Principal,
    change: &Change,
    write: Write,
) -> Result<(), Rejection> {
    let mut attempts = Attempts::new(state, principal);
    attempts
        .write(
            Some(change),
            |_| write.clone(),
            |w, token| async move { state.store.apply(&w, &token).await },
        )
        .await
}

/// [`write_once`] of a create answering `answer`: the write also records that answer for the
/// request's `Idempotency-Key`, if it has one (`management::idempotency`). A refused condition is
/// `on_refusal`'s error.
pub(crate) async fn create_once<T: Serialize>(
    state: &Core,
    principal: &Principal,
    (change, mut write): (&Change, Write),
    answer: T,
    on_refusal: impl FnOnce() -> ApiError,
) -> Result<T, ApiError> {
    write.items.extend(super::idempotency::record_item(&answer)?);
    write_once(state, principal, change, write)
        .await
        .map_err(|r| super::keys::refused(r, on_refusal))?;
    Ok(answer)
}
