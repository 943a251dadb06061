//! The harness: hosts Redpanda data transforms outside Redpanda with the
//! same contract (see `transform-host`), over records from files.

pub mod bench;
pub mod records;
pub mod run;
pub mod runtime;
pub mod spec;

use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use transform_host::{Host, LogLine, LogStream, Logger, Transform};

/// Reads and validates a module: a path, or a transform built into the
/// harness (`@pipeline`, `@enrich`, `@aggregate`, `@tee`). Also returns the default
/// transform name: the built-in's, or the file's stem.
pub fn load_module(host: &Host, wasm: &str) -> Result<(Transform, String)> {
    let (bytes, name) = match wasm {
        "@pipeline" => (
            transform_artifacts::PIPELINE.to_vec(),
            "marketing-pipeline".to_string(),
        ),
        "@enrich" => (transform_artifacts::ENRICH.to_vec(), "enrich".to_string()),
        "@aggregate" => (
            transform_artifacts::AGGREGATE.to_vec(),
            "aggregate".to_string(),
        ),
        path if path.starts_with('@') => {
            bail!("unknown built-in transform {path}: use @pipeline, @enrich, @aggregate or @tee")
        }
        path => {
            let bytes = std::fs::read(path).with_context(|| format!("reading {path}"))?;
            let stem = Path::new(path)
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned());
            (bytes, stem.unwrap_or_else(|| "transform".into()))
        }
    };
    let transform = host
        .load(&bytes)
        .with_context(|| format!("{wasm} would be refused at deploy"))?;
    Ok((transform, name))
}

/// Transform log lines on our stderr, as Redpanda puts them in its log.
pub fn stderr_logger() -> Logger {
    Arc::new(|line: LogLine<'_>| {
        let stream = match line.stream {
            LogStream::Stdout => "",
            LogStream::Stderr => " (stderr)",
        };
        eprintln!("[{}{stream}] {}", line.transform, line.line);
    })
}
