//! The Management API's routes (docs/management.md): one table of method, path pattern and operation
//! under [`PREFIX`], served by the standalone server on its listener and by the `management` Lambda
//! function. Adding an operation is one row of [`ROUTES`]. A request is answered in this order: the
//! route (`404`, `405`), the management key (`401`, `403` for a read-only key on a write), the input —
//! path parameters, the query's and the JSON body's fields as one object, typed by the operation's
//! input struct (`400`) — and the operation.

use super::idempotency::{self, Pending};
use super::{
    api_keys, at_paths, devices, keys, license_users, licenses, lists, oauth_clients, products, search, trail, users,
};
use crate::auth::{bearer_token, Access, Principal};
use crate::error::ApiError;
use crate::http::{ApiRequest, ApiResponse, JSON};
use crate::request::MAX_BODY_BYTES;
use crate::state::Core;
use bytes::Bytes;
use futures::future::BoxFuture;
use http::Method;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};

/// Where the Management API lives.
pub const PREFIX: &str = "/api/management/v1";

/// An operation behind a route: its input as one JSON object, its output as JSON.
pub type Run = for<'a> fn(&'a Core, &'a Principal, Value) -> BoxFuture<'a, Result<Value, ApiError>>;

/// One route: `path` under [`PREFIX`], `{name}` segments naming the input fields they carry.
pub struct Route {
    pub method: Method,
    pub path: &'static str,
    /// The status of a success: 201 for a create.
    pub status: u16,
    /// Takes an `Idempotency-Key` (`management::idempotency`).
    pub idempotent: bool,
    /// Its answer holds a secret shown once: an idempotent answer is recorded sealed.
    pub secret: bool,
    pub run: Run,
    /// The operation's input and output schemas, from its own types (`management::openapi`).
    #[cfg(feature = "openapi")]
    pub io: super::openapi::Io,
}

impl Route {
    /// Reads may use read-only keys; everything else changes state.
    pub fn access(&self) -> Access {
        if self.method == Method::GET {
            Access::Read
        } else {
            Access::Write
        }
    }
}

/// A [`Run`] of `op`: the input typed as the operation's, the output as JSON.
macro_rules! op {
    ($op:path) => {
        |state, principal, input| Box::pin(async move { output(&$op(state, principal, typed(input)?).await?) })
    };
}

macro_rules! route {
    ($method:ident $path:literal => $status:literal $op:path) => {
        route!(@ $method $path, $status, $op, false, false)
    };
    ($method:ident $path:literal => $status:literal $op:path, idempotent) => {
        route!(@ $method $path, $status, $op, true, false)
    };
    ($method:ident $path:literal => $status:literal $op:path, idempotent, secret) => {
        route!(@ $method $path, $status, $op, true, true)
    };
    (@ $method:ident $path:literal, $status:literal, $op:path, $idempotent:literal, $secret:literal) => {
        Route {
            method: Method::$method,
            path: $path,
            status: $status,
            idempotent: $idempotent,
            secret: $secret,
            run: op!($op),
            #[cfg(feature = "openapi")]
            io: |schemas| super::openapi::io_of(schemas, $op),
        }
    };
}

/// Every route of the Management API.
pub static ROUTES: &[Route] = &[
    route!(POST "/keys" => 201 keys::create, idempotent, secret),
    route!(GET "/keys" => 200 keys::list),
    route!(POST "/keys/{id}/revoke" => 200 keys::revoke),
    route!(POST "/products/{product}/licenses" => 201 licenses::create, idempotent),
    route!(GET "/products/{product}/licenses/{key}" => 200 licenses::show),
    route!(PATCH "/products/{product}/licenses/{key}" => 200 licenses::update),
    route!(DELETE "/products/{product}/licenses/{key}" => 200 licenses::delete),
    route!(POST "/products/{product}/licenses/{key}/disable" => 200 licenses::disable),
    route!(POST "/products/{product}/licenses/{key}/enable" => 200 licenses::enable),
    route!(POST "/products" => 201 products::create, idempotent),
    route!(GET "/products/{product}" => 200 products::show),
    route!(PATCH "/products/{product}" => 200 products::update),
    route!(DELETE "/products/{product}" => 200 products::delete),
    route!(GET "/products" => 200 lists::list_products),
    route!(POST "/users" => 201 license_users::create, idempotent),
    route!(GET "/users/{email}" => 200 license_users::show),
    route!(PATCH "/users/{email}" => 200 license_users::update),
    route!(DELETE "/users/{email}" => 200 license_users::delete),
    route!(PUT "/users/{email}/password" => 200 users::set_password),
    route!(GET "/users" => 200 lists::list_users),
    route!(POST "/users/{email}/disable" => 200 license_users::disable),
    route!(POST "/users/{email}/enable" => 200 license_users::enable),
    route!(POST "/api-keys" => 201 api_keys::create, idempotent, secret),
    route!(GET "/api-keys/{api_key}" => 200 api_keys::show),
    route!(POST "/api-keys/{api_key}/revoke" => 200 api_keys::revoke),
    route!(GET "/api-keys" => 200 lists::list_api_keys),
    route!(PATCH "/api-keys/{api_key}" => 200 api_keys::update),
    route!(DELETE "/api-keys/{api_key}" => 200 api_keys::delete),
    route!(POST "/oauth-clients" => 201 oauth_clients::create, idempotent, secret),
    route!(GET "/oauth-clients/{client_id}" => 200 oauth_clients::show),
    route!(POST "/oauth-clients/{client_id}/revoke" => 200 oauth_clients::revoke),
    route!(GET "/oauth-clients" => 200 lists::list_oauth_clients),
    route!(PATCH "/oauth-clients/{client_id}" => 200 oauth_clients::update),
    route!(DELETE "/oauth-clients/{client_id}" => 200 oauth_clients::delete),
    route!(GET "/audit" => 200 trail::query),
    route!(GET "/licenses" => 200 search::list_licenses),
    route!(GET "/licenses/search" => 200 search::search_licenses),
    route!(GET "/products/{product}/licenses/{key}/devices" => 200 at_paths::list_devices),
    route!(POST "/products/{product}/licenses/{key}/devices/{hardware_id}/deactivate" => 200 at_paths::deactivate_device),
    route!(POST "/products/{product}/licenses/{key}/devices/reset" => 200 at_paths::reset_devices),
    route!(POST "/products/{product}/licenses/{key}/reset-transfers" => 200 at_paths::reset_transfers),
    route!(POST "/products/{product}/licenses/{key}/users/{email}" => 200 at_paths::assign_user),
    route!(DELETE "/products/{product}/licenses/{key}/users/{email}" => 200 at_paths::unassign_user),
    route!(POST "/blacklist" => 200 devices::blacklist_device),
];

