//! One description of every conditional write. Each store operation (activation, deactivation, check)
//! is turned here, once, into a [`Write`]: the items it touches, the conditions each must meet and the
//! effects applied when all hold. DynamoDB renders a `Write` into one `TransactWriteItems`
//! (`dynamo::expr`; a check that records one device: one conditional `UpdateItem`); the SQLite store
//! (and the model tests) evaluate the very same conditions against the rows read inside their
//! transaction with [`apply`]. A rule added here is enforced by both stores.
//!
//! Semantics follow DynamoDB's: a comparison with a missing attribute is false, `Add` to a missing
//! number starts from 0, and every `Update` is conditioned on the item existing.

use crate::ids::{
    ApiKeyId, CompanyId, CustomerAccountCode, HardwareId, ManagementKeyId, OAuthClientId, ProductCode, RequestKey,
    Username,
};
use crate::model::{
    ApiKeyRecord, AuditRecord, Company, CustomerAccountRecord, CustomerLicenses, Device, IdempotencyRecord, License,
    LicenseUser, ManagementKeyRecord, OAuthClientRecord, ProcessedRequest, ProductDoc, Seat, TrialRecord,
};
use crate::plan::{
    ActivationPlan, CheckPlan, ConsumptionPlan, Counter, DeactivationPlan, FloatingPlan, LicenseAddr, Slot, TrialPlan,
    VariablesPlan, WriteToken,
};
use crate::secret::Redacted;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;

/// An item a write touches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Item {
    ApiKey(ApiKeyId),
    Product(CompanyId, ProductCode),
    Company(CompanyId),
    /// A license user's record.
    User(CompanyId, Username),
    License(LicenseAddr),
    Device(LicenseAddr, HardwareId),
    Seat(LicenseAddr, Username),
    /// The marker of a released slot: the device that freed it (SPEC §3 transfers).
    Released(LicenseAddr, HardwareId),
    /// The record of an applied offline request (SPEC §6).
    Request(LicenseAddr, RequestKey),
    /// One record of the audit trail: company and record id.
    Audit(CompanyId, String),
    /// An OAuth client (docs/oauth.md).
    OAuthClient(OAuthClientId),
    /// A customer account's identity provider (single sign-on, docs/sso.md): company and code.
    CustomerAccount(CompanyId, CustomerAccountCode),
    /// The licenses of a customer, by the customer's email (`model::CustomerLicenses`).
    Customer(CompanyId, Username),
    /// The trial of a product for one hardware id (`trial_key`): created once, with its license.
    Trial(CompanyId, ProductCode, HardwareId),
    /// A management key (docs/management.md): kept in its company's partition, so listing a
    /// company's keys is one query.
    ManagementKey(CompanyId, ManagementKeyId),
    /// The answer to a request with an `Idempotency-Key`: company and key.
    Idempotency(CompanyId, String),
}

