//! The bridge's batch log: a topic with one partition per input partition
//! where the bridge writes, before it produces a batch's outputs, which
//! input offsets the batch holds and where each output partition it writes
//! to ended. See `bridge` for why this makes results exact.

use anyhow::{anyhow, Context, Result};
use record_payload::BorrowedRecord;
use serde::{Deserialize, Serialize};

use topic_io::{Sink, Transport};

/// One batch, as written before its outputs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchEntry {
    /// The deployment that wrote it: another deployment of the same name
    /// never re-runs it.
    #[serde(default)]
    pub deployment: u64,
    pub partition: i32,
    pub first_offset: i64,
    pub last_offset: i64,
    /// For each output topic the batch writes to: the partition, and its end
    /// offset before the batch's first output.
    pub outputs: Vec<OutputEnd>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputEnd {
    pub topic: String,
    pub partition: i32,
    pub end: i64,
}

/// The batch-log topic of a transform.
pub fn topic_name(transform: &str) -> String {
    format!("_harness.{transform}.batches")
}

/// Writes `entry` to its partition of the log and waits until it is
/// stored: outputs may only go out after that.
pub fn write(writer: &mut dyn Sink, topic: &str, entry: &BatchEntry) -> Result<()> {
    let value = serde_json::to_vec(entry)?;
    writer.send(
        topic,
        entry.partition,
        None,
        &BorrowedRecord::new(None, Some(&value)),
    )?;
    writer
        .flush()
        .with_context(|| format!("writing the batch log {topic}"))
}

/// The last entry of each of the first `partitions` partitions of the log.
pub fn last_entries(
    transport: &dyn Transport,
    topic: &str,
    partitions: i32,
) -> Result<Vec<Option<BatchEntry>>> {
    let tails = transport.tail(topic, partitions)?;
    tails
        .into_iter()
        .enumerate()
        .map(|(p, tail)| {
            tail.last
                .map(|value| {
                    serde_json::from_slice::<BatchEntry>(&value).map_err(|e| {
                        anyhow!(
                            "the batch log {topic} partition {p} offset {} is not a batch entry: {e}",
                            tail.end - 1
                        )
                    })
                })
                .transpose()
        })
        .collect()
}
