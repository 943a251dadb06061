//! `harness validate`: the checks a deploy makes, and what only fails at start.

use crate::Extensions;
use anyhow::Result;
use clap::Args;

use super::args::LimitArgs;

#[derive(Args)]
pub struct ValidateArgs {
    /// The .wasm file, or a built-in transform (@name; `harness --help` lists them).
    wasm: String,
    #[command(flatten)]
    limits: LimitArgs,
}

pub fn run(args: ValidateArgs, extensions: &Extensions) -> Result<()> {
    let (t, _) = extensions.load(&args.limits.host()?, &args.wasm)?;
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
