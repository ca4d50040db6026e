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
use super::runner::{self, Call, Images, WriteOp};
use crate::audit::Change;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::http::{ApiRequest, ApiResponse};
use crate::ids::HardwareId;
use crate::model::{AuthorizationMethod, License, LicenseUser};
use crate::plan::{ActivationPlan, DeactivationPlan, LicenseAddr, WriteToken};
use crate::render::{license_object, Identity, LicenseObject, View};
use crate::request::{Credentials, LicenseRequest};
use crate::rules::{self, floating, floating::SlotChange, LicenseContext, Transport};
use crate::signing::Signer;
use crate::state::{AppState, Core};
use crate::store::write::{device_as_read, Image, Item, ItemWrite, Write};
use crate::store::{ContextQuery, Rejection};
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
    async fn load(state: &Core, principal: &Principal, req: &LicenseRequest, how: UserCheck) -> Result<Self, ApiError> {
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
                    Err(ApiError::DeviceNotFound) if how.is_concealed() => {
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
                    return Err(if how.is_concealed() {
                        lookup::CONCEALED
                    } else {
                        ApiError::LicenseNotFound("license user")
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
        let concealed = how.is_concealed() && user.is_some();
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

pub async fn handle_activation(
    req: &ApiRequest,
    state: &AppState,
    principal: Principal,
) -> Result<ApiResponse, ApiError> {
    let request = super::license_request(req, state, &principal).await?;
    let op = BundleActivation::new(state, &principal, &request, Transport::Online);
    let bundle = runner::run(&op, None).await?.online()?;
    let objects = member_objects(&bundle, &request, View::Activation, Timestamp::now(), &state.signer)?;
    Ok(ApiResponse::signed_json(&objects, &state.signer))
}

pub async fn handle_deactivation(
    req: &ApiRequest,
    state: &AppState,
    principal: Principal,
) -> Result<ApiResponse, ApiError> {
    let request = super::license_request(req, state, &principal).await?;
    let op = BundleDeactivation::new(state, &principal, &request);
    runner::run(&op, None).await?;
    Ok(ApiResponse::text(super::deactivate::DEACTIVATED))
}

impl Bundle {
    /// The audit record of a bundle's write: one for the bundle license, naming the ids of the member
    /// licenses the write changes (at most 24: small, and one item of the transaction's 100).
    fn change(&self, action: &'static str, hw: &HardwareId, members: impl Iterator<Item = i64>) -> Change {
        let detail = serde_json::json!({
            "hardware_id": hw.as_str(),
            "member_license_ids": members.collect::<Vec<_>>(),
        });
        Change::on_license(action, &LicenseAddr::of(&self.license), detail)
    }
}

/// A bundle holds its members' licenses, devices and seats.
impl Images for Bundle {
    fn image(&self, item: &Item) -> Option<Option<Image>> {
        self.members.iter().find_map(|m| m.image(item))
    }

    fn set_image(&mut self, item: &Item, image: Option<Image>) {
        let addr = runner::license_of(item);
        if let Some(m) = self
            .members
            .iter_mut()
            .find(|m| addr == Some(&LicenseAddr::of(&m.license)))
        {
            m.set_image(item, image);
        }
    }

    /// The first member's: the record is found there whichever members a write changes.
    fn record_addr(&self) -> LicenseAddr {
        LicenseAddr::of(&self.members[0].license)
    }
}

/// The members' plans a bundle write joins, and conditions on the members it leaves as they are.
pub(crate) struct Joined<P> {
    plans: Vec<P>,
    unchanged: Vec<ItemWrite>,
}

impl<P> Joined<P> {
    fn write(&self, token: &WriteToken, write: impl Fn(&P, &WriteToken) -> Write) -> Write {
        let mut joined = join(self.plans.iter().map(|p| write(p, token)));
        joined.items.extend_from_slice(&self.unchanged);
        joined
    }
}

/// Activates the device on every member not yet holding it, in one write.
pub(crate) struct BundleActivation<'a> {
    on: Call<'a>,
    transport: Transport,
}

impl<'a> BundleActivation<'a> {
    pub fn new(app: &'a AppState, principal: &'a Principal, req: &'a LicenseRequest, transport: Transport) -> Self {
        Self {
            on: Call::new(app, principal, req),
            transport,
        }
    }
}

impl WriteOp for BundleActivation<'_> {
    type State = Bundle;
    type Plan = Joined<ActivationPlan>;

    async fn load(&self, after: Option<&Rejection>) -> Result<Bundle, ApiError> {
        let how = UserCheck::activation(after);
        Bundle::load(self.on.app, self.on.principal, self.on.req, how).await
    }

    /// Transfer sources, where a member needs one, all at once.
    async fn complete(&self, bundle: &mut Bundle) -> Result<(), ApiError> {
        let store = &self.on.app.store;
        try_join_all(bundle.members.iter_mut().map(|m| async move {
            if rules::needs_transfer_source(m) {
                m.transfer_source = store.released_slot(&LicenseAddr::of(&m.license)).await?;
            }
            Ok(())
        }))
        .await
        .map_err(ApiError::store)
        .map(drop)
    }

    fn call(&self) -> &Call<'_> {
        &self.on
    }

    fn decide(&self, bundle: &Bundle) -> Result<Joined<ActivationPlan>, ApiError> {
        let (req, now) = (self.on.req, self.on.now);
        let mut joined = Joined {
            plans: Vec::new(),
            unchanged: Vec::new(),
        };
        for m in &bundle.members {
            if m.device.as_ref().is_some_and(|d| d.active) {
                // Answered as active: the write holds only if it still is.
                let addr = LicenseAddr::of(&m.license);
                joined
                    .unchanged
                    .push(device_as_read(&addr, &req.hardware_id, m.device.as_ref()));
                continue;
            }
            let member_req = bundle.member_request(req, m);
            joined
                .plans
                .push(rules::plan_activation(m, &member_req, now, self.transport)?);
        }
        if joined.plans.is_empty() {
            return Err(ApiError::LicenseDeviceExists);
        }
        Ok(joined)
    }

    fn write(&self, plan: &Joined<ActivationPlan>, token: &WriteToken) -> Write {
        plan.write(token, ActivationPlan::write)
    }

    fn change(&self, bundle: &Bundle, plan: &Joined<ActivationPlan>) -> Option<Change> {
        let members = plan.plans.iter().map(|p| p.license_id);
        Some(bundle.change("bundle.activate", &self.on.req.hardware_id, members))
    }
}

/// Deactivates the device on every member where it is active, in one write.
pub(crate) struct BundleDeactivation<'a> {
    on: Call<'a>,
}

