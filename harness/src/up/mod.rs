//! `harness up`: the whole pipeline in one process. The generator writes to
//! the embedded topics, the host runs the transform over them exactly as it
//! runs one over a broker (more can be deployed through the admin API), and
//! the dashboard reads `results` from them. Each part is the same code as in
//! broker mode, given the embedded transport.
//!
//! The topics are kept in a data folder by default: started again on it,
//! each transform goes on from its committed position, the dashboard reads
//! the history back, and the generator goes on with its stream where it
//! stopped (see [`resume`]). With `--brokers` the same parts run on a
//! Kafka-protocol broker's topics instead, given the broker transport.

mod resume;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use admin::{Control, StartOffset};
use anyhow::{anyhow, Context, Result};
use dashboard::service::{self, until_set, Settings};
use dashboard::source::{KafkaSource, Source};
use generator::kafka::KafkaSink;
use generator::{generate, Progress, Sink, Stream, StreamArgs, Truth};
use http_access::{Access, Listen};
use kafka_client::KafkaConfig;
use registry::SchemaRegistry;
use transform_host::{Host, Logger, Transform, TransformSpec};

use crate::bridge::{BridgeProgress, Deployment};
use crate::hosting::{Hosting, HostingOptions, SavedTransform};
use crate::runtime::Runtime;
use crate::transport::embedded::{TopicSink, TopicSource};
use crate::transport::{KafkaTransport, Topics, Transport};
use topics::{Closed, DataFolder, Retention};

/// Up's dashboard at `address`, as errors and refusals name it.
pub fn dashboard_listen(address: SocketAddr) -> Listen<'static> {
    Listen::new("the dashboard", "--bind/--port", address)
}

pub struct UpOptions {
    /// The command line's module, as deployed.
    pub module: Arc<Vec<u8>>,
    pub stream: StreamArgs,
    pub partitions: i32,
    pub listen: SocketAddr,
    pub admin_listen: SocketAddr,
    /// Who may call the dashboard, the admin endpoint and the registry.
    pub access: Access,
    pub batch_size: usize,
    pub storage: Storage,
    pub retention: Retention,
    /// Where the generator's exact totals go once it is done.
    pub truth: Option<PathBuf>,
    pub schema_registry: RegistryChoice,
    /// The dashboard's alert rules, and where their changes are posted.
    pub thresholds: dashboard::pacing::Thresholds,
    pub alert_webhook: Option<String>,
}

/// Where `up` keeps its topics.
pub enum Storage {
    /// In this process's memory: gone when it ends.
    Memory,
    /// In this data folder: a restart goes on where the last run stopped.
    Folder(PathBuf),
    /// On a Kafka-protocol broker, which keeps them.
    Brokers(KafkaConfig),
}

impl std::fmt::Display for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Storage::Memory => write!(f, "in memory"),
            Storage::Folder(dir) => write!(f, "on disk in {}", dir.display()),
            Storage::Brokers(kafka) => write!(f, "on the broker {}", kafka.brokers()),
        }
    }
}

impl Storage {
    /// Where the topics are, and what else to do when they do not fit.
    fn named(&self) -> (String, &'static str) {
        match self {
            Storage::Memory => ("memory".into(), "start again"),
            Storage::Folder(path) => (
                format!("the data folder {}", path.display()),
                "start over with --fresh, or give another --data-dir",
            ),
            Storage::Brokers(kafka) => (
                format!("the broker {}", kafka.brokers()),
                "delete the topic (rpk topic delete), or use another broker",
            ),
        }
    }
}

/// The topics `up` runs on: the embedded ones, or a broker's.
enum Place {
    Embedded(Topics),
    Broker(Arc<KafkaTransport>),
}

impl Place {
    fn transport(&self) -> Arc<dyn Transport> {
        match self {
            Place::Embedded(topics) => Arc::new(topics.clone()),
            Place::Broker(broker) => broker.clone(),
        }
    }

    /// The generator's sink into `topic`, numbering events from `next`.
    fn sink(&self, topic: String, next: u64) -> Result<Box<dyn Sink + Send>> {
        Ok(match self {
            Place::Embedded(topics) => Box::new(TopicSink::new(topics.clone(), topic, next)),
            Place::Broker(broker) => Box::new(KafkaSink::new(&broker.kafka, &topic)?),
        })
    }

