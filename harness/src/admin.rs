//! The admin endpoint of a running host (`--admin-listen`, 127.0.0.1:9644 by
//! default, like Redpanda's admin API): lists the hosted transform and
//! swaps in a new version without stopping anything.
//!
//! `GET /v1/transform` lists; `POST /v1/transform/deploy?name=N&var=K=V…`
//! with the module as the body deploys. The new module is validated and
//! instantiated here, beside the running one; only a VM that started is
//! handed to the bridge, which switches to it between two batches. A module
//! that is refused, or fails at start, leaves the old version running, and
//! the caller gets the reason.

use std::net::SocketAddr;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use transform_host::{Host, LogEvent, Logger, TransformSpec};
use warp::http::StatusCode;
use warp::{Filter, Reply};

use crate::runtime::Runtime;

/// The default admin address, Redpanda's admin port.
pub const DEFAULT_ADMIN: &str = "127.0.0.1:9644";

/// What `harness list` shows of a hosted transform.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct TransformStatus {
    pub name: String,
    pub input_topic: String,
    pub output_topics: Vec<String>,
    pub version: String,
    pub status: String,
    pub records_in: u64,
    pub records_out: u64,
    /// Input records not yet processed, when the transport can tell.
    pub lag: Option<i64>,
    pub deploys: u64,
    /// How the latest swaps went, newest last.
    pub swaps: Vec<SwapTiming>,
    /// The latest refusals and failures, newest last.
    pub errors: Vec<String>,
}

/// How one swap went.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
pub struct SwapTiming {
    /// From the deploy request to the switch: validating, compiling and
    /// starting the new version beside the old one, which keeps processing.
    pub request_ms: f64,
    /// Processing stopped for the switch itself, between two batches.
    pub pause_ms: f64,
    /// The median time per record of the batches just before the swap.
    pub before_us_per_record: Option<f64>,
    /// The new version's first batch: a fresh VM's warm-up shows here.
    pub first_batch_us_per_record: Option<f64>,
    pub first_batch_records: u64,
}

impl TransformStatus {
    pub fn error(&mut self, error: String) {
        keep_last(&mut self.errors, 10, error);
    }

    pub fn swapped(&mut self, timing: SwapTiming) {
        keep_last(&mut self.swaps, 1000, timing);
    }
}

fn keep_last<T>(list: &mut Vec<T>, kept: usize, item: T) {
    if list.len() == kept {
        list.remove(0);
    }
    list.push(item);
}

/// A started VM of a new version, for the bridge to switch to.
pub struct Swap {
    pub runtime: Runtime,
    pub version: String,
    /// When the request arrived, for the pause figure.
    pub requested: Instant,
    pub done: SyncSender<()>,
}

/// The admin side of a running bridge.
#[derive(Clone)]
pub struct Admin {
    host: Host,
    logger: Logger,
    spec: TransformSpec,
    output_partitions: Vec<i32>,
    pub status: Arc<Mutex<TransformStatus>>,
    swaps: SyncSender<Swap>,
}

impl Admin {
    pub fn new(
        host: Host,
        logger: Logger,
        spec: TransformSpec,
        output_partitions: Vec<i32>,
        status: Arc<Mutex<TransformStatus>>,
    ) -> (Admin, Receiver<Swap>) {
        let (swaps, receiver) = sync_channel(1);
        let admin = Admin {
            host,
            logger,
            spec,
            output_partitions,
            status,
            swaps,
        };
        (admin, receiver)
    }

    /// Validates and starts `module` with the environment `env` (replacing
    /// the old one as a whole), then waits until the bridge runs it.
    /// Returns the new version.
    pub fn deploy(&self, name: &str, module: &[u8], env: Vec<(String, String)>) -> Result<String> {
        let requested = Instant::now();
        if name != self.spec.name {
            bail!(
                "no transform named {name} runs here (this host runs {})",
                self.spec.name
            );
        }
        if let Some((k, _)) = env.iter().find(|(k, _)| k.starts_with("REDPANDA_")) {
            bail!("variable {k}: variables starting with REDPANDA_ are reserved");
        }
        let transform = self
            .host
            .load(module)
            .context("the new version cannot run; the old one keeps running")?;
        let spec = TransformSpec {
            env,
            ..self.spec.clone()
        };
        let (logger, said) = self.logger_telling_start();
        let started = Runtime::start(
            &self.host,
            &transform,
            spec,
            self.output_partitions.clone(),
            logger,
        );
        let said = said
            .lock()
            .expect("not poisoned")
            .take()
            .unwrap_or_default();
        let runtime = started.map_err(|f| {
            let log = if said.is_empty() {
                String::new()
            } else {
                format!(" (its log: {})", said.join(" / "))
            };
            anyhow::anyhow!("the new version failed at start: {f}{log}; the old one keeps running")
        })?;
        let version = transform.version.clone();
        let (done, switched) = sync_channel(1);
        self.swaps
            .send(Swap {
                runtime,
                version: version.clone(),
                requested,
                done,
            })
            .map_err(|_| anyhow::anyhow!("the host is stopping"))?;
        switched
            .recv_timeout(Duration::from_secs(60))
            .context("the host did not switch to the new version")?;
        Ok(version)
    }

