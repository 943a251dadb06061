//! `harness`: run Redpanda data transforms outside Redpanda, exactly as
//! Redpanda would run them.

use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use harness::bench::bench;
use harness::records::read_input;
use harness::run::{run, RunOptions};
use harness::spec::{parse_var, resolve, Overrides, TransformYaml};
use harness::{load_module as load, stderr_logger};
use transform_host::{Host, Limits};

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
        #[arg(long, default_value_t = 100)]
        batch_size: usize,
        /// Partitions of every topic (default: highest input partition + 1).
        #[arg(long)]
        partitions: Option<i32>,
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
        #[arg(long, default_value_t = 500)]
        batch_size: usize,
        /// Rounds per side; the best of each is reported.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        #[arg(long, default_value = "transform.yaml")]
        config: PathBuf,
        #[command(flatten)]
        limits: LimitArgs,
    },
}

#[derive(Args)]
struct DeployArgs {
    /// A transform.yaml giving name, topics and environment.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Transform name (default: from --config, else the file name).
    #[arg(long)]
    name: Option<String>,
    #[arg(long)]
    input_topic: Option<String>,
    /// An output topic; repeat for several, in order.
    #[arg(long = "output-topic")]
    output_topics: Vec<String>,
    /// An environment variable for the transform, KEY=VALUE; repeatable.
    #[arg(long = "var", value_parser = parse_var)]
    vars: Vec<(String, String)>,
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
            let yaml = deploy
                .config
                .as_deref()
                .map(TransformYaml::load)
                .transpose()?;
            let spec = resolve(
                yaml,
                Overrides {
                    name: deploy.name,
                    input_topic: deploy.input_topic,
                    output_topics: deploy.output_topics,
                    vars: deploy.vars,
                },
                &default_name,
            )?;
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
        Command::Bench {
            wasm,
            events,
            batch_size,
            rounds,
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
            Ok(())
        }
    }
}
