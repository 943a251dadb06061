//! The record payload that guest and host exchange through Redpanda's
//! transform ABI: key, value, header count, then each header's key and
//! value; every length a zigzag varint, -1 = null.

pub use redpanda_transform_sdk_types::{BorrowedHeader, BorrowedRecord};

use redpanda_transform_sdk_varint as varint;

/// A record as a partition holds it: its offset, its timestamp, and its
/// key, value and headers as one payload in the format below.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub offset: i64,
    pub timestamp_ms: i64,
    pub payload: Vec<u8>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum PayloadError {
    Varint(varint::DecodeError),
    NegativeHeaderCount(i64),
    TrailingBytes(usize),
    /// The buffer cannot hold the record grown to this many bytes.
    NoRoom(usize),
}

impl std::fmt::Display for PayloadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PayloadError::Varint(e) => write!(f, "bad length varint: {e:?}"),
            PayloadError::NegativeHeaderCount(n) => write!(f, "negative header count {n}"),
            PayloadError::TrailingBytes(n) => write!(f, "{n} bytes after the last header"),
            PayloadError::NoRoom(n) => write!(f, "no room for a {n} byte record"),
        }
    }
}

impl std::error::Error for PayloadError {}

impl From<varint::DecodeError> for PayloadError {
    fn from(e: varint::DecodeError) -> Self {
        PayloadError::Varint(e)
    }
}

/// Decodes a whole payload; anything left over is an error.
pub fn decode_record(payload: &[u8]) -> Result<BorrowedRecord<'_>, PayloadError> {
    let mut rest = payload;
    let key = sized(&mut rest)?;
    let value = sized(&mut rest)?;
    let count = varint::read(rest)?;
    rest = &rest[count.read..];
    if count.value < 0 {
        return Err(PayloadError::NegativeHeaderCount(count.value));
    }
    let mut headers = Vec::with_capacity(count.value.min(64) as usize);
    for _ in 0..count.value {
        let k = sized(&mut rest)?;
        let v = sized(&mut rest)?;
        headers.push(BorrowedHeader::new(k.unwrap_or_default(), v));
    }
    if !rest.is_empty() {
        return Err(PayloadError::TrailingBytes(rest.len()));
    }
    Ok(BorrowedRecord::new_with_headers(key, value, headers))
}

fn sized<'a>(rest: &mut &'a [u8]) -> Result<Option<&'a [u8]>, PayloadError> {
    let d = varint::read_sized_buffer(rest)?;
    *rest = &rest[d.read..];
    Ok(d.value)
}

/// Encodes `r` into `out`, replacing what was there.
pub fn encode_record(r: &BorrowedRecord<'_>, out: &mut Vec<u8>) {
    out.clear();
    varint::write_sized_buffer(out, r.key());
    varint::write_sized_buffer(out, r.value());
    varint::write(out, r.headers().len() as i64);
    for h in r.headers() {
        varint::write_sized_buffer(out, Some(h.key()));
        varint::write_sized_buffer(out, h.value());
    }
}

/// Adds headers to the record encoded in `buf[..len]`, in place, and
/// returns its new length. `buf` must have room past `len` for the new
/// headers (and a header count one byte longer): so a dead-letter record as
/// large as the transform's memory allows needs no second copy of itself.
pub fn append_headers_in_place(
    buf: &mut [u8],
    len: usize,
    headers: &[(&[u8], &[u8])],
) -> Result<usize, PayloadError> {
    let mut rest = &buf[..len];
    sized(&mut rest)?;
    sized(&mut rest)?;
    let count_at = len - rest.len();
    let count = varint::read(rest)?;
    if count.value < 0 {
        return Err(PayloadError::NegativeHeaderCount(count.value));
    }
    let mut new_count = Vec::new();
    varint::write(&mut new_count, count.value + headers.len() as i64);
    let mut added = Vec::new();
    for (key, value) in headers {
        varint::write_sized_buffer(&mut added, Some(key));
        varint::write_sized_buffer(&mut added, Some(value));
    }
    let (old_tail, new_tail) = (count_at + count.read, count_at + new_count.len());
    let end = new_tail + (len - old_tail);
    let new_len = end + added.len();
    if new_len > buf.len() {
        return Err(PayloadError::NoRoom(new_len));
    }
    buf.copy_within(old_tail..len, new_tail);
    buf[count_at..new_tail].copy_from_slice(&new_count);
    buf[end..new_len].copy_from_slice(&added);
    Ok(new_len)
}

/// Appends a zigzag varint.
pub fn write_varint(out: &mut Vec<u8>, value: i64) {
    varint::write(out, value);
}

/// Appends a zigzag varint-sized buffer, as the ABI's write options need.
pub fn write_sized(out: &mut Vec<u8>, buf: Option<&[u8]>) {
    varint::write_sized_buffer(out, buf);
}

