//! The API over a results fixture with known totals: the generator's truth
//! for the events the pipeline turned into those panes, plus ten panes
//! re-emitted as after a restart.

mod common;

use common::{fixture, Service};
use generator::truth::by_window;
use generator::{Totals, TruthFile, WindowTotals};
use serde_json::Value;

/// Panes in the fixture: 99, then the first 10 again.
const PANES: u64 = 109;

fn truth() -> TruthFile {
    serde_json::from_str(&std::fs::read_to_string(fixture("truth.json")).unwrap()).unwrap()
}

fn totals(v: &Value) -> Totals {
    Totals::from_json(v).expect("the counters")
}

fn json(service: &Service, path: &str) -> Value {
    let (status, body) = service.get(path);
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap()
}

#[test]
fn the_api_equals_the_truth() {
    let service = Service::start(&fixture("results.jsonl"), PANES);
    let truth = truth();
    let expected = truth.by_window();

    let windows = json(&service, "/api/windows");
    let got = by_window(&serde_json::from_value::<Vec<WindowTotals>>(windows.clone()).unwrap());
    assert_eq!(got, expected);
    let windows = windows.as_array().unwrap();
    for w in windows {
        for field in [
            "window_end",
            "spend",
            "CPC",
            "CPA",
            "CTR",
            "CVR",
            "final",
            "late_records",
        ] {
            assert!(!w[field].is_null(), "{field} missing in {w}");
        }
        let (spend, conversions) = (
            w["spend_micros"].as_f64().unwrap() / 1e6,
            w["conversions"].as_f64().unwrap(),
        );
        let cpa = if conversions == 0.0 {
            0.0
        } else {
            spend / conversions
        };
        assert!((w["CPA"].as_f64().unwrap() - cpa).abs() < 1e-9, "{w}");
    }

    let summary = json(&service, "/api/summary");
    assert_eq!(totals(&summary), expected.values().sum::<Totals>());
    assert_eq!(summary["windows"].as_u64().unwrap(), expected.len() as u64);

    let filtered = json(&service, "/api/summary?campaign=spring_sale&channel=email");
    let want: Totals = expected
        .iter()
        .filter(|((c, ch, _), _)| c == "spring_sale" && ch == "email")
        .map(|(_, t)| t)
        .sum();
    assert_eq!(totals(&filtered), want);
    assert!(want.impressions > 0);

    let second = *expected
        .keys()
        .map(|(_, _, s)| s)
        .collect::<std::collections::BTreeSet<_>>()
        .iter()
        .nth(1)
        .unwrap();
    let from = json(
        &service,
        &format!("/api/windows?from={second}&campaign=retargeting"),
    );
    let from = from.as_array().unwrap();
    assert!(!from.is_empty());
    assert!(from
        .iter()
        .all(|w| w["window_start"].as_i64().unwrap() >= *second && w["campaign"] == "retargeting"));
    assert_eq!(
        from.len(),
        expected
            .keys()
            .filter(|(c, _, s)| c == "retargeting" && s >= second)
            .count()
    );
    // Timestamps work too (naive = UTC).
    let iso = json(
        &service,
        "/api/summary?from=2025-08-17T14:01:00&to=2025-08-17T14:01:00",
    );
    let want: Totals = expected
        .iter()
        .filter(|((_, _, s), _)| *s == 1_755_439_260_000)
        .map(|(_, t)| t)
        .sum();
    assert_eq!(totals(&iso), want);

    let (status, body) = service.get("/api/windows?from=yesterday");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("`from` must be"), "{body}");

    let (status, metrics) = service.get("/metrics");
    assert_eq!(status, 200);
    assert!(
        metrics.contains("dashboard_panes_read_total 109\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("dashboard_panes_duplicate_total 10\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!("dashboard_windows {}\n", expected.len())),
        "{metrics}"
    );
    assert!(
        metrics.contains("dashboard_clients_connected 0\n"),
        "{metrics}"
    );
    assert_eq!(service.get("/healthz"), (200, "ok\n".to_string()));
    assert_eq!(service.get("/nope").0, 404);
}

