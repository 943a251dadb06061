//! Writer schemas for Avro values, from Redpanda's Schema Registry through
//! the SDK's client (which caches its lookups), each parsed once.

use analytics::avro::{AvroSchema, Schemas};
use analytics::Rejection;
use redpanda_transform_sdk_sr::{
    SchemaFormat, SchemaId, SchemaRegistryClient, SchemaRegistryError,
};

/// Parsed schemas kept: a topic's producers use a handful.
const KEPT: usize = 16;

#[derive(Default)]
pub struct RegistrySchemas {
    /// Made on the first Avro value: JSON-only transforms never call the module.
    client: Option<SchemaRegistryClient>,
    /// Newest last.
    parsed: Vec<(i32, AvroSchema)>,
}

impl Schemas for RegistrySchemas {
    fn avro(&mut self, id: i32) -> Result<&AvroSchema, Rejection> {
        let i = match self.parsed.iter().position(|(known, _)| *known == id) {
            Some(i) => i,
            None => {
                let client = self.client.get_or_insert_with(SchemaRegistryClient::new);
                let schema = client
                    .lookup_schema_by_id(SchemaId(id))
                    .map_err(|e| unknown(id, &e))?;
                if *schema.format() != SchemaFormat::Avro {
                    return Err(Rejection::new(
                        "unknown_schema",
                        format!("schema {id} is {:?}, not Avro", schema.format()),
                    ));
                }
                let parsed = AvroSchema::parse_str(schema.schema()).map_err(|e| {
                    Rejection::new("unknown_schema", format!("schema {id} does not parse: {e}"))
                })?;
                if self.parsed.len() == KEPT {
                    self.parsed.remove(0);
                }
                self.parsed.push((id, parsed));
                self.parsed.len() - 1
            }
        };
        Ok(&self.parsed[i].1)
    }
}

/// The module's codes in words (`schema_registry_module.cc`: -1 not
/// enabled, -2 anything else).
fn unknown(id: i32, e: &SchemaRegistryError) -> Rejection {
    let why = match e {
        SchemaRegistryError::Unknown(-1) => "no schema registry is configured".to_string(),
        SchemaRegistryError::Unknown(-2) => {
            "the schema registry does not have it, or could not be reached".to_string()
        }
        other => other.to_string(),
    };
    Rejection::new("unknown_schema", format!("schema {id}: {why}"))
}
