//! `license-server management-key …` and `license-server license …` (docs/management.md, *CLI*): a
//! key made on the command line authenticates the served Management API until it is revoked there, and
//! a license's life on the command line is audited as the OS user.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};

mod support;

use support::BIN;

const CATALOG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/catalog.json");

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("license-server-mgmt-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Runs the binary as OS user `ops`: (success, stdout, stderr).
fn run(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .env("USER", "ops")
        .output()
        .expect("run license-server");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// A command's `--json` answer.
fn json(args: &[&str]) -> Value {
    let (ok, out, err) = run(args);
    assert!(ok, "{args:?}: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?} printed no JSON ({e}): {out}"))
}

/// A GET with a bearer token over a plain HTTP/1.1 connection: (status, JSON body).
fn status_of_get(addr: &str, path: &str, token: &str) -> (u16, Value) {
    use std::io::{Read, Write};
    let mut conn = std::net::TcpStream::connect(addr).expect("connect");
    let request = format!(
        "GET /api/management/v1{path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    );
    conn.write_all(request.as_bytes()).expect("send");
    let mut answer = String::new();
    conn.read_to_string(&mut answer).expect("read");
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

fn terminate(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

fn data_with_catalog(name: &str) -> PathBuf {
    let data = scratch(name);
    let d = data.to_str().unwrap();
    let (ok, _, err) = run(&["import", CATALOG, "--data", d, "--create"]);
    assert!(ok, "{err}");
    data
}

#[test]
fn a_license_lives_on_the_command_line_and_is_audited_as_the_os_user() {
    let data = data_with_catalog("license");
    let d = data.to_str().unwrap();
    let on = |cmd: &[&str]| -> Vec<String> {
        let mut args: Vec<String> = cmd.iter().map(|s| (*s).to_owned()).collect();
        args.extend(["--data", d, "--company", "demo", "--json"].map(str::to_owned));
        args
    };
    let call = |cmd: &[&str]| {
        let args = on(cmd);
        json(&args.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let license = ["--product", "demo", "--key", "CLI-1"];
    let created = call(
        &[
            &["license", "create", "--fields", r#"{"max_activations": 2}"#],
            &license[..],
        ]
        .concat(),
    );
    assert_eq!(
        (created["license_key"].as_str(), created["max_activations"].as_i64()),
        (Some("CLI-1"), Some(2))
    );
    assert_eq!(
        call(&[&["license", "disable"], &license[..]].concat())["enabled"],
        false
    );
    assert_eq!(call(&[&["license", "show"], &license[..]].concat())["enabled"], false);
    assert_eq!(call(&[&["license", "enable"], &license[..]].concat())["enabled"], true);
    call(&[&["license", "delete"], &license[..]].concat());
    let args = on(&[&["license", "show"], &license[..]].concat());
    let (ok, _, err) = run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(!ok && err.contains("No license CLI-1 of product demo"), "{err}");

    let (ok, trail, err) = run(&["audit", "--data", d, "--company", "demo", "--actor", "cli:ops"]);
    assert!(ok, "{err}");
    let actions: Vec<&str> = trail
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2))
        .filter(|a| a.starts_with("license."))
        .collect();
    assert_eq!(
        actions,
        ["license.delete", "license.enable", "license.disable", "license.create"],
        "{trail}"
    );
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn a_key_made_on_the_command_line_serves_until_revoked_there() {
    let data = data_with_catalog("keys");
    let d = data.to_str().unwrap();
    assert!(run(&["keygen", "--data", d, "--bits", "2048"]).0);
    let created = json(&[
        "management-key",
        "create",
        "--data",
        d,
        "--company",
        "demo",
        "--name",
        "ci",
        "--json",
    ]);
    let (token, id) = (created["token"].as_str().unwrap(), created["id"].as_str().unwrap());
    let listed = json(&["key", "list", "--data", d, "--company", "demo", "--json"]);
    assert_eq!(listed["items"][0]["name"], "ci");
    assert!(
        listed["items"][0].get("token").is_none(),
        "a listing never shows the token"
    );

    let (mut server, addr) = support::serve(Path::new(&data), &[]);
    let (status, keys) = status_of_get(&addr, "/keys", token);
    assert_eq!((status, keys["items"][0]["id"].as_str()), (200, Some(id)));
    let (ok, _, err) = run(&["management-key", "revoke", "--data", d, "--company", "demo", id]);
    assert!(ok, "{err}");
    let (status, refused) = status_of_get(&addr, "/keys", token);
    assert_eq!((status, refused["code"].as_str()), (401, Some("revoked_api_key")));
    terminate(&mut server);
    let _ = std::fs::remove_dir_all(&data);
}
