//! `smoke --invoke-events DIR -- <sam args>`: every API Gateway event of DIR (written by
//! `license-server events`) through `sam local invoke`, in [`events::order`], each answer judged by
//! the outcome its file name records ([`events::expected`], [`events::expected_status`]) and, when
//! signed, verified with the public key.

use super::checks::Expect;
use super::{say, Report};
use crate::events;
use base64::Engine;
use bytes::Bytes;
use http::Response;
use license_api::client::LicenseClient;
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

type Error = Box<dyn std::error::Error + Send + Sync>;

/// Runs every event; returns the failed files. An event `sam` cannot run at all is a failure too.
pub fn run(dir: &Path, sam_args: &[String], public_key: &str) -> Result<Vec<String>, Error> {
    let client = LicenseClient::new("", "", public_key);
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))? {
        let name = entry
            .map_err(|e| format!("cannot read {}: {e}", dir.display()))?
            .file_name();
        let name = name.to_string_lossy().into_owned();
        if events::NEED_IDENTITY_PROVIDER.contains(&name.as_str()) {
            say(format_args!(
                "sam local invoke: skipping {name}: it needs an identity provider the containers cannot reach \
                 (tests/events.rs runs it)"
            ));
        } else if events::NEED_MANAGEMENT_KEY.contains(&name.as_str()) {
            say(format_args!(
                "sam local invoke: skipping {name}: it needs the events' management key in the table                  (tests/events.rs runs it)"
            ));
        } else if name.ends_with(".json") {
            files.push(name);
        }
    }
    if files.is_empty() {
        return Err(format!(
            "no events in {}: write them with `license-server events --out DIR`",
            dir.display()
        )
        .into());
    }
    files.sort_by_key(|f| events::order(f));
    let mut report = Report::default();
    for file in &files {
        let started = Instant::now();
        let verdict = invoke(&dir.join(file), file, sam_args).and_then(|resp| expectation(file).judge(&client, &resp));
        let verdict = verdict.map(|detail| format!("{detail} ({:.1} s)", started.elapsed().as_secs_f64()));
        report.judge(&format!("sam local invoke {} -e {file}", logical_id(file)), verdict);
    }
    say(format_args!(
        "sam local invoke: {} passed, {} failed",
        report.passed,
        report.failed.len()
    ));
    Ok(report.failed)
}

fn expectation(file: &str) -> Expect {
    match events::expected(file) {
        None => Expect::Signed,
        Some(code) => Expect::error(events::expected_status(file), &[code]),
    }
}

/// The template's logical id of the function an event file is for: `check_license-ok.json` →
/// `CheckLicenseFunction` (template.yaml names every function that way).
pub fn logical_id(file: &str) -> String {
    crate::generate::logical_id(file.split('-').next().unwrap_or_default())
}

/// `sam local invoke <id> -e <path> <sam_args>`; the function's answer as a response.
fn invoke(path: &Path, file: &str, sam_args: &[String]) -> Result<Response<Bytes>, String> {
    let out = Command::new("sam")
        .args(["local", "invoke", &logical_id(file), "-e"])
        .arg(path)
        .args(sam_args)
        .output()
        .map_err(|e| format!("cannot run sam: {e}"))?;
    let log = String::from_utf8_lossy(&out.stderr);
    let tail: Vec<&str> = log.lines().rev().take(20).collect();
    let tail = tail.into_iter().rev().collect::<Vec<_>>().join("\n");
    if !out.status.success() {
        return Err(format!("sam local invoke failed ({}):\n{tail}", out.status));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    // The answer is sam's standard output, as one JSON object (its last line when anything precedes it).
    let answer: Value = serde_json::from_str(stdout.trim())
        .or_else(|_| serde_json::from_str(stdout.trim().lines().last().unwrap_or_default()))
        .map_err(|e| format!("the answer is not JSON ({e}): {stdout}\n{tail}"))?;
    response(&answer).map_err(|e| format!("{e}: {answer}"))
}

/// An API Gateway payload v2 answer (`statusCode`, `headers`, `body`, `isBase64Encoded`) as a response.
pub fn response(answer: &Value) -> Result<Response<Bytes>, String> {
    let status = answer["statusCode"].as_u64().ok_or("no statusCode")?;
    let body = answer["body"].as_str().unwrap_or_default();
    let body = if answer["isBase64Encoded"].as_bool() == Some(true) {
        base64::engine::general_purpose::STANDARD
            .decode(body)
            .map_err(|e| format!("body is not base64: {e}"))?
    } else {
        body.as_bytes().to_vec()
    };
    let mut builder = Response::builder().status(u16::try_from(status).map_err(|e| e.to_string())?);
    for (name, value) in answer["headers"].as_object().into_iter().flatten() {
        builder = builder.header(name.as_str(), value.as_str().unwrap_or_default());
    }
    builder.body(Bytes::from(body)).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every event's function is a function of the template, under the logical id `invoke` derives,
    /// built from the binary the event is named after.
    #[test]
    fn every_event_names_a_function_of_the_template() {
        let template = include_str!("../../../template.yaml");
        let events = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../events");
        for entry in std::fs::read_dir(events).unwrap() {
            let file = entry.unwrap().file_name().to_string_lossy().into_owned();
            let id = logical_id(&file);
            let at = template
                .find(&format!("\n  {id}:\n"))
                .unwrap_or_else(|| panic!("{file}: no {id} in template.yaml"));
            let binary = file.split('-').next().unwrap();
            // The resource's block: its lines indented deeper than the resource names.
            let rest = &template[at + 1..];
            let block: Vec<&str> = rest
                .lines()
                .skip(1)
                .take_while(|l| l.is_empty() || l.starts_with("   "))
                .collect();
            assert!(
                block.contains(&format!("        Binary: {binary}").as_str()),
                "{file}: {id} is not built from {binary}"
            );
        }
    }

    #[test]
    fn an_answer_becomes_a_response_with_its_headers_and_decoded_body() {
        let answer = serde_json::json!({"statusCode": 200, "isBase64Encoded": true,
            "headers": {"content-type": "text/plain", "licensesignature": "c2ln"}, "body": "bGljZW5zZV9kZWFjdGl2YXRlZA=="});
        let resp = response(&answer).unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.body().as_ref(), b"license_deactivated");
        assert_eq!(resp.headers()["licensesignature"], "c2ln");
        assert_eq!(response(&serde_json::json!({"body": ""})).unwrap_err(), "no statusCode");
    }
}
