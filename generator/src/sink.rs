//! The file sink: generated records as lines of the harness's input
//! format, for `harness run` and `harness test`. Brokers and the embedded
//! topics take records through the same trait (`topic_io::Sink`).

use std::io::Write;

use anyhow::{Context, Result};
use base64::prelude::{Engine, BASE64_STANDARD};
use topic_io::{BorrowedRecord, Sink};

/// Records as lines of the harness's input format; the topic is the
/// file's.
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

impl<W: Write + Send> Sink for FileSink<W> {
    fn send(
        &mut self,
        _topic: &str,
        partition: i32,
        timestamp_ms: Option<i64>,
        record: &BorrowedRecord<'_>,
    ) -> Result<()> {
        let line = &mut self.line;
        line.clear();
        line.extend_from_slice(b"{\"partition\":");
        line.extend_from_slice(itoa::Buffer::new().format(partition).as_bytes());
        if let Some(key) = record.key() {
            line.extend_from_slice(b",\"key\":");
            serde_json::to_writer(&mut *line, &String::from_utf8_lossy(key))?;
        }
        match record.value().map(std::str::from_utf8) {
            None => {}
            Some(Ok(text)) => {
                line.extend_from_slice(b",\"value\":");
                serde_json::to_writer(&mut *line, text)?;
            }
            // Binary (Avro) values, as the harness's input format takes them.
            Some(Err(_)) => {
                line.extend_from_slice(b",\"value_base64\":\"");
                let value = record.value().unwrap_or_default();
                line.extend_from_slice(BASE64_STANDARD.encode(value).as_bytes());
                line.push(b'"');
            }
        }
        if !record.headers().is_empty() {
            let headers: serde_json::Map<String, serde_json::Value> = record
                .headers()
                .iter()
                .map(|h| {
                    let value = h.value().map(|v| String::from_utf8_lossy(v).into_owned());
                    (String::from_utf8_lossy(h.key()).into_owned(), value.into())
                })
                .collect();
            line.extend_from_slice(b",\"headers\":");
            serde_json::to_writer(&mut *line, &headers)?;
        }
        if let Some(ms) = timestamp_ms {
            line.extend_from_slice(b",\"timestamp\":");
            line.extend_from_slice(itoa::Buffer::new().format(ms).as_bytes());
        }
        line.extend_from_slice(b"}\n");
        self.out.write_all(line).context("writing the output file")
    }

    fn flush(&mut self) -> Result<()> {
        self.out.flush().context("writing the output file")
    }

    /// A file has no offsets.
    fn end_offset(&self, _topic: &str, _partition: i32) -> Option<i64> {
        None
    }
}
