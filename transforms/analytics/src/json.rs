//! A small JSON object writer for the per-record hot path (every event is
//! written once to `events`): strings that need no escaping, nearly all of
//! them, are copied as they are, eight bytes checked at a time.

pub struct JsonObject<'a> {
    out: &'a mut Vec<u8>,
    empty: bool,
}

impl<'a> JsonObject<'a> {
    pub fn new(out: &'a mut Vec<u8>) -> JsonObject<'a> {
        out.push(b'{');
        JsonObject { out, empty: true }
    }

    fn key(&mut self, name: &str) -> &mut Vec<u8> {
        if !self.empty {
            self.out.push(b',');
        }
        self.empty = false;
        write_str(self.out, name);
        self.out.push(b':');
        self.out
    }

    pub fn str(&mut self, name: &str, value: &str) -> &mut Self {
        let out = self.key(name);
        write_str(out, value);
        self
    }

    pub fn i64(&mut self, name: &str, value: i64) -> &mut Self {
        let out = self.key(name);
        out.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
        self
    }

    /// Any other serialisable value, through serde_json.
    pub fn value(&mut self, name: &str, value: &impl serde::Serialize) -> &mut Self {
        let out = self.key(name);
        serde_json::to_writer(out, value).expect("a plain value always serialises");
        self
    }

    pub fn end(&mut self) {
        self.out.push(b'}');
    }
}

pub fn write_str(out: &mut Vec<u8>, s: &str) {
    if needs_escape(s.as_bytes()) {
        serde_json::to_writer(out, s).expect("a string always serialises");
    } else {
        out.reserve(s.len() + 2);
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    }
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// Whether any byte is a control character, `"` or `\`: what JSON escapes.
fn needs_escape(bytes: &[u8]) -> bool {
    // Bit tricks from "Bit Twiddling Hacks": a byte below n, a zero byte.
    let below = |v: u64, n: u64| v.wrapping_sub(ONES * n) & !v & HIGHS != 0;
    let has = |v: u64, b: u8| below(v ^ (ONES * u64::from(b)), 1);
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let v = u64::from_le_bytes(chunk.try_into().expect("chunks of 8"));
        if below(v, 0x20) || has(v, b'"') || has(v, b'\\') {
            return true;
        }
    }
    chunks
        .remainder()
        .iter()
        .any(|&b| b < 0x20 || b == b'"' || b == b'\\')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn strings_come_out_as_serde_json_writes_them(s in "\\PC*|[\\x00-\\x7f]{0,40}") {
            let mut ours = Vec::new();
            write_str(&mut ours, &s);
            prop_assert_eq!(String::from_utf8(ours).unwrap(), serde_json::to_string(&s).unwrap());
        }
    }

    #[test]
    fn escapes_are_found_at_every_position() {
        for len in 0..20 {
            for pos in 0..len {
                for bad in [b'"', b'\\', 0x00, 0x1f, b'\n'] {
                    let mut s = vec![b'a'; len];
                    s[pos] = bad;
                    assert!(needs_escape(&s), "{s:?}");
                }
            }
            assert!(!needs_escape(&vec![b'a'; len]));
            assert!(!needs_escape("é€ ~\u{7f}".repeat(len).as_bytes()));
        }
    }

    #[test]
    fn objects_are_valid_json() {
        let mut out = Vec::new();
        JsonObject::new(&mut out)
            .str("a", "x\"y")
            .i64("n", -5)
            .value("f", &1.5)
            .end();
        assert_eq!(out, br#"{"a":"x\"y","n":-5,"f":1.5}"#);
    }
}
