//! The record payload that guest and host exchange through Redpanda's
//! transform ABI: key, value, header count, then each header's key and
//! value; every length a zigzag varint, -1 = null.

pub use redpanda_transform_sdk_types::{BorrowedHeader, BorrowedRecord};

use redpanda_transform_sdk_varint as varint;

#[derive(Debug, PartialEq, Eq)]
pub enum PayloadError {
    Varint(varint::DecodeError),
    NegativeHeaderCount(i64),
    TrailingBytes(usize),
    /// The buffer cannot hold the record grown to this many bytes.
    NoRoom(usize),
    /// Write options naming a null topic.
    NullTopic,
    /// Write options with an unknown tag.
    UnknownOption(u8),
}

impl std::fmt::Display for PayloadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PayloadError::Varint(e) => write!(f, "bad length varint: {e:?}"),
            PayloadError::NegativeHeaderCount(n) => write!(f, "negative header count {n}"),
            PayloadError::TrailingBytes(n) => write!(f, "{n} bytes after the last header"),
            PayloadError::NoRoom(n) => write!(f, "no room for a {n} byte record"),
            PayloadError::NullTopic => f.write_str("a null topic name"),
            PayloadError::UnknownOption(tag) => write!(f, "unknown write option {tag:#04x}"),
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

/// Where `write_record_with_options` sends a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteTarget<'a> {
    /// The transform's first output topic (no options).
    Default,
    /// The output topic of this name.
    Topic(&'a [u8]),
}

/// Parses write options: empty, or `0x01`, a varint-sized topic name,
/// nothing after.
pub fn parse_write_options(opts: &[u8]) -> Result<WriteTarget<'_>, PayloadError> {
    match opts.split_first() {
        None => Ok(WriteTarget::Default),
        Some((0x01, rest)) => match read_sized(rest)? {
            (Some(name), read) if read == rest.len() => Ok(WriteTarget::Topic(name)),
            (Some(_), read) => Err(PayloadError::TrailingBytes(rest.len() - read)),
            (None, _) => Err(PayloadError::NullTopic),
        },
        Some((tag, _)) => Err(PayloadError::UnknownOption(*tag)),
    }
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
    fn write_options() {
        let mut opts = vec![0x01];
        write_sized(&mut opts, Some(b"events"));
        assert_eq!(
            parse_write_options(&opts),
            Ok(WriteTarget::Topic(b"events"))
        );
        assert_eq!(parse_write_options(&[]), Ok(WriteTarget::Default));
        let mut trailing = opts.clone();
        trailing.push(0);
        assert_eq!(
            parse_write_options(&trailing),
            Err(PayloadError::TrailingBytes(1))
        );
        assert!(parse_write_options(&opts[..opts.len() - 1]).is_err());
        assert_eq!(
            parse_write_options(&[0x02, 0]),
            Err(PayloadError::UnknownOption(2))
        );
        assert_eq!(
            parse_write_options(&[0x01, 0x01]),
            Err(PayloadError::NullTopic)
        );
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
