//! What only breaks in production, shown locally: the same input cut into
//! other batches, delivered again after crashes, or with its partitions
//! interleaved otherwise in one VM, compared with the plain run under an
//! invariant.

use std::collections::{BTreeMap, BTreeSet};

use analytics::Pane;
use dashboard::merge::{Merger, Retention};
use serde_json::Value;

use super::diff::differences;
use super::file::{Invariant, Replay};
use crate::records::InputRecord;
use crate::runtime::batch_ranges;

/// One way of delivering the input again.
pub struct Variation {
    /// How a reader knows it: "batch size 7", "restart after record 42 …".
    pub name: String,
    /// Pieces run one after another, each by a new VM: the records (by
    /// index into the input, in this order) and each partition's first
    /// offset.
    pub runs: Vec<Delivery>,
    pub batch_size: usize,
}

pub struct Delivery {
    pub records: Vec<usize>,
    pub start_offsets: Vec<i64>,
}

/// The variations `replay` asks for over `records`, whose plain run has
/// `batch_size` and `partitions`.
pub fn variations(
    replay: &Replay,
    records: &[InputRecord],
    batch_size: usize,
    partitions: i32,
) -> Vec<Variation> {
    let all: Vec<usize> = (0..records.len()).collect();
    let whole = |order: Vec<usize>| Delivery {
        records: order,
        start_offsets: Vec::new(),
    };
    let mut out: Vec<Variation> = replay
        .batch_sizes
        .iter()
        .map(|&size| Variation {
            name: format!("batch size {size}"),
            runs: vec![whole(all.clone())],
            batch_size: size,
        })
        .collect();
    out.extend(restarts(replay.restarts, records, batch_size, partitions));
    if replay.interleave {
        // Each partition's own order is kept, as a broker keeps it.
        let mut highest_first = all.clone();
        highest_first.sort_by_key(|&i| std::cmp::Reverse(records[i].partition));
        out.push(Variation {
            name: "partitions one after another, the highest first".into(),
            runs: vec![whole(highest_first)],
            batch_size,
        });
        out.push(Variation {
            name: "partitions alternating record by record".into(),
            runs: vec![whole(alternating(records))],
            batch_size,
        });
    }
    out
}

/// Record indices taking one record of each partition in turn.
fn alternating(records: &[InputRecord]) -> Vec<usize> {
    let mut queues: BTreeMap<i32, std::collections::VecDeque<usize>> = BTreeMap::new();
    for (i, r) in records.iter().enumerate() {
        queues.entry(r.partition).or_default().push_back(i);
    }
    let mut order = Vec::with_capacity(records.len());
    while order.len() < records.len() {
        for queue in queues.values_mut() {
            order.extend(queue.pop_front());
        }
    }
    order
}

/// `n` crashes spread over the input. Each loses the VM after the batch
/// holding record k (its outputs were written), and a new VM is given the
/// records again from the start of the batch before (the commit point,
/// which lags one batch), cut into the same batches, as Redpanda delivers
/// again from the last commit.
fn restarts(
    n: usize,
    records: &[InputRecord],
    batch_size: usize,
    partitions: i32,
) -> Vec<Variation> {
    if n == 0 || records.is_empty() {
        return Vec::new();
    }
    let partition_of: Vec<i32> = records.iter().map(|r| r.partition).collect();
    let batches = batch_ranges(&partition_of, batch_size);
    let mut runs = Vec::new();
    let mut names = Vec::new();
    let mut from_batch = 0;
    for i in 1..=n {
        let k = records.len() * i / (n + 1);
        let crashed = batches
            .iter()
            .position(|(_, range)| range.contains(&k))
            .unwrap_or(batches.len() - 1);
        if crashed < from_batch {
            continue;
        }
        let start = batches[from_batch].1.start;
        runs.push(Delivery {
            records: (start..batches[crashed].1.end).collect(),
            start_offsets: offsets_before(records, start, partitions),
        });
        // The commit point lags one batch, but never goes back past the
        // last one.
        from_batch = crashed.saturating_sub(1).max(from_batch + 1).min(crashed);
        let again = batches[from_batch].1.start;
        names.push(format!(
            "restart after record {} (delivered again from record {})",
            batches[crashed].1.end,
            again + 1
        ));
    }
    let start = batches[from_batch].1.start;
    runs.push(Delivery {
        records: (start..records.len()).collect(),
        start_offsets: offsets_before(records, start, partitions),
    });
    vec![Variation {
        name: names.join(", "),
        runs,
        batch_size,
    }]
}