    /// The dashboard's source: `topic`, and `dlq_topic` beside it.
    fn source(&self, topic: String, dlq_topic: Option<String>) -> Box<dyn Source> {
        match self {
            Place::Embedded(topics) => Box::new(TopicSource {
                topics: topics.clone(),
                topic,
                dlq_topic,
            }),
            Place::Broker(broker) => Box::new(KafkaSource {
                kafka: broker.kafka.clone(),
                topic,
                dlq_topic,
            }),
        }
    }

    fn embedded(&self) -> Option<&Topics> {
        match self {
            Place::Embedded(topics) => Some(topics),
            Place::Broker(_) => None,
        }
    }
}

/// The registry behind the transforms' Schema Registry module.
pub enum RegistryChoice {
    /// One of `up`'s own, served here, as Redpanda serves its own.
    Serve(SocketAddr),
    /// Any Confluent-compatible registry.
    Use(Arc<registry::Client>),
}

/// Where `up` serves what it serves.
pub struct Endpoints {
    pub dashboard: SocketAddr,
    pub admin: SocketAddr,
    /// The schema registry `up` serves, if it serves one.
    pub schema_registry: Option<SocketAddr>,
}

/// What a status line shows.
pub struct Status {
    pub generated: u64,
    pub generating: bool,
    pub bridge: BridgeProgress,
    pub windows: usize,
    /// The records of the panes the dashboard has read, once each.
    pub dashboard_records: u64,
    /// The newest event time on the dashboard.
    pub newest_event_ms: i64,
    pub dead_letters: u64,
    /// What the embedded topics hold in memory: records and their
    /// bookkeeping.
    pub topic_bytes: Option<usize>,
    /// What the topics take on disk, when they are kept there.
    pub disk_bytes: Option<u64>,
    /// Why writes to the topics wait, while they do.
    pub trouble: Option<String>,
}

/// The progress line.
impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:>10} events generated · {:>10} transformed in {:>8} batches · {:>8} outputs · {:>6} windows on the dashboard · {} dead letters",
            self.generated,
            self.bridge.records_in,
            self.bridge.batches,
            self.bridge.records_out,
            self.windows,
            self.dead_letters,
        )?;
        if let Some(bytes) = self.topic_bytes {
            write!(f, " · topics {} MiB in memory", bytes >> 20)?;
        }
        if let Some(disk) = self.disk_bytes {
            write!(f, ", {} MiB on disk", disk >> 20)?;
        }
        write!(f, ", transform {} KiB", self.bridge.transform_bytes >> 10)?;
        if let Some(why) = &self.trouble {
            write!(f, " · WAITING: {why}")?;
        }
        Ok(())
    }
}

