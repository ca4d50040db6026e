//! Catalog import as a plan: every item a validated catalog names, in the form the import would store
//! it, compared with what is stored now. Only what differs is written (a re-import that changes
//! nothing writes nothing), and [`ImportOptions::dry_run`] reports every change — a company's
//! blacklist emptied, a limit lowered — before anything is written. The catalog is the desired state
//! of what it names; counters that requests change are kept ([`crate::store::write::Attr::on_upsert`]).
//! SQLite writes the whole plan in one transaction; DynamoDB item by item, API keys last, so a key
//! never works before what it serves exists. With [`ImportOptions::prune`] the plan also removes the
//! catalog-owned licenses the catalog no longer lists ([`prune`]), and its users, API keys and OAuth
//! clients it no longer names ([`prune_items`]). What support added through the
//! Management API — blacklist entries, license assignments — a re-import keeps ([`support`]).

mod prune;
mod prune_items;
mod support;

pub use prune::Removal;
pub use prune_items::ItemRemoval;

use crate::audit::{self, Actor, Trail};
use crate::catalog::{customer_index_fits, Catalog, CatalogPassword, CompanyEntry, OAuthClientEntry};
use crate::identity::oidc::ProviderAccount;
use crate::ids::{CompanyId, ProductCode};
use crate::model::{
    ApiKeyRecord, CustomerAccountRecord, CustomerLicenses, LicenseSource, LicenseUser, OAuthClientRecord,
};
use crate::password;
use crate::plan::{LicenseAddr, WriteToken};
use crate::sealed::SealingKey;
use crate::secret::{ExposeSecret, SecretString};
use crate::store::write::{create_or_replace, Attr, Image, Item, Val, Write};
use crate::store::{Store, StoreError};
use futures::stream::{self, StreamExt, TryStreamExt};
use std::collections::HashSet;

/// How an import runs.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// Compute and report the changes; write nothing.
    pub dry_run: bool,
    /// Who the audit records of the changes name (docs/audit.md): by default the OS user running it.
    pub actor: Actor,
    /// How long those records are kept, in days.
    pub audit_retention_days: i64,
    /// Also remove the catalog-owned licenses, license users, API keys and OAuth clients of the
    /// catalog's companies that it no longer names (`--prune`, [`prune`], [`prune_items`]).
    pub prune: bool,
}

impl Default for ImportOptions {
    fn default() -> Self {
        Self {
            dry_run: false,
            actor: Actor::cli_user(),
            audit_retention_days: crate::audit::DEFAULT_RETENTION_DAYS,
            prune: false,
        }
    }
}

/// What an import found, and wrote unless it was a dry run.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ImportReport {
    pub companies: usize,
    pub api_keys: usize,
    pub products: usize,
    pub users: usize,
    pub licenses: usize,
    pub oauth_clients: usize,
    pub customer_accounts: usize,
    /// Users whose own password (set through `change_password`) the import kept.
    pub passwords_kept: usize,
    /// Items that differ from what is stored, in the order they are (or would be) written.
    pub changes: Vec<Change>,
    /// Items the catalog names that are stored exactly as it says.
    pub unchanged: usize,
    /// With `prune`: the licenses removed (or, in a dry run, to be removed), in write order.
    pub removals: Vec<Removal>,
    /// Without `prune`, in a dry run: how many licenses `--prune` would remove.
    pub prunable: usize,
    /// ... and how many items (devices, seats, markers) beside them.
    pub prunable_beside: usize,
    /// With `prune`: the license users, API keys and OAuth clients removed (or to be), in write order.
    pub item_removals: Vec<ItemRemoval>,
    /// Without `prune`, in a dry run: how many license users, API keys and OAuth clients it would remove.
    pub prunable_items: usize,
    /// What the import keeps because support added it (blacklist entries, license assignments), one
    /// line each, as `import --dry-run` prints them.
    pub kept: Vec<String>,
}

/// One item the import creates or changes.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub item: Item,
    /// What is stored now (`None`: the item is new).
    pub before: Option<Image>,
    /// What the item holds after the import.
    pub after: Image,
    write: Write,
}

/// Writes a validated catalog (see the module header).
pub async fn import(store: &dyn Store, catalog: &Catalog) -> Result<ImportReport, StoreError> {
    import_sealed(store, catalog, None).await
}