/// Declares [`Attr`] with its stored name: the one place every attribute (DynamoDB) and column
/// (SQLite) is named. Adding one here makes every exhaustive match over `Attr` ask for it.
macro_rules! attributes {
    ($($(#[$doc:meta])* $variant:ident = $name:literal,)*) => {
        /// Every attribute a store keeps. `name` is the attribute's name in every store.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Attr {
            $($(#[$doc])* $variant,)*
        }

        impl Attr {
            pub const ALL: &'static [Attr] = &[$(Attr::$variant,)*];

            pub fn name(self) -> &'static str {
                match self {
                    $(Self::$variant => $name,)*
                }
            }
        }
    };
}

attributes! {
    // API key
    ApiKey = "api_key",
    Company = "company",
    SharedKey = "shared_key",
    /// The products an API key serves (empty: all).
    Products = "products",
    ReadOnly = "read_only",
    Revoked = "revoked",
    /// The JSON document of a company, product or license user.
    Doc = "doc",
    Disabled = "disabled",
    Archived = "archived",
    Blacklist = "blacklist",
    // license
    LicenseId = "license_id",
    LicenseKey = "license_key",
    Enabled = "enabled",
    Unlimited = "unlimited",
    MaxActivations = "max_activations",
    TimesActivated = "times_activated",
    MaxTransfers = "max_transfers",
    TransferCount = "transfer_count",
    ReleasedCount = "released_count",
    ValidityPeriod = "validity_period",
    Terms = "terms",
    Consumptions = "consumptions",
    /// Per-feature counters as one value (SQLite); DynamoDB keeps one attribute per feature instead.
    FeatureConsumptions = "feature_consumptions",
    ConsumptionsPeriod = "consumptions_period",
    /// Per-feature period starts as one value (SQLite); DynamoDB keeps one attribute per feature.
    FeaturePeriods = "feature_periods",
    /// Floating cloud slots: hardware id → held until (Unix ms).
    Floating = "floating",
    FloatingVersion = "floating_version",
    /// Floating cloud slots held by a borrow: hardware id → borrowed until (Unix ms).
    FloatingBorrowed = "floating_borrowed",
    // device
    DeviceId = "device_id",
    HardwareId = "hardware_id",
    Active = "active",
    User = "user",
    FirstActivatedAt = "first_activated_at",
    LastActivatedAt = "last_activated_at",
    DeactivatedAt = "deactivated_at",
    LastSeenAt = "last_seen_at",
    Details = "details",
    Variables = "variables",
    Activations = "activations",
    WriteToken = "write_token",
    // seat
    TotalActivations = "total_activations",
    // applied offline request
    RequestKey = "request_key",
    Answer = "answer",
    ProcessedAt = "processed_at",
    ExpiresAt = "expires_at",
    // audit record
    AuditId = "audit_id",
    At = "at",
    Actor = "actor",
    Change = "action",
    Subject = "subject",
    Detail = "detail",
    // OAuth client (besides company, products, read_only and revoked, shared with API keys)
    ClientId = "client_id",
    /// argon2id hash of the client secret.
    SecretHash = "secret_hash",
    /// The client secret sealed under the sealing key (`sealed::Sealed`).
    SealedSecret = "sealed_secret",
    // Customer account (besides company, client_id and sealed_secret, shared with OAuth clients)
    AccountCode = "account_code",
    /// The identity provider's issuer URL.
    Issuer = "issuer",
    /// Registered redirect URIs (JSON list).
    RedirectUris = "redirect_uris",
    /// The ID token claim naming the license user.
    EmailClaim = "email_claim",
    // Management key (besides company, secret_hash, read_only and revoked)
    KeyId = "key_id",
    Name = "name",
    CreatedAt = "created_at",
    /// Who created a license, API key or OAuth client (`model::LicenseSource`): `catalog`, `trial` or
    /// `management`.
    Source = "source",
    // Idempotency record (besides company, answer and expires_at)
    IdempotencyKey = "idempotency_key",
    RequestDigest = "request_digest",
    Status = "status",
}

/// What an [`Action::Upsert`] does with an attribute the item already holds: the one statement of
/// the catalog's "keep the counters" rule, which every store follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnUpsert {
    /// The vendor sets it: the new value replaces the stored one.
    Replace,
    /// Requests change it (a counter): a stored value stays, a new item starts from the given one.
    KeepStored,
    /// Set by the vendor or by a request (a trial's validity): a given value replaces the stored one,
    /// none keeps it.
    KeepUnlessGiven,
}

impl Attr {
    pub fn on_upsert(self) -> OnUpsert {
        use Attr::*;
        match self {
            TimesActivated | TransferCount | ReleasedCount | Consumptions | FeatureConsumptions
            | ConsumptionsPeriod | FeaturePeriods | TotalActivations | Floating | FloatingVersion
            | FloatingBorrowed => OnUpsert::KeepStored,
            ValidityPeriod => OnUpsert::KeepUnlessGiven,
            ApiKey | Company | SharedKey | Products | ReadOnly | Revoked | Doc | Disabled | Archived | Blacklist
            | LicenseId | LicenseKey | Enabled | Unlimited | MaxActivations | MaxTransfers | Terms | DeviceId
            | HardwareId | Active | User | FirstActivatedAt | LastActivatedAt | DeactivatedAt | LastSeenAt
            | Details | Variables | Activations | WriteToken | RequestKey | Answer | ProcessedAt | ExpiresAt
            | AuditId | At | Actor | Change | Subject | Detail | ClientId | SecretHash | SealedSecret | AccountCode
            | Issuer | RedirectUris | EmailClaim | KeyId | Name | CreatedAt | IdempotencyKey | RequestDigest
            | Status | Source => OnUpsert::Replace,
        }
    }

    /// Whether a value of the attribute may hold a secret, so `Debug` of a condition or effect prints
    /// [`Redacted`] instead. A document is one: a license user's holds the password hash, and a
    /// [`Val`] does not say whose document it is. An answer may be a sealed secret shown once.
    /// Every attribute is listed, so one added to [`Attr`] does not compile until it is decided here.
    pub fn holds_secret(self) -> bool {
        use Attr::*;
        match self {
            SharedKey | SecretHash | SealedSecret | Doc | Answer => true,
            ApiKey | Company | Products | ReadOnly | Revoked | Disabled | Archived | Blacklist | LicenseId
            | LicenseKey | Enabled | Unlimited | MaxActivations | TimesActivated | MaxTransfers | TransferCount
            | ReleasedCount | ValidityPeriod | Terms | Consumptions | FeatureConsumptions | ConsumptionsPeriod
            | FeaturePeriods | Floating | FloatingVersion | FloatingBorrowed | DeviceId | HardwareId | Active
            | User | FirstActivatedAt | LastActivatedAt | DeactivatedAt | LastSeenAt | Details | Variables
            | Activations | WriteToken | TotalActivations | RequestKey | ProcessedAt | ExpiresAt | AuditId | At
            | Actor | Change | Subject | Detail | ClientId | AccountCode | Issuer | RedirectUris | EmailClaim
            | KeyId | Name | CreatedAt | Source | IdempotencyKey | RequestDigest | Status => false,
        }
    }

    /// `value` as `Debug` may print it for this attribute: [`Redacted`] if it may hold a secret.
    fn shown(self, value: &Val) -> &dyn fmt::Debug {
        match self.holds_secret() {
            true => &Redacted,
            false => value,
        }
    }

    /// The rule for a stored attribute by name; per-feature counters (DynamoDB) are counters.
    pub fn on_upsert_named(name: &str) -> OnUpsert {
        if name.starts_with(FEATURE_COUNTER_PREFIX) || name.starts_with(FEATURE_PERIOD_PREFIX) {
            return OnUpsert::KeepStored;
        }
        Attr::ALL
            .iter()
            .find(|a| a.name() == name)
            .map_or(OnUpsert::Replace, |a| a.on_upsert())
    }
}

impl Counter {
    /// The attribute (DynamoDB) that holds the counter on the license item.
    pub fn name(&self) -> String {
        match self {
            Self::Consumptions => Attr::Consumptions.name().to_owned(),
            Self::Feature(code) => format!("{FEATURE_COUNTER_PREFIX}{code}"),
        }
    }

    /// The attribute that holds the start of the period a periodic counter counts (Unix milliseconds).
    pub fn period_name(&self) -> String {
        match self {
            Self::Consumptions => Attr::ConsumptionsPeriod.name().to_owned(),
            Self::Feature(code) => format!("{FEATURE_PERIOD_PREFIX}{code}"),
        }
    }
}

/// Prefix of the license attributes that count a feature's consumptions (DynamoDB).
pub const FEATURE_COUNTER_PREFIX: &str = "consumptions#";
/// Prefix of the attributes with the start of the period a feature's counter counts (DynamoDB).
pub const FEATURE_PERIOD_PREFIX: &str = "consumptions_period#";

#[derive(Clone, Debug, PartialEq)]
pub enum Val {
    Bool(bool),
    Int(i64),
    Str(String),
    /// A set of strings (blacklists); only `Contains` looks into it.
    Set(Vec<String>),
    /// Numbers by feature code (SQLite's per-feature counters and period starts).
    Counts(BTreeMap<String, i64>),
}

/// A condition on one item. `Debug` is written by hand to redact secret values ([`Attr::holds_secret`]).
#[derive(Clone, PartialEq)]
pub enum Cond {
    /// The item exists.
    Exists,
    /// The item does not exist.
    Missing,
    /// The attribute is absent.
    Absent(Attr),
    Eq(Attr, Val),
    /// `a < b`, both attributes of the item.
    Lt(Attr, Attr),
    Gt(Attr, i64),
    /// A set attribute holds the value.
    Contains(Attr, String),
    /// The counter is at most the value; a counter never written counts as 0.
    AtMost(Counter, i64),
    /// The counter is at least the value; a counter never written counts as 0.
    AtLeast(Counter, i64),
    /// The counter is stored and at most the value.
    StoredAtMost(Counter, i64),
    /// The counter is stored and at least the value.
    StoredAtLeast(Counter, i64),
    /// The counter was never written.
    NoCounter(Counter),
    /// The counter's recorded period start is the value (Unix ms); `None`: none is recorded.
    PeriodIs(Counter, Option<i64>),
    Not(Box<Cond>),
    Or(Vec<Cond>),
}

impl std::ops::Not for Cond {
    type Output = Cond;
    fn not(self) -> Cond {
        Cond::Not(Box::new(self))
    }
}

impl Cond {
    fn is(a: Attr, v: bool) -> Self {
        Self::Eq(a, Val::Bool(v))
    }
}

impl fmt::Debug for Cond {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut tuple = |name: &str, fields: &[&dyn fmt::Debug]| {
            let mut t = f.debug_tuple(name);
            fields.iter().for_each(|field| {
                t.field(field);
            });
            t.finish()
        };
        match self {
            Cond::Exists => tuple("Exists", &[]),
            Cond::Missing => tuple("Missing", &[]),
            Cond::Absent(a) => tuple("Absent", &[a]),
            Cond::Eq(a, v) => tuple("Eq", &[a, a.shown(v)]),
            Cond::Lt(a, b) => tuple("Lt", &[a, b]),
            Cond::Gt(a, n) => tuple("Gt", &[a, n]),
            Cond::Contains(a, s) => tuple("Contains", &[a, s]),
            Cond::AtMost(c, n) => tuple("AtMost", &[c, n]),
            Cond::AtLeast(c, n) => tuple("AtLeast", &[c, n]),
            Cond::StoredAtMost(c, n) => tuple("StoredAtMost", &[c, n]),
            Cond::StoredAtLeast(c, n) => tuple("StoredAtLeast", &[c, n]),
            Cond::NoCounter(c) => tuple("NoCounter", &[c]),
            Cond::PeriodIs(c, at) => tuple("PeriodIs", &[c, at]),
            Cond::Not(c) => tuple("Not", &[c]),
            Cond::Or(cs) => tuple("Or", &[cs]),
        }
    }
}

/// A change to one attribute. `Debug` is written by hand to redact secret values, like [`Cond`]'s.
#[derive(Clone, PartialEq)]
pub enum Effect {
    Add(Attr, i64),
    Set(Attr, Val),
    /// One entry of the device's hardware-details map.
    SetDetail(String, Value),
    /// Adds to a consumption counter (one never written starts from 0).
    Count(Counter, i64),
    /// Sets a consumption counter (the first write of a new period).
    SetCount(Counter, i64),
    /// Records the start of the period a counter counts (Unix ms).
    SetPeriod(Counter, i64),
}

impl fmt::Debug for Effect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (name, first, second): (&str, &dyn fmt::Debug, &dyn fmt::Debug) = match self {
            Effect::Add(a, n) => ("Add", a, n),
            Effect::Set(a, v) => ("Set", a, a.shown(v)),
            Effect::SetDetail(key, v) => ("SetDetail", key, v),
            Effect::Count(c, n) => ("Count", c, n),
            Effect::SetCount(c, n) => ("SetCount", c, n),
            Effect::SetPeriod(c, at) => ("SetPeriod", c, at),
        };
        f.debug_tuple(name).field(first).field(second).finish()
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Only the conditions: the item is read, not written.
    Check,
    Update(Vec<Effect>),
    /// Writes the whole item, replacing a stored one (with `Cond::Missing`: creates it if absent).
    Put(Image),
    /// Writes the item, keeping what requests changed on a stored one ([`Attr::on_upsert`]): the
    /// catalog import's write.
    Upsert(Image),
    Delete,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ItemWrite {
    pub item: Item,
    pub conditions: Vec<Cond>,
    pub action: Action,
}

