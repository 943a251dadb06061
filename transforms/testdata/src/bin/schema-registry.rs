//! `testdata/schema-registry/transform.go`: registers its Avro schema under
//! `demo-topic-value` at start; then decodes each record's value (the
//! Confluent wire format: magic byte 0, a big-endian schema id, the Avro
//! body) with that schema, registering it under `<input>-value` the first
//! time an id is seen, and writes the value as JSON, keyed as the input.

use std::cell::RefCell;
use std::collections::HashSet;

use apache_avro::types::Value;
use redpanda_transform_sdk::{on_record_written, BorrowedRecord, RecordWriter, WriteEvent};
use redpanda_transform_sdk_sr::{decode_schema_id, Schema, SchemaRegistryClient};

/// `testdata/schema-registry/avro/example.go`'s schema, as it registers it.
const EXAMPLE: &str = r#"{"fields":[{"default":0,"name":"a","type":"long"},{"default":"","name":"b","type":"string"}],"name":"Example","type":"record"}"#;

fn main() {
    let mut client = SchemaRegistryClient::new();
    if let Err(e) =
        client.create_schema("demo-topic-value", Schema::new_avro(EXAMPLE.into(), vec![]))
    {
        println!("unable to register schema {e}");
    }
    let schema = apache_avro::Schema::parse_str(EXAMPLE).expect("the example schema parses");
    let subject = format!(
        "{}-value",
        std::env::var("REDPANDA_INPUT_TOPIC").unwrap_or_default()
    );
    let client = RefCell::new(client);
    let known = RefCell::new(HashSet::new());
    on_record_written(
        |event: WriteEvent, out: &mut RecordWriter| -> Result<(), String> {
            let value = event.record.value().unwrap_or_default();
            let (id, mut body) = decode_schema_id(value).map_err(|e| e.to_string())?;
            if known.borrow_mut().insert(id) {
                client
                    .borrow_mut()
                    .create_schema(&subject, Schema::new_avro(EXAMPLE.into(), vec![]))
                    .map_err(|e| e.to_string())?;
            }
            let decoded = apache_avro::from_avro_datum(&schema, &mut body, None)
                .map_err(|e| e.to_string())?;
            let Value::Record(fields) = decoded else {
                return Err(format!("not a record: {decoded:?}"));
            };
            let mut json = serde_json::Map::new();
            for (name, field) in fields {
                let field = serde_json::Value::try_from(field).map_err(|e| e.to_string())?;
                json.insert(name, field);
            }
            let json = serde_json::Value::Object(json).to_string();
            out.write(BorrowedRecord::new(
                event.record.key(),
                Some(json.as_bytes()),
            ))
            .map_err(|e| e.to_string())
        },
    )
}
