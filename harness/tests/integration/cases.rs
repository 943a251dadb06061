//! `harness test` as a user runs it: our own case files pass (the pipeline
//! with its replays under `merged`); a wrong expectation shows a
//! record-level diff; a transform that is not restart-safe fails its
//! replay, naming the restart; a trap fails its case and the runner goes
//! on; bad case files name the file and the key; `--accept` writes and
//! updates expect files; `--junit` writes what CI systems read.

use std::path::{Path, PathBuf};
use std::process::Command;

/// `harness test ARGS`: exit code, stdout, stderr.
fn harness_test(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_harness"))
        .arg("test")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn scratch(name: &str) -> PathBuf {
    let dir =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("cases-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// What `stdout` says of `case`: its line and the detail lines under it.
fn report(stdout: &str, case: &str) -> String {
    let mut blocks: Vec<String> = Vec::new();
    for line in stdout.lines() {
        match blocks.last_mut() {
            Some(block) if line.starts_with("      ") => {
                block.push('\n');
                block.push_str(line);
            }
            _ => blocks.push(line.to_string()),
        }
    }
    blocks
        .into_iter()
        .find(|b| b.lines().next().is_some_and(|first| first.contains(case)))
        .unwrap_or_else(|| panic!("no line for {case}:\n{stdout}"))
}

#[test]
fn our_cases_pass_with_their_replays_and_junit_says_so() {
    let cases = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases");
    let junit = scratch("junit").join("report.xml");
    let (code, stdout, stderr) =
        harness_test(&[cases.to_str().unwrap(), "--junit", junit.to_str().unwrap()]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let found = std::fs::read_dir(&cases)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .to_string_lossy()
                .ends_with(".test.yaml")
        })
        .count();
    assert!(found >= 7);
    assert!(
        stdout
            .trim_end()
            .ends_with(&format!("{found} passed, 0 failed")),
        "{stdout}"
    );
    // The pipeline holds under merged through other batches, restarts and
    // interleavings.
    let line = report(&stdout, "pipeline-partitions.test.yaml");
    assert!(
        line.starts_with("ok ") && line.contains("5 replays"),
        "{line}"
    );
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(
        xml.contains(&format!("tests=\"{found}\"")) && xml.contains("failures=\"0\""),
        "{xml}"
    );
}

#[test]
fn failures_say_which_record_which_replay_and_which_key() {
    let dir = scratch("failures");
    let write = |name: &str, text: &str| std::fs::write(dir.join(name), text).unwrap();
    let tee = "transform: \"@tee\"\ninput_topic: in\noutput_topics: [out]\n";
    write(
        "wrong.test.yaml",
        &format!(
            "{tee}input:\n  - {{key: k, value: {{n: 1}}}}\n  - {{key: k, value: {{n: 2}}}}\n\
             expect:\n  - {{topic: out, partition: 0, key: k, value: '{{\"n\":1}}', headers: {{}}}}\n  \
             - {{topic: out, partition: 0, key: k, value: '{{\"n\":3}}', headers: {{}}}}\n"
        ),
    );
    let many: String = (0..20)
        .map(|i| format!("  - {{key: k{i}, value: v{i}}}\n"))
        .collect();
    write(
        "restarts.test.yaml",
        &format!(
            "{tee}batch_size: 4\ninput:\n{many}replay:\n  restarts: 1\n  invariant: identical\n"
        ),
    );
    write(
        "unordered.test.yaml",
        &format!("{tee}batch_size: 4\ninput:\n{many}replay:\n  batch_sizes: [1, 3]\n  invariant: unordered\n"),
    );
    // Counts the records it saw, in memory: a restart loses the count.
    let counter = test_kit::wat_module(
        "check_abi_version_2",
        r#"(global $n (mut i32) (i32.const 0))
           (func (export "_start")
             (loop $batches
               (drop (call $next_batch))
               (block $done
                 (loop $records
                   (br_if $done (i32.eq (call $read (i32.const 1024) (i32.const 4096)) (i32.const -1)))
                   (global.set $n (i32.add (global.get $n) (i32.const 1)))
                   (call $report (global.get $n))
                   (br $records)))
               (br $batches)))"#,
    );
    std::fs::write(dir.join("counter.wasm"), counter).unwrap();
    write(
        "counter.test.yaml",
        &format!(
            "transform: counter.wasm\nname: counter\nmemory_limit: 131072\ninput_topic: in\n\
             output_topics: [out]\nbatch_size: 4\ninput:\n{many}replay:\n  restarts: 1\n"
        ),
    );
    write(
        "memory.test.yaml",
        "transform: counter.wasm\nmemory_limit: 1000\ninput_topic: in\noutput_topics: [out]\n\
         input:\n  - {value: v}\nexpect_error: over the limit of 1000 bytes\n",
    );
    write("typo.test.yaml", &format!("{tee}input: []\nexpct: []\n"));
    write("missing.test.yaml", &format!("{tee}input: nowhere.jsonl\n"));
    let trap = test_kit::wat_module(
        "check_abi_version_2",
        r#"(func (export "_start")
             (loop $batches
               (drop (call $next_batch))
               (drop (call $read (i32.const 1024) (i32.const 4096)))
               unreachable))"#,
    );
    std::fs::write(dir.join("trap.wasm"), trap).unwrap();
    let trap_case =
        "transform: trap.wasm\ninput_topic: in\noutput_topics: [out]\ninput:\n  - {value: boom}\n";
    write("trap.test.yaml", trap_case);
    write(
        "trap-expected.test.yaml",
        &format!("{trap_case}expect_error: unreachable\n"),
    );
    write(
        "logs.test.yaml",
        "transform: \"@pipeline\"\ninput_topic: logs\noutput_topics: [results, events, logs.dlq]\n\
         vars: {WINDOW_SIZE: fortnightly}\nexpect_error: WINDOW_SIZE\n\
         expect_logs: [\"expected a positive duration\", \"invalid transform setting\"]\n",
    );

    let junit = dir.join("junit.xml");
    let (code, stdout, stderr) =
        harness_test(&[dir.to_str().unwrap(), "--junit", junit.to_str().unwrap()]);
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    assert!(
        stdout.trim_end().ends_with("4 passed, 6 failed"),
        "{stdout}"
    );

    let wrong = report(&stdout, "wrong.test.yaml");
    assert!(wrong.starts_with("FAIL"), "{wrong}");
    assert!(
        wrong.contains("record 2 (out/0): value.n: expected 3, got 2"),
        "{wrong}"
    );
    // At-least-once delivery repeats a stateless transform's outputs after
    // a restart: that is no finding. A transform that loses its state does
    // write other records for the batches delivered again.
    assert!(
        report(&stdout, "restarts.test.yaml").starts_with("ok "),
        "{stdout}"
    );
    let counter = report(&stdout, "counter.test.yaml");
    assert!(
        counter.contains("replay with restart after record 12 (delivered again from record 5)")
            && counter.contains("a batch delivered again after the restart wrote other records")
            && counter
                .contains("the batch from input line 5, delivered again, wrote other records:"),
        "{counter}"
    );
    assert!(
        report(&stdout, "memory.test.yaml").starts_with("ok "),
        "{stdout}"
    );
    assert!(
        report(&stdout, "unordered.test.yaml").starts_with("ok "),
        "{stdout}"
    );
    let typo = report(&stdout, "typo.test.yaml");
    assert!(
        typo.contains("typo.test.yaml") && typo.contains("unknown field `expct`"),
        "{typo}"
    );
    let missing = report(&stdout, "missing.test.yaml");
    assert!(
        missing.contains("input: cannot read") && missing.contains("nowhere.jsonl"),
        "{missing}"
    );
    let trapped = report(&stdout, "trap.test.yaml");
    assert!(
        trapped.starts_with("FAIL") && trapped.contains("unreachable"),
        "{trapped}"
    );
    assert!(report(&stdout, "trap-expected.test.yaml").starts_with("ok "));
    // The pipeline logs both, but not in this order; its writes read as
    // one line.
    let logs = report(&stdout, "logs.test.yaml");
    assert!(
        logs.contains(
            r#"no log line with "invalid transform setting" (in order after the ones before it)"#
        ) && logs.contains(
            "log: invalid transform setting: WINDOW_SIZE=fortnightly: expected a positive duration"
        ),
        "{logs}"
    );

    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(
        xml.contains("tests=\"10\"") && xml.contains("failures=\"6\""),
        "{xml}"
    );
    assert!(xml.contains("value.n: expected 3, got 2"), "{xml}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn accept_writes_the_expectation_and_says_what_changed() {
    let dir = scratch("accept");
    let case = dir.join("tee.test.yaml");
    let input = dir.join("in.jsonl");
    std::fs::write(
        &input,
        "{\"key\":\"a\",\"value\":\"1\"}\n{\"key\":\"b\",\"value\":\"2\"}\n",
    )
    .unwrap();
    std::fs::write(
        &case,
        "# no expectation yet\ntransform: \"@tee\"\ninput_topic: in\noutput_topics: [out]\ninput: in.jsonl",
    )
    .unwrap();
    let case_arg = case.to_str().unwrap();

    let (code, stdout, _) = harness_test(&[case_arg, "--accept"]);
    assert_eq!(code, 0, "{stdout}");
    assert!(
        stdout.contains("wrote ") && stdout.contains("tee.expected.jsonl (2 records)"),
        "{stdout}"
    );
    let yaml = std::fs::read_to_string(&case).unwrap();
    assert!(yaml.starts_with("# no expectation yet\n"), "{yaml}");
    assert!(
        yaml.ends_with("input: in.jsonl\nexpect: tee.expected.jsonl\n"),
        "{yaml}"
    );
    let expected = std::fs::read_to_string(dir.join("tee.expected.jsonl")).unwrap();
    assert_eq!(expected.lines().count(), 2);
    assert!(expected.contains(r#""key":"b","value":"2""#), "{expected}");

    assert_eq!(harness_test(&[case_arg]).0, 0);
    std::fs::write(
        &input,
        "{\"key\":\"a\",\"value\":\"1\"}\n{\"key\":\"b\",\"value\":\"20\"}\n",
    )
    .unwrap();
    let (code, stdout, _) = harness_test(&[case_arg]);
    assert_eq!(code, 1);
    assert!(
        stdout.contains(r#"record 2 (out/0): value: expected "2", got "20""#),
        "{stdout}"
    );
    let (code, stdout, _) = harness_test(&[case_arg, "--accept"]);
    assert_eq!(code, 0);
    assert!(
        stdout.contains("updated ") && stdout.contains(r#"value: expected "2", got "20""#),
        "{stdout}"
    );
    assert_eq!(harness_test(&[case_arg]).0, 0);

    let (code, _, stderr) = harness_test(&[dir.join("none").to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(stderr.contains("no such file or folder"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Redpanda's schema-registry test transform (its Go testdata, ported):
/// with a registry of the case's own holding the schema, it decodes the
/// Confluent wire format to JSON; without one, its calls fail and so does
/// the case.
#[test]
fn a_case_gives_a_registry_with_its_schemas() {
    let dir = scratch("schemas");
    std::fs::write(
        dir.join("sr.wasm"),
        testdata_artifacts::testdata("schema-registry").unwrap(),
    )
    .unwrap();
    std::fs::write(
        dir.join("example.avsc"),
        r#"{"fields":[{"default":0,"name":"a","type":"long"},{"default":"","name":"b","type":"string"}],"name":"Example","type":"record"}"#,
    )
    .unwrap();
    // Magic byte 0, schema id 1, then the Avro body of {a: 5, b: "x"}.
    let case = "transform: sr.wasm\ninput_topic: avro\noutput_topics: [json]\n\
                input:\n  - {key: k, value_base64: AAAAAAEKAng=}\n\
                expect:\n  - {topic: json, partition: 0, key: k, value: '{\"a\":5,\"b\":\"x\"}', headers: {}}\n";
    std::fs::write(
        dir.join("with.test.yaml"),
        format!("{case}schemas:\n  avro-value: example.avsc\n"),
    )
    .unwrap();
    std::fs::write(dir.join("without.test.yaml"), case).unwrap();
    std::fs::write(
        dir.join("missing.test.yaml"),
        format!("{case}schemas:\n  avro-value: nowhere.avsc\n"),
    )
    .unwrap();
    let (code, stdout, _) = harness_test(&[dir.to_str().unwrap()]);
    assert_eq!(code, 1, "{stdout}");
    assert!(
        report(&stdout, "with.test.yaml").starts_with("ok "),
        "{stdout}"
    );
    let without = report(&stdout, "without.test.yaml");
    assert!(without.starts_with("FAIL"), "{without}");
    let missing = report(&stdout, "missing.test.yaml");
    assert!(
        missing.contains("schemas: avro-value: cannot read") && missing.contains("nowhere.avsc"),
        "{missing}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
