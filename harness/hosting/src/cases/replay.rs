//! What only breaks in production, shown locally: the same input cut into
//! other batches, delivered again after crashes, or with its partitions
//! interleaved otherwise in one VM, compared with the plain run under an
//! invariant.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{bail, Result};
use serde_json::Value;

use super::diff::differences;
use super::file::{Invariant, Replay};
use crate::engine::batch_ranges;
use crate::records::InputRecord;

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

/// An output record: its line in `harness run`'s output format, and what
/// the invariants look at.
pub struct Output {
    pub line: String,
    /// Which output topic, by its place in the deployment.
    pub topic: usize,
    pub partition: i32,
    /// The input line of the first record of the batch that wrote it.
    pub batch: usize,
}

/// The outputs of the deliveries of a variation: a batch delivered again
/// after a restart (from the commit point, cut as before) must write what
/// it wrote the first time, and counts once. At-least-once delivery makes
/// any transform repeat its outputs there; a transform that loses state
/// on a restart writes other ones.
#[derive(Default)]
pub struct Deliveries {
    pub outputs: Vec<Output>,
    /// Each batch delivered so far, by the input line of its first record.
    delivered: BTreeSet<usize>,
}

impl Deliveries {
    /// Adds a delivery of `records` in batches of `batch_size`, and what it
    /// wrote; returns how its repeated batches differ from their first
    /// delivery (nothing if they do not). `repeats` keeps the outputs of
    /// repeated batches too (a merge counts them once itself).
    pub fn add(
        &mut self,
        records: &[InputRecord],
        batch_size: usize,
        more: Vec<Output>,
        repeats: bool,
    ) -> Vec<String> {
        let partitions: Vec<i32> = records.iter().map(|r| r.partition).collect();
        let batches: Vec<usize> = batch_ranges(&partitions, batch_size)
            .into_iter()
            .map(|(_, range)| records[range.start].line)
            .collect();
        let mut found = Vec::new();
        for &batch in batches.iter().filter(|b| self.delivered.contains(b)) {
            let lines = |outputs: &[Output]| -> Vec<Value> {
                values(
                    outputs
                        .iter()
                        .filter(|o| o.batch == batch)
                        .map(|o| o.line.as_str()),
                )
            };
            let (first, again) = (lines(&self.outputs), lines(&more));
            if first != again {
                found.push(format!(
                    "the batch from input line {batch}, delivered again, wrote other records:"
                ));
                found.extend(
                    differences(&first, &again)
                        .into_iter()
                        .map(|d| format!("  {d}")),
                );
            }
        }
        let delivered = &self.delivered;
        self.outputs.extend(
            more.into_iter()
                .filter(|o| repeats || !delivered.contains(&o.batch)),
        );
        self.delivered.extend(batches);
        found
    }
}

/// The one field of an output line that a merge reads.
#[derive(serde::Deserialize)]
struct ValueOf {
    value: Option<String>,
}

impl Output {
    /// The record's value, as text.
    pub fn value(&self) -> Option<String> {
        serde_json::from_str::<ValueOf>(&self.line).ok()?.value
    }
}

/// What `invariant: merged` compares: the records an application merges
/// (the marketing pipeline's window panes), summed per key over those kept
/// once by their identity, as its consumer counts them; and every other
/// record, once.
pub struct Merged<'a> {
    /// Sums by output topic and what they are of ("the panes of
    /// spring_sale email window 1755438360000").
    pub sums: BTreeMap<(usize, String), Value>,
    pub others: BTreeSet<&'a str>,
}

/// How a binary's application merges a run's outputs; see [`Merged`].
pub type Merge = for<'a> fn(&'a [Output]) -> Merged<'a>;

/// The records as JSON, for a diff.
pub fn values<'a>(outputs: impl IntoIterator<Item = &'a str>) -> Vec<Value> {
    outputs
        .into_iter()
        .map(|line| serde_json::from_str(line).expect("an output line is JSON"))
        .collect()
}

/// The plain run's output, prepared once for every replay's comparison.
pub struct Baseline<'a> {
    invariant: Invariant,
    lines: Vec<&'a str>,
    merged: Option<(Merge, Merged<'a>)>,
}

