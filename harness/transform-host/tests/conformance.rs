//! The host against Redpanda's contract (docs/architecture.md): modules built with the
//! official SDK, and small hand-written modules that hit each return code,
//! each trap and each deploy-time refusal.

use std::sync::Arc;

use record_payload::decode_record;
use registry::{LocalRegistry, Schema, SchemaRegistry};
use test_kit::{wat_module as module, wat_module_with};
use transform_host::{Batch, Failure, Host, Limits, Logger, Output, Record, TransformSpec, Vm};

/// A logger that keeps every message, and the messages.
fn collecting_logger() -> (Logger, Arc<std::sync::Mutex<Vec<String>>>) {
    let lines = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = lines.clone();
    let logger: Logger = Arc::new(move |e: transform_host::LogEvent<'_>| {
        sink.lock().unwrap().push(e.message.to_string());
    });
    (logger, lines)
}

fn spec(outputs: &[&str]) -> TransformSpec {
    TransformSpec {
        name: "conformance".into(),
        input_topic: "in".into(),
        output_topics: outputs.iter().map(|t| t.to_string()).collect(),
        env: vec![("GREETING".into(), "hi".into())],
    }
}

/// A batch of records whose values are the given strings, offsets from `first`.
fn batch(first: i64, values: &[&str]) -> Arc<Batch> {
    let records = values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let mut payload = Vec::new();
            let record = record_payload::BorrowedRecord::new(Some(b"k"), Some(v.as_bytes()));
            record_payload::encode_record(&record, &mut payload);
            Record {
                offset: first + i as i64,
                timestamp_ms: 1_700_000_000_000 + i as i64,
                payload,
            }
        })
        .collect();
    Arc::new(Batch { records })
}

fn start(host: &Host, wasm: &[u8], outputs: &[&str]) -> Result<Vm, Failure> {
    let transform = host.load(wasm).expect("a valid module");
    Vm::start(host, &transform, &spec(outputs), collecting_logger().0)
}

/// The codes a test module reported, in order: 4-byte values on the first topic.
fn reports(outputs: &[Output]) -> Vec<i32> {
    outputs
        .iter()
        .filter(|o| o.topic == 0)
        .filter_map(|o| {
            let value = decode_record(&o.payload).unwrap().value()?.to_vec();
            Some(i32::from_le_bytes(value.try_into().ok()?))
        })
        .collect()
}

fn host() -> Host {
    Host::new(Limits::default()).unwrap()
}

#[test]
fn read_next_record_reports_a_short_buffer_then_the_end_of_the_batch() {
    for abi in ["check_abi_version_1", "check_abi_version_2"] {
        let wasm = module(
            abi,
            r#"(func (export "_start")
                 (loop $batches
                   (call $report (call $next_batch))
                   (call $report (call $read (i32.const 1024) (i32.const 0)))
                   (call $report (call $read (i32.const 1024) (i32.const 4096)))
                   (call $report (i32.load (i32.const 352)))
                   (call $report (call $read (i32.const 1024) (i32.const 4096)))
                   (br $batches)))"#,
        );
        let host = host();
        let mut vm = start(&host, &wasm, &["out"]).unwrap();
        let payload_len = batch(0, &["hello"]).records[0].payload.len() as i32;
        for first in [0, 7] {
            let out = vm.process(batch(first, &["hello"])).unwrap();
            // largest payload, short buffer, the record, its offset, no more records
            assert_eq!(
                reports(&out),
                [payload_len, -2, payload_len, first as i32, -1],
                "{abi}"
            );
        }
    }
}

