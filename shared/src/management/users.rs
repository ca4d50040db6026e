//! Support's operations on license users (docs/management-devices.md): set or reset a user's password,
//! assign a user to a user-based license with their own activation limit, and unassign them. Each
//! replaces the user's record on the condition that it is unchanged since read
//! ([`guarded::rewrite`]), so a concurrent `change_password` or assignment is never lost.
//!
//! A password set here is kept by a catalog re-import, as one the user set themselves is
//! (`password_changed_by_user`): support set it after the catalog's, usually at the user's request, and
//! a re-import that reverted it would lock the user out again. A vendor who manages passwords in the
//! catalog sets `password_change_disabled`, and the catalog's password wins on re-import.

use super::devices::LicenseRef;
use super::guarded::{self, Decision};
use crate::audit::{user_subject, Change};
use crate::auth::Principal;
use crate::error::ApiError;
use crate::ids::Username;
use crate::model::{AuthorizationMethod, LicenseUser, Seat};
use crate::plan::LicenseAddr;
use crate::request::NEW_PASSWORD_BYTES;
use crate::secret::{ExposeSecret, SecretString};
use crate::state::Core;
use crate::store::write::{create_or_replace, Action, Attr, Cond, Image, Item, ItemWrite, Val, Write};
use serde::{Deserialize, Serialize};

/// Most licenses (bundle members included) one user may be assigned: the user's record lists them all.
pub const MAX_USER_LICENSES: usize = 1000;

/// Length of a generated password, in characters of [`GENERATED_ALPHABET`] (~143 bits).
pub const GENERATED_PASSWORD_LEN: usize = 24;
const GENERATED_ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";

#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SetPassword {
    pub email: Username,
    /// The new password; `None`: generate one, returned once in the answer.
    #[serde(default)]
    pub password: Option<String>,
    /// The user must change it at first sign-in (`is_initial_password`); default: when generated.
    #[serde(default)]
    pub initial: Option<bool>,
}

/// Never prints the password.
impl std::fmt::Debug for SetPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SetPassword")
            .field("email", &self.email)
            .field("password", &crate::secret::redacted_option(&self.password))
            .field("initial", &self.initial)
            .finish()
    }
}

#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PasswordSet {
    /// The generated password (only when none was given): shown once, stored only as its hash.
    pub generated_password: Option<String>,
}

/// Never prints the generated password.
impl std::fmt::Debug for PasswordSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordSet")
            .field(
                "generated_password",
                &crate::secret::redacted_option(&self.generated_password),
            )
            .finish()
    }
}

/// A password of [`GENERATED_PASSWORD_LEN`] random characters from the OS's generator.
pub fn generate_password() -> SecretString {
    use rand::Rng;
    let mut rng = rand::rngs::OsRng;
    let password: String = (0..GENERATED_PASSWORD_LEN)
        .map(|_| GENERATED_ALPHABET[rng.gen_range(0..GENERATED_ALPHABET.len())] as char)
        .collect();
    SecretString::from(password)
}

/// Sets the user's password (argon2id, `password::hash`); the password is in no log and no record.
pub async fn set_password(state: &Core, principal: &Principal, input: SetPassword) -> Result<PasswordSet, ApiError> {
    let generated = input.password.is_none();
    let password = match input.password {
        Some(p) if !NEW_PASSWORD_BYTES.contains(&p.len()) => {
            return Err(ApiError::Validation(format!(
                "`password` must be {} to {} bytes",
                NEW_PASSWORD_BYTES.start(),
                NEW_PASSWORD_BYTES.end()
            )))
        }
        Some(p) => SecretString::from(p),
        None => generate_password(),
    };
    let secret = password.clone();
    let hash = tokio::task::spawn_blocking(move || crate::password::hash(secret.expose_secret()))
        .await
        .map_err(|e| ApiError::internal(format!("hashing the new password failed: {e}")))?;
    let initial = input.initial.unwrap_or(generated);
    let change = Change {
        action: "user.set_password",
        subject: user_subject(&input.email),
        detail: serde_json::json!({ "initial": initial, "via": "management" }),
    };
    let item = Item::User(principal.company.clone(), input.email.clone());
    let decide = |stored: Option<Image>| {
        let user = stored_user(stored.as_ref())?;
        let changed = Image::User(Box::new(LicenseUser {
            password_hash: Some(hash.clone()),
            is_initial_password: initial,
            trial_password: false,
            password_changed_by_user: true,
            ..user
        }));
        let write = Write {
            items: vec![create_or_replace(item.clone(), stored.clone(), changed)],
        };
        Ok(Decision::Write(write, change.clone(), ()))
    };
    guarded::rewrite(state, principal, &item, decide).await?;
    Ok(PasswordSet {
        generated_password: generated.then(|| password.expose_secret().to_owned()),
    })
}

