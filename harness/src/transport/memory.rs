//! In-process topics for the embedded mode: partitioned logs with offsets,
//! consumer-group commits and bounded memory, behind the same traits as a
//! broker. The generator writes to them through its `Sink` trait and the
//! dashboard reads them through its `Source` trait.
//!
//! Memory stays bounded without losing a record: a partition drops its
//! oldest records once it holds more than its share of the retention, but
//! never a record that a reader of the topic has not committed yet; a
//! writer to a partition that is twice over its share waits until readers
//! commit. A topic nobody reads (the batch log, `events` when nothing
//! consumes it) keeps only its retention, like a broker's.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{anyhow, bail, Result};
use dashboard::source::{pane_event, DeadLetter, Source, SourceEvent, VERSION_HEADER};
use generator::{LogRecord, Sink};
use record_payload::{decode_record, encode_record, BorrowedRecord};
use transform_host::Record;

use super::{resolve_start, Polled, Reader, StartAt, Tail, Transport, Writer};
use admin::StartOffset;

/// Bytes counted per record besides its payload.
const RECORD_OVERHEAD: usize = 48;

/// Most records a reader takes from a partition at once.
const READ_CHUNK: usize = 512;

/// The topics of one process; clones share them.
#[derive(Clone)]
pub struct Topics {
    inner: Arc<Inner>,
}

struct Inner {
    state: Mutex<State>,
    /// Signalled when records are appended or committed.
    changed: Condvar,
    retention_bytes: usize,
    /// Set when the process stops: a writer that would wait gives up.
    closed: AtomicBool,
}

/// An append refused because the topics are closing (see [`Topics::close`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Closed;

impl std::fmt::Display for Closed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the in-process topics are closing")
    }
}

impl std::error::Error for Closed {}

#[derive(Default)]
struct State {
    topics: HashMap<String, Vec<Partition>>,
    committed: HashMap<(String, String), Vec<Option<i64>>>,
    /// Per topic and group: the offsets below which the group needs
    /// nothing (its start, then its commits).
    floors: HashMap<String, HashMap<String, Vec<i64>>>,
}

#[derive(Default)]
struct Partition {
    /// The offset of `records[0]`.
    start: i64,
    records: VecDeque<Stored>,
    bytes: usize,
}

struct Stored {
    timestamp_ms: i64,
    payload: Vec<u8>,
}

impl Partition {
    fn end(&self) -> i64 {
        self.start + self.records.len() as i64
    }
}

impl State {
    fn topic(&self, topic: &str) -> Result<&Vec<Partition>> {
        self.topics
            .get(topic)
            .ok_or_else(|| anyhow!("topic {topic} does not exist"))
    }

    /// The lowest offset any reader of `topic` still needs in `partition`.
    fn floor(&self, topic: &str, partition: usize) -> Option<i64> {
        self.floors
            .get(topic)?
            .values()
            .filter_map(|f| f.get(partition).copied())
            .min()
    }

    /// Drops a partition's oldest records beyond its retention share that
    /// no reader needs; always keeps the last record.
    fn trim(&mut self, topic: &str, partition: usize, share: usize) {
        // Most appends find the partition within its share: no floor needed.
        let over = self.topics.get(topic).and_then(|t| t.get(partition));
        if over.is_none_or(|p| p.bytes <= share) {
            return;
        }
        let floor = self.floor(topic, partition).unwrap_or(i64::MAX);
        let Some(p) = self
            .topics
            .get_mut(topic)
            .and_then(|t| t.get_mut(partition))
        else {
            return;
        };
        while p.bytes > share && p.records.len() > 1 && p.start < floor {
            let dropped = p.records.pop_front().expect("not empty");
            p.bytes -= dropped.payload.len() + RECORD_OVERHEAD;
            p.start += 1;
        }
    }
}

impl Topics {
    /// Topics that keep about `retention_bytes` each (spread over their
    /// partitions) beyond what readers have not committed.
    pub fn new(retention_bytes: usize) -> Topics {
        Topics {
            inner: Arc::new(Inner {
                state: Mutex::new(State::default()),
                changed: Condvar::new(),
                retention_bytes,
                closed: AtomicBool::new(false),
            }),
        }
    }

    /// Stops every wait for readers: a writer that would have to wait for
    /// a reader that has stopped fails with [`Closed`] instead.
    pub fn close(&self) {
        self.inner.closed.store(true, Ordering::Relaxed);
        self.inner.changed.notify_all();
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().expect("not poisoned")
    }

