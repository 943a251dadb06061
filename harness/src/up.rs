//! `harness up`: the whole pipeline in one process. The generator writes to
//! in-process topics, the bridge hosts the transform over them exactly as
//! it does over a broker, and the dashboard reads `results` from them. Each
//! part is the same code as in broker mode, given the in-process transport.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use dashboard::service::{self, until_set, Settings};
use generator::{generate, Progress, Stream, StreamArgs, Truth};
use transform_host::{Host, Logger, Transform, TransformSpec};

use crate::admin;
use crate::bridge::{Bridge, BridgeOptions, StartFrom};
use crate::transport::memory::{Closed, TopicSink, TopicSource};
use crate::transport::{Topics, Transport};

pub struct UpOptions {
    pub stream: StreamArgs,
    pub partitions: i32,
    pub listen: SocketAddr,
    pub admin_listen: SocketAddr,
    pub batch_size: usize,
    pub retention_bytes: usize,
    /// Where the generator's exact totals go once it is done.
    pub truth: Option<PathBuf>,
}

/// What a status line shows.
pub struct Status<'a> {
    pub generated: u64,
    pub generating: bool,
    pub bridge: &'a crate::bridge::BridgeProgress,
    pub windows: usize,
    pub dead_letters: u64,
    /// What the in-process topics hold: records and their bookkeeping.
    pub topic_bytes: usize,
    /// The transform's linear memory.
    pub transform_bytes: usize,
}

/// Runs until `stop` is set. `ready` is told where the dashboard and the
/// admin endpoint listen once everything runs; `status` is called about every `every`.
#[allow(clippy::too_many_arguments)]
pub fn up(
    host: &Host,
    transform: &Transform,
    spec: TransformSpec,
    options: UpOptions,
    logger: Logger,
    stop: Arc<AtomicBool>,
    every: Duration,
    ready: &mut dyn FnMut(SocketAddr, SocketAddr),
    status: &mut dyn FnMut(&Status<'_>),
) -> Result<()> {
    let profile = options.stream.profile()?;
    let plan = options.stream.plan(options.partitions)?;
    let mut stream = Stream::new(
        profile.clone(),
        options.stream.seed,
        options.stream.clock()?,
    );
    let config = analytics::Config::from_vars(spec.env.clone())
        .map_err(|e| anyhow!("the transform's environment: {e}"))?;

    let topics = Topics::new(options.retention_bytes);
    topics.ensure_topic(&spec.input_topic, options.partitions)?;
    let results = spec
        .output_topics
        .first()
        .cloned()
        .context("the transform has no output topic")?;
    let mut bridge = Bridge::start(
        host,
        transform,
        spec.clone(),
        &topics,
        BridgeOptions {
            batch_size: options.batch_size,
            from: StartFrom::Beginning,
            commit_interval: Duration::from_secs(1),
        },
        logger,
    )?;

    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    // The pipeline's dead letters: `<input>.dlq` among the outputs (logs.dlq).
    let dead_letters = format!("{}.dlq", spec.input_topic);
    let source = TopicSource {
        topics: topics.clone(),
        topic: results,
        dlq_topic: spec
            .output_topics
            .contains(&dead_letters)
            .then_some(dead_letters),
    };
    let settings = Settings {
        lateness_ms: config.lateness_ms,
        ..Settings::default()
    };
    let dashboard = service::serve(
        &runtime,
        settings,
        Box::new(source),
        options.listen,
        stop.clone(),
    )?;
    let (address, shared) = (dashboard.address, dashboard.shared.clone());
    let (admin_address, admin_server) = admin::serve(
        &runtime,
        options.admin_listen,
        bridge.admin(),
        until_set(stop.clone()),
    )?;

    let generated = Arc::new(AtomicU64::new(0));
    let generating = Arc::new(AtomicBool::new(true));
    let generator = {
        let generated = generated.clone();
        let generating = generating.clone();
        let stop = stop.clone();
        let mut sink = TopicSink {
            topics: topics.clone(),
            topic: spec.input_topic.clone(),
        };
        let truth_path = options.truth.clone();
        std::thread::spawn(move || -> Result<Progress> {
            let mut truth = Truth::new(config.window_ms);
            let progress = generate(
                &mut stream,
                &plan,
                &mut sink,
                &mut truth,
                &|| stop.load(Ordering::Relaxed),
                &mut |p| generated.store(p.sent, Ordering::Relaxed),
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

    // Once stopping, a writer waiting for a reader that has stopped gives up.
    std::thread::spawn({
        let (topics, stop) = (topics.clone(), stop.clone());
        move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(50));
            }
            topics.close();
        }
    });
    ready(address, admin_address);
    let result = bridge.run(&stop, every, &mut |p| {
        status(&Status {
            generated: generated.load(Ordering::Relaxed),
            generating: generating.load(Ordering::Relaxed),
            bridge: p,
            windows: shared.state.read().expect("not poisoned").merger.len(),
            dead_letters: shared.state.read().expect("not poisoned").source.dlq.total,
            topic_bytes: topics.stored_bytes(),
            transform_bytes: p.transform_bytes,
        })
    });
    // Whatever ended the bridge ends the rest.
    stop.store(true, Ordering::Relaxed);
    let generated = generator
        .join()
        .map_err(|_| anyhow!("the generator panicked"))?;
    // The servers were told to stop with the rest; a failed join is a
    // panic already reported on stderr.
    let _ = runtime.block_on(dashboard.server);
    let _ = runtime.block_on(admin_server);
    // A writer cut short by the stop is the stop, not a failure.
    let stopped = |r: Result<()>| match r {
        Err(e) if e.chain().any(|c| c.is::<Closed>()) => Ok(()),
        other => other,
    };
    stopped(result).and(stopped(generated.map(|_| ())))
}
