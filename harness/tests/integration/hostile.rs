//! Hostile data cannot stop the pipeline, erase history or lose a record: a
//! seeded stream mixed with 100,000 distinct keys, oversized records and
//! fields, NaN and out-of-range costs, deep nesting, and clocks far ahead
//! and far behind, through the real `harness run @pipeline` and the
//! dashboard reading what it wrote.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use analytics::time::{format_naive, window_start};
use analytics::{enrich, Config, RecordMeta};
use dashboard::service::{serve, Settings};
use dashboard::source::FileSource;
use generator::{Clock, Profile, Stream, Totals, Truth};
use kafka_client::partition_for;
use serde_json::{json, Value};

use crate::common;

const START_MS: i64 = 1_755_439_200_000; // 2025-08-17T14:00:00Z
const PARTITIONS: i32 = 3;
const WINDOW_MS: i64 = 60_000;

#[derive(Default)]
struct Mix {
    lines: Vec<String>,
    /// Every record that must end as a dead letter: its value and kind.
    dead: Vec<(Option<String>, String)>,
    /// The good records' totals per (campaign, channel, window).
    good: BTreeMap<(String, String, i64), Totals>,
}

impl Mix {
    fn push(&mut self, key: &str, value: Value, timestamp_ms: i64) {
        let partition = partition_for(key.as_bytes(), PARTITIONS);
        self.lines.push(
            json!({"partition": partition, "key": key, "value": value, "timestamp": timestamp_ms})
                .to_string(),
        );
    }

    fn bad(&mut self, value: Value, kind: &str) {
        let text = match &value {
            Value::Null => None,
            Value::String(s) => Some(s.clone()),
            other => Some(other.to_string()),
        };
        self.dead.push((text, kind.to_string()));
        self.push("bad|email", value, START_MS + 600_000);
    }

    /// A good impression of its own campaign, counted in the truth.
    fn impression(&mut self, campaign: &str, ts_ms: i64) {
        let value = json!({
            "event_id": format!("{campaign}-{ts_ms}"), "ts": format_naive(ts_ms), "user_id": "u",
            "campaign_id": campaign, "channel": "email", "event": "impression", "cost": 0
        });
        self.push(&format!("{campaign}|email"), value, ts_ms);
        self.good
            .entry((
                campaign.into(),
                "email".into(),
                window_start(ts_ms, WINDOW_MS),
            ))
            .or_default()
            .impressions += 1;
    }
}

fn event(field: &str, value: Value) -> Value {
    let mut e = json!({
        "event_id": "hostile", "ts": "2025-08-17T14:10:00", "user_id": "u",
        "campaign_id": "spring_sale", "channel": "email", "event": "click", "cost": 1.5
    });
    e[field] = value;
    e
}

fn mix() -> Mix {
    let mut mix = Mix::default();
    let profile = Profile {
        invalid_ratio: 0.02,
        ..Profile::default()
    };
    let mut stream = Stream::new(profile.clone(), 11, Clock::Simulated { next_ms: START_MS });
    let mut truth = Truth::new(WINDOW_MS);
    let config = Config::default();
    for i in 0..20_000 {
        let e = stream.next_event();
        truth.add(&e);
        let text = String::from_utf8(e.value.clone()).unwrap();
        if e.counted.is_none() {
            let meta = RecordMeta {
                timestamp_ms: e.ts_ms,
                size_bytes: e.key.len() + e.value.len(),
            };
            let kind = enrich(Some(&e.value), meta, &config)
                .expect_err("the generator's invalid events are invalid")
                .kind;
            mix.dead.push((Some(text.clone()), kind.to_string()));
        }
        mix.push(&e.key, Value::String(text), e.ts_ms);
        if i == 10_000 {
            mix.bad(
                event("campaign_id", json!("x".repeat(60_000))),
                "field_too_long",
            );
            mix.bad(
                event("user_id", json!("u".repeat(150_000))),
                "record_too_large",
            );
            mix.bad(json!("not json ".repeat(35_000)), "record_too_large");
            mix.bad(json!("y".repeat(1 << 20)), "record_too_large");
            mix.bad(event("cost", json!("NaN")), "bad_cost");
            mix.bad(
                json!(event("cost", json!(1)).to_string().replace(":1}", ":NaN}")),
                "invalid_json",
            );
            mix.bad(
                json!(event("cost", json!(1))
                    .to_string()
                    .replace(":1}", ":1e309}")),
                "bad_cost",
            );
            // Skipped without recursion, so found to lack every field.
            let deep = format!("{{\"a\":{}{}}}", "[".repeat(10_000), "]".repeat(10_000));
            mix.bad(json!(deep), "missing_field");
            let deeper = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
            mix.bad(json!(deeper), "not_an_object");
            mix.bad(event("ts", json!("2099-01-01T00:00:00")), "clock_skew");
            mix.bad(Value::Null, "no_value");
            mix.bad(json!(""), "invalid_json");
            // A clock decades behind: a good, late event, older than the
            // dashboard's hot windows, which its history keeps.
            mix.impression("far_past", 978_307_200_000);
        }
    }
    mix.good.extend(truth.file(&profile).by_window());
    for i in 0..100_000i64 {
        mix.impression(&format!("k{i:06}"), START_MS + i * 10);
    }
    mix
}

