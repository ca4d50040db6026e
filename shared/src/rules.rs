//! Business rules as pure functions (SPEC §3): given what was read and what was asked, decide the error
//! or the exact write to attempt. Nothing here does I/O, so every rule is unit-testable and the offline
//! and bundle endpoints reuse the same decisions with another transport.

use crate::error::ApiError;
use crate::ids::HardwareId;
use crate::model::{
    device_id, variables_size, Company, ConsumptionPeriod, Device, DeviceVariable, Feature, FeatureType, License,
    LicenseType, ProductDoc, Seat, MAX_DEVICE_VARIABLES, MAX_DEVICE_VARIABLE_BYTES,
};
use crate::plan::{
    ActivationPlan, Charge, CheckDue, CheckPlan, ConsumptionPlan, Counter, DeactivationPlan, LicenseAddr, Slot,
    VariablesPlan,
};
use crate::request::LicenseRequest;
use crate::time::Timestamp;

/// How an activation reached the server; offline activation is the same activation over a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Online,
    Offline,
}

/// What the rules look at for one license and one device.
#[derive(Clone, Debug)]
pub struct LicenseContext {
    pub product: ProductDoc,
    pub company: Company,
    pub license: License,
    /// The requesting user's seat on a user-based license.
    pub seat: Option<Seat>,
    pub device: Option<Device>,
    /// Whether this device's own released slot is waiting (it takes it back without a transfer).
    pub released_here: bool,
    /// A released slot of another device that an activation of this one would take (a transfer); looked
    /// up only when [`needs_transfer_source`] says so.
    pub transfer_source: Option<HardwareId>,
    /// Whether the seat the device's activation charged is known to be missing or at 0 (read after a
    /// write was refused by that seat): the stored counts are inconsistent, and a deactivation releases
    /// the slot without the seat rather than keep the device active for ever.
    pub charged_seat_gone: bool,
}

impl LicenseContext {
    pub fn new(product: ProductDoc, company: Company, license: License) -> Self {
        Self {
            product,
            company,
            license,
            seat: None,
            device: None,
            released_here: false,
            transfer_source: None,
            charged_seat_gone: false,
        }
    }
}

/// A product the request may use at all.
pub fn usable_product(product: Option<ProductDoc>) -> Result<ProductDoc, ApiError> {
    let product = product.ok_or(ApiError::UnknownProduct)?;
    if product.archived {
        return Err(ApiError::ArchivedProduct);
    }
    if product.disabled {
        return Err(ApiError::DisabledProduct);
    }
    Ok(product)
}

pub fn prevents_vm(license: &License, product: &ProductDoc) -> bool {
    license.terms.prevent_vm.unwrap_or(product.prevent_vm)
}

pub fn is_blacklisted(product: &ProductDoc, company: &Company, hardware_id: &HardwareId) -> bool {
    product.blacklist.contains(hardware_id) || company.blacklist.contains(hardware_id)
}

pub fn is_expired(license: &License, now: Timestamp) -> bool {
    license.validity_period.is_some_and(|v| v <= now)
}

fn trial_days(license: &License, product: &ProductDoc) -> i64 {
    if license.terms.trial_days > 0 {
        license.terms.trial_days
    } else {
        product.trial_days
    }
}

