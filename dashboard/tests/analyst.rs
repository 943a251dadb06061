//! Reach, revenue, buckets, top N and pacing over a fixture with known
//! truth, made by the current pipeline (pane format 3) around midnight UTC,
//! with its first ten panes emitted again as after a restart:
//!
//! ```sh
//! generator --output logs.jsonl --count 6000 --rate max --seed 7 --start 2025-08-17T23:55:00 \
//!     --invalid-ratio 0.01 --users 2000 --partitions 1 --truth reach-truth.json
//! harness run @pipeline --config transform.yaml --batch-size 500 --input logs.jsonl \
//!     | grep '"topic":"results"' > results.jsonl
//! (cat results.jsonl; head -10 results.jsonl) > reach-results.jsonl
//! ```

mod common;

use std::collections::BTreeMap;

use common::{fixture, Service};
use generator::truth::by_window;
use generator::{Totals, TruthFile, WindowTotals};
use serde_json::Value;

/// 215 panes, then the first 10 again.
const PANES: u64 = 225;
const MIDNIGHT: i64 = 1_755_475_200_000; // 2025-08-18T00:00:00Z
const HOUR: i64 = 3_600_000;

fn truth() -> TruthFile {
    serde_json::from_str(&std::fs::read_to_string(fixture("reach-truth.json")).unwrap()).unwrap()
}

fn service() -> Service {
    Service::start(&fixture("reach-results.jsonl"), PANES)
}

fn json(service: &Service, path: &str) -> Value {
    let (status, body) = service.get(path);
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap()
}

fn totals(v: &Value) -> Totals {
    Totals::from_json(v).expect("the counters")
}

fn int(v: &Value, field: &str) -> i64 {
    v[field]
        .as_i64()
        .unwrap_or_else(|| panic!("{field} in {v}"))
}

fn float(v: &Value, field: &str) -> f64 {
    v[field]
        .as_f64()
        .unwrap_or_else(|| panic!("{field} in {v}"))
}

/// Within 2% of the exact count (and one user, for tiny counts).
fn close(estimate: i64, exact: u64, what: &str) {
    let error = (estimate - exact as i64).unsigned_abs() as f64;
    assert!(
        error <= 1.0 || error / exact as f64 <= 0.02,
        "{what}: reach {estimate}, exactly {exact}"
    );
}

#[test]
fn revenue_is_exact_and_reach_is_a_union_within_its_bound() {
    let service = service();
    let truth = truth();
    let windows = json(&service, "/api/windows");
    let list = windows.as_array().unwrap();
    assert_eq!(
        by_window(&serde_json::from_value::<Vec<WindowTotals>>(windows.clone()).unwrap()),
        truth.by_window(),
        "counters and revenue, to the micro-unit"
    );
    let exact = truth.reach_by_window();
    for w in list {
        let key = (
            w["campaign"].as_str().unwrap().to_string(),
            w["channel"].as_str().unwrap().to_string(),
            int(w, "window_start"),
        );
        close(int(w, "reach"), exact[&key], &format!("{key:?}"));
        let (spend, revenue) = (float(w, "spend"), float(w, "revenue"));
        let roas = if spend == 0.0 { 0.0 } else { revenue / spend };
        assert!((float(w, "ROAS") - roas).abs() < 1e-9, "{w}");
        let reach = float(w, "reach");
        let frequency = if reach == 0.0 {
            0.0
        } else {
            float(w, "impressions") / reach
        };
        assert!((float(w, "frequency") - frequency).abs() < 1e-9, "{w}");
    }
    let summary = json(&service, "/api/summary");
    let all: Totals = truth.by_window().values().sum();
    assert_eq!(totals(&summary), all);
    assert!(all.revenue_micros > 0);
    close(int(&summary, "reach"), truth.reach, "the whole range");
    let summed: u64 = exact.values().sum();
    assert!(
        (int(&summary, "reach") as u64) < summed / 2,
        "a union, not a sum: {} against {summed} summed",
        int(&summary, "reach")
    );
    let aov = all.revenue_micros as f64 / 1e6 / all.conversions as f64;
    assert!((float(&summary, "AOV") - aov).abs() < 1e-9, "{summary}");
    // The repeated panes were dropped, and the union would not have grown.
    assert!(service
        .get("/metrics")
        .1
        .contains("dashboard_panes_duplicate_total 10\n"));
}

