//! The embedded store: the same [`Store`] contract over one SQLite file (WAL, `synchronous=FULL`, so an
//! acknowledged write survives a crash of the process; created 0600). Every write runs in a
//! `BEGIN IMMEDIATE` transaction that reads the items of its [`Write`] and evaluates the very conditions
//! DynamoDB is sent ([`write::apply`]) before changing anything, so several server processes on one file
//! are exactly as safe as several Lambdas on one table. All database work runs on the store's own
//! thread, never on the runtime's shared blocking pool (password hashing cannot starve it). Writes that
//! wait for that thread together are committed together (group commit, [`commit_group`]): one
//! transaction and one fsync for all of them.

use super::listing::{ItemKind, ItemPage, LicensePage, LicenseQuery, LicenseSearch};
use super::write::{self, Attr, Image, Item, Refused, Val, Write};
use super::{ContextQuery, ContextRead, LicenseRead, Rejection, Store, StoreError};
use crate::audit::{self, AuditFilter, AuditPage};
use crate::ids::{CompanyId, HardwareId, LicenseKey, ManagementKeyId, ProductCode, RequestKey, Username};
use crate::model::{
    ApiKeyRecord, AuditRecord, CustomerAccountRecord, Device, IdempotencyRecord, License, LicenseSource,
    ManagementKeyRecord, OAuthClientRecord, ProcessedRequest, Seat, TrialRecord,
};
use crate::plan::{LicenseAddr, WriteToken};
use crate::sealed::Sealed;
use crate::time::Timestamp;
use async_trait::async_trait;
use rusqlite::types::Value as Sql;
use rusqlite::{params, Connection, ErrorCode, OptionalExtension, Row, TransactionBehavior};
use rusqlite_migration::{Migrations, M};
use serde::de::DeserializeOwned;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The schema as the first versioned release found it: migration 1. A database created before schema
/// versions existed (`user_version` 0) already has these tables, perhaps with fewer columns; the
/// statements change nothing there and [`adopt_unversioned`] adds what is missing.
const SCHEMA_V1: &str = r#"
CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY, company TEXT NOT NULL, shared_key TEXT NOT NULL, products TEXT NOT NULL,
    read_only INTEGER NOT NULL, revoked INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS companies (id TEXT PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS products (company TEXT NOT NULL, code TEXT NOT NULL, doc TEXT NOT NULL,
    PRIMARY KEY (company, code));
CREATE TABLE IF NOT EXISTS users (company TEXT NOT NULL, email TEXT NOT NULL, doc TEXT NOT NULL,
    PRIMARY KEY (company, email));
CREATE TABLE IF NOT EXISTS licenses (
    pk TEXT PRIMARY KEY, license_id INTEGER NOT NULL, license_key TEXT, enabled INTEGER NOT NULL,
    max_activations INTEGER NOT NULL, unlimited INTEGER NOT NULL, max_transfers INTEGER NOT NULL,
    validity_period TEXT, terms TEXT NOT NULL, times_activated INTEGER NOT NULL DEFAULT 0,
    transfer_count INTEGER NOT NULL DEFAULT 0, released_count INTEGER NOT NULL DEFAULT 0,
    consumptions INTEGER NOT NULL DEFAULT 0, feature_consumptions TEXT NOT NULL DEFAULT '{}',
    consumptions_period INTEGER, feature_periods TEXT NOT NULL DEFAULT '{}');
CREATE TABLE IF NOT EXISTS devices (
    license_pk TEXT NOT NULL, hardware_id TEXT NOT NULL, device_id INTEGER NOT NULL, active INTEGER NOT NULL,
    user TEXT, first_activated_at TEXT NOT NULL, last_activated_at TEXT NOT NULL, deactivated_at TEXT,
    last_seen_at TEXT, details TEXT NOT NULL, variables TEXT NOT NULL,
    activations INTEGER NOT NULL DEFAULT 1, write_token TEXT,
    PRIMARY KEY (license_pk, hardware_id));
CREATE TABLE IF NOT EXISTS released (
    license_pk TEXT NOT NULL, hardware_id TEXT NOT NULL, PRIMARY KEY (license_pk, hardware_id));
CREATE TABLE IF NOT EXISTS requests (
    license_pk TEXT NOT NULL, request_key TEXT NOT NULL, answer TEXT NOT NULL, processed_at TEXT NOT NULL,
    expires_at INTEGER NOT NULL, PRIMARY KEY (license_pk, request_key));
CREATE TABLE IF NOT EXISTS seats (
    license_pk TEXT NOT NULL, user TEXT NOT NULL, max_activations INTEGER NOT NULL, unlimited INTEGER NOT NULL,
    total_activations INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (license_pk, user));
"#;

/// Migration 2: the audit trail (`model::AuditRecord`).
const SCHEMA_V2: &str = r#"
CREATE TABLE IF NOT EXISTS audit (
    company TEXT NOT NULL, audit_id TEXT NOT NULL, at TEXT NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL,
    subject TEXT NOT NULL, detail TEXT NOT NULL, PRIMARY KEY (company, audit_id));
"#;

/// Migration 3: OAuth clients (`model::OAuthClientRecord`, docs/oauth.md).
const SCHEMA_V3_OAUTH: &str = r#"
CREATE TABLE IF NOT EXISTS oauth_clients (
    client_id TEXT PRIMARY KEY, company TEXT NOT NULL, secret_hash TEXT NOT NULL, sealed_secret TEXT NOT NULL,
    products TEXT NOT NULL, read_only INTEGER NOT NULL, revoked INTEGER NOT NULL);
"#;

/// Migration 4: customer accounts' identity providers (`model::CustomerAccountRecord`, docs/sso.md).
const SCHEMA_V4_CUSTOMER_ACCOUNTS: &str = r#"
CREATE TABLE IF NOT EXISTS customer_accounts (
    company TEXT NOT NULL, account_code TEXT NOT NULL, issuer TEXT NOT NULL, client_id TEXT NOT NULL,
    sealed_secret TEXT NOT NULL, redirect_uris TEXT NOT NULL, email_claim TEXT NOT NULL,
    PRIMARY KEY (company, account_code));
"#;

/// Migration 5: floating cloud slots on the license (docs/data-model.md, *Floating cloud*).
const SCHEMA_V5_FLOATING: &str = r#"
ALTER TABLE licenses ADD COLUMN floating TEXT NOT NULL DEFAULT '{}';
ALTER TABLE licenses ADD COLUMN floating_version INTEGER NOT NULL DEFAULT 0;
ALTER TABLE licenses ADD COLUMN floating_borrowed TEXT NOT NULL DEFAULT '{}';
"#;

/// Migration 6: trial markers, one per product and hardware id (`trial_key`, docs/data-model.md).
const SCHEMA_V6_TRIALS: &str = r#"
CREATE TABLE IF NOT EXISTS trials (
    company TEXT NOT NULL, product TEXT NOT NULL, hardware_id TEXT NOT NULL, license_id INTEGER NOT NULL,
    license_key TEXT, user TEXT, at TEXT NOT NULL, PRIMARY KEY (company, product, hardware_id));
"#;

/// Migration 7: each customer's licenses, by the customer's email (`model::CustomerLicenses`,
/// `customer_license_users`): one row per customer, as `users` has one per license user.
const SCHEMA_V7_CUSTOMERS: &str = r#"
CREATE TABLE IF NOT EXISTS customers (company TEXT NOT NULL, email TEXT NOT NULL, doc TEXT NOT NULL,
    PRIMARY KEY (company, email));
"#;

/// Migration 8: when an audit record expires (Unix seconds, `model::AuditRecord::expires_at`), and
/// the index that finds expired ones (`Store::purge_audit`). No release wrote records before it.
const SCHEMA_V8_AUDIT_EXPIRY: &str = r#"
ALTER TABLE audit ADD COLUMN expires_at INTEGER NOT NULL DEFAULT 0;
CREATE INDEX IF NOT EXISTS audit_expiry ON audit (expires_at);
"#;

/// Migration 9: management keys (`model::ManagementKeyRecord`, docs/management.md), by company, and
/// the answers to requests with an `Idempotency-Key` (`model::IdempotencyRecord`).
const SCHEMA_V9_MANAGEMENT_KEYS: &str = r#"
CREATE TABLE IF NOT EXISTS management_keys (
    company TEXT NOT NULL, key_id TEXT NOT NULL, name TEXT NOT NULL, secret_hash TEXT NOT NULL,
    read_only INTEGER NOT NULL, revoked INTEGER NOT NULL, created_at TEXT NOT NULL,
    PRIMARY KEY (company, key_id));
CREATE TABLE IF NOT EXISTS idempotency (
    company TEXT NOT NULL, idempotency_key TEXT NOT NULL, request_digest TEXT NOT NULL, status INTEGER NOT NULL,
    answer TEXT NOT NULL, expires_at INTEGER NOT NULL, PRIMARY KEY (company, idempotency_key));
CREATE INDEX IF NOT EXISTS idempotency_expiry ON idempotency (expires_at);
"#;

/// Migration 10: each license's provenance (`model::LicenseSource`; absent on older rows: unknown, never
/// pruned) and the indexes of the administrative searches (`Store::find_licenses`): by key, by customer
/// email (case-insensitive), by order id, and the licenses holding a device of a hardware id.
const SCHEMA_V10_LISTING: &str = r#"
ALTER TABLE licenses ADD COLUMN source TEXT;
CREATE INDEX IF NOT EXISTS licenses_by_key ON licenses (license_key);
CREATE INDEX IF NOT EXISTS licenses_by_email ON licenses (lower(json_extract(terms, '$.customer.email')));
CREATE INDEX IF NOT EXISTS licenses_by_order ON licenses (json_extract(terms, '$.order_store_id'));
CREATE INDEX IF NOT EXISTS devices_by_hardware_id ON devices (hardware_id);
"#;

/// Migration 11: the listings of a company's API keys and OAuth clients (`Store::list_items`), whose
/// tables are keyed by id alone; products and users are keyed by company already.
const SCHEMA_V11_ITEM_LISTING: &str = r#"
CREATE INDEX IF NOT EXISTS api_keys_by_company ON api_keys (company, id);
CREATE INDEX IF NOT EXISTS oauth_clients_by_company ON oauth_clients (company, client_id);
"#;

/// Migration 12: the provenance of API keys and OAuth clients, as licenses have (absent on older rows:
/// unknown, never pruned).
const SCHEMA_V12_PROVENANCE: &str = r#"
ALTER TABLE api_keys ADD COLUMN source TEXT;
ALTER TABLE oauth_clients ADD COLUMN source TEXT;
"#;

/// Every schema change, in order; the database's `user_version` is how many it has. Kept forever: a
/// change is a new entry, never an edit of one that shipped.
fn migrations() -> Migrations<'static> {
    Migrations::new(vec![
        M::up_with_hook(SCHEMA_V1, adopt_unversioned),
        M::up(SCHEMA_V2),
        M::up(SCHEMA_V3_OAUTH),
        M::up(SCHEMA_V4_CUSTOMER_ACCOUNTS),
        M::up(SCHEMA_V5_FLOATING),
        M::up(SCHEMA_V6_TRIALS),
        M::up(SCHEMA_V7_CUSTOMERS),
        M::up(SCHEMA_V8_AUDIT_EXPIRY),
        M::up(SCHEMA_V9_MANAGEMENT_KEYS),
        M::up(SCHEMA_V10_LISTING),
        M::up(SCHEMA_V11_ITEM_LISTING),
        M::up(SCHEMA_V12_PROVENANCE),
    ])
}

