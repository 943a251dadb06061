//! Topics on a Kafka-protocol broker as the project's one model of topics
//! (`topic-io`): sources, a sink and offsets over librdkafka, with the
//! producer settings of [`crate::produce`] (idempotent, acks=all, bounded
//! queue).

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::message::{BorrowedMessage, Header, Headers, OwnedHeaders};
use rdkafka::producer::{BaseRecord, Producer};
use rdkafka::{Message, Offset, TopicPartitionList};
use record_payload::encode_record;
use topic_io::{BorrowedHeader, BorrowedRecord, Offsets, Polled, Record, Sink, Source};
use topic_io::{StartAt, Tail, Transport};

use crate::{
    ensure_topic, flush, partition_bounds, partition_count, probe, producer, send, KafkaConfig,
    TrackedProducer, Unusable, REQUEST_TIMEOUT,
};

/// The topics of the broker a configuration reaches.
pub struct KafkaTransport {
    pub kafka: KafkaConfig,
}

/// How long a diagnosis waits for the broker's answer.
const DIAGNOSIS_WAIT: Duration = Duration::from_secs(3);

impl Transport for KafkaTransport {
    fn describe(&self) -> String {
        self.kafka.brokers().to_string()
    }

    fn diagnose(&self) -> Option<String> {
        match probe(&self.kafka, DIAGNOSIS_WAIT) {
            Err(Unusable::Refused(why)) => Some(why),
            _ => None,
        }
    }

    fn partition_count(&self, topic: &str) -> Result<Option<i32>> {
        partition_count(&self.kafka, topic)
    }

    fn topic_names(&self) -> Result<Vec<String>> {
        crate::topic_names(&self.kafka)
    }

    fn ensure_topic(&self, topic: &str, partitions: i32) -> Result<i32> {
        ensure_topic(&self.kafka, topic, partitions)
    }

    /// The low watermark, and the true end (see `tail`).
    fn bounds(&self, topic: &str, partitions: i32) -> Result<Vec<(i64, i64)>> {
        let (lows, tails) = self.read_to_end(topic, partitions)?;
        Ok(lows
            .into_iter()
            .zip(tails)
            .map(|(low, t)| (low, t.end))
            .collect())
    }

    fn tail(&self, topic: &str, partitions: i32) -> Result<Vec<Tail>> {
        Ok(self.read_to_end(topic, partitions)?.1)
    }

    /// From the broker's time index (ListOffsets by timestamp).
    fn offset_for_time(&self, topic: &str, partition: i32, ms: i64) -> Result<Option<i64>> {
        let consumer = self.consumer(&format!("{topic}.time"), &[])?;
        let mut wanted = TopicPartitionList::new();
        wanted.add_partition_offset(topic, partition, Offset::Offset(ms))?;
        let deadline = Instant::now() + REQUEST_TIMEOUT;
        let found = retry(deadline, || {
            consumer.offsets_for_times(wanted.clone(), REQUEST_TIMEOUT)
        })
        .with_context(|| format!("finding time {ms} in {topic} partition {partition}"))?;
        Ok(found
            .find_partition(topic, partition)
            .and_then(|e| e.offset().to_raw())
            .filter(|&o| o >= 0))
    }

    fn read(&self, topic: &str, partition: i32, offset: i64, max: usize) -> Result<Vec<Record>> {
        let consumer = self.consumer(&format!("{topic}.read"), &[("fetch.wait.max.ms", "10")])?;
        let mut assignment = TopicPartitionList::new();
        assignment.add_partition_offset(topic, partition, Offset::Offset(offset.max(0)))?;
        consumer.assign(&assignment)?;
        let deadline = Instant::now() + REQUEST_TIMEOUT;
        let mut records = Vec::new();
        while records.len() < max && Instant::now() < deadline {
            match consumer.poll(Duration::from_millis(100)) {
                Some(Ok(m)) => records.push(to_record(&m).1),
                Some(Err(KafkaError::PartitionEOF(_))) => break,
                Some(Err(e)) => tracing::warn!("reading {topic}: {e} (retrying)"),
                None => {}
            }
        }
        Ok(records)
    }

