//! `Idempotency-Key` on creates (docs/management.md, *Idempotency*): the first request with a key
//! writes its answer (status and body) as one more item of the very write that makes its change,
//! created only if the company has no record of that key yet. A repeat of the request gets that
//! answer again and changes nothing; of concurrent identical requests one writes and the others,
//! refused, answer what it recorded; another request with the same key is refused with `422`. Records
//! expire after [`TTL_HOURS`] (DynamoDB's TTL; the SQLite store's purge, with the audit trail's).
//!
//! Every create takes a key: its route opts in (`routes::ROUTES`), and the write that makes the change
//! gets the record item from the write loop it goes through (`guarded::rewrite`, `op::create_once`),
//! not from the operation. An answer that holds a secret shown once (an API key's shared key, an OAuth
//! client's secret, a management key's token) is recorded sealed with the deployment's sealing key
//! (docs/oauth.md), so the store never holds it in clear; without a sealing key such a route refuses
//! the header (`400`) rather than store the secret or forget the answer.

use crate::error::ApiError;
use crate::ids::CompanyId;
use crate::model::IdempotencyRecord;
use crate::sealed::{Sealed, SealingKey};
use crate::secret::{ExposeSecret, SecretString};
use crate::state::Core;
use crate::store::write::{Image, Item, ItemWrite, Write};
use crate::time::Timestamp;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// The request header.
pub const HEADER: &str = "idempotency-key";
/// How long a key's answer is kept.
pub const TTL_HOURS: i64 = 24;
/// Longest key accepted.
pub const MAX_KEY_LEN: usize = 255;

/// The key of the request being served, and what its record will say.
#[derive(Clone, Debug)]
pub(crate) struct Pending {
    company: CompanyId,
    key: String,
    digest: String,
    status: u16,
    /// The key that seals the recorded answer: `Some` for a route whose answer holds a secret.
    seal: Option<Arc<SealingKey>>,
}

tokio::task_local! {
    static PENDING: Pending;
}

/// The request's key, if it has one: visible ASCII, at most [`MAX_KEY_LEN`] bytes.
pub(crate) fn key_of(headers: &http::HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get(HEADER) else {
        return Ok(None);
    };
    match value.to_str() {
        Ok(key) if !key.is_empty() && key.len() <= MAX_KEY_LEN && key.bytes().all(|b| b.is_ascii_graphic()) => {
            Ok(Some(key.to_owned()))
        }
        _ => Err(ApiError::Validation(format!(
            "Idempotency-Key: 1 to {MAX_KEY_LEN} visible ASCII characters"
        ))),
    }
}

/// What identifies a request: its method, path, query and body.
pub(crate) fn digest(req: &crate::http::ApiRequest) -> String {
    let hash = Sha256::new()
        .chain_update(req.method.as_str())
        .chain_update([0])
        .chain_update(&req.path)
        .chain_update([0])
        .chain_update(req.query.as_deref().unwrap_or(""))
        .chain_update([0])
        .chain_update(&req.body)
        .finalize();
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

impl Pending {
    /// The pending key of a request to `route`; refused for a route whose answer holds a secret when
    /// the deployment has no sealing key to record it with.
    pub(crate) fn new(
        state: &Core,
        route: &super::routes::Route,
        company: CompanyId,
        key: String,
        digest: String,
    ) -> Result<Self, ApiError> {
        let seal = match (route.secret, &state.sealing_key) {
            (false, _) => None,
            (true, Some(seal)) => Some(seal.clone()),
            (true, None) => {
                return Err(ApiError::Validation(
                    "Idempotency-Key: this create's answer holds a secret shown once, which is recorded only \
                     sealed, and this deployment has no sealing key (license-server: --sealing-key or \
                     `license-server keys`; AWS: SealingKeyParameterName): send the request without the header"
                        .into(),
                ))
            }
        };
        Ok(Self {
            company,
            key,
            digest,
            status: route.status,
            seal,
        })
    }

    /// What the sealed answer of this key is bound to: it opens for no other record.
    fn context(&self) -> String {
        format!("idempotency:{}:{}", self.company.as_str(), self.key)
    }

    /// Runs `op` with this key pending: a create made by it records its answer ([`record_item`]).
    pub(crate) async fn scope<F: std::future::Future>(self, op: F) -> F::Output {
        PENDING.scope(self, op).await
    }

    /// The answer recorded for this key, if any: `Some(Ok)` the same request's, `Some(Err)` another's.
    pub(crate) async fn recorded(&self, state: &Core) -> Result<Option<(u16, String)>, ApiError> {
        let record = state
            .store
            .idempotency_record(&self.company, &self.key, Timestamp::now())
            .await
            .map_err(ApiError::store)?;
        match record {
            None => Ok(None),
            Some(r) if r.request_digest == self.digest => {
                let answer = match &self.seal {
                    None => r.answer,
                    Some(key) => Sealed::parse(r.answer)
                        .and_then(|sealed| key.open(&sealed, &self.context()))
                        .map_err(ApiError::internal)?
                        .expose_secret()
                        .to_owned(),
                };
                Ok(Some((u16::try_from(r.status).unwrap_or(200), answer)))
            }
            Some(_) => Err(ApiError::IdempotencyKeyReused),
        }
    }
}

/// The item that records `output` as the answer of the pending key, created only if the key has no
/// record: `None` when the request has no key. The answer is the body the router sends.
pub(crate) fn record_item<T: Serialize>(output: &T) -> Result<Option<ItemWrite>, ApiError> {
    let Ok(pending) = PENDING.try_with(Pending::clone) else {
        return Ok(None);
    };
    let mut answer = serde_json::to_value(output).map_err(ApiError::internal)?.to_string();
    if let Some(key) = &pending.seal {
        let sealed = key.seal(&SecretString::from(answer), &pending.context());
        answer = sealed.map_err(ApiError::internal)?.as_str().to_owned();
    }
    let record = IdempotencyRecord {
        expires_at: Timestamp::now().unix_seconds() + TTL_HOURS * 3600,
        company: pending.company.clone(),
        key: pending.key,
        request_digest: pending.digest,
        status: i64::from(pending.status),
        answer,
    };
    let item = Item::Idempotency(pending.company, record.key.clone());
    Ok(Write::create(item, Image::Idempotency(Box::new(record))).items.pop())
}
