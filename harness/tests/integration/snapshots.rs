//! The transforms over fixture files, through the harness exactly as
//! Redpanda would run them; every output record is snapshotted. The
//! pipeline's own cases are `harness test` case files in `tests/cases`.

use crate::common;

use common::*;

#[test]
fn enrich_alone_writes_events_and_dead_letters() {
    let spec = spec_with_topics("enrich", "logs", &["events", "logs.dlq"]);
    insta::assert_snapshot!(render(&run_module(
        "@enrich",
        spec,
        &read_fixture("invalid.jsonl"),
        100
    )));
}

/// enrich then aggregate, chained over a topic, give the pipeline's panes
/// (but for the offsets, which are of `events` rather than `logs`).
#[test]
fn enrich_then_aggregate_equals_the_pipeline() {
    let records = read_fixture("partitions.jsonl");
    let enriched = run_module(
        "@enrich",
        spec_with_topics("enrich", "logs", &["events", "logs.dlq"]),
        &records,
        2,
    );
    let panes = run_module(
        "@aggregate",
        spec_with_topics("aggregate", "events", &["results"]),
        &as_inputs(&enriched, "events"),
        2,
    );
    insta::assert_snapshot!(render(&panes));
    let direct: Vec<_> = run_module("@pipeline", pipeline_spec(), &records, 2)
        .into_iter()
        .filter(|o| o.topic == "results")
        .collect();
    assert_eq!(panes.len(), direct.len());
    let without_offsets = |o: &Out| {
        let mut v = json(o);
        for field in ["first_offset", "last_offset"] {
            v.as_object_mut().unwrap().remove(field);
        }
        (o.partition, v)
    };
    for (a, b) in panes.iter().zip(&direct) {
        assert_eq!(without_offsets(a), without_offsets(b));
    }
}

/// Every rejected record reaches `logs.dlq` with its key, value and headers
/// byte for byte, then the reason; nothing else is lost.
#[test]
fn dead_letters_keep_the_original_bytes() {
    let records = read_fixture("invalid.jsonl");
    let outs = run_module("@pipeline", pipeline_spec(), &records, 3);
    let dead: Vec<_> = outs.iter().filter(|o| o.topic == "logs.dlq").collect();
    let events = outs.iter().filter(|o| o.topic == "events").count();
    assert_eq!(dead.len() + events, records.len());
    for (out, input) in dead.iter().zip(&records) {
        assert_eq!(out.key.as_deref().map(str::as_bytes), input.key.as_deref());
        assert_eq!(
            out.value.as_deref().map(str::as_bytes),
            input.value.as_deref()
        );
        let original: Vec<_> = out.headers[..out.headers.len() - 3]
            .iter()
            .map(|(k, v)| {
                (
                    k.as_bytes().to_vec(),
                    v.as_ref().map(|v| v.as_bytes().to_vec()),
                )
            })
            .collect();
        assert_eq!(original, input.headers);
        let names: Vec<_> = out.headers[out.headers.len() - 3..]
            .iter()
            .map(|(k, _)| k.as_str())
            .collect();
        assert_eq!(names, ["error", "error.kind", "error.stage"]);
    }
}
