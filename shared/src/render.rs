//! The license object (SPEC §4) as emitted on activation and check. Field order is declaration order;
//! serde_json's compact output already matches `JSON.stringify` for everything emitted here (no
//! integral floats, no index-like keys: `catalog` normalises vendor JSON on the way in).

use crate::ids::HardwareId;
use crate::model::{
    variable_id, AuthorizationMethod, Device, Feature, FeatureType, License, LicenseType, LicenseUser, ProductDoc, Seat,
};
use crate::rules::{is_expired, prevents_vm, LicenseContext};
use crate::signing::Signer;
use crate::time::Timestamp;
use serde::Serialize;
use serde_json::{Map, Value};

/// Which response the object is part of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum View {
    Activation,
    /// A check's answer (also `floating/borrow`'s): `product_features` leaves out expired features
    /// unless the request asked for them (`include_expired_features`).
    Check {
        expired_features: bool,
    },
    /// A license listed without a device (`user_licenses`): no device, variables or signature.
    Listing,
}

impl View {
    /// The check view for `req`.
    pub fn check(req: &crate::request::LicenseRequest) -> Self {
        Self::Check {
            expired_features: req.include_expired_features,
        }
    }
}

/// Whether a license object of `view` lists `feature`. **Decision** (SPEC §1 lists
/// `include_expired_features` among what clients send; §4.1 leaves it open): a check lists a feature
/// whose `expiry_date` has passed only when the request sends `include_expired_features=true`, as the
/// official clients expect; activation answers and user license lists show every feature.
fn shows_feature(view: View, feature: &crate::model::Feature, now: Timestamp) -> bool {
    let leaves_out_expired = matches!(
        view,
        View::Check {
            expired_features: false
        }
    );
    !leaves_out_expired || crate::rules::usable_feature(feature, now).is_ok()
}

/// The requester's identity as sent, for `license_signature` and the `username` echo.
pub struct Identity<'a> {
    pub hardware_id: &'a HardwareId,
    /// The license key or username exactly as the request carried it.
    pub ident: &'a str,
    pub user: Option<(&'a LicenseUser, &'a Seat)>,
}

#[derive(Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LicenseObject<'a> {
    id: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    license_key: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<UserObject<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    username: Option<&'a str>,
    license_type: LicenseType,
    is_trial: bool,
    trial_days: i64,
    license_template_id: Option<i64>,
    order_store_id: Option<&'a str>,
    allow_grace_period: bool,
    allow_overages: bool,
    allow_unlimited_activations: bool,
    allow_offline_activation: bool,
    can_borrow: bool,
    enable_maintenance_period: bool,
    is_air_gapped: bool,
    is_floating: bool,
    is_floating_cloud: bool,
    is_hardware_key_auth: bool,
    prevent_vm: bool,
    max_activations: i64,
    times_activated: i64,
    max_transfers: i64,
    transfer_count: i64,
    grace_period: i64,
    floating_timeout: i64,
    max_borrow_time: i64,
    max_overages: i64,
    max_license_users: i64,
    validity_period: Option<Timestamp>,
    maintenance_period: Option<Timestamp>,
    start_date: Option<Timestamp>,
    #[serde(flatten)]
    #[cfg_attr(feature = "openapi", schema(value_type = Consumption))]
    consumption: Option<Consumption<'a>>,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    metadata: &'a Map<String, Value>,
    custom_fields: &'a [crate::model::CustomField],
    customer: &'a crate::model::Customer,
    company: CompanyObject,
    product_details: ProductDetails<'a>,
    product_features: Vec<FeatureObject<'a>>,
    authorization_method: AuthorizationMethod,
    #[serde(skip_serializing_if = "Option::is_none")]
    request: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    active: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    license_active: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    license_enabled: Option<bool>,
    is_expired: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    hardware_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    device_id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    is_borrowed: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    borrowed_until: Option<Option<Timestamp>>,
    /// Checks of a floating cloud license: how many devices hold a slot (SPEC §9).
    #[serde(skip_serializing_if = "Option::is_none")]
    floating_in_use_devices: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    variables: Option<Vec<VariableObject<'a>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    installation_file: Option<Option<&'a str>>,
    /// Always set on online responses; the offline answer moves it behind its own fields (SPEC §6.3).
    #[serde(skip_serializing_if = "Option::is_none")]
    license_signature: Option<String>,
}

