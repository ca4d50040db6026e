//! Conversion between domain types and DynamoDB items. Fields that conditions compare or writes
//! increment are top-level attributes; the vendor-set description of a license, product, company or
//! user is one JSON string attribute `doc`, so adding a field to the model never needs a migration.

use super::keys::{self, key_part, n, s, ItemMap, PK};
use crate::ids::{
    ApiKeyId, CompanyId, CustomerAccountCode, HardwareId, LicenseKey, ManagementKeyId, OAuthClientId, ProductCode,
    RequestKey, Username,
};
use crate::model::{
    ApiKeyRecord, AuditRecord, Company, CustomerAccountRecord, Device, DeviceVariable, IdempotencyRecord, License,
    LicenseSource, LicenseTerms, ManagementKeyRecord, OAuthClientRecord, ProcessedRequest, ProductDoc, Seat,
    TrialRecord,
};
use crate::plan::LicenseAddr;
use crate::sealed::Sealed;
use crate::store::listing::ItemKind;
use crate::store::write::{Attr as A, Image, Item as WriteItem, FEATURE_COUNTER_PREFIX, FEATURE_PERIOD_PREFIX};
use crate::store::StoreError;
use crate::time::Timestamp;
use aws_sdk_dynamodb::types::AttributeValue;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};

/// Typed reads of one item, with errors that name the item and the attribute.
struct Reader<'a>(&'a ItemMap);

