//! Endpoint handlers: plain async functions of (request, state), one module per endpoint. Each returns
//! `Result<ApiResponse, ApiError>`; [`handle_with`] turns errors into responses in the one shared way.
//! Which endpoints exist, and which handler serves each, is declared once, in [`endpoints`].

mod activate;
mod bundle;
mod check;
mod deactivate;
pub mod endpoints;
mod lookup;
mod offline;

pub use activate::activate;
pub use deactivate::deactivate;
pub use endpoints::{function, handle, handle_with, Descriptor, Endpoint, Handler};

use crate::auth::{Access, Authenticated};
use crate::error::ApiError;
use crate::http::{ApiRequest, ApiResponse};
use crate::model::Device;
use crate::model::ProcessedRequest;
use crate::request::{LicenseRequest, Params};
use crate::state::AppState;
use crate::store::{LicenseAddr, Rejection, RequestKey, WriteToken};
use crate::time::Timestamp;
use http::Method;
use lookup::Resolved;
use std::future::Future;
use std::time::{Duration, Instant, SystemTime};

/// The attempts of one request's write, bounded by the request's deadline. Every lost race returns the
/// winner's state, so the next attempt usually succeeds or fails for a real reason; transient conflicts
/// back off first. Each attempt's token is kept, so a retry can recognise a write of its own that
/// committed although its answer was lost.
pub(crate) struct Attempts {
    deadline: Instant,
    attempt: u32,
    tokens: Vec<WriteToken>,
}

impl Attempts {
    pub(crate) fn new(state: &AppState) -> Self {
        Self {
            deadline: Instant::now() + state.deadline,
            attempt: 0,
            tokens: vec![WriteToken::new()],
        }
    }

    /// The token of the current attempt.
    pub(crate) fn token(&self) -> &WriteToken {
        self.tokens.last().expect("there is always a token")
    }

    /// Whether `device` was last written by one of this request's attempts.
    pub(crate) fn wrote(&self, device: &Device) -> bool {
        device
            .write_token
            .as_deref()
            .is_some_and(|t| self.tokens.iter().any(|mine| mine.as_str() == t))
    }

    /// Fails with 503 `service_busy` once the deadline has passed.
    pub(crate) fn ensure_time_left(&self) -> Result<(), ApiError> {
        if Instant::now() >= self.deadline {
            tracing::warn!(attempts = self.attempt, "request deadline reached while retrying");
            return Err(ApiError::Contention);
        }
        Ok(())
    }

    /// Waits before the next attempt (exponential backoff with full jitter, 5 to 320 ms, never past the
    /// deadline). `new_token`: the previous write certainly did not happen, so the next one is new.
    pub(crate) async fn back_off(&mut self, new_token: bool) -> Result<(), ApiError> {
        self.ensure_time_left()?;
        let cap = 5u64 << self.attempt.min(6);
        self.attempt += 1;
        let wait = Duration::from_millis(rand::random::<u64>() % (cap + 1));
        let left = self.deadline.saturating_duration_since(Instant::now());
        tokio::time::sleep(wait.min(left)).await;
        if new_token {
            self.tokens.push(WriteToken::new());
        }
        self.ensure_time_left()
    }

    /// Moves on to a new plan after a refusal: the refused write did not happen, so the next gets a
    /// new token; no wait, since the refusal carried the state that won.
    pub(crate) fn next_plan(&mut self) -> Result<(), ApiError> {
        self.ensure_time_left()?;
        self.attempt += 1;
        self.tokens.push(WriteToken::new());
        Ok(())
    }

    /// Runs one planned write, retrying it with the *same* token while its outcome is unknown, and
    /// with a new one after a transient conflict; returns the first definite answer.
    pub(crate) async fn write<F, Fut>(&mut self, mut attempt: F) -> Result<(), Rejection>
    where
        F: FnMut(WriteToken) -> Fut,
        Fut: Future<Output = Result<(), Rejection>>,
    {
        loop {
            match attempt(self.token().clone()).await {
                Err(Rejection::Unknown(cause)) => {
                    tracing::warn!(error = %crate::http::error_chain(&*cause), "write outcome unknown; retrying with the same token");
                    self.back_off(false).await.map_err(|_| Rejection::Unknown(cause))?;
                }
                Err(Rejection::Conflict) => {
                    self.back_off(true).await.map_err(|_| Rejection::Conflict)?;
                }
                other => return other,
            }
        }
    }
}

/// How long an applied offline request is remembered: re-uploading its file within this time answers
/// the first result again and changes nothing.
pub const OFFLINE_REQUEST_RETENTION_DAYS: i64 = 365;

