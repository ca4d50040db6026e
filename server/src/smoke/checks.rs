//! The smoke checks: what each request is, what its answer must be, and what undoes it. The sequence
//! is data, so adding an endpoint's checks is adding lines to [`sequence`].

use bytes::Bytes;
use http::{Method, Request, Response};
use license_api::client::{ClientError, LicenseClient};
use license_api::handlers::Endpoint;
use license_api::http::SIGNATURE_HEADER;
use license_api::offline::file::{multipart, rfc7231_date, RequestFile, Shape};
use license_api::offline::payload::Kind;
use serde_json::{json, Map, Value};

use super::SmokeLicense;

/// A shared key no API key has: what a forged request or request file is signed with.
const WRONG_SHARED_KEY: &str = "license-server-smoke-wrong-shared-key";
const BOUNDARY: &str = "----license-server-smoke";
/// Deactivating a device that is not active: `license_not_active` when the license has no active
/// device at all, else `device_not_found` (SPEC §3) — which one depends on the license's other devices.
const NOT_ACTIVE: &[&str] = &["device_not_found", "license_not_active"];

/// How a request is signed.
#[derive(Clone, Copy)]
pub enum Sign {
    Client,
    WrongSharedKey,
    Unsigned,
}

#[derive(Clone)]
pub enum Body {
    Empty,
    Query(Value),
    Json(Value),
    Upload { content_type: String, bytes: Bytes },
}

#[derive(Clone)]
pub struct Req {
    pub method: Method,
    pub path: &'static str,
    pub body: Body,
    pub sign: Sign,
}

impl Req {
    fn new(method: Method, endpoint: Endpoint, body: Body) -> Self {
        Self {
            method,
            path: endpoint.path(),
            body,
            sign: Sign::Client,
        }
    }

    fn signed(self, sign: Sign) -> Self {
        Self { sign, ..self }
    }

    /// The request, dated now (signatures are only valid for 15 minutes).
    pub fn build(&self, client: &LicenseClient) -> Request<Bytes> {
        let forger;
        let signer = match self.sign {
            Sign::WrongSharedKey => {
                forger = LicenseClient::new(client.api_key.as_str(), WRONG_SHARED_KEY, "");
                &forger
            }
            Sign::Client | Sign::Unsigned => client,
        };
        let mut req = match &self.body {
            Body::Empty => signer.request(self.method.clone(), self.path, None),
            Body::Query(params) => signer.get(self.path, params),
            Body::Json(params) => signer.post_json(self.path, params),
            Body::Upload { content_type, bytes } => signer.upload(self.path, content_type, bytes.clone()),
        };
        *req.method_mut() = self.method.clone();
        if matches!(self.sign, Sign::Unsigned) {
            req.headers_mut().remove(http::header::AUTHORIZATION);
            req.headers_mut().remove(http::header::DATE);
        }
        req
    }
}

/// What an answer must be.
pub enum Expect {
    /// 200 with exactly this text.
    Text(&'static str),
    /// 200, a license object whose header and `license_signature` verify for the device and identity.
    License { hardware_id: String, ident: String },
    /// 200, a bundle's array of license objects, each verifying.
    Licenses { hardware_id: String, ident: String },
    /// 200, an offline license file: header, `license_signature`, `_v2` and `offline_signature`.
    OfflineLicense { hardware_id: String, ident: String },
    /// 200, an offline bundle file: header and `bundle_signature_v2`.
    OfflineBundle,
    /// 200 to HEAD: a `LicenseSignature` header and no body.
    Head,
    /// The SPEC error body `{"status","code","message"}` with this status and one of these codes.
    Error { status: u16, codes: Vec<String> },
    /// 200; a JSON body's `LicenseSignature` header verifies (what an event's answer is judged by).
    Signed,
}

impl Expect {
    pub fn error(status: u16, codes: &[&str]) -> Self {
        Self::Error {
            status,
            codes: codes.iter().map(|c| (*c).to_owned()).collect(),
        }
    }

