//! The rules without any store: each case builds a context and asserts the decision.

use super::*;
use crate::ids::Username;
use crate::ids::{CompanyId, LicenseKey, ProductCode};
use crate::model::Seat;
use crate::plan::WriteToken;
use crate::request::{Credentials, LicenseRequest};
use crate::store::write::{apply_actions, Action, Effect, Image, Item, Write};

fn now() -> Timestamp {
    Timestamp::parse_iso("2026-06-01T12:00:00Z").unwrap()
}

fn ctx() -> LicenseContext {
    LicenseContext {
        product: ProductDoc::default(),
        company: Company::default(),
        license: License {
            max_activations: 2,
            ..License::new(
                1,
                CompanyId::parse("c").unwrap(),
                ProductCode::parse("p").unwrap(),
                Some(LicenseKey::parse("K").unwrap()),
            )
        },
        seat: None,
        device: None,
        released_here: false,
        transfer_source: None,
        charged_seat_gone: false,
    }
}

fn req(hw: &str) -> LicenseRequest {
    LicenseRequest {
        product: ProductCode::parse("p").unwrap(),
        hardware_id: HardwareId::parse(hw).unwrap(),
        credentials: Credentials::Key(LicenseKey::parse("K").unwrap()),
        license_id: None,
        bundle_code: None,
        is_vm: false,
        details: Default::default(),
        variables: vec![],
        include_expired_features: false,
    }
}

fn code(r: Result<ActivationPlan, ApiError>) -> &'static str {
    r.err().map_or("ok", |e| e.code())
}

/// A license with the released-slot markers a store keeps beside it.
struct Sim {
    c: LicenseContext,
    released: std::collections::BTreeSet<HardwareId>,
}

fn sim(c: LicenseContext) -> Sim {
    Sim {
        c,
        released: Default::default(),
    }
}

/// The license as `write` leaves it: the write's actions on the license item, as the handlers derive it.
fn written(license: &mut License, write: Write) {
    let item = write
        .items
        .iter()
        .find(|i| matches!(i.item, Item::License(_)))
        .expect("a license item");
    let mut image = Some(Image::License(Box::new(license.clone())));
    apply_actions([(item, &mut image)]).expect("the write fits the license");
    let Some(Image::License(after)) = image else {
        panic!("the license is gone")
    };
    *license = *after;
}

/// The license with `charges` written: a deactivation's write reduced to its counters.
fn charged(license: &mut License, charges: Vec<Charge>) {
    let plan = DeactivationPlan {
        addr: LicenseAddr::of(license),
        license_id: license.id,
        hardware_id: HardwareId::parse("h").unwrap(),
        device_activations: 1,
        release_slot: false,
        seat: None,
        at: now(),
        charges,
        once: None,
    };
    let mut write = plan.write(&WriteToken::new());
    for item in &mut write.items {
        if let Action::Update(effects) = &mut item.action {
            effects.retain(|e| matches!(e, Effect::Count(..) | Effect::SetCount(..) | Effect::SetPeriod(..)));
        }
    }
    written(license, write);
}

/// Applies an activation, as the handler and store would, to the context.
fn activate(s: &mut Sim, hw: &str) -> ActivationPlan {
    let hw_id = HardwareId::parse(hw).unwrap();
    s.c.device = None;
    s.c.released_here = s.released.contains(&hw_id);
    s.c.transfer_source = None;
    if needs_transfer_source(&s.c) {
        s.c.transfer_source = s.released.iter().next().cloned();
    }
    let plan = plan_activation(&s.c, &req(hw), now(), Transport::Online).expect("activation allowed");
    written(&mut s.c.license, plan.write(&WriteToken::new()));
    match &plan.slot {
        Slot::Reuse => s.released.remove(&hw_id),
        Slot::Transfer { released_by } => s.released.remove(released_by),
        _ => true,
    };
    plan
}

