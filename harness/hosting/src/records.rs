//! The harness's file format for records: one JSON object a line.
//!
//! In: `{"partition":0,"key":"…","value":…,"headers":{"k":"v"},"timestamp":ms}`;
//! `value` is a string, `null` (a tombstone) or any JSON value, which is then
//! written compactly; binary values (Avro) come as `value_base64` instead;
//! every other field is optional.
//! Out: `{"topic":…,"partition":…,"key":…,"value":"…","headers":{…}}`.

use std::io::BufRead;

use anyhow::{bail, Context, Result};
use base64::prelude::{Engine, BASE64_STANDARD};
use record_payload::{decode_record, encode_record, BorrowedHeader, BorrowedRecord};
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::value::RawValue;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputRecord {
    /// 1-based line in the input, for error messages.
    pub line: usize,
    pub partition: i32,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    pub timestamp_ms: i64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InputLine<'a> {
    #[serde(default)]
    partition: i32,
    #[serde(default)]
    key: Option<String>,
    /// `Some` when present, `null` included (a tombstone).
    #[serde(borrow, default, deserialize_with = "present")]
    value: Option<&'a RawValue>,
    #[serde(default)]
    value_base64: Option<String>,
    #[serde(default)]
    headers: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    timestamp: i64,
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

impl InputRecord {
    pub fn parse(line: usize, text: &str) -> Result<InputRecord> {
        let input: InputLine =
            serde_json::from_str(text).with_context(|| format!("input line {line}"))?;
        if input.partition < 0 {
            bail!(
                "input line {line}: partition {} is negative",
                input.partition
            );
        }
        let value = match (input.value, input.value_base64) {
            (Some(raw), None) => {
                let value = serde_json::from_str::<serde_json::Value>(raw.get())
                    .with_context(|| format!("input line {line}: `value`"))?;
                match value {
                    serde_json::Value::Null => None,
                    serde_json::Value::String(s) => Some(s.into_bytes()),
                    other => Some(serde_json::to_vec(&other)?),
                }
            }
            (None, Some(b64)) => Some(
                BASE64_STANDARD
                    .decode(b64.trim())
                    .with_context(|| format!("input line {line}: `value_base64` is not base64"))?,
            ),
            (Some(_), Some(_)) => {
                bail!("input line {line}: give `value` or `value_base64`, not both")
            }
            (None, None) => bail!("input line {line}: missing field `value` (or `value_base64`)"),
        };
        let mut headers = Vec::new();
        for (k, v) in input.headers {
            let v = match v {
                serde_json::Value::Null => None,
                serde_json::Value::String(s) => Some(s.into_bytes()),
                other => {
                    bail!("input line {line}: header `{k}` must be a string or null, not {other}")
                }
            };
            headers.push((k.into_bytes(), v));
        }
        Ok(InputRecord {
            line,
            partition: input.partition,
            key: input.key.map(String::into_bytes),
            value,
            headers,
            timestamp_ms: input.timestamp,
        })
    }

    /// The record in the ABI's payload format.
    pub fn payload(&self) -> Vec<u8> {
        let headers = self
            .headers
            .iter()
            .map(|(k, v)| BorrowedHeader::new(k, v.as_deref()))
            .collect();
        let record =
            BorrowedRecord::new_with_headers(self.key.as_deref(), self.value.as_deref(), headers);
        let mut out = Vec::new();
        encode_record(&record, &mut out);
        out
    }
}

/// Reads every record; blank lines are skipped.
pub fn read_input(reader: impl BufRead) -> Result<Vec<InputRecord>> {
    let mut records = Vec::new();
    for (i, line) in reader.lines().enumerate() {
        let line = line.with_context(|| format!("reading input line {}", i + 1))?;
        if !line.trim().is_empty() {
            records.push(InputRecord::parse(i + 1, &line)?);
        }
    }
    Ok(records)
}

/// One output record as a line of the output format.
#[derive(Debug)]
pub struct OutputLine<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub key: Option<String>,
    pub value: Option<String>,
    /// A value that is not UTF-8 (Avro), written as `value_base64` instead.
    pub value_base64: Option<String>,
    pub headers: Vec<(String, Option<String>)>,
}

impl Serialize for OutputLine<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(5))?;
        map.serialize_entry("topic", self.topic)?;
        map.serialize_entry("partition", &self.partition)?;
        map.serialize_entry("key", &self.key)?;
        match &self.value_base64 {
            Some(b64) => map.serialize_entry("value_base64", b64)?,
            None => map.serialize_entry("value", &self.value)?,
        }
        map.serialize_entry("headers", &Headers(&self.headers))?;
        map.end()
    }
}

