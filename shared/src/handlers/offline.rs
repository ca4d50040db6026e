//! `POST /api/v4/activate_offline` and `POST /api/v4/deactivate_offline` (SPEC §6): the online activation
//! and deactivation, reached through a request file. The uploader is authenticated like any request (by
//! the endpoint table, before the handler runs); the file is read (`offline::transport`), its signature
//! verified with the key of the company's API key it names, or in OAuth mode with the secret of the
//! company's OAuth client it names (`offline::payload`, [`FileSigner`]), and the request applied at most
//! once: its record goes into the very write that applies it, and a repeat upload answers what the first
//! got.

use super::activate::{activation_object, ident, Activation};
use super::bundle::{member_objects, Bundle, BundleActivation, BundleDeactivation};
use super::deactivate::{Deactivation, DEACTIVATED};
use super::lookup::Resolved;
use super::runner::{self, Once, WriteOp};
use crate::auth::{hmac_base64, Access, Principal};
use crate::error::ApiError;
use crate::http::{ApiRequest, ApiResponse};
use crate::ids::{CompanyId, RequestKey};
use crate::model::OAuthClientRecord;
use crate::offline::payload::{v1_message, KeyId, Kind, Payload, Schema};
use crate::offline::transport;
use crate::render::{offline_activation, OfflineAnswer, View};
use crate::request::{LicenseRequest, Params};
use crate::rules::{Consumptions, Transport};
use crate::secret::{ExposeSecret, SecretString};
use crate::state::AppState;
use serde_json::Value;
use std::time::SystemTime;

/// Most `product_features` entries one request may report.
const MAX_FEATURE_CHARGES: usize = 100;

/// An uploaded request file, authenticated and verified.
struct Upload {
    principal: Principal,
    payload: Payload,
    request: LicenseRequest,
    /// The API key or OAuth client the file names (the one whose key signed it).
    signer: FileSigner,
}

/// Who signed a request file (SPEC §6.2): the API key it names (`api_key`), whose shared key is the
/// HMAC key, or in OAuth mode the client it names (`client_id`), whose secret is, opened with the
/// deployment's sealing key. Either answers with the same codes when unknown, revoked, read-only or
/// restricted to other products.
struct FileSigner {
    /// Its restrictions, as a caller's.
    holder: Principal,
    /// The HMAC key of the file and of the answer's `offline_signature`.
    key: SecretString,
}

impl FileSigner {
    /// The signer `payload` names, if it belongs to `company`: a file signed for another company is
    /// refused like an unknown key, so the uploader learns nothing about other companies' keys.
    async fn named(state: &AppState, payload: &Payload, company: &CompanyId) -> Result<Self, ApiError> {
        let store = &*state.store;
        Ok(match payload.key_id() {
            KeyId::ApiKey(id) => {
                let key = state.auth.key_record(id, store).await?;
                let key = usable(key.filter(|k| k.company == *company), |k| k.revoked)?;
                Self {
                    holder: Principal::api_key(&key),
                    key: SecretString::from(key.shared_key),
                }
            }
            KeyId::ClientId(id) => {
                let client = state.auth.client_record(id, store).await?;
                let client = usable(client.filter(|c| c.company == *company), |c| c.revoked)?;
                Self {
                    holder: Principal::oauth_client(&client),
                    key: client_secret(state, &client)?,
                }
            }
        })
    }

    /// Whether this signer signed the file uploaded to a `kind` endpoint. A v2 deactivation in OAuth
    /// mode may also be signed with the `client_id` itself: a widely deployed client signs them so
    /// (SPEC §6.2).
    fn signed(&self, payload: &Payload, kind: Kind) -> bool {
        payload.verify(self.key.expose_secret())
            || matches!(
                (payload.key_id(), payload.schema(), kind),
                (KeyId::ClientId(id), Schema::V2, Kind::Deactivation) if payload.verify(id)
            )
    }
}

/// An unknown or revoked signer answers as an unknown or revoked API key does (SPEC §1.2).
fn usable<R>(record: Option<R>, revoked: impl Fn(&R) -> bool) -> Result<R, ApiError> {
    match record {
        None => Err(ApiError::InvalidApiKey),
        Some(r) if revoked(&r) => Err(ApiError::RevokedApiKey),
        Some(r) => Ok(r),
    }
}