/// The schema version this build knows (the number of migrations).
pub const SCHEMA_VERSION: usize = 12;

/// Work for the store's thread: anything, or a write it may commit together with the writes queued
/// beside it.
enum Job {
    Run(Box<dyn FnOnce(&mut Connection) + Send>),
    Write(Write, WriteReply),
}

/// A write's outcome: applied or refused, or the store failed. The error is shared: when a group's
/// transaction fails, every write in it fails with the same cause.
type WriteOutcome = Result<Result<(), Rejection>, Arc<rusqlite::Error>>;
type WriteReply = tokio::sync::oneshot::Sender<WriteOutcome>;

/// Prepared statements the store's connection keeps.
const STATEMENT_CACHE: usize = 128;

/// Most writes one transaction commits. Bounds how long the first write of a group waits for the last.
const GROUP_COMMIT_MAX: usize = 64;

#[derive(Clone, Debug)]
pub struct SqliteStore {
    jobs: std::sync::mpsc::Sender<Job>,
    work: Arc<Work>,
}

/// What the store's thread did for this handle and its clones: SQLite's counterpart of DynamoDB's
/// round trips and consumed capacity, so a test can show a request costs the same on a license with
/// one device and with 10,000 ([`SqliteStore::work`]).
#[derive(Debug, Default)]
pub struct Work {
    jobs: AtomicU64,
    steps: AtomicU64,
}

/// The counters at one moment; subtract two to get what happened in between.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WorkSnapshot {
    /// Jobs run on the store's thread: one per store call, its round trip.
    pub jobs: u64,
    /// Virtual machine steps SQLite reported (every row a statement visits takes some), counted only
    /// after [`SqliteStore::count_steps`].
    pub steps: u64,
}

impl std::ops::Sub for WorkSnapshot {
    type Output = Self;
    fn sub(self, earlier: Self) -> Self {
        Self {
            jobs: self.jobs - earlier.jobs,
            steps: self.steps - earlier.steps,
        }
    }
}

impl Work {
    pub fn snapshot(&self) -> WorkSnapshot {
        WorkSnapshot {
            jobs: self.jobs.load(Ordering::Relaxed),
            steps: self.steps.load(Ordering::Relaxed),
        }
    }
}

fn backend(operation: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |source| StoreError::Backend {
        operation,
        source: Box::new(source),
    }
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}

fn corrupt(key: &str, reason: impl std::fmt::Display) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, format!("{key}: {reason}").into())
}

fn from_json<T: DeserializeOwned>(key: &str, text: &str) -> rusqlite::Result<T> {
    serde_json::from_str(text).map_err(|e| corrupt(key, e))
}

fn time(key: &str, v: Option<String>) -> rusqlite::Result<Option<Timestamp>> {
    v.map(|s| Timestamp::parse_iso(&s).ok_or_else(|| corrupt(key, format!("bad date-time {s}"))))
        .transpose()
}

fn id<T>(key: &str, v: &str, parse: impl Fn(&str) -> Result<T, crate::ids::IdError>) -> rusqlite::Result<T> {
    parse(v).map_err(|e| corrupt(key, e))
}

/// Creates the database file readable by its owner only: it holds password hashes and shared keys.
/// SQLite gives the `-wal` and `-shm` files the database file's mode.
fn create_private(path: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path).map(drop)
}

fn has_column(c: &Connection, table: &str, column: &str) -> rusqlite::Result<bool> {
    let mut stmt = c.prepare(&format!("SELECT 1 FROM pragma_table_info('{table}') WHERE name = ?1"))?;
    stmt.exists([column])
}