/// [`import`], sealing OAuth client and customer account secrets with `sealing_key`; a catalog with
/// either needs one.
pub async fn import_sealed(
    store: &dyn Store,
    catalog: &Catalog,
    sealing_key: Option<&SealingKey>,
) -> Result<ImportReport, StoreError> {
    import_with(store, catalog, sealing_key, ImportOptions::default()).await
}

/// [`import_sealed`] with options: the plan, then (unless a dry run) its writes.
pub async fn import_with(
    store: &dyn Store,
    catalog: &Catalog,
    sealing_key: Option<&SealingKey>,
    options: ImportOptions,
) -> Result<ImportReport, StoreError> {
    needs_sealing_key(catalog, sealing_key)?;
    let mut report = ImportReport::default();
    let mut trails = Vec::new();
    for c in &catalog.companies {
        // Read only when asked for: it reads every license of the company.
        let removals = match options.prune || options.dry_run {
            true => prune::unnamed(store, &c.code, &named_licenses(c)).await?,
            false => Vec::new(),
        };
        let pruned: &[Removal] = if options.prune { &removals } else { &[] };
        plan_company(store, c, sealing_key, pruned, &mut report).await?;
        let trail = Trail::new(options.actor.clone(), c.code.clone(), options.audit_retention_days);
        trails.resize(report.changes.len(), trail);
        let items = match options.prune || options.dry_run {
            true => prune_items::unnamed(store, c, &licenses_of(&removals)).await?,
            false => Default::default(),
        };
        if options.prune {
            report.removals.extend(removals);
            report.item_removals.extend(items.removals);
            report.kept.extend(items.kept);
        } else {
            report.prunable += removals.len();
            report.prunable_beside += removals.iter().map(|r| r.beside.len()).sum::<usize>();
            report.prunable_items += items.removals.len();
        }
    }
    if !options.dry_run {
        let mut writes = audited(&trails, &report.changes);
        writes.extend(removal_writes(&options, &report.removals, &report.item_removals));
        store.write_all(writes).await?;
        prune::sweep(store, &report.removals).await?;
        // The embedded store's expired audit records go here and in `serve` (DynamoDB's TTL deletes its own).
        store.purge_audit(crate::time::Timestamp::now()).await?;
    }
    Ok(report)
}

/// The writes of `changes`, each with its audit record (`trails[i]`: the company of `changes[i]`): one
/// per item the import creates or changes, in that item's own write, so an item is never changed
/// unrecorded (on DynamoDB, where an import is written item by item, as on SQLite, where it is one
/// transaction). Added only here, so the plan a dry run reports is the change alone.
fn audited(trails: &[Trail], changes: &[Change]) -> Vec<Write> {
    let at = crate::time::Timestamp::now();
    let writes = changes.iter().zip(trails).map(|(change, trail)| {
        let mut write = change.write.clone();
        write
            .items
            .push(trail.item(&change.audit_change(), &WriteToken::new(), at));
        write
    });
    writes.collect()
}

/// The storage keys of the company's licenses the catalog lists.
fn named_licenses(c: &CompanyEntry) -> HashSet<String> {
    c.licenses
        .iter()
        .map(|(l, _)| LicenseAddr::of(l).storage_key())
        .collect()
}

/// The licenses `removals` remove, by product and id.
fn licenses_of(removals: &[Removal]) -> HashSet<(&ProductCode, i64)> {
    removals.iter().map(|r| (&r.license.product, r.license.id)).collect()
}

/// The writes of the removals, each item's audit record in its own deletion's write.
fn removal_writes(options: &ImportOptions, removals: &[Removal], items: &[ItemRemoval]) -> Vec<Write> {
    let at = crate::time::Timestamp::now();
    let trail = |company: &CompanyId| Trail::new(options.actor.clone(), company.clone(), options.audit_retention_days);
    let licenses = removals.iter().flat_map(|r| r.writes(&trail(&r.license.company), at));
    licenses
        .chain(items.iter().map(|i| i.write(&trail(i.company()), at)))
        .collect()
}

