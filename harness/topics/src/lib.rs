//! Topics for the embedded mode: partitioned logs with offsets and
//! consumer-group commits, kept in memory or on disk.
//!
//! In memory ([`Topics::in_memory`]) a partition drops its oldest records
//! once it holds more than its share of the retention, but never a record
//! that a reader of the topic has not committed yet; a writer to a
//! partition twice over its share waits until readers commit.
//!
//! On disk ([`Topics::open`]) every append and commit goes, in the order
//! it was made, to a store (see [`store`]) that one thread writes in
//! batches; [`Topics::flush`] waits until everything before it is written.
//! Memory holds each partition's tail; a reader further back reads the
//! store. Retention by time and by size drops the oldest records that
//! every reader has committed. When the disk runs short of free space the
//! writes wait, and say why, rather than fail.

mod folder;
mod store;
mod transport;

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{anyhow, bail, Result};
use serde::{Deserialize, Serialize};

pub use folder::{contents, folder_bytes, remove, DataFolder, FORMAT};
use store::{encode_chunk, Changes, Chunk, Store};
pub use topic_io::{Record, StartAt};

/// Bytes counted per record besides its payload.
const RECORD_OVERHEAD: usize = 48;

/// Most records a reader takes from a partition at once.
const READ_CHUNK: usize = 512;

/// Most records a reader takes from the store at once: whole chunks, which
/// the store reads (and decompresses) whole whatever is taken from them.
const STORE_READ_CHUNK: usize = 8192;

/// The most a chunk of records holds.
const MAX_CHUNK: usize = 256 << 10;

/// Appends wait while this much is not yet written to the store.
const MAX_PENDING: usize = 64 << 20;

/// How often retention looks for what it may drop.
const RETENTION_EVERY: Duration = Duration::from_secs(5);

/// Most chunks retention looks at in a partition at once.
const RETENTION_BATCH: usize = 1000;

/// A record to append: partition, timestamp, payload.
pub type NewRecord = (i32, i64, Vec<u8>);

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

/// A topic and where each of its partitions starts and ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TopicInfo {
    pub name: String,
    /// Per partition: the first offset kept and the next one to be written.
    pub partitions: Vec<(i64, i64)>,
}

/// The topics of one process; clones share them.
#[derive(Clone)]
pub struct Topics {
    inner: Arc<Inner>,
}

struct Inner {
    state: Mutex<State>,
    /// Signalled when records are appended, written or committed.
    changed: Condvar,
    retention: Retention,
    /// Set when the process stops: a writer that would wait gives up.
    closed: AtomicBool,
    durable: Option<Durable>,
}

impl Inner {
    /// Waits for a change; counted, so that changes wake only when someone
    /// waits.
    fn wait<'a>(
        &self,
        mut state: MutexGuard<'a, State>,
        timeout: Duration,
    ) -> MutexGuard<'a, State> {
        state.waiters += 1;
        let mut state = self
            .changed
            .wait_timeout(state, timeout)
            .expect("not poisoned")
            .0;
        state.waiters -= 1;
        state
    }
}

struct Durable {
    folder: DataFolder,
    store: Store,
    stopping: AtomicBool,
    writer: Mutex<Option<JoinHandle<()>>>,
}

/// A change not yet written to the store.
enum Pending {
    Record {
        topic: u32,
        partition: u32,
        offset: i64,
        timestamp_ms: i64,
        payload: Arc<Vec<u8>>,
    },
    Meta {
        key: String,
        value: Vec<u8>,
    },
}

impl Pending {
    /// The bytes it adds to what waits to be written.
    fn size(&self) -> usize {
        match self {
            Pending::Record { payload, .. } => payload.len() + 12,
            Pending::Meta { key, value } => key.len() + value.len(),
        }
    }
}

/// A pending record as a chunk takes it: offset, timestamp, payload.
type ChunkRecord<'a> = (i64, i64, &'a [u8]);

