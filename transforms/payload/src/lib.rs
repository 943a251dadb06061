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
}

impl std::fmt::Display for PayloadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PayloadError::Varint(e) => write!(f, "bad length varint: {e:?}"),
            PayloadError::NegativeHeaderCount(n) => write!(f, "negative header count {n}"),
            PayloadError::TrailingBytes(n) => write!(f, "{n} bytes after the last header"),
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