    fn share(&self, partitions: usize) -> usize {
        self.inner.retention_bytes / partitions.max(1)
    }

    /// Appends a record (Redpanda's record format), waiting while the
    /// partition is twice over its share and readers lag; returns its
    /// offset.
    pub fn append(
        &self,
        topic: &str,
        partition: i32,
        timestamp_ms: i64,
        payload: Vec<u8>,
    ) -> Result<i64> {
        let mut state = self.lock();
        let partitions = state.topic(topic)?.len();
        let Some(index) = usize::try_from(partition).ok().filter(|&p| p < partitions) else {
            bail!("topic {topic} has no partition {partition}");
        };
        let share = self.share(partitions);
        loop {
            state.trim(topic, index, share);
            // A partition left with one record larger than its share takes
            // the next: otherwise nothing could ever be appended after it.
            let p = &state.topics[topic][index];
            if p.bytes <= 2 * share || p.records.len() <= 1 {
                break;
            }
            if self.inner.closed.load(Ordering::Relaxed) {
                return Err(Closed.into());
            }
            state = self
                .inner
                .changed
                .wait_timeout(state, Duration::from_millis(100))
                .expect("not poisoned")
                .0;
        }
        let p = &mut state.topics.get_mut(topic).expect("checked")[index];
        p.bytes += payload.len() + RECORD_OVERHEAD;
        p.records.push_back(Stored {
            timestamp_ms,
            payload,
        });
        let offset = p.end() - 1;
        drop(state);
        self.inner.changed.notify_all();
        Ok(offset)
    }

    /// The bytes every partition holds, as retention counts them.
    pub fn stored_bytes(&self) -> usize {
        self.lock().topics.values().flatten().map(|p| p.bytes).sum()
    }

    pub fn exists(&self, topic: &str) -> bool {
        self.lock().topics.contains_key(topic)
    }

    /// The end offset of every partition of `topic`.
    pub fn ends(&self, topic: &str) -> Result<Vec<i64>> {
        Ok(self
            .lock()
            .topic(topic)?
            .iter()
            .map(Partition::end)
            .collect())
    }

    /// Resolves where a reader starts and registers what it needs.
    fn register(&self, group: &str, topic: &str, starts: &[StartAt]) -> Result<Vec<i64>> {
        let mut state = self.lock();
        let partitions = state.topic(topic)?;
        if starts.len() != partitions.len() {
            bail!(
                "topic {topic} has {} partitions, not {}",
                partitions.len(),
                starts.len()
            );
        }
        let positions: Vec<i64> = partitions
            .iter()
            .zip(starts)
            .map(|(p, start)| match *start {
                StartAt::Beginning => p.start,
                StartAt::End => p.end(),
                StartAt::Offset(o) => o.max(p.start),
            })
            .collect();
        state
            .floors
            .entry(topic.to_string())
            .or_default()
            .insert(group.to_string(), positions.clone());
        Ok(positions)
    }
}

impl Transport for Topics {
    fn describe(&self) -> String {
        "in-process topics".into()
    }

    fn partition_count(&self, topic: &str) -> Result<Option<i32>> {
        Ok(self.lock().topics.get(topic).map(|t| t.len() as i32))
    }

    fn ensure_topic(&self, topic: &str, partitions: i32) -> Result<i32> {
        if partitions < 1 {
            bail!("topic {topic} needs at least one partition, not {partitions}");
        }
        let mut state = self.lock();
        let t = state
            .topics
            .entry(topic.to_string())
            .or_insert_with(|| (0..partitions).map(|_| Partition::default()).collect());
        Ok(t.len() as i32)
    }

    fn tail(&self, topic: &str, partitions: i32) -> Result<Vec<Tail>> {
        let state = self.lock();
        let t = state.topic(topic)?;
        (0..partitions as usize)
            .map(|p| {
                let Some(p) = t.get(p) else {
                    bail!("topic {topic} has no partition {p}");
                };
                let last = match p.records.back() {
                    Some(r) => Some(
                        decode_record(&r.payload)?
                            .value()
                            .unwrap_or_default()
                            .to_vec(),
                    ),
                    None => None,
                };
                Ok(Tail { end: p.end(), last })
            })
            .collect()
    }