impl<'a> BundleDeactivation<'a> {
    pub fn new(app: &'a AppState, principal: &'a Principal, req: &'a LicenseRequest) -> Self {
        Self {
            on: Call::new(app, principal, req),
        }
    }
}

impl WriteOp for BundleDeactivation<'_> {
    type State = Bundle;
    type Plan = Joined<DeactivationPlan>;

    async fn load(&self, after: Option<&Rejection>) -> Result<Bundle, ApiError> {
        let app = self.on.app;
        let mut bundle = Bundle::load(app, self.on.principal, self.on.req, UserCheck::Release).await?;
        if let Some(Rejection::Seat(_)) = after {
            try_join_all(bundle.members.iter_mut().map(|m| runner::mark_gone_seat(app, m))).await?;
        }
        Ok(bundle)
    }

    fn call(&self) -> &Call<'_> {
        &self.on
    }

    fn decide(&self, bundle: &Bundle) -> Result<Joined<DeactivationPlan>, ApiError> {
        let hw = &self.on.req.hardware_id;
        let mut joined = Joined {
            plans: Vec::new(),
            unchanged: Vec::new(),
        };
        let mut refusal = None;
        for m in &bundle.members {
            match rules::plan_deactivation(m, hw, self.on.now) {
                Ok(plan) => joined.plans.push(plan),
                Err(e) => {
                    // Answered as not active there: the write holds only if it still is not.
                    let member = LicenseAddr::of(&m.license);
                    joined.unchanged.push(device_as_read(&member, hw, m.device.as_ref()));
                    refusal.get_or_insert(e);
                }
            }
        }
        if joined.plans.is_empty() {
            return Err(refusal.unwrap_or(ApiError::DeviceNotFound));
        }
        Ok(joined)
    }

    fn write(&self, plan: &Joined<DeactivationPlan>, token: &WriteToken) -> Write {
        plan.write(token, DeactivationPlan::write)
    }

    fn change(&self, bundle: &Bundle, plan: &Joined<DeactivationPlan>) -> Option<Change> {
        let members = plan.plans.iter().map(|p| p.license_id);
        Some(bundle.change("bundle.deactivate", &self.on.req.hardware_id, members))
    }
}

pub async fn handle_check(req: &ApiRequest, state: &AppState, principal: Principal) -> Result<ApiResponse, ApiError> {
    let request = super::license_request(req, state, &principal).await?;
    principal.ensure_product(&request.product)?;
    let now = Timestamp::now();
    let mut attempts = super::Attempts::new(state, &principal);
    let bundle = loop {
        let mut bundle = Bundle::load(state, &principal, &request, UserCheck::Concealed).await?;
        for m in &bundle.members {
            if bundle.user.is_some() {
                lookup::ensure_active(m.device.as_ref())?;
            }
            rules::check(m, &request.hardware_id)?;
        }
        // Each member's device is recorded when its own record is due, and each floating cloud member
        // takes or refreshes the device's slot as `check_license` does (no free slot on any member:
        // `floating_not_available`, nothing written); all of it is written together or not at all.
        let plans: Vec<_> = bundle
            .members
            .iter()
            .filter_map(|m| rules::plan_check(m, &request, now, state.last_seen_interval))
            .collect();
        let slots = bundle
            .members
            .iter()
            .map(|m| floating::plan(&m.license, &request.hardware_id, now, SlotChange::Hold))
            .collect::<Result<Vec<_>, _>>()?;
        let slots: Vec<_> = slots.into_iter().flatten().collect();
        if plans.is_empty() && slots.is_empty() {
            break bundle;
        }
        if super::check::record(state, &mut attempts, &plans, &slots, None).await? {
            // `floating::plan` plans a slot exactly for the floating cloud members, in member order.
            for (member, slot) in bundle
                .members
                .iter_mut()
                .filter(|m| m.license.terms.is_floating_cloud)
                .zip(slots)
            {
                slot.applied_to(&mut member.license);
            }
            break bundle;
        }
    };
    let objects = member_objects(&bundle, &request, View::check(&request), now, &state.signer)?;
    Ok(ApiResponse::signed_json(&objects, &state.signer))
}
