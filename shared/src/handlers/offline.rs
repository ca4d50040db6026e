//! `POST /api/v4/activate_offline` and `POST /api/v4/deactivate_offline` (SPEC §6): the online activation
//! and deactivation, reached through a request file. The uploader is authenticated like any request (by
//! the endpoint table, before the handler runs); the file is read (`offline::transport`), its signature
//! verified with the key of the company's API key it names (`offline::payload`), and the request applied
//! at most once: its record goes into the very write that applies it, and a repeat upload answers what
//! the first got.

use super::activate::{activation_object, ident, Activation};
use super::bundle::{member_objects, Bundle, BundleActivation, BundleDeactivation};
use super::deactivate::{Deactivation, DEACTIVATED};
use super::lookup::Resolved;
use super::runner::{self, Once, WriteOp};
use crate::auth::{hmac_base64, Principal};
use crate::error::ApiError;
use crate::http::{ApiRequest, ApiResponse};
use crate::ids::RequestKey;
use crate::model::ApiKeyRecord;
use crate::offline::payload::{v1_message, KeyId, Kind, Payload};
use crate::offline::transport;
use crate::render::{offline_activation, OfflineAnswer, View};
use crate::request::{LicenseRequest, Params};
use crate::rules::{Consumptions, Transport};
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
    /// The API key the file names (the one whose shared key signed it).
    signer_key: ApiKeyRecord,
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
        let signer_key = match payload.key_id() {
            KeyId::ApiKey(id) => state.auth.key_record(id, &*state.store).await?,
            // OAuth clients are a later feature: no client id is known yet.
            KeyId::ClientId(_) => None,
        }
        // A file signed for another company is refused like an unknown key: the uploader learns
        // nothing about other companies' keys.
        .filter(|k| k.company == principal.company)
        .ok_or(ApiError::InvalidApiKey)?;
        if signer_key.revoked {
            return Err(ApiError::RevokedApiKey);
        }
        if !payload.verify(&signer_key.shared_key) {
            return Err(ApiError::SignatureMismatch);
        }
        // The file changes state as much as an online activation does: a read-only key may not sign one.
        if signer_key.read_only {
            return Err(ApiError::ReadOnlyApiKey);
        }
        let request = LicenseRequest::parse(payload.fields())?;
        // The file's key is held to its product restriction like the uploader's own.
        Principal::api_key(&signer_key).ensure_product(&request.product)?;
        let request = super::resolved(state, &principal, request).await?;
        Ok(Self {
            principal,
            payload,
            request,
            signer_key,
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
            offline_signature: hmac_base64(&self.signer_key.shared_key, message.as_bytes()),
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
