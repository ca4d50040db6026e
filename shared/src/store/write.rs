//! One description of every conditional write. Each store operation (activation, deactivation, check)
//! is turned here, once, into a [`Write`]: the items it touches, the conditions each must meet and the
//! effects applied when all hold. DynamoDB renders a `Write` into one `TransactWriteItems`
//! (`dynamo::expr`; a check that records one device: one conditional `UpdateItem`); the SQLite store
//! (and the model tests) evaluate the very same conditions against the rows read inside their
//! transaction with [`apply`]. A rule added here is enforced by both stores.
//!
//! Semantics follow DynamoDB's: a comparison with a missing attribute is false, `Add` to a missing
//! number starts from 0, and every `Update` is conditioned on the item existing.

use super::{ActivationPlan, CheckPlan, DeactivationPlan, LicenseAddr, RequestKey, Slot, WriteToken};
use crate::ids::{CompanyId, HardwareId, ProductCode, Username};
use crate::model::{Company, Device, License, ProcessedRequest, ProductDoc, Seat};
use serde_json::Value;

/// An item a write touches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Item {
    Product(CompanyId, ProductCode),
    Company(CompanyId),
    License(LicenseAddr),
    Device(LicenseAddr, HardwareId),
    Seat(LicenseAddr, Username),
    /// The marker of a released slot: the device that freed it (SPEC §3 transfers).
    Released(LicenseAddr, HardwareId),
    /// The record of an applied offline request (SPEC §6).
    Request(LicenseAddr, RequestKey),
}

/// Attributes that conditions compare or effects change. `name` is the attribute's name in every store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Attr {
    LicenseId,
    Enabled,
    Unlimited,
    MaxActivations,
    TimesActivated,
    MaxTransfers,
    TransferCount,
    ReleasedCount,
    ValidityPeriod,
    Active,
    Activations,
    WriteToken,
    DeactivatedAt,
    LastSeenAt,
    TotalActivations,
    Disabled,
    Archived,
    Blacklist,
    ExpiresAt,
}

/// A consumption counter of a license. Feature counters are named by the feature's code, so a license
/// holds exactly the counters its features have used, with no item per feature.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Counter {
    Consumptions,
    Feature(String),
}

impl Counter {
    /// The attribute (DynamoDB) that holds the counter on the license item.
    pub fn name(&self) -> String {
        match self {
            Self::Consumptions => "consumptions".to_owned(),
            Self::Feature(code) => format!("{FEATURE_COUNTER_PREFIX}{code}"),
        }
    }

    /// The attribute that holds the start of the period a periodic counter counts (Unix milliseconds).
    pub fn period_name(&self) -> String {
        match self {
            Self::Consumptions => LICENSE_PERIOD.to_owned(),
            Self::Feature(code) => format!("{FEATURE_PERIOD_PREFIX}{code}"),
        }
    }
}

/// Prefix of the license attributes that count a feature's consumptions.
pub const FEATURE_COUNTER_PREFIX: &str = "consumptions#";
/// The attribute with the start of the period the license's own counter counts.
pub const LICENSE_PERIOD: &str = "consumptions_period";
/// Prefix of the attributes with the start of the period a feature's counter counts.
pub const FEATURE_PERIOD_PREFIX: &str = "consumptions_period#";

