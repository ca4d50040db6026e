//! Licenses through the Management API (docs/management.md, *Licenses*). A license is addressed by
//! its product and key, `/products/{product}/licenses/{key}`: that is where the store keeps a key-based
//! license (`LicenseAddr::Key`), so no id→address index is needed; user-based licenses stay the
//! catalog's. A license's fields are the catalog's license entry (docs/catalog.md), checked by the
//! catalog's own code ([`crate::catalog::license_of_entry`]), so a license is defined once.
//!
//! Every change is a conditional write with its audit record: an update, disable or enable is written
//! only if the fields the vendor sets are still those it was decided on (a lost race re-decides against
//! the winner's state), and counters that activations change are never written by it (`Upsert` keeps
//! them), so a concurrent activation is never lost.

use super::keys::refused;
use crate::audit::Change;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::handlers::Attempts;
use crate::ids::{LicenseKey, ProductCode};
use crate::model::{AuthorizationMethod, License, LicenseTerms, ProductDoc};
use crate::plan::LicenseAddr;
use crate::state::Core;
use crate::store::write::{Attr, Cond, Image, Item, Write};
use crate::store::Rejection;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The license as the Management API shows it: the catalog's fields and the counters activations keep.
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LicenseView {
    pub id: i64,
    pub product: ProductCode,
    pub license_key: Option<LicenseKey>,
    pub enabled: bool,
    pub max_activations: i64,
    pub allow_unlimited_activations: bool,
    pub max_transfers: i64,
    pub validity_period: Option<Timestamp>,
    pub times_activated: i64,
    pub transfer_count: i64,
    #[serde(flatten)]
    pub terms: LicenseTerms,
}

impl From<&License> for LicenseView {
    fn from(l: &License) -> Self {
        Self {
            id: l.id,
            product: l.product.clone(),
            license_key: l.key.clone(),
            enabled: l.enabled,
            max_activations: l.max_activations,
            allow_unlimited_activations: l.allow_unlimited_activations,
            max_transfers: l.max_transfers,
            validity_period: l.validity_period,
            times_activated: l.times_activated,
            transfer_count: l.transfer_count,
            terms: l.terms.clone(),
        }
    }
}

/// `POST /products/{product}/licenses`: the catalog's license entry, without `product` (the path
/// names it); `license_key` and `id` are generated when absent.
#[derive(Clone, Debug, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreateLicense {
    pub product: ProductCode,
    #[serde(flatten)]
    pub entry: Map<String, Value>,
}

/// One license: `/products/{product}/licenses/{key}`.
#[derive(Clone, Debug, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LicenseRef {
    pub product: ProductCode,
    pub key: LicenseKey,
}

/// `PATCH /products/{product}/licenses/{key}`: the catalog fields to change.
#[derive(Clone, Debug, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UpdateLicense {
    pub product: ProductCode,
    pub key: LicenseKey,
    #[serde(flatten)]
    pub fields: Map<String, Value>,
}

/// `DELETE /products/{product}/licenses/{key}[?force=true]`.
#[derive(Clone, Debug, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DeleteLicense {
    pub product: ProductCode,
    pub key: LicenseKey,
    #[serde(default)]
    pub force: bool,
}

impl LicenseRef {
    fn addr(&self, principal: &Principal) -> LicenseAddr {
        LicenseAddr::Key {
            company: principal.company.clone(),
            product: self.product.clone(),
            key: self.key.clone(),
        }
    }
}

fn unknown(addr: &LicenseAddr) -> ApiError {
    match addr {
        LicenseAddr::Key { product, key, .. } => ApiError::UnknownLicense(format!("{key} of product {product}")),
        LicenseAddr::Id { product, id, .. } => ApiError::UnknownLicense(format!("#{id} of product {product}")),
    }
}

/// The key-based product `code` of the principal's company, which the catalog manages unless it is
/// a bundle.
async fn product(state: &Core, principal: &Principal, code: &ProductCode) -> Result<ProductDoc, ApiError> {
    let item = Item::Product(principal.company.clone(), code.clone());
    let Some(Image::Product(doc)) = state.store.load(&item).await.map_err(ApiError::store)? else {
        return Err(ApiError::UnknownProduct);
    };
    if doc.authorization_method != AuthorizationMethod::LicenseKey {
        return Err(ApiError::Validation(format!(
            "product {code} is user-based: its licenses are the catalog's (`license-server import`)"
        )));
    }
    if doc.is_bundle() {
        return Err(ApiError::Validation(format!(
            "product {code} is a bundle: its licenses are the catalog's (`license-server import`)"
        )));
    }
    Ok(*doc)
}

/// The license as the catalog would define it from `entry`, errors naming the field.
fn from_entry(principal: &Principal, product: &ProductDoc, entry: Map<String, Value>) -> Result<License, ApiError> {
    crate::catalog::license_of_entry(&principal.company, product, "body", entry)
        .map_err(|e| ApiError::Validation(format!("{}: {}", e.path, e.message)))
}