fn needs_sealing_key(catalog: &Catalog, sealing_key: Option<&SealingKey>) -> Result<(), StoreError> {
    if sealing_key.is_some() {
        return Ok(());
    }
    let needs = |what: &str, doc: &str| {
        Err(StoreError::Invalid(format!(
            "the catalog has {what}, whose secrets are stored sealed: configure a sealing key \
             (`license-server keygen` writes one; {doc})"
        )))
    };
    if catalog.companies.iter().any(|c| !c.oauth_clients.is_empty()) {
        return needs("oauth_clients", "docs/oauth.md");
    }
    if catalog.companies.iter().any(|c| !c.customer_accounts.is_empty()) {
        return needs("customer_accounts", "docs/sso.md");
    }
    Ok(())
}

/// Adds one company's items to the plan, in write order.
async fn plan_company(
    store: &dyn Store,
    c: &CompanyEntry,
    sealing_key: Option<&SealingKey>,
    pruned: &[Removal],
    report: &mut ImportReport,
) -> Result<(), StoreError> {
    let mut plan = Plan { store, report };
    plan.company(c).await?;
    for p in &c.products {
        let item = Item::Product(c.code.clone(), p.code.clone());
        plan.put(item, Image::Product(Box::new(p.clone()))).await?;
    }
    // Support's assignments to a license `--prune` removes go with it.
    let gone = licenses_of(pruned);
    for (user, current) in users(store, c, &gone, plan.report).await? {
        let item = Item::User(c.code.clone(), user.email.clone());
        // Over the user as read: a concurrent assignment or password change is not lost.
        plan.compare(item, current, Image::User(Box::new(user)), How::OverRead);
    }
    for (license, seats) in &c.licenses {
        let addr = LicenseAddr::of(license);
        plan.upsert(Item::License(addr.clone()), Image::License(Box::new(license.clone())))
            .await?;
        for seat in seats {
            plan.upsert(Item::Seat(addr.clone(), seat.user.clone()), Image::Seat(seat.clone()))
                .await?;
        }
    }
    // After the licenses they name, so an index never leads to a license not yet written.
    // A pruned license leaves its customers' indexes too: it is "named" so the stored entry is dropped.
    let named: HashSet<(&ProductCode, i64)> = c
        .licenses
        .iter()
        .map(|(l, _)| l)
        .chain(pruned.iter().map(|r| &r.license))
        .map(|l| (&l.product, l.id))
        .collect();
    for customer in &c.customers {
        plan.index(&c.code, customer, &named).await?;
    }
    for key in &c.api_keys {
        let key = ApiKeyRecord {
            source: Some(LicenseSource::Catalog),
            ..key.clone()
        };
        plan.put(Item::ApiKey(key.id.clone()), Image::ApiKey(Box::new(key)))
            .await?;
    }
    if let Some(key) = sealing_key {
        for client in &c.oauth_clients {
            let record = oauth_client_record(store, &c.code, client, key).await?;
            plan.put(
                Item::OAuthClient(record.id.clone()),
                Image::OAuthClient(Box::new(record)),
            )
            .await?;
        }
        for account in &c.customer_accounts {
            let record = customer_account_record(store, account, key).await?;
            let item = Item::CustomerAccount(record.company.clone(), record.code.clone());
            plan.put(item, Image::CustomerAccount(Box::new(record))).await?;
        }
    }
    let r = &mut *plan.report;
    r.companies += 1;
    r.api_keys += c.api_keys.len();
    r.products += c.products.len();
    r.users += c.users.len();
    r.licenses += c.licenses.len();
    r.oauth_clients += c.oauth_clients.len();
    r.customer_accounts += c.customer_accounts.len();
    Ok(())
}

/// How the import writes an item.
#[derive(Clone, Copy)]
enum How {
    /// The whole item, replacing what is stored.
    Put,
    /// Keeping what requests changed ([`Attr::on_upsert`]).
    Upsert,
    /// The whole item, only over the item as the plan read it (requests change it too).
    OverRead,
}

