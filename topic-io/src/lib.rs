//! One model for where records come from and go, as Redpanda's transform
//! subsystem has it (`src/v/transform/io.h`: a source, a sink and an
//! offset tracker) and Vector's sources and sinks: a [`Source`] reads a
//! topic's partitions, a [`Sink`] writes records, [`Offsets`] reads and
//! commits a consumer group's positions, and a [`Transport`] is where the
//! topics live and opens all three. It is implemented once per transport:
//! for a Kafka-protocol broker in `kafka-client`, for the embedded topics
//! in `topics`. The generator writes through a sink, the dashboard reads
//! through sources, and the harness hosts transforms between them, each
//! the same code whatever the transport.

use std::time::Duration;

use anyhow::Result;
pub use record_payload::{BorrowedHeader, BorrowedRecord, Record};
use serde::{Deserialize, Serialize};

/// Where a topic's partitions are, and how to reach them.
pub trait Transport: Send + Sync {
    /// Where the topics are, for messages.
    fn describe(&self) -> String;
    /// Why the topics cannot be reached, when the other side says so
    /// (credentials or certificates refused); `None` when it cannot tell.
    fn diagnose(&self) -> Option<String> {
        None
    }
    /// The partition count of `topic`, or `None` if it does not exist.
    fn partition_count(&self, topic: &str) -> Result<Option<i32>>;
    /// The names of every topic.
    fn topic_names(&self) -> Result<Vec<String>>;
    /// The partition count of `topic`, creating it with `partitions` if it
    /// does not exist.
    fn ensure_topic(&self, topic: &str, partitions: i32) -> Result<i32>;
    /// The first offset kept and the true end of partitions `0..partitions`.
    fn bounds(&self, topic: &str, partitions: i32) -> Result<Vec<(i64, i64)>>;
    /// The true end and the last record's value of partitions
    /// `0..partitions`.
    fn tail(&self, topic: &str, partitions: i32) -> Result<Vec<Tail>>;
    /// The first offset of a partition whose record is stamped at or after
    /// `ms`, if any.
    fn offset_for_time(&self, topic: &str, partition: i32, ms: i64) -> Result<Option<i64>>;
    /// Up to `max` records of a partition from `offset` on, for readers
    /// outside any group: one look, no commits.
    fn read(&self, topic: &str, partition: i32, offset: i64, max: usize) -> Result<Vec<Record>>;
    /// Reads partition `p` of `topic` from `starts[p]` for consumer group
    /// `group`, whose commits (through [`Transport::offsets`]) say what it
    /// no longer needs.
    fn source(&self, group: &str, topic: &str, starts: &[StartAt]) -> Result<Box<dyn Source>>;
    /// Writes records to any topic.
    fn sink(&self) -> Result<Box<dyn Sink>>;
    /// The committed positions of consumer group `group` on `topic`.
    fn offsets(&self, group: &str, topic: &str) -> Result<Box<dyn Offsets>>;
    /// Waits until everything written is stored for good: on a broker a
    /// flushed sink already is.
    fn sync(&self) -> Result<()> {
        Ok(())
    }
    /// Where a new reader starts on partitions `0..partitions`; see
    /// [`resolve_start`].
    fn start_offsets(&self, topic: &str, partitions: i32, start: StartOffset) -> Result<Vec<i64>> {
        let bounds = self.bounds(topic, partitions)?;
        (0..partitions)
            .zip(bounds)
            .map(|(p, (low, end))| {
                resolve_start(start, low, end, |ms| self.offset_for_time(topic, p, ms))
            })
            .collect()
    }
}

/// Reads the partitions of one topic, taking turns between them.
pub trait Source: Send {
    /// The next record, waiting up to `wait` for one.
    fn poll(&mut self, wait: Duration) -> Polled;
    /// Reads `partition` from `offset` on.
    fn seek(&mut self, partition: i32, offset: i64) -> Result<()>;
    /// Records in each partition past what was read; `None` when the other
    /// side cannot be asked now.
    fn lags(&self) -> Option<Vec<i64>>;
    /// Whether every partition has been read to the end it had when the
    /// source was opened.
    fn caught_up(&self) -> bool;
}

/// What a poll returns.
#[derive(Debug)]
pub enum Polled {
    /// A record of a partition; the payload in Redpanda's record format.
    Record(i32, Record),
    /// Nothing within the wait.
    Idle,
    /// A transient problem the transport recovers from by itself.
    Trouble(String),
}