/// Runs until `stop` is set. `ready` is told where the servers listen once
/// everything runs; `status` is called about every `every`.
#[allow(clippy::too_many_arguments)]
pub fn up(
    host: &Host,
    transform: &Transform,
    spec: TransformSpec,
    options: UpOptions,
    logger: Logger,
    stop: Arc<AtomicBool>,
    every: Duration,
    ready: &mut dyn FnMut(&Endpoints),
    status: &mut dyn FnMut(&Status),
) -> Result<()> {
    let profile = options.stream.profile()?;
    let mut plan = options.stream.plan(options.partitions)?;
    let stream = Stream::new(
        profile.clone(),
        options.stream.seed,
        options.stream.clock()?,
    );
    let config = analytics::Config::from_vars(spec.env.clone())
        .map_err(|e| anyhow!("the transform's environment: {e}"))?;
    let results = spec
        .output_topics
        .first()
        .cloned()
        .context("the transform has no output topic")?;

    let place = match &options.storage {
        Storage::Memory => Place::Embedded(Topics::in_memory(options.retention.memory_bytes)),
        Storage::Folder(path) => Place::Embedded(Topics::open(
            DataFolder::open(path)?,
            options.retention.clone(),
        )?),
        Storage::Brokers(kafka) => Place::Broker(Arc::new(KafkaTransport {
            kafka: kafka.clone(),
        })),
    };
    let transport = place.transport();
    let names: Vec<&str> = std::iter::once(&spec.input_topic)
        .chain(&spec.output_topics)
        .map(String::as_str)
        .collect();
    let (there, otherwise) = options.storage.named();
    resume::ensure_topics(
        transport.as_ref(),
        &names,
        options.partitions,
        (&there, otherwise),
    )?;
    // A broker keeps no note of the generator's stream: it starts anew.
    let (already_sent, note) = match place.embedded() {
        Some(topics) => {
            resume::generator_start(topics, &spec.input_topic, &options.stream.identity())?
        }
        None => (0, None),
    };
    if let Some(note) = note {
        tracing::info!("{note}");
    }
    plan.count = plan.count.map(|n| n.saturating_sub(already_sent));
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let (schemas, registry): (Arc<dyn SchemaRegistry>, _) = match options.schema_registry {
        RegistryChoice::Use(client) => (client, None),
        RegistryChoice::Serve(listen) => {
            let local = Arc::new(match place.embedded() {
                Some(topics) => resume::registry(topics)?,
                None => registry::LocalRegistry::new(),
            });
            let served = registry::serve(
                &runtime,
                listen,
                &options.access,
                local.clone(),
                until_set(stop.clone()),
            )?;
            (local, Some(served))
        }
    };
    let mut stream =
        stream.with_format(options.stream.format(&spec.input_topic, schemas.as_ref())?);
    let host = &host.clone().with_schema_registry(schemas);
    // A transform that cannot start stops `up` at once, with the reason.
    let outputs = vec![options.partitions; spec.output_topics.len()];
    Runtime::start(host, transform, spec.clone(), outputs, logger.clone())
        .map_err(|f| anyhow!("the transform failed at start: {f}"))?;
    let hosting = Arc::new(Hosting::new(
        host.clone(),
        transport,
        HostingOptions {
            batch_size: options.batch_size,
            commit_interval: Duration::from_secs(1),
        },
        logger,
        stop.clone(),
    ));

    // The pipeline's dead letters: `<input>.dlq` among the outputs (logs.dlq).
    let dead_letters = format!("{}.dlq", spec.input_topic);
    let source = place.source(
        results,
        spec.output_topics
            .contains(&dead_letters)
            .then_some(dead_letters),
    );
    let settings = Settings {
        lateness_ms: config.lateness_ms,
        thresholds: options.thresholds,
        alert_webhook: options.alert_webhook.clone(),
        ..Settings::default()
    };
    let dashboard = service::serve(
        &runtime,
        settings,
        source,
        dashboard_listen(options.listen),
        &options.access,
        stop.clone(),
    )?;
    let (admin_address, admin_server) = admin::serve(
        &runtime,
        options.admin_listen,
        &options.access,
        hosting.clone() as Arc<dyn Control>,
        until_set(stop.clone()),
    )?;
    let (input, name) = (spec.input_topic.clone(), spec.name.clone());
    // The transforms the folder kept run again; the command line's as it
    // was left (hot-swapped, paused) unless the command line changed it.
    let (saved, same) = match place.embedded() {
        Some(topics) => {
            hosting.save_with(resume::saver(topics.clone()));
            (
                resume::saved_transforms(topics),
                resume::same_command_line(topics, &transform.version, &spec.env),
            )
        }
        None => (Vec::new(), false),
    };
    match saved.iter().find(|s| s.name == name) {
        Some(kept) if same => restore(&hosting, kept),
        _ => hosting.add(
            transform.clone(),
            options.module.clone(),
            spec,
            Deployment {
                id: 0,
                start: StartOffset::FromStart(0),
                fresh: false,
            },
            false,
        ),
    }
    for kept in saved.iter().filter(|s| s.name != name) {
        restore(&hosting, kept);
    }
    let logs = std::thread::spawn({
        let hosting = hosting.clone();
        move || hosting.flush_logs()
    });

    let generated = Arc::new(AtomicU64::new(already_sent));
    let generating = Arc::new(AtomicBool::new(true));
    let generator = {
        let generating = generating.clone();
        let stop = stop.clone();
        let mut sink = Counted {
            sink: place.sink(input, already_sent)?,
            sent: generated.clone(),
        };
        let truth_path = options.truth.clone();
        std::thread::spawn(move || -> Result<Progress> {
            let mut truth = Truth::new(config.window_ms);
            // The stream's events before where it stopped count in the
            // truth of the whole stream.
            for _ in 0..already_sent {
                truth.add(&stream.next_event());
            }
            let progress = generate(
                &mut stream,
                &plan,
                &mut sink,
                &mut truth,
                &|| stop.load(Ordering::Relaxed),
                &mut |_| {},
            );
            generating.store(false, Ordering::Relaxed);
            let progress = progress?;
            if let Some(path) = truth_path {
                // Whole or not at all: readers wait for the file to appear.
                let json = serde_json::to_vec_pretty(&truth.file(&profile))?;
                let partial = path.with_extension("partial");
                std::fs::write(&partial, json)
                    .and_then(|()| std::fs::rename(&partial, &path))
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            Ok(progress)
        })
    };

    hosting.wait_started(&name, Duration::from_secs(60));
    ready(&Endpoints {
        dashboard: dashboard.address,
        admin: admin_address,
        schema_registry: registry.as_ref().map(|(address, _)| *address),
    });
    let mut last = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(every.min(Duration::from_millis(50)));
        if last.elapsed() < every {
            continue;
        }
        last = Instant::now();
        let state = dashboard.shared.state.read().expect("not poisoned");
        status(&Status {
            generated: generated.load(Ordering::Relaxed),
            generating: generating.load(Ordering::Relaxed),
            bridge: hosting.progress(),
            windows: state.merger.len(),
            dashboard_records: state.merger.stats.records,
            newest_event_ms: state.merger.stats.newest_event_ms,
            dead_letters: state.source.dlq.total,
            topic_bytes: place.embedded().map(Topics::stored_bytes),
            disk_bytes: place.embedded().and_then(Topics::disk_bytes),
            trouble: place.embedded().and_then(Topics::trouble),
        });
    }
    // Writers waiting for readers that stop with the rest give up.
    if let Some(topics) = place.embedded() {
        topics.close();
    }
    let generated = generator
        .join()
        .map_err(|_| anyhow!("the generator panicked"))?;
    hosting.join();
    let _ = logs.join();
    // The servers were told to stop with the rest; a failed join is a
    // panic already reported on stderr.
    let _ = runtime.block_on(dashboard.server);
    let _ = runtime.block_on(admin_server);
    if let Some((_, server)) = registry {
        let _ = runtime.block_on(server);
    }
    if let Some(topics) = place.embedded() {
        topics.shut_down()?;
    }
    // A writer cut short by the stop is the stop, not a failure.
    match generated {
        Err(e) if e.chain().any(|c| c.is::<Closed>()) => Ok(()),
        other => other.map(|_| ()),
    }
}

