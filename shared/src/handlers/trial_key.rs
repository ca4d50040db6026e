//! `GET /api/v4/trial_key` (SPEC §9): a trial license of a product for one device, created once. The
//! trial is a conditional create keyed on (product, hardware id) — a marker item created in the same
//! write as the license (and a user-based trial's user and seat, and the index of the customer the
//! request's email names, so `customer_license_users` lists it) — so of any number of concurrent
//! requests for one device exactly one creates it; the others are refused by the marker, which the
//! store hands back (`Rejection::Trial`), and answer the trial it names. Every answer is made from the
//! stored license, so they are identical. Terms come from `rules::trial`; what needs randomness or a
//! key is made here: license keys and ids from the system's CSPRNG, and a new user's initial password
//! derived from the deployment's sealing key, so that repeating the request repeats the password
//! without storing it (the user's stored login stays an argon2id hash).

use super::lookup;
use crate::audit::Change;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::http::{ApiRequest, ApiResponse};
use crate::ids::{CompanyId, LicenseKey, Username};
use crate::model::{
    AuthorizationMethod, Company, CustomerLicenses, License, LicensePolicy, LicenseUser, ProductDoc, TrialRecord,
};
use crate::plan::{LicenseAddr, TrialPlan};
use crate::render;
use crate::request::{Params, TrialRequest};
use crate::rules::{self, trial};
use crate::sealed::SealingKey;
use crate::state::AppState;
use crate::store::write::{Image, Item};
use crate::store::Rejection;
use crate::time::Timestamp;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};

pub async fn handle(req: &ApiRequest, state: &AppState, principal: Principal) -> Result<ApiResponse, ApiError> {
    let request = TrialRequest::parse(&Params::from_query(req.query.as_deref())?)?;
    principal.ensure_product(&request.product)?;
    let company = &principal.company;
    let mut attempts = super::Attempts::new(state, &principal);
    loop {
        let read = read(state, company, &request).await?;
        let product = rules::usable_product(read.product)?;
        // A device the vendor blacklisted gets no trial (its activation would be refused anyway).
        if rules::is_blacklisted(&product, &read.company.unwrap_or_default(), &request.hardware_id) {
            return Err(ApiError::Blacklisted);
        }
        let policy = trial::trial_policy(&product, &request)?;
        let (existing, user) = match read.trial {
            // The user the request names was read with the marker: the trial's own, if it names them.
            Some(existing) => (existing, read.stored.user),
            None => match create(state, company, &product, &policy, &request, read.stored, &mut attempts).await? {
                Created::Now(plan) => {
                    return answer(
                        state,
                        company,
                        &plan.license,
                        plan.user.as_ref(),
                        request.email.as_ref(),
                    )
                }
                // Another request created this device's trial first: answer that one.
                Created::Lost(Some(won)) => (won, None),
                // Something else the plan relied on changed (the user's record, the customer's
                // index): decide again.
                Created::Lost(None) => {
                    attempts.next_plan()?;
                    continue;
                }
            },
        };
        return answer_existing(state, company, &product, &existing, user, request.email.as_ref()).await;
    }
}

/// What a trial request reads first, all at once: the product, the company (its blacklist), the
/// device's trial of it, and the license user and customer index the request's email names.
struct Read {
    product: Option<ProductDoc>,
    company: Option<Company>,
    trial: Option<TrialRecord>,
    stored: Stored,
}

/// The items a new trial changes that may exist already, as read: its user and its customer's index.
struct Stored {
    user: Option<LicenseUser>,
    customer: Option<CustomerLicenses>,
}

async fn read(state: &AppState, company: &CompanyId, request: &TrialRequest) -> Result<Read, ApiError> {
    let marker = Item::Trial(company.clone(), request.product.clone(), request.hardware_id.clone());
    let product = lookup::product_doc(state, company, &request.product);
    let user = async {
        match &request.email {
            Some(email) => load_user(state, company, email).await,
            None => Ok(None),
        }
    };
    let customer = async {
        match &request.email {
            Some(email) => super::customer_license_users::customer_index(state, company, email).await,
            None => Ok(None),
        }
    };
    let company_item = Item::Company(company.clone());
    let (product, company, trial, user, customer) = tokio::join!(
        product,
        load(state, &company_item),
        load(state, &marker),
        user,
        customer
    );
    let company = match company? {
        Some(Image::Company(c)) => Some(*c),
        _ => None,
    };
    let trial = match trial? {
        Some(Image::Trial(trial)) => Some(*trial),
        None => None,
        Some(_) => {
            return Err(ApiError::internal(format!(
                "{marker:?} read back as another kind of item"
            )))
        }
    };
    Ok(Read {
        product: product?,
        company,
        trial,
        stored: Stored {
            user: user?,
            customer: customer?,
        },
    })
}

