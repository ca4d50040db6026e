//! `--race-slots K`: 2K devices activate the smoke-test license at once, which must have exactly K
//! free slots; exactly K get it and K answer `license_activated_max_times` (the limit holds under
//! concurrency, each request in its own Lambda instance behind `sam local start-api`). The winners
//! are deactivated again.

use super::checks::Expect;
use super::transport::Transport;
use super::Report;
use license_api::client::LicenseClient;
use serde_json::json;

/// `sam local start-api`'s own answer when it could not run the function (never a body of ours: those
/// have a `code`).
fn is_gateway_failure(resp: &http::Response<bytes::Bytes>) -> bool {
    resp.status() == http::StatusCode::BAD_GATEWAY
        && serde_json::from_slice::<serde_json::Value>(resp.body()).ok()
            == Some(json!({"message": "Internal server error"}))
}

/// Runs the race and its cleanup, one report line each.
pub async fn run(
    report: &mut Report,
    transport: &Transport,
    client: &LicenseClient,
    license: (&str, &str, &str),
    slots: usize,
) {
    let (product, key, hardware_id) = license;
    let device =
        |i: usize| json!({"product": product, "hardware_id": format!("{hardware_id}-race-{i}"), "license_key": key});
    let sends = (0..2 * slots).map(|i| transport.send(client.activate(&device(i))));
    let mut answers = futures::future::join_all(sends).await;
    // `sam local` answers its own 502 when it fails to start a request's container (a host port it
    // picked was taken by another container starting at once): the request never reached a function,
    // so it is sent again; the conditional write still decides it against the race's winners.
    for (i, answer) in answers.iter_mut().enumerate() {
        if answer.as_ref().is_ok_and(is_gateway_failure) {
            tracing::warn!(
                device = i,
                "sam local failed to start a container for the request: sending it again"
            );
            *answer = transport.send(client.activate(&device(i))).await;
        }
    }
    let full = Expect::error(400, &["license_activated_max_times"]);
    let (mut won, mut lost, mut other) = (Vec::new(), 0, Vec::new());
    for (i, answer) in answers.into_iter().enumerate() {
        let d = device(i);
        let ident = Expect::License {
            hardware_id: d["hardware_id"].as_str().unwrap_or_default().to_owned(),
            ident: key.to_owned(),
        };
        match answer {
            Ok(resp) if resp.status().is_success() => {
                won.push(d);
                if let Err(why) = ident.judge(client, &resp) {
                    other.push(why);
                }
            }
            Ok(resp) if full.judge(client, &resp).is_ok() => lost += 1,
            Ok(resp) => other.push(full.judge(client, &resp).unwrap_err()),
            Err(e) => other.push(e.to_string()),
        }
    }
    let name = format!("race: {} concurrent activations, {slots} free slots", 2 * slots);
    let verdict = if won.len() == slots && lost == slots && other.is_empty() {
        Ok(format!("{slots} × 200, {slots} × 400 license_activated_max_times"))
    } else {
        Err(format!(
            "{} × 200, {lost} × license_activated_max_times, others: {}; expected {slots} and {slots}",
            won.len(),
            other.join(" | ")
        ))
    };
    report.judge(&name, verdict);
    let deactivated = Expect::Text("license_deactivated");
    for d in won {
        let answer = transport.send(client.deactivate(&d)).await;
        let verdict = answer
            .map_err(|e| e.to_string())
            .and_then(|r| deactivated.judge(client, &r));
        report.judge(
            &format!("race cleanup: POST deactivate_license {}", d["hardware_id"]),
            verdict,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(status: u16, body: &str) -> http::Response<bytes::Bytes> {
        http::Response::builder()
            .status(status)
            .body(bytes::Bytes::from(body.to_owned()))
            .unwrap()
    }

    #[test]
    fn only_the_gateways_own_failure_is_sent_again() {
        assert!(is_gateway_failure(&resp(502, r#"{"message":"Internal server error"}"#)));
        let ours = r#"{"status":502,"code":"server_error","message":"Internal server error"}"#;
        assert!(!is_gateway_failure(&resp(502, ours)));
        assert!(!is_gateway_failure(&resp(
            500,
            r#"{"message":"Internal server error"}"#
        )));
        assert!(!is_gateway_failure(&resp(
            400,
            r#"{"message":"Internal server error"}"#
        )));
    }
}
