//! `POST /api/v4/change_password` (SPEC §9): a license user replaces their password. The current one is
//! verified as activation verifies it (`lookup::proven_user`: argon2id, an unknown user costs the same
//! hash and answers the same `license_not_found`, within the per-user and per-address guessing
//! budgets); a user whose record says `password_change_disabled` gets `change_password_not_allowed`,
//! after the verification, so the answer reveals nothing to someone without the password. The new
//! argon2id hash is written through the write model on the condition that the user's record is still
//! the one verified: of two concurrent changes with the same old password, one wins and the other
//! re-reads, no longer matches and answers `license_not_found`.

use super::lookup;
use crate::audit::{user_subject, Change};
use crate::auth::Principal;
use crate::error::ApiError;
use crate::http::{ApiRequest, ApiResponse};
use crate::model::LicenseUser;
use crate::request::{ChangePasswordRequest, Credentials, Params};
use crate::secret::ExposeSecret;
use crate::state::AppState;
use crate::store::write::{Image, Item, Write};
use crate::store::Rejection;

/// The answer to a changed password (SPEC §9).
pub(crate) const CHANGED: &str = "password_changed";

pub async fn handle(req: &ApiRequest, state: &AppState, principal: Principal) -> Result<ApiResponse, ApiError> {
    let request = ChangePasswordRequest::parse(&Params::from_json(&req.body)?)?;
    let Credentials::User { username, .. } = &request.credentials else {
        return Err(ApiError::internal("change_password credentials name no user"));
    };
    let item = Item::User(principal.company.clone(), username.clone());
    let mut attempts = super::Attempts::new(state, &principal);
    let change = Change {
        action: "user.change_password",
        subject: user_subject(username),
        detail: serde_json::json!({}),
    };
    loop {
        let stored = load_user(state, &item).await?;
        let user = lookup::proven_user(stored, &request.credentials).await?;
        if user.password_change_disabled {
            return Err(ApiError::ChangePasswordNotAllowed);
        }
        let secret = request.new_password.expose_secret().to_owned();
        let hash = tokio::task::spawn_blocking(move || crate::password::hash(&secret))
            .await
            .map_err(|e| ApiError::internal(format!("hashing the new password failed: {e}")))?;
        let stored = Image::User(Box::new(user.clone()));
        let changed = Image::User(Box::new(LicenseUser {
            password_hash: Some(hash),
            is_initial_password: false,
            password_changed_by_user: true,
            ..user
        }));
        let write = Write::replace_unchanged(item.clone(), &stored, changed);
        let written = attempts
            .write(
                Some(&change),
                |_| write.clone(),
                |write, token| async move { state.store.apply(&write, &token).await },
            )
            .await;
        match written {
            Ok(()) => return Ok(ApiResponse::text(CHANGED)),
            // The record changed since it was verified (another change won): verify again against it.
            Err(Rejection::Stale) => attempts.next_plan()?,
            Err(Rejection::Store(e)) => return Err(ApiError::store(e)),
            Err(other) => {
                tracing::warn!(error = %other, "change_password write did not complete");
                return Err(ApiError::Contention);
            }
        }
    }
}

async fn load_user(state: &AppState, item: &Item) -> Result<Option<LicenseUser>, ApiError> {
    match state.store.load(item).await.map_err(ApiError::store)? {
        Some(Image::User(user)) => Ok(Some(*user)),
        None => Ok(None),
        Some(_) => Err(ApiError::internal(format!(
            "{item:?} read back as another kind of item"
        ))),
    }
}