#[derive(Default)]
struct State {
    topics: HashMap<String, Topic>,
    committed: HashMap<(String, String), Vec<Option<i64>>>,
    /// Per topic and group: the offsets below which the group needs
    /// nothing (its start, then its commits).
    floors: HashMap<String, HashMap<String, Vec<i64>>>,
    /// What the harness keeps beside the topics.
    meta: HashMap<String, Vec<u8>>,
    next_id: u32,
    /// Changes not yet written to the store, in order.
    pending: Vec<Pending>,
    pending_bytes: usize,
    /// Changes made, and changes written, since the start.
    made: u64,
    written: u64,
    /// Why writes wait, while they do.
    trouble: Option<String>,
    /// Threads waiting for a change.
    waiters: usize,
}

struct Topic {
    id: u32,
    partitions: Vec<Partition>,
}

#[derive(Default)]
struct Partition {
    /// The first offset kept, in memory or on disk.
    low: i64,
    /// The offset of `records[0]`: in memory, `low`; on disk, where the
    /// tail held in memory starts.
    start: i64,
    records: VecDeque<Stored>,
    /// The bytes of `records`.
    bytes: usize,
    /// On disk: the end of what is written, and the bytes kept there.
    written_end: i64,
    disk_bytes: u64,
}

struct Stored {
    timestamp_ms: i64,
    payload: Arc<Vec<u8>>,
}

/// A partition's bookkeeping in the store.
#[derive(Serialize, Deserialize)]
struct PartitionMeta {
    low: i64,
    bytes: u64,
}

#[derive(Serialize, Deserialize)]
struct TopicMeta {
    id: u32,
    partitions: u32,
}

