//! OAuth clients through the Management API (docs/management-resources.md, *OAuth clients*):
//! `/oauth-clients/{client_id}`. A client's fields are the catalog's OAuth client entry, checked by the
//! catalog's own code ([`crate::catalog::oauth_client_of_entry`]), so a client is defined once. The
//! secret is generated here, shown once in the answer to the create, and stored as the catalog import
//! stores it: its argon2id hash, and sealed with the deployment's sealing key (docs/oauth.md).
//!
//! Clients are stored by id alone; `GET /oauth-clients` lists a company's through an index
//! ([`super::lists`]). A client of another company reads as unknown. A revocation takes effect at once
//! in this process and in others within the record cache's TTL; tokens it issued stay valid until
//! they expire (docs/oauth.md).

use super::credential::{self, Credential};
use super::keys::{hex, random};
use super::products::{invalid, named};
use crate::audit::Change;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::ids::{OAuthClientId, ProductCode};
use crate::model::OAuthClientRecord;
use crate::secret::ExposeSecret;
use crate::state::Core;
use crate::store::write::{Image, Item, Write};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A client as read: never its secret, hash or sealed secret.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ClientView {
    pub client_id: OAuthClientId,
    pub products: Vec<ProductCode>,
    pub read_only: bool,
    pub revoked: bool,
}

impl From<&OAuthClientRecord> for ClientView {
    fn from(c: &OAuthClientRecord) -> Self {
        Self {
            client_id: c.id.clone(),
            products: c.products.clone(),
            read_only: c.read_only,
            revoked: c.revoked,
        }
    }
}

/// `POST /oauth-clients`: the catalog's OAuth client entry without `client_secret` (generated);
/// `client_id` is generated when absent.
#[derive(Clone, Debug, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreateClient {
    #[serde(flatten)]
    pub entry: Map<String, Value>,
}

/// A new client and its secret, which is shown this once.
#[derive(Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreatedClient {
    #[serde(flatten)]
    pub client: ClientView,
    pub client_secret: String,
}

/// Never prints the secret.
impl std::fmt::Debug for CreatedClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedClient")
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

/// One client: `/oauth-clients/{client_id}`.
#[derive(Clone, Debug, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ClientRef {
    pub client_id: OAuthClientId,
}

/// `PATCH /oauth-clients/{client_id}`: what to change; a field not given stays.
#[derive(Clone, Debug, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdateClient {
    pub client_id: OAuthClientId,
    /// The products it may act on, replacing the list (each must exist).
    #[serde(default)]
    pub products: Option<Vec<ProductCode>>,
    #[serde(default)]
    pub read_only: Option<bool>,
}

fn unknown(id: &OAuthClientId) -> ApiError {
    ApiError::UnknownResource(format!("OAuth client {id}"))
}

/// The audit trail's name of the OAuth client.
pub(crate) fn subject(client: &OAuthClientRecord) -> String {
    format!("oauth_client:{}", client.id)
}

fn change(action: &'static str, client: &OAuthClientRecord) -> Change {
    Change {
        action,
        subject: subject(client),
        detail: serde_json::json!({ "products": client.products, "read_only": client.read_only }),
    }
}

/// The stored form of a new client: the secret's argon2id hash (computed off the async threads) and
/// the secret sealed for this client, as the catalog import stores them.
async fn record(state: &Core, principal: &Principal, entry: Map<String, Value>) -> Result<OAuthClientRecord, ApiError> {
    let sealing_key = state.sealing_key.clone().ok_or_else(|| {
        ApiError::internal(
            "OAuth clients need the deployment's sealing key: configure one (license-server: --sealing-key \
             or `license-server keys`; AWS: SealingKeyParameterName)",
        )
    })?;
    let products = named(state, principal, &entry).await?;
    let client = crate::catalog::oauth_client_of_entry("body", Value::Object(entry), &products).map_err(invalid)?;
    let secret = client.secret.clone();
    let secret_hash = tokio::task::spawn_blocking(move || crate::password::hash(secret.expose_secret()))
        .await
        .map_err(|e| ApiError::internal(format!("hashing the client secret failed: {e}")))?;
    let sealed_secret = sealing_key
        .seal(&client.secret, &OAuthClientRecord::seal_context(&client.id))
        .map_err(ApiError::internal)?;
    Ok(OAuthClientRecord {
        id: client.id,
        company: principal.company.clone(),
        secret_hash,
        sealed_secret,
        products: client.products,
        read_only: client.read_only,
        revoked: client.revoked,
        source: Some(crate::model::LicenseSource::Management),
    })
}

