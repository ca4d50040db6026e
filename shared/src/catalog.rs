//! The catalog file (docs/catalog.md): companies with their API keys, products, license users and
//! licenses, as a vendor writes them. [`Catalog::parse`] validates the whole file before anything is
//! written — every error names the file, the entry and the field — and [`import`] writes it with
//! idempotent upserts that keep activation counters, so importing twice changes nothing.

use crate::ids::{ApiKeyId, CompanyId, HardwareId, LicenseKey, ProductCode, Username};
use crate::model::{ApiKeyRecord, AuthorizationMethod, Company, License, LicenseTerms, LicenseUser, ProductDoc, Seat};
use crate::password;
use crate::secret::{ExposeSecret, SecretString};
use crate::store::{LicenseAddr, Store, StoreError};
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
    /// Users with their plaintext password (hashed at import, never stored; redacted in `Debug`).
    pub users: Vec<(LicenseUser, Option<SecretString>)>,
    pub licenses: Vec<(License, Vec<Seat>)>,
}

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
    first_name: Option<String>,
    #[serde(default)]
    last_name: Option<String>,
    #[serde(default)]
    phone_number: Option<String>,
    #[serde(default)]
    is_initial_password: bool,
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
        serde_path_to_error::deserialize(value).map_err(|e| {
            let inner = e.path().to_string();
            let full = if inner == "." {
                path.to_owned()
            } else {
                format!("{path}.{inner}")
            };
            self.err(full, e.inner().to_string())
        })
    }
}