impl Partition {
    fn end(&self) -> i64 {
        self.start + self.records.len() as i64
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn record_size(payload: usize) -> usize {
    payload + RECORD_OVERHEAD
}

impl State {
    fn topic(&self, topic: &str) -> Result<&Topic> {
        self.topics
            .get(topic)
            .ok_or_else(|| anyhow!("topic {topic} does not exist"))
    }

    fn partition(&self, topic: &str, partition: i32) -> Result<&Partition> {
        usize::try_from(partition)
            .ok()
            .and_then(|p| self.topic(topic).ok()?.partitions.get(p))
            .ok_or_else(|| anyhow!("topic {topic} has no partition {partition}"))
    }

    /// The lowest offset any reader of `topic` still needs in `partition`.
    fn floor(&self, topic: &str, partition: usize) -> Option<i64> {
        self.floors
            .get(topic)?
            .values()
            .filter_map(|f| f.get(partition).copied())
            .min()
    }

    fn queue(&mut self, op: Pending) {
        self.pending_bytes += op.size();
        self.pending.push(op);
        self.made += 1;
    }

    /// Drops a partition's oldest records beyond its share. In memory only
    /// those no reader needs, and never the last; on disk only those
    /// written, which readers then read from the store.
    fn trim(&mut self, topic: &str, partition: usize, share: usize, durable: bool) {
        let over = self
            .topics
            .get(topic)
            .and_then(|t| t.partitions.get(partition));
        if over.is_none_or(|p| p.bytes <= share) {
            return;
        }
        let floor = if durable {
            i64::MAX
        } else {
            self.floor(topic, partition).unwrap_or(i64::MAX)
        };
        let Some(p) = self
            .topics
            .get_mut(topic)
            .and_then(|t| t.partitions.get_mut(partition))
        else {
            return;
        };
        let limit = if durable { p.written_end } else { floor };
        while p.bytes > share && p.records.len() > 1 && p.start < limit {
            let dropped = p.records.pop_front().expect("not empty");
            p.bytes -= record_size(dropped.payload.len());
            p.start += 1;
            if !durable {
                p.low = p.start;
            }
        }
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
            None,
        )
    }

    /// The topics kept in `folder`, as the last process left them.
    pub fn open(folder: DataFolder, retention: Retention) -> Result<Topics> {
        let store = Store::open(&folder.store())?;
        let state = restore(&store)?;
        let topics = Topics::with(
            retention,
            state,
            Some(Durable {
                folder,
                store,
                stopping: AtomicBool::new(false),
                writer: Mutex::new(None),
            }),
        );
        let weak = Arc::downgrade(&topics.inner);
        let writer = std::thread::Builder::new()
            .name("topics-writer".into())
            .spawn(move || write_loop(weak))?;
        *topics.durable()?.writer.lock().expect("not poisoned") = Some(writer);
        Ok(topics)
    }

    fn with(retention: Retention, state: State, durable: Option<Durable>) -> Topics {
        Topics {
            inner: Arc::new(Inner {
                state: Mutex::new(state),
                changed: Condvar::new(),
                retention,
                closed: AtomicBool::new(false),
                durable,
            }),
        }
    }

    fn durable(&self) -> Result<&Durable> {
        self.inner
            .durable
            .as_ref()
            .ok_or_else(|| anyhow!("the topics are in memory"))
    }

    /// The data folder, when the topics are on disk.
    pub fn folder(&self) -> Option<PathBuf> {
        Some(self.inner.durable.as_ref()?.folder.path().to_path_buf())
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
        let Some(durable) = &self.inner.durable else {
            return Ok(());
        };
        durable.stopping.store(true, Ordering::Relaxed);
        self.inner.changed.notify_all();
        if let Some(writer) = durable.writer.lock().expect("not poisoned").take() {
            let _ = writer.join();
        }
        durable.store.sync()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().expect("not poisoned")
    }

    fn wait<'a>(
        &'a self,
        state: MutexGuard<'a, State>,
        timeout: Duration,
    ) -> MutexGuard<'a, State> {
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
    pub fn append_all(&self, topic: &str, records: Vec<NewRecord>) -> Result<Vec<i64>> {
        let durable = self.inner.durable.is_some();
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
        for (partition, timestamp_ms, payload) in records {
            let index = partition as usize;
            loop {
                state.trim(topic, index, share, durable);
                let p = &state.topics[topic].partitions[index];
                // A partition left with one record larger than its share
                // takes the next: otherwise nothing could ever follow it.
                let room = if durable {
                    state.pending_bytes <= MAX_PENDING
                } else {
                    p.bytes <= 2 * share || p.records.len() <= 1
                };
                if room {
                    break;
                }
                if self.inner.closed.load(Ordering::Relaxed)
                    && (!durable || state.trouble.is_some())
                {
                    return Err(Closed.into());
                }
                state = self.wait(state, Duration::from_millis(100));
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
            if durable {
                state.queue(Pending::Record {
                    topic: id,
                    partition: index as u32,
                    offset,
                    timestamp_ms,
                    payload,
                });
            }
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
        if self.inner.durable.is_none() {
            return Ok(());
        }
        let mut state = self.lock();
        let target = state.made;
        while state.written < target {
            if self.inner.closed.load(Ordering::Relaxed) && state.trouble.is_some() {
                return Err(Closed.into());
            }
            state = self.wait(state, Duration::from_millis(100));
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
        Some(self.inner.durable.as_ref()?.store.disk_space())
    }

    pub fn exists(&self, topic: &str) -> bool {
        self.lock().topics.contains_key(topic)
    }

    /// Every topic, by name.
    pub fn list(&self) -> Vec<TopicInfo> {
        let state = self.lock();
        let mut all: Vec<TopicInfo> = state
            .topics
            .iter()
            .map(|(name, t)| TopicInfo {
                name: name.clone(),
                partitions: t.partitions.iter().map(|p| (p.low, p.end())).collect(),
            })
            .collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
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
        if self.inner.durable.is_some() {
            let meta = TopicMeta {
                id,
                partitions: partitions as u32,
            };
            state.queue(Pending::Meta {
                key: format!("topic/{topic}"),
                value: serde_json::to_vec(&meta)?,
            });
        }
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
        match &self.inner.durable {
            Some(d) => Ok(d.store.last(id, partition as u32)?.map(|r| Record {
                offset: r.offset,
                timestamp_ms: r.timestamp_ms,
                payload: r.payload,
            })),
            None => Ok(None),
        }
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
        if self.inner.durable.is_some() {
            state.queue(Pending::Meta {
                key: format!("commit/{group}/{topic}"),
                value,
            });
        }
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
        if self.inner.durable.is_some() {
            state.queue(Pending::Meta {
                key: format!("harness/{key}"),
                value: value.clone(),
            });
        }
        state.meta.insert(key.to_string(), value);
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

    fn read_store(
        &self,
        id: u32,
        partition: i32,
        from: i64,
        until: i64,
        max: usize,
    ) -> Result<Vec<Record>> {
        Ok(self
            .durable()?
            .store
            .read(id, partition as u32, from, until, max)?
            .into_iter()
            .map(|r| Record {
                offset: r.offset,
                timestamp_ms: r.timestamp_ms,
                payload: r.payload,
            })
            .collect())
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

/// Reads what the store holds back into memory: topics, commits, each
/// partition's bounds and the harness's entries.
fn restore(store: &Store) -> Result<State> {
    let mut state = State::default();
    for (key, value) in store.meta("topic/")? {
        let name = &key["topic/".len()..];
        let meta: TopicMeta = serde_json::from_slice(&value)?;
        let mut partitions = Vec::new();
        for p in 0..meta.partitions {
            let kept: Option<PartitionMeta> = store
                .meta_value(&format!("partition/{}/{p}", meta.id))?
                .and_then(|v| serde_json::from_slice(&v).ok());
            let end = store.last(meta.id, p)?.map_or(0, |r| r.offset + 1);
            let low = match &kept {
                Some(k) => k.low.min(end),
                None => store.first(meta.id, p)?.unwrap_or(end),
            };
            partitions.push(Partition {
                low,
                start: end,
                written_end: end,
                disk_bytes: kept.map_or(0, |k| k.bytes),
                ..Partition::default()
            });
        }
        state.next_id = state.next_id.max(meta.id + 1);
        state.topics.insert(
            name.to_string(),
            Topic {
                id: meta.id,
                partitions,
            },
        );
    }
    for (key, value) in store.meta("commit/")? {
        let rest = &key["commit/".len()..];
        // Topic names have no '/', group names may.
        let Some((group, topic)) = rest.rsplit_once('/') else {
            continue;
        };
        let offsets: Vec<Option<i64>> = serde_json::from_slice(&value)?;
        state
            .committed
            .insert((group.to_string(), topic.to_string()), offsets);
    }
    for (key, value) in store.meta("harness/")? {
        state
            .meta
            .insert(key["harness/".len()..].to_string(), value);
    }
    Ok(state)
}

/// The store's writer: takes what waits, writes it as one batch, and
/// applies retention now and then; ends when the topics shut down (or are
/// all dropped).
fn write_loop(inner: Weak<Inner>) {
    let mut last_retention = Instant::now();
    loop {
        let Some(inner) = inner.upgrade() else {
            return;
        };
        let durable = inner.durable.as_ref().expect("durable");
        let (pending, changes, made) = {
            let mut state = inner.state.lock().expect("not poisoned");
            if state.pending.is_empty() {
                if durable.stopping.load(Ordering::Relaxed) {
                    return;
                }
                state = inner.wait(state, Duration::from_millis(200));
            }
            let pending = std::mem::take(&mut state.pending);
            let changes = changes(&mut state, &pending);
            (pending, changes, state.made)
        };
        if !pending.is_empty() {
            write_until_done(&inner, durable, &changes);
            let mut state = inner.state.lock().expect("not poisoned");
            for op in &pending {
                state.pending_bytes = state.pending_bytes.saturating_sub(op.size());
            }
            // What is written may leave memory now.
            let names: HashMap<u32, String> = state
                .topics
                .iter()
                .map(|(n, t)| (t.id, n.clone()))
                .collect();
            for chunk in &changes.chunks {
                let name = &names[&chunk.topic];
                let t = state.topics.get_mut(name).expect("known");
                let share = inner.retention.memory_bytes / t.partitions.len();
                let p = &mut t.partitions[chunk.partition as usize];
                p.written_end = p.written_end.max(chunk.first + chunk.count);
                state.trim(name, chunk.partition as usize, share, true);
            }
            state.written = made;
            drop(state);
            inner.changed.notify_all();
        }
        if last_retention.elapsed() >= RETENTION_EVERY {
            last_retention = Instant::now();
            if let Err(e) = apply_retention(&inner, durable) {
                tracing::warn!("retention: {e:#}");
            }
        }
    }
}

/// What `pending` writes: the records of each partition in chunks, each
/// meta entry's last value, and the bookkeeping of every partition written
/// to, in the same batch as its records.
fn changes(state: &mut State, pending: &[Pending]) -> Changes {
    let append_ms = now_ms();
    let mut runs: Vec<((u32, u32), Vec<ChunkRecord>)> = Vec::new();
    let mut meta: Vec<(String, Vec<u8>)> = Vec::new();
    for op in pending {
        match op {
            Pending::Record {
                topic,
                partition,
                offset,
                timestamp_ms,
                payload,
            } => {
                let at = (*topic, *partition);
                let record = (*offset, *timestamp_ms, payload.as_slice());
                match runs.iter_mut().find(|(k, _)| *k == at) {
                    Some((_, records)) => records.push(record),
                    None => runs.push((at, vec![record])),
                }
            }
            Pending::Meta { key, value } => {
                meta.retain(|(k, _)| k != key);
                meta.push((key.clone(), value.clone()));
            }
        }
    }
    let mut changes = Changes::default();
    for ((topic, partition), records) in runs {
        let mut bytes = 0u64;
        for group in records.chunk_by(|a, b| a.0 + 1 == b.0) {
            for piece in split_by_size(group) {
                let first = piece[0].0;
                let value = encode_chunk(append_ms, piece.iter().map(|r| (r.1, r.2)));
                bytes += value.len() as u64;
                changes.chunks.push(Chunk {
                    topic,
                    partition,
                    first,
                    count: piece.len() as i64,
                    value,
                });
            }
        }
        let p = state
            .topics
            .values_mut()
            .find(|t| t.id == topic)
            .map(|t| &mut t.partitions[partition as usize])
            .expect("a known partition");
        p.disk_bytes += bytes;
        let kept = PartitionMeta {
            low: p.low,
            bytes: p.disk_bytes,
        };
        meta.push((
            format!("partition/{topic}/{partition}"),
            serde_json::to_vec(&kept).expect("serialisable"),
        ));
    }
    changes.meta = meta;
    changes
}

/// `records` in pieces of about `MAX_CHUNK` bytes at most.
fn split_by_size<'a, 'b>(records: &'a [ChunkRecord<'b>]) -> Vec<&'a [ChunkRecord<'b>]> {
    let mut pieces = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, r) in records.iter().enumerate() {
        // A record's timestamp and length, then its payload.
        let size = 12 + r.2.len();
        if i > start && bytes + size > MAX_CHUNK {
            pieces.push(&records[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += size;
    }
    pieces.push(&records[start..]);
    pieces
}

/// Writes `ops`, waiting while the disk is short of space or the write
/// fails, and saying why.
fn write_until_done(inner: &Inner, durable: &Durable, changes: &Changes) {
    let retention = &inner.retention;
    let path = durable.folder.path();
    loop {
        let short = match (retention.free_space)(path) {
            Ok(free) if free < retention.min_free_bytes => Some(format!(
                "the disk holding {} has {} MiB free, under the {} MiB kept free: writes wait \
                 until there is room (free space, or lower the topics' retention)",
                path.display(),
                free >> 20,
                retention.min_free_bytes >> 20
            )),
            _ => None,
        };
        let result = match short {
            Some(why) => Err(anyhow!(why)),
            None => durable.store.write(changes),
        };
        let mut state = inner.state.lock().expect("not poisoned");
        match result {
            Ok(()) => {
                if state.trouble.take().is_some() {
                    tracing::info!("the topics are written again");
                }
                return;
            }
            Err(e) => {
                let why = format!("{e:#}");
                if state.trouble.as_deref() != Some(why.as_str()) {
                    tracing::warn!("{why}");
                    state.trouble = Some(why);
                }
            }
        }
        drop(state);
        inner.changed.notify_all();
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Drops, per partition, the oldest records past the retention time or
/// size that every reader has committed, keeping the last record.
fn apply_retention(inner: &Inner, durable: &Durable) -> Result<()> {
    let retention = &inner.retention;
    if retention.time.is_none() && retention.partition_bytes.is_none() {
        return Ok(());
    }
    let cutoff = retention
        .time
        .map_or(i64::MIN, |t| now_ms() - t.as_millis() as i64);
    let plans: Vec<(String, u32, u32, i64, i64, u64)> = {
        let state = inner.state.lock().expect("not poisoned");
        let mut plans = Vec::new();
        for (name, t) in &state.topics {
            for (index, p) in t.partitions.iter().enumerate() {
                let floor = state.floor(name, index).unwrap_or(i64::MAX);
                let limit = floor.min(p.written_end - 1);
                if limit > p.low {
                    plans.push((name.clone(), t.id, index as u32, p.low, limit, p.disk_bytes));
                }
            }
        }
        plans
    };
    for (name, id, partition, low, limit, disk_bytes) in plans {
        let mut changes = Changes::default();
        let mut removed = 0u64;
        let mut next_low = low;
        // Usually the first chunk is to be kept: nothing more is read.
        let gone = durable
            .store
            .chunks_while(id, partition, low, RETENTION_BATCH, |chunk| {
                let over_size = retention
                    .partition_bytes
                    .is_some_and(|max| disk_bytes - removed > max);
                let end = chunk.first + chunk.count;
                let goes = end <= limit && (chunk.append_ms < cutoff || over_size);
                if goes {
                    removed += chunk.bytes;
                }
                goes
            })?;
        for chunk in gone {
            changes.removed.push((id, partition, chunk.first));
            next_low = chunk.first + chunk.count;
        }
        if changes.removed.is_empty() {
            continue;
        }
        let bytes = disk_bytes.saturating_sub(removed);
        changes.meta.push((
            format!("partition/{id}/{partition}"),
            serde_json::to_vec(&PartitionMeta {
                low: next_low,
                bytes,
            })?,
        ));
        durable.store.write(&changes)?;
        let mut state = inner.state.lock().expect("not poisoned");
        if let Some(p) = state
            .topics
            .get_mut(&name)
            .and_then(|t| t.partitions.get_mut(partition as usize))
        {
            p.low = next_low;
            p.disk_bytes = p.disk_bytes.saturating_sub(removed);
            while p.start < p.low && !p.records.is_empty() {
                let dropped = p.records.pop_front().expect("not empty");
                p.bytes -= record_size(dropped.payload.len());
                p.start += 1;
            }
        }
        tracing::debug!(
            "retention dropped {} chunks of {name}/{partition}, up to offset {next_low}",
            changes.removed.len()
        );
    }
    Ok(())
}

/// A reader of one topic's partitions, taking turns between them.
pub struct Reader {
    topics: Topics,
    topic: String,
    positions: Vec<i64>,
    /// Each partition's end when the reader was made.
    start_ends: Vec<i64>,
    /// Where the next chunk is taken from, so partitions take turns.
    next_partition: usize,
    /// Records taken, not yet returned.
    local: VecDeque<(i32, Record)>,
}

/// What a reader's next chunk is.
enum Next {
    /// Taken from memory into `local`, or nothing at hand.
    Done,
    /// In the store: partition, topic id, from, until.
    Store(usize, u32, i64, i64),
}

impl Reader {
    /// Takes the next chunk of records in memory into `local`, or says
    /// where in the store it is.
    fn take(&mut self, state: &State) -> Result<Next> {
        let t = state.topic(&self.topic)?;
        let n = t.partitions.len();
        for i in 0..n {
            let index = (self.next_partition + i) % n;
            let p = &t.partitions[index];
            // Records dropped before we read them: start from what is left.
            let position = self.positions[index].max(p.low);
            self.positions[index] = position;
            if position >= p.end() {
                continue;
            }
            self.next_partition = (index + 1) % n;
            if position < p.start {
                return Ok(Next::Store(index, t.id, position, p.start));
            }
            let chunk = p
                .records
                .range((position - p.start) as usize..)
                .take(READ_CHUNK);
            let taken = chunk.len() as i64;
            for (k, r) in chunk.enumerate() {
                self.local.push_back((
                    index as i32,
                    Record {
                        offset: position + k as i64,
                        timestamp_ms: r.timestamp_ms,
                        payload: r.payload.to_vec(),
                    },
                ));
            }
            self.positions[index] = position + taken;
            return Ok(Next::Done);
        }
        Ok(Next::Done)
    }

    /// The next record, waiting up to `wait` for one.
    pub fn poll(&mut self, wait: Duration) -> Result<Option<(i32, Record)>> {
        if self.local.is_empty() {
            let deadline = Instant::now() + wait;
            let topics = self.topics.clone();
            let mut state = topics.lock();
            loop {
                if let Next::Store(index, id, from, until) = self.take(&state)? {
                    // Read outside the lock: writers go on meanwhile.
                    drop(state);
                    let records =
                        topics.read_store(id, index as i32, from, until, STORE_READ_CHUNK)?;
                    // Dropped by retention meanwhile: go on after them.
                    let next = records.last().map_or(until, |r| r.offset + 1);
                    self.positions[index] = self.positions[index].max(next);
                    self.local
                        .extend(records.into_iter().map(|r| (index as i32, r)));
                    state = topics.lock();
                    if !self.local.is_empty() {
                        break;
                    }
                    continue;
                }
                let now = Instant::now();
                if !self.local.is_empty() || now >= deadline {
                    break;
                }
                state = topics.wait(state, deadline - now);
            }
        }
        Ok(self.local.pop_front())
    }

    /// Reads `partition` from `offset` on.
    pub fn seek(&mut self, partition: i32, offset: i64) -> Result<()> {
        let Some(position) = usize::try_from(partition)
            .ok()
            .and_then(|p| self.positions.get_mut(p))
        else {
            bail!("topic {} has no partition {partition}", self.topic);
        };
        *position = offset;
        self.local.retain(|(p, _)| *p != partition);
        Ok(())
    }

    /// Whether every partition has been read up to where it ended when
    /// the reader was made.
    pub fn caught_up(&self) -> bool {
        self.local.is_empty()
            && self
                .positions
                .iter()
                .zip(&self.start_ends)
                .all(|(position, end)| position >= end)
    }

    /// Records in each partition past what was read.
    pub fn lags(&self) -> Option<Vec<i64>> {
        let ends = self.topics.ends(&self.topic).ok()?;
        Some(
            ends.iter()
                .zip(&self.positions)
                .enumerate()
                .map(|(p, (e, position))| {
                    let taken = self.local.iter().filter(|(q, _)| *q == p as i32).count();
                    (e - position).max(0) + taken as i64
                })
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests;