fn deactivate(s: &mut Sim, hw: &str) {
    s.c.license.times_activated -= 1;
    s.c.license.released_count += 1;
    s.released.insert(HardwareId::parse(hw).unwrap());
}

#[test]
fn spec_transfer_example_counts_two() {
    let mut c = sim(ctx());
    c.c.license.max_activations = 1;
    assert_eq!(activate(&mut c, "A").slot, Slot::Fresh);
    deactivate(&mut c, "A");
    assert_eq!(
        activate(&mut c, "B").slot,
        Slot::Transfer {
            released_by: HardwareId::parse("A").unwrap()
        }
    );
    deactivate(&mut c, "B");
    assert!(matches!(activate(&mut c, "A").slot, Slot::Transfer { .. }));
    assert_eq!(c.c.license.transfer_count, 2);
    assert_eq!(c.c.license.released_count, 0);
}

#[test]
fn own_released_slot_is_no_transfer() {
    let mut c = sim(ctx());
    activate(&mut c, "A");
    deactivate(&mut c, "A");
    assert_eq!(activate(&mut c, "A").slot, Slot::Reuse);
    assert_eq!(c.c.license.transfer_count, 0);
}

#[test]
fn max_transfers_zero_unlimited_negative_prevents() {
    let mut c = ctx();
    c.license.released_count = 1;
    c.transfer_source = Some(HardwareId::parse("gone").unwrap());
    c.license.transfer_count = 100;
    assert_eq!(code(plan_activation(&c, &req("new"), now(), Transport::Online)), "ok");
    c.license.max_transfers = -1;
    c.license.transfer_count = 0;
    assert_eq!(
        code(plan_activation(&c, &req("new"), now(), Transport::Online)),
        "license_transferred_max_times"
    );
    c.license.max_transfers = 1;
    assert_eq!(code(plan_activation(&c, &req("new"), now(), Transport::Online)), "ok");
    c.license.transfer_count = 1;
    assert_eq!(
        code(plan_activation(&c, &req("new"), now(), Transport::Online)),
        "license_transferred_max_times"
    );
}

#[test]
fn unlimited_licenses_do_not_track_slots() {
    let mut c = ctx();
    c.license.allow_unlimited_activations = true;
    c.license.times_activated = 50;
    let plan = plan_activation(&c, &req("x"), now(), Transport::Online).unwrap();
    assert_eq!(plan.slot, Slot::Untracked);
    assert!(!plan.enforce_max_activations);
}

#[test]
fn exception_order_follows_the_spec() {
    let mut c = ctx();
    c.license.enabled = false;
    c.license.validity_period = Some(now().plus_days(-1));
    assert_eq!(
        code(plan_activation(&c, &req("h"), now(), Transport::Online)),
        "license_not_enabled"
    );
    c.license.enabled = true;
    assert_eq!(
        code(plan_activation(&c, &req("h"), now(), Transport::Online)),
        "license_expired"
    );
    c.license.validity_period = Some(now());
    assert_eq!(
        code(plan_activation(&c, &req("h"), now(), Transport::Online)),
        "license_expired",
        "validity is exclusive"
    );
    c.license.validity_period = None;
    c.license.times_activated = 2;
    c.device = Some(activate(&mut sim(ctx()), "h").device);
    assert_eq!(
        code(plan_activation(&c, &req("h"), now(), Transport::Online)),
        "license_device_exists",
        "409 before max"
    );
    c.device = None;
    assert_eq!(
        code(plan_activation(&c, &req("h"), now(), Transport::Online)),
        "license_activated_max_times"
    );
}

#[test]
fn vm_rule_inherits_from_product() {
    let mut c = ctx();
    let mut r = req("h");
    r.is_vm = true;
    assert_eq!(code(plan_activation(&c, &r, now(), Transport::Online)), "ok");
    c.product.prevent_vm = true;
    assert_eq!(
        code(plan_activation(&c, &r, now(), Transport::Online)),
        "vm_not_allowed"
    );
    c.license.terms.prevent_vm = Some(false);
    assert_eq!(
        code(plan_activation(&c, &r, now(), Transport::Online)),
        "ok",
        "the license overrides the product"
    );
}

