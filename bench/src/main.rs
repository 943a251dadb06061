//! `bench`: the project's benchmarks, each against its baseline in the
//! same run, reported as ratios: the transform in WASM against the same
//! library natively, the host on a broker against the broker alone, hot
//! swaps, `harness test`, `harness up` on disk against in memory, the
//! dashboard's merge, and the Kafka listener against a broker alone. One
//! call per bench:
//!
//!     cargo run --release -p bench -- <pipeline|broker|swap|test|up|dashboard|history|listener>

mod broker;
mod cases;
mod dashboard;
mod end_to_end;
mod history;
mod listener;
mod pipeline;
mod swap;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::{Args, Parser, Subcommand};
use hosting::cli::args::{at_least_one, partition_count, LimitArgs};
use hosting::spec::{resolve, Overrides, TransformYaml};
use hosting::stderr_logger;
use kafka_client::KafkaArgs;
use transform_host::{Host, Transform, TransformSpec};

use broker::{bench_broker, BrokerBench};
use end_to_end::{bench_up, UpBench};
use pipeline::{bench, key_capacity};
use swap::{bench_swap, SwapBench};

#[derive(Parser)]
#[command(
    name = "bench",
    about = "The project's benchmarks, each against its baseline in the same run",
    long_about = "The project's benchmarks, each against its baseline in the same run, as ratios. Run them from the repository's root with a release build: cargo run --release -p bench -- <BENCH>."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The pipeline transform in WASM against the same library natively, and its key capacity.
    Pipeline(BenchArgs),
    /// The generator and the bridge on a broker against the broker alone, and latency.
    Broker(BenchBrokerArgs),
    /// Hot swaps under a steady stream: the pause in processing and the new version's first batch.
    Swap(BenchSwapArgs),
    /// `harness test` on a case of 100k records with 3 replays against the plain run.
    Test(BenchTestArgs),
    /// `harness up` end to end with its topics on disk against in memory: throughput, memory, disk, restart, idle cost, latency.
    Up(BenchUpArgs),
    /// The dashboard's merge (panes/s, against a plain sum), the memory of a day of windows, and push latency to pages.
    Dashboard(BenchDashboardArgs),
    /// The dashboard with its history on disk against today's in-memory merge: ingest, memory, queries over a month, restart, bytes per row.
    History(BenchHistoryArgs),
    /// Kafka clients on `harness up`'s Kafka listener against a broker alone (--brokers): produce, consume, fetch latency.
    Listener(BenchListenerArgs),
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new(
                    "info,rdkafka=off,fjall=warn,lsm_tree=warn,nisshi=warn,rama=warn",
                )
            }),
        )
        .with_writer(std::io::stderr)
        .without_time()
        .with_target(false)
        .with_level(false)
        .init();
    let result = match Cli::parse().command {
        Command::Pipeline(args) => pipeline_bench(args),
        Command::Broker(args) => broker_bench(args),
        Command::Swap(args) => swap_bench(args),
        Command::Test(args) => test_bench(args),
        Command::Up(args) => up_bench(args),
        Command::Dashboard(args) => dashboard::run(&args.clients, args.samples),
        Command::Listener(args) => listener_bench(args),
        Command::History(args) => {
            history::bench(args.keys, args.days, args.per_window).map(|r| print!("{r}"))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[derive(Args)]
struct BenchDashboardArgs {
    /// Numbers of connected pages to measure push latency with; repeatable.
    #[arg(long = "clients", default_values_t = [1, 500])]
    clients: Vec<usize>,
    /// Panes pushed per measurement, one every 20 ms.
    #[arg(long, default_value_t = 200)]
    samples: usize,
}

#[derive(Args)]
struct BenchHistoryArgs {
    /// Campaign × channel keys, each with a window every hour.
    #[arg(long, default_value_t = 10_000)]
    keys: usize,
    /// Days of event time.
    #[arg(long, default_value_t = 30)]
    days: i64,
    /// Panes of each window (one per input batch that touched it).
    #[arg(long, default_value_t = 1)]
    per_window: usize,
}

#[derive(Args)]
struct BenchArgs {
    /// The pipeline module to measure.
    #[arg(long, default_value = "@pipeline")]
    wasm: String,
    /// Events to push through each side.
    #[arg(long, default_value_t = 1_000_000)]
    events: usize,
    #[arg(long, default_value_t = 500, value_parser = at_least_one)]
    batch_size: usize,
    /// Rounds per side; the best of each is reported.
    #[arg(long, default_value_t = 3, value_parser = at_least_one)]
    rounds: usize,
    /// Distinct keys for the key-capacity run (every event a campaign of its own); 0 skips it.
    #[arg(long, default_value_t = 1_000_000)]
    keys: usize,
    #[arg(long, default_value = "transform.yaml")]
    config: PathBuf,
    #[command(flatten)]
    limits: LimitArgs,
}

/// The host, the module and its deployment: from `config`, else the
/// built-in transform.yaml.
fn deployed(
    limits: &LimitArgs,
    wasm: &str,
    config: Option<&Path>,
) -> Result<(Host, Transform, TransformSpec)> {
    let host = limits.host()?;
    let (transform, name) = ::up::extensions().load(&host, wasm)?;
    let yaml = match config {
        Some(path) => TransformYaml::load(path)?,
        None => TransformYaml::parse(::up::TRANSFORM_YAML)?,
    };
    let spec = resolve(Some(yaml), Overrides::default(), &name)?;
    Ok((host, transform, spec))
}

fn pipeline_bench(args: BenchArgs) -> Result<()> {
    let (host, transform, spec) = deployed(&args.limits, &args.wasm, Some(&args.config))?;
    eprintln!(
        "benchmarking {}: {} events, batches of {}, best of {} rounds per side…",
        args.wasm, args.events, args.batch_size, args.rounds
    );
    let report = bench(
        &host,
        &transform,
        &spec,
        args.events,
        args.batch_size,
        args.rounds,
        stderr_logger(),
    )?;
    print!("{report}");
    if args.keys > 0 {
        eprintln!("running {} events of {0} distinct keys…", args.keys);
        let capacity = key_capacity(
            &host,
            &transform,
            &spec,
            args.keys,
            args.batch_size,
            report.wasm_memory_bytes,
            stderr_logger(),
        )?;
        print!("{capacity}");
    }
    Ok(())
}

#[derive(Args)]
#[command(
    after_help = "Every run uses topics of its own, named bench-<time>-…; delete them afterwards \
if the broker keeps data. Figures: the generator's events/s into a topic; the broker alone (one thread \
consumes every event and produces it to another topic, acks=all); the bridge running the transform over \
the same events; then, per --latency-rate, the generator at that rate with wall-clock event times and the \
time from the newest event of each pane to the pane being read from results (p50, p99)."
)]
struct BenchBrokerArgs {
    #[command(flatten)]
    kafka: KafkaArgs,
    #[arg(long, default_value = "@pipeline")]
    wasm: String,
    /// Events for the throughput runs.
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
    #[arg(long, default_value_t = 3, value_parser = partition_count)]
    partitions: i32,
    #[arg(long, default_value_t = 1000, value_parser = at_least_one)]
    batch_size: usize,
    /// Rates for the latency runs, events a second; repeatable.
    #[arg(long = "latency-rate", default_values_t = [1000.0, 20000.0])]
    latency_rates: Vec<f64>,
    /// Seconds each latency run lasts.
    #[arg(long, default_value_t = 20)]
    latency_seconds: u64,
    #[arg(long, default_value = "transform.yaml")]
    config: PathBuf,
    #[command(flatten)]
    limits: LimitArgs,
}

