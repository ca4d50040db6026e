//! What the audit trail adds to an activation (issue 18 item 4), measured at the store: the write an
//! activation of a new device on an unlimited license makes — the device created (`attribute_not_exists`),
//! the license's `times_activated` incremented under its conditions — applied with and without the
//! audit record `runner::Attempts::write` appends to it, alternately, so both variants see the same
//! machine load. Prints each variant's latency percentiles per store. Run by `scripts/bench-audit.sh`.

use clap::Parser;
use license_api::audit::{Actor, Change, Trail};
use license_api::ids::{CompanyId, HardwareId, LicenseKey, ProductCode};
use license_api::model::Device;
use license_api::plan::{LicenseAddr, WriteToken};
use license_api::store::write::{Action, Attr, Cond, Effect, Image, Item, ItemWrite, Val, Write};
use license_api::time::Timestamp;
use license_server::stores::StoreArgs;
use std::time::{Duration, Instant};

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    store: StoreArgs,
    /// Activations per variant.
    #[arg(long, default_value_t = 300)]
    rounds: usize,
    /// The license (key-based, unlimited activations) of the catalog the store holds.
    #[arg(long, default_value = "demo")]
    company: String,
    #[arg(long, default_value = "demo")]
    product: String,
    #[arg(long, default_value = "DEMO-UNLIMITED-0004")]
    license_key: String,
    #[arg(long, default_value_t = 4)]
    license_id: i64,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let store = args.store.open(license_api::store::sqlite::IfMissing::Fail).await?;
    let addr = LicenseAddr::Key {
        company: CompanyId::parse(&args.company)?,
        product: ProductCode::parse(&args.product)?,
        key: LicenseKey::parse(&args.license_key)?,
    };
    let trail = Trail::new(Actor::cli("bench"), CompanyId::parse(&args.company)?, 400);
    let mut plain = Vec::with_capacity(args.rounds);
    let mut audited = Vec::with_capacity(args.rounds);
    let run = std::process::id();
    for round in 0..args.rounds {
        for (audit, times) in [(false, &mut plain), (true, &mut audited)] {
            let hw = HardwareId::parse(&format!("bench-{run}-{round}-{audit}"))?;
            let token = WriteToken::new();
            let mut write = activation(&addr, args.license_id, &hw, &token);
            if audit {
                let change = Change::on_license("license.activate", &addr, serde_json::json!({"hardware_id": hw}));
                write.items.push(trail.item(&change, &token, Timestamp::now()));
            }
            let started = Instant::now();
            store
                .apply(&write, &token)
                .await
                .map_err(|e| format!("write refused: {e}"))?;
            times.push(started.elapsed());
        }
    }
    println!("{:<22} {:>9} {:>9} {:>9}", "variant", "p50", "p90", "p99");
    report("activation", &mut plain);
    report("activation + audit", &mut audited);
    Ok(())
}

/// The items an activation of a new device on an unlimited license writes (`ActivationPlan::write`).
fn activation(addr: &LicenseAddr, license_id: i64, hw: &HardwareId, token: &WriteToken) -> Write {
    let now = Timestamp::now();
    let device = Device {
        id: 0,
        hardware_id: hw.clone(),
        active: true,
        user: None,
        first_activated_at: now,
        last_activated_at: now,
        deactivated_at: None,
        last_seen_at: None,
        details: Default::default(),
        variables: Vec::new(),
        activations: 1,
        write_token: Some(token.as_str().to_owned()),
    };
    Write {
        items: vec![
            ItemWrite {
                item: Item::Device(addr.clone(), hw.clone()),
                conditions: vec![Cond::Missing],
                action: Action::Put(Image::Device(Box::new(device))),
            },
            ItemWrite {
                item: Item::License(addr.clone()),
                conditions: vec![
                    Cond::Exists,
                    Cond::Eq(Attr::LicenseId, Val::Int(license_id)),
                    Cond::Eq(Attr::Enabled, Val::Bool(true)),
                    Cond::Eq(Attr::Unlimited, Val::Bool(true)),
                ],
                action: Action::Update(vec![Effect::Add(Attr::TimesActivated, 1)]),
            },
        ],
    }
}

fn report(name: &str, times: &mut [Duration]) {
    times.sort();
    let at = |q: f64| times[((times.len() - 1) as f64 * q) as usize].as_secs_f64() * 1000.0;
    println!("{name:<22} {:>7.2}ms {:>7.2}ms {:>7.2}ms", at(0.5), at(0.9), at(0.99));
}
