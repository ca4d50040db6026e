//! The DynamoDB implementation of [`Store`]: one table, string keys `PK`/`SK`, every invariant a condition
//! inside the write that would break it. `docs/data-model.md` describes the items and each transaction.

mod codec;
mod expr;
mod keys;
mod listing;
mod plain;
mod reindex;
mod usage;

use super::listing::{ItemKind, ItemPage, LicensePage, LicenseQuery};
use super::write::{Attr, Image, Item, Write};
use super::{ContextQuery, ContextRead, LicenseRead, Rejection, Store, StoreError};
use crate::audit::{self, AuditFilter, AuditPage};
use crate::ids::{CompanyId, HardwareId, ManagementKeyId, RequestKey, Username};
use crate::model::{Company, Device, LicenseUser, ManagementKeyRecord, ProcessedRequest, ProductDoc, Seat};
use crate::plan::{LicenseAddr, WriteToken};
use crate::time::Timestamp;
use async_trait::async_trait;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, CancellationReason, GlobalSecondaryIndex, KeySchemaElement, KeyType,
    KeysAndAttributes, Projection, ProjectionType, ReturnConsumedCapacity, ScalarAttributeType,
    TimeToLiveSpecification, TransactWriteItem,
};
use aws_sdk_dynamodb::Client;
use keys::{s, ItemMap};
pub use keys::{PK, SK};
pub use reindex::{Backfill, ReindexReport};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use usage::Capacity;
pub use usage::{Usage, UsageSnapshot};

/// Every request asks DynamoDB what it consumed, for [`DynamoStore::usage`].
const CONSUMED: ReturnConsumedCapacity = ReturnConsumedCapacity::Total;

/// A DynamoDB client for an AWS configuration, optionally at another endpoint (e.g. DynamoDB Local).
pub fn client_from(sdk: &aws_config::SdkConfig, endpoint: Option<&str>) -> aws_sdk_dynamodb::Client {
    let mut builder = aws_sdk_dynamodb::config::Builder::from(sdk);
    if let Some(url) = endpoint {
        builder = builder.endpoint_url(url);
    }
    aws_sdk_dynamodb::Client::from_conf(builder.build())
}

#[derive(Clone, Debug)]
pub struct DynamoStore {
    client: Client,
    table: String,
    usage: Arc<Usage>,
}

/// Maps an SDK error to a [`StoreError`] by what it is: a missing table says how to create it, and
/// every other error keeps its whole source chain (`DisplayErrorContext`) for the log.
fn backend<E, R>(operation: &'static str, table: &str) -> impl FnOnce(SdkError<E, R>) -> StoreError
where
    E: std::error::Error + ProvideErrorMetadata + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let table = table.to_owned();
    move |source| {
        if source.code() == Some("ResourceNotFoundException") {
            return StoreError::TableMissing { table };
        }
        let throttled = matches!(
            source.code(),
            Some(
                "ThrottlingException"
                    | "ProvisionedThroughputExceededException"
                    | "RequestLimitExceeded"
                    | "InternalServerError"
            )
        );
        if throttled || matches!(source, SdkError::TimeoutError(_) | SdkError::DispatchFailure(_)) {
            return StoreError::Unavailable(format!("{operation}: {}", DisplayErrorContext(&source)));
        }
        StoreError::Aws {
            operation,
            source: Box::new(source),
        }
    }
}

/// A global secondary index as `--create-table` creates it (template.yaml declares the same).
fn index(i: &keys::Index, key: impl Fn(&str, KeyType) -> KeySchemaElement) -> GlobalSecondaryIndex {
    GlobalSecondaryIndex::builder()
        .index_name(i.name)
        .key_schema(key(i.pk, KeyType::Hash))
        .key_schema(key(i.sk, KeyType::Range))
        .projection(Projection::builder().projection_type(ProjectionType::KeysOnly).build())
        .build()
        .expect("name, keys and projection are set")
}

/// Attempts of a `BatchGetItem` that keeps leaving keys unprocessed (throttling) before the store
/// answers "unavailable": about 2.5 s of backoff in all, well below the function timeout.
const BATCH_GET_ATTEMPTS: u32 = 8;

