//! Domain types: what a company, product, license, license user and device *are*, independent of how a
//! store keeps them. The static description of a product or license (`ProductDoc`, `LicenseTerms`) is
//! what a vendor's catalog sets; the counters beside it are what activations change.

use crate::ids::{
    ApiKeyId, CompanyId, CustomerAccountCode, HardwareId, LicenseKey, ManagementKeyId, OAuthClientId, ProductCode,
    Username,
};
use crate::sealed::Sealed;
use crate::secret::{redacted_option, Redacted};
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};

/// An API key with its secret. `products` empty means "every product of the company".
#[derive(Clone)]
pub struct ApiKeyRecord {
    pub id: ApiKeyId,
    pub company: CompanyId,
    /// The HMAC secret; `Debug` redacts it (records are cached and may be logged).
    pub shared_key: String,
    pub products: Vec<ProductCode>,
    pub read_only: bool,
    pub revoked: bool,
    /// Who created it (`None`: stored before provenance was recorded, never pruned).
    pub source: Option<LicenseSource>,
}

impl std::fmt::Debug for ApiKeyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeyRecord")
            .field("id", &self.id)
            .field("company", &self.company)
            .field("shared_key", &Redacted)
            .field("products", &self.products)
            .field("read_only", &self.read_only)
            .field("revoked", &self.revoked)
            .field("source", &self.source)
            .finish()
    }
}

/// An OAuth client (client credentials grant, docs/oauth.md): restricted like an API key. Its secret is
/// kept twice: as an argon2id hash for the token endpoint, and sealed under the deployment's sealing
/// key for the offline files it signs (SPEC §6.2). `Debug` redacts the hash.
#[derive(Clone)]
pub struct OAuthClientRecord {
    pub id: OAuthClientId,
    pub company: CompanyId,
    /// argon2id PHC string of the secret (`password::hash`).
    pub secret_hash: String,
    /// The secret sealed for [`OAuthClientRecord::seal_context`].
    pub sealed_secret: Sealed,
    pub products: Vec<ProductCode>,
    pub read_only: bool,
    pub revoked: bool,
    /// Who created it (`None`: stored before provenance was recorded, never pruned).
    pub source: Option<LicenseSource>,
}

impl OAuthClientRecord {
    /// What the secret is sealed for: this client only (`sealed::SealingKey::seal`).
    pub fn seal_context(id: &OAuthClientId) -> String {
        format!("oauth-client:{id}")
    }
}

impl std::fmt::Debug for OAuthClientRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthClientRecord")
            .field("id", &self.id)
            .field("company", &self.company)
            .field("secret_hash", &Redacted)
            .field("sealed_secret", &self.sealed_secret)
            .field("products", &self.products)
            .field("read_only", &self.read_only)
            .field("revoked", &self.revoked)
            .field("source", &self.source)
            .finish()
    }
}

/// A management key (docs/management.md): authenticates the Management API for one company. Only a
/// SHA-256 digest of its secret is kept ([`crate::management::keys`] says why a fast digest suffices).
#[derive(Clone)]
pub struct ManagementKeyRecord {
    pub id: ManagementKeyId,
    pub company: CompanyId,
    /// A label for people (`--name`); not secret.
    pub name: String,
    /// Hex SHA-256 of the secret.
    pub secret_hash: String,
    pub read_only: bool,
    pub revoked: bool,
    pub created_at: Timestamp,
}

impl std::fmt::Debug for ManagementKeyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManagementKeyRecord")
            .field("id", &self.id)
            .field("company", &self.company)
            .field("name", &self.name)
            .field("secret_hash", &Redacted)
            .field("read_only", &self.read_only)
            .field("revoked", &self.revoked)
            .field("created_at", &self.created_at)
            .finish()
    }
}

