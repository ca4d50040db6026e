//! Conversion between domain types and DynamoDB items. Fields that conditions compare or writes
//! increment are top-level attributes; the vendor-set description of a license, product, company or
//! user is one JSON string attribute `doc`, so adding a field to the model never needs a migration.

use super::keys::{self, PK};
use super::UpdateBuilder;
use crate::ids::{ApiKeyId, CompanyId, HardwareId, LicenseKey, ProductCode, Username};
use crate::model::{
    ApiKeyRecord, Company, Device, DeviceVariable, License, LicenseTerms, ProcessedRequest, ProductDoc, Seat,
};
use crate::store::write::{FEATURE_COUNTER_PREFIX, FEATURE_PERIOD_PREFIX, LICENSE_PERIOD};
use crate::store::{LicenseAddr, RequestKey, StoreError};
use crate::time::Timestamp;
use aws_sdk_dynamodb::types::AttributeValue;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};

pub type ItemMap = HashMap<String, AttributeValue>;

pub fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

pub fn key_part(item: &ItemMap, name: &str) -> String {
    item.get(name).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default()
}

/// Typed reads of one item, with errors that name the item and the attribute.
struct Item<'a>(&'a ItemMap);

impl<'a> Item<'a> {
    fn corrupt(&self, reason: impl Into<String>) -> StoreError {
        StoreError::Corrupt {
            key: format!("{}/{}", key_part(self.0, PK), key_part(self.0, keys::SK)),
            reason: reason.into(),
        }
    }
    fn opt_str(&self, name: &str) -> Result<Option<&'a str>, StoreError> {
        match self.0.get(name) {
            None | Some(AttributeValue::Null(_)) => Ok(None),
            Some(AttributeValue::S(v)) => Ok(Some(v)),
            Some(_) => Err(self.corrupt(format!("`{name}` is not a string"))),
        }
    }
    fn str(&self, name: &str) -> Result<&'a str, StoreError> {
        self.opt_str(name)?
            .ok_or_else(|| self.corrupt(format!("`{name}` is missing")))
    }
    fn int(&self, name: &str) -> Result<i64, StoreError> {
        match self.0.get(name) {
            None => Ok(0),
            Some(AttributeValue::N(v)) => v
                .parse()
                .map_err(|_| self.corrupt(format!("`{name}` is not an integer"))),
            Some(_) => Err(self.corrupt(format!("`{name}` is not a number"))),
        }
    }
    /// An instant stored as Unix milliseconds (a number, so conditions compare it).
    fn millis(&self, name: &str) -> Result<Option<Timestamp>, StoreError> {
        match self.0.get(name) {
            None => Ok(None),
            Some(_) => self.int(name).map(|ms| Some(Timestamp::from_millis(ms))),
        }
    }
    /// The numbers named `<prefix><code>` (one per feature), by code.
    fn ints_by_code(&self, prefix: &str) -> Result<BTreeMap<String, i64>, StoreError> {
        self.0
            .keys()
            .filter_map(|name| name.strip_prefix(prefix).map(|code| (name, code)))
            .map(|(name, code)| Ok((code.to_owned(), self.int(name)?)))
            .collect()
    }
    fn bool(&self, name: &str) -> Result<bool, StoreError> {
        match self.0.get(name) {
            None => Ok(false),
            Some(AttributeValue::Bool(b)) => Ok(*b),
            Some(_) => Err(self.corrupt(format!("`{name}` is not a boolean"))),
        }
    }
    fn time(&self, name: &str) -> Result<Option<Timestamp>, StoreError> {
        self.opt_str(name)?
            .map(|v| Timestamp::parse_iso(v).ok_or_else(|| self.corrupt(format!("`{name}` is not a date-time"))))
            .transpose()
    }
    fn json<T: DeserializeOwned>(&self, name: &str) -> Result<T, StoreError> {
        serde_json::from_str(self.str(name)?).map_err(|e| self.corrupt(format!("`{name}`: {e}")))
    }
    fn string_set(&self, name: &str) -> Result<Vec<&'a String>, StoreError> {
        match self.0.get(name) {
            None => Ok(Vec::new()),
            Some(AttributeValue::Ss(v)) => Ok(v.iter().collect()),
            Some(AttributeValue::L(v)) => v
                .iter()
                .map(|x| {
                    x.as_s()
                        .map_err(|_| self.corrupt(format!("`{name}` holds a non-string")))
                })
                .collect(),
            Some(_) => Err(self.corrupt(format!("`{name}` is not a string set"))),
        }
    }
    fn id<T>(&self, name: &str, parse: impl Fn(&str) -> Result<T, crate::ids::IdError>) -> Result<T, StoreError> {
        parse(self.str(name)?).map_err(|e| self.corrupt(format!("`{name}` {e}")))
    }
}

fn to_json<T: Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Invalid(e.to_string()))
}

