//! The dashboard's own history (`--history-dir`): a kill -9 and a restart
//! count no pane twice and lose none, and read on from where the history
//! stopped; `sqlite3` reads the history as the README says; named ranges
//! (Ads Manager's presets) with the period before; exports that DuckDB and
//! DataSketches read back; a damaged or foreign history is refused with
//! what to do.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine;
use common::{fixture, Service};
use generator::{Totals, TruthFile};
use serde_json::Value;

const DAY: i64 = 86_400_000;
const HOUR: i64 = 3_600_000;
/// 2025-08-14T00:00:00Z.
const FIRST_DAY: i64 = 1_755_129_600_000;

fn tmp(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&path);
    let _ = std::fs::remove_file(&path);
    path
}

fn json(service: &Service, path: &str) -> Value {
    let (status, body) = service.get(path);
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap()
}

fn totals(v: &Value) -> Totals {
    Totals::from_json(v).expect("the counters")
}

fn metric(service: &Service, name: &str) -> u64 {
    let (_, body) = service.get("/metrics");
    body.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no {name}"))
        .parse()
        .unwrap()
}

/// A results line: a pane of `campaign` × email at `start`.
fn pane(campaign: &str, start: i64, impressions: u64, offset: i64) -> String {
    let pane = serde_json::json!({
        "campaign": campaign, "channel": "email", "window": "", "window_start": start,
        "window_end": start + 60_000, "impressions": impressions, "clicks": 1, "conversions": 0,
        "spend": 0.5, "spend_micros": 500_000, "CPC": 0.5, "CPA": 0.0, "CTR": 0.0, "CVR": 0.0,
        "first_offset": offset, "last_offset": offset, "records": impressions + 1,
        "max_event_ts_ms": start + 1_000, "late_records": 0
    });
    serde_json::json!({"topic": "results", "partition": 0, "value": pane.to_string()}).to_string()
}

fn append(path: &Path, lines: &[String]) {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    for line in lines {
        writeln!(file, "{line}").unwrap();
    }
}

#[test]
fn a_kill_9_and_a_restart_count_each_pane_once_and_sqlite3_reads_the_history() {
    let results = tmp("history-results.jsonl");
    std::fs::copy(fixture("results.jsonl"), &results).unwrap();
    let panes = std::fs::read_to_string(&results).unwrap().lines().count() as u64;
    let dir = tmp("history-kill9");
    let args = ["--history-dir", dir.to_str().unwrap()];
    let truth: TruthFile =
        serde_json::from_str(&std::fs::read_to_string(fixture("truth.json")).unwrap()).unwrap();
    let all: Totals = truth.by_window().values().sum();

    let service = Service::start_with(&results, panes, &args);
    assert_eq!(totals(&json(&service, "/api/summary")), all);
    let duplicates = metric(&service, "dashboard_panes_duplicate_total");
    assert!(duplicates > 0, "the fixture re-emits panes");
    drop(service); // SIGKILL

    let last = truth.windows.iter().map(|w| w.window_start).max().unwrap();
    append(
        &results,
        &[pane("late_comer", last + 60_000, 1000, 9_000_000)],
    );
    let service = Service::start_with(&results, panes + 1, &args);
    // Read on from the history's position: the panes before are neither
    // read nor counted again.
    assert_eq!(
        metric(&service, "dashboard_panes_duplicate_total"),
        duplicates
    );
    let after = totals(&json(&service, "/api/summary"));
    assert_eq!(after.impressions, all.impressions + 1000);
    assert_eq!(after.spend_micros, all.spend_micros + 500_000);

    // The README's command and docs/history.md's, while the dashboard
    // runs: their days add up to the totals, as do the keys' rows.
    let file = dir.join("history.sqlite");
    let readme = "SELECT date(window_start/1000, 'unixepoch'), sum(impressions), \
                  sum(spend_micros)/1e6 FROM hour_total GROUP BY 1";
    let forever = "SELECT date(window_start/1000, 'unixepoch') AS day, sum(impressions), \
                   sum(spend_micros)/1e6 FROM (SELECT * FROM day_total UNION ALL SELECT * FROM \
                   hour_total WHERE window_start >= (SELECT value FROM state WHERE name = \
                   'history.days_rolled')) GROUP BY day";
    if let Some(out) = sqlite3(&file, readme) {
        assert_eq!(sqlite3(&file, forever).as_ref(), Some(&out));
        let days: Vec<Vec<&str>> = out.lines().map(|l| l.split('|').collect()).collect();
        let impressions: i64 = days.iter().map(|d| d[1].parse::<i64>().unwrap()).sum();
        assert_eq!(impressions, after.impressions, "{out}");
        assert!(days.iter().all(|d| d[0].starts_with("2025-")), "{out}");
        let keys = sqlite3(
            &file,
            "SELECT sum(impressions), sum(spend_micros) FROM hour",
        )
        .unwrap();
        assert_eq!(
            keys,
            format!("{}|{}", after.impressions, after.spend_micros)
        );
    }
}