/// An offline request to apply at most once (SPEC §6): what identifies it, and its answer given the
/// state its write leaves. The answer is stored in the same write, so a repeat gets it byte for byte.
/// `S` is what the answer is made from: a license (`Resolved`) or a bundle.
pub(crate) struct Once<'a, S = Resolved> {
    pub key: RequestKey,
    pub answer: &'a (dyn Fn(&S) -> Result<String, ApiError> + Send + Sync),
}

/// The record of `once` for the state `after` its write, if the request is an offline one.
fn record_of<S>(once: Option<&Once<'_, S>>, after: &S, now: Timestamp) -> Result<Option<ProcessedRequest>, ApiError> {
    once.map(|o| o.record(after, now)).transpose()
}

impl<S> Once<'_, S> {
    fn record(&self, after: &S, now: Timestamp) -> Result<ProcessedRequest, ApiError> {
        Ok(ProcessedRequest {
            key: self.key.clone(),
            answer: (self.answer)(after)?,
            processed_at: now,
            expires_at: now.plus_days(OFFLINE_REQUEST_RETENTION_DAYS).unix_seconds(),
        })
    }
}

/// What an activation or deactivation did.
pub(crate) enum Outcome {
    /// Written now: the state it left, and the answer recorded for an offline request.
    Applied {
        resolved: Box<Resolved>,
        answer: Option<String>,
    },
    /// The offline request had been applied before: its answer then.
    Replayed(String),
}

impl Outcome {
    /// The state an online request left (online requests are never replayed).
    fn resolved(self) -> Result<Resolved, ApiError> {
        match self {
            Self::Applied { resolved, .. } => Ok(*resolved),
            Self::Replayed(_) => Err(ApiError::internal(
                "an online request was answered from a replay record",
            )),
        }
    }
}

/// The answer an applied offline request got, if `once` names one that was applied to the license at
/// `addr` (its record lives beside that license).
async fn replayed<S>(
    state: &AppState,
    once: Option<&Once<'_, S>>,
    addr: &LicenseAddr,
) -> Result<Option<String>, ApiError> {
    let Some(once) = once else { return Ok(None) };
    Ok(state
        .store
        .processed_request(addr, &once.key, Timestamp::now())
        .await
        .map_err(ApiError::store)?
        .map(|done| done.answer))
}

/// A refusal of an offline request that may be a repeat of an applied one (its device is already
/// active, or already gone): if so, the answer it got then; otherwise `err`.
async fn replay_or(
    state: &AppState,
    once: Option<&Once<'_>>,
    addr: &LicenseAddr,
    err: ApiError,
) -> Result<Outcome, ApiError> {
    match replayed(state, once, addr).await? {
        Some(answer) => Ok(Outcome::Replayed(answer)),
        None => Err(err),
    }
}

/// Authenticates the request, then parses its license fields from where its method carries them
/// (query string for GET and HEAD, JSON body otherwise). Authentication comes first, so an
/// unauthenticated caller learns nothing about the body.
async fn authenticated(
    req: &ApiRequest,
    state: &AppState,
    access: Access,
) -> Result<(Authenticated, LicenseRequest), ApiError> {
    let auth = state
        .auth
        .authenticate(&req.headers, &*state.store, access, SystemTime::now())
        .await?;
    let params = if matches!(req.method, Method::GET | Method::HEAD) {
        Params::from_query(req.query.as_deref())?
    } else {
        Params::from_json(&req.body)?
    };
    Ok((auth, LicenseRequest::parse(&params)?))
}

/// The answer to a request no route serves — on AWS, what the HTTP API's `$default` route function
/// says: 405 when the path names an endpoint that takes another method, else 404. It needs no state, so
/// that function has no store, key or permissions. A path [`Endpoint::for_path`] recognises that still
/// reached it with an accepted method (a trailing slash the gateway does not route) gets 404: the gateway
/// has no route there, and this function cannot serve it.
pub fn unrouted(req: &ApiRequest) -> ApiResponse {
    let err = match Endpoint::for_path(&req.path) {
        Some(endpoint) if !endpoint.accepts(&req.method) => ApiError::MethodNotAllowed,
        _ => ApiError::NotFound,
    };
    ApiResponse::error(&err)
}

/// Serves a request for any path: the local server's entry point.
pub async fn route(req: &ApiRequest, state: &AppState) -> ApiResponse {
    match Endpoint::for_path(&req.path) {
        Some(endpoint) => handle(endpoint, req, state).await,
        None => ApiResponse::error(&ApiError::NotFound),
    }
}
