//! Support's operations on a license's devices (docs/management-devices.md): list them, free one or
//! all, reset the transfer count, blacklist a hardware id. Freeing a device is the License API's own
//! deactivation ([`handlers::deactivate`](crate::handlers::deactivate)) — the same conditional write,
//! invariants, released slot and transfer counting — made as the principal, so the audit record says
//! who (`cli:<user>`, `management_key:<id>`) and `"via": "management"`. A device support frees while
//! it deactivates itself is freed once: whichever write lands second finds it inactive and answers as
//! a repeated deactivation does (`device_not_found`, or `license_not_active` when none is left active).

use super::guarded::{self, Decision};
use crate::audit::Change;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::ids::{HardwareId, LicenseKey, ProductCode, Username};
use crate::model::{Company, Device, License};
use crate::plan::LicenseAddr;
use crate::request::{Credentials, LicenseRequest, Proof};
use crate::state::Core;
use crate::store::write::{create_or_replace, Action, Attr, Cond, Effect, Image, Item, ItemWrite, Val, Write};
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};

/// Most devices one page of [`list_devices`] returns, and its default.
pub const MAX_DEVICES_PAGE: usize = 1000;
pub const DEFAULT_DEVICES_PAGE: usize = 100;

/// Most devices one [`reset_devices`] call frees; a license with more active devices answers
/// `more: true`, and the call is repeated.
pub const RESET_BATCH: usize = 100;

/// Deactivations one [`reset_devices`] call runs at once.
const RESETS_AT_ONCE: usize = 4;

/// A license as support names it: its product and either its key (key-based products) or its id
/// (user-based products); the company is the principal's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LicenseRef {
    pub product: ProductCode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license_key: Option<LicenseKey>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license_id: Option<i64>,
}

impl LicenseRef {
    /// Where the store keeps the license: exactly one of key and id must be given.
    pub fn addr(&self, principal: &Principal) -> Result<LicenseAddr, ApiError> {
        principal.ensure_product(&self.product)?;
        let (company, product) = (principal.company.clone(), self.product.clone());
        match (&self.license_key, self.license_id) {
            (Some(key), None) => Ok(LicenseAddr::Key {
                company,
                product,
                key: key.clone(),
            }),
            (None, Some(id)) => Ok(LicenseAddr::Id { company, product, id }),
            _ => Err(ApiError::Validation(
                "name the license by exactly one of `license_key` (key-based products) and `license_id` (user-based products)".into(),
            )),
        }
    }
}

/// The license at `addr`, which must exist.
async fn license(state: &Core, addr: &LicenseAddr) -> Result<License, ApiError> {
    let found = state.store.get_license(addr).await.map_err(ApiError::store)?;
    found.ok_or(ApiError::LicenseNotFound(not_found(addr)))
}

/// What a missing license was named by, for `license_not_found`'s message.
fn not_found(addr: &LicenseAddr) -> &'static str {
    match addr {
        LicenseAddr::Key { .. } => "license key",
        LicenseAddr::Id { .. } => "license id",
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ListDevices {
    pub license: LicenseRef,
    /// Start after this hardware id (the previous page's `next`).
    #[serde(default)]
    pub after: Option<HardwareId>,
    /// At most this many (1 to [`MAX_DEVICES_PAGE`], default [`DEFAULT_DEVICES_PAGE`]).
    #[serde(default)]
    pub limit: Option<usize>,
}

/// A device as support sees it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeviceView {
    pub hardware_id: HardwareId,
    pub active: bool,
    /// The license user who activated it (user-based licenses).
    pub user: Option<Username>,
    pub first_activated_at: Timestamp,
    pub last_activated_at: Timestamp,
    pub deactivated_at: Option<Timestamp>,
    /// The last check recorded (checks are recorded at most once per interval, SPEC §3).
    pub last_seen_at: Option<Timestamp>,
    /// How many times it was activated.
    pub activations: i64,
}