/// The attribute DynamoDB's time to live reads (template.yaml sets the same).
pub const TTL_ATTRIBUTE: &str = "expires_at";

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            usage: Arc::default(),
        }
    }

    /// Capacity consumed and transaction conflicts met by this handle (and its clones) so far.
    pub fn usage(&self) -> Arc<Usage> {
        self.usage.clone()
    }

    /// Creates the table (on-demand, `PK`/`SK` strings) if it does not exist and waits until it is active.
    pub async fn create_table(&self) -> Result<(), StoreError> {
        let attr = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .expect("name and type are set")
        };
        let key = |name: &str, kind| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(kind)
                .build()
                .expect("name and type are set")
        };
        let created = self
            .client
            .create_table()
            .table_name(&self.table)
            .billing_mode(BillingMode::PayPerRequest)
            .key_schema(key(PK, KeyType::Hash))
            .key_schema(key(SK, KeyType::Range))
            .set_attribute_definitions(Some(
                [attr(PK), attr(SK)]
                    .into_iter()
                    .chain(keys::INDEXES.iter().flat_map(|i| [attr(i.pk), attr(i.sk)]))
                    .collect(),
            ))
            .set_global_secondary_indexes(Some(keys::INDEXES.iter().map(|i| index(i, key)).collect()))
            .send()
            .await;
        match created {
            Ok(_) => {}
            Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_in_use_exception()) => {}
            Err(e) => return Err(backend("CreateTable", &self.table)(e)),
        }
        for _ in 0..120 {
            let described = self.client.describe_table().table_name(&self.table).send().await;
            let status = described
                .map_err(backend("DescribeTable", &self.table))?
                .table
                .and_then(|t| t.table_status);
            if status == Some(aws_sdk_dynamodb::types::TableStatus::Active) {
                return self.enable_ttl().await;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        Err(StoreError::Invalid(format!(
            "table {} did not become active",
            self.table
        )))
    }

    /// Lets DynamoDB delete records of applied offline requests once they expire (`expires_at`).
    async fn enable_ttl(&self) -> Result<(), StoreError> {
        let spec = TimeToLiveSpecification::builder()
            .attribute_name(TTL_ATTRIBUTE)
            .enabled(true)
            .build()
            .expect("name and flag are set");
        let enabled = self
            .client
            .update_time_to_live()
            .table_name(&self.table)
            .time_to_live_specification(spec)
            .send()
            .await;
        match enabled {
            Ok(_) => Ok(()),
            // Already enabled (a table created earlier): nothing to do.
            Err(e)
                if e.as_service_error()
                    .and_then(|s| s.message())
                    .is_some_and(|m| m.contains("already enabled")) =>
            {
                Ok(())
            }
            Err(e) => Err(backend("UpdateTimeToLive", &self.table)(e)),
        }
    }

    /// BatchGetItem for up to 100 keys, following `UnprocessedKeys` for at most [`BATCH_GET_ATTEMPTS`].
    async fn batch_get(&self, keys: Vec<ItemMap>) -> Result<HashMap<(String, String), ItemMap>, StoreError> {
        let mut found = HashMap::new();
        let mut pending = Some(
            KeysAndAttributes::builder()
                .set_keys(Some(keys))
                .consistent_read(true)
                .build()
                .expect("keys are set"),
        );
        let mut attempt = 0u32;
        while let Some(request) = pending.take() {
            if attempt == BATCH_GET_ATTEMPTS {
                return Err(StoreError::Unavailable(
                    "BatchGetItem left keys unprocessed on every attempt (throttled)".into(),
                ));
            }
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(10u64 << attempt.min(6))).await;
            }
            attempt += 1;
            let out = self
                .client
                .batch_get_item()
                .request_items(&self.table, request)
                .return_consumed_capacity(CONSUMED)
                .send()
                .await
                .map_err(backend("BatchGetItem", &self.table))?;
            self.usage.consumed(Capacity::Read, out.consumed_capacity());
            for item in out
                .responses
                .unwrap_or_default()
                .remove(&self.table)
                .unwrap_or_default()
            {
                let key = (keys::key_part(&item, PK), keys::key_part(&item, SK));
                found.insert(key, item);
            }
            pending = out
                .unprocessed_keys
                .unwrap_or_default()
                .remove(&self.table)
                .filter(|k| !k.keys.is_empty());
        }
        Ok(found)
    }

    async fn get(&self, key: ItemMap) -> Result<Option<ItemMap>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .consistent_read(true)
            .return_consumed_capacity(CONSUMED)
            .send()
            .await
            .map_err(backend("GetItem", &self.table))?;
        self.usage.consumed(Capacity::Read, out.consumed_capacity());
        Ok(out.item)
    }

    async fn transact(
        &self,
        items: Vec<TransactWriteItem>,
        token: &WriteToken,
    ) -> Result<(), SdkError<TransactWriteItemsError>> {
        let out = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .client_request_token(token.as_str())
            .return_consumed_capacity(CONSUMED)
            .send()
            .await?;
        self.usage.consumed(Capacity::Write, out.consumed_capacity());
        Ok(())
    }
}