/// The OAuth client's secret, the HMAC key of its files. Without a sealing key it cannot be read: the
/// log tells the operator, the uploader gets a `validation_error` saying such files are not accepted.
fn client_secret(state: &AppState, client: &OAuthClientRecord) -> Result<SecretString, ApiError> {
    let Some(sealing_key) = &state.sealing_key else {
        tracing::error!(
            client_id = %client.id,
            "an offline request file signed by an OAuth client cannot be verified: no sealing key is \
             configured (set SEALING_KEY_SSM_PARAMETER, SEALING_KEY_FILE or SEALING_KEY_BASE64, or start \
             license-server with --sealing-key; docs/oauth.md)"
        );
        return Err(ApiError::Validation(
            "this server does not accept offline request files signed by an OAuth client (`client_id`); \
             sign the file with an API key (`api_key`) or ask the vendor to configure OAuth"
                .into(),
        ));
    };
    sealing_key
        .open(&client.sealed_secret, &OAuthClientRecord::seal_context(&client.id))
        .map_err(|e| ApiError::internal(format!("the stored secret of OAuth client {}: {e}", client.id)))
}

impl Upload {
    async fn read(req: &ApiRequest, state: &AppState, principal: Principal, kind: Kind) -> Result<Self, ApiError> {
        let content_type = req
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        let text = transport::upload_text(content_type, req.body.clone()).await?;
        let payload = Payload::parse(&transport::decode(&text)?)?;
        if let Some(other) = payload.kind().filter(|k| *k != kind) {
            return Err(ApiError::Validation(format!(
                "this is an offline {} request file; upload it to {}",
                other.as_str(),
                match other {
                    Kind::Activation => super::Endpoint::ActivateOffline.path(),
                    Kind::Deactivation => super::Endpoint::DeactivateOffline.path(),
                }
            )));
        }
        let signer = FileSigner::named(state, &payload, &principal.company).await?;
        if !signer.signed(&payload, kind) {
            return Err(ApiError::SignatureMismatch);
        }
        // The file changes state as much as an online activation does: a read-only key may not sign one.
        signer.holder.ensure_access(Access::Write)?;
        let request = LicenseRequest::parse(payload.fields())?;
        // The file's key is held to its product restriction like the uploader's own.
        signer.holder.ensure_product(&request.product)?;
        let request = super::resolved(state, &principal, request).await?;
        Ok(Self {
            principal,
            payload,
            request,
            signer,
        })
    }

    /// The fields an offline activation answer adds, dated now (SPEC §6.3): the file's `request_id`
    /// (clients refuse an answer without one, so a file without one gets ours), the date, and
    /// `offline_signature` over the request's identity at that date.
    fn offline_answer(&self) -> OfflineAnswer {
        let date = httpdate::fmt_http_date(SystemTime::now());
        let message = v1_message(
            &date,
            ident(&self.request),
            self.request.hardware_id.as_str(),
            self.payload.key_id().as_str(),
        );
        OfflineAnswer {
            request_id: match self.payload.request_id() {
                Some(id) => id.to_owned(),
                None => format!("{:032x}", rand::random::<u128>()),
            },
            offline_signature: hmac_base64(self.signer.key.expose_secret(), message.as_bytes()),
            date,
        }
    }

    fn request_key(&self, kind: Kind) -> RequestKey {
        RequestKey::new(kind.as_str(), &self.payload.content_digest())
    }
}

pub async fn handle_activation(
    req: &ApiRequest,
    state: &AppState,
    principal: Principal,
) -> Result<ApiResponse, ApiError> {
    let upload = Upload::read(req, state, principal, Kind::Activation).await?;
    let request = &upload.request;
    let op = Activation::new(state, &upload.principal, request, Transport::Offline);
    let signed = upload.offline_answer();
    let answer = |after: &Resolved| -> Result<String, ApiError> {
        let object = activation_object(after, request, op.call().now, &state.signer)?;
        offline_activation(object, &signed, &state.signer).map_err(ApiError::internal)
    };
    let once = Once {
        key: upload.request_key(Kind::Activation),
        answer: &answer,
    };
    let outcome = runner::run(&op, Some(&once)).await?;
    Ok(ApiResponse::signed_body(outcome.recorded()?, &state.signer))
}

