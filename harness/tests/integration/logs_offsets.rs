//! A transform's log events, framed and written as Redpanda's
//! (`src/v/wasm/wasi.cc`, `preview1_module::fd_write`, `src/v/transform/logging/`), and where a
//! new transform starts, as Redpanda resolves rpk's `--from-offset`
//! (`src/v/transform/transform_processor.cc`, `processor::load_latest_committed`).

use crate::common;

use std::process::Command;
use std::time::Duration;

use common::{harness, Up};
use serde_json::Value;
use test_kit::wait_for;

/// On every batch: "hello\nworld" to stdout and 5,000 bytes to stderr, one
/// `fd_write` each, neither ending in a newline.
fn talker() -> std::path::PathBuf {
    let wasm = test_kit::wat_module(
        "check_abi_version_2",
        &format!(
            r#"(data (i32.const 600) "hello\nworld")
               (data (i32.const 8192) "{}")
               (func (export "_start")
                 (i32.store (i32.const 640) (i32.const 600))
                 (i32.store (i32.const 644) (i32.const 11))
                 (i32.store (i32.const 656) (i32.const 8192))
                 (i32.store (i32.const 660) (i32.const 5000))
                 (loop $batches
                   (drop (call $next_batch))
                   (drop (call $fd_write (i32.const 1) (i32.const 640) (i32.const 1) (i32.const 648)))
                   (drop (call $fd_write (i32.const 2) (i32.const 656) (i32.const 1) (i32.const 648)))
                   (br $batches)))"#,
            "x".repeat(5000)
        ),
    );
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("talker.wasm");
    std::fs::write(&path, wasm).unwrap();
    path
}

#[test]
fn run_writes_log_events_as_redpanda_does() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    let input = dir.join("talker-input.jsonl");
    std::fs::write(&input, "{\"value\":\"a\"}\n").unwrap();
    let logs = dir.join("talker-logs.jsonl");
    let talker = talker();
    harness(&[
        "run",
        talker.to_str().unwrap(),
        "--input-topic",
        "in",
        "--output-topic",
        "out",
        "--input",
        input.to_str().unwrap(),
        "--logs",
        logs.to_str().unwrap(),
    ]);
    let events: Vec<Value> = std::fs::read_to_string(&logs)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events.len(), 2, "one event per fd_write: {events:?}");
    assert_eq!(events[0]["body"]["stringValue"], "hello\nworld");
    assert_eq!(events[0]["severityNumber"], 9);
    // Cut to data_transforms_logging_line_max_bytes, never split.
    assert_eq!(events[1]["body"]["stringValue"], "x".repeat(1024));
    assert_eq!(events[1]["severityNumber"], 13);
    for e in &events {
        assert_eq!(
            e["attributes"],
            serde_json::json!([
                {"key": "transform_name", "value": {"stringValue": "talker"}},
                {"key": "node", "value": {"intValue": 0}}
            ])
        );
        assert!(e["timeUnixNano"].as_u64().unwrap() > 1_700_000_000_000_000_000);
    }
}

#[test]
fn a_hosts_transforms_log_to_the_logs_topic_and_harness_logs_prints_them() {
    let up = Up::start(&["--rate", "50"]);
    let talker = talker();
    harness(&[
        "deploy",
        "--admin",
        &up.admin,
        "--name",
        "talker",
        "--file",
        talker.to_str().unwrap(),
        "--input-topic",
        "logs",
        "--output-topic",
        "talk",
    ]);
    let text = wait_for("the talker's logs", Duration::from_secs(30), || {
        // Until the first flush, there is no logs topic at all.
        let out = Command::new(env!("CARGO_BIN_EXE_harness"))
            .args(["logs", "talker", "--admin", &up.admin])
            .output()
            .unwrap();
        let out = String::from_utf8(out.stdout).unwrap();
        (out.lines().count() >= 3).then_some(out)
    });
    let lines: Vec<&str> = text.lines().take(3).collect();
    assert_eq!(lines[..2], ["hello", "world"]);
    assert_eq!(lines[2], "x".repeat(1024));
    let wide = harness(&["logs", "talker", "--wide", "--admin", &up.admin]);
    let wide: Vec<&str> = wide.lines().take(3).collect();
    assert!(wide[0].ends_with(" INFO hello"), "{wide:?}");
    assert!(wide[2].contains(" WARN xxx"), "{wide:?}");
    // The pipeline logs nothing: nothing is printed for it.
    assert_eq!(
        harness(&["logs", "marketing-pipeline", "--admin", &up.admin]),
        ""
    );
    up.interrupt();
}