/// Brings a database written before schema versions existed to schema 1, keeping its data: released
/// slots move from a JSON list on the license to one row each, devices get their version column.
fn adopt_unversioned(tx: &rusqlite::Transaction<'_>) -> rusqlite_migration::HookResult {
    if !has_column(tx, "devices", "activations")? {
        tx.execute_batch(
            "ALTER TABLE devices ADD COLUMN activations INTEGER NOT NULL DEFAULT 1;
             ALTER TABLE devices ADD COLUMN write_token TEXT;",
        )?;
    }
    if !has_column(tx, "licenses", "consumptions")? {
        tx.execute_batch(
            "ALTER TABLE licenses ADD COLUMN consumptions INTEGER NOT NULL DEFAULT 0;
             ALTER TABLE licenses ADD COLUMN feature_consumptions TEXT NOT NULL DEFAULT '{}';",
        )?;
    }
    if !has_column(tx, "licenses", "consumptions_period")? {
        tx.execute_batch(
            "ALTER TABLE licenses ADD COLUMN consumptions_period INTEGER;
             ALTER TABLE licenses ADD COLUMN feature_periods TEXT NOT NULL DEFAULT '{}';",
        )?;
    }
    if has_column(tx, "licenses", "released")? {
        tx.execute_batch("ALTER TABLE licenses ADD COLUMN released_count INTEGER NOT NULL DEFAULT 0;")?;
        let rows: Vec<(String, String)> = tx
            .prepare("SELECT pk, released FROM licenses")?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        for (pk, released) in rows {
            let released: Vec<String> = from_json(&pk, &released)?;
            for hw in &released {
                tx.execute(
                    "INSERT OR IGNORE INTO released (license_pk, hardware_id) VALUES (?1, ?2)",
                    params![pk, hw],
                )?;
            }
            tx.execute(
                "UPDATE licenses SET released_count = ?2 WHERE pk = ?1",
                params![pk, released.len() as i64],
            )?;
        }
        tx.execute_batch("ALTER TABLE licenses DROP COLUMN released;")?;
    }
    Ok(())
}

/// Brings the schema to [`SCHEMA_VERSION`], refusing a database a newer build has changed: this build
/// cannot know what those changes mean.
fn migrate(c: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let file = |operation| {
        let path = path.to_path_buf();
        move |e: rusqlite_migration::Error| StoreError::File {
            operation,
            path,
            source: Box::new(e),
        }
    };
    let found: i64 = c
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(|e| file("read the schema version of database")(e.into()))?;
    if found > SCHEMA_VERSION as i64 {
        return Err(StoreError::SchemaTooNew {
            path: path.to_path_buf(),
            found,
            known: SCHEMA_VERSION,
        });
    }
    // Immediate: two processes opening one old file migrate one after the other.
    c.set_transaction_behavior(TransactionBehavior::Immediate);
    let migrated = migrations().to_latest(c).map_err(file("migrate database"));
    c.set_transaction_behavior(TransactionBehavior::Deferred);
    migrated
}

/// What opening does when the database file does not exist.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IfMissing {
    /// Create it (and its directory): tests, the demo, and an operator who asked for it.
    Create,
    /// Fail naming the path: a mistyped data directory must not silently become an empty store.
    Fail,
}

/// Makes sure the database file exists (creating it, mode 0600, when allowed), naming the path on error.
fn prepare_file(path: &Path, if_missing: IfMissing) -> Result<(), StoreError> {
    let file = |operation, at: &Path| {
        let path = at.to_path_buf();
        move |e: std::io::Error| StoreError::File {
            operation,
            path,
            source: Box::new(e),
        }
    };
    // `try_exists`: a directory that cannot be searched is that error, not "missing".
    if path.try_exists().map_err(file("look for database", path))? {
        return Ok(());
    }
    if if_missing == IfMissing::Fail {
        return Err(StoreError::DatabaseMissing {
            path: path.to_path_buf(),
        });
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(file("create data directory", dir))?;
    }
    create_private(path).map_err(file("create database", path))
}

/// Connects to an existing database file and brings its schema up to date.
fn connect(path: &Path) -> Result<Connection, StoreError> {
    let file = |operation| {
        let path = path.to_path_buf();
        move |e: rusqlite::Error| StoreError::File {
            operation,
            path,
            source: Box::new(e),
        }
    };
    // Never SQLite's own create: the file exists by now, created private by `prepare_file`.
    let flags = rusqlite::OpenFlags::default().difference(rusqlite::OpenFlags::SQLITE_OPEN_CREATE);
    let mut conn = Connection::open_with_flags(path, flags).map_err(file("open database"))?;
    // Keep every statement the store runs prepared: a read, a write and a delete per item kind, the
    // listings and the queries make several dozen, and past rusqlite's default of 16 each request would
    // parse again statements it evicted.
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    conn.busy_timeout(Duration::from_secs(10))
        .map_err(file("open database"))?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(file("open database"))?;
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(file("open database"))?;
    migrate(&mut conn, path)?;
    Ok(conn)
}

impl SqliteStore {
    /// Opens the database file and its schema, creating the file (mode 0600) if needed.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_with(path, IfMissing::Create)
    }

    /// Opens the database file and its schema; `if_missing` says whether a missing file is created.
    pub fn open_with(path: impl AsRef<Path>, if_missing: IfMissing) -> Result<Self, StoreError> {
        let path = path.as_ref();
        prepare_file(path, if_missing)?;
        let mut conn = connect(path)?;
        let (jobs, queue) = std::sync::mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("sqlite-store".into())
            .spawn(move || serve_jobs(&mut conn, &queue))
            .map_err(|e| StoreError::Backend {
                operation: "start store thread",
                source: Box::new(e),
            })?;
        Ok(Self {
            jobs,
            work: Arc::default(),
        })
    }

    /// What the store's thread has done so far for this handle and its clones.
    pub fn work(&self) -> Arc<Work> {
        self.work.clone()
    }

    /// Counts SQLite's virtual machine steps into [`Self::work`] from now on. A callback on every step
    /// slows every statement, so only tests that compare requests' costs turn it on.
    pub async fn count_steps(&self) -> Result<(), StoreError> {
        let work = self.work.clone();
        self.read("count steps", move |c| {
            c.progress_handler(
                1,
                Some(move || {
                    work.steps.fetch_add(1, Ordering::Relaxed);
                    false
                }),
            )
        })
        .await
    }

    /// Runs `f` on the store's thread.
    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> rusqlite::Result<T> {
        let job = |reply: tokio::sync::oneshot::Sender<_>| {
            Job::Run(Box::new(move |c| {
                let _ = reply.send(f(c));
            }))
        };
        self.ask(job).await.unwrap_or(Err(rusqlite::Error::InvalidQuery))
    }

    /// Queues the job `job` builds around its reply channel and waits for the answer: `None` if the
    /// store's thread is gone or dropped the reply (a job that panicked).
    async fn ask<T>(&self, job: impl FnOnce(tokio::sync::oneshot::Sender<T>) -> Job) -> Option<T> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.work.jobs.fetch_add(1, Ordering::Relaxed);
        self.jobs.send(job(reply)).ok()?;
        answer.await.ok()
    }

    async fn read<T: Send + 'static>(
        &self,
        operation: &'static str,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.run(move |c| f(c)).await.map_err(backend(operation))
    }
}

/// Where an item lives: its table and the columns that are its key, with their values.
fn place(item: &Item) -> (&'static str, Vec<(&'static str, Sql)>) {
    let text = |v: &str| Sql::Text(v.to_owned());
    let license = |addr: &LicenseAddr| ("license_pk", Sql::Text(addr.storage_key()));
    match item {
        Item::ApiKey(id) => ("api_keys", vec![("id", text(id.as_str()))]),
        Item::OAuthClient(id) => ("oauth_clients", vec![(Attr::ClientId.name(), text(id.as_str()))]),
        Item::CustomerAccount(company, code) => (
            "customer_accounts",
            vec![
                (Attr::Company.name(), text(company.as_str())),
                (Attr::AccountCode.name(), text(code.as_str())),
            ],
        ),
        Item::Company(company) => ("companies", vec![("id", text(company.as_str()))]),
        Item::Product(company, code) => (
            "products",
            vec![("company", text(company.as_str())), ("code", text(code.as_str()))],
        ),
        Item::User(company, user) => (
            "users",
            vec![("company", text(company.as_str())), ("email", text(user.as_str()))],
        ),
        Item::Customer(company, email) => (
            "customers",
            vec![("company", text(company.as_str())), ("email", text(email.as_str()))],
        ),
        Item::License(addr) => ("licenses", vec![("pk", Sql::Text(addr.storage_key()))]),
        Item::Device(addr, hw) => (
            "devices",
            vec![license(addr), (Attr::HardwareId.name(), text(hw.as_str()))],
        ),
        Item::Seat(addr, user) => ("seats", vec![license(addr), (Attr::User.name(), text(user.as_str()))]),
        Item::Released(addr, hw) => (
            "released",
            vec![license(addr), (Attr::HardwareId.name(), text(hw.as_str()))],
        ),
        Item::Request(addr, key) => (
            "requests",
            vec![license(addr), (Attr::RequestKey.name(), text(key.as_str()))],
        ),
        Item::Trial(company, product, hw) => (
            "trials",
            vec![
                (Attr::Company.name(), text(company.as_str())),
                ("product", text(product.as_str())),
                (Attr::HardwareId.name(), text(hw.as_str())),
            ],
        ),
        Item::ManagementKey(company, id) => (
            "management_keys",
            vec![
                (Attr::Company.name(), text(company.as_str())),
                (Attr::KeyId.name(), text(id.as_str())),
            ],
        ),
        Item::Idempotency(company, key) => (
            "idempotency",
            vec![
                (Attr::Company.name(), text(company.as_str())),
                (Attr::IdempotencyKey.name(), text(key)),
            ],
        ),
        Item::Audit(company, id) => (
            "audit",
            vec![
                (Attr::Company.name(), text(company.as_str())),
                (Attr::AuditId.name(), text(id)),
            ],
        ),
    }
}

