//! Bundles (seed 001, SPEC §2): `activate_bundle`, `check_bundle`, `deactivate_bundle` and their offline
//! forms. A bundle license has one member license per member product; each member follows exactly the
//! single-license rules, and the bundle's operation is the members' writes joined into **one**
//! conditional write — every member or none. A write refused by any member re-reads every member and
//! decides again, within the request's deadline.
//!
//! Partly active bundles (the device is active on some members only, e.g. after a single member was
//! deactivated with `bundle_code`): activation activates it on the remaining members and answers every
//! member; only a device active on *every* member is 409 `license_device_exists`. Deactivation likewise
//! deactivates it where it is active and fails only when it is active on none.

use super::activate::ident;
use super::lookup::{self, UserCheck};
use super::{replayed, Once};
use crate::auth::{Access, Principal};
use crate::error::ApiError;
use crate::http::{ApiRequest, ApiResponse};
use crate::model::{AuthorizationMethod, License, LicenseUser};
use crate::render::{license_object, Identity, LicenseObject, View};
use crate::request::{Credentials, LicenseRequest};
use crate::rules::{self, LicenseContext, Transport};
use crate::signing::Signer;
use crate::state::AppState;
use crate::store::write::{bounded_request_record, device_as_read, request_record, ItemWrite, Write};
use crate::store::{ContextQuery, LicenseAddr, Rejection};
use crate::time::Timestamp;
use futures::future::try_join_all;

/// A bundle license and its members as read for one request.
#[derive(Clone, Debug)]
pub(crate) struct Bundle {
    /// The bundle license itself (it holds no devices; it names the members).
    pub license: License,
    pub user: Option<LicenseUser>,
    /// One context per member product, in the bundle's order.
    pub members: Vec<LicenseContext>,
}

impl Bundle {
    /// Where the request's bundle license is: read with the rules of the single-license endpoints,
    /// then checked to be a bundle.
    async fn load(
        state: &AppState,
        principal: &Principal,
        req: &LicenseRequest,
        how: UserCheck,
    ) -> Result<Self, ApiError> {
        let mut read = lookup::read_context(state, principal, req, false).await?;
        let product = lookup::product(&mut read, req)?;
        if !product.is_bundle() {
            return Err(ApiError::ProductNotBundle);
        }
        let (license, user, seat_user) = match &req.credentials {
            Credentials::Key(_) => (lookup::key_license(&mut read, req)?, None, None),
            _ => {
                let found = lookup::user_license(state, &mut read, &principal.company, req, how).await;
                let (user, addr) = match found {
                    // A found user's bundle takes one more read (the members) before any answer.
                    Err(ApiError::DeviceNotFound) if how == UserCheck::Concealed => {
                        return Err(lookup::conceal_missing_user(state, &principal.company, req).await)
                    }
                    found => found?,
                };
                let license = state
                    .store
                    .get_license(&addr)
                    .await
                    .map_err(ApiError::store)?
                    .ok_or(ApiError::LicenseNotFound("license user"))?;
                let email = user.email.clone();
                (license, Some(user), Some(email))
            }
        };
        // Every member read at once: its product, and its license with the device and the user's seat.
        let members = try_join_all(license.terms.bundle_members.iter().map(|(code, id)| {
            let addr = member_addr(&license, product.authorization_method, code, *id);
            let seat_user = seat_user.as_ref();
            let bundle = &license;
            async move {
                let q = ContextQuery {
                    company: &principal.company,
                    product: code,
                    key: None,
                    hardware_id: None,
                    user: None,
                };
                let (read, found) = tokio::try_join!(
                    state.store.read_context(&q),
                    state.store.read_license(&addr, seat_user, &req.hardware_id)
                )
                .map_err(ApiError::store)?;
                let member_product = rules::usable_product(read.product)?;
                let member = found.license.ok_or(ApiError::LicenseNotFound("license key"))?;
                ensure_member(bundle, &member, *id)?;
                if seat_user.is_some() && found.seat.is_none() {
                    return Err(match how {
                        UserCheck::Concealed => lookup::CONCEALED,
                        _ => ApiError::LicenseNotFound("license user"),
                    });
                }
                Ok(LicenseContext {
                    seat: found.seat,
                    device: found.device,
                    released_here: found.released,
                    ..LicenseContext::new(member_product, read.company.unwrap_or_default(), member)
                })
            }
        }))
        .await?;
        let concealed = how == UserCheck::Concealed && user.is_some();
        if concealed
            && members
                .iter()
                .all(|m| lookup::ensure_active(m.device.as_ref()).is_err())
        {
            return Err(lookup::CONCEALED);
        }
        if members.is_empty() {
            return Err(ApiError::internal(format!(
                "bundle license {} lists no member licenses: re-import the catalog",
                license.id
            )));
        }
        Ok(Self { license, user, members })
    }

