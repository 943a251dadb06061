//! `bench broker`: the generator and the bridge on a real broker,
//! against what the broker alone moves, in the same run; and the latency
//! from an event's time to its pane in `results` at fixed rates.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context, Result};
use generator::{generate, Clock, Plan, Profile, Stream, Truth};
use hosting::bridge::{Bridge, BridgeOptions, Deployment};
use kafka_client::{ensure_topic, flush, producer, send, KafkaConfig, KafkaTransport};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::BaseRecord;
use rdkafka::{Message, Offset, TopicPartitionList};
use topic_io::{StartOffset, Transport};
use transform_host::{Host, Logger, Transform, TransformSpec};

pub struct BrokerBench {
    pub kafka: KafkaConfig,
    pub events: u64,
    pub partitions: i32,
    pub batch_size: usize,
    /// Rates for the latency runs, events a second.
    pub latency_rates: Vec<f64>,
    pub latency_seconds: u64,
}

/// Events a second over a duration.
pub fn per_sec(events: u64, took: Duration) -> f64 {
    events as f64 / took.as_secs_f64()
}

pub struct Latency {
    pub rate: f64,
    pub panes: usize,
    pub p50_ms: i64,
    pub p99_ms: i64,
    pub max_ms: i64,
}

pub struct BrokerReport {
    pub events: u64,
    pub module: String,
    pub generator: Duration,
    pub copy: Duration,
    pub bridge: Duration,
    pub latencies: Vec<Latency>,
}

impl std::fmt::Display for BrokerReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let rate = |took| per_sec(self.events, took);
        writeln!(
            f,
            "generator → broker:  {:>10.0} events/s",
            rate(self.generator)
        )?;
        writeln!(f, "broker alone (copy): {:>10.0} events/s", rate(self.copy))?;
        writeln!(
            f,
            "bridge ({}): {:>10.0} events/s  ({:.2}x the broker alone's time)",
            self.module,
            rate(self.bridge),
            self.bridge.as_secs_f64() / self.copy.as_secs_f64()
        )?;
        for l in &self.latencies {
            writeln!(
                f,
                "latency at {:>6.0} events/s: p50 {} ms, p99 {} ms, max {} ms ({} panes)",
                l.rate, l.p50_ms, l.p99_ms, l.max_ms, l.panes
            )?;
        }
        Ok(())
    }
}

/// Topic names of one run, so that runs never see each other's records.
struct Topics {
    logs: String,
    copy: String,
    spec: TransformSpec,
}

impl Topics {
    fn new(spec: &TransformSpec, tag: &str) -> Topics {
        let run = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let prefix = format!("bench-{run}-{tag}");
        Topics {
            logs: format!("{prefix}-logs"),
            copy: format!("{prefix}-copy"),
            spec: TransformSpec {
                name: format!("{prefix}-{}", spec.name),
                input_topic: format!("{prefix}-logs"),
                output_topics: spec
                    .output_topics
                    .iter()
                    .map(|t| format!("{prefix}-{t}"))
                    .collect(),
                env: spec.env.clone(),
            },
        }
    }
}