/// The columns of an item besides its key: each named by its [`Attr`].
fn columns(item: &Item) -> &'static [Attr] {
    use Attr::*;
    match item {
        Item::ApiKey(_) => &[Company, SharedKey, Products, ReadOnly, Revoked, Source],
        Item::OAuthClient(_) => &[Company, SecretHash, SealedSecret, Products, ReadOnly, Revoked, Source],
        Item::CustomerAccount(..) => &[Issuer, ClientId, SealedSecret, RedirectUris, EmailClaim],
        Item::Company(_) | Item::Product(..) | Item::User(..) | Item::Customer(..) => &[Doc],
        Item::License(_) => &LICENSE_COLUMNS,
        Item::Device(..) => &DEVICE_COLUMNS,
        Item::Seat(..) => &[MaxActivations, Unlimited, TotalActivations],
        Item::Released(..) => &[],
        Item::Request(..) => &[Answer, ProcessedAt, ExpiresAt],
        Item::Audit(..) => &[At, Actor, Change, Subject, Detail, ExpiresAt],
        Item::Trial(..) => &[LicenseId, LicenseKey, User, At],
        Item::ManagementKey(..) => &[Name, SecretHash, ReadOnly, Revoked, CreatedAt],
        Item::Idempotency(..) => &[RequestDigest, Status, Answer, ExpiresAt],
    }
}

const LICENSE_COLUMNS: [Attr; 19] = [
    Attr::LicenseId,
    Attr::LicenseKey,
    Attr::Enabled,
    Attr::MaxActivations,
    Attr::Unlimited,
    Attr::MaxTransfers,
    Attr::ValidityPeriod,
    Attr::Terms,
    Attr::TimesActivated,
    Attr::TransferCount,
    Attr::ReleasedCount,
    Attr::Consumptions,
    Attr::FeatureConsumptions,
    Attr::ConsumptionsPeriod,
    Attr::FeaturePeriods,
    Attr::Floating,
    Attr::FloatingVersion,
    Attr::FloatingBorrowed,
    Attr::Source,
];

const DEVICE_COLUMNS: [Attr; 12] = [
    Attr::DeviceId,
    Attr::HardwareId,
    Attr::Active,
    Attr::User,
    Attr::FirstActivatedAt,
    Attr::LastActivatedAt,
    Attr::DeactivatedAt,
    Attr::LastSeenAt,
    Attr::Details,
    Attr::Variables,
    Attr::Activations,
    Attr::WriteToken,
];

fn column_list(attrs: &[Attr]) -> String {
    attrs.iter().map(|a| a.name()).collect::<Vec<_>>().join(", ")
}

fn sql_of(v: Option<Val>) -> Sql {
    let json = |v: serde_json::Value| Sql::Text(v.to_string());
    match v {
        None => Sql::Null,
        Some(Val::Bool(b)) => Sql::Integer(i64::from(b)),
        Some(Val::Int(i)) => Sql::Integer(i),
        Some(Val::Str(t)) => Sql::Text(t),
        Some(Val::Set(items)) => json(items.into()),
        Some(Val::Counts(counts)) => json(serde_json::json!(counts)),
    }
}

fn where_clause(key: &[(&str, Sql)]) -> String {
    key.iter()
        .enumerate()
        .map(|(i, (column, _))| format!("{column} = ?{}", i + 1))
        .collect::<Vec<_>>()
        .join(" AND ")
}

/// The item as stored now.
fn load(c: &Connection, item: &Item) -> rusqlite::Result<Option<Image>> {
    let (table, key) = place(item);
    let attrs = columns(item);
    let selected = if attrs.is_empty() {
        "1".to_owned()
    } else {
        column_list(attrs)
    };
    let sql = format!("SELECT {selected} FROM {table} WHERE {}", where_clause(&key));
    let values: Vec<Sql> = key.into_iter().map(|(_, v)| v).collect();
    c.prepare_cached(&sql)?
        .query_row(rusqlite::params_from_iter(values), |r| decode(item, r))
        .optional()
}

/// Writes the item as `image` (the whole row), or deletes it.
fn save(c: &Connection, item: &Item, image: Option<&Image>) -> rusqlite::Result<()> {
    let (table, key) = place(item);
    let Some(image) = image else {
        let sql = format!("DELETE FROM {table} WHERE {}", where_clause(&key));
        let values: Vec<Sql> = key.into_iter().map(|(_, v)| v).collect();
        return c
            .prepare_cached(&sql)?
            .execute(rusqlite::params_from_iter(values))
            .map(drop);
    };
    if let (Item::Request(addr, _), Image::Request(r)) = (item, image) {
        // Expired records go as new ones arrive, like DynamoDB's TTL deletes them.
        c.prepare_cached("DELETE FROM requests WHERE license_pk = ?1 AND expires_at <= ?2")?
            .execute(params![addr.storage_key(), r.processed_at.unix_seconds()])?;
    }
    let mut row = key;
    for &attr in columns(item) {
        // A key column that is an attribute too (a device's hardware id) is written once.
        if !row.iter().any(|(column, _)| *column == attr.name()) {
            row.push((attr.name(), sql_of(image.get(attr))));
        }
    }
    let names = row.iter().map(|(column, _)| *column).collect::<Vec<_>>().join(", ");
    let marks = (1..=row.len()).map(|i| format!("?{i}")).collect::<Vec<_>>().join(", ");
    let sql = format!("INSERT OR REPLACE INTO {table} ({names}) VALUES ({marks})");
    let values: Vec<Sql> = row.into_iter().map(|(_, v)| v).collect();
    c.prepare_cached(&sql)?
        .execute(rusqlite::params_from_iter(values))
        .map(drop)
}

/// Typed reads of one row by column name, with errors that name the item.
struct Cols<'a, 'r> {
    row: &'a Row<'r>,
    key: String,
}

impl Cols<'_, '_> {
    fn get<T: rusqlite::types::FromSql>(&self, a: Attr) -> rusqlite::Result<T> {
        self.row.get(a.name())
    }
    fn json<T: DeserializeOwned>(&self, a: Attr) -> rusqlite::Result<T> {
        from_json(&self.key, &self.get::<String>(a)?)
    }
    fn time(&self, a: Attr) -> rusqlite::Result<Option<Timestamp>> {
        time(&self.key, self.get(a)?)
    }
    fn required_time(&self, a: Attr) -> rusqlite::Result<Timestamp> {
        self.time(a)?
            .ok_or_else(|| corrupt(&self.key, format!("{} missing", a.name())))
    }
    fn id<T>(&self, a: Attr, parse: impl Fn(&str) -> Result<T, crate::ids::IdError>) -> rusqlite::Result<T> {
        id(&self.key, &self.get::<String>(a)?, parse)
    }
    fn opt_id<T>(
        &self,
        a: Attr,
        parse: impl Fn(&str) -> Result<T, crate::ids::IdError>,
    ) -> rusqlite::Result<Option<T>> {
        self.get::<Option<String>>(a)?
            .map(|v| id(&self.key, &v, &parse))
            .transpose()
    }
}

