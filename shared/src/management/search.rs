//! Listing and searching a company's licenses (docs/management-listing.md): `list_licenses` pages
//! through them (optionally of one product), `search_licenses` finds them by license key, customer
//! email, order id or hardware id. Both answer a page `{ "licenses": [summary…], "cursor": … }`; the
//! cursor is opaque and continues the same query. Reads only: no audit record.

use crate::auth::Principal;
use crate::error::ApiError;
use crate::ids::{HardwareId, LicenseKey, OrderId, ProductCode, Username};
use crate::model::{License, LicenseSource};
use crate::state::Core;
use crate::store::listing::{self, LicenseQuery, LicenseSearch};
use crate::store::Store;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};

/// `list_licenses`' input.
#[derive(Clone, Debug, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ListLicenses {
    pub product: Option<ProductCode>,
    /// The previous page's `cursor`.
    pub cursor: Option<String>,
    /// 1 to [`listing::MAX_PAGE`]; default [`listing::DEFAULT_PAGE`].
    pub limit: Option<usize>,
}

/// `search_licenses`' input: exactly one of `key`, `email`, `order_id`, `hardware_id`.
#[derive(Clone, Debug, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SearchLicenses {
    pub product: Option<ProductCode>,
    pub key: Option<LicenseKey>,
    /// The customer's email, compared case-insensitively.
    pub email: Option<Username>,
    pub order_id: Option<OrderId>,
    pub hardware_id: Option<HardwareId>,
    pub cursor: Option<String>,
    pub limit: Option<usize>,
}

/// What a page says of each license.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LicenseSummary {
    pub id: i64,
    pub product: ProductCode,
    pub license_key: Option<LicenseKey>,
    pub enabled: bool,
    pub is_trial: bool,
    /// Who created it: `catalog`, `trial`, `management`, or `null` (stored before provenance was kept).
    pub source: Option<LicenseSource>,
    pub customer_email: Option<String>,
    pub order_id: Option<String>,
    pub times_activated: i64,
    pub max_activations: i64,
    pub validity_period: Option<Timestamp>,
}

/// One page of licenses.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LicensePage {
    pub licenses: Vec<LicenseSummary>,
    /// Pass it back to get the next page; `null`: this was the last.
    pub cursor: Option<String>,
}

impl LicenseSummary {
    pub fn of(l: &License) -> Self {
        Self {
            id: l.id,
            product: l.product.clone(),
            license_key: l.key.clone(),
            enabled: l.enabled,
            is_trial: l.terms.is_trial,
            source: l.source,
            customer_email: l.terms.customer.email.clone(),
            order_id: l.terms.order_store_id.clone(),
            times_activated: l.times_activated,
            max_activations: l.max_activations,
            validity_period: l.validity_period,
        }
    }
}

/// A page of the company's licenses, in storage order.
pub async fn list_licenses(state: &Core, principal: &Principal, input: ListLicenses) -> Result<LicensePage, ApiError> {
    list_licenses_in(&*state.store, principal, input).await
}

/// A page of the company's licenses that match the one search term given.
pub async fn search_licenses(
    state: &Core,
    principal: &Principal,
    input: SearchLicenses,
) -> Result<LicensePage, ApiError> {
    search_licenses_in(&*state.store, principal, input).await
}

/// [`list_licenses`] on a store alone: reads need nothing else of the state, and the command line
/// then opens no signing key.
pub async fn list_licenses_in(
    store: &dyn Store,
    principal: &Principal,
    input: ListLicenses,
) -> Result<LicensePage, ApiError> {
    let query = scoped(principal, input.product, None)?;
    page(store, principal, &query, input.cursor, input.limit).await
}

/// [`search_licenses`] on a store alone (see [`list_licenses_in`]).
pub async fn search_licenses_in(
    store: &dyn Store,
    principal: &Principal,
    input: SearchLicenses,
) -> Result<LicensePage, ApiError> {
    let terms = [
        input.key.map(LicenseSearch::Key),
        input.email.map(LicenseSearch::Email),
        input.order_id.map(LicenseSearch::OrderId),
        input.hardware_id.map(LicenseSearch::HardwareId),
    ];
    let mut given = terms.into_iter().flatten();
    let (Some(search), None) = (given.next(), given.next()) else {
        return Err(ApiError::Validation(
            "give exactly one of key, email, order_id and hardware_id to search by".into(),
        ));
    };
    let query = scoped(principal, input.product, Some(search))?;
    page(store, principal, &query, input.cursor, input.limit).await
}

/// The query within what the principal may see: its company, and a product it may name.
fn scoped(
    principal: &Principal,
    product: Option<ProductCode>,
    search: Option<LicenseSearch>,
) -> Result<LicenseQuery, ApiError> {
    if let Some(p) = &product {
        principal.ensure_product(p)?;
    }
    Ok(LicenseQuery {
        company: principal.company.clone(),
        product,
        search,
    })
}

async fn page(
    store: &dyn Store,
    principal: &Principal,
    query: &LicenseQuery,
    cursor: Option<String>,
    limit: Option<usize>,
) -> Result<LicensePage, ApiError> {
    let limit = match limit {
        None => listing::DEFAULT_PAGE,
        Some(n @ 1..=listing::MAX_PAGE) => n,
        Some(_) => {
            return Err(ApiError::Validation(format!(
                "limit must be between 1 and {}",
                listing::MAX_PAGE
            )))
        }
    };
    // Checked here so a foreign or mangled cursor is the caller's error, not the store's.
    query
        .start_after(cursor.as_deref())
        .map_err(|e| ApiError::Validation(e.to_string()))?;
    let found = store
        .find_licenses(query, cursor.as_deref(), limit)
        .await
        .map_err(ApiError::store)?;
    Ok(LicensePage {
        // A key restricted to some products sees only theirs, even in a listing of every product.
        licenses: found
            .licenses
            .iter()
            .filter(|l| principal.allows(&l.product))
            .map(LicenseSummary::of)
            .collect(),
        cursor: found.cursor,
    })
}