    /// `Ok` with a short description of the answer, or `Err` saying what is wrong with it.
    pub fn judge(&self, client: &LicenseClient, resp: &Response<Bytes>) -> Result<String, String> {
        let status = resp.status().as_u16();
        let shown = || {
            format!(
                "{status} {}",
                String::from_utf8_lossy(&resp.body()[..resp.body().len().min(300)])
            )
        };
        if let Self::Error { status: want, codes } = self {
            return judge_error(*want, codes, resp).map_err(|why| format!("{why}; answered {}", shown()));
        }
        if status != 200 {
            return Err(format!("expected 200, answered {}", shown()));
        }
        let verified = match self {
            Self::Text(text) => match resp.body().as_ref() == text.as_bytes() {
                true => Ok(()),
                false => Err(ClientError::Malformed(format!("expected the text {text:?}"))),
            },
            Self::License { hardware_id, ident } => client.verify_license(resp, hardware_id, ident).map(drop),
            Self::Licenses { hardware_id, ident } => match client.verify_licenses(resp, hardware_id, ident) {
                Ok(items) if items.is_empty() => Err(ClientError::Malformed("an empty bundle".into())),
                other => other.map(drop),
            },
            Self::OfflineLicense { hardware_id, ident } => {
                client.verify_offline_license(resp, hardware_id, ident).map(drop)
            }
            Self::OfflineBundle => client.verify_offline_bundle(resp).map(drop),
            Self::Head => judge_head(resp),
            Self::Signed => client.verify_body(resp).map(drop),
            Self::Error { .. } => unreachable!("judged above"),
        };
        match verified {
            Ok(()) if matches!(self, Self::Text(_) | Self::Head) || !is_json(resp) => Ok("200".into()),
            Ok(()) => Ok("200 signature verified".into()),
            Err(e) => Err(format!("{e}; answered {}", shown())),
        }
    }
}

fn is_json(resp: &Response<Bytes>) -> bool {
    resp.headers()
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"))
}

fn judge_head(resp: &Response<Bytes>) -> Result<(), ClientError> {
    if !resp.headers().contains_key(SIGNATURE_HEADER) {
        return Err(ClientError::BadSignature);
    }
    match resp.body().is_empty() {
        true => Ok(()),
        false => Err(ClientError::Malformed("HEAD answered a body".into())),
    }
}

fn judge_error(want: u16, codes: &[String], resp: &Response<Bytes>) -> Result<String, String> {
    let status = resp.status().as_u16();
    let body: Value = serde_json::from_slice(resp.body()).map_err(|_| "the body is not the SPEC error JSON")?;
    let code = body["code"].as_str().unwrap_or_default();
    let expected = format!("expected {want} {}", codes.join(" or "));
    if status != want || !codes.iter().any(|c| c == code) {
        return Err(expected);
    }
    if body["status"].as_u64() != Some(u64::from(status)) || body["message"].as_str().is_none_or(str::is_empty) {
        return Err(format!("{expected} with `status` and a `message` in the body"));
    }
    Ok(format!("{status} {code}"))
}

/// Whether a check takes something the smoke run must give back (`Opens`, with what gives it back) or
/// gives back what an earlier one took (`Closes`), keyed by a tag.
pub enum Ledger {
    None,
    Opens(&'static str, Box<Check>),
    Closes(&'static str),
}

pub struct Check {
    pub name: String,
    pub request: Req,
    pub expect: Expect,
    pub ledger: Ledger,
}

fn check(name: impl Into<String>, request: Req, expect: Expect) -> Check {
    Check {
        name: name.into(),
        request,
        expect,
        ledger: Ledger::None,
    }
}

impl Check {
    fn opens(self, tag: &'static str, undo: Check) -> Self {
        Self {
            ledger: Ledger::Opens(tag, Box::new(undo)),
            ..self
        }
    }

    fn closes(self, tag: &'static str) -> Self {
        Self {
            ledger: Ledger::Closes(tag),
            ..self
        }
    }
}

/// One device of one license: what the requests name.
struct Device<'a> {
    product: &'a str,
    hardware_id: String,
    ident: (&'static str, &'a str),
}

impl Device<'_> {
    fn params(&self) -> Value {
        json!({"product": self.product, "hardware_id": self.hardware_id, self.ident.0: self.ident.1})
    }

    fn with(&self, field: &str, value: &str) -> Value {
        let mut p = self.params();
        p[field] = json!(value);
        p
    }