/// What a creation attempt did.
enum Created {
    Now(Box<TrialPlan>),
    /// Refused: by the marker of the trial that won (`Some`), or by another item that changed.
    Lost(Option<TrialRecord>),
}

async fn create(
    state: &AppState,
    company: &CompanyId,
    product: &ProductDoc,
    policy: &LicensePolicy,
    request: &TrialRequest,
    stored: Stored,
    attempts: &mut super::Attempts,
) -> Result<Created, ApiError> {
    let user_based = product.authorization_method == AuthorizationMethod::User;
    let stored_user = stored.user.filter(|_| user_based);
    let fresh = fresh(state, company, product, request, stored_user.is_some()).await?;
    let mut plan = trial::plan_trial(company, product, policy, request, stored_user, fresh, Timestamp::now())?;
    if trial::index_trial(&mut plan, stored.customer) == trial::Indexed::Full {
        tracing::warn!(
            customer = ?request.email,
            max_entries = crate::catalog::MAX_CUSTOMER_ENTRIES,
            max_bytes = crate::catalog::MAX_CUSTOMER_BYTES,
            "the customer's index is full: the trial is created without it, so customer_license_users does not list it"
        );
    }
    let write = plan.write();
    let written = attempts
        .write(
            Some(&trial_change(&plan)),
            |_| write.clone(),
            |write, token| async move { state.store.apply(&write, &token).await },
        )
        .await;
    match written {
        Ok(()) => Ok(Created::Now(Box::new(plan))),
        Err(Rejection::Trial(won)) => Ok(Created::Lost(won.map(|w| *w))),
        Err(Rejection::Store(e)) => Err(ApiError::store(e)),
        Err(Rejection::Conflict | Rejection::Unknown(_)) => Err(ApiError::Contention),
        Err(other) => {
            tracing::info!(refused_by = %other, "trial creation refused; deciding again");
            Ok(Created::Lost(None))
        }
    }
}

/// The audit record of a trial's creation: the new license, for the device and (user-based) user.
fn trial_change(plan: &TrialPlan) -> Change {
    let mut detail = serde_json::json!({ "hardware_id": plan.hardware_id.as_str() });
    if let Some(user) = &plan.user {
        detail["user"] = user.email.as_str().into();
    }
    Change::on_license("trial.create", &LicenseAddr::of(&plan.license), detail)
}

/// The ids, key and (for a new user) password hash of a new trial.
async fn fresh(
    state: &AppState,
    company: &CompanyId,
    product: &ProductDoc,
    request: &TrialRequest,
    user_exists: bool,
) -> Result<trial::Fresh, ApiError> {
    let password_hash = match &request.email {
        Some(email) if product.authorization_method == AuthorizationMethod::User && !user_exists => {
            let password = initial_password(sealing_key(state)?, company, email);
            let hash = tokio::task::spawn_blocking(move || crate::password::hash(&password))
                .await
                .map_err(|e| ApiError::internal(format!("hashing a trial user's password failed: {e}")))?;
            Some(hash)
        }
        _ => None,
    };
    Ok(trial::Fresh {
        license_id: random_id()?,
        license_key: Some(new_license_key()?),
        user_id: random_id()?,
        password_hash,
    })
}

/// Answers the trial `existing` names, unless it has expired: its license and user read at once (the
/// user unless `read`, read with the marker, is them). `asked`: the email the request names.
async fn answer_existing(
    state: &AppState,
    company: &CompanyId,
    product: &ProductDoc,
    existing: &TrialRecord,
    read: Option<LicenseUser>,
    asked: Option<&Username>,
) -> Result<ApiResponse, ApiError> {
    let (company_id, code) = (company.clone(), product.code.clone());
    let addr = match &existing.license_key {
        Some(key) => LicenseAddr::Key {
            company: company_id,
            product: code,
            key: key.clone(),
        },
        None => LicenseAddr::Id {
            company: company_id,
            product: code,
            id: existing.license_id,
        },
    };
    let read = read.filter(|u| existing.user.as_ref() == Some(&u.email));
    let user = async {
        match (&existing.user, read) {
            (_, Some(user)) => Ok(Some(user)),
            (Some(email), None) => load_user(state, company, email).await,
            (None, None) => Ok(None),
        }
    };
    let item = Item::License(addr);
    let (license, user) = tokio::join!(load(state, &item), user);
    let missing = |what: &str| ApiError::internal(format!("the {what} of trial {existing:?} is missing"));
    let Some(Image::License(license)) = license? else {
        return Err(missing("license"));
    };
    let user = user?;
    if existing.user.is_some() && user.is_none() {
        return Err(missing("user"));
    }
    trial::ensure_trial_running(&license, Timestamp::now())?;
    answer(state, company, &license, user.as_ref(), asked)
}

