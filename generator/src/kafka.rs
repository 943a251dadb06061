//! The generator's broker sink, on the workspace's Kafka client.

use std::time::Duration;

use anyhow::Result;
use kafka_client::{flush, producer, send, Deliveries, KafkaConfig, TrackedProducer};
use rdkafka::producer::{BaseRecord, Producer};

use crate::sink::{LogRecord, Sink};

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
    pub fn new(config: &KafkaConfig, topic: &str) -> Result<KafkaSink> {
        Ok(KafkaSink {
            producer: producer(config)?,
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
