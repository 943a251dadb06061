//! Producing without losing or duplicating a record: an idempotent
//! producer, sends that wait while the local queue is full, and delivery
//! tracking.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::DeliveryResult;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use rdkafka::{ClientContext, Message};

use crate::KafkaConfig;

/// An idempotent producer with acks from all replicas: retries after a
/// broker outage neither lose nor duplicate a record, and records of one
/// partition land in the order they were sent. The local queue is bounded,
/// so a slow broker slows the sender instead of growing memory.
const PRODUCER: &[(&str, &str)] = &[
    ("enable.idempotence", "true"),
    ("acks", "all"),
    ("linger.ms", "5"),
    ("queue.buffering.max.messages", "200000"),
    ("queue.buffering.max.kbytes", "65536"),
    // Long enough to ride out a broker restart; a record older than this
    // is reported as failed, never dropped silently.
    ("message.timeout.ms", "300000"),
];

/// Counts failed deliveries and remembers, per topic partition, the offset
/// after the last record acknowledged there.
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
        self.first_error.lock().clone()
    }

    /// The offset after the last acknowledged record of a topic partition.
    pub fn end_offset(&self, topic: &str, partition: i32) -> Option<i64> {
        let ends = self.ends.lock();
        ends.get(&(topic.to_string(), partition)).copied()
    }
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(m) => {
                let mut ends = self.ends.lock();
                let end = ends
                    .entry((m.topic().to_string(), m.partition()))
                    .or_default();
                *end = (*end).max(m.offset() + 1);
            }
            Err((e, _)) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                self.first_error.lock().get_or_insert_with(|| e.to_string());
            }
        }
    }
}

pub type TrackedProducer = BaseProducer<Deliveries>;

pub fn producer(config: &KafkaConfig) -> Result<TrackedProducer> {
    config
        .client_with(PRODUCER)
        .create_with_context(Deliveries::default())
        .with_context(|| format!("creating the Kafka producer ({config})"))
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
