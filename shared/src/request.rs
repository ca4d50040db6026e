//! Parsing of what a client sends into typed requests. Clients differ (SPEC §1): unknown fields are
//! ignored, `license_id` comes as a number or a numeric string, booleans as JSON booleans or the strings
//! `true`/`false`. Every malformed input becomes a 400 with a message naming the field.

use crate::error::ApiError;
use crate::ids::{CustomerAccountCode, HardwareId, IdError, LicenseKey, ProductCode, Username, MAX_ID_LEN};
use serde_json::{Map, Value};
use std::fmt;

/// Largest request body accepted, in bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Most variables one request may send: as many as a device may hold at all.
const MAX_VARIABLES: usize = crate::model::MAX_DEVICE_VARIABLES;
const MAX_VARIABLE_NAME: usize = 255;
const MAX_DETAIL_VALUE: usize = 4096;
/// Longest `id_token` or `code` accepted: OpenID Connect ID tokens are a few KiB at most.
pub const MAX_SSO_GRANT_BYTES: usize = 8192;
/// Bounds of a new password (`change_password`), in bytes: long enough to refuse trivial ones, short
/// enough that hashing it costs what any password's hash costs.
pub const NEW_PASSWORD_BYTES: std::ops::RangeInclusive<usize> = 8..=256;

/// Hardware details a device reports; stored on the device record (SPEC §3).
pub const DEVICE_DETAIL_FIELDS: &[&str] = &[
    "os_ver",
    "hostname",
    "os_hostname",
    "ip",
    "ip_local",
    "mac_address",
    "is_vm",
    "vm_info",
    "app_ver",
    "sdk_ver",
    "app_name",
    "sdk_lang",
    "device_name",
];

/// The request's fields as a JSON object, whichever transport carried them.
pub struct Params(Map<String, Value>);

impl Params {
    pub fn from_json(body: &[u8]) -> Result<Self, ApiError> {
        if body.len() > MAX_BODY_BYTES {
            return Err(ApiError::PayloadTooLarge(MAX_BODY_BYTES));
        }
        if body.iter().all(u8::is_ascii_whitespace) {
            return Err(ApiError::InvalidJson("the body is empty".into()));
        }
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(map)) => Ok(Self(map)),
            Ok(_) => Err(ApiError::Validation("the body must be a JSON object".into())),
            Err(e) => Err(ApiError::InvalidJson(e.to_string())),
        }
    }

    /// Fields that arrived inside another envelope: an offline request file (SPEC §6.2).
    pub fn from_map(map: Map<String, Value>) -> Self {
        Self(map)
    }

    /// Query-string parameters; every value arrives as a string and is converted on access.
    pub fn from_query(query: Option<&str>) -> Result<Self, ApiError> {
        let query = query.unwrap_or("");
        if query.len() > MAX_BODY_BYTES {
            return Err(ApiError::PayloadTooLarge(MAX_BODY_BYTES));
        }
        let map = url::form_urlencoded::parse(query.as_bytes())
            .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
            .collect();
        Ok(Self(map))
    }

    /// A string field; numbers are accepted and rendered as their text. `null` and `""` count as absent.
    pub fn string(&self, name: &str) -> Result<Option<String>, ApiError> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(_) => Err(ApiError::Validation(format!("`{name}` must be a string"))),
        }
    }

    pub fn required(&self, name: &str) -> Result<String, ApiError> {
        self.string(name)?
            .ok_or_else(|| ApiError::MissingParameters(name.to_owned()))
    }

    pub fn bool(&self, name: &str) -> Result<Option<bool>, ApiError> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) => match s.to_ascii_lowercase().as_str() {
                "true" | "1" => Ok(Some(true)),
                "false" | "0" | "" => Ok(Some(false)),
                _ => Err(ApiError::Validation(format!("`{name}` must be a boolean"))),
            },
            Some(Value::Number(n)) if n.as_i64() == Some(0) || n.as_i64() == Some(1) => Ok(Some(n.as_i64() == Some(1))),
            Some(_) => Err(ApiError::Validation(format!("`{name}` must be a boolean"))),
        }
    }

    /// An integer given as a JSON number (integral) or a numeric string.
    pub fn integer(&self, name: &str) -> Result<Option<i64>, ApiError> {
        let bad = || ApiError::Validation(format!("`{name}` must be an integer"));
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Value::String(s)) => s.trim().parse().map(Some).map_err(|_| bad()),
            Some(Value::Number(n)) => match (n.as_i64(), n.as_f64()) {
                (Some(i), _) => Ok(Some(i)),
                (None, Some(f)) if f.fract() == 0.0 && f.abs() < 9.007_199_254_740_992e15 => Ok(Some(f as i64)),
                _ => Err(bad()),
            },
            Some(_) => Err(bad()),
        }
    }

    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name)
    }
}