    fn committed(&self, group: &str, topic: &str, partitions: i32) -> Result<Vec<Option<i64>>> {
        let state = self.lock();
        let key = (group.to_string(), topic.to_string());
        let committed = state.committed.get(&key);
        Ok((0..partitions as usize)
            .map(|p| committed.and_then(|c| c.get(p).copied().flatten()))
            .collect())
    }

    fn commit(&self, group: &str, topic: &str, offsets: &[(i32, i64)]) -> Result<()> {
        let mut state = self.lock();
        let n = state.topic(topic)?.len();
        let key = (group.to_string(), topic.to_string());
        let committed = state.committed.entry(key).or_insert_with(|| vec![None; n]);
        for &(p, offset) in offsets {
            committed[p as usize] = Some(offset);
        }
        let floors = state.floors.entry(topic.to_string()).or_default();
        let floor = floors
            .entry(group.to_string())
            .or_insert_with(|| vec![0; n]);
        for &(p, offset) in offsets {
            floor[p as usize] = offset;
        }
        drop(state);
        self.inner.changed.notify_all();
        Ok(())
    }

    fn start_offsets(&self, topic: &str, partitions: i32, start: StartOffset) -> Result<Vec<i64>> {
        let state = self.lock();
        let t = state.topic(topic)?;
        (0..partitions as usize)
            .map(|p| {
                let p = t
                    .get(p)
                    .ok_or_else(|| anyhow!("topic {topic} has no partition {p}"))?;
                resolve_start(start, p.start, p.end(), |ms| {
                    let at = p.records.iter().position(|r| r.timestamp_ms >= ms);
                    Ok(at.map(|i| p.start + i as i64))
                })
            })
            .collect()
    }

    fn read(&self, topic: &str, partition: i32, offset: i64, max: usize) -> Result<Vec<Record>> {
        let state = self.lock();
        let Some(p) = state.topic(topic)?.get(partition as usize) else {
            bail!("topic {topic} has no partition {partition}");
        };
        let from = offset.clamp(p.start, p.end());
        Ok(p.records
            .range((from - p.start) as usize..)
            .take(max)
            .enumerate()
            .map(|(i, r)| Record {
                offset: from + i as i64,
                timestamp_ms: r.timestamp_ms,
                payload: r.payload.clone(),
            })
            .collect())
    }

    fn reader(&self, group: &str, topic: &str, starts: &[StartAt]) -> Result<Box<dyn Reader>> {
        let positions = self.register(group, topic, starts)?;
        Ok(Box::new(TopicReader {
            topics: self.clone(),
            group: group.to_string(),
            topic: topic.to_string(),
            positions,
            next_partition: 0,
            local: VecDeque::new(),
        }))
    }

    fn writer(&self) -> Result<Box<dyn Writer>> {
        Ok(Box::new(TopicWriter {
            topics: self.clone(),
            ends: HashMap::new(),
        }))
    }
}

pub struct TopicReader {
    topics: Topics,
    group: String,
    topic: String,
    positions: Vec<i64>,
    /// Where the next chunk is taken from, so partitions take turns.
    next_partition: usize,
    /// Records taken from the topics, not yet returned.
    local: VecDeque<(i32, Record)>,
}

impl TopicReader {
    /// Takes the next chunk of records at hand into `local`.
    fn take(&mut self, state: &State) -> Result<()> {
        let partitions = state.topic(&self.topic)?;
        let n = partitions.len();
        for i in 0..n {
            let index = (self.next_partition + i) % n;
            let p = &partitions[index];
            // Records dropped before we read them: start from what is left.
            let position = self.positions[index].max(p.start);
            let from = (position - p.start) as usize;
            if from >= p.records.len() {
                continue;
            }
            let chunk = p.records.range(from..).take(READ_CHUNK);
            let taken = chunk.len() as i64;
            for (k, r) in chunk.enumerate() {
                self.local.push_back((
                    index as i32,
                    Record {
                        offset: position + k as i64,
                        timestamp_ms: r.timestamp_ms,
                        payload: r.payload.clone(),
                    },
                ));
            }
            self.positions[index] = position + taken;
            self.next_partition = (index + 1) % n;
            return Ok(());
        }
        Ok(())
    }
}

