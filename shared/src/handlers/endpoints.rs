//! The endpoint table: the one place an endpoint is declared — its name, path, method, access, input,
//! handler, and the DynamoDB actions its Lambda function's role needs. [`endpoints!`] expands it into
//! the [`Endpoint`] enum and its lookups, the run-time dispatch [`handle`] of the local server and the
//! tests, one [`Handler`] type per endpoint (in [`function`]) for the Lambda binaries, and the
//! [`Descriptor`] table from which `license-server generate` writes the function crates, the
//! `cargo lambda watch` routes in Cargo.toml and the functions of template.yaml. Adding an endpoint:
//! docs/contributing.md.

use crate::auth::{Access, Principal};
use crate::error::ApiError;
use crate::http::{ApiRequest, ApiResponse};
use crate::state::AppState;
use http::Method;
use std::future::Future;
use std::time::SystemTime;

/// What a request to an endpoint carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Input {
    /// Nothing is read.
    Nothing,
    /// License parameters: the query string for GET and HEAD, a JSON body otherwise.
    Params,
    /// An offline request file (SPEC §6.1): base64 text, raw or in a multipart `file` part.
    Upload,
    /// An `application/x-www-form-urlencoded` body: the OAuth token request (RFC 6749 §4.4).
    Form,
}

/// A DynamoDB action a function's role may perform on the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DynamoDbAction {
    GetItem,
    BatchGetItem,
    Query,
    PutItem,
    UpdateItem,
    DeleteItem,
    ConditionCheckItem,
}

impl DynamoDbAction {
    /// The IAM action name, e.g. `dynamodb:GetItem`.
    pub fn iam(self) -> String {
        format!("dynamodb:{self:?}")
    }
}

/// One row of the endpoint table, for code that iterates endpoints (the generator, the tests).
#[derive(Debug)]
pub struct Descriptor {
    pub endpoint: Endpoint,
    /// Snake case; the name of the Lambda function (and binary) of an endpoint that has its own.
    pub name: &'static str,
    pub path: &'static str,
    /// The method it serves; a GET endpoint serves HEAD too.
    pub method: Method,
    /// `None`: no API key needed. `Some(Write)`: read-only keys are refused.
    pub access: Option<Access>,
    pub input: Input,
    /// Its handler: a function of a module under `handlers`, e.g. `activate::handle`.
    pub handler: &'static str,
    /// The endpoint whose Lambda function serves this one: itself, but for the root probe.
    pub function: Endpoint,
    /// What the function's role may do on the table (only for endpoints that have their own function).
    pub dynamodb: &'static [DynamoDbAction],
    /// Why those actions: one transaction needs the action of every item it touches.
    pub dynamodb_why: &'static str,
}

impl Descriptor {
    /// Whether this endpoint has a Lambda function of its own.
    pub fn has_function(&self) -> bool {
        self.function == self.endpoint
    }

    /// Every method it serves: its own, and HEAD where that is GET.
    pub fn methods(&self) -> Vec<Method> {
        let mut methods = vec![self.method.clone()];
        if self.method == Method::GET {
            methods.push(Method::HEAD);
        }
        methods
    }
}

/// An endpoint's handler as a type, so that a Lambda binary naming one (`lambda::run`) links only that
/// handler; [`handle`] dispatches to them at run time for the local server and the tests.
pub trait Handler: Copy + Send + Sync + 'static {
    const ENDPOINT: Endpoint;
    /// Serves a request of a method the endpoint takes. An endpoint with an access authenticates the
    /// request with it first, here and nowhere else, and its handler gets who is calling (a
    /// [`Principal`]); one without (the root probe) gets no one.
    fn call(self, req: &ApiRequest, state: &AppState) -> impl Future<Output = Result<ApiResponse, ApiError>> + Send;
}