/// Each partition's next offset after the records before `index`.
fn offsets_before(records: &[InputRecord], index: usize, partitions: i32) -> Vec<i64> {
    let mut offsets = vec![0i64; partitions.max(1) as usize];
    for r in &records[..index] {
        if let Some(o) = offsets.get_mut(r.partition as usize) {
            *o += 1;
        }
    }
    offsets
}

/// How `got` breaks `invariant` against the plain run's `expected`: the
/// first differences, or nothing when it holds.
pub fn broken(invariant: Invariant, expected: &[Value], got: &[Value]) -> Vec<String> {
    match invariant {
        Invariant::Identical => differences(expected, got),
        Invariant::Unordered => {
            let sorted = |records: &[Value]| {
                let mut v = records.to_vec();
                v.sort_by_cached_key(|r| r.to_string());
                v
            };
            differences(&sorted(expected), &sorted(got))
        }
        Invariant::Merged => {
            let (a, b) = (merged(expected), merged(got));
            let mut lines = Vec::new();
            for key in a
                .panes
                .keys()
                .chain(b.panes.keys().filter(|k| !a.panes.contains_key(*k)))
            {
                match (a.panes.get(key), b.panes.get(key)) {
                    (Some(x), Some(y)) if x == y => {}
                    (x, y) => lines.push(format!(
                        "the panes of {} {} window {} sum to {}, not {}",
                        key.1,
                        key.2,
                        key.3,
                        show(y),
                        show(x)
                    )),
                }
            }
            for r in a.others.difference(&b.others) {
                lines.push(format!("missing: {r}"));
            }
            for r in b.others.difference(&a.others) {
                lines.push(format!("not expected: {r}"));
            }
            lines.truncate(12);
            lines
        }
    }
}

fn show(sums: Option<&Value>) -> String {
    sums.map_or("nothing".into(), Value::to_string)
}

/// Output records as the dashboard would count them.
struct Merged {
    /// Sums per (topic, campaign, channel, window start), over panes kept
    /// once by identity.
    panes: BTreeMap<(String, String, String, i64), Value>,
    /// Every other record, once.
    others: BTreeSet<String>,
}

fn merged(records: &[Value]) -> Merged {
    let mut mergers: BTreeMap<String, Merger> = BTreeMap::new();
    let mut others = BTreeSet::new();
    for record in records {
        let pane = record["value"]
            .as_str()
            .and_then(|v| serde_json::from_str::<Pane>(v).ok());
        match (pane, record["topic"].as_str(), record["partition"].as_i64()) {
            (Some(pane), Some(topic), Some(partition)) => {
                mergers
                    .entry(topic.to_string())
                    .or_insert_with(|| {
                        Merger::new(
                            0,
                            Retention {
                                span_ms: i64::MAX,
                                max_windows: usize::MAX,
                            },
                        )
                    })
                    .add(partition as i32, &pane);
            }
            _ => {
                others.insert(record.to_string());
            }
        }
    }
    let mut panes = BTreeMap::new();
    for (topic, merger) in &mergers {
        for w in merger.windows() {
            let sums = serde_json::json!({
                "impressions": w.counters.impressions,
                "clicks": w.counters.clicks,
                "conversions": w.counters.conversions,
                "spend_micros": w.counters.spend_micros,
                "records": w.records,
            });
            panes.insert(
                (
                    topic.clone(),
                    w.campaign.to_string(),
                    w.channel.to_string(),
                    w.window_start,
                ),
                sums,
            );
        }
    }
    Merged { panes, others }
}
