//! `import --prune` (docs/catalog.md): the catalog is the desired state of its companies' licenses, so
//! a license the catalog wrote (`source: catalog`) that it no longer lists is removed, with every item
//! kept beside it. Licenses created otherwise (`trial_key`, the Management API) and licenses stored
//! before provenance was recorded are never removed. Each removal is its own writes: first the license
//! with its audit record (`import.delete`), conditioned on its still being the catalog's — from then on
//! the License API answers `license_not_found` — then its devices, seats and markers in batches a
//! DynamoDB transaction holds.

use crate::audit::{self, Trail};
use crate::ids::CompanyId;
use crate::model::{License, LicenseSource};
use crate::plan::{LicenseAddr, WriteToken};
use crate::store::listing::{LicenseQuery, MAX_PAGE};
use crate::store::write::{Attr, Cond, Item, ItemWrite, Val, Write};
use crate::store::{Store, StoreError};
use std::collections::HashSet;

/// Most items deleted in one write: a DynamoDB transaction holds at most 100.
const DELETES_PER_WRITE: usize = 100;

/// A catalog-owned license the catalog no longer lists, and what is kept beside it.
#[derive(Debug, Clone)]
pub struct Removal {
    pub license: License,
    /// Its devices, seats, released-slot markers and offline request records, as read by the plan.
    pub beside: Vec<Item>,
}

/// Two removals are the same when they remove the same license and items.
impl PartialEq for Removal {
    fn eq(&self, other: &Self) -> bool {
        self.addr() == other.addr() && self.beside == other.beside
    }
}

impl Removal {
    fn addr(&self) -> LicenseAddr {
        LicenseAddr::of(&self.license)
    }

    /// One line for an operator, as `import --dry-run --prune` prints it.
    pub fn describe(&self) -> String {
        format!(
            "delete {} and the {} item(s) beside it (devices, seats, markers)",
            super::label(&Item::License(self.addr())),
            self.beside.len()
        )
    }

    /// The license's deletion with its audit record, then its items in bounded batches.
    pub(super) fn writes(&self, trail: &Trail, at: crate::time::Timestamp) -> Vec<Write> {
        let addr = self.addr();
        let change = audit::Change {
            action: "import.delete",
            subject: audit::license_subject(&addr),
            detail: serde_json::json!({ "item": super::label(&Item::License(addr.clone())), "beside": self.beside.len() }),
        };
        let license = ItemWrite {
            item: Item::License(addr),
            // Still the catalog's: a license the Management API took over meanwhile stays.
            conditions: vec![Cond::Eq(Attr::Source, Val::Str(LicenseSource::Catalog.as_str().into()))],
            action: crate::store::write::Action::Delete,
        };
        let first = Write {
            items: vec![license, trail.item(&change, &WriteToken::new(), at)],
        };
        std::iter::once(first).chain(deletes(&self.beside)).collect()
    }
}

/// The deletes of `items`, at most [`DELETES_PER_WRITE`] a write.
fn deletes(items: &[Item]) -> impl Iterator<Item = Write> + '_ {
    items.chunks(DELETES_PER_WRITE).map(|chunk| Write {
        items: chunk.iter().cloned().flat_map(|i| Write::delete(i).items).collect(),
    })
}

/// The company's catalog-owned licenses whose storage key `named` (the catalog's) does not hold, each
/// with its items: every license of the company is read, page by page (an administrative cost).
pub(super) async fn unnamed(
    store: &dyn Store,
    company: &CompanyId,
    named: &HashSet<String>,
) -> Result<Vec<Removal>, StoreError> {
    let query = LicenseQuery {
        company: company.clone(),
        product: None,
        search: None,
    };
    let mut removals = Vec::new();
    let mut cursor = None;
    loop {
        let page = store.find_licenses(&query, cursor.as_deref(), MAX_PAGE).await?;
        for license in page.licenses {
            let owned = license.source == Some(LicenseSource::Catalog);
            if owned && !named.contains(&LicenseAddr::of(&license).storage_key()) {
                let beside = store.items_beside(&LicenseAddr::of(&license)).await?;
                removals.push(Removal { license, beside });
            }
        }
        cursor = page.cursor;
        if cursor.is_none() {
            return Ok(removals);
        }
    }
}

/// After the removals are written: deletes whatever was stored beside a removed license since the plan
/// read it (a device activated in between), so nothing of it is left.
pub(super) async fn sweep(store: &dyn Store, removals: &[Removal]) -> Result<(), StoreError> {
    for removal in removals {
        let left = store.items_beside(&removal.addr()).await?;
        for write in deletes(&left) {
            store.write(&write).await?;
        }
    }
    Ok(())
}
