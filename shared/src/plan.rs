//! What the rules decide, before any store is involved: where a license lives, and the activations,
//! deactivations and checks they approved against a snapshot. The store's write model
//! (`store::write`) turns each plan into the conditional write that applies it only if everything the
//! decision relied on still holds.

use crate::ids::{CompanyId, HardwareId, LicenseKey, ProductCode, Username};
use crate::model::{CustomerLicenses, Device, License, LicenseUser, ProcessedRequest, Seat, TrialRecord};
use crate::time::Timestamp;
use serde_json::{Map, Value};

/// Where a license lives. Key-based licenses are addressed by their key (so one read finds them from a
/// request); user-based licenses by their id (found through the user's record).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum LicenseAddr {
    Key {
        company: CompanyId,
        product: ProductCode,
        key: LicenseKey,
    },
    Id {
        company: CompanyId,
        product: ProductCode,
        id: i64,
    },
}

impl LicenseAddr {
    /// The license's key in any store: `LICENSE#<company>#<product>#KEY#<key>` or `...#ID#<id>`.
    pub fn storage_key(&self) -> String {
        match self {
            Self::Key { company, product, key } => format!("LICENSE#{company}#{product}#KEY#{key}"),
            Self::Id { company, product, id } => format!("LICENSE#{company}#{product}#ID#{id}"),
        }
    }

    /// The address a [`Self::storage_key`] was made of (`None`: it is not one).
    pub fn from_storage_key(key: &str) -> Option<Self> {
        let mut parts = key.strip_prefix("LICENSE#")?.splitn(3, '#');
        let company = CompanyId::parse(parts.next()?).ok()?;
        let product = ProductCode::parse(parts.next()?).ok()?;
        let rest = parts.next()?;
        if let Some(key) = rest.strip_prefix("KEY#") {
            let key = crate::ids::LicenseKey::parse(key).ok()?;
            return Some(Self::Key { company, product, key });
        }
        let id = rest.strip_prefix("ID#")?.parse().ok()?;
        Some(Self::Id { company, product, id })
    }

    pub fn company_product(&self) -> (&CompanyId, &ProductCode) {
        match self {
            Self::Key { company, product, .. } | Self::Id { company, product, .. } => (company, product),
        }
    }

    pub fn of(license: &License) -> Self {
        match &license.key {
            Some(key) => Self::Key {
                company: license.company.clone(),
                product: license.product.clone(),
                key: key.clone(),
            },
            None => Self::Id {
                company: license.company.clone(),
                product: license.product.clone(),
                id: license.id,
            },
        }
    }
}

/// Which slot an activation takes (SPEC §3, transfers).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Slot {
    /// A never-used slot; requires that no released slot is waiting.
    Fresh,
    /// The slot this same device released earlier.
    Reuse,
    /// A slot released by another device: counts one transfer.
    Transfer { released_by: HardwareId },
    /// The license does not track slots (unlimited activations).
    Untracked,
}

/// Identifies one planned write across its retries. A retry of the *same* write after an ambiguous
/// failure (timeout, lost response) reuses it, so DynamoDB applies the write at most once
/// (`ClientRequestToken`), and the device records it, so a retry can see that the write already happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriteToken(String);