pub fn bench_broker(
    host: &Host,
    transform: &Transform,
    spec: &TransformSpec,
    bench: &BrokerBench,
    logger: Logger,
    say: &dyn Fn(&str),
) -> Result<BrokerReport> {
    let topics = Topics::new(spec, "throughput");
    let kafka = &bench.kafka;
    ensure_topic(kafka, &topics.logs, bench.partitions)?;
    say(&format!(
        "generator: {} events into {}…",
        bench.events, topics.logs
    ));
    let clock = Clock::Simulated {
        next_ms: 1_755_439_200_000,
    };
    let generator = run_generator(kafka, &topics.logs, bench, None, clock, &|| false)?;
    say(&format!(
        "  {:.0} events/s",
        per_sec(bench.events, generator)
    ));

    say("broker alone: consume every event and produce it to another topic, acks=all…");
    let copy = copy_topic(kafka, &topics.logs, &topics.copy, bench)?;
    say(&format!("  {:.0} events/s", per_sec(bench.events, copy)));

    say("bridge: the same events through the pipeline transform…");
    let bridge = run_bridge(host, transform, &topics.spec, bench, logger.clone(), |p| {
        p.records_in >= bench.events
    })?;
    say(&format!("  {:.0} events/s", per_sec(bench.events, bridge)));

    let mut latencies = Vec::new();
    for &rate in &bench.latency_rates {
        say(&format!(
            "latency at {rate:.0} events/s for {} s…",
            bench.latency_seconds
        ));
        let l = latency(host, transform, spec, bench, rate, logger.clone())?;
        say(&format!(
            "  {} panes: p50 {} ms, p99 {} ms, max {} ms",
            l.panes, l.p50_ms, l.p99_ms, l.max_ms
        ));
        latencies.push(l);
    }
    Ok(BrokerReport {
        events: bench.events,
        module: spec.name.clone(),
        generator,
        copy,
        bridge,
        latencies,
    })
}

fn run_generator(
    kafka: &KafkaConfig,
    topic: &str,
    bench: &BrokerBench,
    rate: Option<f64>,
    clock: Clock,
    stop: &dyn Fn() -> bool,
) -> Result<Duration> {
    let mut sink = KafkaTransport {
        kafka: kafka.clone(),
    }
    .sink()?;
    let plan = Plan {
        rate,
        count: rate.is_none().then_some(bench.events),
        duration: rate.map(|_| Duration::from_secs(bench.latency_seconds)),
        partitions: bench.partitions,
    };
    let progress = generate(
        &mut Stream::new(Profile::default(), 42, clock),
        &plan,
        topic,
        sink.as_mut(),
        &mut Truth::new(60_000),
        stop,
        &mut |_| {},
    )?;
    if progress.failed > 0 {
        bail!("the generator could not deliver {} events", progress.failed);
    }
    Ok(progress.elapsed)
}

/// The baseline: one thread consumes the topic and produces every record
/// to another topic with the same producer settings as the bridge.
fn copy_topic(kafka: &KafkaConfig, from: &str, to: &str, bench: &BrokerBench) -> Result<Duration> {
    ensure_topic(kafka, to, bench.partitions)?;
    let consumer = assigned(kafka, from, bench.partitions, &[])?;
    let producer = producer(kafka)?;
    let start = Instant::now();
    let mut copied = 0;
    while copied < bench.events {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                let mut record = BaseRecord::to(to).partition(m.partition());
                if let Some(k) = m.key() {
                    record = record.key(k);
                }
                if let Some(v) = m.payload() {
                    record = record.payload(v);
                }
                send(&producer, record)?;
                copied += 1;
            }
            Some(Err(e)) => tracing::warn!("copy: {e}"),
            None => {}
        }
    }
    flush(&producer, &mut |_| {})?;
    Ok(start.elapsed())
}

/// Runs the bridge until `done` says so; returns the time from its start.
fn run_bridge(
    host: &Host,
    transform: &Transform,
    spec: &TransformSpec,
    bench: &BrokerBench,
    logger: Logger,
    mut done: impl FnMut(&hosting::bridge::BridgeProgress) -> bool,
) -> Result<Duration> {
    let mut bridge = Bridge::start(
        host,
        transform,
        spec.clone(),
        &KafkaTransport {
            kafka: bench.kafka.clone(),
        },
        BridgeOptions {
            batch_size: bench.batch_size,
            commit_interval: Duration::from_secs(1),
            deployment: Deployment {
                id: 0,
                start: StartOffset::FromStart(0),
                fresh: false,
            },
        },
        logger,
        Arc::default(),
    )?;
    let stop = AtomicBool::new(false);
    let start = Instant::now();
    bridge.run(&stop, None, Duration::from_millis(5), &mut |p| {
        if done(p) {
            stop.store(true, Ordering::Relaxed);
        }
    })?;
    Ok(start.elapsed())
}

