//! Redpanda's own test transforms (`src/transform-sdk/go/transform/internal/testdata/`,
//! ported to the Rust SDK in `transforms/testdata`) with the assertions
//! Redpanda's C++ tests make on them (`src/v/wasm/tests/*_test.cc`), and the
//! validation vectors of `tests/rptest/tests/data_transforms_test.py`. Each
//! test names the file and the test it follows. Redpanda's fixture
//! (`wasm_fixture.cc`, `WasmTestFixture`): transform `test_wasm_transform`, one input
//! and one output topic, no environment, batches at `NOW`.

use std::sync::{Arc, Mutex};

use record_payload::{decode_record, encode_record, BorrowedHeader, BorrowedRecord};
use registry::{LocalRegistry, SchemaRegistry};
use testdata_artifacts::testdata;
use transform_host::{
    Batch, Failure, Host, Limits, LogEvent, LogStream, Logger, Output, Record, TransformSpec, Vm,
};

/// `wasm_fixture.h`, `WasmTestFixture::NOW`.
const NOW: i64 = 1_687_201_340_524;

fn spec() -> TransformSpec {
    TransformSpec {
        name: "test_wasm_transform".into(),
        input_topic: "input".into(),
        output_topics: vec!["output".into()],
        env: vec![],
    }
}

fn payload(key: &[u8], value: &[u8], headers: &[(&[u8], &[u8])]) -> Vec<u8> {
    let headers = headers
        .iter()
        .map(|(k, v)| BorrowedHeader::new(k, Some(v)))
        .collect();
    let mut out = Vec::new();
    encode_record(
        &BorrowedRecord::new_with_headers(Some(key), Some(value), headers),
        &mut out,
    );
    out
}

/// One record at `NOW`, as `make_tiny_batch` makes it.
fn tiny_batch(payload: Vec<u8>) -> Arc<Batch> {
    Arc::new(Batch {
        records: vec![Record {
            offset: 1,
            timestamp_ms: NOW,
            payload,
        }],
    })
}

/// The fixture's `execute_command(key, value)`: one record whose key is a
/// command of the `dynamic` module.
fn command(key: &str, value: &[u8]) -> Arc<Batch> {
    tiny_batch(payload(key.as_bytes(), value, &[]))
}

type Lines = Arc<Mutex<Vec<(LogStream, String)>>>;

/// Every log event, as the fixture's capturing logger keeps them.
fn capture() -> (Logger, Lines) {
    let lines: Lines = Arc::default();
    let sink = lines.clone();
    let logger: Logger = Arc::new(move |e: LogEvent<'_>| {
        sink.lock().unwrap().push((e.stream, e.message.to_string()));
    });
    (logger, lines)
}

struct Fixture {
    host: Host,
    lines: Lines,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture::with(Host::new(Limits::default()).unwrap())
    }

    fn with(host: Host) -> Fixture {
        Fixture {
            host,
            lines: Arc::default(),
        }
    }

    /// `load_wasm`: validate, then start (`wasm_fixture.cc`, `WasmTestFixture::load_wasm`).
    fn load(&mut self, name: &str) -> Result<Vm, Failure> {
        let wasm = testdata(name).unwrap();
        let transform = self.host.load(&wasm).expect("accepted at deploy");
        let (logger, lines) = capture();
        self.lines = lines;
        Vm::start(&self.host, &transform, &spec(), logger)
    }

    fn logs(&self) -> Vec<(LogStream, String)> {
        self.lines.lock().unwrap().clone()
    }
}

fn values(outputs: &[Output]) -> Vec<Vec<u8>> {
    outputs
        .iter()
        .map(|o| {
            decode_record(&o.payload)
                .unwrap()
                .value()
                .unwrap_or_default()
                .to_vec()
        })
        .collect()
}

/// `wasm_transform_test.cc` (`IdentityFunction`): the record comes out
/// byte for byte, headers included.
#[test]
fn identity_returns_each_record_as_it_is() {
    let mut f = Fixture::new();
    let mut vm = f.load("identity").unwrap();
    let input = payload(b"key", b"value", &[(b"h1", b"v1"), (b"", b"")]);
    let out = vm.process(tiny_batch(input.clone())).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].payload, input);
}

/// `wasm_transform_test.cc` (`LogsAreEmitted`): one event for one
/// write, the bytes as written, at INFO for stdout. Redpanda's test value is
/// serde-framed (`\x06\0\0\0foobar`); such bytes are dropped later by the
/// log manager (`src/v/transform/logging/log_manager.cc`), which the harness
/// applies too, so the clean text pins the framing and the framed one the drop.
#[test]
fn one_write_to_stdout_is_one_info_event() {
    let mut f = Fixture::new();
    let mut vm = f.load("dynamic").unwrap();
    let out = vm.process(command("print", b"foobar")).unwrap();
    assert!(out.is_empty());
    assert_eq!(f.logs(), [(LogStream::Stdout, "foobar".to_string())]);
    assert_eq!(LogStream::Stdout.severity_number(), 9);
    vm.process(command("print", b"\x06\0\0\0foobar")).unwrap();
    assert_eq!(f.logs().len(), 1, "control characters: dropped");
}

