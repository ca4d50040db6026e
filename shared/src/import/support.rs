//! What a re-import keeps of support's work (docs/catalog.md, *Ownership*). The catalog is the desired
//! state of what it wrote, not of what support added through the Management API since: blacklist
//! entries (`POST /blacklist`, kept in the company's `management_blacklist`) and license assignments
//! (`POST …/licenses/{key}/users/{email}`, kept in the user's `management_licenses`). The import
//! replaces the catalog's own entries and keeps support's; an entry the catalog now lists becomes the
//! catalog's (it claims it), so a later catalog that drops it removes it.

use crate::ids::{CompanyId, HardwareId, ProductCode, Username};
use crate::model::{Company, LicenseUser};
use std::collections::HashSet;

/// The company as the catalog states it, plus the blacklist entries support added that the catalog
/// does not list; and one line for each entry kept.
pub(super) fn company(catalog: &Company, stored: Option<&Company>, code: &CompanyId) -> (Company, Vec<String>) {
    let kept: Vec<&HardwareId> = stored
        .iter()
        .flat_map(|s| &s.management_blacklist)
        .filter(|h| !catalog.blacklist.contains(*h))
        .collect();
    let mut company = catalog.clone();
    company.blacklist.extend(kept.iter().map(|h| (*h).clone()));
    company.management_blacklist = kept.iter().map(|h| (*h).clone()).collect();
    let lines = kept
        .iter()
        .map(|h| format!("keep blacklist entry {h} of company {code}: support added it"))
        .collect();
    (company, lines)
}

/// The user as the catalog states it, plus the licenses support assigned that the catalog does not
/// list and `--prune` does not remove (`gone`); and one line for each assignment kept.
pub(super) fn user(
    catalog: LicenseUser,
    stored: Option<&LicenseUser>,
    code: &CompanyId,
    gone: &HashSet<(&ProductCode, i64)>,
) -> (LicenseUser, Vec<String>) {
    let kept: Vec<(ProductCode, i64)> = stored
        .iter()
        .flat_map(|s| &s.management_licenses)
        .filter(|l| !catalog.licenses.contains(*l) && !gone.contains(&(&l.0, l.1)))
        .cloned()
        .collect();
    let lines = kept.iter().map(|(p, id)| line(code, &catalog.email, p, *id)).collect();
    let mut user = catalog;
    user.licenses.extend(kept.iter().cloned());
    user.management_licenses = kept;
    (user, lines)
}

fn line(code: &CompanyId, email: &Username, product: &ProductCode, id: i64) -> String {
    format!("keep the assignment of license {code}/{product} #{id} to license user {email}: support made it")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::LicenseSource;
    use std::collections::BTreeSet;

    fn hw(text: &str) -> HardwareId {
        HardwareId::parse(text).unwrap()
    }

    fn set(ids: &[&str]) -> BTreeSet<HardwareId> {
        ids.iter().map(|h| hw(h)).collect()
    }

    /// Support's entries survive; one the catalog lists becomes the catalog's; the catalog's own
    /// entries are replaced by what it lists now.
    #[test]
    fn a_company_keeps_supports_blacklist_entries_and_the_catalog_claims_those_it_lists() {
        let code = CompanyId::parse("acme").unwrap();
        let stored = Company {
            id: 1,
            blacklist: set(&["old-catalog", "support-1", "support-2"]),
            management_blacklist: set(&["support-1", "support-2"]),
        };
        let catalog = Company {
            id: 1,
            blacklist: set(&["new-catalog", "support-2"]),
            management_blacklist: BTreeSet::new(),
        };
        let (merged, lines) = company(&catalog, Some(&stored), &code);
        assert_eq!(merged.blacklist, set(&["new-catalog", "support-1", "support-2"]));
        assert_eq!(merged.management_blacklist, set(&["support-1"]));
        assert_eq!(
            lines,
            ["keep blacklist entry support-1 of company acme: support added it"]
        );
        let (fresh, lines) = company(&catalog, None, &code);
        assert_eq!((fresh.blacklist, lines.len()), (catalog.blacklist.clone(), 0));
    }

    /// Support's assignments survive unless the catalog claims them or `--prune` removes the license.
    #[test]
    fn a_user_keeps_supports_assignments_except_to_pruned_licenses() {
        let code = CompanyId::parse("acme").unwrap();
        let p = ProductCode::parse("team").unwrap();
        let catalog = crate::catalog::user_of_entry("u", serde_json::json!({"id": 1, "email": "a@b.c"}))
            .unwrap()
            .0;
        let catalog = LicenseUser {
            licenses: vec![(p.clone(), 1), (p.clone(), 2)],
            ..catalog
        };
        let stored = LicenseUser {
            licenses: vec![(p.clone(), 1), (p.clone(), 3), (p.clone(), 4), (p.clone(), 2)],
            management_licenses: vec![(p.clone(), 2), (p.clone(), 3), (p.clone(), 4)],
            source: Some(LicenseSource::Management),
            ..catalog.clone()
        };
        let gone: HashSet<(&ProductCode, i64)> = [(&p, 4)].into();
        let (merged, lines) = user(catalog, Some(&stored), &code, &gone);
        assert_eq!(merged.licenses, [(p.clone(), 1), (p.clone(), 2), (p.clone(), 3)]);
        assert_eq!(merged.management_licenses, [(p.clone(), 3)], "#2 is claimed, #4 pruned");
        assert_eq!(lines.len(), 1);
    }
}