#[test]
fn writes_return_their_length_or_the_contract_codes() {
    let wasm = module(
        "check_abi_version_2",
        r#"(global $early (mut i32) (i32.const 0))
           ;; a record with a null key, value "x" and no headers
           (data (i32.const 400) "\01\02x\00")
           (data (i32.const 500) "\01\06nop")
           (data (i32.const 520) "\02")
           (data (i32.const 540) "\01\0csecond")
           (data (i32.const 560) "\01\0csecond!")
           (func (export "_start")
             (global.set $early (call $write_record (i32.const 400) (i32.const 4)))
             (loop $batches
               (drop (call $next_batch))
               (call $report (global.get $early))
               (call $report (call $write_record_with_options (i32.const 400) (i32.const 4) (i32.const 500) (i32.const 5)))
               (call $report (call $write_record_with_options (i32.const 400) (i32.const 4) (i32.const 520) (i32.const 1)))
               (call $report (call $write_record_with_options (i32.const 400) (i32.const 4) (i32.const 560) (i32.const 9)))
               (call $report (call $write_record (i32.const 400) (i32.const 3)))
               (call $report (call $write_record_with_options (i32.const 400) (i32.const 4) (i32.const 540) (i32.const 8)))
               (call $report (call $write_record_with_options (i32.const 400) (i32.const 4) (i32.const 540) (i32.const 0)))
               (br $batches)))"#,
    );
    let host = host();
    let mut vm = start(&host, &wasm, &["first", "second"]).unwrap();
    let out = vm.process(batch(0, &["a"])).unwrap();
    // outside a batch, unknown topic, bad options, bytes after the topic,
    // a payload whose header count is cut off (Redpanda reads a varint from
    // nothing as 0, src/v/utils/vint.h, so it is a record:
    // src/v/model/transform.cc, validate_record_payload), to "second", empty options = the
    // first topic
    assert_eq!(reports(&out), [-1, -3, -2, -2, 3, 4, 4]);
    let second: Vec<_> = out.iter().filter(|o| o.topic == 1).collect();
    assert_eq!(second.len(), 1);
    assert_eq!(
        decode_record(&second[0].payload).unwrap().value(),
        Some(&b"x"[..])
    );
    let first_x = out
        .iter()
        .filter(|o| o.topic == 0 && o.payload == second[0].payload);
    assert_eq!(
        first_x.count(),
        2,
        "empty options write to the first topic, as does write_record"
    );
}

#[test]
fn an_out_of_bounds_pointer_traps_and_names_the_record() {
    let wasm = module(
        "check_abi_version_2",
        r#"(func (export "_start")
             (loop $batches
               (drop (call $next_batch))
               (drop (call $read (i32.const 1024) (i32.const 4096)))
               (drop (call $read (i32.const 65530) (i32.const 4096)))
               (br $batches)))"#,
    );
    let host = host();
    let mut vm = start(&host, &wasm, &["out"]).unwrap();
    let failure = vm.process(batch(40, &["a", "b"])).unwrap_err();
    assert!(
        failure
            .message
            .contains("Out of bounds memory access in FFI: 65530 + 4096 >= 65536"),
        "{}",
        failure.message
    );
    assert_eq!(
        failure.offset,
        Some(40),
        "the last record the guest was given"
    );
    // A failed VM stays failed; the host runs other VMs as before.
    assert!(vm.process(batch(42, &["c"])).is_err());
    let mut other = start(&host, transform_artifacts::TEE, &["out"]).unwrap();
    assert_eq!(other.process(batch(0, &["a"])).unwrap().len(), 1);
}

#[test]
fn memory_growth_past_the_limit_kills_the_transform() {
    let wasm = module(
        "check_abi_version_2",
        r#"(func (export "_start")
             (loop $batches
               (drop (call $next_batch))
               (drop (call $read (i32.const 1024) (i32.const 4096)))
               ;; 2 MiB more than the one page it has
               (if (i32.eq (memory.grow (i32.const 32)) (i32.const -1)) (then unreachable))
               (br $batches)))"#,
    );
    let host = host();
    let mut vm = start(&host, &wasm, &["out"]).unwrap();
    let failure = vm.process(batch(0, &["a"])).unwrap_err();
    assert!(
        failure.message.contains("ran out of memory"),
        "{}",
        failure.message
    );
    assert!(failure.message.contains("2097152"), "{}", failure.message);
    // Under a higher limit the same module grows and runs.
    let roomy = Host::new(Limits {
        memory_bytes: 4 << 20,
        ..Limits::default()
    })
    .unwrap();
    let mut vm = start(&roomy, &wasm, &["out"]).unwrap();
    vm.process(batch(0, &["a"])).unwrap();
}

