//! The on-disk side of durable topics: a fjall keyspace with two
//! partitions. `records` holds chunks of consecutive records of a topic
//! partition, as Kafka keeps record batches: one key per chunk, (topic id,
//! partition, first offset) big-endian so that chunks sort by offset, and
//! the chunk's records in its value. A key a record would cost the store
//! as much as the pipeline. `meta` holds the topics, the commits, each
//! partition's low offset and size, and what the harness keeps beside
//! them.
//!
//! fjall writes every batch to one journal and hands it to the OS before
//! `commit` returns, so a killed process loses nothing written, and a
//! crash of the machine loses at most the last `fsync_ms` and keeps a
//! prefix of the batches: what the bridge's exactness needs.

use std::path::Path;

use anyhow::{Context, Result};
use fjall::compaction::Strategy as CompactionStrategy;
use fjall::{Config, Keyspace, PartitionCreateOptions, PartitionHandle};
use topic_io::Record;

/// How often fjall syncs its journal to the disk.
const FSYNC_MS: u16 = 1000;

/// The journals kept before memtables are flushed. Below fjall's 512 MiB,
/// because the journal holds every record a second time until then, and
/// the `meta` partition's few writes would keep that much of it; not as
/// low as 64 MiB, where fjall stalled every write for 500 ms at 90% of it
/// (`check_journal_size`) and a back-fill on disk ran 15% slower.
const MAX_JOURNALING: u64 = 256 << 20;

/// The block size of the records' segments.
const RECORD_BLOCK: u32 = 32 << 10;

/// The records' memtable: flushed when it holds this much.
const RECORD_MEMTABLE: u32 = 16 << 20;

/// Blocks kept decompressed for readers behind the tails in memory.
const BLOCK_CACHE: u64 = 16 << 20;

/// Memtables in all: memory the store takes beside the topics' tails.
const MAX_WRITE_BUFFER: u64 = 32 << 20;

/// What a chunk holds, without its records.
#[derive(Debug, Clone, Copy)]
pub struct ChunkInfo {
    pub first: i64,
    pub count: i64,
    /// When it was written: time retention counts from it, as Redpanda's
    /// broker timestamps do.
    pub append_ms: i64,
    pub bytes: u64,
}

/// A chunk to write: consecutive records of a partition from `first`.
pub struct Chunk {
    pub topic: u32,
    pub partition: u32,
    pub first: i64,
    pub count: i64,
    /// The encoded records; see [`encode_chunk`].
    pub value: Vec<u8>,
}

/// One batch of changes: after a crash, all of it or none.
#[derive(Default)]
pub struct Changes {
    pub chunks: Vec<Chunk>,
    /// Chunks to drop: topic, partition, first offset.
    pub removed: Vec<(u32, u32, i64)>,
    /// Meta entries' new values; `None` removes one.
    pub meta: Vec<(String, Option<Vec<u8>>)>,
}

/// A chunk's value: when it was written and how many records, then each
/// record's timestamp, length and payload.
pub fn encode_chunk<'a>(
    append_ms: i64,
    records: impl ExactSizeIterator<Item = (i64, &'a [u8])>,
) -> Vec<u8> {
    let mut value = Vec::with_capacity(12 + records.len() * 300);
    value.extend_from_slice(&append_ms.to_be_bytes());
    value.extend_from_slice(&(records.len() as u32).to_be_bytes());
    for (timestamp_ms, payload) in records {
        value.extend_from_slice(&timestamp_ms.to_be_bytes());
        value.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        value.extend_from_slice(payload);
    }
    value
}

fn damaged() -> anyhow::Error {
    anyhow::anyhow!("a damaged chunk in the store")
}

fn number<const N: usize>(value: &[u8], at: usize) -> Result<[u8; N]> {
    value
        .get(at..at + N)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(damaged)
}

fn info(key: &[u8], value: &[u8]) -> Result<ChunkInfo> {
    Ok(ChunkInfo {
        first: offset_of(key)?,
        count: u32::from_be_bytes(number(value, 8)?) as i64,
        append_ms: i64::from_be_bytes(number(value, 0)?),
        bytes: value.len() as u64,
    })
}

/// The records of a chunk in `from..until`, at most `max` of them, onto `out`.
fn decode_into(
    key: &[u8],
    value: &[u8],
    from: i64,
    until: i64,
    max: usize,
    out: &mut Vec<Record>,
) -> Result<()> {
    let info = info(key, value)?;
    let mut at = 12;
    for i in 0..info.count {
        let offset = info.first + i;
        let timestamp_ms = i64::from_be_bytes(number(value, at)?);
        let len = u32::from_be_bytes(number(value, at + 8)?) as usize;
        let payload = value.get(at + 12..at + 12 + len).ok_or_else(damaged)?;
        at += 12 + len;
        if offset >= until || out.len() >= max {
            break;
        }
        if offset >= from {
            out.push(Record {
                offset,
                timestamp_ms,
                payload: payload.to_vec(),
            });
        }
    }
    Ok(())
}

pub struct Store {
    keyspace: Keyspace,
    records: PartitionHandle,
    meta: PartitionHandle,
}

fn key(topic: u32, partition: u32, offset: i64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..4].copy_from_slice(&topic.to_be_bytes());
    k[4..8].copy_from_slice(&partition.to_be_bytes());
    k[8..].copy_from_slice(&(offset as u64).to_be_bytes());
    k
}

