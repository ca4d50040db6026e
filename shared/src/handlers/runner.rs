//! The one write loop of every request that changes a license: activation and deactivation, of a
//! license or a bundle, online or from an offline request file, and consumption additions. An
//! operation ([`WriteOp`]) supplies only how it reads its state, its decision and the write that
//! decision makes; [`run`] owns the rest:
//! load → decide → write → interpret a refusal (re-decide against the state that won, back off on a
//! transient conflict, retry with the same token while the outcome is unknown), replay an offline
//! request's recorded answer, recognise its own earlier commit by the write token, and map the final
//! error. The state a write leaves is the write itself applied to the images it was decided on
//! ([`write::apply_actions`]), so the answer describes exactly what was written.

use super::lookup::Resolved;
use crate::audit::{Actor, Change, Trail};
use crate::auth::Principal;
use crate::error::ApiError;
use crate::ids::RequestKey;
use crate::model::{Device, ProcessedRequest};
use crate::plan::{LicenseAddr, WriteToken};
use crate::request::LicenseRequest;
use crate::rules::LicenseContext;
use crate::state::Core;
use crate::store::write::{self, request_record, Image, Item, ItemWrite, Write, MAX_RECORDED_ANSWER_BYTES};
use crate::store::Rejection;
use crate::time::Timestamp;
use std::future::Future;
use std::time::{Duration, Instant};

/// The attempts of one request's write, bounded by the request's deadline. Every lost race returns the
/// winner's state, so the next attempt usually succeeds or fails for a real reason; transient conflicts
/// back off first. Each attempt's token is kept, so a retry can recognise a write of its own that
/// committed although its answer was lost.
pub(crate) struct Attempts {
    deadline: Instant,
    attempt: u32,
    tokens: Vec<WriteToken>,
    /// Who the changes are recorded as made by ([`Attempts::write`]).
    trail: Trail,
}