/// The image of `item` from its row (the columns [`columns`] lists).
fn decode(item: &Item, r: &Row<'_>) -> rusqlite::Result<Image> {
    use Attr as A;
    let (table, key) = place(item);
    let c = Cols {
        row: r,
        key: format!("{table} {:?}", key.iter().map(|(_, v)| v).collect::<Vec<_>>()),
    };
    Ok(match item {
        Item::ApiKey(key) => Image::ApiKey(Box::new(ApiKeyRecord {
            id: key.clone(),
            company: c.id(A::Company, CompanyId::parse)?,
            shared_key: c.get(A::SharedKey)?,
            products: c
                .json::<Vec<String>>(A::Products)?
                .iter()
                .map(|p| id(&c.key, p, ProductCode::parse))
                .collect::<rusqlite::Result<_>>()?,
            read_only: c.get(A::ReadOnly)?,
            revoked: c.get(A::Revoked)?,
            source: source(&c)?,
        })),
        Item::OAuthClient(id) => Image::OAuthClient(Box::new(OAuthClientRecord {
            id: id.clone(),
            company: c.id(A::Company, CompanyId::parse)?,
            secret_hash: c.get(A::SecretHash)?,
            sealed_secret: Sealed::parse(c.get::<String>(A::SealedSecret)?).map_err(|e| corrupt(&c.key, e))?,
            products: c
                .json::<Vec<String>>(A::Products)?
                .iter()
                .map(|p| self::id(&c.key, p, ProductCode::parse))
                .collect::<rusqlite::Result<_>>()?,
            read_only: c.get(A::ReadOnly)?,
            revoked: c.get(A::Revoked)?,
            source: source(&c)?,
        })),
        Item::CustomerAccount(company, code) => Image::CustomerAccount(Box::new(CustomerAccountRecord {
            company: company.clone(),
            code: code.clone(),
            issuer: c.get(A::Issuer)?,
            client_id: c.get(A::ClientId)?,
            sealed_secret: Sealed::parse(c.get::<String>(A::SealedSecret)?).map_err(|e| corrupt(&c.key, e))?,
            redirect_uris: c.json(A::RedirectUris)?,
            email_claim: c.get(A::EmailClaim)?,
        })),
        Item::Company(_) => Image::Company(Box::new(c.json(A::Doc)?)),
        Item::Product(..) => Image::Product(Box::new(c.json(A::Doc)?)),
        Item::User(..) => Image::User(Box::new(c.json(A::Doc)?)),
        Item::Customer(..) => Image::Customer(Box::new(c.json(A::Doc)?)),
        Item::License(addr) => Image::License(Box::new(license_from(&c, addr)?)),
        Item::Device(..) => Image::Device(Box::new(device_from(&c)?)),
        Item::Seat(_, user) => Image::Seat(Seat {
            user: user.clone(),
            max_activations: c.get(A::MaxActivations)?,
            allow_unlimited_activations: c.get(A::Unlimited)?,
            total_activations: c.get(A::TotalActivations)?,
        }),
        Item::Released(..) => Image::Marker,
        Item::Request(_, key) => Image::Request(Box::new(ProcessedRequest {
            key: key.clone(),
            answer: c.get(A::Answer)?,
            processed_at: c.required_time(A::ProcessedAt)?,
            expires_at: c.get(A::ExpiresAt)?,
        })),
        Item::Trial(..) => Image::Trial(Box::new(TrialRecord {
            license_id: c.get(A::LicenseId)?,
            license_key: c.opt_id(A::LicenseKey, LicenseKey::parse)?,
            user: c.opt_id(A::User, Username::parse)?,
            created_at: c.required_time(A::At)?,
        })),
        Item::ManagementKey(company, id) => Image::ManagementKey(Box::new(ManagementKeyRecord {
            id: id.clone(),
            company: company.clone(),
            name: c.get(A::Name)?,
            secret_hash: c.get(A::SecretHash)?,
            read_only: c.get(A::ReadOnly)?,
            revoked: c.get(A::Revoked)?,
            created_at: c.required_time(A::CreatedAt)?,
        })),
        Item::Idempotency(company, key) => Image::Idempotency(Box::new(IdempotencyRecord {
            company: company.clone(),
            key: key.clone(),
            request_digest: c.get(A::RequestDigest)?,
            status: c.get(A::Status)?,
            answer: c.get(A::Answer)?,
            expires_at: c.get(A::ExpiresAt)?,
        })),
        Item::Audit(company, id) => Image::Audit(Box::new(AuditRecord {
            company: company.clone(),
            id: id.clone(),
            at: c.required_time(A::At)?,
            actor: c.get(A::Actor)?,
            action: c.get(A::Change)?,
            subject: c.get(A::Subject)?,
            detail: c.json(A::Detail)?,
            expires_at: c.get(A::ExpiresAt)?,
        })),
    })
}

fn license_from(c: &Cols<'_, '_>, addr: &LicenseAddr) -> rusqlite::Result<License> {
    use Attr as A;
    let (company, product) = addr.company_product();
    Ok(License {
        id: c.get(A::LicenseId)?,
        company: company.clone(),
        product: product.clone(),
        key: c.opt_id(A::LicenseKey, LicenseKey::parse)?,
        enabled: c.get(A::Enabled)?,
        max_activations: c.get(A::MaxActivations)?,
        allow_unlimited_activations: c.get(A::Unlimited)?,
        max_transfers: c.get(A::MaxTransfers)?,
        validity_period: c.time(A::ValidityPeriod)?,
        terms: c.json(A::Terms)?,
        times_activated: c.get(A::TimesActivated)?,
        transfer_count: c.get(A::TransferCount)?,
        released_count: c.get(A::ReleasedCount)?,
        consumptions: c.get(A::Consumptions)?,
        feature_consumptions: c.json(A::FeatureConsumptions)?,
        consumptions_period: c.get::<Option<i64>>(A::ConsumptionsPeriod)?.map(Timestamp::from_millis),
        feature_periods: c
            .json::<std::collections::BTreeMap<String, i64>>(A::FeaturePeriods)?
            .into_iter()
            .map(|(code, ms)| (code, Timestamp::from_millis(ms)))
            .collect(),
        floating: c.json(A::Floating)?,
        floating_version: c.get(A::FloatingVersion)?,
        floating_borrowed: c.json(A::FloatingBorrowed)?,
        source: source(c)?,
    })
}

/// A row's provenance (`source`): NULL on rows stored before it was recorded (unknown).
fn source(c: &Cols<'_, '_>) -> rusqlite::Result<Option<LicenseSource>> {
    c.get::<Option<String>>(Attr::Source)?
        .map(|s| LicenseSource::parse(&s).ok_or_else(|| corrupt(&c.key, format!("source {s:?}"))))
        .transpose()
}

fn device_from(c: &Cols<'_, '_>) -> rusqlite::Result<Device> {
    use Attr as A;
    Ok(Device {
        id: c.get(A::DeviceId)?,
        hardware_id: c.id(A::HardwareId, HardwareId::parse)?,
        active: c.get(A::Active)?,
        user: c.opt_id(A::User, Username::parse)?,
        first_activated_at: c.required_time(A::FirstActivatedAt)?,
        last_activated_at: c.required_time(A::LastActivatedAt)?,
        deactivated_at: c.time(A::DeactivatedAt)?,
        last_seen_at: c.time(A::LastSeenAt)?,
        details: c.json(A::Details)?,
        variables: c.json(A::Variables)?,
        activations: c.get(A::Activations)?,
        write_token: c.get(A::WriteToken)?,
    })
}

/// A loaded item of the kind `T`: `pick` takes it out of its image.
fn load_as<T>(c: &Connection, item: Item, pick: impl FnOnce(Image) -> Option<T>) -> rusqlite::Result<Option<T>> {
    Ok(load(c, &item)?.and_then(pick))
}

fn is_released(c: &Connection, addr: &LicenseAddr, hw: &HardwareId) -> rusqlite::Result<bool> {
    Ok(load(c, &Item::Released(addr.clone(), hw.clone()))?.is_some())
}