fn id<T>(name: &str, value: String, parse: impl Fn(&str) -> Result<T, IdError>) -> Result<T, ApiError> {
    parse(&value).map_err(|e| ApiError::Validation(format!("`{name}` {e}")))
}

/// How the request names its license (SPEC §2.1). `Debug` redacts the password and SSO grants.
#[derive(Clone)]
pub enum Credentials {
    Key(LicenseKey),
    User {
        /// The normalised login that looks the user up (trimmed, lower-cased).
        username: Username,
        /// The `username` exactly as the request carried it: echoed in the activation response and
        /// signed in `license_signature` (SPEC §4.1, §5.2), because clients re-derive the signature
        /// from what they sent and would reject one made over a trimmed value.
        as_sent: String,
        proof: Proof,
    },
    /// A single sign-on grant, as sent. `identity::Resolvers` turns it into the `User` it names before
    /// any license is looked up, so nothing past that step sees this variant.
    Sso(SsoGrant),
}

/// How a license user's identity is established.
#[derive(Clone, PartialEq, Eq)]
pub enum Proof {
    /// None given: enough for check and deactivation, which reveal nothing to a wrong caller.
    Unproven,
    /// The password sent with the request, checked against the user's stored hash.
    Password(String),
    /// The customer account's identity provider vouched for the user (a verified SSO grant).
    IdentityProvider(CustomerAccountCode),
}

/// A single sign-on grant (SPEC §2.1): a token or code issued by the identity provider of a customer
/// account.
#[derive(Clone)]
pub struct SsoGrant {
    pub grant: SsoToken,
    pub customer_account_code: CustomerAccountCode,
    /// The redirect URI the code was issued for (code grant); checked against the customer account's
    /// registered ones before it is sent to the provider.
    pub redirect_uri: Option<String>,
}

/// What the identity provider issued: an ID token (implicit grant) or an authorization code.
#[derive(Clone)]
pub enum SsoToken {
    IdToken(String),
    Code(String),
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Key(key) => f.debug_tuple("Key").field(key).finish(),
            Self::User {
                username,
                as_sent,
                proof,
            } => f
                .debug_struct("User")
                .field("username", username)
                .field("as_sent", as_sent)
                .field("proof", proof)
                .finish(),
            Self::Sso(grant) => f.debug_tuple("Sso").field(grant).finish(),
        }
    }
}

impl fmt::Debug for Proof {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unproven => f.write_str("Unproven"),
            Self::Password(_) => f.write_str("Password([REDACTED])"),
            Self::IdentityProvider(account) => f.debug_tuple("IdentityProvider").field(account).finish(),
        }
    }
}

impl fmt::Debug for SsoGrant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.grant {
            SsoToken::IdToken(_) => "id_token",
            SsoToken::Code(_) => "code",
        };
        f.debug_struct("SsoGrant")
            .field(kind, &crate::secret::Redacted)
            .field("customer_account_code", &self.customer_account_code)
            .field("redirect_uri", &self.redirect_uri)
            .finish()
    }
}

