//! Topics for the embedded mode: partitioned logs with offsets and
//! consumer-group commits, kept in memory ([`Topics::in_memory`]) or on
//! disk ([`Topics::open`]), and served as the project's one model of topics
//! (`topic-io`).
//!
//! Each partition's tail is in memory ([`state`]); where records go beyond
//! it is the storage's ([`storage`]): nowhere in memory, where a partition
//! drops its oldest records once it holds more than its share of the
//! retention but never one a reader has not committed (a writer waits for
//! readers instead); or a store on disk ([`disk`]), written in the order
//! the changes were made, with retention by time and size and waits on a
//! full disk. [`Topics::flush`] waits until everything before it is kept.

mod disk;
mod folder;
mod reader;
mod state;
mod storage;
mod store;
mod transport;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Result};
use parking_lot::{Condvar, Mutex, MutexGuard};

pub use folder::{contents, folder_bytes, remove, DataFolder, FORMAT};
pub use reader::Reader;
pub use topic_io::{Record, StartAt};

use disk::Disk;
use reader::READ_CHUNK;
use state::{record_size, Partition, Pending, State, Stored, Topic, TopicMeta};
use storage::{Memory, Storage};

/// A record to append: partition, timestamp, payload.
pub type Append = (i32, i64, Vec<u8>);

/// What the topics keep.
#[derive(Clone)]
pub struct Retention {
    /// In memory: the bytes each topic keeps beyond what its readers have
    /// not committed. On disk: the tail of each topic kept in memory.
    pub memory_bytes: usize,
    /// On disk: records appended longer ago than this go.
    pub time: Option<Duration>,
    /// On disk: the bytes each partition keeps at most.
    pub partition_bytes: Option<u64>,
    /// On disk: below this much free space on its disk, writes wait.
    pub min_free_bytes: u64,
    /// The free space of the disk the store is on.
    pub free_space: FreeSpace,
}

/// Tells the free space of the disk a path is on.
pub type FreeSpace = Arc<dyn Fn(&std::path::Path) -> std::io::Result<u64> + Send + Sync>;

impl Default for Retention {
    /// Redpanda's defaults on disk (a week, no size limit), 16 MiB a topic
    /// in memory, and 256 MiB kept free.
    fn default() -> Retention {
        Retention {
            memory_bytes: 16 << 20,
            time: Some(Duration::from_secs(7 * 24 * 3600)),
            partition_bytes: None,
            min_free_bytes: 256 << 20,
            free_space: Arc::new(|path| fs4::available_space(path)),
        }
    }
}

/// An append refused because the topics are closing (see [`Topics::close`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Closed;

impl std::fmt::Display for Closed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the topics are closing")
    }
}

impl std::error::Error for Closed {}

/// The topics of one process; clones share them.
#[derive(Clone)]
pub struct Topics {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    state: Mutex<State>,
    /// Signalled when records are appended, written or committed.
    changed: Condvar,
    retention: Retention,
    /// Set when the process stops: a writer that would wait gives up.
    closed: AtomicBool,
    storage: Box<dyn Storage>,
}

impl Inner {
    /// Waits for a change; counted, so that changes wake only when someone
    /// waits.
    fn wait(&self, state: &mut MutexGuard<'_, State>, timeout: Duration) {
        state.waiters += 1;
        self.changed.wait_for(state, timeout);
        state.waiters -= 1;
    }
}

impl Topics {
    /// Topics in this process's memory, each keeping about `retention_bytes`
    /// (spread over its partitions) beyond what readers have not committed.
    pub fn in_memory(retention_bytes: usize) -> Topics {
        Topics::with(
            Retention {
                memory_bytes: retention_bytes,
                ..Retention::default()
            },
            State::default(),
            Box::new(Memory),
        )
    }

    /// The topics kept in `folder`, as the last process left them.
    pub fn open(folder: DataFolder, retention: Retention) -> Result<Topics> {
        let (disk, state) = Disk::open(folder)?;
        let writer = disk.writer();
        let topics = Topics::with(retention, state, Box::new(disk));
        writer.start(Arc::downgrade(&topics.inner))?;
        Ok(topics)
    }

    fn with(retention: Retention, state: State, storage: Box<dyn Storage>) -> Topics {
        Topics {
            inner: Arc::new(Inner {
                state: Mutex::new(state),
                changed: Condvar::new(),
                retention,
                closed: AtomicBool::new(false),
                storage,
            }),
        }
    }

    /// The data folder, when the topics are on disk.
    pub fn folder(&self) -> Option<PathBuf> {
        Some(self.inner.storage.folder()?.to_path_buf())
    }

