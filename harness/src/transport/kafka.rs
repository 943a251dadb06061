//! Topics on a Kafka-protocol broker, through the generator's producer
//! settings (idempotent, acks=all, bounded queue).

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use kafka_client::{ensure_topic, flush, partition_bounds, partition_count, producer, send};
use kafka_client::{KafkaConfig, TrackedProducer, REQUEST_TIMEOUT};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::message::{BorrowedMessage, Header, Headers, OwnedHeaders};
use rdkafka::producer::{BaseRecord, Producer};
use rdkafka::{Message, Offset, TopicPartitionList};
use record_payload::{encode_record, BorrowedHeader, BorrowedRecord};
use transform_host::Record;

use super::{resolve_start, Polled, Reader, StartAt, Tail, Transport, Writer};
use admin::StartOffset;

pub struct KafkaTransport {
    pub kafka: KafkaConfig,
}

impl Transport for KafkaTransport {
    fn describe(&self) -> String {
        self.kafka.brokers().to_string()
    }

    fn partition_count(&self, topic: &str) -> Result<Option<i32>> {
        partition_count(&self.kafka, topic)
    }

    fn topic_names(&self) -> Result<Vec<String>> {
        kafka_client::topic_names(&self.kafka)
    }

    fn ensure_topic(&self, topic: &str, partitions: i32) -> Result<i32> {
        ensure_topic(&self.kafka, topic, partitions)
    }

    /// A broker's "latest offset" (ListOffsets) cannot always be trusted:
    /// Tansu 0.6 answers with the base offset of the newest stored batch
    /// plus one, not the offset after its last record. So it is only a
    /// lower bound: read from there until the fetch responses say the
    /// partition ends (partition EOF), which every broker reports
    /// correctly.
    fn tail(&self, topic: &str, partitions: i32) -> Result<Vec<Tail>> {
        let consumer: BaseConsumer = self
            .kafka
            .client()
            .set("group.id", format!("{topic}.tail"))
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "true")
            .set("fetch.wait.max.ms", "10")
            .create()
            .context("creating a Kafka consumer")?;
        let mut tails = Vec::with_capacity(partitions as usize);
        let mut assignment = TopicPartitionList::new();
        let deadline = Instant::now() + REQUEST_TIMEOUT;
        for p in 0..partitions {
            let (low, high) = retry(deadline, || {
                consumer.fetch_watermarks(topic, p, REQUEST_TIMEOUT)
            })
            .with_context(|| format!("reading the end of {topic} partition {p}"))?;
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
        Ok(tails)
    }

    fn committed(&self, group: &str, topic: &str, partitions: i32) -> Result<Vec<Option<i64>>> {
        let consumer = group_consumer(&self.kafka, group)?;
        let mut wanted = TopicPartitionList::new();
        wanted.add_partition_range(topic, 0, partitions - 1);
        let deadline = Instant::now() + REQUEST_TIMEOUT;
        let committed = retry(deadline, || {
            consumer.committed_offsets(wanted.clone(), REQUEST_TIMEOUT)
        })
        .with_context(|| format!("reading the committed offsets of group {group}"))?;
        Ok((0..partitions)
            .map(|p| {
                committed
                    .find_partition(topic, p)
                    .and_then(|e| e.offset().to_raw())
                    .filter(|&o| o >= 0)
            })
            .collect())
    }

    fn commit(&self, group: &str, topic: &str, offsets: &[(i32, i64)]) -> Result<()> {
        let consumer = group_consumer(&self.kafka, group)?;
        let mut list = TopicPartitionList::new();
        for &(p, offset) in offsets {
            list.add_partition_offset(topic, p, Offset::Offset(offset))?;
        }
        let deadline = Instant::now() + REQUEST_TIMEOUT;
        retry(deadline, || consumer.commit(&list, CommitMode::Sync))
            .with_context(|| format!("committing the start of {group} on {topic}"))
    }

    /// The start from the low watermark and the true end (see `tail`); a
    /// time from the broker's time index (ListOffsets by timestamp).
    fn start_offsets(&self, topic: &str, partitions: i32, start: StartOffset) -> Result<Vec<i64>> {
        let tails = self.tail(topic, partitions)?;
        let consumer = group_consumer(&self.kafka, &format!("{topic}.start"))?;
        let deadline = Instant::now() + REQUEST_TIMEOUT;
        (0..partitions)
            .map(|p| {
                let (low, _) = retry(deadline, || {
                    consumer.fetch_watermarks(topic, p, REQUEST_TIMEOUT)
                })
                .with_context(|| format!("reading the start of {topic} partition {p}"))?;
                resolve_start(start, low, tails[p as usize].end, |ms| {
                    let mut wanted = TopicPartitionList::new();
                    wanted.add_partition_offset(topic, p, Offset::Offset(ms))?;
                    let found = retry(deadline, || {
                        consumer.offsets_for_times(wanted.clone(), REQUEST_TIMEOUT)
                    })
                    .with_context(|| format!("finding time {ms} in {topic} partition {p}"))?;
                    Ok(found
                        .find_partition(topic, p)
                        .and_then(|e| e.offset().to_raw())
                        .filter(|&o| o >= 0))
                })
            })
            .collect()
    }

