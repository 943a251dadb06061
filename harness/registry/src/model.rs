//! Schemas, their subjects and versions, as Confluent's REST API carries
//! them, and what a registry does with them.

use serde::{Deserialize, Serialize};

/// The schema languages, with the numbers the transform ABI gives them
/// (`src/v/wasm/schema_registry_module.cc`, `serialized_schema_type`) and the names the REST
/// API does (AVRO when absent).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum SchemaType {
    #[default]
    Avro,
    Protobuf,
    Json,
}

impl SchemaType {
    pub fn abi_tag(self) -> i64 {
        match self {
            SchemaType::Avro => 0,
            SchemaType::Protobuf => 1,
            SchemaType::Json => 2,
        }
    }

    pub fn from_abi_tag(tag: i64) -> Option<SchemaType> {
        match tag {
            0 => Some(SchemaType::Avro),
            1 => Some(SchemaType::Protobuf),
            2 => Some(SchemaType::Json),
            _ => None,
        }
    }

    fn is_avro(&self) -> bool {
        *self == SchemaType::Avro
    }
}

/// A schema another one refers to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Reference {
    pub name: String,
    pub subject: String,
    pub version: i32,
}

/// A schema's definition: `{"schema", "schemaType", "references"}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Schema {
    pub schema: String,
    #[serde(
        rename = "schemaType",
        default,
        skip_serializing_if = "SchemaType::is_avro"
    )]
    pub schema_type: SchemaType,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<Reference>,
}

/// A schema as a version of a subject.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubjectSchema {
    pub subject: String,
    pub version: i32,
    pub id: i32,
    #[serde(flatten)]
    pub schema: Schema,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistryError {
    /// The registry did not answer.
    Unreachable(String),
    /// It has no such schema, subject or version.
    NotFound(String),
    /// It refused the request, or answered with something else.
    Invalid(String),
}

impl std::fmt::Display for RegistryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RegistryError::Unreachable(why) => {
                write!(f, "the schema registry is unreachable: {why}")
            }
            RegistryError::NotFound(what) => write!(f, "{what} not found in the schema registry"),
            RegistryError::Invalid(why) => write!(f, "the schema registry: {why}"),
        }
    }
}

impl std::error::Error for RegistryError {}

/// What the transforms' Schema Registry module asks of a registry.
pub trait SchemaRegistry: Send + Sync {
    fn schema_by_id(&self, id: i32) -> Result<Schema, RegistryError>;
    /// A version of a subject; `None` for the latest.
    fn subject_schema(
        &self,
        subject: &str,
        version: Option<i32>,
    ) -> Result<SubjectSchema, RegistryError>;
    /// Registers a schema under a subject (again: the same id); its id.
    fn register(&self, subject: &str, schema: &Schema) -> Result<i32, RegistryError>;
}