#[derive(Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UserObject<'a> {
    id: i64,
    email: &'a str,
    first_name: Option<&'a str>,
    last_name: Option<&'a str>,
    phone_number: Option<&'a str>,
    is_initial_password: bool,
    max_activations: i64,
    allow_unlimited_activations: bool,
    total_activations: i64,
}

/// Flattened into its object only for a consumption license or feature: the document lists its fields
/// as optional.
#[derive(Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
struct Consumption<'a> {
    #[cfg_attr(feature = "openapi", schema(required = false))]
    max_consumptions: i64,
    #[cfg_attr(feature = "openapi", schema(required = false))]
    total_consumptions: i64,
    #[cfg_attr(feature = "openapi", schema(required = false))]
    allow_unlimited_consumptions: bool,
    #[cfg_attr(feature = "openapi", schema(required = false))]
    allow_negative_consumptions: bool,
    #[cfg_attr(feature = "openapi", schema(required = false))]
    reset_consumption: bool,
    #[cfg_attr(feature = "openapi", schema(required = false))]
    consumption_period: Option<&'a str>,
}

#[derive(Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
struct CompanyObject {
    id: i64,
}

#[derive(Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
struct ProductDetails<'a> {
    product_id: i64,
    product_name: &'a str,
    short_code: &'a str,
    authorization_method: AuthorizationMethod,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    metadata: &'a Map<String, Value>,
    allow_trial: bool,
    trial_days: i64,
    allow_overages: bool,
    max_overages: i64,
    prevent_vm: bool,
    floating_timeout: i64,
    validity_period: Option<Timestamp>,
}

/// A `product_features` item (SPEC §4.1): also `check_license_feature`'s and `add_feature_consumption`'s
/// answer.
#[derive(Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FeatureObject<'a> {
    id: i64,
    code: &'a str,
    name: &'a str,
    feature_type: FeatureType,
    expiry_date: Option<Timestamp>,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    metadata: &'a Map<String, Value>,
    is_floating: bool,
    is_floating_cloud: bool,
    #[serde(flatten)]
    #[cfg_attr(feature = "openapi", schema(value_type = FeatureConsumption))]
    consumption: Option<FeatureConsumption<'a>>,
}

/// Flattened into its object only for a consumption license or feature: the document lists its fields
/// as optional.
#[derive(Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
struct FeatureConsumption<'a> {
    #[cfg_attr(feature = "openapi", schema(required = false))]
    max_consumption: i64,
    #[cfg_attr(feature = "openapi", schema(required = false))]
    total_consumptions: i64,
    #[cfg_attr(feature = "openapi", schema(required = false))]
    allow_unlimited_consumptions: bool,
    #[cfg_attr(feature = "openapi", schema(required = false))]
    allow_overages: bool,
    #[cfg_attr(feature = "openapi", schema(required = false))]
    max_overages: i64,
    #[cfg_attr(feature = "openapi", schema(required = false))]
    reset_consumption: bool,
    #[cfg_attr(feature = "openapi", schema(required = false))]
    consumption_period: Option<&'a str>,
    #[cfg_attr(feature = "openapi", schema(required = false))]
    allow_negative_consumptions: bool,
}

/// A device variable as every answer shows it: activation, check, `track_device_variables` and
/// `get_device_variables` (SPEC §3, §9); only the last carries its `id` (SPEC §9), which keeps the
/// activation answers, an offline bundle's up to 24 × 100 of them included, as small as the SPEC allows.
#[derive(Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VariableObject<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<i64>,
    variable: &'a str,
    value: &'a str,
    device_id: i64,
    created_at: Timestamp,
}

