//! The generator's stream through the pipeline transform in WASM: the panes
//! add up to the generator's ground truth exactly, their reach sketches
//! union to within 2% of the exact distinct users, and exactly the
//! malformed events reach the dead-letter topic.

use crate::common;

use analytics::reach::{Reach, ReachUnion};
use generator::{Clock, Profile, Stream, Truth};
use hosting::records::InputRecord;
use kafka_client::partition_for;

/// `n` events of the stream as input records, keyed and partitioned as the
/// generator sends them; each is also added to `truth`.
fn records(stream: &mut Stream, n: usize, partitions: i32, truth: &mut Truth) -> Vec<InputRecord> {
    (0..n)
        .map(|i| {
            let event = stream.next_event();
            truth.add(&event);
            InputRecord {
                line: i + 1,
                partition: partition_for(event.key.as_bytes(), partitions),
                key: Some(event.key.into_bytes()),
                value: Some(event.value),
                headers: Vec::new(),
                timestamp_ms: Some(event.ts_ms),
            }
        })
        .collect()
}

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
    let records = records(&mut stream, 20_000, 4, &mut truth);
    let outs = common::run_module("@pipeline", common::pipeline_spec(), &records, 64);
    let panes: Vec<serde_json::Value> = outs
        .iter()
        .filter(|o| o.topic == "results")
        .map(common::json)
        .collect();
    let expected = truth.file(&profile);
    assert_eq!(common::pane_totals(&panes), expected.by_window());
    // Reach: each window's panes' sketches unioned (in WASM, the same
    // DataSketches code as natively), against the exact distinct users.
    let mut unions: std::collections::BTreeMap<_, ReachUnion> = Default::default();
    for pane in &panes {
        let sketch: Reach = serde_json::from_value(pane["reach_sketch"].clone()).unwrap();
        let key = (
            pane["campaign"].as_str().unwrap().to_string(),
            pane["channel"].as_str().unwrap().to_string(),
            pane["window_start"].as_i64().unwrap(),
        );
        unions.entry(key).or_default().add(&sketch);
    }
    let mut all = ReachUnion::default();
    for w in &expected.windows {
        let union = &unions[&(w.campaign.clone(), w.channel.clone(), w.window_start)];
        assert!(
            union.estimate().abs_diff(w.reach) <= 1.max(w.reach / 50),
            "{} against {}",
            union.estimate(),
            w.reach
        );
        all.add_union(union);
    }
    let error = all.estimate().abs_diff(expected.reach) as f64 / expected.reach as f64;
    assert!(
        error <= 0.02,
        "{} users reached, exactly {}",
        all.estimate(),
        expected.reach
    );
    let dead = outs.iter().filter(|o| o.topic == "logs.dlq").count() as u64;
    assert_eq!(dead, expected.invalid);
    assert!(dead > 0);
}

/// Hundreds of keys over many windows stay within Redpanda's default 2 MiB
/// of linear memory (the harness enforces it; growing past it kills the VM).
#[test]
fn hundreds_of_keys_fit_in_the_default_memory_limit() {
    let profile = Profile {
        campaigns: (0..150).map(|i| format!("campaign_{i}")).collect(),
        ..Profile::default()
    };
    let mut stream = Stream::new(
        profile,
        11,
        Clock::Simulated {
            next_ms: 1_755_439_200_000,
        },
    );
    let records = records(&mut stream, 60_000, 2, &mut Truth::new(60_000));
    let outs = common::run_module("@pipeline", common::pipeline_spec(), &records, 500);
    let keys: std::collections::BTreeSet<_> = outs
        .iter()
        .filter(|o| o.topic == "results")
        .map(|o| o.key.clone())
        .collect();
    assert!(keys.len() >= 590, "{} keys", keys.len());
}