#[test]
fn start_date_and_trial() {
    let mut c = ctx();
    c.license.terms.start_date = Some(now().plus_days(1));
    assert_eq!(
        code(plan_activation(&c, &req("h"), now(), Transport::Online)),
        "license_start_date_error"
    );
    c.license.terms.start_date = Some(now());
    c.license.terms.is_trial = true;
    c.product.trial_days = 30;
    let plan = plan_activation(&c, &req("h"), now(), Transport::Online).unwrap();
    assert_eq!(
        plan.set_validity,
        Some(now().plus_days(30)),
        "product trial days apply when the license has none"
    );
}

#[test]
fn seat_limit() {
    let mut c = ctx();
    c.seat = Some(Seat {
        user: Username::parse("a@b.c").unwrap(),
        max_activations: 1,
        allow_unlimited_activations: false,
        total_activations: 1,
    });
    assert_eq!(
        code(plan_activation(&c, &req("h"), now(), Transport::Online)),
        "license_user_activated_max_times"
    );
    c.seat.as_mut().unwrap().allow_unlimited_activations = true;
    let plan = plan_activation(&c, &req("h"), now(), Transport::Online).unwrap();
    assert_eq!(plan.seat, Some((Username::parse("a@b.c").unwrap(), false)));
}

#[test]
fn reactivation_keeps_identity_and_merges_variables() {
    let mut c = ctx();
    let mut r = req("h");
    r.variables = vec![("a".into(), "1".into())];
    let first = plan_activation(&c, &r, now(), Transport::Online).unwrap().device;
    let mut old = first.clone();
    old.active = false;
    c.device = Some(old);
    r.variables = vec![("a".into(), "2".into()), ("b".into(), "3".into())];
    let later = now().plus_days(1);
    let again = plan_activation(&c, &r, later, Transport::Online).unwrap().device;
    assert_eq!(again.id, first.id);
    assert_eq!(again.first_activated_at, now());
    assert_eq!(again.last_activated_at, later);
    let vars: Vec<_> = again
        .variables
        .iter()
        .map(|v| (v.variable.as_str(), v.value.as_str()))
        .collect();
    assert_eq!(vars, [("a", "2"), ("b", "3")]);
}

#[test]
fn deactivation_and_check_errors() {
    let mut c = ctx();
    let h = HardwareId::parse("h").unwrap();
    assert_eq!(
        plan_deactivation(&c, &h, now()).unwrap_err().code(),
        "license_not_active"
    );
    assert_eq!(check(&c, &h).unwrap_err().code(), "license_not_active");
    c.license.times_activated = 1;
    assert_eq!(plan_deactivation(&c, &h, now()).unwrap_err().code(), "device_not_found");
    c.device = Some(activate(&mut sim(ctx()), "h").device);
    assert!(plan_deactivation(&c, &h, now()).is_ok());
    assert!(check(&c, &h).is_ok());
    c.company.blacklist.insert(h.clone());
    assert_eq!(check(&c, &h).unwrap_err().code(), "blacklisted");
}

fn at(s: &str) -> Timestamp {
    Timestamp::parse_iso(s).unwrap()
}

