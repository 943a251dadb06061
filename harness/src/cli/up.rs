//! `harness up`: the whole pipeline in this process.

use std::io::IsTerminal;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use admin::DEFAULT_ADMIN;
use anyhow::Result;
use clap::Args;
use generator::{stop_on_ctrl_c, StreamArgs};
use harness::spec::TransformYaml;
use harness::up::{up, Endpoints, RegistryChoice, UpOptions};
use harness::{load_module, stderr_logger};

use super::args::{at_least_one, partition_count, registry_client, DeployArgs, LimitArgs};

#[derive(Args)]
#[command(
    after_help = "The generator writes to the in-process topic logs; the transform (the root \
transform.yaml's pipeline unless --wasm/--config say otherwise) is hosted exactly as `harness bridge` hosts it \
on a broker, with the same batches, batch log, commits and restarts after a failure; the dashboard reads \
results (and logs.dlq) and serves the page and API. More transforms can be deployed beside it through the \
admin endpoint (`harness deploy`, or rpk). Transforms that use Redpanda's Schema Registry SDK reach the \
registry up serves on --schema-registry-listen (Confluent's REST API, as Redpanda serves one), or the one \
--schema-registry names. Topics keep about --retention-mb each beyond what their readers \
have not committed, so memory stays bounded on a long run. With --count or --duration the dashboard keeps \
serving after the last event until Ctrl-C.\n\nExamples:\n  harness up\n  harness up --rate max --count \
1000000 --start 2025-08-17T00:00:00 --port 8090"
)]
pub struct UpArgs {
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
    /// The admin endpoint: Redpanda's admin API for transforms (loopback only by default).
    #[arg(long, default_value = DEFAULT_ADMIN)]
    admin_listen: SocketAddr,
    /// Where up serves its own schema registry (Confluent's REST API, Redpanda's port).
    #[arg(long, default_value = registry::DEFAULT_REGISTRY)]
    schema_registry_listen: SocketAddr,
    /// Use this Confluent-compatible registry, http[s]://[USER:PASSWORD@]HOST:PORT, instead of serving one.
    #[arg(long, value_name = "URL", value_parser = registry_client)]
    schema_registry: Option<Arc<registry::Client>>,
    #[command(flatten)]
    limits: LimitArgs,
}

pub fn run(mut args: UpArgs) -> Result<()> {
    let host = args.limits.host()?;
    let (transform, default_name) = load_module(&host, &args.wasm)?;
    if let Some(window) = args.window.take() {
        args.deploy.vars.push(("WINDOW_SIZE".into(), window));
    }
    let spec = args
        .deploy
        .resolve(&default_name, Some(TransformYaml::root()))?;
    let stop = stop_on_ctrl_c("stopping: finishing the batch in flight")?;
    let live = std::io::stderr().is_terminal();
    let started = Instant::now();
    let mut last_line = Instant::now();
    let mut announced_done = false;
    let registry_url = args
        .schema_registry
        .as_ref()
        .map_or(String::new(), |c| c.url().to_string());
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
            stream: *args.stream,
            partitions: args.partitions,
            listen: SocketAddr::new(args.bind, args.port),
            admin_listen: args.admin_listen,
            batch_size: args.batch_size,
            retention_bytes: args.retention_mb.saturating_mul(1 << 20),
            truth: args.truth,
            schema_registry: match args.schema_registry {
                Some(client) => RegistryChoice::Use(client),
                None => RegistryChoice::Serve(args.schema_registry_listen),
            },
        },
        stderr_logger(),
        stop,
        Duration::from_millis(500),
        &mut |at: &Endpoints| {
            let admin = at.admin;
            eprintln!("pipeline up in this process: generator → {topics} → dashboard");
            eprintln!("admin endpoint on {admin} (harness deploy / list / pause / resume / delete --admin {admin}, or rpk -X admin.hosts={admin})");
            match at.schema_registry {
                Some(address) => eprintln!("schema registry on http://{address} (Confluent's REST API; rpk -X registry.hosts={address})"),
                None => eprintln!("schema registry: {}", registry_url),
            }
            eprintln!("open http://{}/   (Ctrl-C to stop)", at.dashboard);
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
            if live {
                eprint!("\r{s} ");
            } else if last_line.elapsed() >= Duration::from_secs(10) {
                last_line = Instant::now();
                eprintln!("{s}");
            }
        },
    )?;
    if live {
        eprintln!();
    }
    eprintln!("stopped after {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}