/// `POST /products/{product}/licenses`, `license-server license create`.
pub async fn create(state: &Core, principal: &Principal, input: CreateLicense) -> Result<LicenseView, ApiError> {
    let doc = product(state, principal, &input.product).await?;
    let mut entry = input.entry;
    entry.insert("product".into(), input.product.as_str().into());
    if !entry.contains_key("license_key") {
        entry.insert(
            "license_key".into(),
            crate::handlers::trial_key::new_license_key()?.as_str().into(),
        );
    }
    if !entry.contains_key("id") {
        entry.insert("id".into(), crate::handlers::trial_key::random_id()?.into());
    }
    // Made here, not by the catalog: `import --prune` must not remove it.
    let license = License {
        source: Some(crate::model::LicenseSource::Management),
        ..from_entry(principal, &doc, entry)?
    };
    let addr = LicenseAddr::of(&license);
    let change = Change::on_license("license.create", &addr, serde_json::json!({ "id": license.id }));
    let view = LicenseView::from(&license);
    let write = Write::create(Item::License(addr.clone()), Image::License(Box::new(license)));
    super::create_once(state, principal, (&change, write), view, || {
        ApiError::AlreadyExists(format!("license {} of product {}", key_of(&addr), input.product))
    })
    .await
}

fn key_of(addr: &LicenseAddr) -> String {
    match addr {
        LicenseAddr::Key { key, .. } => key.to_string(),
        LicenseAddr::Id { id, .. } => format!("#{id}"),
    }
}

/// `GET /products/{product}/licenses/{key}`, `license-server license show`.
pub async fn show(state: &Core, principal: &Principal, input: LicenseRef) -> Result<LicenseView, ApiError> {
    let addr = input.addr(principal);
    let license = load(state, &addr).await?.ok_or_else(|| unknown(&addr))?;
    Ok(LicenseView::from(&license))
}

async fn load(state: &Core, addr: &LicenseAddr) -> Result<Option<License>, ApiError> {
    state.store.get_license(addr).await.map_err(ApiError::store)
}

/// `PATCH /products/{product}/licenses/{key}`: the given catalog fields replace the license's; the
/// rest, and every counter, stay.
pub async fn update(state: &Core, principal: &Principal, input: UpdateLicense) -> Result<LicenseView, ApiError> {
    let doc = product(state, principal, &input.product).await?;
    for fixed in ["id", "product", "license_key"] {
        if input.fields.contains_key(fixed) {
            return Err(ApiError::Validation(format!("body.{fixed}: cannot be changed")));
        }
    }
    let detail = Value::Object(input.fields.clone());
    let at = LicenseRef {
        product: input.product,
        key: input.key,
    };
    let decide = |old: &License| {
        let mut entry = entry_of(old);
        entry.extend(input.fields.clone());
        let new = from_entry(principal, &doc, entry)?;
        // A stored validity is kept by an upsert that gives none (a trial's, set by its first
        // activation): clearing it would answer a license that is not the one stored.
        if new.validity_period.is_none() && old.validity_period.is_some() {
            return Err(ApiError::Validation(
                "body.validity_period: cannot be cleared once set; give a date".into(),
            ));
        }
        Ok(Decision::Write(Box::new(License {
            enabled: new.enabled,
            max_activations: new.max_activations,
            allow_unlimited_activations: new.allow_unlimited_activations,
            max_transfers: new.max_transfers,
            validity_period: new.validity_period,
            terms: new.terms,
            ..old.clone()
        })))
    };
    change(state, principal, &at, "license.update", detail, decide).await
}

/// `license` as the catalog's license entry: what an update's fields are laid over.
fn entry_of(license: &License) -> Map<String, Value> {
    let mut entry = match serde_json::to_value(&license.terms) {
        Ok(Value::Object(terms)) => terms,
        _ => Map::new(),
    };
    let mut set = |k: &str, v: Value| entry.insert(k.to_owned(), v);
    set("id", license.id.into());
    set("product", license.product.as_str().into());
    set("license_key", license.key.as_ref().map(LicenseKey::as_str).into());
    set("enabled", license.enabled.into());
    set("max_activations", license.max_activations.into());
    set(
        "allow_unlimited_activations",
        license.allow_unlimited_activations.into(),
    );
    set("max_transfers", license.max_transfers.into());
    if let Some(validity) = license.validity_period {
        set("validity_period", validity.to_string().into());
    }
    entry
}

/// `POST /products/{product}/licenses/{key}/disable`: License API requests then answer
/// `license_not_enabled`.
pub async fn disable(state: &Core, principal: &Principal, input: LicenseRef) -> Result<LicenseView, ApiError> {
    set_enabled(state, principal, input, false).await
}

/// `POST /products/{product}/licenses/{key}/enable`.
pub async fn enable(state: &Core, principal: &Principal, input: LicenseRef) -> Result<LicenseView, ApiError> {
    set_enabled(state, principal, input, true).await
}

async fn set_enabled(
    state: &Core,
    principal: &Principal,
    input: LicenseRef,
    enabled: bool,
) -> Result<LicenseView, ApiError> {
    let action = if enabled { "license.enable" } else { "license.disable" };
    change(state, principal, &input, action, Value::Null, |old| {
        Ok(if old.enabled == enabled {
            Decision::Unchanged
        } else {
            Decision::Write(Box::new(License { enabled, ..old.clone() }))
        })
    })
    .await
}

