//! `show` and `export`: the stored state of one license with its devices, so an operator can see what
//! happened. `export` prints JSON; `show` prints the same as text.

use clap::Args;
use license_api::ids::{CompanyId, LicenseKey, ProductCode};
use license_api::model::{Device, License};
use license_api::plan::LicenseAddr;
use license_api::store::Store;
use serde_json::{json, Value};

#[derive(Args, Debug, Clone)]
pub struct LicenseSelector {
    /// Company code, as in the catalog.
    #[arg(long)]
    pub company: String,
    /// Product short code.
    #[arg(long)]
    pub product: String,
    /// License key (key-based licenses).
    #[arg(long, conflicts_with = "license_id", required_unless_present = "license_id")]
    pub license_key: Option<String>,
    /// License id (user-based licenses).
    #[arg(long)]
    pub license_id: Option<i64>,
}

impl LicenseSelector {
    pub fn addr(&self) -> Result<LicenseAddr, String> {
        let company = CompanyId::parse(&self.company).map_err(|e| format!("--company {e}"))?;
        let product = ProductCode::parse(&self.product).map_err(|e| format!("--product {e}"))?;
        Ok(match (&self.license_key, self.license_id) {
            (Some(key), _) => LicenseAddr::Key {
                company,
                product,
                key: LicenseKey::parse(key).map_err(|e| format!("--license-key {e}"))?,
            },
            (None, Some(id)) => LicenseAddr::Id { company, product, id },
            (None, None) => return Err("give --license-key or --license-id".into()),
        })
    }
}

fn device_json(d: &Device) -> Value {
    json!({
        "hardware_id": d.hardware_id,
        "device_id": d.id,
        "active": d.active,
        "user": d.user,
        "first_activated_at": d.first_activated_at,
        "last_activated_at": d.last_activated_at,
        "deactivated_at": d.deactivated_at,
        "last_seen_at": d.last_seen_at,
        "details": d.details,
        "variables": d.variables,
    })
}

fn license_json(l: &License, devices: &[Device]) -> Value {
    json!({
        "id": l.id,
        "company": l.company,
        "product": l.product,
        "license_key": l.key,
        "enabled": l.enabled,
        "max_activations": l.max_activations,
        "allow_unlimited_activations": l.allow_unlimited_activations,
        "max_transfers": l.max_transfers,
        "validity_period": l.validity_period,
        "times_activated": l.times_activated,
        "transfer_count": l.transfer_count,
        "released_slots": l.released_count,
        "total_consumptions": l.total_consumptions(),
        "recorded_consumptions": l.consumptions,
        "feature_consumptions": l.feature_consumptions,
        "terms": l.terms,
        "devices": devices.iter().map(device_json).collect::<Vec<_>>(),
    })
}

/// The license and its devices as JSON, or `None` if there is no such license.
pub async fn export(store: &dyn Store, addr: &LicenseAddr) -> Result<Option<Value>, String> {
    let Some(license) = store.get_license(addr).await.map_err(|e| e.to_string())? else {
        return Ok(None);
    };
    let devices = store.list_devices(addr).await.map_err(|e| e.to_string())?;
    let mut out = license_json(&license, &devices);
    // A bundle license: each member license with its own devices and counters.
    let mut members = Vec::new();
    for (product, id) in &license.terms.bundle_members {
        let (company, _) = addr.company_product();
        let member_addr = match &license.key {
            Some(key) => LicenseAddr::Key {
                company: company.clone(),
                product: product.clone(),
                key: key.clone(),
            },
            None => LicenseAddr::Id {
                company: company.clone(),
                product: product.clone(),
                id: *id,
            },
        };
        let Some(member) = store.get_license(&member_addr).await.map_err(|e| e.to_string())? else {
            return Err(format!(
                "member license {id} of product {product} is missing: re-import the catalog"
            ));
        };
        let devices = store.list_devices(&member_addr).await.map_err(|e| e.to_string())?;
        members.push(license_json(&member, &devices));
    }
    if !members.is_empty() {
        out["members"] = Value::Array(members);
    }
    Ok(Some(out))
}

/// A human-readable rendering of [`export`]'s JSON.
pub fn show(v: &Value) -> String {
    let s = |k: &str| match &v[k] {
        Value::Null => "—".to_owned(),
        Value::String(x) => x.clone(),
        other => other.to_string(),
    };
    let limit = if v["allow_unlimited_activations"] == true {
        "unlimited".to_owned()
    } else {
        s("max_activations")
    };
    let transfers = match v["max_transfers"].as_i64() {
        Some(0) => "unlimited".to_owned(),
        Some(-1) => "none allowed".to_owned(),
        _ => s("max_transfers"),
    };
    let mut out = format!(
        "License {} — product {}, key {}\n  enabled: {}   active devices: {} of {}   transfers: {} (limit {})\n  valid until: {}   released slots: {}\n",
        s("id"), s("product"), s("license_key"), s("enabled"), s("times_activated"), limit, s("transfer_count"), transfers,
        s("validity_period"), s("released_slots"),
    );
    let features = v["feature_consumptions"].as_object().cloned().unwrap_or_default();
    if v["terms"]["license_type"] == "consumption" || !features.is_empty() {
        let per_feature: Vec<String> = features.iter().map(|(code, n)| format!("{code} +{n}")).collect();
        out.push_str(&format!(
            "  consumptions: {} of {}   features: {}\n",
            s("total_consumptions"),
            v["terms"]["max_consumptions"],
            if per_feature.is_empty() {
                "—".to_owned()
            } else {
                per_feature.join(", ")
            },
        ));
    }
    let devices = v["devices"].as_array().cloned().unwrap_or_default();
    out.push_str(&format!("Devices ({}):\n", devices.len()));
    for d in &devices {
        let g = |k: &str| match &d[k] {
            Value::Null => "—".to_owned(),
            Value::String(x) => x.clone(),
            other => other.to_string(),
        };
        out.push_str(&format!(
            "  {} {}  id {}  user {}  activated {}  last seen {}  deactivated {}\n",
            if d["active"] == true { "●" } else { "○" },
            g("hardware_id"),
            g("device_id"),
            g("user"),
            g("last_activated_at"),
            g("last_seen_at"),
            g("deactivated_at"),
        ));
    }
    if let Some(members) = v["members"].as_array() {
        out.push_str(&format!("Bundle members ({}):\n", members.len()));
        for m in members {
            for line in show(m).lines() {
                out.push_str("  ");
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}
