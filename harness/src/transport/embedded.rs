//! The embedded topics (the `topics` crate: in memory, or on disk under
//! a data folder) behind the same traits as a broker. The generator writes
//! to them through its `Sink` trait and the dashboard reads them through
//! its `Source` trait.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Result;
use dashboard::source::{pane_event, DeadLetter, Source, SourceEvent, VERSION_HEADER};
use generator::{LogRecord, Sink};
use record_payload::{decode_record, encode_record, BorrowedHeader, BorrowedRecord};
use topics::{NewRecord, StartAt, Topics};
use transform_host::Record;

use super::{resolve_start, Polled, Reader, Tail, Transport, Writer};
use admin::StartOffset;

fn host_record(r: topics::Record) -> Record {
    Record {
        offset: r.offset,
        timestamp_ms: r.timestamp_ms,
        payload: r.payload,
    }
}

impl Transport for Topics {
    fn describe(&self) -> String {
        match self.folder() {
            Some(folder) => format!("the topics in {}", folder.display()),
            None => "topics in memory".into(),
        }
    }

    fn partition_count(&self, topic: &str) -> Result<Option<i32>> {
        Ok(Topics::partition_count(self, topic))
    }

    fn topic_names(&self) -> Result<Vec<String>> {
        Ok(self.list().into_iter().map(|t| t.name).collect())
    }

    fn bounds(&self, topic: &str, partitions: i32) -> Result<Vec<(i64, i64)>> {
        (0..partitions)
            .map(|p| Topics::bounds(self, topic, p))
            .collect()
    }

    /// Waits until the store has everything appended.
    fn sync(&self) -> Result<()> {
        self.flush()
    }

    fn ensure_topic(&self, topic: &str, partitions: i32) -> Result<i32> {
        Topics::ensure_topic(self, topic, partitions)
    }

    fn tail(&self, topic: &str, partitions: i32) -> Result<Vec<Tail>> {
        let ends = self.ends(topic)?;
        (0..partitions)
            .map(|p| {
                let end = *ends
                    .get(p as usize)
                    .ok_or_else(|| anyhow::anyhow!("topic {topic} has no partition {p}"))?;
                let last = match self.last(topic, p)? {
                    Some(r) => Some(
                        decode_record(&r.payload)?
                            .value()
                            .unwrap_or_default()
                            .to_vec(),
                    ),
                    None => None,
                };
                Ok(Tail { end, last })
            })
            .collect()
    }

    fn committed(&self, group: &str, topic: &str, partitions: i32) -> Result<Vec<Option<i64>>> {
        Ok(Topics::committed(self, group, topic, partitions))
    }

    fn commit(&self, group: &str, topic: &str, offsets: &[(i32, i64)]) -> Result<()> {
        Topics::commit(self, group, topic, offsets)
    }

    fn start_offsets(&self, topic: &str, partitions: i32, start: StartOffset) -> Result<Vec<i64>> {
        (0..partitions)
            .map(|p| {
                let (low, end) = self.bounds(topic, p)?;
                resolve_start(start, low, end, |ms| self.offset_for_time(topic, p, ms))
            })
            .collect()
    }

    fn read(&self, topic: &str, partition: i32, offset: i64, max: usize) -> Result<Vec<Record>> {
        Ok(Topics::read(self, topic, partition, offset, max)?
            .into_iter()
            .map(host_record)
            .collect())
    }

    fn reader(&self, group: &str, topic: &str, starts: &[StartAt]) -> Result<Box<dyn Reader>> {
        Ok(Box::new(Topics::reader(self, group, topic, starts)?))
    }

    fn writer(&self) -> Result<Box<dyn Writer>> {
        Ok(Box::new(TopicWriter {
            topics: self.clone(),
            ends: HashMap::new(),
            sent: Vec::new(),
        }))
    }
}

impl Reader for topics::Reader {
    fn poll(&mut self, wait: Duration) -> Polled {
        match topics::Reader::poll(self, wait) {
            Ok(Some((p, record))) => Polled::Record(p, host_record(record)),
            Ok(None) => Polled::Idle,
            Err(e) => Polled::Trouble(format!("{e:#}")),
        }
    }

    fn seek(&mut self, partition: i32, offset: i64) -> Result<()> {
        topics::Reader::seek(self, partition, offset)
    }

