//! What a cluster holds: topics, their partition counts, and where a
//! partition ends.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaResult, RDKafkaErrorCode};

use crate::KafkaConfig;

/// How long metadata and admin requests may take before we give up.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a look at one topic's metadata may take: a reader waiting for
/// a topic says soon that the broker does not answer.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

/// The partition count of `topic`, creating it with `partitions` if it does
/// not exist. An existing topic keeps its own partition count.
pub fn ensure_topic(config: &KafkaConfig, topic: &str, partitions: i32) -> Result<i32> {
    if let Some(n) = partition_count(config, topic)? {
        return Ok(n);
    }
    let admin: AdminClient<DefaultClientContext> = config
        .client()
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
        if let Some(n) = partition_count(config, topic)? {
            return Ok(n);
        }
        if Instant::now() > deadline {
            bail!("topic {topic} was created but does not show in the broker's metadata");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The names of the broker's topics.
pub fn topic_names(config: &KafkaConfig) -> Result<Vec<String>> {
    let consumer: BaseConsumer = config
        .client()
        .create()
        .context("creating a Kafka client")?;
    let metadata = consumer
        .fetch_metadata(None, REQUEST_TIMEOUT)
        .with_context(|| format!("reading the topics of {}", config.brokers()))?;
    let mut names: Vec<String> = metadata
        .topics()
        .iter()
        .map(|t| t.name().to_string())
        .collect();
    names.sort();
    Ok(names)
}

/// The partition count of `topic`, or `None` if it does not exist.
pub fn partition_count(config: &KafkaConfig, topic: &str) -> Result<Option<i32>> {
    let consumer: BaseConsumer = config
        .client()
        .create()
        .context("creating a Kafka client")?;
    let metadata = consumer
        .fetch_metadata(Some(topic), LOOKUP_TIMEOUT)
        .with_context(|| {
            format!(
                "reading metadata of topic {topic} from {}",
                config.brokers()
            )
        })?;
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

/// A partition's first offset and its end for a consumer that reads it:
/// the broker's ListOffsets answer, raised to what the consumer's fetches
/// found (see [`fetched_end`]).
pub fn partition_bounds<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    partition: i32,
    wait: Duration,
) -> KafkaResult<(i64, i64)> {
    let (low, listed) = consumer.fetch_watermarks(topic, partition, wait)?;
    let end = fetched_end(consumer, topic, partition).map_or(listed, |f| f.max(listed));
    Ok((low, end))
}

/// The end of a partition as the consumer's last fetch response gave it
/// (librdkafka's cached high watermark), once it has fetched from it.
///
/// ListOffsets cannot be trusted for it: Tansu 0.6's memory engine
/// answers the base offset of the newest batch plus one, short of the
/// batch's other records (`list_offsets` in tansu-storage/src/dynostore.rs),
/// while its fetch responses carry the true watermark. The safe rdkafka API
/// only sends ListOffsets, hence the call into librdkafka.
pub fn fetched_end<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    partition: i32,
) -> Option<i64> {
    let topic = std::ffi::CString::new(topic).ok()?;
    let (mut low, mut high) = (-1i64, -1i64);
    // SAFETY: the client handle lives as long as `consumer`; librdkafka
    // reads the NUL-terminated name and writes the two offsets, nothing
    // more, and takes its own locks.
    let error = unsafe {
        rdkafka::bindings::rd_kafka_get_watermark_offsets(
            consumer.client().native_ptr(),
            topic.as_ptr(),
            partition,
            &mut low,
            &mut high,
        )
    };
    (error == rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR && high >= 0)
        .then_some(high)
}