/// The feature object of `f` on `license` at `now` (a consumption feature's total as the license counts it).
pub fn feature<'a>(f: &'a Feature, license: &License, now: Timestamp) -> FeatureObject<'a> {
    FeatureObject {
        id: f.id,
        code: &f.code,
        name: &f.name,
        feature_type: f.feature_type,
        expiry_date: f.expiry_date,
        metadata: &f.metadata,
        is_floating: f.is_floating,
        is_floating_cloud: f.is_floating_cloud,
        consumption: (f.feature_type == FeatureType::Consumption).then_some(FeatureConsumption {
            max_consumption: f.max_consumption,
            total_consumptions: license.feature_total_at(f, now),
            allow_unlimited_consumptions: f.allow_unlimited_consumptions,
            allow_overages: f.allow_overages,
            max_overages: f.max_overages,
            reset_consumption: f.reset_consumption,
            consumption_period: f.consumption_period.as_deref(),
            allow_negative_consumptions: f.allow_negative_consumptions,
        }),
    }
}

fn product_details(p: &ProductDoc) -> ProductDetails<'_> {
    ProductDetails {
        product_id: p.id,
        product_name: &p.name,
        short_code: p.code.as_str(),
        authorization_method: p.authorization_method,
        metadata: &p.metadata,
        allow_trial: p.allow_trial,
        trial_days: p.trial_days,
        allow_overages: p.allow_overages,
        max_overages: p.max_overages,
        prevent_vm: p.prevent_vm,
        floating_timeout: p.floating_timeout,
        validity_period: p.validity_period,
    }
}

/// The answer to `product_details` (SPEC §9): the license object's `product_details`, with the
/// product's custom fields and its latest version when asked for (`latest_version: null`: none).
#[derive(Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProductAnswer<'a> {
    #[serde(flatten)]
    details: ProductDetails<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    custom_fields: Option<&'a [crate::model::CustomField]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    latest_version: Option<Option<&'a crate::model::ProductVersion>>,
}

pub fn product_answer<'a>(
    p: &'a ProductDoc,
    custom_fields: bool,
    latest_version: Option<Option<&'a crate::model::ProductVersion>>,
) -> ProductAnswer<'a> {
    ProductAnswer {
        details: product_details(p),
        custom_fields: custom_fields.then_some(p.custom_fields.as_slice()),
        latest_version,
    }
}

/// The answer to `trial_key` (SPEC §9): the names clients read first — `license` (the key) for a
/// key-based trial, `license_user` and `initial_password` for a user-based one (`null` once the user's
/// password is no longer the initial one the trial gave) — then what LicenseSpring adds that is cheap:
/// the license's id, terms and customer. Made from the stored license alone, so every request for the
/// same trial gets the same bytes.
#[derive(Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TrialAnswer<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    license: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    license_user: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    initial_password: Option<Option<&'a str>>,
    id: i64,
    license_type: LicenseType,
    is_trial: bool,
    trial_days: i64,
    validity_period: Option<Timestamp>,
    max_activations: i64,
    allow_unlimited_activations: bool,
    customer: &'a crate::model::Customer,
}

/// The trial answer of `license`; `user` for a user-based trial, with the initial password it may show.
pub fn trial_answer<'a>(license: &'a License, user: Option<(&'a LicenseUser, Option<&'a str>)>) -> TrialAnswer<'a> {
    TrialAnswer {
        license: license.key.as_ref().map(|k| k.as_str()),
        license_user: user.map(|(u, _)| u.email.as_str()),
        initial_password: user.map(|(_, password)| password),
        id: license.id,
        license_type: license.terms.license_type,
        is_trial: license.terms.is_trial,
        trial_days: license.terms.trial_days,
        validity_period: license.validity_period,
        max_activations: license.max_activations,
        allow_unlimited_activations: license.allow_unlimited_activations,
        customer: &license.terms.customer,
    }
}

/// Builds the license object for `ctx` (after the operation) and the device it is about.
pub fn license_object<'a>(
    ctx: &'a LicenseContext,
    device: &'a Device,
    who: &Identity<'a>,
    view: View,
    now: Timestamp,
    signer: &Signer,
) -> LicenseObject<'a> {
    let validity = ctx.license.validity_period.map(|v| v.to_string());
    let activation = view == View::Activation;
    let borrowed = crate::rules::floating::borrowed_until(&ctx.license, who.hardware_id.as_str(), now);
    LicenseObject {
        username: who.user.filter(|_| activation).map(|_| who.ident),
        hardware_id: Some(who.hardware_id.as_str()),
        device_id: Some(device.id),
        is_borrowed: (!activation).then_some(borrowed.is_some()),
        borrowed_until: (!activation).then_some(borrowed),
        variables: Some(variables(device, |_| true, VariableIds::Omitted)),
        license_signature: Some(signer.license_signature(who.hardware_id, who.ident, validity.as_deref())),
        ..terms(ctx, who.user, view, now)
    }
}

