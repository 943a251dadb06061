//! librdkafka (rdkafka) against the listener on topics kept on disk: the
//! idempotent producer, a consumer group that commits and resumes after a
//! restart, list offsets, and records written by either side read by the
//! other.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use kafka_listener::{bind, serve, Listener, TopicStorage};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientConfig, ClientContext};
use record_payload::decode_record;
use topics::{DataFolder, Retention, Topics};

const TOPIC: &str = "logs";
/// The key of a record appended to the topics directly.
const FROM_TOPICS: &str = "k-from-topics";

fn start(folder: &Path) -> (Topics, Listener) {
    let topics = Topics::open(DataFolder::open(folder).unwrap(), Retention::default()).unwrap();
    topics.ensure_topic(TOPIC, 2).unwrap();
    let bound = bind("127.0.0.1:0".parse().unwrap()).unwrap();
    // Metadata sends clients to the advertised address: the one bound.
    let advertised = format!("tcp://{}", bound.local_addr().unwrap());
    let storage = TopicStorage::new(topics.clone(), "harness", 0, advertised.parse().unwrap());
    (topics, serve(bound, storage).unwrap())
}

fn stop(topics: Topics, listener: Listener) {
    drop(listener);
    topics.shut_down().unwrap();
}

/// Counts deliveries that failed.
#[derive(Default)]
struct Deliveries(AtomicU64);

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if result.is_err() {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn producer(addr: &str) -> BaseProducer<Deliveries> {
    ClientConfig::new()
        .set("bootstrap.servers", addr)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .create_with_context(Deliveries::default())
        .unwrap()
}

fn consumer(addr: &str, group: &str) -> BaseConsumer {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", addr)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .create()
        .unwrap();
    consumer.subscribe(&[TOPIC]).unwrap();
    consumer
}

/// Keys read until `want` are in, or none came for 10 s.
fn read(consumer: &BaseConsumer, want: usize) -> Vec<String> {
    let mut got = Vec::new();
    let mut quiet = std::time::Instant::now();
    while got.len() < want && quiet.elapsed() < Duration::from_secs(20) {
        if let Some(m) = consumer.poll(Duration::from_millis(200)) {
            let m = m.unwrap();
            got.push(String::from_utf8(m.key().unwrap().to_vec()).unwrap());
            quiet = std::time::Instant::now();
        }
    }
    got
}

fn produce(addr: &str, keys: std::ops::Range<usize>) {
    let producer = producer(addr);
    for i in keys {
        let (key, value) = (format!("k{i}"), format!("{{\"n\":{i}}}"));
        let headers = OwnedHeaders::new().insert(Header {
            key: "source",
            value: Some("rdkafka"),
        });
        let mut record = BaseRecord::to(TOPIC)
            .key(&key)
            .payload(&value)
            .headers(headers)
            .partition((i % 2) as i32);
        while let Err((e, back)) = producer.send(record) {
            assert!(
                matches!(
                    e,
                    KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull)
                ),
                "{e}"
            );
            producer.poll(Duration::from_millis(10));
            record = back;
        }
        producer.poll(Duration::ZERO);
    }
    producer.flush(Duration::from_secs(30)).unwrap();
    assert_eq!(
        producer.context().0.load(Ordering::Relaxed),
        0,
        "failed deliveries"
    );
}

fn stored_keys(topics: &Topics) -> Vec<String> {
    let mut keys = Vec::new();
    for p in 0..2 {
        for r in topics.read(TOPIC, p, 0, usize::MAX).unwrap() {
            let record = decode_record(&r.payload).unwrap();
            let key = String::from_utf8(record.key().unwrap().to_vec()).unwrap();
            if key != FROM_TOPICS {
                assert_eq!(
                    record.headers()[0].key(),
                    b"source",
                    "headers are kept as the transforms read them"
                );
            }
            keys.push(key);
        }
    }
    keys
}

#[test]
fn librdkafka_produces_consumes_commits_and_resumes_after_a_restart() {
    let folder = tempfile::tempdir().unwrap();
    let (topics, listener) = start(folder.path());
    let addr = listener.local_addr().to_string();

    produce(&addr, 0..2_000);
    let stored = stored_keys(&topics);
    assert_eq!(stored.len(), 2_000, "each record stored once");
    let expected: BTreeSet<String> = (0..2_000).map(|i| format!("k{i}")).collect();
    assert_eq!(stored.into_iter().collect::<BTreeSet<_>>(), expected);

    // Records the pipeline writes are read by Kafka clients as they are.
    let mut payload = Vec::new();
    record_payload::encode_record(
        &record_payload::BorrowedRecord::new(Some(FROM_TOPICS.as_bytes()), Some(b"{}")),
        &mut payload,
    );
    topics.append(TOPIC, 0, 1_700_000_000_000, payload).unwrap();

    let group = consumer(&addr, "readers");
    let first = read(&group, 2_001);
    assert_eq!(first.len(), 2_001, "every record read once");
    assert!(first.contains(&FROM_TOPICS.to_string()));
    group.commit_consumer_state(CommitMode::Sync).unwrap();

    let (low, high) = group
        .fetch_watermarks(TOPIC, 0, Duration::from_secs(5))
        .unwrap();
    assert_eq!((low, high), topics.bounds(TOPIC, 0).unwrap());
    drop(group);

    stop(topics, listener);
    let (topics, listener) = start(folder.path());
    let addr = listener.local_addr().to_string();
    assert_eq!(
        stored_keys(&topics).len(),
        2_001,
        "kept through the restart"
    );

    produce(&addr, 2_000..2_100);
    let group = consumer(&addr, "readers");
    let resumed = read(&group, 100);
    let expected: BTreeSet<String> = (2_000..2_100).map(|i| format!("k{i}")).collect();
    assert_eq!(
        resumed.into_iter().collect::<BTreeSet<_>>(),
        expected,
        "the group resumes from its commits"
    );
    stop(topics, listener);
}

#[test]
fn consumed_headers_and_values_are_the_produced_ones() {
    let folder = tempfile::tempdir().unwrap();
    let (topics, listener) = start(folder.path());
    let addr = listener.local_addr().to_string();
    produce(&addr, 0..10);
    let group = consumer(&addr, "values");
    let (mut seen, deadline) = (0, std::time::Instant::now() + Duration::from_secs(30));
    while seen < 10 {
        assert!(std::time::Instant::now() < deadline, "{seen} records read");
        let Some(m) = group.poll(Duration::from_millis(200)) else {
            continue;
        };
        let m = m.unwrap();
        let n: usize = m.key_view::<str>().unwrap().unwrap()[1..].parse().unwrap();
        assert_eq!(
            m.payload_view::<str>().unwrap().unwrap(),
            format!("{{\"n\":{n}}}")
        );
        let headers = m.headers().unwrap();
        assert_eq!(headers.get(0).key, "source");
        assert_eq!(headers.get(0).value, Some(&b"rdkafka"[..]));
        seen += 1;
    }
    drop(group);
    stop(topics, listener);
}
