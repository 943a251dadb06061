//! `harness validate`: the checks a deploy makes, then a start, as
//! Redpanda's first batch would make it: `main` runs with the deployment's
//! environment up to where it waits for records.

use crate::{stderr_logger, Extensions};
use anyhow::{bail, Result};
use clap::Args;
use transform_host::Vm;

use super::args::{DeployArgs, LimitArgs};

#[derive(Args)]
#[command(
    after_help = "Without --config or topics, the transform starts with the input topic \
`input` and the output topic `output` (REDPANDA_INPUT_TOPIC, REDPANDA_OUTPUT_TOPIC_0). \
Its log lines go to stderr."
)]
pub struct ValidateArgs {
    /// The .wasm file, or a built-in transform (@name; `harness --help` lists them).
    wasm: String,
    #[command(flatten)]
    deploy: DeployArgs,
    #[command(flatten)]
    limits: LimitArgs,
}

pub fn run(mut args: ValidateArgs, extensions: &Extensions) -> Result<()> {
    let host = args.limits.host()?;
    let (t, default_name) = extensions.load(&host, &args.wasm)?;
    if args.deploy.config.is_none() {
        args.deploy
            .input_topic
            .get_or_insert_with(|| "input".into());
        if args.deploy.output_topics.is_empty() {
            args.deploy.output_topics.push("output".into());
        }
    }
    let spec = args.deploy.resolve(&default_name, None)?;
    if let Err(failure) = Vm::start(&host, &t, &spec, stderr_logger()) {
        bail!(
            "{}: passes the deploy's checks, but fails when it starts: {failure}",
            args.wasm
        );
    }
    println!(
        "{}: ok — ABI {:?}{}, {} bytes, {} bytes of memory at start (limit {}), starts",
        args.wasm,
        t.abi,
        if t.uses_schema_registry {
            ", uses the Schema Registry"
        } else {
            ""
        },
        t.size_bytes,
        t.initial_memory_bytes,
        args.limits.memory_limit
    );
    Ok(())
}
