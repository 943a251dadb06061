//! `bench dashboard`: how fast the merge absorbs panes (against a plain
//! sum of the same panes in the same run), how much memory a day of windows
//! takes, and how long a pane takes to reach connected pages.

use std::collections::HashMap;
use std::sync::mpsc::sync_channel;
use std::time::{Duration, Instant};

use analytics::reach::{Reach, User};
use analytics::{Counters, Pane};
use anyhow::{bail, Context, Result};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use analytics::merge::{Merger, Retention};
use dashboard::service::{routes, Settings, Shared};
use dashboard::source::{At, SourceEvent};

pub const MINUTE: i64 = 60_000;
pub const START: i64 = 1_755_439_200_000;

/// Users a pane's impressions come from: a day's audience of 200,000,
/// drawn with a skew (the generator's), so that windows share users.
const AUDIENCE: u64 = 200_000;

/// The panes of one minute for `keys` keys, `per_window` panes each, in
/// the order a results partition carries them, each with the reach sketch
/// of its `IMPRESSIONS` impressions. `offsets` carries on from the last
/// minute's.
pub fn minute_of_panes(offsets: &mut [i64], window: i64, per_window: usize) -> Vec<Pane> {
    let mut batch = Vec::with_capacity(offsets.len() * per_window);
    for round in 0..per_window {
        for (k, offset) in offsets.iter_mut().enumerate() {
            let first = *offset;
            *offset += 10;
            let mut reach = Reach::default();
            for i in 0..IMPRESSIONS {
                // A cheap, reproducible skewed draw: squared uniform.
                let h = (first as u64 * 31 + i).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11;
                let u = h as f64 / (1u64 << 53) as f64;
                reach.add(User::new(&format!(
                    "user-{}",
                    (AUDIENCE as f64 * u * u) as u64
                )));
            }
            batch.push(pane(k, window, round as i64, first, first + 9, Some(reach)));
        }
    }
    batch
}

const IMPRESSIONS: u64 = 8;

pub fn pane(
    key: usize,
    window: i64,
    round: i64,
    first: i64,
    last: i64,
    reach: Option<Reach>,
) -> Pane {
    let start = START + window * MINUTE;
    Pane {
        format: 3,
        campaign: format!("campaign_{}", key / 4),
        channel: ["email", "facebook_ads", "google_ads", "tiktok"][key % 4].into(),
        window: String::new(),
        window_start: start,
        window_end: start + MINUTE,
        impressions: IMPRESSIONS,
        clicks: 1 + (round % 2) as u64,
        conversions: (round % 3 == 0) as u64,
        spend: 0.0,
        spend_micros: 1_250_000,
        revenue: 0.0,
        revenue_micros: 30_000_000 * (round % 3 == 0) as i64,
        cpc: 0.0,
        cpa: 0.0,
        ctr: 0.0,
        cvr: 0.0,
        cpm: None,
        roas: None,
        aov: None,
        reach: reach.as_ref().map(Reach::estimate),
        reach_sketch: reach,
        first_offset: first,
        last_offset: last,
        records: 10,
        max_event_ts_ms: start + 59_000,
        late_records: 0,
        campaign_name: None,
        target_cpa_micros: Some(20_000_000),
        daily_budget_micros: None,
        flight_start_ms: None,
        flight_end_ms: None,
    }
}

pub struct MergeReport {
    pub panes: u64,
    pub merge: Duration,
    pub plain_sum: Duration,
    pub windows: usize,
    pub rss_before: u64,
    pub rss_after: u64,
    /// Reach over the whole day, a union of every window's sketch, and
    /// how long that union took.
    pub day_reach: u64,
    pub day_union: Duration,
    /// A pane's JSON, in bytes, by how many users its sketch holds.
    pub pane_bytes: Vec<(u64, usize)>,
}

/// Resident memory of this process, in bytes.
pub fn resident_bytes() -> Result<u64> {
    let status =
        std::fs::read_to_string("/proc/self/status").context("reading /proc/self/status")?;
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .context("no VmRSS in /proc/self/status")?;
    Ok(kb * 1024)
}

/// Merges a day of one-minute windows for `keys` keys, and sums the same
/// panes into a plain hash map with no identity check and no sketch, as
/// the baseline. Panes are made a minute at a time outside the timings.
pub fn merge_day(keys: usize, per_window: usize) -> Result<MergeReport> {
    let windows = 24 * 60;
    let rss_before = resident_bytes()?;
    let mut merger = Merger::new(
        10_000,
        Retention {
            span_ms: 24 * 60 * MINUTE,
            max_windows: 500_000,
        },
    );
    let (mut merge, mut plain_sum) = (Duration::ZERO, Duration::ZERO);
    let mut plain: HashMap<(i64, String, String), Counters> = HashMap::new();
    let mut offsets = vec![0i64; keys];
    let mut panes = 0u64;
    for window in 0..windows {
        let minute = minute_of_panes(&mut offsets, window as i64, per_window);
        let started = Instant::now();
        for (i, pane) in minute.iter().enumerate() {
            merger.add((i % 3) as i32, pane);
        }
        merge += started.elapsed();
        let started = Instant::now();
        for pane in &minute {
            plain
                .entry((
                    pane.window_start,
                    pane.campaign.clone(),
                    pane.channel.clone(),
                ))
                .or_default()
                .add(&pane.counters());
        }
        plain_sum += started.elapsed();
        panes += minute.len() as u64;
    }
    let plain_windows = plain.len();
    drop(plain);
    let rss_after = resident_bytes()?;
    let windows_kept = merger.len();
    if plain_windows != windows_kept {
        bail!("the merge kept {windows_kept} windows, the plain sum {plain_windows}");
    }
    let rows: Vec<_> = merger.windows().cloned().collect();
    let started = Instant::now();
    let day = dashboard::view::summary(&rows, &merger, &Default::default());
    let day_union = started.elapsed();
    let pane_bytes = [0, 8, 64, 1_000, 100_000]
        .into_iter()
        .map(|users| {
            let mut reach = Reach::default();
            for u in 0..users {
                reach.add(User::new(&format!("{u:08x}-8d0c-4f3a-9b7e-3c5a1f2e4d6b")));
            }
            let bytes =
                serde_json::to_vec(&pane(0, 0, 0, 0, 9, Some(reach))).map_or(0, |v| v.len());
            (users, bytes)
        })
        .collect();
    Ok(MergeReport {
        panes,
        merge,
        plain_sum,
        windows: windows_kept,
        rss_before,
        rss_after,
        day_reach: day.totals.reach,
        day_union,
        pane_bytes,
    })
}