/// Reads a zigzag varint-sized buffer and how many bytes it took.
pub fn read_sized(buf: &[u8]) -> Result<(Option<&[u8]>, usize), PayloadError> {
    let d = varint::read_sized_buffer(buf)?;
    Ok((d.value, d.read))
}

/// Redpanda's own readings of what a guest writes, where they are more
/// lenient than the format: a varint cut short reads as what was read so
/// far, 0 from nothing (`vint::deserialize`, `src/v/utils/vint.h`), so an
/// empty payload is a record with an empty key and value
/// (`src/v/model/transform.cc`), and write options are read as
/// `src/v/wasm/transform_module.cc` reads them.
pub mod redpanda {
    use super::{BorrowedHeader, BorrowedRecord};

    /// A zigzag varint of at most 10 bytes, and the bytes it took.
    pub fn varint(buf: &[u8]) -> (i64, usize) {
        let (value, read, _) = varint_complete(buf);
        (value, read)
    }

    /// [`varint`], and whether it ended as the format says (not cut short).
    fn varint_complete(buf: &[u8]) -> (i64, usize, bool) {
        let mut raw = 0u64;
        for (i, &b) in buf.iter().take(10).enumerate() {
            raw |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return (zigzag(raw), i + 1, true);
            }
        }
        (zigzag(raw), buf.len().min(10), false)
    }

    fn zigzag(raw: u64) -> i64 {
        (raw >> 1) as i64 ^ -((raw & 1) as i64)
    }

    /// A payload Redpanda refuses: answered with -2.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Invalid;

    impl std::fmt::Display for Invalid {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("not a record payload")
        }
    }

    impl std::error::Error for Invalid {}

    /// A sized buffer; `canonical` turns false where a varint was cut short.
    fn sized<'a>(rest: &mut &'a [u8], canonical: &mut bool) -> Result<Option<&'a [u8]>, Invalid> {
        let (len, read, complete) = varint_complete(rest);
        *canonical &= complete;
        *rest = &rest[read..];
        match len {
            -1 => Ok(None),
            n if n < -1 => Err(Invalid),
            n => {
                let n = usize::try_from(n).map_err(|_| Invalid)?;
                let bytes = rest.get(..n).ok_or(Invalid)?;
                *rest = &rest[n..];
                Ok(Some(bytes))
            }
        }
    }

    /// A payload a guest wrote, as Redpanda accepts it, and whether it is
    /// in the format's canonical form (else it is to be encoded again).
    pub fn decode_record(payload: &[u8]) -> Result<(BorrowedRecord<'_>, bool), Invalid> {
        let mut canonical = true;
        let mut rest = payload;
        let key = sized(&mut rest, &mut canonical)?;
        let value = sized(&mut rest, &mut canonical)?;
        let (count, read, complete) = varint_complete(rest);
        canonical &= complete;
        rest = &rest[read..];
        if count < 0 {
            return Err(Invalid);
        }
        let mut headers = Vec::with_capacity(count.min(64) as usize);
        for _ in 0..count {
            let k = sized(&mut rest, &mut canonical)?;
            let v = sized(&mut rest, &mut canonical)?;
            headers.push(BorrowedHeader::new(k.unwrap_or_default(), v));
        }
        if !rest.is_empty() {
            return Err(Invalid);
        }
        Ok((
            BorrowedRecord::new_with_headers(key, value, headers),
            canonical,
        ))
    }

    /// What `write_record_with_options`' options say.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Options<'a> {
        /// The first output topic.
        Default,
        /// The output topic of this name (possibly empty: no such topic).
        Topic(&'a [u8]),
    }

    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum OptionsError {
        /// Answered with -2.
        Invalid,
        /// Redpanda throws reading them, which traps the guest.
        Trap(String),
    }

    /// Empty, or `0x01` and a varint-sized topic name, nothing after.
    pub fn write_options(opts: &[u8]) -> Result<Options<'_>, OptionsError> {
        let Some((&key, rest)) = opts.split_first() else {
            return Ok(Options::Default);
        };
        if key != 0x01 {
            return Err(OptionsError::Invalid);
        }
        let (len, read) = varint(rest);
        let rest = &rest[read..];
        let too_small = || {
            OptionsError::Trap(format!(
                "ffi::array buffer too small {} > {}, total: {}",
                len as u64,
                rest.len(),
                opts.len()
            ))
        };
        let len = usize::try_from(len).map_err(|_| too_small())?;
        let topic = rest.get(..len).ok_or_else(too_small)?;
        if rest.len() > len {
            return Err(OptionsError::Invalid);
        }
        Ok(Options::Topic(topic))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrips_nulls_and_headers() {
        let record = BorrowedRecord::new_with_headers(
            None,
            Some(b"value"),
            vec![
                BorrowedHeader::new(b"a", Some(b"")),
                BorrowedHeader::new(b"b", None),
            ],
        );
        let mut buf = Vec::new();
        encode_record(&record, &mut buf);
        assert_eq!(buf[0], 1, "a null key is the varint -1");
        assert_eq!(decode_record(&buf).unwrap(), record);
    }

    #[test]
    fn redpanda_reads_write_options_as_transform_module_cc_does() {
        use redpanda::{write_options, Options, OptionsError};
        // Pinned against src/v/wasm/transform_module.cc, write_options::parse, and the
        // noexcept varint of src/v/utils/vint.h.
        assert_eq!(write_options(&[]), Ok(Options::Default));
        assert_eq!(write_options(&[0x02, 0]), Err(OptionsError::Invalid));
        assert_eq!(write_options(&[0x01]), Ok(Options::Topic(b"")));
        assert_eq!(write_options(&[0x01, 0x00]), Ok(Options::Topic(b"")));
        assert_eq!(write_options(&[0x01, 0x80]), Ok(Options::Topic(b"")));
        assert_eq!(
            write_options(&[0x01, 0x04, b'a', b'b']),
            Ok(Options::Topic(b"ab"))
        );
        assert_eq!(
            write_options(&[0x01, 0x04, b'a', b'b', b'c']),
            Err(OptionsError::Invalid)
        );
        assert!(matches!(
            write_options(&[0x01, 0x01]),
            Err(OptionsError::Trap(_))
        ));
        assert!(matches!(
            write_options(&[0x01, 0x0a, b'a']),
            Err(OptionsError::Trap(_))
        ));
    }

    #[test]
    fn redpanda_accepts_what_model_transform_cc_accepts() {
        use redpanda::decode_record;
        // An empty payload: an empty key and value, no headers.
        let (record, canonical) = decode_record(&[]).unwrap();
        assert_eq!(
            (record.key(), record.value(), canonical),
            (Some(&b""[..]), Some(&b""[..]), false)
        );
        let mut good = Vec::new();
        encode_record(&BorrowedRecord::new(Some(b"k"), None), &mut good);
        assert!(decode_record(&good).unwrap().1);
        assert!(decode_record(&[0x03]).is_err(), "a length below -1");
        assert!(
            decode_record(&[0x00, 0x00, 0x01]).is_err(),
            "a negative header count"
        );
        assert!(
            decode_record(&[0x02, b'k', 0x00, 0x00, 0x00]).is_err(),
            "trailing bytes"
        );
        assert!(decode_record(&[0x04, b'k']).is_err(), "a short key");
    }

    #[test]
    fn headers_are_added_in_place() {
        // 63 headers: the count's varint grows from one byte to two.
        for count in [0usize, 1, 63, 64] {
            let names: Vec<Vec<u8>> = (0..count).map(|i| format!("h{i}").into_bytes()).collect();
            let headers: Vec<BorrowedHeader> = names
                .iter()
                .map(|n| BorrowedHeader::new(n, Some(b"v")))
                .collect();
            let record = BorrowedRecord::new_with_headers(Some(b"k"), None, headers.clone());
            let mut buf = Vec::new();
            encode_record(&record, &mut buf);
            let len = buf.len();
            buf.resize(len + 64, 0xee);
            let original = buf.clone();
            let added: [(&[u8], &[u8]); 2] = [(b"error", b"bad"), (b"error.stage", b"enrich")];
            let new_len = append_headers_in_place(&mut buf, len, &added).unwrap();
            let mut expected = headers;
            expected.push(BorrowedHeader::new(b"error", Some(b"bad")));
            expected.push(BorrowedHeader::new(b"error.stage", Some(b"enrich")));
            let want = BorrowedRecord::new_with_headers(Some(b"k"), None, expected);
            assert_eq!(
                decode_record(&buf[..new_len]).unwrap(),
                want,
                "{count} headers"
            );
            let mut short = original[..new_len - 1].to_vec();
            assert_eq!(
                append_headers_in_place(&mut short, len, &added),
                Err(PayloadError::NoRoom(new_len))
            );
        }
    }

    #[test]
    fn truncated_or_padded_payloads_are_errors() {
        let record = BorrowedRecord::new(Some(b"key"), Some(b"value"));
        let mut buf = Vec::new();
        encode_record(&record, &mut buf);
        for cut in 0..buf.len() {
            assert!(decode_record(&buf[..cut]).is_err(), "cut at {cut}");
        }
        buf.push(0);
        assert_eq!(decode_record(&buf), Err(PayloadError::TrailingBytes(1)));
        assert_eq!(
            decode_record(&[0, 0, 1]),
            Err(PayloadError::NegativeHeaderCount(-1))
        );
    }
}