/// A request about one license on one device: the common part of activate, deactivate and check, and
/// (later) of their offline and bundle forms.
#[derive(Clone, Debug)]
pub struct LicenseRequest {
    pub product: ProductCode,
    pub hardware_id: HardwareId,
    pub credentials: Credentials,
    pub license_id: Option<i64>,
    /// Picks the member license of this bundle (SPEC §2.1).
    pub bundle_code: Option<ProductCode>,
    pub is_vm: bool,
    pub details: Map<String, Value>,
    pub variables: Vec<(String, String)>,
    /// Check answers list expired features only when asked (`include_expired_features=true`).
    pub include_expired_features: bool,
}

impl LicenseRequest {
    pub fn parse(p: &Params) -> Result<Self, ApiError> {
        let product = id("product", p.required("product")?, ProductCode::parse)?;
        let hardware_id = id("hardware_id", p.required("hardware_id")?, HardwareId::parse)?;
        let credentials = credentials(p)?;
        Ok(Self {
            product,
            hardware_id,
            credentials,
            license_id: p.integer("license_id")?,
            bundle_code: p
                .string("bundle_code")?
                .map(|code| id("bundle_code", code, ProductCode::parse))
                .transpose()?,
            is_vm: p.bool("is_vm")?.unwrap_or(false),
            details: device_details(p)?,
            variables: variables(p)?,
            include_expired_features: p.bool("include_expired_features")?.unwrap_or(false),
        })
    }
}

/// A request about a license user rather than one license (`user_licenses`): the product, and the user
/// named by username and password or by a single sign-on grant (SPEC §2.1).
#[derive(Clone, Debug)]
pub struct UserRequest {
    pub product: ProductCode,
    pub credentials: Credentials,
}

impl UserRequest {
    pub fn parse(p: &Params) -> Result<Self, ApiError> {
        let product = id("product", p.required("product")?, ProductCode::parse)?;
        let credentials = match credentials(p) {
            Ok(Credentials::Key(_)) => {
                return Err(ApiError::Validation(
                    "name the license user by `username` and `password` or a single sign-on grant, not by \
                     `license_key`"
                        .into(),
                ))
            }
            Err(ApiError::MissingParameters(_)) => return Err(ApiError::MissingParameters("username".into())),
            other => other?,
        };
        Ok(Self { product, credentials })
    }
}

/// `POST /change_password` (SPEC §9): the user, proven by their current password, and the new one.
#[derive(Clone, Debug)]
pub struct ChangePasswordRequest {
    /// Always `Credentials::User` with a `Proof::Password`.
    pub credentials: Credentials,
    pub new_password: crate::secret::SecretString,
}

impl ChangePasswordRequest {
    pub fn parse(p: &Params) -> Result<Self, ApiError> {
        let as_sent = p.required("username")?;
        if as_sent.len() > MAX_ID_LEN {
            return Err(ApiError::Validation(format!("`username` {}", IdError::TooLong)));
        }
        let password = p.required("password")?;
        let new_password = p.required("new_password")?;
        if !NEW_PASSWORD_BYTES.contains(&new_password.len()) {
            return Err(ApiError::Validation(format!(
                "`new_password` must be {} to {} bytes",
                NEW_PASSWORD_BYTES.start(),
                NEW_PASSWORD_BYTES.end()
            )));
        }
        Ok(Self {
            credentials: Credentials::User {
                username: id("username", as_sent.clone(), Username::parse)?,
                as_sent,
                proof: Proof::Password(password),
            },
            new_password: new_password.into(),
        })
    }
}

