//! The dashboard's history in `harness up`'s data folder: 800 keys over
//! 46 days of event time, `up` killed with SIGKILL during the stream and
//! started again, `results` emptied by its retention: hourly and daily
//! buckets equal the truth exactly, minute windows past their span are
//! gone while their rollups stay, and a restart answers from the history
//! alone.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use generator::{Totals, TruthFile};
use serde_json::Value;

use crate::common::{harness, scratch_data_dir, totals, Up};

const DAY: i64 = 86_400_000;
const HOUR: i64 = 3_600_000;

/// 200 campaigns × 4 channels, 100,000 events, about 46 days from June 1st.
fn stream(truth: &Path) -> Vec<String> {
    let campaigns: Vec<String> = (0..200).map(|i| format!("c{i:03}")).collect();
    [
        "--seed",
        "5",
        "--count",
        "100000",
        // Paced, so that the kill comes while the stream still flows (at
        // `max` the generator is done before the dashboard has a day).
        "--rate",
        "20000",
        "--start",
        "2025-06-01T00:00:00",
        "--simulated-rate",
        "0.04",
        "--invalid-ratio",
        "0.01",
        "--campaigns",
        &campaigns.join(","),
        "--keep-minutes",
        "10d",
        "--retention-time",
        "2s",
        "--truth",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([truth.display().to_string()])
    .collect()
}

/// The truth rolled up by key and bucket (of `size` ms from the epoch).
fn rolled(truth: &TruthFile, size: i64) -> BTreeMap<(String, String, i64), Totals> {
    let mut out: BTreeMap<(String, String, i64), Vec<Totals>> = BTreeMap::new();
    for w in &truth.windows {
        let bucket = w.window_start - w.window_start.rem_euclid(size);
        out.entry((w.campaign.clone(), w.channel.clone(), bucket))
            .or_default()
            .push(w.totals);
    }
    out.into_iter().map(|(k, v)| (k, v.iter().sum())).collect()
}

/// `/api/windows?…` as totals keyed like [`rolled`].
fn listed(up: &Up, query: &str) -> BTreeMap<(String, String, i64), Totals> {
    let rows = up.get(&format!("/api/windows?{query}"));
    rows.as_array()
        .unwrap()
        .iter()
        .map(|w| {
            (
                (
                    w["campaign"].as_str().unwrap().to_string(),
                    w["channel"].as_str().unwrap().to_string(),
                    w["window_start"].as_i64().unwrap(),
                ),
                totals(w),
            )
        })
        .collect()
}

/// Hours and days by key, the daily summary, and reach, against the truth.
fn assert_history_equals(up: &Up, truth: &TruthFile) {
    let days = rolled(truth, DAY);
    assert!(days.len() > 800 * 20, "{} key-days", days.len());
    assert_eq!(listed(up, "bucket=1d"), days, "days by key");
    assert_eq!(listed(up, "bucket=1h"), rolled(truth, HOUR), "hours by key");
    let summary = up.get("/api/summary?bucket=1d");
    let by_day: BTreeMap<i64, Totals> = summary["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| (b["window_start"].as_i64().unwrap(), totals(b)))
        .collect();
    let mut want: BTreeMap<i64, Vec<Totals>> = BTreeMap::new();
    for ((_, _, day), t) in &days {
        want.entry(*day).or_default().push(*t);
    }
    let want: BTreeMap<i64, Totals> = want.into_iter().map(|(d, t)| (d, t.iter().sum())).collect();
    assert!(want.len() >= 40, "{} days of event time", want.len());
    assert_eq!(by_day, want, "the summary's days");
    let reach = summary["reach"].as_u64().unwrap();
    assert!(
        reach.abs_diff(truth.reach) as f64 <= truth.reach as f64 * 0.02,
        "reach {reach}, exactly {}",
        truth.reach
    );
}

/// Waits for the generator's truth and for the dashboard to count it all.
fn wait_for_truth(up: &Up, path: &Path) -> TruthFile {
    let truth: TruthFile = test_kit::wait_for("the truth", Duration::from_secs(300), || {
        serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
    });
    let valid = (truth.events - truth.invalid) as i64;
    test_kit::wait_for("every event counted", Duration::from_secs(300), || {
        let t = totals(&up.get("/api/summary"));
        (t.impressions + t.clicks + t.conversions == valid).then_some(())
    });
    truth
}

#[test]
fn months_of_history_survive_kill_9_and_retention_exactly() {
    let dir = scratch_data_dir("history");
    let truth_path = dir.with_extension("truth.json");
    let _ = std::fs::remove_file(&truth_path);
    let args = stream(&truth_path);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();

    let up = Up::start_in(&dir, &args);
    // Mid-stream: some history is written, the rest is not.
    test_kit::wait_for("a day of history", Duration::from_secs(120), || {
        let s = up.get("/api/summary");
        (s["to"].as_i64()? - s["from"].as_i64()? > DAY).then_some(())
    });
    assert!(!truth_path.exists(), "the stream ended before the kill");
    up.kill_9();

    let up = Up::start_in(&dir, &args);
    let truth = wait_for_truth(&up, &truth_path);
    assert_history_equals(&up, &truth);

    // Minute windows of the last 10 days (--keep-minutes) are listed, each
    // equal to the truth; before, they are gone and say so.
    let newest = truth.windows.iter().map(|w| w.window_start).max().unwrap();
    let listed_windows = listed(&up, "");
    let first_kept = listed_windows.keys().map(|k| k.2).min().unwrap();
    assert!(
        (newest - first_kept) <= 11 * DAY && (newest - first_kept) >= 9 * DAY,
        "minute windows kept from {first_kept}, the newest at {newest}"
    );
    let by_window = truth.by_window();
    for (key, t) in &listed_windows {
        assert_eq!(by_window.get(key), Some(t), "{key:?}");
    }
    let start = truth.windows.iter().map(|w| w.window_start).min().unwrap();
    let response = test_kit::get(&format!(
        "http://{}/api/windows?from={start}&to={}",
        up.address,
        start + HOUR
    ));
    assert_eq!(response.status, 400, "{}", response.body);
    assert!(
        response.body.contains("no longer kept"),
        "{}",
        response.body
    );
    // Retention runs every 5 s: twice, before the stop.
    std::thread::sleep(Duration::from_secs(11));
    up.interrupt();

    // Retention has emptied `results` (2 s after each record, once read):
    // a start now has only the history.
    let consumed = harness(&[
        "topic",
        "consume",
        "results",
        "--data-dir",
        dir.to_str().unwrap(),
    ]);
    let left = consumed.lines().count();
    let up = Up::start_in(&dir, &args);
    let summary: Value = up.get("/api/summary");
    let t = totals(&summary);
    assert_eq!(
        (t.impressions + t.clicks + t.conversions) as u64,
        truth.events - truth.invalid,
        "after retention left {left} panes in results"
    );
    assert!(
        (left as u64) < truth.windows.len() as u64 / 10,
        "results still holds {left} panes"
    );
    assert_history_equals(&up, &truth);
    up.interrupt();
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_file(&truth_path).unwrap();
}
