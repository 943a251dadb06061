//! `generator`: synthetic ad events for the `logs` topic, to a file (the
//! harness's input format) or to a Kafka-protocol broker.

use analytics::time::parse_duration_ms;
use anyhow::{bail, Context, Result};
use clap::Parser;
use generator::{generate, FileSink, Format, Progress, Stream, StreamArgs, Truth, ValueFormat};
use kafka_client::{check, KafkaArgs, KafkaTransport};
use shutdown::stop_on_ctrl_c;
use std::io::{BufWriter, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use topic_io::{Sink, Transport};

#[derive(Parser)]
#[command(
    name = "generator",
    version,
    about = "Synthetic ad events (impressions, clicks, conversions) for the `logs` topic",
    after_help = "Examples:\n  \
generator --output logs.jsonl --count 100000 --seed 1 --start 2025-08-17T14:00:00 --truth truth.json\n  \
generator --brokers 127.0.0.1:9092 --rate 20\n  \
generator --brokers broker:9093 --kafka-config client.properties --rate 20\n  \
generator --brokers 127.0.0.1:9092 --format avro --schema-registry http://127.0.0.1:8081"
)]
struct Cli {
    /// Write records in the harness's input format to this file (`-` for stdout) instead of a broker.
    #[arg(long, short, conflicts_with = "brokers")]
    output: Option<PathBuf>,
    #[command(flatten)]
    kafka: KafkaArgs,
    #[arg(long, default_value = "logs")]
    topic: String,
    /// Partitions: of the topic when it is created (an existing topic keeps its own), and of the file records.
    #[arg(long, default_value_t = 3)]
    partitions: i32,
    #[command(flatten)]
    stream: StreamArgs,
    /// Write the exact totals per (campaign, channel, window) here, as JSON.
    #[arg(long)]
    truth: Option<PathBuf>,
    /// Window size of the --truth totals.
    #[arg(long, default_value = "1m")]
    window: String,
    /// The schema registry that --format avro registers its schema with.
    #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:8081")]
    schema_registry: String,
    /// No progress line.
    #[arg(long, short)]
    quiet: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // What the broker sink says while it waits (RUST_LOG for more).
    let level = if cli.quiet { "warn" } else { "info" };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level)),
        )
        .with_writer(std::io::stderr)
        .without_time()
        .with_target(false)
        .with_level(false)
        .init();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    let window_ms = parse_duration_ms(&cli.window)
        .filter(|&ms| ms > 0)
        .with_context(|| {
            format!(
                "--window `{}`: use a positive duration such as 30s, 1m, 1h",
                cli.window
            )
        })?;
    let profile = cli.stream.profile()?;
    let clock = cli.stream.clock()?;
    // Checked before anything is created; an existing topic may change the partitions.
    let mut plan = cli.stream.plan(cli.partitions)?;
    let live = !cli.quiet && std::io::stderr().is_terminal();
    let kafka = match &cli.output {
        Some(_) => None,
        None => cli.kafka.config()?,
    };
    let mut sink: Box<dyn Sink> = match (&cli.output, &kafka) {
        (Some(path), _) if path.as_os_str() == "-" => {
            Box::new(FileSink::new(BufWriter::new(std::io::stdout())))
        }
        (Some(path), _) => {
            let file = std::fs::File::create(path)
                .with_context(|| format!("creating {}", path.display()))?;
            Box::new(FileSink::new(BufWriter::with_capacity(1 << 20, file)))
        }
        (None, Some(kafka)) => {
            check(kafka)?;
            let broker = KafkaTransport {
                kafka: kafka.clone(),
            };
            plan.partitions = broker.ensure_topic(&cli.topic, cli.partitions)?;
            if plan.partitions != cli.partitions && !cli.quiet {
                eprintln!(
                    "topic {} exists with {} partitions; using those",
                    cli.topic, plan.partitions
                );
            }
            broker.sink()?
        }
        (None, None) => bail!("say where the events go: --brokers HOST:PORT or --output FILE"),
    };
    // Ctrl-C stops the stream; what was sent is flushed and the truth written.
    let stop = stop_on_ctrl_c("stopping: flushing what was sent")?;
    let format = match cli.stream.format {
        ValueFormat::Json => Format::Json,
        ValueFormat::Avro => {
            let registry = registry::Client::new(&cli.schema_registry)
                .map_err(|e| anyhow::anyhow!("--schema-registry {e}"))?;
            cli.stream.format(&cli.topic, &registry)?
        }
    };
    let mut stream = Stream::new(profile.clone(), cli.stream.seed, clock).with_format(format);
    let mut truth = Truth::new(window_ms);
    let mut report = |p: &Progress| {
        if live {
            eprint!(
                "\r{:>12} events  {:>10.0} events/s  {:>8} invalid  {:>6} failed ",
                p.sent,
                p.rate(),
                p.invalid,
                p.failed
            );
        }
    };
    let progress = generate(
        &mut stream,
        &plan,
        &cli.topic,
        sink.as_mut(),
        &mut truth,
        &|| stop.load(Ordering::Relaxed),
        &mut report,
    )?;
    if live {
        eprintln!();
    }
    if let Some(path) = &cli.truth {
        let mut out = BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        );
        serde_json::to_writer_pretty(&mut out, &truth.file(&profile))?;
        out.write_all(b"\n")?;
        out.flush()?;
    }
    if !cli.quiet {
        eprintln!(
            "generated {} events ({} invalid) in {:.2} s: {:.0} events/s",
            progress.sent,
            progress.invalid,
            progress.elapsed.as_secs_f64(),
            progress.rate()
        );
    }
    Ok(())
}
