//! `harness logs`: a transform's log events, as `rpk transform logs` prints them.

use std::io::Write;
use std::time::Duration;

use super::args::AdminArgs;
use crate::transform_logs::{partition, LOGS_TOPIC};
use admin::Client;
use anyhow::{bail, Result};
use clap::Args;

#[derive(Args)]
#[command(
    after_help = "Reads _redpanda.transform_logs through the host's admin endpoint, where a harness \
host writes each transform's stdout and stderr, one event per write, as Redpanda does. Against Redpanda, \
use `rpk transform logs`."
)]
pub struct LogsArgs {
    /// The transform's name.
    name: String,
    /// Keep printing new events until Ctrl-C.
    #[arg(long, short)]
    follow: bool,
    /// Each event with its time and level, as rpk's `--format wide`.
    #[arg(long)]
    wide: bool,
    #[command(flatten)]
    admin: AdminArgs,
}

/// One log record's text, as rpk prints it.
fn show(value: &str, wide: bool) -> Option<String> {
    let event: serde_json::Value = serde_json::from_str(value).ok()?;
    let body = event["body"]["stringValue"].as_str()?;
    let body = body.strip_suffix('\n').unwrap_or(body);
    if !wide {
        return Some(body.to_string());
    }
    let nanos = event["timeUnixNano"].as_u64().unwrap_or(0);
    let level = if event["severityNumber"].as_u64().unwrap_or(0) > 9 {
        "WARN"
    } else {
        "INFO"
    };
    let time = jiff::Timestamp::from_millisecond((nanos / 1_000_000) as i64).map_or_else(
        |_| "?".into(),
        |t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
    );
    Some(
        body.lines()
            .map(|line| format!("{time} {level} {line}"))
            .collect::<Vec<_>>()
            .join("\n"),
    )
}

pub fn run(args: LogsArgs) -> Result<()> {
    let client = args.admin.client()?;
    let Some(topic) = client.topic(LOGS_TOPIC)? else {
        if !args.follow {
            bail!(
                "{} has no {LOGS_TOPIC} yet: no transform has logged anything",
                args.admin.admin
            );
        }
        return follow_until_created(&client, &args);
    };
    print_from(&client, &args, partition(&args.name, topic.partitions))
}

fn follow_until_created(client: &Client, args: &LogsArgs) -> Result<()> {
    loop {
        std::thread::sleep(Duration::from_millis(500));
        if let Some(topic) = client.topic(LOGS_TOPIC)? {
            return print_from(client, args, partition(&args.name, topic.partitions));
        }
    }
}

fn print_from(client: &Client, args: &LogsArgs, partition: i32) -> Result<()> {
    // Written, not printed: a reader that has seen enough (`| head`) ends
    // the command instead of panicking it.
    let mut out = std::io::stdout();
    let mut offset = 0;
    loop {
        let records = client.read(LOGS_TOPIC, partition, offset, 1000)?;
        for record in &records {
            offset = record.offset + 1;
            if record.key.as_deref() != Some(args.name.as_str()) {
                continue;
            }
            if let Some(text) = record.value.as_deref().and_then(|v| show(v, args.wide)) {
                writeln!(out, "{text}")?;
            }
        }
        if records.is_empty() {
            if !args.follow {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}
