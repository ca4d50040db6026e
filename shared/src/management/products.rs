//! Products through the Management API (docs/management.md, *Products*): `/products/{product}`. A
//! product's fields are the catalog's product entry (docs/catalog.md), checked by the catalog's own code
//! ([`crate::catalog::product_of_entry`]), so a product is defined once; bundles stay the catalog's.
//!
//! Every change replaces the product's document on the condition that it is still as read, with its
//! audit record in the same write ([`super::guarded::rewrite`]): a lost race decides again.
//!
//! `GET /products` lists them ([`super::lists`]).

use super::guarded::{self, Decision};
use crate::audit::Change;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::ids::ProductCode;
use crate::model::ProductDoc;
use crate::state::Core;
use crate::store::listing::LicenseQuery;
use crate::store::write::{create_or_replace, Action, Image, Item, Write};
use serde::Deserialize;
use serde_json::{Map, Value};

/// `POST /products`: the catalog's product entry.
#[derive(Clone, Debug, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreateProduct {
    #[serde(flatten)]
    pub entry: Map<String, Value>,
}

/// One product: `/products/{product}`.
#[derive(Clone, Debug, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ProductRef {
    pub product: ProductCode,
}

/// `PATCH /products/{product}`: the catalog fields to change.
#[derive(Clone, Debug, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UpdateProduct {
    pub product: ProductCode,
    #[serde(flatten)]
    pub fields: Map<String, Value>,
}

/// A catalog error as the Management API's `validation_error`, naming the field.
pub(super) fn invalid(e: crate::catalog::CatalogError) -> ApiError {
    ApiError::Validation(format!("{}: {}", e.path, e.message))
}

fn item(principal: &Principal, code: &ProductCode) -> Item {
    Item::Product(principal.company.clone(), code.clone())
}

fn unknown(code: &ProductCode) -> ApiError {
    ApiError::UnknownResource(format!("product {code}"))
}

/// The product as stored, if there is one.
fn stored(image: Option<&Image>) -> Result<Option<ProductDoc>, ApiError> {
    match image {
        None => Ok(None),
        Some(Image::Product(doc)) => Ok(Some((**doc).clone())),
        Some(_) => Err(ApiError::internal("a product read back as another kind of item")),
    }
}

fn change(action: &'static str, code: &ProductCode, detail: Value) -> Change {
    Change {
        action,
        subject: format!("product:{code}"),
        detail,
    }
}

/// `POST /products`, `license-server product create`: refused (409) if the code is taken.
pub async fn create(state: &Core, principal: &Principal, input: CreateProduct) -> Result<ProductDoc, ApiError> {
    let product = crate::catalog::product_of_entry("body", Value::Object(input.entry)).map_err(invalid)?;
    principal.ensure_product(&product.code)?;
    let at = item(principal, &product.code);
    let detail = serde_json::json!({ "id": product.id, "name": product.name });
    let (created, _) = guarded::rewrite(state, principal, &at, |image| {
        if image.is_some() {
            return Err(ApiError::AlreadyExists(format!("product {}", product.code)));
        }
        let new = Image::Product(Box::new(product.clone()));
        let write = Write {
            items: vec![create_or_replace(at.clone(), None, new)],
        };
        let change = change("product.create", &product.code, detail.clone());
        Ok(Decision::Write(write, change, product.clone()))
    })
    .await?;
    Ok(created)
}

/// `GET /products/{product}`.
pub async fn show(state: &Core, principal: &Principal, input: ProductRef) -> Result<ProductDoc, ApiError> {
    principal.ensure_product(&input.product)?;
    let image = state
        .store
        .load(&item(principal, &input.product))
        .await
        .map_err(ApiError::store)?;
    stored(image.as_ref())?.ok_or_else(|| unknown(&input.product))
}

