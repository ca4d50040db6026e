//! `license-server audit`: a company's audit trail (docs/audit.md), newest first — all of it, one
//! license's, or one actor's — from the embedded store or DynamoDB, as text or `--json`.

use clap::Args;
use license_api::audit::{
    license_subject, AuditFilter, AuditPage, DEFAULT_RETENTION_DAYS, MAX_PAGE, MAX_RETENTION_DAYS,
};
use license_api::ids::{CompanyId, LicenseKey, ProductCode};
use license_api::model::AuditRecord;
use license_api::plan::LicenseAddr;
use license_api::store::Store;
use license_api::time::Timestamp;
use serde_json::{json, Value};

/// `--audit-retention-days`: how long the records written are kept.
#[derive(Args, Debug, Clone)]
pub struct RetentionArg {
    /// How long audit records of changes are kept (days); DynamoDB's TTL deletes them after, the
    /// embedded store when it imports and hourly while serving (docs/audit.md).
    #[arg(long, env = "LICENSE_SERVER_AUDIT_RETENTION_DAYS", value_name = "DAYS",
          default_value_t = DEFAULT_RETENTION_DAYS,
          value_parser = clap::value_parser!(i64).range(1..=MAX_RETENTION_DAYS))]
    pub audit_retention_days: i64,
}

#[derive(Args, Debug, Clone)]
pub struct AuditQuery {
    /// Company code, as in the catalog.
    #[arg(long)]
    pub company: String,
    /// Only the records of this license (with --product): its key.
    #[arg(long, requires = "product", conflicts_with_all = ["license_id", "actor"])]
    pub license_key: Option<String>,
    /// Only the records of this license (with --product): its id (user-based licenses).
    #[arg(long, requires = "product", conflicts_with = "actor")]
    pub license_id: Option<i64>,
    /// The product of --license-key or --license-id.
    #[arg(long)]
    pub product: Option<String>,
    /// Only the records of this actor: `api_key:<id>`, `oauth_client:<id>` or `cli:<OS user>`.
    #[arg(long)]
    pub actor: Option<String>,
    /// Only records at or after this time (e.g. 2026-06-01 or 2026-06-01T12:00:00Z).
    #[arg(long, value_parser = since)]
    pub since: Option<Timestamp>,
    /// At most this many records (newest first).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=MAX_PAGE as u64))]
    pub limit: u64,
    /// Continue after an earlier page: the cursor it printed.
    #[arg(long)]
    pub cursor: Option<String>,
    /// Print JSON: `{"records": [...], "cursor": ...}`.
    #[arg(long)]
    pub json: bool,
}

fn since(text: &str) -> Result<Timestamp, String> {
    Timestamp::parse_iso(text)
        .ok_or_else(|| format!("`{text}` is not a date or date-time such as 2026-06-01T12:00:00Z"))
}

impl AuditQuery {
    /// The company and the filter the options give.
    pub fn filter(&self) -> Result<(CompanyId, AuditFilter), String> {
        let company = CompanyId::parse(&self.company).map_err(|e| format!("--company {e}"))?;
        let product = || -> Result<ProductCode, String> {
            let p = self.product.as_deref().ok_or("--product is required with a license")?;
            ProductCode::parse(p).map_err(|e| format!("--product {e}"))
        };
        let addr = match (&self.license_key, self.license_id) {
            (Some(key), _) => Some(LicenseAddr::Key {
                company: company.clone(),
                product: product()?,
                key: LicenseKey::parse(key).map_err(|e| format!("--license-key {e}"))?,
            }),
            (None, Some(id)) => Some(LicenseAddr::Id {
                company: company.clone(),
                product: product()?,
                id,
            }),
            (None, None) => None,
        };
        let filter = AuditFilter {
            subject: addr.as_ref().map(license_subject),
            actor: self.actor.clone(),
            since: self.since,
        };
        Ok((company, filter))
    }

    /// Runs the query against `store` and renders its page.
    pub async fn run(&self, store: &dyn Store) -> Result<String, Box<dyn std::error::Error + Send + Sync>> {
        let (company, filter) = self.filter()?;
        let page = store
            .audit_records(
                &company,
                &filter,
                self.cursor.as_deref(),
                self.limit as usize,
                Timestamp::now(),
            )
            .await?;
        Ok(if self.json {
            to_json(&page) + "\n"
        } else {
            to_text(&page)
        })
    }
}

fn record_json(r: &AuditRecord) -> Value {
    json!({
        "id": r.id,
        "at": r.at.to_string(),
        "actor": r.actor,
        "action": r.action,
        "subject": r.subject,
        "detail": r.detail,
    })
}

pub fn to_json(page: &AuditPage) -> String {
    let records: Vec<Value> = page.records.iter().map(record_json).collect();
    json!({ "records": records, "cursor": page.cursor }).to_string()
}

/// One line per record: time, actor, action, subject, detail.
pub fn to_text(page: &AuditPage) -> String {
    let mut out = String::new();
    for r in &page.records {
        out.push_str(&format!(
            "{}  {}  {}  {}  {}\n",
            r.at, r.actor, r.action, r.subject, r.detail
        ));
    }
    if page.records.is_empty() {
        out.push_str("no audit records\n");
    }
    if let Some(cursor) = &page.cursor {
        out.push_str(&format!("more: --cursor {cursor}\n"));
    }
    out
}
