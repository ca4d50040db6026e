//! Offline request files in OAuth mode (SPEC §6.2, §6.3; issue 16 item 4): a file naming `client_id`
//! instead of `api_key` is signed with the OAuth client's secret (or, for a v2 deactivation, with the
//! `client_id` itself, as a widely deployed client does), is refused with the codes an API key's file
//! gets in the same situation, and its answer's `offline_signature` is keyed with the client secret.

use bytes::Bytes;
use integration_tests::fixtures::{key_body, key_file, KEY_PRODUCT, SHARED_KEY, USER_PRODUCT};
use integration_tests::{assert_error, Fixture, Instance};
use license_api::auth::verify_hmac_base64;
use license_api::client::LicenseClient;
use license_api::ids::CompanyId;
use license_api::offline::file::{self, FileKey, RequestFile, Shape};
use license_api::offline::payload::{v1_message, Kind};
use license_api::sealed::SealingKey;
use license_api::secret::{ExposeSecret, SecretString};
use license_api::token::{AccessClaims, TokenKeys};
use std::time::SystemTime;

const ACTIVATE: &str = "/api/v4/activate_offline";
const DEACTIVATE: &str = "/api/v4/deactivate_offline";
const CLIENT: &str = "ci-rw";

/// A file of `kind` for license `key` of product `kp`, naming OAuth client `client` instead of an API key.
fn client_file(kind: Kind, client: &str, key: &str, hw: &str, request_id: &str) -> RequestFile {
    let mut file = RequestFile {
        api_key: FileKey::ClientId(client.into()),
        ..key_file(kind, KEY_PRODUCT, key, hw, Some(request_id))
    };
    if kind == Kind::Deactivation {
        // What a deactivation reports travels in the signed span too.
        file.extra.insert("consumptions".into(), 0.into());
    }
    file
}

/// The fixture with OAuth clients of company `c1`: `ci-rw` (full), `ci-ro` (read-only), `ci-team`
/// (restricted to the user-based product), `ci-revoked`; and of company `c2`: `ci-other`. The instance
/// opens their secrets with the sealing key and accepts bearer tokens.
struct OAuthOffline {
    f: Fixture,
    app: Instance,
    secret: String,
    tokens: TokenKeys,
    sealing_text: SecretString,
    token_pem: SecretString,
}

async fn oauth_offline(setup: integration_tests::Setup) -> OAuthOffline {
    let f = Fixture::new(setup).await;
    let (sealing, sealing_text) = SealingKey::generate().unwrap();
    let secret = f.put_oauth_client(CLIENT, &sealing, |_| {}).await;
    f.put_oauth_client("ci-ro", &sealing, |c| c.read_only = true).await;
    let team = integration_tests::fixtures::product_code(USER_PRODUCT);
    f.put_oauth_client("ci-team", &sealing, |c| c.products = vec![team])
        .await;
    f.put_oauth_client("ci-revoked", &sealing, |c| c.revoked = true).await;
    let other = CompanyId::parse("c2").unwrap();
    f.store().put_company(&other, &Default::default()).await.unwrap();
    f.put_oauth_client("ci-other", &sealing, |c| c.company = other).await;
    let token_pem = TokenKeys::generate_pem().unwrap();
    let mut o = OAuthOffline {
        app: f.env.instance().await,
        f,
        secret,
        tokens: TokenKeys::from_pem(token_pem.expose_secret()).unwrap(),
        sealing_text,
        token_pem,
    };
    o.app = o.instance().await;
    o
}

impl OAuthOffline {
    /// Another instance that opens client secrets with the sealing key and accepts bearer tokens.
    async fn instance(&self) -> Instance {
        let sealing = SealingKey::from_text(self.sealing_text.expose_secret()).unwrap();
        let tokens = TokenKeys::from_pem(self.token_pem.expose_secret()).unwrap();
        self.f
            .env
            .configured_instance(|state| state.with_sealing_key(Some(sealing)).with_token_keys(Some(tokens)))
            .await
    }

    /// The upload of `text` to `path`, authenticated with the fixture's API key.
    async fn upload(&self, path: &str, text: &str) -> http::Response<Bytes> {
        self.app
            .send(self.f.client.upload(path, "text/plain", text.to_owned()))
            .await
    }

    /// What a device holding client `CLIENT` checks an answer with: its id and secret.
    fn device(&self) -> LicenseClient {
        self.app.client(CLIENT, &self.secret)
    }
}