/// The answer to the first request that carried an `Idempotency-Key` (docs/management.md): written in
/// the same write as the change it answers, so a repeat gets it again and changes nothing. `Debug`
/// redacts the answer: it may be a sealed secret shown once.
#[derive(Clone, PartialEq)]
pub struct IdempotencyRecord {
    pub company: CompanyId,
    pub key: String,
    /// Hex SHA-256 of the request (method, path, body): a different request with the same key is refused.
    pub request_digest: String,
    pub status: i64,
    pub answer: String,
    /// Unix seconds; DynamoDB's TTL attribute, and the SQLite store's purge.
    pub expires_at: i64,
}

impl std::fmt::Debug for IdempotencyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdempotencyRecord")
            .field("company", &self.company)
            .field("key", &self.key)
            .field("request_digest", &self.request_digest)
            .field("status", &self.status)
            .field("answer", &Redacted)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// A customer account's OpenID Connect provider (single sign-on, docs/sso.md): the client the vendor
/// registered there. The client secret is stored sealed under the deployment's sealing key.
#[derive(Clone, Debug)]
pub struct CustomerAccountRecord {
    pub company: CompanyId,
    pub code: CustomerAccountCode,
    /// The provider's issuer URL, exactly as its ID tokens carry it in `iss`.
    pub issuer: String,
    pub client_id: String,
    /// The client secret sealed for [`CustomerAccountRecord::seal_context`].
    pub sealed_secret: Sealed,
    /// Redirect URIs registered at the provider; the first is the default.
    pub redirect_uris: Vec<String>,
    /// The ID token claim that names the license user (an email).
    pub email_claim: String,
}

impl CustomerAccountRecord {
    /// What the secret is sealed for: this account only.
    pub fn seal_context(company: &CompanyId, code: &CustomerAccountCode) -> String {
        format!("customer-account:{company}:{code}")
    }
}

/// Company-wide settings that every request of the company consults.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Company {
    pub id: i64,
    /// The hardware ids the License API refuses (`blacklisted`): the catalog's and support's.
    pub blacklist: BTreeSet<HardwareId>,
    /// The entries of `blacklist` support added (`POST /blacklist`) that the catalog does not list: a
    /// re-import keeps them, and claims one the catalog lists (docs/catalog.md, *Ownership*). Omitted
    /// when empty, so records stored before it existed read and compare as they were.
    #[serde(skip_serializing_if = "BTreeSet::is_empty")]
    pub management_blacklist: BTreeSet<HardwareId>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum AuthorizationMethod {
    #[default]
    #[serde(rename = "license-key")]
    LicenseKey,
    #[serde(rename = "user")]
    User,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct ProductDoc {
    pub id: i64,
    #[serde(alias = "short_code")]
    pub code: ProductCode,
    pub name: String,
    pub authorization_method: AuthorizationMethod,
    pub metadata: Map<String, Value>,
    pub allow_trial: bool,
    pub trial_days: i64,
    pub allow_overages: bool,
    pub max_overages: i64,
    pub prevent_vm: bool,
    pub floating_timeout: i64,
    pub validity_period: Option<Timestamp>,
    pub disabled: bool,
    pub archived: bool,
    pub blacklist: BTreeSet<HardwareId>,
    pub features: Vec<Feature>,
    /// A bundle's member products (empty: not a bundle). A bundle license has one member license per
    /// member product (see `catalog` and docs/catalog.md).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub bundle_products: Vec<ProductCode>,
    /// The product's custom fields (`product_details` with `include_custom_fields`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub custom_fields: Vec<CustomField>,
    /// Released versions, oldest first (`product_details` with `include_latest_version`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub versions: Vec<ProductVersion>,
    /// Named license terms a trial may be created with (`trial_key`'s `license_policy`; docs/catalog.md,
    /// *Trial policies*).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub license_policies: Vec<LicensePolicy>,
}

impl ProductDoc {
    /// The last listed version of `env` (absent: of any environment).
    pub fn latest_version(&self, env: Option<&str>) -> Option<&ProductVersion> {
        self.versions
            .iter()
            .rev()
            .find(|v| env.is_none_or(|env| v.environment.as_deref() == Some(env)))
    }
}

/// A released version of a product, as `product_details` shows the latest one.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Serialize, Deserialize, Default, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ProductVersion {
    pub version: String,
    /// The environment it is built for (`win64`, `linux`, ...), matched against the request's `env`.
    pub environment: Option<String>,
    pub release_date: Option<Timestamp>,
    /// Where to download it.
    pub url: Option<String>,
    pub md5_hash: Option<String>,
    /// The version a client must have before installing this one.
    pub requires_version: Option<String>,
}

