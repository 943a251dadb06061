//! Alerts fire and clear as the panes say, in event time, and a webhook
//! receives each start and end — after its first answer was an error.
//! The panes come from the transforms' own pane builder.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

use analytics::{Config, Contribution, Kind, PaneBuilder};
use common::Service;
use serde_json::Value;

const MIDNIGHT: i64 = 1_755_475_200_000; // 2025-08-18T00:00:00Z
const MINUTE: i64 = 60_000;

/// One minute of campaign `c`: impressions from 200 users, `clicks` clicks
/// at `click_cost` each, and conversions at `conversion_cost` each.
struct Minute {
    clicks: u32,
    click_cost: i64,
    conversions: u32,
    conversion_cost: i64,
}

/// Appends the panes of `minutes` (one batch each, from minute `from`) to
/// a results file, as `harness run` writes them.
fn append(path: &Path, offset: &mut i64, from: i64, minutes: &[Minute]) {
    let config = Config::from_vars([
        ("CAMPAIGN_C_TARGET_CPA", "10"),
        ("CAMPAIGN_C_DAILY_BUDGET", "1440"),
    ])
    .unwrap();
    let mut builder = PaneBuilder::new(&config);
    let mut out = String::new();
    for (i, m) in minutes.iter().enumerate() {
        let start = MIDNIGHT + (from + i as i64) * MINUTE;
        let mut add = |n: u32, kind: Kind, cost_micros: i64| {
            for u in 0..n {
                builder.add(Contribution {
                    offset: *offset,
                    campaign: "c",
                    channel: "email",
                    kind,
                    ts_ms: start + i64::from(u) * 100,
                    cost_micros,
                    revenue_micros: 0,
                    user_id: &format!("user-{u}"),
                });
                *offset += 1;
            }
        };
        add(200, Kind::Impression, 0);
        add(m.clicks, Kind::Click, m.click_cost);
        add(m.conversions, Kind::Conversion, m.conversion_cost);
        for pane in builder.finish_batch(&config) {
            let record = serde_json::json!({
                "topic": "results", "partition": 0, "key": pane.key(),
                "value": serde_json::to_string(&pane).unwrap(), "headers": {}
            });
            out.push_str(&record.to_string());
            out.push('\n');
        }
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    file.write_all(out.as_bytes()).unwrap();
}

/// A webhook receiver: answers its first request 500, then 200, and hands
/// each body it accepted over.
fn receiver() -> (String, Receiver<Value>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://hook:secret@{}/alerts",
        listener.local_addr().unwrap()
    );
    let (send, bodies) = channel();
    std::thread::spawn(move || {
        for (n, stream) in listener.incoming().enumerate() {
            let mut stream = stream.unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let (mut length, mut authorized, mut line) = (0, false, String::new());
            while reader.read_line(&mut line).unwrap() > 0 && line != "\r\n" {
                let lower = line.to_ascii_lowercase();
                if let Some(v) = lower.strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap();
                }
                // hook:secret
                authorized |= line.trim_end() == "authorization: Basic aG9vazpzZWNyZXQ="
                    || line.trim_end() == "Authorization: Basic aG9vazpzZWNyZXQ=";
                line.clear();
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let status = if n == 0 || !authorized {
                "500 Busy"
            } else {
                "200 OK"
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            );
            if status == "200 OK" {
                let _ = send.send(serde_json::from_slice(&body).unwrap());
            }
        }
    });
    (url, bodies)
}