/// What a change decided for the license it read.
enum Decision {
    /// Already as asked: nothing is written or recorded.
    Unchanged,
    Write(Box<License>),
}

/// Reads the license, decides, and writes the decision if the vendor's fields are still those read,
/// deciding again against the winner's state after a lost race.
async fn change(
    state: &Core,
    principal: &Principal,
    at: &LicenseRef,
    action: &'static str,
    detail: Value,
    decide: impl Fn(&License) -> Result<Decision, ApiError>,
) -> Result<LicenseView, ApiError> {
    let addr = at.addr(principal);
    let change = Change::on_license(action, &addr, detail);
    let mut attempts = Attempts::new(state, principal);
    let mut current = load(state, &addr).await?;
    loop {
        let old = current.take().ok_or_else(|| unknown(&addr))?;
        let new = match decide(&old)? {
            Decision::Unchanged => return Ok(LicenseView::from(&old)),
            Decision::Write(new) => *new,
        };
        let mut write = Write::upsert(Item::License(addr.clone()), Image::License(Box::new(new.clone())));
        write.items[0].conditions = unchanged(&old);
        match apply(state, &mut attempts, &change, write).await {
            Ok(()) => return Ok(LicenseView::from(&new)),
            Err(Rejection::License(won)) => current = won.map(|l| *l),
            Err(other) => return Err(refused(other, || unknown(&addr))),
        }
        attempts.next_plan()?;
        if current.is_none() {
            current = load(state, &addr).await?;
        }
    }
}

/// One attempt's write with the change's audit record (`Attempts::write`).
async fn apply(state: &Core, attempts: &mut Attempts, change: &Change, write: Write) -> Result<(), Rejection> {
    attempts
        .write(
            Some(change),
            |_| write.clone(),
            |w, token| async move { state.store.apply(&w, &token).await },
        )
        .await
}

/// The license exists and what the vendor sets is still as in `old`: the condition of a change.
fn unchanged(old: &License) -> Vec<Cond> {
    let image = Image::License(Box::new(old.clone()));
    let vendor_set = [
        Attr::Enabled,
        Attr::MaxActivations,
        Attr::Unlimited,
        Attr::MaxTransfers,
        Attr::ValidityPeriod,
        Attr::Terms,
    ];
    let mut conditions = vec![Cond::Exists];
    conditions.extend(vendor_set.into_iter().map(|a| match image.get(a) {
        Some(v) => Cond::Eq(a, v),
        None => Cond::Absent(a),
    }));
    conditions
}

/// `DELETE /products/{product}/licenses/{key}`: refused while devices are active unless `force`.
/// The license's device and seat records go after it (an administrative clean-up, logged if it
/// fails): License API requests answer `license_not_found` from the moment the license item is gone.
pub async fn delete(state: &Core, principal: &Principal, input: DeleteLicense) -> Result<LicenseView, ApiError> {
    let at = LicenseRef {
        product: input.product,
        key: input.key,
    };
    let addr = at.addr(principal);
    let detail = serde_json::json!({ "force": input.force });
    let change = Change::on_license("license.delete", &addr, detail);
    let mut attempts = Attempts::new(state, principal);
    let mut current = load(state, &addr).await?;
    loop {
        let old = current.take().ok_or_else(|| unknown(&addr))?;
        if old.times_activated > 0 && !input.force {
            return Err(ApiError::LicenseInUse(old.times_activated));
        }
        let mut write = Write::delete(Item::License(addr.clone()));
        write.items[0].conditions = vec![Cond::Exists];
        if !input.force {
            // An activation that lands first makes this a delete of a license in use: decided again.
            let times = crate::store::write::Val::Int(old.times_activated);
            write.items[0].conditions.push(Cond::Eq(Attr::TimesActivated, times));
        }
        match apply(state, &mut attempts, &change, write).await {
            Ok(()) => {
                clear_beside(state, &addr).await;
                return Ok(LicenseView::from(&old));
            }
            Err(Rejection::License(won)) => current = won.map(|l| *l),
            Err(other) => return Err(refused(other, || unknown(&addr))),
        }
        attempts.next_plan()?;
        if current.is_none() {
            current = load(state, &addr).await?;
        }
    }
}

/// Deletes the device and seat records of a deleted license, so a license created later under the
/// same key starts with none.
async fn clear_beside(state: &Core, addr: &LicenseAddr) {
    let items = async {
        let devices = state.store.list_devices(addr).await?;
        let seats = state.store.list_seats(addr).await?;
        let items = devices
            .into_iter()
            .map(|d| Item::Device(addr.clone(), d.hardware_id))
            .chain(seats.into_iter().map(|s| Item::Seat(addr.clone(), s.user)));
        for item in items {
            state.store.write(&Write::delete(item)).await?;
        }
        Ok::<_, crate::store::StoreError>(())
    };
    if let Err(e) = items.await {
        tracing::warn!(license = %addr.storage_key(), error = %crate::store::ErrorChain(&e), "the deleted license's devices and seats were not all deleted");
    }
}
