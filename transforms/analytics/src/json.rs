//! JSON on the per-record hot path: every `logs` value is read once and
//! every event written once to `events`. Strings that need no escaping,
//! nearly all of them, are copied or borrowed as they are, eight bytes
//! checked at a time. The reader takes only flat objects of plain values
//! and answers `None` for anything else, which goes to serde_json: it
//! reads the rest of JSON and words the errors.

pub struct JsonObject<'a> {
    out: &'a mut Vec<u8>,
    empty: bool,
}

impl<'a> JsonObject<'a> {
    pub fn new(out: &'a mut Vec<u8>) -> JsonObject<'a> {
        out.push(b'{');
        JsonObject { out, empty: true }
    }

    /// `name` is one of our field names, which need no escaping.
    fn key(&mut self, name: &str) -> &mut Vec<u8> {
        debug_assert!(!needs_escape(name.as_bytes()), "{name}");
        self.out.reserve(name.len() + 4);
        if !self.empty {
            self.out.push(b',');
        }
        self.empty = false;
        self.out.push(b'"');
        self.out.extend_from_slice(name.as_bytes());
        self.out.extend_from_slice(b"\":");
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
    plain_len(bytes) < bytes.len()
}

/// How many leading bytes are neither a control character, `"` nor `\`.
fn plain_len(bytes: &[u8]) -> usize {
    let special = |b: u8| b < 0x20 || b == b'"' || b == b'\\';
    // Bit tricks from "Bit Twiddling Hacks": a byte below n, a zero byte.
    let below = |v: u64, n: u64| v.wrapping_sub(ONES * n) & !v & HIGHS != 0;
    let has = |v: u64, b: u8| below(v ^ (ONES * u64::from(b)), 1);
    let mut at = 0;
    for chunk in bytes.chunks_exact(8) {
        let v = u64::from_le_bytes(chunk.try_into().expect("chunks of 8"));
        if below(v, 0x20) || has(v, b'"') || has(v, b'\\') {
            break;
        }
        at += 8;
    }
    at + bytes[at..].iter().take_while(|&&b| !special(b)).count()
}

/// A member's value in a flat object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scalar<'a> {
    Null,
    /// A string without escapes: its text, and its whole token with the quotes.
    Str {
        text: &'a str,
        token: &'a str,
    },
    /// A number, `true` or `false`, as written.
    Literal(&'a str),
}

/// Calls `member` with each member of a JSON object whose keys and string
/// values have no escapes and whose values are all scalars. `None` when the
/// text is anything else (or `member` answers `None`): the caller then
/// reads it with serde_json. What this accepts is valid JSON, read as
/// serde_json reads it.
pub fn flat_object<'a>(
    bytes: &'a [u8],
    mut member: impl FnMut(&'a str, Scalar<'a>) -> Option<()>,
) -> Option<()> {
    // Validated once, so that the scan below works on bytes and slices
    // strings between ASCII quotes.
    let text = std::str::from_utf8(bytes).ok()?;
    let mut r = Reader { text, at: 0 };
    r.skip_ws();
    r.eat(b'{')?;
    r.skip_ws();
    if r.eat(b'}').is_none() {
        loop {
            let Scalar::Str { text: name, .. } = r.string()? else {
                return None;
            };
            r.skip_ws();
            r.eat(b':')?;
            r.skip_ws();
            member(name, r.scalar()?)?;
            r.skip_ws();
            match r.next()? {
                b',' => r.skip_ws(),
                b'}' => break,
                _ => return None,
            }
        }
    }
    r.skip_ws();
    (r.at == text.len()).then_some(())
}

struct Reader<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Reader<'a> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.at).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.at += 1;
        Some(b)
    }

    fn eat(&mut self, b: u8) -> Option<()> {
        (self.peek()? == b).then(|| self.at += 1)
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    /// A string without escapes or control characters.
    fn string(&mut self) -> Option<Scalar<'a>> {
        let start = self.at;
        self.eat(b'"')?;
        self.at += plain_len(&self.text.as_bytes()[self.at..]);
        self.eat(b'"')?;
        Some(Scalar::Str {
            text: &self.text[start + 1..self.at - 1],
            token: &self.text[start..self.at],
        })
    }

    fn scalar(&mut self) -> Option<Scalar<'a>> {
        let start = self.at;
        let rest = &self.text[start..];
        let literal = |len: usize| Some((start + len, Scalar::Literal(&rest[..len])));
        let (end, value) = match self.peek()? {
            b'"' => return self.string(),
            b'n' if rest.starts_with("null") => (start + 4, Scalar::Null),
            b't' if rest.starts_with("true") => literal(4)?,
            b'f' if rest.starts_with("false") => literal(5)?,
            _ => literal(number_len(rest.as_bytes())?)?,
        };
        self.at = end;
        Some(value)
    }
}

