//! `harness validate`: the checks a deploy makes, and what only fails at start.

use anyhow::Result;
use clap::Args;
use harness::load_module;

use super::args::LimitArgs;

#[derive(Args)]
pub struct ValidateArgs {
    /// The .wasm file, or @pipeline, @enrich, @aggregate, @tee.
    wasm: String,
    #[command(flatten)]
    limits: LimitArgs,
}

pub fn run(args: ValidateArgs) -> Result<()> {
    let (t, _) = load_module(&args.limits.host()?, &args.wasm)?;
    println!(
        "{}: ok — ABI {:?}{}, {} bytes, {} bytes of memory at start (limit {})",
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
