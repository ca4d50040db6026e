//! The embedded store: the same [`Store`] contract over one SQLite file (WAL, `synchronous=FULL`, so an
//! acknowledged write survives a crash of the process; created 0600). Every write runs in a
//! `BEGIN IMMEDIATE` transaction that reads the items of its [`Write`] and evaluates the very conditions
//! DynamoDB is sent ([`write::apply`]) before changing anything, so several server processes on one file
//! are exactly as safe as several Lambdas on one table. All database work runs on the store's own
//! thread, never on the runtime's shared blocking pool (password hashing cannot starve it).

use super::write::{self, Image, Item, Refused, Write};
use super::{
    ContextQuery, ContextRead, LicenseAddr, LicenseRead, Rejection, RequestKey, Store, StoreError, WriteToken,
};
use crate::ids::{ApiKeyId, CompanyId, HardwareId, LicenseKey, ProductCode, Username};
use crate::model::{ApiKeyRecord, Company, Device, License, LicenseUser, ProcessedRequest, ProductDoc, Seat};
use crate::time::Timestamp;
use async_trait::async_trait;
use rusqlite::{params, Connection, ErrorCode, OptionalExtension, Row, TransactionBehavior};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::path::Path;
use std::time::Duration;

const SCHEMA: &str = r#"
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

/// Work for the store's thread.
type Job = Box<dyn FnOnce(&mut Connection) + Send>;

#[derive(Clone, Debug)]
pub struct SqliteStore {
    jobs: std::sync::mpsc::Sender<Job>,
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

fn to_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("domain types serialise to JSON")
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

/// Brings a database written by an earlier version to the current schema, keeping its data: released
/// slots move from a JSON list on the license to one row each, devices get their version column.
fn migrate(c: &mut Connection) -> rusqlite::Result<()> {
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    if !has_column(&tx, "devices", "activations")? {
        tx.execute_batch(
            "ALTER TABLE devices ADD COLUMN activations INTEGER NOT NULL DEFAULT 1;
             ALTER TABLE devices ADD COLUMN write_token TEXT;",
        )?;
    }
    if !has_column(&tx, "licenses", "consumptions")? {
        tx.execute_batch(
            "ALTER TABLE licenses ADD COLUMN consumptions INTEGER NOT NULL DEFAULT 0;
             ALTER TABLE licenses ADD COLUMN feature_consumptions TEXT NOT NULL DEFAULT '{}';",
        )?;
    }
    if !has_column(&tx, "licenses", "consumptions_period")? {
        tx.execute_batch(
            "ALTER TABLE licenses ADD COLUMN consumptions_period INTEGER;
             ALTER TABLE licenses ADD COLUMN feature_periods TEXT NOT NULL DEFAULT '{}';",
        )?;
    }
    if has_column(&tx, "licenses", "released")? {
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
    tx.commit()
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
    conn.busy_timeout(Duration::from_secs(10))
        .map_err(file("open database"))?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(file("open database"))?;
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(file("open database"))?;
    conn.execute_batch(SCHEMA)
        .map_err(file("create the schema of database"))?;
    migrate(&mut conn).map_err(file("migrate database"))?;
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
            .spawn(move || {
                while let Ok(job) = queue.recv() {
                    // A panicking job drops its reply channel (its caller sees an error); the
                    // connection and the thread stay for the next job.
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(&mut conn)));
                }
            })
            .map_err(|e| StoreError::Backend {
                operation: "start store thread",
                source: Box::new(e),
            })?;
        Ok(Self { jobs })
    }

    /// Runs `f` on the store's thread.
    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> rusqlite::Result<T> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |c| {
            let _ = reply.send(f(c));
        });
        let lost = || rusqlite::Error::InvalidQuery;
        self.jobs.send(job).map_err(|_| lost())?;
        answer.await.map_err(|_| lost())?
    }

    async fn read<T: Send + 'static>(
        &self,
        operation: &'static str,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.run(move |c| f(c)).await.map_err(backend(operation))
    }

    async fn upsert(
        &self,
        operation: &'static str,
        sql: &'static str,
        values: Vec<rusqlite::types::Value>,
    ) -> Result<(), StoreError> {
        self.read(operation, move |c| {
            c.execute(sql, rusqlite::params_from_iter(values)).map(|_| ())
        })
        .await
    }
}

