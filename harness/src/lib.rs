//! The harness: hosts Redpanda data transforms outside Redpanda with the
//! same contract (see `transform-host`), over records from files.

pub mod batch_log;
pub mod bench;
pub mod bridge;
pub mod cases;
pub mod hosting;
pub mod records;
pub mod run;
pub mod runtime;
pub mod spec;
pub mod status;
pub mod topic_access;
pub mod transform_logs;
pub mod transport;
pub mod up;

use std::borrow::Cow;
use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use transform_host::{Host, LogEvent, LogStream, Logger, Transform};

/// The transforms built into the harness: how the command line names
/// them, the module, and the transform's default name.
const BUILTINS: [(&str, &[u8], &str); 4] = [
    (
        "@pipeline",
        transform_artifacts::PIPELINE,
        "marketing-pipeline",
    ),
    ("@enrich", transform_artifacts::ENRICH, "enrich"),
    ("@aggregate", transform_artifacts::AGGREGATE, "aggregate"),
    ("@tee", transform_artifacts::TEE, "tee"),
];

/// A module's bytes: a path, or a transform built into the harness
/// (`@pipeline`, `@enrich`, `@aggregate`, `@tee`).
pub fn module_bytes(wasm: &str) -> Result<Cow<'static, [u8]>> {
    Ok(module_and_name(wasm)?.0)
}

/// The bytes, and the default transform name: the built-in's, or the
/// file's stem.
fn module_and_name(wasm: &str) -> Result<(Cow<'static, [u8]>, String)> {
    if wasm.starts_with('@') {
        let Some(&(_, bytes, name)) = BUILTINS.iter().find(|(n, ..)| *n == wasm) else {
            let names: Vec<&str> = BUILTINS.iter().map(|(n, ..)| *n).collect();
            bail!(
                "unknown built-in transform {wasm}: use one of {}",
                names.join(", ")
            );
        };
        return Ok((Cow::Borrowed(bytes), name.to_string()));
    }
    let bytes = std::fs::read(wasm).with_context(|| format!("reading {wasm}"))?;
    let stem = Path::new(wasm)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned());
    Ok((
        Cow::Owned(bytes),
        stem.unwrap_or_else(|| "transform".into()),
    ))
}

/// Reads and validates a module (see [`module_bytes`]); also returns the
/// default transform name.
pub fn load_module(host: &Host, wasm: &str) -> Result<(Transform, String)> {
    let (bytes, name) = module_and_name(wasm)?;
    let transform = host.load(&bytes).with_context(|| wasm.to_string())?;
    Ok((transform, name))
}

/// `module` with a custom section added: the same code, another version,
/// as a rebuild gives. Hosts ignore custom sections.
pub fn with_custom_section(module: &[u8], name: &str) -> Vec<u8> {
    let mut section = Vec::new();
    leb128(&mut section, name.len());
    section.extend(name.as_bytes());
    let mut out = module.to_vec();
    out.push(0);
    leb128(&mut out, section.len());
    out.extend(section);
    out
}

fn leb128(out: &mut Vec<u8>, mut n: usize) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// The value at quantile `q` (0 to 1) of `values`, by nearest rank.
pub fn quantile(values: &[f64], q: f64) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let last = sorted.len().checked_sub(1)?;
    sorted.get((last as f64 * q).round() as usize).copied()
}

/// Transform log events on our stderr, a line each, as Redpanda puts them
/// in its own log; an event of several lines is prefixed on each.
pub fn stderr_logger() -> Logger {
    Arc::new(|event: LogEvent<'_>| {
        let stream = match event.stream {
            LogStream::Stdout => "",
            LogStream::Stderr => " (stderr)",
        };
        let message = event.message.strip_suffix('\n').unwrap_or(event.message);
        for line in message.split('\n') {
            eprintln!("[{}{stream}] {line}", event.transform);
        }
    })
}
