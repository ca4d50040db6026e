//! The storage contract. Each operation is named for what it does to the license, and each write states
//! its invariants so an implementation can enforce them atomically (DynamoDB: as conditions inside one
//! `TransactWriteItems`). Reads are bounded: no operation reads a number of items that grows with the
//! number of devices on a license, except the explicitly administrative `list_devices`.

#[cfg(feature = "dynamodb")]
pub mod dynamo;
pub mod listing;
#[cfg(feature = "sqlite")]
pub mod sqlite;
pub mod write;

use crate::audit::{AuditFilter, AuditPage};
use crate::ids::{
    ApiKeyId, CompanyId, CustomerAccountCode, HardwareId, LicenseKey, ManagementKeyId, OAuthClientId, ProductCode,
    RequestKey, Username,
};
use crate::model::{
    ApiKeyRecord, Company, CustomerAccountRecord, CustomerLicenses, Device, IdempotencyRecord, License, LicenseUser,
    ManagementKeyRecord, OAuthClientRecord, ProcessedRequest, ProductDoc, Seat,
};
use crate::plan::{ActivationPlan, DeactivationPlan, LicenseAddr, WriteToken};
use crate::time::Timestamp;
use crate::BoxError;
use async_trait::async_trait;

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
    /// Whether the device's own released slot is waiting (key-based license with a hardware id).
    pub released: bool,
    pub user: Option<LicenseUser>,
}

/// One license with the caller's seat and device, read together.
#[derive(Clone, Debug, Default)]
pub struct LicenseRead {
    pub license: Option<License>,
    pub seat: Option<Seat>,
    pub device: Option<Device>,
    /// Whether the device's own released slot is waiting.
    pub released: bool,
}