#[test]
fn periods_start_on_the_calendar_or_at_the_license_start() {
    use ConsumptionPeriod::*;
    // 2026-06-01 is a Monday.
    for (period, start) in [
        (Daily, "2026-06-01T00:00:00Z"),
        (Weekly, "2026-06-01T00:00:00Z"),
        (Monthly, "2026-06-01T00:00:00Z"),
        (Annually, "2026-01-01T00:00:00Z"),
    ] {
        assert_eq!(period.start(None, now()), at(start), "{period:?}");
        assert_eq!(
            period.start(None, at(start)),
            at(start),
            "{period:?}: a period includes its start"
        );
    }
    let anchor = Some(at("2025-01-31T10:00:00Z"));
    for (period, start) in [
        (Daily, "2026-06-01T10:00:00Z"),
        (Weekly, "2026-05-29T10:00:00Z"),
        // On the anchor's day, clamped to the month's length (June has 30 days, May 31).
        (Monthly, "2026-05-31T10:00:00Z"),
        (Annually, "2026-01-31T10:00:00Z"),
    ] {
        let at_noon = now();
        let start = at(start);
        assert_eq!(period.start(anchor, at_noon), start, "{period:?}");
        assert!(start <= at_noon);
    }
    assert_eq!(
        Monthly.start(Some(at("2026-01-31T00:00:00Z")), at("2026-03-01T00:00:00Z")),
        at("2026-02-28T00:00:00Z")
    );
    assert_eq!(
        Monthly.start(anchor, at("2026-06-30T10:00:00Z")),
        at("2026-06-30T10:00:00Z")
    );
    assert_eq!(ConsumptionPeriod::of(true, Some("quarterly")), None);
    assert_eq!(ConsumptionPeriod::of(false, Some("monthly")), None);
}

/// A monthly consumption license with 10 consumptions a month, 2 of them counted by the catalog.
fn monthly() -> LicenseContext {
    let mut c = ctx();
    let terms = &mut c.license.terms;
    terms.license_type = LicenseType::Consumption;
    terms.max_consumptions = 10;
    terms.total_consumptions = 2;
    terms.reset_consumption = true;
    terms.consumption_period = Some("monthly".into());
    c
}

fn report(license: i64) -> Consumptions {
    Consumptions {
        license,
        features: vec![],
    }
}

#[test]
fn a_periodic_counter_starts_again_at_zero_in_a_new_period() {
    let mut c = monthly();
    // The first write since the period applies counts on from the catalog's total, and records the period.
    let charges = plan_consumptions(&c, &report(8), now()).unwrap();
    assert_eq!(
        (charges[0].period_start, charges[0].restart),
        (Some(at("2026-06-01T00:00:00Z")), None)
    );
    charged(&mut c.license, charges);
    assert_eq!(
        (c.license.total_consumptions(), c.license.consumptions_period),
        (10, Some(at("2026-06-01T00:00:00Z")))
    );
    // At the limit for the rest of June.
    let code = |r: Result<Vec<Charge>, ApiError>| r.err().map_or("ok", |e| e.code());
    assert_eq!(
        code(plan_consumptions(&c, &report(1), at("2026-06-30T23:59:59Z"))),
        "license_not_enough_consumptions"
    );
    // July: a new period at zero (the counter at minus the catalog's 2), up to the full 10 again.
    let july = at("2026-07-01T00:00:00Z");
    assert_eq!(
        code(plan_consumptions(&c, &report(11), july)),
        "license_not_enough_consumptions"
    );
    let charges = plan_consumptions(&c, &report(10), july).unwrap();
    assert_eq!((charges[0].period_start, charges[0].restart), (Some(july), Some(-2)));
    charged(&mut c.license, charges);
    assert_eq!((c.license.total_consumptions(), c.license.consumptions), (10, 8));
    // Without `reset_consumption` the total only grows.
    let mut c = monthly();
    c.license.terms.reset_consumption = false;
    let charges = plan_consumptions(&c, &report(8), now()).unwrap();
    charged(&mut c.license, charges);
    assert_eq!(
        code(plan_consumptions(&c, &report(1), july)),
        "license_not_enough_consumptions"
    );
}

