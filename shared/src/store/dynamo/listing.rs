//! The administrative listing and searches on DynamoDB (`Store::find_licenses`): one `Query` of a
//! sparse, keys-only global secondary index ([`keys::INDEXES`]) for a page of license addresses, then
//! one consistent `BatchGetItem` of those licenses. An index is updated eventually, so an entry may
//! lag its item: each license read is checked against the query ([`LicenseQuery::matches`]) and a
//! license deleted meanwhile is skipped, so a page never shows what the table no longer holds.
//! A company's products, license users, API keys and OAuth clients (`Store::list_items`) are listed the
//! same way, from their own partitions of GSI1 (`keys::listed_partition`).

use super::keys::{self, s, Index, ItemMap, PK, SK};
use super::usage::Capacity;
use super::{backend, codec, DynamoStore, CONSUMED};
use crate::ids::CompanyId;
use crate::plan::LicenseAddr;
use crate::store::listing::{ItemKind, ItemPage, LicensePage, LicenseQuery, LicenseSearch};
use crate::store::write::{Image, Item};
use crate::store::StoreError;

impl DynamoStore {
    /// One page of the licenses `query` selects (see the module header).
    pub(super) async fn license_page(
        &self,
        query: &LicenseQuery,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<LicensePage, StoreError> {
        let after = query.start_after(cursor)?;
        let (index, partition) = index_of(query);
        let start = after.as_deref().map(|after| start_key(index, &partition, query, after));
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(index.name)
            .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
            .expression_attribute_names("#pk", index.pk)
            .expression_attribute_names("#sk", index.sk)
            .expression_attribute_values(":pk", s(&partition))
            .expression_attribute_values(":prefix", s(query.key_prefix()))
            .set_exclusive_start_key(start)
            .limit(limit as i32)
            .return_consumed_capacity(CONSUMED)
            .send()
            .await
            .map_err(|e| self.index_error(index, e))?;
        self.usage.consumed(Capacity::Read, out.consumed_capacity());
        let addrs: Vec<String> = out.items().iter().map(|i| keys::key_part(i, index.sk)).collect();
        let cursor = out.last_evaluated_key.as_ref().and(addrs.last().cloned());
        let licenses = self.licenses_at(&addrs).await?;
        let licenses = licenses.into_iter().filter(|l| query.matches(l)).collect();
        Ok(LicensePage { licenses, cursor })
    }

    /// One page of the company's items of `kind` after the one named `after` (`Store::item_page`).
    pub(super) async fn listed_page(
        &self,
        kind: ItemKind,
        company: &CompanyId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<ItemPage, StoreError> {
        let (index, partition) = (keys::LICENSES, keys::listed_partition(kind, company));
        let prefix = keys::listed_prefix(kind, company);
        let start = after.map(|name| {
            let storage_key = format!("{prefix}{name}");
            ItemMap::from([
                (index.pk.to_owned(), s(&partition)),
                (index.sk.to_owned(), s(&storage_key)),
                (PK.to_owned(), s(storage_key)),
                (SK.to_owned(), s("#")),
            ])
        });
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(index.name)
            .key_condition_expression("#pk = :pk")
            .expression_attribute_names("#pk", index.pk)
            .expression_attribute_values(":pk", s(&partition))
            .set_exclusive_start_key(start)
            .limit(limit as i32)
            .return_consumed_capacity(CONSUMED)
            .send()
            .await
            .map_err(|e| self.index_error(index, e))?;
        self.usage.consumed(Capacity::Read, out.consumed_capacity());
        let names: Vec<String> = out
            .items()
            .iter()
            .map(|i| {
                keys::key_part(i, index.sk)
                    .strip_prefix(&prefix)
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect();
        let cursor = out.last_evaluated_key.as_ref().and(names.last().cloned());
        Ok(ItemPage {
            items: self.listed_items(kind, company, &names).await?,
            cursor,
        })
    }

    /// The company's items of `kind` with these names, read consistently, in their order; one gone
    /// (or no longer the company's) is skipped.
    async fn listed_items(
        &self,
        kind: ItemKind,
        company: &CompanyId,
        names: &[String],
    ) -> Result<Vec<Image>, StoreError> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let items: Vec<Item> = names
            .iter()
            .map(|name| {
                kind.item(company, name).map_err(|e| StoreError::Corrupt {
                    key: format!("{} {name}", keys::listed_partition(kind, company)),
                    reason: format!("an index entry names no item: {e}"),
                })
            })
            .collect::<Result<_, _>>()?;
        let mut found = self.batch_get(items.iter().map(super::expr::key).collect()).await?;
        let mut images = Vec::with_capacity(items.len());
        for item in &items {
            let key = super::expr::key(item);
            let Some(stored) = found.remove(&(keys::key_part(&key, PK), keys::key_part(&key, SK))) else {
                continue;
            };
            let image = codec::decode(item, &stored)?;
            if kind.holds(company, item, &image) {
                images.push(image);
            }
        }
        Ok(images)
    }

    /// A table created before the indexes existed says so and what to do; any other error as usual.
    fn index_error(
        &self,
        index: Index,
        e: aws_sdk_dynamodb::error::SdkError<aws_sdk_dynamodb::operation::query::QueryError>,
    ) -> StoreError {
        use aws_sdk_dynamodb::error::ProvideErrorMetadata;
        if e.code() == Some("ValidationException") && e.message().is_some_and(|m| m.contains("index")) {
            return StoreError::Invalid(format!(
                "DynamoDB table {} has no index {} ({}): add the listing indexes of template.yaml to it \
                 (docs/data-model.md, \"Listing and search\")",
                self.table,
                index.name,
                aws_sdk_dynamodb::error::DisplayErrorContext(&e)
            ));
        }
        backend("Query", &self.table)(e)
    }

    /// The licenses stored at these storage keys, in their order; a key whose license is gone is skipped.
    async fn licenses_at(&self, addrs: &[String]) -> Result<Vec<crate::model::License>, StoreError> {
        if addrs.is_empty() {
            return Ok(Vec::new());
        }
        let parsed: Vec<LicenseAddr> = addrs
            .iter()
            .map(|a| {
                LicenseAddr::from_storage_key(a).ok_or_else(|| StoreError::Corrupt {
                    key: a.clone(),
                    reason: "an index entry names no license".into(),
                })
            })
            .collect::<Result<_, _>>()?;
        let mut found = self.batch_get(parsed.iter().map(keys::license).collect()).await?;
        parsed
            .iter()
            .filter_map(|addr| found.remove(&(addr.storage_key(), "#".to_owned())).map(|i| (addr, i)))
            .map(|(addr, item)| codec::license(&item, addr))
            .collect()
    }

    /// Every item kept beside the license (`Store::items_beside`).
    pub(super) async fn items_beside_license(&self, addr: &LicenseAddr) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        for prefix in [
            keys::DEVICE_PREFIX,
            keys::SEAT_PREFIX,
            keys::RELEASED_PREFIX,
            keys::REQUEST_PREFIX,
        ] {
            for stored in self.beside_license(addr, prefix).await? {
                let sk = keys::key_part(&stored, SK);
                let part = sk.strip_prefix(prefix).unwrap_or_default();
                let corrupt = |e: crate::ids::IdError| StoreError::Corrupt {
                    key: format!("{} {sk}", addr.storage_key()),
                    reason: e.to_string(),
                };
                let addr = addr.clone();
                items.push(match prefix {
                    keys::DEVICE_PREFIX => Item::Device(addr, crate::ids::HardwareId::parse(part).map_err(corrupt)?),
                    keys::SEAT_PREFIX => Item::Seat(addr, crate::ids::Username::parse(part).map_err(corrupt)?),
                    keys::RELEASED_PREFIX => {
                        Item::Released(addr, crate::ids::HardwareId::parse(part).map_err(corrupt)?)
                    }
                    _ => Item::Request(addr, crate::ids::RequestKey::from_stored(part)),
                });
            }
        }
        Ok(items)
    }
}

/// The index a query reads and its partition.
fn index_of(query: &LicenseQuery) -> (Index, String) {
    let company = &query.company;
    match &query.search {
        None => (keys::LICENSES, format!("LICENSES#{company}")),
        Some(LicenseSearch::Key(k)) => (keys::BY_KEY_OR_HARDWARE_ID, format!("KEY#{company}#{k}")),
        Some(LicenseSearch::HardwareId(h)) => (keys::BY_KEY_OR_HARDWARE_ID, format!("HWID#{company}#{h}")),
        Some(LicenseSearch::Email(e)) => (keys::BY_EMAIL, format!("EMAIL#{company}#{e}")),
        Some(LicenseSearch::OrderId(o)) => (keys::BY_ORDER_ID, format!("ORDER#{company}#{o}")),
    }
}

/// The index entry a page continues after: the index's key and the table's key of the item, which is
/// the license itself or (a hardware id search) its device of that hardware id.
fn start_key(index: Index, partition: &str, query: &LicenseQuery, after: &str) -> ItemMap {
    let sk = match &query.search {
        Some(LicenseSearch::HardwareId(h)) => format!("{}{h}", keys::DEVICE_PREFIX),
        _ => "#".to_owned(),
    };
    ItemMap::from([
        (index.pk.to_owned(), s(partition)),
        (index.sk.to_owned(), s(after)),
        (PK.to_owned(), s(after)),
        (SK.to_owned(), s(sk)),
    ])
}