fn reason_code(r: &CancellationReason) -> &str {
    r.code().unwrap_or("None")
}

/// The image DynamoDB returned (`ALL_OLD`) for an item whose condition failed.
fn image(item: &Item, returned: Option<&ItemMap>) -> Option<Image> {
    codec::decode(item, returned?).ok()
}

/// What a failed `TransactWriteItems` means for the write: which condition refused it (re-decide), a
/// definite non-commit (retry with a new token), or an unknown outcome (retry with the same token).
fn rejection_from(err: SdkError<TransactWriteItemsError>, write: &Write, table: &str, usage: &Usage) -> Rejection {
    let reasons = match &err {
        SdkError::ServiceError(e) => match e.err() {
            TransactWriteItemsError::TransactionCanceledException(c) => c.cancellation_reasons().to_vec(),
            // The same token is still being applied, or the service failed mid-way: outcome unknown.
            TransactWriteItemsError::TransactionInProgressException(_)
            | TransactWriteItemsError::InternalServerError(_) => return Rejection::Unknown(Box::new(err)),
            TransactWriteItemsError::ProvisionedThroughputExceededException(_)
            | TransactWriteItemsError::RequestLimitExceeded(_)
            | TransactWriteItemsError::ThrottlingException(_) => return Rejection::Conflict,
            _ => return Rejection::Store(backend("TransactWriteItems", table)(err)),
        },
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            return Rejection::Unknown(Box::new(err))
        }
        _ => return Rejection::Store(backend("TransactWriteItems", table)(err)),
    };
    if reasons.iter().any(|r| reason_code(r) == "TransactionConflict") {
        usage.conflict();
    }
    if let Some(index) = reasons
        .iter()
        .position(|r| reason_code(r) == "ConditionalCheckFailed")
        .filter(|i| *i < write.items.len())
    {
        let current = image(&write.items[index].item, reasons[index].item.as_ref());
        return Rejection::for_item(write, index, current);
    }
    if reasons.iter().any(|r| {
        matches!(
            reason_code(r),
            "TransactionConflict" | "ThrottlingError" | "ProvisionedThroughputExceeded" | "RequestLimitExceeded"
        )
    }) {
        return Rejection::Conflict;
    }
    Rejection::Store(backend("TransactWriteItems", table)(err))
}

#[async_trait]
impl Store for DynamoStore {
    async fn read_context(&self, q: &ContextQuery<'_>) -> Result<ContextRead, StoreError> {
        let product_key = keys::product(q.company, q.product);
        let company_key = keys::company(q.company);
        let mut wanted = vec![product_key.clone(), company_key.clone()];
        let license_addr = q.key.map(|key| LicenseAddr::Key {
            company: q.company.clone(),
            product: q.product.clone(),
            key: key.clone(),
        });
        if let Some(addr) = &license_addr {
            wanted.push(keys::license(addr));
            if let Some(hw) = q.hardware_id {
                wanted.push(keys::device(addr, hw));
                wanted.push(keys::released(addr, hw));
            }
        }
        if let Some(user) = q.user {
            wanted.push(keys::user(q.company, user));
        }
        let mut found = self.batch_get(wanted.clone()).await?;
        let mut take = |key: &ItemMap| found.remove(&(keys::key_part(key, PK), keys::key_part(key, SK)));
        let mut read = ContextRead {
            product: take(&product_key).map(|i| codec::doc::<ProductDoc>(&i)).transpose()?,
            company: take(&company_key).map(|i| codec::doc::<Company>(&i)).transpose()?,
            ..ContextRead::default()
        };
        if let Some(addr) = &license_addr {
            read.license = take(&keys::license(addr))
                .map(|i| codec::license(&i, addr))
                .transpose()?;
            if let Some(hw) = q.hardware_id {
                read.device = take(&keys::device(addr, hw)).map(|i| codec::device(&i)).transpose()?;
                read.released = take(&keys::released(addr, hw)).is_some();
            }
        }
        if let Some(user) = q.user {
            read.user = take(&keys::user(q.company, user))
                .map(|i| codec::doc::<LicenseUser>(&i))
                .transpose()?;
        }
        Ok(read)
    }

