//! The storage contract. Each operation is named for what it does to the license, and each write states
//! its invariants so an implementation can enforce them atomically (DynamoDB: as conditions inside one
//! `TransactWriteItems`). Reads are bounded: no operation reads a number of items that grows with the
//! number of devices on a license, except the explicitly administrative `list_devices`.

pub mod dynamo;
#[cfg(feature = "sqlite")]
pub mod sqlite;

use crate::error::BoxError;
use crate::ids::{ApiKeyId, CompanyId, HardwareId, LicenseKey, ProductCode, Username};
use crate::model::{ApiKeyRecord, Company, Device, License, LicenseUser, ProductDoc, Seat};
use crate::time::Timestamp;
use async_trait::async_trait;
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

/// What the first read of a request fetches, all in one round trip.
#[derive(Clone, Debug)]
pub struct ContextQuery<'a> {
    pub company: &'a CompanyId,
    pub product: &'a ProductCode,
    /// A key-based license and, when given, its device.
    pub key: Option<&'a LicenseKey>,
    pub hardware_id: Option<&'a HardwareId>,
    /// A license user's record.
    pub user: Option<&'a Username>,
}

#[derive(Clone, Debug, Default)]
pub struct ContextRead {
    pub product: Option<ProductDoc>,
    pub company: Option<Company>,
    pub license: Option<License>,
    pub device: Option<Device>,
    pub user: Option<LicenseUser>,
}

/// One license with the caller's seat and device, read together.
#[derive(Clone, Debug, Default)]
pub struct LicenseRead {
    pub license: Option<License>,
    pub seat: Option<Seat>,
    pub device: Option<Device>,
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

/// An activation the rules have approved against a snapshot. The store must apply it only if the
/// snapshot's invariants still hold at write time.
#[derive(Clone, Debug)]
pub struct ActivationPlan {
    pub addr: LicenseAddr,
    /// The device record to write, already marked active.
    pub device: Device,
    pub slot: Slot,
    /// Enforce `times_activated < max_activations`.
    pub enforce_max_activations: bool,
    /// Set `validity_period` (a trial's first activation); requires it to be unset.
    pub set_validity: Option<Timestamp>,
    /// The license user's seat to charge, and whether its own limit applies.
    pub seat: Option<(Username, bool)>,
}

impl ActivationPlan {
    /// The license-side condition of the activation write, over the license as currently stored.
    /// DynamoDB states the same thing as a condition expression (see `dynamo`); stores that check in
    /// code call this inside their transaction.
    pub fn license_condition_holds(&self, l: &License) -> bool {
        let limit_ok = !self.enforce_max_activations || l.times_activated < l.max_activations;
        let slot_ok = match &self.slot {
            Slot::Fresh => l.released.is_empty(),
            Slot::Reuse => l.released.contains(&self.device.hardware_id),
            Slot::Transfer { released_by } => {
                l.released.contains(released_by)
                    && (l.max_transfers == 0 || (l.max_transfers > 0 && l.transfer_count < l.max_transfers))
            }
            Slot::Untracked => true,
        };
        let validity_ok = self.set_validity.is_none() || l.validity_period.is_none();
        l.enabled && limit_ok && slot_ok && validity_ok
    }

    /// The seat-side condition of the activation write.
    pub fn seat_condition_holds(&self, seat: &Seat) -> bool {
        match &self.seat {
            Some((_, true)) => seat.total_activations < seat.max_activations,
            _ => true,
        }
    }
}

#[derive(Clone, Debug)]
pub struct DeactivationPlan {
    pub addr: LicenseAddr,
    pub hardware_id: HardwareId,
    /// Remember the freed slot for transfer counting.
    pub release_slot: bool,
    /// The seat that the device's activation charged.
    pub seat: Option<Username>,
    pub at: Timestamp,
}

/// Why a conditional write did not happen.
#[derive(Debug, thiserror::Error)]
pub enum Rejection {
    #[error("the device is already active")]
    DeviceActive,
    #[error("the device is not active")]
    DeviceNotActive,
    /// The license no longer matches the snapshot; the store returns its current image when it can.
    #[error("the license changed")]
    LicenseChanged(Option<Box<License>>),
    #[error("the seat changed")]
    SeatChanged(Option<Seat>),
    /// Another write held the items; retrying the same plan may succeed.
    #[error("transient write conflict")]
    Conflict,
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{operation} failed")]
    Backend {
        operation: &'static str,
        #[source]
        source: BoxError,
    },
    #[error("stored item {key} is malformed: {reason}")]
    Corrupt { key: String, reason: String },
    #[error("invalid catalog entry: {0}")]
    Invalid(String),
}

#[async_trait]
pub trait Store: Send + Sync {
    async fn api_key(&self, id: &ApiKeyId) -> Result<Option<ApiKeyRecord>, StoreError>;

    /// Product, company and either a key-based license with its device or a license user: one read.
    async fn read_context(&self, q: &ContextQuery<'_>) -> Result<ContextRead, StoreError>;

    /// A license with a user's seat and a device: one read.
    async fn read_license(
        &self,
        addr: &LicenseAddr,
        seat: Option<&Username>,
        hardware_id: &HardwareId,
    ) -> Result<LicenseRead, StoreError>;

    async fn activate_device(&self, plan: &ActivationPlan) -> Result<(), Rejection>;

    async fn deactivate_device(&self, plan: &DeactivationPlan) -> Result<(), Rejection>;

    /// Records a check on an *active* device (last-seen time, hardware details) and returns the device;
    /// `None` when no active device has that hardware id.
    async fn record_check(
        &self,
        addr: &LicenseAddr,
        hardware_id: &HardwareId,
        details: &Map<String, Value>,
        at: Timestamp,
    ) -> Result<Option<Device>, StoreError>;

    // --- catalog administration: idempotent upserts; counters of existing items are preserved ---
    async fn put_api_key(&self, key: &ApiKeyRecord) -> Result<(), StoreError>;
    async fn put_company(&self, company: &CompanyId, doc: &Company) -> Result<(), StoreError>;
    async fn put_product(&self, company: &CompanyId, product: &ProductDoc) -> Result<(), StoreError>;
    async fn put_license(&self, license: &License) -> Result<(), StoreError>;
    async fn put_user(&self, company: &CompanyId, user: &LicenseUser) -> Result<(), StoreError>;
    async fn put_seat(&self, addr: &LicenseAddr, seat: &Seat) -> Result<(), StoreError>;

    // --- inspection (operators and tests) ---
    async fn get_license(&self, addr: &LicenseAddr) -> Result<Option<License>, StoreError>;
    async fn get_seat(&self, addr: &LicenseAddr, user: &Username) -> Result<Option<Seat>, StoreError>;
    async fn get_user(&self, company: &CompanyId, user: &Username) -> Result<Option<LicenseUser>, StoreError>;
    /// Every device of a license, active or not. Administrative: its cost grows with the devices.
    async fn list_devices(&self, addr: &LicenseAddr) -> Result<Vec<Device>, StoreError>;
}