/// Why a conditional write did not happen, with the current image of the item that refused it when the
/// store has it, so the caller re-decides against the state that won.
#[derive(Debug, thiserror::Error)]
pub enum Rejection {
    #[error("the device changed")]
    Device(Option<Box<Device>>),
    #[error("the license changed")]
    License(Option<Box<License>>),
    #[error("the seat changed")]
    Seat(Option<Seat>),
    /// The device's trial of the product exists already (`trial_key`): the one that won.
    #[error("the trial was already created")]
    Trial(Option<Box<crate::model::TrialRecord>>),
    /// The offline request was already applied: this is the answer it got.
    #[error("the request was already applied")]
    Done(Box<ProcessedRequest>),
    /// Something else the plan relied on changed (a released slot, the product, the company).
    #[error("the state the write relied on changed")]
    Stale,
    /// The write certainly did not happen (a transaction conflict, throttling): a new attempt may succeed.
    #[error("transient write conflict")]
    Conflict,
    /// The outcome is unknown (timeout, lost response): retry the same write with the same token.
    #[error("write outcome unknown")]
    Unknown(#[source] BoxError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Rejection {
    /// The rejection for item `index` of `write`, given its current image.
    pub fn for_item(write: &write::Write, index: usize, current: Option<write::Image>) -> Self {
        use write::{Image, Item};
        match (&write.items[index].item, current) {
            (Item::Device(..), Some(Image::Device(d))) => Self::Device(Some(d)),
            (Item::Device(..), _) => Self::Device(None),
            (Item::License(..), Some(Image::License(l))) => Self::License(Some(l)),
            (Item::License(..), _) => Self::License(None),
            (Item::Seat(..), Some(Image::Seat(s))) => Self::Seat(Some(s)),
            (Item::Seat(..), _) => Self::Seat(None),
            (Item::Request(..), Some(Image::Request(done))) => Self::Done(done),
            (Item::Trial(..), Some(Image::Trial(trial))) => Self::Trial(Some(trial)),
            (Item::Trial(..), _) => Self::Trial(None),
            (
                Item::ApiKey(..)
                | Item::Product(..)
                | Item::Company(..)
                | Item::User(..)
                | Item::Released(..)
                | Item::Request(..)
                | Item::Audit(..)
                | Item::OAuthClient(..)
                | Item::CustomerAccount(..)
                | Item::Customer(..)
                | Item::ManagementKey(..)
                | Item::Idempotency(..),
                _,
            ) => Self::Stale,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// An AWS SDK error: its own `Display` says only "service error", so it goes through
    /// `DisplayErrorContext`, which prints the whole chain with the service's code and message.
    #[cfg(feature = "dynamodb")]
    #[error("{operation} failed: {}", aws_sdk_dynamodb::error::DisplayErrorContext(&**source))]
    Aws {
        operation: &'static str,
        #[source]
        source: BoxError,
    },
    /// Any other backend error (SQLite): its chain, plainly.
    #[error("{operation} failed: {}", ErrorChain(&**source))]
    Backend {
        operation: &'static str,
        #[source]
        source: BoxError,
    },
    /// A file or directory of the embedded store could not be used: names it.
    #[error("cannot {operation} {}: {}", path.display(), ErrorChain(&**source))]
    File {
        operation: &'static str,
        path: std::path::PathBuf,
        #[source]
        source: BoxError,
    },
    /// The embedded database is not where it was looked for, and this command may not create it.
    #[error("database {} does not exist: check the data directory (--data, $LICENSE_SERVER_DATA) for a typo, or create the database with `license-server import CATALOG --create`", path.display())]
    DatabaseMissing { path: std::path::PathBuf },
    /// The embedded database was changed by a newer build, whose changes this one cannot know.
    #[error("database {} has schema version {found}, newer than this license-server knows ({known}): upgrade license-server", path.display())]
    SchemaTooNew {
        path: std::path::PathBuf,
        found: i64,
        known: usize,
    },
    #[error("stored item {key} is malformed: {reason}")]
    Corrupt { key: String, reason: String },
    #[error("invalid catalog entry: {0}")]
    Invalid(String),
    #[error("DynamoDB table {table} does not exist: create it (license-server: add --create-table; AWS: deploy the stack) or check TABLE_NAME and the region")]
    TableMissing { table: String },
    /// The store did not answer in time (throttled, unreachable): the request may be retried.
    #[error("store unavailable: {0}")]
    Unavailable(String),
}

/// An error and its causes, plainly: `cause: inner cause`. A cause whose text the message already
/// contains (`cannot read X: {source}` with `source` marked as the source too) is printed once.
pub struct ErrorChain<'a>(pub &'a dyn std::error::Error);

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut text = self.0.to_string();
        let mut next = self.0.source();
        while let Some(cause) = next {
            let line = cause.to_string();
            if !text.contains(&line) {
                text.push_str(": ");
                text.push_str(&line);
            }
            next = cause.source();
        }
        f.write_str(&text)
    }
}

/// Attempts of a write that carries no request's decision ([`Store::write`]) while transactions on
/// its item keep conflicting, before the store answers "unavailable".
const ADMIN_WRITE_ATTEMPTS: u32 = 8;

#[async_trait]
pub trait Store: Send + Sync {
    async fn api_key(&self, id: &ApiKeyId) -> Result<Option<ApiKeyRecord>, StoreError> {
        match self.load(&write::Item::ApiKey(id.clone())).await? {
            Some(write::Image::ApiKey(k)) => Ok(Some(*k)),
            other => unexpected(other),
        }
    }

    async fn oauth_client(&self, id: &OAuthClientId) -> Result<Option<OAuthClientRecord>, StoreError> {
        match self.load(&write::Item::OAuthClient(id.clone())).await? {
            Some(write::Image::OAuthClient(c)) => Ok(Some(*c)),
            other => unexpected(other),
        }
    }

    async fn customer_account(
        &self,
        company: &CompanyId,
        code: &CustomerAccountCode,
    ) -> Result<Option<CustomerAccountRecord>, StoreError> {
        match self
            .load(&write::Item::CustomerAccount(company.clone(), code.clone()))
            .await?
        {
            Some(write::Image::CustomerAccount(a)) => Ok(Some(*a)),
            other => unexpected(other),
        }
    }

    /// One item as stored now (`None`: there is none).
    async fn load(&self, item: &write::Item) -> Result<Option<write::Image>, StoreError>;

