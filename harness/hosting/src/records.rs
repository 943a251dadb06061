//! The harness's file format for records: one JSON object a line.
//!
//! In: `{"partition":0,"key":"…","value":…,"headers":[…],"timestamp":ms}`;
//! `value` is a string, `null` (a tombstone) or any JSON value, which is then
//! written compactly; binary keys and values (Avro) come as `key_base64` and
//! `value_base64` instead. Headers are rpk's array of `{"key":…,"value":…}`
//! (or `value_base64`), in order, duplicates allowed; an object
//! `{"k":"v"}` is the short form. Every field but the value is optional; a
//! record without a timestamp gets the run's (see `RunOptions`).
//! Out: `{"topic":…,"partition":…,"key":…,"value":"…","headers":[…]}`, as
//! rpk's `topic consume` writes headers, bytes that are not UTF-8 in base64.

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
    /// `None`: the run gives it.
    pub timestamp_ms: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InputLine<'a> {
    #[serde(default)]
    partition: i32,
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    key_base64: Option<String>,
    /// `Some` when present, `null` included (a tombstone).
    #[serde(borrow, default, deserialize_with = "present")]
    value: Option<&'a RawValue>,
    #[serde(default)]
    value_base64: Option<String>,
    #[serde(default)]
    headers: serde_json::Value,
    #[serde(default)]
    timestamp: Option<i64>,
}

/// A header in rpk's form.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HeaderLine {
    key: String,
    #[serde(default)]
    value: Option<String>,
    #[serde(default)]
    value_base64: Option<String>,
}

fn base64(line: usize, field: &str, text: &str) -> Result<Vec<u8>> {
    BASE64_STANDARD
        .decode(text.trim())
        .with_context(|| format!("input line {line}: `{field}` is not base64"))
}

/// Text or its `_base64` twin, not both.
fn bytes(
    line: usize,
    field: &str,
    text: Option<String>,
    b64: Option<String>,
) -> Result<Option<Vec<u8>>> {
    match (text, b64) {
        (Some(_), Some(_)) => {
            bail!("input line {line}: give `{field}` or `{field}_base64`, not both")
        }
        (Some(text), None) => Ok(Some(text.into_bytes())),
        (None, Some(b64)) => base64(line, &format!("{field}_base64"), &b64).map(Some),
        (None, None) => Ok(None),
    }
}

type Headers = Vec<(Vec<u8>, Option<Vec<u8>>)>;

fn parse_headers(line: usize, headers: serde_json::Value) -> Result<Headers> {
    use serde_json::Value;
    match headers {
        Value::Null => Ok(Vec::new()),
        Value::Object(map) => map
            .into_iter()
            .map(|(k, v)| match v {
                Value::Null => Ok((k.into_bytes(), None)),
                Value::String(s) => Ok((k.into_bytes(), Some(s.into_bytes()))),
                other => {
                    bail!("input line {line}: header `{k}` must be a string or null, not {other}")
                }
            })
            .collect(),
        Value::Array(items) => items
            .into_iter()
            .enumerate()
            .map(|(i, item)| {
                let h: HeaderLine = serde_json::from_value(item).with_context(|| {
                    format!(
                        "input line {line}: header {}: not {{\"key\":…,\"value\":…}}",
                        i + 1
                    )
                })?;
                let value = bytes(line, "value", h.value, h.value_base64)?;
                Ok((h.key.into_bytes(), value))
            })
            .collect(),
        other => bail!(
            "input line {line}: `headers` is an array of {{\"key\":…,\"value\":…}} or an object, not {other}"
        ),
    }
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
            (None, Some(b64)) => Some(base64(line, "value_base64", &b64)?),
            (Some(_), Some(_)) => {
                bail!("input line {line}: give `value` or `value_base64`, not both")
            }
            (None, None) => bail!("input line {line}: missing field `value` (or `value_base64`)"),
        };
        Ok(InputRecord {
            line,
            partition: input.partition,
            key: bytes(line, "key", input.key, input.key_base64)?,
            value,
            headers: parse_headers(line, input.headers)?,
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
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

/// `name`: the bytes as text, or `null`; `name_base64` if they are not
/// UTF-8.
fn put_bytes<M: SerializeMap>(
    map: &mut M,
    name: &'static str,
    name_base64: &'static str,
    bytes: Option<&[u8]>,
) -> Result<(), M::Error> {
    match bytes.map(std::str::from_utf8) {
        Some(Err(_)) => map.serialize_entry(
            name_base64,
            &BASE64_STANDARD.encode(bytes.unwrap_or_default()),
        ),
        Some(Ok(text)) => map.serialize_entry(name, text),
        None => map.serialize_entry(name, &None::<&str>),
    }
}

impl Serialize for OutputLine<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(5))?;
        map.serialize_entry("topic", self.topic)?;
        map.serialize_entry("partition", &self.partition)?;
        put_bytes(&mut map, "key", "key_base64", self.key.as_deref())?;
        put_bytes(&mut map, "value", "value_base64", self.value.as_deref())?;
        let headers: Vec<HeaderOut<'_>> = self.headers.iter().map(HeaderOut).collect();
        map.serialize_entry("headers", &headers)?;
        map.end()
    }
}