pub fn doc<T: DeserializeOwned>(item: &ItemMap) -> Result<T, StoreError> {
    Item(item).json("doc")
}

pub fn doc_item<T: Serialize>(mut key: ItemMap, value: &T) -> Result<ItemMap, StoreError> {
    key.insert("doc".into(), s(to_json(value)?));
    Ok(key)
}

pub fn api_key(item: &ItemMap) -> Result<ApiKeyRecord, StoreError> {
    let i = Item(item);
    Ok(ApiKeyRecord {
        id: i.id("api_key", ApiKeyId::parse)?,
        company: i.id("company", CompanyId::parse)?,
        shared_key: i.str("shared_key")?.to_owned(),
        products: i
            .string_set("products")?
            .into_iter()
            .map(|p| ProductCode::parse(p).map_err(|e| i.corrupt(format!("product {e}"))))
            .collect::<Result<_, _>>()?,
        read_only: i.bool("read_only")?,
        revoked: i.bool("revoked")?,
    })
}

pub fn api_key_item(key: &ApiKeyRecord) -> ItemMap {
    let mut item = keys::api_key(&key.id);
    item.insert("api_key".into(), s(key.id.as_str()));
    item.insert("company".into(), s(key.company.as_str()));
    item.insert("shared_key".into(), s(&key.shared_key));
    item.insert(
        "products".into(),
        AttributeValue::L(key.products.iter().map(|p| s(p.as_str())).collect()),
    );
    item.insert("read_only".into(), AttributeValue::Bool(key.read_only));
    item.insert("revoked".into(), AttributeValue::Bool(key.revoked));
    item
}

pub fn license(item: &ItemMap, addr: &LicenseAddr) -> Result<License, StoreError> {
    let i = Item(item);
    let (company, product) = match addr {
        LicenseAddr::Key { company, product, .. } | LicenseAddr::Id { company, product, .. } => (company, product),
    };
    Ok(License {
        id: i.int("license_id")?,
        company: company.clone(),
        product: product.clone(),
        key: i
            .opt_str("license_key")?
            .map(LicenseKey::parse)
            .transpose()
            .map_err(|e| i.corrupt(format!("license_key {e}")))?,
        enabled: i.bool("enabled")?,
        max_activations: i.int("max_activations")?,
        allow_unlimited_activations: i.bool("unlimited")?,
        max_transfers: i.int("max_transfers")?,
        validity_period: i.time("validity_period")?,
        terms: i.json::<LicenseTerms>("terms")?,
        times_activated: i.int("times_activated")?,
        transfer_count: i.int("transfer_count")?,
        released_count: i.int("released_count")?,
        consumptions: i.int("consumptions")?,
        feature_consumptions: i.ints_by_code(FEATURE_COUNTER_PREFIX)?,
        consumptions_period: i.millis(LICENSE_PERIOD)?,
        feature_periods: i
            .ints_by_code(FEATURE_PERIOD_PREFIX)?
            .into_iter()
            .map(|(code, ms)| (code, Timestamp::from_millis(ms)))
            .collect(),
    })
}

pub fn processed_request(item: &ItemMap) -> Result<ProcessedRequest, StoreError> {
    let i = Item(item);
    Ok(ProcessedRequest {
        key: RequestKey::from_stored(i.str("request_key")?),
        answer: i.str("answer")?.to_owned(),
        processed_at: i
            .time("processed_at")?
            .ok_or_else(|| i.corrupt("`processed_at` is missing"))?,
        expires_at: i.int("expires_at")?,
    })
}

pub fn processed_request_item(addr: &LicenseAddr, r: &ProcessedRequest) -> ItemMap {
    let mut item = keys::request(addr, &r.key);
    item.insert("request_key".into(), s(r.key.as_str()));
    item.insert("answer".into(), s(&r.answer));
    item.insert("processed_at".into(), s(r.processed_at.to_string()));
    item.insert("expires_at".into(), n(r.expires_at));
    item
}

/// An upsert that sets everything the vendor controls and keeps the counters activations maintain.
pub fn license_upsert(license: &License) -> Result<UpdateBuilder, StoreError> {
    let mut u = UpdateBuilder::default();
    u.value(":id", n(license.id))
        .value(":enabled", AttributeValue::Bool(license.enabled))
        .value(":max", n(license.max_activations))
        .value(":unlimited", AttributeValue::Bool(license.allow_unlimited_activations))
        .value(":max_transfers", n(license.max_transfers))
        .value(":terms", s(to_json(&license.terms)?))
        .value(":zero", n(0))
        .set("license_id = :id")
        .set("enabled = :enabled")
        .set("max_activations = :max")
        .set("unlimited = :unlimited")
        .set("max_transfers = :max_transfers")
        .set("terms = :terms")
        .set("times_activated = if_not_exists(times_activated, :zero)")
        .set("transfer_count = if_not_exists(transfer_count, :zero)")
        .set("released_count = if_not_exists(released_count, :zero)");
    if let Some(key) = &license.key {
        u.value(":key", s(key.as_str())).set("license_key = :key");
    }
    if let Some(validity) = license.validity_period {
        u.value(":validity", s(validity.to_string()))
            .set("validity_period = :validity");
    }
    Ok(u)
}

