//! The administrative reads of a company's licenses (`Store::find_licenses`): a listing, optionally of
//! one product, or a search by license key, customer email, order id or hardware id; paginated by an
//! opaque cursor. And the listings of its other items (`Store::list_items`: products, license users,
//! API keys, OAuth clients). What the stores share lives here: the queries, their bounds, the cursors'
//! validation and the final check that an item found through an index still matches (DynamoDB's
//! indexes are read eventually consistent: an entry may lag its item).

use crate::ids::{ApiKeyId, CompanyId, HardwareId, IdError, LicenseKey, OAuthClientId, OrderId, ProductCode, Username};
use crate::model::License;
use crate::store::write::{Image, Item};
use crate::store::StoreError;

/// Licenses a page holds unless asked for fewer.
pub const DEFAULT_PAGE: usize = 50;
/// Most licenses one page holds (a DynamoDB `BatchGetItem` reads at most 100 items).
pub const MAX_PAGE: usize = 100;
/// Longest cursor accepted: a license's storage key, whose free-form part is at most 512 bytes.
pub const MAX_CURSOR_LEN: usize = 1024;

/// What one search looks for; `None` in [`LicenseQuery::search`] lists every license.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LicenseSearch {
    Key(LicenseKey),
    /// The customer's email (`terms.customer.email`), compared case-insensitively.
    Email(Username),
    OrderId(OrderId),
    /// The licenses that have a device of this hardware id (active or not).
    HardwareId(HardwareId),
}

/// A company's licenses, optionally of one product, optionally matching a search.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LicenseQuery {
    pub company: CompanyId,
    pub product: Option<ProductCode>,
    pub search: Option<LicenseSearch>,
}

/// A cursor that this query did not return.
#[derive(Debug, thiserror::Error)]
#[error("the cursor is not one this listing returned: pass the `cursor` of the previous page unchanged")]
pub struct ForeignCursor;

impl From<ForeignCursor> for StoreError {
    fn from(e: ForeignCursor) -> Self {
        StoreError::Invalid(e.to_string())
    }
}

/// One page, in storage-key order; `cursor` continues after it (`None`: this was the last page).
#[derive(Clone, Debug, Default)]
pub struct LicensePage {
    pub licenses: Vec<License>,
    pub cursor: Option<String>,
}

impl LicenseQuery {
    /// The prefix of the storage keys of every license the query may return (`LICENSE#c#` or
    /// `LICENSE#c#p#`): company ids and product codes hold no `#`, so it selects exactly those.
    pub fn key_prefix(&self) -> String {
        match &self.product {
            Some(p) => format!("LICENSE#{}#{p}#", self.company),
            None => format!("LICENSE#{}#", self.company),
        }
    }

    /// The cursor as a storage key after which the page starts, refused unless it is one of this
    /// query's own (a cursor of another company's listing must never read that company).
    pub fn start_after(&self, cursor: Option<&str>) -> Result<Option<String>, ForeignCursor> {
        let Some(cursor) = cursor else { return Ok(None) };
        if cursor.len() > MAX_CURSOR_LEN || !cursor.starts_with(&self.key_prefix()) {
            return Err(ForeignCursor);
        }
        Ok(Some(cursor.to_owned()))
    }

    /// Whether a license read from the table (consistently) is one this query asks for: what an
    /// index entry pointed at may have changed since (a key, email or order id replaced). The
    /// hardware id is checked by the index itself (a device's item is keyed by it).
    pub fn matches(&self, license: &License) -> bool {
        let in_scope = license.company == self.company && self.product.as_ref().is_none_or(|p| *p == license.product);
        in_scope
            && match &self.search {
                None | Some(LicenseSearch::HardwareId(_)) => true,
                Some(LicenseSearch::Key(k)) => license.key.as_ref() == Some(k),
                Some(LicenseSearch::Email(e)) => customer_email(license).is_some_and(|m| m == e.as_str()),
                Some(LicenseSearch::OrderId(o)) => license.terms.order_store_id.as_deref() == Some(o.as_str()),
            }
    }
}

/// The license's customer email as searched: lower-cased, like a [`Username`].
pub fn customer_email(license: &License) -> Option<String> {
    let email = license.terms.customer.email.as_deref()?.trim();
    (!email.is_empty()).then(|| email.to_lowercase())
}

/// The company items besides licenses that are listed a page at a time (`Store::list_items`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ItemKind {
    Products,
    Users,
    ApiKeys,
    OAuthClients,
}

/// One page of a company's items of one kind, ordered by name (code, email, key id, client id);
/// `cursor` continues after it (`None`: this was the last page).
#[derive(Clone, Debug, Default)]
pub struct ItemPage {
    pub items: Vec<Image>,
    pub cursor: Option<String>,
}

impl ItemKind {
    /// The item of this kind called `name` in the company: a product's code, a user's email, an API
    /// key's or OAuth client's id.
    pub fn item(self, company: &CompanyId, name: &str) -> Result<Item, IdError> {
        Ok(match self {
            Self::Products => Item::Product(company.clone(), ProductCode::parse(name)?),
            Self::Users => Item::User(company.clone(), Username::parse(name)?),
            Self::ApiKeys => Item::ApiKey(ApiKeyId::parse(name)?),
            Self::OAuthClients => Item::OAuthClient(OAuthClientId::parse(name)?),
        })
    }