/// The store's thread: runs jobs in the order they come, except that a write takes every write queued
/// right behind it (up to [`GROUP_COMMIT_MAX`]) into one transaction. Writes of concurrent requests
/// have no order between them to keep; a request's own next job waits for its write's answer.
fn serve_jobs(conn: &mut Connection, queue: &std::sync::mpsc::Receiver<Job>) {
    let mut held = None;
    while let Some(job) = held.take().or_else(|| queue.recv().ok()) {
        // A panicking job drops its reply channels (its callers see an error); the connection and the
        // thread stay for the next job.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match job {
            Job::Run(f) => f(conn),
            Job::Write(write, reply) => {
                let mut group = vec![(write, reply)];
                while group.len() < GROUP_COMMIT_MAX {
                    match queue.try_recv() {
                        Ok(Job::Write(w, r)) => group.push((w, r)),
                        Ok(other) => {
                            held = Some(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                commit_group(conn, group);
            }
        }));
    }
}

/// Group commit: the writes in one `BEGIN IMMEDIATE` transaction, in order, so each sees exactly the
/// writes before it — the outcomes of running them one after another, for one WAL append and one
/// fsync. A refused write has changed nothing ([`apply_write`] decides before it saves), so it needs no
/// savepoint; a write that fails mid-way rolls the whole transaction back, gets its error, and the
/// others run again without it. Answers go out only after the commit, so an acknowledged write is
/// durable; if the commit itself fails, every write in the group fails with that cause.
fn commit_group(c: &mut Connection, group: Vec<(Write, WriteReply)>) {
    let (writes, mut replies): (Vec<Write>, Vec<WriteReply>) = group.into_iter().unzip();
    match run_group(c, &writes) {
        Ok(outcomes) => replies.into_iter().zip(outcomes).for_each(|(r, o)| drop(r.send(Ok(o)))),
        Err((Some(failed), e)) => {
            let _ = replies.remove(failed).send(Err(Arc::new(e)));
            let rest = writes
                .into_iter()
                .enumerate()
                .filter(|(i, _)| *i != failed)
                .map(|(_, w)| w);
            commit_group(c, rest.zip(replies).collect());
        }
        Err((None, e)) => {
            let e = Arc::new(e);
            replies.into_iter().for_each(|r| drop(r.send(Err(e.clone()))));
        }
    }
}

/// Why a group's transaction failed: the index of the write that failed (none: the transaction did).
type GroupFailure = (Option<usize>, rusqlite::Error);

/// The group's transaction: each write's verdict, or why it failed. Nothing is committed unless every
/// write ran.
fn run_group(c: &mut Connection, writes: &[Write]) -> Result<Vec<Result<(), Rejection>>, GroupFailure> {
    if writes.is_empty() {
        return Ok(Vec::new());
    }
    let tx = c
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| (None, e))?;
    let verdicts = writes
        .iter()
        .enumerate()
        .map(|(i, w)| apply_write(&tx, w).map_err(|e| (Some(i), e)))
        .collect::<Result<Vec<_>, _>>()?;
    tx.commit().map_err(|e| (None, e))?;
    Ok(verdicts)
}

/// One write inside the caller's transaction: reads its items, evaluates its conditions
/// ([`write::apply`]) and saves what changed; commits nothing.
fn apply_write(tx: &Connection, write: &Write) -> rusqlite::Result<Result<(), Rejection>> {
    let mut images = write
        .items
        .iter()
        .map(|w| load(tx, &w.item))
        .collect::<rusqlite::Result<Vec<_>>>()?;
    match write::apply(write, &mut images) {
        Ok(()) => {}
        Err(Refused::Condition { index }) => {
            let current = images[index].take();
            return Ok(Err(Rejection::for_item(write, index, current)));
        }
        Err(Refused::Invalid(why)) => return Err(corrupt("write", why)),
    }
    for (w, image) in write.items.iter().zip(&images) {
        if w.action != write::Action::Check {
            save(tx, &w.item, image.as_ref())?;
        }
    }
    Ok(Ok(()))
}

#[async_trait]
impl Store for SqliteStore {
    async fn load(&self, item: &Item) -> Result<Option<Image>, StoreError> {
        let item = item.clone();
        self.read("read item", move |c| load(c, &item)).await
    }

    async fn read_context(&self, q: &ContextQuery<'_>) -> Result<ContextRead, StoreError> {
        let company = q.company.clone();
        let product = q.product.clone();
        let addr = q.key.map(|key| LicenseAddr::Key {
            company: company.clone(),
            product: product.clone(),
            key: key.clone(),
        });
        let hw = q.hardware_id.cloned();
        let user = q.user.cloned();
        self.read("read context", move |c| {
            let mut read = ContextRead {
                product: load_as(c, Item::Product(company.clone(), product), |i| match i {
                    Image::Product(p) => Some(*p),
                    _ => None,
                })?,
                company: load_as(c, Item::Company(company.clone()), |i| match i {
                    Image::Company(c) => Some(*c),
                    _ => None,
                })?,
                ..ContextRead::default()
            };
            if let Some(addr) = &addr {
                read.license = license(c, addr)?;
                if let Some(hw) = &hw {
                    read.device = device(c, addr, hw)?;
                    read.released = is_released(c, addr, hw)?;
                }
            }
            if let Some(user) = user {
                read.user = load_as(c, Item::User(company, user), |i| match i {
                    Image::User(u) => Some(*u),
                    _ => None,
                })?;
            }
            Ok(read)
        })
        .await
    }

    async fn read_license(
        &self,
        addr: &LicenseAddr,
        seat: Option<&Username>,
        hardware_id: &HardwareId,
    ) -> Result<LicenseRead, StoreError> {
        let (addr, seat, hw) = (addr.clone(), seat.cloned(), hardware_id.clone());
        self.read("read license", move |c| {
            let seat = match seat {
                Some(user) => load_as(c, Item::Seat(addr.clone(), user), |i| match i {
                    Image::Seat(s) => Some(s),
                    _ => None,
                })?,
                None => None,
            };
            Ok(LicenseRead {
                license: license(c, &addr)?,
                device: device(c, &addr, &hw)?,
                released: is_released(c, &addr, &hw)?,
                seat,
            })
        })
        .await
    }

    async fn released_slot(&self, addr: &LicenseAddr) -> Result<Option<HardwareId>, StoreError> {
        let pk = addr.storage_key();
        self.read("read released slot", move |c| {
            let hw: Option<String> = c
                .query_row(
                    "SELECT hardware_id FROM released WHERE license_pk = ?1 ORDER BY hardware_id LIMIT 1",
                    [&pk],
                    |r| r.get(0),
                )
                .optional()?;
            hw.map(|h| id(&pk, &h, HardwareId::parse)).transpose()
        })
        .await
    }

    async fn processed_request(
        &self,
        addr: &LicenseAddr,
        key: &RequestKey,
        now: Timestamp,
    ) -> Result<Option<ProcessedRequest>, StoreError> {
        let item = Item::Request(addr.clone(), key.clone());
        self.read("read processed request", move |c| {
            load_as(c, item, |i| match i {
                Image::Request(r) => Some(*r),
                _ => None,
            })
        })
        .await
        .map(|r| r.filter(|r| r.is_live(now)))
    }

    async fn apply(&self, write: &Write, _token: &WriteToken) -> Result<(), Rejection> {
        // A local transaction's outcome is never unknown, so the token has nothing to disambiguate.
        let outcome = self.ask(|reply| Job::Write(write.clone(), reply)).await;
        match outcome.unwrap_or_else(|| Err(Arc::new(rusqlite::Error::InvalidQuery))) {
            Ok(verdict) => verdict,
            Err(e) if is_busy(&e) => Err(Rejection::Conflict),
            Err(e) => Err(Rejection::Store(StoreError::Backend {
                operation: "write",
                source: Box::new(e),
            })),
        }
    }

    /// One transaction for them all: an import is written whole or not at all.
    async fn write_all(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        let items = writes.into_iter().flat_map(|w| w.items).collect();
        self.write(&Write { items }).await
    }

