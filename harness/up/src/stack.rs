//! The pipeline running: each part started on the topics `up` was given,
//! a status, and a shutdown.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use admin::Control;
use anyhow::{anyhow, Context, Result};
use dashboard::service::{Served, Settings};
use dashboard::source::TopicSource;
use generator::{generate, Clock, Plan, Profile, Progress, Stream, Truth};
use hosting::bridge::Deployment;
use hosting::engine::Engine;
use hosting::{Hosting, HostingOptions, SavedTransform};
use http_access::Access;
use registry::SchemaRegistry;
use shutdown::until_set;
use topic_io::{BorrowedHeader, BorrowedRecord, Sink, StartOffset};
use topics::Closed;
use transform_host::{Host, Logger, Transform, TransformSpec};

use crate::kafka;
use crate::kept::{self, Kept};
use crate::{dashboard_listen, Endpoints, RegistryChoice, Status, UpOptions};

/// A server: where it listens, and its task, which ends once it stops.
type Server = (SocketAddr, tokio::task::JoinHandle<()>);

/// The pipeline running: see [`Stack::start`].
pub struct Stack {
    kept: Box<dyn Kept>,
    runtime: tokio::runtime::Runtime,
    hosting: Arc<Hosting>,
    logs: JoinHandle<()>,
    dashboard: Served,
    admin: Server,
    registry: Option<Server>,
    kafka: Option<kafka::Served>,
    generator: Generator,
}

/// The generator's thread and its counts.
struct Generator {
    thread: JoinHandle<Result<Progress>>,
    /// Events the sink has taken, the stream's earlier runs' included.
    generated: Arc<AtomicU64>,
    generating: Arc<AtomicBool>,
}

impl Stack {
    /// Starts every part, each on the topics `options.storage` names, until
    /// `stop` is set: the topics, the schema registry, the transform (and
    /// those the data folder kept), the dashboard, the admin endpoint, the
    /// Kafka listener, and last the generator.
    /// The stream's and the transform's settings are checked before
    /// anything starts; a part that fails to start stops those started.
    pub fn start(
        host: &Host,
        transform: &Transform,
        spec: TransformSpec,
        options: UpOptions,
        logger: Logger,
        stop: Arc<AtomicBool>,
    ) -> Result<Stack> {
        let started = Stack::start_parts(host, transform, spec, options, logger, stop.clone());
        if started.is_err() {
            stop.store(true, Ordering::Relaxed);
        }
        started
    }

    fn start_parts(
        host: &Host,
        transform: &Transform,
        spec: TransformSpec,
        options: UpOptions,
        logger: Logger,
        stop: Arc<AtomicBool>,
    ) -> Result<Stack> {
        let config = analytics::Config::from_vars(spec.env.clone())
            .map_err(|e| anyhow!("the transform's environment: {e}"))?;
        let stream = StreamPlan::new(&options)?;
        let kept = options.storage.open(&options.retention)?;
        let names: Vec<&str> = std::iter::once(&spec.input_topic)
            .chain(&spec.output_topics)
            .map(String::as_str)
            .collect();
        kept::ensure_topics(kept.as_ref(), &names, options.partitions)?;
        let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
        let (schemas, registry) = start_registry(
            kept.as_ref(),
            &runtime,
            &options.schema_registry,
            &options.access,
            &stop,
        )?;
        let host = host.clone().with_schema_registry(schemas.clone());
        let hosting = start_transforms(
            kept.as_ref(),
            &host,
            transform,
            spec.clone(),
            &options,
            logger,
            &stop,
        )?;
        let logs = std::thread::spawn({
            let hosting = hosting.clone();
            move || hosting.flush_logs()
        });
        let dashboard = start_dashboard(kept.as_ref(), &runtime, &spec, &config, &options, &stop)?;
        dashboard.shared.tell_running_version({
            let (hosting, name) = (hosting.clone(), spec.name.clone());
            Box::new(move || hosting.version(&name))
        });
        let kafka = kafka::start(kept.as_ref(), &options.kafka, &options.access)?;
        let admin = admin::serve(
            &runtime,
            options.admin_listen,
            &options.access,
            hosting.clone() as Arc<dyn Control>,
            kafka::users(kept.as_ref()),
            until_set(stop.clone()),
        )?;
        let generator = start_generator(
            kept.as_ref(),
            stream,
            &spec,
            &config,
            &options,
            schemas.as_ref(),
            stop.clone(),
        )?;
        hosting.wait_started(&spec.name, Duration::from_secs(60));
        Ok(Stack {
            kept,
            runtime,
            hosting,
            logs,
            dashboard,
            admin,
            registry,
            kafka,
            generator,
        })
    }

