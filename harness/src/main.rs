//! `harness`: run Redpanda data transforms outside Redpanda, exactly as
//! Redpanda would run them.

use std::io::{BufReader, BufWriter, IsTerminal, Write};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use dashboard::service::until_set;
use generator::{stop_on_ctrl_c, StreamArgs};
use harness::admin::{deploy_to, list_from, serve as serve_admin, DEFAULT_ADMIN};
use harness::bench::{bench, key_capacity};
use harness::bench_broker::{bench_broker, per_sec, BrokerBench};
use harness::bench_swap::{bench_swap, Spread, SwapBench};
use harness::bridge::{Bridge, BridgeOptions, StartFrom};
use harness::records::read_input;
use harness::run::{run, RunOptions};
use harness::runtime::MAX_PARTITIONS;
use harness::spec::{parse_var, resolve, Overrides, TransformYaml};
use harness::transport::KafkaTransport;
use harness::up::{up, UpOptions};
use harness::{load_module as load, module_bytes, stderr_logger};
use transform_host::{Host, Limits, TransformSpec};

#[derive(Parser)]
#[command(
    name = "harness",
    version,
    about = "Run Redpanda data transforms (.wasm) outside Redpanda, with Redpanda's host contract",
    long_about = "Run Redpanda data transforms (.wasm) outside Redpanda, with Redpanda's host contract: \
the same ABI, WASI subset, memory limit, fuel and deploy-time checks.\n\n\
WASM is a path to a .wasm file, or one of the transforms built into the harness: \
@pipeline (the deployable transform of transform.yaml), @enrich, @aggregate, and @tee (every record to every output topic)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check a module as `rpk transform deploy` would, without running it.
    Validate {
        /// The .wasm file, or @pipeline, @enrich, @aggregate, @tee.
        wasm: String,
        #[command(flatten)]
        limits: LimitArgs,
    },
    /// Run records from a file through a transform; outputs go to stdout as JSON lines.
    #[command(after_help = "Input: one JSON object a line, \
{\"partition\":0,\"key\":\"k\",\"value\":…,\"headers\":{\"h\":\"v\"},\"timestamp\":1700000000000}. \
`value` is a string, null, or any JSON value (written compactly); every other field is optional. \
Output: {\"topic\":…,\"partition\":…,\"key\":…,\"value\":\"…\",\"headers\":{…}} a line. \
Transform logs go to stderr. A failing transform names the input line that caused it and the \
command exits with status 1.")]
    Run {
        /// The .wasm file, or @pipeline, @enrich, @aggregate, @tee.
        wasm: String,
        /// Input records, one JSON object a line; `-` for stdin.
        #[arg(long, short)]
        input: PathBuf,
        #[command(flatten)]
        deploy: DeployArgs,
        /// Most records in one batch; a batch is consecutive records of one partition.
        #[arg(long, default_value_t = 100, value_parser = at_least_one)]
        batch_size: usize,
        /// Partitions of every topic (default: highest input partition + 1).
        #[arg(long, value_parser = partition_count)]
        partitions: Option<i32>,
        #[command(flatten)]
        limits: LimitArgs,
    },
    /// Host a transform against a Kafka-protocol broker until stopped (Ctrl-C).
    #[command(
        after_help = "Consumes the input topic as consumer group <name>, runs batches through one VM for \
all partitions, produces to the output topics on the same partition number (mod their partition count), \
and commits input offsets after the outputs are acknowledged. Missing output topics are created with the \
input's partition count. Before each batch's outputs, the batch's offsets go to the topic \
_harness.<name>.batches, so that after a crash (even kill -9) the restarted bridge re-runs exactly that \
batch and writes none of its outputs twice. Run one bridge per transform."
    )]
    Bridge {
        /// The .wasm file, or @pipeline, @enrich, @aggregate, @tee.
        wasm: String,
        /// Kafka bootstrap servers, HOST:PORT[,…].
        #[arg(long)]
        brokers: String,
        #[command(flatten)]
        deploy: DeployArgs,
        /// Most records in one batch.
        #[arg(long, default_value_t = 1000, value_parser = at_least_one)]
        batch_size: usize,
        /// Where partitions with no committed offset start: `start` or `end` of the input topic.
        #[arg(long, default_value = "start", value_parser = parse_start_from)]
        from_offset: StartFrom,
        /// How often acknowledged input offsets are committed, in milliseconds.
        #[arg(long, default_value_t = 1000)]
        commit_interval_ms: u64,
        /// The admin endpoint for `harness deploy` and `harness list` (loopback only by default).
        #[arg(long, default_value = DEFAULT_ADMIN)]
        admin_listen: SocketAddr,
        #[command(flatten)]
        limits: LimitArgs,
    },
    /// Run the whole pipeline in this process: generator, in-process topics, the transform, the dashboard.
    #[command(
        after_help = "The generator writes to the in-process topic logs; the transform (the root \
transform.yaml's pipeline unless --wasm/--config say otherwise) is hosted exactly as `harness bridge` hosts it \
on a broker, with the same batches, batch log and commits; the dashboard reads results and serves the page and \
API. Topics keep about --retention-mb each beyond what their readers have not committed, so memory stays \
bounded on a long run. With --count or --duration the dashboard keeps serving after the last event until \
Ctrl-C.\n\nExamples:\n  harness up\n  harness up --rate max --count 1000000 --start 2025-08-17T00:00:00 --port 8081"
    )]
    Up {
        #[command(flatten)]
        stream: Box<StreamArgs>,
        /// Partitions of every topic.
        #[arg(long, default_value_t = 3, value_parser = partition_count)]
        partitions: i32,
        /// The transform's window size (its WINDOW_SIZE): 30s, 1m, 5m, 1h.
        #[arg(long)]
        window: Option<String>,
        /// The dashboard's port (0 picks a free one).
        #[arg(long, default_value_t = 8080)]
        port: u16,
        /// The dashboard's address; the default serves this machine only.
        #[arg(long, default_value = "127.0.0.1")]
        bind: IpAddr,
        /// The transform: a .wasm file, or @pipeline, @enrich, @aggregate, @tee.
        #[arg(long, default_value = "@pipeline")]
        wasm: String,
        #[command(flatten)]
        deploy: DeployArgs,
        /// Most records in one batch.
        #[arg(long, default_value_t = 1000, value_parser = at_least_one)]
        batch_size: usize,
        /// Megabytes each topic keeps beyond what its readers have not committed.
        #[arg(long, default_value_t = 16, value_parser = at_least_one)]
        retention_mb: usize,
        /// When the generator is done, write its exact totals per (campaign, channel, window) here.
        #[arg(long)]
        truth: Option<PathBuf>,
        /// The admin endpoint for `harness deploy` and `harness list` (loopback only by default).
        #[arg(long, default_value = DEFAULT_ADMIN)]
        admin_listen: SocketAddr,
        #[command(flatten)]
        limits: LimitArgs,
    },
    /// Swap in a new version of a transform that a running `harness up` or `harness bridge` hosts.
    #[command(
        after_help = "Like `rpk transform deploy` on a running Redpanda: the host validates the new \
module and starts it beside the running version; only if it starts does the host switch to it, between two \
batches, and the new version goes on from where the old one stopped (the committed offsets). Its environment \
is replaced as a whole by the --var flags (none: an empty environment); the topics cannot change. If the host \
refuses the module, the old version keeps running, and this command exits 1 with the reason.\n\n\
Example:\n  harness deploy --name marketing-pipeline --file new.wasm --var WINDOW_SIZE=1m --var ALLOWED_LATENESS=10s"
    )]
    Deploy {
        /// The name of the running transform.
        #[arg(long)]
        name: String,
        /// The new module: a .wasm file, or @pipeline, @enrich, @aggregate, @tee.
        #[arg(long)]
        file: String,
        /// An environment variable of the new version, KEY=VALUE; repeatable.
        #[arg(long = "var", value_parser = parse_var)]
        vars: Vec<(String, String)>,
        /// The host's admin endpoint.
        #[arg(long, default_value = DEFAULT_ADMIN)]
        admin: String,
    },
    /// Show the transforms a running host runs: name, version, status, lag, deploys, errors.
    List {
        /// The host's admin endpoint.
        #[arg(long, default_value = DEFAULT_ADMIN)]
        admin: String,
        /// The full status as JSON (with every swap's pause).
        #[arg(long)]
        json: bool,
    },
    /// Measure the generator and the bridge on a broker against the broker alone, and latency.
    #[command(
        after_help = "Every run uses topics of its own, named bench-<time>-…; delete them afterwards \
if the broker keeps data. Figures: the generator's events/s into a topic; the broker alone (one thread \
consumes every event and produces it to another topic, acks=all); the bridge running the transform over \
the same events; then, per --latency-rate, the generator at that rate with wall-clock event times and the \
time from the newest event of each pane to the pane being read from results (p50, p99)."
    )]
    BenchBroker {
        /// Kafka bootstrap servers, HOST:PORT[,…].
        #[arg(long)]
        brokers: String,
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
    },
    /// Measure hot swaps under a steady stream: the pause in processing and the new version's first batch.
    #[command(
        after_help = "Runs the pipeline in this process as `harness up` does (dashboard included, on a \
free port) at --rate events a second, lets it warm up, then deploys --swaps new versions of --wasm one \
after the other through the admin endpoint, as `harness deploy` does (each a custom section apart, so each \
is a version of its own). Figures over the swaps, p50, p99 and max: the pause (processing stopped for the \
switch between two batches); the new version's first batch against the median batch before the swap, per \
record; what a swap costs processing in all (the pause plus the first batch's extra time); and the time \
from the request to the switch, while the old version keeps processing."
    )]
    BenchSwap {
        /// The pipeline module to swap in.
        #[arg(long, default_value = "@pipeline")]
        wasm: String,
        #[arg(long, default_value_t = 40)]
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
    },
    /// Measure the pipeline transform in WASM against the same library natively.
    Bench {
        /// The pipeline module to measure.
        #[arg(long, default_value = "@pipeline")]
        wasm: String,
        /// Events to push through each side.
        #[arg(long, default_value_t = 1_000_000)]
        events: usize,
        #[arg(long, default_value_t = 500, value_parser = at_least_one)]
        batch_size: usize,
        /// Rounds per side; the best of each is reported.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// Distinct keys for the key-capacity run (every event a campaign of its own); 0 skips it.
        #[arg(long, default_value_t = 1_000_000)]
        keys: usize,
        #[arg(long, default_value = "transform.yaml")]
        config: PathBuf,
        #[command(flatten)]
        limits: LimitArgs,
    },
}

