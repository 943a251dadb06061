//! The on-disk side of durable topics: a fjall keyspace with two
//! partitions. `records` holds every record under (topic id, partition,
//! offset), big-endian so that a partition's records sort by offset;
//! `meta` holds the topics, the commits, each partition's low offset and
//! size, and what the harness keeps beside them.
//!
//! fjall writes every batch to one journal and hands it to the OS before
//! `commit` returns, so a killed process loses nothing written, and a
//! crash of the machine loses at most the last `fsync_ms` and keeps a
//! prefix of the batches: what the bridge's exactness needs.

use std::path::Path;

use anyhow::{Context, Result};
use fjall::{Config, Keyspace, PartitionCreateOptions, PartitionHandle};

/// How often fjall syncs its journal to the disk.
const FSYNC_MS: u16 = 1000;

/// A record as the store keeps it.
pub struct StoredRecord {
    pub offset: i64,
    pub timestamp_ms: i64,
    /// When it was appended: time retention counts from it, as Redpanda's
    /// broker timestamps do.
    pub append_ms: i64,
    pub payload: Vec<u8>,
}

/// One change, written in order with the others.
pub enum Op {
    Record {
        topic: u32,
        partition: u32,
        offset: i64,
        timestamp_ms: i64,
        append_ms: i64,
        payload: std::sync::Arc<[u8]>,
    },
    Remove {
        topic: u32,
        partition: u32,
        offset: i64,
    },
    Meta {
        key: String,
        value: Vec<u8>,
    },
}

impl Op {
    /// The bytes it adds to what waits to be written.
    pub fn size(&self) -> usize {
        match self {
            Op::Record { payload, .. } => payload.len() + 32,
            Op::Remove { .. } => 16,
            Op::Meta { key, value } => key.len() + value.len(),
        }
    }
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

fn offset_of(key: &[u8]) -> i64 {
    let mut o = [0u8; 8];
    o.copy_from_slice(&key[8..16]);
    u64::from_be_bytes(o) as i64
}

fn decode(key: &[u8], value: &[u8]) -> Result<StoredRecord> {
    anyhow::ensure!(
        key.len() == 16 && value.len() >= 16,
        "a damaged record in the store"
    );
    let number = |at: usize| {
        let mut n = [0u8; 8];
        n.copy_from_slice(&value[at..at + 8]);
        i64::from_be_bytes(n)
    };
    Ok(StoredRecord {
        offset: offset_of(key),
        timestamp_ms: number(0),
        append_ms: number(8),
        payload: value[16..].to_vec(),
    })
}

impl Store {
    pub fn open(path: &Path) -> Result<Store> {
        let keyspace = Config::new(path)
            .fsync_ms(Some(FSYNC_MS))
            .open()
            .with_context(|| format!("opening the store in {}", path.display()))?;
        let records = keyspace.open_partition("records", PartitionCreateOptions::default())?;
        let meta = keyspace.open_partition("meta", PartitionCreateOptions::default())?;
        Ok(Store {
            keyspace,
            records,
            meta,
        })
    }

    /// Writes `ops` as one batch: after a crash, all of it or none.
    pub fn write(&self, ops: &[Op]) -> Result<()> {
        let mut batch = self.keyspace.batch();
        for op in ops {
            match op {
                Op::Record {
                    topic,
                    partition,
                    offset,
                    timestamp_ms,
                    append_ms,
                    payload,
                } => {
                    let mut value = Vec::with_capacity(16 + payload.len());
                    value.extend_from_slice(&timestamp_ms.to_be_bytes());
                    value.extend_from_slice(&append_ms.to_be_bytes());
                    value.extend_from_slice(payload);
                    batch.insert(&self.records, key(*topic, *partition, *offset), value);
                }
                Op::Remove {
                    topic,
                    partition,
                    offset,
                } => batch.remove(&self.records, key(*topic, *partition, *offset)),
                Op::Meta { key, value } => batch.insert(&self.meta, key.as_bytes(), value),
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

    /// Up to `max` records of a partition in `from..until`.
    pub fn read(
        &self,
        topic: u32,
        partition: u32,
        from: i64,
        until: i64,
        max: usize,
    ) -> Result<Vec<StoredRecord>> {
        if from >= until {
            return Ok(Vec::new());
        }
        self.records
            .range(key(topic, partition, from)..key(topic, partition, until))
            .take(max)
            .map(|kv| {
                let (k, v) = kv?;
                decode(&k, &v)
            })
            .collect()
    }

    /// The last record of a partition.
    pub fn last(&self, topic: u32, partition: u32) -> Result<Option<StoredRecord>> {
        let range = key(topic, partition, 0)..key(topic, partition, i64::MAX);
        match self.records.range(range).next_back() {
            Some(kv) => {
                let (k, v) = kv?;
                decode(&k, &v).map(Some)
            }
            None => Ok(None),
        }
    }

    /// The first record of a partition at or after `offset`.
    pub fn first_from(&self, topic: u32, partition: u32, offset: i64) -> Result<Option<i64>> {
        let range = key(topic, partition, offset)..key(topic, partition, i64::MAX);
        match self.records.range(range).next() {
            Some(kv) => Ok(Some(offset_of(&kv?.0))),
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