pub async fn handle_deactivation(
    req: &ApiRequest,
    state: &AppState,
    principal: Principal,
) -> Result<ApiResponse, ApiError> {
    let upload = Upload::read(req, state, principal, Kind::Deactivation).await?;
    let consumptions = consumptions(upload.payload.fields())?;
    let answer = |_: &Resolved| Ok(DEACTIVATED.to_owned());
    let once = Once {
        key: upload.request_key(Kind::Deactivation),
        answer: &answer,
    };
    let op = Deactivation::new(state, &upload.principal, &upload.request, &consumptions);
    runner::run(&op, Some(&once)).await?.recorded()?;
    Ok(ApiResponse::text(DEACTIVATED))
}

pub async fn handle_bundle_activation(
    req: &ApiRequest,
    state: &AppState,
    principal: Principal,
) -> Result<ApiResponse, ApiError> {
    let upload = Upload::read(req, state, principal, Kind::Activation).await?;
    let request = &upload.request;
    let op = BundleActivation::new(state, &upload.principal, request, Transport::Offline);
    let signed = upload.offline_answer();
    let answer = |after: &Bundle| -> Result<String, ApiError> {
        let licenses = member_objects(after, request, View::Activation, op.call().now, &state.signer)?
            .into_iter()
            .map(|object| offline_activation(object, &signed, &state.signer).map_err(ApiError::internal))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(offline_bundle(&licenses, &state.signer))
    };
    let once = Once {
        key: upload.request_key(Kind::Activation),
        answer: &answer,
    };
    let outcome = runner::run(&op, Some(&once)).await?;
    Ok(ApiResponse::signed_body(outcome.recorded()?, &state.signer))
}

pub async fn handle_bundle_deactivation(
    req: &ApiRequest,
    state: &AppState,
    principal: Principal,
) -> Result<ApiResponse, ApiError> {
    let upload = Upload::read(req, state, principal, Kind::Deactivation).await?;
    if consumptions(upload.payload.fields())? != Consumptions::default() {
        // A bundle has several licenses: which one consumed is not said, and guessing would lose data.
        return Err(ApiError::Validation(
            "report consumptions with each member license's own deactivation file (deactivate_offline)".into(),
        ));
    }
    let answer = |_: &Bundle| Ok(DEACTIVATED.to_owned());
    let once = Once {
        key: upload.request_key(Kind::Deactivation),
        answer: &answer,
    };
    let op = BundleDeactivation::new(state, &upload.principal, &upload.request);
    runner::run(&op, Some(&once)).await?.recorded()?;
    Ok(ApiResponse::text(DEACTIVATED))
}

/// `{"licenses": [...], "bundle_signature_v2": ...}` (SPEC §6.3): the signature is over the compact
/// JSON of the `licenses` array exactly as it appears in the answer.
fn offline_bundle(licenses: &[String], signer: &crate::signing::Signer) -> String {
    let array = format!("[{}]", licenses.join(","));
    let signature = signer.sign(array.as_bytes());
    format!(
        "{{\"licenses\":{array},\"bundle_signature_v2\":{}}}",
        serde_json::Value::String(signature)
    )
}

/// `consumptions` and `product_features: [{"feature", "consumptions"}]` (SPEC §6.2).
fn consumptions(p: &Params) -> Result<Consumptions, ApiError> {
    let license = p.integer("consumptions")?.unwrap_or(0);
    let features = match p.get("product_features") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) if items.len() <= MAX_FEATURE_CHARGES => items
            .iter()
            .map(|item| {
                let Value::Object(map) = item else {
                    return Err(ApiError::Validation(
                        "`product_features` items must be objects with `feature` and `consumptions`".into(),
                    ));
                };
                let item = Params::from_map(map.clone());
                let code = item.required("feature")?;
                Ok((code, item.integer("consumptions")?.unwrap_or(0)))
            })
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(ApiError::Validation(format!(
                "`product_features` must be a list of at most {MAX_FEATURE_CHARGES} objects"
            )))
        }
    };
    Ok(Consumptions { license, features })
}