impl ItemWrite {
    /// The answer an offline request's record holds.
    pub fn recorded_answer(&self) -> Option<String> {
        match &self.action {
            Action::Put(Image::Request(r)) => Some(r.answer.clone()),
            _ => None,
        }
    }
}

/// All items of one atomic write: all conditions hold and every action happens, or nothing does.
#[derive(Clone, Debug, PartialEq)]
pub struct Write {
    pub items: Vec<ItemWrite>,
}

impl Write {
    fn one(item: Item, conditions: Vec<Cond>, action: Action) -> Self {
        Self {
            items: vec![ItemWrite {
                item,
                conditions,
                action,
            }],
        }
    }

    /// Writes the whole item, replacing a stored one.
    pub fn put(item: Item, image: Image) -> Self {
        Self::one(item, Vec::new(), Action::Put(image))
    }

    /// Creates the item; refused if it exists.
    pub fn create(item: Item, image: Image) -> Self {
        Self::one(item, vec![Cond::Missing], Action::Put(image))
    }

    /// Writes the item, keeping the counters of a stored one ([`Attr::on_upsert`]).
    pub fn upsert(item: Item, image: Image) -> Self {
        Self::one(item, Vec::new(), Action::Upsert(image))
    }

    /// Replaces the item's document only if it is still exactly `stored` (`change_password`: the hash
    /// verified is the one replaced, so of two concurrent changes only one wins).
    pub fn replace_unchanged(item: Item, stored: &Image, new: Image) -> Self {
        Self {
            items: vec![replace_unchanged(item, stored, new)],
        }
    }

    /// Deletes the item, if there is one.
    pub fn delete(item: Item) -> Self {
        Self::one(item, Vec::new(), Action::Delete)
    }
}

/// The item's document replaced only if it is still exactly `stored` ([`Write::replace_unchanged`]).
fn replace_unchanged(item: Item, stored: &Image, new: Image) -> ItemWrite {
    let conditions = match stored.get(Attr::Doc) {
        Some(doc) => vec![Cond::Eq(Attr::Doc, doc)],
        // An item without a document cannot be compared: refuse rather than overwrite blindly.
        None => vec![Cond::Missing, Cond::Exists],
    };
    ItemWrite {
        item,
        conditions,
        action: Action::Put(new),
    }
}

/// `new` created where nothing was read (`stored: None`), else replacing `stored` if unchanged since.
pub fn create_or_replace(item: Item, stored: Option<Image>, new: Image) -> ItemWrite {
    match stored {
        None => create(item, new),
        Some(stored) => replace_unchanged(item, &stored, new),
    }
}

/// The item created, on the condition that there is none yet.
fn create(item: Item, image: Image) -> ItemWrite {
    ItemWrite {
        item,
        conditions: vec![Cond::Missing],
        action: Action::Put(image),
    }
}

/// The device is at `version`. Devices stored before versions existed have no `activations` attribute
/// and read as version 0.
fn version_is(version: i64) -> Cond {
    let exactly = Cond::Eq(Attr::Activations, Val::Int(version));
    if version == 0 {
        Cond::Or(vec![Cond::Absent(Attr::Activations), exactly])
    } else {
        exactly
    }
}

fn update(item: Item, mut conditions: Vec<Cond>, effects: Vec<Effect>) -> ItemWrite {
    // An update of a missing item would create it (DynamoDB); every update here changes an existing one.
    conditions.insert(0, Cond::Exists);
    ItemWrite {
        item,
        conditions,
        action: Action::Update(effects),
    }
}

impl ActivationPlan {
    /// The write of this plan; `token` is recorded on the device.
    pub fn write(&self, token: &WriteToken) -> Write {
        let addr = &self.addr;
        let hw = &self.device.hardware_id;
        let mut items = Vec::with_capacity(5);
        items.extend(once(addr, self.once.as_ref(), self.device.last_activated_at));

        // The device: the 409 rule, on exactly the version the plan was made against.
        let device_cond = match self.replaces {
            None => vec![Cond::Missing],
            Some(version) => vec![Cond::is(Attr::Active, false), version_is(version)],
        };
        items.push(ItemWrite {
            item: Item::Device(addr.clone(), hw.clone()),
            conditions: device_cond,
            action: Action::Put(Image::Device(Box::new(Device {
                write_token: Some(token.as_str().to_owned()),
                ..self.device.clone()
            }))),
        });

        // The license: the one decided on (an address re-imported with another license, or a bundle
        // member's address holding a license that is not that member, refuses), one more active device,
        // within every limit the plan relied on.
        let mut cond = vec![
            Cond::Eq(Attr::LicenseId, Val::Int(self.license_id)),
            Cond::is(Attr::Enabled, true),
        ];
        let mut effects = vec![Effect::Add(Attr::TimesActivated, 1)];
        if self.enforce_max_activations {
            cond.push(Cond::is(Attr::Unlimited, false));
            cond.push(Cond::Lt(Attr::TimesActivated, Attr::MaxActivations));
        } else {
            cond.push(Cond::is(Attr::Unlimited, true));
        }
        let mut marker = None;
        match &self.slot {
            Slot::Fresh => cond.push(!Cond::Gt(Attr::ReleasedCount, 0)),
            Slot::Reuse => {
                cond.push(Cond::Gt(Attr::ReleasedCount, 0));
                effects.push(Effect::Add(Attr::ReleasedCount, -1));
                marker = Some(hw.clone());
            }
            Slot::Transfer { released_by } => {
                cond.push(Cond::Gt(Attr::ReleasedCount, 0));
                cond.push(Cond::Or(vec![
                    Cond::Eq(Attr::MaxTransfers, Val::Int(0)),
                    Cond::Lt(Attr::TransferCount, Attr::MaxTransfers),
                ]));
                effects.push(Effect::Add(Attr::ReleasedCount, -1));
                effects.push(Effect::Add(Attr::TransferCount, 1));
                marker = Some(released_by.clone());
            }
            Slot::Untracked => {}
        }
        if let Some(validity) = self.set_validity {
            cond.push(Cond::Absent(Attr::ValidityPeriod));
            effects.push(Effect::Set(Attr::ValidityPeriod, Val::Str(validity.to_string())));
        }
        items.push(update(Item::License(addr.clone()), cond, effects));

        // The user's seat: their own count, within their own limit (or still unlimited).
        if let Some((user, enforce)) = &self.seat {
            let cond = if *enforce {
                vec![
                    Cond::is(Attr::Unlimited, false),
                    Cond::Lt(Attr::TotalActivations, Attr::MaxActivations),
                ]
            } else {
                vec![Cond::is(Attr::Unlimited, true)]
            };
            items.push(update(
                Item::Seat(addr.clone(), user.clone()),
                cond,
                vec![Effect::Add(Attr::TotalActivations, 1)],
            ));
        }

        // The released slot taken, if any: its marker must still be there.
        if let Some(released) = marker {
            items.push(ItemWrite {
                item: Item::Released(addr.clone(), released),
                conditions: vec![Cond::Exists],
                action: Action::Delete,
            });
        }
        Write { items }
    }
}

