//! Finding the license a request names (SPEC §2.1) and loading what the rules need, in the fewest
//! sequential store round trips: one read for key-based licenses, two for user-based ones.

use crate::auth::{Claimant, Principal};
use crate::error::ApiError;
use crate::ids::CompanyId;
use crate::model::{AuthorizationMethod, License, LicenseUser, ProductDoc};
use crate::password;
use crate::plan::LicenseAddr;
use crate::request::{Credentials, LicenseRequest, Proof};
use crate::rules::{self, LicenseContext};
use crate::state::Core;
use crate::store::write::{Image, Item};
use crate::store::{ContextQuery, ContextRead};

/// How a request that names a license user establishes them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserCheck {
    /// Activation: the password must match (a wrong one answers like an unknown user).
    Password,
    /// A re-read within a request whose password was already verified.
    Verified,
    /// Check and deactivation name the user without a password. SPEC §2.1: the API never reveals which
    /// emails exist, so every way of not finding an active device of that user with the request's
    /// hardware id — unknown user, no license of the product, no seat, device not active — answers
    /// [`CONCEALED`], after the same store round trips, and before any other rule.
    Concealed,
    /// Deactivation: as [`UserCheck::Concealed`], but a disabled user may still free their seats, as a
    /// disabled license's devices may still be deactivated (docs/management-resources.md).
    Release,
}

impl UserCheck {
    /// An activation's check for one attempt: the first read verifies the password; reads after a
    /// refused write (`after`) belong to the same request, whose password was verified then.
    pub fn activation(after: Option<&crate::store::Rejection>) -> Self {
        if after.is_some() {
            Self::Verified
        } else {
            Self::Password
        }
    }

    /// Whether not finding the user's active device is answered with [`CONCEALED`].
    pub fn is_concealed(self) -> bool {
        matches!(self, Self::Concealed | Self::Release)
    }

    /// Whether the lookup finds `user` at all: a disabled user is refused as an unknown one, except to
    /// free a seat.
    fn admits(self, user: &LicenseUser) -> bool {
        !user.disabled || self == Self::Release
    }
}

/// What a [`UserCheck::Concealed`] request gets when the user has no active device with its hardware id.
pub const CONCEALED: ApiError = ApiError::DeviceNotFound;

/// For a concealed lookup that found no user (or no license of the product): the read a found one makes
/// next, so both take the same time, then [`CONCEALED`].
pub async fn conceal_missing_user(state: &Core, company: &CompanyId, req: &LicenseRequest) -> ApiError {
    let nowhere = LicenseAddr::Id {
        company: company.clone(),
        product: req.product.clone(),
        id: i64::MIN,
    };
    let user = match &req.credentials {
        Credentials::User { username, .. } => Some(username),
        _ => None,
    };
    if let Err(e) = state.store.read_license(&nowhere, user, &req.hardware_id).await {
        tracing::warn!(error = %crate::http::error_chain(&e), "read for timing parity failed");
    }
    CONCEALED
}

/// For a concealed lookup: the device must be active, else [`CONCEALED`].
pub fn ensure_active(device: Option<&crate::model::Device>) -> Result<(), ApiError> {
    if device.is_some_and(|d| d.active) {
        Ok(())
    } else {
        Err(CONCEALED)
    }
}

/// A loaded license and, for user-based licenses, the user who named it.
#[derive(Clone, Debug)]
pub struct Resolved {
    pub ctx: LicenseContext,
    pub user: Option<LicenseUser>,
}

/// The first read: product, company, and the key-based license with its device or the license user.
pub async fn read_context(
    state: &Core,
    principal: &Principal,
    req: &LicenseRequest,
    with_device: bool,
) -> Result<ContextRead, ApiError> {
    principal.ensure_product(&req.product)?;
    let (key, user) = match &req.credentials {
        Credentials::Key(key) => (Some(key), None),
        Credentials::User { username, .. } => (None, Some(username)),
        Credentials::Sso(_) => (None, None),
    };
    let q = ContextQuery {
        company: &principal.company,
        product: &req.product,
        key,
        hardware_id: with_device.then_some(&req.hardware_id),
        user,
    };
    state.store.read_context(&q).await.map_err(ApiError::store)
}

/// A product of the company as stored (`None`: there is none): what requests that name no license read.
pub async fn product_doc(
    state: &Core,
    company: &CompanyId,
    code: &crate::ids::ProductCode,
) -> Result<Option<ProductDoc>, ApiError> {
    let item = Item::Product(company.clone(), code.clone());
    match state.store.load(&item).await.map_err(ApiError::store)? {
        Some(Image::Product(product)) => Ok(Some(*product)),
        None => Ok(None),
        Some(_) => Err(ApiError::internal(format!(
            "{item:?} read back as another kind of item"
        ))),
    }
}

/// The product, which must be usable and user-based: only those have license users.
pub fn user_product(product: Option<ProductDoc>) -> Result<ProductDoc, ApiError> {
    let product = crate::rules::usable_product(product)?;
    if product.authorization_method != crate::model::AuthorizationMethod::User {
        return Err(ApiError::Validation(format!(
            "product `{}` is key-based; its licenses have no license users",
            product.code
        )));
    }
    Ok(product)
}

/// Checks the product and that the request names its license the way the product expects.
pub fn product(read: &mut ContextRead, req: &LicenseRequest) -> Result<ProductDoc, ApiError> {
    let product = rules::usable_product(read.product.take())?;
    match (&req.credentials, product.authorization_method) {
        (Credentials::Key(_), AuthorizationMethod::LicenseKey)
        | (Credentials::User { .. }, AuthorizationMethod::User) => Ok(product),
        (Credentials::Sso(_), _) => Err(ApiError::internal(
            "a single sign-on grant reached the lookup unresolved",
        )),
        (_, AuthorizationMethod::LicenseKey) => Err(ApiError::MissingParameters("license_key".into())),
        (_, AuthorizationMethod::User) => Err(ApiError::MissingParameters("username".into())),
    }
}

