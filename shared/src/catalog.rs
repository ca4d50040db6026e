//! The catalog file (docs/catalog.md): companies with their API keys, products, license users and
//! licenses, as a vendor writes them. [`Catalog::parse`] validates the whole file before anything is
//! written — every error names the file, the entry and the field — and [`import`] writes it with
//! idempotent upserts that keep activation counters, so importing twice changes nothing.

use crate::identity::oidc::ProviderAccount;
use crate::ids::{
    ApiKeyId, CompanyId, CustomerAccountCode, HardwareId, LicenseKey, OAuthClientId, ProductCode, Username,
};
pub use crate::import::{import, import_sealed, import_with, ImportOptions, ImportReport};
use crate::model::{
    ApiKeyRecord, AuthorizationMethod, Company, CustomerLicense, CustomerLicenses, License, LicenseTerms, LicenseUser,
    ProductDoc, Seat,
};
use crate::password;
use crate::secret::{ExposeSecret, SecretString};
use crate::time::Timestamp;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, PartialEq, thiserror::Error)]
#[error("{file}: {path}: {message}")]
pub struct CatalogError {
    pub file: String,
    /// Where in the file: `companies[0].licenses[2].max_activations`.
    pub path: String,
    pub message: String,
}

/// A validated catalog, ready to import.
#[derive(Debug, Clone)]
pub struct Catalog {
    pub companies: Vec<CompanyEntry>,
}

#[derive(Debug, Clone)]
pub struct CompanyEntry {
    pub code: CompanyId,
    pub company: Company,
    pub api_keys: Vec<ApiKeyRecord>,
    pub products: Vec<ProductDoc>,
    /// Users with the password the catalog gives them (hashed at import; redacted in `Debug`).
    pub users: Vec<(LicenseUser, CatalogPassword)>,
    pub licenses: Vec<(License, Vec<Seat>)>,
    /// OAuth clients with their plaintext secret (hashed and sealed at import; redacted in `Debug`).
    pub oauth_clients: Vec<OAuthClientEntry>,
    /// Customer accounts' identity providers (single sign-on, docs/sso.md); secrets redacted in `Debug`.
    pub customer_accounts: Vec<ProviderAccount>,
    /// Each customer's licenses, by the email of the licenses' `customer` (`customer_license_users`).
    pub customers: Vec<CustomerLicenses>,
}

/// A license user's password as the catalog gives it: plain text (hashed at import, never stored) or
/// an argon2id hash ([`password::check_imported_hash`]), which a re-import compares without hashing.
#[derive(Debug, Clone)]
pub enum CatalogPassword {
    None,
    Plain(SecretString),
    Hash(SecretString),
}

/// Most redirect URIs one customer account registers.
pub const MAX_REDIRECT_URIS: usize = 20;

/// An OAuth client as the catalog gives it (docs/oauth.md).
#[derive(Debug, Clone)]
pub struct OAuthClientEntry {
    pub id: OAuthClientId,
    pub secret: SecretString,
    pub products: Vec<ProductCode>,
    pub read_only: bool,
    pub revoked: bool,
}

/// Shortest OAuth client secret the catalog accepts: a secret guessed offline would sign offline files.
pub const MIN_CLIENT_SECRET_LEN: usize = 16;
/// Longest OAuth client secret (bytes); keeps hashing and the sealed item small.
pub const MAX_CLIENT_SECRET_LEN: usize = 256;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCatalog {
    companies: Vec<RawCompany>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCompany {
    code: CompanyId,
    id: i64,
    #[serde(default)]
    blacklist: BTreeSet<HardwareId>,
    #[serde(default)]
    api_keys: Vec<RawApiKey>,
    #[serde(default)]
    products: Vec<Value>,
    #[serde(default)]
    license_users: Vec<RawUser>,
    #[serde(default)]
    licenses: Vec<Map<String, Value>>,
    #[serde(default)]
    oauth_clients: Vec<RawOAuthClient>,
    #[serde(default)]
    customer_accounts: Vec<RawCustomerAccount>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCustomerAccount {
    code: CustomerAccountCode,
    issuer: String,
    client_id: String,
    client_secret: String,
    #[serde(default)]
    redirect_uris: Vec<String>,
    #[serde(default = "default_email_claim")]
    email_claim: String,
}

fn default_email_claim() -> String {
    "email".to_owned()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOAuthClient {
    client_id: OAuthClientId,
    client_secret: String,
    #[serde(default)]
    products: Vec<ProductCode>,
    #[serde(default)]
    read_only: bool,
    #[serde(default)]
    revoked: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApiKey {
    api_key: ApiKeyId,
    shared_key: String,
    #[serde(default)]
    products: Vec<ProductCode>,
    #[serde(default)]
    read_only: bool,
    #[serde(default)]
    revoked: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUser {
    id: i64,
    email: Username,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    password_hash: Option<String>,
    #[serde(default)]
    first_name: Option<String>,
    #[serde(default)]
    last_name: Option<String>,
    #[serde(default)]
    phone_number: Option<String>,
    #[serde(default)]
    is_initial_password: bool,
    #[serde(default)]
    password_change_disabled: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSeat {
    email: Username,
    #[serde(default)]
    max_activations: i64,
    #[serde(default)]
    allow_unlimited_activations: bool,
}

/// The license fields that are not [`LicenseTerms`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLicenseHead {
    id: i64,
    product: ProductCode,
    #[serde(default)]
    license_key: Option<LicenseKey>,
    #[serde(default = "yes")]
    enabled: bool,
    #[serde(default = "one")]
    max_activations: i64,
    #[serde(default)]
    allow_unlimited_activations: bool,
    #[serde(default)]
    max_transfers: i64,
    #[serde(default)]
    validity_period: Option<Timestamp>,
    #[serde(default)]
    users: Vec<RawSeat>,
}

fn yes() -> bool {
    true
}
fn one() -> i64 {
    1
}

const HEAD_FIELDS: &[&str] = &[
    "id",
    "product",
    "license_key",
    "enabled",
    "max_activations",
    "allow_unlimited_activations",
    "max_transfers",
    "validity_period",
    "users",
];

struct Ctx<'a> {
    file: &'a str,
}

impl Ctx<'_> {
    fn err(&self, path: impl Into<String>, message: impl Into<String>) -> CatalogError {
        CatalogError {
            file: self.file.to_owned(),
            path: path.into(),
            message: message.into(),
        }
    }

    /// Deserialises `value` reporting the failing field's full path.
    fn typed<T: DeserializeOwned>(&self, path: &str, value: Value) -> Result<T, CatalogError> {
        self.typed_offering(path, value, &Offer::SERDE)
    }

    /// [`Self::typed`], with `offer` adjusting the fields an unknown field's hint lists.
    fn typed_offering<T: DeserializeOwned>(&self, path: &str, value: Value, offer: &Offer) -> Result<T, CatalogError> {
        serde_path_to_error::deserialize(value).map_err(|e| {
            let top_level = e.path().iter().count() == 1;
            let inner = e.path().to_string();
            let full = if inner == "." {
                path.to_owned()
            } else {
                format!("{path}.{inner}")
            };
            let offer = if top_level { offer } else { &Offer::SERDE };
            self.err(full, plain(&e.inner().to_string(), offer))
        })
    }
}

/// License fields the importer sets (a member license's bundle and a bundle's members), never the vendor.
const SET_BY_IMPORTER: &[&str] = &["bundle", "bundle_members"];

/// The fields an unknown field's hint offers, beyond those serde lists for the entry's type.
struct Offer {
    /// Fields of the same entry that another type parses (a license's head fields).
    also: &'static [&'static str],
    /// Fields the type has that a vendor may not set.
    except: &'static [&'static str],
}

impl Offer {
    const SERDE: Offer = Offer { also: &[], except: &[] };
    const LICENSE: Offer = Offer {
        also: HEAD_FIELDS,
        except: SET_BY_IMPORTER,
    };
}

/// A serde message in the vendor's words: an unknown field names the closest valid one and lists only
/// fields a vendor may set; a wrong type names the type in plain words ("a whole number", not `i64`).
fn plain(message: &str, offer: &Offer) -> String {
    if let Some((field, expected)) = message
        .strip_prefix("unknown field `")
        .and_then(|rest| rest.split_once('`'))
    {
        let valid: Vec<&str> = offer
            .also
            .iter()
            .copied()
            .chain(expected.split('`').skip(1).step_by(2))
            .filter(|f| !offer.except.contains(f))
            .collect();
        return unknown_field(field, &valid);
    }
    match message.rsplit_once(", expected ") {
        Some((got, expected)) => format!("{got}, expected {}", plain_type(expected)),
        None => message.to_owned(),
    }
}

/// serde's name for an expected type, as a vendor writing JSON would say it.
fn plain_type(expected: &str) -> &str {
    match expected {
        "i8" | "i16" | "i32" | "i64" | "i128" | "isize" => "a whole number",
        "u8" | "u16" | "u32" | "u64" | "u128" | "usize" => "a whole number, 0 or more",
        "f32" | "f64" => "a number",
        "a boolean" => "true or false",
        "a map" => "an object",
        "a sequence" => "a list",
        s if s.starts_with("struct ") => "an object",
        other => other,
    }
}

/// "unknown field `x`: did you mean `y`? Valid fields: ..." (the suggestion only when it is close).
fn unknown_field(field: &str, valid: &[&str]) -> String {
    let list = valid.iter().map(|f| format!("`{f}`")).collect::<Vec<_>>().join(", ");
    let closest = valid
        .iter()
        .map(|v| (edit_distance(field, v), *v))
        .min()
        .filter(|(d, _)| *d <= (field.chars().count() / 3).max(2));
    match closest {
        Some((_, near)) => format!("unknown field `{field}`: did you mean `{near}`? Valid fields: {list}"),
        None if valid.is_empty() => format!("unknown field `{field}`: this entry has no fields"),
        None => format!("unknown field `{field}`. Valid fields: {list}"),
    }
}

/// Levenshtein distance: single-character insertions, deletions and substitutions.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

/// Largest integer a JavaScript client reads back exactly (`Number.MAX_SAFE_INTEGER`, 2^53 − 1).
pub const MAX_SAFE_INTEGER: i64 = 9_007_199_254_740_991;

/// The range an integer field of the catalog must fall in, and why.
struct Bound {
    min: i64,
    max: i64,
    why: &'static str,
}

/// Ids are emitted as JSON numbers (SPEC §4.4); beyond 2^53 a JavaScript client reads another id.
const ID: Bound = Bound {
    min: -MAX_SAFE_INTEGER,
    max: MAX_SAFE_INTEGER,
    why: "ids must be within ±(2^53−1), which JavaScript clients read exactly",
};
/// Consumption counters: signed and emitted as numbers, so only the JavaScript bound applies.
const AMOUNT: Bound = Bound {
    why: "it must be within ±(2^53−1), which JavaScript clients read exactly",
    ..ID
};
const DAYS: Bound = Bound {
    min: 0,
    max: 36_500,
    why: "days, at most 100 years",
};
const HOURS: Bound = Bound {
    min: 0,
    max: 876_000,
    why: "hours, at most 100 years",
};
const MINUTES: Bound = Bound {
    min: 0,
    max: 52_560_000,
    why: "minutes, at most 100 years",
};
/// Limits on devices, users and overages: far above any real license, far below overflow.
const COUNT: Bound = Bound {
    min: 0,
    max: 1_000_000,
    why: "a count of at most 1000000",
};
const TRANSFERS: Bound = Bound {
    min: -1,
    why: "-1 (no transfers), 0 (unlimited) or a limit of at most 1000000",
    ..COUNT
};

/// Floating cloud slots: the license item holds one entry per holder (docs/data-model.md), each up to
/// a hardware id's 512 bytes and its time, so 250 holders stay below ~135 KB of the item's 400 KB.
const FLOATING_USERS: Bound = Bound {
    min: 0,
    max: 250,
    why: "a count of at most 250",
};

const COMPANY_NUMBERS: &[(&str, Bound)] = &[("id", ID)];
const USER_NUMBERS: &[(&str, Bound)] = &[("id", ID)];
const PRODUCT_NUMBERS: &[(&str, Bound)] = &[
    ("id", ID),
    ("trial_days", DAYS),
    ("max_overages", COUNT),
    ("floating_timeout", MINUTES),
];
const FEATURE_NUMBERS: &[(&str, Bound)] = &[
    ("id", ID),
    ("max_consumption", AMOUNT),
    ("total_consumptions", AMOUNT),
    ("max_overages", COUNT),
];
const LICENSE_NUMBERS: &[(&str, Bound)] = &[
    ("id", ID),
    ("license_template_id", ID),
    ("max_activations", COUNT),
    ("max_transfers", TRANSFERS),
    ("trial_days", DAYS),
    ("grace_period", HOURS),
    ("max_borrow_time", HOURS),
    ("floating_timeout", MINUTES),
    ("floating_users", FLOATING_USERS),
    ("max_overages", COUNT),
    ("max_license_users", COUNT),
    ("max_consumptions", AMOUNT),
    ("total_consumptions", AMOUNT),
];
const SEAT_NUMBERS: &[(&str, Bound)] = &[("max_activations", COUNT)];
const POLICY_NUMBERS: &[(&str, Bound)] = &[
    ("trial_days", DAYS),
    ("max_activations", COUNT),
    ("max_transfers", TRANSFERS),
    ("max_consumptions", AMOUNT),
];

/// Checks the integer fields of one entry against their bounds. Runs on the JSON before it is typed,
/// so it depends only on the catalog's field names; a value that is not an integer at all is left to
/// the typed parse, which names the expected type.
fn check_numbers(cx: &Ctx<'_>, path: &str, entry: &Value, fields: &[(&str, Bound)]) -> Result<(), CatalogError> {
    for (field, bound) in fields {
        let Some(Value::Number(n)) = entry.get(*field) else {
            continue;
        };
        let in_range = match n.as_i64() {
            Some(i) => (bound.min..=bound.max).contains(&i),
            None => !n.is_u64(),
        };
        if !in_range {
            return Err(cx.err(
                format!("{path}.{field}"),
                format!("{n} is outside {}..={} ({})", bound.min, bound.max, bound.why),
            ));
        }
    }
    Ok(())
}

/// The array under `key`, or nothing when it is absent or not an array (the typed parse reports that).
/// A counter that resets needs a period the server applies (`model::ConsumptionPeriod`); otherwise it
/// would silently accumulate forever.
fn check_period(reset: bool, period: Option<&str>) -> Result<(), String> {
    match period {
        _ if !reset => Ok(()),
        Some(p) if crate::model::ConsumptionPeriod::parse(p).is_some() => Ok(()),
        other => Err(format!(
            "`reset_consumption` needs `consumption_period` daily, weekly, monthly or annually, not {}",
            other.map_or("none".to_owned(), |p| format!("`{p}`"))
        )),
    }
}

fn items<'v>(value: &'v Value, key: &str) -> &'v [Value] {
    value.get(key).and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

