//! Where each input partition resumes when a bridge starts: from the batch
//! log after a crash (the last batch re-run with the same cut, and the
//! outputs it already wrote skipped), else from the committed offset, else
//! where the deployment says a new transform starts.

use std::collections::HashMap;
use std::time::Instant;

use anyhow::{bail, Result};
use topic_io::{Offsets, StartAt, Transport};
use transform_host::{Record, TransformSpec};

use super::Deployment;
use crate::backoff::Backoff;
use crate::batch_log::{self, BatchEntry};

/// Where a partition resumes, and from how far back it is being read.
///
/// A resume offset can fall inside a batch a Kafka producer wrote. Kafka then
/// returns the whole batch and the client drops the records before the
/// offset; Tansu 0.6 instead answers with the *next* batch, silently
/// skipping the rest. So the bridge reads from before the offset, drops what
/// comes before it, and reads from further back still if the first record
/// it gets is past it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Resume {
    pub at: i64,
    pub from: i64,
}

/// How far before a resume offset reading starts: librdkafka's largest
/// batch (`batch.num.messages`).
const REWIND: i64 = 10_000;

/// Where each input partition stands.
pub(super) struct PartitionState {
    pub buffer: Vec<Record>,
    /// After a crash: the first batch ends exactly at this offset.
    pub cut_at: Option<i64>,
    pub resume: Option<Resume>,
    /// After a crash: outputs of the first batch already written, per
    /// output topic.
    pub skip: Vec<u64>,
    /// The offset after the last batch whose outputs are all acknowledged.
    pub done: Option<i64>,
    pub committed: Option<i64>,
    /// After the transform failed on a batch of it: when the partition is
    /// read again, from the batch's first offset.
    pub retry: Option<(Instant, i64)>,
    pub backoff: Backoff,
    /// The offset after the last record the reader gave of it.
    pub read_to: i64,
}

/// Every partition's state, and where its reader starts.
pub(super) struct Plan {
    pub partitions: Vec<PartitionState>,
    pub starts: Vec<StartAt>,
}

fn read_from(state: &mut PartitionState, at: i64) -> StartAt {
    StartAt::Offset(resume_at(state, at))
}

/// The partition's records are wanted again from `at`: where to read from.
pub(super) fn resume_at(state: &mut PartitionState, at: i64) -> i64 {
    let from = (at - REWIND).max(0);
    state.resume = Some(Resume { at, from });
    from
}

pub(super) fn plan(
    transport: &dyn Transport,
    offsets: &mut dyn Offsets,
    spec: &TransformSpec,
    deployment: Deployment,
    inputs: i32,
    start_ends: &HashMap<(usize, i32), i64>,
    batch_log: &str,
) -> Result<Plan> {
    let input = spec.input_topic.as_str();
    let outputs = spec.output_topics.len();
    let state = |committed: Option<i64>| PartitionState {
        buffer: Vec::new(),
        cut_at: None,
        resume: None,
        skip: vec![0; outputs],
        done: committed,
        committed,
        retry: None,
        backoff: Backoff::default(),
        read_to: 0,
    };
    let mut plan = Plan {
        partitions: Vec::new(),
        starts: Vec::new(),
    };
    if deployment.fresh {
        // A new deployment starts where it says, whatever an earlier one of
        // the same name committed; the start is committed at once.
        let starts = transport.start_offsets(input, inputs, deployment.start)?;
        let commits: Vec<(i32, i64)> = starts
            .iter()
            .enumerate()
            .map(|(p, &o)| (p as i32, o))
            .collect();
        offsets.commit(&commits, true)?;
        for offset in starts {
            let mut partition = state(Some(offset));
            plan.starts.push(read_from(&mut partition, offset));
            plan.partitions.push(partition);
        }
        return Ok(plan);
    }
    let entries = batch_log::last_entries(transport, batch_log, inputs)?;
    let committed = offsets.committed(inputs)?;
    let mut fresh_starts = None;
    for (p, committed) in committed.into_iter().enumerate() {
        let mut partition = state(committed);
        let entry = entries[p].as_ref().filter(|e| {
            e.deployment == deployment.id && committed.is_none_or(|c| c <= e.last_offset)
        });
        let start = match (entry, committed) {
            (Some(entry), _) => {
                rerun(spec, entry, start_ends, &mut partition, p)?;
                read_from(&mut partition, entry.first_offset)
            }
            (None, Some(c)) => read_from(&mut partition, c),
            (None, None) => {
                let starts = match &fresh_starts {
                    Some(starts) => starts,
                    None => fresh_starts.insert(transport.start_offsets(
                        input,
                        inputs,
                        deployment.start,
                    )?),
                };
                read_from(&mut partition, starts[p])
            }
        };
        plan.starts.push(start);
        plan.partitions.push(partition);
    }
    Ok(plan)
}

/// Sets a partition up to re-run the crashed run's last batch.
fn rerun(
    spec: &TransformSpec,
    entry: &BatchEntry,
    start_ends: &HashMap<(usize, i32), i64>,
    partition: &mut PartitionState,
    p: usize,
) -> Result<()> {
    for end in &entry.outputs {
        let Some(t) = spec.output_topics.iter().position(|t| *t == end.topic) else {
            bail!("the batch log names output topic {}, which this transform does not have: outputs cannot change on a redeploy", end.topic);
        };
        let now = start_ends.get(&(t, end.partition)).copied().unwrap_or(0);
        partition.skip[t] = (now - end.end).max(0) as u64;
    }
    let already: Vec<String> = spec
        .output_topics
        .iter()
        .zip(&partition.skip)
        .map(|(t, n)| format!("{n} to {t}"))
        .collect();
    tracing::info!(
        "partition {p}: re-running offsets {}..={} as one batch; already written: {}",
        entry.first_offset,
        entry.last_offset,
        already.join(", ")
    );
    partition.cut_at = Some(entry.last_offset);
    Ok(())
}
