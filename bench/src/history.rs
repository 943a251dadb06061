//! `bench history`: the dashboard with its history on disk, against
//! today's in-memory merge in the same run. Panes of `keys` keys over
//! `days` days of event time go through the dashboard's own merge loop
//! (hot windows, the history, checkpoints with positions); then the
//! memory it holds, `/api/summary` by day and `/api/top` over the whole
//! span (p99), the time a restart takes to serve the whole history again,
//! and the bytes on disk per stored row of each tier.

use std::fmt;
use std::path::Path;
use std::sync::mpsc::sync_channel;
use std::time::{Duration, Instant};

use analytics::merge::{Merger, Retention};
use analytics::reach::{Reach, User};
use anyhow::{Context, Result};
use dashboard::range;
use dashboard::service::{Settings, Shared};
use dashboard::source::{At, SourceEvent};
use dashboard::view::{self, Bucket, Selection};
use history::{Place, Tier};

use crate::dashboard::{pane, resident_bytes, MINUTE, START};

const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;

/// The first midnight after the panes' epoch, where the span starts.
const FIRST_DAY: i64 = START + DAY - START.rem_euclid(DAY);

/// Distinct sketches the panes draw from: building one per pane would
/// make the bench measure the hash of user ids.
const SKETCHES: usize = 1024;

/// Query runs per figure; the p99 of 40 is their second slowest.
const RUNS: usize = 40;

/// What was measured.
pub struct HistoryReport {
    pub keys: usize,
    pub days: i64,
    pub per_window: usize,
    pub panes: u64,
    /// The dashboard's merge loop with the history on disk, and today's
    /// in-memory merge (a day of windows, at most 500,000) of the same panes.
    pub with_history: Duration,
    pub in_memory: Duration,
    pub resident: u64,
    pub summary_p99: Duration,
    pub top_p99: Duration,
    pub restart: Duration,
    pub file_bytes: u64,
    /// Per tier: rows, and their bytes in the file (SQLite's dbstat).
    pub tiers: Vec<(Tier, u64, u64)>,
}

/// The panes of one hour: every key's window at its own minute of the
/// hour (key mod 60), `per_window` panes each, with offsets carried on.
fn hour_of_panes(
    hour: i64,
    keys: usize,
    per_window: usize,
    offsets: &mut [i64],
    sketches: &[Reach],
) -> Vec<SourceEvent> {
    let mut out = Vec::with_capacity(keys * per_window);
    for round in 0..per_window {
        for (key, offset) in offsets.iter_mut().enumerate() {
            let window = (FIRST_DAY - START) / MINUTE + hour * 60 + (key % 60) as i64;
            let first = *offset;
            *offset += 10;
            let reach = sketches[(first as usize / 10) % SKETCHES].clone();
            let p = pane(key, window, round as i64, first, first + 9, Some(reach));
            out.push(SourceEvent::Pane {
                at: At {
                    topic: "results".into(),
                    partition: (key % 3) as i32,
                    offset: first,
                },
                pane: Box::new(p),
            });
        }
    }
    out
}

fn sketches() -> Vec<Reach> {
    (0..SKETCHES as u64)
        .map(|s| {
            let mut reach = Reach::default();
            for u in 0..8 {
                reach.add(User::new(&format!(
                    "user-{}",
                    (s * 7919 + u * 104_729) % 200_000
                )));
            }
            reach
        })
        .collect()
}

fn settings(folder: &Path) -> Settings {
    Settings {
        lateness_ms: 10_000,
        history: Place::Folder(folder.to_path_buf()),
        ..Settings::default()
    }
}

/// The p99 of `RUNS` runs of `f`.
fn p99(mut f: impl FnMut() -> Result<()>) -> Result<Duration> {
    let mut took = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let started = Instant::now();
        f()?;
        took.push(started.elapsed());
    }
    took.sort_unstable();
    Ok(took[(RUNS as f64 * 0.99).ceil() as usize - 1])
}

/// The whole span, by day, as the page asks for it.
fn whole_span(days: i64, bucket: Option<Bucket>) -> Selection {
    Selection {
        from_ms: Some(FIRST_DAY),
        to_ms: Some(FIRST_DAY + days * DAY - 1),
        bucket,
        ..Selection::default()
    }
}

