//! The Kafka transport: producer settings that lose and duplicate nothing,
//! delivery tracking, topic creation, and the generator's broker sink.
//! The harness's bridge produces through the same pieces.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::Consumer;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::DeliveryResult;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use rdkafka::{ClientContext, Message};

use crate::sink::{LogRecord, Sink};

/// How long metadata and admin requests may take before we give up.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Settings every client of ours shares.
pub fn client_config(brokers: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", brokers)
        // A broker that goes away comes back: keep reconnecting, quickly.
        .set("reconnect.backoff.ms", "50")
        .set("reconnect.backoff.max.ms", "1000")
        .set("log_level", "3");
    config
}

/// An idempotent producer with acks from all replicas: retries after a
/// broker outage neither lose nor duplicate a record, and records of one
/// partition land in the order they were sent. The local queue is bounded,
/// so a slow broker slows the sender instead of growing memory.
pub fn producer_config(brokers: &str) -> ClientConfig {
    let mut config = client_config(brokers);
    config
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("queue.buffering.max.messages", "200000")
        .set("queue.buffering.max.kbytes", "65536")
        // Long enough to ride out a broker restart; a record older than
        // this is reported as failed, never dropped silently.
        .set("message.timeout.ms", "300000");
    config
}

/// Counts deliveries and remembers, per topic partition, the offset after
/// the last record acknowledged there.
#[derive(Default)]
pub struct Deliveries {
    failed: AtomicU64,
    first_error: Mutex<Option<String>>,
    ends: Mutex<HashMap<(String, i32), i64>>,
}

impl Deliveries {
    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }

    pub fn first_error(&self) -> Option<String> {
        self.first_error.lock().expect("not poisoned").clone()
    }

    /// The offset after the last acknowledged record of a topic partition.
    pub fn end_offset(&self, topic: &str, partition: i32) -> Option<i64> {
        let ends = self.ends.lock().expect("not poisoned");
        ends.get(&(topic.to_string(), partition)).copied()
    }
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(m) => {
                let mut ends = self.ends.lock().expect("not poisoned");
                let end = ends
                    .entry((m.topic().to_string(), m.partition()))
                    .or_default();
                *end = (*end).max(m.offset() + 1);
            }
            Err((e, _)) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                self.first_error
                    .lock()
                    .expect("not poisoned")
                    .get_or_insert_with(|| e.to_string());
            }
        }
    }
}

pub type TrackedProducer = BaseProducer<Deliveries>;

pub fn producer(brokers: &str) -> Result<TrackedProducer> {
    producer_config(brokers)
        .create_with_context(Deliveries::default())
        .context("creating the Kafka producer")
}

/// Sends one record, waiting while the local queue is full.
pub fn send(producer: &TrackedProducer, record: BaseRecord<'_, [u8], [u8]>) -> Result<()> {
    let mut record = record;
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                record = r;
                producer.poll(Duration::from_millis(10));
            }
            Err((e, r)) => {
                return Err(anyhow!(
                    "producing to {} partition {}: {e}",
                    r.topic,
                    r.partition.unwrap_or(-1)
                ))
            }
        }
    }
}

/// Waits until every record sent is acknowledged or has failed for good.
/// `waiting` is called about once a second while records are outstanding.
pub fn flush(producer: &TrackedProducer, waiting: &mut dyn FnMut(i32)) -> Result<()> {
    let mut last_call = Instant::now();
    loop {
        // A zero timeout sends what lingers at once; rdkafka's own waiting
        // polls in steps of 100 ms, far too coarse for a batch round trip.
        match producer.flush(Duration::ZERO) {
            Ok(()) => return Ok(()),
            Err(KafkaError::Flush(RDKafkaErrorCode::OperationTimedOut)) => {
                producer.poll(Duration::from_millis(1));
                if last_call.elapsed() >= Duration::from_secs(1) {
                    last_call = Instant::now();
                    waiting(producer.in_flight_count());
                }
            }
            Err(e) => return Err(e).context("waiting for the broker to acknowledge"),
        }
    }
}