fn dated(mut file: RequestFile, shape: Shape) -> RequestFile {
    if shape == Shape::JavaScript {
        file.date = file::javascript_date(SystemTime::now());
    }
    file
}

integration_tests::matrix! {
// Both SDK shapes (v2 wrapped, Python and JavaScript) and v1 flat, signed with the client secret,
// activate; the answer's offline_signature verifies with the client secret over the client_id. Uploaded
// with the API key's signature or, for the last one, with the client's own bearer token.
async fn files_signed_with_the_client_secret_activate(setup) {
    let o = oauth_offline(setup).await;
    let license = o.f.key_license("OAUTH-A", |l| l.max_activations = 10).await;
    let shapes = [Shape::PythonActivation, Shape::JavaScript, Shape::V1];
    for (i, shape) in shapes.into_iter().enumerate() {
        let hw = format!("oa-{i}");
        let file = dated(client_file(Kind::Activation, CLIENT, "OAUTH-A", &hw, &format!("oa-{i}")), shape);
        let text = file.encode(shape, &o.secret);
        let resp = o.upload(ACTIVATE, &text).await;
        let object = o
            .device()
            .verify_offline_license(&resp, &hw, "OAUTH-A")
            .unwrap_or_else(|e| panic!("{shape:?}: {e}: {}", String::from_utf8_lossy(resp.body())));
        assert_eq!(object["request_id"], format!("oa-{i}"));
        // Keyed with the client secret, not the uploader's shared key.
        let message = v1_message(object["date"].as_str().unwrap(), "OAUTH-A", &hw, CLIENT);
        let signature = object["offline_signature"].as_str().unwrap();
        assert!(!verify_hmac_base64(SHARED_KEY, message.as_bytes(), signature));
    }
    // The uploader authenticated by the client's bearer token.
    let token = o.tokens.issue(&AccessClaims::new(CLIENT, "c1", false, unix_now()));
    let file = client_file(Kind::Activation, CLIENT, "OAUTH-A", "oa-bearer", "oa-bearer");
    let text = file.encode(Shape::JavaScript, &o.secret);
    let mut req = o.f.client.upload(ACTIVATE, "text/plain", text);
    req.headers_mut().remove("date");
    req.headers_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    let resp = o.app.send(req).await;
    o.device()
        .verify_offline_license(&resp, "oa-bearer", "OAUTH-A")
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(resp.body())));
    assert_eq!(o.f.license_now(&license).await.times_activated, 4);
    // An activation signed with the client_id as key is not one: only deactivations may be.
    let file = client_file(Kind::Activation, CLIENT, "OAUTH-A", "oa-x", "oa-x");
    let text = file.encode(Shape::PythonActivation, CLIENT);
    assert_error(&o.upload(ACTIVATE, &text).await, 400, "signature_mismatch");
    assert_eq!(o.f.license_now(&license).await.times_activated, 4);
}

// Deactivations: v2 in both SDK shapes signed with the client_id (what one SDK does) and with the
// secret, v1 flat and bare signed with the secret. A v1 file signed with the client_id is refused.
async fn deactivation_files_signed_with_the_client_id_or_the_secret(setup) {
    let o = oauth_offline(setup).await;
    let license = o.f.key_license("OAUTH-D", |l| l.max_activations = 10).await;
    let cases = [
        (Shape::PythonDeactivation, CLIENT.to_owned()),
        (Shape::JavaScript, CLIENT.to_owned()),
        (Shape::PythonDeactivation, o.secret.clone()),
        (Shape::JavaScript, o.secret.clone()),
        (Shape::V1, o.secret.clone()),
        (Shape::BareDeactivation, o.secret.clone()),
    ];
    for (i, (shape, key)) in cases.iter().enumerate() {
        let hw = format!("od-{i}");
        assert_eq!(o.app.send(o.f.client.activate(&key_body("OAUTH-D", &hw))).await.status(), 200);
        let text = dated(client_file(Kind::Deactivation, CLIENT, "OAUTH-D", &hw, &format!("od-{i}")), *shape).encode(*shape, key);
        let resp = o.upload(DEACTIVATE, &text).await;
        assert_eq!(resp.status(), 200, "{shape:?} #{i}: {}", String::from_utf8_lossy(resp.body()));
        assert_eq!(resp.body().as_ref(), b"license_deactivated");
    }
    assert_eq!(o.f.device_counts(&license).await, (0, cases.len()));
    // v1 signs a message, not the file: the client_id as its key is not accepted.
    assert_eq!(o.app.send(o.f.client.activate(&key_body("OAUTH-D", "od-v1"))).await.status(), 200);
    for shape in [Shape::V1, Shape::BareDeactivation] {
        let text = client_file(Kind::Deactivation, CLIENT, "OAUTH-D", "od-v1", "od-v1").encode(shape, CLIENT);
        assert_error(&o.upload(DEACTIVATE, &text).await, 400, "signature_mismatch");
    }
    assert_eq!(o.f.device_counts(&license).await.0, 1, "the v1 device is still active");
}

