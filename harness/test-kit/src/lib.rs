//! What the workspace's integration tests share: a free port, plain HTTP
//! requests to the servers under test (and streams held open), and waiting
//! for a condition.

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
    let body = response.body_mut().read_to_string().ok()?;
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
