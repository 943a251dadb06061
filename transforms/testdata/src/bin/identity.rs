//! `testdata/identity/transform.go`: every record, as it is.

use redpanda_transform_sdk::{on_record_written, RecordWriter, WriteError, WriteEvent};

fn main() {
    on_record_written(
        |event: WriteEvent, out: &mut RecordWriter| -> Result<(), WriteError> {
            out.write(&event.record)
        },
    )
}