#[derive(Args)]
struct DeployArgs {
    /// A transform.yaml giving name, topics and environment (`up`: the root transform.yaml by default).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Transform name (default: from --config, else the file name).
    #[arg(long)]
    name: Option<String>,
    /// Input topic (default: from --config).
    #[arg(long)]
    input_topic: Option<String>,
    /// An output topic; repeat for several, in order.
    #[arg(long = "output-topic")]
    output_topics: Vec<String>,
    /// An environment variable for the transform, KEY=VALUE; repeatable.
    #[arg(long = "var", value_parser = parse_var)]
    vars: Vec<(String, String)>,
}

impl DeployArgs {
    /// The deployment: the flags over `--config`, else over `fallback`.
    fn resolve(self, default_name: &str, fallback: Option<TransformYaml>) -> Result<TransformSpec> {
        let yaml = match self.config.as_deref() {
            Some(path) => Some(TransformYaml::load(path)?),
            None => fallback,
        };
        resolve(
            yaml,
            Overrides {
                name: self.name,
                input_topic: self.input_topic,
                output_topics: self.output_topics,
                vars: self.vars,
            },
            default_name,
        )
    }
}

/// A count of at least 1.
fn at_least_one(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("`{s}` is not a whole number of at least 1")),
    }
}

fn partition_count(s: &str) -> Result<i32, String> {
    match s.parse::<i32>() {
        Ok(n) if (1..=MAX_PARTITIONS).contains(&n) => Ok(n),
        _ => Err(format!("`{s}`: use 1 to {MAX_PARTITIONS} partitions")),
    }
}

