//! The merge against direct sums: panes made by the transforms' own pane
//! builder, re-emitted after simulated restarts, late, and with partitions
//! interleaved in any order — totals always equal the records' sums, and
//! reach the count of distinct users (exact at these sizes: a sketch of a
//! few users is a list of them).

use std::collections::{BTreeMap, BTreeSet};

use analytics::merge::{Added, Merger, Retention};
use analytics::{Config, Contribution, Counters, Kind, Pane, PaneBuilder};
use proptest::prelude::*;

const RETAIN_ALL: Retention = Retention {
    span_ms: i64::MAX / 4,
    max_windows: usize::MAX,
};

#[derive(Debug, Clone)]
struct Rec {
    key: usize,
    kind: Kind,
    ts_ms: i64,
    cost_micros: i64,
    revenue_micros: i64,
    user: u8,
}

/// Two keys per partition: every key lives in one partition.
const KEYS: [(&str, &str); 6] = [
    ("spring_sale", "email"),
    ("spring_sale", "tiktok"),
    ("retargeting", "email"),
    ("retargeting", "tiktok"),
    ("brand_awareness", "email"),
    ("brand_awareness", "google_ads"),
];

/// A partition's records cut into batches, through a pane builder that
/// loses its memory at each restart (as the VM does): the batches from
/// `restart_at` on are run a second time and their panes re-emitted.
fn panes_of(records: &[Rec], cuts: &[usize], restarts: &[usize]) -> Vec<Pane> {
    let config = Config::default();
    let mut batches = Vec::new();
    let mut start = 0;
    for &cut in cuts.iter().chain([&records.len()]) {
        let end = cut.clamp(start, records.len());
        if end > start {
            batches.push(start..end);
        }
        start = end;
    }
    let run = |batches: &[std::ops::Range<usize>]| -> Vec<Vec<Pane>> {
        let mut builder = PaneBuilder::new(&config);
        batches
            .iter()
            .map(|range| {
                for offset in range.clone() {
                    let r = &records[offset];
                    let (campaign, channel) = KEYS[r.key];
                    builder.add(Contribution {
                        offset: offset as i64,
                        campaign,
                        channel,
                        kind: r.kind,
                        ts_ms: r.ts_ms,
                        cost_micros: r.cost_micros,
                        revenue_micros: r.revenue_micros,
                        user_id: &format!("user-{}", r.user),
                    });
                }
                builder.finish_batch(&config)
            })
            .collect()
    };
    let first = run(&batches);
    let mut out: Vec<Pane> = Vec::new();
    let mut done = 0;
    for &restart in restarts {
        // Up to `restart`, then the crash re-reads from an earlier batch.
        let upto = restart.min(batches.len()).max(done);
        out.extend(first[done..upto].iter().flatten().cloned());
        let back = upto.saturating_sub(1 + restart % 3);
        out.extend(run(&batches[back..upto]).into_iter().flatten());
        done = upto;
    }
    out.extend(first[done..].iter().flatten().cloned());
    out
}

type Sums = BTreeMap<(i64, String, String), (Counters, u64)>;

fn direct_sums(records: &[Vec<Rec>]) -> Sums {
    let mut sums: BTreeMap<(i64, String, String), (Counters, BTreeSet<u8>)> = BTreeMap::new();
    for r in records.iter().flatten() {
        let (campaign, channel) = KEYS[r.key];
        let start = r.ts_ms - r.ts_ms.rem_euclid(60_000);
        let (counters, users) = sums
            .entry((start, campaign.into(), channel.into()))
            .or_default();
        counters.count(r.kind, r.cost_micros, r.revenue_micros);
        if r.kind == Kind::Impression {
            users.insert(r.user);
        }
    }
    sums.into_iter()
        .map(|(k, (c, users))| (k, (c, users.len() as u64)))
        .collect()
}

fn merged(merger: &Merger) -> Sums {
    merger
        .windows()
        .map(|w| {
            let mut c = w.counters;
            c.late_records = 0;
            (
                (
                    w.window_start,
                    w.campaign.to_string(),
                    w.channel.to_string(),
                ),
                (c, w.reach.estimate()),
            )
        })
        .collect()
}

