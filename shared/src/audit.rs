//! The audit trail (docs/audit.md): who changed what, kept per company. A change's record is one more
//! item of the very write that makes the change ([`Trail::item`], added by `handlers::Attempts::write`
//! for every request and by the catalog import for each item it writes), so a change is never left
//! unrecorded and a refused or failed write records nothing. A record's id is its time and the write's
//! token, so every retry of one write sends the same record: DynamoDB's `ClientRequestToken` makes the
//! retry of a committed transaction a no-op only if it is identical, and a record is never written twice.

use crate::auth::{Principal, Via};
use crate::ids::{CompanyId, Username};
use crate::model::AuditRecord;
use crate::plan::{LicenseAddr, WriteToken};
use crate::store::write::{Image, Item, ItemWrite, Write};
use crate::time::Timestamp;
use serde_json::Value;

/// How long a record is kept unless configured otherwise (`AUDIT_RETENTION_DAYS`,
/// `--audit-retention-days`): a year and a month, so a yearly review still sees last year's changes.
pub const DEFAULT_RETENTION_DAYS: i64 = 400;

/// Longest retention accepted: ten years.
pub const MAX_RETENTION_DAYS: i64 = 3650;

/// Most records one query returns ([`crate::store::Store::audit_records`]).
pub const MAX_PAGE: usize = 1000;

/// Most records one query examines (DynamoDB reads them, filtered or not): a query whose filter
/// matches rarely stops here and returns a cursor to go on from, so one call's cost is bounded.
pub const MAX_EXAMINED: usize = 5000;

/// Who made a change: `api_key:<id>`, `oauth_client:<id>`, `management_key:<id>` or `cli:<OS user>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Actor(String);

impl Actor {
    /// The caller a request authenticated as.
    pub fn of(principal: &Principal) -> Self {
        match &principal.via {
            Via::ApiKey(id) => Self(format!("api_key:{id}")),
            Via::OAuthClient(id) => Self(format!("oauth_client:{id}")),
            Via::ManagementKey(id) => Self(format!("management_key:{id}")),
            Via::Cli(user) => Self::cli(user),
        }
    }

    /// The command line, run by the OS user `user`.
    pub fn cli(user: &str) -> Self {
        Self(format!("cli:{user}"))
    }

    /// The command line, run by the user the environment names (`USER`, `USERNAME`).
    pub fn cli_user() -> Self {
        Self::cli(&Self::os_user())
    }