/// The answer for a trial's license and user. The derived password is shown only to a request that
/// names the trial's user (another email for the same device learns who holds its trial, not their
/// password), and while it is still theirs: a user who changed it, or one the vendor created with
/// their own, signs in with theirs.
fn answer(
    state: &AppState,
    company: &CompanyId,
    license: &License,
    user: Option<&LicenseUser>,
    asked: Option<&Username>,
) -> Result<ApiResponse, ApiError> {
    let password = match user {
        Some(u) if u.trial_password && u.is_initial_password && asked == Some(&u.email) => {
            Some(initial_password(sealing_key(state)?, company, &u.email))
        }
        _ => None,
    };
    let user = user.map(|u| (u, password.as_deref()));
    Ok(ApiResponse::signed_json(
        &render::trial_answer(license, user),
        &state.signer,
    ))
}

async fn load(state: &AppState, item: &Item) -> Result<Option<Image>, ApiError> {
    state.store.load(item).await.map_err(ApiError::store)
}

async fn load_user(state: &AppState, company: &CompanyId, email: &Username) -> Result<Option<LicenseUser>, ApiError> {
    match load(state, &Item::User(company.clone(), email.clone())).await? {
        Some(Image::User(user)) => Ok(Some(*user)),
        None => Ok(None),
        Some(_) => Err(ApiError::internal("a license user read back as another kind of item")),
    }
}

fn sealing_key(state: &AppState) -> Result<&SealingKey, ApiError> {
    state.sealing_key.as_deref().ok_or_else(|| {
        ApiError::internal(
            "user-based trials need the deployment's sealing key, from which initial passwords are derived: \
             configure one (license-server: --sealing-key or `license-server keys`; AWS: SealingKeyParameterName)",
        )
    })
}

/// Capital letters and digits without those read alike (0/O, 1/I): 32 of them, so a byte modulo 32
/// picks one uniformly.
const ALPHABET: &[u8; 32] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";

/// Characters of an initial password: 100 bits.
const PASSWORD_CHARS: usize = 20;

/// A new license key, `XXXX-XXXX-XXXX-XXXX` over [`ALPHABET`] from the system's CSPRNG: 80 bits.
pub fn new_license_key() -> Result<LicenseKey, ApiError> {
    let bytes = random::<16>()?;
    let chars: Vec<char> = bytes.iter().map(|b| ALPHABET[usize::from(*b) % 32] as char).collect();
    let groups: Vec<String> = chars.chunks(4).map(|c| c.iter().collect()).collect();
    LicenseKey::parse(&groups.join("-")).map_err(|e| ApiError::internal(format!("generated license key {e}")))
}

/// The initial password of a trial's user: an HMAC of the company and email under a key derived from
/// the sealing key, so every request for that user derives the same one and no one without the key can.
pub fn initial_password(key: &SealingKey, company: &CompanyId, email: &Username) -> String {
    let mac_key = key.mac_key("trial-initial-password v1");
    let message = format!("{company}\n{email}");
    let tag = aws_lc_rs::hmac::sign(&mac_key, message.as_bytes());
    tag.as_ref()[..PASSWORD_CHARS]
        .iter()
        .map(|b| ALPHABET[usize::from(*b) % 32] as char)
        .collect()
}

/// A new positive id within 2^53 (SPEC §4.4).
pub(crate) fn random_id() -> Result<i64, ApiError> {
    let id = u64::from_be_bytes(random::<8>()?) & ((1 << 53) - 1);
    Ok((id as i64).max(1))
}

fn random<const N: usize>() -> Result<[u8; N], ApiError> {
    let mut bytes = [0u8; N];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| ApiError::internal("the system's random number generator failed"))?;
    Ok(bytes)
}