fn record() -> impl Strategy<Value = Rec> {
    (0..2usize, 0..3u8, 0..600_000i64, 0..3_000_000i64, 0..40u8).prop_map(
        |(key, k, ts, cost, user)| Rec {
            key,
            kind: [Kind::Impression, Kind::Click, Kind::Conversion][k as usize],
            ts_ms: 1_755_439_200_000 + ts,
            cost_micros: if k == 0 { 0 } else { cost },
            revenue_micros: if k == 2 { cost * 7 + 1 } else { 0 },
            user,
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn totals_equal_direct_sums_through_restarts_and_interleaving(
        partitions in prop::collection::vec(
            (
                prop::collection::vec(record(), 0..120),
                prop::collection::vec(0..120usize, 0..12),
                prop::collection::vec(0..15usize, 0..3),
            ),
            1..4,
        ),
        interleave in prop::collection::vec(0..4usize, 0..2000),
    ) {
        let mut streams: Vec<std::collections::VecDeque<Pane>> = Vec::new();
        let mut records = Vec::new();
        for (p, (recs, mut cuts, mut restarts)) in partitions.into_iter().enumerate() {
            let recs: Vec<Rec> = recs.into_iter().map(|r| Rec { key: 2 * p + r.key, ..r }).collect();
            cuts.sort_unstable();
            restarts.sort_unstable();
            streams.push(panes_of(&recs, &cuts, &restarts).into());
            records.push(recs);
        }
        let mut merger = Merger::new(10_000, RETAIN_ALL);
        let mut order = interleave.into_iter();
        while streams.iter().any(|s| !s.is_empty()) {
            let pick = order.next().unwrap_or(0) % streams.len();
            let p = (pick..pick + streams.len()).map(|i| i % streams.len()).find(|&i| !streams[i].is_empty()).unwrap();
            let pane = streams[p].pop_front().unwrap();
            merger.add(p as i32, &pane);
        }
        prop_assert_eq!(merged(&merger), direct_sums(&records));
    }
}

fn pane(
    campaign: &str,
    window_start: i64,
    first: i64,
    last: i64,
    impressions: u64,
    max_ts: i64,
) -> Pane {
    Pane {
        format: 1,
        campaign: campaign.into(),
        channel: "email".into(),
        window: String::new(),
        window_start,
        window_end: window_start + 60_000,
        impressions,
        clicks: 0,
        conversions: 0,
        spend: 0.0,
        spend_micros: 0,
        revenue: 0.0,
        revenue_micros: 0,
        cpc: 0.0,
        cpa: 0.0,
        ctr: 0.0,
        cvr: 0.0,
        cpm: None,
        roas: None,
        aov: None,
        reach: None,
        reach_sketch: None,
        first_offset: first,
        last_offset: last,
        records: impressions,
        max_event_ts_ms: max_ts,
        late_records: 0,
        campaign_name: None,
        target_cpa_micros: None,
        daily_budget_micros: None,
        flight_start_ms: None,
        flight_end_ms: None,
    }
}

#[test]
fn a_re_emitted_pane_is_dropped() {
    let mut m = Merger::new(0, RETAIN_ALL);
    assert!(matches!(
        m.add(0, &pane("a", 0, 0, 4, 5, 10)),
        Added::Counted { late: false, .. }
    ));
    assert!(matches!(
        m.add(0, &pane("a", 0, 7, 9, 2, 20)),
        Added::Counted { .. }
    ));
    assert_eq!(m.add(0, &pane("a", 0, 7, 9, 2, 20)), Added::Duplicate);
    assert_eq!(m.add(0, &pane("a", 0, 0, 4, 5, 10)), Added::Duplicate);
    // The same offsets in another partition are another pane.
    assert!(matches!(
        m.add(1, &pane("a", 0, 0, 4, 5, 10)),
        Added::Counted { .. }
    ));
    let w = m.windows().next().unwrap();
    assert_eq!((w.counters.impressions, w.panes), (12, 3));
    assert_eq!((m.stats.panes, m.stats.duplicates), (5, 2));
}

#[test]
fn windows_turn_final_with_their_partitions_watermark_and_corrections_show_as_late() {
    let mut m = Merger::new(10_000, RETAIN_ALL);
    m.add(0, &pane("a", 0, 0, 0, 1, 59_000));
    assert!(!m.window_is_final(m.windows().next().unwrap()));
    // Partition 1's events say nothing about partition 0's windows.
    m.add(1, &pane("b", 120_000, 0, 0, 1, 200_000));
    m.add(1, &pane("b", 120_000, 1, 1, 1, 200_000));
    assert!(!m.window_is_final(m.windows().next().unwrap()));
    // The watermark is the second newest event time of the latest panes:
    // one pane past the window's end and its lateness is not yet enough.
    m.add(0, &pane("a", 60_000, 1, 1, 1, 70_000));
    assert!(!m.window_is_final(m.windows().next().unwrap()));
    m.add(0, &pane("a", 60_000, 2, 2, 1, 75_000));
    assert!(m.window_is_final(m.windows().next().unwrap()));
    // A correction with a late record still counts, and shows as late.
    let mut correction = pane("a", 0, 3, 3, 1, 30_000);
    correction.late_records = 1;
    assert!(matches!(
        m.add(0, &correction),
        Added::Counted { late: true, .. }
    ));
    let w = m.windows().next().unwrap();
    assert_eq!((w.counters.impressions, w.late_panes), (2, 1));
    assert_eq!(m.stats.late_panes, 1);
}

/// 2099-01-01T00:00:00Z: a clock far ahead.
const FAR_AHEAD_MS: i64 = 4_070_908_800_000;

#[test]
fn one_pane_from_a_clock_far_ahead_neither_finalizes_nor_evicts_history() {
    let mut m = Merger::new(
        10_000,
        Retention {
            span_ms: 24 * 3_600_000,
            max_windows: 1000,
        },
    );
    for i in 0..5 {
        m.add(0, &pane("a", i * 60_000, i, i, 1, i * 60_000 + 30_000));
    }
    let outlier = pane("a", FAR_AHEAD_MS, 5, 5, 1, FAR_AHEAD_MS);
    assert!(matches!(m.add(0, &outlier), Added::Counted { .. }));
    // Every window is kept, the outlier's too; the watermark went no
    // further than the real stream's newest event (270 s), so the latest
    // real window stays open.
    assert_eq!(m.len(), 6);
    let open: Vec<i64> = m
        .windows()
        .filter(|w| !m.window_is_final(w))
        .map(|w| w.window_start)
        .collect();
    assert_eq!(open, [240_000, FAR_AHEAD_MS]);
    // The stream goes on as before.
    m.add(0, &pane("a", 300_000, 6, 6, 1, 330_000));
    assert_eq!(m.len(), 7);
    let total: u64 = m.windows().map(|w| w.counters.impressions).sum();
    assert_eq!(total, 7);
    // A second pane that far ahead is a stream that moved on: then the
    // history a day before it goes.
    m.add(0, &pane("b", FAR_AHEAD_MS, 7, 7, 1, FAR_AHEAD_MS));
    assert_eq!(m.len(), 2);
}

#[test]
fn retention_bounds_the_windows_kept() {
    let mut m = Merger::new(
        0,
        Retention {
            span_ms: 120_000,
            max_windows: 1000,
        },
    );
    for i in 0..10 {
        m.add(0, &pane("a", i * 60_000, i, i, 1, i * 60_000));
    }
    // The watermark is the second newest event time, 480 s: windows from
    // 360 s on are kept.
    let kept: Vec<i64> = m.windows().map(|w| w.window_start).collect();
    assert_eq!(kept, [360_000, 420_000, 480_000, 540_000]);
    assert_eq!(m.add(0, &pane("a", 0, 100, 100, 1, 0)), Added::Expired);
    let mut m = Merger::new(
        0,
        Retention {
            span_ms: i64::MAX / 4,
            max_windows: 4,
        },
    );
    for i in 0..10 {
        m.add(0, &pane(&format!("c{i}"), 0, i, i, 1, 0));
    }
    assert_eq!(m.len(), 4);
}