    fn license(&self) -> Expect {
        Expect::License {
            hardware_id: self.hardware_id.clone(),
            ident: self.ident.1.to_owned(),
        }
    }
}

/// Every check, in order, for `license` (signing offline request files with `api_key`/`shared_key`),
/// and the groups of checks left out for want of a license.
pub fn sequence(
    license: &SmokeLicense,
    api_key: &str,
    shared_key: &str,
) -> Result<(Vec<Check>, Vec<&'static str>), String> {
    let (Some(product), Some(key)) = (&license.product, &license.license_key) else {
        return Err("--product and --license-key name the smoke-test license".into());
    };
    let online = Device {
        product,
        hardware_id: license.hardware_id.clone(),
        ident: ("license_key", key),
    };
    let offline = Device {
        hardware_id: format!("{}-offline", license.hardware_id),
        ..online
    };
    let files = Files::new(api_key, shared_key);
    let mut skipped = Vec::new();
    let mut checks = vec![check(
        "GET / (is online)",
        Req::new(Method::GET, Endpoint::Root, Body::Empty).signed(Sign::Unsigned),
        Expect::Text("License API is online"),
    )];
    checks.extend(online_checks(&online));
    checks.extend(offline_checks(&offline, &files));
    if let (Some(product), Some(key)) = (&license.bundle_product, &license.bundle_license_key) {
        let suite = Device {
            product,
            hardware_id: license.hardware_id.clone(),
            ident: ("license_key", key),
        };
        checks.extend(bundle_checks(&suite, &files));
    } else {
        skipped.push("bundle checks (no --bundle-product and --bundle-license-key)");
    }
    if let (Some(product), Some(username), Some(password)) =
        (&license.user_product, &license.username, &license.password)
    {
        checks.extend(user_checks(product, username, password, &license.hardware_id));
    } else {
        skipped.push("user activation (no --user-product, --username and --password)");
    }
    checks.extend(error_checks(&online));
    Ok((checks, skipped))
}

fn json_post(endpoint: Endpoint, params: Value) -> Req {
    Req::new(Method::POST, endpoint, Body::Json(params))
}

fn query(method: Method, endpoint: Endpoint, params: Value) -> Req {
    Req::new(method, endpoint, Body::Query(params))
}

fn online_checks(d: &Device) -> Vec<Check> {
    let deactivate = || json_post(Endpoint::DeactivateLicense, d.params());
    let deactivated = || Expect::Text("license_deactivated");
    let undo = check("POST deactivate_license", deactivate(), deactivated());
    let mut checks = vec![
        check(
            "POST activate_license",
            json_post(Endpoint::ActivateLicense, d.params()),
            d.license(),
        )
        .opens("online", undo),
        check(
            "GET check_license",
            query(Method::GET, Endpoint::CheckLicense, d.params()),
            d.license(),
        ),
        check(
            "HEAD check_license",
            query(Method::HEAD, Endpoint::CheckLicense, d.params()),
            Expect::Head,
        ),
    ];
    checks.extend(device_checks(d));
    checks.extend([
        check(
            "GET check_license (unsigned)",
            query(Method::GET, Endpoint::CheckLicense, d.params()).signed(Sign::Unsigned),
            Expect::error(400, &["missing_headers"]),
        ),
        check(
            "GET check_license (wrong shared key)",
            query(Method::GET, Endpoint::CheckLicense, d.params()).signed(Sign::WrongSharedKey),
            Expect::error(400, &["signature_mismatch"]),
        ),
        check("POST deactivate_license", deactivate(), deactivated()).closes("online"),
        check(
            "POST deactivate_license (again)",
            deactivate(),
            Expect::error(400, NOT_ACTIVE),
        ),
    ]);
    checks
}

/// The SPEC §9 calls an application makes on its active device, whatever the smoke license's terms:
/// device variables, product details and an unknown feature.
fn device_checks(d: &Device) -> Vec<Check> {
    let mut variables = d.params();
    variables["variables"] = json!({"license-server-smoke": 1});
    vec![
        check(
            "POST track_device_variables",
            json_post(Endpoint::TrackDeviceVariables, variables),
            Expect::Signed,
        ),
        check(
            "GET get_device_variables",
            query(Method::GET, Endpoint::GetDeviceVariables, d.params()),
            Expect::Signed,
        ),
        check(
            "GET product_details",
            query(Method::GET, Endpoint::ProductDetails, json!({"product": d.product})),
            Expect::Signed,
        ),
        check(
            "GET check_license_feature (unknown feature)",
            query(
                Method::GET,
                Endpoint::CheckLicenseFeature,
                d.with("feature", "license-server-smoke-no-such-feature"),
            ),
            Expect::error(400, &["invalid_license_feature_code"]),
        ),
    ]
}

/// Offline request files (SPEC §6.2) of this run: dated now, with request ids no earlier run used
/// (a repeated request id replays the stored answer instead of applying the file).
struct Files<'a> {
    api_key: &'a str,
    shared_key: &'a str,
    run: u128,
}

