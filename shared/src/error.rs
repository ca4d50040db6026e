//! The one error type of the API. Every failure a handler can meet is a variant here; [`ApiError::status`]
//! and [`ApiError::code`] are the single mapping to the wire (`{"status","code","message"}`, SPEC §1.1),
//! and the `Display` text is the message. Internal causes are kept as a source for the log and never
//! reach the body.

use crate::time::Timestamp;
use crate::BoxError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    // --- transport and input ---
    #[error("Route not found")]
    NotFound,
    #[error("Method not allowed")]
    MethodNotAllowed,
    #[error("Request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    /// A request line whose target is too long (the standalone server's head check).
    #[error("The request URI is longer than {0} bytes")]
    UriTooLong(usize),
    /// A request head with too many or too large header lines (the standalone server's head check).
    #[error("The request headers are larger than {0} bytes or more than 100 lines")]
    HeadTooLarge(usize),
    #[error("Request body is not valid JSON: {0}")]
    InvalidJson(String),
    #[error("{0}")]
    Validation(String),
    #[error("Missing parameters: {0}")]
    MissingParameters(String),
    /// An offline upload whose file is empty (SPEC §6.1).
    #[error("The uploaded file is empty")]
    MissingContent,
    /// An offline payload that cannot be read or lacks a field it needs (SPEC §6.1).
    #[error("Some parameters are missing in the offline request: {0}")]
    OfflinePayload(String),

    // --- authorization (SPEC §1.2) ---
    #[error("Some headers are missing")]
    MissingHeaders,
    #[error("Authorization header is malformed or does not sign the date header")]
    AuthorizationInvalidHeaders,
    #[error("Authorization header is missing parameter: {0}")]
    AuthorizationMissingParams(&'static str),
    #[error("Only the hmac-sha256 algorithm is supported")]
    HmacRequired,
    #[error("Date header is invalid or more than 15 minutes away from the server time")]
    DateHeaderDiff,
    #[error("Provided API key is not valid")]
    InvalidApiKey,
    #[error("Provided API key has been revoked")]
    RevokedApiKey,
    #[error("Provided API key is read-only")]
    ReadOnlyApiKey,
    #[error("Signature does not match")]
    SignatureMismatch,
    #[error("Provided API key is not allowed to access this product")]
    ApiKeyProductNotAllowed,
    /// A bearer token signed by this deployment whose `exp` has passed (SPEC §7): fetch a new one.
    #[error("The OAuth access token has expired: fetch a new one")]
    OAuthTokenExpired,
    /// A bearer token that is not one of ours (shape, key, signature, claims) (SPEC §7).
    #[error("The OAuth access token is malformed or not issued by this server: fetch a new one")]
    OAuthTokenMalformed,

    // --- the OAuth token endpoint (SPEC §7, RFC 6749 §5.2) ---
    /// Unknown client, wrong secret, revoked client, or no credentials: one answer for all.
    #[error("Client authentication failed: check the client_id and client_secret")]
    InvalidClient,
    #[error("Only grant_type=client_credentials is supported")]
    UnsupportedGrantType,
    #[error("{0}")]
    InvalidRequest(String),
    /// The deployment has no token keys (the cause, with what to configure, is logged).
    #[error("This server does not issue OAuth access tokens: its token keys are not configured")]
    TokenKeysMissing,

    // --- products and licenses (SPEC §2.2, §2.3) ---
    #[error("Provided product was not found")]
    UnknownProduct,
    #[error("Product is disabled")]
    DisabledProduct,
    #[error("Product is archived")]
    ArchivedProduct,
    #[error("License with the provided {0} not found")]
    LicenseNotFound(&'static str),
    #[error("The license is not enabled")]
    LicenseNotEnabled,
    #[error("Virtual machine not allowed")]
    VmNotAllowed,
    #[error("Floating cloud licenses cannot be activated offline")]
    OfflineFloatingCloudNotSupported,
    /// Every floating cloud slot of the license is held: retry after one is released or expires.
    #[error("No floating slot is free on this license: retry after a device releases one or its slot expires")]
    FloatingNotAvailable,
    /// SPEC §9 decision: the license does not allow borrowing, or `borrowed_until` is not within
    /// `max_borrow_time` hours from now.
    #[error("This license cannot be borrowed until {0}: it needs can_borrow, and a time after now within max_borrow_time hours")]
    LicenseNotBorrowable(Timestamp),
    /// The vendor turned off offline activation for the license (`allow_offline_activation: false`).
    #[error("Offline activation is not allowed for this license")]
    OfflineActivationNotAllowed,
    #[error("This license cannot be activated before start date: {0}")]
    LicenseStartDate(Timestamp),
    #[error("This device is blacklisted")]
    Blacklisted,
    #[error("This license key has already been activated the maximum number of times")]
    LicenseActivatedMaxTimes,
    #[error("License user has activated this license max times")]
    LicenseUserActivatedMaxTimes,
    #[error("License validity period has expired")]
    LicenseExpired,
    #[error("Trial period has expired")]
    TrialExpired,
    /// `trial_key` for a product without trials, or with a `license_policy` the product has no trial
    /// policy of (SPEC §9; the **Decision** in docs/catalog.md, *Trial policies*): says which.
    #[error("{0}")]
    TrialNotAllowed(String),
    /// `trial_key` without a hardware id (SPEC §9).
    #[error("A trial is for one device: send its hardware_id")]
    MissingHardwareId,
    /// `trial_key` of a user-based product without the email of the license user to create (SPEC §9).
    #[error("A trial of a user-based product needs the license user's email")]
    EmailMissing,
    /// The vendor manages this license user's password (`password_change_disabled` in the catalog).
    #[error("This license user's password cannot be changed here: ask the vendor")]
    ChangePasswordNotAllowed,
    #[error("This license has already been transferred the maximum number of times")]
    LicenseTransferredMaxTimes,
    #[error("A device matching this hardware_id is already created on the license.")]
    LicenseDeviceExists,
    #[error("The license is not active")]
    LicenseNotActive,
    #[error("An active device matching the hardware_id not found")]
    DeviceNotFound,
    #[error("Specified product code is not a bundle")]
    ProductNotBundle,

    // --- consumptions (SPEC §6.2, §9) ---
    #[error("The license is not a consumption license")]
    LicenseNotConsumption,
    #[error("The license does not have enough consumptions left")]
    LicenseNotEnoughConsumptions,
    /// The total would leave ±(2^53 − 1), the integers every client reads exactly.
    #[error("The {0}'s total consumptions would leave ±9007199254740991, the range every client reads exactly; report a smaller amount")]
    ConsumptionTotalOutOfRange(&'static str),
    #[error("Negative consumptions are not allowed on this {0}")]
    NegativeConsumptionsNotAllowed(&'static str),
    /// No feature of the product has the code, or none that the request can use (`{1}`: which kind).
    #[error("The license has no {1}feature with code {0}")]
    InvalidLicenseFeatureCode(String, &'static str),
    /// The feature's `expiry_date` has passed (SPEC §9 **Decision**).
    #[error("The license feature {0} has expired")]
    LicenseFeatureExpired(String),

    // --- the Management API (docs/management.md) ---
    /// No `Authorization: Bearer lsm_…` header, a malformed token, an unknown key or a wrong secret:
    /// one answer for all, so a caller learns nothing about which keys exist.
    #[error("The management key is missing, malformed or unknown: send Authorization: Bearer <the token `license-server management-key create` printed>")]
    InvalidManagementKey,
    #[error("The management key has been revoked: create a new one")]
    RevokedManagementKey,
    #[error("The management key is read-only: this operation changes state")]
    ReadOnlyManagementKey,
    /// A management resource that does not exist (`{0}`: what, e.g. `license app/K-1`).
    #[error("No {0}")]
    UnknownResource(String),
    /// A license the Management API was asked for does not exist.
    #[error("No license {0}")]
    UnknownLicense(String),
    /// A create of something that exists (`{0}`: what).
    #[error("{0} exists already")]
    AlreadyExists(String),
    /// A product, license user or other management resource that something still uses (`{0}`: what,
    /// and what to do), e.g. a product with licenses, a user assigned to licenses.
    #[error("{0}")]
    ResourceInUse(String),
    /// A license deleted while devices are active on it.
    #[error("The license has {0} active device(s): deactivate them first, or delete with ?force=true")]
    LicenseInUse(i64),
    /// An `Idempotency-Key` sent again with another request.
    #[error("The Idempotency-Key was already used for a different request: use a new key for a new request")]
    IdempotencyKeyReused,

    // --- server side ---
    #[error("The license is busy; retry the request")]
    Contention,
    /// A per-client limit (rate, concurrent password checks) was reached; the client should back off.
    #[error("Too many requests; retry later")]
    TooManyRequests,
    #[error("Internal server error")]
    Internal(#[source] BoxError),
}

impl ApiError {
    pub fn internal(cause: impl Into<BoxError>) -> Self {
        Self::Internal(cause.into())
    }

    /// A store failure: "unavailable" (throttled, unreachable) is a 503 the client may retry; anything
    /// else is an internal error whose cause goes to the log.
    pub fn store(cause: crate::store::StoreError) -> Self {
        match cause {
            crate::store::StoreError::Unavailable(why) => {
                tracing::warn!(cause = %why, "store unavailable");
                Self::Contention
            }
            other => Self::internal(other),
        }
    }

    pub fn status(&self) -> u16 {
        use ApiError::*;
        match self {
            NotFound => 404,
            MethodNotAllowed => 405,
            PayloadTooLarge(_) => 413,
            UriTooLong(_) => 414,
            HeadTooLarge(_) => 431,
            LicenseDeviceExists | AlreadyExists(_) | LicenseInUse(_) | ResourceInUse(_) => 409,
            InvalidManagementKey | RevokedManagementKey => 401,
            ReadOnlyManagementKey => 403,
            UnknownResource(_) | UnknownLicense(_) => 404,
            IdempotencyKeyReused => 422,
            Contention => 503,
            TooManyRequests => 429,
            Internal(_) => 500,
            OAuthTokenExpired | OAuthTokenMalformed | InvalidClient => 401,
            TokenKeysMissing => 500,
            _ => 400,
        }
    }

    /// `WWW-Authenticate` for the 401s: client credentials go in Basic (RFC 6749 §5.2), access tokens
    /// in Bearer (RFC 6750 §3.1).
    pub fn challenge(&self) -> Option<&'static str> {
        match self {
            Self::InvalidClient => Some("Basic realm=\"License API\""),
            Self::OAuthTokenExpired => {
                Some("Bearer error=\"invalid_token\", error_description=\"the access token expired\"")
            }
            Self::OAuthTokenMalformed => Some("Bearer error=\"invalid_token\""),
            Self::InvalidManagementKey | Self::RevokedManagementKey => {
                Some("Bearer realm=\"Management API\", error=\"invalid_token\"")
            }
            _ => None,
        }
    }

    pub fn code(&self) -> &'static str {
        use ApiError::*;
        match self {
            NotFound => "not_found",
            MethodNotAllowed => "method_not_allowed",
            PayloadTooLarge(_) => "payload_too_large",
            InvalidJson(_) => "invalid_json",
            Validation(_) | UriTooLong(_) | HeadTooLarge(_) => "validation_error",
            MissingParameters(_) => "missing_parameters",
            MissingContent => "missing_content",
            OfflinePayload(_) => "authorization_missing_params",
            MissingHeaders => "missing_headers",
            AuthorizationInvalidHeaders => "authorization_invalid_headers",
            AuthorizationMissingParams(_) => "authorization_missing_params",
            HmacRequired => "hmac_required",
            DateHeaderDiff => "date_header_diff",
            InvalidApiKey => "invalid_api_key",
            RevokedApiKey => "revoked_api_key",
            ReadOnlyApiKey => "read_only_api_key",
            SignatureMismatch => "signature_mismatch",
            ApiKeyProductNotAllowed => "api_key_product_not_allowed",
            OAuthTokenExpired => "oauth_token_expired",
            OAuthTokenMalformed => "oauth_token_malformed",
            InvalidClient => "invalid_client",
            UnsupportedGrantType => "unsupported_grant_type",
            InvalidRequest(_) => "invalid_request",
            TokenKeysMissing => "internal_error",
            UnknownProduct => "unknown_product",
            DisabledProduct => "disabled_product",
            ArchivedProduct => "archived_product",
            LicenseNotFound(_) => "license_not_found",
            LicenseNotEnabled => "license_not_enabled",
            VmNotAllowed => "vm_not_allowed",
            OfflineFloatingCloudNotSupported => "offline_floating_cloud_not_supported",
            FloatingNotAvailable => "floating_not_available",
            LicenseNotBorrowable(_) => "license_not_borrowable",
            OfflineActivationNotAllowed => "offline_activation_not_allowed",
            LicenseStartDate(_) => "license_start_date_error",
            Blacklisted => "blacklisted",
            LicenseActivatedMaxTimes => "license_activated_max_times",
            LicenseUserActivatedMaxTimes => "license_user_activated_max_times",
            LicenseExpired => "license_expired",
            TrialExpired => "trial_expired",
            TrialNotAllowed(_) => "trial_not_allowed",
            MissingHardwareId => "missing_hardware_id",
            EmailMissing => "email_missing",
            ChangePasswordNotAllowed => "change_password_not_allowed",
            LicenseTransferredMaxTimes => "license_transferred_max_times",
            LicenseDeviceExists => "license_device_exists",
            LicenseNotActive => "license_not_active",
            DeviceNotFound => "device_not_found",
            ProductNotBundle => "product_not_bundle",
            LicenseNotConsumption => "license_not_consumption",
            LicenseNotEnoughConsumptions | ConsumptionTotalOutOfRange(_) => "license_not_enough_consumptions",
            NegativeConsumptionsNotAllowed(_) => "negative_consumptions_not_allowed",
            InvalidLicenseFeatureCode(..) => "invalid_license_feature_code",
            LicenseFeatureExpired(_) => "license_feature_expired",
            InvalidManagementKey => "invalid_api_key",
            RevokedManagementKey => "revoked_api_key",
            ReadOnlyManagementKey => "read_only_api_key",
            UnknownResource(_) => "not_found",
            UnknownLicense(_) => "license_not_found",
            AlreadyExists(_) => "already_exists",
            LicenseInUse(_) => "license_in_use",
            ResourceInUse(_) => "resource_in_use",
            IdempotencyKeyReused => "idempotency_key_reused",
            Contention => "service_busy",
            TooManyRequests => "too_many_requests",
            Internal(_) => "internal_error",
        }
    }

    /// The RFC 6749 §5.2 `error` the token endpoint answers this with (SPEC §7: OAuth clients read
    /// only that field): a credential failure is `invalid_client`, a request the server could not
    /// read `invalid_request`, a server-side failure `server_error` or `temporarily_unavailable`.
    pub fn oauth_error(&self) -> &'static str {
        use ApiError::*;
        match self {
            InvalidClient => "invalid_client",
            UnsupportedGrantType => "unsupported_grant_type",
            Contention | TooManyRequests => "temporarily_unavailable",
            Internal(_) | TokenKeysMissing => "server_error",
            _ => "invalid_request",
        }
    }

    /// The wire body: `{"status":…,"code":…,"message":…}` in that order.
    pub fn body(&self) -> String {
        self.body_with(None)
    }

    /// The token endpoint's error body: the SPEC's three fields, then RFC 6749's `error` and
    /// `error_description`.
    pub fn oauth_body(&self) -> String {
        self.body_with(Some(self.oauth_error()))
    }

    fn body_with(&self, oauth_error: Option<&'static str>) -> String {
        let message = self.to_string();
        let body = ErrorBody {
            status: self.status(),
            code: self.code(),
            error_description: oauth_error.map(|_| message.clone()),
            message,
            error: oauth_error,
        };
        serde_json::to_string(&body).unwrap_or_else(|_| {
            r#"{"status":500,"code":"internal_error","message":"Internal server error"}"#.to_owned()
        })
    }
}

/// Every error's body (SPEC §1.1); the OAuth token endpoint's also carries RFC 6749 §5.2's fields.
#[derive(serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub(crate) struct ErrorBody<'a> {
    /// The HTTP status, repeated.
    pub(crate) status: u16,
    pub(crate) code: &'a str,
    pub(crate) message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) error: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) error_description: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_has_exactly_status_code_message() {
        let body: serde_json::Value = serde_json::from_str(&ApiError::LicenseDeviceExists.body()).unwrap();
        assert_eq!(body["status"], 409);
        assert_eq!(body["code"], "license_device_exists");
        assert_eq!(body.as_object().unwrap().len(), 3);
    }

    #[test]
    fn token_endpoint_errors_carry_the_oauth_fields_too() {
        let body: serde_json::Value = serde_json::from_str(&ApiError::InvalidClient.oauth_body()).unwrap();
        assert_eq!(
            (body["status"].as_u64(), body["code"].as_str()),
            (Some(401), Some("invalid_client"))
        );
        assert_eq!(body["error"], "invalid_client");
        assert_eq!(body["error_description"], body["message"]);
        assert_eq!(body.as_object().unwrap().len(), 5);
        let internal: serde_json::Value = serde_json::from_str(&ApiError::internal("x").oauth_body()).unwrap();
        assert_eq!(internal["error"], "server_error");
        assert_eq!(ApiError::InvalidRequest("x".into()).oauth_error(), "invalid_request");
        assert_eq!(ApiError::PayloadTooLarge(1).oauth_error(), "invalid_request");
    }

    #[test]
    fn internal_cause_stays_out_of_the_message() {
        let e = ApiError::internal("disk on fire at 10.0.0.1");
        assert_eq!(e.to_string(), "Internal server error");
        assert!(!e.body().contains("disk"));
    }
}