fn offset_of(key: &[u8]) -> Result<i64> {
    Ok(u64::from_be_bytes(number(key, 8)?) as i64)
}

impl Store {
    pub fn open(path: &Path) -> Result<Store> {
        let keyspace = Config::new(path)
            .fsync_ms(Some(FSYNC_MS))
            .max_journaling_size(MAX_JOURNALING)
            .max_write_buffer_size(MAX_WRITE_BUFFER)
            .cache_size(BLOCK_CACHE)
            .open()
            .with_context(|| format!("opening the store in {}", path.display()))?;
        // Chunks are appended in key order and read in ranges: large
        // blocks, and size-tiered compaction, which rewrites them least.
        let records = keyspace.open_partition(
            "records",
            PartitionCreateOptions::default()
                .block_size(RECORD_BLOCK)
                .max_memtable_size(RECORD_MEMTABLE)
                .compaction_strategy(CompactionStrategy::SizeTiered(
                    fjall::compaction::SizeTiered::new(64 << 20, 8),
                )),
        )?;
        let meta = keyspace.open_partition("meta", PartitionCreateOptions::default())?;
        Ok(Store {
            keyspace,
            records,
            meta,
        })
    }

    /// Writes `changes` as one batch.
    pub fn write(&self, changes: &Changes) -> Result<()> {
        let mut batch = self.keyspace.batch();
        for c in &changes.chunks {
            batch.insert(
                &self.records,
                key(c.topic, c.partition, c.first),
                c.value.as_slice(),
            );
        }
        for &(topic, partition, first) in &changes.removed {
            batch.remove(&self.records, key(topic, partition, first));
        }
        for (key, value) in &changes.meta {
            match value {
                Some(value) => batch.insert(&self.meta, key.as_bytes(), value.as_slice()),
                None => batch.remove(&self.meta, key.as_bytes()),
            }
        }
        batch.commit().context("writing to the store")
    }

    /// Every meta entry whose key starts with `prefix`.
    pub fn meta(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>> {
        self.meta
            .prefix(prefix.as_bytes())
            .map(|kv| {
                let (k, v) = kv?;
                Ok((String::from_utf8_lossy(&k).into_owned(), v.to_vec()))
            })
            .collect()
    }

    /// The meta entry under `key`.
    pub fn meta_value(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.meta.get(key.as_bytes())?.map(|v| v.to_vec()))
    }

    /// The key of the chunk holding `offset`, or of the first one after it.
    fn chunk_key(&self, topic: u32, partition: u32, offset: i64) -> Result<[u8; 16]> {
        let before = key(topic, partition, 0)..=key(topic, partition, offset);
        if let Some(kv) = self.records.range(before).next_back() {
            let (k, v) = kv?;
            let info = info(&k, &v)?;
            if info.first + info.count > offset {
                return Ok(key(topic, partition, info.first));
            }
        }
        Ok(key(topic, partition, offset))
    }

    /// Up to `max` records of a partition in `from..until`.
    pub fn read(
        &self,
        topic: u32,
        partition: u32,
        from: i64,
        until: i64,
        max: usize,
    ) -> Result<Vec<Record>> {
        let mut out = Vec::new();
        if from >= until {
            return Ok(out);
        }
        let start = self.chunk_key(topic, partition, from)?;
        for kv in self.records.range(start..key(topic, partition, until)) {
            let (k, v) = kv?;
            decode_into(&k, &v, from, until, max, &mut out)?;
            if out.len() >= max {
                break;
            }
        }
        Ok(out)
    }

    /// The chunks of a partition from the one holding `from`, as long as
    /// `wanted` says so, `max` at most: each is read only once the one
    /// before it was wanted.
    pub fn chunks_while(
        &self,
        topic: u32,
        partition: u32,
        from: i64,
        max: usize,
        mut wanted: impl FnMut(&ChunkInfo) -> bool,
    ) -> Result<Vec<ChunkInfo>> {
        let start = self.chunk_key(topic, partition, from)?;
        let mut chunks = Vec::new();
        for kv in self.records.range(start..key(topic, partition, i64::MAX)) {
            let (k, v) = kv?;
            let chunk = info(&k, &v)?;
            if chunks.len() >= max || !wanted(&chunk) {
                break;
            }
            chunks.push(chunk);
        }
        Ok(chunks)
    }

    /// The last record of a partition.
    pub fn last(&self, topic: u32, partition: u32) -> Result<Option<Record>> {
        let range = key(topic, partition, 0)..key(topic, partition, i64::MAX);
        let Some(kv) = self.records.range(range).next_back() else {
            return Ok(None);
        };
        let (k, v) = kv?;
        let mut out = Vec::new();
        decode_into(&k, &v, 0, i64::MAX, usize::MAX, &mut out)?;
        Ok(out.pop())
    }

    /// The first offset a partition keeps.
    pub fn first(&self, topic: u32, partition: u32) -> Result<Option<i64>> {
        let range = key(topic, partition, 0)..key(topic, partition, i64::MAX);
        match self.records.range(range).next() {
            Some(kv) => Ok(Some(offset_of(&kv?.0)?)),
            None => Ok(None),
        }
    }

    /// Syncs everything written to the disk.
    pub fn sync(&self) -> Result<()> {
        self.keyspace
            .persist(fjall::PersistMode::SyncAll)
            .context("syncing the store")
    }

    /// The bytes the store takes on disk.
    pub fn disk_space(&self) -> u64 {
        self.keyspace.disk_space()
    }
}
