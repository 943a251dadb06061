//! `harness delete`, `pause` and `resume`: as rpk's, through the same admin API.

use std::io::{BufRead, IsTerminal, Write};

use super::args::AdminArgs;
use admin::MetaPatch;
use anyhow::{Context, Result};
use clap::Args;

#[derive(Args)]
pub struct NameArgs {
    /// The transform's name.
    name: String,
    #[command(flatten)]
    admin: AdminArgs,
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
    admin
        .client()?
        .delete(&name)
        .with_context(|| format!("unable to delete transform {name:?}"))?;
    println!("Delete successful!");
    Ok(())
}

fn set_paused(args: NameArgs, paused: bool) -> Result<()> {
    let verb = if paused { "pause" } else { "resume" };
    args.admin
        .client()?
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