/// [`check_numbers`] over every entry of the catalog, with paths as the typed parse reports them.
fn check_catalog_numbers(cx: &Ctx<'_>, root: &Value) -> Result<(), CatalogError> {
    for (c_i, company) in items(root, "companies").iter().enumerate() {
        let c_path = format!("companies[{c_i}]");
        check_numbers(cx, &c_path, company, COMPANY_NUMBERS)?;
        for (i, user) in items(company, "license_users").iter().enumerate() {
            check_numbers(cx, &format!("{c_path}.license_users[{i}]"), user, USER_NUMBERS)?;
        }
        for (i, product) in items(company, "products").iter().enumerate() {
            check_product_numbers(cx, &format!("{c_path}.products[{i}]"), product)?;
        }
        for (i, license) in items(company, "licenses").iter().enumerate() {
            let l_path = format!("{c_path}.licenses[{i}]");
            check_numbers(cx, &l_path, license, LICENSE_NUMBERS)?;
            for (s_i, seat) in items(license, "users").iter().enumerate() {
                check_numbers(cx, &format!("{l_path}.users[{s_i}]"), seat, SEAT_NUMBERS)?;
            }
        }
    }
    Ok(())
}

/// [`check_numbers`] over one product entry at `p_path`.
fn check_product_numbers(cx: &Ctx<'_>, p_path: &str, product: &Value) -> Result<(), CatalogError> {
    check_numbers(cx, p_path, product, PRODUCT_NUMBERS)?;
    for (f_i, feature) in items(product, "features").iter().enumerate() {
        check_numbers(cx, &format!("{p_path}.features[{f_i}]"), feature, FEATURE_NUMBERS)?;
    }
    for (l_i, policy) in items(product, "license_policies").iter().enumerate() {
        check_numbers(cx, &format!("{p_path}.license_policies[{l_i}]"), policy, POLICY_NUMBERS)?;
    }
    Ok(())
}

/// Makes vendor JSON safe to sign (SPEC §4.4): whole-number floats become integers; object keys that
/// look like array indices and numbers JavaScript would print differently are rejected.
pub fn normalize_json(value: &Value, path: &str) -> Result<Value, String> {
    Ok(match value {
        Value::Number(n)
            if !n.is_f64()
                && !n
                    .as_i64()
                    .is_some_and(|i| (-MAX_SAFE_INTEGER..=MAX_SAFE_INTEGER).contains(&i)) =>
        {
            return Err(format!(
                "{path}: integer {n} is beyond ±(2^53−1), which JavaScript rounds; write it as a string"
            ));
        }
        Value::Number(n) if n.is_f64() => {
            let f = n.as_f64().unwrap_or(f64::NAN);
            if f.fract() == 0.0 && f.abs() < 9_007_199_254_740_992.0 {
                Value::from(f as i64)
            } else if n.to_string().contains('e') {
                return Err(format!("{path}: number {n} needs an exponent; write it as a string"));
            } else {
                value.clone()
            }
        }
        Value::Array(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, v)| normalize_json(v, &format!("{path}[{i}]")))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => {
            let mut out = Map::new();
            for (k, v) in map {
                if !k.is_empty() && k.bytes().all(|b| b.is_ascii_digit()) && (k == "0" || !k.starts_with('0')) {
                    return Err(format!(
                        "{path}: key `{k}` looks like an array index, which breaks response signatures"
                    ));
                }
                out.insert(k.clone(), normalize_json(v, &format!("{path}.{k}"))?);
            }
            Value::Object(out)
        }
        other => other.clone(),
    })
}

fn normalize_map(map: &Map<String, Value>, path: &str) -> Result<Map<String, Value>, String> {
    match normalize_json(&Value::Object(map.clone()), path)? {
        Value::Object(m) => Ok(m),
        _ => unreachable!("an object normalises to an object"),
    }
}

impl Catalog {
    /// Parses and validates a whole catalog; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Self, CatalogError> {
        let cx = Ctx { file };
        let root: Value = serde_json::from_str(text).map_err(|e| {
            cx.err(
                format!("line {} column {}", e.line(), e.column()),
                format!("not valid JSON: {e}"),
            )
        })?;
        check_catalog_numbers(&cx, &root)?;
        let raw: RawCatalog = cx.typed("catalog", root)?;
        let mut seen = BTreeSet::new();
        let companies = raw
            .companies
            .into_iter()
            .enumerate()
            .map(|(i, c)| {
                let path = format!("companies[{i}]");
                if !seen.insert(c.code.clone()) {
                    return Err(cx.err(format!("{path}.code"), format!("company `{}` appears twice", c.code)));
                }
                company(&cx, &path, c)
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { companies })
    }
}

