//! A reader of one topic's partitions, taking turns between them: from
//! each partition's tail in memory, or from the store when it is further
//! back.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use topic_io::Record;

use crate::state::State;
use crate::Topics;

/// Most records a reader takes from a partition at once.
pub(crate) const READ_CHUNK: usize = 512;

/// Most records a reader takes from the store at once: whole chunks, which
/// the store reads (and decompresses) whole whatever is taken from them.
const STORE_READ_CHUNK: usize = 8192;

/// A reader of one topic's partitions, taking turns between them.
pub struct Reader {
    pub(crate) topics: Topics,
    pub(crate) topic: String,
    pub(crate) positions: Vec<i64>,
    /// Each partition's end when the reader was made.
    pub(crate) start_ends: Vec<i64>,
    /// Where the next chunk is taken from, so partitions take turns.
    pub(crate) next_partition: usize,
    /// Records taken, not yet returned.
    pub(crate) local: VecDeque<(i32, Record)>,
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
                topics.wait(&mut state, deadline - now);
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