/// Records per partition of a host's topic.
fn counts(client: &admin::Client, topic: &str) -> Vec<usize> {
    let partitions = client.topic(topic).unwrap().map_or(0, |t| t.partitions);
    (0..partitions)
        .map(|p| client.read(topic, p, 0, 10_000).unwrap().len())
        .collect()
}

#[test]
fn a_new_transform_starts_where_from_offset_says() {
    let dir = std::env::temp_dir().join(format!("harness-offsets-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let truth = dir.join("truth.json");
    let up = Up::start(&[
        "--count",
        "300",
        "--rate",
        "max",
        "--start",
        "2025-08-17T14:00:00",
        "--truth",
        truth.to_str().unwrap(),
    ]);
    wait_for("the generator", Duration::from_secs(60), || {
        truth.exists().then_some(())
    });
    let client = admin::Client::new(&up.admin).unwrap();
    let logs = counts(&client, "logs");
    assert_eq!(logs.iter().sum::<usize>(), 300);
    let deploy = |name: &str, offset: Option<&str>| {
        let out = format!("{name}.out");
        let mut args = vec![
            "deploy",
            "--admin",
            &up.admin,
            "--name",
            name,
            "--file",
            "@tee",
            "--input-topic",
            "logs",
            "--output-topic",
            &out,
        ];
        if let Some(offset) = offset {
            args.extend(["--from-offset", offset]);
        }
        harness(&args);
    };
    deploy("all", Some("+0"));
    deploy("skip-five", Some("+5"));
    deploy("last", Some("-1"));
    deploy("beyond", Some("+9223372036854775807"));
    // The first record stamped at or after a time within the stream.
    deploy("later", Some("@1755439210000"));
    deploy("future", Some("@4102444800000"));
    // No offset: the records stamped from the deploy on, as in Redpanda;
    // these are from 2025.
    deploy("default", None);
    let per_partition = |n: &dyn Fn(usize) -> usize| logs.iter().map(|&c| n(c)).collect::<Vec<_>>();
    let expected = [
        ("all", per_partition(&|c| c)),
        ("skip-five", per_partition(&|c| c - 5)),
        ("last", per_partition(&|_| 1)),
        // Redpanda clamps to the last record.
        ("beyond", per_partition(&|_| 1)),
    ];
    for (name, want) in expected {
        let topic = format!("{name}.out");
        wait_for(
            &format!("{name}'s outputs"),
            Duration::from_secs(30),
            || (counts(&client, &topic) == want).then_some(()),
        );
    }
    let later: usize = counts(&client, "later.out").iter().sum();
    assert!(
        later > 0 && later < 300,
        "{later} records from a time within the stream"
    );
    std::thread::sleep(Duration::from_secs(2));
    for nothing in ["future.out", "default.out"] {
        assert_eq!(
            counts(&client, nothing).iter().sum::<usize>(),
            0,
            "{nothing}"
        );
    }
    // Junk is refused with rpk's and Redpanda's messages.
    for (offset, message) in [
        ("@-10", "Bad offset: expected value >= 0, got -10"),
        ("--10", "Bad offset: expected value >= 0, got -10"),
        ("+NaN", "bad offset: parse error"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_harness"))
            .args([
                "deploy", "--admin", &up.admin, "--name", "junk", "--file", "@tee",
            ])
            .args([
                "--input-topic",
                "logs",
                "--output-topic",
                "junk",
                "--from-offset",
                offset,
            ])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{offset}: {stderr}");
        assert!(stderr.contains(message), "{offset}: {stderr}");
    }
    up.interrupt();
    std::fs::remove_dir_all(&dir).unwrap();
}
