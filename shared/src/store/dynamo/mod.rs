//! The DynamoDB implementation of [`Store`]: one table, string keys `PK`/`SK`, every invariant a condition
//! inside the write that would break it. `docs/data-model.md` describes the items and each transaction.

mod codec;
mod keys;

use super::{
    ActivationPlan, ContextQuery, ContextRead, DeactivationPlan, LicenseAddr, LicenseRead, Rejection, Slot, Store,
    StoreError,
};
use crate::ids::{ApiKeyId, CompanyId, HardwareId, Username};
use crate::model::{ApiKeyRecord, Company, Device, License, LicenseUser, ProductDoc, Seat};
use crate::time::Timestamp;
use async_trait::async_trait;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, CancellationReason, KeySchemaElement, KeyType, KeysAndAttributes,
    Put, ReturnValue, ReturnValuesOnConditionCheckFailure, ScalarAttributeType, TransactWriteItem, Update,
};
use aws_sdk_dynamodb::Client;
use codec::{n, s, ItemMap};
pub use keys::{PK, SK};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct DynamoStore {
    client: Client,
    table: String,
}

fn backend<E>(operation: &'static str) -> impl FnOnce(E) -> StoreError
where
    E: std::error::Error + Send + Sync + 'static,
{
    move |source| StoreError::Backend {
        operation,
        source: Box::new(source),
    }
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
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
            .attribute_definitions(attr(PK))
            .attribute_definitions(attr(SK))
            .key_schema(key(PK, KeyType::Hash))
            .key_schema(key(SK, KeyType::Range))
            .send()
            .await;
        match created {
            Ok(_) => {}
            Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_in_use_exception()) => {}
            Err(e) => return Err(backend("CreateTable")(e)),
        }
        for _ in 0..120 {
            let described = self.client.describe_table().table_name(&self.table).send().await;
            let status = described
                .map_err(backend("DescribeTable"))?
                .table
                .and_then(|t| t.table_status);
            if status == Some(aws_sdk_dynamodb::types::TableStatus::Active) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        Err(StoreError::Invalid(format!(
            "table {} did not become active",
            self.table
        )))
    }

    /// BatchGetItem for up to 100 keys, following `UnprocessedKeys` until every key is answered.
    async fn batch_get(&self, keys: Vec<ItemMap>) -> Result<HashMap<(String, String), ItemMap>, StoreError> {
        let mut found = HashMap::new();
        let mut pending = Some(
            KeysAndAttributes::builder()
                .set_keys(Some(keys))
                .consistent_read(true)
                .build()
                .map_err(backend("BatchGetItem"))?,
        );
        let mut attempt = 0u32;
        while let Some(request) = pending.take() {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(10u64 << attempt.min(6))).await;
            }
            attempt += 1;
            let out = self
                .client
                .batch_get_item()
                .request_items(&self.table, request)
                .send()
                .await
                .map_err(backend("BatchGetItem"))?;
            for item in out
                .responses
                .unwrap_or_default()
                .remove(&self.table)
                .unwrap_or_default()
            {
                let key = (codec::key_part(&item, PK), codec::key_part(&item, SK));
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
            .send()
            .await
            .map_err(backend("GetItem"))?;
        Ok(out.item)
    }

    async fn put(&self, item: ItemMap) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(backend("PutItem"))?;
        Ok(())
    }

    /// Runs an [`UpdateBuilder`] as one UpdateItem.
    async fn update(
        &self,
        key: ItemMap,
        update: UpdateBuilder,
        return_values: Option<ReturnValue>,
    ) -> Result<Option<ItemMap>, SdkError<UpdateItemError>> {
        let condition = update.condition_expression();
        let expression = update.expression();
        let names = (!update.names.is_empty()).then_some(update.names);
        let values = (!update.values.is_empty()).then_some(update.values);
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .update_expression(expression)
            .set_condition_expression(condition)
            .set_expression_attribute_names(names)
            .set_expression_attribute_values(values)
            .set_return_values(return_values)
            .send()
            .await?;
        Ok(out.attributes)
    }

    async fn transact(&self, items: Vec<TransactWriteItem>) -> Result<(), SdkError<TransactWriteItemsError>> {
        self.client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
            .map(|_| ())
    }
}

/// Builds an `Update` from expression parts, so conditions and actions are assembled in one place.
#[derive(Default)]
struct UpdateBuilder {
    set: Vec<String>,
    add: Vec<String>,
    delete: Vec<String>,
    conditions: Vec<String>,
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
}