impl ProductDoc {
    pub fn is_bundle(&self) -> bool {
        !self.bundle_products.is_empty()
    }
}

impl Default for ProductDoc {
    fn default() -> Self {
        Self {
            id: 0,
            code: ProductCode::parse("product").expect("literal is a valid code"),
            name: String::new(),
            authorization_method: AuthorizationMethod::LicenseKey,
            metadata: Map::new(),
            allow_trial: false,
            trial_days: 0,
            allow_overages: false,
            max_overages: 0,
            prevent_vm: false,
            floating_timeout: 120,
            validity_period: None,
            disabled: false,
            archived: false,
            blacklist: BTreeSet::new(),
            features: Vec::new(),
            bundle_products: Vec::new(),
            custom_fields: Vec::new(),
            versions: Vec::new(),
            license_policies: Vec::new(),
        }
    }
}

impl ProductDoc {
    /// The policy a trial request names, or else the product's default trial policy.
    pub fn trial_policy(&self, code: Option<&str>) -> Option<&LicensePolicy> {
        match code {
            Some(code) => self.license_policies.iter().find(|p| p.code == code),
            None => self.license_policies.iter().find(|p| p.default_trial),
        }
    }
}

/// Named license terms of a product (docs/catalog.md, *Trial policies*): the subset of a license's
/// fields that `trial_key` gives the license it creates. At most one is the product's default trial
/// policy, used when a trial request names none.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LicensePolicy {
    pub code: String,
    pub name: String,
    pub is_trial: bool,
    /// Used by `trial_key` when the request names no policy.
    pub default_trial: bool,
    /// Days from the first activation; 0: the product's `trial_days`.
    pub trial_days: i64,
    pub license_type: LicenseType,
    pub max_activations: i64,
    pub allow_unlimited_activations: bool,
    pub max_transfers: i64,
    /// `None` inherits the product's `prevent_vm`.
    pub prevent_vm: Option<bool>,
    pub allow_offline_activation: bool,
    pub max_consumptions: i64,
    pub allow_unlimited_consumptions: bool,
    pub metadata: Map<String, Value>,
}

impl Default for LicensePolicy {
    fn default() -> Self {
        Self {
            code: String::new(),
            name: String::new(),
            is_trial: true,
            default_trial: false,
            trial_days: 0,
            license_type: LicenseType::TimeLimited,
            max_activations: 1,
            allow_unlimited_activations: false,
            max_transfers: 0,
            prevent_vm: None,
            allow_offline_activation: true,
            max_consumptions: 0,
            allow_unlimited_consumptions: false,
            metadata: Map::new(),
        }
    }
}

/// Most license policies a product lists: each is part of the product's document, read by every
/// request of the product.
pub const MAX_LICENSE_POLICIES: usize = 50;

