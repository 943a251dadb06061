//! `harness up` on a data folder: killed with SIGKILL at random points and
//! started again, it ends exactly equal to the truth of the whole stream;
//! what it refuses, it refuses with what to do.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use crate::common;

use common::{counted_stream, harness_at, harness_refused, scratch_data_dir, Up};

const EVENTS: u64 = 60_000;

fn stream_args(truth: &Path) -> Vec<String> {
    counted_stream(11, EVENTS, "10000", 0.01, truth)
}

/// A small xorshift, seeded from the clock and printed, for kill points.
fn kill_points() -> Vec<Duration> {
    let mut x = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    println!("kill points seeded with {x}");
    (0..3)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            Duration::from_millis(300 + x % 1500)
        })
        .collect()
}

#[test]
fn three_kill_9s_and_restarts_end_equal_to_the_truth() {
    let dir = scratch_data_dir("kill9");
    let truth = dir.with_extension("truth.json");
    let _ = std::fs::remove_file(&truth);
    let args = stream_args(&truth);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    for (run, wait) in kill_points().into_iter().enumerate() {
        let up = Up::start_in(&dir, &args);
        if run > 0 {
            assert!(
                up.said.contains("the generator goes on from event"),
                "run {run} did not resume its stream:\n{}",
                up.said
            );
        }
        std::thread::sleep(wait);
        assert!(!truth.exists(), "the stream ended before kill {run}");
        up.kill_9();
    }
    let up = Up::start_in(&dir, &args);
    up.assert_equals_truth(&truth);
    up.interrupt();

    // Once more, after a clean stop: the history is all there, and the
    // generator, done with its count, sends nothing more.
    std::fs::remove_file(&truth).unwrap();
    let up = Up::start_in(&dir, &args);
    let started = Instant::now();
    up.assert_equals_truth(&truth);
    println!("history back in {:?}", started.elapsed());
    let summary = up.get("/api/summary");
    assert_eq!(
        summary["impressions"].as_i64().unwrap()
            + summary["clicks"].as_i64().unwrap()
            + summary["conversions"].as_i64().unwrap(),
        {
            let t: generator::TruthFile =
                serde_json::from_str(&std::fs::read_to_string(&truth).unwrap()).unwrap();
            (t.events - t.invalid) as i64
        }
    );
    up.interrupt();

    // The stopped folder, read as rpk reads a topic: its panes, each
    // counted once by its identity, are the truth too.
    let consumed = common::harness(&[
        "topic",
        "consume",
        "results",
        "--data-dir",
        dir.to_str().unwrap(),
    ]);
    let mut seen = std::collections::HashSet::new();
    let panes: Vec<serde_json::Value> = consumed
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .filter(|r| r["topic"] == "results")
        .map(|r| {
            (
                r["partition"].as_i64().unwrap(),
                serde_json::from_str::<serde_json::Value>(r["value"].as_str().unwrap()).unwrap(),
            )
        })
        .filter(|(p, pane)| {
            seen.insert((
                *p,
                pane["campaign"].to_string(),
                pane["channel"].to_string(),
                pane["window_start"].as_i64(),
                pane["first_offset"].as_i64(),
            ))
        })
        .map(|(_, pane)| pane)
        .collect();
    let t: generator::TruthFile =
        serde_json::from_str(&std::fs::read_to_string(&truth).unwrap()).unwrap();
    assert_eq!(common::pane_totals(&panes), t.by_window());
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_file(&truth).unwrap();
}

/// `harness up` with these arguments, expected to fail: its stderr.
fn refused(args: &[&str]) -> String {
    let up = ["up", "--port", "0", "--admin-listen", "127.0.0.1:0"];
    let registry = ["--schema-registry-listen", "127.0.0.1:0"];
    harness_refused(&[&up[..], &registry, args].concat())
}

#[test]
fn a_busy_folder_another_layout_or_format_and_a_used_port_are_refused_with_what_to_do() {
    let dir = scratch_data_dir("refusals");
    let folder = dir.to_str().unwrap();
    let up = Up::start_in(&dir, &["--rate", "100"]);
    let stderr = refused(&["--data-dir", folder]);
    assert!(stderr.contains("another harness"), "{stderr}");
    assert!(stderr.contains("another --data-dir"), "{stderr}");
    // A port in use is named by its flag.
    let port = up.address.rsplit(':').next().unwrap().to_string();
    let other = scratch_data_dir("refusals-port");
    let stderr = refused(&["--data-dir", other.to_str().unwrap(), "--port", &port]);
    assert!(stderr.contains("--port"), "{stderr}");
    let stderr = refused(&[
        "--data-dir",
        other.to_str().unwrap(),
        "--admin-listen",
        &up.admin,
    ]);
    assert!(stderr.contains("--admin-listen"), "{stderr}");
    up.interrupt();

    let stderr = refused(&["--data-dir", folder, "--partitions", "5"]);
    assert!(
        stderr.contains("holds topic logs with 3 partitions, not the 5 of --partitions"),
        "{stderr}"
    );
    assert!(stderr.contains("--fresh"), "{stderr}");

    std::fs::write(dir.join("FORMAT"), "marketing-pipeline harness data 0\n").unwrap();
    let stderr = refused(&["--data-dir", folder]);
    assert!(stderr.contains("another format"), "{stderr}");

    // --fresh says what it deletes, and starts over.
    let up = Up::start_in(&dir, &["--rate", "100", "--fresh"]);
    assert!(up.said.contains("--fresh: deleting"), "{}", up.said);
    up.interrupt();

    let mine = scratch_data_dir("refusals-foreign");
    std::fs::create_dir_all(&mine).unwrap();
    std::fs::write(mine.join("notes.txt"), "not harness data").unwrap();
    let stderr = refused(&["--data-dir", mine.to_str().unwrap(), "--fresh"]);
    assert!(stderr.contains("not a harness data folder"), "{stderr}");
    assert!(mine.join("notes.txt").exists());
    for d in [&dir, &other, &mine] {
        let _ = std::fs::remove_dir_all(d);
    }
}

