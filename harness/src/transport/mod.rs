//! Where a hosted transform's topics live: a Kafka-protocol broker, or
//! the embedded topics (in memory or on disk). The bridge is written against
//! these traits only, so both modes share every step of its batch, commit
//! and recovery logic and differ only in the transport they are given.

pub mod embedded;
pub mod kafka;

use std::time::Duration;

use admin::StartOffset;
use anyhow::Result;
use record_payload::BorrowedRecord;
use transform_host::Record;

pub use kafka::KafkaTransport;
pub use topics::{StartAt, Topics};

/// The end of a partition and the value of its last record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tail {
    /// The offset the next record will get.
    pub end: i64,
    pub last: Option<Vec<u8>>,
}

/// What a poll returns.
pub enum Polled {
    /// A record of an input partition; the payload in Redpanda's record
    /// format.
    Record(i32, Record),
    /// Nothing within the wait.
    Idle,
    /// A transient problem the transport recovers from by itself.
    Trouble(String),
}

pub trait Transport: Send + Sync {
    /// Where the topics are, for messages.
    fn describe(&self) -> String;
    /// The partition count of `topic`, or `None` if it does not exist.
    fn partition_count(&self, topic: &str) -> Result<Option<i32>>;
    /// The names of every topic.
    fn topic_names(&self) -> Result<Vec<String>>;
    /// The first offset kept and the end of partitions `0..partitions`.
    fn bounds(&self, topic: &str, partitions: i32) -> Result<Vec<(i64, i64)>> {
        let lows = self.start_offsets(topic, partitions, StartOffset::FromStart(0))?;
        let tails = self.tail(topic, partitions)?;
        Ok(lows
            .into_iter()
            .zip(tails)
            .map(|(l, t)| (l, t.end))
            .collect())
    }
    /// Waits until everything written is stored for good: on a broker a
    /// flushed writer already is.
    fn sync(&self) -> Result<()> {
        Ok(())
    }
    /// The partition count of `topic`, creating it with `partitions` if it
    /// does not exist.
    fn ensure_topic(&self, topic: &str, partitions: i32) -> Result<i32>;
    /// The true end and last record of partitions `0..partitions`.
    fn tail(&self, topic: &str, partitions: i32) -> Result<Vec<Tail>>;
    /// The offsets `group` committed on partitions `0..partitions`.
    fn committed(&self, group: &str, topic: &str, partitions: i32) -> Result<Vec<Option<i64>>>;
    /// Commits the next offset to read, per partition, as `group`.
    fn commit(&self, group: &str, topic: &str, offsets: &[(i32, i64)]) -> Result<()>;
    /// Where a new transform starts on partitions `0..partitions`; see
    /// [`resolve_start`].
    fn start_offsets(&self, topic: &str, partitions: i32, start: StartOffset) -> Result<Vec<i64>>;
    /// Up to `max` records of a partition from `offset` on, for readers
    /// outside the pipeline: no group, no commits.
    fn read(&self, topic: &str, partition: i32, offset: i64, max: usize) -> Result<Vec<Record>>;
    /// Reads partition `p` of `topic` from `starts[p]`, committing as `group`.
    fn reader(&self, group: &str, topic: &str, starts: &[StartAt]) -> Result<Box<dyn Reader>>;
    fn writer(&self) -> Result<Box<dyn Writer>>;
}

pub trait Reader: Send {
    fn poll(&mut self, wait: Duration) -> Polled;
    /// Reads `partition` from `offset` on.
    fn seek(&mut self, partition: i32, offset: i64) -> Result<()>;
    /// Commits the next offset to read, per partition; `wait` for the
    /// broker's answer.
    fn commit(&mut self, offsets: &[(i32, i64)], wait: bool) -> Result<()>;
    /// Records in each partition past what was read, when it can be told.
    fn lags(&self) -> Option<Vec<i64>>;
}

/// Where a new transform starts in a partition holding offsets `low..end`,
/// as Redpanda resolves it (`src/v/transform/transform_processor.cc:201-256`):
/// `+N` from the start, but no further than the last record; `-N` the last
/// N records (from the first one when there are fewer; Redpanda's
/// arithmetic then starts one after it); `@T` the first record stamped at
/// or after T, else the end. `at_time` finds that record.
pub fn resolve_start(
    start: StartOffset,
    low: i64,
    end: i64,
    at_time: impl FnOnce(i64) -> Result<Option<i64>>,
) -> Result<i64> {
    Ok(match start {
        StartOffset::FromStart(n) => low.saturating_add(n).min((end - 1).max(low)),
        StartOffset::FromEnd(n) => end.saturating_sub(n).max(low),
        StartOffset::Timestamp(t) => at_time(t)?.unwrap_or(end),
    })
}

pub trait Writer: Send {
    /// Queues a record for a topic partition.
    fn send(&mut self, topic: &str, partition: i32, record: &BorrowedRecord<'_>) -> Result<()>;
    /// Waits until everything sent is stored; fails if anything could not
    /// be, for good.
    fn flush(&mut self) -> Result<()>;
    /// The offset after the last record this writer stored in a partition.
    fn end_offset(&self, topic: &str, partition: i32) -> Option<i64>;
}