/// Where a product's trial for one device is (`trial_key`): the marker that makes the trial's creation
/// happen once per product and hardware id, naming the license it created.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrialRecord {
    pub license_id: i64,
    /// The key of a key-based trial.
    pub license_key: Option<LicenseKey>,
    /// The license user of a user-based trial.
    pub user: Option<Username>,
    pub created_at: Timestamp,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum FeatureType {
    #[default]
    Activation,
    Consumption,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Feature {
    pub id: i64,
    pub code: String,
    pub name: String,
    pub feature_type: FeatureType,
    pub expiry_date: Option<Timestamp>,
    pub metadata: Map<String, Value>,
    pub is_floating: bool,
    pub is_floating_cloud: bool,
    pub max_consumption: i64,
    pub total_consumptions: i64,
    pub allow_unlimited_consumptions: bool,
    pub allow_overages: bool,
    pub max_overages: i64,
    pub reset_consumption: bool,
    pub consumption_period: Option<String>,
    pub allow_negative_consumptions: bool,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum LicenseType {
    #[default]
    Perpetual,
    TimeLimited,
    Subscription,
    Consumption,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Serialize, Deserialize, Default, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct CustomField {
    pub name: String,
    pub data_type: String,
    pub value: String,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Serialize, Deserialize, Default, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Customer {
    pub email: Option<String>,
    pub company_name: Option<String>,
    pub reference: Option<String>,
    pub phone: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub city: Option<String>,
    pub postcode: Option<String>,
    pub state: Option<String>,
    pub country: Option<String>,
    pub address: Option<String>,
    pub customer_account: Option<Value>,
    pub metadata: Map<String, Value>,
}

/// Everything about a license that the vendor sets and activations never change.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct LicenseTerms {
    pub license_type: LicenseType,
    pub is_trial: bool,
    pub trial_days: i64,
    pub license_template_id: Option<i64>,
    pub order_store_id: Option<String>,
    pub allow_grace_period: bool,
    pub allow_overages: bool,
    pub allow_offline_activation: bool,
    pub can_borrow: bool,
    pub enable_maintenance_period: bool,
    pub is_air_gapped: bool,
    pub is_floating: bool,
    pub is_floating_cloud: bool,
    pub is_hardware_key_auth: bool,
    /// `None` inherits the product's `prevent_vm`.
    pub prevent_vm: Option<bool>,
    pub grace_period: i64,
    pub floating_timeout: i64,
    /// How many devices may hold a floating cloud slot at once.
    pub floating_users: i64,
    pub max_borrow_time: i64,
    pub max_overages: i64,
    pub max_license_users: i64,
    pub maintenance_period: Option<Timestamp>,
    pub start_date: Option<Timestamp>,
    pub metadata: Map<String, Value>,
    pub custom_fields: Vec<CustomField>,
    pub customer: Customer,
    pub max_consumptions: i64,
    pub total_consumptions: i64,
    pub allow_unlimited_consumptions: bool,
    pub allow_negative_consumptions: bool,
    pub reset_consumption: bool,
    pub consumption_period: Option<String>,
    /// Set by the importer on a member license: the bundle product it belongs to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bundle: Option<ProductCode>,
    /// Set by the importer on a bundle license: its member licenses, (member product, license id).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub bundle_members: Vec<(ProductCode, i64)>,
}

impl Default for LicenseTerms {
    fn default() -> Self {
        Self {
            license_type: LicenseType::Perpetual,
            is_trial: false,
            trial_days: 0,
            license_template_id: None,
            order_store_id: None,
            allow_grace_period: false,
            allow_overages: false,
            allow_offline_activation: true,
            can_borrow: false,
            enable_maintenance_period: false,
            is_air_gapped: false,
            is_floating: false,
            is_floating_cloud: false,
            is_hardware_key_auth: false,
            prevent_vm: None,
            grace_period: 0,
            floating_timeout: 0,
            floating_users: 0,
            max_borrow_time: 0,
            max_overages: 0,
            max_license_users: 0,
            maintenance_period: None,
            start_date: None,
            metadata: Map::new(),
            custom_fields: Vec::new(),
            customer: Customer::default(),
            max_consumptions: 0,
            total_consumptions: 0,
            allow_unlimited_consumptions: false,
            allow_negative_consumptions: false,
            reset_consumption: false,
            consumption_period: None,
            bundle: None,
            bundle_members: Vec::new(),
        }
    }
}

/// Who created a license, license user, API key or OAuth client, so an import with `--prune` removes
/// only what the catalog owns (docs/data-model.md, *Provenance*).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LicenseSource {
    /// Written by a catalog import: the catalog is its desired state.
    Catalog,
    /// Created by `trial_key`.
    Trial,
    /// Created through the Management API.
    Management,
}

impl LicenseSource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Catalog => "catalog",
            Self::Trial => "trial",
            Self::Management => "management",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Catalog, Self::Trial, Self::Management]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

/// A license: its terms, the limits the storage layer enforces in its conditions, and its counters.
#[derive(Clone, Debug)]
pub struct License {
    pub id: i64,
    pub company: CompanyId,
    pub product: ProductCode,
    /// Set for key-based licenses; user-based licenses are found through their users.
    pub key: Option<LicenseKey>,
    pub enabled: bool,
    pub max_activations: i64,
    pub allow_unlimited_activations: bool,
    /// 0 = unlimited, −1 = transfers prevented, N > 0 = at most N (SPEC §3).
    pub max_transfers: i64,
    /// `None` is perpetual until a trial's first activation sets it.
    pub validity_period: Option<Timestamp>,
    pub terms: LicenseTerms,
    /// Number of active devices.
    pub times_activated: i64,
    pub transfer_count: i64,
    /// How many deactivated devices freed a slot that no activation has re-used yet (SPEC §3 transfers).
    /// Which devices they are is kept beside the license, one marker each, so this item stays O(1) in
    /// the number of devices.
    pub released_count: i64,
    /// Consumptions recorded since the catalog's `terms.total_consumptions` (offline deactivations, later
    /// `add_consumption`): the license's total is the sum of both, so re-importing the catalog keeps them.
    pub consumptions: i64,
    /// Per consumption feature (by code), consumptions recorded on this license since the catalog's
    /// `total_consumptions` of the feature.
    pub feature_consumptions: BTreeMap<String, i64>,
    /// The start of the period `consumptions` counts, when the license's consumptions reset
    /// (`reset_consumption`); absent until the first write that applied the period.
    pub consumptions_period: Option<Timestamp>,
    /// Per periodic consumption feature (by code), the start of the period its counter counts.
    pub feature_periods: BTreeMap<String, Timestamp>,
    /// Floating cloud slots (`terms.is_floating_cloud`): hardware id → held until (Unix ms). A slot whose
    /// time has passed is free, with no write (docs/data-model.md, *Floating cloud*).
    pub floating: BTreeMap<String, i64>,
    /// Bumped by every write of `floating`, which is conditioned on the version read: the condition
    /// that keeps the live holders within `floating_users` under concurrency.
    pub floating_version: i64,
    /// Floating cloud slots held by a borrow (`floating/borrow`): hardware id → borrowed until (Unix ms).
    pub floating_borrowed: BTreeMap<String, i64>,
    /// Who created it; `None` for a license stored before provenance was recorded, which an import
    /// never prunes (it may not be the catalog's).
    pub source: Option<LicenseSource>,
}

impl License {
    /// A new, enabled license with one activation, unlimited transfers, default terms and no activity.
    pub fn new(id: i64, company: CompanyId, product: ProductCode, key: Option<LicenseKey>) -> Self {
        Self {
            id,
            company,
            product,
            key,
            enabled: true,
            max_activations: 1,
            allow_unlimited_activations: false,
            max_transfers: 0,
            validity_period: None,
            terms: LicenseTerms::default(),
            times_activated: 0,
            transfer_count: 0,
            released_count: 0,
            consumptions: 0,
            feature_consumptions: BTreeMap::new(),
            consumptions_period: None,
            feature_periods: BTreeMap::new(),
            floating: BTreeMap::new(),
            floating_version: 0,
            floating_borrowed: BTreeMap::new(),
            source: None,
        }
    }

    /// Does this license keep released slots at all? An unlimited license never runs out of fresh slots,
    /// so activating a new device on it is never a transfer and nothing needs remembering.
    pub fn tracks_transfers(&self) -> bool {
        !self.allow_unlimited_activations
    }

    /// The license's total consumptions: the catalog's starting value plus what was recorded since.
    pub fn total_consumptions(&self) -> i64 {
        self.terms.total_consumptions.saturating_add(self.consumptions)
    }

    /// A feature's total consumptions on this license.
    pub fn feature_total(&self, feature: &Feature) -> i64 {
        let recorded = self.feature_consumptions.get(&feature.code).copied().unwrap_or(0);
        feature.total_consumptions.saturating_add(recorded)
    }

    /// The license's total consumptions at `now`: 0 once the period its counter counts has ended
    /// (counters reset when next written; answers already show the new period).
    pub fn total_consumptions_at(&self, now: Timestamp) -> i64 {
        let t = &self.terms;
        let period = ConsumptionPeriod::of(t.reset_consumption, t.consumption_period.as_deref());
        if ended(period, t.start_date, self.consumptions_period, now) {
            0
        } else {
            self.total_consumptions()
        }
    }

    /// A feature's total consumptions at `now` (see [`License::total_consumptions_at`]).
    pub fn feature_total_at(&self, feature: &Feature, now: Timestamp) -> i64 {
        let period = ConsumptionPeriod::of(feature.reset_consumption, feature.consumption_period.as_deref());
        let stored = self.feature_periods.get(&feature.code).copied();
        if ended(period, self.terms.start_date, stored, now) {
            0
        } else {
            self.feature_total(feature)
        }
    }
}

/// A license user: a login that can hold licenses of several products. `Debug` redacts the password hash.
#[derive(Clone, Serialize, Deserialize)]
pub struct LicenseUser {
    pub id: i64,
    pub email: Username,
    #[serde(default)]
    pub first_name: Option<String>,
    #[serde(default)]
    pub last_name: Option<String>,
    #[serde(default)]
    pub phone_number: Option<String>,
    #[serde(default)]
    pub is_initial_password: bool,
    /// PHC string of an argon2id hash; `None` for users who only sign in through SSO.
    #[serde(default)]
    pub password_hash: Option<String>,
    /// Licenses assigned to the user: (product, license id), in assignment order.
    #[serde(default)]
    pub licenses: Vec<(ProductCode, i64)>,
    /// Member licenses of bundles assigned to the user: (member product, license id, bundle product).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bundle_licenses: Vec<(ProductCode, i64, ProductCode)>,
    /// The user may not change their password through `change_password` (the vendor manages it).
    /// Omitted when false, so records stored before it existed read and compare as they were.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub password_change_disabled: bool,
    /// The user was created by `trial_key` with the deployment's derived trial password
    /// (`trial::initial_password`), which trial answers repeat while `is_initial_password` holds.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub trial_password: bool,
    /// The user set the current password through `change_password`: a re-import keeps it (the catalog's
    /// password is where the user starts) unless the vendor manages it (`password_change_disabled`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub password_changed_by_user: bool,
    /// The entries of `licenses` support assigned (`POST …/licenses/{key}/users/{email}`) that the
    /// catalog does not list: a re-import keeps them, and claims one the catalog lists.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub management_licenses: Vec<(ProductCode, i64)>,
    /// Who created the user (`None`: stored before provenance was recorded, never pruned).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<LicenseSource>,
    /// The vendor disabled the user (`POST /users/{email}/disable`): the License API answers them as an
    /// unknown user, except to deactivate a device. Omitted when false, as above.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub disabled: bool,
}

impl std::fmt::Debug for LicenseUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LicenseUser")
            .field("id", &self.id)
            .field("email", &self.email)
            .field("first_name", &self.first_name)
            .field("last_name", &self.last_name)
            .field("phone_number", &self.phone_number)
            .field("is_initial_password", &self.is_initial_password)
            .field("password_hash", &redacted_option(&self.password_hash))
            .field("licenses", &self.licenses)
            .field("bundle_licenses", &self.bundle_licenses)
            .field("password_change_disabled", &self.password_change_disabled)
            .field("trial_password", &self.trial_password)
            .field("password_changed_by_user", &self.password_changed_by_user)
            .field("management_licenses", &self.management_licenses)
            .field("source", &self.source)
            .field("disabled", &self.disabled)
            .finish()
    }
}

