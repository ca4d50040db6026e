//! Keeping secrets out of logs and panic messages. Values this crate owns outright (an inline signing
//! key, a catalog password, a client's shared key) are [`SecretString`]s, which print as `[REDACTED]`
//! and are wiped on drop. Records whose field types the stores construct directly (`ApiKeyRecord`,
//! `LicenseUser`, request credentials) keep plain `String`s and implement `Debug` by hand with
//! [`Redacted`] in place of the secret; so do a write's conditions and effects, for the attributes
//! `store::write::Attr::holds_secret` names.

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
    use crate::ids::{ApiKeyId, CompanyId, ManagementKeyId, OAuthClientId, Username};
    use crate::model::{ApiKeyRecord, IdempotencyRecord, LicenseUser, ManagementKeyRecord, OAuthClientRecord};
    use crate::store::write::{Action, Attr, Cond, Effect, Image, Item, ItemWrite, Val, Write};
    use crate::time::Timestamp;

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

    const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA";

    fn user(password_hash: &str) -> LicenseUser {
        LicenseUser {
            id: 1,
            email: Username::parse("a@b.c").unwrap(),
            first_name: None,
            last_name: None,
            phone_number: None,
            is_initial_password: false,
            password_hash: Some(password_hash.into()),
            licenses: Vec::new(),
            bundle_licenses: Vec::new(),
            password_change_disabled: false,
            trial_password: false,
            password_changed_by_user: false,
            management_licenses: Vec::new(),
            source: None,
            disabled: false,
        }
    }

    /// Formats `value` with `{:?}` and `{:#?}`: neither holds a secret, both hold what is shown.
    fn assert_redacted(value: &impl std::fmt::Debug, secrets: &[&str], shown: &[&str]) {
        for printed in [format!("{value:?}"), format!("{value:#?}")] {
            for secret in secrets {
                assert!(!printed.contains(secret), "{secret} in {printed}");
            }
            for part in shown.iter().chain(&["[REDACTED]"]) {
                assert!(printed.contains(part), "{part} not in {printed}");
            }
        }
    }

    #[test]
    fn license_users_print_without_their_password_hash() {
        let user = user(HASH);
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

    /// The defect: a write conditioned on a user's stored document printed that document, and so the
    /// password hash, in `Debug` (a refused write's test failure, a log line).
    #[test]
    fn writes_print_without_a_users_stored_document() {
        let stored = Image::User(Box::new(user(HASH)));
        let new = Image::User(Box::new(user("$argon2id$v=19$m=19456,t=2,p=1$bmV3$bmV3aGFzaA")));
        let write = Write::replace_unchanged(Item::User(company(), email()), &stored, new);
        assert_redacted(&write, &["argon2id", "aGFzaA", "bmV3aGFzaA"], &["Doc", "a@b.c"]);
    }

    #[test]
    fn write_conditions_and_effects_print_without_secret_values() {
        let item = ItemWrite {
            item: Item::ApiKey(ApiKeyId::parse("key-1").unwrap()),
            conditions: vec![
                Cond::Eq(Attr::SecretHash, Val::Str("h4sh-value".into())),
                Cond::Or(vec![!Cond::Eq(Attr::SealedSecret, Val::Str("s3aled-value".into()))]),
                Cond::Eq(Attr::ReadOnly, Val::Bool(false)),
            ],
            action: Action::Update(vec![
                Effect::Set(Attr::SharedKey, Val::Str("s3cr3t-shared".into())),
                Effect::Set(Attr::Answer, Val::Str("an-answer".into())),
                Effect::Add(Attr::TimesActivated, 1),
            ]),
        };
        assert_redacted(
            &item,
            &["h4sh-value", "s3aled-value", "s3cr3t-shared", "an-answer"],
            &["key-1", "SecretHash", "SharedKey", "ReadOnly", "TimesActivated"],
        );
    }

    #[test]
    fn idempotency_records_print_without_their_answer() {
        let record = IdempotencyRecord {
            company: company(),
            key: "idem-1".into(),
            request_digest: "d1g3st".into(),
            status: 201,
            answer: r#"{"shared_key":"s3cr3t-shared"}"#.into(),
            expires_at: 7,
        };
        let write = Write {
            items: vec![ItemWrite {
                item: Item::Idempotency(company(), "idem-1".into()),
                conditions: vec![Cond::Missing],
                action: Action::Put(Image::Idempotency(Box::new(record))),
            }],
        };
        assert_redacted(&write, &["s3cr3t-shared"], &["idem-1", "d1g3st", "201"]);
    }

    /// The records whose `Debug` was hand-written before, as the images a write puts.
    #[test]
    fn credential_images_print_without_their_secrets() {
        let api_key = ApiKeyRecord {
            id: ApiKeyId::parse("key-1").unwrap(),
            company: company(),
            shared_key: "s3cr3t-shared".into(),
            products: Vec::new(),
            read_only: false,
            revoked: false,
            source: None,
        };
        let management_key = ManagementKeyRecord {
            id: ManagementKeyId::parse("mk-1").unwrap(),
            company: company(),
            name: "ci".into(),
            secret_hash: "d1g3st-of-secret".into(),
            read_only: false,
            revoked: false,
            created_at: Timestamp::from_millis(0),
        };
        let (sealing_key, _) = crate::sealed::SealingKey::generate().unwrap();
        let sealed_secret = sealing_key.seal(&"s3cr3t-client".into(), "oauth-client:oc-1").unwrap();
        let oauth_client = OAuthClientRecord {
            id: OAuthClientId::parse("oc-1").unwrap(),
            company: company(),
            secret_hash: HASH.into(),
            sealed_secret: sealed_secret.clone(),
            products: Vec::new(),
            read_only: false,
            revoked: false,
            source: None,
        };
        let images = [
            Image::ApiKey(Box::new(api_key)),
            Image::OAuthClient(Box::new(oauth_client)),
            Image::ManagementKey(Box::new(management_key)),
            Image::User(Box::new(user(HASH))),
        ];
        assert_redacted(
            &images,
            &["s3cr3t-shared", "d1g3st-of-secret", "argon2id", sealed_secret.as_str()],
            &["key-1", "oc-1", "mk-1", "a@b.c"],
        );
    }

    fn company() -> CompanyId {
        CompanyId::parse("acme").unwrap()
    }

    fn email() -> Username {
        Username::parse("a@b.c").unwrap()
    }
}
