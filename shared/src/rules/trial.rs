//! Trials (`trial_key`, SPEC §9) as pure decisions: which terms a product gives a trial, and the trial
//! license (with, for a user-based product, its user and seat) a request creates. The handler supplies
//! what needs randomness or a key — the new ids, the license key, the initial password's hash.

use crate::error::ApiError;
use crate::ids::{CompanyId, LicenseKey, Username};
use crate::model::{
    AuthorizationMethod, CustomerLicense, CustomerLicenses, License, LicensePolicy, LicenseSource, LicenseTerms,
    LicenseUser, ProductDoc, Seat, TrialRecord,
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
    let license = trial_license(company, product, policy, req, &fresh)?;
    let user = match (product.authorization_method, &req.email) {
        (AuthorizationMethod::User, Some(email)) => {
            Some(trial_user(&license, email, req, stored_user.as_ref(), fresh)?)
        }
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
            license_key: license.key.clone(),
            user: user.as_ref().map(|u| u.email.clone()),
            created_at: now,
        },
        license,
        seat,
        user,
        stored_user,
        customer: None,
        stored_customer: None,
    })
}

/// What [`index_trial`] did with the trial's customer index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Indexed {
    /// The trial names no customer email: there is no index to write.
    NoCustomer,
    /// The trial is appended to the customer's index (created if none was read).
    Appended,
    /// The index would exceed its bounds ([`crate::catalog::customer_index_fits`]): the trial is created
    /// without it, so `customer_license_users` does not list it.
    Full,
}

/// Adds the trial to the index of the customer its license names (`stored`: that index as read), so
/// `customer_license_users` finds it: its license, and a user-based trial's user. **Decision:** a full
/// index does not refuse the trial — anyone with the API key can request trials for one email from
/// many devices, and that must not stop the customer's next trial; it is created unlisted (the handler
/// logs it).
pub fn index_trial(plan: &mut TrialPlan, stored: Option<CustomerLicenses>) -> Indexed {
    let email = plan.license.terms.customer.email.as_deref();
    let Some(email) = email.and_then(|e| Username::parse(e).ok()) else {
        return Indexed::NoCustomer;
    };
    let mut index = stored.clone().unwrap_or_else(|| CustomerLicenses {
        email,
        licenses: Vec::new(),
    });
    index.licenses.push(CustomerLicense {
        product: plan.license.product.clone(),
        id: plan.license.id,
        users: plan.user.iter().map(|u| u.email.clone()).collect(),
    });
    if !crate::catalog::customer_index_fits(&index) {
        return Indexed::Full;
    }
    plan.customer = Some(index);
    plan.stored_customer = stored;
    Indexed::Appended
}

fn trial_license(
    company: &CompanyId,
    product: &ProductDoc,
    policy: &LicensePolicy,
    req: &TrialRequest,
    fresh: &Fresh,
) -> Result<License, ApiError> {
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
                .clone()
                .ok_or_else(|| ApiError::internal("a key-based trial was planned without a key"))?,
        ),
        AuthorizationMethod::User => None,
    };
    Ok(License {
        max_activations: policy.max_activations,
        allow_unlimited_activations: policy.allow_unlimited_activations,
        max_transfers: policy.max_transfers,
        terms,
        source: Some(crate::model::LicenseSource::Trial),
        ..License::new(fresh.license_id, company.clone(), product.code.clone(), key)
    })
}