    fn source(&self, group: &str, topic: &str, starts: &[StartAt]) -> Result<Box<dyn Source>> {
        // A consumer per topic: adding a topic to a running consumer would
        // re-seek its partitions, and a seek into the middle of a
        // producer's batch makes Tansu 0.6 skip the rest of that batch.
        let consumer = self.consumer(group, &[("fetch.wait.max.ms", "20")])?;
        let mut assignment = TopicPartitionList::new();
        let mut positions = Vec::with_capacity(starts.len());
        for (p, start) in starts.iter().enumerate() {
            // Where it starts, for the lag: a partition's first offset is
            // at least 0, and a reader from the end lags by nothing yet.
            let (offset, position) = match *start {
                StartAt::Beginning => (Offset::Beginning, 0),
                StartAt::End => (Offset::End, i64::MAX),
                StartAt::Offset(o) => (Offset::Offset(o), o),
            };
            assignment.add_partition_offset(topic, p as i32, offset)?;
            positions.push(position);
        }
        consumer.assign(&assignment)?;
        Ok(Box::new(KafkaSource {
            consumer,
            topic: topic.to_string(),
            at_end: vec![false; positions.len()],
            positions,
        }))
    }

    fn sink(&self) -> Result<Box<dyn Sink>> {
        Ok(Box::new(KafkaSink {
            producer: producer(&self.kafka)?,
            sent: 0,
        }))
    }

    fn offsets(&self, group: &str, topic: &str) -> Result<Box<dyn Offsets>> {
        Ok(Box::new(KafkaOffsets {
            consumer: self.consumer(group, &[])?,
            topic: topic.to_string(),
        }))
    }
}

impl KafkaTransport {
    /// Each partition's low watermark and true end and last value.
    ///
    /// A broker's "latest offset" (ListOffsets) cannot always be trusted:
    /// Tansu 0.6 answers with the base offset of the newest stored batch
    /// plus one, not the offset after its last record. So it is only a
    /// lower bound: read from there until the fetch responses say the
    /// partition ends (partition EOF), which every broker reports
    /// correctly.
    fn read_to_end(&self, topic: &str, partitions: i32) -> Result<(Vec<i64>, Vec<Tail>)> {
        let consumer = self.consumer(&format!("{topic}.tail"), &[("fetch.wait.max.ms", "10")])?;
        let mut tails = Vec::with_capacity(partitions as usize);
        let mut lows = Vec::with_capacity(partitions as usize);
        let mut assignment = TopicPartitionList::new();
        let deadline = Instant::now() + REQUEST_TIMEOUT;
        for p in 0..partitions {
            let (low, high) = retry(deadline, || {
                consumer.fetch_watermarks(topic, p, REQUEST_TIMEOUT)
            })
            .with_context(|| format!("reading the end of {topic} partition {p}"))?;
            lows.push(low);
            let from = low.max(high - 1).max(0);
            tails.push(Tail {
                end: from,
                last: None,
            });
            assignment.add_partition_offset(topic, p, Offset::Offset(from))?;
        }
        consumer.assign(&assignment)?;
        let mut open = partitions;
        let mut at_end = vec![false; partitions as usize];
        while open > 0 {
            if Instant::now() > deadline {
                bail!("timed out reading to the end of {topic}");
            }
            match consumer.poll(Duration::from_millis(100)) {
                None => {}
                Some(Ok(m)) => {
                    let tail = &mut tails[m.partition() as usize];
                    if m.offset() >= tail.end {
                        tail.end = m.offset() + 1;
                        tail.last = Some(m.payload().unwrap_or_default().to_vec());
                    }
                }
                Some(Err(KafkaError::PartitionEOF(p))) if !at_end[p as usize] => {
                    at_end[p as usize] = true;
                    open -= 1;
                }
                Some(Err(KafkaError::PartitionEOF(_))) => {}
                // The broker may be away for a moment: librdkafka reconnects.
                Some(Err(e)) if Instant::now() < deadline => {
                    tracing::warn!("reading {topic}: {e} (retrying)");
                    std::thread::sleep(Duration::from_millis(100));
                }
                Some(Err(e)) => return Err(e).with_context(|| format!("reading {topic}")),
            }
        }
        Ok((lows, tails))
    }