/// Decides an activation (SPEC §2.2 order, then §3).
pub fn plan_activation(
    ctx: &LicenseContext,
    req: &LicenseRequest,
    now: Timestamp,
    transport: Transport,
) -> Result<ActivationPlan, ApiError> {
    let (license, product) = (&ctx.license, &ctx.product);
    if !license.enabled {
        return Err(ApiError::LicenseNotEnabled);
    }
    if req.is_vm && prevents_vm(license, product) {
        return Err(ApiError::VmNotAllowed);
    }
    if transport == Transport::Offline && license.terms.is_floating_cloud {
        return Err(ApiError::OfflineFloatingCloudNotSupported);
    }
    if transport == Transport::Offline && !license.terms.allow_offline_activation {
        return Err(ApiError::OfflineActivationNotAllowed);
    }
    if let Some(start) = license.terms.start_date.filter(|s| *s > now) {
        return Err(ApiError::LicenseStartDate(start));
    }
    if is_blacklisted(product, &ctx.company, &req.hardware_id) {
        return Err(ApiError::Blacklisted);
    }
    if is_expired(license, now) {
        return Err(if license.terms.is_trial {
            ApiError::TrialExpired
        } else {
            ApiError::LicenseExpired
        });
    }
    if ctx.device.as_ref().is_some_and(|d| d.active) {
        return Err(ApiError::LicenseDeviceExists);
    }
    let enforce_max_activations = !license.allow_unlimited_activations;
    if enforce_max_activations && license.times_activated >= license.max_activations {
        return Err(ApiError::LicenseActivatedMaxTimes);
    }
    if let Some(seat) = &ctx.seat {
        if !seat.allow_unlimited_activations && seat.total_activations >= seat.max_activations {
            return Err(ApiError::LicenseUserActivatedMaxTimes);
        }
    }
    let slot = choose_slot(ctx)?;
    let set_validity = (license.terms.is_trial && license.validity_period.is_none())
        .then(|| now.plus_days(trial_days(license, product)));
    Ok(ActivationPlan {
        addr: LicenseAddr::of(license),
        license_id: license.id,
        replaces: ctx.device.as_ref().map(|d| d.activations),
        device: activated_device(ctx, req, now)?,
        slot,
        enforce_max_activations,
        set_validity,
        seat: ctx
            .seat
            .as_ref()
            .map(|s| (s.user.clone(), !s.allow_unlimited_activations)),
        once: None,
    })
}

/// Whether an activation must first find which released slot it would take: the license tracks
/// transfers, another device's slot is waiting and this device has none of its own.
pub fn needs_transfer_source(ctx: &LicenseContext) -> bool {
    ctx.license.tracks_transfers()
        && !ctx.released_here
        && ctx.license.released_count > 0
        && ctx.transfer_source.is_none()
}

/// Transfers (SPEC §3): a released slot is re-used by its own device for free; any other device taking
/// one is a transfer; a never-used slot is only taken when no released slot waits.
fn choose_slot(ctx: &LicenseContext) -> Result<Slot, ApiError> {
    let license = &ctx.license;
    if !license.tracks_transfers() {
        return Ok(Slot::Untracked);
    }
    if ctx.released_here {
        return Ok(Slot::Reuse);
    }
    if license.released_count <= 0 {
        return Ok(Slot::Fresh);
    }
    let limit_reached = match license.max_transfers {
        0 => false,
        n if n < 0 => true,
        n => license.transfer_count >= n,
    };
    if limit_reached {
        return Err(ApiError::LicenseTransferredMaxTimes);
    }
    // No marker found although the count says one waits: planning a fresh slot fails its condition
    // on the count, and the caller re-reads.
    Ok(match &ctx.transfer_source {
        Some(released_by) => Slot::Transfer {
            released_by: released_by.clone(),
        },
        None => Slot::Fresh,
    })
}

/// The device's variables after an activation or a tracking request: the request's merged into the
/// stored ones (a name already held takes the new value), bounded in total per device. The device
/// write is conditioned on the version read, so the bound holds for the set actually stored.
fn merged_variables(
    previous: Option<&Device>,
    sent: &[(String, String)],
    now: Timestamp,
) -> Result<Vec<DeviceVariable>, ApiError> {
    let mut variables = previous.map(|d| d.variables.clone()).unwrap_or_default();
    for (name, value) in sent {
        match variables.iter_mut().find(|v| &v.variable == name) {
            Some(existing) => existing.value = value.clone(),
            None => variables.push(DeviceVariable {
                variable: name.clone(),
                value: value.clone(),
                created_at: now,
            }),
        }
    }
    if variables.len() > MAX_DEVICE_VARIABLES {
        return Err(ApiError::Validation(format!(
            "the device would hold {} variables; a device holds at most {MAX_DEVICE_VARIABLES} (send only names it already holds, or fewer new ones)",
            variables.len()
        )));
    }
    let size = variables_size(&variables);
    if size > MAX_DEVICE_VARIABLE_BYTES {
        return Err(ApiError::Validation(format!(
            "the device's variables would take {size} bytes; a device holds at most {MAX_DEVICE_VARIABLE_BYTES} bytes of variables (names, values and dates as stored): send shorter or fewer variables"
        )));
    }
    Ok(variables)
}

