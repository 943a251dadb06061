//! The generator as users run it: reproducible files, exact truth, clear errors.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;

use generator::{Totals, TruthFile};

fn generator() -> Command {
    Command::new(env!("CARGO_BIN_EXE_generator"))
}

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("generator-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn generate(out: &PathBuf, rate: &str, truth: Option<&PathBuf>) {
    let mut cmd = generator();
    cmd.args([
        "--count",
        "3000",
        "--seed",
        "9",
        "--start",
        "2025-08-17T14:00:00",
        "--invalid-ratio",
        "0.05",
    ])
    .args(["--rate", rate, "--partitions", "4", "--output"])
    .arg(out);
    if let Some(t) = truth {
        cmd.arg("--truth").arg(t);
    }
    let status = cmd.output().unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
}

#[test]
fn the_same_seed_and_start_give_the_same_bytes_at_any_rate() {
    let (fast, slow) = (temp("fast.jsonl"), temp("slow.jsonl"));
    generate(&fast, "max", None);
    generate(&slow, "20000", None);
    assert_eq!(std::fs::read(&fast).unwrap(), std::fs::read(&slow).unwrap());
}

/// The truth file equals totals recounted from the file itself, with an
/// independent reading of every line.
#[test]
fn the_truth_is_the_exact_sum_of_the_stream() {
    let (out, truth_path) = (temp("stream.jsonl"), temp("truth.json"));
    generate(&out, "max", Some(&truth_path));
    let truth: TruthFile = serde_json::from_slice(&std::fs::read(&truth_path).unwrap()).unwrap();
    let mut recount: BTreeMap<(String, String, i64), Totals> = BTreeMap::new();
    let mut users: BTreeMap<(String, String, i64), BTreeSet<String>> = BTreeMap::new();
    let mut everyone = BTreeSet::new();
    let mut invalid = 0;
    let text = std::fs::read_to_string(&out).unwrap();
    for line in text.lines() {
        let record: serde_json::Value = serde_json::from_str(line).unwrap();
        let partition = record["partition"].as_i64().unwrap();
        assert!((0..4).contains(&partition));
        let value = record["value"].as_str().unwrap();
        let event: serde_json::Value = match serde_json::from_str(value) {
            Ok(v) => v,
            Err(_) => {
                invalid += 1;
                continue;
            }
        };
        let cost = event["cost"].as_f64();
        let kind = event["event"].as_str();
        let ts = event["ts"]
            .as_str()
            .and_then(analytics::time::parse_timestamp_ms);
        let (Some(cost), Some(ts), Some("impression" | "click" | "conversion"), Some(_)) =
            (cost, ts, kind, event["user_id"].as_str())
        else {
            invalid += 1;
            continue;
        };
        if cost < 0.0 {
            invalid += 1;
            continue;
        }
        let key = (
            event["campaign_id"].as_str().unwrap().to_string(),
            event["channel"].as_str().unwrap().to_string(),
            ts / 60_000 * 60_000,
        );
        assert_eq!(
            record["key"].as_str().unwrap(),
            format!("{}|{}", key.0, key.1)
        );
        let t = recount.entry(key.clone()).or_default();
        match kind.unwrap() {
            "impression" => t.impressions += 1,
            "click" => t.clicks += 1,
            _ => t.conversions += 1,
        }
        // Costs have two decimals: cents are exact.
        t.spend_micros += (cost * 100.0).round() as i64 * 10_000;
        // Revenue has up to six: read from its text, exactly.
        if let Some(revenue) = event.get("revenue") {
            t.revenue_micros += analytics::money::decimal_to_micros(&revenue.to_string()).unwrap();
        }
        if kind == Some("impression") {
            let user = event["user_id"].as_str().unwrap().to_string();
            users.entry(key).or_default().insert(user.clone());
            everyone.insert(user);
        }
    }
    assert_eq!(truth.events, 3000);
    assert_eq!(truth.invalid, invalid);
    assert!(
        invalid > 50,
        "some malformed events were mixed in: {invalid}"
    );
    assert_eq!(truth.by_window(), recount);
    assert!(recount.values().map(|t| t.revenue_micros).sum::<i64>() > 0);
    let mut reach = truth.reach_by_window();
    reach.retain(|_, r| *r > 0);
    let recounted: BTreeMap<_, _> = users
        .into_iter()
        .map(|(k, u)| (k, u.len() as u64))
        .collect();
    assert_eq!(reach, recounted);
    assert_eq!(truth.reach, everyone.len() as u64);
    let impressions: i64 = recount.values().map(|t| t.impressions).sum();
    assert!(
        truth.reach < impressions as u64,
        "users return: {} of {impressions}",
        truth.reach
    );
}

#[test]
fn bad_arguments_get_a_message_not_a_panic() {
    for (args, message) in [
        (&["--output", "x", "--rate", "fast"][..], "--rate must be"),
        (&["--output", "x", "--start", "soon"][..], "--start `soon`"),
        (
            &["--output", "x", "--invalid-ratio", "2"][..],
            "--invalid-ratio",
        ),
        (&["--output", "x", "--weights", "1,2"][..], "--weights"),
        (
            &["--output", "x", "--window", "0s"][..],
            "--window `0s`: use a positive duration",
        ),
        (
            &["--output", "x", "--start", "1969-12-31T00:00:00"][..],
            "event times must fall within 2000..2100",
        ),
        (
            &["--output", "x", "--partitions", "2147483647"][..],
            "--partitions 2147483647: use 1 to 100000",
        ),
        (
            &["--count", "1"][..],
            "--brokers HOST:PORT or --output FILE",
        ),
    ] {
        let out = generator().args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}