fn company(cx: &Ctx<'_>, path: &str, c: RawCompany) -> Result<CompanyEntry, CatalogError> {
    let mut products: BTreeMap<ProductCode, ProductDoc> = BTreeMap::new();
    let mut product_order = Vec::new();
    for (i, value) in c.products.into_iter().enumerate() {
        let p_path = format!("{path}.products[{i}]");
        let p = product_entry(cx, &p_path, value)?;
        if products.contains_key(&p.code) {
            return Err(cx.err(
                format!("{p_path}.short_code"),
                format!("product `{}` appears twice", p.code),
            ));
        }
        product_order.push(p.code.clone());
        products.insert(p.code.clone(), p);
    }

    for (i, code) in product_order.iter().enumerate() {
        let bundle = &products[code];
        let b_path = format!("{path}.products[{i}].bundle_products");
        if bundle.bundle_products.len() > MAX_BUNDLE_MEMBERS {
            return Err(cx.err(
                b_path,
                format!(
                    "{} members; a bundle has at most {MAX_BUNDLE_MEMBERS} (one activation writes up to 4 items per member and DynamoDB allows 100 per transaction)",
                    bundle.bundle_products.len()
                ),
            ));
        }
        for (m, member) in bundle.bundle_products.iter().enumerate() {
            let m_path = format!("{b_path}[{m}]");
            // Products are per company: a member of another company is unknown here.
            let Some(doc) = products.get(member) else {
                return Err(cx.err(
                    m_path,
                    format!("unknown product `{member}` (members must be products of the same company)"),
                ));
            };
            if doc.is_bundle() || member == code {
                return Err(cx.err(m_path, format!("`{member}` is a bundle; a bundle cannot be a member")));
            }
            if doc.authorization_method != bundle.authorization_method {
                return Err(cx.err(
                    m_path,
                    format!("`{member}` and bundle `{code}` must both be key-based or both user-based"),
                ));
            }
            if bundle.bundle_products[..m].contains(member) {
                return Err(cx.err(m_path, format!("`{member}` is listed twice")));
            }
        }
    }

    let api_keys = c
        .api_keys
        .into_iter()
        .enumerate()
        .map(|(i, k)| api_key_entry(cx, &format!("{path}.api_keys[{i}]"), &c.code, k, &products))
        .collect::<Result<Vec<_>, _>>()?;

    let oauth_clients = oauth_clients(cx, path, c.oauth_clients, &products)?;
    let customer_accounts = customer_accounts(cx, path, &c.code, c.customer_accounts)?;

    let mut users: BTreeMap<Username, (usize, LicenseUser, CatalogPassword)> = BTreeMap::new();
    for (i, u) in c.license_users.into_iter().enumerate() {
        if users.contains_key(&u.email) {
            return Err(cx.err(
                format!("{path}.license_users[{i}].email"),
                format!("user `{}` appears twice", u.email),
            ));
        }
        let (user, password) = user_entry(cx, &format!("{path}.license_users[{i}]"), u)?;
        users.insert(user.email.clone(), (i, user, password));
    }

    let mut licenses = Vec::new();
    let mut customers = Customers::default();
    let mut ids = BTreeSet::new();
    let mut keys = BTreeSet::new();
    let mut known = Known {
        company: &c.code,
        products: &products,
        users: &mut users,
        ids: &mut ids,
        keys: &mut keys,
    };
    for (i, mut entry) in c.licenses.into_iter().enumerate() {
        let l_path = format!("{path}.licenses[{i}]");
        let members = entry.remove("members");
        // Member licenses default to the bundle license's fields (all but its id and product).
        let mut defaults = entry.clone();
        defaults.remove("id");
        defaults.remove("product");
        let (mut license, seats) = license_entry(cx, &l_path, entry, &mut known, None)?;
        let product = &products[&license.product];
        let members: Vec<Value> = match members {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(m)) => m,
            Some(_) => return Err(cx.err(format!("{l_path}.members"), "must be a list of member licenses")),
        };
        if !product.is_bundle() {
            if !members.is_empty() {
                return Err(cx.err(
                    format!("{l_path}.members"),
                    format!("product `{}` is not a bundle", product.code),
                ));
            }
            customers.add(cx, &l_path, &license, &seats)?;
            licenses.push((license, seats));
            continue;
        }
        let mut member_licenses = Vec::new();
        for (m, member) in members.into_iter().enumerate() {
            let m_path = format!("{l_path}.members[{m}]");
            let Value::Object(member) = member else {
                return Err(cx.err(&m_path, "must be an object"));
            };
            // A client names a bundle by one key, and every member is found under it: a member key of
            // its own would leave the member unreachable and let another license hold its address.
            if let Some(own) = member
                .get("license_key")
                .filter(|k| Some(*k) != defaults.get("license_key"))
            {
                return Err(cx.err(
                    format!("{m_path}.license_key"),
                    format!("a member license has its bundle's key, not one of its own ({own}): remove this field"),
                ));
            }
            let mut merged = defaults.clone();
            merged.extend(member);
            let (member, member_seats) = license_entry(cx, &m_path, merged, &mut known, Some(&license))?;
            if !product.bundle_products.contains(&member.product) {
                return Err(cx.err(
                    format!("{m_path}.product"),
                    format!("`{}` is not a member of bundle `{}`", member.product, product.code),
                ));
            }
            if member_licenses
                .iter()
                .any(|(l, _): &(License, _)| l.product == member.product)
            {
                return Err(cx.err(
                    format!("{m_path}.product"),
                    format!(
                        "bundle license {} has two member licenses of `{}`",
                        license.id, member.product
                    ),
                ));
            }
            customers.add(cx, &m_path, &member, &member_seats)?;
            member_licenses.push((member, member_seats));
        }
        if let Some(missing) = product
            .bundle_products
            .iter()
            .find(|code| !member_licenses.iter().any(|(l, _)| l.product == **code))
        {
            return Err(cx.err(
                format!("{l_path}.members"),
                format!("no member license for product `{missing}` of bundle `{}`", product.code),
            ));
        }
        license.terms.bundle_members = member_licenses.iter().map(|(l, _)| (l.product.clone(), l.id)).collect();
        customers.add(cx, &l_path, &license, &seats)?;
        licenses.push((license, seats));
        licenses.extend(member_licenses);
    }

    let mut users: Vec<_> = users.into_values().collect();
    users.sort_by_key(|(i, ..)| *i);
    Ok(CompanyEntry {
        company: Company {
            id: c.id,
            blacklist: c.blacklist,
            management_blacklist: BTreeSet::new(),
        },
        code: c.code,
        api_keys,
        products: product_order
            .into_iter()
            .filter_map(|code| products.remove(&code))
            .collect(),
        users: users.into_iter().map(|(_, u, p)| (u, p)).collect(),
        licenses,
        oauth_clients,
        customer_accounts,
        customers: customers.0.into_values().collect(),
    })
}

/// One product entry at `p_path`, checked on its own (its bundle members are checked against the
/// company's other products by the caller).
fn product_entry(cx: &Ctx<'_>, p_path: &str, value: Value) -> Result<ProductDoc, CatalogError> {
    if value.get("short_code").or_else(|| value.get("code")).is_none() {
        return Err(cx.err(format!("{p_path}.short_code"), "missing field `short_code`"));
    }
    let mut p: ProductDoc = cx.typed(p_path, value)?;
    check_product_lists(cx, p_path, &p)?;
    p.metadata = normalize_map(&p.metadata, &format!("{p_path}.metadata")).map_err(|m| cx.err(p_path, m))?;
    for (l_i, policy) in p.license_policies.iter_mut().enumerate() {
        let l_path = format!("{p_path}.license_policies[{l_i}].metadata");
        policy.metadata = normalize_map(&policy.metadata, &l_path).map_err(|m| cx.err(&l_path, m))?;
    }
    for (f_i, feature) in p.features.iter_mut().enumerate() {
        let f_path = format!("{p_path}.features[{f_i}].metadata");
        feature.metadata = normalize_map(&feature.metadata, &f_path).map_err(|m| cx.err(&f_path, m))?;
        check_period(feature.reset_consumption, feature.consumption_period.as_deref())
            .map_err(|m| cx.err(format!("{p_path}.features[{f_i}].consumption_period"), m))?;
    }
    Ok(p)
}

/// One API key entry at `k_path` of `company`, whose products are `products`.
fn api_key_entry(
    cx: &Ctx<'_>,
    k_path: &str,
    company: &CompanyId,
    k: RawApiKey,
    products: &BTreeMap<ProductCode, ProductDoc>,
) -> Result<ApiKeyRecord, CatalogError> {
    if k.shared_key.is_empty() {
        return Err(cx.err(format!("{k_path}.shared_key"), "must not be empty"));
    }
    if let Some(unknown) = k.products.iter().find(|p| !products.contains_key(*p)) {
        return Err(cx.err(format!("{k_path}.products"), format!("unknown product `{unknown}`")));
    }
    Ok(ApiKeyRecord {
        id: k.api_key,
        company: company.clone(),
        shared_key: k.shared_key,
        products: k.products,
        read_only: k.read_only,
        revoked: k.revoked,
        source: None,
    })
}

/// One license user entry at `u_path`: the user's record, without password hash or licenses (the
/// import sets them), and the password the entry gives.
fn user_entry(cx: &Ctx<'_>, u_path: &str, u: RawUser) -> Result<(LicenseUser, CatalogPassword), CatalogError> {
    let user = LicenseUser {
        id: u.id,
        email: u.email,
        first_name: u.first_name,
        last_name: u.last_name,
        phone_number: u.phone_number,
        is_initial_password: u.is_initial_password,
        password_hash: None,
        licenses: Vec::new(),
        bundle_licenses: Vec::new(),
        password_change_disabled: u.password_change_disabled,
        trial_password: false,
        password_changed_by_user: false,
        management_licenses: Vec::new(),
        source: None,
    };
    let password = catalog_password(cx, u_path, u.password, u.password_hash)?;
    Ok((user, password))
}