#[test]
fn buckets_roll_windows_up_by_hour_and_day_in_any_zone() {
    let service = service();
    let truth = truth();
    // UTC hours: the stream crosses midnight.
    let hours = json(&service, "/api/windows?bucket=1h");
    let mut want: BTreeMap<(String, String, i64), Totals> = BTreeMap::new();
    for ((campaign, channel, start), t) in truth.by_window() {
        let sum = want
            .entry((campaign, channel, start.div_euclid(HOUR) * HOUR))
            .or_default();
        *sum = [*sum, t].iter().sum();
    }
    let rows = hours.as_array().unwrap();
    assert_eq!(
        by_window(&serde_json::from_value::<Vec<WindowTotals>>(hours.clone()).unwrap()),
        want
    );
    assert!(rows.iter().any(|r| int(r, "window_start") == MIDNIGHT));
    for r in rows {
        assert_eq!(int(r, "window_end") - int(r, "window_start"), HOUR, "{r}");
        let windows: Vec<u64> = truth
            .windows
            .iter()
            .filter(|w| {
                w.campaign == r["campaign"]
                    && w.channel == r["channel"]
                    && (int(r, "window_start")..int(r, "window_end")).contains(&w.window_start)
            })
            .map(|w| w.reach)
            .collect();
        let reach = int(r, "reach") as u64;
        assert!(
            reach >= windows.iter().copied().max().unwrap_or(0) * 98 / 100
                && reach <= windows.iter().sum::<u64>() * 102 / 100,
            "{r}: a union of {windows:?}"
        );
    }

    // Days: two in UTC, one in Tokyo (08:55 to 09:03 there).
    let utc = json(&service, "/api/summary?bucket=1d");
    let days = utc["buckets"].as_array().unwrap();
    assert_eq!(
        days.iter()
            .map(|d| (int(d, "window_start"), int(d, "window_end")))
            .collect::<Vec<_>>(),
        [
            (MIDNIGHT - 24 * HOUR, MIDNIGHT),
            (MIDNIGHT, MIDNIGHT + 24 * HOUR)
        ]
    );
    let split: Vec<Totals> = days.iter().map(totals).collect();
    assert_eq!(split.iter().sum::<Totals>(), totals(&utc));
    let tokyo = json(&service, "/api/summary?bucket=1d&tz=Asia/Tokyo");
    let day = &tokyo["buckets"].as_array().unwrap()[..];
    assert_eq!(day.len(), 1, "{tokyo}");
    // Midnight in Tokyo is 15:00 UTC the day before.
    assert_eq!(int(&day[0], "window_start"), MIDNIGHT - 9 * HOUR);
    assert_eq!(totals(&day[0]), totals(&utc));
    assert_eq!(int(&day[0], "reach"), int(&utc, "reach"));
    // Newfoundland's hours start at half past in UTC.
    let half = json(&service, "/api/summary?bucket=1h&tz=America/St_Johns");
    let starts: Vec<i64> = half["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| int(b, "window_start").rem_euclid(HOUR))
        .collect();
    assert!(
        !starts.is_empty() && starts.iter().all(|&s| s == HOUR / 2),
        "{half}"
    );

    for (query, message) in [
        (
            "bucket=2d",
            "`bucket` must be 1w, 1mo or a span from 1s to 1d",
        ),
        (
            "from=2025-08-18&to=2025-08-17",
            "`from` (2025-08-18T00:00:00Z) is after `to` (2025-08-17T23:59:59Z)",
        ),
        ("bucket=1m&from=0", "more than 100000 buckets"),
        ("bucket=1d&tz=Mars/Olympus", "is not a time zone"),
    ] {
        let (status, body) = service.get(&format!("/api/windows?{query}"));
        assert_eq!(status, 400, "{query}: {body}");
        assert!(body.contains(message), "{query}: {body}");
    }
}

#[test]
fn top_ranks_campaigns_and_channels_by_any_figure() {
    let service = service();
    let truth = truth();
    let mut per_campaign: BTreeMap<String, Totals> = BTreeMap::new();
    for ((campaign, _, _), t) in truth.by_window() {
        let sum = per_campaign.entry(campaign).or_default();
        *sum = [*sum, t].iter().sum();
    }
    let roas = |t: &Totals| t.revenue_micros as f64 / t.spend_micros as f64;
    let mut ranked: Vec<(&String, f64)> = per_campaign.iter().map(|(c, t)| (c, roas(t))).collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
    let top = json(&service, "/api/top?by=ROAS&n=2");
    let rows = top.as_array().unwrap();
    assert_eq!(rows.len(), 2);
    for (row, (campaign, roas)) in rows.iter().zip(&ranked) {
        assert_eq!(row["campaign"], campaign.as_str());
        assert!((float(row, "ROAS") - roas).abs() < 1e-9, "{row}");
        assert_eq!(totals(row), per_campaign[*campaign]);
    }
    let channels = json(
        &service,
        "/api/top?dimension=channel&by=reach&order=asc&n=10",
    );
    let reach: Vec<i64> = channels
        .as_array()
        .unwrap()
        .iter()
        .map(|r| int(r, "reach"))
        .collect();
    assert_eq!(reach.len(), 4);
    assert!(reach.windows(2).all(|w| w[0] <= w[1]), "{reach:?}");
    let (status, body) = service.get("/api/top?by=likes");
    assert_eq!(status, 400);
    assert!(
        body.contains("rank by one of impressions, clicks"),
        "{body}"
    );
}

/// `/api/pacing` against the truth, for days starting at `day_start`:
/// paced from the day's start, or from the stream's first window when the
/// stream began later that day.
fn check_pacing(service: &Service, day_start: i64, zone: &str) {
    let truth = truth();
    let first_window = truth.windows.iter().map(|w| w.window_start).min().unwrap();
    let pacing = json(service, "/api/pacing");
    let rows = pacing.as_array().unwrap();
    // transform.yaml gives the three campaigns budgets.
    assert_eq!(rows.len(), 3, "{pacing}");
    for p in rows {
        let (now, day) = (int(p, "now"), int(p, "day_start"));
        assert_eq!(
            (day, int(p, "day_end")),
            (day_start, day_start + 24 * HOUR),
            "{p}"
        );
        assert_eq!(p["time_zone"], zone);
        let spent: i64 = truth
            .windows
            .iter()
            .filter(|w| w.campaign == p["campaign"] && (day..=now).contains(&w.window_start))
            .map(|w| w.totals.spend_micros)
            .sum();
        assert_eq!(int(p, "spend_micros"), spent, "{p}");
        let paced_from = first_window.clamp(day, now);
        assert_eq!(int(p, "paced_from"), paced_from, "{p}");
        let share = (now - paced_from) as f64 / (24 * HOUR) as f64;
        let expected = (int(p, "daily_budget_micros") as f64 * share).round() as i64;
        assert_eq!(int(p, "expected_micros"), expected, "{p}");
        assert_eq!(
            int(p, "projected_micros"),
            (spent as f64 / share).round() as i64,
            "{p}"
        );
        assert!(p["in_flight"].as_bool().unwrap());
    }
}

#[test]
fn pacing_holds_spend_today_against_the_daily_budget() {
    let service = service();
    // The stream crosses midnight UTC: the new day has only its minutes.
    check_pacing(&service, MIDNIGHT, "UTC");
    let metrics = service.get("/metrics").1;
    assert!(
        metrics.contains("dashboard_campaign_daily_budget{campaign=\"spring_sale\"} 250000.0\n"),
        "{metrics}"
    );
    assert!(metrics.contains("# TYPE dashboard_campaign_reach_1h gauge"));
}

#[test]
fn pacing_follows_the_days_of_the_accounts_time_zone() {
    // Newfoundland is 2:30 behind UTC in August: its day began at 02:30
    // UTC the day before, and holds the whole stream, which is paced from
    // its first window.
    let service = Service::start_with(
        &fixture("reach-results.jsonl"),
        PANES,
        &["--pacing-tz", "America/St_Johns"],
    );
    check_pacing(
        &service,
        MIDNIGHT - 24 * HOUR + 5 * HOUR / 2,
        "America/St_Johns",
    );
}
