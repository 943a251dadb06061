//! `harness up`'s command line.

use std::io::IsTerminal;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use admin::DEFAULT_ADMIN;
use anyhow::{bail, Context, Result};
use clap::Args;
use dashboard::keep::KeepArgs;
use dashboard::pacing::AlertArgs;
use generator::StreamArgs;
use hosting::cli::args::{
    admin_url, at_least_one, partition_count, registry_client, DeployArgs, LimitArgs,
};
use hosting::spec::TransformYaml;
use hosting::{stderr_logger, Extensions};
use http_access::AccessArgs;
use kafka_client::{check, KafkaArgs};
use shutdown::stop_on_ctrl_c;
use topics::Retention;

use crate::kafka::{BootstrapUser, KafkaListen, KafkaOptions};
use crate::{dashboard_listen, Endpoints, RegistryChoice, Stack, Storage, UpOptions};

#[derive(Args)]
#[command(
    after_help = "The generator writes to the topic logs; the transform (the root \
transform.yaml's pipeline unless --wasm/--config say otherwise) is hosted exactly as `harness bridge` hosts it \
on a broker, with the same batches, batch log, commits and restarts after a failure; the dashboard reads \
results (and logs.dlq) and serves the page and API. More transforms can be deployed beside it through the \
admin endpoint (`harness deploy`, or rpk). Transforms that use Redpanda's Schema Registry SDK reach the \
registry up serves on --schema-registry-listen (Confluent's REST API, as Redpanda serves one), or the one \
--schema-registry names.\n\nThe topics, the transforms' committed positions and the generator's place in its \
stream are kept in a data folder (--data-dir; by default a per-user one, printed at start). Started again on \
it, everything goes on where it stopped, also after a kill -9: each transform from its exact position, the \
dashboard from the history it keeps there (every window merged, in tiers: --keep-minutes, --keep-hours, \
--keep-days), a --count/--seed generator with the next event of the same stream. --fresh \
starts over; --in-memory keeps nothing. With --brokers, the same pipeline runs on a Kafka-protocol broker's \
topics instead (the code of `harness bridge`, the generator's and the dashboard's broker clients), and any \
client's events in logs reach the dashboard. On disk, records go after --retention-time or beyond \
--retention-size a partition, once every reader has read them; in memory, topics keep about --retention-mb \
each beyond what their readers have not committed. With --count or --duration the dashboard keeps \
serving after the last event until Ctrl-C.\n\nExamples:\n  harness up\n  harness up --rate max --count \
1000000 --start 2025-08-17T00:00:00 --port 8090\n  harness up --in-memory --rate max\n  harness up --brokers \
localhost:9092"
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
    /// Where the topics, commits and transforms are kept [default: a per-user data folder], or
    /// `none` to keep them in memory only.
    #[arg(long, value_name = "DIR|none")]
    data_dir: Option<PathBuf>,
    /// Keep everything in memory only: nothing outlives the process (as --data-dir none).
    #[arg(long, conflicts_with = "data_dir")]
    in_memory: bool,
    /// Delete the data folder first, saying what goes, and start over.
    #[arg(long, conflicts_with = "in_memory")]
    fresh: bool,
    /// With --brokers: run on the topics of a Kafka-protocol broker instead of embedded ones,
    /// its client configured by -X, --kafka-config and KAFKA_* as for the bridge.
    #[command(flatten)]
    kafka: KafkaArgs,
    /// On disk: how long a record is kept after it was appended (7d, 12h, 30m), or `none`.
    #[arg(long, default_value = "7d", value_parser = retention_time)]
    retention_time: Limit<Duration>,
    /// On disk: the most a partition keeps (500MiB, 10GiB), or `none`.
    #[arg(long, default_value = "none", value_parser = retention_size)]
    retention_size: Limit<u64>,
    /// On disk: writes wait while the data folder's disk has less free space than this (MiB).
    #[arg(long, default_value_t = 256)]
    min_free_mb: u64,
    /// In memory: megabytes each topic keeps beyond what its readers have not committed. On disk:
    /// the tail of each topic kept in memory.
    #[arg(long, default_value_t = 16, value_parser = at_least_one)]
    retention_mb: usize,
    /// When the generator is done, write its exact totals per (campaign, channel, window) here.
    #[arg(long)]
    truth: Option<PathBuf>,
    /// The admin endpoint: Redpanda's admin API for transforms (loopback only by default).
    #[arg(long, default_value = DEFAULT_ADMIN)]
    admin_listen: SocketAddr,
    /// Where Kafka clients (kcat, rpk, confluent-kafka) reach the embedded topics [default:
    /// Redpanda's 127.0.0.1:9092, or a free port if it is taken], or `off`. In a harness built with
    /// `--features kafka-listener`.
    /// Beyond loopback, it needs --kafka-sasl (or --allow-unauthenticated); with --tls-cert it
    /// speaks TLS.
    #[arg(long, value_name = "HOST:PORT|off")]
    kafka_listen: Option<KafkaListen>,
    /// Kafka clients authenticate with SASL SCRAM-SHA-256 or -512 as a user kept in the data
    /// folder: `harness user create NAME` (or rpk security user create) while up runs, or
    /// RP_BOOTSTRAP_USER=NAME:PASSWORD[:MECHANISM] at start.
    #[arg(long)]
    kafka_sasl: bool,
    /// The address the Kafka listener gives clients in Metadata, HOST or HOST:PORT [default: the
    /// one it listens on; the port bound when none is given].
    #[arg(long, value_name = "HOST[:PORT]")]
    advertise_kafka_addr: Option<String>,
    /// Where up serves its own schema registry (Confluent's REST API, Redpanda's port).
    #[arg(long, default_value = registry::DEFAULT_REGISTRY)]
    schema_registry_listen: SocketAddr,
    /// Use this Confluent-compatible registry, http[s]://[USER:PASSWORD@]HOST:PORT, instead of serving one.
    #[arg(long, value_name = "URL", value_parser = registry_client)]
    schema_registry: Option<Arc<registry::Client>>,
    /// Who may call the dashboard, the admin endpoint and the schema registry, and over what.
    #[command(flatten)]
    access: AccessArgs,
    /// The dashboard's alerts: rules and where their changes are posted.
    #[command(flatten)]
    alerts: AlertArgs,
    /// How long the dashboard's history (kept in the data folder) keeps each tier.
    #[command(flatten)]
    keep: KeepArgs,
    #[command(flatten)]
    limits: LimitArgs,
}

