//! `GET /api/v4/user_licenses` (SPEC §9): every license a license user holds on a user-based product,
//! each as `{"license": <license object>, "user": <user object>}`. The user is proven the way
//! username/password activation proves them (`lookup::proven_user`: the same hash for unknown users, the
//! same per-user guessing budget) or by a single sign-on grant through the resolver. Licenses of the
//! product held on their own come first, then bundle members, in assignment order; the objects carry
//! no device fields (`render::View::Listing`). Reads only: the context read, then every license and the
//! user's seat on it at once (at most `LOADS_AT_ONCE` licenses at a time): two sequential round trips.

use super::lookup;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::http::{ApiRequest, ApiResponse};
use crate::model::{License, LicenseUser, ProductDoc, Seat};
use crate::plan::LicenseAddr;
use crate::render::{listed_license, user_object, LicenseObject, UserObject};
use crate::request::{Params, UserRequest};
use crate::rules::LicenseContext;
use crate::state::AppState;
use crate::store::write::{Image, Item};
use crate::store::ContextQuery;
use crate::time::Timestamp;
use futures::stream::{self, StreamExt, TryStreamExt};

/// Licenses read at once: one wave of reads for most users, bounded for users with very many.
pub(super) const LOADS_AT_ONCE: usize = 16;

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(serde::Serialize)]
#[cfg_attr(feature = "openapi", schema(as = UserLicense))]
pub(super) struct Entry<'a> {
    license: LicenseObject<'a>,
    user: UserObject<'a>,
}

pub async fn handle(req: &ApiRequest, state: &AppState, principal: Principal) -> Result<ApiResponse, ApiError> {
    let mut request = UserRequest::parse(&Params::from_query(req.query.as_deref())?)?;
    principal.ensure_product(&request.product)?;
    state
        .identity
        .resolve_credentials(&principal, &mut request.credentials)
        .await?;
    let crate::request::Credentials::User { username, .. } = &request.credentials else {
        return Err(ApiError::internal("credentials reached user_licenses unresolved"));
    };
    let q = ContextQuery {
        company: &principal.company,
        product: &request.product,
        key: None,
        hardware_id: None,
        user: Some(username),
    };
    let mut read = state.store.read_context(&q).await.map_err(ApiError::store)?;
    let product = lookup::user_product(read.product.take())?;
    let user = lookup::proven_user(read.user.take(), &request.credentials).await?;
    let company = read.company.take().unwrap_or_default();
    let addrs = license_ids(&user, &product).into_iter().map(|id| LicenseAddr::Id {
        company: principal.company.clone(),
        product: request.product.clone(),
        id,
    });
    let held: Vec<(LicenseContext, Seat)> = stream::iter(addrs)
        .map(|addr| license_and_seat(state, addr, &user))
        .buffered(LOADS_AT_ONCE)
        .try_filter_map(|found| async move { Ok(found) })
        .map_ok(|(license, seat)| (LicenseContext::new(product.clone(), company.clone(), license), seat))
        .try_collect()
        .await?;
    let now = Timestamp::now();
    let body: Vec<Entry> = held
        .iter()
        .map(|(ctx, seat)| Entry {
            license: listed_license(ctx, (&user, seat), now),
            user: user_object(&user, seat),
        })
        .collect();
    Ok(ApiResponse::signed_json(&body, &state.signer))
}

/// The ids of the user's licenses of the product: held on their own first, then bundle members.
fn license_ids(user: &LicenseUser, product: &ProductDoc) -> Vec<i64> {
    let own = user
        .licenses
        .iter()
        .filter(|(p, _)| *p == product.code)
        .map(|(_, id)| *id);
    let members = user
        .bundle_licenses
        .iter()
        .filter(|(p, _, _)| *p == product.code)
        .map(|(_, id, _)| *id);
    let mut ids: Vec<i64> = own.chain(members).collect();
    let mut seen = std::collections::HashSet::new();
    ids.retain(|id| seen.insert(*id));
    ids
}

/// A license and the user's seat on it; `None` when either is gone (a license removed from the catalog
/// after the user's record was read).
async fn license_and_seat(
    state: &AppState,
    addr: LicenseAddr,
    user: &LicenseUser,
) -> Result<Option<(License, Seat)>, ApiError> {
    let (license_item, seat_item) = (
        Item::License(addr.clone()),
        Item::Seat(addr.clone(), user.email.clone()),
    );
    let (license, seat) =
        futures::try_join!(state.store.load(&license_item), state.store.load(&seat_item)).map_err(ApiError::store)?;
    match (license, seat) {
        (Some(Image::License(license)), Some(Image::Seat(seat))) => Ok(Some((*license, seat))),
        (None, _) | (_, None) => Ok(None),
        _ => Err(ApiError::internal(format!(
            "{addr:?} or its seat read back as another kind of item"
        ))),
    }
}
