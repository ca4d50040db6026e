//! OAuth client credentials (issue 16, docs/oauth.md): clients imported from the catalog are stored
//! with their secret hashed (argon2id) and sealed under the deployment's sealing key, on every store.

use integration_tests::Fixture;
use license_api::catalog::{import, import_sealed, Catalog};
use license_api::ids::OAuthClientId;
use license_api::model::OAuthClientRecord;
use license_api::sealed::SealingKey;
use license_api::secret::ExposeSecret;
use serde_json::{json, Value};

const EXAMPLE: &str = include_str!("../examples/catalog.json");
const SECRET: &str = "oauth-secret-0123456789";

/// The example catalog with one OAuth client of company `demo`, restricted to product `demo`.
fn catalog_with(client: Value) -> Catalog {
    let mut v: Value = serde_json::from_str(EXAMPLE).unwrap();
    v["companies"][0]["oauth_clients"] = json!([client]);
    Catalog::parse(&v.to_string(), "oauth.json").expect("valid catalog")
}

fn client(secret: &str, revoked: bool) -> Value {
    json!({"client_id": "ci-1", "client_secret": secret, "products": ["demo"], "read_only": true, "revoked": revoked})
}

async fn stored(f: &Fixture) -> OAuthClientRecord {
    let id = OAuthClientId::parse("ci-1").unwrap();
    f.store()
        .oauth_client(&id)
        .await
        .unwrap()
        .expect("the client is stored")
}

integration_tests::matrix! {
    async fn oauth_clients_are_stored_hashed_and_sealed(setup) {
        let f = Fixture::new(setup).await;
        let key = SealingKey::generate().unwrap().0;
        let report = import_sealed(f.store(), &catalog_with(client(SECRET, false)), Some(&key)).await.unwrap();
        assert_eq!(report.oauth_clients, 1);
        let c = stored(&f).await;
        assert_eq!((c.company.as_str(), c.read_only, c.revoked), ("demo", true, false));
        assert_eq!(c.products.iter().map(|p| p.as_str()).collect::<Vec<_>>(), ["demo"]);
        assert!(c.secret_hash.starts_with("$argon2id$"), "{c:?}");
        assert!(license_api::password::verify(SECRET.into(), Some(c.secret_hash.clone())).await);
        let context = OAuthClientRecord::seal_context(&c.id);
        assert_eq!(key.open(&c.sealed_secret, &context).unwrap().expose_secret(), SECRET);
        let dump = f.env.dump().await;
        assert!(dump.iter().any(|row| row.contains("ci-1")), "{dump:?}");
        assert!(!dump.iter().any(|row| row.contains(SECRET)), "the secret is stored in clear: {dump:?}");

        // Re-importing the same catalog changes nothing: hash and sealed secret are kept.
        import_sealed(f.store(), &catalog_with(client(SECRET, false)), Some(&key)).await.unwrap();
        assert_eq!(f.env.dump().await, dump);

        // Revoking keeps the hash; a new secret replaces both.
        import_sealed(f.store(), &catalog_with(client(SECRET, true)), Some(&key)).await.unwrap();
        let revoked = stored(&f).await;
        assert!(revoked.revoked);
        assert_eq!(revoked.secret_hash, c.secret_hash);
        assert_eq!(revoked.sealed_secret, c.sealed_secret);
        let new_secret = "rotated-secret-9876543210";
        import_sealed(f.store(), &catalog_with(client(new_secret, false)), Some(&key)).await.unwrap();
        let rotated = stored(&f).await;
        assert!(license_api::password::verify(new_secret.into(), Some(rotated.secret_hash.clone())).await);
        assert!(!license_api::password::verify(SECRET.into(), Some(rotated.secret_hash.clone())).await);
        assert_eq!(key.open(&rotated.sealed_secret, &context).unwrap().expose_secret(), new_secret);
    }

    async fn oauth_clients_need_a_sealing_key(setup) {
        let f = Fixture::new(setup).await;
        let before = f.env.dump().await;
        let err = import(f.store(), &catalog_with(client(SECRET, false))).await.unwrap_err().to_string();
        assert!(err.contains("oauth_clients") && err.contains("sealing key"), "{err}");
        assert_eq!(f.env.dump().await, before, "nothing is written");
    }
}