impl DeactivationPlan {
    /// The write of this plan; `token` is recorded on the device.
    pub fn write(&self, token: &WriteToken) -> Write {
        let addr = &self.addr;
        let mut items = Vec::with_capacity(5);
        items.extend(once(addr, self.once.as_ref(), self.at));
        items.push(update(
            Item::Device(addr.clone(), self.hardware_id.clone()),
            vec![Cond::is(Attr::Active, true), version_is(self.device_activations)],
            vec![
                Effect::Set(Attr::Active, Val::Bool(false)),
                Effect::Set(Attr::DeactivatedAt, Val::Str(self.at.to_string())),
                Effect::Set(Attr::WriteToken, Val::Str(token.as_str().to_owned())),
            ],
        ));
        let mut effects = vec![Effect::Add(Attr::TimesActivated, -1)];
        if self.release_slot {
            effects.push(Effect::Add(Attr::ReleasedCount, 1));
        }
        let mut cond = vec![
            Cond::Eq(Attr::LicenseId, Val::Int(self.license_id)),
            Cond::Gt(Attr::TimesActivated, 0),
            // Whether a slot is remembered was decided on the license being limited.
            Cond::is(Attr::Unlimited, !self.release_slot),
        ];
        for charge in &self.charges {
            charge_write(charge, &mut cond, &mut effects);
        }
        items.push(update(Item::License(addr.clone()), cond, effects));
        if let Some(user) = &self.seat {
            items.push(update(
                Item::Seat(addr.clone(), user.clone()),
                vec![Cond::Gt(Attr::TotalActivations, 0)],
                vec![Effect::Add(Attr::TotalActivations, -1)],
            ));
        }
        if self.release_slot {
            items.push(ItemWrite {
                item: Item::Released(addr.clone(), self.hardware_id.clone()),
                conditions: vec![Cond::Missing],
                action: Action::Put(Image::Marker),
            });
        }
        Write { items }
    }
}

impl ConsumptionPlan {
    /// The write of this plan: the device checked as read, the license charged within the bounds the
    /// rules checked (an amount of 0 only checks it). No token is recorded: a retry of an unknown
    /// outcome reuses the write's token, which DynamoDB applies at most once.
    pub fn write(&self) -> Write {
        let addr = &self.addr;
        let device = device_as_read(addr, &self.device.hardware_id, Some(&self.device));
        let mut cond = vec![
            Cond::Eq(Attr::LicenseId, Val::Int(self.license_id)),
            Cond::is(Attr::Enabled, true),
        ];
        let mut effects = Vec::new();
        for charge in &self.charges {
            charge_write(charge, &mut cond, &mut effects);
        }
        let item = Item::License(addr.clone());
        let license = if effects.is_empty() {
            ItemWrite {
                item,
                conditions: cond,
                action: Action::Check,
            }
        } else {
            update(item, cond, effects)
        };
        Write {
            items: vec![device, license],
        }
    }
}

/// One consumption charge's conditions and effects on the license. One condition of one operator per
/// feature counter keeps the license's condition within DynamoDB's limits (4 KB, 300 operators) for
/// the 100 features a file may report.
fn charge_write(charge: &crate::plan::Charge, cond: &mut Vec<Cond>, effects: &mut Vec<Effect>) {
    let counter = &charge.counter;
    if let Some(start) = charge.period_start {
        // Of the writes that read the old period, exactly one starts the new one; the others fail
        // this condition and re-read. So the counter cannot change between this write's read and its
        // commit, and the bounds the rules checked on the value read hold without a condition.
        cond.push(Cond::PeriodIs(counter.clone(), charge.period_read.map(|t| t.millis())));
        effects.push(Effect::SetPeriod(counter.clone(), start.millis()));
    } else if charge.stored == Some(false) && (charge.at_most.is_some() || charge.at_least.is_some()) {
        // Never written: 0, which the rules found within the bounds; a concurrent first write fails this.
        cond.push(Cond::NoCounter(counter.clone()));
    } else {
        // The bounds hold for the total the write produces, whatever was added concurrently. Only
        // the side the amount moves towards needs a condition: every write keeps the other.
        let stored = charge.stored == Some(true);
        if let Some(bound) = charge.at_most {
            cond.push(if stored {
                Cond::StoredAtMost(counter.clone(), bound)
            } else {
                Cond::AtMost(counter.clone(), bound)
            });
        }
        if let Some(bound) = charge.at_least {
            cond.push(if stored {
                Cond::StoredAtLeast(counter.clone(), bound)
            } else {
                Cond::AtLeast(counter.clone(), bound)
            });
        }
    }
    effects.push(match charge.restart {
        Some(start) => Effect::SetCount(counter.clone(), start.saturating_add(charge.amount)),
        None => Effect::Count(counter.clone(), charge.amount),
    });
}

/// A condition-only item: the device at `addr` is still as read (`None`: there is none), so a write
/// that relied on a device it does not change (a bundle member it skips) holds only if that device
/// did not change meanwhile.
pub fn device_as_read(addr: &LicenseAddr, hardware_id: &HardwareId, device: Option<&Device>) -> ItemWrite {
    let conditions = match device {
        None => vec![Cond::Missing],
        Some(d) => vec![
            Cond::Exists,
            Cond::is(Attr::Active, d.active),
            version_is(d.activations),
        ],
    };
    ItemWrite {
        item: Item::Device(addr.clone(), hardware_id.clone()),
        conditions,
        action: Action::Check,
    }
}

/// The record of an offline request, first in its write: it may be written only if the request was
/// never applied (or its record expired), so of any number of uploads of one file exactly one writes.
fn once(addr: &LicenseAddr, request: Option<&ProcessedRequest>, now: crate::time::Timestamp) -> Option<ItemWrite> {
    request.map(|r| request_record(addr, r, now))
}

/// The record of an applied offline request beside the license at `addr` (see [`once`]); a write
/// that joins several licenses' writes (bundles) carries it once.
pub fn request_record(addr: &LicenseAddr, request: &ProcessedRequest, now: crate::time::Timestamp) -> ItemWrite {
    ItemWrite {
        item: Item::Request(addr.clone(), request.key.clone()),
        conditions: vec![Cond::Or(vec![
            Cond::Missing,
            !Cond::Gt(Attr::ExpiresAt, now.unix_seconds()),
        ])],
        action: Action::Put(Image::Request(Box::new(request.clone()))),
    }
}

/// Most bytes an offline request's recorded answer may take: DynamoDB's 400 KB item limit less 4 KiB
/// for the record's keys (at most 3 KB) and its other attributes.
pub const MAX_RECORDED_ANSWER_BYTES: usize = 396 * 1024;

impl CheckPlan {
    /// The device's update: on the activation the check was decided on, still active, and — when only
    /// the interval made it due — still last seen when it was read, so concurrent checks write once.
    pub fn write(&self) -> ItemWrite {
        let mut conditions = vec![Cond::is(Attr::Active, true), version_is(self.device_activations)];
        if let crate::plan::CheckDue::Interval { seen } = &self.due {
            conditions.push(match seen {
                None => Cond::Absent(Attr::LastSeenAt),
                Some(t) => Cond::Eq(Attr::LastSeenAt, Val::Str(t.to_string())),
            });
        }
        let mut effects = vec![Effect::Set(Attr::LastSeenAt, Val::Str(self.at.to_string()))];
        effects.extend(
            self.details
                .iter()
                .map(|(k, v)| Effect::SetDetail(k.clone(), v.clone())),
        );
        update(
            Item::Device(self.addr.clone(), self.hardware_id.clone()),
            conditions,
            effects,
        )
    }
}

impl VariablesPlan {
    /// The device's update: still the activation decided on, active, and last written by the write
    /// read (a concurrent tracking, activation or deactivation refuses it, and the caller re-decides
    /// on the state that won); `token` replaces that write's.
    pub fn write(&self, token: &WriteToken) -> Write {
        let last_write = match &self.last_write {
            None => Cond::Absent(Attr::WriteToken),
            Some(t) => Cond::Eq(Attr::WriteToken, Val::Str(t.clone())),
        };
        let variables = json_of(&self.variables).unwrap_or(Val::Str("[]".into()));
        Write {
            items: vec![update(
                Item::Device(self.addr.clone(), self.hardware_id.clone()),
                vec![
                    Cond::is(Attr::Active, true),
                    version_is(self.device_activations),
                    last_write,
                ],
                vec![
                    Effect::Set(Attr::Variables, variables),
                    Effect::Set(Attr::WriteToken, Val::Str(token.as_str().to_owned())),
                ],
            )],
        }
    }
}