/// How the request names its license (SPEC §2.1): exactly one of a license key, a username (with or
/// without its password) or a single sign-on grant.
fn credentials(p: &Params) -> Result<Credentials, ApiError> {
    let (id_token, code) = (p.string("id_token")?, p.string("code")?);
    if id_token.is_some() && code.is_some() {
        return Err(ApiError::Validation("use either `id_token` or `code`, not both".into()));
    }
    let (key, user) = (p.string("license_key")?, p.string("username")?);
    // Exactly one way to name the license (SPEC §2.1): guessing which one the client meant could
    // act on a license it did not name.
    let named: Vec<&str> = [
        (key.is_some(), "`license_key`"),
        (user.is_some(), "`username`"),
        (id_token.is_some() || code.is_some(), "`id_token`/`code`"),
    ]
    .into_iter()
    .filter_map(|(given, name)| given.then_some(name))
    .collect();
    if named.len() > 1 {
        return Err(ApiError::Validation(format!(
            "name the license one way only, not by {}",
            named.join(" and ")
        )));
    }
    Ok(if let Some(key) = key {
        Credentials::Key(id("license_key", key, LicenseKey::parse)?)
    } else if let Some(user) = user {
        // The trimmed value is checked by `Username::parse`; the padding around it is bounded too,
        // since the raw value is echoed back.
        if user.len() > MAX_ID_LEN {
            return Err(ApiError::Validation(format!("`username` {}", IdError::TooLong)));
        }
        Credentials::User {
            username: id("username", user.clone(), Username::parse)?,
            as_sent: user,
            proof: p.string("password")?.map_or(Proof::Unproven, Proof::Password),
        }
    } else if let Some(grant) = sso_grant(id_token, code)? {
        let Some(account) = p.string("customer_account_code")? else {
            return Err(ApiError::MissingParameters("customer_account_code".into()));
        };
        Credentials::Sso(SsoGrant {
            grant,
            customer_account_code: id("customer_account_code", account, CustomerAccountCode::parse)?,
            redirect_uri: p.string("redirect_uri")?,
        })
    } else {
        return Err(ApiError::MissingParameters("license_key or username".into()));
    })
}

/// The `id_token` or `code` a request carries (at most one, checked by the caller), bounded.
fn sso_grant(id_token: Option<String>, code: Option<String>) -> Result<Option<SsoToken>, ApiError> {
    let (name, grant) = match (id_token, code) {
        (Some(token), _) => ("id_token", SsoToken::IdToken(token)),
        (None, Some(code)) => ("code", SsoToken::Code(code)),
        (None, None) => return Ok(None),
    };
    let (SsoToken::IdToken(value) | SsoToken::Code(value)) = &grant;
    if value.len() > MAX_SSO_GRANT_BYTES {
        return Err(ApiError::Validation(format!(
            "`{name}` is longer than {MAX_SSO_GRANT_BYTES} bytes"
        )));
    }
    Ok(Some(grant))
}

/// What a client asks `GET /sso_url` for (SPEC §7): the sign-in URL of a customer account's identity
/// provider, for a product.
#[derive(Clone, Debug)]
pub struct SsoUrlRequest {
    pub product: ProductCode,
    pub customer_account_code: CustomerAccountCode,
    pub response_type: SsoResponseType,
    /// One of the account's registered redirect URIs; absent: its first.
    pub redirect_uri: Option<String>,
}

/// The grant the client will come back with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SsoResponseType {
    /// Authorization-code grant: the redirect carries a `code` (the default, as at LicenseSpring).
    Code,
    /// Implicit grant: clients say `token`; the redirect carries an `id_token`.
    Token,
}

impl SsoUrlRequest {
    pub fn parse(p: &Params) -> Result<Self, ApiError> {
        let response_type = match p.string("response_type")?.as_deref() {
            None | Some("code") => SsoResponseType::Code,
            Some("token") => SsoResponseType::Token,
            Some(other) => {
                return Err(ApiError::Validation(format!(
                    "`response_type` must be `code` or `token`, not `{}`",
                    truncate(other, 64)
                )))
            }
        };
        Ok(Self {
            product: id("product", p.required("product")?, ProductCode::parse)?,
            customer_account_code: id(
                "customer_account_code",
                p.required("customer_account_code")?,
                CustomerAccountCode::parse,
            )?,
            response_type,
            redirect_uri: p.string("redirect_uri")?,
        })
    }
}