fn broker_bench(args: BenchBrokerArgs) -> Result<()> {
    let (host, transform, spec) = deployed(&args.limits, &args.wasm, Some(&args.config))?;
    let bench = BrokerBench {
        kafka: args.kafka.required()?,
        events: args.events,
        partitions: args.partitions,
        batch_size: args.batch_size,
        latency_rates: args.latency_rates,
        latency_seconds: args.latency_seconds,
    };
    let report = bench_broker(&host, &transform, &spec, &bench, stderr_logger(), &|line| {
        eprintln!("{line}")
    })?;
    print!("{report}");
    Ok(())
}

#[derive(Args)]
#[command(
    after_help = "Runs the pipeline in this process as `harness up` does (dashboard included, on a \
free port) at --rate events a second, lets it warm up, then deploys --swaps new versions of --wasm one \
after the other through the admin endpoint, as `harness deploy` does (each a custom section apart, so each \
is a version of its own). Figures over the swaps, p50, p99 and max: the pause (processing stopped for the \
switch between two batches); the new version's first batch against the median batch before the swap, per \
record; what a swap costs processing in all (the pause plus the first batch's extra time); and the time \
from the request to the switch, while the old version keeps processing."
)]
struct BenchSwapArgs {
    /// The pipeline module to swap in.
    #[arg(long, default_value = "@pipeline")]
    wasm: String,
    #[arg(long, default_value_t = 40, value_parser = at_least_one)]
    swaps: usize,
    /// Events a second of the steady stream.
    #[arg(long, default_value_t = 20_000.0)]
    rate: f64,
    #[arg(long, default_value_t = 3, value_parser = partition_count)]
    partitions: i32,
    #[arg(long, default_value_t = 1000, value_parser = at_least_one)]
    batch_size: usize,
    #[command(flatten)]
    limits: LimitArgs,
}

