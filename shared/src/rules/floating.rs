//! Floating cloud slots (SPEC §9, docs/data-model.md *Floating cloud*): who holds one of a license's
//! `floating_users` slots at a given instant, and the change a check, release or borrow makes. Pure:
//! the instant is the caller's `now`, so expiry is decided from the stored times, and tests move the
//! clock instead of sleeping.

use crate::error::ApiError;
use crate::ids::HardwareId;
use crate::model::License;
use crate::plan::{FloatingPlan, LicenseAddr};
use crate::time::Timestamp;
use std::collections::BTreeMap;

const MS_PER_MINUTE: i64 = 60_000;
const MS_PER_HOUR: i64 = 60 * MS_PER_MINUTE;

/// What a request does to the caller's slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlotChange {
    /// A check: take a free slot or refresh the held one for `floating_timeout` minutes (never
    /// shortening a longer hold, such as a borrow).
    Hold,
    /// Release the caller's slot, if it holds one (a borrow ends too).
    Release,
    /// `floating/borrow`: hold the slot (taking one if needed) until the given instant.
    Borrow(Timestamp),
}

/// The holders whose slot is still held at `now` (held until a later instant).
pub fn live(license: &License, now: Timestamp) -> BTreeMap<String, i64> {
    unexpired(&license.floating, now)
}

/// Until when `hardware_id` has borrowed its slot, if its borrow lasts beyond `now`.
pub fn borrowed_until(license: &License, hardware_id: &str, now: Timestamp) -> Option<Timestamp> {
    let until = *license.floating_borrowed.get(hardware_id)?;
    (until > now.millis()).then_some(Timestamp::from_millis(until))
}

fn unexpired(map: &BTreeMap<String, i64>, now: Timestamp) -> BTreeMap<String, i64> {
    let mut live = map.clone();
    live.retain(|_, until| *until > now.millis());
    live
}

/// How many devices hold a slot at `now` (`floating_in_use_devices`).
pub fn in_use(license: &License, now: Timestamp) -> usize {
    license.floating.values().filter(|until| **until > now.millis()).count()
}

/// The write a floating cloud license needs for `change` by `hardware_id` at `now`; `None` for a
/// license that is not floating cloud. No free slot to take → `floating_not_available`.
pub fn plan(
    license: &License,
    hardware_id: &HardwareId,
    now: Timestamp,
    change: SlotChange,
) -> Result<Option<FloatingPlan>, ApiError> {
    if !license.terms.is_floating_cloud {
        return Ok(None);
    }
    let mut holders = live(license, now);
    let mut borrowed = unexpired(&license.floating_borrowed, now);
    let hw = hardware_id.as_str();
    let until = match change {
        SlotChange::Release => {
            holders.remove(hw);
            borrowed.remove(hw);
            None
        }
        SlotChange::Hold => Some(now.millis().saturating_add(timeout_ms(license))),
        SlotChange::Borrow(until) => {
            ensure_borrowable(license, until, now)?;
            borrowed.insert(hw.to_owned(), until.millis());
            Some(until.millis())
        }
    };
    if let Some(until) = until {
        let held = holders.get(hw).copied();
        if held.is_none() && holders.len() as i64 >= license.terms.floating_users {
            return Err(ApiError::FloatingNotAvailable);
        }
        holders.insert(hw.to_owned(), held.map_or(until, |h| h.max(until)));
    }
    Ok(Some(FloatingPlan {
        addr: LicenseAddr::of(license),
        license_id: license.id,
        version: license.floating_version,
        holders,
        borrowed,
    }))
}

/// SPEC §9 decision: a borrow needs `can_borrow` and an end after `now` within `max_borrow_time` hours.
fn ensure_borrowable(license: &License, until: Timestamp, now: Timestamp) -> Result<(), ApiError> {
    let longest = now
        .millis()
        .saturating_add(license.terms.max_borrow_time.saturating_mul(MS_PER_HOUR));
    if !license.terms.can_borrow || until <= now || until.millis() > longest {
        return Err(ApiError::LicenseNotBorrowable(until));
    }
    Ok(())
}

