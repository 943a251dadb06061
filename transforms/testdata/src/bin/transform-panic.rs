//! `testdata/transform-panic/transform.go`: panics on every record.

use redpanda_transform_sdk::{on_record_written, RecordWriter, WriteError, WriteEvent};

fn main() {
    on_record_written(
        |_: WriteEvent, _: &mut RecordWriter| -> Result<(), WriteError> { panic!("oh noes!") },
    )
}