impl Reader for TopicReader {
    fn poll(&mut self, wait: Duration) -> Polled {
        if self.local.is_empty() {
            let deadline = Instant::now() + wait;
            let topics = self.topics.clone();
            let mut state = topics.lock();
            loop {
                if let Err(e) = self.take(&state) {
                    return Polled::Trouble(e.to_string());
                }
                let now = Instant::now();
                if !self.local.is_empty() || now >= deadline {
                    break;
                }
                state = topics
                    .inner
                    .changed
                    .wait_timeout(state, deadline - now)
                    .expect("not poisoned")
                    .0;
            }
        }
        match self.local.pop_front() {
            Some((p, record)) => Polled::Record(p, record),
            None => Polled::Idle,
        }
    }

    fn seek(&mut self, partition: i32, offset: i64) -> Result<()> {
        let Some(position) = self.positions.get_mut(partition as usize) else {
            bail!("topic {} has no partition {partition}", self.topic);
        };
        *position = offset;
        self.local.retain(|(p, _)| *p != partition);
        Ok(())
    }

    fn commit(&mut self, offsets: &[(i32, i64)], _wait: bool) -> Result<()> {
        self.topics.commit(&self.group, &self.topic, offsets)
    }

    fn lags(&self) -> Option<Vec<i64>> {
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

struct TopicWriter {
    topics: Topics,
    ends: HashMap<(String, i32), i64>,
}

/// The broker's clock stamps outputs (LogAppendTime).
fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Writer for TopicWriter {
    fn send(&mut self, topic: &str, partition: i32, record: &BorrowedRecord<'_>) -> Result<()> {
        let mut payload = Vec::new();
        encode_record(record, &mut payload);
        let offset = self.topics.append(topic, partition, now_ms(), payload)?;
        self.ends.insert((topic.to_string(), partition), offset + 1);
        Ok(())
    }

    /// Appends are stored when `send` returns.
    fn flush(&mut self) -> Result<()> {
        Ok(())
    }

    fn end_offset(&self, topic: &str, partition: i32) -> Option<i64> {
        self.ends.get(&(topic.to_string(), partition)).copied()
    }
}

/// The generator's sink into a topic: records stamped with their event
/// time, on the partition the stream chose.
pub struct TopicSink {
    pub topics: Topics,
    pub topic: String,
}

impl Sink for TopicSink {
    fn send(&mut self, r: &LogRecord<'_>) -> Result<()> {
        let mut payload = Vec::with_capacity(r.key.len() + r.value.len() + 8);
        encode_record(
            &BorrowedRecord::new(Some(r.key.as_bytes()), Some(r.value)),
            &mut payload,
        );
        self.topics
            .append(&self.topic, r.partition, r.timestamp_ms, payload)?;
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        Ok(())
    }
}

/// The dashboard's source from a topic: every partition from the
/// beginning, committing as it goes so that the topic can drop what it
/// has read.
pub struct TopicSource {
    pub topics: Topics,
    pub topic: String,
    /// Read beside `topic` when it exists: the dead letters.
    pub dlq_topic: Option<String>,
}

/// One topic the dashboard reads: where it is, where it ended at the start.
struct SourceTopic {
    reader: Box<dyn Reader>,
    dead_letters: bool,
    positions: Vec<i64>,
    start_ends: Vec<i64>,
}

impl Source for TopicSource {
    fn run(self: Box<Self>, out: SyncSender<SourceEvent>, stop: Arc<AtomicBool>) -> Result<()> {
        let mut topics = Vec::new();
        let dlq = self.dlq_topic.iter().filter(|t| self.topics.exists(t));
        for (name, dead_letters) in
            std::iter::once((&self.topic, false)).chain(dlq.map(|t| (t, true)))
        {
            let start_ends = self.topics.ends(name)?;
            let starts = vec![StartAt::Beginning; start_ends.len()];
            topics.push(SourceTopic {
                reader: self.topics.reader("dashboard", name, &starts)?,
                dead_letters,
                positions: vec![0; start_ends.len()],
                start_ends,
            });
        }
        let _ = out.send(SourceEvent::Connected(true));
        let unread: i64 = topics.iter().flat_map(|t| &t.start_ends).sum();
        let _ = out.send(SourceEvent::Lag(unread));
        let mut caught_up = false;
        let mut last_commit = Instant::now();
        let mut idle = false;
        while !stop.load(Ordering::Relaxed) {
            // Wait for the panes only when no topic had a record last round:
            // a busy dead-letter topic is then read at full speed.
            let waited = idle;
            idle = true;
            for (i, t) in topics.iter_mut().enumerate() {
                let wait = Duration::from_millis(if i == 0 && waited { 100 } else { 0 });
                let Polled::Record(p, record) = t.reader.poll(wait) else {
                    continue;
                };
                idle = false;
                t.positions[p as usize] = record.offset + 1;
                let decoded = decode_record(&record.payload)?;
                let event = if t.dead_letters {
                    let headers = decoded.headers().iter().map(|h| (h.key(), h.value()));
                    SourceEvent::DeadLetter(Box::new(DeadLetter::new(
                        p,
                        Some(record.offset),
                        decoded.key(),
                        decoded.value(),
                        headers,
                    )))
                } else {
                    let version = decoded
                        .headers()
                        .iter()
                        .find(|h| h.key() == VERSION_HEADER.as_bytes())
                        .and_then(|h| h.value());
                    pane_event(p, decoded.value().unwrap_or_default(), version)
                };
                if out.send(event).is_err() {
                    return Ok(());
                }
            }
            if !caught_up
                && idle
                && topics
                    .iter()
                    .all(|t| t.positions.iter().zip(&t.start_ends).all(|(p, e)| p >= e))
            {
                caught_up = true;
                let _ = out.send(SourceEvent::CaughtUp);
            }
            if last_commit.elapsed() >= Duration::from_millis(200) {
                last_commit = Instant::now();
                let mut lag = 0;
                for t in &mut topics {
                    let offsets: Vec<(i32, i64)> = t
                        .positions
                        .iter()
                        .enumerate()
                        .map(|(p, &o)| (p as i32, o))
                        .collect();
                    t.reader.commit(&offsets, false)?;
                    lag += t.reader.lags().map_or(0, |l| l.iter().sum());
                }
                let _ = out.send(SourceEvent::Lag(lag));
            }
        }
        Ok(())
    }

    fn describe(&self) -> String {
        match &self.dlq_topic {
            Some(dlq) => format!("{} and {dlq} (in-process topics)", self.topic),
            None => format!("{} (in-process topic)", self.topic),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(value: &str) -> BorrowedRecord<'_> {
        BorrowedRecord::new(None, Some(value.as_bytes()))
    }

    /// The bytes a record takes in a partition.
    fn stored_size(value: &str) -> usize {
        let mut out = Vec::new();
        encode_record(&record(value), &mut out);
        out.len() + RECORD_OVERHEAD
    }

    fn read_all(reader: &mut dyn Reader) -> Vec<(i32, i64)> {
        let mut got = Vec::new();
        while let Polled::Record(p, r) = reader.poll(Duration::from_millis(20)) {
            got.push((p, r.offset));
        }
        got
    }

    #[test]
    fn offsets_tails_readers_and_commits() {
        let topics = Topics::new(1 << 20);
        assert_eq!(topics.ensure_topic("t", 2).unwrap(), 2);
        assert_eq!(
            topics.ensure_topic("t", 5).unwrap(),
            2,
            "an existing topic keeps its count"
        );
        let mut writer = topics.writer().unwrap();
        for i in 0..3 {
            writer.send("t", 1, &record(&format!("v{i}"))).unwrap();
        }
        assert_eq!(writer.end_offset("t", 1), Some(3));
        assert!(writer.send("t", 2, &record("x")).is_err());
        let tails = topics.tail("t", 2).unwrap();
        assert_eq!(tails[0], Tail { end: 0, last: None });
        assert_eq!(tails[1].end, 3);
        assert_eq!(tails[1].last.as_deref(), Some(&b"v2"[..]));

        let mut reader = topics
            .reader("g", "t", &[StartAt::Beginning, StartAt::Offset(1)])
            .unwrap();
        assert_eq!(read_all(reader.as_mut()), [(1, 1), (1, 2)]);
        reader.seek(1, 0).unwrap();
        assert_eq!(read_all(reader.as_mut()), [(1, 0), (1, 1), (1, 2)]);
        let mut at_end = topics.reader("h", "t", &[StartAt::End; 2]).unwrap();
        assert!(read_all(at_end.as_mut()).is_empty());
        writer.send("t", 0, &record("new")).unwrap();
        assert_eq!(read_all(at_end.as_mut()), [(0, 0)]);

        assert_eq!(topics.committed("g", "t", 2).unwrap(), [None, None]);
        reader.commit(&[(1, 3)], true).unwrap();
        assert_eq!(topics.committed("g", "t", 2).unwrap(), [None, Some(3)]);
    }

    #[test]
    fn a_topic_nobody_reads_keeps_its_retention_and_its_last_record() {
        let value = "x".repeat(100);
        let size = stored_size(&value);
        let topics = Topics::new(10 * size);
        topics.ensure_topic("t", 1).unwrap();
        let mut writer = topics.writer().unwrap();
        for _ in 0..100 {
            writer.send("t", 0, &record(&value)).unwrap();
        }
        let state = topics.lock();
        let p = &state.topics["t"][0];
        assert_eq!(p.end(), 100);
        assert!(p.records.len() <= 11, "{} records kept", p.records.len());
        drop(state);
        let tiny = Topics::new(1);
        tiny.ensure_topic("t", 1).unwrap();
        tiny.writer()
            .unwrap()
            .send("t", 0, &record("last"))
            .unwrap();
        let tails = tiny.tail("t", 1).unwrap();
        assert_eq!(tails[0].last.as_deref(), Some(&b"last"[..]));
        // A reader behind what was dropped starts at what is left.
        let mut reader = topics.reader("late", "t", &[StartAt::Beginning]).unwrap();
        let read = read_all(reader.as_mut());
        assert_eq!(read.last(), Some(&(0, 99)));
        assert!(read[0].1 > 0);
    }

    #[test]
    fn a_record_larger_than_the_retention_does_not_stall_the_partition() {
        let topics = Topics::new(1000);
        topics.ensure_topic("t", 1).unwrap();
        let _reader = topics.reader("g", "t", &[StartAt::Beginning]).unwrap();
        let mut writer = topics.writer().unwrap();
        // The reader has read nothing; the first record alone is over twice
        // the share, and the next one still goes in.
        writer.send("t", 0, &record(&"z".repeat(5000))).unwrap();
        writer.send("t", 0, &record("next")).unwrap();
        assert_eq!(writer.end_offset("t", 0), Some(2));
    }

    #[test]
    fn closing_frees_a_writer_waiting_for_a_reader_that_stopped() {
        let value = "w".repeat(200);
        let topics = Topics::new(4 * stored_size(&value));
        topics.ensure_topic("t", 1).unwrap();
        let _stopped_reader = topics.reader("g", "t", &[StartAt::Beginning]).unwrap();
        let writing = {
            let topics = topics.clone();
            std::thread::spawn(move || {
                let mut writer = topics.writer().unwrap();
                loop {
                    if let Err(e) = writer.send("t", 0, &record(&value)) {
                        return e;
                    }
                }
            })
        };
        std::thread::sleep(Duration::from_millis(300));
        assert!(!writing.is_finished(), "the writer waits for the reader");
        topics.close();
        let error = writing.join().unwrap();
        assert!(error.is::<Closed>(), "{error:#}");
    }

    #[test]
    fn a_writer_waits_for_readers_and_nothing_is_lost() {
        let value = "y".repeat(200);
        let size = stored_size(&value);
        let topics = Topics::new(20 * size);
        topics.ensure_topic("t", 1).unwrap();
        let mut reader = topics.reader("g", "t", &[StartAt::Beginning]).unwrap();
        let writing = {
            let topics = topics.clone();
            let value = value.clone();
            std::thread::spawn(move || {
                let mut writer = topics.writer().unwrap();
                for _ in 0..1000 {
                    writer.send("t", 0, &record(&value)).unwrap();
                }
            })
        };
        let mut next = 0;
        while next < 1000 {
            match reader.poll(Duration::from_secs(5)) {
                Polled::Record(0, r) => {
                    assert_eq!(r.offset, next, "records arrive in order, none missing");
                    next += 1;
                    // Nothing read is dropped until it is committed.
                    let state = topics.lock();
                    let p = &state.topics["t"][0];
                    assert!(p.bytes <= 2 * 20 * size + size, "{} bytes held", p.bytes);
                    drop(state);
                    if next % 10 == 0 {
                        reader.commit(&[(0, next)], false).unwrap();
                    }
                }
                Polled::Record(..) => unreachable!("one partition"),
                Polled::Idle | Polled::Trouble(_) => panic!("the writer stalled at {next}"),
            }
        }
        writing.join().unwrap();
    }
}
