//! License users through the Management API (docs/management-resources.md, *License users*):
//! `/users/{email}`. A user's fields are the catalog's license user entry, checked by the catalog's own
//! code ([`crate::catalog::user_of_entry`]), so a user is defined once. The password is given once, at
//! creation (or set later by `PUT /users/{email}/password`), stored only as its argon2id hash, and
//! never shown: a user as read says only whether there is one.
//!
//! Every change replaces the user's record on the condition that it is still as read, with its audit
//! record in the same write ([`super::guarded::rewrite`]), so a concurrent assignment or
//! `change_password` is never lost. `GET /users` lists them ([`super::lists`]).

use super::guarded::{self, Decision};
use super::products::invalid;
use crate::audit::{user_subject, Change};
use crate::auth::Principal;
use crate::catalog::CatalogPassword;
use crate::error::ApiError;
use crate::ids::{ProductCode, Username};
use crate::model::LicenseUser;
use crate::request::NEW_PASSWORD_BYTES;
use crate::secret::ExposeSecret;
use crate::state::Core;
use crate::store::write::{create_or_replace, Action, Image, Item, ItemWrite, Write};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A license user as the Management API shows it: never the password or its hash.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UserView {
    pub id: i64,
    pub email: Username,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub phone_number: Option<String>,
    pub is_initial_password: bool,
    pub password_change_disabled: bool,
    /// Whether the user has a password (`false`: single sign-on only).
    pub has_password: bool,
    /// The licenses assigned: (product, license id).
    pub licenses: Vec<(ProductCode, i64)>,
    /// The License API answers the user as unknown (`POST /users/{email}/disable`).
    pub disabled: bool,
}

impl From<&LicenseUser> for UserView {
    fn from(u: &LicenseUser) -> Self {
        Self {
            id: u.id,
            email: u.email.clone(),
            first_name: u.first_name.clone(),
            last_name: u.last_name.clone(),
            phone_number: u.phone_number.clone(),
            is_initial_password: u.is_initial_password,
            password_change_disabled: u.password_change_disabled,
            has_password: u.password_hash.is_some(),
            licenses: u.licenses.clone(),
            disabled: u.disabled,
        }
    }
}

/// `POST /users`: the catalog's license user entry; `id` is generated when absent.
#[derive(Clone, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreateUser {
    #[serde(flatten)]
    pub entry: Map<String, Value>,
}

/// Never prints the entry: it may hold a password.
impl std::fmt::Debug for CreateUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreateUser").finish_non_exhaustive()
    }
}

/// One user: `/users/{email}`.
#[derive(Clone, Debug, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UserRef {
    pub email: Username,
}

/// `PATCH /users/{email}`: the catalog fields to change (not `id`, `email` or the password).
#[derive(Clone, Debug, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UpdateUser {
    pub email: Username,
    #[serde(flatten)]
    pub fields: Map<String, Value>,
}

fn item(principal: &Principal, email: &Username) -> Item {
    Item::User(principal.company.clone(), email.clone())
}

fn unknown(email: &Username) -> ApiError {
    ApiError::UnknownResource(format!("license user {email}"))
}

fn stored(image: Option<&Image>) -> Result<Option<LicenseUser>, ApiError> {
    match image {
        None => Ok(None),
        Some(Image::User(u)) => Ok(Some((**u).clone())),
        Some(_) => Err(ApiError::internal("a license user read back as another kind of item")),
    }
}

fn change(action: &'static str, email: &Username, detail: Value) -> Change {
    Change {
        action,
        subject: user_subject(email),
        detail,
    }
}

/// The argon2id hash to store for the entry's password: a plain one within [`NEW_PASSWORD_BYTES`]
/// hashed off the async threads, a hash as given (the catalog checked it).
async fn password_hash(password: CatalogPassword) -> Result<Option<String>, ApiError> {
    match password {
        CatalogPassword::None => Ok(None),
        CatalogPassword::Hash(hash) => Ok(Some(hash.expose_secret().to_owned())),
        CatalogPassword::Plain(plain) => {
            if !NEW_PASSWORD_BYTES.contains(&plain.expose_secret().len()) {
                return Err(ApiError::Validation(format!(
                    "body.password: must be {} to {} bytes",
                    NEW_PASSWORD_BYTES.start(),
                    NEW_PASSWORD_BYTES.end()
                )));
            }
            tokio::task::spawn_blocking(move || crate::password::hash(plain.expose_secret()))
                .await
                .map(Some)
                .map_err(|e| ApiError::internal(format!("hashing the password failed: {e}")))
        }
    }
}

/// `POST /users`, `license-server license-user create`: refused (409) if the email is taken.
pub async fn create(state: &Core, principal: &Principal, input: CreateUser) -> Result<UserView, ApiError> {
    let mut entry = input.entry;
    if !entry.contains_key("id") {
        entry.insert("id".into(), crate::handlers::trial_key::random_id()?.into());
    }
    let (mut user, password) = crate::catalog::user_of_entry("body", Value::Object(entry)).map_err(invalid)?;
    user.password_hash = password_hash(password).await?;
    user.source = Some(crate::model::LicenseSource::Management);
    let at = item(principal, &user.email);
    let detail = serde_json::json!({ "id": user.id, "has_password": user.password_hash.is_some() });
    let (created, _) = guarded::rewrite(state, principal, &at, |image| {
        if image.is_some() {
            return Err(ApiError::AlreadyExists(format!("license user {}", user.email)));
        }
        let write = Write {
            items: vec![create_or_replace(at.clone(), None, Image::User(Box::new(user.clone())))],
        };
        let change = change("user.create", &user.email, detail.clone());
        Ok(Decision::Write(write, change, UserView::from(&user)))
    })
    .await?;
    Ok(created)
}

