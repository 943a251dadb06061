//! Argument groups several commands share, and their checks.

use std::path::PathBuf;
use std::sync::Arc;

use crate::spec::{parse_var, resolve, Overrides, TransformYaml};
use anyhow::Result;
use clap::Args;
use kafka_client::MAX_PARTITIONS;
use transform_host::{Host, Limits, TransformSpec};

use crate::transforms::DEFAULT_MEMORY_RESERVATION;

#[derive(Args)]
pub struct DeployArgs {
    /// A transform.yaml giving name, topics and environment (`up`: the root transform.yaml by default).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Transform name (default: from --config, else the file name).
    #[arg(long)]
    pub name: Option<String>,
    /// Input topic (default: from --config).
    #[arg(long)]
    pub input_topic: Option<String>,
    /// An output topic; repeat for several, in order.
    #[arg(long = "output-topic")]
    pub output_topics: Vec<String>,
    /// An environment variable for the transform, KEY=VALUE; repeatable.
    #[arg(long = "var", value_parser = parse_var)]
    pub vars: Vec<(String, String)>,
}

impl DeployArgs {
    /// The deployment: the flags over `--config`, else over `fallback`.
    pub fn resolve(
        self,
        default_name: &str,
        fallback: Option<TransformYaml>,
    ) -> Result<TransformSpec> {
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

#[derive(Args)]
pub struct LimitArgs {
    /// Linear memory limit in bytes (Redpanda's default: 2 MiB).
    #[arg(long, default_value_t = Limits::default().memory_bytes)]
    pub memory_limit: usize,
    /// Fuel a record may use before the transform is stopped.
    #[arg(long, default_value_t = Limits::default().fuel_per_record)]
    pub fuel_per_record: u64,
    /// Memory a host reserves for its transforms' VMs, in bytes (Redpanda's
    /// data_transforms_per_core_memory_reservation, 20 MiB): a host takes
    /// this over --memory-limit transforms (10 by default; `bridge`, `up`).
    #[arg(long, default_value_t = DEFAULT_MEMORY_RESERVATION)]
    pub memory_reservation: usize,
}

impl LimitArgs {
    /// A host's reservation, refused under the memory limit as Redpanda
    /// refuses to start (`wasmtime.cc`: "must allow at least one wasm heap").
    pub fn reservation(&self) -> Result<usize> {
        if self.memory_reservation < self.memory_limit {
            anyhow::bail!(
                "--memory-reservation ({} bytes) is less than --memory-limit ({} bytes): it must \
                 allow at least one transform's memory",
                self.memory_reservation,
                self.memory_limit
            );
        }
        Ok(self.memory_reservation)
    }

    pub fn host(&self) -> Result<Host> {
        Host::new(Limits {
            memory_bytes: self.memory_limit,
            fuel_per_record: self.fuel_per_record,
            ..Limits::default()
        })
        .map_err(|e| anyhow::anyhow!("cannot set up wasmtime: {e:#}"))
    }
}

#[derive(Args)]
pub struct RegistryArgs {
    /// A Confluent-compatible schema registry, http[s]://[USER:PASSWORD@]HOST:PORT, for transforms
    /// that use Redpanda's Schema Registry SDK. Without one their calls answer -1 (not enabled), as on a
    /// broker with no registry.
    #[arg(long, value_name = "URL", value_parser = registry_client)]
    pub schema_registry: Option<Arc<registry::Client>>,
}

impl RegistryArgs {
    pub fn attach(&self, host: Host) -> Host {
        match &self.schema_registry {
            Some(client) => host.with_schema_registry(client.clone()),
            None => host,
        }
    }
}

/// Where a running host's admin endpoint is, and how to get in.
#[derive(Args)]
pub struct AdminArgs {
    /// The host's admin endpoint: HOST:PORT, or http[s]://[USER:PASSWORD@]HOST:PORT.
    #[arg(long, default_value = admin::DEFAULT_ADMIN)]
    pub admin: String,
    /// The endpoint's token (its --auth-token). A command line shows in `ps`: prefer
    /// --auth-token-file or PIPELINE_AUTH_TOKEN.
    #[arg(long, value_name = "TOKEN", env = http_access::TOKEN_ENV, hide_env_values = true)]
    auth_token: Option<String>,
    /// The endpoint's token, the first line of this file.
    #[arg(long, value_name = "FILE", conflicts_with = "auth_token")]
    auth_token_file: Option<PathBuf>,
    /// Check an https endpoint's certificate against this CA (PEM) instead of the system's.
    #[arg(long, value_name = "FILE")]
    admin_ca: Option<PathBuf>,
}

impl AdminArgs {
    pub fn client(&self) -> Result<admin::Client> {
        let token =
            http_access::read_token(self.auth_token.as_deref(), self.auth_token_file.as_deref())?;
        admin::Client::with(
            &self.admin,
            &admin::ClientOptions {
                token,
                ca: self.admin_ca.clone(),
            },
        )
    }
}

/// A host's admin endpoint as `--admin` takes it: its address, or an
/// https URL when it serves TLS.
pub fn admin_url(access: &http_access::Access, address: std::net::SocketAddr) -> String {
    match access.scheme() {
        "https" => format!("https://{address}"),
        _ => address.to_string(),
    }
}

pub fn registry_client(url: &str) -> Result<Arc<registry::Client>, String> {
    registry::Client::new(url).map(Arc::new)
}

/// A count of at least 1.
pub fn at_least_one(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("`{s}` is not a whole number of at least 1")),
    }
}

pub fn partition_count(s: &str) -> Result<i32, String> {
    match s.parse::<i32>() {
        Ok(n) if (1..=MAX_PARTITIONS).contains(&n) => Ok(n),
        _ => Err(format!("`{s}`: use 1 to {MAX_PARTITIONS} partitions")),
    }
}

/// rpk's `--from-offset`: `@T` (ms), `+N` (from the start), `-N` (from the end).
pub fn from_offset(s: &str) -> Result<topic_io::StartOffset, String> {
    admin::parse_from_offset(s).map(|o| o.start())
}