/// A customer's licenses, found by the email of a license's `customer` object (SPEC §4.1): the index
/// `customer_license_users` reads, written by the catalog import beside the licenses it names (as a
/// license user's record lists that user's licenses). Stale entries (a license whose customer changed
/// since) are possible after a re-import and are skipped by readers, which check the license itself.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CustomerLicenses {
    /// The customer's email, lower-cased like a license user's (`Username`).
    pub email: Username,
    /// The customer's licenses, in catalog order.
    pub licenses: Vec<CustomerLicense>,
}

/// One license of a customer, with the license users the catalog assigned to it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CustomerLicense {
    pub product: ProductCode,
    pub id: i64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<Username>,
}

/// A user's own activation allowance on one license, and how much of it is used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seat {
    pub user: Username,
    pub max_activations: i64,
    pub allow_unlimited_activations: bool,
    pub total_activations: i64,
}

/// A device as recorded on one license.
#[derive(Clone, Debug, PartialEq)]
pub struct Device {
    pub id: i64,
    pub hardware_id: HardwareId,
    pub active: bool,
    /// The license user who activated it (user-based licenses).
    pub user: Option<Username>,
    pub first_activated_at: Timestamp,
    pub last_activated_at: Timestamp,
    pub deactivated_at: Option<Timestamp>,
    pub last_seen_at: Option<Timestamp>,
    pub details: Map<String, Value>,
    pub variables: Vec<DeviceVariable>,
    /// How many times the device was activated: the version every activation and deactivation is
    /// conditioned on, so a write planned against one activation never lands on the next (ABA).
    pub activations: i64,
    /// The token of the last activation or deactivation written, so a retry of a write whose answer was
    /// lost can tell that it already happened.
    pub write_token: Option<String>,
}

