//! Which errors each endpoint can answer, as [`ApiError`] values: the document takes their statuses
//! and codes from `ApiError::status` and `ApiError::code`, the one mapping to the wire, so a code
//! cannot be spelled twice. The groups follow the SPEC: §1.1 and §1.2 for every authenticated
//! endpoint, §2.2–2.3 for those that name a license, and §9's table for each endpoint's own.

use crate::auth::Access;
use crate::error::ApiError;
use crate::handlers::endpoints::{Descriptor, Endpoint, Input};
use crate::time::Timestamp;

/// Input that cannot be served as sent, and the server's own back-off answers.
fn input(d: &Descriptor) -> Vec<ApiError> {
    let mut errors = vec![
        ApiError::Validation(String::new()),
        ApiError::MissingParameters(String::new()),
        ApiError::TooManyRequests,
    ];
    if d.input != Input::Nothing {
        errors.extend([ApiError::PayloadTooLarge(0), ApiError::Contention]);
    }
    match d.input {
        Input::Params if d.method != http::Method::GET => errors.push(ApiError::InvalidJson(String::new())),
        Input::Upload => errors.extend([ApiError::MissingContent, ApiError::OfflinePayload(String::new())]),
        Input::Form => errors.extend([
            ApiError::InvalidRequest(String::new()),
            ApiError::InvalidClient,
            ApiError::UnsupportedGrantType,
            ApiError::TokenKeysMissing,
        ]),
        _ => {}
    }
    errors
}

/// SPEC §1.2 and §7: the request's authentication.
fn auth(access: Access) -> Vec<ApiError> {
    let mut errors = vec![
        ApiError::MissingHeaders,
        ApiError::AuthorizationInvalidHeaders,
        ApiError::AuthorizationMissingParams(""),
        ApiError::HmacRequired,
        ApiError::DateHeaderDiff,
        ApiError::InvalidApiKey,
        ApiError::RevokedApiKey,
        ApiError::SignatureMismatch,
        ApiError::ApiKeyProductNotAllowed,
        ApiError::OAuthTokenExpired,
        ApiError::OAuthTokenMalformed,
    ];
    if access == Access::Write {
        errors.push(ApiError::ReadOnlyApiKey);
    }
    errors
}

fn product() -> Vec<ApiError> {
    vec![
        ApiError::UnknownProduct,
        ApiError::DisabledProduct,
        ApiError::ArchivedProduct,
    ]
}

/// SPEC §2.2–2.3: the license a request names, and its device.
fn license() -> Vec<ApiError> {
    let epoch = Timestamp::from_millis(0);
    join([
        product(),
        vec![
            ApiError::LicenseNotFound(""),
            ApiError::LicenseNotEnabled,
            ApiError::LicenseExpired,
            ApiError::TrialExpired,
            ApiError::LicenseStartDate(epoch),
            ApiError::VmNotAllowed,
            ApiError::Blacklisted,
            ApiError::LicenseNotActive,
            ApiError::DeviceNotFound,
            ApiError::ProductNotBundle,
            ApiError::FloatingNotAvailable,
        ],
    ])
}

/// Groups of errors as one list (`ApiError` is not `Clone`: no `concat`).
fn join<const N: usize>(groups: [Vec<ApiError>; N]) -> Vec<ApiError> {
    groups.into_iter().flatten().collect()
}

/// SPEC §9's "specific errors", and the activations' limits (§2.3).
fn own(endpoint: Endpoint) -> Vec<ApiError> {
    use Endpoint::*;
    let activation = || {
        vec![
            ApiError::LicenseActivatedMaxTimes,
            ApiError::LicenseUserActivatedMaxTimes,
            ApiError::LicenseTransferredMaxTimes,
            ApiError::LicenseDeviceExists,
        ]
    };
    let offline = || {
        vec![
            ApiError::OfflineActivationNotAllowed,
            ApiError::OfflineFloatingCloudNotSupported,
        ]
    };
    let consumption = || {
        vec![
            ApiError::LicenseNotConsumption,
            ApiError::LicenseNotEnoughConsumptions,
            ApiError::ConsumptionTotalOutOfRange(""),
            ApiError::NegativeConsumptionsNotAllowed(""),
        ]
    };
    let feature = || {
        vec![
            ApiError::InvalidLicenseFeatureCode(String::new(), ""),
            ApiError::LicenseFeatureExpired(String::new()),
        ]
    };
    match endpoint {
        ActivateLicense | ActivateBundle => activation(),
        ActivateOffline | ActivateBundleOffline => join([activation(), offline(), consumption(), feature()]),
        DeactivateOffline | DeactivateBundleOffline => join([consumption(), feature()]),
        FloatingBorrow => vec![ApiError::LicenseNotBorrowable(Timestamp::from_millis(0))],
        AddConsumption => consumption(),
        AddFeatureConsumption => join([consumption(), feature()]),
        CheckLicenseFeature => feature(),
        TrialKey => vec![
            ApiError::TrialNotAllowed(String::new()),
            ApiError::MissingHardwareId,
            ApiError::EmailMissing,
        ],
        ChangePassword => vec![ApiError::ChangePasswordNotAllowed, ApiError::LicenseNotFound("")],
        _ => Vec::new(),
    }
}

/// Every error `d` can answer besides a server fault (500), which is a defect, not an answer.
pub fn of(d: &Descriptor) -> Vec<ApiError> {
    use Endpoint::*;
    let names_license = !matches!(
        d.endpoint,
        Root | ProductDetails | TrialKey | SsoUrl | ChangePassword | OauthUrl | OauthToken
    );
    let mut errors = input(d);
    if let Some(access) = d.access {
        errors.extend(auth(access));
    }
    if names_license {
        errors.extend(license());
    } else if matches!(d.endpoint, ProductDetails | TrialKey | SsoUrl) {
        errors.extend(product());
    }
    errors.extend(own(d.endpoint));
    errors
}
