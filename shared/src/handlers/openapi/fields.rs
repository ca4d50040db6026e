//! What each endpoint reads from a request, for its OpenAPI operation. The parsers (`request.rs`,
//! the consumption, borrow and OAuth handlers) read fields by name from a loose JSON map (SPEC §1:
//! numbers as strings, unknown fields ignored), so there is no serde struct to derive a schema from;
//! this table describes them once, by endpoint, and the test below fails when a parser reads a
//! field the table lacks or the table names one no parser reads.

use crate::handlers::endpoints::Endpoint;
use crate::request::DEVICE_DETAIL_FIELDS;

/// A field's JSON type as the document states it (the canonical one; SPEC §1's string forms are
/// accepted too).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    String,
    /// An identifier (`ids.rs`): 1 to `MAX_ID_LEN` bytes without control characters.
    Id,
    Integer,
    Boolean,
    /// `variables`: an object of name → value.
    Variables,
    /// One of these strings.
    OneOf(&'static [&'static str]),
}

/// One request field.
#[derive(Clone, Copy, Debug)]
pub struct Field {
    pub name: &'static str,
    pub kind: Kind,
    pub required: bool,
    pub doc: &'static str,
}

const fn req(name: &'static str, doc: &'static str) -> Field {
    Field {
        name,
        kind: Kind::Id,
        required: true,
        doc,
    }
}

const fn opt(name: &'static str, kind: Kind, doc: &'static str) -> Field {
    Field {
        name,
        kind,
        required: false,
        doc,
    }
}

const PRODUCT: Field = req("product", "The product's short code.");

/// How a request names its license user (SPEC §2.1): a username and password, or an SSO grant.
const USER: &[Field] = &[
    opt("username", Kind::Id, "A license user's email (user-based products)."),
    opt("password", Kind::String, "The license user's password."),
    opt("id_token", Kind::String, "A single sign-on ID token (implicit grant)."),
    opt("code", Kind::String, "A single sign-on authorization code."),
    opt(
        "customer_account_code",
        Kind::Id,
        "The customer account whose identity provider issued `id_token` or `code`.",
    ),
    opt(
        "redirect_uri",
        Kind::String,
        "The redirect URI the `code` was issued for.",
    ),
];

/// A request about one license on one device (`LicenseRequest`), besides [`USER`].
const LICENSE: &[Field] = &[
    PRODUCT,
    req("hardware_id", "The device's hardware id."),
    opt(
        "license_key",
        Kind::Id,
        "The license key (key-based products); or name a user.",
    ),
    opt("license_id", Kind::Integer, "Picks one of a license user's licenses."),
    opt("bundle_code", Kind::Id, "Picks the member license of this bundle."),
];

const CHECK: &[Field] = &[opt(
    "include_expired_features",
    Kind::Boolean,
    "List features whose expiry date has passed too.",
)];

const VARIABLES: Field = opt("variables", Kind::Variables, "Device variables, name → value.");

const CONSUMPTION: &[Field] = &[
    opt("consumptions", Kind::Integer, "The amount to add; 1 when absent."),
    opt(
        "max_overages",
        Kind::Integer,
        "Tightens the license's overage limit for this request.",
    ),
    opt(
        "allow_overages",
        Kind::Boolean,
        "Tightens the license's overage permission for this request.",
    ),
];

const FEATURE: Field = req("feature", "The feature's code.");

const PRODUCT_DETAILS: &[Field] = &[
    PRODUCT,
    opt(
        "include_latest_version",
        Kind::Boolean,
        "Add the product's latest version.",
    ),
    opt(
        "include_custom_fields",
        Kind::Boolean,
        "Add the product's custom fields.",
    ),
    opt(
        "env",
        Kind::String,
        "The environment whose latest version is wanted, e.g. `win64`.",
    ),
];

const TRIAL: &[Field] = &[
    PRODUCT,
    opt(
        "hardware_id",
        Kind::String,
        "The device the trial is for (required: `missing_hardware_id`).",
    ),
    opt("email", Kind::Id, "The license user to create (user-based products)."),
    opt(
        "license_policy",
        Kind::String,
        "The trial policy to create the license with.",
    ),
    opt("first_name", Kind::String, "Customer field."),
    opt("last_name", Kind::String, "Customer field."),
    opt("phone", Kind::String, "Customer field."),
    opt("address", Kind::String, "Customer field."),
    opt("postcode", Kind::String, "Customer field."),
    opt("state", Kind::String, "Customer field."),
    opt("country", Kind::String, "Customer field."),
    opt("city", Kind::String, "Customer field."),
    opt("reference", Kind::String, "Customer field."),
];

const SSO_URL: &[Field] = &[
    PRODUCT,
    req(
        "customer_account_code",
        "The customer account whose identity provider signs the user in.",
    ),
    opt(
        "response_type",
        Kind::OneOf(&["code", "token"]),
        "The grant to come back with; `code` when absent.",
    ),
    opt(
        "redirect_uri",
        Kind::String,
        "One of the account's redirect URIs; its first when absent.",
    ),
];

const CHANGE_PASSWORD: &[Field] = &[
    req("username", "The license user's email."),
    Field {
        kind: Kind::String,
        ..req("password", "Their current password.")
    },
    Field {
        kind: Kind::String,
        ..req("new_password", "The new password (docs/limits.md: its length).")
    },
];

