//! The rules without any store: each case builds a context and asserts the decision.

use super::*;
use crate::ids::Username;
use crate::ids::{CompanyId, LicenseKey, ProductCode};
use crate::model::Seat;
use crate::request::{Credentials, LicenseRequest};

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
    apply_activation(&mut s.c.license, &plan);
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