impl UpdateBuilder {
    fn value(&mut self, placeholder: &str, v: AttributeValue) -> &mut Self {
        self.values.insert(placeholder.to_owned(), v);
        self
    }
    fn set(&mut self, clause: impl Into<String>) -> &mut Self {
        self.set.push(clause.into());
        self
    }
    fn add(&mut self, clause: impl Into<String>) -> &mut Self {
        self.add.push(clause.into());
        self
    }
    fn delete(&mut self, clause: impl Into<String>) -> &mut Self {
        self.delete.push(clause.into());
        self
    }
    fn condition(&mut self, clause: impl Into<String>) -> &mut Self {
        self.conditions.push(clause.into());
        self
    }
    fn expression(&self) -> String {
        let mut parts = Vec::new();
        for (verb, clauses) in [("SET", &self.set), ("ADD", &self.add), ("DELETE", &self.delete)] {
            if !clauses.is_empty() {
                parts.push(format!("{verb} {}", clauses.join(", ")));
            }
        }
        parts.join(" ")
    }
    fn condition_expression(&self) -> Option<String> {
        (!self.conditions.is_empty()).then(|| {
            self.conditions
                .iter()
                .map(|c| format!("({c})"))
                .collect::<Vec<_>>()
                .join(" AND ")
        })
    }
    /// The update as one item of a `TransactWriteItems`.
    fn transact_item(self, table: &str, key: ItemMap, return_old_on_failure: bool) -> TransactWriteItem {
        TransactWriteItem::builder()
            .update(self.build(table, key, return_old_on_failure))
            .build()
    }

    fn build(self, table: &str, key: ItemMap, return_old_on_failure: bool) -> Update {
        let mut b = Update::builder()
            .table_name(table)
            .set_key(Some(key))
            .update_expression(self.expression())
            .set_condition_expression(self.condition_expression())
            .set_expression_attribute_values((!self.values.is_empty()).then_some(self.values));
        if !self.names.is_empty() {
            b = b.set_expression_attribute_names(Some(self.names));
        }
        if return_old_on_failure {
            b = b.return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        }
        b.build().expect("table, key and expression are set")
    }
}

fn reason_code(r: &CancellationReason) -> &str {
    r.code().unwrap_or("None")
}

/// Index of each item in an activation or deactivation transaction.
const DEVICE_ITEM: usize = 0;
const LICENSE_ITEM: usize = 1;
const SEAT_ITEM: usize = 2;

/// Maps a cancelled transaction to the invariant that failed, from its cancellation reasons.
fn rejection_from(
    err: SdkError<TransactWriteItemsError>,
    addr: &LicenseAddr,
    device_rejection: Rejection,
) -> Rejection {
    let reasons = match &err {
        SdkError::ServiceError(e) => match e.err() {
            TransactWriteItemsError::TransactionCanceledException(c) => c.cancellation_reasons().to_vec(),
            TransactWriteItemsError::TransactionInProgressException(_) => return Rejection::Conflict,
            _ => return Rejection::Store(backend("TransactWriteItems")(err)),
        },
        _ => return Rejection::Store(backend("TransactWriteItems")(err)),
    };
    let failed = |i: usize| {
        reasons
            .get(i)
            .is_some_and(|r| reason_code(r) == "ConditionalCheckFailed")
    };
    if failed(DEVICE_ITEM) {
        return device_rejection;
    }
    if failed(LICENSE_ITEM) {
        let current = reasons[LICENSE_ITEM]
            .item()
            .and_then(|item| codec::license(item, addr).ok())
            .map(Box::new);
        return Rejection::LicenseChanged(current);
    }
    if failed(SEAT_ITEM) {
        let current = reasons[SEAT_ITEM].item().and_then(|item| codec::seat(item).ok());
        return Rejection::SeatChanged(current);
    }
    if reasons.iter().any(|r| {
        matches!(
            reason_code(r),
            "TransactionConflict" | "ThrottlingError" | "ProvisionedThroughputExceeded"
        )
    }) {
        return Rejection::Conflict;
    }
    Rejection::Store(backend("TransactWriteItems")(err))
}