const OAUTH_URL: &[Field] = &[Field {
    kind: Kind::OneOf(&[crate::handlers::oauth::CLIENT_CREDENTIALS]),
    ..req("login_type", "The OAuth flow; the only one offered.")
}];

/// The token request's form (RFC 6749 §4.4.2); the client may authenticate with Basic instead.
const OAUTH_TOKEN: &[Field] = &[
    Field {
        kind: Kind::OneOf(&[crate::handlers::oauth::CLIENT_CREDENTIALS]),
        ..req("grant_type", "The grant; the only one offered.")
    },
    opt(
        "client_id",
        Kind::String,
        "The OAuth client, unless sent with Basic authentication.",
    ),
    opt(
        "client_secret",
        Kind::String,
        "Its secret, unless sent with Basic authentication.",
    ),
];

/// The fields `endpoint` reads, in the order the document lists them.
pub fn of(endpoint: Endpoint) -> Vec<Field> {
    use Endpoint::*;
    let license = || [LICENSE, USER].concat();
    match endpoint {
        Root | ActivateOffline | DeactivateOffline | ActivateBundleOffline | DeactivateBundleOffline => Vec::new(),
        ActivateLicense | ActivateBundle => [license(), device_details(), vec![VARIABLES]].concat(),
        DeactivateLicense | FloatingRelease | DeactivateBundle | GetDeviceVariables => license(),
        CheckLicense | CheckBundle => [license(), CHECK.to_vec()].concat(),
        FloatingBorrow => [
            license(),
            vec![Field {
                kind: Kind::String,
                ..req("borrowed_until", "Hold the slot until this date-time (ISO 8601).")
            }],
        ]
        .concat(),
        AddConsumption => [license(), CONSUMPTION.to_vec()].concat(),
        AddFeatureConsumption => [license(), vec![FEATURE], CONSUMPTION.to_vec()].concat(),
        CheckLicenseFeature => [license(), vec![FEATURE], CHECK.to_vec()].concat(),
        // Tracking needs something to track.
        TrackDeviceVariables => [
            license(),
            vec![Field {
                required: true,
                ..VARIABLES
            }],
        ]
        .concat(),
        ProductDetails => PRODUCT_DETAILS.to_vec(),
        TrialKey => TRIAL.to_vec(),
        SsoUrl => SSO_URL.to_vec(),
        UserLicenses => [vec![PRODUCT], USER.to_vec()].concat(),
        CustomerLicenseUsers => vec![PRODUCT, req("customer", "The customer's email.")],
        ChangePassword => CHANGE_PASSWORD.to_vec(),
        OauthUrl => OAUTH_URL.to_vec(),
        OauthToken => OAUTH_TOKEN.to_vec(),
    }
}

/// The hardware details an activation stores (`request::DEVICE_DETAIL_FIELDS`); `is_vm` also decides
/// whether a product that prevents virtual machines refuses the device.
fn device_details() -> Vec<Field> {
    DEVICE_DETAIL_FIELDS
        .iter()
        .map(|&name| {
            let kind = if name == "is_vm" { Kind::Boolean } else { Kind::String };
            opt(name, kind, "A hardware detail stored on the device.")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// The sources whose parsers read HTTP request fields by name.
    const PARSERS: [&str; 4] = [
        include_str!("../../request.rs"),
        include_str!("../consumption.rs"),
        include_str!("../floating_borrow.rs"),
        include_str!("../oauth.rs"),
    ];
    /// How those parsers read a field: `p.required("name")`, `field("name")` and the like.
    const READERS: [&str; 6] = [
        "required(\"",
        "string(\"",
        "bool(\"",
        "integer(\"",
        "get(\"",
        "field(\"",
    ];

    fn read_by_parsers() -> BTreeSet<String> {
        let mut names = BTreeSet::new();
        for source in PARSERS {
            for reader in READERS {
                for (at, _) in source.match_indices(reader) {
                    // Not a request field: a `Debug` impl's `.field("…")`, a header's `.get("x-…")`.
                    let before = &source[..at];
                    let header = source[at + reader.len()..].starts_with("x-");
                    if (reader == "field(\"" && before.ends_with('.')) || header {
                        continue;
                    }
                    let rest = &source[at + reader.len()..];
                    if let Some(end) = rest.find('"') {
                        names.insert(rest[..end].to_owned());
                    }
                }
            }
        }
        names.extend(DEVICE_DETAIL_FIELDS.iter().map(|n| (*n).to_owned()));
        names
    }

    #[test]
    fn the_table_names_exactly_the_fields_the_parsers_read() {
        let documented: BTreeSet<String> = Endpoint::ALL
            .iter()
            .flat_map(|&e| of(e))
            .map(|f| f.name.to_owned())
            .collect();
        let read = read_by_parsers();
        let undocumented: Vec<_> = read.difference(&documented).collect();
        let unread: Vec<_> = documented.difference(&read).collect();
        assert!(
            undocumented.is_empty(),
            "read but not in the OpenAPI field table: {undocumented:?}"
        );
        assert!(
            unread.is_empty(),
            "in the OpenAPI field table but read by no parser: {unread:?}"
        );
    }
}
