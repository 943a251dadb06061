//! `logs` events in Avro, framed as Confluent's serializers frame them: a
//! zero magic byte, the writer schema's registry id (4 bytes, big-endian),
//! then the Avro body. Fields are read by name from the writer's schema,
//! so any producer's record schema with the seed's field names works: text
//! fields as `string` (or a union with `null`), `event` also as an `enum`,
//! `ts` also as `timestamp-millis`, `cost` (and the optional `revenue`) as
//! a `decimal`, `string`, `double` or integer. Money stays exact: a decimal becomes micro-units
//! through its text, as a JSON number does.

use std::borrow::Cow;

use apache_avro::types::Value;
use apache_avro::Schema;

/// The parsed Avro schema type, for the transforms that supply [`Schemas`].
pub use apache_avro::Schema as AvroSchema;

use crate::event::{check_record_size, enrich, validate, Event, Fields, RecordMeta, Rejection};
use crate::time::format_utc;
use crate::Config;

/// The schema `generator --format avro` registers for `logs` (subject
/// `logs-value`): the seed's fields, `cost` a decimal with 6 places, and
/// an optional `revenue` like it.
pub const LOGS_SCHEMA: &str = r#"{"type":"record","name":"AdEvent","namespace":"marketing","fields":[{"name":"event_id","type":["null","string"],"default":null},{"name":"ts","type":"string"},{"name":"user_id","type":"string"},{"name":"campaign_id","type":"string"},{"name":"channel","type":"string"},{"name":"event","type":"string"},{"name":"cost","type":{"type":"bytes","logicalType":"decimal","precision":18,"scale":6}},{"name":"revenue","type":["null",{"type":"bytes","logicalType":"decimal","precision":18,"scale":6}],"default":null}]}"#;

/// Confluent's magic byte: a value that starts with it is framed Avro (a
/// JSON event starts with `{` or white space).
pub const MAGIC: u8 = 0;

/// The schema id and the body of a framed value, if it is one.
pub fn framed(value: &[u8]) -> Option<(i32, &[u8])> {
    match value {
        [MAGIC, a, b, c, d, body @ ..] => Some((i32::from_be_bytes([*a, *b, *c, *d]), body)),
        _ => None,
    }
}

/// Frames an Avro body for schema `id`.
pub fn frame(id: i32, body: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.push(MAGIC);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(body);
}

/// Where writer schemas come from: the transform's Schema Registry client,
/// or a map in tests.
pub trait Schemas {
    /// The Avro schema registered with this id.
    fn avro(&mut self, id: i32) -> Result<&Schema, Rejection>;
}

/// No registry: a framed value is refused with the reason.
pub struct NoRegistry;

impl Schemas for NoRegistry {
    fn avro(&mut self, id: i32) -> Result<&Schema, Rejection> {
        Err(Rejection::new(
            "unknown_schema",
            format!("an Avro value of schema {id}, and no schema registry to read it with"),
        ))
    }
}

/// Validates, normalises and enriches one `logs` value in either format:
/// framed Avro when it starts with the magic byte, else JSON.
pub fn enrich_value<'a>(
    value: Option<&'a [u8]>,
    meta: RecordMeta,
    config: &'a Config,
    schemas: &mut dyn Schemas,
) -> Result<Event<'a>, Rejection> {
    match value.and_then(framed) {
        Some((id, body)) => {
            // A record too large is refused before the registry is asked.
            check_record_size(meta, config)?;
            enrich_avro(schemas.avro(id)?, body, meta, config)
        }
        None => enrich(value, meta, config),
    }
}

/// Validates, normalises and enriches one framed Avro `logs` value.
pub fn enrich_avro<'a>(
    schema: &Schema,
    mut body: &[u8],
    meta: RecordMeta,
    config: &'a Config,
) -> Result<Event<'a>, Rejection> {
    check_record_size(meta, config)?;
    let value = apache_avro::from_avro_datum(schema, &mut body, None).map_err(|e| {
        Rejection::new(
            "invalid_avro",
            format!("not an Avro value of its schema: {e}"),
        )
    })?;
    let Value::Record(fields) = value else {
        return Err(Rejection::new(
            "invalid_avro",
            "the Avro value is not a record",
        ));
    };
    let mut raw = Fields::default();
    for (name, value) in fields {
        let Some(i) = Fields::index(&name) else {
            continue;
        };
        *raw.slot(i) = text(&name, value, decimal_scale(schema, &name))?.map(Cow::Owned);
    }
    validate(raw, meta, config)
}

/// The scale of a record field that is a decimal (or a union holding one).
fn decimal_scale(schema: &Schema, field: &str) -> usize {
    let Schema::Record(record) = schema else {
        return 0;
    };
    let Some(field) = record.fields.iter().find(|f| f.name == field) else {
        return 0;
    };
    let scale = |s: &Schema| match s {
        Schema::Decimal(d) => Some(d.scale),
        _ => None,
    };
    match &field.schema {
        Schema::Union(union) => union.variants().iter().find_map(scale),
        other => scale(other),
    }
    .unwrap_or(0)
}

