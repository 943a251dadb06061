//! The transforms a running host runs (`harness up`, `harness bridge`),
//! and the admin API over them.
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

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use admin::{
    check_environment, check_name, check_topics, ApiError, Control, DeployRequest, Deployed,
    EnvVar, MetaPatch, NewRecord, Produced, TopicInfo, TopicRecord, TransformMetadata,
};
use topic_io::{StartOffset, Transport};
use transform_host::{DeployError, Host, Logger, Transform, TransformSpec};

use crate::bridge::version::Swap;
use crate::bridge::{Bridge, BridgeOptions, BridgeProgress, Command, Deployment, TransformFailed};
use crate::engine::Engine;
use crate::status::{State, TransformState};
use crate::topic_access;
use crate::transform_logs::LogBuffer;

/// Redpanda's restart backoff.
const FIRST_DELAY: Duration = Duration::from_secs(1);
const MAX_DELAY: Duration = Duration::from_secs(30);
/// A failure this long after a start attempt starts the backoff over.
const HEALTHY: Duration = Duration::from_secs(10);

/// How long a delete or a stop waits for a transform's batch in flight.
const STOP_WAIT: Duration = Duration::from_secs(30);

pub struct HostingOptions {
    pub batch_size: usize,
    pub commit_interval: Duration,
}

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
        self.current.lock().expect("not poisoned").spec.clone()
    }

    /// Asks the thread to look at `current` again: a running bridge
    /// finishes its batch and stops; a waiting thread wakes.
    fn nudge(&self) {
        let _ = self.commands.try_send(Command::Stop);
    }
}

/// What a host keeps of a transform to run it again after a restart:
/// where it stopped is in its commits and batch log.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SavedTransform {
    pub name: String,
    pub input_topic: String,
    pub output_topics: Vec<String>,
    pub env: Vec<(String, String)>,
    pub deployment_id: u64,
    /// Where partitions with nothing committed start.
    pub start: StartOffset,
    pub paused: bool,
    /// The module, in base64.
    pub wasm: String,
}

impl SavedTransform {
    pub fn spec(&self) -> TransformSpec {
        TransformSpec {
            name: self.name.clone(),
            input_topic: self.input_topic.clone(),
            output_topics: self.output_topics.clone(),
            env: self.env.clone(),
        }
    }

    /// Its deployment, resumed: partitions go on from their commits.
    pub fn deployment(&self) -> Deployment {
        Deployment {
            id: self.deployment_id,
            start: self.start,
            fresh: false,
        }
    }

    pub fn module(&self) -> anyhow::Result<Vec<u8>> {
        use base64::Engine;
        Ok(base64::engine::general_purpose::STANDARD.decode(&self.wasm)?)
    }
}

