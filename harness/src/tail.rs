//! The true end of partitions, and their last records.
//!
//! A broker's "latest offset" (ListOffsets) cannot always be trusted: Tansu
//! 0.6 answers with the base offset of the newest stored batch plus one, not
//! the offset after its last record. So the bridge only takes it as a lower
//! bound and reads from there until the fetch responses say the partition
//! ends (partition EOF), which every broker reports correctly.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use generator::kafka::{client_config, REQUEST_TIMEOUT};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::message::BorrowedMessage;
use rdkafka::{Message, Offset, TopicPartitionList};

/// Reads partitions `0..partitions` of `topic` from near their end to their
/// end, calling `each` for every record read, and returns the end offsets.
pub fn read_tail(
    brokers: &str,
    topic: &str,
    partitions: i32,
    each: &mut dyn FnMut(&BorrowedMessage<'_>),
) -> Result<Vec<i64>> {
    let consumer: BaseConsumer = client_config(brokers)
        .set("group.id", format!("{topic}.tail"))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("fetch.wait.max.ms", "10")
        .create()
        .context("creating a Kafka consumer")?;
    let mut ends = Vec::with_capacity(partitions as usize);
    let mut assignment = TopicPartitionList::new();
    let deadline = Instant::now() + REQUEST_TIMEOUT;
    for p in 0..partitions {
        let (low, high) = retry(deadline, || {
            consumer.fetch_watermarks(topic, p, REQUEST_TIMEOUT)
        })
        .with_context(|| format!("reading the end of {topic} partition {p}"))?;
        let from = low.max(high - 1).max(0);
        ends.push(from);
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
                let p = m.partition() as usize;
                ends[p] = ends[p].max(m.offset() + 1);
                each(&m);
            }
            Some(Err(KafkaError::PartitionEOF(p))) if !at_end[p as usize] => {
                at_end[p as usize] = true;
                open -= 1;
            }
            Some(Err(KafkaError::PartitionEOF(_))) => {}
            // The broker may be away for a moment: librdkafka reconnects.
            Some(Err(e)) if Instant::now() < deadline => {
                eprintln!("reading {topic}: {e} (retrying)");
                std::thread::sleep(Duration::from_millis(100));
            }
            Some(Err(e)) => return Err(e).with_context(|| format!("reading {topic}")),
        }
    }
    Ok(ends)
}

/// Retries `f` until it succeeds or `deadline` passes, while the broker
/// cannot be reached.
pub fn retry<T>(deadline: Instant, mut f: impl FnMut() -> KafkaResult<T>) -> KafkaResult<T> {
    loop {
        match f() {
            Err(e) if Instant::now() < deadline => {
                eprintln!("{e} (retrying)");
                std::thread::sleep(Duration::from_millis(200));
            }
            result => return result,
        }
    }
}
