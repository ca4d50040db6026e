//! Listing a company's products, license users, API keys and OAuth clients
//! (docs/management-resources.md, *Lists*): `GET /products`, `/users`, `/api-keys`, `/oauth-clients`,
//! each a page `{"<plural>": [view…], "cursor": …}` of the views `show` answers (never a secret, hash or
//! password), ordered by code, email or id, read through one store mechanism (`Store::list_items`).
//! Reads only: no audit record.
//!
//! What a key restricted to some products sees: the products among them; every license user (users
//! belong to the company, as `GET /users/{email}` shows any); and only the API keys and OAuth clients
//! restricted to products it may name itself — never one that serves every product, which would show
//! a narrower key what a wider one can do.

use super::api_keys::ApiKeyView;
use super::license_users::UserView;
use super::oauth_clients::ClientView;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::ids::ProductCode;
use crate::model::ProductDoc;
use crate::state::Core;
use crate::store::listing::{ItemKind, DEFAULT_PAGE, MAX_PAGE};
use crate::store::write::Image;
use serde::{Deserialize, Serialize};

/// Every list's input: the page.
#[derive(Clone, Debug, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ListItems {
    /// The previous page's `cursor`, unchanged.
    pub cursor: Option<String>,
    /// 1 to 100; default 50.
    pub limit: Option<usize>,
}

/// `GET /products`: a page of the company's products.
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProductList {
    pub products: Vec<ProductDoc>,
    /// Pass it back to get the next page; `null`: this was the last.
    pub cursor: Option<String>,
}

/// `GET /users`: a page of the company's license users.
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UserList {
    pub users: Vec<UserView>,
    /// Pass it back to get the next page; `null`: this was the last.
    pub cursor: Option<String>,
}

/// `GET /api-keys`: a page of the company's License API keys.
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApiKeyList {
    pub api_keys: Vec<ApiKeyView>,
    /// Pass it back to get the next page; `null`: this was the last.
    pub cursor: Option<String>,
}

/// `GET /oauth-clients`: a page of the company's OAuth clients.
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ClientList {
    pub oauth_clients: Vec<ClientView>,
    /// Pass it back to get the next page; `null`: this was the last.
    pub cursor: Option<String>,
}

/// `GET /products`, restricted to the products the principal may name.
pub async fn list_products(state: &Core, principal: &Principal, input: ListItems) -> Result<ProductList, ApiError> {
    let (products, cursor) = page(state, principal, ItemKind::Products, input, |image| match image {
        Image::Product(p) if principal.allows(&p.code) => Some((**p).clone()),
        _ => None,
    })
    .await?;
    Ok(ProductList { products, cursor })
}

/// `GET /users`, `license-server user list`.
pub async fn list_users(state: &Core, principal: &Principal, input: ListItems) -> Result<UserList, ApiError> {
    let (users, cursor) = page(state, principal, ItemKind::Users, input, |image| match image {
        Image::User(u) => Some(UserView::from(&**u)),
        _ => None,
    })
    .await?;
    Ok(UserList { users, cursor })
}

/// `GET /api-keys`.
pub async fn list_api_keys(state: &Core, principal: &Principal, input: ListItems) -> Result<ApiKeyList, ApiError> {
    let (api_keys, cursor) = page(state, principal, ItemKind::ApiKeys, input, |image| match image {
        Image::ApiKey(k) if within(principal, &k.products) => Some(ApiKeyView::from(&**k)),
        _ => None,
    })
    .await?;
    Ok(ApiKeyList { api_keys, cursor })
}

/// `GET /oauth-clients`.
pub async fn list_oauth_clients(state: &Core, principal: &Principal, input: ListItems) -> Result<ClientList, ApiError> {
    let (oauth_clients, cursor) = page(state, principal, ItemKind::OAuthClients, input, |image| match image {
        Image::OAuthClient(c) if within(principal, &c.products) => Some(ClientView::from(&**c)),
        _ => None,
    })
    .await?;
    Ok(ClientList { oauth_clients, cursor })
}

/// Whether a credential serving `products` (empty: all) is one the principal may see (module header).
fn within(principal: &Principal, products: &[ProductCode]) -> bool {
    principal.products.is_empty() || (!products.is_empty() && products.iter().all(|p| principal.allows(p)))
}

/// The page size asked for: 1..=[`MAX_PAGE`], [`DEFAULT_PAGE`] when not given.
fn page_size(limit: Option<usize>) -> Result<usize, ApiError> {
    match limit.unwrap_or(DEFAULT_PAGE) {
        n @ 1..=MAX_PAGE => Ok(n),
        n => Err(ApiError::Validation(format!("limit: {n} is outside 1..={MAX_PAGE}"))),
    }
}

/// One page of the company's items of `kind`, each shown through `view` (`None`: hidden from the
/// principal), and the cursor of the next. A page may hold fewer than `limit` and still have a cursor.
async fn page<T>(
    state: &Core,
    principal: &Principal,
    kind: ItemKind,
    input: ListItems,
    view: impl Fn(&Image) -> Option<T>,
) -> Result<(Vec<T>, Option<String>), ApiError> {
    let limit = page_size(input.limit)?;
    let company = &principal.company;
    // Checked here so a foreign or mangled cursor is the caller's error, not the store's.
    kind.start_after(company, input.cursor.as_deref())
        .map_err(|e| ApiError::Validation(format!("cursor: {e}")))?;
    let found = state
        .store
        .list_items(kind, company, input.cursor.as_deref(), limit)
        .await
        .map_err(ApiError::store)?;
    Ok((found.items.iter().filter_map(view).collect(), found.cursor))
}