impl FloatingPlan {
    /// The license's update: the new holders and the next version, on the version read (an absent
    /// version reads as 0) — so of concurrent changes read at one version exactly one is written.
    pub fn write(&self) -> ItemWrite {
        let version = Cond::Eq(Attr::FloatingVersion, Val::Int(self.version));
        let version = if self.version == 0 {
            Cond::Or(vec![Cond::Absent(Attr::FloatingVersion), version])
        } else {
            version
        };
        update(
            Item::License(self.addr.clone()),
            vec![Cond::Eq(Attr::LicenseId, Val::Int(self.license_id)), version],
            vec![
                Effect::Set(Attr::Floating, Val::Counts(self.holders.clone())),
                Effect::Set(Attr::FloatingBorrowed, Val::Counts(self.borrowed.clone())),
                Effect::Add(Attr::FloatingVersion, 1),
            ],
        )
    }
}

impl TrialPlan {
    /// The trial's creation, all or nothing: its marker for (product, hardware id) first — of any
    /// number of concurrent requests for one device, exactly one creates it, and the others are
    /// refused by this item and answer the trial it names — then the license, and for a user-based
    /// trial the user's seat and record (created, or the stored one given the license, unchanged since
    /// it was read), and the customer's index with the trial appended, on the same condition: of two
    /// trials racing for one customer, the second is refused by the index and re-decides on the first's.
    pub fn write(&self) -> Write {
        let addr = LicenseAddr::of(&self.license);
        let (company, product) = addr.company_product();
        let marker = Item::Trial(company.clone(), product.clone(), self.hardware_id.clone());
        let mut items = vec![
            create(marker, Image::Trial(Box::new(self.marker.clone()))),
            create(
                Item::License(addr.clone()),
                Image::License(Box::new(self.license.clone())),
            ),
        ];
        if let Some(seat) = &self.seat {
            items.push(create(
                Item::Seat(addr.clone(), seat.user.clone()),
                Image::Seat(seat.clone()),
            ));
        }
        if let Some(user) = &self.user {
            items.push(create_or_replace(
                Item::User(company.clone(), user.email.clone()),
                self.stored_user.clone().map(|u| Image::User(Box::new(u))),
                Image::User(Box::new(user.clone())),
            ));
        }
        if let Some(index) = &self.customer {
            items.push(create_or_replace(
                Item::Customer(company.clone(), index.email.clone()),
                self.stored_customer.clone().map(|c| Image::Customer(Box::new(c))),
                Image::Customer(Box::new(index.clone())),
            ));
        }
        Write { items }
    }
}

/// The write of checks recorded together (a bundle's members): every device or none.
pub fn checks_write(plans: &[CheckPlan]) -> Write {
    Write {
        items: plans.iter().map(CheckPlan::write).collect(),
    }
}

/// An item as a store holds it, for evaluating conditions and applying effects in code, and for
/// writing whole items ([`Action::Put`], [`Action::Upsert`]).
#[derive(Clone, Debug)]
pub enum Image {
    ApiKey(Box<ApiKeyRecord>),
    Product(Box<ProductDoc>),
    Company(Box<Company>),
    User(Box<LicenseUser>),
    License(Box<License>),
    Device(Box<Device>),
    Seat(Seat),
    Marker,
    Request(Box<ProcessedRequest>),
    Audit(Box<AuditRecord>),
    OAuthClient(Box<OAuthClientRecord>),
    CustomerAccount(Box<CustomerAccountRecord>),
    Customer(Box<CustomerLicenses>),
    Trial(Box<TrialRecord>),
    ManagementKey(Box<ManagementKeyRecord>),
    Idempotency(Box<IdempotencyRecord>),
}

/// Two images are equal when they are the same kind of item with the same stored attributes.
impl PartialEq for Image {
    fn eq(&self, other: &Self) -> bool {
        std::mem::discriminant(self) == std::mem::discriminant(other)
            && Attr::ALL.iter().all(|&a| self.get(a) == other.get(a))
    }
}

fn blacklist(set: &std::collections::BTreeSet<HardwareId>) -> Val {
    set_of(set.iter().map(HardwareId::as_str))
}

fn set_of<'a>(items: impl IntoIterator<Item = &'a str>) -> Val {
    Val::Set(items.into_iter().map(str::to_owned).collect())
}

fn json_of<T: serde::Serialize>(value: &T) -> Option<Val> {
    Some(Val::Str(
        serde_json::to_string(value).expect("domain types serialise to JSON"),
    ))
}

fn time_of(t: Option<crate::time::Timestamp>) -> Option<Val> {
    t.map(|t| Val::Str(t.to_string()))
}