/// Name → (version, paused) of what a host runs.
fn running(admin: &str) -> std::collections::BTreeMap<String, (String, bool)> {
    let all: serde_json::Value =
        serde_json::from_str(&harness_at(admin, &["list", "--json"])).unwrap();
    all.as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap().to_string(),
                (
                    t["harness"]["version"].as_str().unwrap().to_string(),
                    t["harness"]["paused"].as_bool().unwrap(),
                ),
            )
        })
        .collect()
}

/// A hot swap, another transform (paused) and a schema survive a kill -9;
/// a changed command line then deploys its own transform again.
#[test]
fn deployments_and_schemas_outlive_a_kill_9() {
    let dir = scratch_data_dir("deployments");
    let up = Up::start_in(&dir, &["--rate", "200"]);
    let swapped = dir.with_extension("swapped.wasm");
    std::fs::write(
        &swapped,
        hosting::with_custom_section(transform_artifacts::PIPELINE, "outlives-a-kill"),
    )
    .unwrap();
    let mut vars = vec![("PANE_FORMAT".to_string(), "2".to_string())];
    vars.extend(common::pipeline_spec().env);
    let deployed = up.deploy(swapped.to_str().unwrap(), &vars);
    assert!(deployed.status.success(), "{deployed:?}");
    harness_at(
        &up.admin,
        &[
            "deploy",
            "--name",
            "mirror",
            "--file",
            "@tee",
            "--input-topic",
            "logs",
            "--output-topic",
            "mirror",
            "--from-offset",
            "+0",
        ],
    );
    harness_at(&up.admin, &["pause", "mirror"]);
    let registered = test_kit::send(
        "POST",
        &format!("{}/subjects/clicks-value/versions", up.registry),
        "application/vnd.schemaregistry.v1+json",
        br#"{"schema": "{\"type\": \"string\"}"}"#,
    )
    .unwrap();
    assert_eq!(registered.status, 200, "{}", registered.body);
    // Any client's record reaches the embedded topics, and reads back.
    let produced = Command::new(env!("CARGO_BIN_EXE_harness"))
        .args([
            "topic", "produce", "audit", "--admin", &up.admin, "-k", "who", "-H", "src:test",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!produced.status.success(), "no topic audit yet");
    assert!(String::from_utf8_lossy(&produced.stderr).contains("topic audit does not exist"));
    let listed = harness_at(&up.admin, &["topic", "list"]);
    for topic in ["logs", "results", "events", "logs.dlq", "mirror"] {
        assert!(
            listed.lines().any(|l| l.starts_with(&format!("{topic} "))),
            "{topic}: {listed}"
        );
    }
    let said = common::harness_with_input(
        &[
            "topic", "produce", "mirror", "--admin", &up.admin, "-k", "who", "-H", "src:test",
        ],
        b"first\nsecond\n",
    );
    assert_eq!(said.lines().count(), 2, "{said}");
    // "Produced to partition P at offset O."
    let first: Vec<&str> = said.lines().next().unwrap().split(' ').collect();
    let (partition, offset) = (first[3], first[6].trim_end_matches('.'));
    let consumed = harness_at(
        &up.admin,
        &[
            "topic", "consume", "mirror", "-p", partition, "--offset", offset, "-n", "2",
        ],
    );
    let values: Vec<serde_json::Value> = consumed
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(values.len(), 2, "{consumed}");
    assert_eq!(values[0]["value"], "first");
    assert_eq!(values[1]["key"], "who");
    assert_eq!(values[1]["headers"][0]["value"], "test");
    let before = running(&up.admin);
    assert_eq!(before.len(), 2);
    assert!(before["mirror"].1, "mirror is paused");
    // Saved in order with the records: a moment for the store's writer.
    std::thread::sleep(Duration::from_millis(500));
    up.kill_9();

    let up = Up::start_in(&dir, &["--rate", "200"]);
    let after = test_kit::wait_for("both transforms back", Duration::from_secs(30), || {
        Some(running(&up.admin)).filter(|r| r.len() == 2)
    });
    assert_eq!(
        after, before,
        "the swapped version and the paused one, as left"
    );
    let subject = test_kit::get(&format!("{}/subjects/clicks-value/versions/1", up.registry));
    assert_eq!(subject.status, 200, "{}", subject.body);
    assert_eq!(subject.json()["id"], registered.json()["id"]);
    up.interrupt();

    // Another environment on the command line: its transform is deployed.
    let up = Up::start_in(&dir, &["--rate", "200", "--var", "ALLOWED_LATENESS=30s"]);
    let now = test_kit::wait_for(
        "the command line's transform",
        Duration::from_secs(30),
        || Some(running(&up.admin)).filter(|r| r.len() == 2),
    );
    assert_ne!(now["marketing-pipeline"].0, before["marketing-pipeline"].0);
    assert_eq!(now["mirror"], before["mirror"]);
    up.interrupt();
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_file(&swapped).unwrap();
}