    /// The member as a single-license request would name it.
    fn member_request(&self, req: &LicenseRequest, member: &LicenseContext) -> LicenseRequest {
        LicenseRequest {
            product: member.product.code.clone(),
            license_id: Some(member.license.id),
            bundle_code: Some(self.license.product.clone()),
            ..req.clone()
        }
    }
}

/// Refuses a license found at a member's address that is not the member the bundle names (its id, and
/// the bundle it was imported into): another license may hold that address (a standalone license of the
/// member product with the same key), and acting on it would change another customer's license.
fn ensure_member(bundle: &License, found: &License, id: i64) -> Result<(), ApiError> {
    if found.id == id && found.terms.bundle.as_ref() == Some(&bundle.product) {
        return Ok(());
    }
    tracing::error!(
        bundle = bundle.id,
        member = id,
        found = found.id,
        product = %found.product,
        "the license at a bundle member's address is not that member: re-import the catalog"
    );
    Err(ApiError::LicenseNotFound("license key"))
}

/// A member license's address: key-based members share the bundle's key (the importer refuses a
/// member key of their own); user-based ones have their id.
fn member_addr(
    bundle: &License,
    method: AuthorizationMethod,
    product: &crate::ids::ProductCode,
    id: i64,
) -> LicenseAddr {
    match (&bundle.key, method) {
        (Some(key), AuthorizationMethod::LicenseKey) => LicenseAddr::Key {
            company: bundle.company.clone(),
            product: product.clone(),
            key: key.clone(),
        },
        _ => LicenseAddr::Id {
            company: bundle.company.clone(),
            product: product.clone(),
            id,
        },
    }
}

/// The license object of each member after an activation or a check, for the request's identity.
pub(crate) fn member_objects<'a>(
    bundle: &'a Bundle,
    req: &'a LicenseRequest,
    view: View,
    now: Timestamp,
    signer: &Signer,
) -> Result<Vec<LicenseObject<'a>>, ApiError> {
    bundle
        .members
        .iter()
        .map(|m| {
            let device = m
                .device
                .as_ref()
                .ok_or_else(|| ApiError::internal("member device missing"))?;
            let who = Identity {
                hardware_id: &req.hardware_id,
                ident: ident(req),
                user: bundle.user.as_ref().zip(m.seat.as_ref()),
            };
            Ok(license_object(m, device, &who, view, now, signer))
        })
        .collect()
}

/// Joins the members' writes into one. Each member's items are its own license's, so none repeats.
fn join(writes: impl IntoIterator<Item = Write>) -> Write {
    Write {
        items: writes.into_iter().flat_map(|w| w.items).collect(),
    }
}

pub async fn handle_activation(req: &ApiRequest, state: &AppState) -> Result<ApiResponse, ApiError> {
    let (principal, request) = super::authenticated(req, state, Access::Write).await?;
    let outcome = activate(state, &principal, &request, Transport::Online, None).await?;
    let bundle = match outcome {
        BundleOutcome::Applied(bundle, _) => bundle,
        BundleOutcome::Replayed(_) => return Err(ApiError::internal("an online request was replayed")),
    };
    let objects = member_objects(&bundle, &request, View::Activation, Timestamp::now(), &state.signer)?;
    Ok(ApiResponse::signed_json(&objects, &state.signer))
}

/// What a bundle activation or deactivation did (see [`Outcome`] for single licenses).
pub(crate) enum BundleOutcome {
    Applied(Box<Bundle>, Option<String>),
    Replayed(String),
}

/// A refusal of a bundle request that may repeat an applied offline one (see `handlers::replay_or`).
async fn replay_or_bundle(
    state: &AppState,
    once: Option<&Once<'_, Bundle>>,
    addr: &LicenseAddr,
    err: ApiError,
) -> Result<BundleOutcome, ApiError> {
    match replayed(state, once, addr).await? {
        Some(answer) => Ok(BundleOutcome::Replayed(answer)),
        None => Err(err),
    }
}

/// The members' writes joined, with an offline request's record (kept beside the first member) first
/// and the conditions on the members the write skips last.
fn joined(writes: impl IntoIterator<Item = Write>, record: Option<ItemWrite>, unchanged: &[ItemWrite]) -> Write {
    let mut write = join(writes);
    write.items.splice(0..0, record);
    write.items.extend_from_slice(unchanged);
    write
}