impl From<Device> for DeviceView {
    fn from(d: Device) -> Self {
        Self {
            hardware_id: d.hardware_id,
            active: d.active,
            user: d.user,
            first_activated_at: d.first_activated_at,
            last_activated_at: d.last_activated_at,
            deactivated_at: d.deactivated_at,
            last_seen_at: d.last_seen_at,
            activations: d.activations,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DevicePage {
    pub times_activated: i64,
    pub max_activations: i64,
    pub transfer_count: i64,
    /// Ordered by hardware id.
    pub devices: Vec<DeviceView>,
    /// The `after` of the next page (`None`: this is the last).
    pub next: Option<HardwareId>,
}

/// Every device of a license, active or not, a page at a time. The store reads all of the license's
/// devices for each page (administrative, docs/management-devices.md); pages bound the answer.
pub async fn list_devices(state: &Core, principal: &Principal, input: ListDevices) -> Result<DevicePage, ApiError> {
    let limit = input.limit.unwrap_or(DEFAULT_DEVICES_PAGE);
    if !(1..=MAX_DEVICES_PAGE).contains(&limit) {
        return Err(ApiError::Validation(format!("`limit` must be 1 to {MAX_DEVICES_PAGE}")));
    }
    let addr = input.license.addr(principal)?;
    let license = license(state, &addr).await?;
    let devices = state.store.list_devices(&addr).await.map_err(ApiError::store)?;
    let mut devices: Vec<Device> = devices
        .into_iter()
        .filter(|d| input.after.as_ref().is_none_or(|after| d.hardware_id > *after))
        .collect();
    devices.sort_by(|a, b| a.hardware_id.cmp(&b.hardware_id));
    let next = (devices.len() > limit).then(|| devices[limit - 1].hardware_id.clone());
    devices.truncate(limit);
    Ok(DevicePage {
        times_activated: license.times_activated,
        max_activations: license.max_activations,
        transfer_count: license.transfer_count,
        devices: devices.into_iter().map(DeviceView::from).collect(),
        next,
    })
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DeviceRef {
    pub license: LicenseRef,
    pub hardware_id: HardwareId,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Deactivated {
    pub hardware_id: HardwareId,
    pub deactivated: bool,
}

/// Frees one device of the license: the License API's deactivation, as the principal.
pub async fn deactivate_device(state: &Core, principal: &Principal, input: DeviceRef) -> Result<Deactivated, ApiError> {
    let addr = input.license.addr(principal)?;
    free(state, principal, &addr, &input.hardware_id).await?;
    Ok(Deactivated {
        hardware_id: input.hardware_id,
        deactivated: true,
    })
}

/// The License API's deactivation of `hardware_id` on the license at `addr`, named as a client names
/// it: by key, or (user-based) by the license id and the user who activated the device — whose seat
/// the deactivation gives back.
async fn free(
    state: &Core,
    principal: &Principal,
    addr: &LicenseAddr,
    hardware_id: &HardwareId,
) -> Result<(), ApiError> {
    let (credentials, license_id) = match addr {
        LicenseAddr::Key { key, .. } => (Credentials::Key(key.clone()), None),
        LicenseAddr::Id { id, .. } => {
            let read = state
                .store
                .read_license(addr, None, hardware_id)
                .await
                .map_err(ApiError::store)?;
            let license = read.license.ok_or(ApiError::LicenseNotFound("license id"))?;
            let device = read.device.filter(|d| d.active);
            let user = device
                .and_then(|d| d.user)
                .ok_or_else(|| crate::rules::inactive_device_error(&license))?;
            let as_sent = user.to_string();
            let username = user;
            (
                Credentials::User {
                    username,
                    as_sent,
                    proof: Proof::Unproven,
                },
                Some(*id),
            )
        }
    };
    let request = LicenseRequest {
        product: addr.company_product().1.clone(),
        hardware_id: hardware_id.clone(),
        credentials,
        license_id,
        bundle_code: None,
        is_vm: false,
        details: Default::default(),
        variables: Vec::new(),
        include_expired_features: false,
    };
    crate::handlers::deactivate(state, principal, &request).await
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LicenseInput {
    pub license: LicenseRef,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Reset {
    /// The devices this call freed.
    pub deactivated: Vec<HardwareId>,
    /// More active devices remain (more than [`RESET_BATCH`] were active): call again.
    pub more: bool,
}

/// Frees every active device of the license, up to [`RESET_BATCH`] a call, each by its own
/// deactivation ([`deactivate_device`]'s write, audited one by one). A device that deactivated itself
/// meanwhile is skipped, not an error.
pub async fn reset_devices(state: &Core, principal: &Principal, input: LicenseInput) -> Result<Reset, ApiError> {
    use futures::{StreamExt, TryStreamExt};
    let addr = input.license.addr(principal)?;
    license(state, &addr).await?;
    let devices = state.store.list_devices(&addr).await.map_err(ApiError::store)?;
    let active: Vec<HardwareId> = devices
        .into_iter()
        .filter(|d| d.active)
        .map(|d| d.hardware_id)
        .collect();
    let more = active.len() > RESET_BATCH;
    let freed: Vec<Option<HardwareId>> = futures::stream::iter(active.into_iter().take(RESET_BATCH))
        .map(|hw| {
            let addr = &addr;
            async move {
                match free(state, principal, addr, &hw).await {
                    Ok(()) => Ok(Some(hw)),
                    Err(ApiError::DeviceNotFound | ApiError::LicenseNotActive) => Ok(None),
                    Err(e) => Err(e),
                }
            }
        })
        .buffered(RESETS_AT_ONCE)
        .try_collect()
        .await?;
    Ok(Reset {
        deactivated: freed.into_iter().flatten().collect(),
        more,
    })
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TransfersReset {
    /// The transfer count the reset replaced.
    pub transfer_count_before: i64,
}

/// Sets the license's transfer count to 0, so devices may move again up to `max_transfers`: written
/// on the condition that the count is still the one read, so the record says exactly what it undid.
pub async fn reset_transfers(
    state: &Core,
    principal: &Principal,
    input: LicenseInput,
) -> Result<TransfersReset, ApiError> {
    let addr = input.license.addr(principal)?;
    let item = Item::License(addr.clone());
    let decide = |stored: Option<Image>| {
        let Some(Image::License(l)) = stored else {
            return Err(ApiError::LicenseNotFound(not_found(&addr)));
        };
        if l.transfer_count == 0 {
            return Ok(Decision::Unchanged(0));
        }
        let write = Write {
            items: vec![ItemWrite {
                item: item.clone(),
                conditions: vec![
                    Cond::Exists,
                    Cond::Eq(Attr::LicenseId, Val::Int(l.id)),
                    Cond::Eq(Attr::TransferCount, Val::Int(l.transfer_count)),
                ],
                action: Action::Update(vec![Effect::Set(Attr::TransferCount, Val::Int(0))]),
            }],
        };
        let detail = serde_json::json!({ "transfer_count_before": l.transfer_count, "via": "management" });
        let change = Change::on_license("license.reset_transfers", &addr, detail);
        Ok(Decision::Write(write, change, l.transfer_count))
    };
    let (transfer_count_before, _) = guarded::rewrite(state, principal, &item, decide).await?;
    Ok(TransfersReset { transfer_count_before })
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct BlacklistDevice {
    pub hardware_id: HardwareId,
    /// Also free the device on this license, if it is active there.
    #[serde(default)]
    pub license: Option<LicenseRef>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Blacklisted {
    /// It was not blacklisted before.
    pub added: bool,
    /// It was active on the license named, and is freed.
    pub deactivated: bool,
}

/// Adds the hardware id to the company's device blacklist (the License API then refuses it with
/// `blacklisted`, SPEC §2), and frees it on the license named. The company's record is replaced on the
/// condition that it is unchanged since read. The entry is recorded as support's
/// (`management_blacklist`), so a re-import keeps it (docs/management-devices.md); an id the catalog
/// already lists stays the catalog's.
pub async fn blacklist_device(
    state: &Core,
    principal: &Principal,
    input: BlacklistDevice,
) -> Result<Blacklisted, ApiError> {
    let addr = input.license.as_ref().map(|l| l.addr(principal)).transpose()?;
    let item = Item::Company(principal.company.clone());
    let change = Change {
        action: "company.blacklist_device",
        subject: format!("company:{}", principal.company),
        detail: serde_json::json!({ "hardware_id": input.hardware_id.as_str(), "via": "management" }),
    };
    let hw = &input.hardware_id;
    let decide = |stored: Option<Image>| {
        let company = match &stored {
            Some(Image::Company(c)) => (**c).clone(),
            None => Company::default(),
            Some(_) => return Err(ApiError::internal("a company read back as another kind of item")),
        };
        if company.blacklist.contains(hw) {
            return Ok(Decision::Unchanged(()));
        }
        let mut listed = company;
        listed.blacklist.insert(hw.clone());
        listed.management_blacklist.insert(hw.clone());
        let new = Image::Company(Box::new(listed));
        let write = Write {
            items: vec![create_or_replace(item.clone(), stored, new)],
        };
        Ok(Decision::Write(write, change.clone(), ()))
    };
    let ((), added) = guarded::rewrite(state, principal, &item, decide).await?;
    let deactivated = match addr {
        Some(addr) => match free(state, principal, &addr, hw).await {
            Ok(()) => true,
            Err(ApiError::DeviceNotFound | ApiError::LicenseNotActive) => false,
            Err(e) => return Err(e),
        },
        None => false,
    };
    Ok(Blacklisted { added, deactivated })
}

#[cfg(test)]
mod tests {
    //! How inputs name a license, and what they refuse before any store is read.

    use super::*;
    use crate::ids::CompanyId;

    fn principal(products: &[&str]) -> Principal {
        Principal {
            products: products.iter().map(|p| ProductCode::parse(p).unwrap()).collect(),
            ..Principal::cli(CompanyId::parse("c").unwrap())
        }
    }

    fn reference(v: serde_json::Value) -> Result<LicenseRef, serde_json::Error> {
        serde_json::from_value(v)
    }

    #[test]
    fn a_license_is_named_by_exactly_one_of_key_and_id() {
        let by_key = reference(serde_json::json!({"product": "p", "license_key": "K"})).unwrap();
        assert!(matches!(by_key.addr(&principal(&[])), Ok(LicenseAddr::Key { key, .. }) if key.as_str() == "K"));
        let by_id = reference(serde_json::json!({"product": "p", "license_id": 7})).unwrap();
        assert!(matches!(by_id.addr(&principal(&[])), Ok(LicenseAddr::Id { id: 7, .. })));
        for v in [
            serde_json::json!({"product": "p"}),
            serde_json::json!({"product": "p", "license_key": "K", "license_id": 7}),
        ] {
            let err = reference(v).unwrap().addr(&principal(&[])).unwrap_err();
            assert!(matches!(err, ApiError::Validation(_)), "{err:?}");
        }
    }

    #[test]
    fn a_principal_restricted_to_other_products_cannot_name_this_one() {
        let r = reference(serde_json::json!({"product": "p", "license_key": "K"})).unwrap();
        let err = r.addr(&principal(&["other"])).unwrap_err();
        assert!(matches!(err, ApiError::ApiKeyProductNotAllowed), "{err:?}");
    }

    #[test]
    fn inputs_refuse_unknown_fields_and_malformed_ids() {
        let unknown =
            serde_json::json!({"license": {"product": "p", "license_key": "K"}, "hardware_id": "h", "force": true});
        assert!(serde_json::from_value::<DeviceRef>(unknown).is_err());
        let empty = serde_json::json!({"license": {"product": "p", "license_key": "K"}, "hardware_id": ""});
        assert!(serde_json::from_value::<DeviceRef>(empty).is_err());
        let long = serde_json::json!({"hardware_id": "h".repeat(513)});
        assert!(serde_json::from_value::<BlacklistDevice>(long).is_err());
    }
}
