//! `harness list`: the transforms a host runs, as `rpk transform list` shows them.

use super::args::AdminArgs;
use admin::TransformMetadata;
use anyhow::{Context, Result};
use clap::Args;
use std::io::Write;

#[derive(Args)]
pub struct ListArgs {
    #[command(flatten)]
    admin: AdminArgs,
    /// Each partition's status and lag, as `rpk transform list --detailed`.
    #[arg(long, short)]
    detailed: bool,
    /// The admin API's answer as it is: Redpanda's fields, and the harness's (versions,
    /// counters, every swap's timing, the latest errors).
    #[arg(long)]
    json: bool,
}

/// rpk's table (`NAME INPUT TOPIC OUTPUT TOPIC RUNNING LAG`), with the
/// harness's version and latest error.
struct Listing {
    transforms: Vec<TransformMetadata>,
    detailed: bool,
}

impl std::fmt::Display for Listing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.detailed {
            for (i, t) in self.transforms.iter().enumerate() {
                if i > 0 {
                    writeln!(f)?;
                }
                writeln!(
                    f,
                    "{}, {} → {}",
                    t.name,
                    t.input_topic,
                    t.output_topics.join(", ")
                )?;
                writeln!(f, "      PARTITION  NODE  STATUS    LAG")?;
                for s in &t.status {
                    writeln!(
                        f,
                        "      {:<10} {:<5} {:<9} {}",
                        s.partition, s.node_id, s.status, s.lag
                    )?;
                }
            }
            return Ok(());
        }
        writeln!(
            f,
            "{:<24} {:<12} {:<28} {:<8} {:>8}  {:<13} ERRORS",
            "NAME", "INPUT TOPIC", "OUTPUT TOPIC", "RUNNING", "LAG", "VERSION"
        )?;
        for t in &self.transforms {
            let running = t.status.iter().filter(|s| s.status == "running").count();
            let lag: i64 = t.status.iter().map(|s| s.lag).sum();
            let harness = t.harness.clone().unwrap_or_default();
            writeln!(
                f,
                "{:<24} {:<12} {:<28} {:<8} {:>8}  {:<13} {}",
                t.name,
                t.input_topic,
                t.output_topics.join(", "),
                format!("{running} / {}", t.status.len()),
                lag,
                harness.version,
                harness.errors.last().map_or("-", String::as_str)
            )?;
        }
        Ok(())
    }
}

pub fn run(args: ListArgs) -> Result<()> {
    let transforms = args
        .admin
        .client()?
        .list()
        .context("unable to list transforms")?;
    // Written, not printed: `| head` ends the command, not panics it.
    let mut out = std::io::stdout();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&transforms)?)?;
        return Ok(());
    }
    write!(
        out,
        "{}",
        Listing {
            transforms,
            detailed: args.detailed
        }
    )?;
    Ok(())
}