/// The catalog's index for a customer followed by the `stored` entries whose license `named` (the
/// catalog's licenses) does not hold, as many as fit its bounds; and how many did not fit.
fn merged_index(
    computed: &CustomerLicenses,
    stored: Option<&CustomerLicenses>,
    named: &HashSet<(&ProductCode, i64)>,
) -> (CustomerLicenses, usize) {
    let mut merged = computed.clone();
    let mut left_out = 0;
    let kept = stored.iter().flat_map(|s| &s.licenses);
    for entry in kept.filter(|e| !named.contains(&(&e.product, e.id))) {
        merged.licenses.push(entry.clone());
        if !customer_index_fits(&merged) {
            merged.licenses.pop();
            left_out += 1;
        }
    }
    (merged, left_out)
}

struct Plan<'a> {
    store: &'a dyn Store,
    report: &'a mut ImportReport,
}

impl Plan<'_> {
    /// The company as the catalog states it, keeping support's blacklist entries ([`support`]); written
    /// over the company as read, so an entry support adds meanwhile is not lost.
    async fn company(&mut self, c: &CompanyEntry) -> Result<(), StoreError> {
        let item = Item::Company(c.code.clone());
        let current = self.store.load(&item).await?;
        let stored = match &current {
            Some(Image::Company(stored)) => Some(&**stored),
            _ => None,
        };
        let (company, kept) = support::company(&c.company, stored, &c.code);
        self.report.kept.extend(kept);
        self.compare(item, current, Image::Company(Box::new(company)), How::OverRead);
        Ok(())
    }

    async fn put(&mut self, item: Item, image: Image) -> Result<(), StoreError> {
        let current = self.store.load(&item).await?;
        self.compare(item, current, image, How::Put);
        Ok(())
    }

    async fn upsert(&mut self, item: Item, image: Image) -> Result<(), StoreError> {
        let current = self.store.load(&item).await?;
        self.compare(item, current, image, How::Upsert);
        Ok(())
    }

    /// A customer's index as the catalog computes it, plus the entries of the stored index whose
    /// license the catalog does not name (trials `trial_key` created, or licenses the catalog dropped
    /// but did not delete): a re-import must not unlist them. Written only over the index as read, so
    /// a trial indexed meanwhile is not lost: the import fails naming the index instead.
    async fn index(
        &mut self,
        company: &CompanyId,
        computed: &CustomerLicenses,
        named: &HashSet<(&ProductCode, i64)>,
    ) -> Result<(), StoreError> {
        let item = Item::Customer(company.clone(), computed.email.clone());
        let current = self.store.load(&item).await?;
        let stored = match &current {
            Some(Image::Customer(stored)) => Some(&**stored),
            _ => None,
        };
        let (merged, left_out) = merged_index(computed, stored, named);
        if left_out > 0 {
            tracing::warn!(
                customer = %computed.email,
                left_out,
                "the customer's index is full: entries not in the catalog were left out of it"
            );
        }
        self.compare(item, current, Image::Customer(Box::new(merged)), How::OverRead);
        Ok(())
    }

    /// Records the write of `image` (see [`How`]) when what it leaves differs from what is stored.
    fn compare(&mut self, item: Item, current: Option<Image>, image: Image, how: How) {
        let after = match how {
            // An image the store could not merge is written anyway: the store's apply reports it.
            How::Upsert => image
                .clone()
                .upserted_over(current.as_ref())
                .unwrap_or_else(|_| image.clone()),
            How::Put | How::OverRead => image.clone(),
        };
        if current.as_ref() == Some(&after) {
            self.report.unchanged += 1;
            return;
        }
        let write = match how {
            How::Upsert => Write::upsert(item.clone(), image),
            How::Put => Write::put(item.clone(), image),
            How::OverRead => Write {
                items: vec![create_or_replace(item.clone(), current.clone(), image)],
            },
        };
        self.report.changes.push(Change {
            item,
            before: current,
            after,
            write,
        });
    }
}

/// Users read (and their passwords checked) at once: reads overlap their round trips; password checks
/// beyond the hashing pool's threads wait there, holding no memory.
const USERS_AT_ONCE: usize = 32;