/// A header as rpk writes it: `{"key":…,"value":…}`.
struct HeaderOut<'a>(&'a (String, Option<Vec<u8>>));

impl Serialize for HeaderOut<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(2))?;
        map.serialize_entry("key", &self.0 .0)?;
        put_bytes(&mut map, "value", "value_base64", self.0 .1.as_deref())?;
        map.end()
    }
}

impl<'a> OutputLine<'a> {
    pub fn new(topic: &'a str, partition: i32, payload: &[u8]) -> OutputLine<'a> {
        let record = decode_record(payload).expect("the host validated every output payload");
        OutputLine {
            topic,
            partition,
            key: record.key().map(<[u8]>::to_vec),
            value: record.value().map(<[u8]>::to_vec),
            headers: record
                .headers()
                .iter()
                .map(|h| {
                    (
                        String::from_utf8_lossy(h.key()).into_owned(),
                        h.value().map(<[u8]>::to_vec),
                    )
                })
                .collect(),
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("an output line always serialises")
    }
}

/// An expected record as output lines have it: headers written as an
/// object (the short form, and the form of files written before headers
/// were an array) become rpk's array.
pub fn in_output_form(mut record: serde_json::Value) -> serde_json::Value {
    if let Some(serde_json::Value::Object(headers)) = record.get("headers") {
        let array = headers
            .iter()
            .map(|(k, v)| serde_json::json!({"key": k, "value": v}))
            .collect();
        record["headers"] = serde_json::Value::Array(array);
    }
    record
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
            (Some(&b"{not json"[..]), 3, Some(5), None)
        );
        let tombstone = InputRecord::parse(3, r#"{"value":null}"#).unwrap();
        assert_eq!((tombstone.value, tombstone.timestamp_ms), (None, None));
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
            r#"{"topic":"t","partition":0,"key":null,"value_base64":"AAAAAAH/","headers":[]}"#
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
            r#"{"topic":"t","partition":2,"key":null,"value":"v","headers":[{"key":"z","value":"1"},{"key":"a","value":null}]}"#
        );
    }

    /// Two binary keys stay two keys; duplicate headers, their order and
    /// binary header values go through, in and out, as Kafka allows.
    #[test]
    fn binary_keys_and_repeated_binary_headers_round_trip() {
        let text = r#"{"key_base64":"/wA=","value":"v","headers":[{"key":"h","value":"1"},{"key":"h","value_base64":"/w=="},{"key":"h","value":null}]}"#;
        let r = InputRecord::parse(1, text).unwrap();
        assert_eq!(r.key.as_deref(), Some(&[0xff, 0][..]));
        assert_eq!(
            r.headers,
            [
                (b"h".to_vec(), Some(b"1".to_vec())),
                (b"h".to_vec(), Some(vec![0xff])),
                (b"h".to_vec(), None),
            ]
        );
        let line = OutputLine::new("t", 0, &r.payload());
        assert_eq!(
            line.to_json(),
            r#"{"topic":"t","partition":0,"key_base64":"/wA=","value":"v","headers":[{"key":"h","value":"1"},{"key":"h","value_base64":"/w=="},{"key":"h","value":null}]}"#
        );
        // Once both were U+FFFD, and equal.
        let out = |b64: &str| {
            let r = InputRecord::parse(2, &format!(r#"{{"key_base64":"{b64}","value":"v"}}"#));
            OutputLine::new("t", 0, &r.unwrap().payload()).to_json()
        };
        assert_ne!(out("/w=="), out("/g=="));
        for (text, error) in [
            (
                r#"{"key":"k","key_base64":"aw==","value":"v"}"#,
                "give `key` or `key_base64`, not both",
            ),
            (r#"{"value":"v","headers":[{"value":"x"}]}"#, "header 1"),
            (r#"{"value":"v","headers":"h"}"#, "`headers` is an array"),
        ] {
            let e = InputRecord::parse(4, text).unwrap_err();
            assert!(format!("{e:#}").contains(error), "{e:#}");
        }
    }

    #[test]
    fn expectations_with_headers_as_an_object_read_as_arrays() {
        let old = serde_json::json!({"topic":"t","headers":{"a":"1","b":null}});
        assert_eq!(
            in_output_form(old),
            serde_json::json!({"topic":"t","headers":[{"key":"a","value":"1"},{"key":"b","value":null}]})
        );
    }
}
