//! `license-server search` and `license-server license list` (docs/management-listing.md): a company's
//! licenses, found by key, customer email, order id or hardware id, or all of them (of one product),
//! from the embedded store or DynamoDB, as text or `--json`; through the Management API's own
//! operations (`license_api::management::search`), as the command line's principal.

use crate::stores::StoreArgs;
use clap::{Args, Subcommand};
use license_api::auth::Principal;
use license_api::ids::{CompanyId, HardwareId, LicenseKey, OrderId, ProductCode, Username};
use license_api::management::search::{
    list_licenses_in, search_licenses_in, LicensePage, ListLicenses, SearchLicenses,
};
use license_api::store::listing::{DEFAULT_PAGE, MAX_PAGE};
use license_api::store::sqlite::IfMissing;

type Error = Box<dyn std::error::Error + Send + Sync>;

/// What every listing takes: the company, the product, the page.
#[derive(Args, Debug, Clone)]
pub struct PageArgs {
    /// Company code, as in the catalog.
    #[arg(long, value_parser = |s: &str| CompanyId::parse(s).map_err(|e| e.to_string()))]
    pub company: CompanyId,
    /// Only this product's licenses.
    #[arg(long, value_parser = |s: &str| ProductCode::parse(s).map_err(|e| e.to_string()))]
    pub product: Option<ProductCode>,
    /// At most this many licenses.
    #[arg(long, default_value_t = DEFAULT_PAGE as u64, value_parser = clap::value_parser!(u64).range(1..=MAX_PAGE as u64))]
    pub limit: u64,
    /// Continue after an earlier page: the cursor it printed.
    #[arg(long)]
    pub cursor: Option<String>,
    /// Print JSON: `{"licenses": [...], "cursor": ...}`.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub store: StoreArgs,
}

/// `license-server search`: exactly one search term.
#[derive(Args, Debug, Clone)]
#[command(group = clap::ArgGroup::new("term").required(true).multiple(false))]
pub struct SearchArgs {
    /// The license key.
    #[arg(long, group = "term", value_parser = |s: &str| LicenseKey::parse(s).map_err(|e| e.to_string()))]
    pub key: Option<LicenseKey>,
    /// The customer's email (any case).
    #[arg(long, group = "term", value_parser = |s: &str| Username::parse(s).map_err(|e| e.to_string()))]
    pub email: Option<Username>,
    /// The order id (`order_store_id`).
    #[arg(long, group = "term", value_parser = |s: &str| OrderId::parse(s).map_err(|e| e.to_string()))]
    pub order_id: Option<OrderId>,
    /// The licenses with a device of this hardware id.
    #[arg(long, group = "term", value_parser = |s: &str| HardwareId::parse(s).map_err(|e| e.to_string()))]
    pub hardware_id: Option<HardwareId>,
    #[command(flatten)]
    pub page: PageArgs,
}

/// `license-server license ...`.
#[derive(Subcommand, Debug, Clone)]
pub enum LicenseCommand {
    /// List a company's licenses (of one product), a page at a time.
    List(PageArgs),
}

impl SearchArgs {
    pub async fn run(self) -> Result<String, Error> {
        let store = self.page.store.open(IfMissing::Fail).await?;
        let input = SearchLicenses {
            product: self.page.product.clone(),
            key: self.key,
            email: self.email,
            order_id: self.order_id,
            hardware_id: self.hardware_id,
            cursor: self.page.cursor.clone(),
            limit: Some(self.page.limit as usize),
        };
        let principal = Principal::cli(self.page.company.clone());
        let page = search_licenses_in(&*store, &principal, input).await?;
        Ok(render(&page, self.page.json))
    }
}

impl LicenseCommand {
    pub async fn run(self) -> Result<String, Error> {
        let Self::List(args) = self;
        let store = args.store.open(IfMissing::Fail).await?;
        let input = ListLicenses {
            product: args.product.clone(),
            cursor: args.cursor.clone(),
            limit: Some(args.limit as usize),
        };
        let page = list_licenses_in(&*store, &Principal::cli(args.company.clone()), input).await?;
        Ok(render(&page, args.json))
    }
}

/// The page as JSON, or one line per license and the cursor to go on with.
pub fn render(page: &LicensePage, json: bool) -> String {
    if json {
        return serde_json::to_string(page).expect("a page serialises") + "\n";
    }
    let mut out = String::new();
    for l in &page.licenses {
        let which = l
            .license_key
            .as_ref()
            .map_or_else(|| format!("#{}", l.id), |k| k.to_string());
        let source = l.source.map_or("unknown", |s| s.as_str());
        out.push_str(&format!(
            "{}  {which}  id {}  {}  source {source}  activations {}/{}  customer {}  order {}\n",
            l.product,
            l.id,
            if l.enabled { "enabled" } else { "disabled" },
            l.times_activated,
            l.max_activations,
            l.customer_email.as_deref().unwrap_or("-"),
            l.order_id.as_deref().unwrap_or("-"),
        ));
    }
    if page.licenses.is_empty() {
        out.push_str("no licenses\n");
    }
    if let Some(cursor) = &page.cursor {
        out.push_str(&format!("more: --cursor {cursor}\n"));
    }
    out
}