fn parse_start_from(s: &str) -> Result<StartFrom, String> {
    match s {
        "start" => Ok(StartFrom::Beginning),
        "end" => Ok(StartFrom::End),
        _ => Err(format!("`{s}`: use `start` or `end`")),
    }
}

#[derive(Args)]
struct LimitArgs {
    /// Linear memory limit in bytes (Redpanda's default: 2 MiB).
    #[arg(long, default_value_t = Limits::default().memory_bytes)]
    memory_limit: usize,
    /// Fuel a record may use before the transform is stopped.
    #[arg(long, default_value_t = Limits::default().fuel_per_record)]
    fuel_per_record: u64,
}

impl LimitArgs {
    fn host(&self) -> Result<Host> {
        Host::new(Limits {
            memory_bytes: self.memory_limit,
            fuel_per_record: self.fuel_per_record,
            ..Limits::default()
        })
        .map_err(|e| anyhow::anyhow!("cannot set up wasmtime: {e:#}"))
    }
}

fn main() -> ExitCode {
    match main_result() {
        Ok(()) => ExitCode::SUCCESS,
        // A reader that has seen enough (`| head`) is not an error.
        Err(e)
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) =>
        {
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn main_result() -> Result<()> {
    match Cli::parse().command {
        Command::Validate { wasm, limits } => {
            let (t, _) = load(&limits.host()?, &wasm)?;
            println!(
                "{wasm}: ok — ABI {:?}, {} bytes, {} bytes of memory at start (limit {})",
                t.abi, t.size_bytes, t.initial_memory_bytes, limits.memory_limit
            );
            Ok(())
        }
        Command::Run {
            wasm,
            input,
            deploy,
            batch_size,
            partitions,
            limits,
        } => {
            let host = limits.host()?;
            let (transform, default_name) = load(&host, &wasm)?;
            let spec = deploy.resolve(&default_name, None)?;
            let records = if input == Path::new("-") {
                read_input(std::io::stdin().lock())?
            } else {
                let file = std::fs::File::open(&input)
                    .with_context(|| format!("opening {}", input.display()))?;
                read_input(BufReader::new(file))?
            };
            let stdout = std::io::stdout().lock();
            let mut out = BufWriter::new(stdout);
            let mut write_error = None;
            let result = run(
                &host,
                &transform,
                spec,
                &records,
                &RunOptions {
                    batch_size,
                    partitions,
                },
                stderr_logger(),
                |line| {
                    if write_error.is_none() {
                        write_error = writeln!(out, "{}", line.to_json()).err();
                    }
                },
            );
            out.flush()?;
            if let Some(e) = write_error {
                return Err(e).context("writing output");
            }
            result
        }
        Command::Bridge {
            wasm,
            brokers,
            deploy,
            batch_size,
            from_offset,
            commit_interval_ms,
            admin_listen,
            limits,
        } => {
            let host = limits.host()?;
            let (transform, default_name) = load(&host, &wasm)?;
            let spec = deploy.resolve(&default_name, None)?;
            let stop = stop_on_ctrl_c("stopping: finishing the batch in flight and committing")?;
            eprintln!(
                "bridging {} → [{}] → {} on {brokers} (group {})",
                spec.input_topic,
                spec.name,
                spec.output_topics.join(", "),
                spec.name
            );
            let mut bridge = Bridge::start(
                &host,
                &transform,
                spec,
                &KafkaTransport { brokers },
                BridgeOptions {
                    batch_size,
                    from: from_offset,
                    commit_interval: Duration::from_millis(commit_interval_ms),
                },
                stderr_logger(),
            )?;
            let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
            let (admin, _server) = serve_admin(
                &runtime,
                admin_listen,
                bridge.admin(),
                until_set(stop.clone()),
            )?;
            eprintln!("admin endpoint on {admin} (harness deploy / harness list --admin {admin})");
            let started = Instant::now();
            let mut last = (started, 0u64);
            bridge.run(&stop, Duration::from_secs(5), &mut |p| {
                let now = Instant::now();
                let rate = (p.records_in - last.1) as f64 / (now - last.0).as_secs_f64();
                last = (now, p.records_in);
                eprintln!(
                    "{} records in, {} out, {} batches; {rate:.0} records/s",
                    p.records_in, p.records_out, p.batches
                );
            })?;
            let p = bridge.progress;
            eprintln!(
                "stopped after {:.1} s: {} records in, {} out, {} batches",
                started.elapsed().as_secs_f64(),
                p.records_in,
                p.records_out,
                p.batches
            );
            Ok(())
        }
        Command::Up {
            stream,
            partitions,
            window,
            port,
            bind,
            wasm,
            mut deploy,
            batch_size,
            retention_mb,
            truth,
            admin_listen,
            limits,
        } => {
            let host = limits.host()?;
            let (transform, default_name) = load(&host, &wasm)?;
            if let Some(window) = window {
                deploy.vars.push(("WINDOW_SIZE".into(), window));
            }
            let spec = deploy.resolve(&default_name, Some(TransformYaml::root()))?;
            let stop = stop_on_ctrl_c("stopping: finishing the batch in flight")?;
            let live = std::io::stderr().is_terminal();
            let started = Instant::now();
            let mut last_line = Instant::now();
            let mut announced_done = false;
            let topics = format!(
                "{} → [{}] → {}",
                spec.input_topic,
                spec.name,
                spec.output_topics.join(", ")
            );
            up(
                &host,
                &transform,
                spec,
                UpOptions {
                    stream: *stream,
                    partitions,
                    listen: SocketAddr::new(bind, port),
                    admin_listen,
                    batch_size,
                    retention_bytes: retention_mb.saturating_mul(1 << 20),
                    truth,
                },
                stderr_logger(),
                stop,
                Duration::from_millis(500),
                &mut |address, admin| {
                    eprintln!("pipeline up in this process: generator → {topics} → dashboard");
                    eprintln!(
                        "admin endpoint on {admin} (harness deploy / harness list --admin {admin})"
                    );
                    eprintln!("open http://{address}/   (Ctrl-C to stop)");
                },
                &mut |s| {
                    if !s.generating && !announced_done {
                        announced_done = true;
                        if live {
                            eprintln!();
                        }
                        eprintln!(
                            "the generator is done after {} events; the dashboard keeps serving until Ctrl-C",
                            s.generated
                        );
                    }
                    let line = format!(
                        "{:>10} events generated · {:>10} transformed in {:>8} batches · {:>8} outputs · {:>6} windows on the dashboard · {} dead letters · topics {} MiB, transform {} KiB",
                        s.generated, s.bridge.records_in, s.bridge.batches, s.bridge.records_out, s.windows, s.dead_letters,
                        s.topic_bytes >> 20, s.transform_bytes >> 10
                    );
                    if live {
                        eprint!("\r{line} ");
                    } else if last_line.elapsed() >= Duration::from_secs(10) {
                        last_line = Instant::now();
                        eprintln!("{line}");
                    }
                },
            )?;
            if live {
                eprintln!();
            }
            eprintln!("stopped after {:.1} s", started.elapsed().as_secs_f64());
            Ok(())
        }
        Command::Deploy {
            name,
            file,
            vars,
            admin,
        } => {
            let module = module_bytes(&file)?;
            let version = deploy_to(&admin, &name, &module, &vars)?;
            println!("{name}: now running version {version}");
            Ok(())
        }
        Command::List { admin, json } => {
            let transforms = list_from(&admin)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&transforms)?);
                return Ok(());
            }
            println!(
                "{:<24} {:<13} {:<8} {:>12} {:>12} {:>8} {:>7}  ERRORS",
                "NAME", "VERSION", "STATUS", "IN", "OUT", "LAG", "DEPLOYS"
            );
            for t in transforms {
                let lag = t.lag.map_or("?".into(), |l| l.to_string());
                println!(
                    "{:<24} {:<13} {:<8} {:>12} {:>12} {:>8} {:>7}  {}",
                    t.name,
                    t.version,
                    t.status,
                    t.records_in,
                    t.records_out,
                    lag,
                    t.deploys,
                    t.errors.last().map_or("-", String::as_str)
                );
            }
            Ok(())
        }
        Command::BenchBroker {
            brokers,
            wasm,
            events,
            partitions,
            batch_size,
            latency_rates,
            latency_seconds,
            config,
            limits,
        } => {
            let host = limits.host()?;
            let (transform, name) = load(&host, &wasm)?;
            let spec = resolve(
                Some(TransformYaml::load(&config)?),
                Overrides::default(),
                &name,
            )?;
            let bench = BrokerBench {
                brokers,
                events,
                partitions,
                batch_size,
                latency_rates,
                latency_seconds,
            };
            let report =
                bench_broker(&host, &transform, &spec, &bench, stderr_logger(), &|line| {
                    eprintln!("{line}")
                })?;
            println!(
                "generator → broker:  {:>10.0} events/s",
                per_sec(events, report.generator)
            );
            println!(
                "broker alone (copy): {:>10.0} events/s",
                per_sec(events, report.copy)
            );
            println!(
                "bridge ({wasm}): {:>10.0} events/s  ({:.2}x the broker alone's time)",
                per_sec(events, report.bridge),
                report.bridge.as_secs_f64() / report.copy.as_secs_f64()
            );
            for l in &report.latencies {
                println!(
                    "latency at {:>6.0} events/s: p50 {} ms, p99 {} ms, max {} ms ({} panes)",
                    l.rate, l.p50_ms, l.p99_ms, l.max_ms, l.panes
                );
            }
            Ok(())
        }
        Command::BenchSwap {
            wasm,
            swaps,
            rate,
            partitions,
            batch_size,
            limits,
        } => {
            if !(rate.is_finite() && rate > 0.0) {
                anyhow::bail!("--rate must be a positive number of events a second");
            }
            if swaps == 0 {
                anyhow::bail!("--swaps must be at least 1");
            }
            let host = limits.host()?;
            let (transform, name) = load(&host, &wasm)?;
            let module = module_bytes(&wasm)?;
            let spec = resolve(Some(TransformYaml::root()), Overrides::default(), &name)?;
            eprintln!("swapping {wasm} {swaps} times under {rate} events/s…");
            let report = bench_swap(
                &host,
                &transform,
                &module,
                spec,
                &SwapBench {
                    swaps,
                    rate,
                    partitions,
                    batch_size,
                },
                stderr_logger(),
                &|line| eprintln!("{line}"),
            )?;
            let show = |label: &str, spread: Option<Spread>, unit: &str| match spread {
                Some(s) => println!(
                    "{label:<34} p50 {:>8.2}{unit}  p99 {:>8.2}{unit}  max {:>8.2}{unit}",
                    s.p50, s.p99, s.max
                ),
                None => println!("{label:<34} not measured"),
            };
            println!(
                "swaps:                             {} ({} records processed meanwhile)",
                report.swaps.len(),
                report.records_in
            );
            show("pause (the switch itself):", report.pause_ms(), " ms");
            show(
                "first batch vs the batches before:",
                report.first_batch_ratio(),
                "x ",
            );
            show("processing lost per swap:", report.lost_ms(), " ms");
            show(
                "request to switch (old one runs):",
                report.request_ms(),
                " ms",
            );
            Ok(())
        }
        Command::Bench {
            wasm,
            events,
            batch_size,
            rounds,
            keys,
            config,
            limits,
        } => {
            let host = limits.host()?;
            let (transform, name) = load(&host, &wasm)?;
            let yaml = TransformYaml::load(&config)?;
            let spec = resolve(Some(yaml), Overrides::default(), &name)?;
            eprintln!("benchmarking {wasm}: {events} events, batches of {batch_size}, best of {rounds} rounds per side…");
            let report = bench(
                &host,
                &transform,
                &spec,
                events,
                batch_size,
                rounds,
                stderr_logger(),
            )?;
            println!("events:            {}", report.events);
            println!("records written:   {}", report.outputs);
            println!(
                "wasm (harness):    {:>12.0} events/s  ({:.3} s, one core)",
                report.wasm_events_per_sec(),
                report.wasm.as_secs_f64()
            );
            println!(
                "native (library):  {:>12.0} events/s  ({:.3} s, one core)",
                report.native_events_per_sec(),
                report.native.as_secs_f64()
            );
            println!("wasm/native cost:  {:>12.2}x", report.cost_ratio());
            println!(
                "guest memory:      {:>12} KiB after the seed's stream (limit {} KiB)",
                report.wasm_memory_bytes >> 10,
                limits.memory_limit >> 10
            );
            if keys > 0 {
                eprintln!("running {keys} events of {keys} distinct keys…");
                let capacity =
                    key_capacity(&host, &transform, &spec, keys, batch_size, stderr_logger())?;
                println!(
                    "distinct keys:     {:>12} in {:.1} s, no trap; guest memory {} KiB at most",
                    capacity.keys,
                    capacity.took.as_secs_f64(),
                    capacity.memory_bytes >> 10
                );
                println!(
                    "per key in a batch: {:>11.0} bytes of guest memory (batches of {batch_size}); none kept between batches",
                    capacity.bytes_per_key_in_a_batch(report.wasm_memory_bytes)
                );
            }
            Ok(())
        }
    }
}