fn swap_bench(args: BenchSwapArgs) -> Result<()> {
    if !(args.rate.is_finite() && args.rate > 0.0) {
        bail!("--rate must be a positive number of events a second");
    }
    let (host, transform, spec) = deployed(&args.limits, &args.wasm, None)?;
    let (module, _) = ::up::extensions().module(&args.wasm)?;
    eprintln!(
        "swapping {} {} times under {} events/s…",
        args.wasm, args.swaps, args.rate
    );
    let report = bench_swap(
        &host,
        &transform,
        &module,
        spec,
        &SwapBench {
            swaps: args.swaps,
            rate: args.rate,
            partitions: args.partitions,
            batch_size: args.batch_size,
        },
        stderr_logger(),
        &|line| eprintln!("{line}"),
    )?;
    print!("{report}");
    Ok(())
}

#[derive(Args)]
#[command(
    after_help = "Runs the pipeline in this process as `harness up` does, on free ports: --events \
simulated events at full speed with the topics in memory, then on disk, each timed from the start until \
the dashboard has counted every event, with the peak resident memory of each; the folder's size per \
event; the same folder started again, until it serves and until the dashboard shows every event again; \
the seed's 15 events/s on disk, for the CPU it takes; and 1,000 events/s with wall-clock event times, for \
the age of the newest event on the dashboard (p50, p99). The folders go under --data-dir and are deleted \
afterwards. Linux: memory and CPU come from /proc."
)]
struct BenchUpArgs {
    #[arg(long, default_value = "@pipeline")]
    wasm: String,
    /// Events for the throughput runs and the restart.
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
    #[arg(long, default_value_t = 3, value_parser = partition_count)]
    partitions: i32,
    #[arg(long, default_value_t = 1000, value_parser = at_least_one)]
    batch_size: usize,
    /// Where the runs keep their data folders.
    #[arg(long, default_value = "target/bench-up")]
    data_dir: PathBuf,
    /// Seconds the idle run is measured.
    #[arg(long, default_value_t = 20)]
    idle_seconds: u64,
    /// Seconds the latency run is measured.
    #[arg(long, default_value_t = 20)]
    latency_seconds: u64,
    #[command(flatten)]
    limits: LimitArgs,
}

#[derive(Args)]
struct BenchTestArgs {
    /// Records of the case.
    #[arg(long, default_value_t = 100_000)]
    records: u64,
    /// Where the case and its input are written.
    #[arg(long, default_value = "target/bench-test")]
    dir: PathBuf,
    #[arg(long, default_value = "transform.yaml")]
    config: PathBuf,
    #[command(flatten)]
    limits: LimitArgs,
}

fn test_bench(args: BenchTestArgs) -> Result<()> {
    let host = args.limits.host()?;
    eprintln!(
        "timing `harness test` on a pipeline case of {} records with 3 replays…",
        args.records
    );
    let report = cases::bench_cases(&host, args.records, &args.dir, &args.config)?;
    println!("{report}");
    Ok(())
}

fn up_bench(args: BenchUpArgs) -> Result<()> {
    let (host, transform, spec) = deployed(&args.limits, &args.wasm, None)?;
    let report = bench_up(
        &host,
        &transform,
        &spec,
        &UpBench {
            module: std::sync::Arc::new(::up::extensions().module(&args.wasm)?.0.into_owned()),
            events: args.events,
            partitions: args.partitions,
            batch_size: args.batch_size,
            data_dir: args.data_dir,
            idle_seconds: args.idle_seconds,
            latency_seconds: args.latency_seconds,
        },
        stderr_logger(),
        &|line| eprintln!("{line}"),
    )?;
    print!("{report}");
    Ok(())
}

#[derive(Args)]
#[command(
    after_help = "The broker alone is the baseline: start one first, for example Tansu, \
`tansu --listener-url tcp://127.0.0.1:9092 --advertised-listener-url tcp://127.0.0.1:9092 \
--storage-engine memory://tansu/`, and give it with --brokers. The listener runs in this process over \
topics on disk, as `harness up --kafka-listen` serves them."
)]
struct BenchListenerArgs {
    /// The broker alone.
    #[command(flatten)]
    kafka: KafkaArgs,
    #[arg(long, default_value_t = 200_000, value_parser = at_least_one)]
    records: usize,
    /// Bytes of each record's value.
    #[arg(long, default_value_t = 300)]
    value_bytes: usize,
    #[arg(long, default_value_t = 3, value_parser = partition_count)]
    partitions: i32,
    /// Records a second of the latency run.
    #[arg(long, default_value_t = 1000.0)]
    latency_rate: f64,
    /// Seconds the latency run lasts.
    #[arg(long, default_value_t = 10)]
    latency_seconds: u64,
    /// Where the listener keeps its topics (created, then deleted).
    #[arg(long, default_value = "target/bench-listener")]
    data_dir: PathBuf,
}

fn listener_bench(args: BenchListenerArgs) -> Result<()> {
    let bench = listener::ListenerBench {
        baseline: args.kafka.required()?,
        records: args.records as u64,
        value_bytes: args.value_bytes,
        partitions: args.partitions,
        latency_rate: args.latency_rate,
        latency_seconds: args.latency_seconds,
        data_dir: args.data_dir,
    };
    print!("{}", listener::run(&bench, &|line| eprintln!("{line}"))?);
    Ok(())
}