fn license_row(c: &Connection, addr: &LicenseAddr) -> rusqlite::Result<Option<License>> {
    let pk = addr.storage_key();
    let (company, product) = match addr {
        LicenseAddr::Key { company, product, .. } | LicenseAddr::Id { company, product, .. } => {
            (company.clone(), product.clone())
        }
    };
    c.query_row(
        "SELECT license_id, license_key, enabled, max_activations, unlimited, max_transfers, validity_period, terms,
                times_activated, transfer_count, released_count, consumptions, feature_consumptions,
                consumptions_period, feature_periods
         FROM licenses WHERE pk = ?1",
        [&pk],
        |r| {
            Ok(License {
                id: r.get(0)?,
                company: company.clone(),
                product: product.clone(),
                key: r
                    .get::<_, Option<String>>(1)?
                    .map(|k| id(&pk, &k, LicenseKey::parse))
                    .transpose()?,
                enabled: r.get(2)?,
                max_activations: r.get(3)?,
                allow_unlimited_activations: r.get(4)?,
                max_transfers: r.get(5)?,
                validity_period: time(&pk, r.get(6)?)?,
                terms: from_json(&pk, &r.get::<_, String>(7)?)?,
                times_activated: r.get(8)?,
                transfer_count: r.get(9)?,
                released_count: r.get(10)?,
                consumptions: r.get(11)?,
                feature_consumptions: from_json(&pk, &r.get::<_, String>(12)?)?,
                consumptions_period: r.get::<_, Option<i64>>(13)?.map(Timestamp::from_millis),
                feature_periods: from_json(&pk, &r.get::<_, String>(14)?)?,
            })
        },
    )
    .optional()
}

fn device_from(pk: &str, r: &Row<'_>) -> rusqlite::Result<Device> {
    Ok(Device {
        id: r.get(0)?,
        hardware_id: id(pk, &r.get::<_, String>(1)?, HardwareId::parse)?,
        active: r.get(2)?,
        user: r
            .get::<_, Option<String>>(3)?
            .map(|u| id(pk, &u, Username::parse))
            .transpose()?,
        first_activated_at: time(pk, r.get(4)?)?.ok_or_else(|| corrupt(pk, "first_activated_at missing"))?,
        last_activated_at: time(pk, r.get(5)?)?.ok_or_else(|| corrupt(pk, "last_activated_at missing"))?,
        deactivated_at: time(pk, r.get(6)?)?,
        last_seen_at: time(pk, r.get(7)?)?,
        details: from_json(pk, &r.get::<_, String>(8)?)?,
        variables: from_json(pk, &r.get::<_, String>(9)?)?,
        activations: r.get(10)?,
        write_token: r.get(11)?,
    })
}

const DEVICE_COLUMNS: &str = "device_id, hardware_id, active, user, first_activated_at, last_activated_at, \
     deactivated_at, last_seen_at, details, variables, activations, write_token";

fn device_row(c: &Connection, addr: &LicenseAddr, hw: &HardwareId) -> rusqlite::Result<Option<Device>> {
    let pk = addr.storage_key();
    c.query_row(
        &format!("SELECT {DEVICE_COLUMNS} FROM devices WHERE license_pk = ?1 AND hardware_id = ?2"),
        params![pk, hw.as_str()],
        |r| device_from(&pk, r),
    )
    .optional()
}

fn put_device(c: &Connection, addr: &LicenseAddr, d: &Device) -> rusqlite::Result<()> {
    c.execute(
        &format!(
            "INSERT OR REPLACE INTO devices (license_pk, {DEVICE_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"
        ),
        params![
            addr.storage_key(),
            d.id,
            d.hardware_id.as_str(),
            d.active,
            d.user.as_ref().map(Username::as_str),
            d.first_activated_at.to_string(),
            d.last_activated_at.to_string(),
            d.deactivated_at.map(|t| t.to_string()),
            d.last_seen_at.map(|t| t.to_string()),
            to_json(&d.details),
            to_json(&d.variables),
            d.activations,
            d.write_token,
        ],
    )
    .map(|_| ())
}

fn seat_row(c: &Connection, addr: &LicenseAddr, user: &Username) -> rusqlite::Result<Option<Seat>> {
    let pk = addr.storage_key();
    c.query_row(
        "SELECT user, max_activations, unlimited, total_activations FROM seats WHERE license_pk = ?1 AND user = ?2",
        params![pk, user.as_str()],
        |r| {
            Ok(Seat {
                user: id(&pk, &r.get::<_, String>(0)?, Username::parse)?,
                max_activations: r.get(1)?,
                allow_unlimited_activations: r.get(2)?,
                total_activations: r.get(3)?,
            })
        },
    )
    .optional()
}