    /// Stops every wait for readers: a writer that would have to wait for
    /// a reader that has stopped fails with [`Closed`] instead.
    pub fn close(&self) {
        self.inner.closed.store(true, Ordering::Relaxed);
        self.inner.changed.notify_all();
    }

    /// Writes what is left to the store and syncs it to the disk; the last
    /// step before the process ends.
    pub fn shut_down(&self) -> Result<()> {
        self.inner.storage.shut_down(&self.inner)
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock()
    }

    pub(crate) fn wait(&self, state: &mut MutexGuard<'_, State>, timeout: Duration) {
        self.inner.wait(state, timeout)
    }

    fn share(&self, partitions: usize) -> usize {
        self.inner.retention.memory_bytes / partitions.max(1)
    }

    /// Appends a record, returning its offset; see [`Topics::append_all`].
    pub fn append(
        &self,
        topic: &str,
        partition: i32,
        timestamp_ms: i64,
        payload: Vec<u8>,
    ) -> Result<i64> {
        let offsets = self.append_all(topic, vec![(partition, timestamp_ms, payload)])?;
        Ok(offsets[0])
    }

    /// Appends records (partition, timestamp, payload) to a topic in
    /// order, returning their offsets: readers are woken once for all of
    /// them. In memory it waits while a partition is twice over its share
    /// and readers lag; on disk, while too much waits to be written (all
    /// of it then goes to the store in order with everything else).
    pub fn append_all(&self, topic: &str, records: Vec<Append>) -> Result<Vec<i64>> {
        self.append_with(topic, records, None::<(&str, fn(i64) -> Vec<u8>)>)
    }

    /// Appends records as [`Topics::append_all`] does and keeps under `key`
    /// what `value` makes of the first one's offset: on disk they reach the
    /// store in one write, so a kill leaves both or neither (a producer's
    /// sequence beside the records it numbers). Only the first record
    /// waits for room.
    pub fn append_all_with_meta(
        &self,
        topic: &str,
        records: Vec<Append>,
        key: &str,
        value: impl FnOnce(i64) -> Vec<u8>,
    ) -> Result<Vec<i64>> {
        self.append_with(topic, records, Some((key, value)))
    }

    fn append_with(
        &self,
        topic: &str,
        records: Vec<Append>,
        meta: Option<(&str, impl FnOnce(i64) -> Vec<u8>)>,
    ) -> Result<Vec<i64>> {
        let storage = &self.inner.storage;
        let mut state = self.lock();
        let t = state.topic(topic)?;
        let (id, partitions) = (t.id, t.partitions.len());
        if let Some(&(p, ..)) = records
            .iter()
            .find(|(p, ..)| usize::try_from(*p).map_or(true, |p| p >= partitions))
        {
            bail!("topic {topic} has no partition {p}");
        }
        let share = self.share(partitions);
        let mut offsets = Vec::with_capacity(records.len());
        for (i, (partition, timestamp_ms, payload)) in records.into_iter().enumerate() {
            let index = partition as usize;
            // Set once it waits for readers: the flag that asks them to
            // commit.
            let mut asked: Option<Arc<AtomicBool>> = None;
            // A wait lets the writer take what is pending: records kept
            // with meta must not be split from it.
            while i == 0 || meta.is_none() {
                storage.trim(&mut state, topic, index, share);
                let p = &state.topics[topic].partitions[index];
                if storage.has_room(&state, p, share) {
                    break;
                }
                if self.inner.closed.load(Ordering::Relaxed) && storage.gives_up_when_closed(&state)
                {
                    return Err(Closed.into());
                }
                // Readers commit at an interval; a writer waiting for them
                // would wait out the rest of it.
                if storage.readers_make_room() {
                    asked
                        .get_or_insert_with(|| state.commit_wanted(topic))
                        .store(true, Ordering::Relaxed);
                }
                self.wait(&mut state, Duration::from_millis(100));
            }
            if let Some(asked) = asked {
                asked.store(false, Ordering::Relaxed);
            }
            let payload = Arc::new(payload);
            let p = &mut state.topics.get_mut(topic).expect("checked").partitions[index];
            p.bytes += record_size(payload.len());
            let offset = p.end();
            p.records.push_back(Stored {
                timestamp_ms,
                payload: payload.clone(),
            });
            offsets.push(offset);
            storage.keep(
                &mut state,
                Pending::Record {
                    topic: id,
                    partition: index as u32,
                    offset,
                    timestamp_ms,
                    payload,
                },
            );
        }
        if let (Some((key, value)), Some(&first)) = (meta, offsets.first()) {
            self.keep_meta(&mut state, key, value(first));
        }
        self.notify(state);
        Ok(offsets)
    }