/// Most entries one customer's index holds: licenses plus the license users assigned to them. The
/// index is one item, read whole by `customer_license_users`, which reads each of those too.
pub const MAX_CUSTOMER_ENTRIES: usize = 1000;
/// Most bytes one customer's index takes as stored (its JSON): within DynamoDB's 400 KB per item.
pub const MAX_CUSTOMER_BYTES: usize = 256 * 1024;

/// A customer index's size as its bounds count it: entries (licenses plus their license users) and
/// bytes as stored.
pub fn customer_index_size(index: &CustomerLicenses) -> (usize, usize) {
    let entries = index.licenses.iter().map(|l| 1 + l.users.len()).sum();
    let bytes = serde_json::to_string(index).map_or(usize::MAX, |j| j.len());
    (entries, bytes)
}

/// Whether a customer's index is within [`MAX_CUSTOMER_ENTRIES`] and [`MAX_CUSTOMER_BYTES`]: the
/// catalog refuses one that is not, a trial and a re-import leave entries out rather than exceed them.
pub fn customer_index_fits(index: &CustomerLicenses) -> bool {
    let (entries, bytes) = customer_index_size(index);
    entries <= MAX_CUSTOMER_ENTRIES && bytes <= MAX_CUSTOMER_BYTES
}

/// The customers' indexes of a company, built while its licenses are read.
#[derive(Default)]
struct Customers(BTreeMap<Username, CustomerLicenses>);

impl Customers {
    /// Adds the license at `l_path` to its customer's index, if it names a customer by email.
    fn add(&mut self, cx: &Ctx<'_>, l_path: &str, license: &License, seats: &[Seat]) -> Result<(), CatalogError> {
        let Some(email) = license.terms.customer.email.as_deref().filter(|e| !e.trim().is_empty()) else {
            return Ok(());
        };
        let at = format!("{l_path}.customer.email");
        let email = Username::parse(email).map_err(|e| cx.err(&at, e.to_string()))?;
        let index = self.0.entry(email.clone()).or_insert_with(|| CustomerLicenses {
            email: email.clone(),
            licenses: Vec::new(),
        });
        index.licenses.push(CustomerLicense {
            product: license.product.clone(),
            id: license.id,
            users: seats.iter().map(|s| s.user.clone()).collect(),
        });
        let (entries, bytes) = customer_index_size(index);
        if !customer_index_fits(index) {
            return Err(cx.err(
                at,
                format!(
                    "customer `{email}` has {entries} licenses and license users ({bytes} bytes); one customer \
                     has at most {MAX_CUSTOMER_ENTRIES} ({MAX_CUSTOMER_BYTES} bytes): split the licenses \
                     among several customer emails"
                ),
            ));
        }
        Ok(())
    }
}

/// A user's `password` or `password_hash` (not both); a hash must be one the server can verify at a
/// bounded cost.
fn catalog_password(
    cx: &Ctx<'_>,
    path: &str,
    plain: Option<String>,
    hash: Option<String>,
) -> Result<CatalogPassword, CatalogError> {
    match (plain, hash) {
        (Some(_), Some(_)) => Err(cx.err(
            format!("{path}.password_hash"),
            "give `password` or `password_hash`, not both",
        )),
        (Some(plain), None) => Ok(CatalogPassword::Plain(plain.into())),
        (None, Some(hash)) => match password::check_imported_hash(&hash) {
            Ok(()) => Ok(CatalogPassword::Hash(hash.into())),
            Err(why) => Err(cx.err(format!("{path}.password_hash"), why)),
        },
        (None, None) => Ok(CatalogPassword::None),
    }
}

/// A company's `customer_accounts`: an absolute http(s) issuer and redirect URIs (at most
/// [`MAX_REDIRECT_URIS`]), a client id and secret (at most [`MAX_CLIENT_SECRET_LEN`] bytes), an email
/// claim, no code twice. Whether plain HTTP may be used is the deployment's choice, not the catalog's.
fn customer_accounts(
    cx: &Ctx<'_>,
    path: &str,
    company: &CompanyId,
    raw: Vec<RawCustomerAccount>,
) -> Result<Vec<ProviderAccount>, CatalogError> {
    let mut seen = BTreeSet::new();
    let web_url = |p: String, v: &str| match url::Url::parse(v) {
        Ok(u) if matches!(u.scheme(), "https" | "http") => Ok(()),
        _ => Err(cx.err(p, format!("`{v}` is not an absolute http(s) URL"))),
    };
    raw.into_iter()
        .enumerate()
        .map(|(i, a)| {
            let a_path = format!("{path}.customer_accounts[{i}]");
            web_url(format!("{a_path}.issuer"), &a.issuer)?;
            if a.redirect_uris.len() > MAX_REDIRECT_URIS {
                return Err(cx.err(
                    format!("{a_path}.redirect_uris"),
                    format!("at most {MAX_REDIRECT_URIS}"),
                ));
            }
            for (j, uri) in a.redirect_uris.iter().enumerate() {
                web_url(format!("{a_path}.redirect_uris[{j}]"), uri)?;
            }
            for (field, value) in [("client_id", &a.client_id), ("email_claim", &a.email_claim)] {
                if value.is_empty() || value.len() > crate::ids::MAX_ID_LEN {
                    return Err(cx.err(format!("{a_path}.{field}"), "must be 1 to 512 bytes long"));
                }
            }
            if a.client_secret.is_empty() || a.client_secret.len() > MAX_CLIENT_SECRET_LEN {
                return Err(cx.err(
                    format!("{a_path}.client_secret"),
                    format!("must be 1 to {MAX_CLIENT_SECRET_LEN} bytes long"),
                ));
            }
            if !seen.insert(a.code.clone()) {
                return Err(cx.err(format!("{a_path}.code"), format!("account `{}` appears twice", a.code)));
            }
            Ok(ProviderAccount {
                company: company.clone(),
                code: a.code,
                issuer: a.issuer,
                client_id: a.client_id,
                client_secret: SecretString::from(a.client_secret),
                redirect_uris: a.redirect_uris,
                email_claim: a.email_claim,
            })
        })
        .collect()
}

/// A company's `oauth_clients`: secrets within [`MIN_CLIENT_SECRET_LEN`]..=[`MAX_CLIENT_SECRET_LEN`],
/// known products, no `client_id` twice.
fn oauth_clients(
    cx: &Ctx<'_>,
    path: &str,
    raw: Vec<RawOAuthClient>,
    products: &BTreeMap<ProductCode, ProductDoc>,
) -> Result<Vec<OAuthClientEntry>, CatalogError> {
    let mut seen = BTreeSet::new();
    raw.into_iter()
        .enumerate()
        .map(|(i, c)| {
            let c_path = format!("{path}.oauth_clients[{i}]");
            let entry = oauth_client_entry(cx, &c_path, c, products)?;
            if !seen.insert(entry.id.clone()) {
                return Err(cx.err(
                    format!("{c_path}.client_id"),
                    format!("client `{}` appears twice", entry.id),
                ));
            }
            Ok(entry)
        })
        .collect()
}

/// One OAuth client entry at `c_path`, whose products are `products`.
fn oauth_client_entry(
    cx: &Ctx<'_>,
    c_path: &str,
    c: RawOAuthClient,
    products: &BTreeMap<ProductCode, ProductDoc>,
) -> Result<OAuthClientEntry, CatalogError> {
    let secret = SecretString::from(c.client_secret);
    let len = secret.expose_secret().len();
    if !(MIN_CLIENT_SECRET_LEN..=MAX_CLIENT_SECRET_LEN).contains(&len) {
        return Err(cx.err(
            format!("{c_path}.client_secret"),
            format!("must be {MIN_CLIENT_SECRET_LEN} to {MAX_CLIENT_SECRET_LEN} bytes long, not {len}"),
        ));
    }
    if let Some(unknown) = c.products.iter().find(|p| !products.contains_key(*p)) {
        return Err(cx.err(format!("{c_path}.products"), format!("unknown product `{unknown}`")));
    }
    Ok(OAuthClientEntry {
        id: c.client_id,
        secret,
        products: c.products,
        read_only: c.read_only,
        revoked: c.revoked,
    })
}

/// Most member products of one bundle: activating a bundle writes up to four items per member (device,
/// license, seat, released-slot marker) plus an offline request's record in one `TransactWriteItems`,
/// which DynamoDB caps at 100 items: 4 × 24 + 1 = 97.
pub const MAX_BUNDLE_MEMBERS: usize = 24;

/// Most custom fields, and most versions, one product lists: every request reads the product's item,
/// so its lists stay small (docs/limits.md).
pub const MAX_PRODUCT_CUSTOM_FIELDS: usize = 100;
pub const MAX_PRODUCT_VERSIONS: usize = 100;

fn check_product_lists(cx: &Ctx<'_>, path: &str, p: &ProductDoc) -> Result<(), CatalogError> {
    for (field, len, max) in [
        ("custom_fields", p.custom_fields.len(), MAX_PRODUCT_CUSTOM_FIELDS),
        ("versions", p.versions.len(), MAX_PRODUCT_VERSIONS),
        (
            "license_policies",
            p.license_policies.len(),
            crate::model::MAX_LICENSE_POLICIES,
        ),
    ] {
        if len > max {
            return Err(cx.err(
                format!("{path}.{field}"),
                format!("{len} entries; a product lists at most {max}: keep the ones clients need"),
            ));
        }
    }
    check_license_policies(cx, path, p)
}