fn doc_row<T: DeserializeOwned>(c: &Connection, sql: &str, args: &[&str]) -> rusqlite::Result<Option<T>> {
    let text: Option<String> = c
        .query_row(sql, rusqlite::params_from_iter(args), |r| r.get(0))
        .optional()?;
    text.map(|t| from_json(sql, &t)).transpose()
}

fn save_license_counters(c: &Connection, l: &License) -> rusqlite::Result<()> {
    c.execute(
        "UPDATE licenses SET times_activated = ?2, transfer_count = ?3, released_count = ?4, validity_period = ?5,
            consumptions = ?6, feature_consumptions = ?7, consumptions_period = ?8, feature_periods = ?9
         WHERE pk = ?1",
        params![
            LicenseAddr::of(l).storage_key(),
            l.times_activated,
            l.transfer_count,
            l.released_count,
            l.validity_period.map(|t| t.to_string()),
            l.consumptions,
            to_json(&l.feature_consumptions),
            l.consumptions_period.map(Timestamp::millis),
            to_json(&l.feature_periods)
        ],
    )
    .map(|_| ())
}

fn is_released(c: &Connection, addr: &LicenseAddr, hw: &HardwareId) -> rusqlite::Result<bool> {
    c.prepare_cached("SELECT 1 FROM released WHERE license_pk = ?1 AND hardware_id = ?2")?
        .exists(params![addr.storage_key(), hw.as_str()])
}

fn request_row(c: &Connection, addr: &LicenseAddr, key: &RequestKey) -> rusqlite::Result<Option<ProcessedRequest>> {
    let pk = addr.storage_key();
    c.prepare_cached(
        "SELECT answer, processed_at, expires_at FROM requests WHERE license_pk = ?1 AND request_key = ?2",
    )?
    .query_row(params![pk, key.as_str()], |r| {
        Ok(ProcessedRequest {
            key: key.clone(),
            answer: r.get(0)?,
            processed_at: time(&pk, Some(r.get(1)?))?.unwrap_or(Timestamp::from_millis(0)),
            expires_at: r.get(2)?,
        })
    })
    .optional()
}

const PRODUCT_DOC: &str = "SELECT doc FROM products WHERE company = ?1 AND code = ?2";
const COMPANY_DOC: &str = "SELECT doc FROM companies WHERE id = ?1";

/// An item of a write as stored now.
fn load(c: &Connection, item: &Item) -> rusqlite::Result<Option<Image>> {
    Ok(match item {
        Item::Product(company, code) => doc_row::<ProductDoc>(c, PRODUCT_DOC, &[company.as_str(), code.as_str()])?
            .map(|p| Image::Product(Box::new(p))),
        Item::Company(company) => {
            doc_row::<Company>(c, COMPANY_DOC, &[company.as_str()])?.map(|d| Image::Company(Box::new(d)))
        }
        Item::License(addr) => license_row(c, addr)?.map(|l| Image::License(Box::new(l))),
        Item::Device(addr, hw) => device_row(c, addr, hw)?.map(|d| Image::Device(Box::new(d))),
        Item::Seat(addr, user) => seat_row(c, addr, user)?.map(Image::Seat),
        Item::Released(addr, hw) => is_released(c, addr, hw)?.then_some(Image::Marker),
        Item::Request(addr, key) => request_row(c, addr, key)?.map(|r| Image::Request(Box::new(r))),
    })
}

/// Writes back an item the write changed.
fn save(c: &Connection, item: &Item, image: Option<&Image>) -> rusqlite::Result<()> {
    match (item, image) {
        (Item::License(_), Some(Image::License(l))) => save_license_counters(c, l),
        (Item::Device(addr, _), Some(Image::Device(d))) => put_device(c, addr, d),
        (Item::Seat(addr, user), Some(Image::Seat(seat))) => c
            .execute(
                "UPDATE seats SET total_activations = ?3 WHERE license_pk = ?1 AND user = ?2",
                params![addr.storage_key(), user.as_str(), seat.total_activations],
            )
            .map(drop),
        (Item::Released(addr, hw), Some(_)) => c
            .execute(
                "INSERT OR IGNORE INTO released (license_pk, hardware_id) VALUES (?1, ?2)",
                params![addr.storage_key(), hw.as_str()],
            )
            .map(drop),
        (Item::Released(addr, hw), None) => c
            .execute(
                "DELETE FROM released WHERE license_pk = ?1 AND hardware_id = ?2",
                params![addr.storage_key(), hw.as_str()],
            )
            .map(drop),
        (Item::Request(addr, key), Some(Image::Request(r))) => {
            // Expired records go as new ones arrive, like DynamoDB's TTL deletes them.
            c.execute(
                "DELETE FROM requests WHERE license_pk = ?1 AND expires_at <= ?2",
                params![addr.storage_key(), r.processed_at.unix_seconds()],
            )?;
            c.execute(
                "INSERT OR REPLACE INTO requests (license_pk, request_key, answer, processed_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    addr.storage_key(),
                    key.as_str(),
                    r.answer,
                    r.processed_at.to_string(),
                    r.expires_at
                ],
            )
            .map(drop)
        }
        (item, _) => Err(corrupt("write", format!("cannot store {item:?} as written"))),
    }
}