/// Headers as a JSON object, in their order.
struct Headers<'a>(&'a [(String, Option<String>)]);

impl Serialize for Headers<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl<'a> OutputLine<'a> {
    pub fn new(topic: &'a str, partition: i32, payload: &[u8]) -> OutputLine<'a> {
        let record = decode_record(payload).expect("the host validated every output payload");
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        let binary = record.value().filter(|v| std::str::from_utf8(v).is_err());
        OutputLine {
            topic,
            partition,
            key: record.key().map(text),
            value: record.value().filter(|_| binary.is_none()).map(text),
            value_base64: binary.map(|v| BASE64_STANDARD.encode(v)),
            headers: record
                .headers()
                .iter()
                .map(|h| (text(h.key()), h.value().map(text)))
                .collect(),
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("an output line always serialises")
    }
}

/// Bytes for a message: quoted text, at most 200 characters, or `null`.
pub fn show(bytes: Option<&[u8]>) -> String {
    match bytes {
        None => "null".into(),
        Some(b) => {
            let text = String::from_utf8_lossy(b);
            let short: String = text.chars().take(200).collect();
            format!(
                "{short:?}{}",
                if short.len() < text.len() { "…" } else { "" }
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_may_be_strings_json_or_null() {
        let r = InputRecord::parse(
            1,
            r#"{"value":{"b":1, "a":[1, 2]},"key":"k","headers":{"h":"v","n":null}}"#,
        )
        .unwrap();
        assert_eq!(r.value.as_deref(), Some(&br#"{"b":1,"a":[1,2]}"#[..]));
        assert_eq!(
            r.headers,
            [(b"h".to_vec(), Some(b"v".to_vec())), (b"n".to_vec(), None)]
        );
        let r =
            InputRecord::parse(2, r#"{"value":"{not json","partition":3,"timestamp":5}"#).unwrap();
        assert_eq!(
            (r.value.as_deref(), r.partition, r.timestamp_ms, r.key),
            (Some(&b"{not json"[..]), 3, 5, None)
        );
        assert_eq!(
            InputRecord::parse(3, r#"{"value":null}"#).unwrap().value,
            None
        );
    }

    #[test]
    fn bad_lines_name_their_line() {
        let e = InputRecord::parse(7, r#"{"key":"k"}"#).unwrap_err();
        assert!(
            format!("{e:#}").contains("input line 7: missing field `value`"),
            "{e:#}"
        );
        let e = InputRecord::parse(8, r#"{"value":1,"partiton":1}"#).unwrap_err();
        assert!(
            format!("{e:#}").contains("unknown field `partiton`"),
            "{e:#}"
        );
        let e = InputRecord::parse(9, r#"{"value":1,"headers":{"h":1}}"#).unwrap_err();
        assert!(e.to_string().contains("header `h`"), "{e}");
    }

    #[test]
    fn binary_values_travel_as_base64() {
        let r = InputRecord::parse(1, r#"{"value_base64":"AAAAAAH/"}"#).unwrap();
        assert_eq!(r.value.as_deref(), Some(&[0, 0, 0, 0, 1, 0xff][..]));
        let line = OutputLine::new("t", 0, &r.payload());
        assert_eq!(
            line.to_json(),
            r#"{"topic":"t","partition":0,"key":null,"value_base64":"AAAAAAH/","headers":{}}"#
        );
        // Bytes that are UTF-8 stay text, escaped as JSON escapes them.
        let r = InputRecord::parse(1, r#"{"value_base64":"AAAAAAEI"}"#).unwrap();
        let line = OutputLine::new("t", 0, &r.payload());
        assert!(line
            .to_json()
            .contains(r#""value":"\u0000\u0000\u0000\u0000\u0001\b""#));
        for (text, error) in [
            (r#"{"value":"v","value_base64":"AA=="}"#, "not both"),
            (r#"{"value_base64":"%%"}"#, "not base64"),
        ] {
            let e = InputRecord::parse(2, text).unwrap_err();
            assert!(format!("{e:#}").contains(error), "{e:#}");
        }
    }

    #[test]
    fn output_lines_keep_header_order() {
        let input = InputRecord::parse(1, r#"{"value":"v","headers":{"z":"1","a":null}}"#).unwrap();
        let line = OutputLine::new("t", 2, &input.payload());
        assert_eq!(
            line.to_json(),
            r#"{"topic":"t","partition":2,"key":null,"value":"v","headers":{"z":"1","a":null}}"#
        );
    }
}
