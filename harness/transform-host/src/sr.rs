//! The `redpanda_schema_registry` module, as
//! `src/v/wasm/schema_registry_module.cc` has it: schemas by id, a
//! subject's versions (-1: the latest), registration; 0 or the bytes
//! written, -1 when no registry is configured, -2 for anything else (a
//! buffer too small too). Integers are zigzag varints, text a varint length
//! and its bytes; a definition is its type (0 Avro, 1 Protobuf, 2 JSON),
//! its text and its references. No cache: the broker asks its registry
//! each time, and the SDKs cache in the guest.

use std::ops::Range;

use record_payload::redpanda::varint;
use record_payload::{write_sized, write_varint};
use registry::{Reference, RegistryError, Schema, SchemaRegistry, SchemaType, SubjectSchema};
use wasmtime::{Caller, Linker, Result};

use crate::memory::guest_range;
use crate::state::{memory_and_state, HostState};

const MODULE: &str = "redpanda_schema_registry";

const SUCCESS: i32 = 0;
const NOT_ENABLED: i32 = -1;
const ERROR: i32 = -2;

pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> Result<()> {
    linker.func_wrap(MODULE, "check_abi_version_0", || {})?;
    linker.func_wrap(
        MODULE,
        "get_schema_definition_len",
        HostState::schema_definition_len,
    )?;
    linker.func_wrap(
        MODULE,
        "get_schema_definition",
        HostState::schema_definition,
    )?;
    linker.func_wrap(
        MODULE,
        "get_subject_schema_len",
        HostState::subject_schema_len,
    )?;
    linker.func_wrap(MODULE, "get_subject_schema", HostState::subject_schema)?;
    linker.func_wrap(
        MODULE,
        "create_subject_schema",
        HostState::create_subject_schema,
    )?;
    Ok(())
}

impl HostState {
    fn schema_definition_len(mut c: Caller<'_, HostState>, id: i32, len_out: i32) -> Result<i32> {
        with_registry(&mut c, [(len_out, 4)], |registry, memory, [out]| {
            let encoded = definition(&registry.schema_by_id(id)?);
            Ok(write_length(memory, out, &encoded))
        })
    }

    fn schema_definition(mut c: Caller<'_, HostState>, id: i32, buf: i32, len: i32) -> Result<i32> {
        with_registry(
            &mut c,
            [(buf, len as u32 as usize)],
            |registry, memory, [out]| fill(memory, out, &definition(&registry.schema_by_id(id)?)),
        )
    }

    fn subject_schema_len(
        mut c: Caller<'_, HostState>,
        subject: i32,
        subject_len: i32,
        version: i32,
        len_out: i32,
    ) -> Result<i32> {
        let subject = (subject, subject_len as u32 as usize);
        with_registry(
            &mut c,
            [subject, (len_out, 4)],
            |registry, memory, [subject, out]| {
                let found = registry.subject_schema(&text(memory, subject), latest_if(version))?;
                Ok(write_length(memory, out, &subject_schema(&found)))
            },
        )
    }

    fn subject_schema(
        mut c: Caller<'_, HostState>,
        subject: i32,
        subject_len: i32,
        version: i32,
        buf: i32,
        len: i32,
    ) -> Result<i32> {
        let subject = (subject, subject_len as u32 as usize);
        let buf = (buf, len as u32 as usize);
        with_registry(
            &mut c,
            [subject, buf],
            |registry, memory, [subject, out]| {
                let found = registry.subject_schema(&text(memory, subject), latest_if(version))?;
                fill(memory, out, &subject_schema(&found))
            },
        )
    }

    /// Only the id comes back: the SDKs call the new schema version 0.
    fn create_subject_schema(
        mut c: Caller<'_, HostState>,
        subject: i32,
        subject_len: i32,
        buf: i32,
        len: i32,
        id_out: i32,
    ) -> Result<i32> {
        let ranges = [
            (subject, subject_len as u32 as usize),
            (buf, len as u32 as usize),
            (id_out, 4),
        ];
        with_registry(&mut c, ranges, |registry, memory, [subject, input, out]| {
            let schema = decode_definition(&memory[input]).ok_or_else(|| {
                RegistryError::Invalid("the schema to register is not an encoded definition".into())
            })?;
            let id = registry.register(&text(memory, subject), &schema)?;
            memory[out].copy_from_slice(&id.to_le_bytes());
            Ok(SUCCESS)
        })
    }
}

/// Translates every pointer first, as Redpanda does before a call (a bad
/// one traps, registry or not); then -1 without a registry, else `call`'s
/// answer, -2 for its error (logged, as the broker logs it).
fn with_registry<const N: usize>(
    c: &mut Caller<'_, HostState>,
    pointers: [(i32, usize); N],
    call: impl FnOnce(&dyn SchemaRegistry, &mut [u8], [Range<usize>; N]) -> Result<i32, RegistryError>,
) -> Result<i32> {
    let (memory, state) = memory_and_state(c)?;
    let mut ranges = [const { 0..0 }; N];
    for (range, (ptr, len)) in ranges.iter_mut().zip(pointers) {
        *range = guest_range(memory, ptr, len)?;
    }
    let Some(registry) = state.registry.clone() else {
        return Ok(NOT_ENABLED);
    };
    match call(registry.as_ref(), memory, ranges) {
        Ok(answer) => Ok(answer),
        Err(e) => {
            tracing::warn!("{}: schema registry: {e}", state.wasi.name());
            Ok(ERROR)
        }
    }
}

