//! `harness up`, as a user runs it: the whole pipeline in one process, its
//! dashboard's API against the generator's truth, and Ctrl-C.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common;

use common::{totals, Up};
use generator::{Totals, TruthFile};
use serde_json::Value;

#[test]
fn the_embedded_dashboard_equals_the_truth() {
    let dir = std::env::temp_dir().join(format!("harness-up-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let truth_path = dir.join("truth.json");
    let up = Up::start(&[
        "--seed",
        "7",
        "--count",
        "50000",
        "--rate",
        "max",
        "--start",
        "2025-08-17T14:00:00",
        "--invalid-ratio",
        "0.02",
        "--partitions",
        "4",
        // Far less than the run writes: topics in memory drop what was
        // read and make the generator wait, and still nothing is lost.
        "--in-memory",
        "--retention-mb",
        "1",
        "--truth",
        truth_path.to_str().unwrap(),
    ]);

    let expected = up.assert_equals_truth(&truth_path);
    // The dead letters show too: every invalid event, counted by kind.
    let truth: TruthFile =
        serde_json::from_str(&std::fs::read_to_string(&truth_path).unwrap()).unwrap();
    let status = test_kit::wait_for("every dead letter", Duration::from_secs(30), || {
        Some(up.get("/api/status")).filter(|s| s["dlq"]["total"] == truth.invalid)
    });
    assert_eq!(status["connected"], true);
    assert_eq!(status["ready"], true);
    assert_eq!(status["unreadable"], 0);
    let by_kind: u64 = status["dlq"]["by_reason"]
        .as_object()
        .unwrap()
        .values()
        .map(|n| n.as_u64().unwrap())
        .sum();
    assert_eq!(by_kind, truth.invalid);

    // Still serving a moment later, then Ctrl-C stops it cleanly.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        totals(&up.get("/api/summary")),
        expected.values().sum::<Totals>()
    );
    up.interrupt();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_arguments_get_a_message() {
    // Status 2 for what the command line's parser refuses, as clap (and
    // most Unix tools) do; 1 for settings refused once read.
    for (args, code, message) in [
        (
            &["--rate", "fast"][..],
            1,
            "--rate must be a positive number",
        ),
        (
            &["--partitions", "0"][..],
            2,
            "`0`: use 1 to 100000 partitions",
        ),
        (
            &["--partitions", "2147483647"][..],
            2,
            "`2147483647`: use 1 to 100000 partitions",
        ),
        (
            &["--retention-mb", "0"][..],
            2,
            "`0` is not a whole number of at least 1",
        ),
        (
            &["--start", "1969-12-31T00:00:00"][..],
            1,
            "--start `1969-12-31T00:00:00`: event times must fall within 2000..2100",
        ),
        (&["--window", "soon"][..], 1, "WINDOW_SIZE"),
        (
            &["--invalid-ratio", "2"][..],
            1,
            "--invalid-ratio must be between 0 and 1",
        ),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_harness"))
            .args(["up", "--port", "0"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

#[test]
fn versions_swap_under_a_steady_stream_and_totals_stay_exact() {
    let dir = std::env::temp_dir().join(format!("harness-swap-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let truth_path = dir.join("truth.json");
    let up = Up::start(&[
        "--seed",
        "11",
        "--count",
        "40000",
        "--rate",
        "4000",
        "--start",
        "2025-08-17T14:00:00",
        "--invalid-ratio",
        "0.02",
        "--truth",
        truth_path.to_str().unwrap(),
    ]);
    let vars: Vec<(String, String)> = common::pipeline_spec().env;
    let broken = dir.join("broken.wasm");
    std::fs::write(&broken, b"not a module").unwrap();
    // A module that deploys but fails at start, as a transform with a bad
    // setting does.
    let failing = dir.join("failing.wasm");
    std::fs::write(
        &failing,
        test_kit::wat_module(
            "check_abi_version_2",
            r#"(func (export "_start") unreachable)"#,
        ),
    )
    .unwrap();

    // New builds of the pipeline: the same code with a custom section that
    // names the build, so each is a version of its own.
    let builds: Vec<String> = (1..=3)
        .map(|n| {
            let module =
                hosting::with_custom_section(transform_artifacts::PIPELINE, &format!("build-{n}"));
            let path = dir.join(format!("pipeline-{n}.wasm"));
            std::fs::write(&path, module).unwrap();
            path.to_str().unwrap().to_string()
        })
        .collect();
    // The second build writes an older pane format (3, the default, less
    // the sketch and its ratios), as a format's rollback would: the
    // dashboard merges panes of both formats into the same windows, exactly.
    let format_2: Vec<(String, String)> = vars
        .iter()
        .cloned()
        .chain([("PANE_FORMAT".to_string(), "2".to_string())])
        .collect();

    let mut versions = Vec::new();
    for (i, (file, env)) in [
        (builds[0].as_str(), &vars),
        (broken.to_str().unwrap(), &vars),
        (builds[1].as_str(), &format_2),
        (failing.to_str().unwrap(), &vars),
        (builds[2].as_str(), &format_2),
    ]
    .into_iter()
    .enumerate()
    {
        std::thread::sleep(Duration::from_millis(400));
        let out = up.deploy(file, env);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if i % 2 == 0 {
            assert!(out.status.success(), "deploy {i}: {stderr}");
            versions.push(stdout.trim().rsplit(' ').next().unwrap().to_string());
        } else {
            assert_eq!(
                out.status.code(),
                Some(1),
                "deploy {i} was not refused: {stdout}"
            );
            let reason = if i == 1 {
                "refused at deploy"
            } else {
                "failed at start"
            };
            assert!(stderr.contains(reason), "deploy {i}: {stderr}");
            assert!(
                stderr.contains("the old one keeps running"),
                "deploy {i}: {stderr}"
            );
        }
    }
    assert!(
        !truth_path.exists(),
        "the stream ended before the last swap: deploys took too long for this test's stream"
    );
    // A setting the transform refuses stops it at start; its log says why.
    let bad_setting: Vec<(String, String)> = vec![("PANE_FORMAT".into(), "9".into())];
    let out = up.deploy("@pipeline", &bad_setting);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("failed at start") && stderr.contains("PANE_FORMAT=9"),
        "{stderr}"
    );

    let listed = Command::new(env!("CARGO_BIN_EXE_harness"))
        .args(["list", "--json", "--admin", &up.admin])
        .output()
        .unwrap();
    assert!(listed.status.success());
    let listed: Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(listed[0]["name"], "marketing-pipeline");
    assert_eq!(
        listed[0]["status"].as_array().unwrap().len(),
        3,
        "one status per partition"
    );
    let status = &listed[0]["harness"];
    assert_eq!(status["deploys"], 3);
    assert_eq!(status["version"], versions[2].as_str());
    assert!(
        versions[0] != versions[1] && versions[1] != versions[2],
        "{versions:?}"
    );
    assert_eq!(status["errors"].as_array().unwrap().len(), 3);
    let swaps = status["swaps"].as_array().unwrap();
    assert_eq!(swaps.len(), 3);
    assert!(swaps.iter().all(|s| s["pause_ms"].as_f64().unwrap() >= 0.0
        && s["request_ms"].as_f64().unwrap() >= s["pause_ms"].as_f64().unwrap()));
    assert!(status["records_in"].as_u64().unwrap() > 0, "{status}");

    up.assert_equals_truth(&truth_path);
    let source = up.get("/api/status");
    assert_eq!(source["version"], versions[2].as_str());
    let formats = &source["pane_formats"];
    assert!(
        formats["3"].as_u64().unwrap() > 0 && formats["2"].as_u64().unwrap() > 0,
        "the dashboard read panes of both formats: {formats}"
    );
    up.interrupt();
    std::fs::remove_dir_all(&dir).unwrap();
}
