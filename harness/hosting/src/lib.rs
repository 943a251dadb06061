//! The generic Redpanda transform host: runs any transform's `.wasm`
//! (`transform-host`) over partitioned topics of any transport
//! (`topic-io`) as Redpanda's transform subsystem runs it — one VM for the
//! input's partitions, batches, output routing, commits after outputs, a
//! batch log that keeps results exact through crashes, restarts with
//! Redpanda's backoff, hot swaps, and the admin API over it all. Also its
//! local tools: `run` over a file, `test` over case files, and the
//! commands of the `harness` binary that are not the application's.
//!
//! It knows nothing of the marketing pipeline: a binary that carries
//! transforms of its own names them through [`Extensions`].

pub mod backoff;
pub mod batch_log;
pub mod bridge;
pub mod cases;
pub mod cli;
pub mod engine;
pub mod records;
pub mod run;
pub mod spec;
pub mod status;
pub mod topic_access;
pub mod transform_logs;
pub mod transforms;

use std::borrow::Cow;
use std::path::Path;

use anyhow::{bail, Context, Result};
use transform_host::{Host, LogEvent, LogStream, Logger, Transform};

pub use transforms::{Hosting, HostingOptions, SaveTransform, SavedTransform};

/// A transform a binary carries: `@name` on its command line.
pub struct Builtin {
    /// How the command line names it, `@` included.
    pub name: &'static str,
    pub module: &'static [u8],
    /// Its transform name when the command line gives none.
    pub transform: &'static str,
}

/// What a binary brings to the generic host: the transforms it carries,
/// and how `harness test`'s `merged` invariant reads its outputs.
#[derive(Default)]
pub struct Extensions {
    pub builtins: &'static [Builtin],
    pub merge: Option<cases::Merge>,
}

impl Extensions {
    /// A module's bytes and its default transform name: a path (named
    /// after the file's stem), or a transform the binary carries.
    pub fn module(&self, wasm: &str) -> Result<(Cow<'static, [u8]>, String)> {
        if wasm.starts_with('@') {
            let Some(builtin) = self.builtins.iter().find(|b| b.name == wasm) else {
                let names: Vec<&str> = self.builtins.iter().map(|b| b.name).collect();
                bail!(
                    "unknown built-in transform {wasm}: use one of {}",
                    names.join(", ")
                );
            };
            return Ok((Cow::Borrowed(builtin.module), builtin.transform.to_string()));
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

    /// Reads and validates a module (see [`Extensions::module`]); also
    /// returns the default transform name.
    pub fn load(&self, host: &Host, wasm: &str) -> Result<(Transform, String)> {
        let (bytes, name) = self.module(wasm)?;
        let transform = host.load(&bytes).with_context(|| wasm.to_string())?;
        Ok((transform, name))
    }
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
/// in its own log: each writer's fragments joined up to a newline.
pub fn stderr_logger() -> Logger {
    transform_host::lines(|event: LogEvent<'_>| {
        let stream = match event.stream {
            LogStream::Stdout => "",
            LogStream::Stderr => " (stderr)",
        };
        eprintln!("[{}{stream}] {}", event.transform, event.message);
    })
}
