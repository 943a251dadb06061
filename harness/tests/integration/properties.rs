//! For random event streams cut into random batches, the panes the pipeline
//! transform writes add up to the totals computed directly from the events,
//! to the micro-unit.

use crate::common;

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use hosting::engine::{batch_ranges, Engine};
use hosting::records::InputRecord;
use proptest::prelude::*;
use transform_host::{Batch, Host, Record, Transform};

const CAMPAIGNS: [&str; 3] = ["brand_awareness", "spring_sale", "retargeting"];
const CHANNELS: [&str; 4] = ["email", "facebook_ads", "google_ads", "tiktok"];
const KINDS: [&str; 3] = ["impression", "click", "conversion"];
/// 2025-08-17T14:00:00Z
const BASE_MS: i64 = 1_755_439_200_000;

#[derive(Debug, Clone)]
struct Generated {
    campaign: usize,
    channel: usize,
    kind: usize,
    cost_micros: i64,
    /// Offset from BASE_MS; up to ten one-minute windows, in any order.
    ts_offset_ms: i64,
    /// Malformed events must not count anywhere.
    valid: bool,
}

fn event() -> impl Strategy<Value = Generated> {
    (
        0..3usize,
        0..4usize,
        0..3usize,
        0..25_000_000i64,
        0..600_000i64,
        prop::bool::weighted(0.9),
    )
        .prop_map(
            |(campaign, channel, kind, cost_micros, ts_offset_ms, valid)| Generated {
                campaign,
                channel,
                kind,
                cost_micros,
                ts_offset_ms,
                valid,
            },
        )
}

fn value(e: &Generated) -> String {
    let ts = BASE_MS + e.ts_offset_ms;
    let secs = ts / 1000;
    let (h, m, s) = ((secs / 3600) % 24, (secs / 60) % 60, secs % 60);
    let cost = format!(
        "{}.{:06}",
        e.cost_micros / 1_000_000,
        e.cost_micros % 1_000_000
    );
    let cost = if e.valid { cost } else { format!("-{cost}1") };
    format!(
        r#"{{"ts":"2025-08-17T{h:02}:{m:02}:{s:02}.{:03}","user_id":"u","campaign_id":"{}","channel":"{}","event":"{}","cost":{cost}}}"#,
        ts % 1000,
        CAMPAIGNS[e.campaign],
        CHANNELS[e.channel],
        KINDS[e.kind]
    )
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Totals {
    counts: [i64; 3],
    micros: i64,
}

type Key = (String, String, i64);

fn direct(events: &[Generated]) -> BTreeMap<Key, Totals> {
    let mut totals: BTreeMap<Key, Totals> = BTreeMap::new();
    for e in events.iter().filter(|e| e.valid) {
        let window = (BASE_MS + e.ts_offset_ms) / 60_000 * 60_000;
        let t = totals
            .entry((
                CAMPAIGNS[e.campaign].into(),
                CHANNELS[e.channel].into(),
                window,
            ))
            .or_default();
        t.counts[e.kind] += 1;
        t.micros += e.cost_micros;
    }
    totals
}

fn pipeline() -> &'static (Host, Transform) {
    static PIPELINE: OnceLock<(Host, Transform)> = OnceLock::new();
    PIPELINE.get_or_init(|| {
        let host = common::host();
        let (transform, _) = up::extensions().load(&host, "@pipeline").unwrap();
        (host, transform)
    })
}

/// Runs the stream through one VM; returns the merged panes and the number
/// of dead letters.
fn through_wasm(
    events: &[Generated],
    partitions: &[i32],
    batch_size: usize,
) -> (BTreeMap<Key, Totals>, usize) {
    let (host, transform) = pipeline();
    let mut engine = Engine::start(
        host,
        transform,
        common::pipeline_spec(),
        vec![3; 3],
        common::silent_logger(),
    )
    .unwrap();
    let mut next_offset = [0i64; 3];
    let mut panes: BTreeMap<Key, Totals> = BTreeMap::new();
    let mut dead = 0;
    for (partition, range) in batch_ranges(partitions, batch_size) {
        let records = events[range]
            .iter()
            .map(|e| {
                let input = InputRecord {
                    line: 0,
                    partition,
                    key: None,
                    value: Some(value(e).into_bytes()),
                    headers: Vec::new(),
                    timestamp_ms: Some(0),
                };
                let offset = next_offset[partition as usize];
                next_offset[partition as usize] += 1;
                Record {
                    offset,
                    timestamp_ms: 0,
                    payload: input.payload(),
                }
            })
            .collect();
        for out in engine
            .process(partition, Arc::new(Batch { records }))
            .unwrap()
        {
            match engine.spec().output_topics[out.topic].as_str() {
                "results" => {
                    let record = record_payload::decode_record(&out.payload).unwrap();
                    let pane: serde_json::Value =
                        serde_json::from_slice(record.value().unwrap()).unwrap();
                    let key = (
                        pane["campaign"].as_str().unwrap().to_string(),
                        pane["channel"].as_str().unwrap().to_string(),
                        pane["window_start"].as_i64().unwrap(),
                    );
                    let t = panes.entry(key).or_default();
                    for (i, field) in ["impressions", "clicks", "conversions"].iter().enumerate() {
                        t.counts[i] += pane[field].as_i64().unwrap();
                    }
                    t.micros += pane["spend_micros"].as_i64().unwrap();
                }
                "logs.dlq" => dead += 1,
                _ => {}
            }
        }
    }
    (panes, dead)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn panes_add_up_to_the_events(
        stream in prop::collection::vec((event(), 0..3i32), 1..400),
        batch_size in 1..120usize,
    ) {
        let (events, partitions): (Vec<_>, Vec<_>) = stream.into_iter().unzip();
        let (panes, dead) = through_wasm(&events, &partitions, batch_size);
        prop_assert_eq!(panes, direct(&events));
        prop_assert_eq!(dead, events.iter().filter(|e| !e.valid).count());
    }
}