/// The user as stored; 404 `license_not_found` when there is none.
fn stored_user(stored: Option<&Image>) -> Result<LicenseUser, ApiError> {
    match stored {
        Some(Image::User(u)) => Ok((**u).clone()),
        None => Err(ApiError::LicenseNotFound("license user")),
        Some(_) => Err(ApiError::internal("a license user read back as another kind of item")),
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AssignUser {
    pub email: Username,
    /// A user-based license (named by `license_id`).
    pub license: LicenseRef,
    /// The user's own activation limit on it; 0 or absent: unlimited within the license's.
    #[serde(default)]
    pub max_activations: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Assigned {
    /// It was assigned before (only the limit changed).
    pub already: bool,
}

/// Assigns the user to a user-based license with a seat of `max_activations` (0: unlimited), or
/// changes the limit of their seat there: the user's record and the seat are written together, on
/// the conditions that the record is as read and the license still exists. A seat's activations so far
/// are kept.
pub async fn assign_user(state: &Core, principal: &Principal, input: AssignUser) -> Result<Assigned, ApiError> {
    let (addr, id) = user_license(state, principal, &input.license).await?;
    if !(0..=crate::catalog::MAX_SAFE_INTEGER).contains(&input.max_activations) {
        return Err(ApiError::Validation("`max_activations` must be 0 or more".into()));
    }
    let entry = (input.license.product.clone(), id);
    let seat = Seat {
        user: input.email.clone(),
        max_activations: input.max_activations,
        allow_unlimited_activations: input.max_activations == 0,
        total_activations: 0,
    };
    let item = Item::User(principal.company.clone(), input.email.clone());
    let decide = |stored: Option<Image>| {
        let mut user = stored_user(stored.as_ref())?;
        let held = user.licenses.contains(&entry);
        if !held {
            if user.licenses.len() + user.bundle_licenses.len() >= MAX_USER_LICENSES {
                return Err(ApiError::Validation(format!(
                    "user `{}` already holds {MAX_USER_LICENSES} licenses, the most one user may",
                    input.email
                )));
            }
            user.licenses.push(entry.clone());
            // Support's, so a re-import that does not name it keeps it (docs/catalog.md, *Ownership*).
            user.management_licenses.push(entry.clone());
        }
        let detail = serde_json::json!({
            "license": crate::audit::license_subject(&addr),
            "max_activations": input.max_activations,
            "via": "management",
        });
        let write = Write {
            items: vec![
                create_or_replace(item.clone(), stored.clone(), Image::User(Box::new(user))),
                license_exists(&addr, id),
                ItemWrite {
                    item: Item::Seat(addr.clone(), input.email.clone()),
                    conditions: Vec::new(),
                    action: Action::Upsert(Image::Seat(seat.clone())),
                },
            ],
        };
        let change = Change {
            action: "user.assign",
            subject: user_subject(&input.email),
            detail,
        };
        Ok(Decision::Write(write, change, held))
    };
    let (already, _) = guarded::rewrite(state, principal, &item, decide).await?;
    Ok(Assigned { already })
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UnassignUser {
    pub email: Username,
    pub license: LicenseRef,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Unassigned {
    /// It was assigned (`false`: nothing to do).
    pub removed: bool,
}

/// Removes the license from the user's record and deletes their seat. Refused (`validation_error`)
/// while the user has devices active on it: free them first (`device deactivate`), so no activation
/// is left charged to a seat that no longer exists.
pub async fn unassign_user(state: &Core, principal: &Principal, input: UnassignUser) -> Result<Unassigned, ApiError> {
    let (addr, id) = user_license(state, principal, &input.license).await?;
    let entry = (input.license.product.clone(), id);
    let item = Item::User(principal.company.clone(), input.email.clone());
    let decide = |stored: Option<Image>| {
        let mut user = stored_user(stored.as_ref())?;
        if !user.licenses.contains(&entry) {
            return Ok(Decision::Unchanged(()));
        }
        user.licenses.retain(|l| *l != entry);
        user.management_licenses.retain(|l| *l != entry);
        let write = Write {
            items: vec![
                create_or_replace(item.clone(), stored.clone(), Image::User(Box::new(user))),
                ItemWrite {
                    item: Item::Seat(addr.clone(), input.email.clone()),
                    // The seat charges no active device (a device's activation adds 1, its deactivation
                    // takes it back), else the write is refused.
                    conditions: vec![Cond::Not(Box::new(Cond::Gt(Attr::TotalActivations, 0)))],
                    action: Action::Delete,
                },
            ],
        };
        let change = Change {
            action: "user.unassign",
            subject: user_subject(&input.email),
            detail: serde_json::json!({ "license": crate::audit::license_subject(&addr), "via": "management" }),
        };
        Ok(Decision::Write(write, change, ()))
    };
    let ((), removed) = guarded::rewrite(state, principal, &item, decide).await?;
    Ok(Unassigned { removed })
}

/// The user-based license `license` names (by id), which must exist: its address and id.
async fn user_license(
    state: &Core,
    principal: &Principal,
    license: &LicenseRef,
) -> Result<(LicenseAddr, i64), ApiError> {
    let addr = license.addr(principal)?;
    let LicenseAddr::Id { id, .. } = addr else {
        return Err(ApiError::Validation(
            "license users hold user-based licenses, named by `license_id`".into(),
        ));
    };
    let product = state
        .store
        .load(&Item::Product(principal.company.clone(), license.product.clone()))
        .await
        .map_err(ApiError::store)?;
    let found = state.store.get_license(&addr).await.map_err(ApiError::store)?;
    match (product, found) {
        (Some(Image::Product(p)), Some(l))
            if p.authorization_method == AuthorizationMethod::User && l.terms.bundle.is_none() =>
        {
            Ok((addr, id))
        }
        (Some(_), Some(_)) => Err(ApiError::Validation(
            "only a user-based product's own licenses (not bundle members) are assigned to users here".into(),
        )),
        _ => Err(ApiError::LicenseNotFound("license id")),
    }
}

/// The license at `addr` still holds license `id` (a re-import did not replace it meanwhile).
fn license_exists(addr: &LicenseAddr, id: i64) -> ItemWrite {
    ItemWrite {
        item: Item::License(addr.clone()),
        conditions: vec![Cond::Exists, Cond::Eq(Attr::LicenseId, Val::Int(id))],
        action: Action::Check,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_never_printed() {
        let input: SetPassword =
            serde_json::from_value(serde_json::json!({"email": "A@b.c", "password": "hunter2-secret"})).unwrap();
        assert_eq!(input.email.as_str(), "a@b.c");
        assert!(!format!("{input:?}").contains("hunter2"));
        let output = PasswordSet {
            generated_password: Some(generate_password().expose_secret().to_owned()),
        };
        let printed = format!("{output:?}");
        assert!(
            !printed.contains(output.generated_password.as_deref().unwrap()),
            "{printed}"
        );
    }

    #[test]
    fn generated_passwords_are_long_and_differ() {
        let (a, b) = (generate_password(), generate_password());
        assert_eq!(a.expose_secret().len(), GENERATED_PASSWORD_LEN);
        assert!(NEW_PASSWORD_BYTES.contains(&a.expose_secret().len()));
        assert_ne!(a.expose_secret(), b.expose_secret());
    }
}