    /// Product, company and either a key-based license with its device or a license user: one read.
    async fn read_context(&self, q: &ContextQuery<'_>) -> Result<ContextRead, StoreError>;

    /// A license with a user's seat and a device: one read.
    async fn read_license(
        &self,
        addr: &LicenseAddr,
        seat: Option<&Username>,
        hardware_id: &HardwareId,
    ) -> Result<LicenseRead, StoreError>;

    /// One released slot of the license waiting to be taken (the smallest hardware id), if any: the
    /// slot a transfer consumes. Only activations of a new device on a license with released slots ask.
    async fn released_slot(&self, addr: &LicenseAddr) -> Result<Option<HardwareId>, StoreError>;

    /// The record of an offline request applied to the license, unless it expired.
    async fn processed_request(
        &self,
        addr: &LicenseAddr,
        key: &RequestKey,
        now: Timestamp,
    ) -> Result<Option<ProcessedRequest>, StoreError>;

    /// Applies one planned write atomically (see [`write::Write`]); `token` is the same on every retry
    /// of the same plan after an [`Rejection::Unknown`] outcome.
    async fn apply(&self, write: &write::Write, token: &WriteToken) -> Result<(), Rejection>;

    async fn activate_device(&self, plan: &ActivationPlan, token: &WriteToken) -> Result<(), Rejection> {
        self.apply(&plan.write(token), token).await
    }

    async fn deactivate_device(&self, plan: &DeactivationPlan, token: &WriteToken) -> Result<(), Rejection> {
        self.apply(&plan.write(token), token).await
    }

    /// Applies a write of one item's update that records `token` on its item and is conditioned on the
    /// token read (a device's variables), so a retry recognises its own lost answer without the
    /// store's help: a store may apply it without a transaction.
    async fn apply_alone(&self, write: &write::Write, token: &WriteToken) -> Result<(), Rejection> {
        self.apply(write, token).await
    }

    /// Records checks on their devices: one device, or a bundle's members all together or none.
    /// Refused ([`Rejection::Device`], changing nothing) when a device is no longer the active
    /// activation the check was decided on, or another check recorded it first.
    /// `write` is [`write::checks_write`] of the plans, with a floating cloud slot's update
    /// ([`crate::plan::FloatingPlan::write`]) when the check holds one.
    async fn record_checks(&self, write: &write::Write, token: &WriteToken) -> Result<(), Rejection> {
        self.apply(write, token).await
    }

    /// Applies a write that carries no request's decision (catalog import, administration), retrying
    /// while concurrent transactions conflict; a refused condition is an error naming the item.
    async fn write(&self, write: &write::Write) -> Result<(), StoreError> {
        let token = WriteToken::new();
        for attempt in 0..ADMIN_WRITE_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(10u64 << attempt)).await;
            }
            match self.apply(write, &token).await {
                Ok(()) => return Ok(()),
                // The same token again: DynamoDB applies the write at most once.
                Err(Rejection::Conflict | Rejection::Unknown(_)) => continue,
                Err(Rejection::Store(e)) => return Err(e),
                Err(refused) => {
                    let items: Vec<_> = write.items.iter().map(|w| &w.item).collect();
                    return Err(StoreError::Invalid(format!(
                        "the write of {items:?} was refused: {refused} since it was read; run it again"
                    )));
                }
            }
        }
        Err(StoreError::Unavailable(format!(
            "a write kept conflicting with concurrent requests {ADMIN_WRITE_ATTEMPTS} times: try again"
        )))
    }

    /// Applies administrative writes in order (a catalog import's plan), each as [`Self::write`] does;
    /// a store that can (SQLite) applies them all in one transaction, so an import is all or nothing.
    async fn write_all(&self, writes: Vec<write::Write>) -> Result<(), StoreError> {
        for w in &writes {
            self.write(w).await?;
        }
        Ok(())
    }

    // --- catalog administration: each one `Write` (see `write::Write::upsert`); counters of existing
    // items are preserved ---
    async fn put_api_key(&self, key: &ApiKeyRecord) -> Result<(), StoreError> {
        self.write(&write::Write::put(
            write::Item::ApiKey(key.id.clone()),
            write::Image::ApiKey(Box::new(key.clone())),
        ))
        .await
    }
    async fn put_oauth_client(&self, client: &OAuthClientRecord) -> Result<(), StoreError> {
        self.write(&write::Write::put(
            write::Item::OAuthClient(client.id.clone()),
            write::Image::OAuthClient(Box::new(client.clone())),
        ))
        .await
    }
    async fn put_customer_account(&self, account: &CustomerAccountRecord) -> Result<(), StoreError> {
        self.write(&write::Write::put(
            write::Item::CustomerAccount(account.company.clone(), account.code.clone()),
            write::Image::CustomerAccount(Box::new(account.clone())),
        ))
        .await
    }
    async fn put_company(&self, company: &CompanyId, doc: &Company) -> Result<(), StoreError> {
        self.write(&write::Write::put(
            write::Item::Company(company.clone()),
            write::Image::Company(Box::new(doc.clone())),
        ))
        .await
    }
    async fn put_product(&self, company: &CompanyId, product: &ProductDoc) -> Result<(), StoreError> {
        let item = write::Item::Product(company.clone(), product.code.clone());
        self.write(&write::Write::put(
            item,
            write::Image::Product(Box::new(product.clone())),
        ))
        .await
    }
    async fn put_license(&self, license: &License) -> Result<(), StoreError> {
        let item = write::Item::License(LicenseAddr::of(license));
        self.write(&write::Write::upsert(
            item,
            write::Image::License(Box::new(license.clone())),
        ))
        .await
    }
    async fn put_user(&self, company: &CompanyId, user: &LicenseUser) -> Result<(), StoreError> {
        let item = write::Item::User(company.clone(), user.email.clone());
        self.write(&write::Write::put(item, write::Image::User(Box::new(user.clone()))))
            .await
    }
    async fn put_customer(&self, company: &CompanyId, customer: &CustomerLicenses) -> Result<(), StoreError> {
        let item = write::Item::Customer(company.clone(), customer.email.clone());
        self.write(&write::Write::put(
            item,
            write::Image::Customer(Box::new(customer.clone())),
        ))
        .await
    }
    async fn put_seat(&self, addr: &LicenseAddr, seat: &Seat) -> Result<(), StoreError> {
        let item = write::Item::Seat(addr.clone(), seat.user.clone());
        self.write(&write::Write::upsert(item, write::Image::Seat(seat.clone())))
            .await
    }

    // --- inspection (operators and tests) ---
    async fn get_license(&self, addr: &LicenseAddr) -> Result<Option<License>, StoreError> {
        match self.load(&write::Item::License(addr.clone())).await? {
            Some(write::Image::License(l)) => Ok(Some(*l)),
            other => unexpected(other),
        }
    }
    async fn get_seat(&self, addr: &LicenseAddr, user: &Username) -> Result<Option<Seat>, StoreError> {
        match self.load(&write::Item::Seat(addr.clone(), user.clone())).await? {
            Some(write::Image::Seat(s)) => Ok(Some(s)),
            other => unexpected(other),
        }
    }
    async fn get_user(&self, company: &CompanyId, user: &Username) -> Result<Option<LicenseUser>, StoreError> {
        match self.load(&write::Item::User(company.clone(), user.clone())).await? {
            Some(write::Image::User(u)) => Ok(Some(*u)),
            other => unexpected(other),
        }
    }
    /// Every device of a license, active or not. Administrative: its cost grows with the devices.
    async fn list_devices(&self, addr: &LicenseAddr) -> Result<Vec<Device>, StoreError>;

    /// Administrative: every license user's seat on the license, by email (`license-server show`).
    async fn list_seats(&self, addr: &LicenseAddr) -> Result<Vec<Seat>, StoreError>;

    /// Administrative (the Management API, `license-server search`): one page of the licenses `query`
    /// selects, in storage-key order, after `cursor` (the previous page's), at most `limit` (taken as 1
    /// to [`listing::MAX_PAGE`]). Each license is read consistently; which licenses a search finds is
    /// read from an index that DynamoDB updates eventually (docs/data-model.md, *Listing and search*).
    async fn find_licenses(
        &self,
        query: &listing::LicenseQuery,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<listing::LicensePage, StoreError> {
        self.licenses_page(query, cursor, limit.clamp(1, listing::MAX_PAGE))
            .await
    }

    /// [`Store::find_licenses`] with `limit` already within its bounds: what each store implements.
    async fn licenses_page(
        &self,
        query: &listing::LicenseQuery,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<listing::LicensePage, StoreError>;

    /// Administrative (the Management API's lists, `license-server user list`): one page of the
    /// company's items of `kind`, ordered by name, after `cursor` (the previous page's), at most `limit`,
    /// clamped here to 1..=[`listing::MAX_PAGE`]. Each item is read consistently; which items a page
    /// holds is read, on DynamoDB, from an index updated eventually (docs/data-model.md).
    async fn list_items(
        &self,
        kind: listing::ItemKind,
        company: &CompanyId,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<listing::ItemPage, StoreError> {
        let after = kind.start_after(company, cursor)?;
        self.item_page(kind, company, after.as_deref(), limit.clamp(1, listing::MAX_PAGE))
            .await
    }

    /// [`Self::list_items`] once its cursor is checked (`after`: the name the page starts after) and
    /// its limit clamped; a page that holds `limit` items has a cursor.
    async fn item_page(
        &self,
        _kind: listing::ItemKind,
        _company: &CompanyId,
        _after: Option<&str>,
        _limit: usize,
    ) -> Result<listing::ItemPage, StoreError> {
        Err(StoreError::Invalid("this store does not list items".into()))
    }

    /// Administrative: every item kept beside the license (devices, seats, released-slot markers,
    /// offline request records), so deleting a license can delete them too. Grows with its devices.
    async fn items_beside(&self, addr: &LicenseAddr) -> Result<Vec<write::Item>, StoreError>;

    /// One page of the company's audit trail, newest first (docs/audit.md): the records `filter`
    /// passes that have not expired at `now`, after `cursor` (the previous page's), at most `limit`
    /// (up to [`crate::audit::MAX_PAGE`]). A page examines at most [`crate::audit::MAX_EXAMINED`]
    /// records, so it may hold fewer than `limit` and still have a cursor.
    async fn audit_records(
        &self,
        company: &CompanyId,
        filter: &AuditFilter,
        cursor: Option<&str>,
        limit: usize,
        now: Timestamp,
    ) -> Result<AuditPage, StoreError>;

    /// One page of the company's management keys, by id, after `after` (the previous page's last id),
    /// at most `limit`.
    async fn management_keys(
        &self,
        _company: &CompanyId,
        _after: Option<&ManagementKeyId>,
        _limit: usize,
    ) -> Result<Vec<ManagementKeyRecord>, StoreError> {
        Err(StoreError::Invalid("this store does not list management keys".into()))
    }

    async fn management_key(
        &self,
        company: &CompanyId,
        id: &ManagementKeyId,
    ) -> Result<Option<ManagementKeyRecord>, StoreError> {
        match self
            .load(&write::Item::ManagementKey(company.clone(), id.clone()))
            .await?
        {
            Some(write::Image::ManagementKey(k)) => Ok(Some(*k)),
            other => unexpected(other),
        }
    }

    /// The answer recorded for an `Idempotency-Key`, unless it expired at `now`.
    async fn idempotency_record(
        &self,
        company: &CompanyId,
        key: &str,
        now: Timestamp,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        match self
            .load(&write::Item::Idempotency(company.clone(), key.to_owned()))
            .await?
        {
            Some(write::Image::Idempotency(r)) => Ok(Some(*r).filter(|r| r.expires_at > now.unix_seconds())),
            other => unexpected(other),
        }
    }

    /// Deletes the audit records expired at `now` and says how many; DynamoDB's TTL deletes them by
    /// itself (within days; queries skip them meanwhile).
    async fn purge_audit(&self, _now: Timestamp) -> Result<usize, StoreError> {
        Ok(0)
    }
}

/// `None` for a missing item; a store that loads another kind of image than the item's is a bug.
fn unexpected<T>(image: Option<write::Image>) -> Result<Option<T>, StoreError> {
    match image {
        None => Ok(None),
        Some(other) => Err(StoreError::Invalid(format!(
            "the store loaded {other:?} for another kind of item"
        ))),
    }
}
