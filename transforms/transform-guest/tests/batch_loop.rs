//! The batch loop, natively, over the stub ABI: records in order, batch
//! ends, dead letters written in place from the input buffer.

use analytics::Rejection;
use record_payload::{decode_record, encode_record, BorrowedHeader, BorrowedRecord};
use redpanda_transform_sdk_types::{RecordWriter, WriteError};
use transform_guest::stub::{StubAbi, StubRecord};
use transform_guest::{run_with, BatchTransform, DeadLetter, Input};

/// Echoes values to the first output; refuses those that start with `bad`;
/// writes `end` after every batch.
struct Echo {
    dlq: Option<&'static str>,
    seen: Vec<(i64, i64, usize)>,
}

impl BatchTransform for Echo {
    fn record(
        &mut self,
        input: Input<'_>,
        out: &mut RecordWriter<'_>,
    ) -> Result<Option<DeadLetter>, WriteError> {
        self.seen
            .push((input.offset, input.timestamp_ms, input.size_bytes));
        let value = input.record.value().unwrap_or_default();
        if value.starts_with(b"bad") {
            return Ok(Some(DeadLetter {
                rejection: Rejection::new("bad", format!("{} bytes of bad", value.len())),
                stage: "echo",
            }));
        }
        out.write(BorrowedRecord::new(None, Some(value)))?;
        Ok(None)
    }

    fn end_of_batch(&mut self, out: &mut RecordWriter<'_>) -> Result<(), WriteError> {
        out.write(BorrowedRecord::new(None, Some(b"end")))
    }

    fn dead_letter_topic(&self) -> Option<&str> {
        self.dlq
    }
}

fn record(offset: i64, key: &[u8], value: &[u8], headers: usize) -> StubRecord {
    let names: Vec<Vec<u8>> = (0..headers).map(|i| format!("h{i}").into_bytes()).collect();
    let record = BorrowedRecord::new_with_headers(
        Some(key),
        Some(value),
        names.iter().map(|n| BorrowedHeader::new(n, None)).collect(),
    );
    let mut payload = Vec::new();
    encode_record(&record, &mut payload);
    StubRecord {
        offset,
        timestamp_ms: 1_000 + offset,
        payload,
    }
}

#[test]
fn records_batch_ends_and_dead_letters_in_place() {
    let big = [b"bad".as_slice(), &vec![b'x'; 1 << 20]].concat();
    let batches = vec![
        vec![record(0, b"a", b"one", 0), record(1, b"b", &big, 70)],
        vec![record(2, b"c", b"two", 1), record(3, b"d", b"bad", 0)],
    ];
    let originals: Vec<StubRecord> = batches.concat();
    let mut abi = StubAbi::new(&["out", "dlq"], batches);
    let mut echo = Echo {
        dlq: Some("dlq"),
        seen: Vec::new(),
    };
    run_with(&mut abi, &mut echo);

    let sizes: Vec<(i64, i64, usize)> = originals
        .iter()
        .map(|r| (r.offset, r.timestamp_ms, r.payload.len()))
        .collect();
    assert_eq!(echo.seen, sizes);
    let written: Vec<(usize, String)> = abi
        .written
        .iter()
        .map(|(topic, payload)| {
            let r = decode_record(payload).unwrap();
            let value = r.value().unwrap_or_default();
            let shown = if value.len() > 10 {
                format!("{} bytes", value.len())
            } else {
                String::from_utf8_lossy(value).into_owned()
            };
            (*topic, shown)
        })
        .collect();
    assert_eq!(
        written,
        [
            (0, "one".to_string()),
            (1, format!("{} bytes", big.len())),
            (0, "end".to_string()),
            (0, "two".to_string()),
            (1, "bad".to_string()),
            (0, "end".to_string()),
        ]
    );
    // The dead letter is the original, byte for byte, plus the reasons.
    let dead = decode_record(&abi.written[1].1).unwrap();
    let original = decode_record(&originals[1].payload).unwrap();
    assert_eq!(
        (dead.key(), dead.value()),
        (original.key(), original.value())
    );
    assert_eq!(&dead.headers()[..70], original.headers());
    let reasons: Vec<(&[u8], Option<&[u8]>)> = dead.headers()[70..]
        .iter()
        .map(|h| (h.key(), h.value()))
        .collect();
    let message = format!("{} bytes of bad", big.len());
    assert_eq!(
        reasons,
        [
            (&b"error"[..], Some(message.as_bytes())),
            (&b"error.kind"[..], Some(&b"bad"[..])),
            (&b"error.stage"[..], Some(&b"echo"[..])),
        ]
    );
}

#[test]
fn without_a_dead_letter_topic_a_refused_record_is_only_reported() {
    let mut abi = StubAbi::new(&["out"], vec![vec![record(7, b"k", b"bad", 0)]]);
    let mut echo = Echo {
        dlq: None,
        seen: Vec::new(),
    };
    run_with(&mut abi, &mut echo);
    assert_eq!(abi.written.len(), 1, "only the batch's end marker");
}