impl Attr {
    pub fn name(self) -> &'static str {
        match self {
            Self::LicenseId => "license_id",
            Self::Enabled => "enabled",
            Self::Unlimited => "unlimited",
            Self::MaxActivations => "max_activations",
            Self::TimesActivated => "times_activated",
            Self::MaxTransfers => "max_transfers",
            Self::TransferCount => "transfer_count",
            Self::ReleasedCount => "released_count",
            Self::ValidityPeriod => "validity_period",
            Self::Active => "active",
            Self::Activations => "activations",
            Self::WriteToken => "write_token",
            Self::DeactivatedAt => "deactivated_at",
            Self::LastSeenAt => "last_seen_at",
            Self::TotalActivations => "total_activations",
            Self::Disabled => "disabled",
            Self::Archived => "archived",
            Self::Blacklist => "blacklist",
            Self::ExpiresAt => "expires_at",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Val {
    Bool(bool),
    Int(i64),
    Str(String),
    /// A set of strings (blacklists); only `Contains` looks into it.
    Set(Vec<String>),
}

/// A condition on one item.
#[derive(Clone, Debug, PartialEq)]
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

#[derive(Clone, Debug, PartialEq)]
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

#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Only the conditions: the item is read, not written.
    Check,
    Update(Vec<Effect>),
    /// Writes the whole device record.
    PutDevice(Box<Device>),
    /// Writes a released-slot marker.
    PutMarker,
    /// Writes the record of an applied offline request.
    PutRequest(Box<ProcessedRequest>),
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
            Action::PutRequest(r) => Some(r.answer.clone()),
            _ => None,
        }
    }
}

/// All items of one atomic write: all conditions hold and every action happens, or nothing does.
#[derive(Clone, Debug, PartialEq)]
pub struct Write {
    pub items: Vec<ItemWrite>,
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
            action: Action::PutDevice(Box::new(Device {
                write_token: Some(token.as_str().to_owned()),
                ..self.device.clone()
            })),
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
                action: Action::PutMarker,
            });
        }
        Write { items }
    }
}

/// One consumption charge's conditions and effects on the license. One condition of one operator per
/// feature counter keeps the license's condition within DynamoDB's limits (4 KB, 300 operators) for
/// the 100 features a file may report.
fn charge_write(charge: &super::Charge, cond: &mut Vec<Cond>, effects: &mut Vec<Effect>) {
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
        action: Action::PutRequest(Box::new(request.clone())),
    }
}

/// Most bytes an offline request's recorded answer may take: DynamoDB's 400 KB item limit less 4 KiB
/// for the record's keys (at most 3 KB) and its other attributes.
pub const MAX_RECORDED_ANSWER_BYTES: usize = 396 * 1024;

/// [`request_record`] for an answer that must fit one item: an offline bundle's answer repeats every
/// member's license (up to 24) with the device's variables. Devices' variables are bounded so that
/// this holds for the largest bundle; a catalog whose licenses are still too large for it gets a
/// 4xx that says so rather than a write the store refuses.
pub fn bounded_request_record(
    addr: &LicenseAddr,
    request: &ProcessedRequest,
    now: crate::time::Timestamp,
) -> Result<ItemWrite, crate::error::ApiError> {
    let size = request.answer.len();
    if size > MAX_RECORDED_ANSWER_BYTES {
        return Err(crate::error::ApiError::Validation(format!(
            "the answer to this request would take {size} bytes, more than the {MAX_RECORDED_ANSWER_BYTES} an offline request's record holds: activate the bundle's members with separate files, or with fewer device variables"
        )));
    }
    Ok(request_record(addr, request, now))
}