/// The generator at `rate` with wall-clock event times, the bridge, and a
/// reader of `results`: for every pane, the time it is read minus the time
/// of the newest event in it.
fn latency(
    host: &Host,
    transform: &Transform,
    spec: &TransformSpec,
    bench: &BrokerBench,
    rate: f64,
    logger: Logger,
) -> Result<Latency> {
    let topics = Topics::new(spec, &format!("latency{rate:.0}"));
    let kafka = &bench.kafka;
    ensure_topic(kafka, &topics.logs, bench.partitions)?;
    for t in &topics.spec.output_topics {
        ensure_topic(kafka, t, bench.partitions)?;
    }
    let finished = Arc::new(AtomicBool::new(false));
    let results = topics.spec.output_topics[0].clone();
    let reader = {
        let (kafka, finished) = (kafka.clone(), finished.clone());
        let partitions = bench.partitions;
        std::thread::spawn(move || read_pane_latencies(&kafka, &results, partitions, &finished))
    };
    let generator = {
        let logs = topics.logs.clone();
        let bench = BrokerBench {
            kafka: kafka.clone(),
            latency_rates: Vec::new(),
            ..*bench
        };
        std::thread::spawn(move || {
            run_generator(
                &bench.kafka,
                &logs,
                &bench,
                Some(rate),
                Clock::Wall,
                &|| false,
            )
        })
    };
    let deadline = Instant::now() + Duration::from_secs(bench.latency_seconds + 3);
    run_bridge(host, transform, &topics.spec, bench, logger, |_| {
        Instant::now() > deadline
    })?;
    generator.join().expect("generator thread")?;
    finished.store(true, Ordering::Relaxed);
    let mut latencies = reader.join().expect("reader thread")?;
    if latencies.is_empty() {
        bail!("no pane reached {}", topics.spec.output_topics[0]);
    }
    latencies.sort_unstable();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
    Ok(Latency {
        rate,
        panes: latencies.len(),
        p50_ms: at(0.50),
        p99_ms: at(0.99),
        max_ms: at(1.0),
    })
}

fn read_pane_latencies(
    kafka: &KafkaConfig,
    topic: &str,
    partitions: i32,
    finished: &AtomicBool,
) -> Result<Vec<i64>> {
    let consumer = assigned(kafka, topic, partitions, &[("fetch.wait.max.ms", "5")])?;
    let mut latencies = Vec::new();
    while !finished.load(Ordering::Relaxed) {
        let Some(Ok(m)) = consumer.poll(Duration::from_millis(50)) else {
            continue;
        };
        let now_ms = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let pane: serde_json::Value = serde_json::from_slice(m.payload().unwrap_or_default())
            .context("a pane that is not JSON")?;
        if let Some(newest) = pane["max_event_ts_ms"].as_i64() {
            latencies.push(now_ms - newest);
        }
    }
    Ok(latencies)
}

/// A consumer of every partition of `topic` from its start, with
/// `settings` over the configuration's.
pub fn assigned(
    kafka: &KafkaConfig,
    topic: &str,
    partitions: i32,
    settings: &[(&str, &str)],
) -> Result<BaseConsumer> {
    let mut config = kafka.client();
    config
        .set("group.id", format!("{topic}.bench"))
        .set("enable.auto.commit", "false");
    for (key, value) in settings {
        config.set(*key, *value);
    }
    let consumer: BaseConsumer = config.create().context("creating a Kafka consumer")?;
    let mut assignment = TopicPartitionList::new();
    for p in 0..partitions {
        assignment.add_partition_offset(topic, p, Offset::Beginning)?;
    }
    consumer.assign(&assignment)?;
    Ok(consumer)
}