    /// The kind of a listed item; `None` for an item no listing of this kind holds.
    pub fn of(item: &Item) -> Option<Self> {
        match item {
            Item::Product(..) => Some(Self::Products),
            Item::User(..) => Some(Self::Users),
            Item::ApiKey(_) => Some(Self::ApiKeys),
            Item::OAuthClient(_) => Some(Self::OAuthClients),
            _ => None,
        }
    }

    /// The company an item of this kind belongs to, as stored: in its key, or (API keys, OAuth clients,
    /// stored by id alone) in its record.
    pub fn company_of<'a>(item: &'a Item, image: &'a Image) -> Option<&'a CompanyId> {
        match (item, image) {
            (Item::Product(c, _) | Item::User(c, _), _) => Some(c),
            (_, Image::ApiKey(k)) => Some(&k.company),
            (_, Image::OAuthClient(c)) => Some(&c.company),
            _ => None,
        }
    }

    /// The name a page is ordered by and its cursor holds; `None` for an item of another kind.
    pub fn name_of(self, item: &Item) -> Option<&str> {
        match (self, item) {
            (Self::Products, Item::Product(_, code)) => Some(code.as_str()),
            (Self::Users, Item::User(_, email)) => Some(email.as_str()),
            (Self::ApiKeys, Item::ApiKey(id)) => Some(id.as_str()),
            (Self::OAuthClients, Item::OAuthClient(id)) => Some(id.as_str()),
            _ => None,
        }
    }

    /// The cursor as the name after which the page starts: a name of this kind, or refused. Whatever it
    /// names, a page reads only the company it is asked for.
    pub fn start_after(self, company: &CompanyId, cursor: Option<&str>) -> Result<Option<String>, ForeignCursor> {
        let Some(cursor) = cursor else { return Ok(None) };
        let item = self.item(company, cursor).map_err(|_| ForeignCursor)?;
        Ok(self.name_of(&item).map(str::to_owned))
    }

    /// Whether an item read (consistently) through an index entry is still the company's item of this
    /// kind: an API key or OAuth client carries its company, and one deleted and created again by
    /// another company keeps its id.
    pub fn holds(self, company: &CompanyId, item: &Item, image: &Image) -> bool {
        Self::of(item) == Some(self) && Self::company_of(item, image) == Some(company)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An item listing's cursor is a name of its kind, nothing else.
    #[test]
    fn an_item_cursor_must_name_an_item_of_the_kind() {
        let company = CompanyId::parse("acme").unwrap();
        assert_eq!(
            ItemKind::Users.start_after(&company, Some("a@b.c")).unwrap().as_deref(),
            Some("a@b.c")
        );
        assert!(ItemKind::Users.start_after(&company, Some("a\u{7}b")).is_err());
        assert!(ItemKind::Products.start_after(&company, Some("a#b")).is_err());
        assert!(ItemKind::ApiKeys
            .start_after(&company, Some(&"k".repeat(2000)))
            .is_err());
        assert_eq!(ItemKind::OAuthClients.start_after(&company, None).unwrap(), None);
    }

    fn query(product: Option<&str>) -> LicenseQuery {
        LicenseQuery {
            company: CompanyId::parse("acme").unwrap(),
            product: product.map(|p| ProductCode::parse(p).unwrap()),
            search: None,
        }
    }

    /// A cursor of another company (or product, or anything else) is refused, never followed.
    #[test]
    fn a_cursor_must_be_one_of_the_query() {
        let q = query(Some("app"));
        assert!(q.start_after(Some("LICENSE#acme#app#KEY#K")).unwrap().is_some());
        assert!(q.start_after(Some("LICENSE#other#app#KEY#K")).is_err());
        assert!(q.start_after(Some("LICENSE#acme#apple#KEY#K")).is_err());
        assert!(query(None).start_after(Some("LICENSE#acmex#a#ID#1")).is_err());
        assert!(query(None).start_after(Some(&"LICENSE#acme#".repeat(100))).is_err());
        assert_eq!(q.start_after(None).unwrap(), None);
    }

    /// A page's cursor is a storage key, and the address it names reads back from it, key or id,
    /// whatever the key holds (`#` included); anything else is no address.
    #[test]
    fn storage_keys_parse_back_to_their_address() {
        use crate::plan::LicenseAddr;
        let company = CompanyId::parse("acme").unwrap();
        let product = ProductCode::parse("app").unwrap();
        for addr in [
            LicenseAddr::Key {
                company: company.clone(),
                product: product.clone(),
                key: LicenseKey::parse("K#1-ID#2").unwrap(),
            },
            LicenseAddr::Id {
                company,
                product,
                id: -7,
            },
        ] {
            assert_eq!(LicenseAddr::from_storage_key(&addr.storage_key()), Some(addr));
        }
        for bad in [
            "",
            "LICENSE#acme",
            "LICENSE#acme#app#",
            "LICENSE#acme#app#ID#x",
            "DEVICE#acme#app#KEY#k",
        ] {
            assert_eq!(LicenseAddr::from_storage_key(bad), None, "{bad}");
        }
    }
}
