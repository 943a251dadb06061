//! The transforms a running host runs (`harness up`, `harness bridge`),
//! and the admin API over them ([`control`]).
//!
//! Each transform runs in a thread of its own, as Redpanda runs a
//! processor: a bridge over the host's transport, restarted after any
//! failure — a trap, fuel or memory exhausted, `proc_exit`, a broker
//! error — from the last committed position, with Redpanda's backoff (1 s,
//! doubling to 30 s, reset once a start has lasted 10 s;
//! `src/v/transform/transform_manager.cc`). The failing partition shows
//! `errored` meanwhile, and other transforms run on. A deploy of a fixed
//! version ends the wait.
//!
//! Where the harness does better than Redpanda: a new version is checked
//! and started beside the running one before it replaces it, so a version
//! that cannot start is refused and the old one keeps running.

mod control;
mod saved;
mod supervisor;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use admin::{ApiError, DeployRequest, Deployed};
use parking_lot::Mutex;
use topic_io::Transport;
use transform_host::{Host, Logger, Transform, TransformSpec};

use crate::bridge::version::Swap;
use crate::bridge::{BridgeProgress, Command, Deployment};
use crate::status::{State, TransformState};
use crate::transform_logs::LogBuffer;
use control::{env_pairs, output_partitions, refusal, start_telling_why};
pub use saved::{SaveTransform, SavedTransform};
use supervisor::Supervisor;

/// How long a delete or a stop waits for a transform's batch in flight.
const STOP_WAIT: Duration = Duration::from_secs(30);

pub struct HostingOptions {
    pub batch_size: usize,
    pub commit_interval: Duration,
    /// Redpanda's `data_transforms_per_core_memory_reservation`: the host
    /// takes this over the memory limit transforms.
    pub memory_reservation: usize,
}

/// Redpanda's default reservation.
pub const DEFAULT_MEMORY_RESERVATION: usize = 20 << 20;

/// What a transform's thread runs, and what it is asked to do: updated by
/// the admin API, read at every (re)start.
struct Current {
    transform: Transform,
    /// The module's bytes, kept for a host that saves its transforms.
    wasm: Arc<Vec<u8>>,
    spec: TransformSpec,
    paused: bool,
    deleted: bool,
    deployment: Deployment,
}

struct Hosted {
    current: Arc<Mutex<Current>>,
    state: Arc<Mutex<TransformState>>,
    commands: SyncSender<Command>,
    thread: Option<JoinHandle<()>>,
}

impl Hosted {
    fn spec(&self) -> TransformSpec {
        self.current.lock().spec.clone()
    }

    /// Asks the thread to look at `current` again: a running bridge
    /// finishes its batch and stops; a waiting thread wakes.
    fn nudge(&self) {
        let _ = self.commands.try_send(Command::Stop);
    }
}

/// The transforms of one host.
pub struct Hosting {
    host: Host,
    transport: Arc<dyn Transport>,
    options: Arc<HostingOptions>,
    logs: LogBuffer,
    echo: Logger,
    stop: Arc<AtomicBool>,
    transforms: Mutex<Vec<Hosted>>,
    progress: Arc<Mutex<BridgeProgress>>,
    save: Mutex<Option<SaveTransform>>,
}

impl Hosting {
    /// `echo` shows log events where the host's user sees them; every
    /// event also goes to `_redpanda.transform_logs` (see [`Hosting::flush_logs`]).
    pub fn new(
        host: Host,
        transport: Arc<dyn Transport>,
        options: HostingOptions,
        echo: Logger,
        stop: Arc<AtomicBool>,
    ) -> Hosting {
        Hosting {
            host,
            transport,
            options: Arc::new(options),
            logs: LogBuffer::default(),
            echo,
            stop,
            transforms: Mutex::new(Vec::new()),
            progress: Arc::default(),
            save: Mutex::new(None),
        }
    }

    /// Has `save` told of every change to the transforms from now on.
    pub fn save_with(&self, save: SaveTransform) {
        *self.save.lock() = Some(save);
    }

    /// Tells the saver how `name` is now.
    fn saved(&self, name: &str) {
        let save = self.save.lock();
        let Some(save) = save.as_ref() else {
            return;
        };
        let current = self.find(name, |h| h.current.clone());
        let saved = current.map(|current| {
            use base64::Engine;
            let c = current.lock();
            SavedTransform {
                name: c.spec.name.clone(),
                input_topic: c.spec.input_topic.clone(),
                output_topics: c.spec.output_topics.clone(),
                env: c.spec.env.clone(),
                deployment_id: c.deployment.id,
                start: c.deployment.start,
                paused: c.paused,
                wasm: base64::engine::general_purpose::STANDARD.encode(c.wasm.as_slice()),
            }
        });
        save(name, saved.as_ref());
    }

    pub fn host(&self) -> &Host {
        &self.host
    }

    pub fn transport(&self) -> &Arc<dyn Transport> {
        &self.transport
    }

    /// The counters of every transform's runs, summed since the start.
    pub fn progress(&self) -> BridgeProgress {
        *self.progress.lock()
    }

    /// The version of the transform `name` that runs now.
    pub fn version(&self, name: &str) -> Option<String> {
        self.find(name, |h| h.state.lock().version.clone())
    }

