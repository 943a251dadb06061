//! `harness bench`, `bench-broker`, `bench-swap` and `bench-up`.

use kafka_client::KafkaArgs;
use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;
use harness::bench::broker::{bench_broker, BrokerBench};
use harness::bench::swap::{bench_swap, SwapBench};
use harness::bench::up::{bench_up, UpBench};
use harness::bench::{bench, key_capacity};
use harness::spec::{resolve, Overrides, TransformYaml};
use harness::{load_module, module_bytes, stderr_logger};

use super::args::{at_least_one, partition_count, LimitArgs};

#[derive(Args)]
pub struct BenchArgs {
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

pub fn run(args: BenchArgs) -> Result<()> {
    let host = args.limits.host()?;
    let (transform, name) = load_module(&host, &args.wasm)?;
    let spec = resolve(
        Some(TransformYaml::load(&args.config)?),
        Overrides::default(),
        &name,
    )?;
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
pub struct BenchBrokerArgs {
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

pub fn broker(args: BenchBrokerArgs) -> Result<()> {
    let host = args.limits.host()?;
    let (transform, name) = load_module(&host, &args.wasm)?;
    let spec = resolve(
        Some(TransformYaml::load(&args.config)?),
        Overrides::default(),
        &name,
    )?;
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
pub struct BenchSwapArgs {
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

pub fn swap(args: BenchSwapArgs) -> Result<()> {
    if !(args.rate.is_finite() && args.rate > 0.0) {
        bail!("--rate must be a positive number of events a second");
    }
    let host = args.limits.host()?;
    let (transform, name) = load_module(&host, &args.wasm)?;
    let module = module_bytes(&args.wasm)?;
    let spec = resolve(Some(TransformYaml::root()), Overrides::default(), &name)?;
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
pub struct BenchUpArgs {
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
pub struct BenchTestArgs {
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

pub fn test(args: BenchTestArgs) -> Result<()> {
    let host = args.limits.host()?;
    eprintln!(
        "timing `harness test` on a pipeline case of {} records with 3 replays…",
        args.records
    );
    let report = harness::bench::cases::bench_cases(&host, args.records, &args.dir, &args.config)?;
    println!("{report}");
    Ok(())
}

pub fn up(args: BenchUpArgs) -> Result<()> {
    let host = args.limits.host()?;
    let (transform, name) = load_module(&host, &args.wasm)?;
    let spec = resolve(Some(TransformYaml::root()), Overrides::default(), &name)?;
    let report = bench_up(
        &host,
        &transform,
        &spec,
        &UpBench {
            module: std::sync::Arc::new(module_bytes(&args.wasm)?.into_owned()),
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