/// `sqlite3 FILE SQL`'s output; `None` (the test says it skipped) where
/// sqlite3 is not installed, unless REQUIRE_ANALYST_TOOLS says it must be.
fn sqlite3(file: &Path, sql: &str) -> Option<String> {
    match Command::new("sqlite3").arg(file).arg(sql).output() {
        Ok(out) => {
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "sqlite3 {sql}: {stderr}");
            Some(String::from_utf8_lossy(&out.stdout).trim().to_string())
        }
        Err(e) if std::env::var_os("REQUIRE_ANALYST_TOOLS").is_some() => {
            panic!("sqlite3 (apt install sqlite3): {e}")
        }
        Err(_) => {
            eprintln!("SKIPPED: no sqlite3 (apt install sqlite3)");
            None
        }
    }
}

/// An empty results file.
fn empty() -> PathBuf {
    let path = tmp("history-empty.jsonl");
    std::fs::write(&path, "").unwrap();
    path
}

/// `dashboard ARGS` on an empty file, which must fail: its stderr.
fn refused(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_dashboard"))
        .arg("--results-file")
        .arg(empty())
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{stderr}");
    stderr
}

#[test]
fn a_damaged_or_foreign_history_is_refused_with_what_to_do() {
    let dir = tmp("history-damaged");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("history.sqlite"), vec![7u8; 8192]).unwrap();
    let folder = dir.to_str().unwrap();
    let stderr = refused(&["--history-dir", folder]);
    assert!(
        stderr.contains(folder) && stderr.contains("damaged") && stderr.contains("rebuilds"),
        "{stderr}"
    );

    let foreign = tmp("history-foreign");
    std::fs::create_dir_all(&foreign).unwrap();
    let sql = "CREATE TABLE accounts (id INTEGER)";
    if sqlite3(&foreign.join("history.sqlite"), sql).is_some() {
        let stderr = refused(&["--history-dir", foreign.to_str().unwrap()]);
        assert!(stderr.contains("another SQLite database"), "{stderr}");
    }

    // --fresh deletes it, says so, and starts over.
    let service = Service::spawn(&empty(), &["--history-dir", folder, "--fresh"]);
    assert_eq!(json(&service, "/api/summary")["windows"], 0);

    for (args, says) in [
        (
            &["--keep-minutes", "2h"][..],
            "--keep-minutes 2h: keep minute windows for at least 1d",
        ),
        (&["--fresh"], "--history-dir"),
        (&["--hot", "soon"], "--hot soon: use a span such as 3h"),
    ] {
        let stderr = refused(args);
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
}

/// Four days of campaign `c`: 100, 200, 300 impressions at noon, then 400
/// on the last day and 1 more an hour later each at 13:00 and 14:00 (the
/// watermark, the second newest event time, is 13:00's).
fn four_days() -> PathBuf {
    let results = tmp("history-days.jsonl");
    let mut lines: Vec<String> = (0..4)
        .map(|d| {
            pane(
                "c",
                FIRST_DAY + d * DAY + 12 * HOUR,
                (d as u64 + 1) * 100,
                d,
            )
        })
        .collect();
    lines.push(pane("c", FIRST_DAY + 3 * DAY + 13 * HOUR, 1, 4));
    lines.push(pane("c", FIRST_DAY + 3 * DAY + 14 * HOUR, 1, 5));
    append(&results, &lines);
    results
}

