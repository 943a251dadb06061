//! A panic in `main` before the first batch, in a module that does link
//! the SDK: what `setup-panic` means to test, which Redpanda refuses at
//! deploy already (it has no ABI import).

use redpanda_transform_sdk::{on_record_written, RecordWriter, WriteError, WriteEvent};

fn main() {
    if std::env::var("REDPANDA_INPUT_TOPIC").is_ok() {
        panic!("Oh noes!");
    }
    on_record_written(
        |event: WriteEvent, out: &mut RecordWriter| -> Result<(), WriteError> {
            out.write(&event.record)
        },
    )
}