/// `POST /oauth-clients`, refused (409) if the id is taken.
pub async fn create(state: &Core, principal: &Principal, input: CreateClient) -> Result<CreatedClient, ApiError> {
    let mut entry = input.entry;
    if entry.contains_key("client_secret") {
        return Err(ApiError::Validation(
            "body.client_secret: is generated by the server and shown once".into(),
        ));
    }
    let secret = hex(&random::<32>()?);
    entry.insert("client_secret".into(), secret.clone().into());
    if !entry.contains_key("client_id") {
        entry.insert("client_id".into(), hex(&random::<16>()?).into());
    }
    let record = record(state, principal, entry).await?;
    let write = Write::create(
        Item::OAuthClient(record.id.clone()),
        Image::OAuthClient(Box::new(record.clone())),
    );
    let created = CreatedClient {
        client: ClientView::from(&record),
        client_secret: secret,
    };
    let change = change("oauth_client.create", &record);
    let created = super::create_once(state, principal, (&change, write), created, || {
        ApiError::AlreadyExists(format!("OAuth client {}", record.id))
    })
    .await?;
    state.auth.forget_client(&record.id);
    Ok(created)
}

/// The principal's company's client `id`; another company's reads as unknown.
async fn load(state: &Core, principal: &Principal, id: &OAuthClientId) -> Result<OAuthClientRecord, ApiError> {
    let record = state.store.oauth_client(id).await.map_err(ApiError::store)?;
    record
        .filter(|c| c.company == principal.company)
        .ok_or_else(|| unknown(id))
}

/// `GET /oauth-clients/{client_id}`.
pub async fn show(state: &Core, principal: &Principal, input: ClientRef) -> Result<ClientView, ApiError> {
    Ok(ClientView::from(&load(state, principal, &input.client_id).await?))
}

/// `POST /oauth-clients/{client_id}/revoke`: the token endpoint then refuses it. Revoking a revoked
/// client changes and records nothing.
pub async fn revoke(state: &Core, principal: &Principal, input: ClientRef) -> Result<ClientView, ApiError> {
    credential::revoke(state, principal, load(state, principal, &input.client_id).await?).await
}

/// `PATCH /oauth-clients/{client_id}`: `products` and `read_only` ([`credential::update`]); tokens it
/// issued keep the grants they were issued with until they expire (docs/oauth.md).
pub async fn update(state: &Core, principal: &Principal, input: UpdateClient) -> Result<ClientView, ApiError> {
    let old = load(state, principal, &input.client_id).await?;
    credential::update(state, principal, old, input.products.as_deref(), input.read_only).await
}

/// `DELETE /oauth-clients/{client_id}`: only a revoked client ([`credential::delete`]).
pub async fn delete(state: &Core, principal: &Principal, input: ClientRef) -> Result<ClientView, ApiError> {
    credential::delete(state, principal, load(state, principal, &input.client_id).await?).await
}

impl Credential for OAuthClientRecord {
    const ACTIONS: [&'static str; 3] = ["oauth_client.revoke", "oauth_client.update", "oauth_client.delete"];
    const REVOKE_ROUTE: &'static str = "POST /oauth-clients/{client_id}/revoke";
    type View = ClientView;
    fn item(&self) -> Item {
        Item::OAuthClient(self.id.clone())
    }
    fn image(&self) -> Image {
        Image::OAuthClient(Box::new(self.clone()))
    }
    fn revoked(&self) -> bool {
        self.revoked
    }
    fn changed(&self, revoked: bool, products: Option<&[ProductCode]>, read_only: Option<bool>) -> Self {
        Self {
            revoked,
            products: products.map_or_else(|| self.products.clone(), <[_]>::to_vec),
            read_only: read_only.unwrap_or(self.read_only),
            ..self.clone()
        }
    }
    fn change(&self, action: &'static str) -> Change {
        change(action, self)
    }
    fn forget(&self, state: &Core) {
        state.auth.forget_client(&self.id);
    }
    fn name(&self) -> String {
        format!("OAuth client {}", self.id)
    }
}
