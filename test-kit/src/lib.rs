//! What the workspace's integration tests share: a free port, plain HTTP
//! requests to the servers under test (and streams held open), waiting
//! for a condition, and hand-written transform modules.

use std::net::TcpListener;
use std::time::{Duration, Instant};

/// A loopback port nothing listens on now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("binding a loopback port")
        .local_addr()
        .expect("a bound socket has an address")
        .port()
}

/// An HTTP answer: status and body, whatever the status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub body: String,
}

impl Response {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

fn answer(result: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Option<Response> {
    let mut response = result.ok()?;
    let status = response.status().as_u16();
    // Past ureq's 10 MB default: a month of windows by day is larger.
    let body = response
        .body_mut()
        .with_config()
        .limit(1 << 30)
        .read_to_string()
        .ok()?;
    Some(Response { status, body })
}

/// `GET url`; `None` if nothing answered.
pub fn try_get(url: &str) -> Option<Response> {
    try_get_with(url, &[])
}

/// `GET url` with these headers; `None` if nothing answered.
pub fn try_get_with(url: &str, headers: &[(&str, &str)]) -> Option<Response> {
    let mut request = agent().get(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    answer(request.call())
}

/// `GET url`, which must answer: the status and the body as bytes (a
/// file to download).
pub fn get_bytes(url: &str) -> (u16, Vec<u8>) {
    let mut response = agent()
        .get(url)
        .call()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = response.status().as_u16();
    let body = response
        .body_mut()
        .with_config()
        .limit(1 << 30)
        .read_to_vec()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    (status, body)
}

/// `GET url`, which must answer.
pub fn get(url: &str) -> Response {
    try_get(url).unwrap_or_else(|| panic!("GET {url}: no answer"))
}

/// `GET url` held open, for a stream such as server-sent events: the
/// status, and the body as it comes; dropping the reader closes the
/// connection.
pub fn open(url: &str) -> Option<(u16, Box<dyn std::io::BufRead + Send>)> {
    let response = agent().get(url).call().ok()?;
    let status = response.status().as_u16();
    let body = response.into_body().into_reader();
    Some((status, Box::new(std::io::BufReader::new(body))))
}

/// `method url` with `body`; `None` if nothing answered.
pub fn send(method: &str, url: &str, content_type: &str, body: &[u8]) -> Option<Response> {
    let request = ureq::http::Request::builder()
        .method(method)
        .uri(url)
        .header("content-type", content_type)
        .body(body.to_vec())
        .ok()?;
    answer(agent().run(request))
}

/// Waits until `ready` gives a value, checking every 50 ms; panics with
/// `what` after `timeout`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut ready: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = ready() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Imports and helpers every hand-written test module shares; `{abi}` is the ABI check
/// function, `{imports}` the test's own imports and `{body}` its `_start` and data.
const PRELUDE: &str = r#"
(module
  (import "redpanda_transform" "{abi}" (func $check))
  (import "redpanda_transform" "read_batch_header"
    (func $read_batch_header (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "redpanda_transform" "read_next_record"
    (func $read_next_record (param i32 i32 i32 i32 i32) (result i32)))
  (import "redpanda_transform" "write_record" (func $write_record (param i32 i32) (result i32)))
  (import "redpanda_transform" "write_record_with_options"
    (func $write_record_with_options (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "random_get" (func $random_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "clock_time_get" (func $clock_time_get (param i32 i64 i32) (result i32)))
  {imports}
  (memory (export "memory") 1)
  ;; The batch header's ten out-parameters, 8 bytes apart from 256.
  (func $next_batch (result i32)
    (call $read_batch_header (i32.const 256) (i32.const 264) (i32.const 272) (i32.const 280)
      (i32.const 288) (i32.const 296) (i32.const 304) (i32.const 312) (i32.const 320) (i32.const 328)))
  ;; Reads a record into buf; attributes, timestamp and offset land at 336, 344, 352.
  (func $read (param $buf i32) (param $len i32) (result i32)
    (call $read_next_record (i32.const 336) (i32.const 344) (i32.const 352) (local.get $buf) (local.get $len)))
  ;; Writes a record to the first output topic whose value is $code, 4 bytes
  ;; little-endian: key null (01), value length 4 (08), no headers (00).
  (func $report (param $code i32)
    (i32.store8 (i32.const 16) (i32.const 0x01))
    (i32.store8 (i32.const 17) (i32.const 0x08))
    (i32.store (i32.const 18) (local.get $code))
    (i32.store8 (i32.const 22) (i32.const 0x00))
    (if (i32.ne (call $write_record (i32.const 16) (i32.const 7)) (i32.const 7)) (then unreachable)))
  {body}
)
"#;

pub fn wat_module(abi: &str, body: &str) -> Vec<u8> {
    wat_module_with("", abi, body)
}

pub fn wat_module_with(imports: &str, abi: &str, body: &str) -> Vec<u8> {
    let text = PRELUDE
        .replace("{abi}", abi)
        .replace("{imports}", imports)
        .replace("{body}", body);
    wat_parse(&text)
}

/// A module from its text.
pub fn wat_parse(text: &str) -> Vec<u8> {
    wat::parse_str(text).unwrap_or_else(|e| panic!("not a module: {e}"))
}

/// A module that panics as a Go transform does: the message reaches
/// stderr as Go's runtime writes it, a few bytes per `fd_write` (`panic: `,
/// the message, the newline, then the goroutine's stack piece by piece),
/// and the module exits with code 2. It panics in `main` if `in_main`,
/// else on its first record.
pub fn go_panic_module(message: &str, in_main: bool) -> Vec<u8> {
    let fragments = [
        "panic: ",
        message,
        "\n",
        "\ngoroutine ",
        "1",
        " [running]:\n",
        "main.main.func1",
        "(...)\n",
        "\t/work/transform/main.go:12",
        " +0x8\n",
    ];
    let (mut data, mut writes, mut at) = (String::new(), String::new(), 2048usize);
    for fragment in fragments {
        let escaped: String = fragment.bytes().map(|b| format!("\\{b:02x}")).collect();
        data.push_str(&format!("(data (i32.const {at}) \"{escaped}\")\n"));
        writes.push_str(&format!(
            "(call $stderr (i32.const {at}) (i32.const {}))\n",
            fragment.len()
        ));
        at += fragment.len() + 16;
    }
    let before = if in_main {
        ""
    } else {
        "(drop (call $next_batch)) (drop (call $read (i32.const 1024) (i32.const 512)))"
    };
    wat_module(
        "check_abi_version_2",
        &format!(
            r#"{data}
            (func $stderr (param $at i32) (param $len i32)
              (i32.store (i32.const 4000) (local.get $at))
              (i32.store (i32.const 4004) (local.get $len))
              (drop (call $fd_write (i32.const 2) (i32.const 4000) (i32.const 1) (i32.const 4008))))
            (func (export "_start")
              {before}
              {writes}
              (call $proc_exit (i32.const 2)))"#
        ),
    )
}

/// A module that copies each record to the first output topic, as the
/// SDKs' identity transform does, running `check` before each copy: the
/// record is at 1024, its length in `$len`. `globals` come before `_start`.
pub fn copy_module(globals: &str, check: &str) -> Vec<u8> {
    wat_module(
        "check_abi_version_2",
        &format!(
            r#"{globals}
            (func (export "_start") (local $len i32)
              (loop $batches
                (drop (call $next_batch))
                (block $done
                  (loop $records
                    (local.set $len (call $read (i32.const 1024) (i32.const 60000)))
                    (br_if $done (i32.eq (local.get $len) (i32.const -1)))
                    {check}
                    (drop (call $write_record (i32.const 1024) (local.get $len)))
                    (br $records)))
                (br $batches)))"#
        ),
    )
}