fn latest_if(version: i32) -> Option<i32> {
    (version != -1).then_some(version)
}

fn text(memory: &[u8], range: Range<usize>) -> String {
    String::from_utf8_lossy(&memory[range]).into_owned()
}

/// The `_len` calls: the size as a native `uint32_t`, and 0.
fn write_length(memory: &mut [u8], out: Range<usize>, encoded: &[u8]) -> i32 {
    memory[out].copy_from_slice(&(encoded.len() as u32).to_le_bytes());
    SUCCESS
}

/// The data calls: the bytes and their count, or -2 if they do not fit.
fn fill(memory: &mut [u8], buf: Range<usize>, encoded: &[u8]) -> Result<i32, RegistryError> {
    if encoded.len() > buf.len() {
        return Err(RegistryError::Invalid(format!(
            "the guest's buffer holds {} bytes; the answer is {}",
            buf.len(),
            encoded.len()
        )));
    }
    memory[buf.start..buf.start + encoded.len()].copy_from_slice(encoded);
    Ok(encoded.len() as i32)
}

fn definition(schema: &Schema) -> Vec<u8> {
    let mut out = Vec::new();
    encode_definition(schema, &mut out);
    out
}

fn encode_definition(schema: &Schema, out: &mut Vec<u8>) {
    write_varint(out, schema.schema_type.abi_tag());
    write_sized(out, Some(schema.schema.as_bytes()));
    write_varint(out, schema.references.len() as i64);
    for r in &schema.references {
        write_sized(out, Some(r.name.as_bytes()));
        write_sized(out, Some(r.subject.as_bytes()));
        write_varint(out, i64::from(r.version));
    }
}

/// The subject is not written: the guest has it.
fn subject_schema(found: &SubjectSchema) -> Vec<u8> {
    let mut out = Vec::new();
    write_varint(&mut out, i64::from(found.id));
    write_varint(&mut out, i64::from(found.version));
    encode_definition(&found.schema, &mut out);
    out
}

/// Reads a definition as Redpanda does (`read_encoded_schema_def`): a
/// varint cut short is what was read, 0 from nothing; text must be whole;
/// bytes after it are ignored.
fn decode_definition(buf: &[u8]) -> Option<Schema> {
    let mut input = Input(buf);
    let schema_type = SchemaType::from_abi_tag(input.int())?;
    let schema = input.text()?;
    let count = usize::try_from(input.int()).ok()?;
    // Redpanda's `reserve` fails on a count no input could hold.
    if count > buf.len() {
        return None;
    }
    let mut references = Vec::with_capacity(count);
    for _ in 0..count {
        references.push(Reference {
            name: input.text()?,
            subject: input.text()?,
            version: i32::try_from(input.int()).ok()?,
        });
    }
    Some(Schema {
        schema,
        schema_type,
        references,
    })
}

struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn int(&mut self) -> i64 {
        let (value, read) = varint(self.0);
        self.0 = &self.0[read..];
        value
    }

    fn text(&mut self) -> Option<String> {
        let len = usize::try_from(self.int()).ok()?;
        let bytes = self.0.get(..len)?;
        self.0 = &self.0[len..];
        Some(String::from_utf8_lossy(bytes).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The worked example of `get_subject_schema`'s output, by
    /// `schema_registry_module.cc`, `write_encoded_schema_def` and `write_encoded_schema_subject`'s rules.
    #[test]
    fn a_subject_schema_as_redpanda_writes_it() {
        let found = SubjectSchema {
            subject: "s".into(),
            version: 3,
            id: 7,
            schema: Schema {
                schema: "syntax = \"proto3\";".into(),
                schema_type: SchemaType::Protobuf,
                references: vec![Reference {
                    name: "a.proto".into(),
                    subject: "a-value".into(),
                    version: 1,
                }],
            },
        };
        let out = subject_schema(&found);
        let mut expected = vec![0x0e, 0x06, 0x02, 0x24];
        expected.extend(b"syntax = \"proto3\";");
        expected.extend([0x02, 0x0e]);
        expected.extend(b"a.proto");
        expected.push(0x0e);
        expected.extend(b"a-value");
        expected.push(0x02);
        assert_eq!(out, expected);
        assert_eq!(out.len(), 40);
        let definition = decode_definition(&out[2..]).unwrap();
        assert_eq!(definition, found.schema);
    }

    #[test]
    fn definitions_read_as_redpanda_reads_them() {
        let mut input = vec![0x00, 0x22];
        input.extend(br#"{"type":"string"}"#);
        input.push(0x00);
        let schema = decode_definition(&input).unwrap();
        assert_eq!(
            (schema.schema_type, schema.schema.as_str()),
            (SchemaType::Avro, r#"{"type":"string"}"#)
        );
        // Trailing bytes are ignored; a cut text or an unknown type is not a schema.
        assert!(decode_definition(&[input.clone(), vec![9, 9]].concat()).is_some());
        assert!(decode_definition(&input[..5]).is_none());
        assert!(decode_definition(&[0x06, 0x00, 0x00]).is_none());
        // Nothing at all: Avro, empty text, no references (the registry refuses it).
        assert_eq!(decode_definition(&[]).unwrap().schema, "");
    }
}
