//! Standalone enrichment for users who chain topics: valid events to the
//! first output topic (`events`), invalid records to the second (`logs.dlq`).
//! Values are JSON, or Avro framed for the Schema Registry, as in the pipeline.

use analytics::avro::enrich_value;
use analytics::RecordMeta;
use redpanda_transform_sdk::{
    on_record_written, BorrowedRecord, RecordWriter, WriteError, WriteEvent, WriteOptions,
};
use transform_guest::{config_from_env, dead_letter, output_topic, RegistrySchemas};

fn main() {
    let config = config_from_env();
    let Some(dlq) = output_topic(1) else {
        eprintln!("enrich needs two output topics, in order: events, logs.dlq");
        std::process::exit(1)
    };
    let mut value = Vec::with_capacity(512);
    let value = std::cell::RefCell::new(&mut value);
    let schemas = std::cell::RefCell::new(RegistrySchemas::default());
    on_record_written(
        |event: WriteEvent, out: &mut RecordWriter| -> Result<(), WriteError> {
            let record = event.record.as_ref();
            let meta = RecordMeta {
                timestamp_ms: event
                    .record
                    .timestamp()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |t| t.as_millis() as i64),
                size_bytes: record.key().map_or(0, <[u8]>::len)
                    + record.value().map_or(0, <[u8]>::len)
                    + record
                        .headers()
                        .iter()
                        .map(|h| h.key().len() + h.value().map_or(0, <[u8]>::len))
                        .sum::<usize>(),
            };
            match enrich_value(record.value(), meta, &config, &mut *schemas.borrow_mut()) {
                Ok(enriched) => {
                    let mut value = value.borrow_mut();
                    enriched.write_json(&mut value);
                    let key = enriched.key();
                    out.write(BorrowedRecord::new_with_headers(
                        Some(key.as_bytes()),
                        Some(&value),
                        record.headers().to_vec(),
                    ))
                }
                Err(why) => out.write_with_options(
                    dead_letter(record, &why, "enrich"),
                    WriteOptions::to_topic(&dlq),
                ),
            }
        },
    )
}
