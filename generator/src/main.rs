//! `generator`: synthetic ad events for the `logs` topic, to a file (the
//! harness's input format) or to a Kafka-protocol broker.

use std::io::{BufWriter, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::Duration;

use analytics::time::{parse_duration_ms, parse_timestamp_ms};
use anyhow::{bail, Context, Result};
use clap::Parser;
use generator::kafka::ensure_topic;
use generator::{
    generate, stop_on_ctrl_c, Clock, FileSink, KafkaSink, Plan, Profile, Progress, Sink, Stream,
    Truth,
};

#[derive(Parser)]
#[command(
    name = "generator",
    version,
    about = "Synthetic ad events (impressions, clicks, conversions) for the `logs` topic",
    after_help = "Examples:\n  \
generator --output logs.jsonl --count 100000 --seed 1 --start 2025-08-17T14:00:00 --truth truth.json\n  \
generator --brokers 127.0.0.1:9092 --rate 20"
)]
struct Cli {
    /// Write records in the harness's input format to this file (`-` for stdout) instead of a broker.
    #[arg(long, short, conflicts_with = "brokers")]
    output: Option<PathBuf>,
    /// Kafka bootstrap servers, HOST:PORT[,…].
    #[arg(long)]
    brokers: Option<String>,
    #[arg(long, default_value = "logs")]
    topic: String,
    /// Partitions: of the topic when it is created (an existing topic keeps its own), and of the file records.
    #[arg(long, default_value_t = 3)]
    partitions: i32,
    /// Events a second, or `max` for as fast as possible.
    #[arg(long, default_value = "15")]
    rate: String,
    /// Stop after this many events.
    #[arg(long)]
    count: Option<u64>,
    /// Stop after this long: 30s, 5m, 1h.
    #[arg(long)]
    duration: Option<String>,
    /// Seed of the stream; the same seed and --start give the same stream.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Simulated event time from this instant (naive = UTC, or RFC 3339), for back-fills;
    /// default: the wall clock.
    #[arg(long)]
    start: Option<String>,
    /// Share of malformed events, 0 to 1.
    #[arg(long, default_value_t = 0.0)]
    invalid_ratio: f64,
    /// Write the exact totals per (campaign, channel, window) here, as JSON.
    #[arg(long)]
    truth: Option<PathBuf>,
    /// Window size of the --truth totals.
    #[arg(long, default_value = "1m")]
    window: String,
    /// Campaign ids, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "brand_awareness,spring_sale,retargeting"
    )]
    campaigns: Vec<String>,
    /// Channels, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "email,facebook_ads,google_ads,tiktok"
    )]
    channels: Vec<String>,
    /// Weights of impression, click, conversion.
    #[arg(long, value_delimiter = ',', default_value = "80,15,5")]
    weights: Vec<u32>,
    /// No progress line.
    #[arg(long, short)]
    quiet: bool,
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    let rate = match cli.rate.as_str() {
        "max" => None,
        r => match r.parse::<f64>() {
            Ok(r) if r > 0.0 && r.is_finite() => Some(r),
            _ => bail!("--rate must be a positive number of events a second, or `max`; got `{r}`"),
        },
    };
    let duration = cli
        .duration
        .as_deref()
        .map(|d| parse_duration_ms(d).with_context(|| format!("--duration `{d}`: use 30s, 5m, 1h")))
        .transpose()?
        .map(|ms| Duration::from_millis(ms as u64));
    let window_ms = parse_duration_ms(&cli.window)
        .with_context(|| format!("--window `{}`: use 30s, 1m, 1h", cli.window))?;
    let clock = match &cli.start {
        None => Clock::Wall,
        Some(s) => Clock::Simulated {
            next_ms: parse_timestamp_ms(s)
                .with_context(|| format!("--start `{s}` is not a timestamp"))?,
        },
    };
    if cli.partitions < 1 {
        bail!("--partitions must be at least 1");
    }
    if !(0.0..=1.0).contains(&cli.invalid_ratio) {
        bail!("--invalid-ratio must be between 0 and 1");
    }
    if cli.weights.len() != 3 || cli.weights.iter().all(|&w| w == 0) {
        bail!("--weights takes three numbers, impression,click,conversion, not all zero");
    }
    if cli
        .campaigns
        .iter()
        .chain(&cli.channels)
        .any(|n| n.is_empty() || n.contains(['"', '\\', '|']))
    {
        bail!("campaign and channel names must be non-empty, without quotes, backslashes or `|`");
    }
    let profile = Profile {
        campaigns: cli.campaigns.clone(),
        channels: cli.channels.clone(),
        weights: [cli.weights[0], cli.weights[1], cli.weights[2]],
        invalid_ratio: cli.invalid_ratio,
        ..Profile::default()
    };
    let mut partitions = cli.partitions;
    let live = !cli.quiet && std::io::stderr().is_terminal();
    let mut sink: Box<dyn Sink> = match (&cli.output, &cli.brokers) {
        (Some(path), _) if path.as_os_str() == "-" => {
            Box::new(FileSink::new(BufWriter::new(std::io::stdout().lock())))
        }
        (Some(path), _) => {
            let file = std::fs::File::create(path)
                .with_context(|| format!("creating {}", path.display()))?;
            Box::new(FileSink::new(BufWriter::with_capacity(1 << 20, file)))
        }
        (None, Some(brokers)) => {
            partitions = ensure_topic(brokers, &cli.topic, cli.partitions)?;
            if partitions != cli.partitions && !cli.quiet {
                eprintln!(
                    "topic {} exists with {partitions} partitions; using those",
                    cli.topic
                );
            }
            let mut sink = KafkaSink::new(brokers, &cli.topic)?;
            let quiet = cli.quiet;
            sink.waiting = Box::new(move |n| {
                if !quiet {
                    eprintln!("waiting for the broker to acknowledge {n} events…");
                }
            });
            Box::new(sink)
        }
        (None, None) => bail!("say where the events go: --brokers HOST:PORT or --output FILE"),
    };
    let plan = Plan {
        rate,
        count: cli.count,
        duration,
        partitions,
    };
    // Ctrl-C stops the stream; what was sent is flushed and the truth written.
    let stop = stop_on_ctrl_c("stopping: flushing what was sent")?;
    let mut stream = Stream::new(profile.clone(), cli.seed, clock);
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
    if progress.failed > 0 {
        bail!("{} events could not be delivered", progress.failed);
    }
    Ok(())
}