/// Most variables one device holds, all activations together.
pub const MAX_DEVICE_VARIABLES: usize = 100;
/// Most bytes a device's variables take as stored (their JSON, names, values and dates included): far
/// below DynamoDB's 400 KB per item, and small enough that an offline bundle's recorded answer, which
/// repeats them for each of up to 24 members, fits one item too.
pub const MAX_DEVICE_VARIABLE_BYTES: usize = 8 * 1024;

/// The size of `variables` as stored, counted against [`MAX_DEVICE_VARIABLE_BYTES`].
pub fn variables_size(variables: &[DeviceVariable]) -> usize {
    serde_json::to_string(variables).map_or(usize::MAX, |s| s.len())
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct DeviceVariable {
    pub variable: String,
    pub value: String,
    pub created_at: Timestamp,
}

/// Integer device id: stable for a (license, hardware id) pair, so a re-activated device keeps its id,
/// and needing no counter, so activation needs no extra write. 53 bits keep it exact in JavaScript.
pub fn device_id(license_id: i64, hardware_id: &HardwareId) -> i64 {
    id_of(license_id, hardware_id.as_str())
}

/// Integer id of a device's variable (`get_device_variables` answers carry one): stable for a (device,
/// name) pair, so it needs no counter nor storage, like [`device_id`].
pub fn variable_id(device_id: i64, name: &str) -> i64 {
    id_of(device_id, name)
}

/// A positive 53-bit id derived from an owner's id and a name.
fn id_of(owner: i64, name: &str) -> i64 {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(owner.to_be_bytes());
    h.update(name.as_bytes());
    let digest = h.finalize();
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    let id = (u64::from_be_bytes(bytes) & ((1 << 53) - 1)) as i64;
    id.max(1)
}

/// An offline request that was applied, kept so that uploading the same file again answers the same
/// result and changes nothing (SPEC §6; `store::write` makes it part of the request's own write).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessedRequest {
    pub key: crate::ids::RequestKey,
    /// The answer the request got, byte for byte.
    pub answer: String,
    pub processed_at: Timestamp,
    /// When the record may be forgotten (Unix seconds; DynamoDB's TTL attribute).
    pub expires_at: i64,
}

