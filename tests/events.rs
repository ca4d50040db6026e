//! Every file in `events/` goes through the real Lambda adapter, re-signed for now, against DynamoDB
//! Local seeded with the example catalog (plus a customer account on the test run's OpenID Connect
//! provider, for `sso_url`), and must answer what its name says. The folder and the
//! generator must also agree file by file (apart from date and signature), so an event never rots.

use integration_tests::{oidc, Backend, Fixture, Setup, Transport};
use license_api::catalog::{import_sealed, Catalog};
use license_api::handlers::Endpoint;
use license_api::identity::oidc::ProviderTransport;
use license_api::ids::{CompanyId, CustomerAccountCode};
use license_api::model::CustomerAccountRecord;
use license_api::sealed::SealingKey;
use license_api::secret::ExposeSecret;
use license_api::state::AppState;
use license_api::token::TokenKeys;
use license_server::events::{self, expected, expected_status, is_signed, resign};
use license_server::generate::{functions, DEFAULT_ROUTE, MANAGEMENT};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;

const EVENTS_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../events");

fn without_signature(mut event: Value) -> Value {
    if let Some(h) = event["headers"].as_object_mut() {
        h.remove("date");
        h.remove("authorization");
    }
    event
}

/// The state the events run on: single sign-on on, with the customer account `demo-sso` of the example
/// company tied to the test run's provider (`events::NEED_IDENTITY_PROVIDER`), secrets sealed with
/// `key`; OAuth tokens issued (the token endpoint's events).
async fn with_sso(f: &Fixture, key: SealingKey) -> Arc<AppState> {
    let token_keys = TokenKeys::from_pem(TokenKeys::generate_pem().unwrap().expose_secret()).unwrap();
    let (company, code) = (
        CompanyId::parse("demo").unwrap(),
        CustomerAccountCode::parse("demo-sso").unwrap(),
    );
    let context = CustomerAccountRecord::seal_context(&company, &code);
    let account = CustomerAccountRecord {
        sealed_secret: key.seal(&oidc::CLIENT_SECRET.to_owned().into(), &context).unwrap(),
        company,
        code,
        issuer: oidc::issuer(),
        client_id: oidc::CLIENT_ID.to_owned(),
        redirect_uris: vec![oidc::REDIRECT_URI.to_owned()],
        email_claim: "email".to_owned(),
    };
    f.store().put_customer_account(&account).await.unwrap();
    let app = f
        .env
        .configured_instance(|state| {
            state
                .with_sealing_key(Some(key))
                .with_token_keys(Some(token_keys))
                .with_sso(ProviderTransport::AllowPlainHttp)
        })
        .await;
    app.state.clone()
}

#[tokio::test]
async fn every_event_runs_through_the_handlers() {
    let f = Fixture::new(Setup::new("events", Backend::DynamoDb, Transport::Lambda)).await;
    // The example catalog with the token endpoint's OAuth client, its secret sealed with the key the
    // state opens secrets with.
    let text = events::catalog_with_oauth_client(include_str!("../examples/catalog.json")).unwrap();
    let catalog = Catalog::parse(&text, "examples/catalog.json").unwrap();
    let (key, _) = SealingKey::generate().unwrap();
    import_sealed(f.store(), &catalog, Some(&key)).await.unwrap();
    let state = with_sso(&f, key).await;
    let management_key = license_api::management::keys::record_of(events::MANAGEMENT_TOKEN, "events", true).unwrap();
    let item =
        license_api::store::write::Item::ManagementKey(management_key.company.clone(), management_key.id.clone());
    let image = license_api::store::write::Image::ManagementKey(Box::new(management_key));
    f.store()
        .write(&license_api::store::write::Write::put(item, image))
        .await
        .unwrap();

    let mut committed = BTreeMap::new();
    for entry in std::fs::read_dir(EVENTS_DIR).expect("events/ exists") {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.ends_with(".json"), "unexpected file in events/: {name}");
        let event: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap_or_else(|e| panic!("{name}: {e}"));
        committed.insert(name, event);
    }
    let date = httpdate::fmt_http_date(std::time::SystemTime::now());
    // In the order a session runs them (successes first), which the loop below keeps.
    let in_order = events::generate(events::API_KEY, events::SHARED_KEY, &date);
    let generated: BTreeMap<String, Value> = in_order.iter().map(|(f, e)| ((*f).to_owned(), e.clone())).collect();
    assert_eq!(
        committed.keys().collect::<Vec<_>>(),
        generated.keys().collect::<Vec<_>>(),
        "events/ matches the generator"
    );
    for (name, event) in &committed {
        assert_eq!(
            without_signature(event.clone()),
            without_signature(generated[name].clone()),
            "{name} is what the generator writes"
        );
    }

    for name in in_order.iter().map(|(f, _)| *f) {
        let mut event = committed[name].clone();
        if is_signed(&event) {
            resign(&mut event, events::API_KEY, events::SHARED_KEY, &date);
        }
        let request = lambda_http::request::from_str(&event.to_string())
            .unwrap_or_else(|e| panic!("{name} is not an API Gateway event: {e}"));
        let function = name.split('-').next().unwrap();
        let response = if function == DEFAULT_ROUTE {
            license_api::lambda::serve_default_route(request).await.unwrap()
        } else if function == MANAGEMENT {
            license_api::lambda::serve_management(&state, request).await.unwrap()
        } else {
            let endpoint = Endpoint::for_name(function)
                .filter(|e| e.descriptor().has_function())
                .unwrap_or_else(|| panic!("{name}: no function {function} in the endpoint table"));
            license_api::lambda::serve(endpoint, &state, request).await.unwrap()
        };
        let status = response.status().as_u16();
        let body = match response.body() {
            lambda_http::Body::Text(t) => t.clone(),
            other => format!("{other:?}"),
        };
        assert_eq!(status, expected_status(name), "{name}: {body}");
        if let Some(code) = expected(name) {
            let err: Value = serde_json::from_str(&body).unwrap_or_else(|_| panic!("{name}: error body {body}"));
            assert_eq!(err["code"], code, "{name}: {body}");
            assert_eq!(err["status"].as_u64(), Some(u64::from(status)));
        }
    }
}

/// Adding a function to the endpoint table without its events fails here: each function has a
/// success event (but the `$default` route's, which never succeeds) and an error event.
#[test]
fn every_function_has_a_success_and_an_error_event() {
    let date = httpdate::fmt_http_date(std::time::SystemTime::now());
    let files: Vec<&str> = events::generate(events::API_KEY, events::SHARED_KEY, &date)
        .into_iter()
        .map(|(f, _)| f)
        .collect();
    for function in functions() {
        let of = |ok: bool| {
            files
                .iter()
                .any(|f| f.split('-').next() == Some(function.name) && expected(f).is_none() == ok)
        };
        assert!(
            of(true) || function.name == DEFAULT_ROUTE,
            "no {}-ok.json in server/src/events.rs",
            function.name
        );
        assert!(
            of(false),
            "no {}-<error code>.json in server/src/events.rs",
            function.name
        );
    }
}