/// Live streams are capped: one more page than allowed is told to come back
/// later, and a page that leaves frees its place.
#[test]
fn live_streams_are_capped() {
    let service = Service::start_with(&fixture("results.jsonl"), PANES, &["--max-clients", "1"]);
    let subscribe = || test_kit::open(&service.url("/api/updates")).expect("an answer");
    let (first, mut page) = subscribe();
    assert_eq!(first, 200);
    let mut line = String::new();
    while !line.starts_with("event:hello") && !line.starts_with("event: hello") {
        line.clear();
        page.read_line(&mut line).unwrap();
    }
    let (second, _) = subscribe();
    assert_eq!(second, 503);
    assert!(service
        .get("/metrics")
        .1
        .contains("dashboard_clients_connected 1\n"));
    drop(page);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let (status, _) = subscribe();
        if status == 200 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the place was never freed"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// `ready` is the truth: never before every pane of the file is merged,
/// and the lag never counts less than what is left to merge.
#[test]
fn ready_and_lag_tell_how_much_is_merged() {
    let panes = 60_000u64;
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("many-panes.jsonl");
    let mut text = String::new();
    for i in 0..panes {
        let pane = serde_json::json!({
            "campaign": "c", "channel": "email", "window": "", "window_start": i as i64 * 60_000,
            "window_end": (i as i64 + 1) * 60_000, "impressions": 1, "clicks": 0, "conversions": 0,
            "spend": 0.0, "spend_micros": 0, "CPC": 0.0, "CPA": 0.0, "CTR": 0.0, "CVR": 0.0,
            "first_offset": i, "last_offset": i, "records": 1, "max_event_ts_ms": i as i64 * 60_000,
            "late_records": 0
        });
        let line =
            serde_json::json!({"topic": "results", "partition": 0, "value": pane.to_string()});
        text.push_str(&line.to_string());
        text.push('\n');
    }
    std::fs::write(&path, text).unwrap();
    let service = Service::spawn(&path, &[]);
    let metric = |body: &str, name: &str| -> Option<u64> {
        body.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .map(|v| v.parse().unwrap())
    };
    let mut samples = 0;
    loop {
        // One answer holds all three, read under one lock.
        let (_, body) = service.get("/metrics");
        let ready = metric(&body, "dashboard_ready").unwrap();
        let read = metric(&body, "dashboard_panes_read_total").unwrap();
        // No lag at all until the source has counted what it holds.
        let lag = metric(&body, "dashboard_consumer_lag");
        samples += 1;
        if let Some(lag) = lag {
            assert!(
                read + lag >= panes,
                "{read} panes merged and a lag of {lag}, of {panes}"
            );
        }
        let lag = lag.unwrap_or(u64::MAX);
        if ready == 1 {
            assert_eq!(
                (read, lag),
                (panes, 0),
                "ready before the history was merged"
            );
            break;
        }
    }
    assert!(samples > 1, "never seen reading: make the file larger");
}

#[test]
fn a_bad_results_file_is_named_with_what_is_wrong() {
    for (path, message) in [
        (
            env!("CARGO_TARGET_TMPDIR"),
            "that is a directory; give the file `harness run` wrote",
        ),
        ("/nonexistent/out.jsonl", "no such file"),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_dashboard"))
            .args(["--results-file", path, "--listen", "127.0.0.1:0"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(message), "{stderr}");
    }
}

#[test]
fn with_a_token_only_health_is_open_and_the_api_answers_the_bearer() {
    let token = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("api-token");
    std::fs::write(&token, "api-token-9f2e\n").unwrap();
    let mut service = Service::spawn(
        &fixture("results.jsonl"),
        &["--auth-token-file", token.to_str().unwrap()],
    );
    // Health answered while nothing else did: spawn waits for it.
    for path in [
        "/api/status",
        "/api/windows",
        "/api/summary",
        "/api/updates",
        "/metrics",
        "/app.js",
    ] {
        let (status, body) = service.get(path);
        assert_eq!(status, 401, "{path}: {body}");
        assert!(body.contains("authentication required"), "{path}: {body}");
    }
    // A browser asking for the page is sent to the login form.
    let login = test_kit::try_get_with(&service.url("/"), &[("accept", "text/html")]).unwrap();
    assert_eq!(login.status, 200);
    assert!(login.body.contains("name=\"token\""), "{}", login.body);
    let wrong = test_kit::try_get_with(
        &service.url("/api/windows"),
        &[("authorization", "Bearer api-token-9f2f")],
    )
    .unwrap();
    assert_eq!(wrong.status, 401);

    service.token = Some("api-token-9f2e".into());
    service.wait_for_panes(PANES);
    let windows = json(&service, "/api/windows");
    let got = by_window(&serde_json::from_value::<Vec<WindowTotals>>(windows).unwrap());
    assert_eq!(got, truth().by_window());
    assert_eq!(service.get("/").0, 200);
}

#[test]
fn beyond_loopback_the_dashboard_needs_authentication_or_a_flag() {
    let results = fixture("results.jsonl");
    let anywhere = format!("0.0.0.0:{}", test_kit::free_port());
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_dashboard"))
        .arg("--results-file")
        .arg(&results)
        .args(["--listen", &anywhere])
        .env_remove(http_access::TOKEN_ENV)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "refusing to serve the dashboard on {anywhere} (from --listen) without authentication"
        )) && stderr.contains("--allow-unauthenticated"),
        "{stderr}"
    );
    // Told the network is trusted, it serves there (loopback included).
    let port = test_kit::free_port();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_dashboard"))
        .arg("--results-file")
        .arg(&results)
        .args([
            "--listen",
            &format!("0.0.0.0:{port}"),
            "--allow-unauthenticated",
        ])
        .env_remove(http_access::TOKEN_ENV)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let status = test_kit::wait_for(
        "the dashboard on 0.0.0.0",
        std::time::Duration::from_secs(30),
        || test_kit::try_get(&format!("http://127.0.0.1:{port}/api/status")),
    );
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(status.status, 200);
}