    /// The OS user the environment names (`USER`, `USERNAME`, `LOGNAME`), or `unknown`.
    pub fn os_user() -> String {
        ["USER", "USERNAME", "LOGNAME"]
            .iter()
            .find_map(|v| std::env::var(v).ok().filter(|u| !u.is_empty()))
            .unwrap_or_else(|| "unknown".to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What a write changes, as the operation that makes it describes it: the action (`license.activate`),
/// what it was done to ([`license_subject`], [`user_subject`]) and a small JSON detail — never a
/// secret, never a password.
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    pub action: &'static str,
    pub subject: String,
    pub detail: Value,
}

impl Change {
    /// A change of the license at `addr`.
    pub fn on_license(action: &'static str, addr: &LicenseAddr, detail: Value) -> Self {
        Self {
            action,
            subject: license_subject(addr),
            detail,
        }
    }
}

/// The subject of every record about one license: `license:<product>/key/<key>` or
/// `license:<product>/id/<id>` (the company is the record's own).
pub fn license_subject(addr: &LicenseAddr) -> String {
    match addr {
        LicenseAddr::Key { product, key, .. } => format!("license:{product}/key/{key}"),
        LicenseAddr::Id { product, id, .. } => format!("license:{product}/id/{id}"),
    }
}

/// The subject of a record about a license user.
pub fn user_subject(user: &Username) -> String {
    format!("user:{user}")
}

/// Who writes records, for which company, kept for how long: one per request (or CLI command).
#[derive(Clone, Debug)]
pub struct Trail {
    pub actor: Actor,
    pub company: CompanyId,
    pub retention_days: i64,
}

impl Trail {
    pub fn new(actor: Actor, company: CompanyId, retention_days: i64) -> Self {
        Self {
            actor,
            company,
            retention_days,
        }
    }

    /// The record of `change`, written by the write with `token` at `at`: its id is fixed by the two,
    /// so a retry of the same write carries the same record.
    pub fn record(&self, change: &Change, token: &WriteToken, at: Timestamp) -> AuditRecord {
        AuditRecord {
            company: self.company.clone(),
            id: record_id(at, token.as_str()),
            at,
            actor: self.actor.0.clone(),
            action: change.action.to_owned(),
            subject: change.subject.clone(),
            detail: change.detail.clone(),
            expires_at: at.plus_days(self.retention_days).unix_seconds(),
        }
    }

    /// The record as the item a write adds: created, never replaced, last in its write (a write's
    /// refusal names the first item whose condition failed, so the change's own items speak first).
    pub fn item(&self, change: &Change, token: &WriteToken, at: Timestamp) -> ItemWrite {
        let record = self.record(change, token, at);
        let item = Item::Audit(record.company.clone(), record.id.clone());
        let mut write = Write::create(item, Image::Audit(Box::new(record)));
        write.items.remove(0)
    }
}

/// `<Unix ms, 13 digits>#<token>`: ordered by time within a company, unique by the token.
fn record_id(at: Timestamp, token: &str) -> String {
    format!("{:013}#{token}", at.millis().max(0))
}

/// The smallest record id at or after `t`: what `--since` starts from.
pub fn id_at(t: Timestamp) -> String {
    format!("{:013}", t.millis().max(0))
}

/// Which records a query returns: all of a company's, or those about one subject or by one actor,
/// since a time; never expired ones.
#[derive(Clone, Debug, Default)]
pub struct AuditFilter {
    pub subject: Option<String>,
    pub actor: Option<String>,
    pub since: Option<Timestamp>,
}

impl AuditFilter {
    /// Whether `r` passes the filter and is still kept at `now`.
    pub fn matches(&self, r: &AuditRecord, now: Timestamp) -> bool {
        r.expires_at > now.unix_seconds()
            && self.subject.as_ref().is_none_or(|s| *s == r.subject)
            && self.actor.as_ref().is_none_or(|a| *a == r.actor)
            && self.since.is_none_or(|t| r.at >= t)
    }
}

/// One page of records, newest first; `cursor`: where the next page starts (`None`: no more).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AuditPage {
    pub records: Vec<AuditRecord>,
    pub cursor: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_actor_names_how_the_caller_authenticated() {
        let principal = |via| Principal {
            company: CompanyId::parse("c").unwrap(),
            products: vec![],
            read_only: false,
            via,
        };
        let key = principal(Via::ApiKey(crate::ids::ApiKeyId::parse("k1").unwrap()));
        let client = principal(Via::OAuthClient(crate::ids::OAuthClientId::parse("app").unwrap()));
        assert_eq!(Actor::of(&key).as_str(), "api_key:k1");
        assert_eq!(Actor::of(&client).as_str(), "oauth_client:app");
        assert_eq!(Actor::cli("ops").as_str(), "cli:ops");
    }

    #[test]
    fn a_record_is_fixed_by_its_write_and_ordered_by_time() {
        let trail = Trail::new(Actor::cli("ops"), CompanyId::parse("c").unwrap(), 10);
        let change = Change {
            action: "x.y",
            subject: "s".into(),
            detail: Value::Null,
        };
        let token = WriteToken::new();
        let at = Timestamp::from_millis(1_700_000_000_123);
        assert_eq!(trail.item(&change, &token, at), trail.item(&change, &token, at));
        let r = trail.record(&change, &token, at);
        assert_eq!(r.id, format!("1700000000123#{}", token.as_str()));
        assert_eq!(r.expires_at, 1_700_000_000 + 10 * 86_400);
        assert!(id_at(at) <= r.id && r.id < id_at(Timestamp::from_millis(at.millis() + 1)));
        assert_ne!(trail.record(&change, &WriteToken::new(), at).id, r.id);
    }
}
