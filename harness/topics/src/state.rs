//! What the topics hold in memory: each partition's tail of records, the
//! consumer groups' commits and floors, the harness's entries, and the
//! changes not yet kept beyond memory.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::SystemTime;

use anyhow::{anyhow, Result};
use serde::{Deserialize, Serialize};

/// Bytes counted per record besides its payload.
const RECORD_OVERHEAD: usize = 48;

/// A change not yet written to the store.
pub(crate) enum Pending {
    Record {
        topic: u32,
        partition: u32,
        offset: i64,
        timestamp_ms: i64,
        payload: Arc<Vec<u8>>,
    },
    /// A meta entry's new value; `None` removes it.
    Meta { key: String, value: Option<Vec<u8>> },
}

impl Pending {
    /// The bytes it adds to what waits to be written.
    pub(crate) fn size(&self) -> usize {
        match self {
            Pending::Record { payload, .. } => payload.len() + 12,
            Pending::Meta { key, value } => key.len() + value.as_ref().map_or(0, Vec::len),
        }
    }
}

#[derive(Default)]
pub(crate) struct State {
    pub(crate) topics: HashMap<String, Topic>,
    pub(crate) committed: HashMap<(String, String), Vec<Option<i64>>>,
    /// Per topic and group: the offsets below which the group needs
    /// nothing (its start, then its commits).
    pub(crate) floors: HashMap<String, HashMap<String, Vec<i64>>>,
    /// What the harness keeps beside the topics.
    pub(crate) meta: HashMap<String, Vec<u8>>,
    pub(crate) next_id: u32,
    /// Changes not yet written to the store, in order.
    pub(crate) pending: Vec<Pending>,
    pub(crate) pending_bytes: usize,
    /// Changes made, and changes written, since the start.
    pub(crate) made: u64,
    pub(crate) written: u64,
    /// Why writes wait, while they do.
    pub(crate) trouble: Option<String>,
    /// Threads waiting for a change.
    pub(crate) waiters: usize,
    /// Per topic, set while a writer waits for its readers to commit (in
    /// memory): they commit what they have done at once rather than at
    /// their interval. Shared, so that a reader checks it without the lock.
    pub(crate) commit_wanted: HashMap<String, Arc<AtomicBool>>,
}

pub(crate) struct Topic {
    pub(crate) id: u32,
    pub(crate) partitions: Vec<Partition>,
}

#[derive(Default)]
pub(crate) struct Partition {
    /// The first offset kept, in memory or on disk.
    pub(crate) low: i64,
    /// The offset of `records[0]`: in memory, `low`; on disk, where the
    /// tail held in memory starts.
    pub(crate) start: i64,
    pub(crate) records: VecDeque<Stored>,
    /// The bytes of `records`.
    pub(crate) bytes: usize,
    /// On disk: the end of what is written, and the bytes kept there.
    pub(crate) written_end: i64,
    pub(crate) disk_bytes: u64,
}

pub(crate) struct Stored {
    pub(crate) timestamp_ms: i64,
    pub(crate) payload: Arc<Vec<u8>>,
}

/// A partition's bookkeeping in the store.
#[derive(Serialize, Deserialize)]
pub(crate) struct PartitionMeta {
    pub(crate) low: i64,
    pub(crate) bytes: u64,
}

#[derive(Serialize, Deserialize)]
pub(crate) struct TopicMeta {
    pub(crate) id: u32,
    pub(crate) partitions: u32,
}

impl Partition {
    pub(crate) fn end(&self) -> i64 {
        self.start + self.records.len() as i64
    }
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

pub(crate) fn record_size(payload: usize) -> usize {
    payload + RECORD_OVERHEAD
}

impl State {
    pub(crate) fn topic(&self, topic: &str) -> Result<&Topic> {
        self.topics
            .get(topic)
            .ok_or_else(|| anyhow!("topic {topic} does not exist"))
    }

    pub(crate) fn partition(&self, topic: &str, partition: i32) -> Result<&Partition> {
        usize::try_from(partition)
            .ok()
            .and_then(|p| self.topic(topic).ok()?.partitions.get(p))
            .ok_or_else(|| anyhow!("topic {topic} has no partition {partition}"))
    }

    /// The lowest offset any reader of `topic` still needs in `partition`.
    pub(crate) fn floor(&self, topic: &str, partition: usize) -> Option<i64> {
        self.floors
            .get(topic)?
            .values()
            .filter_map(|f| f.get(partition).copied())
            .min()
    }

    /// The flag that asks `topic`'s readers to commit.
    pub(crate) fn commit_wanted(&mut self, topic: &str) -> Arc<AtomicBool> {
        self.commit_wanted
            .entry(topic.to_string())
            .or_default()
            .clone()
    }

    pub(crate) fn queue(&mut self, op: Pending) {
        self.pending_bytes += op.size();
        self.pending.push(op);
        self.made += 1;
    }

    /// Whether a partition holds more than `share` bytes in memory.
    pub(crate) fn over_share(&self, topic: &str, partition: usize, share: usize) -> bool {
        self.topics
            .get(topic)
            .and_then(|t| t.partitions.get(partition))
            .is_some_and(|p| p.bytes > share)
    }

    /// Drops a partition's oldest records from memory while it holds more
    /// than its share, below what `limit` says may go, and never the last;
    /// `low_follows`: what goes is gone (in memory), rather than left to
    /// the store.
    pub(crate) fn trim_tail(
        &mut self,
        topic: &str,
        partition: usize,
        share: usize,
        limit: impl Fn(&Partition) -> i64,
        low_follows: bool,
    ) {
        let Some(p) = self
            .topics
            .get_mut(topic)
            .and_then(|t| t.partitions.get_mut(partition))
        else {
            return;
        };
        let limit = limit(p);
        while p.bytes > share && p.records.len() > 1 && p.start < limit {
            let dropped = p.records.pop_front().expect("not empty");
            p.bytes -= record_size(dropped.payload.len());
            p.start += 1;
            if low_follows {
                p.low = p.start;
            }
        }
    }
}