    /// A consumer that reads what it is assigned as `group`, commits only
    /// when told, and knows where each partition ends.
    fn consumer(&self, group: &str, extra: &[(&str, &str)]) -> Result<BaseConsumer> {
        let mut config = self.kafka.client_with(extra);
        // Ours whatever the properties say: the group's commits are the
        // caller's, and where a partition ends (EOF) tells a source it
        // has caught up; reading from before the log start rather than
        // past the end skips nothing.
        config
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "true")
            .set("auto.offset.reset", "earliest");
        config.create().context("creating a Kafka consumer")
    }
}

/// Retries `f` until it succeeds or `deadline` passes, while the broker
/// cannot be reached.
pub fn retry<T>(deadline: Instant, mut f: impl FnMut() -> KafkaResult<T>) -> KafkaResult<T> {
    loop {
        match f() {
            Err(e) if Instant::now() < deadline => {
                tracing::warn!("{e} (retrying)");
                std::thread::sleep(Duration::from_millis(200));
            }
            result => return result,
        }
    }
}

struct KafkaSource {
    consumer: BaseConsumer,
    topic: String,
    /// Per partition: the next offset to read, and whether a fetch found
    /// its end since the source opened.
    positions: Vec<i64>,
    at_end: Vec<bool>,
}

impl Source for KafkaSource {
    fn poll(&mut self, wait: Duration) -> Polled {
        let deadline = Instant::now() + wait;
        loop {
            match self
                .consumer
                .poll(deadline.saturating_duration_since(Instant::now()))
            {
                Some(Ok(m)) => {
                    let (p, record) = to_record(&m);
                    if let Some(position) = self.positions.get_mut(p as usize) {
                        *position = record.offset + 1;
                    }
                    return Polled::Record(p, record);
                }
                // The end of a partition for now: what the wait is left for
                // may still come.
                Some(Err(KafkaError::PartitionEOF(p))) => {
                    if let Some(at_end) = self.at_end.get_mut(p as usize) {
                        *at_end = true;
                    }
                    if Instant::now() >= deadline {
                        return Polled::Idle;
                    }
                }
                // librdkafka reconnects by itself.
                Some(Err(e)) => return Polled::Trouble(e.to_string()),
                None => return Polled::Idle,
            }
        }
    }

    fn seek(&mut self, partition: i32, offset: i64) -> Result<()> {
        self.consumer
            .seek(
                &self.topic,
                partition,
                Offset::Offset(offset),
                REQUEST_TIMEOUT,
            )
            .with_context(|| format!("reading partition {partition} from offset {offset}"))?;
        if let Some(position) = self.positions.get_mut(partition as usize) {
            *position = offset;
        }
        Ok(())
    }

    /// From the partitions' ends as fetches found them (a broker's
    /// ListOffsets may say less, see `tail`) and the positions.
    fn lags(&self) -> Option<Vec<i64>> {
        let mut lags = Vec::with_capacity(self.positions.len());
        for (p, position) in self.positions.iter().enumerate() {
            let (low, high) = partition_bounds(
                &self.consumer,
                &self.topic,
                p as i32,
                Duration::from_secs(1),
            )
            .ok()?;
            lags.push((high - (*position).max(low)).max(0));
        }
        Some(lags)
    }

    /// Every partition was read to its end once: a fetch response says
    /// where a partition ends; ListOffsets may say less.
    fn caught_up(&self) -> bool {
        self.at_end.iter().all(|&at_end| at_end)
    }
}

