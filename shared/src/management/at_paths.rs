//! Support's device and user operations ([`super::devices`], [`super::users`]) at the Management
//! API's paths (docs/management-resources.md, *Devices and users*). Those operations name a license by
//! `{ "license": { "product", "license_key" | "license_id" } }`; a path names it by one segment,
//! `/products/{product}/licenses/{key}`, which is the license key for a key-based product and the
//! license id for a user-based one (the product says which). Each function here only translates its
//! path's input into the operation's.

use super::devices::{self, DeviceRef, LicenseInput, LicenseRef, ListDevices};
use super::users::{self, AssignUser, UnassignUser};
use crate::auth::Principal;
use crate::error::ApiError;
use crate::ids::{HardwareId, LicenseKey, ProductCode, Username};
use crate::model::AuthorizationMethod;
use crate::state::Core;
use crate::store::write::{Image, Item};
use serde::Deserialize;

/// `/products/{product}/licenses/{key}`.
#[derive(Clone, Debug, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LicenseAt {
    pub product: ProductCode,
    pub key: String,
}

/// `GET /products/{product}/licenses/{key}/devices?after=&limit=`.
#[derive(Clone, Debug, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DevicesAt {
    pub product: ProductCode,
    pub key: String,
    #[serde(default)]
    pub after: Option<HardwareId>,
    #[serde(default)]
    pub limit: Option<usize>,
}

/// `POST /products/{product}/licenses/{key}/devices/{hardware_id}/deactivate`.
#[derive(Clone, Debug, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DeviceAt {
    pub product: ProductCode,
    pub key: String,
    pub hardware_id: HardwareId,
}

/// `POST|DELETE /products/{product}/licenses/{key}/users/{email}` (user-based licenses).
#[derive(Clone, Debug, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SeatAt {
    pub product: ProductCode,
    pub key: String,
    pub email: Username,
    /// The user's own activation limit (assign only; 0 or absent: unlimited within the license's).
    #[serde(default)]
    pub max_activations: Option<i64>,
}

/// The license a path's `{product}` and `{key}` name: by key on a key-based product, by id on a
/// user-based one.
async fn license_ref(
    state: &Core,
    principal: &Principal,
    product: ProductCode,
    segment: &str,
) -> Result<LicenseRef, ApiError> {
    principal.ensure_product(&product)?;
    let item = Item::Product(principal.company.clone(), product.clone());
    let Some(Image::Product(doc)) = state.store.load(&item).await.map_err(ApiError::store)? else {
        return Err(ApiError::UnknownProduct);
    };
    let (mut license_key, mut license_id) = (None, None);
    if doc.authorization_method == AuthorizationMethod::User {
        let id = segment.parse::<i64>().map_err(|_| {
            ApiError::Validation(format!(
                "product {product} is user-based: its licenses are named by id, not `{segment}`"
            ))
        })?;
        license_id = Some(id);
    } else {
        license_key = Some(LicenseKey::parse(segment).map_err(|e| ApiError::Validation(format!("key: {e}")))?);
    }
    Ok(LicenseRef {
        product,
        license_key,
        license_id,
    })
}

pub async fn list_devices(
    state: &Core,
    principal: &Principal,
    input: DevicesAt,
) -> Result<devices::DevicePage, ApiError> {
    let license = license_ref(state, principal, input.product, &input.key).await?;
    let input = ListDevices {
        license,
        after: input.after,
        limit: input.limit,
    };
    devices::list_devices(state, principal, input).await
}

pub async fn deactivate_device(
    state: &Core,
    principal: &Principal,
    input: DeviceAt,
) -> Result<devices::Deactivated, ApiError> {
    let license = license_ref(state, principal, input.product, &input.key).await?;
    let hardware_id = input.hardware_id;
    devices::deactivate_device(state, principal, DeviceRef { license, hardware_id }).await
}

pub async fn reset_devices(state: &Core, principal: &Principal, input: LicenseAt) -> Result<devices::Reset, ApiError> {
    let license = license_ref(state, principal, input.product, &input.key).await?;
    devices::reset_devices(state, principal, LicenseInput { license }).await
}

pub async fn reset_transfers(
    state: &Core,
    principal: &Principal,
    input: LicenseAt,
) -> Result<devices::TransfersReset, ApiError> {
    let license = license_ref(state, principal, input.product, &input.key).await?;
    devices::reset_transfers(state, principal, LicenseInput { license }).await
}

pub async fn assign_user(state: &Core, principal: &Principal, input: SeatAt) -> Result<users::Assigned, ApiError> {
    let license = license_ref(state, principal, input.product, &input.key).await?;
    let input = AssignUser {
        email: input.email,
        license,
        max_activations: input.max_activations.unwrap_or(0),
    };
    users::assign_user(state, principal, input).await
}

pub async fn unassign_user(state: &Core, principal: &Principal, input: SeatAt) -> Result<users::Unassigned, ApiError> {
    if input.max_activations.is_some() {
        return Err(ApiError::Validation("max_activations: only when assigning".into()));
    }
    let license = license_ref(state, principal, input.product, &input.key).await?;
    let input = UnassignUser {
        email: input.email,
        license,
    };
    users::unassign_user(state, principal, input).await
}