    /// Starts hosting a transform.
    pub fn add(
        &self,
        transform: Transform,
        wasm: Arc<Vec<u8>>,
        spec: TransformSpec,
        deployment: Deployment,
        paused: bool,
    ) {
        let name = spec.name.clone();
        let state = Arc::new(Mutex::new(TransformState {
            version: transform.version.clone(),
            ..TransformState::default()
        }));
        let current = Arc::new(Mutex::new(Current {
            transform,
            wasm,
            spec,
            paused,
            deleted: false,
            deployment,
        }));
        let (commands, received) = sync_channel(4);
        let thread = {
            let supervisor = Supervisor {
                host: self.host.clone(),
                transport: self.transport.clone(),
                options: self.options.clone(),
                logger: self.logs.logger(self.echo.clone()),
                current: current.clone(),
                state: state.clone(),
                stop: self.stop.clone(),
                progress: self.progress.clone(),
            };
            std::thread::spawn(move || supervisor.run(&received))
        };
        self.transforms.lock().push(Hosted {
            current,
            state,
            commands,
            thread: Some(thread),
        });
        self.saved(&name);
    }

    /// Waits until `name` runs (or has failed, or `timeout` passed): a host
    /// announces itself once its transforms process records.
    pub fn wait_started(&self, name: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline && !self.stop.load(Ordering::Relaxed) {
            let started = self.find(name, |h| {
                let state = h.state.lock();
                !state.errors.is_empty()
                    || (!state.partitions.is_empty()
                        && state.partitions.iter().all(|p| p.state == State::Running))
            });
            if started != Some(false) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Writes buffered log events to `_redpanda.transform_logs`, every
    /// 500 ms until the host stops (Redpanda's flush interval).
    pub fn flush_logs(&self) {
        let mut writer = None;
        loop {
            let stopping = self.stop.load(Ordering::Relaxed);
            let flushed = (|| {
                let writer = match &mut writer {
                    Some(w) => w,
                    None => writer.insert(self.transport.sink()?),
                };
                self.logs.flush(self.transport.as_ref(), writer.as_mut())
            })();
            if let Err(e) = flushed {
                tracing::warn!("writing transform logs: {e:#}");
                writer = None;
            }
            if stopping {
                return;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Waits for every transform's thread once the host stops.
    pub fn join(&self) {
        let threads: Vec<JoinHandle<()>> = self
            .transforms
            .lock()
            .iter_mut()
            .filter_map(|h| h.thread.take())
            .collect();
        for thread in threads {
            let _ = thread.join();
        }
    }

    fn find<T>(&self, name: &str, f: impl FnOnce(&Hosted) -> T) -> Option<T> {
        let transforms = self.transforms.lock();
        transforms.iter().find(|h| h.spec().name == name).map(f)
    }

    /// Would an output of a new transform feed its own input through the
    /// transforms already here?
    fn cycle(&self, input: &str, outputs: &[String]) -> bool {
        let transforms = self.transforms.lock();
        let edges: Vec<TransformSpec> = transforms.iter().map(Hosted::spec).collect();
        let mut frontier: Vec<String> = outputs.to_vec();
        let mut seen = 0;
        while let Some(topic) = frontier.pop() {
            if topic == input {
                return true;
            }
            seen += 1;
            if seen > 10_000 {
                return true;
            }
            for spec in edges.iter().filter(|s| s.input_topic == topic) {
                frontier.extend(spec.output_topics.iter().cloned());
            }
        }
        false
    }

    /// A new version of a running transform; a refusal is kept in its
    /// errors, for `list`.
    fn redeploy(
        &self,
        name: &str,
        request: DeployRequest,
        wasm: Vec<u8>,
    ) -> Result<Deployed, ApiError> {
        let Some(state) = self.find(name, |h| h.state.clone()) else {
            return Err(ApiError::bad_request("Transform does not exist"));
        };
        self.swap_in(name, request, wasm).inspect_err(|e| {
            state.lock().error(format!("deploy refused: {}", e.message));
        })
    }

    fn swap_in(
        &self,
        name: &str,
        request: DeployRequest,
        wasm: Vec<u8>,
    ) -> Result<Deployed, ApiError> {
        let requested = Instant::now();
        let Some((current, commands)) =
            self.find(name, |h| (h.current.clone(), h.commands.clone()))
        else {
            return Err(ApiError::bad_request("Transform does not exist"));
        };
        let spec = current.lock().spec.clone();
        if spec.input_topic != request.input_topic || spec.output_topics != request.output_topics {
            return Err(ApiError::bad_request(format!(
                "Invalid update to transform, topic configuration cannot change: {name} reads {} and writes {}",
                spec.input_topic,
                spec.output_topics.join(", ")
            )));
        }
        let spec = TransformSpec {
            env: env_pairs(&request.environment),
            ..spec
        };
        let partitions = output_partitions(self.transport.as_ref(), &spec)?;
        let keeps_running = |e: ApiError| {
            ApiError::new(
                e.status,
                format!("{}; the old one keeps running", e.message),
            )
        };
        let transform = self
            .host
            .load(&wasm)
            .map_err(refusal)
            .map_err(keeps_running)?;
        let engine =
            start_telling_why(&self.host, &transform, spec.clone(), partitions, &self.echo)
                .map_err(keeps_running)?;
        let version = transform.version.clone();
        let paused = {
            let mut current = current.lock();
            current.transform = transform;
            current.wasm = Arc::new(wasm);
            current.spec = spec;
            current.paused
        };
        self.saved(name);
        let (done, switched) = sync_channel(1);
        let swap = Swap {
            engine,
            version: version.clone(),
            requested,
            done,
        };
        commands
            .send(Command::Swap(Box::new(swap)))
            .map_err(|_| ApiError::new(503, "the host is stopping"))?;
        // A paused transform takes the version when it resumes.
        if !paused && switched.recv_timeout(Duration::from_secs(60)).is_err() {
            tracing::warn!("{name}: the switch to {version} is still pending");
        }
        Ok(Deployed {
            name: name.to_string(),
            version,
        })
    }
}
