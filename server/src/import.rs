//! `license-server import`: what the import changed (or, with `--dry-run`, would change), one line per
//! item (and each license, user, API key and OAuth client `--prune` removes, and what it keeps because
//! support added it), then the counts of what the catalog names.

use license_api::catalog::ImportReport;
use std::fmt::Write as _;
use std::path::Path;

/// The report as the command prints it.
pub fn render(file: &Path, target: &str, report: &ImportReport, dry_run: bool) -> String {
    let mut out = String::new();
    for change in &report.changes {
        let _ = writeln!(out, "  {}", change.describe());
    }
    for removal in &report.removals {
        let _ = writeln!(out, "  {}", removal.describe());
    }
    for removal in &report.item_removals {
        let _ = writeln!(out, "  {}", removal.describe());
    }
    for kept in &report.kept {
        let _ = writeln!(out, "  {kept}");
    }
    let (n, unchanged) = (
        report.changes.len() + report.removals.len() + report.item_removals.len(),
        report.unchanged,
    );
    let _ = match dry_run {
        true => writeln!(
            out,
            "dry run of {} on {target}: {n} changes would be written (nothing was), {unchanged} items unchanged",
            file.display()
        ),
        false => writeln!(
            out,
            "imported {} into {target}: {n} changes written, {unchanged} items unchanged",
            file.display()
        ),
    };
    let _ = writeln!(
        out,
        "the catalog names {} companies, {} API keys, {} products, {} license users, {} licenses, {} OAuth clients, \
         {} customer accounts",
        report.companies,
        report.api_keys,
        report.products,
        report.users,
        report.licenses,
        report.oauth_clients,
        report.customer_accounts
    );
    if report.prunable > 0 {
        let _ = writeln!(
            out,
            "{} license(s) the catalog wrote are no longer in it: --prune would remove them and the {} item(s) \
             beside them (devices, seats, markers)",
            report.prunable, report.prunable_beside
        );
    }
    if report.prunable_items > 0 {
        let _ = writeln!(
            out,
            "{} license user(s), API key(s) and OAuth client(s) the catalog wrote are no longer in it: --prune \
             would remove them",
            report.prunable_items
        );
    }
    if report.passwords_kept > 0 {
        let _ = writeln!(
            out,
            "kept the password {} license user(s) changed themselves (the catalog's password is only where a \
             user starts; set `password_change_disabled` to manage it from the catalog)",
            report.passwords_kept
        );
    }
    out
}
