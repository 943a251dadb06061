//! `harness delete`, `pause` and `resume`: as rpk's, through the same admin API.

use std::io::{BufRead, IsTerminal, Write};

use admin::{Client, MetaPatch, DEFAULT_ADMIN};
use anyhow::{Context, Result};
use clap::Args;

#[derive(Args)]
pub struct NameArgs {
    /// The transform's name.
    name: String,
    /// The host's admin endpoint.
    #[arg(long, default_value = DEFAULT_ADMIN)]
    admin: String,
}

#[derive(Args)]
pub struct DeleteArgs {
    #[command(flatten)]
    target: NameArgs,
    /// Do not ask for confirmation (asked only on a terminal).
    #[arg(long)]
    no_confirm: bool,
}

pub fn delete(args: DeleteArgs) -> Result<()> {
    let NameArgs { name, admin } = args.target;
    if !args.no_confirm && std::io::stdin().is_terminal() {
        eprint!("Confirm deletion of transform {name:?}? [y/N] ");
        std::io::stderr().flush()?;
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        if !answer.trim().eq_ignore_ascii_case("y") {
            eprintln!("Deletion canceled.");
            return Ok(());
        }
    }
    Client::new(&admin)
        .delete(&name)
        .with_context(|| format!("unable to delete transform {name:?}"))?;
    println!("Delete successful!");
    Ok(())
}

fn set_paused(args: NameArgs, paused: bool) -> Result<()> {
    let verb = if paused { "pause" } else { "resume" };
    Client::new(&args.admin)
        .patch(
            &args.name,
            &MetaPatch {
                is_paused: Some(paused),
                ..MetaPatch::default()
            },
        )
        .with_context(|| format!("unable to {verb} transform {:?}", args.name))?;
    println!("Transform {verb}d!");
    Ok(())
}

pub fn pause(args: NameArgs) -> Result<()> {
    set_paused(args, true)
}

pub fn resume(args: NameArgs) -> Result<()> {
    set_paused(args, false)
}