// Each refusal an API key's file gets, for a client's file: the wrong secret, a revoked, unknown or
// other company's client, a read-only client, a client restricted to another product. Nothing changes.
async fn client_files_are_refused_like_api_key_files(setup) {
    let o = oauth_offline(setup).await;
    let license = o.f.key_license("OAUTH-R", |l| l.max_activations = 10).await;
    let refused = |client: &'static str, key: String, code: &'static str| (client, key, code);
    let cases = [
        refused(CLIENT, "not-the-secret".into(), "signature_mismatch"),
        refused(CLIENT, SHARED_KEY.into(), "signature_mismatch"),
        refused("ci-revoked", "ci-revoked-secret".into(), "revoked_api_key"),
        refused("ci-nobody", "ci-nobody-secret".into(), "invalid_api_key"),
        refused("ci-other", "ci-other-secret".into(), "invalid_api_key"),
        refused("ci-ro", "ci-ro-secret".into(), "read_only_api_key"),
        refused("ci-team", "ci-team-secret".into(), "api_key_product_not_allowed"),
    ];
    for (client, key, code) in &cases {
        for shape in [Shape::PythonActivation, Shape::V1] {
            let text = client_file(Kind::Activation, client, "OAUTH-R", "or-1", "or-1").encode(shape, key);
            assert_error(&o.upload(ACTIVATE, &text).await, 400, code);
        }
    }
    // The same refusals for the API key's own file with a bad signature: one code for both.
    let text = key_file(Kind::Activation, KEY_PRODUCT, "OAUTH-R", "or-1", Some("or-k")).encode(Shape::V1, "not-the-key");
    assert_error(&o.upload(ACTIVATE, &text).await, 400, "signature_mismatch");
    assert_eq!(o.f.device_counts(&license).await, (0, 0));
    // Deactivations too, and the client_id does not stand in for a revoked or read-only client's key.
    assert_eq!(o.app.send(o.f.client.activate(&key_body("OAUTH-R", "or-1"))).await.status(), 200);
    for (client, code) in [("ci-revoked", "revoked_api_key"), ("ci-ro", "read_only_api_key"), ("ci-other", "invalid_api_key")] {
        let text = client_file(Kind::Deactivation, client, "OAUTH-R", "or-1", "or-d").encode(Shape::JavaScript, client);
        assert_error(&o.upload(DEACTIVATE, &text).await, 400, code);
    }
    assert_eq!(o.f.device_counts(&license).await, (1, 1));
}

// A deployment without a sealing key cannot read client secrets: a client's file gets a
// validation_error (never a 5xx) and changes nothing; API key files still work. With the wrong
// sealing key the stored secret does not open: a 500 that says nothing of why.
async fn without_a_sealing_key_a_client_file_is_refused_clearly(setup) {
    let o = oauth_offline(setup).await;
    let license = o.f.key_license("OAUTH-N", |l| l.max_activations = 10).await;
    let unsealed = o.f.env.instance().await;
    let send = |text: String| unsealed.send(o.f.client.upload(ACTIVATE, "text/plain", text));
    let text = client_file(Kind::Activation, CLIENT, "OAUTH-N", "on-1", "on-1").encode(Shape::PythonActivation, &o.secret);
    let resp = send(text).await;
    assert_error(&resp, 400, "validation_error");
    assert!(String::from_utf8_lossy(resp.body()).contains("OAuth"), "{}", String::from_utf8_lossy(resp.body()));
    assert_eq!(o.f.device_counts(&license).await, (0, 0));
    let text = key_file(Kind::Activation, KEY_PRODUCT, "OAUTH-N", "on-2", Some("on-2")).encode(Shape::V1, SHARED_KEY);
    o.f.client.verify_offline_license(&send(text).await, "on-2", "OAUTH-N").unwrap();
    // Another deployment's sealing key (a misconfiguration, not the client's doing): an internal error
    // whose body names no cause, and nothing is written.
    let other_key = SealingKey::generate().unwrap().0;
    let resealed = o.f.env.configured_instance(|state| state.with_sealing_key(Some(other_key))).await;
    let text = client_file(Kind::Activation, CLIENT, "OAUTH-N", "on-3", "on-3").encode(Shape::V1, &o.secret);
    let resp = resealed.send(o.f.client.upload(ACTIVATE, "text/plain", text)).await;
    assert_error(&resp, 500, "internal_error");
    assert!(!String::from_utf8_lossy(resp.body()).contains(CLIENT), "{}", String::from_utf8_lossy(resp.body()));
    assert_eq!(o.f.device_counts(&license).await, (1, 1));
}