impl<'a> Baseline<'a> {
    /// `merge` reads the outputs under `merged`.
    pub fn new(
        invariant: Invariant,
        outputs: &'a [Output],
        merge: Option<Merge>,
    ) -> Result<Baseline<'a>> {
        let mut lines: Vec<&str> = outputs.iter().map(|o| o.line.as_str()).collect();
        if invariant == Invariant::Unordered {
            lines.sort_unstable();
        }
        let merged = match (invariant, merge) {
            (Invariant::Merged, Some(merge)) => Some((merge, merge(outputs))),
            (Invariant::Merged, None) => {
                bail!("invariant `merged` needs a binary that knows how its outputs merge: use identical or unordered")
            }
            _ => None,
        };
        Ok(Baseline {
            invariant,
            lines,
            merged,
        })
    }

    pub fn invariant(&self) -> Invariant {
        self.invariant
    }

    /// How `got` breaks the invariant: the first differences, or nothing
    /// when it holds.
    pub fn broken(&self, got: &[Output]) -> Vec<String> {
        let mut lines: Vec<&str> = got.iter().map(|o| o.line.as_str()).collect();
        match (&self.merged, self.invariant) {
            (Some((merge, expected)), _) => expected.differences(&merge(got)),
            (None, invariant) => {
                if invariant == Invariant::Unordered {
                    lines.sort_unstable();
                }
                if lines == self.lines {
                    Vec::new()
                } else {
                    differences(
                        &values(self.lines.iter().copied()),
                        &values(lines.iter().copied()),
                    )
                }
            }
        }
    }
}

impl Merged<'_> {
    fn differences(&self, got: &Merged<'_>) -> Vec<String> {
        let mut lines = Vec::new();
        let keys = self
            .sums
            .keys()
            .chain(got.sums.keys().filter(|k| !self.sums.contains_key(*k)));
        for key in keys {
            match (self.sums.get(key), got.sums.get(key)) {
                (Some(a), Some(b)) if a == b => {}
                (a, b) => lines.push(format!(
                    "{} (output topic {}) sum to {}, not {}",
                    key.1,
                    key.0 + 1,
                    show(b),
                    show(a)
                )),
            }
        }
        for r in self.others.difference(&got.others) {
            lines.push(format!("missing: {r}"));
        }
        for r in got.others.difference(&self.others) {
            lines.push(format!("not expected: {r}"));
        }
        lines.truncate(12);
        lines
    }
}

fn show(sums: Option<&Value>) -> String {
    sums.map_or("nothing".into(), Value::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(partitions: &[i32]) -> Vec<InputRecord> {
        partitions
            .iter()
            .enumerate()
            .map(|(i, p)| {
                InputRecord::parse(i + 1, &format!(r#"{{"partition":{p},"value":"{i}"}}"#)).unwrap()
            })
            .collect()
    }

    #[test]
    fn a_restart_delivers_again_from_the_batch_before_with_the_same_offsets_and_cuts() {
        let input = records(&[0; 20]);
        let v = restarts(1, &input, 4, 1);
        assert_eq!(v.len(), 1);
        assert_eq!(
            v[0].name,
            "restart after record 12 (delivered again from record 5)"
        );
        let runs: Vec<_> = v[0]
            .runs
            .iter()
            .map(|d| (d.records.clone(), d.start_offsets.clone()))
            .collect();
        assert_eq!(
            runs,
            [
                ((0..12).collect::<Vec<_>>(), vec![0]),
                ((4..20).collect::<Vec<_>>(), vec![4]),
            ]
        );
        // Two partitions: each keeps its own offsets.
        let input = records(&[0, 0, 1, 1, 0, 0, 1, 1]);
        let v = restarts(1, &input, 2, 2);
        assert_eq!(v[0].runs[1].start_offsets, [2, 0]);
        assert!(restarts(0, &input, 2, 2).is_empty());
    }

    #[test]
    fn interleavings_keep_each_partition_in_order() {
        let input = records(&[0, 0, 1, 1, 2]);
        assert_eq!(alternating(&input), [0, 2, 4, 1, 3]);
        let replay = Replay {
            batch_sizes: vec![3],
            restarts: 0,
            interleave: true,
            invariant: Invariant::Unordered,
        };
        let names: Vec<_> = variations(&replay, &input, 100, 3)
            .into_iter()
            .map(|v| (v.name, v.runs[0].records.clone(), v.batch_size))
            .collect();
        assert_eq!(
            names,
            [
                ("batch size 3".to_string(), vec![0, 1, 2, 3, 4], 3),
                (
                    "partitions one after another, the highest first".to_string(),
                    vec![4, 2, 3, 0, 1],
                    100
                ),
                (
                    "partitions alternating record by record".to_string(),
                    vec![0, 2, 4, 1, 3],
                    100
                ),
            ]
        );
    }
}
