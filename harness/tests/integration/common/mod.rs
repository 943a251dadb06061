//! Helpers shared by the harness's integration tests.
// Shared by the integration and the sasl test binaries, each of which
// uses a part.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use generator::truth::by_window;
use generator::{Totals, TruthFile, WindowTotals};
use hosting::records::{read_input, InputRecord};
use hosting::run::{run, RunOptions};
use hosting::spec::{resolve, Overrides, TransformYaml};
use serde_json::Value;
use transform_host::{Host, Limits, Logger, TransformSpec};

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

pub fn read_fixture(name: &str) -> Vec<InputRecord> {
    let file = std::fs::File::open(fixture(name)).unwrap();
    read_input(std::io::BufReader::new(file)).unwrap()
}

pub fn host() -> Host {
    Host::new(Limits::default()).unwrap()
}

/// The deployment of the repository's transform.yaml.
pub fn pipeline_spec() -> TransformSpec {
    let yaml =
        TransformYaml::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../transform.yaml"))
            .unwrap();
    resolve(Some(yaml), Overrides::default(), "x").unwrap()
}

/// The same deployment with other topics, for the standalone stages.
pub fn spec_with_topics(name: &str, input: &str, outputs: &[&str]) -> TransformSpec {
    TransformSpec {
        name: name.into(),
        input_topic: input.into(),
        output_topics: outputs.iter().map(|t| t.to_string()).collect(),
        ..pipeline_spec()
    }
}

/// An output record, owned.
#[derive(Debug, Clone, PartialEq)]
pub struct Out {
    pub topic: String,
    pub partition: i32,
    pub key: Option<String>,
    pub value: Option<String>,
    pub headers: Vec<(String, Option<String>)>,
}

/// Log events of the transform, collected.
/// A logger that drops every event.
pub fn silent_logger() -> Logger {
    Arc::new(|_| {})
}

pub fn run_module(
    wasm: &str,
    spec: TransformSpec,
    records: &[InputRecord],
    batch_size: usize,
) -> Vec<Out> {
    let host = host();
    let (transform, _) = up::extensions().load(&host, wasm).unwrap();
    let mut outs = Vec::new();
    let logger = silent_logger();
    run(
        &host,
        &transform,
        spec,
        records,
        &RunOptions {
            batch_size,
            partitions: None,
            start_offsets: Vec::new(),
            unstamped_ms: 0,
        },
        logger,
        |line, _| {
            let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
            outs.push(Out {
                topic: line.topic.to_string(),
                partition: line.partition,
                key: line.key.as_deref().map(text),
                value: line.value.as_deref().map(text),
                headers: line
                    .headers
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_deref().map(text)))
                    .collect(),
            })
        },
    )
    .unwrap();
    outs
}

/// Output records as text a reviewer can read: topic, partition, key and
/// headers on one line, then the value (pretty when it is JSON).
pub fn render(outs: &[Out]) -> String {
    let mut text = String::new();
    for o in outs {
        let headers: Vec<String> = o
            .headers
            .iter()
            .map(|(k, v)| format!("{k}={v:?}"))
            .collect();
        text.push_str(&format!(
            "── {}[{}] key={:?} headers=[{}]\n",
            o.topic,
            o.partition,
            o.key,
            headers.join(", ")
        ));
        let value = match o
            .value
            .as_deref()
            .map(serde_json::from_str::<serde_json::Value>)
        {
            Some(Ok(json)) => serde_json::to_string_pretty(&json).unwrap(),
            _ => format!("{:?}", o.value),
        };
        text.push_str(&value);
        text.push('\n');
    }
    text
}

/// Input records back in the harness's input format, from outputs of one topic.
pub fn as_inputs(outs: &[Out], topic: &str) -> Vec<InputRecord> {
    outs.iter()
        .filter(|o| o.topic == topic)
        .enumerate()
        .map(|(i, o)| InputRecord {
            line: i + 1,
            partition: o.partition,
            key: o.key.clone().map(String::into_bytes),
            value: o.value.clone().map(String::into_bytes),
            headers: o
                .headers
                .iter()
                .map(|(k, v)| (k.clone().into_bytes(), v.clone().map(String::into_bytes)))
                .collect(),
            timestamp_ms: Some(0),
        })
        .collect()
}