/// Told of every change to a host's transforms: the transform as it is
/// now, or `None` once it is deleted.
pub type SaveTransform = Box<dyn Fn(&str, Option<&SavedTransform>) + Send + Sync>;

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
        *self.save.lock().expect("not poisoned") = Some(save);
    }

    /// Tells the saver how `name` is now.
    fn saved(&self, name: &str) {
        let save = self.save.lock().expect("not poisoned");
        let Some(save) = save.as_ref() else {
            return;
        };
        let current = self.find(name, |h| h.current.clone());
        let saved = current.map(|current| {
            use base64::Engine;
            let c = current.lock().expect("not poisoned");
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
        *self.progress.lock().expect("not poisoned")
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
        self.transforms.lock().expect("not poisoned").push(Hosted {
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
                let state = h.state.lock().expect("not poisoned");
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
            .expect("not poisoned")
            .iter_mut()
            .filter_map(|h| h.thread.take())
            .collect();
        for thread in threads {
            let _ = thread.join();
        }
    }

    fn find<T>(&self, name: &str, f: impl FnOnce(&Hosted) -> T) -> Option<T> {
        let transforms = self.transforms.lock().expect("not poisoned");
        transforms.iter().find(|h| h.spec().name == name).map(f)
    }

    /// Checks and compiles a module, then starts it with `spec` as a deploy
    /// would: a module that cannot start is refused.
    fn check_start(
        &self,
        wasm: &[u8],
        spec: &TransformSpec,
    ) -> Result<(Transform, Engine), ApiError> {
        let transform = self.host.load(wasm).map_err(refusal)?;
        let outputs = vec![1; spec.output_topics.len()];
        let engine = start_telling_why(&self.host, &transform, spec.clone(), outputs, &self.echo)?;
        Ok((transform, engine))
    }

    /// Would an output of a new transform feed its own input through the
    /// transforms already here?
    fn cycle(&self, input: &str, outputs: &[String]) -> bool {
        let transforms = self.transforms.lock().expect("not poisoned");
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
            state
                .lock()
                .expect("not poisoned")
                .error(format!("deploy refused: {}", e.message));
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
        let spec = current.lock().expect("not poisoned").spec.clone();
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
            let mut current = current.lock().expect("not poisoned");
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

/// A deploy refusal as Redpanda's admin API words it, with the reason.
fn refusal(e: DeployError) -> ApiError {
    match e.refusal {
        Some(refusal) => ApiError::bad_request(format!("{}: {e}", refusal.admin_message())),
        None => ApiError::bad_request(e.to_string()),
    }
}

/// Starts a VM; if it fails, the error carries the last lines it logged.
fn start_telling_why(
    host: &Host,
    transform: &Transform,
    spec: TransformSpec,
    partitions: Vec<i32>,
    echo: &Logger,
) -> Result<Engine, ApiError> {
    const KEPT: usize = 5;
    let said = Arc::new(Mutex::new(Vec::new()));
    let logger: Logger = {
        let (said, echo) = (said.clone(), echo.clone());
        Arc::new(move |event| {
            let mut said = said.lock().expect("not poisoned");
            if said.len() == KEPT {
                said.remove(0);
            }
            said.push(event.message.trim_end().to_string());
            echo(event)
        })
    };
    Engine::start(host, transform, spec, partitions, logger).map_err(|f| {
        let said = said.lock().expect("not poisoned");
        let log = if said.is_empty() {
            String::new()
        } else {
            format!(" (its log: {})", said.join(" / "))
        };
        ApiError::bad_request(format!("the transform failed at start: {f}{log}"))
    })
}

fn env_pairs(env: &[EnvVar]) -> Vec<(String, String)> {
    env.iter()
        .map(|v| (v.key.clone(), v.value.clone()))
        .collect()
}

/// The partition counts of a transform's outputs (missing ones are created
/// with the input's count, as the bridge creates them).
fn output_partitions(
    transport: &dyn Transport,
    spec: &TransformSpec,
) -> Result<Vec<i32>, ApiError> {
    let inputs = transport
        .partition_count(&spec.input_topic)
        .map_err(|e| ApiError::new(503, format!("{e:#}")))?
        .ok_or_else(|| {
            ApiError::bad_request(format!("Topic does not exists: {}", spec.input_topic))
        })?;
    spec.output_topics
        .iter()
        .map(|t| {
            transport
                .ensure_topic(t, inputs)
                .map_err(|e| ApiError::new(503, format!("{e:#}")))
        })
        .collect()
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Control for Hosting {
    fn deploy(&self, request: DeployRequest, wasm: Vec<u8>) -> Result<Deployed, ApiError> {
        check_name(&request.name)?;
        check_environment(&request.environment)?;
        let name = request.name.clone();
        if self.find(&name, |_| ()).is_some() {
            return self.redeploy(&name, request, wasm);
        }
        check_topics(&request.input_topic, &request.output_topics)?;
        if self.cycle(&request.input_topic, &request.output_topics) {
            return Err(ApiError::bad_request(
                "Invalid create transform configuration: its outputs would feed its input through other transforms",
            ));
        }
        let spec = TransformSpec {
            name: name.clone(),
            input_topic: request.input_topic.clone(),
            output_topics: request.output_topics.clone(),
            env: env_pairs(&request.environment),
        };
        output_partitions(self.transport.as_ref(), &spec)?;
        let (transform, _) = self.check_start(&wasm, &spec)?;
        let version = transform.version.clone();
        // Without an offset, Redpanda starts a new transform at the records
        // stamped from the deploy on.
        let start = request
            .offset
            .map_or(StartOffset::Timestamp(now_ms()), |o| o.start());
        let deployment = Deployment {
            id: now_ms() as u64,
            start,
            fresh: true,
        };
        self.add(transform, Arc::new(wasm), spec, deployment, false);
        Ok(Deployed { name, version })
    }

    fn list(&self) -> Vec<TransformMetadata> {
        let transforms = self.transforms.lock().expect("not poisoned");
        transforms
            .iter()
            .map(|h| h.state.lock().expect("not poisoned").metadata(&h.spec()))
            .collect()
    }

    fn delete(&self, name: &str) -> Result<(), ApiError> {
        let hosted = {
            let mut transforms = self.transforms.lock().expect("not poisoned");
            let Some(i) = transforms.iter().position(|h| h.spec().name == name) else {
                // As Redpanda: deleting what is not there succeeds (and a
                // saved transform that could not run is forgotten).
                drop(transforms);
                self.saved(name);
                return Ok(());
            };
            transforms.remove(i)
        };
        hosted.current.lock().expect("not poisoned").deleted = true;
        hosted.nudge();
        self.saved(name);
        if let Some(thread) = hosted.thread {
            let deadline = Instant::now() + STOP_WAIT;
            while !thread.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Ok(())
    }

    fn patch(&self, name: &str, patch: MetaPatch) -> Result<(), ApiError> {
        let Some((current, commands)) =
            self.find(name, |h| (h.current.clone(), h.commands.clone()))
        else {
            return Err(ApiError::bad_request("Transform does not exist"));
        };
        if let Some(env) = &patch.env {
            check_environment(env)?;
            // A new environment restarts the transform, as in Redpanda; one
            // it cannot start with is refused and the old one kept.
            let (transform, spec) = {
                let current = current.lock().expect("not poisoned");
                let spec = TransformSpec {
                    env: env_pairs(env),
                    ..current.spec.clone()
                };
                (current.transform.clone(), spec)
            };
            let partitions = output_partitions(self.transport.as_ref(), &spec)?;
            start_telling_why(&self.host, &transform, spec.clone(), partitions, &self.echo)?;
            current.lock().expect("not poisoned").spec = spec;
        }
        if let Some(paused) = patch.is_paused {
            current.lock().expect("not poisoned").paused = paused;
        }
        let _ = commands.try_send(Command::Stop);
        self.saved(name);
        Ok(())
    }

    fn topic(&self, name: &str) -> Result<Option<TopicInfo>, ApiError> {
        topic_access::topic(self.transport.as_ref(), name)
    }

    fn topics(&self) -> Result<Vec<TopicInfo>, ApiError> {
        topic_access::topics(self.transport.as_ref())
    }

    fn produce(&self, topic: &str, records: Vec<NewRecord>) -> Result<Vec<Produced>, ApiError> {
        topic_access::produce(self.transport.as_ref(), topic, records)
    }

    fn read(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        max: usize,
    ) -> Result<Vec<TopicRecord>, ApiError> {
        topic_access::read(self.transport.as_ref(), topic, partition, offset, max)
    }
}

/// One transform's thread.
struct Supervisor {
    host: Host,
    transport: Arc<dyn Transport>,
    options: Arc<HostingOptions>,
    logger: Logger,
    current: Arc<Mutex<Current>>,
    state: Arc<Mutex<TransformState>>,
    stop: Arc<AtomicBool>,
    progress: Arc<Mutex<BridgeProgress>>,
}

impl Supervisor {
    fn run(self, commands: &Receiver<Command>) {
        let mut delay = FIRST_DELAY;
        loop {
            let (transform, spec, paused, deleted, deployment) = {
                let c = self.current.lock().expect("not poisoned");
                (
                    c.transform.clone(),
                    c.spec.clone(),
                    c.paused,
                    c.deleted,
                    c.deployment,
                )
            };
            if deleted || self.stop.load(Ordering::Relaxed) {
                return;
            }
            let partitions = self.state.lock().expect("not poisoned").partitions.len();
            if paused {
                let mut state = self.state.lock().expect("not poisoned");
                state.paused = true;
                state.set_all(partitions, State::Inactive);
                drop(state);
                self.wait(commands, None);
                continue;
            }
            {
                let mut state = self.state.lock().expect("not poisoned");
                state.paused = false;
                state.set_all(partitions, State::Inactive);
            }
            let attempt = Instant::now();
            let failure = match self.run_once(&transform, spec.clone(), deployment, commands) {
                Ok(()) => continue,
                // Stopping cuts a batch short: that is the stop, not a failure.
                Err(_) if self.stop.load(Ordering::Relaxed) => return,
                Err(e) => e,
            };
            // Only a first start may start fresh: a restart resumes.
            self.current.lock().expect("not poisoned").deployment.fresh = false;
            if attempt.elapsed() >= HEALTHY {
                delay = FIRST_DELAY;
            }
            let failed = failure
                .chain()
                .find_map(|c| c.downcast_ref::<TransformFailed>())
                .map(|f| f.partition);
            let message = format!(
                "{}: {failure:#}; retrying in {} s",
                spec.name,
                delay.as_secs()
            );
            tracing::warn!("{message}");
            {
                let mut state = self.state.lock().expect("not poisoned");
                state.error(message);
                let count = state.partitions.len();
                state.set_all(count, State::Inactive);
                match failed {
                    Some(p) => {
                        if let Some(partition) = state.partitions.get_mut(p as usize) {
                            partition.state = State::Errored;
                        }
                    }
                    None => state.set_all(count, State::Errored),
                }
            }
            self.wait(commands, Some(delay));
            delay = (delay * 2).min(MAX_DELAY);
        }
    }

    /// Starts a bridge and runs it until it stops: `Ok` when asked to (or
    /// the host stops), `Err` when it fails.
    fn run_once(
        &self,
        transform: &Transform,
        spec: TransformSpec,
        deployment: Deployment,
        commands: &Receiver<Command>,
    ) -> anyhow::Result<()> {
        let options = BridgeOptions {
            batch_size: self.options.batch_size,
            commit_interval: self.options.commit_interval,
            deployment,
        };
        let mut bridge = Bridge::start(
            &self.host,
            transform,
            spec,
            self.transport.as_ref(),
            options,
            self.logger.clone(),
            self.state.clone(),
        )?;
        self.current.lock().expect("not poisoned").deployment.fresh = false;
        let mut last = BridgeProgress::default();
        let result = bridge.run(
            &self.stop,
            Some(commands),
            Duration::from_millis(200),
            &mut |p| {
                self.add_progress(&mut last, p);
            },
        );
        self.add_progress(&mut last, &bridge.progress);
        result.map(|_| ())
    }

    /// Adds what a bridge did since `last` to the host's counters.
    fn add_progress(&self, last: &mut BridgeProgress, now: &BridgeProgress) {
        let mut total = self.progress.lock().expect("not poisoned");
        total.records_in += now.records_in - last.records_in;
        total.records_out += now.records_out - last.records_out;
        total.batches += now.batches - last.batches;
        total.transform_bytes = now.transform_bytes;
        *last = *now;
    }

    /// Waits for a command (any command means: look again), the host's
    /// stop, or `timeout`.
    fn wait(&self, commands: &Receiver<Command>, timeout: Option<Duration>) {
        let deadline = timeout.map(|t| Instant::now() + t);
        while !self.stop.load(Ordering::Relaxed) {
            let slice = match deadline {
                Some(d) if Instant::now() >= d => return,
                Some(d) => (d - Instant::now()).min(Duration::from_millis(100)),
                None => Duration::from_millis(100),
            };
            match commands.recv_timeout(slice) {
                // A new version was set in `current` before it was sent.
                Ok(Command::Swap(swap)) => {
                    let _ = swap.done.send(());
                    return;
                }
                Ok(Command::Stop) => return,
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
    }
}