fn totals(v: &Value) -> Totals {
    Totals::from_json(v).expect("the counters")
}

#[test]
fn a_hostile_stream_loses_nothing_and_stops_nothing() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("hostile");
    std::fs::create_dir_all(&dir).unwrap();
    let (input, output) = (dir.join("in.jsonl"), dir.join("out.jsonl"));
    let mix = mix();
    std::fs::write(&input, mix.lines.join("\n") + "\n").unwrap();

    let run = Command::new(env!("CARGO_BIN_EXE_harness"))
        .args(["run", "@pipeline", "--batch-size", "1000", "--config"])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../transform.yaml"))
        .arg("--input")
        .arg(&input)
        .stdout(std::fs::File::create(&output).unwrap())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "the pipeline stopped: {stderr}");

    // The dead-letter topic holds exactly the bad records, each with its reason.
    let mut dead: Vec<(Option<String>, String)> = Vec::new();
    for line in std::fs::read_to_string(&output).unwrap().lines() {
        let out: Value = serde_json::from_str(line).unwrap();
        if out["topic"] == "logs.dlq" {
            assert!(common::header(&out, "error")
                .as_str()
                .is_some_and(|e| !e.is_empty()));
            dead.push((
                out["value"].as_str().map(String::from),
                common::header(&out, "error.kind")
                    .as_str()
                    .unwrap()
                    .to_string(),
            ));
        }
    }
    let mut expected = mix.dead.clone();
    expected.sort();
    dead.sort();
    assert_eq!(dead.len(), expected.len());
    assert!(dead == expected, "the dead letters are not the bad records");

    // The dashboard equals the truth of the good records, the one decades
    // older than the rest too: its history keeps it.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let source = FileSource {
        path: output.clone(),
        topic: "results".into(),
        dlq_topic: Some("logs.dlq".into()),
    };
    let served = serve(
        &runtime,
        Settings::default(),
        Box::new(source),
        http_access::Listen::new("the dashboard", "--listen", "127.0.0.1:0".parse().unwrap()),
        &http_access::Access::open(),
        stop.clone(),
    )
    .unwrap();
    let url = |path: &str| format!("http://{}{path}", served.address);
    let status = test_kit::wait_for(
        "the dashboard to read the history",
        Duration::from_secs(60),
        || Some(test_kit::get(&url("/api/status")).json()).filter(|s| s["ready"] == true),
    );
    assert_eq!(status["lag"], 0);
    let summary = test_kit::get(&url("/api/summary")).json();
    let mut want = Totals::default();
    let mut windows = 0;
    for t in mix.good.values() {
        want.impressions += t.impressions;
        want.clicks += t.clicks;
        want.conversions += t.conversions;
        want.spend_micros += t.spend_micros;
        want.revenue_micros += t.revenue_micros;
        windows += 1;
    }
    assert_eq!(totals(&summary), want);
    assert_eq!(summary["windows"], windows);
    let dlq = &status["dlq"];
    assert_eq!(dlq["total"], expected.len());
    let mut by_kind: BTreeMap<String, u64> = BTreeMap::new();
    for (_, kind) in &expected {
        *by_kind.entry(kind.clone()).or_default() += 1;
    }
    let shown: BTreeMap<String, u64> = serde_json::from_value(dlq["by_reason"].clone()).unwrap();
    assert_eq!(shown, by_kind);
    assert_eq!(dlq["samples"].as_array().unwrap().len(), 5);
    let metrics = test_kit::get(&url("/metrics")).body;
    assert!(
        metrics.contains(&format!(
            "dashboard_dead_letters_total{{kind=\"record_too_large\"}} {}",
            by_kind["record_too_large"]
        )),
        "{metrics}"
    );
    stop.store(true, Ordering::Relaxed);
    runtime.block_on(served.server).unwrap();
}
