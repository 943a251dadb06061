//! What our transforms share on the guest side of Redpanda's ABI.
//!
//! The SDK's `on_record_written` hides record offsets and batch ends, which
//! exact panes need (DESIGN.md, "Exactness"). [`run`] binds the same ABI
//! imports as the SDK, reusing its record types and varint code, and calls
//! back per record and at the end of every batch.

use redpanda_transform_sdk_types::{BorrowedHeader, BorrowedRecord, RecordWriter, WriteError};

/// One input record with what the SDK's callback does not tell.
pub struct Input<'a> {
    pub offset: i64,
    pub timestamp_ms: i64,
    pub record: BorrowedRecord<'a>,
}

pub trait BatchTransform {
    fn record(&mut self, input: Input<'_>, out: &mut RecordWriter<'_>) -> Result<(), WriteError>;
    /// Called once the batch's last record is processed, before the next
    /// batch is asked for: what is written here commits with the batch.
    fn end_of_batch(&mut self, out: &mut RecordWriter<'_>) -> Result<(), WriteError>;
}

#[cfg(target_os = "wasi")]
mod abi;
#[cfg(target_os = "wasi")]
pub use abi::run;

/// Transforms run only inside a Redpanda-compatible host.
#[cfg(not(target_os = "wasi"))]
pub fn run(_: &mut impl BatchTransform) -> ! {
    panic!("a data transform runs only as wasm32-wasip1, in Redpanda or the harness")
}

/// The original record, byte for byte, plus why (`error`) and where
/// (`error.stage`) it failed: the dead-letter record.
pub fn dead_letter<'a>(
    record: &BorrowedRecord<'a>,
    reason: &'a str,
    stage: &'a str,
) -> BorrowedRecord<'a> {
    let mut headers = record.headers().to_vec();
    headers.push(BorrowedHeader::new(b"error", Some(reason.as_bytes())));
    headers.push(BorrowedHeader::new(b"error.stage", Some(stage.as_bytes())));
    BorrowedRecord::new_with_headers(record.key(), record.value(), headers)
}

/// Output topic `i` as Redpanda names it in the environment.
pub fn output_topic(i: usize) -> Option<String> {
    std::env::var(format!("REDPANDA_OUTPUT_TOPIC_{i}")).ok()
}

/// The transform's settings; a bad one stops the transform with a message
/// in its log rather than running with a guess.
pub fn config_from_env() -> analytics::Config {
    analytics::Config::from_vars(std::env::vars()).unwrap_or_else(|e| {
        eprintln!("invalid transform setting: {e}");
        std::process::exit(1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_letters_keep_the_record_and_add_the_reason() {
        let original = BorrowedRecord::new_with_headers(
            Some(b"k"),
            Some(b"\xff{bad"),
            vec![BorrowedHeader::new(b"trace", None)],
        );
        let dead = dead_letter(&original, "invalid JSON", "enrich");
        assert_eq!(dead.key(), Some(&b"k"[..]));
        assert_eq!(dead.value(), Some(&b"\xff{bad"[..]));
        let headers: Vec<_> = dead
            .headers()
            .iter()
            .map(|h| (h.key(), h.value()))
            .collect();
        assert_eq!(
            headers,
            [
                (&b"trace"[..], None),
                (&b"error"[..], Some(&b"invalid JSON"[..])),
                (&b"error.stage"[..], Some(&b"enrich"[..])),
            ]
        );
    }
}