#[test]
fn an_endless_loop_runs_out_of_fuel() {
    let wasm = module(
        "check_abi_version_2",
        r#"(func (export "_start")
             (drop (call $next_batch))
             (drop (call $read (i32.const 1024) (i32.const 4096)))
             (loop $forever (br $forever)))"#,
    );
    let host = Host::new(Limits {
        fuel_per_record: 50_000_000,
        ..Limits::default()
    })
    .unwrap();
    let mut vm = start(&host, &wasm, &["out"]).unwrap();
    let failure = vm.process(batch(3, &["a"])).unwrap_err();
    assert!(failure.message.contains("fuel"), "{}", failure.message);
    assert_eq!(failure.offset, Some(3));
}

#[test]
fn fuel_is_per_record_not_per_vm() {
    // Each record burns a few thousand units; the total is far over the limit.
    let wasm = module(
        "check_abi_version_2",
        r#"(func (export "_start") (local $i i32)
             (loop $batches
               (drop (call $next_batch))
               (block $done
                 (loop $records
                   (br_if $done (i32.lt_s (call $read (i32.const 1024) (i32.const 4096)) (i32.const 0)))
                   (local.set $i (i32.const 2000))
                   (loop $spin (local.set $i (i32.sub (local.get $i) (i32.const 1))) (br_if $spin (local.get $i)))
                   (br $records)))
               (br $batches)))"#,
    );
    let host = Host::new(Limits {
        fuel_per_record: 20_000,
        ..Limits::default()
    })
    .unwrap();
    let mut vm = start(&host, &wasm, &["out"]).unwrap();
    let values = vec!["v"; 100];
    for first in 0..5 {
        vm.process(batch(first * 100, &values)).unwrap();
    }
}

#[test]
fn proc_exit_fails_the_transform() {
    let wasm = module(
        "check_abi_version_2",
        r#"(func (export "_start")
             (drop (call $next_batch))
             (drop (call $read (i32.const 1024) (i32.const 4096)))
             (call $proc_exit (i32.const 3)))"#,
    );
    let host = host();
    let mut vm = start(&host, &wasm, &["out"]).unwrap();
    let failure = vm.process(batch(9, &["a"])).unwrap_err();
    assert!(
        failure.message.contains("exited with code: 3"),
        "{}",
        failure.message
    );
    assert_eq!(failure.offset, Some(9));
}

