//! The write loop of a support operation that changes one document item (a company's blacklist, a
//! license user's password or licenses): read the item, decide its new state from what was read, write
//! that on the condition that the item is still exactly as read, with the change's audit record in the
//! same write; a lost race re-reads and decides again. The License API's `change_password` runs through
//! the same loop ([`rewrite_with`], whose decision may await: it verifies the current password with
//! argon2 between the read and the decision), so a concurrent change by the user and by support never
//! silently overwrites the other.

use crate::audit::Change;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::handlers::Attempts;
use crate::state::Core;
use crate::store::write::{Image, Item, Write};
use crate::store::Rejection;
use std::future::Future;

/// What [`rewrite`]'s decision makes of the item as read, and what the operation answers (`T`).
pub(crate) enum Decision<T> {
    /// Write this (the item's own conditional replacement and whatever else must hold with it), which
    /// makes this change.
    Write(Write, Change, T),
    /// The item already is as asked: nothing is written, nothing recorded.
    Unchanged(T),
}

/// Reads `item`, has `decide` make the write from it, and applies that write with its change recorded
/// in it, until it is applied or `decide` refuses. Returns the answer of the decision that held, and
/// whether anything was written.
pub(crate) async fn rewrite<T: serde::Serialize>(
    state: &Core,
    principal: &Principal,
    item: &Item,
    decide: impl Fn(Option<Image>) -> Result<Decision<T>, ApiError>,
) -> Result<(T, bool), ApiError> {
    rewrite_with(state, principal, item, |stored| std::future::ready(decide(stored))).await
}

/// [`rewrite`] with a decision that awaits (a password verification, a hash): it runs again, on the
/// item as read again, after each lost race.
pub(crate) async fn rewrite_with<T, F>(
    state: &Core,
    principal: &Principal,
    item: &Item,
    decide: impl Fn(Option<Image>) -> F,
) -> Result<(T, bool), ApiError>
where
    T: serde::Serialize,
    F: Future<Output = Result<Decision<T>, ApiError>>,
{
    let mut attempts = Attempts::new(state, principal);
    loop {
        let stored = state.store.load(item).await.map_err(ApiError::store)?;
        let (mut write, change, answer) = match decide(stored).await? {
            Decision::Write(write, change, answer) => (write, change, answer),
            Decision::Unchanged(answer) => return Ok((answer, false)),
        };
        // A create with an `Idempotency-Key` records its answer in the write that makes it.
        write.items.extend(super::idempotency::record_item(&answer)?);
        let written = attempts
            .write(
                Some(&change),
                |_| write.clone(),
                |write, token| async move { state.store.apply(&write, &token).await },
            )
            .await;
        match written {
            Ok(()) => return Ok((answer, true)),
            // Something the decision read changed (another change won): decide again on the new state.
            Err(Rejection::Stale) => attempts.next_plan()?,
            // The license the write relies on is gone (deleted by a re-import meanwhile).
            Err(Rejection::License(None)) => return Err(ApiError::LicenseNotFound("license key")),
            // A seat the write deletes still charges active devices (`user unassign`).
            Err(Rejection::Seat(Some(seat))) => {
                return Err(ApiError::Validation(format!(
                    "user `{}` has {} device(s) active on this license: deactivate them first",
                    seat.user, seat.total_activations
                )))
            }
            Err(Rejection::Store(e)) => return Err(ApiError::store(e)),
            Err(other) => {
                tracing::warn!(error = %other, ?item, "guarded write did not complete");
                return Err(ApiError::Contention);
            }
        }
    }
}
