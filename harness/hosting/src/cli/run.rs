//! `harness run`: records from a file through a transform, outputs to stdout.

use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;

use crate::records::read_input;
use crate::run::{run as run_records, RunOptions};
use crate::transform_logs::otel_record;
use crate::{stderr_logger, Extensions};
use anyhow::{Context, Result};
use clap::Args;
use transform_host::{LogEvent, Logger};

use super::args::{at_least_one, partition_count, DeployArgs, LimitArgs, RegistryArgs};

#[derive(Args)]
#[command(after_help = "Input: one JSON object a line, \
{\"partition\":0,\"key\":\"k\",\"value\":…,\"headers\":{\"h\":\"v\"},\"timestamp\":1700000000000}. \
`value` is a string, null, or any JSON value (written compactly); a binary value (Avro) comes as \
\"value_base64\" instead; every other field is optional. \
Output: {\"topic\":…,\"partition\":…,\"key\":…,\"value\":\"…\",\"headers\":{…}} a line. \
Transform logs go to stderr (and with --logs to a file, as Redpanda writes them to \
_redpanda.transform_logs). A failing transform names the input line that caused it and the \
command exits with status 1.")]
pub struct RunArgs {
    /// The .wasm file, or a built-in transform (@name; `harness --help` lists them).
    wasm: String,
    /// Input records, one JSON object a line; `-` for stdin.
    #[arg(long, short)]
    input: PathBuf,
    #[command(flatten)]
    deploy: DeployArgs,
    /// Most records in one batch; a batch is consecutive records of one partition.
    #[arg(long, default_value_t = 100, value_parser = at_least_one)]
    batch_size: usize,
    /// Partitions of every topic (default: highest input partition + 1).
    #[arg(long, value_parser = partition_count)]
    partitions: Option<i32>,
    /// Also write the transform's log events here, one OpenTelemetry JSON record a line,
    /// as Redpanda writes them to _redpanda.transform_logs.
    #[arg(long)]
    logs: Option<PathBuf>,
    #[command(flatten)]
    limits: LimitArgs,
    #[command(flatten)]
    registry: RegistryArgs,
}

/// Log events to stderr, and as OpenTelemetry records to `path`.
fn file_logger(path: &Path) -> Result<Logger> {
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let file = Arc::new(Mutex::new(BufWriter::new(file)));
    let echo = stderr_logger();
    Ok(Arc::new(move |event: LogEvent<'_>| {
        let mut file = file.lock();
        let written = writeln!(file, "{}", otel_record(&event)).and_then(|()| file.flush());
        if let Err(e) = written {
            tracing::warn!("writing a log event: {e}");
        }
        echo(event)
    }))
}

pub fn run(args: RunArgs, extensions: &Extensions) -> Result<()> {
    // Records without a timestamp get the run's start.
    let started_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let host = args.registry.attach(args.limits.host()?);
    let (transform, default_name) = extensions.load(&host, &args.wasm)?;
    let spec = args.deploy.resolve(&default_name, None)?;
    let records = if args.input == Path::new("-") {
        read_input(std::io::stdin().lock())?
    } else {
        let file = std::fs::File::open(&args.input)
            .with_context(|| format!("opening {}", args.input.display()))?;
        read_input(BufReader::new(file))?
    };
    let logger = match &args.logs {
        Some(path) => file_logger(path)?,
        None => stderr_logger(),
    };
    let mut out = BufWriter::new(std::io::stdout().lock());
    let mut write_error = None;
    let result = run_records(
        &host,
        &transform,
        spec,
        &records,
        &RunOptions {
            batch_size: args.batch_size,
            partitions: args.partitions,
            start_offsets: Vec::new(),
            unstamped_ms: started_ms,
        },
        logger,
        |line, _| {
            if write_error.is_none() {
                write_error = writeln!(out, "{}", line.to_json()).err();
            }
        },
    );
    if let Some(e) = write_error {
        return Err(e).context("writing output");
    }
    out.flush().context("writing output")?;
    result
}