/// A consumed message as the project's record: the payload in Redpanda's
/// record format.
fn to_record(message: &BorrowedMessage<'_>) -> (i32, Record) {
    let headers: Vec<BorrowedHeader<'_>> = message
        .headers()
        .map(|hs| {
            hs.iter()
                .map(|h| BorrowedHeader::new(h.key.as_bytes(), h.value))
                .collect()
        })
        .unwrap_or_default();
    let record = BorrowedRecord::new_with_headers(message.key(), message.payload(), headers);
    let mut payload = Vec::new();
    encode_record(&record, &mut payload);
    (
        message.partition(),
        Record {
            offset: message.offset(),
            timestamp_ms: message.timestamp().to_millis().unwrap_or(0),
            payload,
        },
    )
}

struct KafkaSink {
    producer: TrackedProducer,
    sent: u64,
}

impl Sink for KafkaSink {
    fn send(
        &mut self,
        topic: &str,
        partition: i32,
        timestamp_ms: Option<i64>,
        record: &BorrowedRecord<'_>,
    ) -> Result<()> {
        let mut message = BaseRecord::to(topic).partition(partition);
        if !record.headers().is_empty() {
            let mut headers = OwnedHeaders::new_with_capacity(record.headers().len());
            for h in record.headers() {
                headers = headers.insert(Header {
                    key: &String::from_utf8_lossy(h.key()),
                    value: h.value(),
                });
            }
            message = message.headers(headers);
        }
        if let Some(k) = record.key() {
            message = message.key(k);
        }
        if let Some(v) = record.value() {
            message = message.payload(v);
        }
        if let Some(ms) = timestamp_ms {
            message = message.timestamp(ms);
        }
        send(&self.producer, message)?;
        self.sent += 1;
        // Serves delivery reports; every record would cost more than it tells.
        if self.sent.is_multiple_of(1024) {
            self.producer.poll(Duration::ZERO);
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        flush(&self.producer, &mut |n| {
            tracing::info!("waiting for the broker to acknowledge {n} records…")
        })?;
        let deliveries = self.producer.context();
        // Any failure is final for this sink: what follows it must not be
        // stored either.
        if deliveries.failed() > 0 {
            bail!(
                "{} records could not be delivered ({})",
                deliveries.failed(),
                deliveries.first_error().unwrap_or_default()
            );
        }
        Ok(())
    }

    fn end_offset(&self, topic: &str, partition: i32) -> Option<i64> {
        self.producer.context().end_offset(topic, partition)
    }

    fn failed(&self) -> u64 {
        self.producer.context().failed()
    }
}

struct KafkaOffsets {
    consumer: BaseConsumer,
    topic: String,
}

impl Offsets for KafkaOffsets {
    fn committed(&self, partitions: i32) -> Result<Vec<Option<i64>>> {
        let mut wanted = TopicPartitionList::new();
        wanted.add_partition_range(&self.topic, 0, partitions - 1);
        let deadline = Instant::now() + REQUEST_TIMEOUT;
        let committed = retry(deadline, || {
            self.consumer
                .committed_offsets(wanted.clone(), REQUEST_TIMEOUT)
        })
        .with_context(|| format!("reading the committed offsets on {}", self.topic))?;
        Ok((0..partitions)
            .map(|p| {
                committed
                    .find_partition(&self.topic, p)
                    .and_then(|e| e.offset().to_raw())
                    .filter(|&o| o >= 0)
            })
            .collect())
    }

    fn commit(&mut self, offsets: &[(i32, i64)], wait: bool) -> Result<()> {
        // Serves what the client has to say (errors, logs): this consumer
        // reads nothing that would.
        let _ = self.consumer.poll(Duration::ZERO);
        let mut list = TopicPartitionList::new();
        for &(p, offset) in offsets {
            list.add_partition_offset(&self.topic, p, Offset::Offset(offset))?;
        }
        let mode = if wait {
            CommitMode::Sync
        } else {
            CommitMode::Async
        };
        self.consumer
            .commit(&list, mode)
            .with_context(|| format!("committing offsets on {}", self.topic))
    }
}
