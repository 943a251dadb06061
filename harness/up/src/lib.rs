//! `harness up`: the whole marketing pipeline in one process, composed
//! over the generic host. The generator writes `logs`, the host runs the
//! transform over the topics exactly as it runs one over a broker (more can
//! be deployed through the admin API), and the dashboard reads `results`;
//! a schema registry and the admin endpoint are served beside them. Each
//! part is the same code whatever the topics are: the embedded ones (in
//! memory, or kept in a data folder) or a Kafka-protocol broker's.
//!
//! In a data folder the topics keep everything needed to go on where the
//! last run stopped: each transform goes on from its committed position,
//! the dashboard reads the history back, and the generator goes on with
//! its stream (see [`kept`]).

pub mod cli;
pub mod kafka;
pub mod kept;
mod panes;
mod stack;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Result;
use dashboard::service::Figures;
use generator::StreamArgs;
use hosting::bridge::BridgeProgress;
use hosting::{Builtin, Extensions};
use http_access::{Access, Listen};
use kafka_client::{KafkaConfig, KafkaTransport};
use topics::{DataFolder, Retention, Topics};

use kept::{Kept, Upkeep};
pub use stack::Stack;

/// The pipeline's deployment, the repository's root `transform.yaml`,
/// built in so that `harness up` runs from anywhere.
pub const TRANSFORM_YAML: &str = include_str!("../../../transform.yaml");

/// The pipeline's transforms, built into the harness.
const BUILTINS: &[Builtin] = &[
    Builtin {
        name: "@pipeline",
        module: transform_artifacts::PIPELINE,
        transform: "marketing-pipeline",
    },
    Builtin {
        name: "@enrich",
        module: transform_artifacts::ENRICH,
        transform: "enrich",
    },
    Builtin {
        name: "@aggregate",
        module: transform_artifacts::AGGREGATE,
        transform: "aggregate",
    },
    Builtin {
        name: "@tee",
        module: transform_artifacts::TEE,
        transform: "tee",
    },
];

/// What the pipeline brings to the generic host: its transforms, and how
/// `harness test` merges its panes.
pub fn extensions() -> Extensions {
    Extensions {
        builtins: BUILTINS,
        merge: Some(panes::merge),
    }
}

/// Up's dashboard at `address`, as errors and refusals name it.
pub fn dashboard_listen(address: SocketAddr) -> Listen<'static> {
    Listen::new("the dashboard", "--bind/--port", address)
}

pub struct UpOptions {
    /// The command line's module, as deployed.
    pub module: Arc<Vec<u8>>,
    pub stream: StreamArgs,
    pub partitions: i32,
    pub listen: SocketAddr,
    pub admin_listen: SocketAddr,
    /// Who may call the dashboard, the admin endpoint and the registry.
    pub access: Access,
    pub batch_size: usize,
    /// Memory reserved for the transforms' VMs (`--memory-reservation`).
    pub memory_reservation: usize,
    pub storage: Storage,
    pub retention: Retention,
    /// Where the generator's exact totals go once it is done.
    pub truth: Option<PathBuf>,
    pub schema_registry: RegistryChoice,
    /// The dashboard's alert rules, and where their changes are posted.
    pub thresholds: dashboard::pacing::Thresholds,
    pub alert_webhook: Option<String>,
    /// How long the dashboard's history keeps each tier, and its hot set.
    pub spans: history::Spans,
    pub hot_ms: i64,
    /// Where and how Kafka clients reach the embedded topics.
    pub kafka: kafka::KafkaOptions,
}

/// Where `up` keeps its topics.
pub enum Storage {
    /// In this process's memory: gone when it ends.
    Memory,
    /// In this data folder: a restart goes on where the last run stopped.
    Folder(PathBuf),
    /// On a Kafka-protocol broker, which keeps them.
    Brokers(KafkaConfig),
}

impl std::fmt::Display for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Storage::Memory => write!(f, "in memory"),
            Storage::Folder(dir) => write!(f, "on disk in {}", dir.display()),
            Storage::Brokers(kafka) => write!(f, "on the broker {}", kafka.brokers()),
        }
    }
}

impl Storage {
    /// Where the dashboard keeps its history: in the data folder, or (in
    /// memory, and on a broker, where nothing else is kept either) for
    /// this run only.
    fn history(&self) -> history::Place {
        match self {
            Storage::Folder(dir) => history::Place::Folder(dir.join("history")),
            Storage::Memory | Storage::Brokers(_) => history::Place::Memory,
        }
    }