fn activated_device(ctx: &LicenseContext, req: &LicenseRequest, now: Timestamp) -> Result<Device, ApiError> {
    let previous = ctx.device.as_ref();
    let mut details = previous.map(|d| d.details.clone()).unwrap_or_default();
    details.extend(req.details.clone());
    let variables = merged_variables(previous, &req.variables, now)?;
    Ok(Device {
        id: previous.map_or_else(|| device_id(ctx.license.id, &req.hardware_id), |d| d.id),
        hardware_id: req.hardware_id.clone(),
        active: true,
        user: ctx.seat.as_ref().map(|s| s.user.clone()),
        first_activated_at: previous.map_or(now, |d| d.first_activated_at),
        last_activated_at: now,
        deactivated_at: None,
        last_seen_at: Some(now),
        details,
        variables,
        activations: previous.map_or(1, |d| d.activations + 1),
        write_token: None,
    })
}

/// Decides a tracking of device variables (SPEC §9 `track_device_variables`): the gates of a check, then
/// the variables sent merged into the active device's, within the per-device bound. The write is
/// conditioned on the device's last write as read, so concurrent trackings of one device each merge
/// into what the other stored.
pub fn plan_tracking(
    ctx: &LicenseContext,
    hardware_id: &HardwareId,
    sent: &[(String, String)],
    now: Timestamp,
) -> Result<VariablesPlan, ApiError> {
    check(ctx, hardware_id)?;
    let device = ctx
        .device
        .as_ref()
        .ok_or_else(|| ApiError::internal("a checked device is missing"))?;
    Ok(VariablesPlan {
        addr: LicenseAddr::of(&ctx.license),
        hardware_id: hardware_id.clone(),
        device_activations: device.activations,
        last_write: device.write_token.clone(),
        variables: merged_variables(Some(device), sent, now)?,
    })
}

/// Decides a deactivation (SPEC §2.3): the device must be active on the license.
pub fn plan_deactivation(
    ctx: &LicenseContext,
    hardware_id: &HardwareId,
    now: Timestamp,
) -> Result<DeactivationPlan, ApiError> {
    let device = ctx.device.as_ref().filter(|d| d.active);
    let Some(device) = device else {
        return Err(inactive_device_error(&ctx.license));
    };
    Ok(DeactivationPlan {
        addr: LicenseAddr::of(&ctx.license),
        license_id: ctx.license.id,
        hardware_id: hardware_id.clone(),
        device_activations: device.activations,
        release_slot: ctx.license.tracks_transfers(),
        seat: device.user.clone().filter(|_| !ctx.charged_seat_gone),
        at: now,
        charges: Vec::new(),
        once: None,
    })
}

/// Consumptions a request reports: on the license, and per consumption feature (by code).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Consumptions {
    pub license: i64,
    pub features: Vec<(String, i64)>,
}

/// The largest total a consumption counter may reach either way: every JSON client reads integers
/// exactly only up to 2^53 − 1, and `license_signature` checks compare the totals they read.
pub const MAX_TOTAL_CONSUMPTIONS: i64 = crate::catalog::MAX_SAFE_INTEGER;

/// The terms one consumption counter is limited by (SPEC §9 "Consumption rules").
struct Allowance {
    max: i64,
    unlimited: bool,
    allow_overages: bool,
    max_overages: i64,
    allow_negative: bool,
    period: Option<ConsumptionPeriod>,
    what: &'static str,
}

/// One counter as read: its value, the period it counts (periodic counters), the catalog's starting
/// total it adds to.
struct Recorded {
    counter: Counter,
    /// `None`: never written (features); the license's own counter reads 0 when never written.
    value: Option<i64>,
    period: Option<Timestamp>,
    base: i64,
}