pub struct PushReport {
    pub clients: usize,
    pub samples: usize,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
}

/// The real service on a loopback port with `clients` pages connected to
/// its server-sent updates; `panes` panes are handed to the merge one at a
/// time, and each page notes when the update arrives.
pub fn push_latency(clients: usize, panes: usize) -> Result<PushReport> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let (shared, _) = Shared::new(
            Settings {
                lateness_ms: 10_000,
                max_streams: clients + 1,
                ..Settings::default()
            },
            "bench".into(),
        )?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(warp::serve(routes(shared.clone())).incoming(listener).run());
        let (tx, rx) = sync_channel(1024);
        let merging = shared.clone();
        std::thread::spawn(move || merging.merge_from(rx));

        let mut pages = Vec::new();
        for _ in 0..clients {
            pages.push(tokio::spawn(page(addr, panes)));
        }
        while shared.streams() < clients {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let mut sent = Vec::with_capacity(panes);
        for i in 0..panes {
            tokio::time::sleep(Duration::from_millis(20)).await;
            sent.push(Instant::now());
            let pane = pane(i % 100, (i / 100) as i64, 0, i as i64, i as i64, None);
            tx.send(SourceEvent::Pane {
                at: At {
                    topic: "results".into(),
                    partition: 0,
                    offset: i as i64,
                },
                pane: Box::new(pane),
            })?;
        }
        let mut latencies = Vec::with_capacity(clients * panes);
        for page in pages {
            let arrivals = page.await??;
            latencies.extend(
                arrivals
                    .iter()
                    .zip(&sent)
                    .map(|(a, s)| a.duration_since(*s)),
            );
        }
        latencies.sort_unstable();
        let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
        Ok(PushReport {
            clients,
            samples: latencies.len(),
            p50: at(0.5),
            p99: at(0.99),
            max: at(1.0),
        })
    })
}

/// A page: subscribes and notes when each of `updates` updates arrives.
async fn page(addr: std::net::SocketAddr, updates: usize) -> Result<Vec<Instant>> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream
        .write_all(format!("GET /api/updates HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await?;
    let mut lines = BufReader::new(stream).lines();
    let mut arrivals = Vec::with_capacity(updates);
    while arrivals.len() < updates {
        let Some(line) = lines.next_line().await? else {
            bail!("the update stream ended");
        };
        if line == "event:update" || line == "event: update" {
            arrivals.push(Instant::now());
        }
    }
    Ok(arrivals)
}

/// Runs everything and prints the figures.
pub fn run(clients: &[usize], push_samples: usize) -> Result<()> {
    let keys = 100;
    eprintln!(
        "merge: 24 h of one-minute windows for {keys} keys, 8 panes a window, \
         each pane with the sketch of {IMPRESSIONS} impressions' users…"
    );
    let m = merge_day(keys, 8)?;
    let rate = |d: Duration| m.panes as f64 / d.as_secs_f64();
    println!(
        "merge:       {:>10.0} panes/s ({} panes into {} windows, {:.3} s)",
        rate(m.merge),
        m.panes,
        m.windows,
        m.merge.as_secs_f64()
    );
    println!(
        "plain sum:   {:>10.0} panes/s (no identities, no sketches, no retention; the baseline): merge takes {:.2}x its time",
        rate(m.plain_sum),
        m.merge.as_secs_f64() / m.plain_sum.as_secs_f64()
    );
    println!(
        "memory:      {:.1} MB resident after the day ({:.1} MB before it): {:.1} MB for {} windows with sketches",
        m.rss_after as f64 / 1e6,
        m.rss_before as f64 / 1e6,
        m.rss_after.saturating_sub(m.rss_before) as f64 / 1e6,
        m.windows
    );
    println!(
        "day's reach: {} users (a union of {} window sketches in {:.0} ms)",
        m.day_reach,
        m.windows,
        m.day_union.as_secs_f64() * 1e3
    );
    for (users, bytes) in &m.pane_bytes {
        println!("pane size:   {bytes:>6} bytes of JSON with {users} users in its sketch");
    }
    for &n in clients {
        eprintln!("push: {n} pages connected, {push_samples} panes, one every 20 ms…");
        let p = push_latency(n, push_samples)?;
        println!(
            "push to {:>4} pages: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} samples)",
            p.clients,
            p.p50.as_secs_f64() * 1e3,
            p.p99.as_secs_f64() * 1e3,
            p.max.as_secs_f64() * 1e3,
            p.samples
        );
    }
    Ok(())
}
