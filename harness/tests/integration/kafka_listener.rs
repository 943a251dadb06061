//! `harness up`'s Kafka listener as data engineers use it, with real
//! clients: confluent-kafka (on librdkafka) and kafka-python (a protocol
//! implementation of its own) produce a seeded stream into `logs`, and the
//! dashboard equals its truth; a consumer group reads `results`, whose
//! panes, kept once by identity, equal the truth too, and resumes from its
//! commits after a restart. A kill -9 while a client produces with
//! acks=all loses no acknowledged record and duplicates none; hostile
//! bytes never take the host down.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use generator::{generate, Clock, FileSink, Plan, Profile, Stream, Truth, TruthFile};
use serde_json::Value;

use crate::common::{self, counted_stream, scratch_data_dir, Up};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/kafka_clients.py");

/// Python with `module`, a Kafka client.
fn python_with(module: &str) -> Option<String> {
    common::python_with(
        module,
        "confluent-kafka kafka-python",
        "REQUIRE_KAFKA_CLIENTS",
    )
}

fn client(python: &str, args: &[&str]) -> Output {
    common::succeed(Command::new(python).arg(SCRIPT).args(args))
}

/// A seeded stream of `count` events (2% malformed) in the harness's input format, over
/// the 3 partitions of `up`'s `logs`, and its truth.
fn seeded_events(dir: &Path, count: u64, seed: u64) -> (PathBuf, PathBuf) {
    std::fs::create_dir_all(dir).unwrap();
    let clock = Clock::Simulated {
        next_ms: 1_755_439_200_000,
    };
    // Malformed events too: they go to logs.dlq, whatever client sent them.
    let profile = Profile {
        invalid_ratio: 0.02,
        ..Profile::default()
    };
    let mut stream = Stream::new(profile.clone(), seed, clock);
    let plan = Plan {
        rate: None,
        count: Some(count),
        duration: None,
        partitions: 3,
    };
    let mut sink = FileSink::new(Vec::new());
    let mut truth = Truth::new(60_000);
    generate(
        &mut stream,
        &plan,
        "logs",
        &mut sink,
        &mut truth,
        &|| false,
        &mut |_| {},
    )
    .unwrap();
    let (events, truth_path) = (dir.join("events.jsonl"), dir.join("truth.json"));
    std::fs::write(&events, sink.into_inner()).unwrap();
    std::fs::write(
        &truth_path,
        serde_json::to_vec(&truth.file(&profile)).unwrap(),
    )
    .unwrap();
    (events, truth_path)
}

