//! `show` and `export`: the stored state of one license with its devices, so an operator can see what
//! happened. `export` prints JSON; `show` prints the same as text.

use clap::Args;
use license_api::ids::{CompanyId, LicenseKey, ProductCode};
use license_api::model::{Device, FeatureType, License, LicenseUser, ProductDoc, Seat};
use license_api::plan::LicenseAddr;
use license_api::store::write::{Image, Item};
use license_api::store::Store;
use license_api::time::Timestamp;
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

/// What `export` shows beside a license: its devices, its product (for its features) and its users.
struct Beside<'a> {
    devices: &'a [Device],
    product: Option<&'a ProductDoc>,
    users: &'a [(Seat, Option<LicenseUser>)],
    now: Timestamp,
}

fn license_json(l: &License, beside: &Beside<'_>) -> Value {
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
        "total_consumptions": l.total_consumptions_at(beside.now),
        "recorded_consumptions": l.consumptions,
        "consumptions_period": l.consumptions_period,
        "feature_consumptions": l.feature_consumptions,
        "features": beside.product.map(|p| features_json(l, p, beside.now)).unwrap_or_default(),
        "floating": floating_json(l),
        "users": beside.users.iter().map(|(seat, user)| user_json(seat, user.as_ref())).collect::<Vec<_>>(),
        "terms": l.terms,
        "devices": beside.devices.iter().map(device_json).collect::<Vec<_>>(),
    })
}

/// The product's features with this license's totals and period starts (what the §9 endpoints keep).
fn features_json(l: &License, p: &ProductDoc, now: Timestamp) -> Vec<Value> {
    p.features
        .iter()
        .map(|f| {
            let mut v = serde_json::to_value(f).unwrap_or_default();
            v["expired"] = json!(f.expiry_date.is_some_and(|d| d <= now));
            if f.feature_type == FeatureType::Consumption {
                v["total_consumptions"] = json!(l.feature_total_at(f, now));
                v["recorded_consumptions"] = json!(l.feature_consumptions.get(&f.code));
                v["period_start"] = json!(l.feature_periods.get(&f.code));
            }
            v
        })
        .collect()
}

/// Floating cloud slot holders: hardware id, held until, borrowed until (a borrow holds its slot).
fn floating_json(l: &License) -> Value {
    let at = |ms: i64| Timestamp::from_millis(ms);
    let holders: Vec<Value> = l
        .floating
        .iter()
        .map(|(hw, until)| {
            json!({
                "hardware_id": hw,
                "held_until": at(*until),
                "borrowed_until": l.floating_borrowed.get(hw).map(|b| at(*b)),
            })
        })
        .collect();
    json!({"floating_users": l.terms.floating_users, "version": l.floating_version, "holders": holders})
}

fn user_json(seat: &Seat, user: Option<&LicenseUser>) -> Value {
    json!({
        "email": seat.user,
        "id": user.map(|u| u.id),
        "first_name": user.and_then(|u| u.first_name.as_deref()),
        "last_name": user.and_then(|u| u.last_name.as_deref()),
        "max_activations": seat.max_activations,
        "allow_unlimited_activations": seat.allow_unlimited_activations,
        "total_activations": seat.total_activations,
        "is_initial_password": user.map(|u| u.is_initial_password),
        "password_change_disabled": user.map(|u| u.password_change_disabled),
    })
}

/// One license as `export` shows it, read with everything beside it.
async fn license_export(store: &dyn Store, addr: &LicenseAddr, license: &License) -> Result<Value, String> {
    let err = |e: license_api::store::StoreError| e.to_string();
    let devices = store.list_devices(addr).await.map_err(err)?;
    let (company, product) = addr.company_product();
    let product = match store
        .load(&Item::Product(company.clone(), product.clone()))
        .await
        .map_err(err)?
    {
        Some(Image::Product(p)) => Some(*p),
        _ => None,
    };
    let mut users = Vec::new();
    for seat in store.list_seats(addr).await.map_err(err)? {
        let user = store.get_user(company, &seat.user).await.map_err(err)?;
        users.push((seat, user));
    }
    let beside = Beside {
        devices: &devices,
        product: product.as_ref(),
        users: &users,
        now: Timestamp::now(),
    };
    Ok(license_json(license, &beside))
}

/// The license and its devices as JSON, or `None` if there is no such license.
pub async fn export(store: &dyn Store, addr: &LicenseAddr) -> Result<Option<Value>, String> {
    let Some(license) = store.get_license(addr).await.map_err(|e| e.to_string())? else {
        return Ok(None);
    };
    let mut out = license_export(store, addr, &license).await?;
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
        members.push(license_export(store, &member_addr, &member).await?);
    }
    if !members.is_empty() {
        out["members"] = Value::Array(members);
    }
    Ok(Some(out))
}