/// Decides one counter's charge: negative amounts only where allowed; the total must stay within `max`
/// (+ `max_overages` when overages are allowed) unless consumptions are unlimited, and always within
/// ±[`MAX_TOTAL_CONSUMPTIONS`]. A periodic counter whose period has rolled over starts again at zero.
fn charge(
    c: Recorded,
    amount: i64,
    terms: &Allowance,
    anchor: Option<Timestamp>,
    now: Timestamp,
) -> Result<Charge, ApiError> {
    if amount < 0 && !terms.allow_negative {
        return Err(ApiError::NegativeConsumptionsNotAllowed(terms.what));
    }
    let value = c.value.unwrap_or(0);
    let (period_start, restart) = match terms.period.map(|p| p.start(anchor, now)) {
        None => (None, None),
        Some(current) => match c.period {
            Some(stored) if stored >= current => (None, None),
            // A new period: the total starts at zero, so the counter at minus the catalog's total.
            Some(_) => (Some(current), Some(c.base.saturating_neg())),
            // The first write since the period applies: what was counted so far is this period's.
            None => (Some(current), None),
        },
    };
    let (at_most, at_least) = bounds(restart.unwrap_or(value), amount, c.base, terms)?;
    Ok(Charge {
        stored: match c.counter {
            Counter::Consumptions => None,
            Counter::Feature(_) => Some(c.value.is_some()),
        },
        counter: c.counter,
        amount,
        at_most,
        at_least,
        period_start,
        period_read: c.period,
        restart,
    })
}

/// The bounds the counter must meet before adding `amount` (see [`Charge`]), refused when `value`
/// does not: above the vendor's limit is `license_not_enough_consumptions`, and so is a total that
/// would leave ±(2^53 − 1) (the license has no room for the amount).
fn bounds(value: i64, amount: i64, base: i64, terms: &Allowance) -> Result<(Option<i64>, Option<i64>), ApiError> {
    let (value, amount, base) = (i128::from(value), i128::from(amount), i128::from(base));
    let range = i128::from(MAX_TOTAL_CONSUMPTIONS);
    let narrow = |b: i128| i64::try_from(b).unwrap_or(if b < 0 { i64::MIN } else { i64::MAX });
    if amount > 0 {
        let in_range = range - base - amount;
        let mut bound = in_range;
        if !terms.unlimited {
            let overages = if terms.allow_overages {
                terms.max_overages.max(0)
            } else {
                0
            };
            let limit = i128::from(terms.max) + i128::from(overages);
            bound = bound.min(limit - base - amount);
            if value > bound && bound < in_range {
                return Err(ApiError::LicenseNotEnoughConsumptions);
            }
        }
        if value > bound {
            return Err(ApiError::ConsumptionTotalOutOfRange(terms.what));
        }
        Ok((Some(narrow(bound)), None))
    } else if amount < 0 {
        let bound = -range - base - amount;
        if value < bound {
            return Err(ApiError::ConsumptionTotalOutOfRange(terms.what));
        }
        Ok((None, Some(narrow(bound))))
    } else {
        Ok((None, None))
    }
}

/// An amount a request reports, within ±[`MAX_TOTAL_CONSUMPTIONS`] (`validation_error` otherwise).
fn reported_amount(what: &str, amount: i64) -> Result<i64, ApiError> {
    if amount.unsigned_abs() > MAX_TOTAL_CONSUMPTIONS.unsigned_abs() {
        return Err(ApiError::Validation(format!(
            "{what} must be between -{MAX_TOTAL_CONSUMPTIONS} and {MAX_TOTAL_CONSUMPTIONS}"
        )));
    }
    Ok(amount)
}

/// The amounts reported per feature, one feature listed twice added up, each within the range.
fn feature_totals(reported: &Consumptions) -> Result<Vec<(&str, i64)>, ApiError> {
    let what = "each feature's `consumptions` (added up per feature)";
    let mut totals: Vec<(&str, i64)> = Vec::new();
    for (code, amount) in &reported.features {
        match totals.iter_mut().find(|(c, _)| c == code) {
            Some((_, sum)) => *sum = reported_amount(what, sum.saturating_add(*amount))?,
            None => totals.push((code, reported_amount(what, *amount)?)),
        }
    }
    Ok(totals)
}