pub fn run(mut args: UpArgs, extensions: &Extensions) -> Result<()> {
    let access = args.access.access()?;
    // Refused before anything starts; each server checks again as it binds.
    let dashboard = SocketAddr::new(args.bind, args.port);
    access.check_listen(&dashboard_listen(dashboard))?;
    access.check_listen(&admin::listen(args.admin_listen))?;
    if args.schema_registry.is_none() {
        access.check_listen(&registry::listen(args.schema_registry_listen))?;
    }
    let kafka = KafkaOptions {
        listen: args.kafka_listen.unwrap_or(KafkaListen::Default),
        advertise: args.advertise_kafka_addr.take(),
        sasl: args.kafka_sasl,
        bootstrap_user: BootstrapUser::from_env()?,
    };
    kafka.check(&access, args.kafka.brokers.is_none())?;
    let (thresholds, alert_webhook) = args.alerts.settings()?;
    let (spans, hot_ms) = (args.keep.spans()?, args.keep.hot_ms()?);
    let memory_reservation = args.limits.reservation()?;
    let host = args.limits.host()?;
    let (module, default_name) = extensions.module(&args.wasm)?;
    let transform = host.load(&module).with_context(|| args.wasm.clone())?;
    if let Some(window) = args.window.take() {
        args.deploy.vars.push(("WINDOW_SIZE".into(), window));
    }
    let spec = args.deploy.resolve(
        &default_name,
        Some(TransformYaml::parse(crate::TRANSFORM_YAML)?),
    )?;
    // Only --brokers leaves the embedded topics: a KAFKA_BOOTSTRAP_SERVERS
    // in the environment does not.
    let brokers = match args.kafka.brokers {
        Some(_) => Some(args.kafka.required()?),
        None => None,
    };
    let storage = match brokers {
        Some(kafka) => {
            if args.data_dir.is_some() || args.in_memory || args.fresh {
                bail!("--brokers keeps the topics on the broker: leave out --data-dir, --in-memory and --fresh");
            }
            check(&kafka)?;
            eprintln!(
                "topics on the broker {}: its retention applies; deployments and schemas are not \
                 kept, and the generator starts its stream anew",
                kafka.brokers()
            );
            Storage::Brokers(kafka)
        }
        None => storage(args.data_dir.take(), args.in_memory, args.fresh)?,
    };
    let stop = stop_on_ctrl_c("stopping: finishing the batch in flight")?;
    let live = std::io::stderr().is_terminal();
    let started = Instant::now();
    let (mut last_line, mut last_status) = (Instant::now(), Instant::now());
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
    let stack = Stack::start(
        &host,
        &transform,
        spec,
        UpOptions {
            module: Arc::new(module.into_owned()),
            stream: *args.stream,
            partitions: args.partitions,
            listen: dashboard,
            admin_listen: args.admin_listen,
            access: access.clone(),
            batch_size: args.batch_size,
            memory_reservation,
            storage,
            retention: Retention {
                memory_bytes: args.retention_mb.saturating_mul(1 << 20),
                time: args.retention_time.0,
                partition_bytes: args.retention_size.0,
                min_free_bytes: args.min_free_mb.saturating_mul(1 << 20),
                ..Retention::default()
            },
            truth: args.truth,
            thresholds,
            alert_webhook,
            spans,
            hot_ms,
            kafka,
            schema_registry: match args.schema_registry {
                Some(client) => RegistryChoice::Use(client),
                None => RegistryChoice::Serve(args.schema_registry_listen),
            },
        },
        stderr_logger(),
        stop.clone(),
    )?;
    announce(&stack.endpoints(), &access, &topics, &registry_url);
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(50));
        if last_status.elapsed() < STATUS_EVERY {
            continue;
        }
        last_status = Instant::now();
        let s = stack.status();
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
    }
    stack.shut_down()?;
    if live {
        eprintln!();
    }
    eprintln!("stopped after {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// How often the progress line changes on a terminal.
const STATUS_EVERY: Duration = Duration::from_millis(500);

/// Where everything is served, and how to reach it.
fn announce(at: &Endpoints, access: &http_access::Access, topics: &str, registry_url: &str) {
    let (admin, scheme) = (at.admin, access.scheme());
    eprintln!("pipeline up in this process: generator → {topics} → dashboard");
    eprintln!("admin endpoint on {} (harness deploy / list / pause / resume / delete --admin {0}, or rpk -X admin.hosts={admin})", admin_url(access, admin));
    match at.schema_registry {
        Some(address) => eprintln!("schema registry on {scheme}://{address} (Confluent's REST API; rpk -X registry.hosts={address})"),
        None => eprintln!("schema registry: {registry_url}"),
    }
    if let Some(kafka) = &at.kafka {
        eprintln!("Kafka API on {kafka}");
    }
    eprintln!("open {scheme}://{}/   (Ctrl-C to stop)", at.dashboard);
}

/// Where the topics go: `--in-memory` or `--data-dir none`, else the given
/// or the default folder, emptied first with `--fresh`.
fn storage(data_dir: Option<PathBuf>, in_memory: bool, fresh: bool) -> Result<Storage> {
    if in_memory || data_dir.as_deref() == Some(Path::new("none")) {
        if fresh {
            bail!("--fresh deletes a data folder; with --data-dir none there is none");
        }
        eprintln!("topics in memory: nothing is kept when up stops");
        return Ok(Storage::Memory);
    }
    let folder = match data_dir {
        Some(dir) => dir,
        None => default_data_dir()?,
    };
    if fresh {
        match topics::contents(&folder)? {
            Some(contents) => {
                eprintln!("--fresh: deleting {contents}");
                topics::remove(&folder)?;
            }
            None => eprintln!("--fresh: {} holds nothing yet", folder.display()),
        }
    }
    eprintln!(
        "data folder {} (topics, commits, deployments, schemas; --fresh starts over, --in-memory keeps nothing)",
        folder.display()
    );
    Ok(Storage::Folder(folder))
}

/// The per-user data folder: `$XDG_DATA_HOME/marketing-pipeline/up` on
/// Linux, the platform's equivalent elsewhere.
fn default_data_dir() -> Result<PathBuf> {
    let base = dirs::data_local_dir()
        .context("no per-user data folder is known here (no HOME?): give --data-dir")?;
    Ok(base.join("marketing-pipeline").join("up"))
}

/// A retention limit, or none.
#[derive(Debug, Clone, Copy)]
pub struct Limit<T>(pub Option<T>);

/// A retention time: `7d`, `12h`, `30m`, or `none`.
pub fn retention_time(s: &str) -> Result<Limit<std::time::Duration>, String> {
    if s == "none" {
        return Ok(Limit(None));
    }
    match analytics::time::parse_duration_ms(s) {
        Some(ms) if ms > 0 => Ok(Limit(Some(std::time::Duration::from_millis(ms as u64)))),
        _ => Err(format!(
            "`{s}` is not a time such as 7d, 12h or 30m, or none"
        )),
    }
}

/// A size: `500MiB`, `10GiB`, `2GB`, `4096` (bytes), or `none`.
pub fn retention_size(s: &str) -> Result<Limit<u64>, String> {
    if s == "none" {
        return Ok(Limit(None));
    }
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let unit: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "tib" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        _ => 0,
    };
    match n.parse::<u64>().ok().and_then(|n| n.checked_mul(unit)) {
        Some(bytes) if bytes > 0 => Ok(Limit(Some(bytes))),
        _ => Err(format!(
            "`{s}` is not a size such as 500MiB or 10GiB, or none"
        )),
    }
}
