//! The audit trail through the Management API (docs/management-resources.md, *Audit trail*):
//! `GET /audit`, the same query as `license-server audit` (docs/audit.md): the principal's company's
//! records, newest first — all of them, one license's, or one actor's — since a time, a page at a time.
//! Reads only: no record of its own.

use crate::audit::{license_subject, AuditFilter, MAX_PAGE};
use crate::auth::Principal;
use crate::error::ApiError;
use crate::ids::{LicenseKey, ProductCode};
use crate::model::AuditRecord;
use crate::plan::LicenseAddr;
use crate::state::Core;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Records one page holds when the caller names no `limit` (as `license-server audit`).
pub const DEFAULT_AUDIT_PAGE: usize = 50;
/// Longest actor filter accepted (`api_key:<id>` and the like are far shorter).
pub const MAX_ACTOR_LEN: usize = 600;

/// `GET /audit?product=&license_key=&license_id=&actor=&since=&limit=&cursor=`.
#[derive(Clone, Debug, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// The product of `license_key` or `license_id`.
    pub product: Option<ProductCode>,
    pub license_key: Option<LicenseKey>,
    pub license_id: Option<i64>,
    /// `api_key:<id>`, `oauth_client:<id>`, `management_key:<id>` or `cli:<OS user>`.
    pub actor: Option<String>,
    /// A date or date-time (`2026-06-01`, `2026-06-01T12:00:00Z`): records at or after it.
    pub since: Option<String>,
    pub limit: Option<usize>,
    /// The previous page's `cursor`.
    pub cursor: Option<String>,
}

/// One record as read.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RecordView {
    pub id: String,
    pub at: Timestamp,
    pub actor: String,
    pub action: String,
    pub subject: String,
    pub detail: Value,
}

impl From<&AuditRecord> for RecordView {
    fn from(r: &AuditRecord) -> Self {
        Self {
            id: r.id.clone(),
            at: r.at,
            actor: r.actor.clone(),
            action: r.action.clone(),
            subject: r.subject.clone(),
            detail: r.detail.clone(),
        }
    }
}

/// One page of records, newest first; `cursor`: pass it back for the next (`null`: the last).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditPage {
    pub records: Vec<RecordView>,
    pub cursor: Option<String>,
}

impl AuditQuery {
    /// The filter the query names, checked as `license-server audit` checks its options.
    fn filter(&self, principal: &Principal) -> Result<AuditFilter, ApiError> {
        let product = || {
            self.product
                .clone()
                .ok_or_else(|| ApiError::Validation("product: required with license_key or license_id".into()))
        };
        let company = principal.company.clone();
        let addr = match (&self.license_key, self.license_id) {
            (Some(_), Some(_)) => return Err(ApiError::Validation("give license_key or license_id, not both".into())),
            (Some(key), None) => Some(LicenseAddr::Key {
                company,
                product: product()?,
                key: key.clone(),
            }),
            (None, Some(id)) => Some(LicenseAddr::Id {
                company,
                product: product()?,
                id,
            }),
            (None, None) if self.product.is_some() => {
                return Err(ApiError::Validation(
                    "product: only with license_key or license_id".into(),
                ))
            }
            (None, None) => None,
        };
        if let Some(product) = &self.product {
            principal.ensure_product(product)?;
        }
        if self.actor.as_ref().is_some_and(|a| a.len() > MAX_ACTOR_LEN) {
            return Err(ApiError::Validation(format!("actor: at most {MAX_ACTOR_LEN} bytes")));
        }
        let since = match &self.since {
            None => None,
            Some(text) => Some(Timestamp::parse_iso(text).ok_or_else(|| {
                ApiError::Validation(format!(
                    "since: `{text}` is not a date or date-time such as 2026-06-01T12:00:00Z"
                ))
            })?),
        };
        Ok(AuditFilter {
            subject: addr.as_ref().map(license_subject),
            actor: self.actor.clone(),
            since,
        })
    }
}

/// Whether `cursor` has the shape of a record id (`<13 digits>#<token>`), which every page's cursor
/// is: anything else is the caller's error, not a query the store is asked.
fn cursor_shape(cursor: &str) -> bool {
    let Some((millis, token)) = cursor.split_once('#') else {
        return false;
    };
    millis.len() == 13
        && millis.bytes().all(|b| b.is_ascii_digit())
        && (1..=128).contains(&token.len())
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// `GET /audit`: one page of the principal's company's audit trail.
pub async fn query(state: &Core, principal: &Principal, input: AuditQuery) -> Result<AuditPage, ApiError> {
    let filter = input.filter(principal)?;
    let limit = match input.limit.unwrap_or(DEFAULT_AUDIT_PAGE) {
        n @ 1..=MAX_PAGE => n,
        n => return Err(ApiError::Validation(format!("limit: {n} is outside 1..={MAX_PAGE}"))),
    };
    if let Some(cursor) = input.cursor.as_deref().filter(|c| !cursor_shape(c)) {
        return Err(ApiError::Validation(format!(
            "cursor: `{cursor}` is not one a page returned: pass the previous page's cursor unchanged"
        )));
    }
    let page = state
        .store
        .audit_records(
            &principal.company,
            &filter,
            input.cursor.as_deref(),
            limit,
            Timestamp::now(),
        )
        .await
        .map_err(ApiError::store)?;
    Ok(AuditPage {
        records: page.records.iter().map(RecordView::from).collect(),
        cursor: page.cursor,
    })
}