/// What a client may ask of the vendor's overage terms with an `add_consumption` (SPEC §9
/// `allow_overages?`, `max_overages?`): only to tighten them, for that request. `allow: false` turns
/// overages off, `max: n ≥ 0` lowers the most overages allowed to `n`; a request can never allow
/// overages the vendor did not, nor more of them (docs/catalog.md, "Consumptions and features").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Overages {
    pub allow: Option<bool>,
    pub max: Option<i64>,
}

impl Allowance {
    fn tightened(mut self, asked: Overages) -> Self {
        if asked.allow == Some(false) {
            self.allow_overages = false;
        }
        // A negative `max_overages` is what some clients send for "no request" (-1).
        if let Some(max) = asked.max.filter(|m| *m >= 0) {
            self.max_overages = self.max_overages.min(max);
        }
        self
    }
}

/// The license's own counter charged with `amount` (reported within range by the caller); `None` for
/// an amount of 0. The license must be a consumption license.
fn license_charge(
    ctx: &LicenseContext,
    amount: i64,
    asked: Overages,
    now: Timestamp,
) -> Result<Option<Charge>, ApiError> {
    let (license, terms) = (&ctx.license, &ctx.license.terms);
    if terms.license_type != LicenseType::Consumption {
        return Err(ApiError::LicenseNotConsumption);
    }
    if amount == 0 {
        return Ok(None);
    }
    let allowance = Allowance {
        max: terms.max_consumptions,
        unlimited: terms.allow_unlimited_consumptions,
        allow_overages: terms.allow_overages,
        max_overages: terms.max_overages,
        allow_negative: terms.allow_negative_consumptions,
        period: ConsumptionPeriod::of(terms.reset_consumption, terms.consumption_period.as_deref()),
        what: "license",
    }
    .tightened(asked);
    let recorded = Recorded {
        counter: Counter::Consumptions,
        value: Some(license.consumptions),
        period: license.consumptions_period,
        base: terms.total_consumptions,
    };
    charge(recorded, amount, &allowance, terms.start_date, now).map(Some)
}

/// The product's consumption feature `code`, else `invalid_license_feature_code`.
pub fn consumption_feature<'a>(ctx: &'a LicenseContext, code: &str) -> Result<&'a Feature, ApiError> {
    ctx.product
        .features
        .iter()
        .find(|f| f.code == code && f.feature_type == FeatureType::Consumption)
        .ok_or_else(|| ApiError::InvalidLicenseFeatureCode(code.to_owned(), "consumption "))
}

/// A feature's counter on the license charged with `amount`; `None` for an amount of 0.
fn feature_charge(
    ctx: &LicenseContext,
    feature: &Feature,
    amount: i64,
    now: Timestamp,
) -> Result<Option<Charge>, ApiError> {
    if amount == 0 {
        return Ok(None);
    }
    let license = &ctx.license;
    let allowance = Allowance {
        max: feature.max_consumption,
        unlimited: feature.allow_unlimited_consumptions,
        allow_overages: feature.allow_overages,
        max_overages: feature.max_overages,
        allow_negative: feature.allow_negative_consumptions,
        period: ConsumptionPeriod::of(feature.reset_consumption, feature.consumption_period.as_deref()),
        what: "feature",
    };
    let recorded = Recorded {
        counter: Counter::Feature(feature.code.clone()),
        value: license.feature_consumptions.get(&feature.code).copied(),
        period: license.feature_periods.get(&feature.code).copied(),
        base: feature.total_consumptions,
    };
    charge(recorded, amount, &allowance, license.terms.start_date, now).map(Some)
}

/// Decides the consumptions a request reports (offline deactivation, SPEC §6.2) at `now`: the license's
/// must be a consumption license's, each feature must be one of the product's consumption features.
/// Amounts of one feature listed twice are added up; zero amounts change nothing.
pub fn plan_consumptions(
    ctx: &LicenseContext,
    reported: &Consumptions,
    now: Timestamp,
) -> Result<Vec<Charge>, ApiError> {
    let amount = reported_amount("`consumptions`", reported.license)?;
    let totals = feature_totals(reported)?;
    let mut charges = Vec::new();
    if amount != 0 {
        charges.extend(license_charge(ctx, amount, Overages::default(), now)?);
    }
    for (code, amount) in totals {
        let feature = consumption_feature(ctx, code)?;
        charges.extend(feature_charge(ctx, feature, amount, now)?);
    }
    Ok(charges)
}