impl ProcessedRequest {
    /// Whether the record still stands at `now` (the write's condition on it says the same).
    pub fn is_live(&self, now: Timestamp) -> bool {
        self.expires_at > now.unix_seconds()
    }
}

/// One change to the catalog or to a license, kept for the vendor's audit trail. A change and its
/// record are one [`crate::store::write::Write`], so no change lands unrecorded. Records are keyed by
/// company and `id` (sortable by time), and are written once, never changed.
#[derive(Clone, Debug, PartialEq)]
pub struct AuditRecord {
    pub company: CompanyId,
    /// Unique within the company and ordered by time: `<at, Unix ms, 13 digits>#<random>`.
    pub id: String,
    pub at: Timestamp,
    /// Who made the change (an API key id, a management client, the CLI).
    pub actor: String,
    /// What was done (`license.update`, `device.reset`, ...).
    pub action: String,
    /// What it was done to (a license address, a product code, ...).
    pub subject: String,
    /// The change itself, as JSON (small and bounded: no secrets).
    pub detail: Value,
    /// When the record may be forgotten (Unix seconds; DynamoDB's TTL attribute): its time plus the
    /// retention configured when it was written (`audit::DEFAULT_RETENTION_DAYS`).
    pub expires_at: i64,
}

/// How often a consumption counter starts again at zero (`reset_consumption` with `consumption_period`,
/// SPEC §9). Periods are anchored at the license's `start_date` when it has one (a monthly period then
/// starts each month on the start date's day and time, clamped to the month's last day), otherwise at the
/// UTC calendar: midnight, Monday, the 1st of the month, January 1st.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConsumptionPeriod {
    Daily,
    Weekly,
    Monthly,
    Annually,
}