#[test]
fn starting_a_period_is_one_write_of_many() {
    use crate::plan::WriteToken;
    use crate::store::write::{apply, Image, Refused};
    let mut c = monthly();
    c.device = Some(activate(&mut sim(c.clone()), "hw").device);
    c.license.times_activated = 1;
    c.license.consumptions = 8;
    c.license.consumptions_period = Some(at("2026-05-01T00:00:00Z"));
    let plan = |amount| {
        let mut p = plan_deactivation(&c, &HardwareId::parse("hw").unwrap(), now()).unwrap();
        p.charges = plan_consumptions(&c, &report(amount), now()).unwrap();
        p.write(&WriteToken::new())
    };
    // Two writers read May's counter; the first starts June, the second is refused and must re-read.
    let (first, second) = (plan(4), plan(5));
    let index = first
        .items
        .iter()
        .position(|i| matches!(i.item, crate::store::write::Item::License(_)))
        .unwrap();
    let mut license = Some(Image::License(Box::new(c.license.clone())));
    let mut images: Vec<Option<Image>> = first.items.iter().map(|_| None).collect();
    images[index] = license.take();
    images[index - 1] = Some(Image::Device(Box::new(c.device.clone().unwrap())));
    apply(&first, &mut images).unwrap();
    let Some(Image::License(after)) = images[index].clone() else {
        panic!("license")
    };
    assert_eq!(
        (after.total_consumptions(), after.consumptions_period),
        (4, Some(at("2026-06-01T00:00:00Z")))
    );
    let mut again: Vec<Option<Image>> = second.items.iter().map(|_| None).collect();
    again[index] = Some(Image::License(after));
    again[index - 1] = Some(Image::Device(Box::new(c.device.clone().unwrap())));
    assert_eq!(apply(&second, &mut again), Err(Refused::Condition { index }));
}

#[test]
fn amounts_and_totals_stay_within_2_pow_53() {
    let max = MAX_TOTAL_CONSUMPTIONS;
    let mut c = monthly();
    c.license.terms.reset_consumption = false;
    c.license.terms.allow_unlimited_consumptions = true;
    c.license.terms.allow_negative_consumptions = true;
    let code = |c: &LicenseContext, n: i64| plan_consumptions(c, &report(n), now()).err().map_or("ok", |e| e.code());
    for n in [max + 1, i64::MAX, -max - 1, i64::MIN] {
        assert_eq!(code(&c, n), "validation_error", "{n}");
    }
    // The catalog counts 2: up to max − 2 more, down to −max − 2.
    assert_eq!(code(&c, max - 1), "license_not_enough_consumptions");
    assert_eq!(code(&c, -max - 1 + 1), "ok");
    let charges = plan_consumptions(&c, &report(max - 2), now()).unwrap();
    assert_eq!(
        (charges[0].at_most, charges[0].at_least),
        (Some(0), None),
        "the bound is in the write"
    );
    let charges = plan_consumptions(&c, &report(-max), now()).unwrap();
    assert_eq!((charges[0].at_most, charges[0].at_least), (None, Some(-2)));
    // Two reports of one feature add up beyond the range.
    c.product.features = vec![crate::model::Feature {
        code: "f".into(),
        feature_type: FeatureType::Consumption,
        allow_unlimited_consumptions: true,
        ..Default::default()
    }];
    let twice = Consumptions {
        license: 0,
        features: vec![("f".into(), max), ("f".into(), 1)],
    };
    assert_eq!(
        plan_consumptions(&c, &twice, now()).err().map(|e| e.code()),
        Some("validation_error")
    );
}

#[test]
fn device_variables_are_bounded_in_total() {
    let mut c = ctx();
    let mut r = req("hw");
    let names = |from: usize, n: usize| {
        (from..from + n)
            .map(|i| (format!("v{i}"), "x".to_owned()))
            .collect::<Vec<_>>()
    };
    r.variables = names(0, 60);
    c.device = Some(plan_activation(&c, &r, now(), Transport::Online).unwrap().device);
    c.device.as_mut().unwrap().active = false;
    r.variables = names(60, 41);
    let err = plan_activation(&c, &r, now(), Transport::Online).unwrap_err();
    assert!(err.to_string().contains("101 variables"), "{err}");
    // Names the device holds already do not count again.
    r.variables = names(20, 80);
    assert_eq!(
        plan_activation(&c, &r, now(), Transport::Online)
            .unwrap()
            .device
            .variables
            .len(),
        100
    );
    r.variables = vec![("big".into(), "x".repeat(MAX_DEVICE_VARIABLE_BYTES))];
    assert_eq!(
        code(plan_activation(&c, &r, now(), Transport::Online)),
        "validation_error"
    );
}