fn active(service: &Service) -> Vec<(String, String)> {
    let (status, body) = service.get("/api/alerts");
    assert_eq!(status, 200, "{body}");
    let alerts: Vec<Value> = serde_json::from_str(&body).unwrap();
    let mut kinds: Vec<(String, String)> = alerts
        .iter()
        .map(|a| {
            for field in ["campaign", "kind", "message", "since", "value", "threshold"] {
                assert!(!a[field].is_null(), "{field} missing in {a}");
            }
            (
                a["kind"].as_str().unwrap().to_string(),
                a["campaign"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    kinds.sort();
    kinds
}

fn wait_for(service: &Service, want: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let kinds: Vec<String> = active(service).into_iter().map(|(k, _)| k).collect();
        if kinds == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "alerts {kinds:?}, wanted {want:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// 20 clicks a minute at 1 each, and a free conversion.
fn steady() -> Minute {
    Minute {
        clicks: 20,
        click_cost: 1_000_000,
        conversions: 1,
        conversion_cost: 0,
    }
}

/// Few clicks, and a conversion that costs 500.
fn spike() -> Minute {
    Minute {
        clicks: 2,
        click_cost: 1_000_000,
        conversions: 1,
        conversion_cost: 500_000_000,
    }
}

#[test]
fn alerts_fire_and_clear_and_the_webhook_hears_both() {
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("alerts-results.jsonl");
    let _ = std::fs::remove_file(&path);
    let mut offset = 0;
    // Two hours at 20 a minute against a 1,440 daily budget, a CPA of 20
    // against a target of 10; then 10 minutes of few clicks and dear
    // conversions: longer than the 5 minutes a rule must hold.
    let mut minutes: Vec<Minute> = (0..115).map(|_| steady()).collect();
    minutes.extend((0..10).map(|_| spike()));
    append(&path, &mut offset, 0, &minutes);
    let (url, posted) = receiver();
    let service = Service::spawn(&path, &["--alert-webhook", &url]);
    wait_for(
        &service,
        &["cpa_over_target", "ctr_drop", "pacing_over", "spend_spike"],
    );
    let metrics = service.get("/metrics").1;
    assert!(
        metrics.contains("dashboard_alert_active{campaign=\"c\",kind=\"ctr_drop\"} 1\n"),
        "{metrics}"
    );

    // An hour and a half of cheap, clicked traffic: all but pacing clear.
    let calm: Vec<Minute> = (0..90)
        .map(|_| Minute {
            clicks: 20,
            click_cost: 10_000,
            conversions: 20,
            conversion_cost: 0,
        })
        .collect();
    append(&path, &mut offset, 125, &calm);
    wait_for(&service, &["pacing_over"]);

    let mut changes = Vec::new();
    while changes.len() < 7 {
        let change = posted
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("the webhook got {changes:?}"));
        changes.push(change);
    }
    let seen: Vec<(String, String)> = changes
        .iter()
        .map(|c| {
            (
                c["state"].as_str().unwrap().into(),
                c["kind"].as_str().unwrap().into(),
            )
        })
        .collect();
    for kind in ["cpa_over_target", "ctr_drop", "pacing_over", "spend_spike"] {
        assert!(seen.contains(&("start".into(), kind.into())), "{seen:?}");
    }
    for kind in ["cpa_over_target", "ctr_drop", "spend_spike"] {
        assert!(seen.contains(&("end".into(), kind.into())), "{seen:?}");
    }
    let pacing = changes.iter().find(|c| c["kind"] == "pacing_over").unwrap();
    assert_eq!(pacing["campaign"], "c");
    assert!(pacing["value"].as_f64().unwrap() > 1.15, "{pacing}");
    assert_eq!(pacing["threshold"].as_f64().unwrap(), 1.15);
    // The sender counts a change once the receiver has answered it: just
    // after the receiver has it.
    let metrics = test_kit::wait_for("7 changes sent", Duration::from_secs(10), || {
        let metrics = service.get("/metrics").1;
        metrics
            .contains("dashboard_alert_webhook_sent_total 7\n")
            .then_some(metrics)
    });
    assert!(
        metrics.contains("dashboard_alert_webhook_failed_total 0\n"),
        "{metrics}"
    );
}

/// As Alertmanager's `for:`, a rule must hold for a while (5 minutes of
/// event time by default) before its alert starts: 2 minutes of a
/// dropping CTR and a spend spike raise nothing; 8 minutes do.
#[test]
fn a_condition_that_comes_and_goes_raises_no_alert() {
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("alerts-flap.jsonl");
    let _ = std::fs::remove_file(&path);
    let mut offset = 0;
    let mut minutes: Vec<Minute> = (0..115).map(|_| steady()).collect();
    minutes.extend((0..2).map(|_| spike()));
    append(&path, &mut offset, 0, &minutes);
    let service = Service::spawn(&path, &[]);
    // The CPA and the pacing were off all along.
    wait_for(&service, &["cpa_over_target", "pacing_over"]);
    // What the file held is merged, and nothing else started.
    service.wait_for_panes(117);
    std::thread::sleep(Duration::from_millis(1500));
    let kinds: Vec<(String, String)> = active(&service);
    assert_eq!(kinds.len(), 2, "{kinds:?}");
    let more: Vec<Minute> = (0..6).map(|_| spike()).collect();
    append(&path, &mut offset, 117, &more);
    wait_for(
        &service,
        &["cpa_over_target", "ctr_drop", "pacing_over", "spend_spike"],
    );
}

/// A pipeline started at 14:00 has not seen the morning's spend: its day
/// is paced from its first event, so spending at the budget's rate since
/// is on plan, not under it.
#[test]
fn pacing_judges_the_part_of_the_day_the_pipeline_has_seen() {
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("alerts-afternoon.jsonl");
    let _ = std::fs::remove_file(&path);
    let mut offset = 0;
    // 1 a minute: the 1,440 daily budget's rate, for two hours from 14:00.
    let on_plan: Vec<Minute> = (0..120)
        .map(|_| Minute {
            clicks: 1,
            click_cost: 1_000_000,
            conversions: 0,
            conversion_cost: 0,
        })
        .collect();
    append(&path, &mut offset, 14 * 60, &on_plan);
    let service = Service::spawn(&path, &[]);
    service.wait_for_panes(120);
    let (status, body) = service.get("/api/pacing");
    assert_eq!(status, 200, "{body}");
    let rows: Vec<Value> = serde_json::from_str(&body).unwrap();
    let c = &rows[0];
    assert_eq!(c["paced_from"], MIDNIGHT + 14 * 60 * MINUTE, "{c}");
    // Spend until the merge's "now" (its watermark), in the last minutes.
    let now = c["now"].as_i64().unwrap();
    let minutes_until_now = (now - (MIDNIGHT + 14 * 60 * MINUTE)) / MINUTE + 1;
    assert!(minutes_until_now >= 118, "{c}");
    assert_eq!(c["spend_micros"], minutes_until_now * 1_000_000, "{c}");
    let near = |field: &str, want: f64| {
        let got = c[field].as_f64().unwrap();
        assert!(
            (got / want - 1.0).abs() < 0.01,
            "{field} {got}, not about {want}: {c}"
        );
    };
    near("pacing", 1.0);
    near("projected_micros", 1_440_000_000.0);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(active(&service).is_empty(), "{:?}", active(&service));
}

#[test]
fn bad_alert_settings_get_a_message() {
    for (args, message) in [
        (
            &["--alert-pacing", "1.5"][..],
            "--alert-pacing 1.5: use a number from 0 to 1",
        ),
        (
            &["--alert-spend-spike=-1"][..],
            "--alert-spend-spike -1: use a number of 0 or more",
        ),
        (
            &["--alert-webhook", "ftp://x"][..],
            "--alert-webhook's URL is http://HOST:PORT",
        ),
        (
            &["--pacing-tz", "Mars/Olympus"][..],
            "--pacing-tz Mars/Olympus is not a time zone: use an IANA name such as Europe/Paris",
        ),
        (
            &["--alert-for", "2d"][..],
            "--alert-for 2d: use a duration from 0s to 1d, such as 5m",
        ),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_dashboard"))
            .args(["--results-file", "/dev/null", "--listen", "127.0.0.1:0"])
            .args(args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(message), "{stderr}");
    }
}
