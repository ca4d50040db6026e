//! Newtypes for the identifiers that travel on the wire, so a hardware id can never be passed where a
//! license key is expected. Each one is validated once, when it is parsed from a request or a catalog.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Longest identifier accepted from a client. Real hardware ids are hashes of ~64 characters; the limit
/// keeps item keys far below DynamoDB's 2 KiB partition-key bound.
pub const MAX_ID_LEN: usize = 512;

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, forbid_hash = $forbid_hash:literal) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(value: String) -> Result<Self, IdError> {
                Self::parse(&value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl $name {
            /// Accepts a non-empty value of at most [`MAX_ID_LEN`] bytes without control characters.
            pub fn parse(value: &str) -> Result<Self, IdError> {
                if value.is_empty() {
                    return Err(IdError::Empty);
                }
                if value.len() > MAX_ID_LEN {
                    return Err(IdError::TooLong);
                }
                if value.chars().any(char::is_control) {
                    return Err(IdError::ControlCharacter);
                }
                // `#` separates the parts of storage keys; codes that sit before another part may not hold it.
                if $forbid_hash && value.contains('#') {
                    return Err(IdError::Hash);
                }
                Ok(Self(value.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                id_schema($forbid_hash)
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::ToSchema for $name {}
    };
}

/// What [`string_id!`]'s `parse` accepts, as JSON Schema: non-empty, no control characters (and no
/// `#` where it is forbidden); the byte bound, which JSON Schema cannot state, in the description.
#[cfg(feature = "openapi")]
fn id_schema(forbid_hash: bool) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    let pattern = if forbid_hash {
        "^[^\\u0000-\\u001f\\u007f-\\u009f#]+$"
    } else {
        "^[^\\u0000-\\u001f\\u007f-\\u009f]+$"
    };
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .pattern(Some(pattern))
        .description(Some(format!("At most {MAX_ID_LEN} bytes.")))
        .build()
        .into()
}

string_id!(
    /// A license key such as `AAAA-BBBB-CCCC-DDDD`; compared exactly as sent.
    LicenseKey,
    forbid_hash = false
);
string_id!(
    /// The client's identifier of a device, opaque to the server.
    HardwareId,
    forbid_hash = false
);
string_id!(
    /// A product's short code, unique within a company.
    ProductCode,
    forbid_hash = true
);
string_id!(
    /// The public half of an API key pair, sent as `apikey` in the Authorization header.
    ApiKeyId,
    forbid_hash = false
);
string_id!(
    /// An OAuth client's public identifier (`client_id`, client credentials grant; docs/oauth.md).
    OAuthClientId,
    forbid_hash = false
);
string_id!(
    /// A management key's public identifier (the Management API, docs/management.md).
    ManagementKeyId,
    forbid_hash = true
);
string_id!(
    /// A company (tenant); every product, license, user and API key belongs to exactly one.
    CompanyId,
    forbid_hash = true
);
string_id!(
    /// A customer account, whose identity provider vouches for single sign-on grants (SPEC §2.1).
    CustomerAccountCode,
    forbid_hash = false
);

string_id!(
    /// A license's order id (`order_store_id` of its terms), as the administrative search takes it.
    OrderId,
    forbid_hash = false
);

/// A license user's login: an email address, compared case-insensitively.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Username(String);

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for Username {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        id_schema(false)
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for Username {}

impl TryFrom<String> for Username {
    type Error = IdError;
    fn try_from(value: String) -> Result<Self, IdError> {
        Self::parse(&value)
    }
}

impl From<Username> for String {
    fn from(value: Username) -> String {
        value.0
    }
}

impl Username {
    /// Lower-cases the address so that `Ann@Example.com` and `ann@example.com` name the same user.
    pub fn parse(value: &str) -> Result<Self, IdError> {
        let trimmed = value.trim();
        let checked = HardwareId::parse(trimmed)?;
        Ok(Self(checked.0.to_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("must not be empty")]
    Empty,
    #[error("is longer than 512 bytes")]
    TooLong,
    #[error("contains a control character")]
    ControlCharacter,
    #[error("contains `#`")]
    Hash,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_empty_long_and_control() {
        assert_eq!(LicenseKey::parse(""), Err(IdError::Empty));
        assert_eq!(LicenseKey::parse(&"a".repeat(513)), Err(IdError::TooLong));
        assert_eq!(HardwareId::parse("a\nb"), Err(IdError::ControlCharacter));
        assert_eq!(HardwareId::parse("ü-1").unwrap().as_str(), "ü-1");
        assert_eq!(ProductCode::parse("a#b"), Err(IdError::Hash));
        assert!(LicenseKey::parse("a#b").is_ok());
    }

    #[test]
    fn deserialising_validates() {
        assert!(serde_json::from_str::<ProductCode>(r#""a#b""#).is_err());
        assert!(serde_json::from_str::<HardwareId>(r#""""#).is_err());
        assert_eq!(
            serde_json::from_str::<Username>(r#""A@B.c""#).unwrap().as_str(),
            "a@b.c"
        );
    }

    #[test]
    fn usernames_are_case_insensitive() {
        assert_eq!(
            Username::parse(" Ann@Example.com ").unwrap().as_str(),
            "ann@example.com"
        );
    }
}

/// Names one offline request on one license: a digest of what the request is (activation or
/// deactivation) and of the content its signature covers (`Payload::content_digest`), so a file is
/// recognised whatever its `request_id` or the spelling of its signature, and fits a fixed-size key.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RequestKey(String);

impl RequestKey {
    pub fn new(kind: &str, id: &[u8]) -> Self {
        use sha2::{Digest, Sha256};
        let digest = Sha256::new()
            .chain_update(kind.as_bytes())
            .chain_update([0u8])
            .chain_update(id)
            .finalize();
        Self(digest.iter().map(|b| format!("{b:02x}")).collect())
    }

    /// A key as stored (read back from an item).
    pub fn from_stored(digest: impl Into<String>) -> Self {
        Self(digest.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}