/// Activates the device on every member not yet holding it, in one write.
pub(crate) async fn activate(
    state: &AppState,
    principal: &Principal,
    req: &LicenseRequest,
    transport: Transport,
    once: Option<&Once<'_, Bundle>>,
) -> Result<BundleOutcome, ApiError> {
    let mut bundle = Bundle::load(state, principal, req, UserCheck::Password).await?;
    let now = Timestamp::now();
    let mut attempts = super::Attempts::new(state);
    loop {
        // An offline request's record lives beside the first member, whichever members are written.
        let addrs: Vec<LicenseAddr> = bundle.members.iter().map(|m| LicenseAddr::of(&m.license)).collect();
        // Transfer sources, where a member needs one, all at once.
        let sources = try_join_all(bundle.members.iter().zip(&addrs).map(|(m, addr)| async move {
            if rules::needs_transfer_source(m) {
                state.store.released_slot(addr).await.map(Some)
            } else {
                Ok(None)
            }
        }))
        .await
        .map_err(ApiError::store)?;
        for (m, source) in bundle.members.iter_mut().zip(sources) {
            if let Some(source) = source {
                m.transfer_source = source;
            }
        }
        let mut after = bundle.clone();
        let mut writes = Vec::new();
        let mut unchanged = Vec::new();
        for (i, m) in bundle.members.iter().enumerate() {
            if m.device.as_ref().is_some_and(|d| d.active) {
                // Answered as active: the write holds only if it still is.
                unchanged.push(device_as_read(&addrs[i], &req.hardware_id, m.device.as_ref()));
                continue;
            }
            let member_req = bundle.member_request(req, m);
            let plan = match rules::plan_activation(m, &member_req, now, transport) {
                Ok(plan) => plan,
                Err(e) => return replay_or_bundle(state, once, &addrs[0], e).await,
            };
            let a = &mut after.members[i];
            rules::apply_activation(&mut a.license, &plan);
            if let Some(seat) = &mut a.seat {
                seat.total_activations += 1;
            }
            a.device = Some(plan.device.clone());
            writes.push(plan);
        }
        if writes.is_empty() {
            return replay_or_bundle(state, once, &addrs[0], ApiError::LicenseDeviceExists).await;
        }
        let record = super::record_of(once, &after, now)?
            .map(|r| bounded_request_record(&addrs[0], &r, now))
            .transpose()?;
        let answer = record.as_ref().and_then(ItemWrite::recorded_answer);
        let outcome = attempts
            .write(|token| {
                let write = joined(writes.iter().map(|p| p.write(&token)), record.clone(), &unchanged);
                async move { state.store.apply(&write, &token).await }
            })
            .await;
        match outcome {
            Ok(()) => return Ok(BundleOutcome::Applied(Box::new(after), answer)),
            Err(Rejection::Done(done)) => return Ok(BundleOutcome::Replayed(done.answer)),
            Err(Rejection::Device(Some(d))) if attempts.wrote(&d) => {
                if once.is_some() {
                    let lost = ApiError::internal("an applied offline bundle activation left no record");
                    return replay_or_bundle(state, once, &addrs[0], lost).await;
                }
                let bundle = Bundle::load(state, principal, req, UserCheck::Verified).await?;
                return Ok(BundleOutcome::Applied(Box::new(bundle), None));
            }
            Err(Rejection::Conflict | Rejection::Unknown(_)) => return Err(ApiError::Contention),
            Err(Rejection::Store(e)) => return Err(ApiError::store(e)),
            // Some member changed: read every member again and decide again.
            Err(_) => bundle = Bundle::load(state, principal, req, UserCheck::Verified).await?,
        }
        attempts.next_plan()?;
    }
}

pub async fn handle_deactivation(req: &ApiRequest, state: &AppState) -> Result<ApiResponse, ApiError> {
    let (principal, request) = super::authenticated(req, state, Access::Write).await?;
    deactivate(state, &principal, &request, None).await?;
    Ok(ApiResponse::text(super::deactivate::DEACTIVATED))
}