/// The value of header `key` of an output line, as `harness run` writes
/// headers (rpk's array of `{"key":…,"value":…}`).
pub fn header<'a>(line: &'a Value, key: &str) -> &'a Value {
    line["headers"]
        .as_array()
        .and_then(|headers| headers.iter().find(|h| h["key"] == key))
        .map_or(&Value::Null, |h| &h["value"])
}

pub fn json(o: &Out) -> serde_json::Value {
    serde_json::from_str(o.value.as_deref().unwrap()).unwrap()
}

/// Panes summed per (campaign, channel, window start), as the truth file
/// keys its totals.
pub fn pane_totals<'a>(
    panes: impl IntoIterator<Item = &'a serde_json::Value>,
) -> BTreeMap<(String, String, i64), Totals> {
    let mut totals: BTreeMap<(String, String, i64), Totals> = BTreeMap::new();
    for pane in panes {
        let t = totals
            .entry((
                pane["campaign"].as_str().unwrap().into(),
                pane["channel"].as_str().unwrap().into(),
                pane["window_start"].as_i64().unwrap(),
            ))
            .or_default();
        t.impressions += pane["impressions"].as_i64().unwrap();
        t.clicks += pane["clicks"].as_i64().unwrap();
        t.conversions += pane["conversions"].as_i64().unwrap();
        t.spend_micros += pane["spend_micros"].as_i64().unwrap();
        t.revenue_micros += pane["revenue_micros"].as_i64().unwrap();
    }
    totals
}

/// A CA (`ca.pem`), the certificates it signed for the broker at
/// 127.0.0.1 (`server.pem`, `server.key`) and for a client (`client.pem`,
/// `client.key`), and a CA that signed nothing here (`other-ca.pem`), with
/// openssl.
pub fn make_certificates(dir: &Path) {
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    for (name, subject) in [("ca", "/CN=test CA"), ("other-ca", "/CN=another CA")] {
        let (key, pem) = (format!("{name}.key"), format!("{name}.pem"));
        let days = [
            "-days", "2", "-subj", subject, "-keyout", &key, "-out", &pem,
        ];
        openssl(
            &[
                &["req", "-x509", "-newkey", "rsa:2048", "-nodes"][..],
                &days,
            ]
            .concat(),
        );
    }
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    for (name, subject) in [("server", "/CN=127.0.0.1"), ("client", "/CN=analyst")] {
        let (key, csr, pem) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.pem"),
        );
        let request = ["-subj", subject, "-keyout", &key, "-out", &csr];
        openssl(&[&["req", "-newkey", "rsa:2048", "-nodes"][..], &request].concat());
        let sign = ["-in", &csr, "-extfile", "san.ext", "-out", &pem];
        let by_ca = [
            "x509",
            "-req",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
        ];
        openssl(&[&by_ca[..], &["-days", "2"], &sign].concat());
    }
}

/// Waits until a dashboard (its API through `get`) has counted every
/// valid event of `truth`, and compares them window by window.
pub fn assert_dashboard_equals(
    truth: &TruthFile,
    get: impl Fn(&str) -> Value,
) -> BTreeMap<(String, String, i64), Totals> {
    assert!(truth.invalid > 0, "the run injected no invalid events");
    let expected = truth.by_window();
    let counted = |t: &Totals| (t.impressions + t.clicks + t.conversions) as u64;
    let valid: u64 = expected.values().map(counted).sum();
    assert_eq!(valid, truth.events - truth.invalid);
    // It keeps serving after the last event: wait until every event is in.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let summary = get("/api/summary");
        if counted(&totals(&summary)) >= valid {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the dashboard counts {} of {valid} events",
            counted(&totals(&summary))
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let windows: Vec<WindowTotals> = serde_json::from_value(get("/api/windows")).unwrap();
    let got = by_window(&windows);
    assert_eq!(got, expected, "the dashboard's windows");
    expected
}

/// `harness ARGS`, which must fail: its stderr.
pub fn harness_refused<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_harness"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let shown: Vec<_> = args.iter().map(|a| a.as_ref().to_string_lossy()).collect();
    assert!(
        !out.status.success(),
        "{shown:?} was not refused:\n{stderr}"
    );
    stderr
}

