//! Where generated records go. The file sink writes the harness's input
//! format; the broker sinks live beside it, and the embedded mode plugs its
//! in-memory topics in through the same trait.

use std::io::Write;

use anyhow::{Context, Result};
use base64::prelude::{Engine, BASE64_STANDARD};

/// A record for the `logs` topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord<'a> {
    pub partition: i32,
    pub key: &'a str,
    pub value: &'a [u8],
    pub timestamp_ms: i64,
}

pub trait Sink {
    fn send(&mut self, record: &LogRecord<'_>) -> Result<()>;
    /// Waits until everything sent is stored or has failed for good.
    fn flush(&mut self) -> Result<()>;
    /// The generator is about to wait for the next event's time: a sink
    /// that keeps records to send together sends them now.
    fn idle(&mut self) -> Result<()> {
        Ok(())
    }
    /// Records that could not be stored, for good.
    fn failed(&self) -> u64 {
        0
    }
}

/// Records as lines of the harness's input format.
pub struct FileSink<W: Write> {
    out: W,
    line: Vec<u8>,
}

impl<W: Write> FileSink<W> {
    pub fn new(out: W) -> FileSink<W> {
        FileSink {
            out,
            line: Vec::with_capacity(512),
        }
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

impl<W: Write> Sink for FileSink<W> {
    fn send(&mut self, r: &LogRecord<'_>) -> Result<()> {
        let line = &mut self.line;
        line.clear();
        line.extend_from_slice(b"{\"partition\":");
        line.extend_from_slice(itoa::Buffer::new().format(r.partition).as_bytes());
        line.extend_from_slice(b",\"key\":");
        serde_json::to_writer(&mut *line, r.key)?;
        match std::str::from_utf8(r.value) {
            Ok(text) => {
                line.extend_from_slice(b",\"value\":");
                serde_json::to_writer(&mut *line, text)?;
            }
            // Binary (Avro) values, as the harness's input format takes them.
            Err(_) => {
                line.extend_from_slice(b",\"value_base64\":\"");
                line.extend_from_slice(BASE64_STANDARD.encode(r.value).as_bytes());
                line.push(b'"');
            }
        }
        line.extend_from_slice(b",\"timestamp\":");
        line.extend_from_slice(itoa::Buffer::new().format(r.timestamp_ms).as_bytes());
        line.extend_from_slice(b"}\n");
        self.out.write_all(line).context("writing the output file")
    }

    fn flush(&mut self) -> Result<()> {
        self.out.flush().context("writing the output file")
    }
}
