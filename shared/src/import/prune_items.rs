//! `import --prune` for license users, API keys and OAuth clients (docs/catalog.md "Pruning"): one the
//! catalog wrote (`source: catalog`) that the catalog no longer names is deleted, each in its own write
//! with its audit record (`import.delete`), through the Management API's own delete writes and
//! conditioned on the item being as read and still the catalog's. A user still assigned to a license
//! the import keeps is not deleted: the plan says so, and support unassigns it first. Products record no
//! provenance, so they are never pruned.

use crate::audit::{self, Trail};
use crate::catalog::CompanyEntry;
use crate::ids::{CompanyId, ProductCode, Username};
use crate::management::{api_keys, credential, license_users, oauth_clients};
use crate::model::{ApiKeyRecord, LicenseSource, LicenseUser, OAuthClientRecord};
use crate::plan::WriteToken;
use crate::store::listing::{ItemKind, MAX_PAGE};
use crate::store::write::{Attr, Cond, Image, Item, Val, Write};
use crate::store::{Store, StoreError};
use std::collections::HashSet;

/// A catalog-owned user, API key or OAuth client the catalog no longer names, as read.
#[derive(Debug, Clone)]
pub enum ItemRemoval {
    User(CompanyId, Box<LicenseUser>),
    ApiKey(Box<ApiKeyRecord>),
    OAuthClient(Box<OAuthClientRecord>),
}

/// What the plan does with the company's unnamed items: removes some, keeps others (one line each).
#[derive(Debug, Default)]
pub(super) struct Unnamed {
    pub removals: Vec<ItemRemoval>,
    pub kept: Vec<String>,
}

/// Two removals are the same when they remove the same item.
impl PartialEq for ItemRemoval {
    fn eq(&self, other: &Self) -> bool {
        self.item() == other.item()
    }
}

impl ItemRemoval {
    fn item(&self) -> Item {
        match self {
            Self::User(company, u) => Item::User(company.clone(), u.email.clone()),
            Self::ApiKey(k) => Item::ApiKey(k.id.clone()),
            Self::OAuthClient(c) => Item::OAuthClient(c.id.clone()),
        }
    }

    /// The company whose item it is.
    pub(super) fn company(&self) -> &CompanyId {
        match self {
            Self::User(company, _) => company,
            Self::ApiKey(k) => &k.company,
            Self::OAuthClient(c) => &c.company,
        }
    }

    /// One line for an operator, as `import --dry-run --prune` prints it.
    pub fn describe(&self) -> String {
        format!("delete {} (no longer in the catalog)", super::label(&self.item()))
    }

    /// The Management API's delete of the item, still the catalog's, with its audit record.
    pub(super) fn write(&self, trail: &Trail, at: crate::time::Timestamp) -> Write {
        let catalog = Cond::Eq(Attr::Source, Val::Str(LicenseSource::Catalog.as_str().into()));
        let (mut write, subject) = match self {
            // The user's condition is its whole record as read, its source included.
            Self::User(_, u) => {
                let delete = license_users::delete_write(self.item(), Image::User(u.clone()));
                (Write { items: vec![delete] }, audit::user_subject(&u.email))
            }
            Self::ApiKey(k) => (credential::delete_write(&**k), api_keys::subject(k)),
            Self::OAuthClient(c) => (credential::delete_write(&**c), oauth_clients::subject(c)),
        };
        if !matches!(self, Self::User(..)) {
            write.items[0].conditions.push(catalog);
        }
        let change = audit::Change {
            action: "import.delete",
            subject,
            detail: serde_json::json!({ "item": super::label(&self.item()) }),
        };
        write.items.push(trail.item(&change, &WriteToken::new(), at));
        write
    }
}

/// The company's catalog-owned users, API keys and OAuth clients that `c` does not name; a user still
/// assigned to a license outside `gone` (the licenses `--prune` removes) is kept. Every item of the
/// three kinds is read, page by page (an administrative cost).
pub(super) async fn unnamed(
    store: &dyn Store,
    c: &CompanyEntry,
    gone: &HashSet<(&ProductCode, i64)>,
) -> Result<Unnamed, StoreError> {
    let users: HashSet<&Username> = c.users.iter().map(|(u, _)| &u.email).collect();
    let keys: HashSet<&str> = c.api_keys.iter().map(|k| k.id.as_str()).collect();
    let clients: HashSet<&str> = c.oauth_clients.iter().map(|o| o.id.as_str()).collect();
    let mut out = Unnamed::default();
    for kind in [ItemKind::Users, ItemKind::ApiKeys, ItemKind::OAuthClients] {
        for image in all(store, kind, c).await? {
            match image {
                Image::User(u) if owned(u.source) && !users.contains(&u.email) => match kept_for(&u, gone) {
                    0 => out.removals.push(ItemRemoval::User(c.code.clone(), u)),
                    n => out.kept.push(format!(
                        "keep license user {}/{} although the catalog no longer names it: it is assigned to \
                         {n} license(s) the import keeps (unassign them, then import with --prune again)",
                        c.code, u.email
                    )),
                },
                Image::ApiKey(k) if owned(k.source) && !keys.contains(k.id.as_str()) => {
                    out.removals.push(ItemRemoval::ApiKey(k))
                }
                Image::OAuthClient(o) if owned(o.source) && !clients.contains(o.id.as_str()) => {
                    out.removals.push(ItemRemoval::OAuthClient(o))
                }
                _ => {}
            }
        }
    }
    Ok(out)
}

fn owned(source: Option<LicenseSource>) -> bool {
    source == Some(LicenseSource::Catalog)
}

/// How many of the user's assignments are to licenses the import keeps.
fn kept_for(user: &LicenseUser, gone: &HashSet<(&ProductCode, i64)>) -> usize {
    let bundles = user.bundle_licenses.iter().map(|(p, id, _)| (p, *id));
    let all = user.licenses.iter().map(|(p, id)| (p, *id)).chain(bundles);
    all.filter(|l| !gone.contains(l)).count()
}

/// Every item of `kind` of the company.
async fn all(store: &dyn Store, kind: ItemKind, c: &CompanyEntry) -> Result<Vec<Image>, StoreError> {
    let (mut items, mut cursor) = (Vec::new(), None);
    loop {
        let page = store.list_items(kind, &c.code, cursor.as_deref(), MAX_PAGE).await?;
        items.extend(page.items);
        cursor = page.cursor;
        if cursor.is_none() {
            return Ok(items);
        }
    }
}
