//! librdkafka (rdkafka) against the listener on topics kept on disk: the
//! idempotent producer, a consumer group that commits and resumes after a
//! restart, list offsets, and records written by either side read by the
//! other; and behind SASL SCRAM, a user's login and a wrong password's
//! refusal.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use kafka_client::{flush, probe, producer, send, KafkaConfig, Unusable};
use kafka_listener::{bind, serve, Listener, Mechanism, Security, TopicStorage, Users};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{BaseRecord, Producer};
use record_payload::decode_record;
use topics::{DataFolder, Retention, Topics};

const TOPIC: &str = "logs";
/// The key of a record appended to the topics directly.
const FROM_TOPICS: &str = "k-from-topics";

fn start(folder: &Path) -> (Topics, Listener) {
    start_with(folder, Security::default())
}

fn start_with(folder: &Path, security: Security) -> (Topics, Listener) {
    let topics = Topics::open(DataFolder::open(folder).unwrap(), Retention::default()).unwrap();
    topics.ensure_topic(TOPIC, 2).unwrap();
    let bound = bind("127.0.0.1:0".parse().unwrap()).unwrap();
    // Metadata sends clients to the advertised address: the one bound.
    let advertised = format!("tcp://{}", bound.local_addr().unwrap());
    let storage = TopicStorage::new(topics.clone(), "harness", 0, advertised.parse().unwrap());
    (topics, serve(bound, storage, security).unwrap())
}

fn stop(topics: Topics, listener: Listener) {
    drop(listener);
    topics.shut_down().unwrap();
}

fn consumer(addr: &str, group: &str) -> BaseConsumer {
    let consumer: BaseConsumer = KafkaConfig::new(addr)
        .client()
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .create()
        .unwrap();
    consumer.subscribe(&[TOPIC]).unwrap();
    consumer
}

/// Records read until `want` are in, or none came for 20 s.
fn read(consumer: &BaseConsumer, want: usize) -> Vec<OwnedMessage> {
    let mut got = Vec::new();
    let mut quiet = std::time::Instant::now();
    while got.len() < want && quiet.elapsed() < Duration::from_secs(20) {
        if let Some(m) = consumer.poll(Duration::from_millis(200)) {
            got.push(m.unwrap().detach());
            quiet = std::time::Instant::now();
        }
    }
    got
}

fn key(m: &OwnedMessage) -> String {
    String::from_utf8(m.key().unwrap().to_vec()).unwrap()
}

/// Records keyed k`i` for each `i` of `keys`, through the idempotent
/// producer the pipeline's Kafka parts use; every one acknowledged.
fn produce(addr: &str, keys: std::ops::Range<usize>) {
    produce_with(&KafkaConfig::new(addr), keys)
}

fn produce_with(config: &KafkaConfig, keys: std::ops::Range<usize>) {
    let producer = producer(config).unwrap();
    for i in keys {
        let (key, value) = (format!("k{i}"), format!("{{\"n\":{i}}}"));
        let headers = OwnedHeaders::new().insert(Header {
            key: "source",
            value: Some("rdkafka"),
        });
        let record = BaseRecord::to(TOPIC)
            .key(key.as_bytes())
            .payload(value.as_bytes())
            .headers(headers)
            .partition((i % 2) as i32);
        send(&producer, record).unwrap();
        producer.poll(Duration::ZERO);
    }
    flush(&producer, &mut |_| {}).unwrap();
    assert_eq!(producer.context().failed(), 0, "failed deliveries");
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
    let first: Vec<String> = read(&group, 2_001).iter().map(key).collect();
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
    let resumed: Vec<String> = read(&group, 100).iter().map(key).collect();
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
    let read = read(&group, 10);
    assert_eq!(read.len(), 10);
    for m in &read {
        let n: usize = key(m)[1..].parse().unwrap();
        assert_eq!(m.payload(), Some(format!("{{\"n\":{n}}}").as_bytes()));
        let headers = m.headers().unwrap();
        assert_eq!(headers.get(0).key, "source");
        assert_eq!(headers.get(0).value, Some(&b"rdkafka"[..]));
    }
    drop(group);
    stop(topics, listener);
}

/// librdkafka's properties for `user` over SASL_PLAINTEXT.
fn scram(addr: &str, user: &str, password: &str, mechanism: &str) -> KafkaConfig {
    let mut config = KafkaConfig::new(addr);
    config
        .set("security.protocol", "SASL_PLAINTEXT")
        .set("sasl.mechanism", mechanism)
        .set("sasl.username", user)
        .set("sasl.password", password);
    config
}

#[test]
fn behind_sasl_a_user_produces_and_a_wrong_password_is_refused_with_kafkas_error() {
    let folder = tempfile::tempdir().unwrap();
    let security = Security {
        sasl: true,
        tls: None,
    };
    let (topics, listener) = start_with(folder.path(), security);
    let users = Users::new(topics.clone());
    users
        .create("analyst", "s3cret", Mechanism::ScramSha512)
        .unwrap();
    let addr = listener.local_addr().to_string();

    produce_with(&scram(&addr, "analyst", "s3cret", "SCRAM-SHA-512"), 0..100);
    assert_eq!(stored_keys(&topics).len(), 100);

    // A wrong password, or the user's password with another mechanism:
    // refused at once with Kafka's SASL_AUTHENTICATION_FAILED, which
    // librdkafka reports as lasting, not a timeout.
    for (password, mechanism) in [("wrong", "SCRAM-SHA-512"), ("s3cret", "SCRAM-SHA-256")] {
        let config = scram(&addr, "analyst", password, mechanism);
        match probe(&config, Duration::from_secs(10)) {
            Err(Unusable::Refused(reason)) => assert!(
                reason.contains(
                    "Authentication failed during authentication due to invalid credentials"
                ),
                "{reason}"
            ),
            other => panic!("{password}, {mechanism}: {other:?}"),
        }
    }
    // Without SASL at all: every request before authentication is refused.
    assert!(probe(&KafkaConfig::new(&addr), Duration::from_secs(3)).is_err());
    assert_eq!(stored_keys(&topics).len(), 100);
    drop(users);
    stop(topics, listener);
}

/// A consumer at the end of a partition, its fetches waiting up to 20 s
/// (`fetch.wait.max.ms`): a record produced while one waits comes back in
/// that fetch's answer, long before its wait is over. A broker that looked
/// again only after a sleep, as Nisshi's fetch does, would answer it after
/// 10 s at the soonest, past the poll below.
#[test]
fn a_long_poll_answers_as_soon_as_a_record_is_appended() {
    let folder = tempfile::tempdir().unwrap();
    let (topics, listener) = start(folder.path());
    let addr = listener.local_addr().to_string();
    produce(&addr, 0..4);
    let consumer: BaseConsumer = KafkaConfig::new(&addr)
        .client()
        .set("group.id", "long-poll")
        .set("fetch.wait.max.ms", "20000")
        .create()
        .unwrap();
    let mut at_end = rdkafka::TopicPartitionList::new();
    at_end
        .add_partition_offset(TOPIC, 0, rdkafka::Offset::End)
        .unwrap();
    consumer.assign(&at_end).unwrap();
    // Its first fetch goes out, and waits.
    assert!(consumer.poll(Duration::from_secs(1)).is_none());
    produce(&addr, 4..6);
    let got = consumer
        .poll(Duration::from_secs(8))
        .expect("answered before its wait ended");
    assert_eq!(key(&got.unwrap().detach()), "k4");
    drop(consumer);
    stop(topics, listener);
}
