//! The embedded topics as the project's one model of topics (`topic-io`):
//! the same sources, sink and offsets a broker gives, so that the harness,
//! the generator and the dashboard run on them unchanged.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{anyhow, Result};
use record_payload::{decode_record, encode_record};
use topic_io::{BorrowedRecord, Offsets, Polled, Record, Sink, Source, StartAt, Tail, Transport};

use crate::{Append, Reader, Topics};

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
        Ok(self.names())
    }

    fn ensure_topic(&self, topic: &str, partitions: i32) -> Result<i32> {
        Topics::ensure_topic(self, topic, partitions)
    }

    fn bounds(&self, topic: &str, partitions: i32) -> Result<Vec<(i64, i64)>> {
        (0..partitions)
            .map(|p| Topics::bounds(self, topic, p))
            .collect()
    }

    fn tail(&self, topic: &str, partitions: i32) -> Result<Vec<Tail>> {
        let ends = self.ends(topic)?;
        (0..partitions)
            .map(|p| {
                let end = *ends
                    .get(p as usize)
                    .ok_or_else(|| anyhow!("topic {topic} has no partition {p}"))?;
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

    fn offset_for_time(&self, topic: &str, partition: i32, ms: i64) -> Result<Option<i64>> {
        Topics::offset_for_time(self, topic, partition, ms)
    }

    fn read(&self, topic: &str, partition: i32, offset: i64, max: usize) -> Result<Vec<Record>> {
        Topics::read(self, topic, partition, offset, max)
    }

    fn source(&self, group: &str, topic: &str, starts: &[StartAt]) -> Result<Box<dyn Source>> {
        Ok(Box::new(self.reader(group, topic, starts)?))
    }

    fn sink(&self) -> Result<Box<dyn Sink>> {
        Ok(Box::new(TopicSink {
            topics: self.clone(),
            ends: HashMap::new(),
            kept: Vec::new(),
        }))
    }

    fn offsets(&self, group: &str, topic: &str) -> Result<Box<dyn Offsets>> {
        let commit_wanted = self.lock().commit_wanted(topic);
        Ok(Box::new(TopicOffsets {
            topics: self.clone(),
            group: group.to_string(),
            topic: topic.to_string(),
            commit_wanted,
        }))
    }

    /// Waits until the store has everything appended.
    fn sync(&self) -> Result<()> {
        self.flush()
    }
}

impl Source for Reader {
    fn poll(&mut self, wait: Duration) -> Polled {
        match Reader::poll(self, wait) {
            Ok(Some((p, record))) => Polled::Record(p, record),
            Ok(None) => Polled::Idle,
            Err(e) => Polled::Trouble(format!("{e:#}")),
        }
    }

    fn seek(&mut self, partition: i32, offset: i64) -> Result<()> {
        Reader::seek(self, partition, offset)
    }

    fn lags(&self) -> Option<Vec<i64>> {
        Reader::lags(self)
    }

    fn caught_up(&self) -> bool {
        Reader::caught_up(self)
    }
}

/// Keeps what is sent until it is pushed or flushed, then appends it
/// topic by topic in the order sent: readers are woken once a batch, not
/// once a record, and a batch's records of a partition are consecutive.
struct TopicSink {
    topics: Topics,
    ends: HashMap<(String, i32), i64>,
    /// Per topic, in the order first sent to: partition, time, payload.
    kept: Vec<(String, Vec<Append>)>,
}

/// Records without a time get the store's clock, as a broker stamps what
/// it appends (LogAppendTime).
fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl TopicSink {
    /// Appends what is kept. On disk that is stored as far as a writer
    /// needs: everything reaches the store in the order it was appended,
    /// so a crash keeps a prefix of it, never a record without what came
    /// before it.
    fn append_kept(&mut self) -> Result<()> {
        for (topic, records) in std::mem::take(&mut self.kept) {
            let partitions: Vec<i32> = records.iter().map(|r| r.0).collect();
            let offsets = self.topics.append_all(&topic, records)?;
            for (p, offset) in partitions.into_iter().zip(offsets) {
                self.ends.insert((topic.clone(), p), offset + 1);
            }
        }
        Ok(())
    }
}

impl Sink for TopicSink {
    fn send(
        &mut self,
        topic: &str,
        partition: i32,
        timestamp_ms: Option<i64>,
        record: &BorrowedRecord<'_>,
    ) -> Result<()> {
        let record = (
            partition,
            timestamp_ms.unwrap_or_else(now_ms),
            encoded(record),
        );
        match self.kept.iter_mut().find(|(t, _)| t == topic) {
            Some((_, records)) => records.push(record),
            None => self.kept.push((topic.to_string(), vec![record])),
        }
        Ok(())
    }

    fn push(&mut self) -> Result<()> {
        self.append_kept()
    }

    fn flush(&mut self) -> Result<()> {
        self.append_kept()
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

/// A group's commits on a topic: the group's floor, below which retention
/// may drop what it has read.
struct TopicOffsets {
    topics: Topics,
    group: String,
    topic: String,
    commit_wanted: Arc<AtomicBool>,
}

impl Offsets for TopicOffsets {
    fn committed(&self, partitions: i32) -> Result<Vec<Option<i64>>> {
        Ok(self.topics.committed(&self.group, &self.topic, partitions))
    }

    fn commit(&mut self, offsets: &[(i32, i64)], _wait: bool) -> Result<()> {
        self.topics.commit(&self.group, &self.topic, offsets)
    }

    fn commit_wanted(&self) -> bool {
        self.commit_wanted.load(Ordering::Relaxed)
    }
}