    async fn read_license(
        &self,
        addr: &LicenseAddr,
        seat: Option<&Username>,
        hardware_id: &HardwareId,
    ) -> Result<LicenseRead, StoreError> {
        let mut wanted = vec![
            keys::license(addr),
            keys::device(addr, hardware_id),
            keys::released(addr, hardware_id),
        ];
        if let Some(user) = seat {
            wanted.push(keys::seat(addr, user));
        }
        let mut found = self.batch_get(wanted).await?;
        let mut take = |key: ItemMap| found.remove(&(keys::key_part(&key, PK), keys::key_part(&key, SK)));
        Ok(LicenseRead {
            license: take(keys::license(addr))
                .map(|i| codec::license(&i, addr))
                .transpose()?,
            device: take(keys::device(addr, hardware_id))
                .map(|i| codec::device(&i))
                .transpose()?,
            released: take(keys::released(addr, hardware_id)).is_some(),
            seat: match seat {
                Some(user) => take(keys::seat(addr, user)).map(|i| codec::seat(&i)).transpose()?,
                None => None,
            },
        })
    }

    async fn released_slot(&self, addr: &LicenseAddr) -> Result<Option<HardwareId>, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression(format!("{PK} = :pk AND begins_with({SK}, :released)"))
            .expression_attribute_values(":pk", s(keys::license_pk(addr)))
            .expression_attribute_values(":released", s(keys::RELEASED_PREFIX))
            .consistent_read(true)
            .limit(1)
            .return_consumed_capacity(CONSUMED)
            .send()
            .await
            .map_err(backend("Query", &self.table))?;
        self.usage.consumed(Capacity::Read, out.consumed_capacity());
        out.items()
            .first()
            .map(|item| {
                let sk = keys::key_part(item, SK);
                HardwareId::parse(sk.trim_start_matches(keys::RELEASED_PREFIX)).map_err(|e| StoreError::Corrupt {
                    key: sk.clone(),
                    reason: e.to_string(),
                })
            })
            .transpose()
    }

    async fn processed_request(
        &self,
        addr: &LicenseAddr,
        key: &RequestKey,
        now: Timestamp,
    ) -> Result<Option<ProcessedRequest>, StoreError> {
        // TTL deletes expired items eventually, not at once: one still there but expired is gone.
        self.get(keys::request(addr, key))
            .await?
            .map(|item| codec::processed_request(&item))
            .transpose()
            .map(|r| r.filter(|r| r.is_live(now)))
    }

    async fn apply(&self, write: &Write, token: &WriteToken) -> Result<(), Rejection> {
        self.transact(expr::transact_items(&self.table, write)?, token)
            .await
            .map_err(|e| rejection_from(e, write, &self.table, &self.usage))
    }

    async fn apply_alone(&self, write: &Write, _token: &WriteToken) -> Result<(), Rejection> {
        // One plain UpdateItem: half a one-item transaction's write units.
        self.update_alone(write).await
    }

    async fn record_checks(&self, write: &Write, token: &WriteToken) -> Result<(), Rejection> {
        if write.items.len() == 1 {
            // One item (a device: a single license's check, or a bundle with one member due; or a
            // floating cloud license's slots alone): no transaction.
            return self.update_alone(write).await;
        }
        self.apply(write, token).await
    }

    async fn load(&self, item: &Item) -> Result<Option<Image>, StoreError> {
        self.get(expr::key(item))
            .await?
            .map(|i| codec::decode(item, &i))
            .transpose()
    }

    async fn list_devices(&self, addr: &LicenseAddr) -> Result<Vec<Device>, StoreError> {
        let items = self.beside_license(addr, keys::DEVICE_PREFIX).await?;
        items.iter().map(codec::device).collect()
    }

    async fn list_seats(&self, addr: &LicenseAddr) -> Result<Vec<Seat>, StoreError> {
        let items = self.beside_license(addr, keys::SEAT_PREFIX).await?;
        items.iter().map(codec::seat).collect()
    }

    async fn licenses_page(
        &self,
        query: &LicenseQuery,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<LicensePage, StoreError> {
        self.license_page(query, cursor, limit).await
    }

    async fn item_page(
        &self,
        kind: ItemKind,
        company: &CompanyId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<ItemPage, StoreError> {
        self.listed_page(kind, company, after, limit).await
    }

    async fn items_beside(&self, addr: &LicenseAddr) -> Result<Vec<Item>, StoreError> {
        self.items_beside_license(addr).await
    }

    async fn audit_records(
        &self,
        company: &CompanyId,
        filter: &AuditFilter,
        cursor: Option<&str>,
        limit: usize,
        now: Timestamp,
    ) -> Result<AuditPage, StoreError> {
        self.audit_page(company, filter, cursor, limit.min(audit::MAX_PAGE), now)
            .await
    }

    async fn management_keys(
        &self,
        company: &CompanyId,
        after: Option<&ManagementKeyId>,
        limit: usize,
    ) -> Result<Vec<ManagementKeyRecord>, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .consistent_read(true)
            .return_consumed_capacity(CONSUMED)
            .key_condition_expression(format!("{PK} = :pk"))
            .expression_attribute_values(":pk", s(keys::management_keys_pk(company)))
            .set_exclusive_start_key(after.map(|a| keys::management_key(company, a)))
            .limit(limit.clamp(1, 1000) as i32)
            .send()
            .await
            .map_err(backend("Query", &self.table))?;
        self.usage.consumed(Capacity::Read, out.consumed_capacity());
        out.items().iter().map(codec::management_key).collect()
    }
}

