//! A registry of the host's own, in memory: ids from 1, a subject's
//! versions from 1, the same schema registered again keeping its id (and,
//! in a subject, its version). No compatibility checks: Redpanda skips them
//! for schemas a transform registers, and this registry does for all.

use parking_lot::Mutex;
use std::collections::BTreeMap;

use crate::model::{RegistryError, Schema, SchemaRegistry, SchemaType, SubjectSchema};

#[derive(Default)]
pub struct LocalRegistry {
    state: Mutex<State>,
    /// Told of every registration that adds a schema or a version, in
    /// order: replayed into a new registry, they give the same ids.
    log: Option<RegistrationLog>,
}

/// See [`LocalRegistry::with_log`].
pub type RegistrationLog = Box<dyn Fn(&str, &Schema) + Send + Sync>;

#[derive(Default)]
struct State {
    /// By id - 1.
    schemas: Vec<Schema>,
    /// Each subject's versions, in order: schema ids.
    subjects: BTreeMap<String, Vec<i32>>,
}

impl LocalRegistry {
    pub fn new() -> LocalRegistry {
        LocalRegistry::default()
    }

    /// Tells `log` of every registration that changes the registry, so
    /// that registering them again, in order, gives it back.
    pub fn with_log(self, log: RegistrationLog) -> LocalRegistry {
        LocalRegistry {
            log: Some(log),
            ..self
        }
    }

    pub fn subjects(&self) -> Vec<String> {
        self.state.lock().subjects.keys().cloned().collect()
    }

    /// A subject's versions, `None` if there is no such subject.
    pub fn versions(&self, subject: &str) -> Option<Vec<i32>> {
        let state = self.state.lock();
        let ids = state.subjects.get(subject)?;
        Some((1..=ids.len() as i32).collect())
    }

    /// The version of `subject` that holds `schema`, if any.
    pub fn lookup(&self, subject: &str, schema: &Schema) -> Option<SubjectSchema> {
        let schema = normalised(schema);
        let state = self.state.lock();
        let ids = state.subjects.get(subject)?;
        let version = ids
            .iter()
            .position(|&id| state.schemas[id as usize - 1] == schema)?;
        Some(SubjectSchema {
            subject: subject.to_string(),
            version: version as i32 + 1,
            id: ids[version],
            schema,
        })
    }
}

/// Schemas compare as what they say, not how they are spaced: a JSON
/// definition (Avro, JSON Schema) is kept compact.
fn normalised(schema: &Schema) -> Schema {
    let text = match schema.schema_type {
        SchemaType::Avro | SchemaType::Json => {
            serde_json::from_str::<serde_json::Value>(&schema.schema)
                .map(|v| v.to_string())
                .unwrap_or_else(|_| schema.schema.clone())
        }
        SchemaType::Protobuf => schema.schema.trim().to_string(),
    };
    Schema {
        schema: text,
        ..schema.clone()
    }
}

/// Refuses definitions that cannot be schemas of their type.
fn check(schema: &Schema) -> Result<(), RegistryError> {
    match schema.schema_type {
        SchemaType::Avro | SchemaType::Json => {
            serde_json::from_str::<serde_json::Value>(&schema.schema)
                .map(|_| ())
                .map_err(|e| RegistryError::Invalid(format!("invalid schema: {e}")))
        }
        SchemaType::Protobuf if schema.schema.trim().is_empty() => {
            Err(RegistryError::Invalid("invalid schema: it is empty".into()))
        }
        SchemaType::Protobuf => Ok(()),
    }
}

impl SchemaRegistry for LocalRegistry {
    fn schema_by_id(&self, id: i32) -> Result<Schema, RegistryError> {
        let state = self.state.lock();
        usize::try_from(id - 1)
            .ok()
            .and_then(|i| state.schemas.get(i))
            .cloned()
            .ok_or_else(|| RegistryError::NotFound(format!("schema {id}")))
    }

    fn subject_schema(
        &self,
        subject: &str,
        version: Option<i32>,
    ) -> Result<SubjectSchema, RegistryError> {
        let state = self.state.lock();
        let ids = state
            .subjects
            .get(subject)
            .ok_or_else(|| RegistryError::NotFound(format!("subject {subject}")))?;
        let version = version.unwrap_or(ids.len() as i32);
        let id = usize::try_from(version - 1)
            .ok()
            .and_then(|i| ids.get(i))
            .copied()
            .ok_or_else(|| RegistryError::NotFound(format!("version {version} of {subject}")))?;
        Ok(SubjectSchema {
            subject: subject.to_string(),
            version,
            id,
            schema: state.schemas[id as usize - 1].clone(),
        })
    }

    fn register(&self, subject: &str, schema: &Schema) -> Result<i32, RegistryError> {
        check(schema)?;
        let schema = normalised(schema);
        let mut state = self.state.lock();
        for reference in &schema.references {
            let known = state
                .subjects
                .get(&reference.subject)
                .is_some_and(|v| reference.version >= 1 && reference.version as usize <= v.len());
            if !known {
                return Err(RegistryError::Invalid(format!(
                    "invalid schema: reference {} names version {} of {}, which does not exist",
                    reference.name, reference.version, reference.subject
                )));
            }
        }
        let id = match state.schemas.iter().position(|s| *s == schema) {
            Some(i) => i as i32 + 1,
            None => {
                state.schemas.push(schema.clone());
                state.schemas.len() as i32
            }
        };
        let versions = state.subjects.entry(subject.to_string()).or_default();
        if !versions.contains(&id) {
            versions.push(id);
            // Under the lock: the log has the registrations in their order.
            if let Some(log) = &self.log {
                log(subject, &schema);
            }
        }
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn avro(text: &str) -> Schema {
        Schema {
            schema: text.into(),
            ..Schema::default()
        }
    }

    #[test]
    fn ids_versions_and_the_same_schema_again() {
        let r = LocalRegistry::new();
        assert_eq!(r.register("a-value", &avro(r#"{"type": "string"}"#)), Ok(1));
        assert_eq!(
            r.register("a-value", &avro(r#"{"type":"string"}"#)),
            Ok(1),
            "spacing aside, the same"
        );
        assert_eq!(r.register("a-value", &avro(r#""long""#)), Ok(2));
        assert_eq!(
            r.register("b-value", &avro(r#""long""#)),
            Ok(2),
            "one id across subjects"
        );
        assert_eq!(r.versions("a-value"), Some(vec![1, 2]));
        let latest = r.subject_schema("a-value", None).unwrap();
        assert_eq!((latest.version, latest.id), (2, 2));
        assert_eq!(r.subject_schema("a-value", Some(1)).unwrap().id, 1);
        assert_eq!(r.schema_by_id(2).unwrap().schema, r#""long""#);
        assert!(matches!(r.schema_by_id(3), Err(RegistryError::NotFound(_))));
        assert!(matches!(
            r.subject_schema("a-value", Some(3)),
            Err(RegistryError::NotFound(_))
        ));
        assert!(matches!(
            r.register("c", &avro("{not json")),
            Err(RegistryError::Invalid(_))
        ));
        assert_eq!(
            r.lookup("b-value", &avro(r#" "long" "#)).unwrap().version,
            1
        );
    }
}