/// Writes records to topics, in the order sent per partition.
pub trait Sink: Send {
    /// Queues a record for a topic partition, stamped with `timestamp_ms`,
    /// or when it is stored if `None` (as a broker stamps what it appends).
    fn send(
        &mut self,
        topic: &str,
        partition: i32,
        timestamp_ms: Option<i64>,
        record: &BorrowedRecord<'_>,
    ) -> Result<()>;
    /// Sends what the sink keeps to send together, without waiting for it
    /// to be stored: a sender calls it before it waits for its next record,
    /// and every so many records at full speed.
    fn push(&mut self) -> Result<()> {
        Ok(())
    }
    /// Waits until everything sent is stored; fails if anything could not
    /// be, for good.
    fn flush(&mut self) -> Result<()>;
    /// The offset after the last record this sink stored in a partition.
    fn end_offset(&self, topic: &str, partition: i32) -> Option<i64>;
    /// Records that could not be stored, for good, so far.
    fn failed(&self) -> u64 {
        0
    }
}

/// A consumer group's committed positions on one topic.
pub trait Offsets: Send {
    /// The committed position (the next offset to read) of partitions
    /// `0..partitions`.
    fn committed(&self, partitions: i32) -> Result<Vec<Option<i64>>>;
    /// Commits the next offset to read, per partition; `wait` for the
    /// other side's answer.
    fn commit(&mut self, offsets: &[(i32, i64)], wait: bool) -> Result<()>;
    /// Whether a writer waits for this topic's readers to commit, so that
    /// they commit what they have done now rather than at their interval:
    /// topics in memory keep what a reader has not committed.
    fn commit_wanted(&self) -> bool {
        false
    }
}

/// The end of a partition and the value of its last record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tail {
    /// The offset the next record will get.
    pub end: i64,
    pub last: Option<Vec<u8>>,
}

/// Where a source starts on a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    Beginning,
    End,
    Offset(i64),
}

/// Where a new transform starts, resolved per partition by its host
/// (rpk's `--from-offset`). Kept as `["start"|"end"|"time", N]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "(String, i64)", try_from = "(String, i64)")]
pub enum StartOffset {
    /// `+N`: N records after the partition's start.
    FromStart(i64),
    /// `-N`: the last N records.
    FromEnd(i64),
    /// `@T`: the first record stamped at or after T (ms).
    Timestamp(i64),
}

impl From<StartOffset> for (String, i64) {
    fn from(start: StartOffset) -> (String, i64) {
        match start {
            StartOffset::FromStart(n) => ("start".into(), n),
            StartOffset::FromEnd(n) => ("end".into(), n),
            StartOffset::Timestamp(t) => ("time".into(), t),
        }
    }
}

impl TryFrom<(String, i64)> for StartOffset {
    type Error = String;

    fn try_from((kind, n): (String, i64)) -> Result<StartOffset, String> {
        match kind.as_str() {
            "start" => Ok(StartOffset::FromStart(n)),
            "end" => Ok(StartOffset::FromEnd(n)),
            "time" => Ok(StartOffset::Timestamp(n)),
            other => Err(format!(
                "`{other}` is not where a transform starts: start, end or time"
            )),
        }
    }
}

/// Where a new transform starts in a partition holding offsets `low..end`,
/// as Redpanda resolves it (`src/v/transform/transform_processor.cc`,
/// `processor::load_latest_committed`): `+N` from the start, but no further
/// than the last record; `-N` the last N records (from the first one when
/// there are fewer); `@T` the first record stamped at or after T, else the
/// end. `at_time` finds that record.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_start_offset_is_kept_as_kind_and_number_and_an_unknown_kind_is_refused() {
        for start in [
            StartOffset::FromStart(5),
            StartOffset::FromEnd(3),
            StartOffset::Timestamp(1_718_000_000_000),
        ] {
            let json = serde_json::to_string(&start).unwrap();
            assert_eq!(serde_json::from_str::<StartOffset>(&json).unwrap(), start);
        }
        assert_eq!(
            serde_json::to_string(&StartOffset::FromEnd(3)).unwrap(),
            r#"["end",3]"#
        );
        let err = serde_json::from_str::<StartOffset>(r#"["middle",3]"#).unwrap_err();
        assert!(err.to_string().contains("`middle` is not where"), "{err}");
    }

    #[test]
    fn starts_resolve_within_the_partition() {
        let never = |_| Ok(None);
        // Offsets 10..20 kept.
        let at = |s| resolve_start(s, 10, 20, never).unwrap();
        assert_eq!(at(StartOffset::FromStart(0)), 10);
        assert_eq!(at(StartOffset::FromStart(4)), 14);
        assert_eq!(
            at(StartOffset::FromStart(50)),
            19,
            "no further than the last"
        );
        assert_eq!(at(StartOffset::FromEnd(3)), 17);
        assert_eq!(
            at(StartOffset::FromEnd(50)),
            10,
            "from the first when fewer"
        );
        assert_eq!(
            at(StartOffset::Timestamp(7)),
            20,
            "the end when none is as late"
        );
        let found = resolve_start(StartOffset::Timestamp(7), 10, 20, |_| Ok(Some(12)));
        assert_eq!(found.unwrap(), 12);
        // An empty partition.
        assert_eq!(
            resolve_start(StartOffset::FromStart(3), 0, 0, never).unwrap(),
            0
        );
    }
}