    /// Wakes whoever waits for a change, if anyone does.
    fn notify(&self, state: MutexGuard<'_, State>) {
        let waiting = state.waiters > 0;
        drop(state);
        if waiting {
            self.inner.changed.notify_all();
        }
    }

    /// Waits until every change made before the call is in the store.
    pub fn flush(&self) -> Result<()> {
        let mut state = self.lock();
        let target = state.made;
        while state.written < target {
            if self.inner.closed.load(Ordering::Relaxed) && state.trouble.is_some() {
                return Err(Closed.into());
            }
            self.wait(&mut state, Duration::from_millis(100));
        }
        Ok(())
    }

    /// Why writes wait, while they do (a disk short of space).
    pub fn trouble(&self) -> Option<String> {
        self.lock().trouble.clone()
    }

    /// The bytes the topics hold in memory.
    pub fn stored_bytes(&self) -> usize {
        self.lock()
            .topics
            .values()
            .flat_map(|t| &t.partitions)
            .map(|p| p.bytes)
            .sum()
    }

    /// The bytes the store takes on disk, when the topics are on disk.
    pub fn disk_bytes(&self) -> Option<u64> {
        self.inner.storage.disk_bytes()
    }

    /// The name of every topic, in order.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.lock().topics.keys().cloned().collect();
        names.sort();
        names
    }

    /// The end offset of every partition of `topic`.
    pub fn ends(&self, topic: &str) -> Result<Vec<i64>> {
        Ok(self
            .lock()
            .topic(topic)?
            .partitions
            .iter()
            .map(Partition::end)
            .collect())
    }

    /// The first offset kept and the end of a partition.
    pub fn bounds(&self, topic: &str, partition: i32) -> Result<(i64, i64)> {
        let state = self.lock();
        let p = state.partition(topic, partition)?;
        Ok((p.low, p.end()))
    }

    pub fn partition_count(&self, topic: &str) -> Option<i32> {
        self.lock()
            .topics
            .get(topic)
            .map(|t| t.partitions.len() as i32)
    }

    /// The partition count of `topic`, creating it with `partitions` if it
    /// does not exist.
    pub fn ensure_topic(&self, topic: &str, partitions: i32) -> Result<i32> {
        if partitions < 1 {
            bail!("topic {topic} needs at least one partition, not {partitions}");
        }
        let mut state = self.lock();
        if let Some(t) = state.topics.get(topic) {
            return Ok(t.partitions.len() as i32);
        }
        let id = state.next_id;
        state.next_id += 1;
        state.topics.insert(
            topic.to_string(),
            Topic {
                id,
                partitions: (0..partitions).map(|_| Partition::default()).collect(),
            },
        );
        let meta = TopicMeta {
            id,
            partitions: partitions as u32,
        };
        let value = serde_json::to_vec(&meta)?;
        self.inner.storage.keep(
            &mut state,
            Pending::Meta {
                key: format!("topic/{topic}"),
                value: Some(value),
            },
        );
        Ok(partitions)
    }

    /// The last record of partition `partition`, if it has one.
    pub fn last(&self, topic: &str, partition: i32) -> Result<Option<Record>> {
        let state = self.lock();
        let p = state.partition(topic, partition)?;
        if let Some(r) = p.records.back() {
            return Ok(Some(Record {
                offset: p.end() - 1,
                timestamp_ms: r.timestamp_ms,
                payload: r.payload.to_vec(),
            }));
        }
        let id = state.topic(topic)?.id;
        drop(state);
        self.inner.storage.last(id, partition as u32)
    }

    pub fn committed(&self, group: &str, topic: &str, partitions: i32) -> Vec<Option<i64>> {
        let state = self.lock();
        let committed = state.committed.get(&(group.to_string(), topic.to_string()));
        (0..partitions as usize)
            .map(|p| committed.and_then(|c| c.get(p).copied().flatten()))
            .collect()
    }

    /// Commits the next offset to read, per partition, as `group`.
    pub fn commit(&self, group: &str, topic: &str, offsets: &[(i32, i64)]) -> Result<()> {
        let mut state = self.lock();
        let n = state.topic(topic)?.partitions.len();
        if let Some(&(p, _)) = offsets.iter().find(|(p, _)| *p < 0 || *p as usize >= n) {
            bail!("topic {topic} has no partition {p}");
        }
        let key = (group.to_string(), topic.to_string());
        let committed = state.committed.entry(key).or_insert_with(|| vec![None; n]);
        for &(p, offset) in offsets {
            committed[p as usize] = Some(offset);
        }
        let value = serde_json::to_vec(committed)?;
        let floors = state.floors.entry(topic.to_string()).or_default();
        let floor = floors
            .entry(group.to_string())
            .or_insert_with(|| vec![0; n]);
        for &(p, offset) in offsets {
            floor[p as usize] = offset;
        }
        self.inner.storage.keep(
            &mut state,
            Pending::Meta {
                key: format!("commit/{group}/{topic}"),
                value: Some(value),
            },
        );
        self.notify(state);
        Ok(())
    }

    /// What the harness keeps under `key` beside the topics.
    pub fn meta(&self, key: &str) -> Option<Vec<u8>> {
        self.lock().meta.get(key).cloned()
    }

    /// Every entry the harness keeps whose key starts with `prefix`, by key.
    pub fn meta_prefixed(&self, prefix: &str) -> Vec<(String, Vec<u8>)> {
        let mut all: Vec<(String, Vec<u8>)> = self
            .lock()
            .meta
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        all.sort();
        all
    }

    /// Keeps `value` under `key`, written in order with the records.
    pub fn set_meta(&self, key: &str, value: Vec<u8>) {
        let mut state = self.lock();
        self.keep_meta(&mut state, key, value);
    }

    fn keep_meta(&self, state: &mut State, key: &str, value: Vec<u8>) {
        self.inner.storage.keep(
            state,
            Pending::Meta {
                key: format!("harness/{key}"),
                value: Some(value.clone()),
            },
        );
        state.meta.insert(key.to_string(), value);
    }

    /// Removes what is kept under `key`, in order with the records.
    pub fn remove_meta(&self, key: &str) {
        let mut state = self.lock();
        if state.meta.remove(key).is_some() {
            self.inner.storage.keep(
                &mut state,
                Pending::Meta {
                    key: format!("harness/{key}"),
                    value: None,
                },
            );
        }
    }

    /// The first offset of a partition whose record is stamped at or after
    /// `ms`, if any.
    pub fn offset_for_time(&self, topic: &str, partition: i32, ms: i64) -> Result<Option<i64>> {
        let (low, end) = self.bounds(topic, partition)?;
        let mut offset = low;
        while offset < end {
            let chunk = self.read(topic, partition, offset, READ_CHUNK)?;
            let Some(last) = chunk.last() else {
                break;
            };
            if let Some(r) = chunk.iter().find(|r| r.timestamp_ms >= ms) {
                return Ok(Some(r.offset));
            }
            offset = last.offset + 1;
        }
        Ok(None)
    }

    /// Up to `max` records of a partition from `offset` on (from the first
    /// one kept, if that is later).
    pub fn read(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        max: usize,
    ) -> Result<Vec<Record>> {
        let state = self.lock();
        let p = state.partition(topic, partition)?;
        let from = offset.clamp(p.low, p.end());
        if from >= p.start {
            return Ok(p
                .records
                .range((from - p.start) as usize..)
                .take(max)
                .enumerate()
                .map(|(i, r)| Record {
                    offset: from + i as i64,
                    timestamp_ms: r.timestamp_ms,
                    payload: r.payload.to_vec(),
                })
                .collect());
        }
        let (id, until) = (state.topic(topic)?.id, p.start);
        drop(state);
        self.read_store(id, partition, from, until, max)
    }

    pub(crate) fn read_store(
        &self,
        id: u32,
        partition: i32,
        from: i64,
        until: i64,
        max: usize,
    ) -> Result<Vec<Record>> {
        self.inner
            .storage
            .read(id, partition as u32, from, until, max)
    }

    /// Reads partition `p` of `topic` from `starts[p]`; the group's
    /// commits let retention drop what it has read.
    pub fn reader(&self, group: &str, topic: &str, starts: &[StartAt]) -> Result<Reader> {
        let mut state = self.lock();
        let partitions = &state.topic(topic)?.partitions;
        if starts.len() != partitions.len() {
            bail!(
                "topic {topic} has {} partitions, not {}",
                partitions.len(),
                starts.len()
            );
        }
        let start_ends: Vec<i64> = partitions.iter().map(Partition::end).collect();
        let positions: Vec<i64> = partitions
            .iter()
            .zip(starts)
            .map(|(p, start)| match *start {
                StartAt::Beginning => p.low,
                StartAt::End => p.end(),
                StartAt::Offset(o) => o.max(p.low),
            })
            .collect();
        state
            .floors
            .entry(topic.to_string())
            .or_default()
            .insert(group.to_string(), positions.clone());
        Ok(Reader {
            topics: self.clone(),
            topic: topic.to_string(),
            positions,
            start_ends,
            next_partition: 0,
            local: VecDeque::new(),
        })
    }
}

#[cfg(test)]
mod tests;