/// Records read by `group`, as the script prints them.
fn consume(python: &str, kind: &str, up: &Up, topic: &str, group: &str, count: u64) -> Vec<Value> {
    let out = client(
        python,
        &[kind, "consume", &up.kafka, topic, group, &count.to_string()],
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The sum of `topic`'s end offsets, from the admin API.
fn end_offsets(up: &Up, topic: &str) -> u64 {
    let response = test_kit::get(&format!("http://{}/v1/harness/topics/{topic}", up.admin));
    assert_eq!(response.status, 200, "{}", response.body);
    response.json()["offsets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[1].as_u64().unwrap())
        .sum()
}

/// The panes of `results`, kept once by identity (docs/architecture.md:
/// results partition, campaign, channel, window, first and last input
/// offset) and summed per window, against the truth.
fn assert_panes_equal_truth(records: &[Value], truth: &Path) {
    let mut seen = HashSet::new();
    let panes: Vec<Value> = records
        .iter()
        .map(|r| serde_json::from_str(r["value"].as_str().unwrap()).unwrap())
        .zip(records)
        .filter(|(pane, r): &(Value, &Value)| {
            seen.insert(format!(
                "{}|{}|{}|{}|{}|{}",
                r["partition"],
                pane["campaign"],
                pane["channel"],
                pane["window_start"],
                pane["first_offset"],
                pane["last_offset"]
            ))
        })
        .map(|(pane, _)| pane)
        .collect();
    let truth: TruthFile = serde_json::from_slice(&std::fs::read(truth).unwrap()).unwrap();
    assert_eq!(common::pane_totals(&panes), truth.by_window());
}

/// `kind` produces `count` events into `logs`; the dashboard and a
/// consumer group's panes equal their truth; the group resumes from its
/// commits after a restart.
fn feed_and_read(kind: &str, module: &str, count: u64) {
    let Some(python) = python_with(module) else {
        return;
    };
    let dir = scratch_data_dir(&format!("kafka-{kind}"));
    let data = dir.join("data");
    let (events, truth) = seeded_events(&dir, count, 7);
    let up = Up::start_in(&data, &["--count", "0"]);
    assert!(!up.kafka.is_empty(), "no Kafka listener: {}", up.said);

    let out = client(
        &python,
        &[kind, "produce", &up.kafka, "logs", events.to_str().unwrap()],
    );
    let produced: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(produced["produced"], count);
    up.assert_equals_truth(&truth);

    let results = end_offsets(&up, "results");
    let read = consume(&python, kind, &up, "results", "analysts", results);
    assert_eq!(read.len() as u64, results, "each record of results once");
    let offsets: BTreeSet<(i64, i64)> = read
        .iter()
        .map(|r| {
            (
                r["partition"].as_i64().unwrap(),
                r["offset"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(offsets.len() as u64, results);
    assert_panes_equal_truth(&read, &truth);
    up.interrupt();

    // After a restart the group goes on from its commits: nothing of what
    // it read comes again, what the new events made does.
    let up = Up::start_in(&data, &["--count", "0"]);
    let (more, _) = seeded_events(&dir, 500, 8);
    client(
        &python,
        &[kind, "produce", &up.kafka, "logs", more.to_str().unwrap()],
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while end_offsets(&up, "results") == results {
        assert!(std::time::Instant::now() < deadline, "no new panes");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(1));
    let now = end_offsets(&up, "results");
    let resumed = consume(&python, kind, &up, "results", "analysts", now - results);
    assert_eq!(resumed.len() as u64, now - results);
    assert!(resumed.iter().all(|r| !offsets.contains(&(
        r["partition"].as_i64().unwrap(),
        r["offset"].as_i64().unwrap()
    ))));
    drop(up);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn confluent_kafka_feeds_the_pipeline_and_a_group_reads_its_results() {
    feed_and_read("confluent", "confluent_kafka", 100_000);
}

#[test]
fn kafka_python_feeds_the_pipeline_and_a_group_reads_its_results() {
    feed_and_read("kafka-python", "kafka", 100_000);
}

#[test]
fn a_kill_9_while_confluent_kafka_produces_loses_no_acknowledged_record_and_duplicates_none() {
    kill_9_while_producing("confluent", "confluent_kafka");
}

#[test]
fn a_kill_9_while_kafka_python_produces_loses_no_acknowledged_record_and_duplicates_none() {
    kill_9_while_producing("kafka-python", "kafka");
}

/// kill -9 of `harness up` while `kind` produces with acks=all and the
/// idempotent producer: after the restart every acknowledged record is
/// there exactly once, and nothing else is.
fn kill_9_while_producing(kind: &str, module: &str) {
    let Some(python) = python_with(module) else {
        return;
    };
    let data = scratch_data_dir(&format!("kafka-kill-{kind}"));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let args = ["--count", "0", "--kafka-listen", &listen];
    let up = Up::start_in(&data, &args);
    const COUNT: u64 = 100_000;
    let mut producer = Command::new(&python)
        .arg(SCRIPT)
        .args([
            "confluent",
            "numbered",
            &listen,
            "ingest",
            &COUNT.to_string(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut acked = BufReader::new(producer.stdout.take().unwrap());
    let mut keys = BTreeSet::new();
    let mut line = String::new();
    while keys.len() < 20_000 {
        line.clear();
        assert!(
            acked.read_line(&mut line).unwrap() > 0,
            "the producer ended early"
        );
        keys.insert(line.trim().trim_start_matches("acked ").to_string());
    }
    up.kill_9();
    let up = Up::start_in(&data, &args);
    for line in acked.lines() {
        keys.insert(line.unwrap().trim_start_matches("acked ").to_string());
    }
    let status = producer.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut producer.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(status.success(), "the producer failed: {stderr}");
    assert_eq!(keys.len() as u64, COUNT, "every record acknowledged");

    let read = consume(&python, kind, &up, "ingest", "check", COUNT + 1);
    let mut seen: BTreeMap<String, u32> = BTreeMap::new();
    for r in &read {
        *seen
            .entry(r["key"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    let twice: Vec<_> = seen.iter().filter(|(_, &n)| n > 1).take(5).collect();
    assert!(twice.is_empty(), "written twice: {twice:?}");
    assert_eq!(seen.keys().cloned().collect::<BTreeSet<_>>(), keys);
    drop(up);
    let _ = std::fs::remove_dir_all(&data);
}

/// Garbage, a frame claiming 2 GiB, and a client gone mid-request: the
/// host serves the next client as before.
#[test]
fn hostile_bytes_never_take_the_listener_down() {
    let Some(python) = python_with("confluent_kafka") else {
        return;
    };
    let up = Up::start(&["--count", "0"]);
    let hostile: [&[u8]; 4] = [
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        &[0x7f, 0xff, 0xff, 0xff, 0, 18, 0, 3],
        // ApiVersions v3 cut short: a length of 64, then 10 bytes and gone.
        &[0, 0, 0, 64, 0, 18, 0, 3, 0, 0, 0, 1, 0, 1],
        &[0xff; 4096],
    ];
    for bytes in hostile {
        let mut conn = TcpStream::connect(&up.kafka).unwrap();
        let _ = conn.write_all(bytes);
        drop(conn);
    }
    let dir = scratch_data_dir("kafka-hostile");
    let (events, truth) = seeded_events(&dir, 1_000, 9);
    client(
        &python,
        &[
            "confluent",
            "produce",
            &up.kafka,
            "logs",
            events.to_str().unwrap(),
        ],
    );
    up.assert_equals_truth(&truth);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Beyond loopback without SASL the listener would serve anyone: refused
/// before anything starts, naming the flags that would let it.
#[test]
fn a_listener_beyond_loopback_without_sasl_is_refused() {
    let dir = scratch_data_dir("kafka-refused");
    let out = Command::new(env!("CARGO_BIN_EXE_harness"))
        .args(["up", "--count", "0", "--kafka-listen", "0.0.0.0:0"])
        .arg("--data-dir")
        .arg(&dir)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("on 0.0.0.0:0 (from --kafka-listen)"),
        "{said}"
    );
    assert!(said.contains("--kafka-sasl"), "{said}");
    assert!(said.contains("harness user create"), "{said}");
    // Refused before anything started: not even the data folder.
    assert!(!dir.exists(), "{said}");
}

/// The script as `sasl` (USER:PASSWORD:MECHANISM, or none), over TLS
/// trusting `ca`.
fn client_as(python: &str, ca: &Path, sasl: Option<&str>, args: &[&str]) -> Output {
    let mut command = Command::new(python);
    command.arg(SCRIPT).args(args).env("KAFKA_CA", ca);
    if let Some(sasl) = sasl {
        command.env("KAFKA_SASL", sasl);
    }
    common::succeed(&mut command)
}

/// What the script's `login` found.
fn login(python: &str, kind: &str, up: &Up, ca: &Path, sasl: Option<&str>) -> Value {
    let out = client_as(python, ca, sasl, &[kind, "login", &up.kafka]);
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Beyond loopback, as a data engineer opens the listener to a team: SASL
/// SCRAM over TLS, with a user from RP_BOOTSTRAP_USER and one made by
/// `harness user create` through the admin API. Both clients log in with
/// either mechanism; a wrong password fails at once with Kafka's
/// SASL_AUTHENTICATION_FAILED (librdkafka's `_AUTHENTICATION`, kafka-python's
/// `[Error 58]`), not a timeout; a client without SASL is refused; records
/// produced by one user are read by the other; a deleted user is out.
#[test]
fn beyond_loopback_clients_log_in_with_scram_over_tls() {
    let (Some(python), Some(_)) = (python_with("confluent_kafka"), python_with("kafka")) else {
        return;
    };
    let dir = scratch_data_dir("kafka-sasl");
    std::fs::create_dir_all(&dir).unwrap();
    common::make_certificates(&dir);
    let path = |name: &str| dir.join(name).to_str().unwrap().to_string();
    let (ca, cert, key) = (path("ca.pem"), path("server.pem"), path("server.key"));
    let up = Up::start_with_env(
        &[
            "--count",
            "0",
            "--kafka-listen",
            "0.0.0.0:0",
            "--kafka-sasl",
            "--advertise-kafka-addr",
            "127.0.0.1",
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
        ],
        &[("RP_BOOTSTRAP_USER", "alice:wonder-land")],
    );
    assert!(
        up.said
            .contains("created the Kafka user alice (RP_BOOTSTRAP_USER)"),
        "{}",
        up.said
    );
    assert!(
        up.said.contains("(SASL_SSL: kcat -b 127.0.0.1:"),
        "{}",
        up.said
    );
    let admin = ["--admin", up.admin.as_str(), "--admin-ca", ca.as_str()];
    let created = common::harness(
        &[
            &["user", "create", "bob", "--password", "hunter2"][..],
            &["--mechanism", "scram-sha-512"],
            &admin,
        ]
        .concat(),
    );
    assert!(
        created.contains("Created user \"bob\" (SCRAM-SHA-512)"),
        "{created}"
    );
    let listed = common::harness(&[&["user", "list"][..], &admin].concat());
    assert_eq!(listed, "USERNAME\nalice\nbob\n");

    let ca = Path::new(&ca);
    let alice = "alice:wonder-land:SCRAM-SHA-256";
    let bob = "bob:hunter2:SCRAM-SHA-512";
    for kind in ["confluent", "kafka-python"] {
        for user in [alice, bob] {
            let topics = login(&python, kind, &up, ca, Some(user));
            assert!(
                topics["topics"]
                    .as_array()
                    .is_some_and(|t| t.contains(&"logs".into())),
                "{kind} as {user}: {topics}"
            );
        }
        let none = login(&python, kind, &up, ca, None);
        assert!(none.get("topics").is_none(), "{kind} without SASL: {none}");
        // The wrong mechanism is a wrong credential too.
        for wrong in [
            "alice:wonder-lamp:SCRAM-SHA-256",
            "bob:hunter2:SCRAM-SHA-256",
        ] {
            let refused = login(&python, kind, &up, ca, Some(wrong));
            let error = refused["error"].as_str().unwrap_or_default();
            match kind {
                "confluent" => {
                    assert_eq!(refused["code"], "_AUTHENTICATION", "{refused}");
                    assert!(error.contains("Authentication failed"), "{refused}");
                }
                _ => assert!(
                    error.contains("[Error 58] SaslAuthenticationFailedError"),
                    "{refused}"
                ),
            }
            eprintln!("{kind}, {wrong}: refused in {} s", refused["seconds"]);
        }
    }

    // Records flow between users: alice produces with confluent-kafka,
    // bob reads them in a group with kafka-python.
    let (events, _) = seeded_events(&dir.join("stream"), 500, 21);
    let produced = client_as(
        &python,
        ca,
        Some(alice),
        &[
            "confluent",
            "produce",
            &up.kafka,
            "logs",
            events.to_str().unwrap(),
        ],
    );
    assert!(
        String::from_utf8_lossy(&produced.stdout).contains("{\"produced\": 500}"),
        "{produced:?}"
    );
    let read = client_as(
        &python,
        ca,
        Some(bob),
        &[
            "kafka-python",
            "consume",
            &up.kafka,
            "logs",
            "bob-group",
            "500",
        ],
    );
    let sent: Vec<Value> = std::fs::read_to_string(&events)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let values = |records: &mut dyn Iterator<Item = Value>| -> BTreeSet<String> {
        records
            .map(|r| r["value"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    let got = values(
        &mut String::from_utf8_lossy(&read.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap()),
    );
    assert_eq!(got, values(&mut sent.into_iter()));

    common::harness(&[&["user", "delete", "bob"][..], &admin].concat());
    let gone = login(&python, "confluent", &up, ca, Some(bob));
    assert_eq!(gone["code"], "_AUTHENTICATION", "{gone}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `harness topic --brokers` reaches `up`'s topics as a Kafka client: it
/// lists what the admin endpoint lists, and a record it produces into
/// `logs` goes through the transform to `logs.dlq`, with the reason.
#[test]
fn harness_topic_reads_and_writes_through_the_listener() {
    let dir = scratch_data_dir("kafka-topic");
    std::fs::create_dir_all(&dir).unwrap();
    let truth = dir.join("truth.json");
    let args = counted_stream(5, 300, "max", 0.05, &truth);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let up = Up::start(&args);
    up.assert_equals_truth(&truth);
    let listed = common::harness(&["topic", "list", "--brokers", &up.kafka]);
    assert_eq!(
        listed,
        common::harness(&["topic", "list", "--admin", &up.admin])
    );
    let dead = end_offsets(&up, "logs.dlq");

    common::harness_with_input(
        &["topic", "produce", "logs", "--brokers", &up.kafka],
        b"{\"not\":\"an event\"}\n",
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while end_offsets(&up, "logs.dlq") == dead {
        assert!(std::time::Instant::now() < deadline, "no dead letter");
        std::thread::sleep(Duration::from_millis(100));
    }
    let letters = common::harness(&[
        "topic",
        "consume",
        "logs.dlq",
        "--brokers",
        &up.kafka,
        "--offset",
        "-1",
    ]);
    assert!(letters.contains("an event"), "{letters}");
    let _ = std::fs::remove_dir_all(&dir);
}