impl Image {
    /// The attribute as the item holds it (`None`: absent, or not an attribute of this item). Every
    /// attribute is listed, so one added to [`Attr`] does not compile until it is read here.
    pub fn get(&self, attr: Attr) -> Option<Val> {
        use Attr::*;
        use Image as I;
        let int = |v: i64| Some(Val::Int(v));
        let flag = |v: bool| Some(Val::Bool(v));
        let text = |v: &str| Some(Val::Str(v.to_owned()));
        match (attr, self) {
            (ApiKey, I::ApiKey(k)) => text(k.id.as_str()),
            (Company, I::ApiKey(k)) => text(k.company.as_str()),
            (Company, I::Audit(r)) => text(r.company.as_str()),
            (SharedKey, I::ApiKey(k)) => text(&k.shared_key),
            (Products, I::ApiKey(k)) => Some(set_of(k.products.iter().map(ProductCode::as_str))),
            (ReadOnly, I::ApiKey(k)) => flag(k.read_only),
            (Revoked, I::ApiKey(k)) => flag(k.revoked),
            (Source, I::ApiKey(k)) => k.source.and_then(|s| text(s.as_str())),
            (Doc, I::Product(p)) => json_of(p),
            (Doc, I::Company(c)) => json_of(c),
            (Doc, I::User(u)) => json_of(u),
            (Doc, I::Customer(c)) => json_of(c),
            (Disabled, I::Product(p)) => flag(p.disabled),
            (Archived, I::Product(p)) => flag(p.archived),
            (Blacklist, I::Product(p)) => Some(blacklist(&p.blacklist)),
            (Blacklist, I::Company(c)) => Some(blacklist(&c.blacklist)),
            (LicenseId, I::License(l)) => int(l.id),
            (LicenseKey, I::License(l)) => l.key.as_ref().and_then(|k| text(k.as_str())),
            (Source, I::License(l)) => l.source.and_then(|s| text(s.as_str())),
            (Enabled, I::License(l)) => flag(l.enabled),
            (Unlimited, I::License(l)) => flag(l.allow_unlimited_activations),
            (Unlimited, I::Seat(s)) => flag(s.allow_unlimited_activations),
            (MaxActivations, I::License(l)) => int(l.max_activations),
            (MaxActivations, I::Seat(s)) => int(s.max_activations),
            (TimesActivated, I::License(l)) => int(l.times_activated),
            (MaxTransfers, I::License(l)) => int(l.max_transfers),
            (TransferCount, I::License(l)) => int(l.transfer_count),
            (ReleasedCount, I::License(l)) => int(l.released_count),
            (ValidityPeriod, I::License(l)) => time_of(l.validity_period),
            (Terms, I::License(l)) => json_of(&l.terms),
            (Consumptions, I::License(l)) => int(l.consumptions),
            (FeatureConsumptions, I::License(l)) => Some(Val::Counts(l.feature_consumptions.clone())),
            (ConsumptionsPeriod, I::License(l)) => l.consumptions_period.map(|t| Val::Int(t.millis())),
            (FeaturePeriods, I::License(l)) => Some(Val::Counts(
                l.feature_periods.iter().map(|(k, t)| (k.clone(), t.millis())).collect(),
            )),
            (Floating, I::License(l)) => Some(Val::Counts(l.floating.clone())),
            (FloatingVersion, I::License(l)) => int(l.floating_version),
            (FloatingBorrowed, I::License(l)) => Some(Val::Counts(l.floating_borrowed.clone())),
            (DeviceId, I::Device(d)) => int(d.id),
            (HardwareId, I::Device(d)) => text(d.hardware_id.as_str()),
            (Active, I::Device(d)) => flag(d.active),
            (User, I::Device(d)) => d.user.as_ref().and_then(|u| text(u.as_str())),
            (User, I::Seat(s)) => text(s.user.as_str()),
            (FirstActivatedAt, I::Device(d)) => time_of(Some(d.first_activated_at)),
            (LastActivatedAt, I::Device(d)) => time_of(Some(d.last_activated_at)),
            (DeactivatedAt, I::Device(d)) => time_of(d.deactivated_at),
            (LastSeenAt, I::Device(d)) => time_of(d.last_seen_at),
            (Details, I::Device(d)) => json_of(&d.details),
            (Variables, I::Device(d)) => json_of(&d.variables),
            (Activations, I::Device(d)) => int(d.activations),
            (WriteToken, I::Device(d)) => d.write_token.as_deref().and_then(text),
            (TotalActivations, I::Seat(s)) => int(s.total_activations),
            (RequestKey, I::Request(r)) => text(r.key.as_str()),
            (Answer, I::Request(r)) => text(&r.answer),
            (ProcessedAt, I::Request(r)) => time_of(Some(r.processed_at)),
            (ExpiresAt, I::Request(r)) => int(r.expires_at),
            (AuditId, I::Audit(r)) => text(&r.id),
            (At, I::Audit(r)) => time_of(Some(r.at)),
            (Actor, I::Audit(r)) => text(&r.actor),
            (Change, I::Audit(r)) => text(&r.action),
            (Subject, I::Audit(r)) => text(&r.subject),
            (Detail, I::Audit(r)) => json_of(&r.detail),
            (ExpiresAt, I::Audit(r)) => int(r.expires_at),
            (ClientId, I::OAuthClient(c)) => text(c.id.as_str()),
            (Company, I::OAuthClient(c)) => text(c.company.as_str()),
            (SecretHash, I::OAuthClient(c)) => text(&c.secret_hash),
            (SealedSecret, I::OAuthClient(c)) => text(c.sealed_secret.as_str()),
            (Products, I::OAuthClient(c)) => Some(set_of(c.products.iter().map(ProductCode::as_str))),
            (ReadOnly, I::OAuthClient(c)) => flag(c.read_only),
            (Revoked, I::OAuthClient(c)) => flag(c.revoked),
            (Source, I::OAuthClient(c)) => c.source.and_then(|s| text(s.as_str())),
            (Company, I::CustomerAccount(a)) => text(a.company.as_str()),
            (AccountCode, I::CustomerAccount(a)) => text(a.code.as_str()),
            (Issuer, I::CustomerAccount(a)) => text(&a.issuer),
            (ClientId, I::CustomerAccount(a)) => text(&a.client_id),
            (SealedSecret, I::CustomerAccount(a)) => text(a.sealed_secret.as_str()),
            (RedirectUris, I::CustomerAccount(a)) => json_of(&a.redirect_uris),
            (EmailClaim, I::CustomerAccount(a)) => text(&a.email_claim),
            (LicenseId, I::Trial(t)) => int(t.license_id),
            (LicenseKey, I::Trial(t)) => t.license_key.as_ref().and_then(|k| text(k.as_str())),
            (User, I::Trial(t)) => t.user.as_ref().and_then(|u| text(u.as_str())),
            (At, I::Trial(t)) => time_of(Some(t.created_at)),
            (KeyId, I::ManagementKey(k)) => text(k.id.as_str()),
            (Company, I::ManagementKey(k)) => text(k.company.as_str()),
            (Name, I::ManagementKey(k)) => text(&k.name),
            (SecretHash, I::ManagementKey(k)) => text(&k.secret_hash),
            (ReadOnly, I::ManagementKey(k)) => flag(k.read_only),
            (Revoked, I::ManagementKey(k)) => flag(k.revoked),
            (CreatedAt, I::ManagementKey(k)) => time_of(Some(k.created_at)),
            (Company, I::Idempotency(r)) => text(r.company.as_str()),
            (IdempotencyKey, I::Idempotency(r)) => text(&r.key),
            (RequestDigest, I::Idempotency(r)) => text(&r.request_digest),
            (Status, I::Idempotency(r)) => int(r.status),
            (Answer, I::Idempotency(r)) => text(&r.answer),
            (ExpiresAt, I::Idempotency(r)) => int(r.expires_at),
            // Each attribute above is named; what remains is an attribute of another kind of item.
            (
                ApiKey | Company | SharedKey | Products | ReadOnly | Revoked | Doc | Disabled | Archived | Blacklist
                | LicenseId | LicenseKey | Enabled | Unlimited | MaxActivations | TimesActivated | MaxTransfers
                | TransferCount | ReleasedCount | ValidityPeriod | Terms | Consumptions | FeatureConsumptions
                | ConsumptionsPeriod | FeaturePeriods | Floating | FloatingVersion | FloatingBorrowed | DeviceId
                | HardwareId | Active | User | FirstActivatedAt | LastActivatedAt | DeactivatedAt | LastSeenAt
                | Details | Variables | Activations | WriteToken | TotalActivations | RequestKey | Answer | ProcessedAt
                | ExpiresAt | AuditId | At | Actor | Change | Subject | Detail | ClientId | SecretHash | SealedSecret
                | AccountCode | Issuer | RedirectUris | EmailClaim | KeyId | Name | CreatedAt | IdempotencyKey
                | RequestDigest | Status | Source,
                _,
            ) => None,
        }
    }

    /// A consumption counter of a license (0 when never written); `None` for other items.
    pub fn count(&self, counter: &Counter) -> Option<i64> {
        let Self::License(l) = self else { return None };
        Some(match counter {
            Counter::Consumptions => l.consumptions,
            Counter::Feature(code) => l.feature_consumptions.get(code).copied().unwrap_or(0),
        })
    }

    /// A counter that was written (the license's own one always reads as written); `None` otherwise.
    fn stored_count(&self, counter: &Counter) -> Option<i64> {
        let Self::License(l) = self else { return None };
        match counter {
            Counter::Consumptions => Some(l.consumptions),
            Counter::Feature(code) => l.feature_consumptions.get(code).copied(),
        }
    }

    /// The start of the period a counter counts (Unix ms), if recorded; `None` for other items.
    pub fn period(&self, counter: &Counter) -> Option<i64> {
        let Self::License(l) = self else { return None };
        match counter {
            Counter::Consumptions => l.consumptions_period,
            Counter::Feature(code) => l.feature_periods.get(code).copied(),
        }
        .map(crate::time::Timestamp::millis)
    }

    /// Changes a counter (`set`: replaces it, else adds to it) or, with `period`, its period start.
    fn change_count(&mut self, counter: &Counter, value: i64, how: CountChange) -> Result<(), String> {
        let Self::License(l) = self else {
            return Err("consumption counters belong to licenses".into());
        };
        if how == CountChange::Period {
            let start = crate::time::Timestamp::from_millis(value);
            match counter {
                Counter::Consumptions => l.consumptions_period = Some(start),
                Counter::Feature(code) => {
                    l.feature_periods.insert(code.clone(), start);
                }
            }
            return Ok(());
        }
        let slot = match counter {
            Counter::Consumptions => &mut l.consumptions,
            Counter::Feature(code) => l.feature_consumptions.entry(code.clone()).or_insert(0),
        };
        // The conditions keep every total within ±(2^53 − 1); an overflow here is a bug in a plan.
        *slot = match how {
            CountChange::Add => slot.checked_add(value).ok_or("consumption counter overflow")?,
            _ => value,
        };
        Ok(())
    }