/// `identity_logging/transform.go` with `tests/rptest/tests/data_transforms_test.py`'s
/// logging tests: `key:value\n` at WARN (severity 13), newline kept.
#[test]
fn stderr_is_warn_and_keeps_its_newline() {
    let mut f = Fixture::new();
    let mut vm = f.load("identity-logging").unwrap();
    let out = vm
        .process(tiny_batch(payload(b"testing", b"hello, world", &[])))
        .unwrap();
    assert_eq!(values(&out), [b"hello, world".to_vec()]);
    assert_eq!(
        f.logs(),
        [(LogStream::Stderr, "testing:hello, world\n".to_string())]
    );
    assert_eq!(LogStream::Stderr.severity_number(), 13);
}

/// `dynamic/transform.go`'s other commands: no output, one, two.
#[test]
fn dynamic_zero_mirror_and_double() {
    let mut f = Fixture::new();
    let mut vm = f.load("dynamic").unwrap();
    assert!(vm.process(command("zero", b"v")).unwrap().is_empty());
    assert_eq!(
        values(&vm.process(command("mirror", b"v")).unwrap()),
        [b"v"]
    );
    assert_eq!(
        values(&vm.process(command("double", b"v")).unwrap()),
        [b"v", b"v"]
    );
}

/// `wasm_transform_test.cc` (`WorksWithCpuProfiler`) and `wasm_resources_test.cc`
/// (`CpuIsLimited`): an endless loop is stopped when its fuel runs out.
/// Redpanda's 3 s budget is scaled down here so the test is quick.
#[test]
fn an_endless_loop_is_stopped() {
    let mut f = Fixture::with(
        Host::new(Limits {
            fuel_per_record: 200_000_000,
            ..Limits::default()
        })
        .unwrap(),
    );
    let mut vm = f.load("dynamic").unwrap();
    let failure = vm.process(command("loop", &[0; 4])).unwrap_err();
    assert!(failure.message.contains("fuel"), "{failure}");
    assert_eq!(failure.offset, Some(1));
}

/// `wasm_resources_test.cc` (`MemoryIsLimited`): 5 KiB is fine; the
/// engine's whole limit (32 MiB there, 2 MiB, Redpanda's default, here) is not.
#[test]
fn memory_is_limited() {
    let mut f = Fixture::new();
    let mut vm = f.load("dynamic").unwrap();
    vm.process(command("allocate", &(5u32 << 10).to_le_bytes()))
        .unwrap();
    let failure = vm
        .process(command("allocate", &(2u32 << 20).to_le_bytes()))
        .unwrap_err();
    assert!(failure.message.contains("memory"), "{failure}");
}

/// `wasi_test.cc` (`Wasi`): the arguments are the transform's name,
/// the environment its topics alone, the realtime clock the record's
/// timestamp in nanoseconds.
#[test]
fn wasi_shows_the_name_the_topics_and_the_record_time() {
    let mut f = Fixture::new();
    let mut vm = f.load("wasi").unwrap();
    let out = vm.process(tiny_batch(payload(b"k", b"v", &[]))).unwrap();
    assert_eq!(out.len(), 1);
    let record = decode_record(&out[0].payload).unwrap();
    assert_eq!(record.key(), None, "a null key");
    let info: serde_json::Value = serde_json::from_slice(record.value().unwrap()).unwrap();
    assert_eq!(info["Args"], serde_json::json!(["test_wasm_transform"]));
    let mut env: Vec<String> = serde_json::from_value(info["Env"].clone()).unwrap();
    env.sort();
    assert_eq!(
        env,
        [
            "REDPANDA_INPUT_TOPIC=input",
            "REDPANDA_OUTPUT_TOPIC_0=output"
        ]
    );
    assert_eq!(info["NowNanos"], NOW * 1_000_000);
}

/// `wasm_lifecycle_test.cc` (`CanRestartEngine`): a stopped engine
/// starts again as a fresh instance.
#[test]
fn an_engine_starts_again_after_a_stop() {
    let mut f = Fixture::new();
    drop(f.load("identity").unwrap());
    let mut vm = f.load("identity").unwrap();
    let input = payload(b"k", b"v", &[]);
    assert_eq!(
        vm.process(tiny_batch(input.clone())).unwrap()[0].payload,
        input
    );
}

/// `wasm_lifecycle_test.cc` (`HandlesSetupPanic`): `setup-panic`
/// never links the SDK, so Redpanda refuses it at deploy for its missing
/// ABI import (`wasmtime.cc`, `wasmtime_runtime::validate`), before `main` could panic. A
/// module that does link it and panics in `main` fails to start.
#[test]
fn a_panic_in_setup_fails_the_deploy_or_the_start() {
    let mut f = Fixture::new();
    let refused = f.host.load(&testdata("setup-panic").unwrap()).unwrap_err();
    assert!(
        refused.to_string().contains("missing transform sdk ABI"),
        "{refused}"
    );
    let failure = f.load("start-panic").unwrap_err();
    let logs = f.logs();
    assert!(
        logs.iter()
            .any(|(s, l)| *s == LogStream::Stderr && l.contains("Oh noes!")),
        "{failure}: {logs:?}"
    );
}

