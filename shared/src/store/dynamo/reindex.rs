//! `license-server reindex`: gives the items written before the listing indexes existed their index
//! attributes (docs/data-model.md, *Listing and search*). A paginated `Scan` reads every item; for each
//! license, device, product, license user, API key and OAuth client, the codec's own encoding of the
//! decoded item ([`codec::encode`]) says which index attributes it should carry, and those it lacks are
//! set by one `UpdateItem` conditioned on the item still existing, the attributes still being absent,
//! and what they were computed from (`terms`, `company`) being unchanged — so it never resurrects a
//! deleted item, never overwrites an entry a concurrent write made, and never indexes a stale value.
//! Running it again changes nothing.

use super::keys::{self, key_part, ItemMap, PK, SK};
use super::usage::Capacity;
use super::{backend, codec, expr, DynamoStore, CONSUMED};
use crate::ids::{ApiKeyId, CompanyId, HardwareId, OAuthClientId};
use crate::plan::LicenseAddr;
use crate::store::listing::ItemKind;
use crate::store::write::{Attr, Item};
use crate::store::StoreError;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::AttributeValue;

/// What a reindex did, item by item.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReindexReport {
    /// Items the scan read.
    pub scanned: u64,
    /// Items given the index attributes they lacked.
    pub indexed: u64,
    /// Items of an indexed kind that had every index attribute already.
    pub complete: u64,
    /// Items deleted or rewritten between the scan and the update: left as they are.
    pub changed_meanwhile: u64,
    /// Items of an indexed kind that could not be decoded (logged): left as they are.
    pub unreadable: u64,
}

/// What became of one scanned item.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backfill {
    /// Not a kind of item any listing index holds.
    NotIndexed,
    Complete,
    Indexed,
    ChangedMeanwhile,
    Unreadable,
}

/// The attributes an index entry is computed from besides the item's key: conditioned on unchanged.
const SOURCES: [Attr; 2] = [Attr::Terms, Attr::Company];

impl DynamoStore {
    /// Scans the whole table and backfills every item's missing index attributes (module header).
    pub async fn reindex(&self) -> Result<ReindexReport, StoreError> {
        let mut report = ReindexReport::default();
        let mut start = None;
        loop {
            let out = self
                .client
                .scan()
                .table_name(&self.table)
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .return_consumed_capacity(CONSUMED)
                .send()
                .await
                .map_err(backend("Scan", &self.table))?;
            self.usage.consumed(Capacity::Read, out.consumed_capacity());
            for stored in out.items() {
                report.scanned += 1;
                match self.backfill(stored).await? {
                    Backfill::NotIndexed => {}
                    Backfill::Complete => report.complete += 1,
                    Backfill::Indexed => report.indexed += 1,
                    Backfill::ChangedMeanwhile => report.changed_meanwhile += 1,
                    Backfill::Unreadable => report.unreadable += 1,
                }
            }
            start = out.last_evaluated_key;
            if start.is_none() {
                return Ok(report);
            }
        }
    }

    /// Sets the index attributes `stored` (an item as a scan read it) lacks, on the conditions of the
    /// module header.
    pub async fn backfill(&self, stored: &ItemMap) -> Result<Backfill, StoreError> {
        let Some(item) = indexed_item(&key_part(stored, PK), &key_part(stored, SK)) else {
            return Ok(Backfill::NotIndexed);
        };
        let encoded = match codec::decode(&item, stored).and_then(|image| codec::encode(&item, &image)) {
            Ok(encoded) => encoded,
            Err(e) => {
                tracing::warn!(item = ?item, error = %e, "reindex: cannot decode the item; left as it is");
                return Ok(Backfill::Unreadable);
            }
        };
        let missing: Vec<keys::Index> = keys::INDEXES
            .into_iter()
            .filter(|i| encoded.contains_key(i.pk) && !stored.contains_key(i.pk))
            .collect();
        if missing.is_empty() {
            return Ok(Backfill::Complete);
        }
        self.set_index_attributes(&item, stored, &encoded, &missing).await
    }

