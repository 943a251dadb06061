//! Text helpers for the per-record hot path.

/// `str::trim`, without decoding characters at either end when they are
/// printable ASCII, as nearly every field's are.
pub fn trim(s: &str) -> &str {
    match (s.as_bytes().first(), s.as_bytes().last()) {
        (Some(a), Some(b)) if a.is_ascii_graphic() && b.is_ascii_graphic() => s,
        _ => s.trim(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn trims_as_str_trim_does(s in "\\PC{0,6}|[ a\\t\\n\\u{a0}\\u{3000}é]{0,6}") {
            prop_assert_eq!(trim(&s), s.trim());
        }
    }
}