/// A field's value as the text the JSON path would see; `None` for null.
fn text(field: &str, value: Value, scale: usize) -> Result<Option<String>, Rejection> {
    Ok(Some(match value {
        Value::Null => return Ok(None),
        Value::Union(_, inner) => return text(field, *inner, scale),
        Value::String(s) | Value::Enum(_, s) => s,
        Value::Int(n) => n.to_string(),
        Value::Long(n) => n.to_string(),
        // The shortest text that reads back as the same number, as in JSON.
        Value::Double(x) => x.to_string(),
        Value::Float(x) => x.to_string(),
        Value::Decimal(d) => {
            let bytes = Vec::<u8>::try_from(&d).map_err(|e| bad(field, e))?;
            decimal_text(&bytes, scale).ok_or_else(|| bad(field, "the decimal is too large"))?
        }
        Value::TimestampMillis(ms) => format_utc(ms),
        Value::TimestampMicros(us) => format_utc(us.div_euclid(1000)),
        other => {
            return Err(Rejection::new(
                "invalid_avro",
                format!("field `{field}` is {other:?}, not text, a number or null"),
            ))
        }
    }))
}

/// An Avro decimal (its unscaled value, big-endian two's complement) as
/// decimal text: `[0x04, 0xd2]` at scale 2 is `12.34`.
fn decimal_text(bytes: &[u8], scale: usize) -> Option<String> {
    if bytes.len() > 16 {
        return None;
    }
    let negative = bytes.first().is_some_and(|b| b & 0x80 != 0);
    let unscaled = bytes
        .iter()
        .fold(if negative { -1i128 } else { 0 }, |n, &b| {
            (n << 8) | i128::from(b)
        });
    let digits = unscaled.unsigned_abs().to_string();
    let digits = format!("{digits:0>width$}", width = scale + 1);
    let (units, fraction) = digits.split_at(digits.len() - scale);
    let sign = if negative { "-" } else { "" };
    Some(match scale {
        0 => format!("{sign}{units}"),
        _ => format!("{sign}{units}.{fraction}"),
    })
}

fn bad(field: &str, e: impl std::fmt::Display) -> Rejection {
    Rejection::new("invalid_avro", format!("field `{field}`: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use apache_avro::types::Record;
    use apache_avro::Decimal;

    #[test]
    fn decimals_as_text() {
        assert_eq!(decimal_text(&[0x04, 0xd2], 2).unwrap(), "12.34");
        assert_eq!(decimal_text(&[0xfb, 0x2e], 2).unwrap(), "-12.34");
        assert_eq!(decimal_text(&[0x01], 6).unwrap(), "0.000001");
        assert_eq!(decimal_text(&[], 0).unwrap(), "0");
        assert_eq!(decimal_text(&[0x7f], 0).unwrap(), "127");
        assert!(decimal_text(&[1; 17], 0).is_none());
    }

    fn event(cost_micros: i64, event: &str) -> Vec<u8> {
        let schema = Schema::parse_str(LOGS_SCHEMA).unwrap();
        let mut record = Record::new(&schema).unwrap();
        record.put(
            "event_id",
            Value::Union(1, Box::new(Value::String("e1".into()))),
        );
        record.put("ts", "2025-08-17T14:46:04.169993");
        record.put("user_id", "u1");
        record.put("campaign_id", " Spring_Sale ");
        record.put("channel", "FB");
        record.put("event", event);
        let unscaled = cost_micros.to_be_bytes().to_vec();
        record.put("cost", Value::Decimal(Decimal::from(unscaled)));
        apache_avro::to_avro_datum(&schema, record).unwrap()
    }

    #[test]
    fn an_avro_event_enriches_as_its_json_twin() {
        let schema = Schema::parse_str(LOGS_SCHEMA).unwrap();
        let config = Config::default();
        let body = event(1_250_000, "Click");
        let avro = enrich_avro(&schema, &body, RecordMeta::default(), &config).unwrap();
        let json = crate::enrich(
            Some(br#"{"event_id":"e1","ts":"2025-08-17T14:46:04.169993","user_id":"u1","campaign_id":" Spring_Sale ","channel":"FB","event":"Click","cost":1.25}"#),
            RecordMeta::default(),
            &config,
        )
        .unwrap();
        assert_eq!(avro, json);
        assert_eq!(avro.cost_micros, 1_250_000);
    }

    #[test]
    fn bad_avro_is_rejected_with_a_kind() {
        let schema = Schema::parse_str(LOGS_SCHEMA).unwrap();
        let config = Config::default();
        let body = event(1_250_000, "purchase");
        let e = enrich_avro(&schema, &body, RecordMeta::default(), &config).unwrap_err();
        assert_eq!(e.kind, "unknown_event_type");
        let e =
            enrich_avro(&schema, &event(-1, "click"), RecordMeta::default(), &config).unwrap_err();
        assert_eq!(e.kind, "bad_cost");
        let e = enrich_avro(
            &schema,
            &body[..body.len() / 2],
            RecordMeta::default(),
            &config,
        )
        .unwrap_err();
        assert_eq!(e.kind, "invalid_avro", "{e}");
        let long = Schema::parse_str(r#""long""#).unwrap();
        let e = enrich_avro(&long, &[0x02], RecordMeta::default(), &config).unwrap_err();
        assert_eq!(e.kind, "invalid_avro", "{e}");
    }

    #[test]
    fn framing() {
        let mut out = Vec::new();
        frame(7, b"body", &mut out);
        assert_eq!(out, [0, 0, 0, 0, 7, b'b', b'o', b'd', b'y']);
        assert_eq!(framed(&out), Some((7, &b"body"[..])));
        assert_eq!(framed(b"{}"), None);
        assert_eq!(framed(&[0, 0, 0]), None);
    }
}