/// A product's license policies (docs/catalog.md, *Trial policies*): each named by a code of its own
/// that a request can carry, and at most one the default trial policy, which must be a trial policy.
fn check_license_policies(cx: &Ctx<'_>, path: &str, p: &ProductDoc) -> Result<(), CatalogError> {
    let max = crate::request::MAX_CUSTOMER_FIELD_BYTES;
    for (i, policy) in p.license_policies.iter().enumerate() {
        let at = |field: &str| format!("{path}.license_policies[{i}].{field}");
        if policy.code.is_empty() || policy.code.len() > max || policy.code.chars().any(char::is_control) {
            return Err(cx.err(
                at("code"),
                format!("must be 1 to {max} bytes without control characters"),
            ));
        }
        if p.license_policies[..i].iter().any(|other| other.code == policy.code) {
            return Err(cx.err(at("code"), format!("license policy `{}` appears twice", policy.code)));
        }
        if policy.default_trial && !policy.is_trial {
            return Err(cx.err(
                at("default_trial"),
                "only a trial policy (`is_trial`) can be the default trial policy",
            ));
        }
        if policy.default_trial && p.license_policies[..i].iter().any(|other| other.default_trial) {
            return Err(cx.err(at("default_trial"), "a product has at most one default trial policy"));
        }
    }
    Ok(())
}

/// One license entry given outside a catalog (the Management API, docs/management.md), checked exactly
/// as a catalog's license entry is, against its product: a license is defined once. `path` names the
/// entry in errors. Users (`users`) and bundle members (`members`) stay the catalog's.
pub fn license_of_entry(
    company: &CompanyId,
    product: &ProductDoc,
    path: &str,
    entry: Map<String, Value>,
) -> Result<License, CatalogError> {
    let cx = Ctx { file: "request" };
    for only_catalog in ["users", "members"] {
        if entry.contains_key(only_catalog) {
            return Err(cx.err(format!("{path}.{only_catalog}"), "is set in the catalog (`import`)"));
        }
    }
    let entry_value = Value::Object(entry);
    check_numbers(&cx, path, &entry_value, LICENSE_NUMBERS)?;
    let Value::Object(entry) = entry_value else {
        unreachable!("built as an object above")
    };
    let products = BTreeMap::from([(product.code.clone(), product.clone())]);
    let (mut users, mut ids, mut keys) = (BTreeMap::new(), BTreeSet::new(), BTreeSet::new());
    let mut known = Known {
        company,
        products: &products,
        users: &mut users,
        ids: &mut ids,
        keys: &mut keys,
    };
    Ok(license_entry(&cx, path, entry, &mut known, None)?.0)
}

/// A product entry given outside a catalog (the Management API), checked as a catalog's is. Bundles
/// stay the catalog's: their members are checked against the company's other products at import.
pub fn product_of_entry(path: &str, entry: Value) -> Result<ProductDoc, CatalogError> {
    let cx = Ctx { file: "request" };
    check_product_numbers(&cx, path, &entry)?;
    let product = product_entry(&cx, path, entry)?;
    if product.is_bundle() {
        return Err(cx.err(
            format!("{path}.bundle_products"),
            "a bundle is set in the catalog (`import`)",
        ));
    }
    Ok(product)
}

/// An API key entry given outside a catalog, of `company`, checked as a catalog's is against the
/// products it names (`products`: those of them that exist).
pub fn api_key_of_entry(
    company: &CompanyId,
    path: &str,
    entry: Value,
    products: &BTreeMap<ProductCode, ProductDoc>,
) -> Result<ApiKeyRecord, CatalogError> {
    let cx = Ctx { file: "request" };
    let raw: RawApiKey = cx.typed(path, entry)?;
    api_key_entry(&cx, path, company, raw, products)
}

/// A license user entry given outside a catalog, checked as a catalog's is.
pub fn user_of_entry(path: &str, entry: Value) -> Result<(LicenseUser, CatalogPassword), CatalogError> {
    let cx = Ctx { file: "request" };
    check_numbers(&cx, path, &entry, USER_NUMBERS)?;
    let raw: RawUser = cx.typed(path, entry)?;
    user_entry(&cx, path, raw)
}

/// An OAuth client entry given outside a catalog, checked as a catalog's is against the products it
/// names (`products`: those of them that exist).
pub fn oauth_client_of_entry(
    path: &str,
    entry: Value,
    products: &BTreeMap<ProductCode, ProductDoc>,
) -> Result<OAuthClientEntry, CatalogError> {
    let cx = Ctx { file: "request" };
    let raw: RawOAuthClient = cx.typed(path, entry)?;
    oauth_client_entry(&cx, path, raw, products)
}

/// What the licenses of a company are checked against while they are read.
struct Known<'a> {
    company: &'a CompanyId,
    products: &'a BTreeMap<ProductCode, ProductDoc>,
    users: &'a mut BTreeMap<Username, (usize, LicenseUser, CatalogPassword)>,
    ids: &'a mut BTreeSet<i64>,
    keys: &'a mut BTreeSet<(ProductCode, LicenseKey)>,
}

