//! The SDK's identity example, widened to every output topic: a plain SDK
//! module that the harness's conformance tests run, and a handy way to
//! mirror a topic.

use redpanda_transform_sdk::{
    on_record_written, RecordWriter, WriteError, WriteEvent, WriteOptions,
};

fn main() {
    let topics: Vec<String> = (0..)
        .map_while(|i| std::env::var(format!("REDPANDA_OUTPUT_TOPIC_{i}")).ok())
        .collect();
    on_record_written(
        |event: WriteEvent, out: &mut RecordWriter| -> Result<(), WriteError> {
            for topic in &topics {
                out.write_with_options(event.record.as_ref(), WriteOptions::to_topic(topic))?;
            }
            Ok(())
        },
    )
}