/// The length of the JSON number `bytes` starts with:
/// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
fn number_len(bytes: &[u8]) -> Option<usize> {
    let digits = |from: usize| {
        bytes[from..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count()
    };
    let mut at = usize::from(bytes.first() == Some(&b'-'));
    match bytes.get(at)? {
        b'0' => at += 1,
        b'1'..=b'9' => at += digits(at),
        _ => return None,
    }
    if bytes.get(at) == Some(&b'.') {
        let n = digits(at + 1);
        (n > 0).then_some(())?;
        at += 1 + n;
    }
    if matches!(bytes.get(at), Some(b'e' | b'E')) {
        at += 1;
        if matches!(bytes.get(at), Some(b'+' | b'-')) {
            at += 1;
        }
        let n = digits(at);
        (n > 0).then_some(())?;
        at += n;
    }
    Some(at)
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

    proptest! {
        /// A number is what serde_json takes as one, to the byte.
        #[test]
        fn numbers_are_json_numbers(text in r#"[-+.0-9eE]{1,8}|-?(0|[1-9][0-9]{0,20})(\.[0-9]{1,20})?([eE][+-]?[0-9]{1,3})?"#) {
            let ours = number_len(text.as_bytes()) == Some(text.len());
            let serde = serde_json::from_str::<&serde_json::value::RawValue>(&text)
                .is_ok_and(|v| v.get().as_bytes()[0] != b'"');
            prop_assert_eq!(ours, serde, "{}", text);
        }
    }

    fn members(json: &str) -> Option<Vec<(&str, Scalar<'_>)>> {
        let mut all = Vec::new();
        flat_object(json.as_bytes(), |name, value| {
            all.push((name, value));
            Some(())
        })
        .map(|()| all)
    }

    #[test]
    fn flat_objects_of_plain_scalars_are_read() {
        assert_eq!(
            members(r#" { "a" : "x y" , "b":-1.5e3,"c":null,"d":true,"é":"ü"} "#),
            Some(vec![
                (
                    "a",
                    Scalar::Str {
                        text: "x y",
                        token: r#""x y""#
                    }
                ),
                ("b", Scalar::Literal("-1.5e3")),
                ("c", Scalar::Null),
                ("d", Scalar::Literal("true")),
                (
                    "é",
                    Scalar::Str {
                        text: "ü",
                        token: r#""ü""#
                    }
                ),
            ])
        );
        assert_eq!(members("{}"), Some(vec![]));
        for other in [
            r#"{"a":"\n"}"#,
            "{\"a\":\"\t\"}",
            r#"{"a":[1]}"#,
            r#"{"a":1,}"#,
            r#"{"a":1} x"#,
            r#"{"a" 1}"#,
            r#"{"a":01}"#,
            r#"{"a":nul}"#,
            r#"{"a":truex}"#,
            r#"{"a":1"#,
            "{\u{c}}",
            "",
        ] {
            assert_eq!(members(other), None, "{other}");
        }
        assert_eq!(flat_object(b"{\"a\":\"\xff\"}", |_, _| Some(())), None);
        assert_eq!(
            flat_object(br#"{"a":1}"#, |_, _| None),
            None,
            "the caller can refuse"
        );
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