    async fn set_index_attributes(
        &self,
        item: &Item,
        stored: &ItemMap,
        encoded: &ItemMap,
        missing: &[keys::Index],
    ) -> Result<Backfill, StoreError> {
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(expr::key(item)))
            .expression_attribute_names("#key", PK);
        let (mut sets, mut conditions) = (Vec::new(), vec!["attribute_exists(#key)".to_owned()]);
        for (n, index) in missing.iter().enumerate() {
            for (part, name) in [("pk", index.pk), ("sk", index.sk)] {
                let value = encoded.get(name).cloned().unwrap_or(AttributeValue::Null(true));
                update = update
                    .expression_attribute_names(format!("#{part}{n}"), name)
                    .expression_attribute_values(format!(":{part}{n}"), value);
                sets.push(format!("#{part}{n} = :{part}{n}"));
            }
            conditions.push(format!("attribute_not_exists(#pk{n})"));
        }
        for (n, source) in SOURCES.iter().enumerate() {
            if let Some(value) = stored.get(source.name()) {
                update = update
                    .expression_attribute_names(format!("#src{n}"), source.name())
                    .expression_attribute_values(format!(":src{n}"), value.clone());
                conditions.push(format!("#src{n} = :src{n}"));
            }
        }
        let out = update
            .update_expression(format!("SET {}", sets.join(", ")))
            .condition_expression(conditions.join(" AND "))
            .return_consumed_capacity(CONSUMED)
            .send()
            .await;
        match out {
            Ok(out) => {
                self.usage.consumed(Capacity::Write, out.consumed_capacity());
                Ok(Backfill::Indexed)
            }
            Err(SdkError::ServiceError(e))
                if matches!(e.err(), UpdateItemError::ConditionalCheckFailedException(_)) =>
            {
                Ok(Backfill::ChangedMeanwhile)
            }
            Err(e) => Err(backend("UpdateItem", &self.table)(e)),
        }
    }
}

/// The item of a listing index stored at this key: a license or its device, a product, a license user,
/// an API key, an OAuth client; `None` for any other item. The item's own key must be this key again.
fn indexed_item(pk: &str, sk: &str) -> Option<Item> {
    let item = match (LicenseAddr::from_storage_key(pk), sk) {
        (Some(addr), "#") => Item::License(addr),
        (Some(addr), sk) => Item::Device(addr, HardwareId::parse(sk.strip_prefix(keys::DEVICE_PREFIX)?).ok()?),
        (None, "#") => listed_item(pk)?,
        (None, _) => return None,
    };
    let key = expr::key(&item);
    (key_part(&key, PK) == pk && key_part(&key, SK) == sk).then_some(item)
}

/// A product, user, API key or OAuth client by its storage key (`keys::listed_prefix`).
fn listed_item(pk: &str) -> Option<Item> {
    let (kind, rest) = pk.split_once('#')?;
    match kind {
        "APIKEY" => ApiKeyId::parse(rest).ok().map(Item::ApiKey),
        "OAUTHCLIENT" => OAuthClientId::parse(rest).ok().map(Item::OAuthClient),
        "PRODUCT" | "USER" => {
            let (company, name) = rest.split_once('#')?;
            let kind = if kind == "PRODUCT" {
                ItemKind::Products
            } else {
                ItemKind::Users
            };
            kind.item(&CompanyId::parse(company).ok()?, name).ok()
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kind the indexes hold is found again from its own key; other items and keys are not.
    #[test]
    fn an_indexed_item_is_found_from_its_key() {
        let company = CompanyId::parse("acme").unwrap();
        let product = crate::ids::ProductCode::parse("app").unwrap();
        let addr = LicenseAddr::Key {
            company: company.clone(),
            product: product.clone(),
            key: crate::ids::LicenseKey::parse("K#1").unwrap(),
        };
        let items = [
            Item::License(addr.clone()),
            Item::Device(addr.clone(), HardwareId::parse("hw#1").unwrap()),
            Item::Product(company.clone(), product.clone()),
            Item::User(company.clone(), crate::ids::Username::parse("a#b@c.d").unwrap()),
            Item::ApiKey(ApiKeyId::parse("k#1").unwrap()),
            Item::OAuthClient(OAuthClientId::parse("c#1").unwrap()),
        ];
        for item in items {
            let key = expr::key(&item);
            assert_eq!(indexed_item(&key_part(&key, PK), &key_part(&key, SK)), Some(item));
        }
        for other in [
            Item::Company(company.clone()),
            Item::Seat(addr.clone(), crate::ids::Username::parse("a@b.c").unwrap()),
            Item::Trial(company, product, HardwareId::parse("hw").unwrap()),
        ] {
            let key = expr::key(&other);
            assert_eq!(
                indexed_item(&key_part(&key, PK), &key_part(&key, SK)),
                None,
                "{other:?}"
            );
        }
    }
}