/// Deactivates the device on every member where it is active, in one write.
pub(crate) async fn deactivate(
    state: &AppState,
    principal: &Principal,
    req: &LicenseRequest,
    once: Option<&Once<'_, Bundle>>,
) -> Result<BundleOutcome, ApiError> {
    let mut bundle = Bundle::load(state, principal, req, UserCheck::Concealed).await?;
    let now = Timestamp::now();
    let mut attempts = super::Attempts::new(state);
    // Members whose device's seat is missing or at 0 (see `deactivate`): released without the seat.
    let mut seatless: Vec<bool> = vec![false; bundle.members.len()];
    loop {
        // An offline request's record lives beside the first member.
        let addr = LicenseAddr::of(&bundle.members[0].license);
        let mut plans = Vec::new();
        let mut unchanged = Vec::new();
        let mut refusal = None;
        for (m, seatless) in bundle.members.iter().zip(&seatless) {
            match rules::plan_deactivation(m, &req.hardware_id, now) {
                Ok(mut plan) => {
                    if *seatless {
                        plan.seat = None;
                    }
                    plans.push(plan)
                }
                Err(e) => {
                    // Answered as not active there: the write holds only if it still is not.
                    let member = LicenseAddr::of(&m.license);
                    unchanged.push(device_as_read(&member, &req.hardware_id, m.device.as_ref()));
                    refusal.get_or_insert(e);
                }
            }
        }
        if plans.is_empty() {
            let err = refusal.unwrap_or(ApiError::DeviceNotFound);
            return replay_or_bundle(state, once, &addr, err).await;
        }
        let record = super::record_of(once, &bundle, now)?.map(|r| request_record(&addr, &r, now));
        let answer = record.as_ref().and_then(ItemWrite::recorded_answer);
        let outcome = attempts
            .write(|token| {
                let write = joined(plans.iter().map(|p| p.write(&token)), record.clone(), &unchanged);
                async move { state.store.apply(&write, &token).await }
            })
            .await;
        match outcome {
            Ok(()) => return Ok(BundleOutcome::Applied(Box::new(bundle), answer)),
            Err(Rejection::Done(done)) => return Ok(BundleOutcome::Replayed(done.answer)),
            Err(Rejection::Device(Some(d))) if attempts.wrote(&d) => {
                if once.is_some() {
                    let lost = ApiError::internal("an applied offline bundle deactivation left no record");
                    return replay_or_bundle(state, once, &addr, lost).await;
                }
                return Ok(BundleOutcome::Applied(Box::new(bundle), None));
            }
            Err(Rejection::Seat(_)) => {
                bundle = Bundle::load(state, principal, req, UserCheck::Concealed).await?;
                seatless = seats_gone(state, &bundle, &req.hardware_id).await?;
            }
            Err(Rejection::Conflict | Rejection::Unknown(_)) => return Err(ApiError::Contention),
            Err(Rejection::Store(e)) => return Err(ApiError::store(e)),
            Err(_) => bundle = Bundle::load(state, principal, req, UserCheck::Concealed).await?,
        }
        attempts.next_plan()?;
    }
}

/// Per member, whether the seat its active device's activation charged is missing or at 0: the stored
/// counts are inconsistent, and (as for a single license) the slot is released without the seat rather
/// than keeping the device active for ever.
async fn seats_gone(state: &AppState, bundle: &Bundle, hw: &crate::ids::HardwareId) -> Result<Vec<bool>, ApiError> {
    let gone = try_join_all(bundle.members.iter().map(|m| async move {
        let Some(user) = m.device.as_ref().filter(|d| d.active).and_then(|d| d.user.as_ref()) else {
            return Ok(false);
        };
        let seat = state.store.get_seat(&LicenseAddr::of(&m.license), user).await?;
        Ok(seat.is_none_or(|s| s.total_activations <= 0))
    }))
    .await
    .map_err(ApiError::store)?;
    for (m, gone) in bundle.members.iter().zip(&gone) {
        if *gone {
            tracing::error!(license = m.license.id, hardware_id = %hw, "seat missing or at 0 while its device is active; releasing without it");
        }
    }
    Ok(gone)
}

pub async fn handle_check(req: &ApiRequest, state: &AppState) -> Result<ApiResponse, ApiError> {
    let (principal, request) = super::authenticated(req, state, Access::Read).await?;
    principal.ensure_product(&request.product)?;
    let now = Timestamp::now();
    let mut attempts = super::Attempts::new(state);
    let bundle = loop {
        let bundle = Bundle::load(state, &principal, &request, UserCheck::Concealed).await?;
        for m in &bundle.members {
            if bundle.user.is_some() {
                lookup::ensure_active(m.device.as_ref())?;
            }
            rules::check(m, &request.hardware_id)?;
        }
        // Each member's device is recorded when its own record is due; those due are written together.
        let plans: Vec<_> = bundle
            .members
            .iter()
            .filter_map(|m| rules::plan_check(m, &request, now, state.last_seen_interval))
            .collect();
        if plans.is_empty() || super::check::record(state, &mut attempts, &plans).await? {
            break bundle;
        }
    };
    let objects = member_objects(&bundle, &request, View::Check, now, &state.signer)?;
    Ok(ApiResponse::signed_json(&objects, &state.signer))
}