/// What a client asks `GET /product_details` for (SPEC §9): a product, named alone.
#[derive(Clone, Debug)]
pub struct ProductDetailsRequest {
    pub product: ProductCode,
    pub include_latest_version: bool,
    pub include_custom_fields: bool,
    /// The environment whose latest version is wanted (e.g. `win64`); absent: any.
    pub env: Option<String>,
}

impl ProductDetailsRequest {
    pub fn parse(p: &Params) -> Result<Self, ApiError> {
        Ok(Self {
            product: id("product", p.required("product")?, ProductCode::parse)?,
            include_latest_version: p.bool("include_latest_version")?.unwrap_or(false),
            include_custom_fields: p.bool("include_custom_fields")?.unwrap_or(false),
            env: p.string("env")?,
        })
    }
}

/// `GET /customer_license_users` (SPEC §9): a product and a customer, named by email.
#[derive(Clone, Debug)]
pub struct CustomerRequest {
    pub product: ProductCode,
    /// Lower-cased like a license user's email, as the customer index is keyed.
    pub customer: Username,
}

impl CustomerRequest {
    pub fn parse(p: &Params) -> Result<Self, ApiError> {
        Ok(Self {
            product: id("product", p.required("product")?, ProductCode::parse)?,
            customer: id("customer", p.required("customer")?, Username::parse)?,
        })
    }
}

/// Most bytes of each customer field, and of a `license_policy` code, a trial request may carry.
pub const MAX_CUSTOMER_FIELD_BYTES: usize = 255;

/// `GET /trial_key` (SPEC §9): the product and device a trial is for, the license user to create for a
/// user-based product, the policy to create it with, and who the customer is.
#[derive(Clone, Debug)]
pub struct TrialRequest {
    pub product: ProductCode,
    pub hardware_id: HardwareId,
    pub email: Option<Username>,
    pub license_policy: Option<String>,
    pub customer: crate::model::Customer,
}

impl TrialRequest {
    pub fn parse(p: &Params) -> Result<Self, ApiError> {
        let product = id("product", p.required("product")?, ProductCode::parse)?;
        let hardware_id = match p.string("hardware_id")? {
            Some(hw) if !hw.trim().is_empty() => id("hardware_id", hw, HardwareId::parse)?,
            _ => return Err(ApiError::MissingHardwareId),
        };
        let email = p
            .string("email")?
            .map(|e| {
                let email = id("email", e, Username::parse)?;
                if !email.as_str().contains('@') {
                    return Err(ApiError::Validation("`email` must be an email address".into()));
                }
                Ok(email)
            })
            .transpose()?;
        let field = |name: &str| -> Result<Option<String>, ApiError> {
            let Some(value) = p.string(name)? else { return Ok(None) };
            if value.len() > MAX_CUSTOMER_FIELD_BYTES || value.chars().any(char::is_control) {
                return Err(ApiError::Validation(format!(
                    "`{name}` must be at most {MAX_CUSTOMER_FIELD_BYTES} bytes without control characters"
                )));
            }
            Ok(Some(value))
        };
        let customer = crate::model::Customer {
            email: email.as_ref().map(|e| e.as_str().to_owned()),
            first_name: field("first_name")?,
            last_name: field("last_name")?,
            phone: field("phone")?,
            address: field("address")?,
            postcode: field("postcode")?,
            state: field("state")?,
            country: field("country")?,
            city: field("city")?,
            reference: field("reference")?,
            ..crate::model::Customer::default()
        };
        Ok(Self {
            product,
            hardware_id,
            email,
            license_policy: field("license_policy")?,
            customer,
        })
    }
}

