//! rpk's `--from-offset` grammar (`src/go/rpk/pkg/cli/transform/deploy.go`)
//! and the broker's checks of the value (`src/v/redpanda/admin/transform.cc`).

use topic_io::StartOffset;

use crate::api::{OffsetFormat, OffsetSpec};

/// Largest timestamp the broker takes: `system_clock::duration::max()` in ms.
const MAX_TIMESTAMP_MS: i64 = 9_223_372_036_854;

/// `@T`, `+N` or `-N`, refused as rpk refuses it (a bad prefix, a number
/// it cannot parse), then as the broker does (a negative value, a
/// timestamp out of range).
pub fn parse_from_offset(text: &str) -> Result<OffsetSpec, String> {
    let Some(first) = text.chars().next() else {
        return Err("bad prefix: expected one of ['@','+','-'], got: \"\"".into());
    };
    let format = match first {
        '@' => OffsetFormat::Timestamp,
        '+' => OffsetFormat::FromStart,
        '-' => OffsetFormat::FromEnd,
        other => {
            return Err(format!(
                "bad prefix: expected one of ['@','+','-'], got: {:?}",
                other.to_string()
            ))
        }
    };
    let rest = &text[first.len_utf8()..];
    // Go's ParseInt, like Rust's, takes a sign: `--10` is -10 here and
    // refused by the broker's check below.
    let value = rest.parse::<i64>().map_err(|e| {
        let why = match e.kind() {
            std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow => {
                "value out of range"
            }
            _ => "invalid syntax",
        };
        format!("bad offset: parse error 'strconv.ParseInt: parsing {rest:?}: {why}'")
    })?;
    let spec = OffsetSpec { format, value };
    spec.check()?;
    Ok(spec)
}

impl OffsetSpec {
    /// The broker's checks (`src/v/redpanda/admin/transform.cc`,
    /// `admin_server::deploy_transform`, its `offset` block).
    pub fn check(&self) -> Result<(), String> {
        if self.value < 0 {
            return Err(format!(
                "Bad offset: expected value >= 0, got {}",
                self.value
            ));
        }
        if self.format == OffsetFormat::Timestamp && self.value >= MAX_TIMESTAMP_MS {
            return Err(format!(
                "Bad offset: Timestamp value out of range ({})",
                self.value
            ));
        }
        Ok(())
    }

    pub fn start(&self) -> StartOffset {
        match self.format {
            OffsetFormat::FromStart => StartOffset::FromStart(self.value),
            OffsetFormat::FromEnd => StartOffset::FromEnd(self.value),
            OffsetFormat::Timestamp => StartOffset::Timestamp(self.value),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The accepted and refused strings of
    /// `tests/rptest/tests/data_transforms_test.py` (`test_consume_from_offset`
    /// and its bad-offset cases), with rpk's and the broker's messages.
    #[test]
    fn rpk_and_the_broker_take_and_refuse_these() {
        let ok = |s: &str| parse_from_offset(s).unwrap().start();
        assert_eq!(ok("+0"), StartOffset::FromStart(0));
        assert_eq!(ok("+5"), StartOffset::FromStart(5));
        assert_eq!(
            ok("++5"),
            StartOffset::FromStart(5),
            "Go's ParseInt takes a `+`"
        );
        assert_eq!(ok("-3"), StartOffset::FromEnd(3));
        assert_eq!(
            ok("@1718000000000"),
            StartOffset::Timestamp(1_718_000_000_000)
        );
        let err = |s: &str| parse_from_offset(s).unwrap_err();
        assert_eq!(err("@-10"), "Bad offset: expected value >= 0, got -10");
        assert_eq!(err("--10"), "Bad offset: expected value >= 0, got -10");
        assert_eq!(err("+-10"), "Bad offset: expected value >= 0, got -10");
        assert_eq!(
            err("+NaN"),
            "bad offset: parse error 'strconv.ParseInt: parsing \"NaN\": invalid syntax'"
        );
        assert_eq!(
            err("@"),
            "bad offset: parse error 'strconv.ParseInt: parsing \"\": invalid syntax'"
        );
        assert_eq!(
            err("-9223372036854775808"),
            "bad offset: parse error 'strconv.ParseInt: parsing \"9223372036854775808\": value out of range'"
        );
        assert_eq!(
            err("5"),
            "bad prefix: expected one of ['@','+','-'], got: \"5\""
        );
        assert_eq!(
            err("@9223372036854775807"),
            "Bad offset: Timestamp value out of range (9223372036854775807)"
        );
    }
}
