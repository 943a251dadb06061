//! `dashboard`: reads panes from `results` (a broker or a file), merges them
//! into windows exactly, and serves the live page, the API and metrics.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use analytics::time::{format_duration, parse_duration_ms};
use anyhow::{bail, Context, Result};
use clap::{Args, Parser};
use dashboard::keep::KeepArgs;
use dashboard::pacing::AlertArgs;
use dashboard::service::Settings;
use dashboard::source::{FileSource, Source, TopicSource, DEAD_LETTER_TOPIC};
use history::{History, Place};
use http_access::{AccessArgs, Listen};
use kafka_client::{KafkaArgs, KafkaTransport};

#[derive(Parser)]
#[command(
    name = "dashboard",
    version,
    about = "The live marketing dashboard: panes from `results` merged into windows, a page, an API",
    after_help = "The history of every window merged is kept in SQLite, in --history-dir (else in \
memory), in three tiers: the transform's windows (--keep-minutes), hourly and daily rollups (--keep-hours, \
--keep-days), with the positions in the topics it was merged up to. Started again on the same folder, the \
dashboard goes on from there, also after a kill -9; the API answers any range from the coarsest tier that \
holds it exactly.\n\nExamples:\n  \
dashboard --brokers 127.0.0.1:9092 --history-dir ./history\n  \
harness run @pipeline --config transform.yaml --input logs.jsonl > out.jsonl && dashboard --results-file out.jsonl\n\n\
Endpoints: / (the page), /api/windows and /api/summary (filters: campaign, channel, from, to or \
date_preset=today|yesterday|last_7d|last_30d|this_month|last_month|maximum, tz=; bucket=1h|1d|1w|1mo; \
compare=previous on the summary), /api/export (the same filters, format=csv|parquet), /api/top (by=ROAS&n=5&dimension=campaign|channel), /api/pacing, /api/alerts, \
/api/status, /api/updates (server-sent events), /healthz, /metrics (Prometheus)."
)]
struct Cli {
    #[command(flatten)]
    serve: Serve,
}

#[derive(Args)]
struct Serve {
    /// Read --topic from the beginning, then live, from these brokers.
    #[command(flatten)]
    kafka: KafkaArgs,
    /// Records in the harness's output format (`harness run` writes them); followed as it grows.
    #[arg(long, conflicts_with = "brokers")]
    results_file: Option<PathBuf>,
    /// The topic of the panes.
    #[arg(long, default_value = "results")]
    topic: String,
    /// The dead-letter topic, read beside the panes: its counts by kind and latest records show
    /// in the page, /api/status and /metrics (`''` for none).
    #[arg(long, default_value = DEAD_LETTER_TOPIC)]
    dlq_topic: String,
    /// Where the page and the API listen; beyond loopback only with authentication (or
    /// --allow-unauthenticated).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    #[command(flatten)]
    access: AccessArgs,
    /// The transform's ALLOWED_LATENESS: a window is final once its partition's watermark
    /// (the second newest event time of its latest panes) is this far past its end.
    #[arg(long, default_value_t = format_duration(Settings::default().lateness_ms))]
    lateness: String,
    /// Keep the history in this folder (a file history.sqlite, which sqlite3 and DuckDB read);
    /// without it, the history is kept in memory only and rebuilt from the topic at each start.
    #[arg(long, value_name = "DIR")]
    history_dir: Option<PathBuf>,
    /// Delete the history in --history-dir first, saying what goes, and rebuild it from the
    /// topic.
    #[arg(long, requires = "history_dir")]
    fresh: bool,
    #[command(flatten)]
    keep: KeepArgs,
    /// At most this many pages receive live updates at once.
    #[arg(long, default_value_t = Settings::default().max_streams)]
    max_clients: usize,
    #[command(flatten)]
    alerts: AlertArgs,
}

fn main() -> ExitCode {
    // RUST_LOG as Rust users expect; errors only by default.
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    match serve(Cli::parse().serve) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn serve(cli: Serve) -> Result<()> {
    let duration = |flag: &str, v: &str| {
        parse_duration_ms(v).with_context(|| format!("--{flag} `{v}`: use 10s, 5m, 24h"))
    };
    let (thresholds, alert_webhook) = cli.alerts.settings()?;
    let history = match cli.history_dir {
        Some(folder) => {
            if cli.fresh {
                match History::remove(&folder)? {
                    Some(what) => eprintln!("--fresh: deleting {what}"),
                    None => eprintln!("--fresh: {} holds no history yet", folder.display()),
                }
            }
            Place::Folder(folder)
        }
        None => Place::Memory,
    };
    let settings = Settings {
        lateness_ms: duration("lateness", &cli.lateness)?,
        hot_ms: cli.keep.hot_ms()?,
        history,
        spans: cli.keep.spans()?,
        max_streams: cli.max_clients,
        thresholds,
        alert_webhook,
    };
    let dlq_topic = Some(cli.dlq_topic).filter(|t| !t.is_empty());
    let kafka = match &cli.results_file {
        Some(_) => None,
        None => cli.kafka.config()?,
    };
    let source: Box<dyn Source> = match (kafka, cli.results_file) {
        (Some(kafka), _) => Box::new(TopicSource {
            transport: Arc::new(KafkaTransport { kafka }),
            topic: cli.topic,
            dlq_topic,
        }),
        (None, Some(path)) if path.is_dir() => {
            bail!(
                "--results-file {}: that is a directory; give the file `harness run` wrote",
                path.display()
            )
        }
        (None, Some(path)) if !path.is_file() => {
            bail!("--results-file {}: no such file", path.display())
        }
        (None, Some(path)) => Box::new(FileSource {
            path,
            topic: cli.topic,
            dlq_topic,
        }),
        (None, None) => {
            bail!("say where the panes come from: --brokers HOST:PORT or --results-file FILE")
        }
    };
    let access = cli.access.access()?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let stop = shutdown::stop_on_ctrl_c("stopping")?;
    let served = dashboard::service::serve(
        &runtime,
        settings,
        source,
        Listen::new("the dashboard", "--listen", cli.listen),
        &access,
        stop.clone(),
    )?;
    {
        let state = served.shared.state.read();
        eprintln!(
            "dashboard on {}://{} — panes from {}; history in {} ({})",
            access.scheme(),
            served.address,
            state.source.source,
            state.history.place(),
            state.history.spans().describe()
        );
    }
    // The server ends once Ctrl-C (or SIGTERM) sets `stop`.
    let _ = runtime.block_on(served.server);
    Ok(())
}
