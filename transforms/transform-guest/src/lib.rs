//! What our transforms share on the guest side of Redpanda's ABI.
//!
//! The SDK's `on_record_written` hides record offsets and batch ends, which
//! exact panes need (docs/architecture.md, "Exactness"). [`run`] binds the
//! same ABI imports as the SDK, reusing its record types and varint code,
//! and calls back per record and at the end of every batch. The loop itself
//! ([`run_with`]) is written against the [`Abi`] trait, so that it runs
//! natively over [`stub::StubAbi`] in tests.

mod batch_loop;
mod schemas;
#[cfg(not(target_os = "wasi"))]
pub mod stub;
#[cfg(target_os = "wasi")]
mod wasm;

use analytics::{RecordMeta, Rejection};
use redpanda_transform_sdk_types::{BorrowedHeader, BorrowedRecord, RecordWriter, WriteError};

pub use batch_loop::{run_with, Abi, BatchHeader, NextRecord, DEAD_LETTER_ROOM};
pub use schemas::RegistrySchemas;

/// One input record with what the SDK's callback does not tell.
pub struct Input<'a> {
    pub offset: i64,
    pub timestamp_ms: i64,
    /// The record's encoded size: key, value and headers.
    pub size_bytes: usize,
    pub record: BorrowedRecord<'a>,
}

impl Input<'_> {
    pub fn meta(&self) -> RecordMeta {
        RecordMeta {
            timestamp_ms: self.timestamp_ms,
            size_bytes: self.size_bytes,
        }
    }
}

/// A record the transform refuses. The loop writes it to the dead-letter
/// topic itself, untouched and in place, so that a record as large as the
/// transform's memory allows needs no second copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub rejection: Rejection,
    /// Which step refused it (the `error.stage` header).
    pub stage: &'static str,
}

pub trait BatchTransform {
    /// Handles one record; a record it refuses is returned, for the loop to
    /// write to [`BatchTransform::dead_letter_topic`].
    fn record(
        &mut self,
        input: Input<'_>,
        out: &mut RecordWriter<'_>,
    ) -> Result<Option<DeadLetter>, WriteError>;
    /// Called once the batch's last record is processed, before the next
    /// batch is asked for: what is written here commits with the batch.
    fn end_of_batch(&mut self, out: &mut RecordWriter<'_>) -> Result<(), WriteError>;
    /// Where refused records go; without one they are reported in the log.
    fn dead_letter_topic(&self) -> Option<&str>;
}

/// Runs `transform` over Redpanda's ABI forever: a failed write or callback
/// stops the transform, and Redpanda resumes from the last committed offset.
#[cfg(target_os = "wasi")]
pub fn run(transform: &mut impl BatchTransform) -> ! {
    wasm::run(transform)
}

/// Transforms run only inside a Redpanda-compatible host.
#[cfg(not(target_os = "wasi"))]
pub fn run(_: &mut impl BatchTransform) -> ! {
    panic!("a data transform runs only as wasm32-wasip1, in Redpanda or the harness")
}

/// The headers that say why a record is dead: `error` (the message),
/// `error.kind` (a stable name to count by) and `error.stage` (which step).
pub fn dead_letter_headers<'a>(
    rejection: &'a Rejection,
    stage: &'a str,
) -> [(&'a [u8], &'a [u8]); 3] {
    [
        (b"error", rejection.message.as_bytes()),
        (b"error.kind", rejection.kind.as_bytes()),
        (b"error.stage", stage.as_bytes()),
    ]
}

/// The original record, byte for byte, plus the [`dead_letter_headers`].
pub fn dead_letter<'a>(
    record: &BorrowedRecord<'a>,
    rejection: &'a Rejection,
    stage: &'a str,
) -> BorrowedRecord<'a> {
    let mut headers = record.headers().to_vec();
    for (key, value) in dead_letter_headers(rejection, stage) {
        headers.push(BorrowedHeader::new(key, Some(value)));
    }
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
        let why = Rejection::new("invalid_json", "invalid JSON");
        let dead = dead_letter(&original, &why, "enrich");
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
                (&b"error.kind"[..], Some(&b"invalid_json"[..])),
                (&b"error.stage"[..], Some(&b"enrich"[..])),
            ]
        );
    }
}
