//! `GET /api/v4/customer_license_users` (SPEC §9): the license users of a customer's licenses on a
//! user-based product. The customer is named by email (`customer`) and found through the index the
//! catalog import and `trial_key` write (`model::CustomerLicenses`, one item per customer, like a license user's
//! record); the answer is `{"customer": <the licenses' customer object>, "users": [<user object> +
//! "license_id", one per license user of each license]}`, without passwords or hashes. Reads only: the
//! product and the index at once, then each license, license user and seat (at most
//! `user_licenses::LOADS_AT_ONCE` at a time): two sequential round trips for most customers.
//!
//! **Decision** (SPEC §9 names no error): a customer with no license of the product — unknown, or the
//! index is stale because a re-import moved the license to another customer — answers
//! `license_not_found` ("License with the provided customer not found"), as an unknown license user
//! does; a key-based product answers `validation_error`, as for `user_licenses`.

use super::lookup;
use super::user_licenses::LOADS_AT_ONCE;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::http::{ApiRequest, ApiResponse};
use crate::ids::{CompanyId, ProductCode, Username};
use crate::model::{Customer, CustomerLicense, CustomerLicenses, License, LicenseUser, Seat};
use crate::plan::LicenseAddr;
use crate::render::{user_object, UserObject};
use crate::request::{CustomerRequest, Params};
use crate::state::AppState;
use crate::store::write::{Image, Item};
use futures::stream::{self, StreamExt, TryStreamExt};

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(serde::Serialize)]
#[cfg_attr(feature = "openapi", schema(as = CustomerLicenseUsersAnswer))]
pub(super) struct Answer<'a> {
    customer: &'a Customer,
    users: Vec<Entry<'a>>,
}

/// A license user as `user_licenses` shows them, with the license whose seat it describes.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(serde::Serialize)]
#[cfg_attr(feature = "openapi", schema(as = CustomerLicenseUser))]
pub(super) struct Entry<'a> {
    #[serde(flatten)]
    user: UserObject<'a>,
    license_id: i64,
}

/// One read the answer needs.
enum Load {
    License(LicenseAddr),
    Member(LicenseAddr, Username),
}

/// A license user found for a license (by id), with their seat on it.
type Member = (i64, Box<LicenseUser>, Seat);

/// What a [`Load`] found (`Gone`: the item was removed since the index was written).
enum Found {
    License(Box<License>),
    Member(i64, Box<LicenseUser>, Seat),
    Gone,
}

pub async fn handle(req: &ApiRequest, state: &AppState, principal: Principal) -> Result<ApiResponse, ApiError> {
    let request = CustomerRequest::parse(&Params::from_query(req.query.as_deref())?)?;
    principal.ensure_product(&request.product)?;
    let (product, index) = futures::try_join!(
        lookup::product_doc(state, &principal.company, &request.product),
        customer_index(state, &principal.company, &request.customer),
    )?;
    let product = lookup::user_product(product)?;
    let loads: Vec<Load> = index
        .iter()
        .flat_map(|i| &i.licenses)
        .filter(|l| l.product == product.code)
        .flat_map(|l| reads(&principal.company, &product.code, l))
        .collect();
    let found: Vec<Found> = stream::iter(loads)
        .map(|load| read(state, load))
        .buffered(LOADS_AT_ONCE)
        .try_collect()
        .await?;
    let (licenses, members) = sort(found, &request.customer);
    let customer = &licenses
        .first()
        .ok_or(ApiError::LicenseNotFound("customer"))?
        .terms
        .customer;
    let users = members
        .iter()
        .filter(|(id, ..)| licenses.iter().any(|l| l.id == *id))
        .map(|(id, user, seat)| Entry {
            user: user_object(user, seat),
            license_id: *id,
        })
        .collect();
    Ok(ApiResponse::signed_json(&Answer { customer, users }, &state.signer))
}

/// The customer's index as stored (`None`: none), read by `trial_key` too, which appends to it.
pub(super) async fn customer_index(
    state: &AppState,
    company: &CompanyId,
    email: &Username,
) -> Result<Option<CustomerLicenses>, ApiError> {
    let item = Item::Customer(company.clone(), email.clone());
    match state.store.load(&item).await.map_err(ApiError::store)? {
        Some(Image::Customer(index)) => Ok(Some(*index)),
        None => Ok(None),
        Some(_) => Err(ApiError::internal(format!(
            "{item:?} read back as another kind of item"
        ))),
    }
}

/// The reads of one indexed license: the license, and each of its users with their seat.
fn reads(company: &CompanyId, product: &ProductCode, license: &CustomerLicense) -> Vec<Load> {
    let addr = LicenseAddr::Id {
        company: company.clone(),
        product: product.clone(),
        id: license.id,
    };
    let members = license.users.iter().map(|u| Load::Member(addr.clone(), u.clone()));
    std::iter::once(Load::License(addr.clone())).chain(members).collect()
}

async fn loaded(state: &AppState, item: Item) -> Result<Option<Image>, ApiError> {
    state.store.load(&item).await.map_err(ApiError::store)
}

async fn read(state: &AppState, load: Load) -> Result<Found, ApiError> {
    match load {
        Load::License(addr) => match loaded(state, Item::License(addr.clone())).await? {
            Some(Image::License(l)) => Ok(Found::License(l)),
            None => Ok(Found::Gone),
            Some(_) => Err(ApiError::internal(format!(
                "{addr:?} read back as another kind of item"
            ))),
        },
        Load::Member(addr, email) => {
            let LicenseAddr::Id { id, company, .. } = &addr else {
                return Err(ApiError::internal("a customer's license is addressed by its id"));
            };
            let (user, seat) = futures::try_join!(
                loaded(state, Item::User(company.clone(), email.clone())),
                loaded(state, Item::Seat(addr.clone(), email.clone())),
            )?;
            Ok(match (user, seat) {
                (Some(Image::User(user)), Some(Image::Seat(seat))) => Found::Member(*id, user, seat),
                _ => Found::Gone,
            })
        }
    }
}

/// The licenses that still belong to `customer` (a re-import may have given one to another customer
/// since the index was read), and the license users found.
fn sort(found: Vec<Found>, customer: &Username) -> (Vec<License>, Vec<Member>) {
    let mut licenses = Vec::new();
    let mut members = Vec::new();
    for f in found {
        match f {
            Found::License(l) if belongs(&l, customer) => licenses.push(*l),
            Found::Member(id, user, seat) => members.push((id, user, seat)),
            Found::License(_) | Found::Gone => {}
        }
    }
    (licenses, members)
}

fn belongs(license: &License, customer: &Username) -> bool {
    let email = license.terms.customer.email.as_deref();
    email.and_then(|e| Username::parse(e).ok()).as_ref() == Some(customer)
}