// Twelve concurrent uploads of one client-signed file, over three instances, apply it once: the
// activation (signed with the secret) answers every upload with the same license file; the
// deactivation (signed with the client_id) frees the one slot once.
async fn concurrent_uploads_of_one_client_file_apply_once(setup) {
    let o = oauth_offline(setup).await;
    let license = o.f.key_license("OAUTH-C", |l| l.max_activations = 3).await;
    let instances = [o.instance().await, o.instance().await, o.instance().await];
    let activation = client_file(Kind::Activation, CLIENT, "OAUTH-C", "oc-1", "oc-act").encode(Shape::JavaScript, &o.secret);
    let answers = futures::future::join_all((0..12).map(|i| {
        instances[i % 3].send(o.f.client.upload(ACTIVATE, "text/plain", activation.clone()))
    }))
    .await;
    for resp in &answers {
        assert_eq!(resp.status(), 200, "{}", String::from_utf8_lossy(resp.body()));
        assert_eq!(resp.body(), answers[0].body());
    }
    o.device().verify_offline_license(&answers[0], "oc-1", "OAUTH-C").unwrap();
    assert_eq!(o.f.license_now(&license).await.times_activated, 1);
    let deactivation = client_file(Kind::Deactivation, CLIENT, "OAUTH-C", "oc-1", "oc-deact").encode(Shape::PythonDeactivation, CLIENT);
    let answers = futures::future::join_all((0..12).map(|i| {
        instances[i % 3].send(o.f.client.upload(DEACTIVATE, "text/plain", deactivation.clone()))
    }))
    .await;
    for resp in &answers {
        assert_eq!(resp.status(), 200, "{}", String::from_utf8_lossy(resp.body()));
    }
    let now = o.f.license_now(&license).await;
    assert_eq!((now.times_activated, now.released_count), (0, 1), "deactivated once");
}

// Bundles offline in OAuth mode: the activation is signed with the secret and every member's
// offline_signature is keyed with it; the deactivation is signed with the client_id.
async fn bundle_files_in_oauth_mode(setup) {
    let o = oauth_offline(setup).await;
    crate::bundles::bundles(&o.f).await;
    let file = |kind, id: &str| RequestFile {
        product: "kb".into(),
        ..client_file(kind, CLIENT, "KB-1", "ob-1", id)
    };
    let text = file(Kind::Activation, "ob-act").encode(Shape::PythonActivation, &o.secret);
    let resp = o.upload("/api/v4/activate_bundle_offline", &text).await;
    let body = o.f.client.verify_body(&resp).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(resp.body())));
    let answer: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let licenses = answer["licenses"].as_array().unwrap();
    assert_eq!(licenses.len(), 2);
    for l in licenses {
        let message = v1_message(l["date"].as_str().unwrap(), "KB-1", "ob-1", CLIENT);
        assert!(verify_hmac_base64(&o.secret, message.as_bytes(), l["offline_signature"].as_str().unwrap()), "{l}");
    }
    assert_eq!(members_activated(&o.f).await, (1, 1));
    let wrong = file(Kind::Deactivation, "ob-deact").encode(Shape::JavaScript, "not-the-secret");
    assert_error(&o.upload("/api/v4/deactivate_bundle_offline", &wrong).await, 400, "signature_mismatch");
    let text = file(Kind::Deactivation, "ob-deact").encode(Shape::JavaScript, CLIENT);
    let resp = o.upload("/api/v4/deactivate_bundle_offline", &text).await;
    assert_eq!(resp.status(), 200, "{}", String::from_utf8_lossy(resp.body()));
    assert_eq!(members_activated(&o.f).await, (0, 0));
}
}

async fn members_activated(f: &Fixture) -> (i64, i64) {
    let m1 = crate::bundles::member(f, "m1").await.times_activated;
    (m1, crate::bundles::member(f, "m2").await.times_activated)
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}
