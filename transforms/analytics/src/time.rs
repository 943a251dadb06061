//! Event-time parsing and window arithmetic, in integer milliseconds since the epoch.

use crate::text::trim;

/// Earliest and latest event time we accept: anything outside is a broken
/// clock or a unit mix-up, not a marketing event.
pub const MIN_TS_MS: i64 = 946_684_800_000; // 2000-01-01T00:00:00Z
pub const MAX_TS_MS: i64 = 4_102_444_800_000; // 2100-01-01T00:00:00Z

/// Parses `2025-08-17T14:46:04.169993` (naive, read as UTC), the same with a
/// space instead of `T`, or RFC 3339 with `Z` or a `±HH:MM` offset. Fractions
/// beyond milliseconds are truncated.
pub fn parse_timestamp_ms(s: &str) -> Option<i64> {
    let b = trim(s).as_bytes();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let year = digits(&b[0..4])?;
    let month = digits(&b[5..7])?;
    let day = digits(&b[8..10])?;
    let hour = digits(&b[11..13])?;
    let minute = digits(&b[14..16])?;
    let second = digits(&b[17..19])?;
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut rest = &b[19..];
    let mut millis = 0i64;
    if let Some((b'.', frac)) = rest.split_first() {
        let n = frac.iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 || n > 9 {
            return None;
        }
        for (i, c) in frac[..n].iter().enumerate() {
            if i < 3 {
                millis = millis * 10 + i64::from(c - b'0');
            }
        }
        for _ in n..3 {
            millis *= 10;
        }
        rest = &frac[n..];
    }
    let offset_s = match rest {
        [] | [b'Z'] | [b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let h = digits(&[*h1, *h2])?;
            let m = digits(&[*m1, *m2])?;
            if h > 23 || m > 59 {
                return None;
            }
            let off = (h * 3600 + m * 60) as i64;
            if *sign == b'-' {
                -off
            } else {
                off
            }
        }
        _ => return None,
    };
    let days = days_from_civil(year as i64, month, day);
    let secs = days * 86_400 + (hour * 3600 + minute * 60 + second) as i64 - offset_s;
    Some(secs * 1000 + millis)
}

fn digits(b: &[u8]) -> Option<u32> {
    b.iter().try_fold(0u32, |acc, c| {
        c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
    })
}

fn is_leap(year: u32) -> bool {
    (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400)
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// `2025-08-17T14:46:00Z`: how windows are named in `results`.
pub fn format_utc(ms: i64) -> String {
    let mut s = format_seconds(ms);
    s.push('Z');
    s
}

/// `2025-08-17T14:46:04.169000`: the seed's naive UTC timestamps.
pub fn format_naive(ms: i64) -> String {
    let mut s = format_seconds(ms);
    s.push('.');
    push_digits(&mut s, ms.rem_euclid(1000), 3);
    s.push_str("000");
    s
}

// Digits by hand: the generator formats a timestamp per event, and
// `format!` would be most of its cost.
fn format_seconds(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    let mut s = String::with_capacity(27);
    for (value, width, sep) in [
        (y, 4, '-'),
        (i64::from(mo), 2, '-'),
        (i64::from(d), 2, 'T'),
        (sod / 3600, 2, ':'),
        (sod % 3600 / 60, 2, ':'),
    ] {
        push_digits(&mut s, value, width);
        s.push(sep);
    }
    push_digits(&mut s, sod % 60, 2);
    s
}

/// `value` zero-padded to at least `width` digits (`value` ≥ 0).
fn push_digits(s: &mut String, value: i64, width: usize) {
    let mut buffer = itoa::Buffer::new();
    let digits = buffer.format(value);
    for _ in digits.len()..width {
        s.push('0');
    }
    s.push_str(digits);
}

/// Parses a duration such as `1m`, `30s`, `500ms`, `2h` or `1d` into milliseconds.
pub fn parse_duration_ms(s: &str) -> Option<i64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = s.split_at(split);
    let n: i64 = n.parse().ok()?;
    let unit_ms = match unit.trim() {
        "ms" => 1,
        "s" => 1_000,
        "m" | "min" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    };
    n.checked_mul(unit_ms)
}

/// A duration for messages: its two largest units, `1d`, `26799d 9h`, `90s` -> `1m 30s`.
pub fn format_duration(ms: i64) -> String {
    let units = [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
    ];
    let sign = if ms < 0 { "-" } else { "" };
    let ms = ms.unsigned_abs();
    let Some(i) = units.iter().position(|&(_, u)| ms >= u) else {
        return format!("{sign}{ms}ms");
    };
    let (name, unit) = units[i];
    let mut s = format!("{sign}{}{name}", ms / unit);
    if let Some(&(next, next_unit)) = units.get(i + 1) {
        let rest = ms % unit / next_unit;
        if rest > 0 {
            s.push_str(&format!(" {rest}{next}"));
        }
    }
    s
}

/// Start of the epoch-aligned tumbling window of `size_ms` holding `ts_ms`.
pub fn window_start(ts_ms: i64, size_ms: i64) -> i64 {
    ts_ms - ts_ms.rem_euclid(size_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_seed_format_and_offsets() {
        assert_eq!(
            parse_timestamp_ms("2025-08-17T14:46:04.169993"),
            Some(1_755_441_964_169)
        );
        assert_eq!(
            parse_timestamp_ms("2025-08-17 14:46:04"),
            Some(1_755_441_964_000)
        );
        assert_eq!(
            parse_timestamp_ms("2025-08-17T16:46:04.1+02:00"),
            Some(1_755_441_964_100)
        );
        assert_eq!(
            parse_timestamp_ms("2025-08-17T09:46:04Z"),
            Some(1_755_423_964_000)
        );
        assert_eq!(parse_timestamp_ms("1970-01-01T00:00:00Z"), Some(0));
    }

    #[test]
    fn rejects_malformed_timestamps() {
        for bad in [
            "",
            "yesterday",
            "2025-13-01T00:00:00",
            "2025-02-30T00:00:00",
            "2025-08-17T24:00:00",
            "2025-08-17T14:46:04.",
            "2025-08-17T14:46:04+2",
            "2025-08-17T14:46:04 junk",
            "１２３４-08-17T14:46:04",
        ] {
            assert_eq!(parse_timestamp_ms(bad), None, "{bad}");
        }
    }

    #[test]
    fn civil_roundtrip_over_four_centuries() {
        for days in (-146_097..146_097 * 2).step_by(7) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(format_utc(1_755_441_960_000), "2025-08-17T14:46:00Z");
        assert_eq!(format_utc(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(
            format_naive(1_755_441_964_169),
            "2025-08-17T14:46:04.169000"
        );
        assert_eq!(parse_timestamp_ms(&format_naive(-1)), Some(-1));
    }

    #[test]
    fn durations_and_windows() {
        assert_eq!(parse_duration_ms("1m"), Some(60_000));
        assert_eq!(parse_duration_ms("250ms"), Some(250));
        assert_eq!(parse_duration_ms(" 2h "), Some(7_200_000));
        assert_eq!(parse_duration_ms("m"), None);
        assert_eq!(parse_duration_ms("5 parsecs"), None);
        assert_eq!(window_start(1_755_441_964_169, 60_000), 1_755_441_960_000);
        assert_eq!(window_start(-1, 60_000), -60_000);
        assert_eq!(format_duration(86_400_000), "1d");
        assert_eq!(format_duration(90_000), "1m 30s");
        assert_eq!(format_duration(250), "250ms");
        assert_eq!(format_duration(-3_600_000), "-1h");
    }
}