    fn commit(&mut self, offsets: &[(i32, i64)], _wait: bool) -> Result<()> {
        topics::Reader::commit(self, offsets)
    }

    fn lags(&self) -> Option<Vec<i64>> {
        topics::Reader::lags(self)
    }
}

/// Keeps what is sent until `flush`, which appends it topic by topic, in
/// the order sent: readers are then woken once a batch, not once a record.
struct TopicWriter {
    topics: Topics,
    ends: HashMap<(String, i32), i64>,
    /// Per topic, in the order first sent to: partition, time, payload.
    sent: Vec<(String, Vec<NewRecord>)>,
}

/// The broker's clock stamps outputs (LogAppendTime).
fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Writer for TopicWriter {
    fn send(&mut self, topic: &str, partition: i32, record: &BorrowedRecord<'_>) -> Result<()> {
        let record = (partition, now_ms(), encoded(record));
        match self.sent.iter_mut().find(|(t, _)| t == topic) {
            Some((_, records)) => records.push(record),
            None => self.sent.push((topic.to_string(), vec![record])),
        }
        Ok(())
    }

    /// Appends what was sent. On disk that is stored as far as the bridge
    /// needs: everything reaches the store in the order it was appended,
    /// so a crash keeps a prefix of it, never a record without what came
    /// before it.
    fn flush(&mut self) -> Result<()> {
        for (topic, records) in std::mem::take(&mut self.sent) {
            let partitions: Vec<i32> = records.iter().map(|r| r.0).collect();
            let offsets = self.topics.append_all(&topic, records)?;
            for (p, offset) in partitions.into_iter().zip(offsets) {
                self.ends.insert((topic.clone(), p), offset + 1);
            }
        }
        Ok(())
    }

    fn end_offset(&self, topic: &str, partition: i32) -> Option<i64> {
        self.ends.get(&(topic.to_string(), partition)).copied()
    }
}

/// A record as a topic keeps it: a tail in memory holds it as long as
/// readers may want it, so without the spare capacity encoding grew.
fn encoded(record: &BorrowedRecord<'_>) -> Vec<u8> {
    let mut payload = Vec::new();
    encode_record(record, &mut payload);
    payload.shrink_to_fit();
    payload
}

/// The header that numbers the generator's events in its topic, so that a
/// restarted generator knows where its stream stopped.
pub const SEQUENCE_HEADER: &str = "harness.generator.seq";

/// Most events the sink appends at once: at full speed, where the next
/// event is never far behind.
const SINK_BATCH: usize = 256;

/// The generator's sink into a topic: records stamped with their event
/// time, on the partition the stream chose, numbered from `next`.
pub struct TopicSink {
    topics: Topics,
    topic: String,
    /// The number of the next event of the stream.
    next: u64,
    /// Events kept to append together, up to [`SINK_BATCH`], until the
    /// generator waits for the next one's time.
    kept: Vec<NewRecord>,
}

impl TopicSink {
    /// A sink numbering events from `next`.
    pub fn new(topics: Topics, topic: String, next: u64) -> TopicSink {
        TopicSink {
            topics,
            topic,
            next,
            kept: Vec::new(),
        }
    }

    fn append_kept(&mut self) -> Result<()> {
        if !self.kept.is_empty() {
            self.topics
                .append_all(&self.topic, std::mem::take(&mut self.kept))?;
        }
        Ok(())
    }
}

impl Sink for TopicSink {
    fn send(&mut self, r: &LogRecord<'_>) -> Result<()> {
        let seq = self.next.to_string();
        let payload = encoded(&BorrowedRecord::new_with_headers(
            Some(r.key.as_bytes()),
            Some(r.value),
            vec![BorrowedHeader::new(
                SEQUENCE_HEADER.as_bytes(),
                Some(seq.as_bytes()),
            )],
        ));
        self.kept.push((r.partition, r.timestamp_ms, payload));
        self.next += 1;
        if self.kept.len() >= SINK_BATCH {
            self.append_kept()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        self.append_kept()
    }

    fn idle(&mut self) -> Result<()> {
        self.append_kept()
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
                reader: Box::new(self.topics.reader("dashboard", name, &starts)?),
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
            Some(dlq) => format!("{} and {dlq} ({})", self.topic, self.topics.describe()),
            None => format!("{} ({})", self.topic, self.topics.describe()),
        }
    }
}