/// The license object of `ctx` as a user's license list shows it: no device, so no device fields,
/// variables or signature (clients verify signatures only on activation and check answers).
pub fn listed_license<'a>(
    ctx: &'a LicenseContext,
    user: (&'a LicenseUser, &'a Seat),
    now: Timestamp,
) -> LicenseObject<'a> {
    terms(ctx, Some(user), View::Listing, now)
}

/// The user object (SPEC §4) of a license user and their seat on one license.
pub fn user_object<'a>(u: &'a LicenseUser, seat: &'a Seat) -> UserObject<'a> {
    UserObject {
        id: u.id,
        email: u.email.as_str(),
        first_name: u.first_name.as_deref(),
        last_name: u.last_name.as_deref(),
        phone_number: u.phone_number.as_deref(),
        is_initial_password: u.is_initial_password,
        max_activations: seat.max_activations,
        allow_unlimited_activations: seat.allow_unlimited_activations,
        total_activations: seat.total_activations,
    }
}

/// The object's license, product and user fields; the device's are left out.
fn terms<'a>(
    ctx: &'a LicenseContext,
    user: Option<(&'a LicenseUser, &'a Seat)>,
    view: View,
    now: Timestamp,
) -> LicenseObject<'a> {
    let (l, t, p) = (&ctx.license, &ctx.license.terms, &ctx.product);
    let activation = view == View::Activation;
    LicenseObject {
        id: l.id,
        license_key: l.key.as_ref().map(|k| k.as_str()),
        user: user.map(|(u, seat)| user_object(u, seat)),
        username: None,
        license_type: t.license_type,
        is_trial: t.is_trial,
        trial_days: t.trial_days,
        license_template_id: t.license_template_id,
        order_store_id: t.order_store_id.as_deref(),
        allow_grace_period: t.allow_grace_period,
        allow_overages: t.allow_overages,
        allow_unlimited_activations: l.allow_unlimited_activations,
        allow_offline_activation: t.allow_offline_activation,
        can_borrow: t.can_borrow,
        enable_maintenance_period: t.enable_maintenance_period,
        is_air_gapped: t.is_air_gapped,
        is_floating: t.is_floating,
        is_floating_cloud: t.is_floating_cloud,
        is_hardware_key_auth: t.is_hardware_key_auth,
        prevent_vm: prevents_vm(l, p),
        max_activations: l.max_activations,
        times_activated: l.times_activated,
        max_transfers: l.max_transfers,
        transfer_count: l.transfer_count,
        grace_period: t.grace_period,
        floating_timeout: t.floating_timeout,
        max_borrow_time: t.max_borrow_time,
        max_overages: t.max_overages,
        max_license_users: t.max_license_users,
        validity_period: l.validity_period,
        maintenance_period: t.maintenance_period,
        start_date: t.start_date,
        consumption: (t.license_type == LicenseType::Consumption).then_some(Consumption {
            max_consumptions: t.max_consumptions,
            total_consumptions: l.total_consumptions_at(now),
            allow_unlimited_consumptions: t.allow_unlimited_consumptions,
            allow_negative_consumptions: t.allow_negative_consumptions,
            reset_consumption: t.reset_consumption,
            consumption_period: t.consumption_period.as_deref(),
        }),
        metadata: &t.metadata,
        custom_fields: &t.custom_fields,
        customer: &t.customer,
        company: CompanyObject { id: ctx.company.id },
        product_details: product_details(p),
        product_features: p
            .features
            .iter()
            .filter(|f| shows_feature(view, f, now))
            .map(|f| feature(f, l, now))
            .collect(),
        authorization_method: p.authorization_method,
        request: activation.then_some("activation"),
        active: activation.then_some(true),
        license_active: (!activation).then_some(l.times_activated > 0),
        license_enabled: (!activation).then_some(l.enabled),
        is_expired: is_expired(l, now),
        hardware_id: None,
        device_id: None,
        // Borrowing is the device's: `license_object` sets it.
        is_borrowed: None,
        borrowed_until: None,
        floating_in_use_devices: (matches!(view, View::Check { .. }) && t.is_floating_cloud)
            .then(|| crate::rules::floating::in_use(l, now)),
        variables: None,
        installation_file: activation.then_some(None),
        license_signature: None,
    }
}