/// The company's users as they are to be stored, each with its stored record. Stored hashes that
/// still match are kept (checked concurrently: each costs an argon2 verification), and so is a
/// password the user changed themselves unless the catalog manages it.
async fn users(
    store: &dyn Store,
    c: &CompanyEntry,
    gone: &HashSet<(&ProductCode, i64)>,
    report: &mut ImportReport,
) -> Result<Vec<(LicenseUser, Option<Image>)>, StoreError> {
    let planned: Vec<(LicenseUser, Option<Image>, bool, Vec<String>)> = stream::iter(&c.users)
        .map(|(user, password)| async move {
            let current = store.get_user(&c.code, &user.email).await?;
            let (mut user, kept_lines) = support::user(user.clone(), current.as_ref(), &c.code, gone);
            user.source = Some(LicenseSource::Catalog);
            // The catalog has no `disabled`: the vendor's disable (Management API) outlives a re-import.
            user.disabled = current.as_ref().is_some_and(|u| u.disabled);
            let kept = user_changed_password(current.as_ref(), &user);
            if let Some(hash) = kept.clone() {
                user.password_hash = Some(hash);
                user.password_changed_by_user = true;
            } else {
                let stored = current.as_ref().and_then(|u| u.password_hash.clone());
                user.password_hash = catalog_password_hash(password, stored).await?;
            }
            let current = current.map(|u| Image::User(Box::new(u)));
            Ok::<_, StoreError>((user, current, kept.is_some(), kept_lines))
        })
        .buffered(USERS_AT_ONCE)
        .try_collect()
        .await?;
    report.passwords_kept += planned.iter().filter(|(_, _, kept, _)| *kept).count();
    let users = planned.into_iter().map(|(u, current, _, lines)| {
        report.kept.extend(lines);
        (u, current)
    });
    Ok(users.collect())
}

/// The stored hash to keep instead of the catalog's password: the user changed it themselves and the
/// vendor does not manage it (`password_change_disabled`), so a re-import must not undo that change.
fn user_changed_password(existing: Option<&LicenseUser>, imported: &LicenseUser) -> Option<String> {
    let existing = existing?;
    if !existing.password_changed_by_user || imported.password_change_disabled {
        return None;
    }
    existing.password_hash.clone()
}

/// The hash to store for the catalog's password: a hash the catalog gives as it is; for a plain
/// password, the stored hash when it still matches (re-imports do not churn hashes), else a new one.
async fn catalog_password_hash(
    password: &CatalogPassword,
    existing: Option<String>,
) -> Result<Option<String>, StoreError> {
    match password {
        CatalogPassword::None => Ok(None),
        CatalogPassword::Hash(hash) => Ok(Some(hash.expose_secret().to_owned())),
        CatalogPassword::Plain(pw) => kept_or_new_hash(pw, existing).await.map(Some),
    }
}

/// The stored argon2id hash of `secret` while it still matches (re-imports do not churn hashes), else
/// a new one, computed off the async threads.
async fn kept_or_new_hash(secret: &SecretString, stored: Option<String>) -> Result<String, StoreError> {
    if let Some(hash) = stored {
        if password::verify(secret.expose_secret().to_owned(), Some(hash.clone())).await {
            return Ok(hash);
        }
    }
    let secret = secret.clone();
    tokio::task::spawn_blocking(move || password::hash(secret.expose_secret()))
        .await
        .map_err(|e| StoreError::Invalid(format!("hashing a password failed: {e}")))
}

/// The stored form of a catalog client. A stored hash and sealed secret that still match the catalog's
/// secret are kept, so re-importing does not churn them.
async fn oauth_client_record(
    store: &dyn Store,
    company: &CompanyId,
    client: &OAuthClientEntry,
    sealing_key: &SealingKey,
) -> Result<OAuthClientRecord, StoreError> {
    let existing = store.oauth_client(&client.id).await?;
    let context = OAuthClientRecord::seal_context(&client.id);
    let secret_hash = kept_or_new_hash(&client.secret, existing.as_ref().map(|c| c.secret_hash.clone())).await?;
    let sealed_secret = sealing_key
        .reseal(existing.map(|c| c.sealed_secret), &client.secret, &context)
        .map_err(|e| StoreError::Invalid(format!("oauth client {}: {e}", client.id)))?;
    Ok(OAuthClientRecord {
        id: client.id.clone(),
        company: company.clone(),
        secret_hash,
        sealed_secret,
        products: client.products.clone(),
        read_only: client.read_only,
        revoked: client.revoked,
        source: Some(LicenseSource::Catalog),
    })
}

