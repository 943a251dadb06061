//! Record-level differences, as a reader wants them: which record, which
//! field, what was expected and what came.

use serde_json::Value;

/// Most lines a difference shows.
const MAX_LINES: usize = 12;

/// How `got` differs from `expected`, one line a difference; empty when
/// they are equal.
pub fn differences(expected: &[Value], got: &[Value]) -> Vec<String> {
    let mut lines = Vec::new();
    if expected.len() != got.len() {
        lines.push(format!(
            "expected {} records, got {}",
            expected.len(),
            got.len()
        ));
    }
    let mut more = 0;
    for i in 0..expected.len().max(got.len()) {
        let line = match (expected.get(i), got.get(i)) {
            (Some(e), Some(g)) if e == g => continue,
            (Some(e), Some(g)) => {
                let mut fields = Vec::new();
                fields_differ("", e, g, &mut fields);
                format!("record {} ({}): {}", i + 1, place(g), fields.join("; "))
            }
            (Some(e), None) => format!("record {} missing: {}", i + 1, compact(e)),
            (None, Some(g)) => format!("record {} not expected: {}", i + 1, compact(g)),
            (None, None) => unreachable!("i is below one of the lengths"),
        };
        if lines.len() < MAX_LINES {
            lines.push(line);
        } else {
            more += 1;
        }
    }
    if more > 0 {
        lines.push(format!("… and {more} more"));
    }
    lines
}

/// Where an output record went: `results/0`.
fn place(record: &Value) -> String {
    format!(
        "{}/{}",
        record["topic"].as_str().unwrap_or("?"),
        record["partition"]
    )
}

fn compact(record: &Value) -> String {
    let text = record.to_string();
    match text.char_indices().nth(300) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

/// The fields of `expected` and `got` that differ, by path; a value that
/// holds JSON text is compared as JSON (`value.clicks`).
fn fields_differ(path: &str, expected: &Value, got: &Value, out: &mut Vec<String>) {
    let join = |key: &str| {
        if path.is_empty() {
            key.to_string()
        } else {
            format!("{path}.{key}")
        }
    };
    match (expected, got) {
        (Value::Object(e), Value::Object(g)) => {
            let keys = e.keys().chain(g.keys().filter(|k| !e.contains_key(*k)));
            for key in keys {
                let (a, b) = (
                    e.get(key).unwrap_or(&Value::Null),
                    g.get(key).unwrap_or(&Value::Null),
                );
                if a != b {
                    fields_differ(&join(key), a, b, out);
                }
            }
        }
        (Value::Array(e), Value::Array(g)) if e.len() == g.len() => {
            for (i, (a, b)) in e.iter().zip(g).enumerate() {
                if a != b {
                    fields_differ(&join(&i.to_string()), a, b, out);
                }
            }
        }
        (Value::String(e), Value::String(g)) => {
            match (
                serde_json::from_str::<Value>(e),
                serde_json::from_str::<Value>(g),
            ) {
                (Ok(a @ (Value::Object(_) | Value::Array(_))), Ok(b)) => {
                    fields_differ(path, &a, &b, out)
                }
                _ => out.push(format!("{path}: expected {expected}, got {got}")),
            }
        }
        _ => out.push(format!("{path}: expected {expected}, got {got}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(topic: &str, value: &str) -> Value {
        json!({"topic": topic, "partition": 0, "key": "k", "value": value, "headers": {}})
    }

    #[test]
    fn a_difference_names_the_record_and_the_field_inside_a_json_value() {
        let expected = [
            record("events", "a"),
            record("results", r#"{"clicks":5,"spend_micros":100}"#),
        ];
        let got = [
            record("events", "a"),
            record("results", r#"{"clicks":6,"spend_micros":100}"#),
            record("logs.dlq", "x"),
        ];
        assert_eq!(
            differences(&expected, &got),
            [
                "expected 2 records, got 3",
                "record 2 (results/0): value.clicks: expected 5, got 6",
                r#"record 3 not expected: {"topic":"logs.dlq","partition":0,"key":"k","value":"x","headers":{}}"#,
            ]
        );
        assert!(differences(&got, &got).is_empty());
        assert_eq!(
            differences(&[record("events", "a")], &[record("events", "b")]),
            [r#"record 1 (events/0): value: expected "a", got "b""#]
        );
    }

    #[test]
    fn long_differences_are_cut() {
        let expected: Vec<_> = (0..40).map(|i| record("e", &i.to_string())).collect();
        let lines = differences(&expected, &[]);
        assert_eq!(lines.len(), MAX_LINES + 1);
        assert_eq!(lines.last().unwrap(), "… and 29 more");
    }
}