/// A value as `show` prints it: strings bare, null as a dash.
fn text(v: &Value) -> String {
    match v {
        Value::Null => "—".to_owned(),
        Value::String(x) => x.clone(),
        other => other.to_string(),
    }
}

/// A human-readable rendering of [`export`]'s JSON.
pub fn show(v: &Value) -> String {
    let s = |k: &str| text(&v[k]);
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
    let t = &v["terms"];
    if t["license_type"] == "consumption" {
        out.push_str(&format!(
            "  consumptions: {} of {}{}   overages: {} (max {})   period: {}\n",
            s("total_consumptions"),
            text(&t["max_consumptions"]),
            if t["allow_unlimited_consumptions"] == true {
                " (unlimited)"
            } else {
                ""
            },
            text(&t["allow_overages"]),
            text(&t["max_overages"]),
            period(
                &t["reset_consumption"],
                &t["consumption_period"],
                &v["consumptions_period"]
            ),
        ));
    }
    show_features(v, &mut out);
    show_floating(v, &mut out);
    show_users(v, &mut out);
    show_devices(v, &mut out);
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

/// How a counter resets: `monthly, this period since <start>`, or `none`.
fn period(reset: &Value, period: &Value, start: &Value) -> String {
    if reset != true {
        return "none".to_owned();
    }
    format!("{}, this period since {}", text(period), text(start))
}

fn show_features(v: &Value, out: &mut String) {
    let features = v["features"].as_array().cloned().unwrap_or_default();
    if features.is_empty() {
        return;
    }
    out.push_str(&format!("Features ({}):\n", features.len()));
    for f in &features {
        out.push_str(&format!(
            "  {} ({}) {}  expires {}{}{}",
            text(&f["code"]),
            text(&f["feature_type"]),
            text(&f["name"]),
            text(&f["expiry_date"]),
            if f["expired"] == true { " (expired)" } else { "" },
            if f["is_floating_cloud"] == true {
                "  floating cloud"
            } else {
                ""
            },
        ));
        if f["feature_type"] == "consumption" {
            out.push_str(&format!(
                "  consumptions: {} of {}{}   overages: {} (max {})   period: {}",
                text(&f["total_consumptions"]),
                text(&f["max_consumption"]),
                if f["allow_unlimited_consumptions"] == true {
                    " (unlimited)"
                } else {
                    ""
                },
                text(&f["allow_overages"]),
                text(&f["max_overages"]),
                period(&f["reset_consumption"], &f["consumption_period"], &f["period_start"]),
            ));
        }
        out.push('\n');
    }
}

fn show_floating(v: &Value, out: &mut String) {
    if v["terms"]["is_floating_cloud"] != true {
        return;
    }
    let f = &v["floating"];
    let holders = f["holders"].as_array().cloned().unwrap_or_default();
    out.push_str(&format!(
        "Floating slots: {} recorded of {} (timeout {} min; expired ones are free)\n",
        holders.len(),
        text(&f["floating_users"]),
        text(&v["terms"]["floating_timeout"]),
    ));
    for h in &holders {
        let borrowed = match &h["borrowed_until"] {
            Value::Null => String::new(),
            until => format!("  borrowed until {}", text(until)),
        };
        out.push_str(&format!(
            "  {}  held until {}{}\n",
            text(&h["hardware_id"]),
            text(&h["held_until"]),
            borrowed
        ));
    }
}

fn show_users(v: &Value, out: &mut String) {
    let users = v["users"].as_array().cloned().unwrap_or_default();
    if users.is_empty() {
        return;
    }
    out.push_str(&format!("Users ({}):\n", users.len()));
    for u in &users {
        let limit = if u["allow_unlimited_activations"] == true {
            "unlimited".to_owned()
        } else {
            text(&u["max_activations"])
        };
        out.push_str(&format!(
            "  {}  id {}  activations {} of {}  initial password {}  password change disabled {}\n",
            text(&u["email"]),
            text(&u["id"]),
            text(&u["total_activations"]),
            limit,
            text(&u["is_initial_password"]),
            text(&u["password_change_disabled"]),
        ));
    }
}

fn show_devices(v: &Value, out: &mut String) {
    let devices = v["devices"].as_array().cloned().unwrap_or_default();
    out.push_str(&format!("Devices ({}):\n", devices.len()));
    for d in &devices {
        let g = |k: &str| text(&d[k]);
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
        let variables: Vec<String> = d["variables"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|var| format!("{}={}", text(&var["variable"]), text(&var["value"])))
            .collect();
        if !variables.is_empty() {
            out.push_str(&format!("      variables: {}\n", variables.join(", ")));
        }
    }
}
