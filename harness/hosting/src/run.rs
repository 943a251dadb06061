//! `harness run`: records from a file through a transform, outputs as lines.

use std::sync::Arc;

use anyhow::{bail, Result};
use transform_host::{Batch, Host, Logger, Record, Transform, TransformSpec};

use crate::engine::{batch_ranges, unread_batch, Engine};
use crate::records::{show, InputRecord, OutputLine};
use kafka_client::MAX_PARTITIONS;

pub struct RunOptions {
    pub batch_size: usize,
    /// Partitions of every topic; by default one more than the highest
    /// partition in the input.
    pub partitions: Option<i32>,
    /// Each partition's first offset, as after a restart from a commit;
    /// partitions not given start at 0.
    pub start_offsets: Vec<i64>,
    /// The timestamp of records that give none: `harness run`'s start
    /// (a Go transform's `time.Now()` is the record's time); `harness
    /// test` gives 0, so that a case's output is the same every day.
    pub unstamped_ms: i64,
}

/// Partitions of every topic when none are given: one more than the
/// highest partition in the input.
pub fn default_partitions(records: &[InputRecord]) -> i32 {
    records.iter().map(|r| r.partition + 1).max().unwrap_or(1)
}

/// Offsets count on from `start_offsets` (from 0) in each partition, in
/// input order. `emit` takes each output record with the input line of its
/// batch's first record.
pub fn run(
    host: &Host,
    transform: &Transform,
    spec: TransformSpec,
    records: &[InputRecord],
    options: &RunOptions,
    logger: Logger,
    mut emit: impl FnMut(&OutputLine<'_>, usize),
) -> Result<()> {
    if options.batch_size == 0 {
        bail!("--batch-size must be at least 1");
    }
    let highest = records.iter().max_by_key(|r| r.partition);
    if let Some(r) = highest.filter(|r| r.partition >= MAX_PARTITIONS) {
        bail!(
            "input line {}: partition {}, but a topic has at most {MAX_PARTITIONS} partitions here",
            r.line,
            r.partition
        );
    }
    let partitions = options
        .partitions
        .unwrap_or_else(|| default_partitions(records));
    if let Some(r) = highest.filter(|r| r.partition >= partitions) {
        bail!(
            "input line {}: partition {}, but the topics have {partitions} partitions (--partitions)",
            r.line,
            r.partition
        );
    }
    let outputs = vec![partitions; spec.output_topics.len()];
    let mut engine = Engine::start(host, transform, spec, outputs, logger)
        .map_err(|f| anyhow::Error::new(f).context("the transform failed at start"))?;
    let mut next_offset = vec![0i64; partitions as usize];
    for (next, start) in next_offset.iter_mut().zip(&options.start_offsets) {
        *next = *start;
    }
    let record_partitions: Vec<i32> = records.iter().map(|r| r.partition).collect();
    for (partition, range) in batch_ranges(&record_partitions, options.batch_size) {
        let inputs = &records[range];
        let first_offset = next_offset[partition as usize];
        let batch = Batch {
            records: inputs
                .iter()
                .enumerate()
                .map(|(i, r)| Record {
                    offset: first_offset + i as i64,
                    timestamp_ms: r.timestamp_ms.unwrap_or(options.unstamped_ms),
                    payload: r.payload(),
                })
                .collect(),
        };
        next_offset[partition as usize] += inputs.len() as i64;
        let batch = Arc::new(batch);
        match engine.process(partition, batch.clone()) {
            Ok(outputs) => {
                for out in outputs {
                    let topic = &engine.spec().output_topics[out.topic];
                    emit(
                        &OutputLine::new(topic, out.partition, &out.payload),
                        inputs[0].line,
                    );
                }
            }
            Err(failure) => {
                let culprit = failure
                    .offset
                    .and_then(|o| inputs.get((o - first_offset) as usize));
                let at = match culprit {
                    Some(r) => format!(
                        "the transform failed on input line {} (partition {partition}, offset {}, key {}, value {})",
                        r.line,
                        failure.offset.unwrap_or_default(),
                        show(r.key.as_deref()),
                        show(r.value.as_deref()),
                    ),
                    None => format!(
                        "the transform failed on a batch of partition {partition} (input lines {}..={}, {}) before reading any of its records",
                        inputs[0].line,
                        inputs[inputs.len() - 1].line,
                        unread_batch(&batch),
                    ),
                };
                // The failure stays reachable: reports quote its stderr.
                return Err(anyhow::Error::new(failure).context(at));
            }
        }
    }
    Ok(())
}