impl Attempts {
    pub(crate) fn new(state: &Core, principal: &Principal) -> Self {
        Self {
            deadline: Instant::now() + state.deadline,
            attempt: 0,
            tokens: vec![WriteToken::new()],
            trail: Trail::new(
                Actor::of(principal),
                principal.company.clone(),
                state.audit_retention_days,
            ),
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

    /// Runs one planned write — `build`'s for the attempt's token, given to `apply` — retrying it with
    /// the *same* token while its outcome is unknown, and with a new one after a transient conflict;
    /// returns the first definite answer. The one place every request's change is audited: the record
    /// of `change` (`None`: the write changes nothing worth a record, docs/audit.md) is the write's
    /// last item, fixed by the token, so each retry sends the same write and it is recorded once.
    pub(crate) async fn write<B, F, Fut>(
        &mut self,
        change: Option<&Change>,
        build: B,
        mut apply: F,
    ) -> Result<(), Rejection>
    where
        B: Fn(&WriteToken) -> Write,
        F: FnMut(Write, WriteToken) -> Fut,
        Fut: Future<Output = Result<(), Rejection>>,
    {
        let at = Timestamp::now();
        loop {
            let token = self.token().clone();
            let mut write = build(&token);
            write.items.extend(change.map(|c| self.trail.item(c, &token, at)));
            match apply(write, token).await {
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
pub(crate) struct Once<'a, S> {
    pub key: RequestKey,
    pub answer: &'a (dyn Fn(&S) -> Result<String, ApiError> + Send + Sync),
}

impl<S> Once<'_, S> {
    /// The record of this request for the state `after` its write, kept beside the license at `addr`.
    fn record(&self, addr: &LicenseAddr, after: &S, now: Timestamp) -> Result<ItemWrite, ApiError> {
        let request = ProcessedRequest {
            key: self.key.clone(),
            answer: (self.answer)(after)?,
            processed_at: now,
            expires_at: now.plus_days(OFFLINE_REQUEST_RETENTION_DAYS).unix_seconds(),
        };
        // An offline bundle's answer repeats every member's license (up to 24) with the device's
        // variables. Devices' variables are bounded so that it fits one item for the largest bundle; a
        // catalog whose licenses are still too large gets a 4xx that says so, not a write the store refuses.
        let size = request.answer.len();
        if size > MAX_RECORDED_ANSWER_BYTES {
            return Err(ApiError::Validation(format!(
                "the answer to this request would take {size} bytes, more than the {MAX_RECORDED_ANSWER_BYTES} an offline request's record holds: activate the bundle's members with separate files, or with fewer device variables"
            )));
        }
        Ok(request_record(addr, &request, now))
    }
}

/// What an activation or deactivation did.
pub(crate) enum Outcome<S> {
    /// Written now: the state it left, and the answer recorded for an offline request.
    Applied { after: Box<S>, answer: Option<String> },
    /// The offline request had been applied before: its answer then.
    Replayed(String),
}

impl<S> Outcome<S> {
    /// The state an online request left (online requests are never replayed).
    pub(crate) fn online(self) -> Result<S, ApiError> {
        match self {
            Self::Applied { after, .. } => Ok(*after),
            Self::Replayed(_) => Err(ApiError::internal(
                "an online request was answered from a replay record",
            )),
        }
    }

    /// The answer recorded for an offline request, whether applied now or before.
    pub(crate) fn recorded(self) -> Result<String, ApiError> {
        match self {
            Self::Applied { answer: Some(a), .. } | Self::Replayed(a) => Ok(a),
            Self::Applied { answer: None, .. } => {
                Err(ApiError::internal("an offline request was applied without its answer"))
            }
        }
    }
}

/// The items of a state a write may touch, as [`write::Image`]s: what the state after a write is
/// derived from.
pub(crate) trait Images {
    /// The image of `item` as this state holds it: `Some(None)` for an item it holds as missing, `None`
    /// for an item it does not hold (another user's seat, a released-slot marker).
    fn image(&self, item: &Item) -> Option<Option<Image>>;
    /// Takes the image a write left of an item [`Images::image`] holds.
    fn set_image(&mut self, item: &Item, image: Option<Image>);
    /// The license beside which an offline request's record is kept.
    fn record_addr(&self) -> LicenseAddr;
}

/// The license an item belongs to; `None` for items of the company (products, users, keys, audit).
pub(super) fn license_of(item: &Item) -> Option<&LicenseAddr> {
    match item {
        Item::License(a) | Item::Device(a, _) | Item::Seat(a, _) | Item::Released(a, _) | Item::Request(a, _) => {
            Some(a)
        }
        Item::Product(..)
        | Item::Company(..)
        | Item::ApiKey(..)
        | Item::User(..)
        | Item::Audit(..)
        | Item::OAuthClient(..)
        | Item::CustomerAccount(..)
        | Item::Customer(..)
        | Item::Trial(..)
        | Item::ManagementKey(..)
        | Item::Idempotency(..) => None,
    }
}

/// One license's context holds its license, the request's device and the requesting user's seat.
impl Images for LicenseContext {
    fn image(&self, item: &Item) -> Option<Option<Image>> {
        if license_of(item) != Some(&LicenseAddr::of(&self.license)) {
            return None;
        }
        match item {
            Item::License(_) => Some(Some(Image::License(Box::new(self.license.clone())))),
            Item::Device(_, hw) => match &self.device {
                None => Some(None),
                Some(d) if d.hardware_id == *hw => Some(Some(Image::Device(Box::new(d.clone())))),
                Some(_) => None,
            },
            Item::Seat(_, user) => self
                .seat
                .as_ref()
                .filter(|s| s.user == *user)
                .map(|s| Some(Image::Seat(s.clone()))),
            _ => None,
        }
    }

    fn set_image(&mut self, item: &Item, image: Option<Image>) {
        match (item, image) {
            (Item::License(_), Some(Image::License(l))) => self.license = *l,
            (Item::Device(..), Some(Image::Device(d))) => self.device = Some(*d),
            (Item::Device(..), None) => self.device = None,
            (Item::Seat(..), Some(Image::Seat(s))) => self.seat = Some(s),
            (Item::Seat(..), None) => self.seat = None,
            (item, image) => tracing::error!(?item, ?image, "a write left an image its item cannot hold"),
        }
    }

    fn record_addr(&self) -> LicenseAddr {
        LicenseAddr::of(&self.license)
    }
}

impl Images for Resolved {
    fn image(&self, item: &Item) -> Option<Option<Image>> {
        self.ctx.image(item)
    }
    fn set_image(&mut self, item: &Item, image: Option<Image>) {
        self.ctx.set_image(item, image)
    }
    fn record_addr(&self) -> LicenseAddr {
        self.ctx.record_addr()
    }
}

/// What every write operation works with: the server, the caller, the request and the time it is
/// decided and recorded at.
pub(crate) struct Call<'a> {
    pub app: &'a Core,
    pub principal: &'a Principal,
    pub req: &'a LicenseRequest,
    pub now: Timestamp,
}

impl<'a> Call<'a> {
    pub fn new(app: &'a Core, principal: &'a Principal, req: &'a LicenseRequest) -> Self {
        Self {
            app,
            principal,
            req,
            now: Timestamp::now(),
        }
    }
}

/// One write-making request: how it reads its state, and its decision. Everything else is [`run`]'s.
pub(crate) trait WriteOp: Sync {
    /// What the decision is made from, and the answer describes after the write.
    type State: Images + Clone + Send + Sync;
    /// What the rules decided.
    type Plan: Send + Sync;
    /// Whether [`Self::write`] is one item's update that records its token on that item, conditioned on
    /// the token read, so the store may apply it without a transaction ([`Store::apply_alone`]).
    ///
    /// [`Store::apply_alone`]: crate::store::Store::apply_alone
    const ALONE: bool = false;

    /// The request this operation serves.
    fn call(&self) -> &Call<'_>;

    /// Reads the state; `after`: the refusal that made a re-read necessary (`None`: the first read).
    fn load(&self, after: Option<&Rejection>) -> impl Future<Output = Result<Self::State, ApiError>> + Send;

    /// Reads, before each decision, what the decision needs beyond the state's own read.
    fn complete(&self, _state: &mut Self::State) -> impl Future<Output = Result<(), ApiError>> + Send {
        async { Ok(()) }
    }

    /// Takes the state that won from a refusal that carries it; `false`: read everything again.
    fn absorb(&self, _state: &mut Self::State, _refusal: &Rejection) -> bool {
        false
    }

    /// The rules' decision: a plan, or the error that answers the request.
    fn decide(&self, state: &Self::State) -> Result<Self::Plan, ApiError>;

    /// The write of `plan`, with `token` recorded on the devices it writes.
    fn write(&self, plan: &Self::Plan, token: &WriteToken) -> Write;

    /// What `plan` changes, for the audit trail (`None`: nothing worth a record, docs/audit.md).
    fn change(&self, state: &Self::State, plan: &Self::Plan) -> Option<Change>;
}

/// The state `write` leaves, given the state it was decided on: the write's actions applied to the
/// images of the items the state holds.
fn after<S: Images + Clone>(state: &S, write: &Write) -> Result<S, ApiError> {
    let mut held: Vec<(&ItemWrite, Option<Image>)> = write
        .items
        .iter()
        .filter_map(|i| state.image(&i.item).map(|image| (i, image)))
        .collect();
    write::apply_actions(held.iter_mut().map(|(i, image)| (&**i, image))).map_err(|e| {
        ApiError::internal(format!(
            "a planned write does not fit the state it was planned on: {e:?}"
        ))
    })?;
    let mut after = state.clone();
    for (i, image) in held {
        after.set_image(&i.item, image);
    }
    Ok(after)
}

/// Runs `op` to a definite answer within the request's deadline, recording `once` (an offline request)
/// in the same write when given.
pub(crate) async fn run<O: WriteOp>(op: &O, once: Option<&Once<'_, O::State>>) -> Result<Outcome<O::State>, ApiError> {
    let Call {
        app, now, principal, ..
    } = *op.call();
    let mut state = op.load(None).await?;
    let mut attempts = Attempts::new(app, principal);
    loop {
        op.complete(&mut state).await?;
        let addr = state.record_addr();
        let plan = match op.decide(&state) {
            Ok(plan) => plan,
            Err(e) => return replay_or(app, once, &addr, e).await,
        };
        // Derived before writing, so a plan that does not fit its state fails before it is written; the
        // record goes first in the write, so a repeat upload is refused by it before anything else.
        let planned = after(&state, &op.write(&plan, attempts.token()))?;
        let record = once.map(|o| o.record(&addr, &planned, now)).transpose()?;
        let change = op.change(&state, &plan).map(|c| via(c, principal, once.is_some()));
        let build = |token: &WriteToken| {
            let mut write = op.write(&plan, token);
            write.items.splice(0..0, record.clone());
            write
        };
        let outcome = attempts
            .write(change.as_ref(), build, |write, token| async move {
                if O::ALONE && write.items.len() == 1 {
                    app.store.apply_alone(&write, &token).await
                } else {
                    app.store.apply(&write, &token).await
                }
            })
            .await;
        let refusal = match outcome {
            Ok(()) => return applied(&state, op, &plan, &attempts, record),
            Err(refusal) => refusal,
        };
        match refusal {
            Rejection::Done(done) => return Ok(Outcome::Replayed(done.answer)),
            // An earlier attempt of this plan committed although its answer was lost: the record of an
            // offline request is in that write; an online answer describes the state it left.
            Rejection::Device(Some(d)) if attempts.wrote(&d) => {
                if once.is_some() {
                    let lost = ApiError::internal("an applied offline request left no record");
                    return replay_or(app, once, &addr, lost).await;
                }
                return applied(&state, op, &plan, &attempts, None);
            }
            Rejection::Conflict | Rejection::Unknown(_) => return Err(ApiError::Contention),
            Rejection::Store(e) => return Err(ApiError::store(e)),
            refusal => {
                if !op.absorb(&mut state, &refusal) {
                    state = op.load(Some(&refusal)).await?;
                }
            }
        }
        attempts.next_plan()?;
    }
}

/// `change` with how its request came: `"via": "online"`, `"offline"` for a request file's, or
/// `"management"` for the vendor's own (a management key or the command line, docs/management.md).
fn via(mut change: Change, principal: &Principal, offline: bool) -> Change {
    if let serde_json::Value::Object(detail) = &mut change.detail {
        let via = match (&principal.via, offline) {
            (crate::auth::Via::ManagementKey(_) | crate::auth::Via::Cli(_), _) => "management",
            (_, true) => "offline",
            (_, false) => "online",
        };
        detail.insert("via".into(), via.into());
    }
    change
}

/// The outcome of a committed write of `plan`.
fn applied<O: WriteOp>(
    state: &O::State,
    op: &O,
    plan: &O::Plan,
    attempts: &Attempts,
    record: Option<ItemWrite>,
) -> Result<Outcome<O::State>, ApiError> {
    Ok(Outcome::Applied {
        after: Box::new(after(state, &op.write(plan, attempts.token()))?),
        answer: record.as_ref().and_then(ItemWrite::recorded_answer),
    })
}

/// A refusal of a request that may repeat an applied offline one (its device is already active, or
/// already gone): if `once` names one applied to the license at `addr` (its record lives beside that
/// license), the answer it got then; otherwise `err`.
async fn replay_or<S>(
    app: &Core,
    once: Option<&Once<'_, S>>,
    addr: &LicenseAddr,
    err: ApiError,
) -> Result<Outcome<S>, ApiError> {
    let Some(once) = once else { return Err(err) };
    let done = app
        .store
        .processed_request(addr, &once.key, Timestamp::now())
        .await
        .map_err(ApiError::store)?;
    match done {
        Some(done) => Ok(Outcome::Replayed(done.answer)),
        None => Err(err),
    }
}

/// Marks `ctx` when the seat its active device's activation charged is missing or at 0 (see
/// [`LicenseContext::charged_seat_gone`]), after a deactivation was refused by a seat.
pub(super) async fn mark_gone_seat(app: &Core, ctx: &mut LicenseContext) -> Result<(), ApiError> {
    let Some(user) = ctx.device.as_ref().filter(|d| d.active).and_then(|d| d.user.as_ref()) else {
        return Ok(());
    };
    let seat = app
        .store
        .get_seat(&LicenseAddr::of(&ctx.license), user)
        .await
        .map_err(ApiError::store)?;
    ctx.charged_seat_gone = seat.is_none_or(|s| s.total_activations <= 0);
    if ctx.charged_seat_gone {
        tracing::error!(
            license = ctx.license.id,
            user = %user,
            "seat missing or at 0 while its device is active; releasing without it"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    //! The state after a write, derived from the write: what an answer describes.

    use super::*;
    use crate::ids::{CompanyId, HardwareId, LicenseKey, ProductCode, Username};
    use crate::model::{Company, License, ProductDoc, Seat};
    use crate::request::{Credentials, LicenseRequest};
    use crate::rules::{self, Transport};

    fn at(s: &str) -> Timestamp {
        Timestamp::parse_iso(s).unwrap()
    }

    fn hw(s: &str) -> HardwareId {
        HardwareId::parse(s).unwrap()
    }

    /// A limited trial license with one released slot of another device waiting, and a user's seat.
    fn ctx() -> LicenseContext {
        let mut license = License::new(
            7,
            CompanyId::parse("c").unwrap(),
            ProductCode::parse("p").unwrap(),
            Some(LicenseKey::parse("K").unwrap()),
        );
        license.max_activations = 3;
        license.times_activated = 1;
        license.released_count = 1;
        license.terms.is_trial = true;
        license.terms.trial_days = 10;
        LicenseContext {
            seat: Some(Seat {
                user: Username::parse("u@example.com").unwrap(),
                max_activations: 2,
                allow_unlimited_activations: false,
                total_activations: 1,
            }),
            transfer_source: Some(hw("gone")),
            ..LicenseContext::new(ProductDoc::default(), Company::default(), license)
        }
    }

    fn req(device: &str) -> LicenseRequest {
        LicenseRequest {
            product: ProductCode::parse("p").unwrap(),
            hardware_id: hw(device),
            credentials: Credentials::Key(LicenseKey::parse("K").unwrap()),
            license_id: None,
            bundle_code: None,
            is_vm: false,
            details: Default::default(),
            variables: vec![],
            include_expired_features: false,
        }
    }

    #[test]
    fn an_activation_leaves_what_its_write_writes() {
        let before = ctx();
        let now = at("2026-06-01T12:00:00.123Z");
        let plan = rules::plan_activation(&before, &req("new"), now, Transport::Online).unwrap();
        let token = WriteToken::new();
        let after = after(&before, &plan.write(&token)).unwrap();
        let l = &after.license;
        assert_eq!(
            (l.times_activated, l.released_count, l.transfer_count),
            (2, 0, 1),
            "a transfer"
        );
        assert_eq!(
            l.validity_period,
            Some(at("2026-06-11T12:00:00.123Z")),
            "the trial starts"
        );
        assert_eq!(after.seat.as_ref().map(|s| s.total_activations), Some(2));
        let device = after.device.expect("the device written");
        assert_eq!(device.write_token.as_deref(), Some(token.as_str()));
        assert_eq!(
            Device {
                write_token: None,
                ..device
            },
            plan.device
        );
        // What the state did not hold (the released slot's marker) is not invented.
        assert_eq!(after.transfer_source, before.transfer_source);
    }

    #[test]
    fn a_deactivation_leaves_what_its_write_writes() {
        let mut before = ctx();
        let now = at("2026-06-01T12:00:00Z");
        let plan = rules::plan_activation(&before, &req("d"), now, Transport::Online).unwrap();
        before = after(&before, &plan.write(&WriteToken::new())).unwrap();
        let later = at("2026-06-02T08:00:00Z");
        let plan = rules::plan_deactivation(&before, &hw("d"), later).unwrap();
        let after = after(&before, &plan.write(&WriteToken::new())).unwrap();
        let device = after.device.as_ref().unwrap();
        assert!(!device.active);
        assert_eq!(device.deactivated_at, Some(later));
        assert_eq!((after.license.times_activated, after.license.released_count), (1, 1));
        assert_eq!(
            after.seat.as_ref().map(|s| s.total_activations),
            Some(1),
            "the seat given back"
        );
    }

    #[test]
    fn a_deactivation_whose_seat_is_gone_releases_the_slot_without_it() {
        let mut c = ctx();
        let plan = rules::plan_activation(&c, &req("d"), at("2026-06-01T12:00:00Z"), Transport::Online).unwrap();
        c = after(&c, &plan.write(&WriteToken::new())).unwrap();
        c.charged_seat_gone = true;
        let plan = rules::plan_deactivation(&c, &hw("d"), at("2026-06-02T08:00:00Z")).unwrap();
        assert_eq!(plan.seat, None);
        assert!(!plan
            .write(&WriteToken::new())
            .items
            .iter()
            .any(|i| matches!(i.item, Item::Seat(..))));
    }
}