    /// Changes an attribute that writes change (effects, and what an upsert keeps). Every attribute
    /// is listed, so one added to [`Attr`] does not compile until it is decided here.
    fn set(&mut self, attr: Attr, value: Val) -> Result<(), String> {
        use Attr::*;
        use Image as I;
        let bad = || format!("cannot set {} to {:?}", attr.name(), attr.shown(&value));
        let time = |v: &Val| match v {
            Val::Str(s) => crate::time::Timestamp::parse_iso(s).ok_or_else(bad),
            _ => Err(bad()),
        };
        let millis = crate::time::Timestamp::from_millis;
        match (attr, self, &value) {
            (TimesActivated, I::License(l), Val::Int(v)) => l.times_activated = *v,
            (TransferCount, I::License(l), Val::Int(v)) => l.transfer_count = *v,
            (ReleasedCount, I::License(l), Val::Int(v)) => l.released_count = *v,
            (ValidityPeriod, I::License(l), v) => l.validity_period = Some(time(v)?),
            (Consumptions, I::License(l), Val::Int(v)) => l.consumptions = *v,
            (FeatureConsumptions, I::License(l), Val::Counts(v)) => l.feature_consumptions = v.clone(),
            (ConsumptionsPeriod, I::License(l), Val::Int(v)) => l.consumptions_period = Some(millis(*v)),
            (FeaturePeriods, I::License(l), Val::Counts(v)) => {
                l.feature_periods = v.iter().map(|(k, t)| (k.clone(), millis(*t))).collect()
            }
            (Floating, I::License(l), Val::Counts(v)) => l.floating = v.clone(),
            (FloatingVersion, I::License(l), Val::Int(v)) => l.floating_version = *v,
            (FloatingBorrowed, I::License(l), Val::Counts(v)) => l.floating_borrowed = v.clone(),
            (Active, I::Device(d), Val::Bool(v)) => d.active = *v,
            (WriteToken, I::Device(d), Val::Str(v)) => d.write_token = Some(v.clone()),
            (DeactivatedAt, I::Device(d), v) => d.deactivated_at = Some(time(v)?),
            (LastSeenAt, I::Device(d), v) => d.last_seen_at = Some(time(v)?),
            (Variables, I::Device(d), Val::Str(v)) => d.variables = serde_json::from_str(v).map_err(|_| bad())?,
            (TotalActivations, I::Seat(s), Val::Int(v)) => s.total_activations = *v,
            // A License API credential's grants and revocation, each changed alone (Management API), so
            // a revocation and an update never undo one another.
            (Revoked, I::ApiKey(k), Val::Bool(v)) => k.revoked = *v,
            (Revoked, I::OAuthClient(c), Val::Bool(v)) => c.revoked = *v,
            (ReadOnly, I::ApiKey(k), Val::Bool(v)) => k.read_only = *v,
            (ReadOnly, I::OAuthClient(c), Val::Bool(v)) => c.read_only = *v,
            (Products, I::ApiKey(k), Val::Set(v)) => k.products = product_codes(v).ok_or_else(bad)?,
            (Products, I::OAuthClient(c), Val::Set(v)) => c.products = product_codes(v).ok_or_else(bad)?,
            (
                TimesActivated | TransferCount | ReleasedCount | ValidityPeriod | Consumptions | FeatureConsumptions
                | ConsumptionsPeriod | FeaturePeriods | Floating | FloatingVersion | FloatingBorrowed | Active
                | WriteToken | DeactivatedAt | LastSeenAt | Variables | TotalActivations | Revoked | ReadOnly
                | Products,
                _,
                _,
            ) => return Err(bad()),
            // Set by the catalog or when the item is first written, never by an effect.
            (
                ApiKey | Company | SharedKey | Doc | Disabled | Archived | Blacklist | LicenseId | LicenseKey | Enabled
                | Unlimited | MaxActivations | MaxTransfers | Terms | DeviceId | HardwareId | User | FirstActivatedAt
                | LastActivatedAt | Details | Activations | RequestKey | Answer | ProcessedAt | ExpiresAt | AuditId
                | At | Actor | Change | Subject | Detail | ClientId | SecretHash | SealedSecret | AccountCode | Issuer
                | RedirectUris | EmailClaim | KeyId | Name | CreatedAt | IdempotencyKey | RequestDigest | Status
                | Source,
                _,
                _,
            ) => return Err(format!("{} is not changed by a write", attr.name())),
        }
        Ok(())
    }

    /// `self`, an item to upsert, with what the stored item `old` keeps ([`Attr::on_upsert`]).
    pub fn upserted_over(mut self, old: Option<&Image>) -> Result<Image, String> {
        let Some(old) = old else { return Ok(self) };
        for &attr in Attr::ALL {
            let keep = match attr.on_upsert() {
                OnUpsert::Replace => false,
                OnUpsert::KeepStored => true,
                OnUpsert::KeepUnlessGiven => self.get(attr).is_none(),
            };
            if let Some(stored) = keep.then(|| old.get(attr)).flatten() {
                self.set(attr, stored)?;
            }
        }
        Ok(self)
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum CountChange {
    Add,
    Set,
    Period,
}

fn compare(a: Option<Val>, b: Option<Val>) -> Option<std::cmp::Ordering> {
    match (a?, b?) {
        (Val::Int(x), Val::Int(y)) => Some(x.cmp(&y)),
        (Val::Str(x), Val::Str(y)) => Some(x.cmp(&y)),
        _ => None,
    }
}

/// Evaluates one condition against an item (`None`: the item does not exist).
pub fn holds(cond: &Cond, image: Option<&Image>) -> bool {
    use std::cmp::Ordering::*;
    let get = |a: Attr| image.and_then(|i| i.get(a));
    match cond {
        Cond::Exists => image.is_some(),
        Cond::Missing => image.is_none(),
        Cond::Absent(a) => get(*a).is_none(),
        Cond::Eq(a, v) => get(*a).as_ref() == Some(v),
        Cond::Lt(a, b) => compare(get(*a), get(*b)) == Some(Less),
        Cond::Gt(a, n) => compare(get(*a), Some(Val::Int(*n))) == Some(Greater),
        Cond::Contains(a, v) => matches!(get(*a), Some(Val::Set(s)) if s.contains(v)),
        Cond::AtMost(c, bound) => image.and_then(|i| i.count(c)).is_some_and(|v| v <= *bound),
        Cond::AtLeast(c, bound) => image.and_then(|i| i.count(c)).is_some_and(|v| v >= *bound),
        Cond::StoredAtMost(c, bound) => image.and_then(|i| i.stored_count(c)).is_some_and(|v| v <= *bound),
        Cond::StoredAtLeast(c, bound) => image.and_then(|i| i.stored_count(c)).is_some_and(|v| v >= *bound),
        Cond::NoCounter(c) => image.is_some_and(|i| i.stored_count(c).is_none()),
        Cond::PeriodIs(c, start) => image.is_some_and(|i| i.period(c) == *start),
        Cond::Not(c) => !holds(c, image),
        Cond::Or(cs) => cs.iter().any(|c| holds(c, image)),
    }
}

/// Why [`apply`] did not write.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// The conditions of `write.items[index]` do not hold.
    Condition { index: usize },
    /// An effect does not fit the item (a bug in a plan, not a client's doing).
    Invalid(String),
}

/// Applies `write` to the items as read (`images[i]` is `write.items[i]`, `None` when missing): checks
/// every condition first, then applies every action, like one DynamoDB transaction.
pub fn apply(write: &Write, images: &mut [Option<Image>]) -> Result<(), Refused> {
    if images.len() != write.items.len() {
        return Err(Refused::Invalid("one image per item is required".into()));
    }
    for (index, (item, image)) in write.items.iter().zip(images.iter()).enumerate() {
        if !item.conditions.iter().all(|c| holds(c, image.as_ref())) {
            return Err(Refused::Condition { index });
        }
    }
    apply_actions(write.items.iter().zip(images.iter_mut()))
}

/// Applies the actions of `items` to their images without looking at their conditions: the state a
/// write leaves, derived from the images it was decided on once a store has committed it (the store
/// checked the conditions).
pub fn apply_actions<'a>(
    items: impl IntoIterator<Item = (&'a ItemWrite, &'a mut Option<Image>)>,
) -> Result<(), Refused> {
    for (item, image) in items {
        match &item.action {
            Action::Check => {}
            Action::Put(new) => *image = Some(new.clone()),
            Action::Upsert(new) => {
                *image = Some(new.clone().upserted_over(image.as_ref()).map_err(Refused::Invalid)?);
            }
            Action::Delete => *image = None,
            Action::Update(effects) => {
                let Some(target) = image.as_mut() else {
                    return Err(Refused::Invalid("update of a missing item".into()));
                };
                for effect in effects {
                    apply_effect(target, effect).map_err(Refused::Invalid)?;
                }
            }
        }
    }
    Ok(())
}