/// The stored form of a catalog customer account; a stored sealed secret that still opens to the
/// catalog's is kept, so re-importing does not churn it.
async fn customer_account_record(
    store: &dyn Store,
    account: &ProviderAccount,
    sealing_key: &SealingKey,
) -> Result<CustomerAccountRecord, StoreError> {
    let context = CustomerAccountRecord::seal_context(&account.company, &account.code);
    let stored = store.customer_account(&account.company, &account.code).await?;
    let sealed_secret = sealing_key
        .reseal(stored.map(|a| a.sealed_secret), &account.client_secret, &context)
        .map_err(|e| StoreError::Invalid(format!("customer account {}: {e}", account.code)))?;
    Ok(CustomerAccountRecord {
        company: account.company.clone(),
        code: account.code.clone(),
        issuer: account.issuer.clone(),
        client_id: account.client_id.clone(),
        sealed_secret,
        redirect_uris: account.redirect_uris.clone(),
        email_claim: account.email_claim.clone(),
    })
}

impl Change {
    /// What the audit trail says of this change: created or updated, the item, and for an update the
    /// names of the attributes that change (never their values: some are secrets).
    fn audit_change(&self) -> audit::Change {
        let subject = match &self.item {
            Item::License(addr) | Item::Seat(addr, _) => audit::license_subject(addr),
            Item::User(_, user) => audit::user_subject(user),
            other => label(other),
        };
        let Some(before) = &self.before else {
            let detail = serde_json::json!({ "item": label(&self.item) });
            return audit::Change {
                action: "import.create",
                subject,
                detail,
            };
        };
        let changed: Vec<&str> = Attr::ALL
            .iter()
            .filter(|&&a| before.get(a) != self.after.get(a))
            .map(|a| a.name())
            .collect();
        let detail = serde_json::json!({ "item": label(&self.item), "changed": changed });
        audit::Change {
            action: "import.update",
            subject,
            detail,
        }
    }

    /// One line for an operator: what is created or which attributes change, secrets shown only as
    /// changed. `import --dry-run` prints these.
    pub fn describe(&self) -> String {
        let what = label(&self.item);
        let Some(before) = &self.before else {
            return format!("create {what}");
        };
        let fields: Vec<String> = Attr::ALL
            .iter()
            .filter_map(|&a| {
                let (old, new) = (before.get(a), self.after.get(a));
                (old != new).then(|| attribute_change(a, old, new))
            })
            .flatten()
            .collect();
        format!("update {what}: {}", fields.join("; "))
    }
}

fn label(item: &Item) -> String {
    let addr = |a: &LicenseAddr| match a {
        LicenseAddr::Key { company, product, key } => format!("{company}/{product} {key}"),
        LicenseAddr::Id { company, product, id } => format!("{company}/{product} #{id}"),
    };
    match item {
        Item::Company(c) => format!("company {c}"),
        Item::Product(c, p) => format!("product {c}/{p}"),
        Item::User(c, u) => format!("license user {c}/{u}"),
        Item::License(a) => format!("license {}", addr(a)),
        Item::Seat(a, u) => format!("seat of {u} on license {}", addr(a)),
        Item::ApiKey(k) => format!("API key {k}"),
        Item::OAuthClient(id) => format!("OAuth client {id}"),
        Item::CustomerAccount(c, code) => format!("customer account {c}/{code}"),
        Item::Customer(c, email) => format!("customer index {c}/{email}"),
        Item::ManagementKey(c, id) => format!("management key {c}/{id}"),
        other => format!("{other:?}"),
    }
}

/// Attributes whose values are secrets or hashes: shown only as changed.
fn is_secret(name: &str) -> bool {
    ["secret", "hash", "shared_key", "password", "sealed"]
        .iter()
        .any(|s| name.contains(s))
}

/// What changed in one attribute; a JSON document (`doc`) is compared field by field.
fn attribute_change(attr: Attr, old: Option<Val>, new: Option<Val>) -> Vec<String> {
    let name = attr.name();
    match (attr, &old, &new) {
        (Attr::Doc, Some(Val::Str(old)), Some(Val::Str(new))) => doc_changes(old, new)
            .into_iter()
            // A field the item also stores as its own attribute (a blacklist) is reported by that.
            .filter(|line| {
                !Attr::ALL
                    .iter()
                    .any(|a| *a != Attr::Doc && line.starts_with(&format!("{}:", a.name())))
            })
            .collect(),
        (Attr::Blacklist, _, _) => vec![set_change(name, old, new)],
        _ if is_secret(name) => vec![format!("{name} changed")],
        _ => vec![format!("{name}: {} → {}", shown(&old), shown(&new))],
    }
}

