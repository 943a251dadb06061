//! The Schema Registry as users meet it: the registry `harness up` serves,
//! driven by Confluent's own client; Avro `logs` through the pipeline, with
//! the same totals as JSON; and a registry that cannot be reached or
//! answers garbage, which sends the record to the dead letters with the
//! reason, and never stops the host.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::common;

use common::{counted_stream, Up};
use generator::{Clock, FileSink, Profile, Stream, StreamArgs, TruthFile, ValueFormat};
use serde_json::Value;
use topic_io::{BorrowedRecord, Sink};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("harness-sr-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `harness run @pipeline` over `input`, with `args`.
fn run_pipeline(input: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_harness"))
        .args(["run", "@pipeline", "--config"])
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../transform.yaml"))
        .arg("--input")
        .arg(input)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn lines(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Python with Confluent's registry client.
fn python_with_confluent_kafka() -> Option<String> {
    common::python_with(
        "confluent_kafka.schema_registry.avro",
        "'confluent-kafka[avro,schemaregistry]'",
        "REQUIRE_REGISTRY_CLIENT",
    )
}

/// Confluent's client reads what the generator registered in `up`'s
/// registry and registers a schema of its own; the pipeline then reads
/// Confluent-serialized records with that schema.
#[test]
fn confluents_client_and_the_pipeline_share_ups_registry() {
    let Some(python) = python_with_confluent_kafka() else {
        return;
    };
    let dir = scratch("python");
    let up = Up::start(&["--format", "avro", "--count", "10", "--rate", "max"]);
    let input = dir.join("confluent.jsonl");
    let out = Command::new(python)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/python/registry_client.py"
        ))
        .arg(&up.registry)
        .arg(&input)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(seen["subjects"], serde_json::json!(["logs-value"]));
    assert_eq!(
        (
            seen["generator_id"].as_i64(),
            seen["generator_version"].as_i64()
        ),
        (Some(1), Some(1))
    );
    assert_eq!(seen["registered_id"], 2);
    assert_eq!(seen["found_version"], 2);
    assert_eq!(seen["versions"], serde_json::json!([1, 2]));

    let out = run_pipeline(&input, &["--schema-registry", &up.registry]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = lines(&out);
    let events: Vec<Value> = lines
        .iter()
        .filter(|l| l["topic"] == "events")
        .map(|l| serde_json::from_str(l["value"].as_str().unwrap()).unwrap())
        .collect();
    let costs: Vec<i64> = events
        .iter()
        .map(|e| e["cost_micros"].as_i64().unwrap())
        .collect();
    assert_eq!(
        costs,
        [1_250_000, 10_000_001, 0],
        "exact, from decimal text"
    );
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["click", "conversion", "impression"]);
    assert!(!lines.iter().any(|l| l["topic"] == "logs.dlq"));
}

/// `generator --format avro` inside `up`: its schema registered in the
/// registry `up` serves, every event Avro, and the dashboard equal to the
/// truth, dead letters included, as for JSON.
#[test]
fn avro_logs_give_the_truth_as_json_does() {
    let dir = scratch("truth");
    let truth_path = dir.join("truth.json");
    let mut args = vec!["--format".to_string(), "avro".to_string()];
    args.extend(counted_stream(5, 20_000, "max", 0.05, &truth_path));
    let up = Up::start(&args.iter().map(String::as_str).collect::<Vec<_>>());
    up.assert_equals_truth(&truth_path);
    let truth: TruthFile =
        serde_json::from_str(&std::fs::read_to_string(&truth_path).unwrap()).unwrap();
    let status = test_kit::wait_for("every dead letter", Duration::from_secs(30), || {
        Some(up.get("/api/status")).filter(|s| s["dlq"]["total"] == truth.invalid)
    });
    assert!(
        status["dlq"]["by_reason"]["invalid_avro"].as_u64() > Some(0),
        "{status}"
    );
    let schema = test_kit::get(&format!(
        "{}/subjects/logs-value/versions/latest",
        up.registry
    ))
    .json();
    assert_eq!(
        (schema["id"].as_i64(), schema["version"].as_i64()),
        (Some(1), Some(1))
    );
    assert_eq!(
        schema["schema"].as_str(),
        Some(analytics::avro::LOGS_SCHEMA)
    );
}

/// A file of three generated Avro events, their schema registered with `registry`.
fn avro_input(dir: &Path, registry: &str) -> PathBuf {
    let path = dir.join("avro.jsonl");
    let args = StreamArgs {
        format: ValueFormat::Avro,
        ..StreamArgs::default()
    };
    let client = registry::Client::new(registry).unwrap();
    let format = args.format("logs", &client).unwrap();
    let clock = Clock::Simulated {
        next_ms: 1_755_439_200_000,
    };
    let mut stream = Stream::new(Profile::default(), 1, clock).with_format(format);
    let mut sink = FileSink::new(Vec::new());
    for _ in 0..3 {
        let e = stream.next_event();
        sink.send(
            "logs",
            0,
            Some(e.ts_ms),
            &BorrowedRecord::new(Some(e.key.as_bytes()), Some(&e.value)),
        )
        .unwrap();
    }
    std::fs::write(&path, sink.into_inner()).unwrap();
    path
}

/// Answers every request with `body` as JSON, until the test ends.
fn garbage_registry(body: &'static str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    format!("http://{address}")
}

/// `schema_registry_module.cc`: any failure of the registry is -2 to the
/// transform, which dead-letters the record with the reason; the host says
/// what went wrong and carries on.
#[test]
fn a_registry_that_fails_sends_records_to_the_dead_letters_with_the_reason() {
    let dir = scratch("failing");
    let up = Up::start(&["--format", "avro", "--count", "1"]);
    let input = avro_input(&dir, &up.registry);
    for (registry, said) in [
        (
            "http://127.0.0.1:1".to_string(),
            "the schema registry is unreachable",
        ),
        (garbage_registry("[1, 2"), "answered something else"),
    ] {
        let out = run_pipeline(&input, &["--schema-registry", &registry]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        assert!(stderr.contains(said), "{stderr}");
        let dead: Vec<Value> = lines(&out)
            .into_iter()
            .filter(|l| l["topic"] == "logs.dlq")
            .collect();
        assert_eq!(dead.len(), 3, "{dead:?}");
        for d in dead {
            assert_eq!(common::header(&d, "error.kind"), "unknown_schema");
            assert!(
                common::header(&d, "error")
                    .as_str()
                    .unwrap()
                    .contains("schema 1"),
                "{d}"
            );
        }
    }
    // No registry at all: the module answers -1, which the reason names.
    let out = run_pipeline(&input, &[]);
    let reason = common::header(&lines(&out)[0], "error").clone();
    assert_eq!(reason, "schema 1: no schema registry is configured");
}

#[test]
fn a_bad_registry_url_is_refused_with_the_flag() {
    for args in [
        &[
            "run",
            "@tee",
            "--input",
            "-",
            "--schema-registry",
            "ftp://x",
        ][..],
        &["up", "--schema-registry", "not a url"][..],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_harness"))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains("--schema-registry"), "{stderr}");
    }
}
