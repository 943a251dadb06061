//! `testdata/transform-error/transform.go`: fails every record with an
//! error, which the SDK turns into a panic.

use redpanda_transform_sdk::{on_record_written, RecordWriter, WriteEvent};

fn main() {
    on_record_written(|_: WriteEvent, _: &mut RecordWriter| -> Result<(), &str> { Err("oh noes!") })
}