/// The user of a user-based trial: the stored one with the license assigned, or a new one.
fn trial_user(
    license: &License,
    email: &Username,
    req: &TrialRequest,
    stored: Option<&LicenseUser>,
    fresh: Fresh,
) -> Result<LicenseUser, ApiError> {
    let assigned = (license.product.clone(), license.id);
    if let Some(stored) = stored {
        return Ok(LicenseUser {
            licenses: [stored.licenses.clone(), vec![assigned]].concat(),
            ..stored.clone()
        });
    }
    let hash = fresh
        .password_hash
        .ok_or_else(|| ApiError::internal("a new trial user was planned without a password"))?;
    Ok(LicenseUser {
        id: fresh.user_id,
        email: email.clone(),
        first_name: req.customer.first_name.clone(),
        last_name: req.customer.last_name.clone(),
        phone_number: req.customer.phone.clone(),
        is_initial_password: true,
        password_hash: Some(hash),
        licenses: vec![assigned],
        bundle_licenses: Vec::new(),
        password_change_disabled: false,
        trial_password: true,
        password_changed_by_user: false,
        management_licenses: Vec::new(),
        source: Some(LicenseSource::Trial),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{HardwareId, ProductCode, Username};
    use crate::model::Customer;

    fn request(policy: Option<&str>, email: Option<&str>) -> TrialRequest {
        TrialRequest {
            product: ProductCode::parse("p").unwrap(),
            hardware_id: HardwareId::parse("hw").unwrap(),
            email: email.map(|e| Username::parse(e).unwrap()),
            license_policy: policy.map(str::to_owned),
            customer: Customer::default(),
        }
    }

    fn product(allow_trial: bool, policies: Vec<LicensePolicy>) -> ProductDoc {
        ProductDoc {
            code: ProductCode::parse("p").unwrap(),
            allow_trial,
            trial_days: 7,
            license_policies: policies,
            ..ProductDoc::default()
        }
    }

    fn policy(code: &str, is_trial: bool, default_trial: bool) -> LicensePolicy {
        LicensePolicy {
            code: code.into(),
            is_trial,
            default_trial,
            trial_days: 30,
            ..LicensePolicy::default()
        }
    }

    fn code(r: Result<LicensePolicy, ApiError>) -> Result<String, &'static str> {
        r.map(|p| p.code).map_err(|e| e.code())
    }

    /// The named policy, else the default trial policy, else the product's own settings with
    /// `allow_trial`; any other case is `trial_not_allowed`, and a user-based trial needs an email.
    #[test]
    fn the_terms_a_trial_gets() {
        let both = vec![policy("t", true, true), policy("full", false, false)];
        assert_eq!(
            code(trial_policy(&product(false, both.clone()), &request(None, None))),
            Ok("t".into())
        );
        let p = product(true, vec![policy("full", false, false)]);
        assert_eq!(
            code(trial_policy(&p, &request(None, None))),
            Ok(String::new()),
            "the product's own"
        );
        assert_eq!(
            code(trial_policy(&p, &request(Some("full"), None))),
            Err("trial_not_allowed")
        );
        assert_eq!(
            code(trial_policy(&p, &request(Some("nope"), None))),
            Err("trial_not_allowed")
        );
        assert_eq!(
            code(trial_policy(&product(false, vec![]), &request(None, None))),
            Err("trial_not_allowed")
        );
        let mut users = product(true, vec![]);
        users.authorization_method = AuthorizationMethod::User;
        assert_eq!(code(trial_policy(&users, &request(None, None))), Err("email_missing"));
        assert!(trial_policy(&users, &request(None, Some("a@b.c"))).is_ok());
    }

    #[test]
    fn a_planned_trial_is_a_trial_of_the_policy_for_the_request_s_customer() {
        let p = product(true, vec![]);
        let mut req = request(None, Some("a@b.c"));
        req.customer.city = Some("Kranj".into());
        let fresh = Fresh {
            license_id: 5,
            license_key: Some(LicenseKey::parse("AAAA-BBBB-CCCC-DDDD").unwrap()),
            user_id: 6,
            password_hash: None,
        };
        let company = CompanyId::parse("c").unwrap();
        let now = Timestamp::from_millis(1);
        let plan = plan_trial(&company, &p, &policy("t", true, false), &req, None, fresh, now).unwrap();
        let l = &plan.license;
        assert!(l.terms.is_trial && l.validity_period.is_none());
        assert_eq!((l.terms.trial_days, l.max_activations), (30, 1));
        assert_eq!(l.terms.customer.city.as_deref(), Some("Kranj"));
        assert_eq!(plan.marker.license_key, l.key);
        assert!(plan.user.is_none() && plan.seat.is_none(), "key-based");
        let own = plan_trial(
            &company,
            &p,
            &LicensePolicy::default(),
            &req,
            None,
            Fresh {
                license_key: l.key.clone(),
                ..plan_fresh()
            },
            now,
        )
        .unwrap();
        assert_eq!(own.license.terms.trial_days, 7, "the product's trial days");
    }

    /// A trial with an email is appended to its customer's index as read (a new index where none was),
    /// with a user-based trial's user; without an email there is none; a full index is left as it is.
    #[test]
    fn a_trial_is_appended_to_its_customer_s_index_while_it_fits() {
        let company = CompanyId::parse("c").unwrap();
        let policy = LicensePolicy::default();
        let now = Timestamp::from_millis(1);
        let mut users = product(true, vec![]);
        users.authorization_method = AuthorizationMethod::User;
        let fresh = || Fresh {
            password_hash: Some("h".into()),
            ..plan_fresh()
        };
        let mut req = request(None, Some("a@b.c"));
        req.customer.email = Some("a@b.c".into());
        let mut plan = plan_trial(&company, &users, &policy, &req, None, fresh(), now).unwrap();
        assert_eq!(index_trial(&mut plan, None), Indexed::Appended);
        let email = Username::parse("a@b.c").unwrap();
        let entry = CustomerLicense {
            product: users.code.clone(),
            id: 9,
            users: vec![email.clone()],
        };
        assert_eq!(
            plan.customer.as_ref().map(|c| c.licenses.clone()),
            Some(vec![entry.clone()])
        );
        assert!(plan.stored_customer.is_none(), "created");

        let stored = CustomerLicenses {
            email: email.clone(),
            licenses: vec![entry.clone()],
        };
        let mut plan = plan_trial(&company, &users, &policy, &req, None, fresh(), now).unwrap();
        assert_eq!(index_trial(&mut plan, Some(stored.clone())), Indexed::Appended);
        assert_eq!(plan.customer.unwrap().licenses.len(), 2);
        assert_eq!(plan.stored_customer, Some(stored), "written over the index as read");

        let full = CustomerLicenses {
            email,
            licenses: vec![entry; crate::catalog::MAX_CUSTOMER_ENTRIES / 2],
        };
        let mut plan = plan_trial(&company, &users, &policy, &req, None, fresh(), now).unwrap();
        assert_eq!(index_trial(&mut plan, Some(full)), Indexed::Full);
        assert!(plan.customer.is_none() && plan.stored_customer.is_none());

        let keys = product(true, vec![]);
        let mut plan = plan_trial(&company, &keys, &policy, &request(None, None), None, key_fresh(), now).unwrap();
        assert_eq!(index_trial(&mut plan, None), Indexed::NoCustomer);
        assert!(plan.write().items.len() == 2, "marker and license only");
    }

    fn key_fresh() -> Fresh {
        Fresh {
            license_key: Some(LicenseKey::parse("AAAA-BBBB-CCCC-DDDD").unwrap()),
            ..plan_fresh()
        }
    }

    fn plan_fresh() -> Fresh {
        Fresh {
            license_id: 9,
            license_key: None,
            user_id: 9,
            password_hash: None,
        }
    }
}