/// One [`Write`] inside one `BEGIN IMMEDIATE` transaction: read its items, evaluate, write back.
fn apply_write(c: &mut Connection, write: &Write) -> rusqlite::Result<Result<(), Rejection>> {
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut images = write
        .items
        .iter()
        .map(|w| load(&tx, &w.item))
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
            save(&tx, &w.item, image.as_ref())?;
        }
    }
    tx.commit()?;
    Ok(Ok(()))
}

#[async_trait]
impl Store for SqliteStore {
    async fn api_key(&self, key: &ApiKeyId) -> Result<Option<ApiKeyRecord>, StoreError> {
        let key = key.clone();
        self.read("read api key", move |c| {
            c.query_row(
                "SELECT id, company, shared_key, products, read_only, revoked FROM api_keys WHERE id = ?1",
                [key.as_str()],
                |r| {
                    let k = key.as_str();
                    let products: Vec<String> = from_json(k, &r.get::<_, String>(3)?)?;
                    Ok(ApiKeyRecord {
                        id: id(k, &r.get::<_, String>(0)?, ApiKeyId::parse)?,
                        company: id(k, &r.get::<_, String>(1)?, CompanyId::parse)?,
                        shared_key: r.get(2)?,
                        products: products
                            .iter()
                            .map(|p| id(k, p, ProductCode::parse))
                            .collect::<rusqlite::Result<_>>()?,
                        read_only: r.get(4)?,
                        revoked: r.get(5)?,
                    })
                },
            )
            .optional()
        })
        .await
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
                product: doc_row(c, PRODUCT_DOC, &[company.as_str(), product.as_str()])?,
                company: doc_row(c, COMPANY_DOC, &[company.as_str()])?,
                ..ContextRead::default()
            };
            if let Some(addr) = &addr {
                read.license = license_row(c, addr)?;
                if let Some(hw) = &hw {
                    read.device = device_row(c, addr, hw)?;
                    read.released = is_released(c, addr, hw)?;
                }
            }
            if let Some(user) = &user {
                read.user = doc_row(
                    c,
                    "SELECT doc FROM users WHERE company = ?1 AND email = ?2",
                    &[company.as_str(), user.as_str()],
                )?;
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
            Ok(LicenseRead {
                license: license_row(c, &addr)?,
                device: device_row(c, &addr, &hw)?,
                released: is_released(c, &addr, &hw)?,
                seat: seat.map(|u| seat_row(c, &addr, &u)).transpose()?.flatten(),
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
        let (addr, key) = (addr.clone(), key.clone());
        self.read("read processed request", move |c| request_row(c, &addr, &key))
            .await
            .map(|r| r.filter(|r| r.is_live(now)))
    }

    async fn apply(&self, write: &Write, _token: &WriteToken) -> Result<(), Rejection> {
        // A local transaction's outcome is never unknown, so the token has nothing to disambiguate.
        let write = write.clone();
        match self.run(move |c| apply_write(c, &write)).await {
            Ok(verdict) => verdict,
            Err(e) if is_busy(&e) => Err(Rejection::Conflict),
            Err(e) => Err(Rejection::Store(backend("write")(e))),
        }
    }

    async fn put_api_key(&self, key: &ApiKeyRecord) -> Result<(), StoreError> {
        let products: Vec<&str> = key.products.iter().map(ProductCode::as_str).collect();
        self.upsert(
            "put api key",
            "INSERT OR REPLACE INTO api_keys (id, company, shared_key, products, read_only, revoked) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            vec![
                key.id.as_str().to_owned().into(),
                key.company.as_str().to_owned().into(),
                key.shared_key.clone().into(),
                to_json(&products).into(),
                i64::from(key.read_only).into(),
                i64::from(key.revoked).into(),
            ],
        )
        .await
    }

    async fn put_company(&self, company: &CompanyId, doc: &Company) -> Result<(), StoreError> {
        self.upsert(
            "put company",
            "INSERT OR REPLACE INTO companies (id, doc) VALUES (?1, ?2)",
            vec![company.as_str().to_owned().into(), to_json(doc).into()],
        )
        .await
    }

    async fn put_product(&self, company: &CompanyId, product: &ProductDoc) -> Result<(), StoreError> {
        self.upsert(
            "put product",
            "INSERT OR REPLACE INTO products (company, code, doc) VALUES (?1, ?2, ?3)",
            vec![
                company.as_str().to_owned().into(),
                product.code.as_str().to_owned().into(),
                to_json(product).into(),
            ],
        )
        .await
    }

    async fn put_license(&self, l: &License) -> Result<(), StoreError> {
        let validity: rusqlite::types::Value = match l.validity_period {
            Some(t) => t.to_string().into(),
            None => rusqlite::types::Value::Null,
        };
        let key: rusqlite::types::Value = match &l.key {
            Some(k) => k.as_str().to_owned().into(),
            None => rusqlite::types::Value::Null,
        };
        // Vendor-controlled columns are replaced; counters are kept; a trial's validity set by its first
        // activation is kept unless the catalog sets one.
        self.upsert(
            "put license",
            "INSERT INTO licenses (pk, license_id, license_key, enabled, max_activations, unlimited, max_transfers, validity_period, terms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
             ON CONFLICT (pk) DO UPDATE SET license_id = excluded.license_id, license_key = excluded.license_key,
                enabled = excluded.enabled, max_activations = excluded.max_activations, unlimited = excluded.unlimited,
                max_transfers = excluded.max_transfers, terms = excluded.terms,
                validity_period = COALESCE(excluded.validity_period, licenses.validity_period)",
            vec![
                LicenseAddr::of(l).storage_key().into(),
                l.id.into(),
                key,
                i64::from(l.enabled).into(),
                l.max_activations.into(),
                i64::from(l.allow_unlimited_activations).into(),
                l.max_transfers.into(),
                validity,
                to_json(&l.terms).into(),
            ],
        )
        .await
    }

    async fn put_user(&self, company: &CompanyId, user: &LicenseUser) -> Result<(), StoreError> {
        self.upsert(
            "put user",
            "INSERT OR REPLACE INTO users (company, email, doc) VALUES (?1, ?2, ?3)",
            vec![
                company.as_str().to_owned().into(),
                user.email.as_str().to_owned().into(),
                to_json(user).into(),
            ],
        )
        .await
    }

    async fn put_seat(&self, addr: &LicenseAddr, seat: &Seat) -> Result<(), StoreError> {
        self.upsert(
            "put seat",
            "INSERT INTO seats (license_pk, user, max_activations, unlimited) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (license_pk, user) DO UPDATE SET max_activations = excluded.max_activations, unlimited = excluded.unlimited",
            vec![
                addr.storage_key().into(),
                seat.user.as_str().to_owned().into(),
                seat.max_activations.into(),
                i64::from(seat.allow_unlimited_activations).into(),
            ],
        )
        .await
    }

    async fn get_license(&self, addr: &LicenseAddr) -> Result<Option<License>, StoreError> {
        let addr = addr.clone();
        self.read("read license", move |c| license_row(c, &addr)).await
    }

    async fn get_seat(&self, addr: &LicenseAddr, user: &Username) -> Result<Option<Seat>, StoreError> {
        let (addr, user) = (addr.clone(), user.clone());
        self.read("read seat", move |c| seat_row(c, &addr, &user)).await
    }

    async fn get_user(&self, company: &CompanyId, user: &Username) -> Result<Option<LicenseUser>, StoreError> {
        let (company, user) = (company.clone(), user.clone());
        self.read("read user", move |c| {
            doc_row(
                c,
                "SELECT doc FROM users WHERE company = ?1 AND email = ?2",
                &[company.as_str(), user.as_str()],
            )
        })
        .await
    }

    async fn list_devices(&self, addr: &LicenseAddr) -> Result<Vec<Device>, StoreError> {
        let pk = addr.storage_key();
        self.read("list devices", move |c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {DEVICE_COLUMNS} FROM devices WHERE license_pk = ?1 ORDER BY hardware_id"
            ))?;
            let rows = stmt.query_map([&pk], |r| device_from(&pk, r))?;
            rows.collect()
        })
        .await
    }
}
