//! The bridge's batch log: a topic with one partition per input partition
//! where the bridge writes, before it produces a batch's outputs, which
//! input offsets the batch holds and where each output partition it writes
//! to ended. See `bridge` for why this makes results exact.

use anyhow::{anyhow, bail, Result};
use generator::kafka::{flush, send, TrackedProducer};
use rdkafka::producer::{BaseRecord, Producer};
use rdkafka::Message;
use serde::{Deserialize, Serialize};

use crate::tail::read_tail;

/// One batch, as written before its outputs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchEntry {
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

/// Writes `entry` to its partition of the log and waits for the broker's
/// acknowledgement: outputs may only go out once it is stored.
pub fn write(producer: &TrackedProducer, topic: &str, entry: &BatchEntry) -> Result<()> {
    let value = serde_json::to_vec(entry)?;
    let failed = producer.context().failed();
    send(
        producer,
        BaseRecord::to(topic)
            .partition(entry.partition)
            .payload(value.as_slice()),
    )?;
    flush(producer, &mut |_| {})?;
    if producer.context().failed() > failed {
        bail!(
            "the batch log {topic} could not be written: {}",
            producer.context().first_error().unwrap_or_default()
        );
    }
    Ok(())
}

/// The last entry of each of the first `partitions` partitions of the log.
pub fn last_entries(
    brokers: &str,
    topic: &str,
    partitions: i32,
) -> Result<Vec<Option<BatchEntry>>> {
    let mut entries = vec![None; partitions as usize];
    let mut error = None;
    read_tail(
        brokers,
        topic,
        partitions,
        &mut |m| match serde_json::from_slice::<BatchEntry>(m.payload().unwrap_or_default()) {
            Ok(entry) => entries[m.partition() as usize] = Some(entry),
            Err(e) => {
                error.get_or_insert(anyhow!(
                    "the batch log {topic} partition {} offset {} is not a batch entry: {e}",
                    m.partition(),
                    m.offset()
                ));
            }
        },
    )?;
    match error {
        Some(e) => Err(e),
        None => Ok(entries),
    }
}