#[async_trait]
impl Store for DynamoStore {
    async fn api_key(&self, id: &ApiKeyId) -> Result<Option<ApiKeyRecord>, StoreError> {
        let item = self.get(keys::api_key(id)).await?;
        item.map(|i| codec::api_key(&i)).transpose()
    }

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
            }
        }
        if let Some(user) = q.user {
            wanted.push(keys::user(q.company, user));
        }
        let mut found = self.batch_get(wanted.clone()).await?;
        let mut take = |key: &ItemMap| found.remove(&(codec::key_part(key, PK), codec::key_part(key, SK)));
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
        let mut wanted = vec![keys::license(addr), keys::device(addr, hardware_id)];
        if let Some(user) = seat {
            wanted.push(keys::seat(addr, user));
        }
        let mut found = self.batch_get(wanted).await?;
        let mut take = |key: ItemMap| found.remove(&(codec::key_part(&key, PK), codec::key_part(&key, SK)));
        Ok(LicenseRead {
            license: take(keys::license(addr))
                .map(|i| codec::license(&i, addr))
                .transpose()?,
            device: take(keys::device(addr, hardware_id))
                .map(|i| codec::device(&i))
                .transpose()?,
            seat: match seat {
                Some(user) => take(keys::seat(addr, user)).map(|i| codec::seat(&i)).transpose()?,
                None => None,
            },
        })
    }

    async fn activate_device(&self, plan: &ActivationPlan) -> Result<(), Rejection> {
        let addr = &plan.addr;
        // 1. The device: the 409 rule. It may be new or deactivated, never active.
        let device = Put::builder()
            .table_name(&self.table)
            .set_item(Some(codec::device_item(addr, &plan.device)))
            .condition_expression(format!("attribute_not_exists({PK}) OR active = :false"))
            .expression_attribute_values(":false", AttributeValue::Bool(false))
            .build()
            .expect("table and item are set");

        // 2. The license: one more active device, within every limit, taking the planned slot.
        let mut lic = UpdateBuilder::default();
        lic.value(":one", n(1)).value(":true", AttributeValue::Bool(true));
        lic.add("times_activated :one")
            .condition(format!("attribute_exists({PK})"))
            .condition("enabled = :true");
        if plan.enforce_max_activations {
            lic.condition("times_activated < max_activations");
        }
        match &plan.slot {
            Slot::Fresh => {
                lic.condition("attribute_not_exists(released)");
            }
            Slot::Reuse => {
                let hw = plan.device.hardware_id.as_str();
                lic.value(":hw", s(hw))
                    .value(":hwset", AttributeValue::Ss(vec![hw.to_owned()]));
                lic.condition("contains(released, :hw)").delete("released :hwset");
            }
            Slot::Transfer { released_by } => {
                let rb = released_by.as_str();
                lic.value(":rb", s(rb))
                    .value(":rbset", AttributeValue::Ss(vec![rb.to_owned()]))
                    .value(":zero", n(0));
                lic.condition("contains(released, :rb)")
                    .condition("max_transfers = :zero OR (max_transfers > :zero AND transfer_count < max_transfers)")
                    .delete("released :rbset")
                    .add("transfer_count :one");
            }
            Slot::Untracked => {}
        }
        if let Some(validity) = plan.set_validity {
            lic.value(":validity", s(validity.to_string()));
            lic.condition("attribute_not_exists(validity_period)")
                .set("validity_period = :validity");
        }
        let mut items = vec![
            TransactWriteItem::builder().put(device).build(),
            lic.transact_item(&self.table, keys::license(addr), true),
        ];

        // 3. The user's seat: their own activation count, within their own limit.
        if let Some((user, enforce)) = &plan.seat {
            let mut seat = UpdateBuilder::default();
            seat.value(":one", n(1))
                .add("total_activations :one")
                .condition(format!("attribute_exists({PK})"));
            if *enforce {
                seat.condition("total_activations < max_activations");
            }
            items.push(seat.transact_item(&self.table, keys::seat(addr, user), true));
        }
        self.transact(items)
            .await
            .map_err(|e| rejection_from(e, addr, Rejection::DeviceActive))
    }

    async fn deactivate_device(&self, plan: &DeactivationPlan) -> Result<(), Rejection> {
        let addr = &plan.addr;
        let mut device = UpdateBuilder::default();
        device
            .value(":true", AttributeValue::Bool(true))
            .value(":false", AttributeValue::Bool(false))
            .value(":at", s(plan.at.to_string()))
            .set("active = :false")
            .set("deactivated_at = :at")
            .condition("active = :true");

        let mut lic = UpdateBuilder::default();
        lic.value(":minus", n(-1))
            .value(":zero", n(0))
            .add("times_activated :minus")
            .condition("times_activated > :zero");
        if plan.release_slot {
            lic.value(":hwset", AttributeValue::Ss(vec![plan.hardware_id.as_str().to_owned()]))
                .add("released :hwset");
        }
        let mut items = vec![
            device.transact_item(&self.table, keys::device(addr, &plan.hardware_id), false),
            lic.transact_item(&self.table, keys::license(addr), true),
        ];
        if let Some(user) = &plan.seat {
            let mut seat = UpdateBuilder::default();
            seat.value(":minus", n(-1))
                .value(":zero", n(0))
                .add("total_activations :minus")
                .condition("total_activations > :zero");
            items.push(seat.transact_item(&self.table, keys::seat(addr, user), true));
        }
        self.transact(items)
            .await
            .map_err(|e| rejection_from(e, addr, Rejection::DeviceNotActive))
    }

    async fn record_check(
        &self,
        addr: &LicenseAddr,
        hardware_id: &HardwareId,
        details: &Map<String, Value>,
        at: Timestamp,
    ) -> Result<Option<Device>, StoreError> {
        let mut update = UpdateBuilder::default();
        update
            .value(":true", AttributeValue::Bool(true))
            .value(":at", s(at.to_string()));
        update.set("last_seen_at = :at").condition("active = :true");
        for (i, (name, value)) in details.iter().enumerate() {
            update.names.insert(format!("#d{i}"), name.clone());
            update
                .value(&format!(":d{i}"), codec::detail_value(value))
                .set(format!("details.#d{i} = :d{i}"));
        }
        let out = self
            .update(keys::device(addr, hardware_id), update, Some(ReturnValue::AllNew))
            .await;
        match out {
            Ok(item) => item.map(|i| codec::device(&i)).transpose(),
            Err(SdkError::ServiceError(e))
                if matches!(e.err(), UpdateItemError::ConditionalCheckFailedException(_)) =>
            {
                Ok(None)
            }
            Err(e) => Err(backend("UpdateItem")(e)),
        }
    }

    async fn put_api_key(&self, key: &ApiKeyRecord) -> Result<(), StoreError> {
        self.put(codec::api_key_item(key)).await
    }

    async fn put_company(&self, company: &CompanyId, doc: &Company) -> Result<(), StoreError> {
        self.put(codec::doc_item(keys::company(company), doc)?).await
    }

    async fn put_product(&self, company: &CompanyId, product: &ProductDoc) -> Result<(), StoreError> {
        self.put(codec::doc_item(keys::product(company, &product.code), product)?)
            .await
    }

    async fn put_license(&self, license: &License) -> Result<(), StoreError> {
        let addr = LicenseAddr::of(license);
        let update = codec::license_upsert(license)?;
        self.update(keys::license(&addr), update, None)
            .await
            .map_err(backend("UpdateItem"))?;
        Ok(())
    }

    async fn put_user(&self, company: &CompanyId, user: &LicenseUser) -> Result<(), StoreError> {
        self.put(codec::doc_item(keys::user(company, &user.email), user)?).await
    }

    async fn put_seat(&self, addr: &LicenseAddr, seat: &Seat) -> Result<(), StoreError> {
        let mut update = UpdateBuilder::default();
        update
            .value(":user", s(seat.user.as_str()))
            .value(":max", n(seat.max_activations))
            .value(":unlimited", AttributeValue::Bool(seat.allow_unlimited_activations))
            .value(":zero", n(0))
            .set("#user = :user")
            .set("max_activations = :max")
            .set("unlimited = :unlimited")
            .set("total_activations = if_not_exists(total_activations, :zero)");
        update.names.insert("#user".into(), "user".into());
        self.update(keys::seat(addr, &seat.user), update, None)
            .await
            .map_err(backend("UpdateItem"))?;
        Ok(())
    }

    async fn get_license(&self, addr: &LicenseAddr) -> Result<Option<License>, StoreError> {
        self.get(keys::license(addr))
            .await?
            .map(|i| codec::license(&i, addr))
            .transpose()
    }

    async fn get_seat(&self, addr: &LicenseAddr, user: &Username) -> Result<Option<Seat>, StoreError> {
        self.get(keys::seat(addr, user))
            .await?
            .map(|i| codec::seat(&i))
            .transpose()
    }

    async fn get_user(&self, company: &CompanyId, user: &Username) -> Result<Option<LicenseUser>, StoreError> {
        self.get(keys::user(company, user))
            .await?
            .map(|i| codec::doc::<LicenseUser>(&i))
            .transpose()
    }

    async fn list_devices(&self, addr: &LicenseAddr) -> Result<Vec<Device>, StoreError> {
        let pk = codec::key_part(&keys::license(addr), PK);
        let mut devices = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression(format!("{PK} = :pk AND begins_with({SK}, :dev)"))
                .expression_attribute_values(":pk", s(&pk))
                .expression_attribute_values(":dev", s(keys::DEVICE_PREFIX))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(backend("Query"))?;
            for item in out.items() {
                devices.push(codec::device(item)?);
            }
            start = out.last_evaluated_key;
            if start.is_none() {
                return Ok(devices);
            }
        }
    }
}
