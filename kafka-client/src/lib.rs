//! The Kafka client every part that speaks Kafka uses — the generator, the
//! bridge, `up --brokers`, the dashboard and the benches — so that one
//! configuration reaches any cluster, TLS and SASL included (Vector's
//! `src/kafka.rs` plays this part there).
//!
//! - [`KafkaConfig`]: librdkafka properties from `--brokers`, `-X`,
//!   `--kafka-config FILE` and the environment, shown with secrets masked;
//!   [`check`] fails fast, naming the cause, on bad credentials or an
//!   untrusted certificate.
//! - [`produce`]: an idempotent producer with delivery tracking.
//! - [`metadata`]: topics, partition counts, and a partition's true end.
//! - [`transport`]: the broker's topics as the project's one model of
//!   topics (`topic-io`): sources, a sink, offsets.
//! - [`partitioner`]: where a keyed record goes, as every Kafka client
//!   puts it.

pub mod config;
pub mod metadata;
pub mod partitioner;
pub mod produce;
pub mod transport;

pub use config::{check, probe, KafkaArgs, KafkaConfig, Unusable};
pub use metadata::REQUEST_TIMEOUT;
pub use metadata::{ensure_topic, fetched_end, partition_bounds, partition_count, topic_names};
pub use partitioner::{murmur2, partition_for, MAX_PARTITIONS};
pub use produce::{flush, producer, send, Deliveries, TrackedProducer};
pub use transport::KafkaTransport;
