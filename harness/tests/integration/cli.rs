//! `harness run` as a user meets it on bad input: a message that names the
//! input line and the cause, never a panic or our own internals.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

fn input(name: &str, lines: &[String]) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

fn run(args: &[&str], input: &PathBuf) -> (Output, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_harness"))
        .arg("run")
        .args(args)
        .arg("--input")
        .arg(input)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out, stderr)
}

const TEE: [&str; 5] = ["@tee", "--input-topic", "a", "--output-topic", "b"];

#[test]
fn a_bad_input_line_is_named_in_the_error() {
    let ok = r#"{"value":"ok"}"#.to_string();
    for (name, bad, message) in [
        (
            "out-of-range",
            r#"{"value":1e309}"#.to_string(),
            "input line 2: `value`: number out of range",
        ),
        (
            "deep",
            format!(r#"{{"value":{}{}}}"#, "[".repeat(200), "]".repeat(200)),
            "input line 2",
        ),
        (
            "partition",
            r#"{"value":"x","partition":2147483647}"#.to_string(),
            "input line 2: partition 2147483647, but a topic has at most 100000 partitions",
        ),
    ] {
        let (out, stderr) = run(&TEE, &input(name, &[ok.clone(), bad]));
        assert_eq!(out.status.code(), Some(1), "{name}: {stderr}");
        assert!(stderr.contains(message), "{name}: {stderr}");
        assert!(!stderr.contains("panicked"), "{name}: {stderr}");
    }
}

#[test]
fn a_record_too_large_for_the_memory_is_named_with_its_size() {
    let big = serde_json::json!({"value": "q".repeat(2 << 20)}).to_string();
    let (out, stderr) = run(&TEE, &input("too-large", &[big]));
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("before reading any of its records")
            && stderr.contains("the largest record 2097158 bytes at offset 0")
            && stderr.contains("ran out of memory"),
        "{stderr}"
    );
}