    async fn list_devices(&self, addr: &LicenseAddr) -> Result<Vec<Device>, StoreError> {
        let pk = addr.storage_key();
        self.read("list devices", move |c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {} FROM devices WHERE license_pk = ?1 ORDER BY hardware_id",
                column_list(&DEVICE_COLUMNS)
            ))?;
            let rows = stmt.query_map([&pk], |r| {
                device_from(&Cols {
                    row: r,
                    key: pk.clone(),
                })
            })?;
            rows.collect()
        })
        .await
    }

    async fn list_seats(&self, addr: &LicenseAddr) -> Result<Vec<Seat>, StoreError> {
        let pk = addr.storage_key();
        self.read("list seats", move |c| {
            let mut stmt = c.prepare(
                "SELECT user, max_activations, unlimited, total_activations FROM seats WHERE license_pk = ?1 \
                 ORDER BY user",
            )?;
            let rows = stmt.query_map([&pk], |r| {
                Ok(Seat {
                    user: id(&pk, &r.get::<_, String>(0)?, Username::parse)?,
                    max_activations: r.get(1)?,
                    allow_unlimited_activations: r.get(2)?,
                    total_activations: r.get(3)?,
                })
            })?;
            rows.collect()
        })
        .await
    }

    async fn management_keys(
        &self,
        company: &CompanyId,
        after: Option<&ManagementKeyId>,
        limit: usize,
    ) -> Result<Vec<ManagementKeyRecord>, StoreError> {
        let (company, after) = (
            company.clone(),
            after.map(|a| a.as_str().to_owned()).unwrap_or_default(),
        );
        self.read("list management keys", move |c| {
            let ids: Vec<String> = c
                .prepare_cached(
                    "SELECT key_id FROM management_keys WHERE company = ?1 AND key_id > ?2 ORDER BY key_id LIMIT ?3",
                )?
                .query_map(params![company.as_str(), after, limit as i64], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            let mut keys = Vec::with_capacity(ids.len());
            for key_id in ids {
                let item =
                    Item::ManagementKey(company.clone(), id("management_keys", &key_id, ManagementKeyId::parse)?);
                if let Some(Image::ManagementKey(k)) = load(c, &item)? {
                    keys.push(*k);
                }
            }
            Ok(keys)
        })
        .await
    }

    async fn licenses_page(
        &self,
        query: &LicenseQuery,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<LicensePage, StoreError> {
        let (query, after) = (query.clone(), query.start_after(cursor)?);
        self.read("list licenses", move |c| license_page(c, &query, after, limit))
            .await
    }

    async fn item_page(
        &self,
        kind: ItemKind,
        company: &CompanyId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<ItemPage, StoreError> {
        let (company, after) = (company.clone(), after.unwrap_or_default().to_owned());
        self.read("list items", move |c| item_page(c, kind, &company, &after, limit))
            .await
    }

    async fn items_beside(&self, addr: &LicenseAddr) -> Result<Vec<Item>, StoreError> {
        let (addr, pk) = (addr.clone(), addr.storage_key());
        self.read("list a license's items", move |c| {
            let mut items = Vec::new();
            for (table, column) in BESIDE {
                let column = column.name();
                let mut stmt = c.prepare(&format!("SELECT {column} FROM {table} WHERE license_pk = ?1"))?;
                for part in stmt.query_map([&pk], |r| r.get::<_, String>(0))? {
                    items.push(beside_item(&addr, table, &part?).map_err(|e| corrupt(&pk, e))?);
                }
            }
            Ok(items)
        })
        .await
    }

    async fn audit_records(
        &self,
        company: &CompanyId,
        filter: &AuditFilter,
        cursor: Option<&str>,
        limit: usize,
        now: Timestamp,
    ) -> Result<AuditPage, StoreError> {
        let (company, filter, cursor) = (company.clone(), filter.clone(), cursor.map(str::to_owned));
        let limit = limit.min(audit::MAX_PAGE);
        self.read("query the audit trail", move |c| {
            audit_page(c, &company, &filter, cursor.as_deref(), limit, now)
        })
        .await
    }

    async fn purge_audit(&self, now: Timestamp) -> Result<usize, StoreError> {
        // Expired idempotency records go with them: both are kept for a time, then forgotten.
        self.run(move |c| {
            let at = [now.unix_seconds()];
            c.execute("DELETE FROM idempotency WHERE expires_at <= ?1", at)?;
            c.execute("DELETE FROM audit WHERE expires_at <= ?1", at)
        })
        .await
        .map_err(backend("delete expired audit records"))
    }
}

/// The tables of the items kept beside a license, each with the column that tells its items apart.
const BESIDE: [(&str, Attr); 4] = [
    ("devices", Attr::HardwareId),
    ("released", Attr::HardwareId),
    ("seats", Attr::User),
    ("requests", Attr::RequestKey),
];

/// The item of `table` beside the license whose key part is `part`.
fn beside_item(addr: &LicenseAddr, table: &str, part: &str) -> Result<Item, crate::ids::IdError> {
    let addr = addr.clone();
    Ok(match table {
        "devices" => Item::Device(addr, HardwareId::parse(part)?),
        "released" => Item::Released(addr, HardwareId::parse(part)?),
        "seats" => Item::Seat(addr, Username::parse(part)?),
        _ => Item::Request(addr, RequestKey::from_stored(part)),
    })
}

/// One page of licenses: the primary key (the storage key) orders them, bounds the company (or
/// product) and serves as the cursor; a search is one indexed condition (migration 10).
fn license_page(
    c: &Connection,
    query: &LicenseQuery,
    after: Option<String>,
    limit: usize,
) -> rusqlite::Result<LicensePage> {
    let prefix = query.key_prefix();
    // The prefix ends in `#`; `$` is the next character, so [prefix, end) is exactly its keys.
    let end = format!("{}$", &prefix[..prefix.len() - 1]);
    let (condition, term) = match &query.search {
        // `?5` is always bound; without a search it is NULL and the condition holds.
        None => ("?5 IS NULL", None),
        Some(LicenseSearch::Key(k)) => ("license_key = ?5", Some(k.as_str().to_owned())),
        Some(LicenseSearch::Email(e)) => (
            "lower(json_extract(terms, '$.customer.email')) = ?5",
            Some(e.as_str().to_owned()),
        ),
        Some(LicenseSearch::OrderId(o)) => (
            "json_extract(terms, '$.order_store_id') = ?5",
            Some(o.as_str().to_owned()),
        ),
        Some(LicenseSearch::HardwareId(h)) => (
            "pk IN (SELECT license_pk FROM devices WHERE hardware_id = ?5)",
            Some(h.as_str().to_owned()),
        ),
    };
    let columns = column_list(&LICENSE_COLUMNS);
    let mut stmt = c.prepare(&format!(
        "SELECT pk, {columns} FROM licenses WHERE pk >= ?1 AND pk < ?2 AND (?3 IS NULL OR pk > ?3) \
         AND {condition} ORDER BY pk LIMIT ?4"
    ))?;
    let rows = stmt.query_map(params![prefix, end, after, limit as i64, term], |r| {
        let pk: String = r.get("pk")?;
        let addr = LicenseAddr::from_storage_key(&pk).ok_or_else(|| corrupt(&pk, "not a license key"))?;
        license_from(&Cols { row: r, key: pk }, &addr)
    })?;
    let licenses = rows.collect::<rusqlite::Result<Vec<_>>>()?;
    let cursor = (licenses.len() == limit)
        .then(|| licenses.last().map(|l| LicenseAddr::of(l).storage_key()))
        .flatten();
    Ok(LicensePage { licenses, cursor })
}

/// One page of a company's items of one kind: the table's (company, name) key or index (migration 11)
/// orders them and serves as the cursor; each row is then read as its item.
fn item_page(
    c: &Connection,
    kind: ItemKind,
    company: &CompanyId,
    after: &str,
    limit: usize,
) -> rusqlite::Result<ItemPage> {
    let (table, name) = match kind {
        ItemKind::Products => ("products", "code"),
        ItemKind::Users => ("users", "email"),
        ItemKind::ApiKeys => ("api_keys", "id"),
        ItemKind::OAuthClients => ("oauth_clients", "client_id"),
    };
    let names: Vec<String> = c
        .prepare_cached(&format!(
            "SELECT {name} FROM {table} WHERE company = ?1 AND {name} > ?2 ORDER BY {name} LIMIT ?3"
        ))?
        .query_map(params![company.as_str(), after, limit as i64], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut items = Vec::with_capacity(names.len());
    for name in &names {
        let item = kind
            .item(company, name)
            .map_err(|e| corrupt(&format!("{table} {name}"), e))?;
        items.extend(load(c, &item)?);
    }
    let cursor = (names.len() == limit).then(|| names.last().cloned()).flatten();
    Ok(ItemPage { items, cursor })
}

/// One page of the audit trail: the primary key (company, audit_id) serves the order and the cursor.
fn audit_page(
    c: &Connection,
    company: &CompanyId,
    filter: &AuditFilter,
    cursor: Option<&str>,
    limit: usize,
    now: Timestamp,
) -> rusqlite::Result<AuditPage> {
    let mut stmt = c.prepare(&format!(
        "SELECT audit_id, {} FROM audit WHERE company = ?1 AND (?2 IS NULL OR audit_id < ?2) \
         AND (?3 IS NULL OR audit_id >= ?3) AND (?4 IS NULL OR subject = ?4) AND (?5 IS NULL OR actor = ?5) \
         AND expires_at > ?6 ORDER BY audit_id DESC LIMIT ?7",
        column_list(columns(&Item::Audit(company.clone(), String::new())))
    ))?;
    let since = filter.since.map(audit::id_at);
    let args = params![
        company.as_str(),
        cursor,
        since,
        filter.subject,
        filter.actor,
        now.unix_seconds(),
        limit as i64
    ];
    let records = stmt
        .query_map(args, |r| {
            let item = Item::Audit(company.clone(), r.get(Attr::AuditId.name())?);
            match decode(&item, r)? {
                Image::Audit(record) => Ok(*record),
                other => Err(corrupt("audit", format!("decoded as {other:?}"))),
            }
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let cursor = (records.len() == limit)
        .then(|| records.last().map(|r| r.id.clone()))
        .flatten();
    Ok(AuditPage { records, cursor })
}

fn license(c: &Connection, addr: &LicenseAddr) -> rusqlite::Result<Option<License>> {
    load_as(c, Item::License(addr.clone()), |i| match i {
        Image::License(l) => Some(*l),
        _ => None,
    })
}

fn device(c: &Connection, addr: &LicenseAddr, hw: &HardwareId) -> rusqlite::Result<Option<Device>> {
    load_as(c, Item::Device(addr.clone(), hw.clone()), |i| match i {
        Image::Device(d) => Some(*d),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::CompanyId;

    /// A fresh database path for one test.
    fn scratch(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("license-api-sqlite-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.db"));
        let _ = std::fs::remove_file(&path);
        path
    }

    fn version(path: &Path) -> i64 {
        Connection::open(path)
            .unwrap()
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap()
    }

    fn addr() -> LicenseAddr {
        LicenseAddr::Id {
            company: CompanyId::parse("acme").unwrap(),
            product: ProductCode::parse("app").unwrap(),
            id: 7,
        }
    }

    fn released(hw: &str) -> Item {
        Item::Released(addr(), HardwareId::parse(hw).unwrap())
    }

    /// Group commit (issue 19): writes committed together have the outcomes of running them one after
    /// another. A write sees the ones before it in the group, and a refused one leaves no trace, not
    /// even of its items whose conditions held; the others stay.
    #[tokio::test]
    async fn a_group_commits_what_its_writes_in_turn_would() {
        let path = scratch("group-commit");
        let store = SqliteStore::open(&path).unwrap();
        let create = |hw: &str| Write::create(released(hw), Image::Marker);
        let c_then_a = Write {
            items: [create("c"), create("a")].into_iter().flat_map(|w| w.items).collect(),
        };
        let writes = vec![create("a"), create("a"), create("b"), c_then_a];
        let (replies, answers): (Vec<_>, Vec<_>) = writes.iter().map(|_| tokio::sync::oneshot::channel()).unzip();
        commit_group(&mut connect(&path).unwrap(), writes.into_iter().zip(replies).collect());
        let mut applied = Vec::new();
        for answer in answers {
            applied.push(answer.await.unwrap().expect("the transaction committed").is_ok());
        }
        assert_eq!(applied, [true, false, true, false]);
        for (hw, present) in [("a", true), ("b", true), ("c", false)] {
            assert_eq!(store.load(&released(hw)).await.unwrap().is_some(), present, "{hw}");
        }
    }

    /// Concurrent writes through the store, grouped however they arrive: of 40 creations of one item
    /// exactly one succeeds, and 40 creations of distinct items all do.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_writes_grouped_keep_every_condition() {
        let store = SqliteStore::open(scratch("group-concurrent")).unwrap();
        let token = WriteToken::new();
        let apply = |hw: String| {
            let (store, token) = (store.clone(), token.clone());
            tokio::spawn(async move { store.apply(&Write::create(released(&hw), Image::Marker), &token).await })
        };
        let same: Vec<_> = (0..40).map(|_| apply("same".into())).collect();
        let distinct: Vec<_> = (0..40).map(|i| apply(format!("d{i}"))).collect();
        let mut won = 0;
        for t in same {
            won += usize::from(t.await.unwrap().is_ok());
        }
        assert_eq!(won, 1, "exactly one creation of the same item");
        for t in distinct {
            assert!(t.await.unwrap().is_ok(), "distinct items never conflict");
        }
    }

    /// A database written before schema versions existed: today's tables, `user_version` 0, data.
    #[tokio::test]
    async fn an_unversioned_database_is_adopted_with_its_data() {
        let path = scratch("unversioned");
        let c = Connection::open(&path).unwrap();
        c.execute_batch(SCHEMA_V1).unwrap();
        c.execute(
            "INSERT INTO licenses (pk, license_id, enabled, max_activations, unlimited, max_transfers, terms, times_activated)
             VALUES (?1, 7, 1, 3, 0, 0, '{}', 2)",
            [addr().storage_key()],
        )
        .unwrap();
        drop(c);
        assert_eq!(version(&path), 0);

        let store = SqliteStore::open(&path).expect("an unversioned database opens");
        let license = store.get_license(&addr()).await.unwrap().expect("the license is kept");
        assert_eq!(
            (license.id, license.max_activations, license.times_activated),
            (7, 3, 2)
        );
        assert_eq!(version(&path), SCHEMA_VERSION as i64);
        // Migration 2 ran: audit records can be written.
        let record = AuditRecord {
            company: CompanyId::parse("acme").unwrap(),
            id: "1".into(),
            at: Timestamp::from_millis(0),
            actor: "cli".into(),
            action: "license.update".into(),
            subject: addr().storage_key(),
            detail: serde_json::json!({}),
            expires_at: 86_400,
        };
        let item = Item::Audit(record.company.clone(), record.id.clone());
        store
            .write(&Write::create(item.clone(), Image::Audit(Box::new(record.clone()))))
            .await
            .unwrap();
        assert_eq!(store.load(&item).await.unwrap(), Some(Image::Audit(Box::new(record))));
        drop(store);
        SqliteStore::open(&path).expect("a current database opens again");
        assert_eq!(version(&path), SCHEMA_VERSION as i64);
    }

    #[test]
    fn a_database_from_a_newer_build_is_refused() {
        let path = scratch("newer");
        drop(SqliteStore::open(&path).unwrap());
        Connection::open(&path)
            .unwrap()
            .pragma_update(None, "user_version", 99)
            .unwrap();
        let err = SqliteStore::open(&path).expect_err("a newer schema is refused");
        assert!(matches!(err, StoreError::SchemaTooNew { found: 99, .. }), "{err:?}");
        let message = err.to_string();
        assert!(
            message.contains(&format!(
                "has schema version 99, newer than this license-server knows ({SCHEMA_VERSION}): upgrade license-server"
            )) && message.contains(&path.display().to_string()),
            "{message}"
        );
        assert_eq!(version(&path), 99, "the database is left as it was");
    }
}