impl ConsumptionPeriod {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "daily" => Some(Self::Daily),
            "weekly" => Some(Self::Weekly),
            "monthly" => Some(Self::Monthly),
            "annually" => Some(Self::Annually),
            _ => None,
        }
    }

    /// The period a counter with these settings is reset by; `None`: it never resets.
    pub fn of(reset: bool, period: Option<&str>) -> Option<Self> {
        reset.then(|| period.and_then(Self::parse)).flatten()
    }

    /// The start of the period holding `now`, for periods anchored at `anchor` (see the type).
    pub fn start(self, anchor: Option<Timestamp>, now: Timestamp) -> Timestamp {
        const DAY: i64 = 86_400_000;
        // 1970-01-05 was a Monday.
        let (step_days, default_anchor) = match self {
            Self::Daily => (1, 0),
            Self::Weekly => (7, 4 * DAY),
            Self::Monthly => return months_start(anchor, now, 1),
            Self::Annually => return months_start(anchor, now, 12),
        };
        let anchor = anchor.map_or(default_anchor, Timestamp::millis);
        let step = step_days * DAY;
        let periods = now.millis().saturating_sub(anchor).div_euclid(step);
        Timestamp::from_millis(anchor.saturating_add(periods.saturating_mul(step)))
    }
}

/// Whether the period a counter recorded (`stored`) has ended by `now`.
fn ended(
    period: Option<ConsumptionPeriod>,
    anchor: Option<Timestamp>,
    stored: Option<Timestamp>,
    now: Timestamp,
) -> bool {
    period
        .zip(stored)
        .is_some_and(|(period, stored)| stored < period.start(anchor, now))
}

/// The start of the period of `step` months holding `now`, counted from `anchor` (default 1970-01-01).
fn months_start(anchor: Option<Timestamp>, now: Timestamp, step: i64) -> Timestamp {
    let anchor = anchor.unwrap_or(Timestamp::from_millis(0));
    let (a, n) = (civil(anchor), civil(now));
    let months = (n.0 * 12 + n.1) - (a.0 * 12 + a.1);
    let mut k = months.div_euclid(step) * step;
    // The anchor's day and time may lie later in the month than now: then the period began `step` earlier.
    if anchor.plus_months(k) > now {
        k -= step;
    }
    anchor.plus_months(k)
}

/// (year, month 0–11) of an instant, UTC.
fn civil(t: Timestamp) -> (i64, i64) {
    let d = t.to_utc().unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    (i64::from(d.year()), i64::from(u8::from(d.month())) - 1)
}