/// `GET /users/{email}`.
pub async fn show(state: &Core, principal: &Principal, input: UserRef) -> Result<UserView, ApiError> {
    let image = state
        .store
        .load(&item(principal, &input.email))
        .await
        .map_err(ApiError::store)?;
    let user = stored(image.as_ref())?.ok_or_else(|| unknown(&input.email))?;
    Ok(UserView::from(&user))
}

/// The user as the catalog's entry, without the password: what an update's fields are laid over.
fn entry_of(user: &LicenseUser) -> Map<String, Value> {
    let view = UserView::from(user);
    let mut entry = Map::new();
    entry.insert("id".into(), view.id.into());
    entry.insert("email".into(), view.email.as_str().into());
    entry.insert("first_name".into(), view.first_name.into());
    entry.insert("last_name".into(), view.last_name.into());
    entry.insert("phone_number".into(), view.phone_number.into());
    entry.insert("is_initial_password".into(), view.is_initial_password.into());
    entry.insert("password_change_disabled".into(), view.password_change_disabled.into());
    entry
}

/// `PATCH /users/{email}`: names, phone number, `is_initial_password`, `password_change_disabled`.
pub async fn update(state: &Core, principal: &Principal, input: UpdateUser) -> Result<UserView, ApiError> {
    for fixed in ["id", "email", "password", "password_hash"] {
        if input.fields.contains_key(fixed) {
            return Err(ApiError::Validation(format!(
                "body.{fixed}: cannot be changed here (a password: PUT /users/{{email}}/password)"
            )));
        }
    }
    let at = item(principal, &input.email);
    let fields = Value::Array(input.fields.keys().map(|k| Value::from(k.as_str())).collect());
    let (updated, _) = guarded::rewrite(state, principal, &at, |image| {
        let old = stored(image.as_ref())?.ok_or_else(|| unknown(&input.email))?;
        let mut entry = entry_of(&old);
        entry.extend(input.fields.clone());
        let (new, _) = crate::catalog::user_of_entry("body", Value::Object(entry)).map_err(invalid)?;
        let new = LicenseUser {
            first_name: new.first_name,
            last_name: new.last_name,
            phone_number: new.phone_number,
            is_initial_password: new.is_initial_password,
            password_change_disabled: new.password_change_disabled,
            ..old.clone()
        };
        let view = UserView::from(&new);
        // The view holds every field an update sets.
        if view == UserView::from(&old) {
            return Ok(Decision::Unchanged(view));
        }
        let write = Write {
            items: vec![create_or_replace(at.clone(), image, Image::User(Box::new(new)))],
        };
        let detail = serde_json::json!({ "fields": fields.clone() });
        Ok(Decision::Write(
            write,
            change("user.update", &input.email, detail),
            view,
        ))
    })
    .await?;
    Ok(updated)
}

/// `DELETE /users/{email}`: refused (409 `resource_in_use`) while the user is assigned to a license
/// (unassign first: that frees the seat). The delete is conditioned on the record as read, so an
/// assignment that lands first is seen and refuses it.
pub async fn delete(state: &Core, principal: &Principal, input: UserRef) -> Result<UserView, ApiError> {
    let at = item(principal, &input.email);
    let (deleted, _) = guarded::rewrite(state, principal, &at, |image| {
        let old = stored(image.as_ref())?.ok_or_else(|| unknown(&input.email))?;
        let seats = old.licenses.len() + old.bundle_licenses.len();
        if seats > 0 {
            return Err(ApiError::ResourceInUse(format!(
                "license user {} is assigned to {seats} license(s): unassign them first",
                input.email
            )));
        }
        let write = delete_write(at.clone(), Image::User(Box::new(old.clone())));
        let change = change("user.delete", &input.email, Value::Null);
        Ok(Decision::Write(
            Write { items: vec![write] },
            change,
            UserView::from(&old),
        ))
    })
    .await?;
    Ok(deleted)
}

/// The user's deletion, conditioned on its record being `stored` (as read: an assignment or any other
/// change made meanwhile refuses it); `import --prune` deletes with it.
pub(crate) fn delete_write(at: Item, stored: Image) -> ItemWrite {
    let mut write = create_or_replace(at, Some(stored.clone()), stored);
    write.action = Action::Delete;
    write
}

/// `POST /users/{email}/disable`: the License API then answers the user's requests as an unknown
/// user's (`license_not_found`, or a check's concealed answer), except a deactivation, which frees a
/// seat. Disabling a disabled user changes and records nothing.
pub async fn disable(state: &Core, principal: &Principal, input: UserRef) -> Result<UserView, ApiError> {
    set_disabled(state, principal, input, true).await
}

/// `POST /users/{email}/enable`: undoes [`disable`].
pub async fn enable(state: &Core, principal: &Principal, input: UserRef) -> Result<UserView, ApiError> {
    set_disabled(state, principal, input, false).await
}

async fn set_disabled(
    state: &Core,
    principal: &Principal,
    input: UserRef,
    disabled: bool,
) -> Result<UserView, ApiError> {
    let at = item(principal, &input.email);
    let action = if disabled { "user.disable" } else { "user.enable" };
    let (view, _) = guarded::rewrite(state, principal, &at, |image| {
        let old = stored(image.as_ref())?.ok_or_else(|| unknown(&input.email))?;
        if old.disabled == disabled {
            return Ok(Decision::Unchanged(UserView::from(&old)));
        }
        let new = LicenseUser { disabled, ..old };
        let view = UserView::from(&new);
        let write = Write {
            items: vec![create_or_replace(at.clone(), image, Image::User(Box::new(new)))],
        };
        Ok(Decision::Write(write, change(action, &input.email, Value::Null), view))
    })
    .await?;
    Ok(view)
}
