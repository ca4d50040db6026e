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
use crate::management::guarded::{self, Decision};
use crate::model::LicenseUser;
use crate::request::{ChangePasswordRequest, Credentials, Params};
use crate::secret::ExposeSecret;
use crate::state::AppState;
use crate::store::write::{Image, Item, Write};

/// The answer to a changed password (SPEC §9).
pub(crate) const CHANGED: &str = "password_changed";

pub async fn handle(req: &ApiRequest, state: &AppState, principal: Principal) -> Result<ApiResponse, ApiError> {
    let request = ChangePasswordRequest::parse(&Params::from_json(&req.body)?)?;
    let Credentials::User { username, .. } = &request.credentials else {
        return Err(ApiError::internal("change_password credentials name no user"));
    };
    let item = Item::User(principal.company.clone(), username.clone());
    let change = Change {
        action: "user.change_password",
        subject: user_subject(username),
        detail: serde_json::json!({}),
    };
    let (request, at, change) = (&request, &item, &change);
    // Verified again on each read: a record changed since (another change won) must prove the
    // password again.
    let decide = move |stored| async move {
        let user = lookup::proven_user(user_of(at, stored)?, &request.credentials).await?;
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
        let write = Write::replace_unchanged(at.clone(), &stored, changed);
        Ok(Decision::Write(write, change.clone(), ()))
    };
    guarded::rewrite_with(state, &principal, &item, decide).await?;
    Ok(ApiResponse::text(CHANGED))
}

fn user_of(item: &Item, stored: Option<Image>) -> Result<Option<LicenseUser>, ApiError> {
    match stored {
        Some(Image::User(user)) => Ok(Some(*user)),
        None => Ok(None),
        Some(_) => Err(ApiError::internal(format!(
            "{item:?} read back as another kind of item"
        ))),
    }
}
