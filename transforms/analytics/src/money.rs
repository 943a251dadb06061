//! Money as integer micro-units: exact sums, floats only at the edges.

use crate::text::trim;

pub const MICROS_PER_UNIT: i64 = 1_000_000;

/// Largest single cost we accept, in currency units: anything bigger is a
/// unit mix-up, and keeping it bounded keeps every sum far from overflow.
pub const MAX_COST_UNITS: i64 = 1_000_000_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CostError {
    NotANumber,
    Negative,
    TooLarge,
}

impl CostError {
    /// What is wrong, for a message that names the amount: `revenue is negative`.
    pub fn reason(&self) -> &'static str {
        match self {
            CostError::NotANumber => "is not a finite decimal number",
            CostError::Negative => "is negative",
            CostError::TooLarge => "is larger than 1e9",
        }
    }
}

impl std::fmt::Display for CostError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cost {}", self.reason())
    }
}

/// Converts a decimal number's text (JSON number syntax, exponent allowed)
/// to micro-units, rounding half away from zero, without going through a
/// float, so that `0.1` is exactly 100000.
pub fn decimal_to_micros(text: &str) -> Result<i64, CostError> {
    let s = trim(text).as_bytes();
    let (negative, s) = match s.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, s),
    };
    let mut mantissa: u128 = 0;
    let mut scale: i64 = 0; // value = mantissa / 10^scale
    let mut seen_digit = false;
    let mut seen_dot = false;
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            c @ b'0'..=b'9' => {
                seen_digit = true;
                // Digits past what can matter only decide the rounding: keep
                // a sticky non-zero marker instead of growing the mantissa.
                if mantissa < 10u128.pow(30) {
                    mantissa = mantissa * 10 + u128::from(c - b'0');
                    if seen_dot {
                        scale += 1;
                    }
                } else {
                    if !seen_dot {
                        scale -= 1;
                    }
                    if c != b'0' {
                        mantissa |= 1;
                    }
                }
            }
            b'.' if !seen_dot => seen_dot = true,
            b'e' | b'E' => break,
            _ => return Err(CostError::NotANumber),
        }
        i += 1;
    }
    if !seen_digit {
        return Err(CostError::NotANumber);
    }
    if i < s.len() {
        let exp = std::str::from_utf8(&s[i + 1..])
            .ok()
            .and_then(|e| e.parse::<i32>().ok())
            .ok_or(CostError::NotANumber)?;
        scale -= i64::from(exp);
    }
    if negative && mantissa != 0 {
        return Err(CostError::Negative);
    }
    let shift = 6 - scale;
    let micros: u128 = if shift >= 0 {
        if shift > 30 {
            return if mantissa == 0 {
                Ok(0)
            } else {
                Err(CostError::TooLarge)
            };
        }
        mantissa
            .checked_mul(10u128.pow(shift as u32))
            .ok_or(CostError::TooLarge)?
    } else if -shift > 38 {
        0
    } else {
        let div = 10u128.pow((-shift) as u32);
        let (q, r) = (mantissa / div, mantissa % div);
        if r * 2 >= div {
            q + 1
        } else {
            q
        }
    };
    if micros > (MAX_COST_UNITS * MICROS_PER_UNIT) as u128 {
        return Err(CostError::TooLarge);
    }
    Ok(micros as i64)
}

/// Micro-units as currency units, for display and the seed's `spend` field.
pub fn to_units(micros: i64) -> f64 {
    micros as f64 / MICROS_PER_UNIT as f64
}

/// `num / den`, or 0 when `den` is 0, as in the seed.
pub fn ratio(num: f64, den: f64) -> f64 {
    if den == 0.0 {
        0.0
    } else {
        num / den
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_decimals() {
        assert_eq!(decimal_to_micros("0.0"), Ok(0));
        assert_eq!(decimal_to_micros("0.1"), Ok(100_000));
        assert_eq!(decimal_to_micros("1.234567"), Ok(1_234_567));
        assert_eq!(decimal_to_micros("20"), Ok(20_000_000));
        assert_eq!(decimal_to_micros("1.5e1"), Ok(15_000_000));
        assert_eq!(decimal_to_micros("25E-1"), Ok(2_500_000));
        assert_eq!(decimal_to_micros("-0.0"), Ok(0));
    }

    #[test]
    fn rounds_half_away_from_zero() {
        assert_eq!(decimal_to_micros("0.0000005"), Ok(1));
        assert_eq!(decimal_to_micros("0.00000049999"), Ok(0));
        assert_eq!(decimal_to_micros("1.2345675"), Ok(1_234_568));
        assert_eq!(
            decimal_to_micros("0.000000499999999999999999999999999999999999999999"),
            Ok(0)
        );
        assert_eq!(
            decimal_to_micros("0.000000500000000000000000000000000000000000000001"),
            Ok(1)
        );
    }

    #[test]
    fn rejects_bad_costs() {
        assert_eq!(decimal_to_micros("-0.5"), Err(CostError::Negative));
        assert_eq!(decimal_to_micros("abc"), Err(CostError::NotANumber));
        assert_eq!(decimal_to_micros("NaN"), Err(CostError::NotANumber));
        assert_eq!(decimal_to_micros("."), Err(CostError::NotANumber));
        assert_eq!(decimal_to_micros("1.2.3"), Err(CostError::NotANumber));
        assert_eq!(decimal_to_micros("1e400"), Err(CostError::TooLarge));
        assert_eq!(decimal_to_micros("1000000001"), Err(CostError::TooLarge));
    }
}
