//! Topics kept on disk, in a data folder: every append and commit goes,
//! in the order it was made, to a store (see [`crate::store`]) that one
//! thread writes in batches. Memory holds each partition's tail; a reader
//! further back reads the store. Retention by time and by size drops the
//! oldest records that every reader has committed. When the disk runs
//! short of free space the writes wait, and say why, rather than fail.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use parking_lot::Mutex;
use topic_io::Record;

use crate::folder::DataFolder;
use crate::state::{
    now_ms, record_size, Partition, PartitionMeta, Pending, State, Topic, TopicMeta,
};
use crate::storage::Storage;
use crate::store::{encode_chunk, Changes, Chunk, Store};
use crate::Inner;

/// The most a chunk of records holds.
const MAX_CHUNK: usize = 256 << 10;

/// Appends wait while this much is not yet written to the store.
const MAX_PENDING: usize = 64 << 20;

/// How often retention looks for what it may drop.
pub(crate) const RETENTION_EVERY: Duration = Duration::from_secs(5);

/// Most chunks retention looks at in a partition at once.
const RETENTION_BATCH: usize = 1000;

/// A pending record as a chunk takes it: offset, timestamp, payload.
type ChunkRecord<'a> = (i64, i64, &'a [u8]);

/// The store and its writer, shared with the writer's thread.
pub(crate) struct DiskCore {
    folder: DataFolder,
    store: Store,
    stopping: AtomicBool,
    writer: Mutex<Option<JoinHandle<()>>>,
}

/// The records of every partition in a store on disk.
pub(crate) struct Disk(Arc<DiskCore>);

impl Disk {
    /// The store in `folder`, and what it holds, as the last process left
    /// it.
    pub(crate) fn open(folder: DataFolder) -> Result<(Disk, State)> {
        let store = Store::open(&folder.store())?;
        let state = restore(&store)?;
        let core = DiskCore {
            folder,
            store,
            stopping: AtomicBool::new(false),
            writer: Mutex::new(None),
        };
        Ok((Disk(Arc::new(core)), state))
    }

    /// What starts the store's writer, once the topics exist.
    pub(crate) fn writer(&self) -> Writer {
        Writer(self.0.clone())
    }
}

/// Starts the thread that writes what the topics keep.
pub(crate) struct Writer(Arc<DiskCore>);

impl Writer {
    pub(crate) fn start(self, inner: Weak<Inner>) -> Result<()> {
        let core = self.0.clone();
        let writer = std::thread::Builder::new()
            .name("topics-writer".into())
            .spawn(move || write_loop(inner, core))?;
        *self.0.writer.lock() = Some(writer);
        Ok(())
    }
}

impl Storage for Disk {
    fn folder(&self) -> Option<&Path> {
        Some(self.0.folder.path())
    }

    /// Only what is written goes: readers then read it from the store.
    fn trim(&self, state: &mut State, topic: &str, partition: usize, share: usize) {
        if state.over_share(topic, partition, share) {
            state.trim_tail(topic, partition, share, |p| p.written_end, false);
        }
    }

    fn has_room(&self, state: &State, _p: &Partition, _share: usize) -> bool {
        state.pending_bytes <= MAX_PENDING
    }

    /// Only while the disk refuses writes: otherwise the writer makes room.
    fn gives_up_when_closed(&self, state: &State) -> bool {
        state.trouble.is_some()
    }

    /// The store's writer does.
    fn readers_make_room(&self) -> bool {
        false
    }

    fn keep(&self, state: &mut State, change: Pending) {
        state.queue(change);
    }

    fn read(
        &self,
        id: u32,
        partition: u32,
        from: i64,
        until: i64,
        max: usize,
    ) -> Result<Vec<Record>> {
        self.0.store.read(id, partition, from, until, max)
    }

    fn last(&self, id: u32, partition: u32) -> Result<Option<Record>> {
        self.0.store.last(id, partition)
    }

    fn disk_bytes(&self) -> Option<u64> {
        Some(self.0.store.disk_space())
    }

    /// Writes what is left to the store and syncs it to the disk.
    fn shut_down(&self, inner: &Inner) -> Result<()> {
        self.0.stopping.store(true, Ordering::Relaxed);
        inner.changed.notify_all();
        if let Some(writer) = self.0.writer.lock().take() {
            let _ = writer.join();
        }
        self.0.store.sync()
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
fn write_loop(inner: Weak<Inner>, disk: Arc<DiskCore>) {
    let mut last_retention = Instant::now();
    loop {
        let Some(inner) = inner.upgrade() else {
            return;
        };
        let (pending, changes, made) = {
            let mut state = inner.state.lock();
            if state.pending.is_empty() {
                if disk.stopping.load(Ordering::Relaxed) {
                    return;
                }
                inner.wait(&mut state, Duration::from_millis(200));
            }
            let pending = std::mem::take(&mut state.pending);
            let changes = changes(&mut state, &pending);
            (pending, changes, state.made)
        };
        if !pending.is_empty() {
            write_until_done(&inner, &disk, &changes);
            let mut state = inner.state.lock();
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
                inner
                    .storage
                    .trim(&mut state, name, chunk.partition as usize, share);
            }
            state.written = made;
            drop(state);
            inner.changed.notify_all();
        }
        if last_retention.elapsed() >= RETENTION_EVERY {
            last_retention = Instant::now();
            if let Err(e) = apply_retention(&inner, &disk) {
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
    let mut meta: Vec<(String, Option<Vec<u8>>)> = Vec::new();
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
            Some(serde_json::to_vec(&kept).expect("serialisable")),
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
fn write_until_done(inner: &Inner, disk: &DiskCore, changes: &Changes) {
    let retention = &inner.retention;
    let path = disk.folder.path();
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
            None => disk.store.write(changes),
        };
        let mut state = inner.state.lock();
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
fn apply_retention(inner: &Inner, disk: &DiskCore) -> Result<()> {
    let retention = &inner.retention;
    if retention.time.is_none() && retention.partition_bytes.is_none() {
        return Ok(());
    }
    let cutoff = retention
        .time
        .map_or(i64::MIN, |t| now_ms() - t.as_millis() as i64);
    let plans: Vec<(String, u32, u32, i64, i64, u64)> = {
        let state = inner.state.lock();
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
        let gone = disk
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
            Some(serde_json::to_vec(&PartitionMeta {
                low: next_low,
                bytes,
            })?),
        ));
        disk.store.write(&changes)?;
        let mut state = inner.state.lock();
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