fn product_codes(values: &[String]) -> Option<Vec<ProductCode>> {
    values.iter().map(|v| ProductCode::parse(v).ok()).collect()
}

fn apply_effect(target: &mut Image, effect: &Effect) -> Result<(), String> {
    match effect {
        Effect::Set(a, v) => target.set(*a, v.clone()),
        Effect::Add(a, n) => {
            let current = match target.get(*a) {
                None => 0,
                Some(Val::Int(v)) => v,
                Some(other) => return Err(format!("cannot add to {} {:?}", a.name(), a.shown(&other))),
            };
            target.set(*a, Val::Int(current + n))
        }
        Effect::Count(c, n) => target.change_count(c, *n, CountChange::Add),
        Effect::SetCount(c, n) => target.change_count(c, *n, CountChange::Set),
        Effect::SetPeriod(c, t) => target.change_count(c, *t, CountChange::Period),
        Effect::SetDetail(k, v) => match target {
            Image::Device(d) => {
                d.details.insert(k.clone(), v.clone());
                Ok(())
            }
            _ => Err("details belong to devices".into()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Timestamp;

    fn addr() -> LicenseAddr {
        LicenseAddr::Id {
            company: CompanyId::parse("c").unwrap(),
            product: ProductCode::parse("p").unwrap(),
            id: 1,
        }
    }

    fn catalog_license(validity: Option<Timestamp>) -> License {
        License {
            max_activations: 9,
            validity_period: validity,
            ..License::new(
                1,
                CompanyId::parse("c").unwrap(),
                ProductCode::parse("p").unwrap(),
                None,
            )
        }
    }

    /// The catalog's rule, once for every store: an upsert replaces what the vendor sets and keeps what
    /// requests changed; a validity the catalog leaves unset stays as a trial's first activation set it.
    #[test]
    fn an_upsert_keeps_counters_and_a_started_validity() {
        let used = License {
            max_activations: 2,
            times_activated: 2,
            transfer_count: 1,
            released_count: 1,
            consumptions: 5,
            feature_consumptions: [("f".to_owned(), 3)].into(),
            consumptions_period: Some(Timestamp::from_millis(7)),
            feature_periods: [("f".to_owned(), Timestamp::from_millis(8))].into(),
            validity_period: Some(Timestamp::from_millis(9)),
            ..catalog_license(None)
        };
        let item = Item::License(addr());
        let mut images = [Some(Image::License(Box::new(used.clone())))];
        apply(
            &Write::upsert(item.clone(), Image::License(Box::new(catalog_license(None)))),
            &mut images,
        )
        .unwrap();
        let Some(Image::License(after)) = &images[0] else {
            panic!("a license")
        };
        let expected = License {
            max_activations: 9,
            ..used.clone()
        };
        assert_eq!(Image::License(after.clone()), Image::License(Box::new(expected)));

        let given = Some(Timestamp::from_millis(99));
        let mut images = [Some(Image::License(Box::new(used)))];
        apply(
            &Write::upsert(item.clone(), Image::License(Box::new(catalog_license(given)))),
            &mut images,
        )
        .unwrap();
        let Some(Image::License(after)) = &images[0] else {
            panic!("a license")
        };
        assert_eq!(
            after.validity_period, given,
            "a validity the catalog sets replaces the stored one"
        );

        let mut images = [None];
        let new = Image::License(Box::new(catalog_license(None)));
        apply(&Write::upsert(item, new.clone()), &mut images).unwrap();
        assert_eq!(images[0], Some(new), "a new item is written as given");
    }

    /// A tracking's write lands only on the device as it was read: any write of the device since
    /// (another tracking, a re-activation) changed its token, and the tracking re-decides.
    #[test]
    fn a_tracking_writes_only_over_the_device_it_read() {
        let at = Timestamp::parse_iso("2026-06-01T00:00:00Z").unwrap();
        let hw = HardwareId::parse("hw").unwrap();
        let device = Device {
            id: 5,
            hardware_id: hw.clone(),
            active: true,
            user: None,
            first_activated_at: at,
            last_activated_at: at,
            deactivated_at: None,
            last_seen_at: None,
            details: Default::default(),
            variables: vec![],
            activations: 1,
            write_token: Some("read".into()),
        };
        let variable = crate::model::DeviceVariable {
            variable: "a".into(),
            value: "1".into(),
            created_at: at,
        };
        let plan = VariablesPlan {
            addr: addr(),
            hardware_id: hw,
            device_activations: 1,
            last_write: Some("read".into()),
            variables: vec![variable.clone()],
        };
        let token = WriteToken::new();
        let write = plan.write(&token);
        let changed = Device {
            write_token: Some("another".into()),
            ..device.clone()
        };
        let mut images = [Some(Image::Device(Box::new(changed)))];
        assert_eq!(apply(&write, &mut images), Err(Refused::Condition { index: 0 }));
        let mut images = [Some(Image::Device(Box::new(device)))];
        apply(&write, &mut images).unwrap();
        let Some(Image::Device(after)) = &images[0] else {
            panic!("a device")
        };
        assert_eq!(after.variables, [variable]);
        assert_eq!(after.write_token.as_deref(), Some(token.as_str()));
    }

    /// A trial is created once per product and hardware id: its write holds only while the device has
    /// no trial marker, and a refusal names the marker, so the loser answers the trial that won.
    #[test]
    fn a_trial_is_created_only_where_the_device_has_none() {
        let license = License {
            terms: crate::model::LicenseTerms {
                is_trial: true,
                ..Default::default()
            },
            ..catalog_license(None)
        };
        let plan = TrialPlan {
            hardware_id: HardwareId::parse("hw").unwrap(),
            marker: TrialRecord {
                license_id: license.id,
                license_key: None,
                user: None,
                created_at: Timestamp::from_millis(1),
            },
            license,
            seat: None,
            user: None,
            stored_user: None,
            customer: None,
            stored_customer: None,
        };
        let write = plan.write();
        let mut images = [None, None];
        apply(&write, &mut images).unwrap();
        assert!(matches!(&images[0], Some(Image::Trial(t)) if **t == plan.marker));
        let mut again = [Some(Image::Trial(Box::new(plan.marker.clone()))), None];
        assert_eq!(apply(&write, &mut again), Err(Refused::Condition { index: 0 }));
    }

    #[test]
    fn create_refuses_an_existing_item_and_delete_removes_it() {
        let item = Item::Released(addr(), HardwareId::parse("hw").unwrap());
        let mut images = [Some(Image::Marker)];
        assert_eq!(
            apply(&Write::create(item.clone(), Image::Marker), &mut images),
            Err(Refused::Condition { index: 0 })
        );
        apply(&Write::delete(item), &mut images).unwrap();
        assert_eq!(images[0], None);
    }

    /// Every attribute an effect may change is settable on the item that holds it, and every other
    /// attribute is refused with its name rather than ignored.
    #[test]
    fn set_names_what_no_write_changes() {
        let mut seat = Image::Seat(Seat {
            user: Username::parse("u@example.com").unwrap(),
            max_activations: 1,
            allow_unlimited_activations: false,
            total_activations: 0,
        });
        seat.set(Attr::TotalActivations, Val::Int(3)).unwrap();
        assert_eq!(seat.get(Attr::TotalActivations), Some(Val::Int(3)));
        assert_eq!(
            seat.set(Attr::MaxActivations, Val::Int(3)),
            Err("max_activations is not changed by a write".to_owned())
        );
        assert!(
            seat.set(Attr::TimesActivated, Val::Int(3)).is_err(),
            "not an attribute of a seat"
        );
    }
}