impl WriteToken {
    pub fn new() -> Self {
        Self(format!("{:032x}", rand::random::<u128>()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for WriteToken {
    fn default() -> Self {
        Self::new()
    }
}

/// A change to a consumption counter of the license, and the bounds the rules checked it against: the
/// counter *before* the change must be at most `at_most` and at least `at_least` (`None`: no bound on
/// that side), which keeps the total within the limits and within ±(2^53 − 1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Charge {
    pub counter: Counter,
    pub amount: i64,
    pub at_most: Option<i64>,
    pub at_least: Option<i64>,
    /// Whether the counter was stored when read (`None`: unknown, the license's own counter reads 0
    /// either way). A known state lets the write's condition be one operator (DynamoDB allows 300).
    pub stored: Option<bool>,
    /// A periodic counter whose stored period is older than the current one (or absent): the write
    /// records this period start, on condition that no other write did first.
    pub period_start: Option<Timestamp>,
    /// The period start read with the counter (with `period_start`: the one the write replaces).
    pub period_read: Option<Timestamp>,
    /// The counter's value at the start of a new period (total zero: minus the catalog's starting
    /// total): the write sets the counter to it plus `amount` instead of adding.
    pub restart: Option<i64>,
}

/// An activation the rules have approved against a snapshot. The store applies it only if everything
/// the decision relied on still holds at write time (see [`write`]).
#[derive(Clone, Debug)]
pub struct ActivationPlan {
    pub addr: LicenseAddr,
    /// The id of the license the rules decided on: the write holds only if `addr` still holds it.
    pub license_id: i64,
    /// The device record to write, already marked active, with the next version.
    pub device: Device,
    /// The version of the stored device this activation replaces; `None` when there is none.
    pub replaces: Option<i64>,
    pub slot: Slot,
    /// Enforce `times_activated < max_activations`; otherwise the license must still be unlimited.
    pub enforce_max_activations: bool,
    /// Set `validity_period` (a trial's first activation); requires it to be unset.
    pub set_validity: Option<Timestamp>,
    /// The license user's seat to charge, and whether its own limit applies (else it must be unlimited).
    pub seat: Option<(Username, bool)>,
    /// An offline request this activation applies, recorded in the same write so it happens once.
    pub once: Option<ProcessedRequest>,
}

#[derive(Clone, Debug)]
pub struct DeactivationPlan {
    pub addr: LicenseAddr,
    /// The id of the license the rules decided on: the write holds only if `addr` still holds it.
    pub license_id: i64,
    pub hardware_id: HardwareId,
    /// The device version (activation count) the plan was made against.
    pub device_activations: i64,
    /// Remember the freed slot for transfer counting (the license is limited).
    pub release_slot: bool,
    /// The seat that the device's activation charged.
    pub seat: Option<Username>,
    pub at: Timestamp,
    /// Consumptions the request reports (offline deactivation), added in the same write.
    pub charges: Vec<Charge>,
    /// An offline request this deactivation applies, recorded in the same write so it happens once.
    pub once: Option<ProcessedRequest>,
}

/// Consumptions an online request adds (`add_consumption`, `add_feature_consumption`, SPEC §9), approved
/// against a snapshot: the charges go into the license's write, which holds only while the license is
/// the one decided on, still enabled, and the request's device still the active activation read.
#[derive(Clone, Debug)]
pub struct ConsumptionPlan {
    pub addr: LicenseAddr,
    /// The id of the license the rules decided on: the write holds only if `addr` still holds it.
    pub license_id: i64,
    /// The request's device as read (active): the write holds only while it is unchanged.
    pub device: Device,
    /// The counter changes, each with the bounds the rules checked (none: an amount of 0).
    pub charges: Vec<Charge>,
}

/// A trial the rules approved (`rules::plan_trial`): everything its creation writes at once.
#[derive(Clone, Debug)]
pub struct TrialPlan {
    /// The device the trial is for: one trial per product and hardware id.
    pub hardware_id: HardwareId,
    pub marker: TrialRecord,
    pub license: License,
    /// A user-based trial's seat for its user.
    pub seat: Option<Seat>,
    /// A user-based trial's user, with the license assigned.
    pub user: Option<LicenseUser>,
    /// The user's record as read (`None`: the trial creates the user).
    pub stored_user: Option<LicenseUser>,
    /// The index of the customer the request names, with the trial appended (`None`: no customer
    /// email, or the index is full), and the index as read (`None`: the trial creates it).
    pub customer: Option<CustomerLicenses>,
    pub stored_customer: Option<CustomerLicenses>,
}

/// A tracking of device variables the rules accepted (`rules::plan_tracking`): the device's variables
/// as they are to be stored, the request's merged into those read.
#[derive(Clone, Debug)]
pub struct VariablesPlan {
    pub addr: LicenseAddr,
    pub hardware_id: HardwareId,
    /// The device version (activation count) it was decided on.
    pub device_activations: i64,
    /// The token of the device's last write as read (`None`: never written with one): every write
    /// that changes the variables replaces it, so a write conditioned on it merged into exactly the
    /// variables stored, and a retry recognises its own earlier commit.
    pub last_write: Option<String>,
    pub variables: Vec<crate::model::DeviceVariable>,
}

/// A check the rules accepted, to record on its device: the last-seen time and the hardware details
/// sent. Only the device is written — never the license, product or company, whose gates the rules
/// decided from the request's consistent read — so checks of different licenses never touch a common
/// item. Made only when the device's record is due (`rules::plan_check`).
#[derive(Clone, Debug)]
pub struct CheckPlan {
    pub addr: LicenseAddr,
    pub hardware_id: HardwareId,
    /// The device version (activation count) the check was decided on: the write holds only while the
    /// device is still that activation, active.
    pub device_activations: i64,
    pub due: CheckDue,
    pub details: Map<String, Value>,
    pub at: Timestamp,
}

/// Why a check is recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CheckDue {
    /// The details sent differ from the stored ones: recorded whatever other checks recorded meanwhile.
    Details,
    /// The interval has passed since `last_seen_at` (as read; `None`: never recorded). Recorded only if
    /// no other check recorded one since, so of concurrent checks of one device exactly one writes.
    Interval { seen: Option<Timestamp> },
}

/// A change to a floating cloud license's slots (`rules::floating`): the holders after it, written on
/// condition that the slots are still the version the rules read, so the count of live holders never
/// exceeds `floating_users` however many requests race.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FloatingPlan {
    pub addr: LicenseAddr,
    /// The id of the license the rules decided on: the write holds only if `addr` still holds it.
    pub license_id: i64,
    /// `floating_version` as read.
    pub version: i64,
    /// The live holders after the change: hardware id → held until (Unix ms).
    pub holders: std::collections::BTreeMap<String, i64>,
    /// The live borrows after the change: hardware id → borrowed until (Unix ms).
    pub borrowed: std::collections::BTreeMap<String, i64>,
}

impl FloatingPlan {
    /// `license` as this plan's write leaves it.
    pub fn applied_to(self, license: &mut License) {
        license.floating = self.holders;
        license.floating_borrowed = self.borrowed;
        license.floating_version = self.version + 1;
    }
}

/// A consumption counter of a license. Feature counters are named by the feature's code, so a license
/// holds exactly the counters its features have used, with no item per feature.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Counter {
    Consumptions,
    Feature(String),
}
