//! A store that lets a test put another request between a request's read and its write: before the
//! first conditional write through it, it runs a one-shot hook (e.g. a concurrent single-license change
//! sent through another instance), then applies the write to the real store. Deterministic races,
//! without mocks: every operation still reaches DynamoDB Local or SQLite.

use async_trait::async_trait;
use futures::future::BoxFuture;
use license_api::ids::{ApiKeyId, CompanyId, HardwareId, RequestKey, Username};
use license_api::model::{ApiKeyRecord, Company, Device, License, LicenseUser, ProcessedRequest, ProductDoc, Seat};
use license_api::plan::{LicenseAddr, WriteToken};
use license_api::store::write::{Image, Item, Write};
use license_api::store::{ContextQuery, ContextRead, LicenseRead, Rejection, Store, StoreError};
use license_api::time::Timestamp;
use std::sync::{Arc, Mutex};

type Hook = Box<dyn FnOnce() -> BoxFuture<'static, ()> + Send>;

pub struct Interleave {
    inner: Arc<dyn Store>,
    before_write: Mutex<Option<Hook>>,
}

impl Interleave {
    /// `hook` runs once, before the first write, and the write waits for it.
    pub fn new(inner: Arc<dyn Store>, hook: impl FnOnce() -> BoxFuture<'static, ()> + Send + 'static) -> Self {
        Self {
            inner,
            before_write: Mutex::new(Some(Box::new(hook))),
        }
    }
}

#[async_trait]
impl Store for Interleave {
    async fn api_key(&self, id: &ApiKeyId) -> Result<Option<ApiKeyRecord>, StoreError> {
        self.inner.api_key(id).await
    }
    async fn read_context(&self, q: &ContextQuery<'_>) -> Result<ContextRead, StoreError> {
        self.inner.read_context(q).await
    }
    async fn read_license(
        &self,
        addr: &LicenseAddr,
        seat: Option<&Username>,
        hardware_id: &HardwareId,
    ) -> Result<LicenseRead, StoreError> {
        self.inner.read_license(addr, seat, hardware_id).await
    }
    async fn released_slot(&self, addr: &LicenseAddr) -> Result<Option<HardwareId>, StoreError> {
        self.inner.released_slot(addr).await
    }
    async fn processed_request(
        &self,
        addr: &LicenseAddr,
        key: &RequestKey,
        now: Timestamp,
    ) -> Result<Option<ProcessedRequest>, StoreError> {
        self.inner.processed_request(addr, key, now).await
    }
    async fn load(&self, item: &Item) -> Result<Option<Image>, StoreError> {
        self.inner.load(item).await
    }
    async fn licenses_page(
        &self,
        query: &license_api::store::listing::LicenseQuery,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<license_api::store::listing::LicensePage, StoreError> {
        self.inner.licenses_page(query, cursor, limit).await
    }
    async fn item_page(
        &self,
        kind: license_api::store::listing::ItemKind,
        company: &license_api::ids::CompanyId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<license_api::store::listing::ItemPage, StoreError> {
        self.inner.item_page(kind, company, after, limit).await
    }
    async fn items_beside(&self, addr: &LicenseAddr) -> Result<Vec<Item>, StoreError> {
        self.inner.items_beside(addr).await
    }
    async fn apply(&self, write: &Write, token: &WriteToken) -> Result<(), Rejection> {
        let hook = self.before_write.lock().unwrap().take();
        if let Some(hook) = hook {
            hook().await;
        }
        self.inner.apply(write, token).await
    }
    async fn put_api_key(&self, key: &ApiKeyRecord) -> Result<(), StoreError> {
        self.inner.put_api_key(key).await
    }
    async fn put_company(&self, company: &CompanyId, doc: &Company) -> Result<(), StoreError> {
        self.inner.put_company(company, doc).await
    }
    async fn put_product(&self, company: &CompanyId, product: &ProductDoc) -> Result<(), StoreError> {
        self.inner.put_product(company, product).await
    }
    async fn put_license(&self, license: &License) -> Result<(), StoreError> {
        self.inner.put_license(license).await
    }
    async fn put_user(&self, company: &CompanyId, user: &LicenseUser) -> Result<(), StoreError> {
        self.inner.put_user(company, user).await
    }
    async fn put_seat(&self, addr: &LicenseAddr, seat: &Seat) -> Result<(), StoreError> {
        self.inner.put_seat(addr, seat).await
    }
    async fn get_license(&self, addr: &LicenseAddr) -> Result<Option<License>, StoreError> {
        self.inner.get_license(addr).await
    }
    async fn get_seat(&self, addr: &LicenseAddr, user: &Username) -> Result<Option<Seat>, StoreError> {
        self.inner.get_seat(addr, user).await
    }
    async fn get_user(&self, company: &CompanyId, user: &Username) -> Result<Option<LicenseUser>, StoreError> {
        self.inner.get_user(company, user).await
    }
    async fn list_devices(&self, addr: &LicenseAddr) -> Result<Vec<Device>, StoreError> {
        self.inner.list_devices(addr).await
    }

    async fn list_seats(&self, addr: &LicenseAddr) -> Result<Vec<license_api::model::Seat>, StoreError> {
        self.inner.list_seats(addr).await
    }

    async fn audit_records(
        &self,
        company: &CompanyId,
        filter: &license_api::audit::AuditFilter,
        cursor: Option<&str>,
        limit: usize,
        now: Timestamp,
    ) -> Result<license_api::audit::AuditPage, StoreError> {
        self.inner.audit_records(company, filter, cursor, limit, now).await
    }
}