/// Expands the table below; see the module header.
macro_rules! endpoints {
    ($(
        $(#[doc = $doc:literal])*
        $variant:ident {
            name: $name:literal,
            path: $path:literal,
            method: $method:ident,
            access: $access:ident,
            input: $input:ident,
            handler: $module:ident::$function:ident,
            $(served_by: $host:ident,)?
            $(dynamodb: [$($action:ident),* $(,)?], why: $why:literal,)?
        }
    )*) => {
        /// Every endpoint this server implements, in the order of the table.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Endpoint {
            $($(#[doc = $doc])* $variant,)*
        }

        /// The table, in the order of [`Endpoint`].
        pub static TABLE: [Descriptor; COUNT] = [$(
            Descriptor {
                endpoint: Endpoint::$variant,
                name: $name,
                path: $path,
                method: Method::$method,
                access: endpoints!(@access $access),
                input: Input::$input,
                handler: concat!(stringify!($module), "::", stringify!($function)),
                function: endpoints!(@host $variant $($host)?),
                dynamodb: &[$($(DynamoDbAction::$action),*)?],
                dynamodb_why: concat!("", $($why)?),
            },
        )*];

        const COUNT: usize = [$(stringify!($variant)),*].len();

        impl Endpoint {
            pub const ALL: [Endpoint; COUNT] = [$(Self::$variant),*];
        }

        /// One type per endpoint, each the [`Handler`] of its endpoint.
        pub mod function {
            $(
                #[doc = concat!("The handler of `", $path, "`.")]
                #[derive(Clone, Copy, Debug)]
                pub struct $variant;
            )*
        }

        $(
            impl Handler for function::$variant {
                const ENDPOINT: Endpoint = Endpoint::$variant;
                fn call(
                    self,
                    req: &ApiRequest,
                    state: &AppState,
                ) -> impl Future<Output = Result<ApiResponse, ApiError>> + Send {
                    endpoints!(@call $access $module::$function, req, state)
                }
            }
        )*

        /// Serves one request for a known endpoint.
        pub async fn handle(endpoint: Endpoint, req: &ApiRequest, state: &AppState) -> ApiResponse {
            match endpoint {
                $(Endpoint::$variant => handle_with(function::$variant, req, state).await,)*
            }
        }
    };
    (@access None) => { None };
    (@access $access:ident) => { Some(Access::$access) };
    (@call None $module:ident::$function:ident, $req:ident, $state:ident) => {
        super::$module::$function($req, $state)
    };
    (@call $access:ident $module:ident::$function:ident, $req:ident, $state:ident) => {
        async move {
            let principal = authenticate($req, $state, Access::$access).await?;
            super::$module::$function($req, $state, principal).await
        }
    };
    (@host $variant:ident) => { Endpoint::$variant };
    (@host $variant:ident $host:ident) => { Endpoint::$host };
}

endpoints! {
    /// `GET /`: the "is online" probe. The gateway routes it to check_license's function; every
    /// function answers it.
    Root {
        name: "root",
        path: "/",
        method: GET,
        access: None,
        input: Nothing,
        handler: endpoints::root,
        served_by: CheckLicense,
    }
    ActivateLicense {
        name: "activate_license",
        path: "/api/v4/activate_license",
        method: POST,
        access: Write,
        input: Params,
        handler: activate::handle,
        dynamodb: [GetItem, BatchGetItem, Query, PutItem, UpdateItem, DeleteItem],
        why: "One TransactWriteItems needs the action of each item it touches: put the device, update the \
              license and seat, delete a released-slot marker (Query finds one).",
    }
    DeactivateLicense {
        name: "deactivate_license",
        path: "/api/v4/deactivate_license",
        method: POST,
        access: Write,
        input: Params,
        handler: deactivate::handle,
        dynamodb: [GetItem, BatchGetItem, PutItem, UpdateItem],
        why: "Updates device, license and seat; puts the released-slot marker.",
    }
    CheckLicense {
        name: "check_license",
        path: "/api/v4/check_license",
        method: GET,
        access: Read,
        input: Params,
        handler: check::handle,
        dynamodb: [GetItem, BatchGetItem, UpdateItem, ConditionCheckItem],
        why: "The check's write: condition checks on product, company, license and seat, the device updated \
              (and a floating cloud license's slots).",
    }
    FloatingBorrow {
        name: "floating_borrow",
        path: "/api/v4/floating/borrow",
        method: POST,
        access: Write,
        input: Params,
        handler: floating_borrow::handle,
        dynamodb: [GetItem, BatchGetItem, UpdateItem],
        why: "Reads license and device; updates the license's floating cloud slots.",
    }
    FloatingRelease {
        name: "floating_release",
        path: "/api/v4/floating/release",
        method: POST,
        access: Write,
        input: Params,
        handler: floating_release::handle,
        dynamodb: [GetItem, BatchGetItem, UpdateItem],
        why: "Reads license and device; updates the license's floating cloud slots.",
    }
    ActivateOffline {
        name: "activate_offline",
        path: "/api/v4/activate_offline",
        method: POST,
        access: Write,
        input: Upload,
        handler: offline::handle_activation,
        dynamodb: [GetItem, BatchGetItem, Query, PutItem, UpdateItem, DeleteItem],
        why: "The online activation's items plus the record of the applied request (a put).",
    }
    DeactivateOffline {
        name: "deactivate_offline",
        path: "/api/v4/deactivate_offline",
        method: POST,
        access: Write,
        input: Upload,
        handler: offline::handle_deactivation,
        dynamodb: [GetItem, BatchGetItem, PutItem, UpdateItem],
        why: "The online deactivation's items plus the record of the applied request (a put).",
    }
    ActivateBundle {
        name: "activate_bundle",
        path: "/api/v4/activate_bundle",
        method: POST,
        access: Write,
        input: Params,
        handler: bundle::handle_activation,
        dynamodb: [GetItem, BatchGetItem, Query, PutItem, UpdateItem, DeleteItem],
        why: "Every member activation in one transaction (device puts, license and seat updates, marker \
              deletes).",
    }
    CheckBundle {
        name: "check_bundle",
        path: "/api/v4/check_bundle",
        method: GET,
        access: Read,
        input: Params,
        handler: bundle::handle_check,
        dynamodb: [GetItem, BatchGetItem, UpdateItem, ConditionCheckItem],
        why: "Every member check in one transaction (condition checks, device updates).",
    }
    DeactivateBundle {
        name: "deactivate_bundle",
        path: "/api/v4/deactivate_bundle",
        method: POST,
        access: Write,
        input: Params,
        handler: bundle::handle_deactivation,
        dynamodb: [GetItem, BatchGetItem, PutItem, UpdateItem],
        why: "Every member deactivation in one transaction (device, license, seat updates; marker puts).",
    }
    ActivateBundleOffline {
        name: "activate_bundle_offline",
        path: "/api/v4/activate_bundle_offline",
        method: POST,
        access: Write,
        input: Upload,
        handler: offline::handle_bundle_activation,
        dynamodb: [GetItem, BatchGetItem, Query, PutItem, UpdateItem, DeleteItem],
        why: "activate_bundle plus the record of the applied request (a put).",
    }
    DeactivateBundleOffline {
        name: "deactivate_bundle_offline",
        path: "/api/v4/deactivate_bundle_offline",
        method: POST,
        access: Write,
        input: Upload,
        handler: offline::handle_bundle_deactivation,
        dynamodb: [GetItem, BatchGetItem, PutItem, UpdateItem],
        why: "deactivate_bundle plus the record of the applied request (a put).",
    }
    /// Usage a consumption license's application syncs (SPEC §9 "Consumption rules").
    AddConsumption {
        name: "add_consumption",
        path: "/api/v4/add_consumption",
        method: POST,
        access: Write,
        input: Params,
        handler: consumption::handle_license,
        dynamodb: [GetItem, BatchGetItem, UpdateItem, ConditionCheckItem],
        why: "The license's counter updated within its limits, in one transaction with a condition check \
              that the device is still the active one read.",
    }
    AddFeatureConsumption {
        name: "add_feature_consumption",
        path: "/api/v4/add_feature_consumption",
        method: POST,
        access: Write,
        input: Params,
        handler: consumption::handle_feature,
        dynamodb: [GetItem, BatchGetItem, UpdateItem, ConditionCheckItem],
        why: "The feature's counter (on the license item) updated within its limits, in one transaction \
              with a condition check that the device is still the active one read.",
    }
    CheckLicenseFeature {
        name: "check_license_feature",
        path: "/api/v4/check_license_feature",
        method: GET,
        access: Read,
        input: Params,
        handler: check_feature::handle,
        dynamodb: [GetItem, BatchGetItem],
        why: "Reads only: product, company, license and device (user-based: the user, then license, seat \
              and device).",
    }
    /// SPEC §9: merges variables into the active device's (the storage of activation's `variables`).
    TrackDeviceVariables {
        name: "track_device_variables",
        path: "/api/v4/track_device_variables",
        method: POST,
        access: Write,
        input: Params,
        handler: variables::track,
        dynamodb: [GetItem, BatchGetItem, UpdateItem],
        why: "Reads product, company, license, seat and device; one UpdateItem of the device alone.",
    }
    /// SPEC §9: the variables the active device holds.
    GetDeviceVariables {
        name: "get_device_variables",
        path: "/api/v4/get_device_variables",
        method: GET,
        access: Read,
        input: Params,
        handler: variables::list,
        dynamodb: [GetItem, BatchGetItem],
        why: "Reads only: product, company, license, seat and device.",
    }
    /// SPEC §9: a product's details, without a license or device.
    ProductDetails {
        name: "product_details",
        path: "/api/v4/product_details",
        method: GET,
        access: Read,
        input: Params,
        handler: product_details::handle,
        dynamodb: [GetItem],
        why: "Reads only: the product (and the API key or OAuth client, as every function).",
    }
    /// SPEC §9: a trial license of the product for one device, created once (docs/catalog.md, *Trial
    /// policies*). A GET that creates state, so read-only keys are refused.
    TrialKey {
        name: "trial_key",
        path: "/api/v4/trial_key",
        method: GET,
        access: Write,
        input: Params,
        handler: trial_key::handle,
        dynamodb: [GetItem, PutItem],
        why: "Reads product, trial marker, license and user; one transaction puts the marker, the license \
              and a user-based trial's seat and user, each on the condition that it does not exist (the \
              user: or is unchanged).",
    }
    /// Single sign-on's first step (docs/sso.md). Its function also needs network egress: it fetches
    /// the identity provider's discovery document over HTTPS.
    SsoUrl {
        name: "sso_url",
        path: "/api/v4/sso_url",
        method: GET,
        access: Read,
        input: Params,
        handler: sso_url::handle,
        dynamodb: [GetItem],
        why: "Reads only: the product and the customer account (and the API key or OAuth client, as every \
              function).",
    }
    /// `GET /api/v4/user_licenses` (SPEC §9): every license of a license user on a product.
    UserLicenses {
        name: "user_licenses",
        path: "/api/v4/user_licenses",
        method: GET,
        access: Read,
        input: Params,
        handler: user_licenses::handle,
        dynamodb: [GetItem, BatchGetItem],
        why: "Reads only: product, company and the license user in one batch, then each license and the \
              user's seat on it.",
    }
    /// `GET /api/v4/customer_license_users` (SPEC §9): the license users of a customer's licenses.
    CustomerLicenseUsers {
        name: "customer_license_users",
        path: "/api/v4/customer_license_users",
        method: GET,
        access: Read,
        input: Params,
        handler: customer_license_users::handle,
        dynamodb: [GetItem],
        why: "Reads only: the product and the customer's index, then each of its licenses and each license \
              user with their seat, one item at a time.",
    }
    /// `POST /api/v4/change_password` (SPEC §9): a license user replaces their password.
    ChangePassword {
        name: "change_password",
        path: "/api/v4/change_password",
        method: POST,
        access: Write,
        input: Params,
        handler: change_password::handle,
        dynamodb: [GetItem, PutItem],
        why: "Reads the license user's record; puts it back with the new hash on the condition that it is \
              still the one verified.",
    }
    /// `GET /api/v4/oauth_url`: where a client configured with `client_id`/`client_secret` fetches its
    /// access token (SPEC §7). Needs no key: it is how such a client starts.
    OauthUrl {
        name: "oauth_url",
        path: "/api/v4/oauth_url",
        method: GET,
        access: None,
        input: Params,
        handler: oauth::url,
        dynamodb: [],
        why: "Reads nothing: the URL comes from the configuration or the request.",
    }
    /// `POST /api/v4/oauth_token`: an OAuth client's `client_id` and `client_secret` exchanged for an
    /// access token (SPEC §7, RFC 6749 §4.4). Authenticates with those, not with a key.
    OauthToken {
        name: "oauth_token",
        path: "/api/v4/oauth_token",
        method: POST,
        access: None,
        input: Form,
        handler: oauth::token,
        dynamodb: [GetItem],
        why: "Reads the client's record (its secret's hash, company, flags); writes nothing.",
    }
}

/// The root probe's answer.
pub(crate) const ONLINE: &str = "License API is online";

async fn root(_: &ApiRequest, _: &AppState) -> Result<ApiResponse, ApiError> {
    Ok(ApiResponse::text(ONLINE))
}

/// Who is calling, verified with the access an endpoint's row declares. Before anything else of the
/// request is read, so an unauthenticated caller learns nothing about the body or the store.
async fn authenticate(req: &ApiRequest, state: &AppState, access: Access) -> Result<Principal, ApiError> {
    state
        .auth
        .authenticate(&req.headers, &*state.store, access, SystemTime::now())
        .await
}

/// Serves one request with `handler`: a method the endpoint does not take gets 405 (before
/// authentication), every error its SPEC body.
pub async fn handle_with<H: Handler>(handler: H, req: &ApiRequest, state: &AppState) -> ApiResponse {
    let result = if H::ENDPOINT.accepts(&req.method) {
        handler.call(req, state).await
    } else {
        Err(ApiError::MethodNotAllowed)
    };
    result.unwrap_or_else(|e| ApiResponse::error(&e))
}

impl Endpoint {
    /// Its row of the table.
    pub fn descriptor(self) -> &'static Descriptor {
        &TABLE[self as usize]
    }

    pub fn path(self) -> &'static str {
        self.descriptor().path
    }

    pub fn method(self) -> Method {
        self.descriptor().method.clone()
    }

    /// Whether this endpoint serves `method`: its own, and HEAD where that is GET.
    pub fn accepts(self, method: &Method) -> bool {
        let own = &self.descriptor().method;
        method == own || (*method == Method::HEAD && *own == Method::GET)
    }

    /// The endpoint a path names; tolerates a trailing slash and an API Gateway stage prefix.
    pub fn for_path(path: &str) -> Option<Self> {
        let trimmed = path.trim_end_matches('/');
        if trimmed.is_empty() {
            return Some(Self::Root);
        }
        Self::ALL
            .into_iter()
            .find(|e| *e != Self::Root && trimmed.ends_with(e.path()))
    }

    /// The endpoint of a name in the table (a Lambda function's name), e.g. `activate_license`.
    pub fn for_name(name: &str) -> Option<Self> {
        TABLE.iter().find(|d| d.name == name).map(|d| d.endpoint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_rows_are_in_enum_order() {
        for (i, d) in TABLE.iter().enumerate() {
            assert_eq!(d.endpoint as usize, i, "{}", d.name);
            assert_eq!(Endpoint::ALL[i], d.endpoint);
        }
    }

    #[test]
    fn names_and_paths_agree() {
        for d in &TABLE {
            // The name is the variant in snake case, so generated identifiers (logical ids, event
            // names) agree with the Rust ones.
            let snake: String = format!("{:?}", d.endpoint)
                .chars()
                .enumerate()
                .flat_map(|(i, c)| {
                    let sep = (i > 0 && c.is_ascii_uppercase()).then_some('_');
                    sep.into_iter().chain(std::iter::once(c.to_ascii_lowercase()))
                })
                .collect();
            assert_eq!(d.name, snake);
            if d.endpoint != Endpoint::Root {
                // A path below /api/v4 with more segments (`floating/release`) joins them with `_`.
                assert_eq!(
                    d.path,
                    format!("/api/v4/{}", d.name).replacen("floating_", "floating/", 1)
                );
            }
            assert_eq!(Endpoint::for_path(d.path), Some(d.endpoint));
            assert_eq!(Endpoint::for_path(&format!("{}/", d.path)), Some(d.endpoint));
            assert_eq!(Endpoint::for_name(d.name), Some(d.endpoint));
        }
        assert_eq!(Endpoint::for_name("default_route"), None);
    }

    #[test]
    fn every_function_has_a_role_and_serves_its_guests() {
        for d in &TABLE {
            let host = d.function.descriptor();
            assert!(
                host.has_function(),
                "{} is served by {}, which has no function",
                d.name,
                host.name
            );
            // A function's role is declared once, on its own row (it may grant no table action: a
            // function that reads nothing, but still says so).
            assert!(
                d.has_function() || d.dynamodb.is_empty(),
                "{}: DynamoDB actions",
                d.name
            );
            assert_eq!(d.has_function(), !d.dynamodb_why.is_empty(), "{}: why", d.name);
        }
    }

    #[test]
    fn get_endpoints_serve_head_and_nothing_else_does() {
        assert!(Endpoint::CheckLicense.accepts(&Method::HEAD));
        assert!(!Endpoint::ActivateLicense.accepts(&Method::HEAD));
        assert!(!Endpoint::CheckLicense.accepts(&Method::POST));
        assert_eq!(
            Endpoint::CheckBundle.descriptor().methods(),
            [Method::GET, Method::HEAD]
        );
        assert_eq!(Endpoint::ActivateOffline.descriptor().methods(), [Method::POST]);
    }
}
