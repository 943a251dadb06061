//! Where the topics keep their records beyond each partition's tail in
//! memory: nowhere ([`Memory`]), or a store in a data folder
//! ([`crate::disk::Disk`]). The topics ask it what may leave memory, when
//! a writer must wait, and what memory no longer holds.

use std::path::Path;

use anyhow::{bail, Result};
use topic_io::Record;

use crate::state::{Partition, Pending, State};
use crate::Inner;

pub(crate) trait Storage: Send + Sync {
    /// The data folder, when the records are kept on disk.
    fn folder(&self) -> Option<&Path>;
    /// Drops a partition's oldest records from memory while it holds more
    /// than `share` bytes, as far as this storage allows.
    fn trim(&self, state: &mut State, topic: &str, partition: usize, share: usize);
    /// Whether an append to `p` may go on now, rather than wait.
    fn has_room(&self, state: &State, p: &Partition, share: usize) -> bool;
    /// Whether a writer that would wait gives up once the topics close.
    fn gives_up_when_closed(&self, state: &State) -> bool;
    /// Whether readers' commits are what make room for a waiting writer.
    fn readers_make_room(&self) -> bool;
    /// Keeps a change beyond this process's memory, in the order made.
    fn keep(&self, state: &mut State, change: Pending);
    /// Records `from..until` of a partition that memory no longer holds.
    fn read(
        &self,
        id: u32,
        partition: u32,
        from: i64,
        until: i64,
        max: usize,
    ) -> Result<Vec<Record>>;
    /// The last record of a partition whose tail in memory is empty.
    fn last(&self, id: u32, partition: u32) -> Result<Option<Record>>;
    /// The bytes it takes on disk.
    fn disk_bytes(&self) -> Option<u64>;
    /// Keeps what is left; the last step before the process ends.
    fn shut_down(&self, inner: &Inner) -> Result<()>;
}

/// Topics in memory only: a partition keeps its share of the retention
/// beyond what its readers have not committed, and a writer to a partition
/// twice over its share waits for readers rather than drop what they still
/// need.
pub(crate) struct Memory;

impl Storage for Memory {
    fn folder(&self) -> Option<&Path> {
        None
    }

    /// Only what every reader has committed goes, and is gone.
    fn trim(&self, state: &mut State, topic: &str, partition: usize, share: usize) {
        if !state.over_share(topic, partition, share) {
            return;
        }
        let floor = state.floor(topic, partition).unwrap_or(i64::MAX);
        state.trim_tail(topic, partition, share, |_| floor, true);
    }

    /// A partition left with one record larger than its share takes the
    /// next: otherwise nothing could ever follow it.
    fn has_room(&self, _state: &State, p: &Partition, share: usize) -> bool {
        p.bytes <= 2 * share || p.records.len() <= 1
    }

    /// The readers it would wait for have stopped.
    fn gives_up_when_closed(&self, _state: &State) -> bool {
        true
    }

    fn readers_make_room(&self) -> bool {
        true
    }

    fn keep(&self, _state: &mut State, _change: Pending) {}

    fn read(
        &self,
        _id: u32,
        partition: u32,
        from: i64,
        _until: i64,
        _max: usize,
    ) -> Result<Vec<Record>> {
        bail!("partition {partition} holds offset {from} no more: the topics are in memory")
    }

    fn last(&self, _id: u32, _partition: u32) -> Result<Option<Record>> {
        Ok(None)
    }

    fn disk_bytes(&self) -> Option<u64> {
        None
    }

    fn shut_down(&self, _inner: &Inner) -> Result<()> {
        Ok(())
    }
}