/// How long a check holds a slot: the license's `floating_timeout` minutes.
fn timeout_ms(license: &License) -> i64 {
    license.terms.floating_timeout.saturating_mul(MS_PER_MINUTE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{CompanyId, ProductCode};

    fn license(slots: i64) -> License {
        let mut l = License::new(
            1,
            CompanyId::parse("c").unwrap(),
            ProductCode::parse("p").unwrap(),
            None,
        );
        l.terms.is_floating_cloud = true;
        l.terms.floating_users = slots;
        l.terms.floating_timeout = 10;
        l
    }

    fn hw(s: &str) -> HardwareId {
        HardwareId::parse(s).unwrap()
    }

    /// Applies a plan as the store would: the new holders, the next version.
    fn apply(l: &mut License, p: FloatingPlan) {
        assert_eq!(p.version, l.floating_version);
        p.applied_to(l);
    }

    #[test]
    fn not_floating_cloud_plans_nothing() {
        let mut l = license(1);
        l.terms.is_floating_cloud = false;
        assert!(plan(&l, &hw("a"), Timestamp::from_millis(0), SlotChange::Hold)
            .unwrap()
            .is_none());
    }

    #[test]
    fn slots_run_out_then_expire_and_are_reclaimed() {
        let mut l = license(2);
        let t0 = Timestamp::from_millis(1_000_000);
        for d in ["a", "b"] {
            let p = plan(&l, &hw(d), t0, SlotChange::Hold).unwrap().unwrap();
            apply(&mut l, p);
        }
        assert_eq!(in_use(&l, t0), 2);
        let err = plan(&l, &hw("c"), t0, SlotChange::Hold).unwrap_err();
        assert_eq!(err.code(), "floating_not_available");
        // One minute before the timeout, "a" refreshes; at the timeout "b" has expired and "c" takes it.
        let t9 = Timestamp::from_millis(t0.millis() + 9 * MS_PER_MINUTE);
        let p = plan(&l, &hw("a"), t9, SlotChange::Hold).unwrap().unwrap();
        apply(&mut l, p);
        let t10 = Timestamp::from_millis(t0.millis() + 10 * MS_PER_MINUTE);
        assert_eq!(in_use(&l, t10), 1);
        let p = plan(&l, &hw("c"), t10, SlotChange::Hold).unwrap().unwrap();
        apply(&mut l, p);
        assert_eq!(
            l.floating.keys().collect::<Vec<_>>(),
            ["a", "c"],
            "the expired holder is pruned"
        );
        assert_eq!(l.floating["a"], t9.millis() + 10 * MS_PER_MINUTE);
    }

    #[test]
    fn release_frees_the_slot_and_a_refresh_never_shortens_a_hold() {
        let mut l = license(1);
        let t0 = Timestamp::from_millis(0);
        l.floating.insert("a".into(), 5 * 60 * MS_PER_MINUTE);
        let p = plan(&l, &hw("a"), t0, SlotChange::Hold).unwrap().unwrap();
        apply(&mut l, p);
        assert_eq!(
            l.floating["a"],
            5 * 60 * MS_PER_MINUTE,
            "a borrow outlasts a check's refresh"
        );
        let p = plan(&l, &hw("a"), t0, SlotChange::Release).unwrap().unwrap();
        apply(&mut l, p);
        assert_eq!(in_use(&l, t0), 0);
        assert!(plan(&l, &hw("b"), t0, SlotChange::Hold).is_ok());
    }

    #[test]
    fn a_borrow_is_within_max_borrow_time_and_outlasts_checks_until_it_ends() {
        let mut l = license(1);
        let t0 = Timestamp::from_millis(0);
        let at = |h: i64| Timestamp::from_millis(h * MS_PER_HOUR);
        let borrow = |l: &License, until| plan(l, &hw("a"), t0, SlotChange::Borrow(until));
        assert_eq!(
            borrow(&l, at(1)).unwrap_err().code(),
            "license_not_borrowable",
            "no can_borrow"
        );
        l.terms.can_borrow = true;
        l.terms.max_borrow_time = 24;
        assert_eq!(
            borrow(&l, at(25)).unwrap_err().code(),
            "license_not_borrowable",
            "beyond max_borrow_time"
        );
        assert_eq!(
            borrow(&l, t0).unwrap_err().code(),
            "license_not_borrowable",
            "not after now"
        );
        let p = borrow(&l, at(24)).unwrap().unwrap();
        apply(&mut l, p);
        assert_eq!(borrowed_until(&l, "a", t0), Some(at(24)));
        let p = plan(&l, &hw("a"), at(1), SlotChange::Hold).unwrap().unwrap();
        apply(&mut l, p);
        assert_eq!(l.floating["a"], at(24).millis(), "a check keeps the borrow");
        assert_eq!(
            plan(&l, &hw("b"), at(23), SlotChange::Hold).unwrap_err().code(),
            "floating_not_available"
        );
        assert!(
            plan(&l, &hw("b"), at(24), SlotChange::Hold).is_ok(),
            "free once the borrow ends"
        );
        assert_eq!(borrowed_until(&l, "a", at(24)), None);
    }
}