#[test]
fn returning_from_start_fails_at_deploy() {
    let wasm = module("check_abi_version_2", r#"(func (export "_start"))"#);
    let failure = start(&host(), &wasm, &["out"]).unwrap_err();
    assert!(failure.message.contains("returned"), "{}", failure.message);
}

#[test]
fn wasi_is_redpandas_virtual_subset() {
    let wasm = module(
        "check_abi_version_2",
        r#"(data (i32.const 600) "hello\nworld")
           (func (export "_start")
             ;; iovec at 640: 11 bytes at 600
             (i32.store (i32.const 640) (i32.const 600))
             (i32.store (i32.const 644) (i32.const 11))
             (loop $batches
               (drop (call $next_batch))
               (drop (call $read (i32.const 1024) (i32.const 4096)))
               (drop (call $fd_write (i32.const 1) (i32.const 640) (i32.const 1) (i32.const 648)))
               (call $report (i32.load (i32.const 648)))
               (drop (call $random_get (i32.const 700) (i32.const 4)))
               (call $report (i32.load (i32.const 700)))
               ;; realtime clock: the record's timestamp, in ns
               (drop (call $clock_time_get (i32.const 0) (i64.const 0) (i32.const 720)))
               (call $report (i32.wrap_i64 (i64.div_u (i64.load (i32.const 720)) (i64.const 1000000000))))
               ;; monotonic: 1 ms per call
               (drop (call $clock_time_get (i32.const 1) (i64.const 0) (i32.const 720)))
               (drop (call $clock_time_get (i32.const 1) (i64.const 0) (i32.const 728)))
               (call $report (i32.wrap_i64 (i64.sub (i64.load (i32.const 728)) (i64.load (i32.const 720)))))
               (br $batches)))"#,
    );
    let host = host();
    let transform = host.load(&wasm).unwrap();
    let (logger, lines) = collecting_logger();
    let mut vm = Vm::start(&host, &transform, &spec(&["out"]), logger).unwrap();
    let out = vm.process(batch(0, &["a"])).unwrap();
    assert_eq!(reports(&out), [11, 0x09090909, 1_700_000_000, 1_000_000]);
    // One event per fd_write, never split on newlines (src/v/wasm/wasi.cc, preview1_module::fd_write).
    assert_eq!(*lines.lock().unwrap(), ["hello\nworld"]);
}

#[test]
fn modules_redpanda_would_refuse_are_refused_with_the_reason() {
    let host = host();
    let refused = |wat: &str| {
        host.load(&test_kit::wat_parse(wat))
            .unwrap_err()
            .to_string()
    };
    let abi = r#"(import "redpanda_transform" "check_abi_version_2" (func))"#;
    let no_memory = refused(&format!(r#"(module {abi} (func (export "_start")))"#));
    assert!(no_memory.contains("memory"), "{no_memory}");
    let no_start = refused(&format!(r#"(module {abi} (memory (export "memory") 1))"#));
    assert!(no_start.contains("_start"), "{no_start}");
    let bad_start = refused(&format!(
        r#"(module {abi} (memory (export "memory") 1) (func (export "_start") (param i32)))"#
    ));
    assert!(bad_start.contains("_start"), "{bad_start}");
    let no_abi = refused(r#"(module (memory (export "memory") 1) (func (export "_start")))"#);
    assert!(no_abi.contains("check_abi_version"), "{no_abi}");
    let unknown_import = refused(&format!(
        r#"(module {abi} (import "env" "mystery" (func)) (memory (export "memory") 1) (func (export "_start")))"#
    ));
    assert!(unknown_import.contains("mystery"), "{unknown_import}");
    let garbage = host.load(b"\0asm not really").unwrap_err().to_string();
    assert!(
        garbage.contains("not a valid WebAssembly module"),
        "{garbage}"
    );
    let small = Host::new(Limits {
        max_module_bytes: 1000,
        ..Limits::default()
    })
    .unwrap();
    let oversized = small
        .load(transform_artifacts::TEE)
        .unwrap_err()
        .to_string();
    assert!(oversized.contains("1000"), "{oversized}");
}

#[test]
fn too_many_output_topics_are_refused() {
    let topics: Vec<String> = (0..9).map(|i| format!("t{i}")).collect();
    let topics: Vec<&str> = topics.iter().map(String::as_str).collect();
    let failure = start(&host(), transform_artifacts::TEE, &topics).unwrap_err();
    assert!(
        failure.message.contains("1 to 8 output topics"),
        "{}",
        failure.message
    );
}

/// A module built with the official SDK alone: every record, untouched, to
/// each output topic, found through `REDPANDA_OUTPUT_TOPIC_N`.
#[test]
fn an_sdk_module_copies_records_to_every_output_topic() {
    let host = host();
    let mut vm = start(&host, transform_artifacts::TEE, &["a", "b", "c"]).unwrap();
    for first in [0, 2] {
        let input = batch(first, &["one", "two"]);
        let out = vm.process(input.clone()).unwrap();
        let expected: Vec<(usize, Vec<u8>)> = input
            .records
            .iter()
            .flat_map(|r| (0..3).map(|t| (t, r.payload.clone())))
            .collect();
        let got: Vec<(usize, Vec<u8>)> = out.into_iter().map(|o| (o.topic, o.payload)).collect();
        assert_eq!(got, expected);
    }
}

/// The Schema Registry imports, as `src/v/wasm/schema_registry_module.h` declares them.
const SR_IMPORTS: &str = r#"
  (import "redpanda_schema_registry" "check_abi_version_0" (func $sr_check))
  (import "redpanda_schema_registry" "get_schema_definition_len" (func $def_len (param i32 i32) (result i32)))
  (import "redpanda_schema_registry" "get_schema_definition" (func $def (param i32 i32 i32) (result i32)))
  (import "redpanda_schema_registry" "get_subject_schema_len" (func $subject_len (param i32 i32 i32 i32) (result i32)))
  (import "redpanda_schema_registry" "get_subject_schema" (func $subject (param i32 i32 i32 i32 i32) (result i32)))
  (import "redpanda_schema_registry" "create_subject_schema" (func $create (param i32 i32 i32 i32 i32) (result i32)))
"#;

/// For each batch: every call of the module, each answer reported.
const SR_CALLS: &str = r#"
  (data (i32.const 600) "s-value")
  (data (i32.const 620) "t-value")
  ;; Avro `"long"`: type 0, 6 bytes of text, no references.
  (data (i32.const 700) "\00\0c\"long\"\00")
  ;; Type 3, which does not exist.
  (data (i32.const 800) "\06\00\00")
  (func (export "_start")
    (call $sr_check)
    (loop $batches
      (drop (call $next_batch))
      (drop (call $read (i32.const 1024) (i32.const 4096)))
      ;; a length the calls overwrite, when there is a registry
      (i32.store (i32.const 2000) (i32.const 20))
      ;; schema 1: its length, then too small a buffer, then enough
      (call $report (call $def_len (i32.const 1) (i32.const 2000)))
      (call $report (i32.load (i32.const 2000)))
      (call $report (call $def (i32.const 1) (i32.const 3000) (i32.sub (i32.load (i32.const 2000)) (i32.const 1))))
      (call $report (call $def (i32.const 1) (i32.const 3000) (i32.const 1000)))
      (call $report (i32.load (i32.const 3000)))
      ;; no schema 99
      (call $report (call $def_len (i32.const 99) (i32.const 2000)))
      ;; the latest of s-value, then its version 1
      (call $report (call $subject_len (i32.const 600) (i32.const 7) (i32.const -1) (i32.const 2000)))
      (call $report (i32.load (i32.const 2000)))
      (call $report (call $subject (i32.const 600) (i32.const 7) (i32.const 1) (i32.const 3000) (i32.const 1000)))
      (call $report (i32.load (i32.const 3000)))
      ;; register "long" under t-value: 0 and its id; then a bad type
      (call $report (call $create (i32.const 620) (i32.const 7) (i32.const 700) (i32.const 9) (i32.const 2004)))
      (call $report (i32.load (i32.const 2004)))
      (call $report (call $create (i32.const 620) (i32.const 7) (i32.const 800) (i32.const 3) (i32.const 2004)))
      (br $batches)))
"#;

/// `src/v/wasm/schema_registry_module.cc`, `schema_registry_module`: 0 or the bytes written,
/// -1 with no registry, -2 for anything else (a buffer too small, an
/// unknown id, a definition that is not one); lengths as `uint32_t`, ids as
/// `int32_t`; definitions as `write_encoded_schema_def` writes them.
#[test]
fn the_schema_registry_module_answers_as_redpandas() {
    let wasm = wat_module_with(SR_IMPORTS, "check_abi_version_2", SR_CALLS);
    let registry = Arc::new(LocalRegistry::new());
    let string = Schema {
        schema: r#"{"type":"string"}"#.into(),
        ..Schema::default()
    };
    assert_eq!(registry.register("s-value", &string), Ok(1));
    let host = host().with_schema_registry(registry.clone());
    let mut vm = start(&host, &wasm, &["out"]).unwrap();
    let out = vm.process(batch(0, &["a"])).unwrap();
    // Type 0, 17 bytes of text (zigzag 34), the text, no references.
    let definition_start = i32::from_le_bytes([0x00, 0x22, b'{', b'"']);
    // Id 1, version 1 (zigzag 2 each), then the definition.
    let subject_start = i32::from_le_bytes([0x02, 0x02, 0x00, 0x22]);
    assert_eq!(
        reports(&out),
        [
            0,
            20,
            -2,
            20,
            definition_start,
            -2,
            0,
            22,
            22,
            subject_start,
            0,
            2,
            -2
        ]
    );
    assert_eq!(
        registry
            .subject_schema("t-value", None)
            .unwrap()
            .schema
            .schema,
        r#""long""#
    );

    // No registry: -1 from every call, and nothing written.
    let mut vm = start(&self::host(), &wasm, &["out"]).unwrap();
    let out = vm.process(batch(0, &["a"])).unwrap();
    assert_eq!(
        reports(&out),
        [-1, 20, -1, -1, 0, -1, -1, 20, -1, 0, -1, 0, -1]
    );
}

/// Pointers are translated before the call (`ffi.h`, `ffi::detail::extract_parameter`): one outside
/// memory traps, registry or not (`wasmtime.cc`, `memory::translate_raw`).
#[test]
fn a_schema_registry_call_with_a_bad_pointer_traps() {
    let wasm = wat_module_with(
        SR_IMPORTS,
        "check_abi_version_2",
        r#"(func (export "_start")
             (loop $batches
               (drop (call $next_batch))
               (drop (call $read (i32.const 1024) (i32.const 4096)))
               (drop (call $def_len (i32.const 1) (i32.const 65534)))
               (br $batches)))"#,
    );
    let failure = start(&host(), &wasm, &["out"])
        .unwrap()
        .process(batch(0, &["a"]))
        .unwrap_err();
    assert!(
        failure.message.contains("Out of bounds memory access"),
        "{failure}"
    );
}

/// A Go panic is many writes: each is a log event of its own, as in
/// Redpanda (`src/v/wasm/wasi.cc`, `fd_write`, one event per call), and
/// the failure quotes the end of stderr as one text, so that its reason
/// reads whole.
#[test]
fn a_go_panic_is_an_event_per_write_and_one_text_in_the_failure() {
    let wasm = test_kit::go_panic_module("boom on record 2", false);
    let host = host();
    let transform = host.load(&wasm).unwrap();
    let (logger, events) = collecting_logger();
    let mut vm = Vm::start(&host, &transform, &spec(&["out"]), logger).unwrap();
    let failure = vm.process(batch(7, &["a"])).unwrap_err();
    assert_eq!(events.lock().unwrap().len(), 10, "one event per write");
    assert_eq!(failure.offset, Some(7));
    assert!(failure.message.contains("exited with code: 2"), "{failure}");
    let stderr = failure.stderr.as_deref().unwrap();
    assert!(
        stderr.starts_with("panic: boom on record 2\n\ngoroutine 1 [running]:\n"),
        "{stderr}"
    );
    assert!(failure.to_string().contains("panic: boom on record 2"));
}

/// A module whose initial memory is over the limit (any Go module at the
/// default 2 MiB) passes the deploy's checks and fails when it starts, as
/// in Redpanda, where only creating the VM takes its heap
/// (`src/v/wasm/wasmtime.cc`, `wasmtime_runtime::validate` checks no
/// memory; `wasmtime_engine::create_instance` does).
#[test]
fn a_module_starting_over_the_memory_limit_loads_and_fails_at_start() {
    let wasm = test_kit::wat_parse(
        r#"(module
             (import "redpanda_transform" "check_abi_version_2" (func))
             (memory (export "memory") 48)
             (func (export "_start")))"#,
    );
    let host = host();
    let transform = host.load(&wasm).expect("the deploy's checks pass");
    assert_eq!(transform.initial_memory_bytes, 48 * 65_536);
    let failure = Vm::start(&host, &transform, &spec(&["out"]), collecting_logger().0).unwrap_err();
    assert!(
        failure.message.starts_with(
            "the module starts with 3145728 bytes of memory, over the limit of 2097152 bytes"
        ),
        "{failure}"
    );
}
