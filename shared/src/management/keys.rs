//! Management keys (docs/management.md, *Authentication*): what a vendor's tools present to the
//! Management API, as `Authorization: Bearer lsm_<company>_<id>_<secret>` (the company base64url, the
//! id 16 and the secret 64 hex digits). The token is shown once, when the key is created; the store
//! keeps only the SHA-256 digest of the secret. The secret is 256 random bits, so nothing can be
//! guessed by inverting a fast digest, and a slow password hash (argon2) would only make every request
//! cost tens of milliseconds of CPU: a lever for anyone to exhaust the server with made-up tokens.

use crate::audit::Change;
use crate::auth::{Access, Principal, Via};
use crate::error::ApiError;
use crate::ids::{CompanyId, ManagementKeyId};
use crate::model::ManagementKeyRecord;
use crate::state::Core;
use crate::store::write::{Image, Item, Write};
use crate::store::Rejection;
use crate::time::Timestamp;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What every token starts with, so a leaked one is recognisable (secret scanners) and never taken for
/// an OAuth access token.
pub const TOKEN_PREFIX: &str = "lsm_";

/// Longest key name accepted.
pub const MAX_NAME_LEN: usize = 200;

/// A management key's bearer token: the company and id it names, and its secret.
pub struct Token {
    pub company: CompanyId,
    pub id: ManagementKeyId,
    secret: String,
}

impl Token {
    /// Reads `lsm_<company>_<id>_<secret>`; the company's base64url may itself hold `_`, so the id and
    /// secret are taken from the right.
    pub fn parse(token: &str) -> Option<Self> {
        let rest = token.strip_prefix(TOKEN_PREFIX)?;
        let mut parts = rest.rsplitn(3, '_');
        let (secret, id, company) = (parts.next()?, parts.next()?, parts.next()?);
        let hex = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit());
        if !hex(secret, 64) || !hex(id, 16) {
            return None;
        }
        let company = String::from_utf8(B64URL.decode(company).ok()?).ok()?;
        Some(Self {
            company: CompanyId::parse(&company).ok()?,
            id: ManagementKeyId::parse(id).ok()?,
            secret: secret.to_owned(),
        })
    }

    fn new(company: CompanyId) -> Result<Self, ApiError> {
        Ok(Self {
            company,
            id: ManagementKeyId::parse(&hex(&random::<8>()?)).map_err(ApiError::internal)?,
            secret: hex(&random::<32>()?),
        })
    }

    /// The token as the caller sends it.
    pub fn reveal(&self) -> String {
        format!(
            "{TOKEN_PREFIX}{}_{}_{}",
            B64URL.encode(self.company.as_str()),
            self.id,
            self.secret
        )
    }

    /// Whether `record` is this token's key with this secret, compared in constant time.
    fn matches(&self, record: &ManagementKeyRecord) -> bool {
        let given = digest(&self.secret);
        aws_lc_rs::constant_time::verify_slices_are_equal(given.as_bytes(), record.secret_hash.as_bytes()).is_ok()
    }
}

fn digest(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(super) fn random<const N: usize>() -> Result<[u8; N], ApiError> {
    let mut bytes = [0u8; N];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| ApiError::internal("the system's random number generator failed"))?;
    Ok(bytes)
}

/// The record of the key a token names, with its secret's digest: how a known token (the events' key,
/// docs/deploy.md) is stored without `create`, which makes a new one.
pub fn record_of(token: &str, name: &str, read_only: bool) -> Option<ManagementKeyRecord> {
    let token = Token::parse(token)?;
    Some(ManagementKeyRecord {
        secret_hash: digest(&token.secret),
        id: token.id,
        company: token.company,
        name: name.to_owned(),
        read_only,
        revoked: false,
        created_at: Timestamp::now(),
    })
}

/// The caller a bearer token names, if its key exists, holds this secret and is not revoked; the
/// record is read on every request (no cache), so a revocation takes effect at once.
pub async fn verify(state: &Core, token: &str, access: Access) -> Result<Principal, ApiError> {
    let token = Token::parse(token).ok_or(ApiError::InvalidManagementKey)?;
    let record = state
        .store
        .management_key(&token.company, &token.id)
        .await
        .map_err(ApiError::store)?
        .filter(|r| token.matches(r))
        .ok_or(ApiError::InvalidManagementKey)?;
    if record.revoked {
        return Err(ApiError::RevokedManagementKey);
    }
    let principal = Principal {
        company: record.company,
        products: Vec::new(),
        read_only: record.read_only,
        via: Via::ManagementKey(record.id),
    };
    crate::auth::admit(|a| a.verified(&principal.via))?;
    if access == Access::Write && principal.read_only {
        return Err(ApiError::ReadOnlyManagementKey);
    }
    Ok(principal)
}

/// A key as listed: never its secret or digest.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KeyView {
    pub id: ManagementKeyId,
    pub company: CompanyId,
    pub name: String,
    pub read_only: bool,
    pub revoked: bool,
    pub created_at: Timestamp,
}

