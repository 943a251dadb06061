//! Transforms' log events in `_redpanda.transform_logs`, as Redpanda writes
//! them (`src/v/transform/logging/`): the key is the transform's name, the
//! value an OpenTelemetry log record, the partition `murmur2(name) % n`
//! (Redpanda's, without Kafka's sign mask), flushed every 500 ms.

use std::sync::Arc;

use parking_lot::Mutex;
use std::time::UNIX_EPOCH;

use anyhow::Result;
use record_payload::BorrowedRecord;
use serde_json::json;
use transform_host::{LogEvent, Logger};

use topic_io::{Sink, Transport};

pub const LOGS_TOPIC: &str = "_redpanda.transform_logs";

/// The node id the harness reports, in the logs and `GET /v1/transform`.
pub const NODE_ID: i32 = 0;

/// Most bytes of events held between two flushes (Redpanda's
/// `data_transforms_logging_buffer_capacity_bytes`); more are dropped.
const BUFFER_BYTES: usize = 500 << 10;

/// One event as Redpanda writes it (`event.cc`, `rjson_serialize(…, otel_log_event)`).
pub fn otel_record(event: &LogEvent<'_>) -> serde_json::Value {
    let nanos = event
        .time
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    json!({
        "body": {"stringValue": event.message},
        "timeUnixNano": nanos,
        "severityNumber": event.stream.severity_number(),
        "attributes": [
            {"key": "transform_name", "value": {"stringValue": event.transform}},
            {"key": "node", "value": {"intValue": NODE_ID}},
        ],
    })
}

/// The partition of a transform's logs among `partitions`.
pub fn partition(name: &str, partitions: i32) -> i32 {
    (kafka_client::murmur2(name.as_bytes()) % partitions.max(1) as u32) as i32
}

/// Events waiting for the next flush, from every transform of a host.
#[derive(Clone, Default)]
pub struct LogBuffer {
    events: Arc<Mutex<Buffered>>,
}

#[derive(Default)]
struct Buffered {
    events: Vec<(String, Vec<u8>)>,
    bytes: usize,
    dropped: u64,
}

impl LogBuffer {
    /// A logger that keeps each event for the topic and passes it to `echo`.
    pub fn logger(&self, echo: Logger) -> Logger {
        let events = self.events.clone();
        Arc::new(move |event: LogEvent<'_>| {
            let value = otel_record(&event).to_string().into_bytes();
            let mut buffered = events.lock();
            if buffered.bytes + event.message.len() > BUFFER_BYTES {
                buffered.dropped += 1;
            } else {
                buffered.bytes += event.message.len();
                buffered.events.push((event.transform.to_string(), value));
            }
            drop(buffered);
            echo(event)
        })
    }

    /// Writes what is buffered to the logs topic (created with one
    /// partition, as Redpanda's `default_topic_partitions`).
    pub fn flush(&self, transport: &dyn Transport, writer: &mut dyn Sink) -> Result<()> {
        let (events, dropped) = {
            let mut buffered = self.events.lock();
            buffered.bytes = 0;
            (
                std::mem::take(&mut buffered.events),
                std::mem::take(&mut buffered.dropped),
            )
        };
        if dropped > 0 {
            tracing::warn!("{dropped} transform log events dropped: the log buffer was full");
        }
        if events.is_empty() {
            return Ok(());
        }
        let partitions = transport.ensure_topic(LOGS_TOPIC, 1)?;
        for (name, value) in &events {
            writer.send(
                LOGS_TOPIC,
                partition(name, partitions),
                None,
                &BorrowedRecord::new(Some(name.as_bytes()), Some(value)),
            )?;
        }
        writer.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use transform_host::LogStream;

    /// The value Redpanda writes, field for field (`event.cc`, `rjson_serialize(…, otel_log_event)`).
    #[test]
    fn an_event_is_an_otel_log_record() {
        let event = LogEvent {
            transform: "my-xform",
            stream: LogStream::Stdout,
            message: "hello \"world\"\n",
            time: UNIX_EPOCH + std::time::Duration::from_nanos(1_718_131_200_123_456_789),
        };
        assert_eq!(
            otel_record(&event).to_string(),
            r#"{"body":{"stringValue":"hello \"world\"\n"},"timeUnixNano":1718131200123456789,"severityNumber":9,"attributes":[{"key":"transform_name","value":{"stringValue":"my-xform"}},{"key":"node","value":{"intValue":0}}]}"#
        );
    }

    /// `rpc_client.cc`, `rpc_client::compute_output_partition`: murmur2 modulo the partitions, unmasked, so
    /// the broker may put a name elsewhere than Kafka's partitioner would.
    #[test]
    fn the_partition_is_redpandas() {
        assert_eq!(kafka_client::murmur2(b"my-xform"), 0x8b44_ea14);
        assert_eq!(partition("my-xform", 3), (0x8b44_ea14u32 % 3) as i32);
        assert_eq!(partition("my-xform", 1), 0);
    }
}