#[test]
fn a_trap_shows_the_guests_stack_not_the_hosts() {
    let module = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("panics.wat");
    std::fs::write(
        &module,
        r#"(module
            (import "redpanda_transform" "check_abi_version_2" (func))
            (memory (export "memory") 1)
            (func $deep (unreachable))
            (func (export "_start") (call $deep)))"#,
    )
    .unwrap();
    let wasm = test_kit::wat_parse(&std::fs::read_to_string(&module).unwrap());
    let path = module.with_extension("wasm");
    std::fs::write(&path, wasm).unwrap();
    for backtrace in ["1", "0"] {
        let out = Command::new(env!("CARGO_BIN_EXE_harness"))
            .args([
                "run",
                path.to_str().unwrap(),
                "--input-topic",
                "a",
                "--output-topic",
                "b",
            ])
            .arg("--input")
            .arg(input("one", &[r#"{"value":"x"}"#.to_string()]))
            .env("RUST_BACKTRACE", backtrace)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains("stopped with a wasm trap: wasm `unreachable` instruction executed"),
            "{stderr}"
        );
        assert!(stderr.contains("!deep"), "the guest's frames: {stderr}");
        for internal in ["wasmtime::", "harness::", "hosting::", "std::rt"] {
            assert!(
                !stderr.contains(internal),
                "RUST_BACKTRACE={backtrace}: {stderr}"
            );
        }
    }
}

#[test]
fn a_reader_that_stops_early_ends_the_run_quietly() {
    let lines: Vec<String> = (0..20_000)
        .map(|i| format!(r#"{{"value":"{i}"}}"#))
        .collect();
    let mut child = Command::new(env!("CARGO_BIN_EXE_harness"))
        .arg("run")
        .args(TEE)
        .arg("--input")
        .arg(input("many", &lines))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Like `| head -1`: read a line, then close the pipe.
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 64];
    std::io::Read::read(&mut stdout, &mut first).unwrap();
    drop(stdout);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.is_empty(), "{stderr}");
    let _ = std::io::stderr().flush();
}

#[test]
fn every_built_in_loads_by_name() {
    let host = transform_host::Host::new(transform_host::Limits::default()).unwrap();
    let extensions = up::extensions();
    for (builtin, name) in [
        ("@pipeline", "marketing-pipeline"),
        ("@enrich", "enrich"),
        ("@aggregate", "aggregate"),
        ("@tee", "tee"),
    ] {
        let (_, default_name) = extensions.load(&host, builtin).unwrap();
        assert_eq!(default_name, name);
    }
    let unknown = extensions.load(&host, "@nope").unwrap_err().to_string();
    assert!(
        unknown.contains("@pipeline, @enrich, @aggregate, @tee"),
        "{unknown}"
    );
}

#[test]
fn the_cli_names_the_input_line_that_killed_the_transform() {
    let wasm = test_kit::wat_module(
        "check_abi_version_2",
        r#"(func (export "_start")
             (loop $batches
               (drop (call $next_batch))
               (drop (call $read (i32.const 1024) (i32.const 4096)))
               (call $report (i32.const 1))
               (drop (call $read (i32.const 1024) (i32.const 4096)))
               unreachable))"#,
    );
    let dir = std::env::temp_dir().join(format!("harness-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let module_path = dir.join("trap.wasm");
    std::fs::write(&module_path, wasm).unwrap();
    let input = dir.join("in.jsonl");
    std::fs::write(
        &input,
        "{\"value\":\"fine\"}\n\n{\"key\":\"boom\",\"value\":{\"n\":2}}\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_harness"))
        .args([
            "run",
            module_path.to_str().unwrap(),
            "--input",
            input.to_str().unwrap(),
        ])
        .args(["--input-topic", "in", "--output-topic", "out"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("input line 3"), "{stderr}");
    assert!(stderr.contains("offset 1"), "{stderr}");
    assert!(stderr.contains(r#"key "boom""#), "{stderr}");
    assert!(stderr.contains("unreachable"), "{stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `harness validate` runs `main`, as a start would: a module that passes
/// the deploy's checks and fails in `main` (a Go transform checking its
/// configuration, say) is not "ok".
#[test]
fn validate_starts_the_module_and_reports_a_failing_main() {
    let validate = |name: &str| {
        let wasm = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}.wasm"));
        std::fs::write(&wasm, testdata_artifacts::testdata(name).unwrap()).unwrap();
        Command::new(env!("CARGO_BIN_EXE_harness"))
            .arg("validate")
            .arg(&wasm)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let ok = validate("identity");
    assert!(ok.status.success(), "{ok:?}");
    assert!(
        String::from_utf8_lossy(&ok.stdout).contains(": ok"),
        "{ok:?}"
    );
    let failing = validate("start-panic");
    let stderr = String::from_utf8_lossy(&failing.stderr);
    assert_eq!(failing.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("fails when it starts"), "{stderr}");
    assert!(stderr.contains("Oh noes!"), "{stderr}");
    assert!(!String::from_utf8_lossy(&failing.stdout).contains("ok"));
}

/// A Go transform's panic arrives as dozens of writes. `run` shows it as
/// lines and names it in its error; `harness test` matches `expect_error`
/// against stderr as one text, and shows it when a case fails.
#[test]
fn a_go_panic_reads_whole_in_run_and_test() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("go-panic");
    std::fs::create_dir_all(&dir).unwrap();
    let module = dir.join("panics.wasm");
    std::fs::write(
        &module,
        test_kit::go_panic_module("boom on record 0", false),
    )
    .unwrap();
    let input = input(
        "go-panic.jsonl",
        &[r#"{"key":"k","value":"v"}"#.to_string()],
    );
    let topics = ["--input-topic", "in", "--output-topic", "out"];
    let (out, stderr) = run(&[&[module.to_str().unwrap()][..], &topics].concat(), &input);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    // The readable log: one line, not ten fragments.
    assert!(
        stderr.contains("(stderr)] panic: boom on record 0\n"),
        "{stderr}"
    );
    assert!(stderr.contains("exited with code: 2"), "{stderr}");
    assert!(
        stderr.contains("its stderr ended with:\npanic: boom on record 0\n"),
        "{stderr}"
    );

    let case = |name: &str, expect: &str| {
        std::fs::write(
            dir.join(format!("{name}.test.yaml")),
            format!(
                "transform: panics.wasm\ninput_topic: in\noutput_topics: [out]\n\
                 input:\n  - {{key: k, value: v}}\n{expect}"
            ),
        )
        .unwrap();
    };
    case("expected", "expect_error: \"panic: boom on record 0\"\n");
    case("unexpected", "expect: []\n");
    let tested = Command::new(env!("CARGO_BIN_EXE_harness"))
        .arg("test")
        .arg(&dir)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&tested.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("ok ") && l.contains("/expected.test.yaml")),
        "{stdout}"
    );
    let failed = lines
        .iter()
        .position(|l| l.starts_with("FAIL") && l.contains("/unexpected.test.yaml"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert_eq!(
        lines[failed + 1].trim(),
        "stderr: panic: boom on record 0",
        "{stdout}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