    /// The host's logger, also keeping the last lines the guest writes
    /// until the returned buffer is taken: a transform that fails at start
    /// usually says why there.
    fn logger_telling_start(&self) -> (Logger, Arc<Mutex<Option<Vec<String>>>>) {
        const KEPT: usize = 5;
        let said = Arc::new(Mutex::new(Some(Vec::new())));
        let inner = self.logger.clone();
        let kept = said.clone();
        let logger: Logger = Arc::new(move |event: LogEvent<'_>| {
            if let Some(lines) = kept.lock().expect("not poisoned").as_mut() {
                keep_last(lines, KEPT, event.message.trim_end().to_string());
            }
            inner(event)
        });
        (logger, said)
    }

    fn list(&self) -> Vec<TransformStatus> {
        vec![self.status.lock().expect("not poisoned").clone()]
    }
}

#[derive(Serialize)]
struct Deployed {
    name: String,
    version: String,
}

#[derive(Serialize)]
struct Refused {
    message: String,
}

/// The admin API's routes.
pub fn routes(
    admin: Admin,
) -> impl Filter<Extract = (warp::reply::Response,), Error = warp::Rejection> + Clone {
    let with_admin = warp::any().map(move || admin.clone());
    let list = warp::path!("v1" / "transform")
        .and(warp::get())
        .and(with_admin.clone())
        .map(|admin: Admin| warp::reply::json(&admin.list()).into_response());
    let deploy = warp::path!("v1" / "transform" / "deploy")
        .and(warp::post())
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(warp::body::content_length_limit(16 << 20))
        .and(warp::body::bytes())
        .and(with_admin)
        .then(
            |query: String, body: bytes::Bytes, admin: Admin| async move {
                let answer =
                    tokio::task::spawn_blocking(move || deploy(&admin, &query, &body)).await;
                match answer {
                    Ok(Ok(deployed)) => warp::reply::json(&deployed).into_response(),
                    Ok(Err(e)) => refused(StatusCode::UNPROCESSABLE_ENTITY, format!("{e:#}")),
                    Err(e) => refused(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
                }
            },
        );
    list.or(deploy).unify()
}

fn refused(status: StatusCode, message: String) -> warp::reply::Response {
    warp::reply::with_status(warp::reply::json(&Refused { message }), status).into_response()
}

fn deploy(admin: &Admin, query: &str, module: &[u8]) -> Result<Deployed> {
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(query).context("the query string")?;
    let mut name = None;
    let mut env = Vec::new();
    for (k, v) in pairs {
        match k.as_str() {
            "name" => name = Some(v),
            "var" => match v.split_once('=') {
                Some((k, v)) if !k.is_empty() => env.push((k.to_string(), v.to_string())),
                _ => bail!("var `{v}` is not KEY=VALUE"),
            },
            other => bail!("unknown parameter {other}"),
        }
    }
    let name = name.context("say which transform: name=N")?;
    let result = admin.deploy(&name, module, env);
    let mut status = admin.status.lock().expect("not poisoned");
    match result {
        Ok(version) => Ok(Deployed { name, version }),
        Err(e) => {
            status.error(format!("deploy refused: {e:#}"));
            Err(e)
        }
    }
}

/// Serves the admin API on `listen` until `stop` completes; fails at once
/// when the address cannot be bound.
pub fn serve(
    runtime: &tokio::runtime::Runtime,
    listen: SocketAddr,
    admin: Admin,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(listen))
        .with_context(|| {
            format!("the admin endpoint cannot listen on {listen} (another host running? pass --admin-listen with a free port, or 127.0.0.1:0)")
        })?;
    let address = listener.local_addr()?;
    let server = warp::serve(routes(admin))
        .incoming(listener)
        .graceful(stop)
        .run();
    Ok((address, runtime.spawn(server)))
}

/// One request to an admin endpoint (plain HTTP/1.0 on loopback): the
/// status code and the body.
pub fn request(admin: &str, method: &str, path: &str, body: &[u8]) -> Result<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(admin).with_context(|| {
        format!("no harness admin endpoint at {admin}: is `harness up` or `harness bridge` running (see its --admin-listen)?")
    })?;
    stream.set_read_timeout(Some(Duration::from_secs(120)))?;
    write!(
        stream,
        "{method} {path} HTTP/1.0\r\nHost: {admin}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )?;
    stream.write_all(body)?;
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .with_context(|| format!("reading the answer of {admin}"))?;
    let response = String::from_utf8_lossy(&response);
    let (head, body) = response
        .split_once("\r\n\r\n")
        .with_context(|| format!("{admin} did not answer in HTTP"))?;
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .with_context(|| format!("{admin} answered without a status"))?;
    Ok((code, body.to_string()))
}

/// `harness deploy`: the new version, or why the host refused it.
pub fn deploy_to(
    admin: &str,
    name: &str,
    module: &[u8],
    vars: &[(String, String)],
) -> Result<String> {
    let mut query = vec![("name", name.to_string())];
    query.extend(vars.iter().map(|(k, v)| ("var", format!("{k}={v}"))));
    let query = serde_urlencoded::to_string(&query)?;
    let (code, body) = request(
        admin,
        "POST",
        &format!("/v1/transform/deploy?{query}"),
        module,
    )?;
    if code == 200 {
        let v: serde_json::Value = serde_json::from_str(&body)?;
        return Ok(v["version"].as_str().unwrap_or_default().to_string());
    }
    let reason = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["message"].as_str().map(String::from))
        .unwrap_or(body);
    bail!("{admin} refused the deploy ({code}): {reason}")
}

/// `harness list`: the transforms a host runs.
pub fn list_from(admin: &str) -> Result<Vec<TransformStatus>> {
    let (code, body) = request(admin, "GET", "/v1/transform", &[])?;
    if code != 200 {
        bail!("{admin} answered {code}: {body}");
    }
    serde_json::from_str(&body).with_context(|| format!("{admin} did not answer with a list"))
}
