//! The batch loop over Redpanda's ABI, written against [`Abi`] so that the
//! same loop runs over the host's imports and, natively, over a stub.

use record_payload::{append_headers_in_place, decode_record, encode_record, write_sized};
use redpanda_transform_sdk_types::{
    BorrowedRecord, RecordSink, RecordWriter, WriteError, WriteOptions,
};

use crate::{dead_letter_headers, BatchTransform, Input};

/// `read_batch_header`'s answer, the fields the loop uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub record_count: i32,
    /// The largest record payload in the batch (or a negative error code).
    pub max_size: i32,
}

/// `read_next_record`'s answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NextRecord {
    /// The payload's length, or -1 (no record left), -2 (buffer too small).
    pub len: i32,
    pub timestamp_ms: i64,
    pub offset: i64,
}

/// Redpanda's `redpanda_transform` imports, as the loop calls them.
pub trait Abi {
    /// Waits for the next batch; `None` when none will come (only a stub
    /// ends: Redpanda's call blocks until there is one).
    fn read_batch_header(&mut self) -> Option<BatchHeader>;
    /// Copies the next record's payload into `buf`.
    fn read_next_record(&mut self, buf: &mut [u8]) -> NextRecord;
    /// Writes an encoded record; `options` empty for the first output topic
    /// (`write_record`), else `write_record_with_options`. Returns the
    /// payload's length, or Redpanda's negative code.
    fn write_record(&mut self, payload: &[u8], options: &[u8]) -> i32;
}

/// Room kept past the largest record of a batch, for a dead letter's
/// headers written in place: the reason (at most
/// [`analytics::event::MAX_REASON_BYTES`]), its kind, the stage, their
/// names and lengths.
pub const DEAD_LETTER_ROOM: usize = 1024;

struct AbiSink<'a, A: Abi> {
    abi: &'a mut A,
    payload: Vec<u8>,
    options: Vec<u8>,
}

impl<A: Abi> AbiSink<'_, A> {
    fn write_encoded(&mut self, payload: &[u8], topic: Option<&str>) -> Result<(), WriteError> {
        self.options.clear();
        if let Some(topic) = topic {
            self.options.push(0x01);
            write_sized(&mut self.options, Some(topic.as_bytes()));
        }
        let written = self.abi.write_record(payload, &self.options);
        if written == payload.len() as i32 {
            Ok(())
        } else {
            Err(WriteError::Unknown(written))
        }
    }
}

impl<A: Abi> RecordSink for AbiSink<'_, A> {
    fn write(&mut self, r: BorrowedRecord, opts: WriteOptions) -> Result<(), WriteError> {
        let mut payload = std::mem::take(&mut self.payload);
        encode_record(&r, &mut payload);
        let result = self.write_encoded(&payload, opts.topic);
        self.payload = payload;
        result
    }
}

/// Runs `transform` over `abi` until it has no more batches.
pub fn run_with<A: Abi>(abi: &mut A, transform: &mut impl BatchTransform) {
    let mut input: Vec<u8> = Vec::new();
    let mut sink = AbiSink {
        abi,
        payload: Vec::new(),
        options: Vec::new(),
    };
    while let Some(header) = sink.abi.read_batch_header() {
        assert!(
            header.max_size >= 0,
            "read_batch_header failed: {}",
            header.max_size
        );
        let needed = header.max_size as usize + DEAD_LETTER_ROOM;
        if input.len() < needed {
            // A fresh buffer of exactly this size: growing the old one could
            // hold both at once, or double it, in a 2 MiB memory.
            input = Vec::new();
            input.reserve_exact(needed);
            input.resize(needed, 0);
        }
        for _ in 0..header.record_count {
            let next = sink.abi.read_next_record(&mut input);
            assert!(next.len >= 0, "read_next_record failed: {}", next.len);
            let len = next.len as usize;
            let record = decode_record(&input[..len]).expect("malformed record payload");
            let verdict = transform
                .record(
                    Input {
                        offset: next.offset,
                        timestamp_ms: next.timestamp_ms,
                        size_bytes: len,
                        record,
                    },
                    &mut RecordWriter::new(&mut sink),
                )
                .expect("writing a record failed");
            let Some(dead) = verdict else {
                continue;
            };
            match transform.dead_letter_topic() {
                Some(topic) => {
                    let headers = dead_letter_headers(&dead.rejection, dead.stage);
                    let dead_len = append_headers_in_place(&mut input, len, &headers)
                        .expect("room is kept for a dead letter's headers");
                    sink.write_encoded(&input[..dead_len], Some(topic))
                        .expect("writing a dead letter failed");
                }
                None => eprintln!("offset {}: skipped, {}", next.offset, dead.rejection),
            }
        }
        transform
            .end_of_batch(&mut RecordWriter::new(&mut sink))
            .expect("writing at the end of a batch failed");
    }
}