    pub fn endpoints(&self) -> Endpoints {
        Endpoints {
            dashboard: self.dashboard.address,
            admin: self.admin.0,
            schema_registry: self.registry.as_ref().map(|(address, _)| *address),
            kafka: self.kafka.as_ref().map(kafka::Served::endpoint),
        }
    }

    /// Where every part stands.
    pub fn status(&self) -> Status {
        Status {
            generated: self.generator.generated.load(Ordering::Relaxed),
            generating: self.generator.generating.load(Ordering::Relaxed),
            bridge: self.hosting.progress(),
            dashboard: self.dashboard.shared.figures(),
            topics: self.kept.upkeep(),
        }
    }

    /// Once `stop` is set: waits for every part to finish what it has in
    /// flight, then writes what the topics have left.
    pub fn shut_down(self) -> Result<()> {
        // Writers waiting for readers that stop with the rest give up.
        self.kept.close();
        let generated = self
            .generator
            .thread
            .join()
            .map_err(|_| anyhow!("the generator panicked"))?;
        self.hosting.join();
        let _ = self.logs.join();
        // The servers were told to stop with the rest; a failed join is a
        // panic already reported on stderr.
        let _ = self.runtime.block_on(self.dashboard.server);
        let _ = self.runtime.block_on(self.admin.1);
        if let Some((_, server)) = self.registry {
            let _ = self.runtime.block_on(server);
        }
        if let Some(kafka) = self.kafka {
            kafka.stop();
        }
        self.kept.shut_down()?;
        // A writer cut short by the stop is the stop, not a failure.
        match generated {
            Err(e) if e.chain().any(|c| c.is::<Closed>()) => Ok(()),
            other => other.map(|_| ()),
        }
    }
}

/// The registry the transforms reach: up's own, served, or the one given.
fn start_registry(
    kept: &dyn Kept,
    runtime: &tokio::runtime::Runtime,
    choice: &RegistryChoice,
    access: &Access,
    stop: &Arc<AtomicBool>,
) -> Result<(Arc<dyn SchemaRegistry>, Option<Server>)> {
    match choice {
        RegistryChoice::Use(client) => Ok((client.clone(), None)),
        RegistryChoice::Serve(listen) => {
            let local = Arc::new(kept.registry()?);
            let served = registry::serve(
                runtime,
                *listen,
                access,
                local.clone(),
                until_set(stop.clone()),
            )?;
            Ok((local, Some(served)))
        }
    }
}

/// The command line's transform, and those the data folder kept: the
/// command line's as it was left (hot-swapped, paused) unless the command
/// line changed it. A transform that cannot start stops `up` at once, with
/// the reason.
fn start_transforms(
    kept: &dyn Kept,
    host: &Host,
    transform: &Transform,
    spec: TransformSpec,
    options: &UpOptions,
    logger: Logger,
    stop: &Arc<AtomicBool>,
) -> Result<Arc<Hosting>> {
    let outputs = vec![options.partitions; spec.output_topics.len()];
    Engine::start(host, transform, spec.clone(), outputs, logger.clone())
        .map_err(|f| anyhow!("the transform failed at start: {f}"))?;
    let hosting = Arc::new(Hosting::new(
        host.clone(),
        kept.topics(),
        HostingOptions {
            batch_size: options.batch_size,
            commit_interval: Duration::from_secs(1),
            memory_reservation: options.memory_reservation,
        },
        logger,
        stop.clone(),
    ));
    let (saved, saver) = kept.transforms();
    if let Some(saver) = saver {
        hosting.save_with(saver);
    }
    let same = kept.same_command_line(&transform.version, &spec.env);
    let name = spec.name.clone();
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
    Ok(hosting)
}