/// One license entry at `l_path` (`bundle`: the bundle license it is a member license of).
fn license_entry(
    cx: &Ctx<'_>,
    l_path: &str,
    mut entry: Map<String, Value>,
    known: &mut Known<'_>,
    bundle: Option<&License>,
) -> Result<(License, Vec<Seat>), CatalogError> {
    let products = known.products;
    let (users, ids, keys) = (&mut *known.users, &mut *known.ids, &mut *known.keys);
    for &set_by_import in SET_BY_IMPORTER {
        if entry.contains_key(set_by_import) {
            return Err(cx.err(
                format!("{l_path}.{set_by_import}"),
                "is set by the importer, not the catalog",
            ));
        }
    }
    let head_map: Map<String, Value> = HEAD_FIELDS
        .iter()
        .filter_map(|f| entry.remove(*f).map(|v| ((*f).to_owned(), v)))
        .collect();
    let head: RawLicenseHead = cx.typed(l_path, Value::Object(head_map))?;
    let mut terms: LicenseTerms = cx.typed_offering(l_path, Value::Object(entry), &Offer::LICENSE)?;
    let field = |f: &str| format!("{l_path}.{f}");
    let product = products
        .get(&head.product)
        .ok_or_else(|| cx.err(field("product"), format!("unknown product `{}`", head.product)))?;
    if !ids.insert(head.id) {
        return Err(cx.err(field("id"), format!("license id {} appears twice", head.id)));
    }
    match (product.authorization_method, &head.license_key) {
        (AuthorizationMethod::LicenseKey, None) => {
            return Err(cx.err(field("license_key"), "required for a key-based product"))
        }
        (AuthorizationMethod::User, Some(_)) => {
            return Err(cx.err(field("license_key"), "not allowed for a user-based product"))
        }
        (AuthorizationMethod::LicenseKey, Some(key)) if !keys.insert((head.product.clone(), key.clone())) => {
            return Err(cx.err(field("license_key"), format!("license key `{key}` appears twice")))
        }
        _ => {}
    }
    if terms.max_license_users > 0 && head.users.len() as i64 > terms.max_license_users {
        return Err(cx.err(
            field("users"),
            format!(
                "{} users exceed max_license_users {}",
                head.users.len(),
                terms.max_license_users
            ),
        ));
    }
    if product.authorization_method == AuthorizationMethod::LicenseKey && !head.users.is_empty() {
        return Err(cx.err(field("users"), "only user-based licenses have users"));
    }
    terms.metadata = normalize_map(&terms.metadata, &field("metadata")).map_err(|m| cx.err(field("metadata"), m))?;
    check_period(terms.reset_consumption, terms.consumption_period.as_deref())
        .map_err(|m| cx.err(field("consumption_period"), m))?;
    terms.customer.metadata = normalize_map(&terms.customer.metadata, &field("customer.metadata"))
        .map_err(|m| cx.err(field("customer"), m))?;
    if let Some(account) = &terms.customer.customer_account {
        terms.customer.customer_account = Some(
            normalize_json(account, &field("customer.customer_account")).map_err(|m| cx.err(field("customer"), m))?,
        );
    }
    if bundle.is_some() && product.is_bundle() {
        return Err(cx.err(
            field("product"),
            format!("`{}` is a bundle; a bundle cannot be a member", head.product),
        ));
    }
    let mut seats = Vec::new();
    for (s_i, s) in head.users.into_iter().enumerate() {
        let s_path = format!("{l_path}.users[{s_i}]");
        let Some((_, user, _)) = users.get_mut(&s.email) else {
            return Err(cx.err(format!("{s_path}.email"), format!("unknown license user `{}`", s.email)));
        };
        if seats.iter().any(|seat: &Seat| seat.user == s.email) {
            return Err(cx.err(format!("{s_path}.email"), format!("user `{}` appears twice", s.email)));
        }
        match bundle {
            Some(b) => user
                .bundle_licenses
                .push((head.product.clone(), head.id, b.product.clone())),
            None => user.licenses.push((head.product.clone(), head.id)),
        }
        seats.push(Seat {
            user: s.email,
            max_activations: s.max_activations,
            allow_unlimited_activations: s.allow_unlimited_activations || s.max_activations == 0,
            total_activations: 0,
        });
    }
    if let Some(b) = bundle {
        terms.bundle = Some(b.product.clone());
    }
    let license = License {
        enabled: head.enabled,
        max_activations: head.max_activations,
        allow_unlimited_activations: head.allow_unlimited_activations,
        max_transfers: head.max_transfers,
        validity_period: head.validity_period,
        terms,
        source: Some(crate::model::LicenseSource::Catalog),
        ..License::new(head.id, known.company.clone(), head.product, head.license_key)
    };
    Ok((license, seats))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: Value) -> Result<Catalog, CatalogError> {
        Catalog::parse(&v.to_string(), "c.json")
    }

    fn base() -> Value {
        serde_json::json!({"companies": [{"code": "acme", "id": 1,
            "products": [{"short_code": "app", "name": "App"}, {"short_code": "team", "authorization_method": "user"}],
            "license_users": [{"id": 1, "email": "a@b.c", "password": "pw"}],
            "licenses": [{"id": 10, "product": "app", "license_key": "K-1", "max_activations": 2, "metadata": {"x": 1.0}},
                         {"id": 11, "product": "team", "users": [{"email": "a@b.c", "max_activations": 1}]}]}]})
    }

    fn bundle_catalog() -> Value {
        serde_json::json!({"companies": [{"code": "acme", "id": 1,
            "products": [{"short_code": "app", "name": "App"}, {"short_code": "viewer"},
                         {"short_code": "suite", "bundle_products": ["app", "viewer"]},
                         {"short_code": "team", "authorization_method": "user"},
                         {"short_code": "team2", "authorization_method": "user"},
                         {"short_code": "team-suite", "authorization_method": "user", "bundle_products": ["team", "team2"]}],
            "license_users": [{"id": 1, "email": "a@b.c", "password": "pw"}],
            "licenses": [
                {"id": 10, "product": "app", "license_key": "K-1"},
                {"id": 20, "product": "suite", "license_key": "S-1", "max_activations": 3, "is_trial": true,
                 "members": [{"id": 21, "product": "app"}, {"id": 22, "product": "viewer", "max_activations": 7}]},
                {"id": 30, "product": "team-suite", "users": [{"email": "a@b.c", "max_activations": 1}],
                 "members": [{"id": 31, "product": "team"}, {"id": 32, "product": "team2"}]}]}]})
    }

    #[test]
    fn customers_are_indexed_by_email_with_the_users_of_their_licenses() {
        let mut v = bundle_catalog();
        v["companies"][0]["licenses"][0]["customer"] = serde_json::json!({"email": "Buyer@X.com"});
        v["companies"][0]["licenses"][2]["customer"] = serde_json::json!({"email": "buyer@x.com", "city": "Oslo"});
        let c = parse(v).unwrap();
        let customers = &c.companies[0].customers;
        assert_eq!(customers.len(), 1, "{customers:?}");
        assert_eq!(customers[0].email.as_str(), "buyer@x.com");
        let listed: Vec<_> = customers[0]
            .licenses
            .iter()
            .map(|l| {
                (
                    l.product.as_str(),
                    l.id,
                    l.users.iter().map(|u| u.as_str()).collect::<Vec<_>>(),
                )
            })
            .collect();
        // The user-based bundle's members take its customer and its users.
        assert_eq!(
            listed,
            [
                ("app", 10, vec![]),
                ("team", 31, vec!["a@b.c"]),
                ("team2", 32, vec!["a@b.c"]),
                ("team-suite", 30, vec!["a@b.c"]),
            ]
        );
    }

    #[test]
    fn customer_emails_and_index_sizes_are_checked() {
        let mut bad = base();
        bad["companies"][0]["licenses"][1]["customer"] = serde_json::json!({"email": "a\u{1}b"});
        let e = parse(bad).unwrap_err();
        assert_eq!(e.path, "companies[0].licenses[1].customer.email", "{e}");
        let mut big = base();
        let licenses: Vec<Value> = (0..=MAX_CUSTOMER_ENTRIES as i64)
            .map(|i| {
                serde_json::json!({"id": 100 + i, "product": "app", "license_key": format!("K-{i}"),
                                        "customer": {"email": "big@x.com"}})
            })
            .collect();
        big["companies"][0]["licenses"] = Value::Array(licenses);
        let e = parse(big).unwrap_err();
        assert_eq!(
            e.path,
            format!("companies[0].licenses[{MAX_CUSTOMER_ENTRIES}].customer.email"),
            "{e}"
        );
        assert!(e.message.contains("at most 1000"), "{e}");
    }

    #[test]
    fn a_password_hash_must_be_a_bounded_argon2id_hash() {
        use argon2::password_hash::{PasswordHasher, SaltString};
        let with = |fields: Value| {
            let mut v = base();
            v["companies"][0]["license_users"][0] = serde_json::json!({"id": 1, "email": "a@b.c"});
            for (k, x) in fields.as_object().unwrap() {
                v["companies"][0]["license_users"][0][k] = x.clone();
            }
            parse(v)
        };
        let phc = |alg, m, t, p| {
            let params = argon2::Params::new(m, t, p, None).unwrap();
            let salt = SaltString::encode_b64(b"sixteen byte sal").unwrap();
            argon2::Argon2::new(alg, argon2::Version::V0x13, params)
                .hash_password(b"pw", &salt)
                .unwrap()
                .to_string()
        };
        let ok = phc(argon2::Algorithm::Argon2id, 19 * 1024, 2, 1);
        let c = with(serde_json::json!({"password_hash": ok})).expect("an argon2id hash is accepted");
        assert!(matches!(&c.companies[0].users[0].1, CatalogPassword::Hash(h) if h.expose_secret() == ok));
        let path = "companies[0].license_users[0].password_hash";
        for (fields, why) in [
            (serde_json::json!({"password": "pw", "password_hash": ok}), "not both"),
            (serde_json::json!({"password_hash": "pw"}), "not a PHC hash string"),
            (
                serde_json::json!({"password_hash": phc(argon2::Algorithm::Argon2i, 19 * 1024, 2, 1)}),
                "is not argon2id",
            ),
            (
                serde_json::json!({"password_hash": phc(argon2::Algorithm::Argon2id, 1024, 2, 1)}),
                "outside",
            ),
            (
                serde_json::json!({"password_hash": phc(argon2::Algorithm::Argon2id, 8 * 1024, 11, 1)}),
                "outside",
            ),
        ] {
            let err = with(fields.clone()).unwrap_err();
            assert_eq!(err.path, path, "{fields}");
            assert!(err.message.contains(why), "{fields}: {err}");
        }
    }

    #[test]
    fn bundle_members_default_from_the_bundle_license() {
        let mut same_key = bundle_catalog();
        same_key["companies"][0]["licenses"][1]["members"][0]["license_key"] = serde_json::json!("S-1");
        parse(same_key).expect("a member may repeat its bundle's key");
        let c = parse(bundle_catalog()).unwrap();
        let licenses = &c.companies[0].licenses;
        let find = |id: i64| &licenses.iter().find(|(l, _)| l.id == id).unwrap().0;
        let (bundle, app, viewer) = (find(20), find(21), find(22));
        assert_eq!(
            bundle.terms.bundle_members,
            vec![
                (ProductCode::parse("app").unwrap(), 21),
                (ProductCode::parse("viewer").unwrap(), 22)
            ]
        );
        assert_eq!(
            app.key.as_ref().map(|k| k.as_str()),
            Some("S-1"),
            "members share the bundle's key"
        );
        assert_eq!(
            (app.max_activations, viewer.max_activations),
            (3, 7),
            "a member's own terms win"
        );
        assert!(app.terms.is_trial && viewer.terms.is_trial);
        assert_eq!(viewer.terms.bundle.as_ref().map(|b| b.as_str()), Some("suite"));
        let user = &c.companies[0].users[0].0;
        assert_eq!(user.licenses, vec![(ProductCode::parse("team-suite").unwrap(), 30)]);
        assert_eq!(user.bundle_licenses.len(), 2);
        let seats = &licenses.iter().find(|(l, _)| l.id == 32).unwrap().1;
        assert_eq!(
            seats[0].max_activations, 1,
            "member seats default from the bundle's users"
        );
    }

    #[test]
    fn broken_bundles_are_refused_naming_the_entry() {
        type Breaks = fn(&mut Value);
        let cases: Vec<(Breaks, &str)> = vec![
            (
                |c| c["companies"][0]["products"][0]["bundle_products"] = serde_json::json!(["viewer"]),
                "companies[0].products[2].bundle_products[0]",
            ),
            (
                |c| c["companies"][0]["products"][2]["bundle_products"] = serde_json::json!(["app", "elsewhere"]),
                "companies[0].products[2].bundle_products[1]",
            ),
            (
                |c| c["companies"][0]["products"][2]["bundle_products"] = serde_json::json!(["app", "team"]),
                "companies[0].products[2].bundle_products[1]",
            ),
            (
                |c| c["companies"][0]["products"][2]["bundle_products"] = serde_json::json!(["app", "app"]),
                "companies[0].products[2].bundle_products[1]",
            ),
            (
                |c| {
                    c["companies"][0]["products"][2]["bundle_products"] =
                        serde_json::json!((0..25).map(|i| format!("p{i}")).collect::<Vec<_>>())
                },
                "companies[0].products[2].bundle_products",
            ),
            (
                |c| c["companies"][0]["licenses"][0]["license_key"] = serde_json::json!("S-1"),
                "companies[0].licenses[1].members[0].license_key",
            ),
            (
                |c| c["companies"][0]["licenses"][1]["members"] = serde_json::json!([{"id": 21, "product": "app"}]),
                "companies[0].licenses[1].members",
            ),
            (
                |c| c["companies"][0]["licenses"][1]["members"][1]["product"] = serde_json::json!("app"),
                "companies[0].licenses[1].members[1]",
            ),
            (
                |c| c["companies"][0]["licenses"][0]["members"] = serde_json::json!([{"id": 99, "product": "viewer"}]),
                "companies[0].licenses[0].members",
            ),
            (
                |c| c["companies"][0]["licenses"][0]["bundle"] = serde_json::json!("suite"),
                "companies[0].licenses[0].bundle",
            ),
            (
                |c| c["companies"][0]["licenses"][1]["members"][0]["id"] = serde_json::json!(10),
                "companies[0].licenses[1].members[0].id",
            ),
            (
                |c| c["companies"][0]["licenses"][1]["members"][1]["license_key"] = serde_json::json!("V-1"),
                "companies[0].licenses[1].members[1].license_key",
            ),
        ];
        for (i, (breaks, path)) in cases.into_iter().enumerate() {
            let mut c = bundle_catalog();
            breaks(&mut c);
            let err = parse(c).expect_err(&format!("case {i} parses"));
            assert!(err.to_string().contains(path), "case {i}: {err}");
        }
    }

    #[test]
    fn valid_catalog_parses_and_normalises() {
        let c = parse(base()).unwrap();
        let acme = &c.companies[0];
        assert_eq!(acme.licenses.len(), 2);
        assert_eq!(acme.licenses[0].0.terms.metadata["x"], Value::from(1));
        assert_eq!(
            acme.users[0].0.licenses,
            vec![(ProductCode::parse("team").unwrap(), 11)]
        );
    }

    #[test]
    fn debug_redacts_passwords_and_shared_keys() {
        let mut v = base();
        v["companies"][0]["license_users"][0]["password"] = Value::from("pw-plain-secret");
        v["companies"][0]["api_keys"] = serde_json::json!([{"api_key": "k1", "shared_key": "sk-very-secret"}]);
        let printed = format!("{:?}", parse(v).unwrap());
        assert!(!printed.contains("pw-plain-secret"), "{printed}");
        assert!(!printed.contains("sk-very-secret"), "{printed}");
        assert!(printed.contains("REDACTED"), "{printed}");
    }

    #[test]
    fn numbers_are_bounded_naming_the_field() {
        let too_big = MAX_SAFE_INTEGER + 1;
        let cases: [(&str, Value, &str); 13] = [
            ("/companies/0/id", Value::from(too_big), "companies[0].id"),
            (
                "/companies/0/license_users/0/id",
                Value::from(-too_big),
                "companies[0].license_users[0].id",
            ),
            (
                "/companies/0/products/0/trial_days",
                Value::from(36_501),
                "companies[0].products[0].trial_days",
            ),
            (
                "/companies/0/products/0/floating_timeout",
                Value::from(i64::MAX),
                "companies[0].products[0].floating_timeout",
            ),
            (
                "/companies/0/licenses/0/id",
                Value::from(u64::MAX),
                "companies[0].licenses[0].id",
            ),
            (
                "/companies/0/licenses/0/trial_days",
                Value::from(-1),
                "companies[0].licenses[0].trial_days",
            ),
            (
                "/companies/0/licenses/0/max_activations",
                Value::from(1_000_001),
                "companies[0].licenses[0].max_activations",
            ),
            (
                "/companies/0/licenses/0/max_activations",
                Value::from(-1),
                "companies[0].licenses[0].max_activations",
            ),
            (
                "/companies/0/licenses/0/max_transfers",
                Value::from(-2),
                "companies[0].licenses[0].max_transfers",
            ),
            (
                "/companies/0/licenses/0/license_template_id",
                Value::from(i64::MIN),
                "companies[0].licenses[0].license_template_id",
            ),
            (
                "/companies/0/licenses/0/grace_period",
                Value::from(876_001),
                "companies[0].licenses[0].grace_period",
            ),
            (
                "/companies/0/licenses/1/users/0/max_activations",
                Value::from(10_000_000),
                "companies[0].licenses[1].users[0].max_activations",
            ),
            (
                "/companies/0/licenses/0/metadata/big",
                Value::from(too_big),
                "companies[0].licenses[0].metadata",
            ),
        ];
        for (pointer, value, path) in cases {
            let mut v = base();
            match v.pointer_mut(pointer) {
                Some(slot) => *slot = value,
                None => {
                    let (parent, key) = pointer.rsplit_once('/').unwrap();
                    v.pointer_mut(parent).unwrap()[key] = value;
                }
            }
            let e = parse(v).unwrap_err();
            assert_eq!(e.path, path, "{e}");
            assert!(e.to_string().starts_with(&format!("c.json: {path}: ")), "{e}");
        }
        let mut v = base();
        v["companies"][0]["products"][0]["features"] = serde_json::json!([{"id": too_big, "code": "f"}]);
        assert_eq!(parse(v).unwrap_err().path, "companies[0].products[0].features[0].id");
        // The ends of each range are accepted.
        let mut v = base();
        v["companies"][0]["id"] = Value::from(MAX_SAFE_INTEGER);
        v["companies"][0]["licenses"][0]["trial_days"] = Value::from(36_500);
        v["companies"][0]["licenses"][0]["max_transfers"] = Value::from(-1);
        v["companies"][0]["licenses"][0]["max_activations"] = Value::from(1_000_000);
        v["companies"][0]["licenses"][0]["metadata"] = serde_json::json!({"n": -MAX_SAFE_INTEGER});
        parse(v).unwrap();
    }

    #[test]
    fn a_reset_needs_a_period_the_server_applies() {
        let mut v = base();
        v["companies"][0]["licenses"][0]["reset_consumption"] = Value::Bool(true);
        v["companies"][0]["licenses"][0]["consumption_period"] = Value::from("quarterly");
        let e = parse(v.clone()).unwrap_err();
        assert_eq!(e.path, "companies[0].licenses[0].consumption_period", "{e}");
        assert!(e.to_string().contains("`quarterly`"), "{e}");
        v["companies"][0]["licenses"][0]["consumption_period"] = Value::from("monthly");
        parse(v).unwrap();
        let mut v = base();
        v["companies"][0]["products"][0]["features"] =
            serde_json::json!([{"id": 1, "code": "f", "feature_type": "consumption", "reset_consumption": true}]);
        let e = parse(v.clone()).unwrap_err();
        assert_eq!(e.path, "companies[0].products[0].features[0].consumption_period", "{e}");
        v["companies"][0]["products"][0]["features"][0]["reset_consumption"] = Value::Bool(false);
        parse(v).unwrap();
    }

    #[test]
    fn a_malformed_date_is_an_error_not_a_panic() {
        let mut v = base();
        v["companies"][0]["licenses"][0]["validity_period"] = Value::from("2030-01-01T00:00:00+0é00");
        let e = parse(v).unwrap_err();
        assert_eq!(e.path, "companies[0].licenses[0].validity_period", "{e}");
        let mut v = base();
        v["companies"][0]["licenses"][0]["start_date"] = Value::from("2030-0é-01");
        assert_eq!(parse(v).unwrap_err().path, "companies[0].licenses[0].start_date");
    }

    proptest::proptest! {
        /// Whatever a vendor writes as a date, the catalog either parses or names the field.
        #[test]
        fn any_catalog_date_parses_or_names_its_field(s in "\\PC{0,40}", field in 0..3usize) {
            let mut v = base();
            let (pointer, name) = [
                ("/companies/0/licenses/0", "validity_period"),
                ("/companies/0/licenses/1", "maintenance_period"),
                ("/companies/0/products/0", "validity_period"),
            ][field];
            v.pointer_mut(pointer).unwrap()[name] = Value::from(s.clone());
            match parse(v) {
                Ok(_) => proptest::prop_assert!(Timestamp::parse_iso(&s).is_some()),
                Err(e) => proptest::prop_assert!(e.path.ends_with(name), "{}", e),
            }
        }
    }

    #[test]
    fn errors_name_file_entry_and_field() {
        let mut v = base();
        v["companies"][0]["licenses"][0]["max_activations"] = Value::from("two");
        let e = parse(v).unwrap_err();
        assert_eq!(e.path, "companies[0].licenses[0].max_activations");
        assert!(
            e.to_string()
                .starts_with("c.json: companies[0].licenses[0].max_activations:"),
            "{e}"
        );

        let mut v = base();
        v["companies"][0]["licenses"][1]["prevent_vmm"] = Value::from(true);
        assert!(parse(v).unwrap_err().message.contains("prevent_vmm"));

        let mut v = base();
        v["companies"][0]["licenses"][0]["product"] = Value::from("nope");
        assert_eq!(parse(v).unwrap_err().path, "companies[0].licenses[0].product");

        let mut v = base();
        v["companies"][0]["licenses"][1]["users"][0]["email"] = Value::from("zed@b.c");
        assert_eq!(parse(v).unwrap_err().path, "companies[0].licenses[1].users[0].email");

        let mut v = base();
        v["companies"][0]["licenses"][0]["metadata"] = serde_json::json!({"10": 1});
        assert!(parse(v).unwrap_err().message.contains("array index"));

        let mut v = base();
        v["companies"][0]["products"][0]["blacklist"] = serde_json::json!([""]);
        assert_eq!(parse(v).unwrap_err().path, "companies[0].products[0].blacklist[0]");

        let e = Catalog::parse("{", "c.json").unwrap_err();
        assert!(e.path.starts_with("line 1"), "{e}");
    }

    /// The message for `base()` changed by `edit`, at `path`.
    fn message(edit: impl FnOnce(&mut Value), path: &str) -> String {
        let mut v = base();
        edit(&mut v);
        let e = parse(v).unwrap_err();
        assert_eq!(e.path, path, "{e}");
        e.message
    }

    #[test]
    fn product_custom_fields_and_versions_parse_and_are_bounded() {
        let mut v = base();
        v["companies"][0]["products"][0]["custom_fields"] =
            serde_json::json!([{"name": "tier", "data_type": "text", "value": "gold"}]);
        v["companies"][0]["products"][0]["versions"] =
            serde_json::json!([{"version": "1.0", "environment": "linux", "release_date": "2030-01-02"}]);
        let catalog = parse(v).unwrap();
        let app = &catalog.companies[0].products[0];
        assert_eq!(app.custom_fields[0].value, "gold");
        assert_eq!(
            app.latest_version(Some("linux")).map(|v| v.version.as_str()),
            Some("1.0")
        );
        assert_eq!(app.latest_version(Some("win64")), None);

        for (field, entry, max) in [
            (
                "custom_fields",
                serde_json::json!({"name": "n", "data_type": "text", "value": "v"}),
                MAX_PRODUCT_CUSTOM_FIELDS,
            ),
            ("versions", serde_json::json!({"version": "1"}), MAX_PRODUCT_VERSIONS),
        ] {
            let m = message(
                |v| v["companies"][0]["products"][0][field] = Value::Array(vec![entry; max + 1]),
                &format!("companies[0].products[0].{field}"),
            );
            assert!(m.contains(&format!("at most {max}")), "{m}");
        }
        let m = message(
            |v| v["companies"][0]["products"][0]["versions"] = serde_json::json!([{"version": "1", "url_typo": "x"}]),
            "companies[0].products[0].versions[0].url_typo",
        );
        assert!(m.contains("`url`"), "names the valid fields: {m}");
    }

    #[test]
    fn license_policies_parse_and_are_checked() {
        let policy = |code: &str, extra: Value| {
            let mut p = serde_json::json!({"code": code, "is_trial": true, "trial_days": 30});
            p.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            p
        };
        let mut v = base();
        v["companies"][0]["products"][0]["license_policies"] = serde_json::json!([policy(
            "t30",
            serde_json::json!({"default_trial": true, "max_activations": 2})
        )]);
        let catalog = parse(v).unwrap();
        let app = &catalog.companies[0].products[0];
        let default = app.trial_policy(None).expect("the default trial policy");
        assert_eq!(
            (default.code.as_str(), default.trial_days, default.max_activations),
            ("t30", 30, 2)
        );
        assert_eq!(app.trial_policy(Some("t30")), Some(default));
        let at = "companies[0].products[0].license_policies";
        let cases = [
            (
                serde_json::json!([policy("a", serde_json::json!({})), policy("a", serde_json::json!({}))]),
                format!("{at}[1].code"),
                "appears twice",
            ),
            (
                serde_json::json!([policy(
                    "a",
                    serde_json::json!({"is_trial": false, "default_trial": true})
                )]),
                format!("{at}[0].default_trial"),
                "only a trial policy",
            ),
            (
                serde_json::json!([
                    policy("a", serde_json::json!({"default_trial": true})),
                    policy("b", serde_json::json!({"default_trial": true}))
                ]),
                format!("{at}[1].default_trial"),
                "at most one",
            ),
            (
                serde_json::json!([policy("", serde_json::json!({}))]),
                format!("{at}[0].code"),
                "1 to 255 bytes",
            ),
            (
                serde_json::json!([policy("a", serde_json::json!({"trial_days": 36_501}))]),
                format!("{at}[0].trial_days"),
                "at most 100 years",
            ),
        ];
        for (policies, path, expected) in cases {
            let m = message(
                |v| v["companies"][0]["products"][0]["license_policies"] = policies,
                &path,
            );
            assert!(m.contains(expected), "{path}: {m}");
        }
    }

    #[test]
    fn a_typo_names_the_closest_field_a_vendor_may_set() {
        let m = message(
            |v| {
                v["companies"][0]["api_keys"] =
                    serde_json::json!([{"api_key": "k", "shared_key": "s", "read_onyl": true}])
            },
            "catalog.companies[0].api_keys[0].read_onyl",
        );
        assert_eq!(
            m,
            "unknown field `read_onyl`: did you mean `read_only`? \
             Valid fields: `api_key`, `shared_key`, `products`, `read_only`, `revoked`"
        );
        let m = message(
            |v| v["companies"][0]["licences"] = serde_json::json!([]),
            "catalog.companies[0].licences",
        );
        assert_eq!(
            m,
            "unknown field `licences`: did you mean `licenses`? \
             Valid fields: `code`, `id`, `blacklist`, `api_keys`, `products`, `license_users`, `licenses`, \
             `oauth_clients`, `customer_accounts`"
        );
        // A license's fields are parsed in two parts; the hint offers both, and not what the importer sets.
        let m = message(
            |v| v["companies"][0]["licenses"][0]["max_activation"] = Value::from(3),
            "companies[0].licenses[0].max_activation",
        );
        assert!(
            m.starts_with(
                "unknown field `max_activation`: did you mean `max_activations`? \
                 Valid fields: `id`, `product`, `license_key`, `enabled`, `max_activations`, \
                 `allow_unlimited_activations`, `max_transfers`, `validity_period`, `users`, `license_type`, "
            ),
            "{m}"
        );
        assert!(m.contains("`prevent_vm`") && m.contains("`customer`"), "{m}");
        assert!(!m.contains("`bundle`") && !m.contains("`bundle_members`"), "{m}");
        let m = message(
            |v| v["companies"][0]["products"][0]["trial_dayz"] = Value::from(3),
            "companies[0].products[0].trial_dayz",
        );
        assert!(
            m.starts_with("unknown field `trial_dayz`: did you mean `trial_days`? Valid fields: `id`, "),
            "{m}"
        );
        // Nothing close: no guess, still the list.
        let m = message(
            |v| v["companies"][0]["licenses"][0]["colour"] = Value::from(3),
            "companies[0].licenses[0].colour",
        );
        assert!(
            m.starts_with("unknown field `colour`. Valid fields: `id`, `product`, "),
            "{m}"
        );
    }

    #[test]
    fn a_wrong_type_is_named_in_plain_words() {
        let license = |field: &'static str, value: Value| {
            message(
                move |v| v["companies"][0]["licenses"][0][field] = value,
                &format!("companies[0].licenses[0].{field}"),
            )
        };
        assert_eq!(
            license("max_activations", Value::from("3")),
            "invalid type: string \"3\", expected a whole number"
        );
        assert_eq!(
            license("trial_days", Value::from(2.5)),
            "invalid type: floating point `2.5`, expected a whole number"
        );
        assert_eq!(
            license("enabled", Value::from(1)),
            "invalid type: integer `1`, expected true or false"
        );
        assert_eq!(
            license("metadata", Value::from(5)),
            "invalid type: integer `5`, expected an object"
        );
        assert_eq!(
            license("users", Value::from("a@b.c")),
            "invalid type: string \"a@b.c\", expected a list"
        );
    }

    #[test]
    fn oauth_clients_are_checked_and_their_secrets_redacted() {
        let with = |clients: Value| {
            let mut v = base();
            v["companies"][0]["oauth_clients"] = clients;
            parse(v)
        };
        let secret = "a-client-secret-of-some-length";
        let c = with(serde_json::json!([{"client_id": "ci", "client_secret": secret, "products": ["app"]}])).unwrap();
        let client = &c.companies[0].oauth_clients[0];
        assert_eq!(
            (client.id.as_str(), client.read_only, client.revoked),
            ("ci", false, false)
        );
        let printed = format!("{c:?}");
        assert!(!printed.contains(secret), "{printed}");
        let error = |clients: Value| {
            let e = with(clients).unwrap_err();
            (e.path, e.message)
        };
        let (path, message) = error(serde_json::json!([{"client_id": "ci", "client_secret": "short"}]));
        assert_eq!(path, "companies[0].oauth_clients[0].client_secret");
        assert_eq!(message, "must be 16 to 256 bytes long, not 5");
        let long = "x".repeat(MAX_CLIENT_SECRET_LEN + 1);
        let (path, _) = error(serde_json::json!([{"client_id": "ci", "client_secret": long}]));
        assert_eq!(path, "companies[0].oauth_clients[0].client_secret");
        let (path, message) =
            error(serde_json::json!([{"client_id": "ci", "client_secret": secret, "products": ["nope"]}]));
        assert_eq!(
            (path.as_str(), message.as_str()),
            ("companies[0].oauth_clients[0].products", "unknown product `nope`")
        );
        let (path, message) = error(serde_json::json!([
            {"client_id": "ci", "client_secret": secret},
            {"client_id": "ci", "client_secret": secret}
        ]));
        assert_eq!(
            (path.as_str(), message.as_str()),
            ("companies[0].oauth_clients[1].client_id", "client `ci` appears twice")
        );
        let (path, _) = error(serde_json::json!([{"client_id": "", "client_secret": secret}]));
        assert_eq!(path, "catalog.companies[0].oauth_clients[0].client_id");
    }

    #[test]
    fn customer_accounts_are_checked_and_their_secrets_redacted() {
        let with = |accounts: Value| {
            let mut v = base();
            v["companies"][0]["customer_accounts"] = accounts;
            parse(v)
        };
        let account = |issuer: &str, uris: Value| {
            serde_json::json!({"code": "acct", "issuer": issuer, "client_id": "cid",
                "client_secret": "provider-secret", "redirect_uris": uris})
        };
        let c = with(serde_json::json!([account(
            "https://idp.example",
            serde_json::json!(["https://app/cb"])
        )]))
        .unwrap();
        let a = &c.companies[0].customer_accounts[0];
        assert_eq!(
            (a.code.as_str(), a.issuer.as_str(), a.email_claim.as_str()),
            ("acct", "https://idp.example", "email")
        );
        let printed = format!("{c:?}");
        assert!(!printed.contains("provider-secret"), "{printed}");
        let error = |accounts: Value| {
            let e = with(accounts).unwrap_err();
            (e.path, e.message)
        };
        assert_eq!(
            error(serde_json::json!([account("idp.example", serde_json::json!([]))])),
            (
                "companies[0].customer_accounts[0].issuer".to_owned(),
                "`idp.example` is not an absolute http(s) URL".to_owned()
            )
        );
        let (path, _) = error(serde_json::json!([account(
            "https://idp",
            serde_json::json!(["ftp://x/cb"])
        )]));
        assert_eq!(path, "companies[0].customer_accounts[0].redirect_uris[0]");
        let many: Vec<String> = (0..=MAX_REDIRECT_URIS).map(|i| format!("https://app/{i}")).collect();
        let (path, _) = error(serde_json::json!([account("https://idp", serde_json::json!(many))]));
        assert_eq!(path, "companies[0].customer_accounts[0].redirect_uris");
        let twice = account("https://idp", serde_json::json!([]));
        let (path, message) = error(serde_json::json!([twice.clone(), twice]));
        assert_eq!(
            (path.as_str(), message.as_str()),
            ("companies[0].customer_accounts[1].code", "account `acct` appears twice")
        );
        let mut no_secret = account("https://idp", serde_json::json!([]));
        no_secret["client_secret"] = serde_json::json!("");
        let (path, _) = error(serde_json::json!([no_secret]));
        assert_eq!(path, "companies[0].customer_accounts[0].client_secret");
    }
}
