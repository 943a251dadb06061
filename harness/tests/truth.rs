//! The generator's stream through the pipeline transform in WASM: the panes
//! add up to the generator's ground truth exactly, and exactly the malformed
//! events reach the dead-letter topic.

mod common;

use std::collections::BTreeMap;

use generator::{partition_for, Clock, Profile, Stream, Totals, Truth};
use harness::records::InputRecord;

#[test]
fn panes_equal_the_generators_truth() {
    let profile = Profile {
        invalid_ratio: 0.02,
        ..Profile::default()
    };
    let mut stream = Stream::new(
        profile.clone(),
        5,
        Clock::Simulated {
            next_ms: 1_755_439_200_000,
        },
    );
    let mut truth = Truth::new(60_000);
    let records: Vec<InputRecord> = (0..20_000)
        .map(|i| {
            let event = stream.next_event();
            truth.add(&event);
            InputRecord {
                line: i + 1,
                partition: partition_for(event.key.as_bytes(), 4),
                key: Some(event.key.into_bytes()),
                value: Some(event.value.into_bytes()),
                headers: Vec::new(),
                timestamp_ms: event.ts_ms,
            }
        })
        .collect();
    let outs = common::run_module("@pipeline", common::pipeline_spec(), &records, 64);
    let mut panes: BTreeMap<(String, String, i64), Totals> = BTreeMap::new();
    for pane in outs
        .iter()
        .filter(|o| o.topic == "results")
        .map(common::json)
    {
        let t = panes
            .entry((
                pane["campaign"].as_str().unwrap().into(),
                pane["channel"].as_str().unwrap().into(),
                pane["window_start"].as_i64().unwrap(),
            ))
            .or_default();
        t.impressions += pane["impressions"].as_i64().unwrap();
        t.clicks += pane["clicks"].as_i64().unwrap();
        t.conversions += pane["conversions"].as_i64().unwrap();
        t.spend_micros += pane["spend_micros"].as_i64().unwrap();
    }
    let expected = truth.file(&profile);
    let truth_windows: BTreeMap<_, _> = expected
        .windows
        .into_iter()
        .map(|w| ((w.campaign, w.channel, w.window_start), w.totals))
        .collect();
    assert_eq!(panes, truth_windows);
    let dead = outs.iter().filter(|o| o.topic == "logs.dlq").count() as u64;
    assert_eq!(dead, expected.invalid);
    assert!(dead > 0);
}