/// The dashboard over the transform's first output (`results`), with the
/// pipeline's dead letters beside it: `<input>.dlq` among the outputs.
fn start_dashboard(
    kept: &dyn Kept,
    runtime: &tokio::runtime::Runtime,
    spec: &TransformSpec,
    config: &analytics::Config,
    options: &UpOptions,
    stop: &Arc<AtomicBool>,
) -> Result<Served> {
    let results = spec
        .output_topics
        .first()
        .cloned()
        .context("the transform has no output topic")?;
    let dead_letters = format!("{}.dlq", spec.input_topic);
    let source = TopicSource {
        transport: kept.topics(),
        topic: results,
        dlq_topic: spec
            .output_topics
            .contains(&dead_letters)
            .then_some(dead_letters),
    };
    let settings = Settings {
        lateness_ms: config.lateness_ms,
        hot_ms: options.hot_ms,
        history: options.storage.history(),
        spans: options.spans,
        thresholds: options.thresholds.clone(),
        alert_webhook: options.alert_webhook.clone(),
        ..Settings::default()
    };
    dashboard::service::serve(
        runtime,
        settings,
        Box::new(source),
        dashboard_listen(options.listen),
        &options.access,
        stop.clone(),
    )
}

/// What the generator runs, from the command line's stream arguments.
struct StreamPlan {
    profile: Profile,
    plan: Plan,
    clock: Clock,
}

impl StreamPlan {
    fn new(options: &UpOptions) -> Result<StreamPlan> {
        let args = &options.stream;
        Ok(StreamPlan {
            profile: args.profile()?,
            plan: args.plan(options.partitions)?,
            clock: args.clock()?,
        })
    }
}

/// The generator on a thread of its own, going on with its stream where
/// the topics say it stopped; its exact totals go to `options.truth` once
/// it is done.
fn start_generator(
    kept: &dyn Kept,
    stream: StreamPlan,
    spec: &TransformSpec,
    config: &analytics::Config,
    options: &UpOptions,
    schemas: &dyn SchemaRegistry,
    stop: Arc<AtomicBool>,
) -> Result<Generator> {
    let args = &options.stream;
    let StreamPlan {
        profile,
        mut plan,
        clock,
    } = stream;
    let window_ms = config.window_ms;
    let topic = spec.input_topic.clone();
    let kept_start = kept.generator_start(&topic, &args.identity())?;
    if let Some((_, Some(note))) = &kept_start {
        tracing::info!("{note}");
    }
    let already_sent = kept_start.as_ref().map_or(0, |(next, _)| *next);
    plan.count = plan.count.map(|n| n.saturating_sub(already_sent));
    let mut stream =
        Stream::new(profile.clone(), args.seed, clock).with_format(args.format(&topic, schemas)?);
    let generated = Arc::new(AtomicU64::new(already_sent));
    let generating = Arc::new(AtomicBool::new(true));
    let mut sink = GeneratorSink {
        sink: kept.topics().sink()?,
        sent: generated.clone(),
        next: kept_start.map(|(next, _)| next),
    };
    let truth_path = options.truth.clone();
    let thread = std::thread::spawn({
        let generating = generating.clone();
        move || -> Result<Progress> {
            let mut truth = Truth::new(window_ms);
            // The stream's events before where it stopped count in the
            // truth of the whole stream.
            for _ in 0..already_sent {
                truth.add(&stream.next_event());
            }
            let progress = generate(
                &mut stream,
                &plan,
                &topic,
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
        }
    });
    Ok(Generator {
        thread,
        generated,
        generating,
    })
}

/// The generator's sink: it counts what it takes as it takes it, so that
/// the status line never shows more transformed than generated (the
/// generator's own report comes every 200 ms); and where the topics keep
/// the generator's place, it numbers each event from `next`, so that a
/// restart finds where the stream stopped.
struct GeneratorSink {
    sink: Box<dyn Sink>,
    sent: Arc<AtomicU64>,
    next: Option<u64>,
}

impl Sink for GeneratorSink {
    fn send(
        &mut self,
        topic: &str,
        partition: i32,
        timestamp_ms: Option<i64>,
        record: &BorrowedRecord<'_>,
    ) -> Result<()> {
        match &mut self.next {
            Some(next) => {
                let seq = next.to_string();
                let mut headers = record.headers().to_vec();
                headers.push(BorrowedHeader::new(
                    kept::SEQUENCE_HEADER.as_bytes(),
                    Some(seq.as_bytes()),
                ));
                let numbered =
                    BorrowedRecord::new_with_headers(record.key(), record.value(), headers);
                self.sink.send(topic, partition, timestamp_ms, &numbered)?;
                *next += 1;
            }
            None => self.sink.send(topic, partition, timestamp_ms, record)?,
        }
        self.sent.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn push(&mut self) -> Result<()> {
        self.sink.push()
    }

    fn flush(&mut self) -> Result<()> {
        self.sink.flush()
    }

    fn end_offset(&self, topic: &str, partition: i32) -> Option<i64> {
        self.sink.end_offset(topic, partition)
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
