//! `testdata/identity_logging/transform.go`: logs `key:value\n` to stderr
//! in one write, then passes the record on.

use std::io::Write;

use redpanda_transform_sdk::{on_record_written, RecordWriter, WriteError, WriteEvent};

fn main() {
    on_record_written(
        |event: WriteEvent, out: &mut RecordWriter| -> Result<(), WriteError> {
            let mut line = Vec::new();
            line.extend_from_slice(event.record.key().unwrap_or_default());
            line.push(b':');
            line.extend_from_slice(event.record.value().unwrap_or_default());
            line.push(b'\n');
            // One fd_write, as Go's Fprintf makes: one log event.
            let _ = std::io::stderr().write_all(&line);
            out.write(&event.record)
        },
    )
}