pub fn bench(keys: usize, days: i64, per_window: usize) -> Result<HistoryReport> {
    let folder = tempfile::tempdir()?;
    let sketches = sketches();
    let (shared, _) = Shared::new(settings(folder.path()), "bench".into())?;
    let (mut offsets, mut panes) = (vec![0i64; keys], 0u64);
    let mut with_history = Duration::ZERO;
    for hour in 0..days * 24 {
        let events = hour_of_panes(hour, keys, per_window, &mut offsets, &sketches);
        panes += events.len() as u64;
        let (tx, rx) = sync_channel(events.len());
        for e in events {
            tx.send(e)?;
        }
        drop(tx);
        let started = Instant::now();
        shared.merge_from(rx);
        with_history += started.elapsed();
    }
    let resident = resident_bytes()?;

    let read = |selection: &Selection| -> Result<Vec<analytics::merge::Window>> {
        let state = shared.state.read();
        range::rows(&state.history, selection, MINUTE, range::Read::Totals)
            .map_err(anyhow::Error::msg)
    };
    let by_day = whole_span(days, Some(Bucket::days(jiff::tz::TimeZone::UTC)));
    let summary_p99 = p99(|| {
        let rows = read(&by_day)?;
        let state = shared.state.read();
        let summary = view::summary(&rows, &state.merger, &by_day);
        anyhow::ensure!(summary.buckets.map_or(0, |b| b.len()) as i64 == days);
        Ok(())
    })?;
    let span = whole_span(days, None);
    let top_p99 = p99(|| {
        let state = shared.state.read();
        let top = range::top(&state.history, &span, MINUTE).map_err(anyhow::Error::msg)?;
        anyhow::ensure!(top.len() == 10);
        Ok(())
    })?;
    drop(shared);

    let started = Instant::now();
    let (shared, _) = Shared::new(settings(folder.path()), "bench".into())?;
    let rows = {
        let state = shared.state.read();
        range::rows(&state.history, &span, MINUTE, range::Read::Totals)
            .map_err(anyhow::Error::msg)?
    };
    let restart = started.elapsed();
    let state = shared.state.read();
    let summary = view::summary(&rows, &state.merger, &span);
    anyhow::ensure!(
        summary.windows as u64 * per_window as u64 == panes,
        "the restart lost windows"
    );
    drop(state);
    drop(shared);

    let file = folder.path().join("history.sqlite");
    let file_bytes = std::fs::metadata(&file)?.len();
    let tiers = tier_bytes(&file)?;

    let mut merger = Merger::new(
        10_000,
        Retention {
            span_ms: DAY,
            max_windows: 500_000,
        },
    );
    let mut offsets = vec![0i64; keys];
    let mut in_memory = Duration::ZERO;
    for hour in 0..days * 24 {
        let events = hour_of_panes(hour, keys, per_window, &mut offsets, &sketches);
        let started = Instant::now();
        for e in &events {
            if let SourceEvent::Pane { at, pane, .. } = e {
                merger.add(at.partition, pane);
            }
        }
        in_memory += started.elapsed();
    }
    Ok(HistoryReport {
        keys,
        days,
        per_window,
        panes,
        with_history,
        in_memory,
        resident,
        summary_p99,
        top_p99,
        restart,
        file_bytes,
        tiers,
    })
}

/// Rows and bytes of each tier's table, from SQLite's dbstat.
fn tier_bytes(file: &Path) -> Result<Vec<(Tier, u64, u64)>> {
    let conn = rusqlite::Connection::open(file)?;
    Tier::ALL
        .iter()
        .map(|&tier| {
            let rows: u64 =
                conn.query_row(&format!("SELECT count(*) FROM {}", tier.table()), [], |r| {
                    r.get(0)
                })?;
            let bytes: u64 = conn
                .query_row(
                    "SELECT sum(pgsize) FROM dbstat WHERE name = ?1",
                    [tier.table()],
                    |r| r.get(0),
                )
                .context("SQLite's dbstat")?;
            Ok((tier, rows, bytes))
        })
        .collect()
}

impl fmt::Display for HistoryReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rate = |d: Duration| self.panes as f64 / d.as_secs_f64();
        writeln!(
            f,
            "{} keys × {} days, a window per key and hour, {} panes a window: {} panes",
            self.keys, self.days, self.per_window, self.panes
        )?;
        writeln!(
            f,
            "ingest:      {:>10.0} panes/s into hot windows and the history on disk ({:.1} s)",
            rate(self.with_history),
            self.with_history.as_secs_f64()
        )?;
        writeln!(
            f,
            "in memory:   {:>10.0} panes/s, today's merge alone (a day, 500,000 windows at most): the history takes {:.2}x its time",
            rate(self.in_memory),
            self.with_history.as_secs_f64() / self.in_memory.as_secs_f64()
        )?;
        writeln!(
            f,
            "memory:      {:.0} MB resident after the whole span",
            self.resident as f64 / 1e6
        )?;
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        writeln!(
            f,
            "queries:     /api/summary by day over {} days p99 {:.0} ms; /api/top p99 {:.0} ms ({RUNS} runs each)",
            self.days,
            ms(self.summary_p99),
            ms(self.top_p99)
        )?;
        writeln!(
            f,
            "restart:     {:.0} ms to serve the whole history again",
            ms(self.restart)
        )?;
        write!(f, "disk:        {:.0} MB", self.file_bytes as f64 / 1e6)?;
        for (tier, rows, bytes) in &self.tiers {
            write!(
                f,
                "; {} {} rows, {:.0} bytes each",
                tier.table(),
                rows,
                *bytes as f64 / (*rows).max(1) as f64
            )?;
        }
        writeln!(f)
    }
}
