//! `POST /api/v4/change_password` (SPEC §9) on every setup: the current password is verified like
//! activation's (a wrong one and an unknown user answer alike), the new argon2id hash is stored and
//! activates while the old one no longer does, a user whose record disables it is refused, the new
//! password is bounded, and of concurrent changes with the same old password exactly one wins.

use integration_tests::fixtures::{PASSWORD, USER_PRODUCT};
use integration_tests::{assert_error, Fixture};
use license_api::handlers::Endpoint;
use license_api::ids::Username;
use license_api::model::LicenseUser;
use serde_json::{json, Value};

fn change(username: &str, password: &str, new_password: &str) -> Value {
    json!({"username": username, "password": password, "new_password": new_password})
}

fn activation(password: &str, hw: &str) -> Value {
    json!({"product": USER_PRODUCT, "hardware_id": hw, "username": "ann@example.com", "password": password})
}

async fn stored_user(f: &Fixture) -> LicenseUser {
    let email = Username::parse("ann@example.com").unwrap();
    f.store().get_user(&f.company, &email).await.unwrap().expect("the user")
}

integration_tests::matrix! {
// The answer is the plain `password_changed`; the stored hash is a new argon2id one, the password no
// longer initial; the new password activates and the old one no longer does.
async fn changes_the_password(setup) {
    let f = Fixture::new(setup).await;
    let license = f.user_license(921, |_| {}).await;
    let user = f.user("ann@example.com", 291, &[(&license, 0)]).await;
    f.store().put_user(&f.company, &LicenseUser { is_initial_password: true, ..user.clone() }).await.unwrap();
    let resp = f.app.send(f.client.call(Endpoint::ChangePassword, &change("ann@example.com", PASSWORD, "a new secret"))).await;
    assert_eq!(resp.status(), 200, "{}", String::from_utf8_lossy(resp.body()));
    assert_eq!(resp.body().as_ref(), b"password_changed");
    let stored = stored_user(&f).await;
    let hash = stored.password_hash.clone().unwrap();
    assert!(hash.starts_with("$argon2id$") && Some(&hash) != user.password_hash.as_ref(), "{hash}");
    assert!(!stored.is_initial_password);
    assert_error(&f.app.send(f.client.activate(&activation(PASSWORD, "HW-1"))).await, 400, "license_not_found");
    let resp = f.app.send(f.client.activate(&activation("a new secret", "HW-1"))).await;
    assert_eq!(resp.status(), 200, "{}", String::from_utf8_lossy(resp.body()));
}

// A wrong password and an unknown user answer the same; a user whose record disables changes is
// refused (after the password is verified) and keeps the password; bad new passwords are refused.
async fn refuses_what_it_must(setup) {
    let f = Fixture::new(setup).await;
    let license = f.user_license(922, |_| {}).await;
    let user = f.user("ann@example.com", 292, &[(&license, 0)]).await;
    let call = |params: Value| f.app.send(f.client.call(Endpoint::ChangePassword, &params));
    let wrong = call(change("ann@example.com", "not her password", "a new secret")).await;
    assert_error(&wrong, 400, "license_not_found");
    let unknown = call(change("nobody@example.com", PASSWORD, "a new secret")).await;
    assert_eq!(unknown.body(), wrong.body());
    assert_error(&call(change("ann@example.com", PASSWORD, "short")).await, 400, "validation_error");
    assert_error(&call(change("ann@example.com", PASSWORD, &"x".repeat(257))).await, 400, "validation_error");
    assert_error(&call(json!({"username": "ann@example.com", "password": PASSWORD})).await, 400, "missing_parameters");
    assert_eq!(stored_user(&f).await.password_hash, user.password_hash, "nothing changed so far");
    f.store().put_user(&f.company, &LicenseUser { password_change_disabled: true, ..user.clone() }).await.unwrap();
    assert_error(&call(change("ann@example.com", PASSWORD, "a new secret")).await, 400, "change_password_not_allowed");
    assert_eq!(stored_user(&f).await.password_hash, user.password_hash);
    let resp = f.app.send(f.client.activate(&activation(PASSWORD, "HW-1"))).await;
    assert_eq!(resp.status(), 200, "{}", String::from_utf8_lossy(resp.body()));
}

// Four changes with the same old password race on separate instances (functions): exactly one wins,
// the others answer `license_not_found` (their old password no longer matches), and the stored hash is
// the winner's.
async fn of_concurrent_changes_exactly_one_wins(setup) {
    let f = Fixture::new(setup).await;
    let license = f.user_license(923, |_| {}).await;
    f.user("ann@example.com", 293, &[(&license, 0)]).await;
    let mut instances = Vec::new();
    for _ in 0..4 {
        instances.push(f.env.instance().await);
    }
    let answers = futures::future::join_all(instances.iter().enumerate().map(|(i, app)| {
        app.send(f.client.call(Endpoint::ChangePassword, &change("ann@example.com", PASSWORD, &format!("new secret {i}"))))
    }))
    .await;
    let winners: Vec<usize> = answers.iter().enumerate().filter(|(_, r)| r.status() == 200).map(|(i, _)| i).collect();
    assert_eq!(winners.len(), 1, "{:?}", answers.iter().map(|r| String::from_utf8_lossy(r.body()).into_owned()).collect::<Vec<_>>());
    for (_, answer) in answers.iter().enumerate().filter(|(i, _)| *i != winners[0]) {
        assert_error(answer, 400, "license_not_found");
    }
    let resp = f.app.send(f.client.activate(&activation(&format!("new secret {}", winners[0]), "HW-1"))).await;
    assert_eq!(resp.status(), 200, "{}", String::from_utf8_lossy(resp.body()));
}
}