    /// The topics, and what is kept beside them.
    fn open(&self, retention: &Retention) -> Result<Box<dyn Kept>> {
        Ok(match self {
            Storage::Memory => Box::new(kept::Embedded(Topics::in_memory(retention.memory_bytes))),
            Storage::Folder(path) => Box::new(kept::Embedded(Topics::open(
                DataFolder::open(path)?,
                retention.clone(),
            )?)),
            Storage::Brokers(kafka) => Box::new(kept::Broker(Arc::new(KafkaTransport {
                kafka: kafka.clone(),
            }))),
        })
    }
}

/// The registry behind the transforms' Schema Registry module.
pub enum RegistryChoice {
    /// One of `up`'s own, served here, as Redpanda serves its own.
    Serve(SocketAddr),
    /// Any Confluent-compatible registry.
    Use(Arc<registry::Client>),
}

/// Where `up` serves what it serves.
pub struct Endpoints {
    pub dashboard: SocketAddr,
    pub admin: SocketAddr,
    /// The schema registry `up` serves, if it serves one.
    pub schema_registry: Option<SocketAddr>,
    /// The Kafka listener on the embedded topics, if it serves one.
    pub kafka: Option<kafka::KafkaEndpoint>,
}

/// What a status line shows.
pub struct Status {
    pub generated: u64,
    pub generating: bool,
    pub bridge: BridgeProgress,
    pub dashboard: Figures,
    pub topics: Upkeep,
}

/// The progress line.
impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:>10} events generated · {:>10} transformed in {:>8} batches · {:>8} outputs · {:>6} windows on the dashboard · {} dead letters",
            self.generated,
            self.bridge.records_in,
            self.bridge.batches,
            self.bridge.records_out,
            self.dashboard.windows,
            self.dashboard.dead_letters,
        )?;
        if let Some(bytes) = self.topics.memory_bytes {
            write!(f, " · topics {} MiB in memory", bytes >> 20)?;
        }
        if let Some(disk) = self.topics.disk_bytes {
            write!(f, ", {} MiB on disk", disk >> 20)?;
        }
        write!(f, ", transform {} KiB", self.bridge.transform_bytes >> 10)?;
        if let Some(why) = &self.topics.trouble {
            write!(f, " · WAITING: {why}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hosting::spec::{resolve, Overrides, TransformYaml};

    #[test]
    fn the_built_in_transform_yaml_deploys_the_pipeline() {
        let yaml = TransformYaml::parse(TRANSFORM_YAML).unwrap();
        let spec = resolve(Some(yaml), Overrides::default(), "x").unwrap();
        assert_eq!(spec.name, "marketing-pipeline");
        assert_eq!(spec.input_topic, "logs");
        assert_eq!(spec.output_topics, ["results", "events", "logs.dlq"]);
        analytics::Config::from_vars(spec.env.clone()).expect("its env is a valid configuration");
    }

    /// The budgets the built-in transform.yaml gives are what the default
    /// stream (`harness up` at its default rate) spends a day, within the
    /// pacing alert's 15%: the defaults pace on plan, neither under nor over
    /// forever.
    #[test]
    fn the_built_in_budgets_fit_the_default_stream() {
        let args = StreamArgs::default();
        let rate: f64 = args.rate.parse().unwrap();
        let profile = args.profile().unwrap();
        let mut stream = generator::Stream::new(
            profile.clone(),
            args.seed,
            generator::Clock::Simulated { next_ms: 0 },
        );
        let events = 300_000;
        let mut spend = vec![0i64; profile.campaigns.len()];
        for _ in 0..events {
            if let Some(c) = stream.next_event().counted {
                spend[c.campaign] += c.cost_micros;
            }
        }
        let yaml = TransformYaml::parse(TRANSFORM_YAML).unwrap();
        let spec = resolve(Some(yaml), Overrides::default(), "x").unwrap();
        let config = analytics::Config::from_vars(spec.env).unwrap();
        for (campaign, spent) in profile.campaigns.iter().zip(spend) {
            let per_day = spent as f64 / events as f64 * rate * 86_400.0;
            let budget = config.campaigns[campaign].daily_budget_micros.unwrap() as f64;
            let pacing = per_day / budget;
            assert!(
                (0.9..1.1).contains(&pacing),
                "{campaign}: {:.0} a day against a budget of {:.0}",
                per_day / 1e6,
                budget / 1e6
            );
        }
    }
}