impl DynamoStore {
    /// One page of the audit trail: a `Query` of the company's partition, newest first, filtered on
    /// the server (a filtered-out record still costs its read), page after page until `limit` records
    /// passed or [`audit::MAX_EXAMINED`] were read; the cursor is the last record's sort key.
    async fn audit_page(
        &self,
        company: &CompanyId,
        filter: &AuditFilter,
        cursor: Option<&str>,
        limit: usize,
        now: Timestamp,
    ) -> Result<AuditPage, StoreError> {
        let pk = format!("AUDIT#{company}");
        let mut page = AuditPage::default();
        let mut start = cursor.map(|c| keys::audit(company, c));
        let mut examined = 0;
        while page.records.len() < limit {
            let out = self
                .audit_query(&pk, filter, now)
                .set_exclusive_start_key(start.take())
                .limit(((limit - page.records.len()) * 2).clamp(25, 1000) as i32)
                .send()
                .await
                .map_err(backend("Query", &self.table))?;
            self.usage.consumed(Capacity::Read, out.consumed_capacity());
            examined += out.scanned_count() as usize;
            for item in out.items() {
                page.records.push(codec::audit(item)?);
            }
            start = out.last_evaluated_key;
            let Some(last) = &start else {
                page.cursor = None;
                break;
            };
            page.cursor = Some(keys::key_part(last, SK));
            if examined >= audit::MAX_EXAMINED {
                break;
            }
        }
        if page.records.len() >= limit {
            page.records.truncate(limit);
            page.cursor = page.records.last().map(|r| r.id.clone());
        }
        Ok(page)
    }

    /// The query of a company's audit partition with `filter` (less the cursor and page size).
    fn audit_query(
        &self,
        pk: &str,
        filter: &AuditFilter,
        now: Timestamp,
    ) -> aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder {
        let mut keys_cond = format!("{PK} = :pk");
        let mut conditions = vec!["#expires > :now".to_owned()];
        let mut q = self
            .client
            .query()
            .table_name(&self.table)
            .scan_index_forward(false)
            .consistent_read(true)
            .return_consumed_capacity(CONSUMED)
            .expression_attribute_values(":pk", s(pk))
            .expression_attribute_names("#expires", TTL_ATTRIBUTE)
            .expression_attribute_values(":now", keys::n(now.unix_seconds()));
        if let Some(since) = filter.since {
            keys_cond.push_str(&format!(" AND {SK} >= :since"));
            q = q.expression_attribute_values(":since", s(audit::id_at(since)));
        }
        if let Some(subject) = &filter.subject {
            conditions.push("#subject = :subject".into());
            q = q
                .expression_attribute_names("#subject", Attr::Subject.name())
                .expression_attribute_values(":subject", s(subject));
        }
        if let Some(actor) = &filter.actor {
            conditions.push("#actor = :actor".into());
            q = q
                .expression_attribute_names("#actor", Attr::Actor.name())
                .expression_attribute_values(":actor", s(actor));
        }
        q.key_condition_expression(keys_cond)
            .filter_expression(conditions.join(" AND "))
    }

    /// Every item kept beside the license whose sort key starts with `prefix`, all pages: what the
    /// administrative listings read.
    async fn beside_license(&self, addr: &LicenseAddr, prefix: &str) -> Result<Vec<ItemMap>, StoreError> {
        let pk = keys::key_part(&keys::license(addr), PK);
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression(format!("{PK} = :pk AND begins_with({SK}, :prefix)"))
                .expression_attribute_values(":pk", s(&pk))
                .expression_attribute_values(":prefix", s(prefix))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .return_consumed_capacity(CONSUMED)
                .send()
                .await
                .map_err(backend("Query", &self.table))?;
            self.usage.consumed(Capacity::Read, out.consumed_capacity());
            items.extend(out.items().iter().cloned());
            start = out.last_evaluated_key;
            if start.is_none() {
                return Ok(items);
            }
        }
    }
}