/// What an online consumption request adds (SPEC §9).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Consume {
    /// `add_consumption`: to the license's counter, within the vendor's overages as the request
    /// tightened them.
    License { amount: i64, overages: Overages },
    /// `add_feature_consumption`: to the counter of the consumption feature with this code.
    Feature { code: String, amount: i64 },
}

/// Decides an `add_consumption` or `add_feature_consumption` (SPEC §9): the gates of a check (the
/// device must be active), then the charge, every rule of which the write's conditions carry.
pub fn plan_consumption(
    ctx: &LicenseContext,
    hardware_id: &HardwareId,
    consume: &Consume,
    now: Timestamp,
) -> Result<ConsumptionPlan, ApiError> {
    check(ctx, hardware_id)?;
    let device = ctx.device.clone().ok_or_else(|| inactive_device_error(&ctx.license))?;
    let charge = match consume {
        Consume::License { amount, overages } => {
            license_charge(ctx, reported_amount("`consumptions`", *amount)?, *overages, now)?
        }
        Consume::Feature { code, amount } => {
            let feature = consumption_feature(ctx, code)?;
            usable_feature(feature, now)?;
            feature_charge(ctx, feature, reported_amount("`consumptions`", *amount)?, now)?
        }
    };
    Ok(ConsumptionPlan {
        addr: LicenseAddr::of(&ctx.license),
        license_id: ctx.license.id,
        device,
        charges: charge.into_iter().collect(),
    })
}

/// A feature whose `expiry_date` has passed answers `license_feature_expired` (SPEC §9 **Decision**).
pub fn usable_feature(feature: &Feature, now: Timestamp) -> Result<(), ApiError> {
    if feature.expiry_date.is_some_and(|d| d <= now) {
        return Err(ApiError::LicenseFeatureExpired(feature.code.clone()));
    }
    Ok(())
}

/// `license_not_active` when nothing is active on the license, else `device_not_found`.
pub fn inactive_device_error(license: &License) -> ApiError {
    if license.times_activated <= 0 {
        ApiError::LicenseNotActive
    } else {
        ApiError::DeviceNotFound
    }
}

/// Whether an accepted check is recorded, and why (SPEC §3: a check records the device's last-seen
/// time and the hardware details sent). It is due when the details sent differ from the stored ones, or
/// when `interval` has passed since the device was last seen; otherwise it writes nothing, so a device
/// that checks often costs one write per interval. `None` also when the context holds no device (the
/// rules refuse such a check first).
pub fn plan_check(
    ctx: &LicenseContext,
    req: &LicenseRequest,
    now: Timestamp,
    interval: std::time::Duration,
) -> Option<CheckPlan> {
    let device = ctx.device.as_ref()?;
    let changed = req.details.iter().any(|(k, v)| device.details.get(k) != Some(v));
    let due = if changed {
        CheckDue::Details
    } else {
        let interval = i64::try_from(interval.as_millis()).unwrap_or(i64::MAX);
        let elapsed = |seen: Timestamp| now.millis().saturating_sub(seen.millis()) >= interval;
        if !device.last_seen_at.is_none_or(elapsed) {
            return None;
        }
        CheckDue::Interval {
            seen: device.last_seen_at,
        }
    };
    Some(CheckPlan {
        addr: LicenseAddr::of(&ctx.license),
        hardware_id: req.hardware_id.clone(),
        device_activations: device.activations,
        due,
        details: req.details.clone(),
        at: now,
    })
}

/// Decides a check (SPEC §3 "Check") on what the request read.
pub fn check(ctx: &LicenseContext, hardware_id: &HardwareId) -> Result<(), ApiError> {
    if !ctx.license.enabled {
        return Err(ApiError::LicenseNotEnabled);
    }
    if is_blacklisted(&ctx.product, &ctx.company, hardware_id) {
        return Err(ApiError::Blacklisted);
    }
    if !ctx.device.as_ref().is_some_and(|d| d.active) {
        return Err(inactive_device_error(&ctx.license));
    }
    Ok(())
}

pub mod floating;
pub mod trial;

#[cfg(test)]
mod tests;
