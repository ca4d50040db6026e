//! What License API keys and OAuth clients share once created: the grants a vendor changes
//! (`products`, `read_only`), revocation, and deletion once revoked — one implementation for both kinds
//! ([`super::api_keys`], [`super::oauth_clients`]). Each write changes only the fields it names, on the
//! condition that the credential's grants and revocation are still as read, so a revocation, an update
//! and a delete never undo one another (docs/management-resources.md).

use super::keys::refused;
use crate::audit::Change;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::ids::ProductCode;
use crate::state::Core;
use crate::store::write::{Action, Attr, Cond, Effect, Image, Item, ItemWrite, Val, Write};
use serde::Serialize;

/// A License API credential as the Management API changes it.
pub(crate) trait Credential: Sized {
    /// The audit actions of its revocation, update and deletion (`api_key.revoke`, …).
    const ACTIONS: [&'static str; 3];
    /// The route of its revocation, as an error names it.
    const REVOKE_ROUTE: &'static str;
    type View: Serialize + PartialEq + for<'a> From<&'a Self>;
    fn item(&self) -> Item;
    fn image(&self) -> Image;
    fn revoked(&self) -> bool;
    /// Itself revoked, or with the grants an update names.
    fn changed(&self, revoked: bool, products: Option<&[ProductCode]>, read_only: Option<bool>) -> Self;
    fn change(&self, action: &'static str) -> Change;
    /// Drops this process's cached record, so the change holds here at once; other processes see it
    /// within the key cache's TTL (docs/limits.md).
    fn forget(&self, state: &Core);
    /// The kind and id, as errors name it (`API key k-1`).
    fn name(&self) -> String;
    fn unknown(&self) -> ApiError {
        ApiError::UnknownResource(self.name())
    }
}

/// Revokes `record`; revoking a revoked credential changes and records nothing.
pub(super) async fn revoke<C: Credential>(state: &Core, principal: &Principal, record: C) -> Result<C::View, ApiError> {
    if record.revoked() {
        return Ok(C::View::from(&record));
    }
    let revoked = record.changed(true, None, None);
    let write = set_fields(
        record.item(),
        vec![Cond::Exists],
        vec![Effect::Set(Attr::Revoked, Val::Bool(true))],
    );
    super::write_once(state, principal, &revoked.change(C::ACTIONS[0]), write)
        .await
        .map_err(|r| refused(r, || record.unknown()))?;
    record.forget(state);
    Ok(C::View::from(&revoked))
}

/// Changes `old`'s `products` (each must exist) and/or `read_only`, on the condition that its
/// `read_only` and `revoked` are still as read: a concurrent revocation is never undone (409
/// `contention` instead).
pub(super) async fn update<C: Credential>(
    state: &Core,
    principal: &Principal,
    old: C,
    products: Option<&[ProductCode]>,
    read_only: Option<bool>,
) -> Result<C::View, ApiError> {
    if let Some(products) = products {
        super::products::ensure_exist(state, principal, products).await?;
    }
    let new = old.changed(old.revoked(), products, read_only);
    if C::View::from(&new) == C::View::from(&old) {
        return Ok(C::View::from(&new));
    }
    let products = products.map(|p| {
        let names = p.iter().map(|c| c.as_str().to_owned()).collect();
        Effect::Set(Attr::Products, Val::Set(names))
    });
    let read_only = read_only.map(|r| Effect::Set(Attr::ReadOnly, Val::Bool(r)));
    let write = set_fields(
        old.item(),
        as_read(&old.image()),
        products.into_iter().chain(read_only).collect(),
    );
    super::write_once(state, principal, &new.change(C::ACTIONS[1]), write)
        .await
        .map_err(|r| refused(r, || ApiError::Contention))?;
    new.forget(state);
    Ok(C::View::from(&new))
}

/// Deletes `record`, only once revoked (409 `resource_in_use` otherwise): a credential in use is first
/// refused by the License API everywhere, so a mistaken delete shows before the record is gone.
pub(super) async fn delete<C: Credential>(state: &Core, principal: &Principal, record: C) -> Result<C::View, ApiError> {
    if !record.revoked() {
        return Err(ApiError::ResourceInUse(format!(
            "{} is not revoked: revoke it first ({})",
            record.name(),
            C::REVOKE_ROUTE
        )));
    }
    super::write_once(state, principal, &record.change(C::ACTIONS[2]), delete_write(&record))
        .await
        .map_err(|r| refused(r, || record.unknown()))?;
    record.forget(state);
    Ok(C::View::from(&record))
}

/// The credential's deletion, conditioned on its being as read; `import --prune` deletes with it.
pub(crate) fn delete_write<C: Credential>(record: &C) -> Write {
    let mut write = Write::delete(record.item());
    write.items[0].conditions = as_read(&record.image());
    write
}

/// A write of the credential's item that changes only what `effects` name.
fn set_fields(item: Item, conditions: Vec<Cond>, effects: Vec<Effect>) -> Write {
    let action = Action::Update(effects);
    Write {
        items: vec![ItemWrite {
            item,
            conditions,
            action,
        }],
    }
}

/// The conditions that the credential's grants and revocation are still as read.
fn as_read(image: &Image) -> Vec<Cond> {
    let mut conditions = vec![Cond::Exists];
    for attr in [Attr::ReadOnly, Attr::Revoked] {
        if let Some(value) = image.get(attr) {
            conditions.push(Cond::Eq(attr, value));
        }
    }
    conditions
}