/// The partition count of `topic`, creating it with `partitions` if it does
/// not exist. An existing topic keeps its own partition count.
pub fn ensure_topic(brokers: &str, topic: &str, partitions: i32) -> Result<i32> {
    if let Some(n) = partition_count(brokers, topic)? {
        return Ok(n);
    }
    let admin: AdminClient<DefaultClientContext> = client_config(brokers)
        .create()
        .context("creating the Kafka admin client")?;
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    let options = AdminOptions::new().operation_timeout(Some(REQUEST_TIMEOUT));
    let results = futures_executor::block_on(admin.create_topics([&new], &options))
        .with_context(|| format!("creating topic {topic}"))?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((_, code)) => bail!("creating topic {topic}: {code}"),
        }
    }
    // The broker may take a moment before its metadata shows the topic.
    let deadline = Instant::now() + REQUEST_TIMEOUT;
    loop {
        if let Some(n) = partition_count(brokers, topic)? {
            return Ok(n);
        }
        if Instant::now() > deadline {
            bail!("topic {topic} was created but does not show in the broker's metadata");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The names of the broker's topics.
pub fn topic_names(brokers: &str) -> Result<Vec<String>> {
    let consumer: rdkafka::consumer::BaseConsumer = client_config(brokers)
        .create()
        .context("creating a Kafka client")?;
    let metadata = consumer
        .fetch_metadata(None, REQUEST_TIMEOUT)
        .with_context(|| format!("reading the topics of {brokers}"))?;
    let mut names: Vec<String> = metadata
        .topics()
        .iter()
        .map(|t| t.name().to_string())
        .collect();
    names.sort();
    Ok(names)
}

/// The partition count of `topic`, or `None` if it does not exist.
pub fn partition_count(brokers: &str, topic: &str) -> Result<Option<i32>> {
    let consumer: rdkafka::consumer::BaseConsumer = client_config(brokers)
        .create()
        .context("creating a Kafka client")?;
    let metadata = consumer
        .fetch_metadata(Some(topic), REQUEST_TIMEOUT)
        .with_context(|| format!("reading metadata of topic {topic} from {brokers}"))?;
    let Some(t) = metadata.topics().iter().find(|t| t.name() == topic) else {
        return Ok(None);
    };
    match t.error() {
        None if !t.partitions().is_empty() => Ok(Some(t.partitions().len() as i32)),
        None => Ok(None),
        Some(e) => match RDKafkaErrorCode::from(e) {
            RDKafkaErrorCode::UnknownTopicOrPartition => Ok(None),
            code => bail!("topic {topic}: {code}"),
        },
    }
}

/// The generator's broker sink: records go to the partition the stream
/// chose (Kafka's default partitioner, so keys land where any Kafka client
/// would put them), stamped with their event time.
pub struct KafkaSink {
    producer: TrackedProducer,
    topic: String,
    sent: u64,
    /// Called about once a second while a flush waits.
    pub waiting: Box<dyn FnMut(i32) + Send>,
}

impl KafkaSink {
    pub fn new(brokers: &str, topic: &str) -> Result<KafkaSink> {
        Ok(KafkaSink {
            producer: producer(brokers)?,
            topic: topic.to_string(),
            sent: 0,
            waiting: Box::new(|_| {}),
        })
    }

    pub fn deliveries(&self) -> &Deliveries {
        self.producer.context()
    }
}

impl Sink for KafkaSink {
    fn send(&mut self, r: &LogRecord<'_>) -> Result<()> {
        send(
            &self.producer,
            BaseRecord::to(&self.topic)
                .partition(r.partition)
                .key(r.key.as_bytes())
                .payload(r.value)
                .timestamp(r.timestamp_ms),
        )?;
        self.sent += 1;
        // Serves delivery reports; every record would cost more than it tells.
        if self.sent.is_multiple_of(1024) {
            self.producer.poll(Duration::ZERO);
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        flush(&self.producer, &mut self.waiting)
    }

    fn failed(&self) -> u64 {
        self.deliveries().failed()
    }
}