/// The key-based license of the first read, honouring an explicit `license_id` and `bundle_code`.
pub fn key_license(read: &mut ContextRead, req: &LicenseRequest) -> Result<License, ApiError> {
    read.license
        .take()
        .filter(|l| req.license_id.is_none_or(|id| id == l.id))
        .filter(|l| req.bundle_code.is_none() || l.terms.bundle == req.bundle_code)
        .ok_or(ApiError::LicenseNotFound("license key"))
}

/// The user-based license a request names: the user must exist (and, for activation, the password
/// match, timed the same either way), and hold a license of the product (`license_id` picks one).
/// Concealed lookups that find none answer [`CONCEALED`] in the time a found one takes.
pub async fn user_license(
    state: &Core,
    read: &mut ContextRead,
    company: &CompanyId,
    req: &LicenseRequest,
    how: UserCheck,
) -> Result<(LicenseUser, LicenseAddr), ApiError> {
    match find_user_license(read, company, req, how).await {
        Err(ApiError::LicenseNotFound(_)) if how.is_concealed() => Err(conceal_missing_user(state, company, req).await),
        found => found,
    }
}

async fn find_user_license(
    read: &mut ContextRead,
    company: &CompanyId,
    req: &LicenseRequest,
    how: UserCheck,
) -> Result<(LicenseUser, LicenseAddr), ApiError> {
    // A disabled user reads as no user here, so every answer and its timing are an unknown user's.
    let user = read.user.take().filter(|u| how.admits(u));
    if how == UserCheck::Password {
        prove(user.as_ref(), &req.credentials).await?;
    }
    let user = user.ok_or(ApiError::LicenseNotFound("license user"))?;
    let wanted = |id: &i64| req.license_id.is_none_or(|wanted| wanted == *id);
    // Bundle members are reached with their bundle's code; without one, a license of the product held
    // on its own comes first.
    let members = user
        .bundle_licenses
        .iter()
        .filter(|(product, _, bundle)| {
            *product == req.product && req.bundle_code.as_ref().is_none_or(|code| code == bundle)
        })
        .map(|(_, id, _)| *id);
    let id = match &req.bundle_code {
        Some(_) => members.into_iter().find(wanted),
        None => user
            .licenses
            .iter()
            .filter(|(product, _)| *product == req.product)
            .map(|(_, id)| *id)
            .chain(members)
            .find(wanted),
    }
    .ok_or(ApiError::LicenseNotFound("license user"))?;
    Ok((
        user,
        LicenseAddr::Id {
            company: company.clone(),
            product: req.product.clone(),
            id,
        },
    ))
}

/// The user `credentials` name, proven: their password matches `user`'s stored hash (an unknown user
/// costs the same hash, and answers like a wrong password), or an identity provider vouched for them.
/// A disabled user is proven as an unknown one is: the same hash, the same answer.
pub async fn proven_user(user: Option<LicenseUser>, credentials: &Credentials) -> Result<LicenseUser, ApiError> {
    let user = user.filter(|u| !u.disabled);
    prove(user.as_ref(), credentials).await?;
    user.ok_or(ApiError::LicenseNotFound("license user"))
}

async fn prove(user: Option<&LicenseUser>, credentials: &Credentials) -> Result<(), ApiError> {
    let Credentials::User { username, proof, .. } = credentials else {
        return Err(ApiError::MissingParameters("password".into()));
    };
    match proof {
        Proof::Password(password) => {
            let stored = user.and_then(|u| u.password_hash.clone());
            if !password::verify_limited(Claimant::User(username), password.clone(), stored).await? {
                return Err(ApiError::LicenseNotFound("license user"));
            }
            Ok(())
        }
        // The customer account's identity provider vouched for this user.
        Proof::IdentityProvider(_) => Ok(()),
        Proof::Unproven => Err(ApiError::MissingParameters("password".into())),
    }
}

/// Everything activation and deactivation need, with the device.
pub async fn load(
    state: &Core,
    principal: &Principal,
    req: &LicenseRequest,
    how: UserCheck,
) -> Result<Resolved, ApiError> {
    let mut read = read_context(state, principal, req, true).await?;
    let product = product(&mut read, req)?;
    let company = read.company.take().unwrap_or_default();
    if let Credentials::Key(_) = req.credentials {
        let license = key_license(&mut read, req)?;
        let ctx = LicenseContext {
            device: read.device.take(),
            released_here: read.released,
            ..LicenseContext::new(product, company, license)
        };
        return Ok(Resolved { ctx, user: None });
    }
    let (user, addr) = user_license(state, &mut read, &principal.company, req, how).await?;
    let found = state
        .store
        .read_license(&addr, Some(&user.email), &req.hardware_id)
        .await
        .map_err(ApiError::store)?;
    let (Some(license), Some(seat)) = (found.license, found.seat) else {
        return Err(if how.is_concealed() {
            CONCEALED
        } else {
            ApiError::LicenseNotFound("license user")
        });
    };
    if how.is_concealed() {
        ensure_active(found.device.as_ref())?;
    }
    let ctx = LicenseContext {
        seat: Some(seat),
        device: found.device,
        released_here: found.released,
        ..LicenseContext::new(product, company, license)
    };
    Ok(Resolved { ctx, user: Some(user) })
}
