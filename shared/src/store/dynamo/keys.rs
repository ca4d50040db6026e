//! Item keys. Company ids and product codes never contain `#` (see `ids`), so every key below parses
//! back unambiguously; the free-form part (license key, hardware id, email) always comes last.

use crate::ids::{
    ApiKeyId, CompanyId, CustomerAccountCode, HardwareId, ManagementKeyId, OAuthClientId, ProductCode, RequestKey,
    Username,
};
use crate::plan::LicenseAddr;
use crate::store::listing::ItemKind;
use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;

/// An item as the SDK holds it, and the attribute values keys are made of.
pub type ItemMap = HashMap<String, AttributeValue>;

pub fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

pub fn key_part(item: &ItemMap, name: &str) -> String {
    item.get(name).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default()
}

pub const PK: &str = "PK";
pub const SK: &str = "SK";
/// Sort key of the single item that is the whole partition (license, product, ...).
const ROOT: &str = "#";
pub const DEVICE_PREFIX: &str = "DEVICE#";
pub const SEAT_PREFIX: &str = "SEAT#";
pub const RELEASED_PREFIX: &str = "RELEASED#";
pub const REQUEST_PREFIX: &str = "REQUEST#";

fn key(pk: String, sk: impl Into<String>) -> ItemMap {
    ItemMap::from([(PK.to_owned(), s(pk)), (SK.to_owned(), s(sk.into()))])
}

pub fn api_key(id: &ApiKeyId) -> ItemMap {
    key(format!("APIKEY#{id}"), ROOT)
}

pub fn oauth_client(id: &OAuthClientId) -> ItemMap {
    key(format!("OAUTHCLIENT#{id}"), ROOT)
}

pub fn customer_account(company: &CompanyId, code: &CustomerAccountCode) -> ItemMap {
    key(format!("ACCOUNT#{company}#{code}"), ROOT)
}

pub fn company(company: &CompanyId) -> ItemMap {
    key(format!("COMPANY#{company}"), ROOT)
}

pub fn product(company: &CompanyId, product: &ProductCode) -> ItemMap {
    key(format!("PRODUCT#{company}#{product}"), ROOT)
}

pub fn user(company: &CompanyId, user: &Username) -> ItemMap {
    key(format!("USER#{company}#{user}"), ROOT)
}

/// A customer's licenses (`model::CustomerLicenses`), by the customer's email.
pub fn customer(company: &CompanyId, email: &Username) -> ItemMap {
    key(format!("CUSTOMER#{company}#{email}"), ROOT)
}

pub fn license_pk(addr: &LicenseAddr) -> String {
    addr.storage_key()
}

pub fn license(addr: &LicenseAddr) -> ItemMap {
    key(license_pk(addr), ROOT)
}

pub fn device(addr: &LicenseAddr, hardware_id: &HardwareId) -> ItemMap {
    key(license_pk(addr), format!("{DEVICE_PREFIX}{hardware_id}"))
}

pub fn seat(addr: &LicenseAddr, user: &Username) -> ItemMap {
    key(license_pk(addr), format!("{SEAT_PREFIX}{user}"))
}

/// The marker of a released slot: kept beside the license, not on it, so the license item stays O(1).
pub fn released(addr: &LicenseAddr, hardware_id: &HardwareId) -> ItemMap {
    key(license_pk(addr), format!("{RELEASED_PREFIX}{hardware_id}"))
}

/// The record of an applied offline request, beside its license.
pub fn request(addr: &LicenseAddr, request: &RequestKey) -> ItemMap {
    key(license_pk(addr), format!("{REQUEST_PREFIX}{}", request.as_str()))
}

/// The trial marker of a product for one hardware id (`trial_key`): a partition of its own, so
/// concurrent trials of different devices never contend.
pub fn trial(company: &CompanyId, product: &ProductCode, hardware_id: &HardwareId) -> ItemMap {
    key(format!("TRIAL#{company}#{product}#{hardware_id}"), ROOT)
}

/// A management key: one partition per company, sorted by key id, so listing a company's keys is
/// one query and one company's key can never be named with another's.
pub fn management_key(company: &CompanyId, id: &ManagementKeyId) -> ItemMap {
    key(management_keys_pk(company), id.as_str())
}

pub fn management_keys_pk(company: &CompanyId) -> String {
    format!("MGMTKEY#{company}")
}

/// The answer to a request with an `Idempotency-Key`: a partition of its own per key.
pub fn idempotency(company: &CompanyId, key: &str) -> ItemMap {
    self::key(format!("IDEMPOTENCY#{company}#{key}"), ROOT)
}

