//! Keeping secrets out of logs and panic messages. Values this crate owns outright (an inline signing
//! key, a catalog password, a client's shared key) are [`SecretString`]s, which print as `[REDACTED]`
//! and are wiped on drop. Records whose field types the stores construct directly (`ApiKeyRecord`,
//! `LicenseUser`, request credentials) keep plain `String`s and implement `Debug` by hand with
//! [`Redacted`] in place of the secret.

use std::fmt;

pub use secrecy::{ExposeSecret, SecretString};

/// What a hand-written `Debug` impl prints instead of a secret.
#[derive(Clone, Copy)]
pub struct Redacted;

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

/// `Some([REDACTED])` or `None`: whether an optional secret is set is useful in a log, its value is not.
pub fn redacted_option<T>(value: &Option<T>) -> Option<Redacted> {
    value.as_ref().map(|_| Redacted)
}

#[cfg(test)]
mod tests {
    use crate::client::LicenseClient;
    use crate::ids::{ApiKeyId, CompanyId, Username};
    use crate::model::{ApiKeyRecord, LicenseUser};

    #[test]
    fn api_key_records_print_without_their_shared_key() {
        let key = ApiKeyRecord {
            id: ApiKeyId::parse("key-1").unwrap(),
            company: CompanyId::parse("acme").unwrap(),
            shared_key: "s3cr3t-shared".into(),
            products: Vec::new(),
            read_only: false,
            revoked: false,
            source: None,
        };
        let printed = format!("{key:?}");
        assert!(!printed.contains("s3cr3t-shared"), "{printed}");
        assert!(printed.contains("key-1") && printed.contains("[REDACTED]"), "{printed}");
    }

    #[test]
    fn license_users_print_without_their_password_hash() {
        let user = LicenseUser {
            id: 1,
            email: Username::parse("a@b.c").unwrap(),
            first_name: None,
            last_name: None,
            phone_number: None,
            is_initial_password: false,
            password_hash: Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into()),
            licenses: Vec::new(),
            bundle_licenses: Vec::new(),
            password_change_disabled: false,
            trial_password: false,
            password_changed_by_user: false,
            management_licenses: Vec::new(),
            source: None,
        };
        let printed = format!("{user:?}");
        assert!(
            !printed.contains("argon2id") && !printed.contains("aGFzaA"),
            "{printed}"
        );
        assert!(printed.contains("Some([REDACTED])"), "{printed}");
    }

    #[test]
    fn clients_print_without_their_shared_key() {
        let client = LicenseClient::new("key-1", "s3cr3t-shared", "");
        let printed = format!("{client:?}");
        assert!(!printed.contains("s3cr3t-shared"), "{printed}");
    }
}