#[test]
fn a_check_is_recorded_when_due_or_when_its_details_change() {
    use std::time::Duration;
    let hour = Duration::from_secs(3600);
    let mut c = ctx();
    c.device = Some(activate(&mut sim(c.clone()), "hw").device);
    let seen = c.device.as_ref().unwrap().last_seen_at.unwrap();
    let later = |minutes: i64| Timestamp::from_millis(seen.millis() + minutes * 60_000);
    assert!(
        plan_check(&c, &req("hw"), later(59), hour).is_none(),
        "within the interval"
    );
    let due = plan_check(&c, &req("hw"), later(60), hour).expect("the interval has passed");
    assert_eq!(due.due, CheckDue::Interval { seen: Some(seen) });
    assert_eq!(due.device_activations, 1);
    let mut changed = req("hw");
    changed.details.insert("os_ver".into(), "16".into());
    let plan = plan_check(&c, &changed, later(1), hour).expect("details changed");
    assert_eq!(plan.due, CheckDue::Details);
    // The details as stored are no change; interval 0 records every check.
    c.device.as_mut().unwrap().details = changed.details.clone();
    assert!(plan_check(&c, &changed, later(1), hour).is_none());
    assert!(plan_check(&c, &req("hw"), seen, Duration::ZERO).is_some());
    c.device.as_mut().unwrap().last_seen_at = None;
    let never = plan_check(&c, &req("hw"), later(0), hour).expect("never seen");
    assert_eq!(never.due, CheckDue::Interval { seen: None });
}

#[test]
fn of_two_checks_due_on_one_read_one_writes() {
    use crate::store::write::{apply, checks_write, Image, Refused};
    let mut c = ctx();
    c.device = Some(activate(&mut sim(c.clone()), "hw").device);
    let later = Timestamp::from_millis(now().millis() + 3_600_000);
    let hour = std::time::Duration::from_secs(3600);
    let (first, second) = (
        plan_check(&c, &req("hw"), later, hour).unwrap(),
        plan_check(&c, &req("hw"), later, hour).unwrap(),
    );
    let mut images = vec![Some(Image::Device(Box::new(c.device.clone().unwrap())))];
    apply(&checks_write(&[first]), &mut images).unwrap();
    let Some(Image::Device(recorded)) = images[0].clone() else {
        panic!("device")
    };
    assert_eq!(recorded.last_seen_at, Some(later));
    assert_eq!(
        apply(&checks_write(&[second]), &mut images),
        Err(Refused::Condition { index: 0 })
    );
    // Nor does a check decided on an earlier activation land on a deactivated device.
    let mut gone = recorded.clone();
    gone.active = false;
    let stale = plan_check(&c, &req("hw"), later, std::time::Duration::ZERO).unwrap();
    let mut images = vec![Some(Image::Device(gone))];
    assert_eq!(
        apply(&checks_write(&[stale]), &mut images),
        Err(Refused::Condition { index: 0 })
    );
}

