//! Trials (`trial_key`, SPEC §9) as pure decisions: which terms a product gives a trial, and the trial
//! license (with, for a user-based product, its user and seat) a request creates. The handler supplies
//! what needs randomness or a key — the new ids, the license key, the initial password's hash.

use crate::error::ApiError;
use crate::ids::{CompanyId, LicenseKey};
use crate::model::{
    AuthorizationMethod, License, LicensePolicy, LicenseTerms, LicenseUser, ProductDoc, Seat, TrialRecord,
};
use crate::plan::TrialPlan;
use crate::request::TrialRequest;
use crate::time::Timestamp;

/// The terms a trial of `product` gets: the policy the request names (which must be a trial policy
/// of the product), else the product's default trial policy, else — with `allow_trial` — the product's
/// own trial settings. A user-based product's trial needs the user's email.
pub fn trial_policy(product: &ProductDoc, req: &TrialRequest) -> Result<LicensePolicy, ApiError> {
    let named = req.license_policy.as_deref();
    let policy = match (product.trial_policy(named), named) {
        (Some(policy), _) if policy.is_trial => policy.clone(),
        (Some(_), Some(code)) => {
            return Err(ApiError::TrialNotAllowed(format!(
                "License policy {code} of product {} is not a trial policy",
                product.code
            )))
        }
        (None, Some(code)) => {
            return Err(ApiError::TrialNotAllowed(format!(
                "Product {} has no license policy {code}",
                product.code
            )))
        }
        (_, None) if product.allow_trial => LicensePolicy::default(),
        (_, None) => {
            return Err(ApiError::TrialNotAllowed(format!(
                "Product {} does not offer trials",
                product.code
            )))
        }
    };
    if product.authorization_method == AuthorizationMethod::User && req.email.is_none() {
        return Err(ApiError::EmailMissing);
    }
    Ok(policy)
}

/// What a new trial needs that only the handler can make: fresh ids, the key of a key-based trial,
/// and the hash of a new user's initial password.
#[derive(Clone, Debug)]
pub struct Fresh {
    pub license_id: i64,
    pub license_key: Option<LicenseKey>,
    pub user_id: i64,
    pub password_hash: Option<String>,
}

/// The trial `req` creates on `product` with `policy`: a license that is a trial of the policy's
/// terms, valid from its first activation for the trial days (SPEC §4), for the request's customer.
/// A user-based trial assigns the license to `stored_user` (the user's record as read), or creates the
/// user with the initial password whose hash `fresh` carries.
pub fn plan_trial(
    company: &CompanyId,
    product: &ProductDoc,
    policy: &LicensePolicy,
    req: &TrialRequest,
    stored_user: Option<LicenseUser>,
    fresh: Fresh,
    now: Timestamp,
) -> Result<TrialPlan, ApiError> {
    let terms = LicenseTerms {
        license_type: policy.license_type,
        is_trial: true,
        trial_days: if policy.trial_days > 0 {
            policy.trial_days
        } else {
            product.trial_days
        },
        prevent_vm: policy.prevent_vm,
        allow_offline_activation: policy.allow_offline_activation,
        max_consumptions: policy.max_consumptions,
        allow_unlimited_consumptions: policy.allow_unlimited_consumptions,
        metadata: policy.metadata.clone(),
        customer: req.customer.clone(),
        ..LicenseTerms::default()
    };
    let key = match product.authorization_method {
        AuthorizationMethod::LicenseKey => Some(
            fresh
                .license_key
                .ok_or_else(|| ApiError::internal("a key-based trial was planned without a key"))?,
        ),
        AuthorizationMethod::User => None,
    };
    let license = License {
        max_activations: policy.max_activations,
        allow_unlimited_activations: policy.allow_unlimited_activations,
        max_transfers: policy.max_transfers,
        terms,
        ..License::new(fresh.license_id, company.clone(), product.code.clone(), key.clone())
    };
    let user = match (product.authorization_method, &req.email) {
        (AuthorizationMethod::User, Some(email)) => Some(match &stored_user {
            Some(stored) => LicenseUser {
                licenses: [stored.licenses.clone(), vec![(product.code.clone(), license.id)]].concat(),
                ..stored.clone()
            },
            None => LicenseUser {
                id: fresh.user_id,
                email: email.clone(),
                first_name: req.customer.first_name.clone(),
                last_name: req.customer.last_name.clone(),
                phone_number: req.customer.phone.clone(),
                is_initial_password: true,
                password_hash: Some(
                    fresh
                        .password_hash
                        .ok_or_else(|| ApiError::internal("a new trial user was planned without a password"))?,
                ),
                licenses: vec![(product.code.clone(), license.id)],
                bundle_licenses: Vec::new(),
                password_change_disabled: false,
                trial_password: true,
            },
        }),
        _ => None,
    };
    // The license's own limits bound the user's activations: their seat adds none.
    let seat = user.as_ref().map(|u| Seat {
        user: u.email.clone(),
        max_activations: 0,
        allow_unlimited_activations: true,
        total_activations: 0,
    });
    Ok(TrialPlan {
        hardware_id: req.hardware_id.clone(),
        marker: TrialRecord {
            license_id: license.id,
            license_key: key,
            user: user.as_ref().map(|u| u.email.clone()),
            created_at: now,
        },
        license,
        seat,
        user,
        stored_user,
    })
}

/// An existing trial may be answered again while it runs; once its validity has passed the device
/// gets no other trial of the product.
pub fn ensure_trial_running(license: &License, now: Timestamp) -> Result<(), ApiError> {
    if super::is_expired(license, now) {
        return Err(ApiError::TrialExpired);
    }
    Ok(())
}