/// A record of the audit trail: one partition per company, sorted by record id (that is, by time).
pub fn audit(company: &CompanyId, id: &str) -> ItemMap {
    key(format!("AUDIT#{company}"), id)
}

/// A global secondary index (docs/data-model.md, *Listing and search*): sparse — only the items that
/// carry its key attributes are in it — and `KEYS_ONLY`, so the writes that change a license's counters
/// or a device's check never write it; a reader gets the items themselves with a consistent read.
#[derive(Clone, Copy, Debug)]
pub struct Index {
    pub name: &'static str,
    pub pk: &'static str,
    pub sk: &'static str,
}

/// Every license of a company: `LICENSES#<company>`, sorted by the license's storage key; and the
/// company's products, license users, API keys and OAuth clients ([`listed_partition`]), each sorted by
/// its item's storage key.
pub const LICENSES: Index = Index {
    name: "GSI1",
    pk: "GSI1PK",
    sk: "GSI1SK",
};
/// A license by its key (`KEY#<company>#<key>`) and the device items of a hardware id
/// (`HWID#<company>#<hardware id>`), sorted by the license's storage key: two kinds of item, one index.
pub const BY_KEY_OR_HARDWARE_ID: Index = Index {
    name: "GSI2",
    pk: "GSI2PK",
    sk: "GSI2SK",
};
/// A license by its customer's email, lower-cased: `EMAIL#<company>#<email>`.
pub const BY_EMAIL: Index = Index {
    name: "GSI3",
    pk: "GSI3PK",
    sk: "GSI3SK",
};
/// A license by its order id: `ORDER#<company>#<order id>`.
pub const BY_ORDER_ID: Index = Index {
    name: "GSI4",
    pk: "GSI4PK",
    sk: "GSI4SK",
};
/// DynamoDB's bound on an index's sort key, in bytes.
const MAX_INDEX_SORT_KEY: usize = 1024;

pub const INDEXES: [Index; 4] = [LICENSES, BY_KEY_OR_HARDWARE_ID, BY_EMAIL, BY_ORDER_ID];

impl Index {
    /// Puts the item into this index under `partition`, sorted by the license's storage key.
    pub fn tag(self, item: &mut ItemMap, partition: String, addr: &LicenseAddr) {
        self.tag_sorted(item, partition, license_pk(addr));
    }

    /// Puts the item into this index under `partition`, sorted by `sort_key`. A sort key over an index
    /// sort key's 1,024 bytes (only codes and keys of hundreds of bytes make one) would refuse the whole
    /// write: such an item stays out of the index instead.
    pub fn tag_sorted(self, item: &mut ItemMap, partition: String, sort_key: String) {
        if sort_key.len() > MAX_INDEX_SORT_KEY {
            return;
        }
        item.insert(self.pk.to_owned(), s(partition));
        item.insert(self.sk.to_owned(), s(sort_key));
    }
}

/// The GSI1 partition of a company's items of one kind: `PRODUCTS#`, `USERS#`, `APIKEYS#` or
/// `OAUTHCLIENTS#<company>`.
pub fn listed_partition(kind: ItemKind, company: &CompanyId) -> String {
    let name = match kind {
        ItemKind::Products => "PRODUCTS",
        ItemKind::Users => "USERS",
        ItemKind::ApiKeys => "APIKEYS",
        ItemKind::OAuthClients => "OAUTHCLIENTS",
    };
    format!("{name}#{company}")
}

/// What the storage key of every item of the kind starts with, before its name (see [`api_key`],
/// [`oauth_client`], [`product`], [`user`]).
pub fn listed_prefix(kind: ItemKind, company: &CompanyId) -> String {
    match kind {
        ItemKind::Products => format!("PRODUCT#{company}#"),
        ItemKind::Users => format!("USER#{company}#"),
        ItemKind::ApiKeys => "APIKEY#".to_owned(),
        ItemKind::OAuthClients => "OAUTHCLIENT#".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A listed item's storage key is its kind's prefix and its name, which is how a page names it.
    #[test]
    fn listed_items_are_their_prefix_and_name() {
        let company = CompanyId::parse("acme").unwrap();
        for (kind, name) in [
            (ItemKind::Products, "app"),
            (ItemKind::Users, "ann@example.com"),
            (ItemKind::ApiKeys, "key-1"),
            (ItemKind::OAuthClients, "client-1"),
        ] {
            let item = kind.item(&company, name).unwrap();
            let pk = key_part(&crate::store::dynamo::expr::key(&item), PK);
            assert_eq!(pk, format!("{}{name}", listed_prefix(kind, &company)));
        }
    }
}
