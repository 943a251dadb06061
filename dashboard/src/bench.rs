//! `dashboard bench`: how fast the merge absorbs panes (against a plain
//! sum of the same panes in the same run), how much memory a day of windows
//! takes, and how long a pane takes to reach connected pages.

use std::collections::HashMap;
use std::sync::mpsc::sync_channel;
use std::time::{Duration, Instant};

use analytics::{Counters, Pane};
use anyhow::{bail, Context, Result};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::merge::{Merger, Retention};
use crate::service::{routes, Settings, Shared};
use crate::source::SourceEvent;

const MINUTE: i64 = 60_000;
const START: i64 = 1_755_439_200_000;

/// Panes for `keys` keys over `windows` one-minute windows, `per_window`
/// panes each, in the order a results partition carries them.
pub fn day_of_panes(keys: usize, windows: usize, per_window: usize) -> impl Iterator<Item = Pane> {
    let mut offsets = vec![0i64; keys];
    (0..windows).flat_map(move |w| {
        let mut batch = Vec::with_capacity(keys * per_window);
        for round in 0..per_window {
            for (k, offset) in offsets.iter_mut().enumerate() {
                let first = *offset;
                *offset += 10;
                batch.push(pane(k, w as i64, round as i64, first, first + 9));
            }
        }
        batch
    })
}

fn pane(key: usize, window: i64, round: i64, first: i64, last: i64) -> Pane {
    let start = START + window * MINUTE;
    Pane {
        format: 1,
        campaign: format!("campaign_{}", key / 4),
        channel: ["email", "facebook_ads", "google_ads", "tiktok"][key % 4].into(),
        window: String::new(),
        window_start: start,
        window_end: start + MINUTE,
        impressions: 8,
        clicks: 1 + (round % 2) as u64,
        conversions: (round % 3 == 0) as u64,
        spend: 0.0,
        spend_micros: 1_250_000,
        cpc: 0.0,
        cpa: 0.0,
        ctr: 0.0,
        cvr: 0.0,
        cpm: None,
        first_offset: first,
        last_offset: last,
        records: 10,
        max_event_ts_ms: start + 59_000,
        late_records: 0,
        campaign_name: None,
        target_cpa_micros: Some(20_000_000),
    }
}

pub struct MergeReport {
    pub panes: u64,
    pub merge: Duration,
    pub plain_sum: Duration,
    pub windows: usize,
    pub rss_before: u64,
    pub rss_after: u64,
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
/// panes into a plain hash map with no identity check, as the baseline.
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
    let started = Instant::now();
    let mut panes = 0u64;
    for pane in day_of_panes(keys, windows, per_window) {
        merger.add((panes % 3) as i32, &pane);
        panes += 1;
    }
    let merge = started.elapsed();
    let rss_after = resident_bytes()?;
    let windows_kept = merger.len();

    let started = Instant::now();
    let mut plain: HashMap<(i64, String, String), Counters> = HashMap::new();
    for pane in day_of_panes(keys, windows, per_window) {
        plain
            .entry((
                pane.window_start,
                pane.campaign.clone(),
                pane.channel.clone(),
            ))
            .or_default()
            .add(&pane.counters());
    }
    let plain_sum = started.elapsed();
    if plain.len() != windows_kept {
        bail!(
            "the merge kept {windows_kept} windows, the plain sum {}",
            plain.len()
        );
    }
    Ok(MergeReport {
        panes,
        merge,
        plain_sum,
        windows: windows_kept,
        rss_before,
        rss_after,
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
        let shared = Shared::new(
            Settings {
                lateness_ms: 10_000,
                retention: Retention {
                    span_ms: 24 * 60 * MINUTE,
                    max_windows: 500_000,
                },
                max_streams: clients + 1,
            },
            "bench".into(),
        );
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
            let pane = pane(i % 100, (i / 100) as i64, 0, i as i64, i as i64);
            tx.send(SourceEvent::Pane {
                partition: 0,
                pane: Box::new(pane),
                version: None,
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
    eprintln!("merge: 24 h of one-minute windows for {keys} keys, 8 panes a window…");
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
        "plain sum:   {:>10.0} panes/s (no identities, no retention; the baseline): merge takes {:.2}x its time",
        rate(m.plain_sum),
        m.merge.as_secs_f64() / m.plain_sum.as_secs_f64()
    );
    println!(
        "memory:      {:.1} MB resident after the day ({:.1} MB before it)",
        m.rss_after as f64 / 1e6,
        m.rss_before as f64 / 1e6
    );
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
