//! `license-server device …` and `license-server user …` as support uses them on the embedded store:
//! list and free a device the License API activated, set a user's password (from standard input, and
//! generated) that the License API then accepts instead of the old one; each change recorded as
//! `cli:<OS user>`, a refused one not at all.

use license_api::client::LicenseClient;
use serde_json::{json, Value};
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

mod support;

use support::BIN;

const CATALOG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/catalog.json");
/// The OS user the commands run as: what their audit records name.
const OPERATOR: &str = "support-ann";
const KEY: &str = "DEMO-0000-0000-0001";

/// Runs `license-server` as [`OPERATOR`] with `stdin` piped in: (success, stdout, stderr).
fn run_with(args: &[&str], stdin: &str) -> (bool, String, String) {
    let mut child = Command::new(BIN)
        .args(args)
        .env("USER", OPERATOR)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run license-server");
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

fn run(args: &[&str]) -> (bool, String, String) {
    run_with(args, "")
}

async fn status(addr: &str, req: http::Request<bytes::Bytes>) -> u16 {
    support::send(addr, req).await.status().as_u16()
}

/// Serves `data` while `f` sends requests through the demo API key's client.
async fn served<F: std::future::Future<Output = ()>>(
    data: &std::path::Path,
    f: impl FnOnce(LicenseClient, String) -> F,
) {
    let public = std::fs::read_to_string(data.join("signing-key.pub.pem")).unwrap();
    let client = LicenseClient::new("demo-api-key", "demo-shared-key-change-me", public);
    let (mut server, addr) = support::serve(data, &[]);
    f(client, addr).await;
    let _ = Command::new("kill").args(["-TERM", &server.id().to_string()]).status();
    let _ = server.wait();
}

fn user_body(hw: &str, password: &str) -> Value {
    json!({"product": "demo-team", "hardware_id": hw, "username": "ann@example.com", "password": password})
}

#[tokio::test]
async fn support_frees_a_device_and_resets_a_password_from_the_command_line() {
    let data: PathBuf = std::env::temp_dir().join(format!("license-server-support-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let d = data.to_str().unwrap();
    assert!(run(&["keygen", "--data", d, "--create", "--bits", "2048"]).0);
    let (ok, _, err) = run(&["import", CATALOG, "--data", d, "--create"]);
    assert!(ok, "{err}");
    served(&data, |client, addr| async move {
        let body = json!({"product": "demo", "hardware_id": "pc-1", "license_key": KEY});
        assert_eq!(status(&addr, client.activate(&body)).await, 200);
    })
    .await;

    let license = ["--data", d, "--company", "demo", "--product", "demo", "--key", KEY];
    let (ok, out, err) = run(&[&["device", "list"][..], &license, &["--json"]].concat());
    assert!(ok, "{err}");
    let page: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(page["devices"][0]["hardware_id"], "pc-1");
    assert_eq!(page["devices"][0]["active"], true);
    let (ok, out, err) = run(&[&["device", "deactivate"][..], &license, &["--hardware-id", "pc-1"]].concat());
    assert!(ok, "{err}");
    assert_eq!(out, "deactivated pc-1\n");
    let (ok, _, err) = run(&[&["device", "deactivate"][..], &license, &["--hardware-id", "pc-1"]].concat());
    assert!(!ok && err.contains("license_not_active"), "{err}");
    let (ok, out, _) = run(&[&["device", "list"][..], &license].concat());
    assert!(ok && out.contains("pc-1 inactive"), "{out}");

    let set = [
        "user",
        "set-password",
        "--data",
        d,
        "--company",
        "demo",
        "--email",
        "ann@example.com",
    ];
    let (ok, out, err) = run_with(&[&set[..], &["--password-stdin"]].concat(), "support-set-1\n");
    assert!(ok, "{err}");
    assert!(!out.contains("support-set-1"), "{out}");
    let (ok, _, err) = run(&[&set[..], &["--password-stdin"]].concat());
    assert!(!ok && err.contains("no password on standard input"), "{err}");
    served(&data, |client, addr| async move {
        assert_eq!(
            status(&addr, client.activate(&user_body("ann-1", "demo-password"))).await,
            400
        );
        assert_eq!(
            status(&addr, client.activate(&user_body("ann-1", "support-set-1"))).await,
            200
        );
    })
    .await;
    let (ok, out, err) = run(&[&set[..], &["--generate", "--json"]].concat());
    assert!(ok, "{err}");
    let generated = serde_json::from_str::<Value>(&out).unwrap()["generated_password"]
        .as_str()
        .unwrap()
        .to_owned();
    let (ok, _, err) = run(&[
        "user",
        "set-password",
        "--data",
        d,
        "--company",
        "demo",
        "--email",
        "nobody@example.com",
        "--generate",
    ]);
    assert!(!ok && err.contains("license_not_found"), "{err}");
    served(&data, |client, addr| async move {
        assert_eq!(
            status(&addr, client.activate(&user_body("ann-2", "support-set-1"))).await,
            400
        );
        assert_eq!(
            status(&addr, client.activate(&user_body("ann-2", &generated))).await,
            200
        );
    })
    .await;

    let actor = format!("cli:{OPERATOR}");
    let (ok, out, err) = run(&["audit", "--data", d, "--company", "demo", "--actor", &actor, "--json"]);
    assert!(ok, "{err}");
    let page: Value = serde_json::from_str(&out).unwrap();
    let actions: Vec<_> = page["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["action"].as_str().unwrap().to_owned(),
                r["subject"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected = [
        ("user.set_password", "user:ann@example.com"),
        ("user.set_password", "user:ann@example.com"),
        ("license.deactivate", "license:demo/key/DEMO-0000-0000-0001"),
    ];
    let expected: Vec<_> = expected.iter().map(|(a, s)| (a.to_string(), s.to_string())).collect();
    // The import's records are the operator's too; the support changes are the newest three.
    assert_eq!(actions[..3], expected[..], "{actions:?}");
    assert!(!out.contains("support-set-1"));
    assert_eq!(page["records"][2]["detail"]["via"], "management");

    // The commands sign nothing, so they read no signing key: an unreadable one does not stop them.
    std::fs::write(data.join("signing-key.pem"), "not a key").unwrap();
    let (ok, out, err) = run(&[&["device", "list"][..], &license].concat());
    assert!(ok && out.contains("pc-1 inactive"), "{out}{err}");
    let _ = std::fs::remove_dir_all(&data);
}

/// The same commands on a DynamoDB table: what they change is recorded as the operator's, and a repeat
/// that changes nothing records nothing.
#[test]
fn support_commands_work_on_dynamodb() {
    let endpoint = std::env::var("DYNAMODB_ENDPOINT")
        .expect("DYNAMODB_ENDPOINT is not set: run the tests with scripts/test.sh, which starts DynamoDB Local");
    let table = format!("support-cli-{}", std::process::id());
    let dynamo = |args: &[&str]| {
        let out = Command::new(BIN)
            .args(args)
            .args(["--dynamodb-table", &table, "--dynamodb-endpoint", &endpoint])
            .env("USER", OPERATOR)
            .env("AWS_ACCESS_KEY_ID", "local")
            .env("AWS_SECRET_ACCESS_KEY", "local")
            .env("AWS_REGION", "us-east-1")
            .output()
            .expect("run license-server");
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert!(out.status.success(), "{args:?}: {stderr}");
        stdout.into_owned()
    };
    dynamo(&["import", CATALOG, "--create-table"]);
    let blacklist = [
        "device",
        "blacklist",
        "--company",
        "demo",
        "--hardware-id",
        "lost-laptop",
    ];
    assert_eq!(dynamo(&blacklist), "lost-laptop blacklisted\n");
    assert_eq!(dynamo(&blacklist), "lost-laptop already blacklisted\n");
    let list = ["device", "list", "--company", "demo", "--product", "demo", "--key", KEY];
    assert!(dynamo(&list).starts_with("0 of "));
    let reset = [
        "device",
        "reset-transfers",
        "--company",
        "demo",
        "--product",
        "demo",
        "--key",
        KEY,
    ];
    assert_eq!(dynamo(&reset), "transfer count reset to 0 (was 0)\n");
    let set = [
        "user",
        "set-password",
        "--company",
        "demo",
        "--email",
        "bob@example.com",
        "--generate",
    ];
    assert!(dynamo(&set).starts_with("password of bob@example.com set to: "));
    let actor = format!("cli:{OPERATOR}");
    let page: Value = serde_json::from_str(&dynamo(&[
        "audit",
        "--company",
        "demo",
        "--actor",
        &actor,
        "--json",
        "--limit",
        "2",
    ]))
    .unwrap();
    let actions: Vec<_> = page["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(actions, ["user.set_password", "company.blacklist_device"]);
}

/// `import --dry-run` of the unchanged catalog after support blacklisted a device: nothing would be
/// written, and the preview names the entry it keeps because support added it (docs/catalog.md,
/// *Ownership*).
#[test]
fn a_dry_run_names_what_support_added_and_keeps() {
    let data: PathBuf = std::env::temp_dir().join(format!("license-server-support-kept-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let d = data.to_str().unwrap();
    let (ok, _, err) = run(&["import", CATALOG, "--data", d, "--create"]);
    assert!(ok, "{err}");
    let blacklist = [
        "device",
        "blacklist",
        "--data",
        d,
        "--company",
        "demo",
        "--hardware-id",
        "lost-laptop",
    ];
    let (ok, _, err) = run(&blacklist);
    assert!(ok, "{err}");
    let (ok, out, err) = run(&["import", CATALOG, "--data", d, "--dry-run"]);
    assert!(ok, "{err}");
    let kept = "  keep blacklist entry lost-laptop of company demo: support added it\n";
    assert!(out.starts_with(&format!("{kept}dry run of {CATALOG} on ")), "{out}");
    assert!(out.contains(": 0 changes would be written (nothing was)"), "{out}");
    let _ = std::fs::remove_dir_all(&data);
}