fn doc_changes(old: &str, new: &str) -> Vec<String> {
    let parse = |s: &str| serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(s).unwrap_or_default();
    let (old, new) = (parse(old), parse(new));
    let mut keys: Vec<&String> = old.keys().chain(new.keys()).collect();
    keys.sort();
    keys.dedup();
    // A field the item also stores as an attribute of its own (a blacklist) is reported by that.
    let stored_apart = |k: &str| Attr::ALL.iter().any(|a| *a != Attr::Doc && a.name() == k);
    keys.into_iter()
        .filter(|k| old.get(*k) != new.get(*k) && !stored_apart(k))
        .map(|k| match is_secret(k) {
            true => format!("{k} changed"),
            false => format!("{k}: {} → {}", json_shown(old.get(k)), json_shown(new.get(k))),
        })
        .collect()
}

fn set_change(name: &str, old: Option<Val>, new: Option<Val>) -> String {
    let members = |v: Option<Val>| match v {
        Some(Val::Set(s)) => s,
        _ => Vec::new(),
    };
    let (old, new) = (members(old), members(new));
    let added: Vec<&String> = new.iter().filter(|h| !old.contains(h)).collect();
    let removed: Vec<&String> = old.iter().filter(|h| !new.contains(h)).collect();
    format!(
        "{name}: +{added:?} -{removed:?} ({} → {} entries)",
        old.len(),
        new.len()
    )
}

fn shown(v: &Option<Val>) -> String {
    match v {
        None => "(none)".into(),
        Some(Val::Bool(b)) => b.to_string(),
        Some(Val::Int(i)) => i.to_string(),
        Some(Val::Str(s)) => format!("{:?}", shortened(s)),
        Some(Val::Set(s)) => format!("{s:?}"),
        Some(Val::Counts(c)) => format!("{c:?}"),
    }
}

fn json_shown(v: Option<&serde_json::Value>) -> String {
    v.map_or_else(|| "(none)".to_owned(), |v| shortened(&v.to_string()))
}

/// At most 80 characters of a value, so one line stays readable.
fn shortened(text: &str) -> String {
    match text.chars().nth(80) {
        Some(_) => format!("{}…", text.chars().take(80).collect::<String>()),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::MAX_CUSTOMER_ENTRIES;
    use crate::ids::Username;
    use crate::model::CustomerLicense;

    fn entry(product: &ProductCode, id: i64) -> CustomerLicense {
        CustomerLicense {
            product: product.clone(),
            id,
            users: Vec::new(),
        }
    }

    /// The catalog's entries first, then the stored ones of licenses the catalog does not name (a
    /// license the catalog names but gave another customer is dropped), as many as fit.
    #[test]
    fn a_merged_index_keeps_what_the_catalog_does_not_name_while_it_fits() {
        let p = ProductCode::parse("p").unwrap();
        let email = Username::parse("a@b.c").unwrap();
        let index = |ids: &[i64]| CustomerLicenses {
            email: email.clone(),
            licenses: ids.iter().map(|id| entry(&p, *id)).collect(),
        };
        let named: HashSet<(&ProductCode, i64)> = [(&p, 1), (&p, 2)].into();
        let (merged, left_out) = merged_index(&index(&[1]), Some(&index(&[1, 2, 7, 8])), &named);
        assert_eq!((merged, left_out), (index(&[1, 7, 8]), 0));
        assert_eq!(merged_index(&index(&[1]), None, &named), (index(&[1]), 0));

        let many: Vec<i64> = (10..10 + MAX_CUSTOMER_ENTRIES as i64).collect();
        let (merged, left_out) = merged_index(&index(&[1]), Some(&index(&many)), &named);
        assert_eq!((merged.licenses.len(), left_out), (MAX_CUSTOMER_ENTRIES, 1));
        assert_eq!(merged.licenses[0], entry(&p, 1), "the catalog's own entries stay");
    }
}