impl CheckPlan {
    /// The device's update: on the activation the check was decided on, still active, and — when only
    /// the interval made it due — still last seen when it was read, so concurrent checks write once.
    pub fn write(&self) -> ItemWrite {
        let mut conditions = vec![Cond::is(Attr::Active, true), version_is(self.device_activations)];
        if let super::CheckDue::Interval { seen } = &self.due {
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

/// The write of checks recorded together (a bundle's members): every device or none.
pub fn checks_write(plans: &[CheckPlan]) -> Write {
    Write {
        items: plans.iter().map(CheckPlan::write).collect(),
    }
}

/// An item as a store holds it, for evaluating conditions and applying effects in code.
#[derive(Clone, Debug)]
pub enum Image {
    Product(Box<ProductDoc>),
    Company(Box<Company>),
    License(Box<License>),
    Device(Box<Device>),
    Seat(Seat),
    Marker,
    Request(Box<ProcessedRequest>),
}

fn blacklist(set: &std::collections::BTreeSet<HardwareId>) -> Val {
    Val::Set(set.iter().map(|h| h.as_str().to_owned()).collect())
}

impl Image {
    pub fn get(&self, attr: Attr) -> Option<Val> {
        use Attr::*;
        let int = |v: i64| Some(Val::Int(v));
        let flag = |v: bool| Some(Val::Bool(v));
        match (self, attr) {
            (Self::Product(p), Disabled) => flag(p.disabled),
            (Self::Product(p), Archived) => flag(p.archived),
            (Self::Product(p), Blacklist) => Some(blacklist(&p.blacklist)),
            (Self::Company(c), Blacklist) => Some(blacklist(&c.blacklist)),
            (Self::License(l), LicenseId) => int(l.id),
            (Self::License(l), Enabled) => flag(l.enabled),
            (Self::License(l), Unlimited) => flag(l.allow_unlimited_activations),
            (Self::License(l), MaxActivations) => int(l.max_activations),
            (Self::License(l), TimesActivated) => int(l.times_activated),
            (Self::License(l), MaxTransfers) => int(l.max_transfers),
            (Self::License(l), TransferCount) => int(l.transfer_count),
            (Self::License(l), ReleasedCount) => int(l.released_count),
            (Self::License(l), ValidityPeriod) => l.validity_period.map(|t| Val::Str(t.to_string())),
            (Self::Device(d), Active) => flag(d.active),
            (Self::Device(d), Activations) => int(d.activations),
            (Self::Device(d), WriteToken) => d.write_token.clone().map(Val::Str),
            (Self::Device(d), DeactivatedAt) => d.deactivated_at.map(|t| Val::Str(t.to_string())),
            (Self::Device(d), LastSeenAt) => d.last_seen_at.map(|t| Val::Str(t.to_string())),
            (Self::Seat(s), MaxActivations) => int(s.max_activations),
            (Self::Seat(s), Unlimited) => flag(s.allow_unlimited_activations),
            (Self::Seat(s), TotalActivations) => int(s.total_activations),
            (Self::Request(r), ExpiresAt) => int(r.expires_at),
            _ => None,
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

    fn set(&mut self, attr: Attr, value: Val) -> Result<(), String> {
        use Attr::*;
        let bad = || format!("cannot set {} to {value:?}", attr.name());
        let time = |v: &Val| match v {
            Val::Str(s) => crate::time::Timestamp::parse_iso(s).ok_or_else(bad),
            _ => Err(bad()),
        };
        match (self, attr, &value) {
            (Self::License(l), TimesActivated, Val::Int(v)) => l.times_activated = *v,
            (Self::License(l), TransferCount, Val::Int(v)) => l.transfer_count = *v,
            (Self::License(l), ReleasedCount, Val::Int(v)) => l.released_count = *v,
            (Self::License(l), ValidityPeriod, v) => l.validity_period = Some(time(v)?),
            (Self::Device(d), Active, Val::Bool(v)) => d.active = *v,
            (Self::Device(d), WriteToken, Val::Str(v)) => d.write_token = Some(v.clone()),
            (Self::Device(d), DeactivatedAt, v) => d.deactivated_at = Some(time(v)?),
            (Self::Device(d), LastSeenAt, v) => d.last_seen_at = Some(time(v)?),
            (Self::Seat(s), TotalActivations, Val::Int(v)) => s.total_activations = *v,
            _ => return Err(bad()),
        }
        Ok(())
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
            Action::PutDevice(device) => *image = Some(Image::Device(device.clone())),
            Action::PutMarker => *image = Some(Image::Marker),
            Action::PutRequest(request) => *image = Some(Image::Request(request.clone())),
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

fn apply_effect(target: &mut Image, effect: &Effect) -> Result<(), String> {
    match effect {
        Effect::Set(a, v) => target.set(*a, v.clone()),
        Effect::Add(a, n) => {
            let current = match target.get(*a) {
                None => 0,
                Some(Val::Int(v)) => v,
                Some(other) => return Err(format!("cannot add to {other:?}")),
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