impl From<&ManagementKeyRecord> for KeyView {
    fn from(r: &ManagementKeyRecord) -> Self {
        Self {
            id: r.id.clone(),
            company: r.company.clone(),
            name: r.name.clone(),
            read_only: r.read_only,
            revoked: r.revoked,
            created_at: r.created_at,
        }
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub read_only: bool,
}

/// A new key and its token, which is shown this once.
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreatedKey {
    #[serde(flatten)]
    pub key: KeyView,
    pub token: String,
}

/// `POST /keys`, `license-server management-key create`: a new key of the principal's company.
pub async fn create(state: &Core, principal: &Principal, input: CreateKey) -> Result<CreatedKey, ApiError> {
    if input.name.len() > MAX_NAME_LEN || input.name.chars().any(char::is_control) {
        return Err(ApiError::Validation(format!(
            "name: at most {MAX_NAME_LEN} bytes without control characters"
        )));
    }
    let token = Token::new(principal.company.clone())?;
    let record = ManagementKeyRecord {
        id: token.id.clone(),
        company: principal.company.clone(),
        name: input.name,
        secret_hash: digest(&token.secret),
        read_only: input.read_only,
        revoked: false,
        created_at: Timestamp::now(),
    };
    let item = Item::ManagementKey(record.company.clone(), record.id.clone());
    let change = key_change("key.create", &record);
    let write = Write::create(item, Image::ManagementKey(Box::new(record.clone())));
    let created = CreatedKey {
        key: KeyView::from(&record),
        token: token.reveal(),
    };
    super::create_once(state, principal, (&change, write), created, || {
        ApiError::AlreadyExists(format!("management key {}", record.id))
    })
    .await
}

/// The error of a refused or failed write: a refused condition is `on_refusal`'s.
pub(super) fn refused(rejection: Rejection, on_refusal: impl FnOnce() -> ApiError) -> ApiError {
    match rejection {
        Rejection::Store(e) => ApiError::store(e),
        Rejection::Conflict | Rejection::Unknown(_) => ApiError::Contention,
        _ => on_refusal(),
    }
}

fn key_change(action: &'static str, record: &ManagementKeyRecord) -> Change {
    Change {
        action,
        subject: format!("management_key:{}", record.id),
        detail: serde_json::json!({ "name": record.name, "read_only": record.read_only }),
    }
}

#[derive(Clone, Debug, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct KeyRef {
    pub id: ManagementKeyId,
}

/// `POST /keys/{id}/revoke`, `license-server management-key revoke`. A key may revoke itself (a
/// leaked key's holder can always stop it); revoking a revoked key changes nothing and records nothing.
pub async fn revoke(state: &Core, principal: &Principal, input: KeyRef) -> Result<KeyView, ApiError> {
    let unknown = || ApiError::UnknownResource(format!("management key {}", input.id));
    let mut record = state
        .store
        .management_key(&principal.company, &input.id)
        .await
        .map_err(ApiError::store)?
        .ok_or_else(unknown)?;
    if record.revoked {
        return Ok(KeyView::from(&record));
    }
    record.revoked = true;
    let item = Item::ManagementKey(record.company.clone(), record.id.clone());
    let mut write = Write::put(item, Image::ManagementKey(Box::new(record.clone())));
    write.items[0].conditions.push(crate::store::write::Cond::Exists);
    super::write_once(state, principal, &key_change("key.revoke", &record), write)
        .await
        .map_err(|r| refused(r, unknown))?;
    Ok(KeyView::from(&record))
}

#[derive(Clone, Debug, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ListKeys {
    #[serde(default)]
    pub limit: Option<usize>,
    #[serde(default)]
    pub cursor: Option<ManagementKeyId>,
}

/// `GET /keys`, `license-server management-key list`: one page of the company's keys, by id.
pub async fn list(state: &Core, principal: &Principal, input: ListKeys) -> Result<super::Page<KeyView>, ApiError> {
    let limit = super::page_limit(input.limit)?;
    let keys = state
        .store
        .management_keys(&principal.company, input.cursor.as_ref(), limit)
        .await
        .map_err(ApiError::store)?;
    let cursor = (keys.len() == limit)
        .then(|| keys.last().map(|k| k.id.to_string()))
        .flatten();
    Ok(super::Page {
        items: keys.iter().map(KeyView::from).collect(),
        cursor,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_round_trips_and_a_malformed_one_is_none() {
        let token = Token::new(CompanyId::parse("ac_me?/é").unwrap()).unwrap();
        let text = token.reveal();
        let back = Token::parse(&text).unwrap();
        assert_eq!((back.company.as_str(), &back.id), ("ac_me?/é", &token.id));
        assert_eq!(back.secret, token.secret);
        for bad in [
            "",
            "lsm_",
            &text[1..],
            &text[..text.len() - 1],
            &text.replace("lsm_", "lsk_"),
        ] {
            assert!(Token::parse(bad).is_none(), "{bad}");
        }
    }
}