impl<'a> Files<'a> {
    fn new(api_key: &'a str, shared_key: &'a str) -> Self {
        let run = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        Self {
            api_key,
            shared_key,
            run,
        }
    }

    /// The base64 request file of `kind` for the device, signed with `shared_key`.
    fn text(&self, d: &Device, kind: Kind, shared_key: &str) -> String {
        let name = if kind == Kind::Activation {
            "activation"
        } else {
            "deactivation"
        };
        RequestFile {
            kind,
            product: d.product.to_owned(),
            hardware_id: d.hardware_id.clone(),
            license_key: Some(d.ident.1.to_owned()),
            username: None,
            password: None,
            api_key: self.api_key.into(),
            date: rfc7231_date(std::time::SystemTime::now()),
            request_id: Some(format!("smoke-{}-{}-{name}", self.run, d.product)),
            extra: Map::new(),
        }
        .encode(Shape::V1, shared_key)
    }

    fn raw(&self, endpoint: Endpoint, d: &Device, kind: Kind) -> Req {
        upload(endpoint, "text/plain", self.text(d, kind, self.shared_key).into_bytes())
    }

    fn multipart(&self, endpoint: Endpoint, d: &Device, kind: Kind) -> Req {
        let (content_type, body) = multipart(&self.text(d, kind, self.shared_key), BOUNDARY);
        upload(endpoint, &content_type, body)
    }
}

fn upload(endpoint: Endpoint, content_type: &str, body: Vec<u8>) -> Req {
    let body = Body::Upload {
        content_type: content_type.to_owned(),
        bytes: body.into(),
    };
    Req::new(Method::POST, endpoint, body)
}

fn offline_checks(d: &Device, files: &Files) -> Vec<Check> {
    let offline_license = Expect::OfflineLicense {
        hardware_id: d.hardware_id.clone(),
        ident: d.ident.1.to_owned(),
    };
    let deactivate = files.multipart(Endpoint::DeactivateOffline, d, Kind::Deactivation);
    let undo = check(
        "POST deactivate_offline",
        deactivate.clone(),
        Expect::Text("license_deactivated"),
    );
    let forged = files.text(d, Kind::Activation, WRONG_SHARED_KEY);
    let (empty_type, empty) = multipart("", BOUNDARY);
    vec![
        check(
            "POST activate_offline (raw request file)",
            files.raw(Endpoint::ActivateOffline, d, Kind::Activation),
            offline_license,
        )
        .opens("offline", undo),
        check(
            "POST activate_offline (forged request file)",
            upload(Endpoint::ActivateOffline, "text/plain", forged.into_bytes()),
            Expect::error(400, &["signature_mismatch"]),
        ),
        check(
            "POST deactivate_offline (multipart)",
            deactivate,
            Expect::Text("license_deactivated"),
        )
        .closes("offline"),
        check(
            "POST deactivate_offline (multipart, empty file)",
            upload(Endpoint::DeactivateOffline, &empty_type, empty),
            Expect::error(400, &["missing_content"]),
        ),
    ]
}

fn bundle_checks(d: &Device, files: &Files) -> Vec<Check> {
    let licenses = || Expect::Licenses {
        hardware_id: d.hardware_id.clone(),
        ident: d.ident.1.to_owned(),
    };
    let deactivate = || json_post(Endpoint::DeactivateBundle, d.params());
    let deactivate_offline = files.raw(Endpoint::DeactivateBundleOffline, d, Kind::Deactivation);
    let deactivated = || Expect::Text("license_deactivated");
    vec![
        check(
            "POST activate_bundle",
            json_post(Endpoint::ActivateBundle, d.params()),
            licenses(),
        )
        .opens("bundle", check("POST deactivate_bundle", deactivate(), deactivated())),
        check(
            "GET check_bundle",
            query(Method::GET, Endpoint::CheckBundle, d.params()),
            licenses(),
        ),
        check("POST deactivate_bundle", deactivate(), deactivated()).closes("bundle"),
        check(
            "POST activate_bundle_offline (raw request file)",
            files.raw(Endpoint::ActivateBundleOffline, d, Kind::Activation),
            Expect::OfflineBundle,
        )
        .opens(
            "bundle-offline",
            check(
                "POST deactivate_bundle_offline",
                deactivate_offline.clone(),
                deactivated(),
            ),
        ),
        check(
            "POST deactivate_bundle_offline (raw request file)",
            deactivate_offline,
            deactivated(),
        )
        .closes("bundle-offline"),
    ]
}