pub fn seat(item: &ItemMap) -> Result<Seat, StoreError> {
    let i = Item(item);
    Ok(Seat {
        user: i.id("user", Username::parse)?,
        max_activations: i.int("max_activations")?,
        allow_unlimited_activations: i.bool("unlimited")?,
        total_activations: i.int("total_activations")?,
    })
}

pub fn device(item: &ItemMap) -> Result<Device, StoreError> {
    let i = Item(item);
    let details = match item.get("details") {
        Some(AttributeValue::M(m)) => m.iter().map(|(k, v)| (k.clone(), detail_json(v))).collect(),
        _ => Map::new(),
    };
    let variables = match i.opt_str("variables")? {
        Some(_) => i.json::<Vec<DeviceVariable>>("variables")?,
        None => Vec::new(),
    };
    Ok(Device {
        id: i.int("device_id")?,
        hardware_id: i.id("hardware_id", HardwareId::parse)?,
        active: i.bool("active")?,
        user: i
            .opt_str("user")?
            .map(Username::parse)
            .transpose()
            .map_err(|e| i.corrupt(format!("user {e}")))?,
        first_activated_at: i
            .time("first_activated_at")?
            .ok_or_else(|| i.corrupt("`first_activated_at` is missing"))?,
        last_activated_at: i
            .time("last_activated_at")?
            .ok_or_else(|| i.corrupt("`last_activated_at` is missing"))?,
        deactivated_at: i.time("deactivated_at")?,
        last_seen_at: i.time("last_seen_at")?,
        details,
        variables,
        activations: i.int("activations")?,
        write_token: i.opt_str("write_token")?.map(str::to_owned),
    })
}

pub fn device_item(addr: &LicenseAddr, d: &Device) -> ItemMap {
    let mut item = keys::device(addr, &d.hardware_id);
    item.insert("device_id".into(), n(d.id));
    item.insert("hardware_id".into(), s(d.hardware_id.as_str()));
    item.insert("active".into(), AttributeValue::Bool(d.active));
    if let Some(user) = &d.user {
        item.insert("user".into(), s(user.as_str()));
    }
    item.insert("first_activated_at".into(), s(d.first_activated_at.to_string()));
    item.insert("last_activated_at".into(), s(d.last_activated_at.to_string()));
    if let Some(t) = d.deactivated_at {
        item.insert("deactivated_at".into(), s(t.to_string()));
    }
    if let Some(t) = d.last_seen_at {
        item.insert("last_seen_at".into(), s(t.to_string()));
    }
    item.insert(
        "details".into(),
        AttributeValue::M(d.details.iter().map(|(k, v)| (k.clone(), detail_value(v))).collect()),
    );
    item.insert(
        "variables".into(),
        s(serde_json::to_string(&d.variables).unwrap_or_else(|_| "[]".into())),
    );
    item.insert("activations".into(), n(d.activations));
    if let Some(token) = &d.write_token {
        item.insert("write_token".into(), s(token));
    }
    item
}

/// The product as stored: its document plus, as top-level attributes, the gates a write condition on
/// the product could compare (`store::write::Attr`). No write does today: requests decide them from
/// their consistent read, so no request's write touches the product item (see docs/data-model.md).
pub fn product_item(key: ItemMap, p: &ProductDoc) -> Result<ItemMap, StoreError> {
    let mut item = doc_item(key, p)?;
    item.insert("disabled".into(), AttributeValue::Bool(p.disabled));
    item.insert("archived".into(), AttributeValue::Bool(p.archived));
    item.insert("blacklist".into(), hardware_list(&p.blacklist));
    Ok(item)
}

pub fn company_item(key: ItemMap, c: &Company) -> Result<ItemMap, StoreError> {
    let mut item = doc_item(key, c)?;
    item.insert("blacklist".into(), hardware_list(&c.blacklist));
    Ok(item)
}

fn hardware_list(set: &BTreeSet<HardwareId>) -> AttributeValue {
    AttributeValue::L(set.iter().map(|h| s(h.as_str())).collect())
}

/// Hardware details are strings or booleans (see `request::device_details`).
pub fn detail_value(v: &Value) -> AttributeValue {
    match v {
        Value::Bool(b) => AttributeValue::Bool(*b),
        Value::String(t) => s(t),
        other => s(other.to_string()),
    }
}

fn detail_json(v: &AttributeValue) -> Value {
    match v {
        AttributeValue::Bool(b) => Value::Bool(*b),
        AttributeValue::S(t) => Value::String(t.clone()),
        AttributeValue::N(t) => Value::String(t.clone()),
        _ => Value::Null,
    }
}