impl<'a> Reader<'a> {
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
    /// A map of numbers (floating slots: hardware id → held until); absent reads as empty.
    fn int_map(&self, name: &str) -> Result<BTreeMap<String, i64>, StoreError> {
        let bad = || self.corrupt(format!("`{name}` is not a map of integers"));
        match self.0.get(name) {
            None => Ok(BTreeMap::new()),
            Some(AttributeValue::M(m)) => m
                .iter()
                .map(|(k, v)| {
                    let n = v.as_n().map_err(|_| bad())?.parse().map_err(|_| bad())?;
                    Ok((k.clone(), n))
                })
                .collect(),
            Some(_) => Err(bad()),
        }
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
    Reader(item).json(A::Doc.name())
}

pub fn doc_item<T: Serialize>(mut key: ItemMap, value: &T) -> Result<ItemMap, StoreError> {
    key.insert(A::Doc.name().into(), s(to_json(value)?));
    Ok(key)
}

pub fn api_key(item: &ItemMap) -> Result<ApiKeyRecord, StoreError> {
    let i = Reader(item);
    Ok(ApiKeyRecord {
        id: i.id(A::ApiKey.name(), ApiKeyId::parse)?,
        company: i.id(A::Company.name(), CompanyId::parse)?,
        shared_key: i.str(A::SharedKey.name())?.to_owned(),
        products: i
            .string_set(A::Products.name())?
            .into_iter()
            .map(|p| ProductCode::parse(p).map_err(|e| i.corrupt(format!("product {e}"))))
            .collect::<Result<_, _>>()?,
        read_only: i.bool(A::ReadOnly.name())?,
        revoked: i.bool(A::Revoked.name())?,
        source: source(&i)?,
    })
}

pub fn oauth_client(item: &ItemMap) -> Result<OAuthClientRecord, StoreError> {
    let i = Reader(item);
    Ok(OAuthClientRecord {
        id: i.id(A::ClientId.name(), OAuthClientId::parse)?,
        company: i.id(A::Company.name(), CompanyId::parse)?,
        secret_hash: i.str(A::SecretHash.name())?.to_owned(),
        sealed_secret: Sealed::parse(i.str(A::SealedSecret.name())?).map_err(|e| i.corrupt(e.to_string()))?,
        products: i
            .string_set(A::Products.name())?
            .into_iter()
            .map(|p| ProductCode::parse(p).map_err(|e| i.corrupt(format!("product {e}"))))
            .collect::<Result<_, _>>()?,
        read_only: i.bool(A::ReadOnly.name())?,
        revoked: i.bool(A::Revoked.name())?,
        source: source(&i)?,
    })
}

pub fn oauth_client_item(client: &OAuthClientRecord) -> ItemMap {
    let mut item = keys::oauth_client(&client.id);
    item.insert(A::ClientId.name().into(), s(client.id.as_str()));
    item.insert(A::Company.name().into(), s(client.company.as_str()));
    item.insert(A::SecretHash.name().into(), s(&client.secret_hash));
    item.insert(A::SealedSecret.name().into(), s(client.sealed_secret.as_str()));
    item.insert(
        A::Products.name().into(),
        AttributeValue::L(client.products.iter().map(|p| s(p.as_str())).collect()),
    );
    item.insert(A::ReadOnly.name().into(), AttributeValue::Bool(client.read_only));
    item.insert(A::Revoked.name().into(), AttributeValue::Bool(client.revoked));
    put_source(&mut item, client.source);
    item
}

pub fn customer_account(item: &ItemMap) -> Result<CustomerAccountRecord, StoreError> {
    let i = Reader(item);
    Ok(CustomerAccountRecord {
        company: i.id(A::Company.name(), CompanyId::parse)?,
        code: i.id(A::AccountCode.name(), CustomerAccountCode::parse)?,
        issuer: i.str(A::Issuer.name())?.to_owned(),
        client_id: i.str(A::ClientId.name())?.to_owned(),
        sealed_secret: Sealed::parse(i.str(A::SealedSecret.name())?).map_err(|e| i.corrupt(e.to_string()))?,
        redirect_uris: i.json(A::RedirectUris.name())?,
        email_claim: i.str(A::EmailClaim.name())?.to_owned(),
    })
}

pub fn customer_account_item(account: &CustomerAccountRecord) -> Result<ItemMap, StoreError> {
    let mut item = keys::customer_account(&account.company, &account.code);
    item.insert(A::Company.name().into(), s(account.company.as_str()));
    item.insert(A::AccountCode.name().into(), s(account.code.as_str()));
    item.insert(A::Issuer.name().into(), s(&account.issuer));
    item.insert(A::ClientId.name().into(), s(&account.client_id));
    item.insert(A::SealedSecret.name().into(), s(account.sealed_secret.as_str()));
    let uris = serde_json::to_string(&account.redirect_uris).map_err(|e| StoreError::Invalid(e.to_string()))?;
    item.insert(A::RedirectUris.name().into(), s(&uris));
    item.insert(A::EmailClaim.name().into(), s(&account.email_claim));
    Ok(item)
}

pub fn api_key_item(key: &ApiKeyRecord) -> ItemMap {
    let mut item = keys::api_key(&key.id);
    item.insert(A::ApiKey.name().into(), s(key.id.as_str()));
    item.insert(A::Company.name().into(), s(key.company.as_str()));
    item.insert(A::SharedKey.name().into(), s(&key.shared_key));
    item.insert(
        A::Products.name().into(),
        AttributeValue::L(key.products.iter().map(|p| s(p.as_str())).collect()),
    );
    item.insert(A::ReadOnly.name().into(), AttributeValue::Bool(key.read_only));
    item.insert(A::Revoked.name().into(), AttributeValue::Bool(key.revoked));
    put_source(&mut item, key.source);
    item
}

/// An item's provenance (`source`): absent on items stored before it was recorded (unknown).
fn source(i: &Reader<'_>) -> Result<Option<LicenseSource>, StoreError> {
    i.opt_str(A::Source.name())?
        .map(|s| LicenseSource::parse(s).ok_or_else(|| i.corrupt(format!("source {s:?}"))))
        .transpose()
}

fn put_source(item: &mut ItemMap, source: Option<LicenseSource>) {
    if let Some(source) = source {
        item.insert(A::Source.name().into(), s(source.as_str()));
    }
}

pub fn license(item: &ItemMap, addr: &LicenseAddr) -> Result<License, StoreError> {
    let i = Reader(item);
    let (company, product) = match addr {
        LicenseAddr::Key { company, product, .. } | LicenseAddr::Id { company, product, .. } => (company, product),
    };
    Ok(License {
        id: i.int(A::LicenseId.name())?,
        company: company.clone(),
        product: product.clone(),
        key: i
            .opt_str(A::LicenseKey.name())?
            .map(LicenseKey::parse)
            .transpose()
            .map_err(|e| i.corrupt(format!("license_key {e}")))?,
        enabled: i.bool(A::Enabled.name())?,
        max_activations: i.int(A::MaxActivations.name())?,
        allow_unlimited_activations: i.bool(A::Unlimited.name())?,
        max_transfers: i.int(A::MaxTransfers.name())?,
        validity_period: i.time(A::ValidityPeriod.name())?,
        terms: i.json::<LicenseTerms>(A::Terms.name())?,
        times_activated: i.int(A::TimesActivated.name())?,
        transfer_count: i.int(A::TransferCount.name())?,
        released_count: i.int(A::ReleasedCount.name())?,
        consumptions: i.int(A::Consumptions.name())?,
        feature_consumptions: i.ints_by_code(FEATURE_COUNTER_PREFIX)?,
        consumptions_period: i.millis(A::ConsumptionsPeriod.name())?,
        feature_periods: i
            .ints_by_code(FEATURE_PERIOD_PREFIX)?
            .into_iter()
            .map(|(code, ms)| (code, Timestamp::from_millis(ms)))
            .collect(),
        floating: i.int_map(A::Floating.name())?,
        floating_version: i.int(A::FloatingVersion.name())?,
        floating_borrowed: i.int_map(A::FloatingBorrowed.name())?,
        source: source(&i)?,
    })
}

pub fn processed_request(item: &ItemMap) -> Result<ProcessedRequest, StoreError> {
    let i = Reader(item);
    Ok(ProcessedRequest {
        key: RequestKey::from_stored(i.str(A::RequestKey.name())?),
        answer: i.str(A::Answer.name())?.to_owned(),
        processed_at: i
            .time(A::ProcessedAt.name())?
            .ok_or_else(|| i.corrupt("`processed_at` is missing"))?,
        expires_at: i.int(A::ExpiresAt.name())?,
    })
}

pub fn processed_request_item(addr: &LicenseAddr, r: &ProcessedRequest) -> ItemMap {
    let mut item = keys::request(addr, &r.key);
    item.insert(A::RequestKey.name().into(), s(r.key.as_str()));
    item.insert(A::Answer.name().into(), s(&r.answer));
    item.insert(A::ProcessedAt.name().into(), s(r.processed_at.to_string()));
    item.insert(A::ExpiresAt.name().into(), n(r.expires_at));
    item
}

pub fn seat(item: &ItemMap) -> Result<Seat, StoreError> {
    let i = Reader(item);
    Ok(Seat {
        user: i.id(A::User.name(), Username::parse)?,
        max_activations: i.int(A::MaxActivations.name())?,
        allow_unlimited_activations: i.bool(A::Unlimited.name())?,
        total_activations: i.int(A::TotalActivations.name())?,
    })
}

pub fn device(item: &ItemMap) -> Result<Device, StoreError> {
    let i = Reader(item);
    let details = match item.get(A::Details.name()) {
        Some(AttributeValue::M(m)) => m.iter().map(|(k, v)| (k.clone(), detail_json(v))).collect(),
        _ => Map::new(),
    };
    let variables = match i.opt_str(A::Variables.name())? {
        Some(_) => i.json::<Vec<DeviceVariable>>(A::Variables.name())?,
        None => Vec::new(),
    };
    Ok(Device {
        id: i.int(A::DeviceId.name())?,
        hardware_id: i.id(A::HardwareId.name(), HardwareId::parse)?,
        active: i.bool(A::Active.name())?,
        user: i
            .opt_str(A::User.name())?
            .map(Username::parse)
            .transpose()
            .map_err(|e| i.corrupt(format!("user {e}")))?,
        first_activated_at: i
            .time(A::FirstActivatedAt.name())?
            .ok_or_else(|| i.corrupt("`first_activated_at` is missing"))?,
        last_activated_at: i
            .time(A::LastActivatedAt.name())?
            .ok_or_else(|| i.corrupt("`last_activated_at` is missing"))?,
        deactivated_at: i.time(A::DeactivatedAt.name())?,
        last_seen_at: i.time(A::LastSeenAt.name())?,
        details,
        variables,
        activations: i.int(A::Activations.name())?,
        write_token: i.opt_str(A::WriteToken.name())?.map(str::to_owned),
    })
}

pub fn device_item(addr: &LicenseAddr, d: &Device) -> ItemMap {
    let mut item = keys::device(addr, &d.hardware_id);
    item.insert(A::DeviceId.name().into(), n(d.id));
    item.insert(A::HardwareId.name().into(), s(d.hardware_id.as_str()));
    item.insert(A::Active.name().into(), AttributeValue::Bool(d.active));
    if let Some(user) = &d.user {
        item.insert(A::User.name().into(), s(user.as_str()));
    }
    item.insert(A::FirstActivatedAt.name().into(), s(d.first_activated_at.to_string()));
    item.insert(A::LastActivatedAt.name().into(), s(d.last_activated_at.to_string()));
    if let Some(t) = d.deactivated_at {
        item.insert(A::DeactivatedAt.name().into(), s(t.to_string()));
    }
    if let Some(t) = d.last_seen_at {
        item.insert(A::LastSeenAt.name().into(), s(t.to_string()));
    }
    item.insert(
        A::Details.name().into(),
        AttributeValue::M(d.details.iter().map(|(k, v)| (k.clone(), detail_value(v))).collect()),
    );
    item.insert(
        A::Variables.name().into(),
        s(serde_json::to_string(&d.variables).unwrap_or_else(|_| "[]".into())),
    );
    item.insert(A::Activations.name().into(), n(d.activations));
    if let Some(token) = &d.write_token {
        item.insert(A::WriteToken.name().into(), s(token));
    }
    let company = addr.company_product().0;
    let partition = format!("HWID#{company}#{}", d.hardware_id);
    keys::BY_KEY_OR_HARDWARE_ID.tag(&mut item, partition, addr);
    item
}

/// The product as stored: its document plus, as top-level attributes, the gates a write condition on
/// the product could compare (`store::write::Attr`). No write does today: requests decide them from
/// their consistent read, so no request's write touches the product item (see docs/data-model.md).
pub fn product_item(key: ItemMap, p: &ProductDoc) -> Result<ItemMap, StoreError> {
    let mut item = doc_item(key, p)?;
    item.insert(A::Disabled.name().into(), AttributeValue::Bool(p.disabled));
    item.insert(A::Archived.name().into(), AttributeValue::Bool(p.archived));
    item.insert(A::Blacklist.name().into(), hardware_list(&p.blacklist));
    Ok(item)
}

pub fn company_item(key: ItemMap, c: &Company) -> Result<ItemMap, StoreError> {
    let mut item = doc_item(key, c)?;
    item.insert(A::Blacklist.name().into(), hardware_list(&c.blacklist));
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

/// A license as stored: its counters only when written (absent reads as 0 or "none"), one attribute
/// per feature counter and period.
pub fn license_item(key: ItemMap, l: &License) -> Result<ItemMap, StoreError> {
    let mut item = key;
    let mut put = |a: A, v: AttributeValue| item.insert(a.name().to_owned(), v);
    put(A::LicenseId, n(l.id));
    if let Some(k) = &l.key {
        put(A::LicenseKey, s(k.as_str()));
    }
    put(A::Enabled, AttributeValue::Bool(l.enabled));
    put(A::MaxActivations, n(l.max_activations));
    put(A::Unlimited, AttributeValue::Bool(l.allow_unlimited_activations));
    put(A::MaxTransfers, n(l.max_transfers));
    if let Some(t) = l.validity_period {
        put(A::ValidityPeriod, s(t.to_string()));
    }
    put(A::Terms, s(to_json(&l.terms)?));
    put(A::TimesActivated, n(l.times_activated));
    put(A::TransferCount, n(l.transfer_count));
    put(A::ReleasedCount, n(l.released_count));
    if l.consumptions != 0 {
        put(A::Consumptions, n(l.consumptions));
    }
    if let Some(t) = l.consumptions_period {
        put(A::ConsumptionsPeriod, n(t.millis()));
    }
    if l.floating_version != 0 {
        put(
            A::Floating,
            AttributeValue::M(l.floating.iter().map(|(k, v)| (k.clone(), n(*v))).collect()),
        );
        put(A::FloatingVersion, n(l.floating_version));
        let borrowed = l.floating_borrowed.iter().map(|(k, v)| (k.clone(), n(*v)));
        put(A::FloatingBorrowed, AttributeValue::M(borrowed.collect()));
    }
    for (code, count) in &l.feature_consumptions {
        item.insert(format!("{FEATURE_COUNTER_PREFIX}{code}"), n(*count));
    }
    for (code, t) in &l.feature_periods {
        item.insert(format!("{FEATURE_PERIOD_PREFIX}{code}"), n(t.millis()));
    }
    put_source(&mut item, l.source);
    index_license(&mut item, l);
    Ok(item)
}

/// The license's entries in the indexes of the administrative listing and searches: every write that
/// stores a whole license (import, trial, management) goes through [`license_item`], so none misses them.
/// An email or order id too long for an index key (over [`crate::ids::MAX_ID_LEN`]) is not searchable.
fn index_license(item: &mut ItemMap, l: &License) {
    let addr = LicenseAddr::of(l);
    let company = &l.company;
    keys::LICENSES.tag(item, format!("LICENSES#{company}"), &addr);
    if let Some(key) = &l.key {
        keys::BY_KEY_OR_HARDWARE_ID.tag(item, format!("KEY#{company}#{key}"), &addr);
    }
    let fits = |v: &String| v.len() <= crate::ids::MAX_ID_LEN;
    if let Some(email) = crate::store::listing::customer_email(l).filter(fits) {
        keys::BY_EMAIL.tag(item, format!("EMAIL#{company}#{email}"), &addr);
    }
    if let Some(order) = l.terms.order_store_id.clone().filter(|o| !o.is_empty() && fits(o)) {
        keys::BY_ORDER_ID.tag(item, format!("ORDER#{company}#{order}"), &addr);
    }
}

pub fn seat_item(key: ItemMap, seat: &Seat) -> ItemMap {
    let mut item = key;
    item.insert(A::User.name().into(), s(seat.user.as_str()));
    item.insert(A::MaxActivations.name().into(), n(seat.max_activations));
    item.insert(
        A::Unlimited.name().into(),
        AttributeValue::Bool(seat.allow_unlimited_activations),
    );
    item.insert(A::TotalActivations.name().into(), n(seat.total_activations));
    item
}

pub fn audit(item: &ItemMap) -> Result<AuditRecord, StoreError> {
    let i = Reader(item);
    Ok(AuditRecord {
        company: i.id(A::Company.name(), CompanyId::parse)?,
        id: i.str(A::AuditId.name())?.to_owned(),
        at: i
            .time(A::At.name())?
            .ok_or_else(|| i.corrupt(format!("`{}` is missing", A::At.name())))?,
        actor: i.str(A::Actor.name())?.to_owned(),
        action: i.str(A::Change.name())?.to_owned(),
        subject: i.str(A::Subject.name())?.to_owned(),
        detail: i.json(A::Detail.name())?,
        expires_at: i.int(A::ExpiresAt.name())?,
    })
}

pub fn audit_item(key: ItemMap, r: &AuditRecord) -> Result<ItemMap, StoreError> {
    let mut item = key;
    let mut put = |a: A, v: String| item.insert(a.name().to_owned(), s(v));
    put(A::Company, r.company.as_str().to_owned());
    put(A::AuditId, r.id.clone());
    put(A::At, r.at.to_string());
    put(A::Actor, r.actor.clone());
    put(A::Change, r.action.clone());
    put(A::Subject, r.subject.clone());
    put(A::Detail, to_json(&r.detail)?);
    item.insert(A::ExpiresAt.name().to_owned(), n(r.expires_at));
    Ok(item)
}

pub fn management_key(item: &ItemMap) -> Result<ManagementKeyRecord, StoreError> {
    let i = Reader(item);
    Ok(ManagementKeyRecord {
        id: i.id(A::KeyId.name(), ManagementKeyId::parse)?,
        company: i.id(A::Company.name(), CompanyId::parse)?,
        name: i.str(A::Name.name())?.to_owned(),
        secret_hash: i.str(A::SecretHash.name())?.to_owned(),
        read_only: i.bool(A::ReadOnly.name())?,
        revoked: i.bool(A::Revoked.name())?,
        created_at: i
            .time(A::CreatedAt.name())?
            .ok_or_else(|| i.corrupt(format!("`{}` is missing", A::CreatedAt.name())))?,
    })
}

fn management_key_item(key: ItemMap, k: &ManagementKeyRecord) -> ItemMap {
    let mut item = key;
    let mut put = |a: A, v: &str| item.insert(a.name().to_owned(), s(v));
    put(A::KeyId, k.id.as_str());
    put(A::Company, k.company.as_str());
    put(A::Name, &k.name);
    put(A::SecretHash, &k.secret_hash);
    put(A::CreatedAt, &k.created_at.to_string());
    item.insert(A::ReadOnly.name().into(), AttributeValue::Bool(k.read_only));
    item.insert(A::Revoked.name().into(), AttributeValue::Bool(k.revoked));
    item
}

pub fn idempotency(item: &ItemMap) -> Result<IdempotencyRecord, StoreError> {
    let i = Reader(item);
    Ok(IdempotencyRecord {
        company: i.id(A::Company.name(), CompanyId::parse)?,
        key: i.str(A::IdempotencyKey.name())?.to_owned(),
        request_digest: i.str(A::RequestDigest.name())?.to_owned(),
        status: i.int(A::Status.name())?,
        answer: i.str(A::Answer.name())?.to_owned(),
        expires_at: i.int(A::ExpiresAt.name())?,
    })
}

fn idempotency_item(key: ItemMap, r: &IdempotencyRecord) -> ItemMap {
    let mut item = key;
    let mut put = |a: A, v: AttributeValue| item.insert(a.name().to_owned(), v);
    put(A::Company, s(r.company.as_str()));
    put(A::IdempotencyKey, s(&r.key));
    put(A::RequestDigest, s(&r.request_digest));
    put(A::Status, n(r.status));
    put(A::Answer, s(&r.answer));
    put(A::ExpiresAt, n(r.expires_at));
    item
}

pub fn trial(item: &ItemMap) -> Result<TrialRecord, StoreError> {
    let i = Reader(item);
    Ok(TrialRecord {
        license_id: i.int(A::LicenseId.name())?,
        license_key: i
            .opt_str(A::LicenseKey.name())?
            .map(LicenseKey::parse)
            .transpose()
            .map_err(|e| i.corrupt(format!("license_key {e}")))?,
        user: i
            .opt_str(A::User.name())?
            .map(Username::parse)
            .transpose()
            .map_err(|e| i.corrupt(format!("user {e}")))?,
        created_at: i
            .time(A::At.name())?
            .ok_or_else(|| i.corrupt(format!("`{}` is missing", A::At.name())))?,
    })
}

pub fn trial_item(key: ItemMap, t: &TrialRecord) -> ItemMap {
    let mut item = key;
    item.insert(A::LicenseId.name().into(), n(t.license_id));
    if let Some(k) = &t.license_key {
        item.insert(A::LicenseKey.name().into(), s(k.as_str()));
    }
    if let Some(u) = &t.user {
        item.insert(A::User.name().into(), s(u.as_str()));
    }
    item.insert(A::At.name().into(), s(t.created_at.to_string()));
    item
}

/// The stored form of `image` as the item `at` (its key included): what a put or upsert writes.
pub fn encode(at: &WriteItem, image: &Image) -> Result<ItemMap, StoreError> {
    let mut item = encode_attributes(at, image)?;
    index_listed(at, image, &mut item);
    Ok(item)
}

/// The item's entry in its company's listing of products, license users, API keys or OAuth clients
/// (GSI1, `keys::listed_partition`), sorted by its storage key: every put or upsert of a whole item
/// goes through [`encode`], so none misses it (licenses and devices tag themselves, above).
fn index_listed(at: &WriteItem, image: &Image, item: &mut ItemMap) {
    let Some(kind) = ItemKind::of(at) else { return };
    let Some(company) = ItemKind::company_of(at, image) else {
        return;
    };
    let sort_key = keys::key_part(item, keys::PK);
    keys::LICENSES.tag_sorted(item, keys::listed_partition(kind, company), sort_key);
}

fn encode_attributes(at: &WriteItem, image: &Image) -> Result<ItemMap, StoreError> {
    let key = super::expr::key(at);
    Ok(match (at, image) {
        (WriteItem::ApiKey(_), Image::ApiKey(k)) => api_key_item(k),
        (WriteItem::OAuthClient(_), Image::OAuthClient(c)) => oauth_client_item(c),
        (WriteItem::CustomerAccount(..), Image::CustomerAccount(a)) => customer_account_item(a)?,
        (WriteItem::Company(_), Image::Company(c)) => company_item(key, c)?,
        (WriteItem::Product(..), Image::Product(p)) => product_item(key, p)?,
        (WriteItem::User(..), Image::User(u)) => doc_item(key, u)?,
        (WriteItem::Customer(..), Image::Customer(c)) => doc_item(key, c)?,
        (WriteItem::License(_), Image::License(l)) => license_item(key, l)?,
        (WriteItem::Device(addr, _), Image::Device(d)) => device_item(addr, d),
        (WriteItem::Seat(..), Image::Seat(seat)) => seat_item(key, seat),
        (WriteItem::Released(_, hw), Image::Marker) => {
            let mut marker = key;
            marker.insert(A::HardwareId.name().into(), s(hw.as_str()));
            marker
        }
        (WriteItem::Request(addr, _), Image::Request(r)) => processed_request_item(addr, r),
        (WriteItem::Audit(..), Image::Audit(r)) => audit_item(key, r)?,
        (WriteItem::Trial(..), Image::Trial(t)) => trial_item(key, t),
        (WriteItem::ManagementKey(..), Image::ManagementKey(k)) => management_key_item(key, k),
        (WriteItem::Idempotency(..), Image::Idempotency(r)) => idempotency_item(key, r),
        (at, image) => return Err(StoreError::Invalid(format!("{image:?} cannot be stored as {at:?}"))),
    })
}

/// The item `at` as stored in `item`.
pub fn decode(at: &WriteItem, item: &ItemMap) -> Result<Image, StoreError> {
    Ok(match at {
        WriteItem::ApiKey(_) => Image::ApiKey(Box::new(api_key(item)?)),
        WriteItem::OAuthClient(_) => Image::OAuthClient(Box::new(oauth_client(item)?)),
        WriteItem::CustomerAccount(..) => Image::CustomerAccount(Box::new(customer_account(item)?)),
        WriteItem::Company(_) => Image::Company(Box::new(doc(item)?)),
        WriteItem::Product(..) => Image::Product(Box::new(doc(item)?)),
        WriteItem::User(..) => Image::User(Box::new(doc(item)?)),
        WriteItem::Customer(..) => Image::Customer(Box::new(doc(item)?)),
        WriteItem::License(addr) => Image::License(Box::new(license(item, addr)?)),
        WriteItem::Device(..) => Image::Device(Box::new(device(item)?)),
        WriteItem::Seat(..) => Image::Seat(seat(item)?),
        WriteItem::Released(..) => Image::Marker,
        WriteItem::Request(..) => Image::Request(Box::new(processed_request(item)?)),
        WriteItem::Audit(..) => Image::Audit(Box::new(audit(item)?)),
        WriteItem::Trial(..) => Image::Trial(Box::new(trial(item)?)),
        WriteItem::ManagementKey(..) => Image::ManagementKey(Box::new(management_key(item)?)),
        WriteItem::Idempotency(..) => Image::Idempotency(Box::new(idempotency(item)?)),
    })
}