fn user_checks(product: &str, username: &str, password: &str, hardware_id: &str) -> Vec<Check> {
    let d = Device {
        product,
        hardware_id: format!("{hardware_id}-user"),
        ident: ("username", username),
    };
    let credentials = d.with("password", password);
    let deactivate = || json_post(Endpoint::DeactivateLicense, credentials.clone());
    let undo = check(
        "POST deactivate_license (user)",
        deactivate(),
        Expect::Text("license_deactivated"),
    );
    vec![
        check(
            format!("POST activate_license (user {username})"),
            json_post(Endpoint::ActivateLicense, credentials.clone()),
            d.license(),
        )
        .opens("user", undo),
        check(
            "POST activate_license (user, wrong password)",
            json_post(
                Endpoint::ActivateLicense,
                d.with("password", "license-server-smoke-wrong"),
            ),
            Expect::error(400, &["license_not_found"]),
        ),
        check(
            format!("GET user_licenses (user {username})"),
            query(
                Method::GET,
                Endpoint::UserLicenses,
                json!({"product": product, "username": username, "password": password}),
            ),
            Expect::Signed,
        ),
        check(
            "POST change_password (wrong password)",
            json_post(
                Endpoint::ChangePassword,
                json!({"username": username, "password": "license-server-smoke-wrong", "new_password": "never-stored"}),
            ),
            Expect::error(400, &["license_not_found"]),
        ),
        check(
            "POST deactivate_license (user)",
            deactivate(),
            Expect::Text("license_deactivated"),
        )
        .closes("user"),
    ]
}

/// Answers that change nothing: unknown license, a plain license on a bundle endpoint, an empty
/// upload, and what the `$default` route answers for unknown paths and methods.
fn error_checks(d: &Device) -> Vec<Check> {
    let unknown = d.with("license_key", "LICENSE-SERVER-SMOKE-NO-SUCH-KEY");
    let root_path = |path: &'static str, method: Method| Req {
        method,
        path,
        body: Body::Empty,
        sign: Sign::Client,
    };
    vec![
        check(
            "POST activate_license (unknown license key)",
            json_post(Endpoint::ActivateLicense, unknown),
            Expect::error(400, &["license_not_found"]),
        ),
        check(
            "POST activate_bundle (not a bundle)",
            json_post(Endpoint::ActivateBundle, d.params()),
            Expect::error(400, &["product_not_bundle"]),
        ),
        check(
            "POST deactivate_bundle_offline (empty body)",
            upload(Endpoint::DeactivateBundleOffline, "text/plain", Vec::new()),
            Expect::error(400, &["missing_parameters"]),
        ),
        // The OAuth endpoints need no key (SPEC §7): where the token endpoint is, and a client that
        // does not exist (whether or not the deployment issues tokens).
        check(
            "GET oauth_url",
            Req::new(
                Method::GET,
                Endpoint::OauthUrl,
                Body::Query(json!({"login_type": "client_credentials"})),
            )
            .signed(Sign::Unsigned),
            Expect::Signed,
        ),
        check(
            "POST oauth_token (unknown client)",
            upload(
                Endpoint::OauthToken,
                "application/x-www-form-urlencoded",
                b"grant_type=client_credentials&client_id=license-server-smoke-no-such-client&client_secret=x".to_vec(),
            )
            .signed(Sign::Unsigned),
            Expect::error(401, &["invalid_client"]),
        ),
        // Answers that create nothing: a trial needs a hardware id; an unknown customer has no users.
        check(
            "GET trial_key (no hardware id)",
            query(Method::GET, Endpoint::TrialKey, json!({"product": d.product})),
            Expect::error(400, &["missing_hardware_id"]),
        ),
        check(
            "GET customer_license_users (unknown customer)",
            query(
                Method::GET,
                Endpoint::CustomerLicenseUsers,
                json!({"product": d.product, "customer": "license-server-smoke-nobody@example.invalid"}),
            ),
            Expect::error(400, &["license_not_found", "validation_error"]),
        ),
        check(
            "GET /api/v4/no_such_endpoint",
            root_path("/api/v4/no_such_endpoint", Method::GET),
            Expect::error(404, &["not_found"]),
        ),
        check(
            "POST check_license (wrong method)",
            json_post(Endpoint::CheckLicense, d.params()),
            Expect::error(405, &["method_not_allowed"]),
        ),
        check(
            "GET activate_license (wrong method)",
            Req::new(Method::GET, Endpoint::ActivateLicense, Body::Empty),
            Expect::error(405, &["method_not_allowed"]),
        ),
    ]
}