/// A sink that counts what it took as it takes it, so that the status
/// line never shows more transformed than generated (the generator's own
/// report comes every 200 ms).
struct Counted {
    sink: Box<dyn Sink + Send>,
    sent: Arc<AtomicU64>,
}

impl Sink for Counted {
    fn send(&mut self, record: &generator::LogRecord<'_>) -> Result<()> {
        self.sink.send(record)?;
        self.sent.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        self.sink.flush()
    }

    fn idle(&mut self) -> Result<()> {
        self.sink.idle()
    }

    fn failed(&self) -> u64 {
        self.sink.failed()
    }
}

/// Runs a transform the data folder kept, from where it stopped.
fn restore(hosting: &Hosting, kept: &SavedTransform) {
    let loaded = kept
        .module()
        .and_then(|wasm| Ok((hosting.host().load(&wasm)?, wasm)));
    match loaded {
        Ok((transform, wasm)) => {
            tracing::info!(
                "{}: {} version {} as it was left{}",
                kept.name,
                if kept.paused { "paused at" } else { "runs" },
                transform.version,
                if kept.paused {
                    ""
                } else {
                    ", from its commits"
                }
            );
            hosting.add(
                transform,
                Arc::new(wasm),
                kept.spec(),
                kept.deployment(),
                kept.paused,
            );
        }
        Err(e) => tracing::warn!(
            "{}: the module the data folder kept does not load ({e:#}); harness delete \
             --name {} forgets it",
            kept.name,
            kept.name
        ),
    }
}