/// `harness ARGS`, which must succeed: its stdout.
pub fn harness(args: &[&str]) -> String {
    let out = succeed(Command::new(env!("CARGO_BIN_EXE_harness")).args(args));
    String::from_utf8(out.stdout).unwrap()
}

/// `harness ARGS` with `input` on its stdin, which must succeed: its
/// stdout.
pub fn harness_with_input(args: &[&str], input: &[u8]) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_harness"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{args:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// Runs `command` without stdin; it must succeed.
pub fn succeed(command: &mut Command) -> Output {
    let out = command.stdin(Stdio::null()).output().unwrap();
    assert!(
        out.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `$PYTHON` (else `python3`) if it imports `module`; else `None`, or a
/// failure when the environment variable `required` is set, as `.ci/run`
/// sets it.
pub fn python_with(module: &str, install: &str, required: &str) -> Option<String> {
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let found = Command::new(&python)
        .args(["-c", &format!("import {module}")])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if found {
        return Some(python);
    }
    let message = format!("{python} cannot import {module}: `pip install {install}`");
    if std::env::var_os(required).is_some() {
        panic!("{message} ({required} is set)");
    }
    eprintln!("skipped: {message}");
    None
}

/// `harness ARGS --admin ADMIN`, which must succeed: its stdout.
pub fn harness_at(admin: &str, args: &[&str]) -> String {
    let mut all = args.to_vec();
    all.extend(["--admin", admin]);
    harness(&all)
}

/// `harness up` as a child process on free ports.
pub struct Up {
    pub child: Child,
    pub address: String,
    pub admin: String,
    /// The schema registry `up` serves, as `http://HOST:PORT`.
    pub registry: String,
    /// Its Kafka listener, as HOST:PORT (empty on a broker's topics).
    pub kafka: String,
    /// The data folder made for this run alone, deleted with it.
    scratch: Option<PathBuf>,
    /// What it said on stderr until it served.
    pub said: String,
}

/// The arguments of a seeded, counted stream from 2025-08-17T14:00 with
/// invalid events among the good, whose truth goes to `truth`.
pub fn counted_stream(
    seed: u64,
    count: u64,
    rate: &str,
    invalid: f64,
    truth: &Path,
) -> Vec<String> {
    let seed = seed.to_string();
    let count = count.to_string();
    let invalid = invalid.to_string();
    [
        "--seed",
        &seed,
        "--count",
        &count,
        "--rate",
        rate,
        "--start",
        "2025-08-17T14:00:00",
        "--invalid-ratio",
        &invalid,
        "--truth",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([truth.display().to_string()])
    .collect()
}

/// A data folder of its own for a test's `harness up`.
pub fn scratch_data_dir(name: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("up-data-{name}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

impl Up {
    /// Starts `harness up` on free ports, with a data folder of its own
    /// unless `args` name one (or keep the topics elsewhere), and waits until it says where the dashboard
    /// is.
    pub fn start(args: &[&str]) -> Up {
        Up::start_with_env(args, &[])
    }

    /// [`Up::start`], with these environment variables set.
    pub fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Up {
        let own = !args
            .iter()
            .any(|a| ["--data-dir", "--in-memory", "--brokers"].contains(a));
        let scratch = own.then(|| scratch_data_dir("up"));
        let mut up = Up::spawn(args, scratch.as_deref(), env);
        up.scratch = scratch;
        up
    }

    /// Starts `harness up` on free ports with `data_dir`, which outlives it.
    pub fn start_in(data_dir: &Path, args: &[&str]) -> Up {
        Up::spawn(args, Some(data_dir), &[])
    }

    fn spawn(args: &[&str], data_dir: Option<&Path>, env: &[(&str, &str)]) -> Up {
        let mut command = Command::new(env!("CARGO_BIN_EXE_harness"));
        command.envs(env.iter().copied());
        command
            .args(["up", "--port", "0", "--admin-listen", "127.0.0.1:0"])
            .args(["--schema-registry-listen", "127.0.0.1:0"]);
        if let Some(dir) = data_dir {
            command.arg("--data-dir").arg(dir);
        }
        if !args
            .iter()
            .any(|a| ["--brokers", "--kafka-listen"].contains(a))
        {
            command.args(["--kafka-listen", "127.0.0.1:0"]);
        }
        let mut child = command
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut said = String::new();
        let mut admin = String::new();
        let mut registry = String::new();
        let mut kafka = String::new();
        let address = loop {
            let mut line = String::new();
            assert!(
                stderr.read_line(&mut line).unwrap() > 0,
                "harness up ended before serving: {said}"
            );
            said.push_str(&line);
            if let Some(rest) = line.strip_prefix("admin endpoint on ") {
                admin = rest.split(' ').next().unwrap().to_string();
            }
            if let Some(rest) = line.strip_prefix("schema registry on ") {
                registry = rest.split(' ').next().unwrap().to_string();
            }
            if let Some(rest) = line.strip_prefix("Kafka API on ") {
                kafka = rest.split(' ').next().unwrap().to_string();
            }
            if let Some(rest) = line
                .strip_prefix("open http://")
                .or_else(|| line.strip_prefix("open https://"))
            {
                break rest.split('/').next().unwrap().to_string();
            }
        };
        // Keep reading, so that the progress lines never block the child.
        std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
        Up {
            child,
            address,
            admin,
            registry,
            kafka,
            scratch: None,
            said,
        }
    }

    /// SIGKILL: no chance to finish anything.
    pub fn kill_9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Waits for the generator's truth, then until the dashboard has
    /// counted every event, and compares them window by window.
    pub fn assert_equals_truth(
        &self,
        truth_path: &Path,
    ) -> BTreeMap<(String, String, i64), Totals> {
        let deadline = Instant::now() + Duration::from_secs(120);
        while !truth_path.exists() {
            assert!(Instant::now() < deadline, "the generator never finished");
            std::thread::sleep(Duration::from_millis(100));
        }
        let truth: TruthFile =
            serde_json::from_str(&std::fs::read_to_string(truth_path).unwrap()).unwrap();
        assert_dashboard_equals(&truth, |path| self.get(path))
    }

    /// `harness deploy` against this host.
    pub fn deploy(&self, file: &str, vars: &[(String, String)]) -> std::process::Output {
        let mut command = Command::new(env!("CARGO_BIN_EXE_harness"));
        command.args([
            "deploy",
            "--name",
            "marketing-pipeline",
            "--file",
            file,
            "--admin",
            &self.admin,
        ]);
        for (k, v) in vars {
            command.arg("--var").arg(format!("{k}={v}"));
        }
        command.stdin(Stdio::null()).output().unwrap()
    }

    pub fn get(&self, path: &str) -> Value {
        let response = test_kit::get(&format!("http://{}{path}", self.address));
        assert_eq!(response.status, 200, "{path}: {}", response.body);
        response.json()
    }

    /// Ctrl-C: everything stops cleanly, with status 0.
    pub fn interrupt(mut self) {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success());
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "harness up ended with {status}");
                return;
            }
            assert!(
                Instant::now() < deadline,
                "harness up did not stop on Ctrl-C"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(dir) = &self.scratch {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// The counters of a window or summary in the API.
pub fn totals(v: &Value) -> Totals {
    Totals::from_json(v).expect("the counters")
}
