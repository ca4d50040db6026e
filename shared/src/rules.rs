//! Business rules as pure functions (SPEC §3): given what was read and what was asked, decide the error
//! or the exact write to attempt. Nothing here does I/O, so every rule is unit-testable and the offline
//! and bundle endpoints reuse the same decisions with another transport.

use crate::error::ApiError;
use crate::ids::HardwareId;
use crate::model::{device_id, Company, Device, DeviceVariable, FeatureType, License, LicenseType, ProductDoc, Seat};
use crate::request::LicenseRequest;
use crate::store::write::Counter;
use crate::store::{ActivationPlan, Charge, CheckPlan, DeactivationPlan, LicenseAddr, Slot};
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
        device: activated_device(ctx, req, now),
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

fn activated_device(ctx: &LicenseContext, req: &LicenseRequest, now: Timestamp) -> Device {
    let previous = ctx.device.as_ref();
    let mut details = previous.map(|d| d.details.clone()).unwrap_or_default();
    details.extend(req.details.clone());
    let mut variables = previous.map(|d| d.variables.clone()).unwrap_or_default();
    for (name, value) in &req.variables {
        match variables.iter_mut().find(|v| &v.variable == name) {
            Some(existing) => existing.value = value.clone(),
            None => variables.push(DeviceVariable {
                variable: name.clone(),
                value: value.clone(),
                created_at: now,
            }),
        }
    }
    Device {
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
    }
}

/// The license as it stands after `plan` was applied, for the response.
pub fn apply_activation(license: &mut License, plan: &ActivationPlan) {
    license.times_activated += 1;
    match &plan.slot {
        Slot::Reuse => license.released_count -= 1,
        Slot::Transfer { .. } => {
            license.released_count -= 1;
            license.transfer_count += 1;
        }
        Slot::Fresh | Slot::Untracked => {}
    }
    if let Some(v) = plan.set_validity {
        license.validity_period = Some(v);
    }
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
        seat: device.user.clone(),
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

/// The terms one consumption counter is limited by (SPEC §9 "Consumption rules").
struct Allowance {
    max: i64,
    unlimited: bool,
    allow_overages: bool,
    max_overages: i64,
    allow_negative: bool,
}

/// Decides one counter's charge: negative amounts only where allowed; a positive one must keep the
/// total within `max` (+ `max_overages` when overages are allowed) unless consumptions are unlimited.
/// `base` is the catalog's starting total the counter adds to.
fn charge(
    counter: Counter,
    amount: i64,
    recorded: i64,
    base: i64,
    terms: &Allowance,
    what: &'static str,
) -> Result<Charge, ApiError> {
    if amount < 0 && !terms.allow_negative {
        return Err(ApiError::NegativeConsumptionsNotAllowed(what));
    }
    let at_most = if terms.unlimited || amount <= 0 {
        None
    } else {
        let overages = if terms.allow_overages {
            terms.max_overages.max(0)
        } else {
            0
        };
        let limit = terms.max.saturating_add(overages);
        // The counter after the write must satisfy base + counter <= limit.
        let bound = limit.saturating_sub(base).saturating_sub(amount);
        if recorded > bound {
            return Err(ApiError::LicenseNotEnoughConsumptions);
        }
        Some(bound)
    };
    Ok(Charge {
        counter,
        amount,
        at_most,
    })
}

/// Decides the consumptions a request reports (offline deactivation, SPEC §6.2): the license's must be
/// a consumption license's, each feature must be one of the product's consumption features. Amounts
/// of one feature listed twice are added up; zero amounts change nothing.
pub fn plan_consumptions(ctx: &LicenseContext, reported: &Consumptions) -> Result<Vec<Charge>, ApiError> {
    let (license, terms) = (&ctx.license, &ctx.license.terms);
    let mut charges = Vec::new();
    if reported.license != 0 {
        if terms.license_type != LicenseType::Consumption {
            return Err(ApiError::LicenseNotConsumption);
        }
        let allowance = Allowance {
            max: terms.max_consumptions,
            unlimited: terms.allow_unlimited_consumptions,
            allow_overages: terms.allow_overages,
            max_overages: terms.max_overages,
            allow_negative: terms.allow_negative_consumptions,
        };
        charges.push(charge(
            Counter::Consumptions,
            reported.license,
            license.consumptions,
            terms.total_consumptions,
            &allowance,
            "license",
        )?);
    }
    let mut totals: Vec<(&str, i64)> = Vec::new();
    for (code, amount) in &reported.features {
        match totals.iter_mut().find(|(c, _)| c == code) {
            Some((_, sum)) => *sum = sum.saturating_add(*amount),
            None => totals.push((code, *amount)),
        }
    }
    for (code, amount) in totals {
        let feature = ctx
            .product
            .features
            .iter()
            .find(|f| f.code == code && f.feature_type == FeatureType::Consumption)
            .ok_or_else(|| ApiError::InvalidLicenseFeatureCode(code.to_owned()))?;
        if amount == 0 {
            continue;
        }
        let allowance = Allowance {
            max: feature.max_consumption,
            unlimited: feature.allow_unlimited_consumptions,
            allow_overages: feature.allow_overages,
            max_overages: feature.max_overages,
            allow_negative: feature.allow_negative_consumptions,
        };
        let recorded = license.feature_consumptions.get(code).copied().unwrap_or(0);
        charges.push(charge(
            Counter::Feature(code.to_owned()),
            amount,
            recorded,
            feature.total_consumptions,
            &allowance,
            "feature",
        )?);
    }
    Ok(charges)
}

/// The license as it stands after `charges` were written, for the response.
pub fn apply_charges(license: &mut License, charges: &[Charge]) {
    for c in charges {
        match &c.counter {
            Counter::Consumptions => license.consumptions += c.amount,
            Counter::Feature(code) => *license.feature_consumptions.entry(code.clone()).or_insert(0) += c.amount,
        }
    }
}

/// `license_not_active` when nothing is active on the license, else `device_not_found`.
pub fn inactive_device_error(license: &License) -> ApiError {
    if license.times_activated <= 0 {
        ApiError::LicenseNotActive
    } else {
        ApiError::DeviceNotFound
    }
}

/// The write that records a check of `req` on the license at `addr` (conditions: see `store::write`).
pub fn plan_check(
    addr: LicenseAddr,
    req: &LicenseRequest,
    seat: Option<crate::ids::Username>,
    now: Timestamp,
) -> CheckPlan {
    CheckPlan {
        addr,
        hardware_id: req.hardware_id.clone(),
        license_id: req.license_id,
        seat,
        details: req.details.clone(),
        at: now,
    }
}

/// Decides a check (SPEC §3 "Check"), given the device as recorded by the check itself.
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

#[cfg(test)]
mod tests;
