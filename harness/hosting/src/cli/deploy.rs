//! `harness deploy`: a new transform, or a new version of one, on a running host.

use std::path::PathBuf;

use super::args::AdminArgs;
use crate::spec::{parse_var, TransformYaml};
use crate::Extensions;
use admin::{DeployRequest, EnvVar, OffsetSpec};
use anyhow::{bail, Context, Result};
use clap::Args;

#[derive(Args)]
#[command(
    after_help = "Like `rpk transform deploy`, through the same admin API (`rpk transform deploy \
-X admin.hosts=…` works against a harness host too). A new name starts a new transform: give its topics \
(--input-topic and --output-topic, or --config transform.yaml); it starts at --from-offset, else at the \
records stamped from the deploy on, as in Redpanda. As in Redpanda too, a new transform is only checked, \
not started, here: one that fails at start is accepted, shows errored in `harness list` with the reason, \
and is retried. An existing name gets the new version: the host \
validates it and starts it beside the running one; only if it starts does the host switch to it, between two \
batches, and it goes on from where the old one stopped. Its environment is replaced as a whole by the \
transform.yaml's and the --var flags (none: an empty environment); the topics cannot change. If the host \
refuses the module, the old version keeps running, and this command exits 1 with the reason.\n\n\
Example:\n  harness deploy --name marketing-pipeline --file new.wasm --var WINDOW_SIZE=1m --var ALLOWED_LATENESS=10s"
)]
pub struct DeployArgs {
    /// The transform's name (default: from --config).
    #[arg(long)]
    name: Option<String>,
    /// The module: a .wasm file, or a built-in transform (@name; `harness --help` lists them).
    #[arg(long)]
    file: String,
    /// A transform.yaml giving name, topics and environment, as rpk reads it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Input topic of a new transform.
    #[arg(long)]
    input_topic: Option<String>,
    /// An output topic of a new transform; repeat for several, in order.
    #[arg(long = "output-topic")]
    output_topics: Vec<String>,
    /// An environment variable, KEY=VALUE; repeatable.
    #[arg(long = "var", value_parser = parse_var)]
    vars: Vec<(String, String)>,
    /// Where a new transform starts: +N from the start, -N from the end, @T the first record
    /// at or after T (ms). A redeploy goes on from where the old version stopped.
    #[arg(long, value_parser = admin::parse_from_offset, allow_hyphen_values = true)]
    from_offset: Option<OffsetSpec>,
    #[command(flatten)]
    admin: AdminArgs,
}

pub fn run(args: DeployArgs, extensions: &Extensions) -> Result<()> {
    let yaml = args
        .config
        .as_deref()
        .map(TransformYaml::load)
        .transpose()?;
    let name = args
        .name
        .or_else(|| yaml.as_ref().and_then(|y| y.name.clone()))
        .context("say which transform: --name, or --config transform.yaml")?;
    let client = args.admin.client()?;
    let mut input_topic = args
        .input_topic
        .or_else(|| yaml.as_ref().and_then(|y| y.input_topic.clone()));
    let mut output_topics = if args.output_topics.is_empty() {
        yaml.as_ref()
            .map(|y| y.output_topics.clone())
            .unwrap_or_default()
    } else {
        args.output_topics
    };
    // A new version of a running transform keeps its topics.
    if input_topic.is_none() || output_topics.is_empty() {
        let running = client.list()?.into_iter().find(|t| t.name == name);
        let Some(running) = running else {
            bail!("{name} does not run on {}: say its topics, with --input-topic and --output-topic, or --config transform.yaml", args.admin.admin);
        };
        input_topic.get_or_insert(running.input_topic);
        if output_topics.is_empty() {
            output_topics = running.output_topics;
        }
    }
    let mut environment: Vec<EnvVar> = yaml
        .map(|y| y.env.into_iter().collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .filter(|(k, _)| !args.vars.iter().any(|(v, _)| v == k))
        .map(|(key, value)| EnvVar { key, value })
        .collect();
    environment.extend(
        args.vars
            .into_iter()
            .map(|(key, value)| EnvVar { key, value }),
    );
    let request = DeployRequest {
        name: name.clone(),
        input_topic: input_topic.expect("set above"),
        output_topics,
        environment,
        compression: None,
        offset: args.from_offset,
    };
    let (module, _) = extensions.module(&args.file)?;
    let deployed = client
        .deploy(&request, &module)
        .with_context(|| format!("unable to deploy transform {name}"))?;
    println!("{name}: now running version {}", deployed.version);
    Ok(())
}