/// `PATCH /products/{product}`: the given catalog fields replace the product's; `code`, `id` and
/// `authorization_method` stay.
pub async fn update(state: &Core, principal: &Principal, input: UpdateProduct) -> Result<ProductDoc, ApiError> {
    principal.ensure_product(&input.product)?;
    // The authorization method decides where the product's licenses are stored and how they are
    // named: changing it would strand every license the product has.
    for fixed in ["id", "code", "short_code", "authorization_method"] {
        if input.fields.contains_key(fixed) {
            return Err(ApiError::Validation(format!("body.{fixed}: cannot be changed")));
        }
    }
    let at = item(principal, &input.product);
    let detail = Value::Array(input.fields.keys().map(|k| Value::from(k.as_str())).collect());
    let (updated, _) = guarded::rewrite(state, principal, &at, |image| {
        let old = stored(image.as_ref())?.ok_or_else(|| unknown(&input.product))?;
        let mut entry = match serde_json::to_value(&old) {
            Ok(Value::Object(entry)) => entry,
            _ => return Err(ApiError::internal("a product did not serialise as an object")),
        };
        entry.extend(input.fields.clone());
        let new = crate::catalog::product_of_entry("body", Value::Object(entry)).map_err(invalid)?;
        if serde_json::to_value(&new).ok() == serde_json::to_value(&old).ok() {
            return Ok(Decision::Unchanged(new));
        }
        let write = Write {
            items: vec![create_or_replace(
                at.clone(),
                image,
                Image::Product(Box::new(new.clone())),
            )],
        };
        let detail = serde_json::json!({ "fields": detail.clone() });
        Ok(Decision::Write(
            write,
            change("product.update", &input.product, detail),
            new,
        ))
    })
    .await?;
    Ok(updated)
}

/// `DELETE /products/{product}`: refused (409 `resource_in_use`) while the product has licenses.
/// Licenses are items of their own, so a license created between the check and the delete (a trial)
/// is not seen: the License API then answers `unknown_product` for it (docs/management-resources.md).
pub async fn delete(state: &Core, principal: &Principal, input: ProductRef) -> Result<ProductDoc, ApiError> {
    principal.ensure_product(&input.product)?;
    let query = LicenseQuery {
        company: principal.company.clone(),
        product: Some(input.product.clone()),
        search: None,
    };
    let found = state
        .store
        .find_licenses(&query, None, 1)
        .await
        .map_err(ApiError::store)?;
    if !found.licenses.is_empty() {
        return Err(ApiError::ResourceInUse(format!(
            "product {} has licenses: delete them first",
            input.product
        )));
    }
    let at = item(principal, &input.product);
    let (deleted, _) = guarded::rewrite(state, principal, &at, |image| {
        let old = stored(image.as_ref())?.ok_or_else(|| unknown(&input.product))?;
        let mut write = create_or_replace(at.clone(), image, Image::Product(Box::new(old.clone())));
        write.action = Action::Delete;
        let change = change("product.delete", &input.product, Value::Null);
        Ok(Decision::Write(Write { items: vec![write] }, change, old))
    })
    .await?;
    Ok(deleted)
}

/// Most products one API key or OAuth client entry names: each is read to check it exists.
pub const MAX_NAMED_PRODUCTS: usize = 100;

/// The products an entry's `products` names that exist, for the catalog's check of the entry (which
/// names a missing one); more than [`MAX_NAMED_PRODUCTS`] is refused before any is read.
pub(super) async fn named(
    state: &Core,
    principal: &Principal,
    entry: &Map<String, Value>,
) -> Result<std::collections::BTreeMap<ProductCode, ProductDoc>, ApiError> {
    let names = entry
        .get("products")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    if names.len() > MAX_NAMED_PRODUCTS {
        return Err(ApiError::Validation(format!(
            "body.products: at most {MAX_NAMED_PRODUCTS} products"
        )));
    }
    let mut found = std::collections::BTreeMap::new();
    for code in names
        .iter()
        .filter_map(Value::as_str)
        .filter_map(|c| ProductCode::parse(c).ok())
    {
        let image = state
            .store
            .load(&item(principal, &code))
            .await
            .map_err(ApiError::store)?;
        if let Some(doc) = stored(image.as_ref())? {
            found.insert(code, doc);
        }
    }
    Ok(found)
}

/// Refuses (`validation_error`) a list of products of which one does not exist, or more than
/// [`MAX_NAMED_PRODUCTS`].
pub(super) async fn ensure_exist(state: &Core, principal: &Principal, codes: &[ProductCode]) -> Result<(), ApiError> {
    let names = codes.iter().map(|c| Value::from(c.as_str())).collect();
    let entry = Map::from_iter([("products".to_owned(), Value::Array(names))]);
    let found = named(state, principal, &entry).await?;
    match codes.iter().find(|c| !found.contains_key(*c)) {
        Some(missing) => Err(ApiError::Validation(format!(
            "body.products: unknown product `{missing}`"
        ))),
        None => Ok(()),
    }
}