/// An online addition (SPEC §9) against a monthly license with an active device: refused by the write
/// when the device changed since the read, or when concurrent additions left no room; the request's
/// overages only ever tighten the vendor's.
#[test]
fn an_online_addition_is_conditioned_on_the_device_and_the_bound() {
    use crate::store::write::{apply, Refused};
    let mut c = monthly();
    c.license.terms.reset_consumption = false;
    c.device = Some(activate(&mut sim(c.clone()), "hw").device);
    let hw = HardwareId::parse("hw").unwrap();
    let add =
        |c: &LicenseContext, amount, overages| plan_consumption(c, &hw, &Consume::License { amount, overages }, now());
    let apply_on = |plan: &ConsumptionPlan, device: &Device, license: &License| {
        let mut images = [
            Some(Image::Device(Box::new(device.clone()))),
            Some(Image::License(Box::new(license.clone()))),
        ];
        apply(&plan.write(), &mut images).map(|()| images)
    };
    let device = c.device.clone().unwrap();
    let plan = add(&c, 8, Overages::default()).unwrap();
    // Another addition of 1 committed since the read: 2 + 1 + 8 > 10.
    let mut raced = c.license.clone();
    raced.consumptions = 1;
    assert_eq!(
        apply_on(&plan, &device, &raced).err(),
        Some(Refused::Condition { index: 1 })
    );
    // The device was deactivated since the read.
    let gone = Device {
        active: false,
        ..device.clone()
    };
    assert_eq!(
        apply_on(&plan, &gone, &c.license).err(),
        Some(Refused::Condition { index: 0 })
    );
    assert!(apply_on(&plan, &device, &c.license).is_ok());
    // Overages: the vendor's 3 over 10; a request may lower them or turn them off, never raise them.
    c.license.terms.allow_overages = true;
    c.license.terms.max_overages = 3;
    let code = |r: Result<ConsumptionPlan, ApiError>| r.err().map_or("ok", |e| e.code());
    let asked = |allow, max| Overages { allow, max };
    assert_eq!(code(add(&c, 11, Overages::default())), "ok");
    assert_eq!(
        code(add(&c, 12, asked(None, Some(99)))),
        "license_not_enough_consumptions"
    );
    assert_eq!(
        code(add(&c, 10, asked(None, Some(1)))),
        "license_not_enough_consumptions"
    );
    assert_eq!(code(add(&c, 9, asked(Some(true), Some(1)))), "ok");
    assert_eq!(
        code(add(&c, 9, asked(Some(false), None))),
        "license_not_enough_consumptions"
    );
    assert_eq!(code(add(&c, 11, asked(Some(true), Some(-1)))), "ok");
    // Not a consumption license, even for 0; no active device.
    c.license.terms.license_type = LicenseType::Perpetual;
    assert_eq!(code(add(&c, 0, Overages::default())), "license_not_consumption");
    c.license.times_activated = 0;
    c.device = None;
    assert_eq!(code(add(&monthly(), 1, Overages::default())), "license_not_active");
}

#[test]
fn a_tracking_merges_into_the_active_devices_variables() {
    let mut c = ctx();
    let mut activation = req("d");
    activation.variables = vec![("seat".into(), "blue".into())];
    let plan = plan_activation(&c, &activation, now(), Transport::Online).unwrap();
    c.device = Some(plan.device.clone());
    c.license.times_activated = 1;
    let later = Timestamp::parse_iso("2026-06-02T12:00:00Z").unwrap();
    let sent = [
        ("seat".to_owned(), "red".to_owned()),
        ("build".to_owned(), "42".to_owned()),
    ];
    let plan = plan_tracking(&c, &HardwareId::parse("d").unwrap(), &sent, later).unwrap();
    let stored: Vec<(&str, &str, Timestamp)> = plan
        .variables
        .iter()
        .map(|v| (v.variable.as_str(), v.value.as_str(), v.created_at))
        .collect();
    assert_eq!(
        stored,
        [("seat", "red", now()), ("build", "42", later)],
        "a held name keeps its creation time"
    );
    assert_eq!(plan.device_activations, 1);
    // The request's device not found while another is active, or none active: refused as a check is.
    let mut other = c.clone();
    other.device = None;
    let refused = plan_tracking(&other, &HardwareId::parse("e").unwrap(), &sent, later);
    assert_eq!(refused.err().map(|e| e.code()), Some("device_not_found"));
    c.device.as_mut().unwrap().active = false;
    c.license.times_activated = 0;
    let inactive = plan_tracking(&c, &HardwareId::parse("d").unwrap(), &sent, later);
    assert_eq!(inactive.err().map(|e| e.code()), Some("license_not_active"));
}