/// `wasm_lifecycle_test.cc` (`HandlesTransformPanic`).
#[test]
fn a_panic_in_the_transform_fails_it() {
    let mut f = Fixture::new();
    let mut vm = f.load("transform-panic").unwrap();
    let failure = vm.process(command("k", b"v")).unwrap_err();
    assert_eq!(failure.offset, Some(1));
    assert!(
        f.logs().iter().any(|(_, l)| l.contains("oh noes!")),
        "{failure}"
    );
}

/// `wasm_lifecycle_test.cc` (`HandlesTransformErrors`): an error fails
/// the transform; stopped and started again, it fails again the same way.
#[test]
fn an_error_in_the_transform_fails_it_again_after_a_restart() {
    let mut f = Fixture::new();
    for _ in 0..2 {
        let mut vm = f.load("transform-error").unwrap();
        let failure = vm.process(command("k", b"v")).unwrap_err();
        assert!(
            f.logs()
                .iter()
                .any(|(_, l)| l.contains("transforming record failed") && l.contains("oh noes!")),
            "{failure}: {:?}",
            f.logs()
        );
    }
}

/// `schema-registry/avro/example.go`, `Example.Schema`.
const EXAMPLE: &str = r#"{"fields":[{"default":0,"name":"a","type":"long"},{"default":"","name":"b","type":"string"}],"name":"Example","type":"record"}"#;

/// `wasm_sr_test.cc` (`SchemaRegistry`): the module registers its
/// schema at start (the first id, 1), then turns the Confluent-framed Avro
/// record `{a: 4, b: "foo"}` into its JSON.
#[test]
fn the_schema_registry_module_registers_and_decodes() {
    let registry = Arc::new(LocalRegistry::new());
    let host = Host::new(Limits::default())
        .unwrap()
        .with_schema_registry(registry.clone());
    let mut f = Fixture::with(host);
    let mut vm = f.load("schema-registry").unwrap();
    assert_eq!(registry.subjects(), ["demo-topic-value"]);
    let registered = registry.subject_schema("demo-topic-value", None).unwrap();
    assert_eq!(registered.id, 1);
    assert_eq!(registered.schema.schema, EXAMPLE);
    let value = [0x00, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, b'f', b'o', b'o'];
    let out = vm.process(tiny_batch(payload(b"k", &value, &[]))).unwrap();
    assert_eq!(values(&out), [br#"{"a":4,"b":"foo"}"#.to_vec()]);
    // The same schema under the input's subject keeps its id.
    assert_eq!(registry.subject_schema("input-value", None).unwrap().id, 1);
}

/// Without a registry every call answers -1 (`schema_registry_module.cc`, `get_schema_definition_len`):
/// the module logs that it cannot register, starts, and fails the record.
#[test]
fn without_a_registry_the_module_is_told_it_is_not_enabled() {
    let mut f = Fixture::new();
    let mut vm = f.load("schema-registry").unwrap();
    assert!(
        f.logs()
            .iter()
            .any(|(s, l)| *s == LogStream::Stdout && l.contains("unable to register schema")),
        "{:?}",
        f.logs()
    );
    let value = [0x00, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, b'f', b'o', b'o'];
    vm.process(tiny_batch(payload(b"k", &value, &[])))
        .unwrap_err();
    assert!(
        f.logs().iter().any(|(_, l)| l.contains("errno: -1")),
        "{:?}",
        f.logs()
    );
}

/// `tests/rptest/tests/data_transforms_test.py` (`test_validation`),
/// its binaries from `tests/docker/ducktape-deps/tinygo-wasi-transforms`,
/// and the admin API's words for them (`src/v/redpanda/admin/server.cc`, `admin_server::throw_on_error`).
#[test]
fn redpandas_validation_vectors() {
    let host = Host::new(Limits::default()).unwrap();
    let garbage = [
        0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, 0x01, 0x07, 0x01, 0x60, 0x02, 0x7f, 0x7f,
        0xeb, 0x79, 0xe8, 0x1e, 0x8d, 0x3b, 0x3b, 0x30, 0x0d, 0x9a, 0x7b, 0x3b, 0xa1, 0x94, 0xec,
        0x74, 0x71, 0xe9, 0x39, 0x14,
    ];
    let add_two = test_kit::wat_parse(
        r#"(module (func (export "addTwo") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add))"#,
    );
    let wasi =
        test_kit::wat_parse(r#"(module (memory (export "memory") 1) (func (export "_start")))"#);
    for (wasm, expected) in [
        (&garbage[..], "invalid WebAssembly module"),
        (&add_two[..], "missing required WASI functions"),
        (
            &wasi[..],
            "Check the broker support for the version of the Data Transforms SDK being used.",
        ),
    ] {
        let refusal = host
            .load(wasm)
            .unwrap_err()
            .refusal
            .expect("refused at deploy");
        assert!(
            refusal.admin_message().contains(expected),
            "{}",
            refusal.admin_message()
        );
    }
}