/// `add_consumption`'s answer (SPEC §9): the license's consumption terms and its total.
#[derive(Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConsumptionAnswer<'a> {
    id: i64,
    max_consumptions: i64,
    total_consumptions: i64,
    allow_unlimited_consumptions: bool,
    allow_negative_consumptions: bool,
    allow_overages: bool,
    max_overages: i64,
    reset_consumption: bool,
    consumption_period: Option<&'a str>,
    company: CompanyObject,
}

/// The consumption answer for `ctx` (after the write) at `now`: the vendor's terms, not what a request
/// tightened for itself.
pub fn consumption_answer(ctx: &LicenseContext, now: Timestamp) -> ConsumptionAnswer<'_> {
    let (l, t) = (&ctx.license, &ctx.license.terms);
    ConsumptionAnswer {
        id: l.id,
        max_consumptions: t.max_consumptions,
        total_consumptions: l.total_consumptions_at(now),
        allow_unlimited_consumptions: t.allow_unlimited_consumptions,
        allow_negative_consumptions: t.allow_negative_consumptions,
        allow_overages: t.allow_overages,
        max_overages: t.max_overages,
        reset_consumption: t.reset_consumption,
        consumption_period: t.consumption_period.as_deref(),
        company: CompanyObject { id: ctx.company.id },
    }
}

/// Whether variable objects carry their `id`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VariableIds {
    Shown,
    Omitted,
}

/// The variables of `device` whose names `wanted` accepts, in the order the device holds them.
pub fn variables<'a>(device: &'a Device, wanted: impl Fn(&str) -> bool, ids: VariableIds) -> Vec<VariableObject<'a>> {
    device
        .variables
        .iter()
        .filter(|v| wanted(&v.variable))
        .map(|v| VariableObject {
            id: (ids == VariableIds::Shown).then(|| variable_id(device.id, &v.variable)),
            variable: &v.variable,
            value: &v.value,
            device_id: device.id,
            created_at: v.created_at,
        })
        .collect()
}

/// The offline activation answer (SPEC §6.3) to `request_id`, made at `date`.
pub struct OfflineAnswer {
    pub request_id: String,
    pub date: String,
    /// HMAC of the request's identity with the shared key (`offline::payload::v1_message`).
    pub offline_signature: String,
}

/// The offline activation file: the license object, then `request_id`, `date`, `offline_signature`,
/// then `license_signature` and `license_signature_v2` — the RSA signature of the compact JSON of
/// everything before them. Both come last, so a client that deletes them from the parsed object and
/// re-serialises it gets exactly the bytes that were signed.
pub fn offline_activation(
    mut object: LicenseObject<'_>,
    answer: &OfflineAnswer,
    signer: &Signer,
) -> Result<String, serde_json::Error> {
    #[derive(Serialize)]
    struct Signed<'a, 'b> {
        #[serde(flatten)]
        object: &'b LicenseObject<'a>,
        request_id: &'b str,
        date: &'b str,
        offline_signature: &'b str,
    }
    let v1 = object.license_signature.take().unwrap_or_default();
    let mut body = serde_json::to_string(&Signed {
        object: &object,
        request_id: &answer.request_id,
        date: &answer.date,
        offline_signature: &answer.offline_signature,
    })?;
    let v2 = signer.sign(body.as_bytes());
    body.pop(); // the closing brace
    body.push_str(&format!(
        ",\"license_signature\":{},\"license_signature_v2\":{}}}",
        serde_json::to_string(&v1)?,
        serde_json::to_string(&v2)?
    ));
    Ok(body)
}