fn device_details(p: &Params) -> Result<Map<String, Value>, ApiError> {
    let mut details = Map::new();
    for &name in DEVICE_DETAIL_FIELDS {
        let value = match p.get(name) {
            None | Some(Value::Null) => continue,
            Some(Value::Bool(b)) => Value::Bool(*b),
            Some(Value::String(s)) if name == "is_vm" => Value::Bool(matches!(s.as_str(), "true" | "1")),
            Some(Value::String(s)) => Value::String(truncate(s, MAX_DETAIL_VALUE)),
            Some(other) => Value::String(truncate(&other.to_string(), MAX_DETAIL_VALUE)),
        };
        details.insert(name.to_owned(), value);
    }
    Ok(details)
}

fn variables(p: &Params) -> Result<Vec<(String, String)>, ApiError> {
    let map = match p.get("variables") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Object(map)) => map,
        Some(_) => {
            return Err(ApiError::Validation(
                "`variables` must be an object of name → value".into(),
            ))
        }
    };
    if map.len() > MAX_VARIABLES {
        return Err(ApiError::Validation(format!(
            "at most {MAX_VARIABLES} `variables` are allowed"
        )));
    }
    map.iter()
        .map(|(name, value)| {
            if name.is_empty() || name.len() > MAX_VARIABLE_NAME {
                return Err(ApiError::Validation(format!(
                    "variable names must be 1 to {MAX_VARIABLE_NAME} bytes"
                )));
            }
            let text = match value {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            };
            if text.len() > MAX_DETAIL_VALUE {
                return Err(ApiError::Validation(format!(
                    "variable `{name}` is longer than {MAX_DETAIL_VALUE} bytes"
                )));
            }
            Ok((name.clone(), text))
        })
        .collect()
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_client_json_styles_parse_identically() {
        let python =
            br#"{"product": "p1", "hardware_id": "h\u00fc", "license_key": "K-1", "license_id": "42", "os_ver": "x"}"#;
        let node =
            "{\"product\":\"p1\",\"hardware_id\":\"hü\",\"license_key\":\"K-1\",\"license_id\":42,\"sdk_ver\":\"2\"}";
        for body in [&python[..], node.as_bytes()] {
            let r = LicenseRequest::parse(&Params::from_json(body).unwrap()).unwrap();
            assert_eq!(r.hardware_id.as_str(), "hü");
            assert_eq!(r.license_id, Some(42));
        }
    }

    #[test]
    fn query_booleans_and_missing_fields() {
        let p = Params::from_query(Some("product=p&hardware_id=h&license_key=k&is_vm=true&unknown=1")).unwrap();
        assert!(LicenseRequest::parse(&p).unwrap().is_vm);
        let p = Params::from_query(Some("product=p&license_key=k")).unwrap();
        assert!(matches!(LicenseRequest::parse(&p), Err(ApiError::MissingParameters(f)) if f == "hardware_id"));
    }

    #[test]
    fn debug_redacts_the_password() {
        let p =
            Params::from_json(br#"{"product":"p","hardware_id":"h","username":"a@b.c","password":"hunter2-secret"}"#)
                .unwrap();
        let r = LicenseRequest::parse(&p).unwrap();
        let printed = format!("{r:?}");
        assert!(!printed.contains("hunter2-secret"), "{printed}");
        assert!(printed.contains("[REDACTED]") && printed.contains("a@b.c"), "{printed}");
    }

    #[test]
    fn naming_the_license_two_ways_is_a_validation_error() {
        for body in [
            &br#"{"product":"p","hardware_id":"h","license_key":"K-1","username":"a@b.c","password":"x"}"#[..],
            br#"{"product":"p","hardware_id":"h","license_key":"K-1","id_token":"t","customer_account_code":"c"}"#,
            br#"{"product":"p","hardware_id":"h","username":"a@b.c","code":"c","customer_account_code":"c"}"#,
        ] {
            let err = LicenseRequest::parse(&Params::from_json(body).unwrap()).unwrap_err();
            assert!(
                matches!(&err, ApiError::Validation(m) if m.contains("one way")),
                "{err:?}"
            );
        }
        let p = Params::from_query(Some("product=p&hardware_id=h&license_key=K-1&username=a%40b.c")).unwrap();
        assert!(matches!(LicenseRequest::parse(&p), Err(ApiError::Validation(_))));
        // Clients that send the unused field as null or "" still name the license one way.
        let p = Params::from_json(br#"{"product":"p","hardware_id":"h","license_key":"K-1","username":null}"#).unwrap();
        assert!(matches!(
            LicenseRequest::parse(&p).unwrap().credentials,
            Credentials::Key(_)
        ));
        let p = Params::from_json(br#"{"product":"p","hardware_id":"h","license_key":"","username":"a@b.c"}"#).unwrap();
        assert!(matches!(
            LicenseRequest::parse(&p).unwrap().credentials,
            Credentials::User { .. }
        ));
    }

    #[test]
    fn username_is_looked_up_normalised_but_kept_as_sent() {
        let p =
            Params::from_json(br#"{"product":"p","hardware_id":"h","username":"  Ann@Example.com ","password":"x"}"#)
                .unwrap();
        let r = LicenseRequest::parse(&p).unwrap();
        let Credentials::User { username, as_sent, .. } = &r.credentials else {
            panic!("user credentials expected: {r:?}")
        };
        assert_eq!(username.as_str(), "ann@example.com");
        assert_eq!(as_sent, "  Ann@Example.com ");
        // What a client re-derives from its own request is what the server signs over `as_sent`.
        assert_eq!(
            crate::signing::license_signature_message("h", as_sent, ""),
            "h#  ann@example.com #"
        );
        let padded = format!(
            r#"{{"product":"p","hardware_id":"h","username":"a@b.c{}"}}"#,
            " ".repeat(MAX_ID_LEN)
        );
        let err = LicenseRequest::parse(&Params::from_json(padded.as_bytes()).unwrap()).unwrap_err();
        assert!(matches!(err, ApiError::Validation(_)), "{err:?}");
    }

    #[test]
    fn malformed_input_is_a_400() {
        assert!(matches!(Params::from_json(b"{"), Err(ApiError::InvalidJson(_))));
        assert!(matches!(Params::from_json(b"[1]"), Err(ApiError::Validation(_))));
        let p = Params::from_json(br#"{"product":"p","hardware_id":"h","license_key":"k","license_id":1.5}"#).unwrap();
        assert!(matches!(LicenseRequest::parse(&p), Err(ApiError::Validation(_))));
        let p = Params::from_json(br#"{"product":"p","hardware_id":"h","license_key":"k","variables":[1]}"#).unwrap();
        assert!(matches!(LicenseRequest::parse(&p), Err(ApiError::Validation(_))));
        let big = vec![b' '; MAX_BODY_BYTES + 1];
        assert!(matches!(Params::from_json(&big), Err(ApiError::PayloadTooLarge(_))));
    }

    #[test]
    fn sso_url_requests_default_to_the_code_grant_and_name_a_bad_response_type() {
        let parse = |q: &str| SsoUrlRequest::parse(&Params::from_query(Some(q)).unwrap());
        let r = parse("product=p&customer_account_code=acct").unwrap();
        assert_eq!((r.response_type, r.redirect_uri), (SsoResponseType::Code, None));
        let r = parse("product=p&customer_account_code=acct&response_type=token&redirect_uri=https%3A%2F%2Fa%2Fcb")
            .unwrap();
        assert_eq!(r.response_type, SsoResponseType::Token);
        assert_eq!(r.redirect_uri.as_deref(), Some("https://a/cb"));
        let err = parse("product=p&customer_account_code=acct&response_type=id_token").unwrap_err();
        assert!(
            matches!(&err, ApiError::Validation(m) if m.contains("`code` or `token`")),
            "{err:?}"
        );
        let err = parse("product=p").unwrap_err();
        assert!(
            matches!(&err, ApiError::MissingParameters(f) if f == "customer_account_code"),
            "{err:?}"
        );
    }
}