/// Makes vendor JSON safe to sign (SPEC §4.4): whole-number floats become integers; object keys that
/// look like array indices and numbers JavaScript would print differently are rejected.
pub fn normalize_json(value: &Value, path: &str) -> Result<Value, String> {
    Ok(match value {
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
        if value.get("short_code").or_else(|| value.get("code")).is_none() {
            return Err(cx.err(format!("{p_path}.short_code"), "missing field `short_code`"));
        }
        let mut p: ProductDoc = cx.typed(&p_path, value)?;
        p.metadata = normalize_map(&p.metadata, &format!("{p_path}.metadata")).map_err(|m| cx.err(&p_path, m))?;
        for (f_i, feature) in p.features.iter_mut().enumerate() {
            let f_path = format!("{p_path}.features[{f_i}].metadata");
            feature.metadata = normalize_map(&feature.metadata, &f_path).map_err(|m| cx.err(&f_path, m))?;
        }
        if products.contains_key(&p.code) {
            return Err(cx.err(
                format!("{p_path}.short_code"),
                format!("product `{}` appears twice", p.code),
            ));
        }
        product_order.push(p.code.clone());
        products.insert(p.code.clone(), p);
    }

    let api_keys = c
        .api_keys
        .into_iter()
        .enumerate()
        .map(|(i, k)| {
            let k_path = format!("{path}.api_keys[{i}]");
            if k.shared_key.is_empty() {
                return Err(cx.err(format!("{k_path}.shared_key"), "must not be empty"));
            }
            if let Some(unknown) = k.products.iter().find(|p| !products.contains_key(*p)) {
                return Err(cx.err(format!("{k_path}.products"), format!("unknown product `{unknown}`")));
            }
            Ok(ApiKeyRecord {
                id: k.api_key,
                company: c.code.clone(),
                shared_key: k.shared_key,
                products: k.products,
                read_only: k.read_only,
                revoked: k.revoked,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;

    let mut users: BTreeMap<Username, (usize, LicenseUser, Option<SecretString>)> = BTreeMap::new();
    for (i, u) in c.license_users.into_iter().enumerate() {
        if users.contains_key(&u.email) {
            return Err(cx.err(
                format!("{path}.license_users[{i}].email"),
                format!("user `{}` appears twice", u.email),
            ));
        }
        let user = LicenseUser {
            id: u.id,
            email: u.email.clone(),
            first_name: u.first_name,
            last_name: u.last_name,
            phone_number: u.phone_number,
            is_initial_password: u.is_initial_password,
            password_hash: None,
            licenses: Vec::new(),
        };
        users.insert(u.email, (i, user, u.password.map(SecretString::from)));
    }

    let mut licenses = Vec::new();
    let mut ids = BTreeSet::new();
    let mut keys = BTreeSet::new();
    for (i, mut entry) in c.licenses.into_iter().enumerate() {
        let l_path = format!("{path}.licenses[{i}]");
        let head_map: Map<String, Value> = HEAD_FIELDS
            .iter()
            .filter_map(|f| entry.remove(*f).map(|v| ((*f).to_owned(), v)))
            .collect();
        let head: RawLicenseHead = cx.typed(&l_path, Value::Object(head_map))?;
        let mut terms: LicenseTerms = cx.typed(&l_path, Value::Object(entry))?;
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
        if head.max_activations < 0 {
            return Err(cx.err(field("max_activations"), "must not be negative"));
        }
        if head.max_transfers < -1 {
            return Err(cx.err(
                field("max_transfers"),
                "must be -1 (no transfers), 0 (unlimited) or a positive limit",
            ));
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
        terms.metadata =
            normalize_map(&terms.metadata, &field("metadata")).map_err(|m| cx.err(field("metadata"), m))?;
        terms.customer.metadata = normalize_map(&terms.customer.metadata, &field("customer.metadata"))
            .map_err(|m| cx.err(field("customer"), m))?;
        if let Some(account) = &terms.customer.customer_account {
            terms.customer.customer_account = Some(
                normalize_json(account, &field("customer.customer_account"))
                    .map_err(|m| cx.err(field("customer"), m))?,
            );
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
            user.licenses.push((head.product.clone(), head.id));
            seats.push(Seat {
                user: s.email,
                max_activations: s.max_activations,
                allow_unlimited_activations: s.allow_unlimited_activations || s.max_activations == 0,
                total_activations: 0,
            });
        }
        let license = License {
            enabled: head.enabled,
            max_activations: head.max_activations,
            allow_unlimited_activations: head.allow_unlimited_activations,
            max_transfers: head.max_transfers,
            validity_period: head.validity_period,
            terms,
            ..License::new(head.id, c.code.clone(), head.product, head.license_key)
        };
        licenses.push((license, seats));
    }

    let mut users: Vec<_> = users.into_values().collect();
    users.sort_by_key(|(i, ..)| *i);
    Ok(CompanyEntry {
        company: Company {
            id: c.id,
            blacklist: c.blacklist,
        },
        code: c.code,
        api_keys,
        products: product_order
            .into_iter()
            .filter_map(|code| products.remove(&code))
            .collect(),
        users: users.into_iter().map(|(_, u, p)| (u, p)).collect(),
        licenses,
    })
}

/// What an import wrote.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ImportReport {
    pub companies: usize,
    pub api_keys: usize,
    pub products: usize,
    pub users: usize,
    pub licenses: usize,
}

/// Writes a validated catalog. API keys go last, so a key never works before what it serves exists.
/// A user's stored hash is kept when it still matches the catalog password, so re-importing does not
/// churn hashes.
pub async fn import(store: &dyn Store, catalog: &Catalog) -> Result<ImportReport, StoreError> {
    let mut report = ImportReport::default();
    for c in &catalog.companies {
        store.put_company(&c.code, &c.company).await?;
        for p in &c.products {
            store.put_product(&c.code, p).await?;
        }
        for (user, password) in &c.users {
            let mut user = user.clone();
            let existing = store
                .get_user(&c.code, &user.email)
                .await?
                .and_then(|u| u.password_hash);
            user.password_hash = match (password, existing) {
                (None, _) => None,
                (Some(pw), Some(hash)) if password::verify(pw.expose_secret().to_owned(), Some(hash.clone())).await => {
                    Some(hash)
                }
                (Some(pw), _) => {
                    let pw = pw.clone();
                    Some(
                        tokio::task::spawn_blocking(move || password::hash(pw.expose_secret()))
                            .await
                            .map_err(|e| StoreError::Invalid(e.to_string()))?,
                    )
                }
            };
            store.put_user(&c.code, &user).await?;
        }
        for (license, seats) in &c.licenses {
            store.put_license(license).await?;
            for seat in seats {
                store.put_seat(&LicenseAddr::of(license), seat).await?;
            }
        }
        for key in &c.api_keys {
            store.put_api_key(key).await?;
        }
        report.companies += 1;
        report.api_keys += c.api_keys.len();
        report.products += c.products.len();
        report.users += c.users.len();
        report.licenses += c.licenses.len();
    }
    Ok(report)
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
}