    fn read(&self, topic: &str, partition: i32, offset: i64, max: usize) -> Result<Vec<Record>> {
        let consumer: BaseConsumer = self
            .kafka
            .client()
            .set("group.id", format!("{topic}.read"))
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "true")
            .set("auto.offset.reset", "earliest")
            .set("fetch.wait.max.ms", "10")
            .create()
            .context("creating a Kafka consumer")?;
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

    fn reader(&self, group: &str, topic: &str, starts: &[StartAt]) -> Result<Box<dyn Reader>> {
        let consumer = group_consumer(&self.kafka, group)?;
        let mut assignment = TopicPartitionList::new();
        for (p, start) in starts.iter().enumerate() {
            let offset = match *start {
                StartAt::Beginning => Offset::Beginning,
                StartAt::End => Offset::End,
                StartAt::Offset(o) => Offset::Offset(o),
            };
            assignment.add_partition_offset(topic, p as i32, offset)?;
        }
        consumer.assign(&assignment)?;
        Ok(Box::new(KafkaReader {
            consumer,
            topic: topic.to_string(),
        }))
    }

    fn writer(&self) -> Result<Box<dyn Writer>> {
        Ok(Box::new(KafkaWriter {
            producer: producer(&self.kafka)?,
        }))
    }
}

fn group_consumer(kafka: &KafkaConfig, group: &str) -> Result<BaseConsumer> {
    kafka
        .client()
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("fetch.wait.max.ms", "20")
        // Reading from before the log start rather than past the end.
        .set("auto.offset.reset", "earliest")
        .create()
        .context("creating the Kafka consumer")
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

struct KafkaReader {
    consumer: BaseConsumer,
    topic: String,
}

impl Reader for KafkaReader {
    fn poll(&mut self, wait: Duration) -> Polled {
        match self.consumer.poll(wait) {
            Some(Ok(m)) => {
                let (p, record) = to_record(&m);
                Polled::Record(p, record)
            }
            // librdkafka reconnects by itself.
            Some(Err(e)) => Polled::Trouble(e.to_string()),
            None => Polled::Idle,
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
            .with_context(|| format!("reading partition {partition} from offset {offset}"))
    }

    fn commit(&mut self, offsets: &[(i32, i64)], wait: bool) -> Result<()> {
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
            .context("committing input offsets")
    }

    /// From the partitions' ends as fetches found them (a broker's
    /// ListOffsets may say less, see `tail`) and the positions.
    fn lags(&self) -> Option<Vec<i64>> {
        let positions = self.consumer.position().ok()?;
        let mut lags = Vec::new();
        for e in positions.elements_for_topic(&self.topic) {
            let (_, high) = partition_bounds(
                &self.consumer,
                &self.topic,
                e.partition(),
                Duration::from_millis(500),
            )
            .ok()?;
            let p = e.partition() as usize;
            if lags.len() <= p {
                lags.resize(p + 1, 0);
            }
            lags[p] = (high - e.offset().to_raw().unwrap_or(high)).max(0);
        }
        Some(lags)
    }
}

/// A consumed message as the VM's input record: the ABI payload.
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

struct KafkaWriter {
    producer: TrackedProducer,
}

impl Writer for KafkaWriter {
    fn send(&mut self, topic: &str, partition: i32, record: &BorrowedRecord<'_>) -> Result<()> {
        let mut headers = OwnedHeaders::new_with_capacity(record.headers().len());
        for h in record.headers() {
            headers = headers.insert(Header {
                key: &String::from_utf8_lossy(h.key()),
                value: h.value(),
            });
        }
        let mut message = BaseRecord::to(topic).partition(partition).headers(headers);
        if let Some(k) = record.key() {
            message = message.key(k);
        }
        if let Some(v) = record.value() {
            message = message.payload(v);
        }
        send(&self.producer, message)
    }

    fn flush(&mut self) -> Result<()> {
        flush(&self.producer, &mut |n| {
            tracing::info!("waiting for the broker to acknowledge {n} records…")
        })?;
        let deliveries = self.producer.context();
        // Any failure is final for this writer: what follows it must not
        // be stored either.
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
}
