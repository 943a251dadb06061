//! Where a hosted transform's topics live: a Kafka-protocol broker, or
//! in-process topics for the embedded mode. The bridge is written against
//! these traits only, so both modes share every step of its batch, commit
//! and recovery logic and differ only in the transport they are given.

pub mod kafka;
pub mod memory;

use std::time::Duration;

use anyhow::Result;
use record_payload::BorrowedRecord;
use transform_host::Record;

pub use kafka::KafkaTransport;
pub use memory::Topics;

/// Where a reader starts on a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    Beginning,
    End,
    Offset(i64),
}

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
    /// The partition count of `topic`, creating it with `partitions` if it
    /// does not exist.
    fn ensure_topic(&self, topic: &str, partitions: i32) -> Result<i32>;
    /// The true end and last record of partitions `0..partitions`.
    fn tail(&self, topic: &str, partitions: i32) -> Result<Vec<Tail>>;
    /// The offsets `group` committed on partitions `0..partitions`.
    fn committed(&self, group: &str, topic: &str, partitions: i32) -> Result<Vec<Option<i64>>>;
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
    /// Records in the topic past what was read, when it can be told.
    fn lag(&self) -> Option<i64>;
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