/// How a query parameter that is not a string is read.
type ReadQuery = fn(&str) -> Option<Value>;

/// Query parameters that are not strings: how each is read.
const TYPED_QUERY: &[(&str, ReadQuery)] = &[
    ("limit", |v| v.parse::<u64>().ok().map(Value::from)),
    ("force", |v| v.parse::<bool>().ok().map(Value::from)),
    ("license_id", |v| v.parse::<i64>().ok().map(Value::from)),
];

fn typed<T: DeserializeOwned>(input: Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(input).map_err(|e| {
        let at = e.path().to_string();
        let at = if at == "." { String::new() } else { format!("{at}: ") };
        ApiError::Validation(format!("{at}{}", e.inner()))
    })
}

fn output<T: Serialize>(value: &T) -> Result<Value, ApiError> {
    serde_json::to_value(value).map_err(ApiError::internal)
}

/// Answers a request under [`PREFIX`]; every failure in the SPEC's error shape.
pub async fn handle(state: &Core, req: &ApiRequest) -> ApiResponse {
    let answered = if req.method == Method::OPTIONS {
        preflight(req)
    } else {
        answer(state, req).await
    };
    let resp = answered.unwrap_or_else(|e| ApiResponse::error(&e));
    ApiResponse {
        allow_origin: state.management_cors.allowed(req),
        ..resp
    }
}

/// A CORS preflight: `204` on a route's path (the CORS headers only if the origin is allowed), the
/// router's `404` elsewhere.
fn preflight(req: &ApiRequest) -> Result<ApiResponse, ApiError> {
    let path = req.path.strip_prefix(PREFIX).ok_or(ApiError::NotFound)?;
    match find(&req.method, path) {
        Err(ApiError::NotFound) => Err(ApiError::NotFound),
        _ => Ok(ApiResponse {
            status: 204,
            preflight: true,
            ..json(204, "")
        }),
    }
}

async fn answer(state: &Core, req: &ApiRequest) -> Result<ApiResponse, ApiError> {
    let path = req.path.strip_prefix(PREFIX).ok_or(ApiError::NotFound)?;
    let (route, params) = find(&req.method, path)?;
    // The standalone server bounds bodies as it reads them; a Lambda function gets the gateway's.
    if req.body.len() > MAX_BODY_BYTES {
        return Err(ApiError::PayloadTooLarge(MAX_BODY_BYTES));
    }
    let token = req
        .headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token)
        .ok_or(ApiError::InvalidManagementKey)?;
    let principal = keys::verify(state, token, route.access()).await?;
    let input = input(req.query.as_deref(), &req.body, params)?;
    let key = if route.idempotent {
        idempotency::key_of(&req.headers)?
    } else {
        None
    };
    let Some(key) = key else {
        let value = (route.run)(state, &principal, input).await?;
        return Ok(json(route.status, &value.to_string()));
    };
    let pending = Pending::new(state, route, principal.company.clone(), key, idempotency::digest(req))?;
    if let Some((status, answer)) = pending.recorded(state).await? {
        return Ok(json(status, &answer));
    }
    match pending.clone().scope((route.run)(state, &principal, input)).await {
        Ok(value) => Ok(json(route.status, &value.to_string())),
        // Refused because an identical request with the key won the race: its answer.
        Err(e) => match pending.recorded(state).await? {
            Some((status, answer)) => Ok(json(status, &answer)),
            None => Err(e),
        },
    }
}