#[test]
fn named_ranges_compare_with_the_period_before() {
    let service = Service::start(&four_days(), 6);
    let summary = json(
        &service,
        "/api/summary?date_preset=yesterday&compare=previous",
    );
    assert_eq!(summary["impressions"], 300);
    assert_eq!(summary["period"]["from"], FIRST_DAY + 2 * DAY);
    assert_eq!(summary["previous"]["impressions"], 200);
    assert_eq!(summary["previous"]["period"]["from"], FIRST_DAY + DAY);
    assert_eq!(summary["change"]["impressions"], 0.5);
    // Today runs to the merge's "now", 13:00: not 14:00's pane.
    let today = json(&service, "/api/summary?date_preset=today&compare=previous");
    assert_eq!(today["impressions"], 401);
    let last_7d = json(
        &service,
        "/api/summary?date_preset=last_7d&compare=previous",
    );
    assert_eq!(last_7d["impressions"], 600);
    assert_eq!(
        last_7d["change"]["impressions"],
        Value::Null,
        "nothing before"
    );
    // Dates are whole days, `to` included.
    let days = json(&service, "/api/summary?from=2025-08-15&to=2025-08-16");
    assert_eq!(days["impressions"], 500);
    for (query, says) in [
        (
            "summary?date_preset=last_week",
            "use one of today, yesterday, last_7d",
        ),
        ("summary?date_preset=today&from=2025-08-15", "not both"),
        ("top?compare=previous", "`compare` goes with /api/summary"),
        ("summary?compare=next", "`compare` is `previous`"),
        ("export?format=xlsx", "`format` is csv or parquet"),
    ] {
        let (status, body) = service.get(&format!("/api/{query}"));
        assert_eq!(status, 400, "{query}: {body}");
        assert!(body.contains(says), "{query}: {body}");
    }
}

#[test]
fn exports_are_the_rows_a_table_shows_with_reach_as_sketches() {
    let results = tmp("history-export.jsonl");
    std::fs::copy(fixture("reach-results.jsonl"), &results).unwrap();
    let truth: TruthFile =
        serde_json::from_str(&std::fs::read_to_string(fixture("reach-truth.json")).unwrap())
            .unwrap();
    let panes = std::fs::read_to_string(&results).unwrap().lines().count() as u64;
    let service = Service::start(&results, panes);
    let all: Totals = truth.by_window().values().sum();

    let (status, csv) = service.get("/api/export?bucket=1h&format=csv");
    assert_eq!(status, 200, "{csv}");
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let header = reader.headers().unwrap().clone();
    let column = |name: &str| header.iter().position(|h| h == name).unwrap();
    let (impressions, reach, sketch) = (
        column("impressions"),
        column("reach"),
        column("reach_sketch"),
    );
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    let shown = json(&service, "/api/windows?bucket=1h");
    assert_eq!(rows.len(), shown.as_array().unwrap().len());
    let sum: i64 = rows
        .iter()
        .map(|r| r[impressions].parse::<i64>().unwrap())
        .sum();
    assert_eq!(sum, all.impressions);
    for row in &rows {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&row[sketch])
            .unwrap();
        let estimate = analytics::reach::Reach::from_bytes(&bytes)
            .unwrap()
            .estimate();
        assert_eq!(estimate.to_string(), row[reach], "{row:?}");
    }

    // Parquet, read by DuckDB where the tools are installed (CI installs them).
    let parquet = tmp("history-export.parquet");
    let (status, bytes) = test_kit::get_bytes(&service.url("/api/export?bucket=1h&format=parquet"));
    assert_eq!(status, 200);
    assert_eq!(&bytes[..4], b"PAR1");
    std::fs::write(&parquet, &bytes).unwrap();
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let query = format!(
        "import duckdb; print(duckdb.sql(\"SELECT sum(impressions), count(*), count(reach_sketch) FROM '{}'\").fetchone())",
        parquet.display()
    );
    match Command::new(&python).args(["-c", &query]).output() {
        Ok(out) if out.status.success() => assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            format!("({}, {}, {})", all.impressions, rows.len(), rows.len())
        ),
        other if std::env::var_os("REQUIRE_ANALYST_TOOLS").is_some() => {
            panic!("DuckDB in {python}: {other:?}")
        }
        _ => eprintln!("SKIPPED: no DuckDB in {python} (pip install duckdb)"),
    }
}