/// Runs the route of `method` and `target` (a path under [`PREFIX`], without it, and its query) as
/// `principal` with `body`: `license-server manage`, which acts as the command line, so no management
/// key is checked. Answers the route's success status and body.
pub async fn run_as(
    state: &Core,
    principal: &Principal,
    method: &Method,
    target: &str,
    body: &[u8],
) -> Result<(u16, Value), ApiError> {
    let (path, query) = match target.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (target, None),
    };
    let (route, params) = find(method, path)?;
    let input = input(query, body, params)?;
    Ok((route.status, (route.run)(state, principal, input).await?))
}

/// The route for `path` and the values of its `{name}` segments: `404` when no pattern matches,
/// `405` when only another method's does.
pub fn find(method: &Method, path: &str) -> Result<(&'static Route, Map<String, Value>), ApiError> {
    let mut other_method = false;
    for route in ROUTES {
        if let Some(params) = matches(route.path, path)? {
            if route.method == *method {
                return Ok((route, params));
            }
            other_method = true;
        }
    }
    Err(if other_method {
        ApiError::MethodNotAllowed
    } else {
        ApiError::NotFound
    })
}

/// The `{name}` values if `path` has the pattern's shape (segments percent-decoded).
fn matches(pattern: &str, path: &str) -> Result<Option<Map<String, Value>>, ApiError> {
    let (want, got): (Vec<&str>, Vec<&str>) = (pattern.split('/').collect(), path.split('/').collect());
    if want.len() != got.len() {
        return Ok(None);
    }
    let mut params = Map::new();
    for (w, g) in want.iter().zip(&got) {
        match w.strip_prefix('{').and_then(|n| n.strip_suffix('}')) {
            Some(_) if g.is_empty() => return Ok(None),
            Some(name) => {
                params.insert(name.to_owned(), Value::String(decode(g)?));
            }
            None if w != g => return Ok(None),
            None => {}
        }
    }
    Ok(Some(params))
}

fn decode(segment: &str) -> Result<String, ApiError> {
    let bytes: Vec<u8> = url::form_urlencoded::parse(format!("v={}", segment.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned().into_bytes())
        .unwrap_or_default();
    String::from_utf8(bytes).map_err(|_| ApiError::Validation("the path is not UTF-8".into()))
}

/// The operation's input: the path's parameters, the query's and the body's fields; a name given
/// twice is refused rather than one silently winning.
fn input(query: Option<&str>, body: &[u8], mut fields: Map<String, Value>) -> Result<Value, ApiError> {
    let mut add = |name: String, value: Value, from: &str| {
        if fields.contains_key(&name) {
            return Err(ApiError::Validation(format!("{from} {name}: given twice")));
        }
        fields.insert(name, value);
        Ok(())
    };
    for (name, value) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        let typed = TYPED_QUERY
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, read)| read(&value));
        let value = match typed {
            Some(Some(v)) => v,
            Some(None) => return Err(ApiError::Validation(format!("query {name}: `{value}` is not valid"))),
            None => Value::String(value.into_owned()),
        };
        add(name.into_owned(), value, "query")?;
    }
    if !body.iter().all(u8::is_ascii_whitespace) {
        let body: Value = serde_json::from_slice(body).map_err(|e| ApiError::InvalidJson(e.to_string()))?;
        let Value::Object(body) = body else {
            return Err(ApiError::Validation("the body must be a JSON object".into()));
        };
        for (name, value) in body {
            add(name, value, "body")?;
        }
    }
    Ok(Value::Object(fields))
}

fn json(status: u16, body: &str) -> ApiResponse {
    ApiResponse {
        status,
        content_type: JSON,
        signature: None,
        body: Bytes::from(body.to_owned()),
        error_code: None,
        no_store: false,
        challenge: None,
        allow_origin: None,
        preflight: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_finds_its_route_and_parameters_or_404_or_405() {
        let (route, params) = find(&Method::GET, "/products/app/licenses/K%2F1").unwrap();
        assert_eq!(route.path, "/products/{product}/licenses/{key}");
        assert_eq!(params["product"], "app");
        assert_eq!(params["key"], "K/1");
        assert!(matches!(find(&Method::PUT, "/keys"), Err(ApiError::MethodNotAllowed)));
        for missing in ["/nope", "/keys/x", "/products//licenses/k", "/products/a/licenses/k/x"] {
            assert!(
                matches!(find(&Method::GET, missing), Err(ApiError::NotFound)),
                "{missing}"
            );
        }
    }

    #[test]
    fn a_preflight_allows_every_method_a_route_takes() {
        let (_, allowed) = super::super::cors::PREFLIGHT_HEADERS[0];
        for route in ROUTES {
            let method = route.method.as_str();
            assert!(
                allowed.split(", ").any(|m| m == method),
                "{method} {}: not in `{allowed}`",
                route.path
            );
        }
    }

    #[test]
    fn every_route_is_unique() {
        for (i, a) in ROUTES.iter().enumerate() {
            assert!(
                !ROUTES[..i].iter().any(|b| b.method == a.method && b.path == a.path),
                "{} {}",
                a.method,
                a.path
            );
        }
    }
}
