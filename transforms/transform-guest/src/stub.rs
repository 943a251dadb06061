//! A stand-in for Redpanda's ABI, as the SDK's `stub_abi` is for its own
//! loop: the batch loop and a transform's use of it run natively in tests.

use std::collections::VecDeque;

use record_payload::redpanda::{decode_record, write_options, Options};

use crate::batch_loop::{Abi, BatchHeader, NextRecord};

/// A record as the stub hands it over: its payload in the ABI's format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StubRecord {
    pub offset: i64,
    pub timestamp_ms: i64,
    pub payload: Vec<u8>,
}

/// Hands over the given batches, then ends; keeps what is written.
#[derive(Debug, Default)]
pub struct StubAbi {
    batches: VecDeque<Vec<StubRecord>>,
    current: VecDeque<StubRecord>,
    output_topics: Vec<String>,
    /// Every record written: its output topic's index and payload.
    pub written: Vec<(usize, Vec<u8>)>,
}

impl StubAbi {
    pub fn new(output_topics: &[&str], batches: Vec<Vec<StubRecord>>) -> StubAbi {
        StubAbi {
            batches: batches.into(),
            output_topics: output_topics.iter().map(|t| t.to_string()).collect(),
            ..StubAbi::default()
        }
    }
}

impl Abi for StubAbi {
    fn read_batch_header(&mut self) -> Option<BatchHeader> {
        let batch = self.batches.pop_front()?;
        let max_size = batch.iter().map(|r| r.payload.len()).max().unwrap_or(0);
        self.current = batch.into();
        Some(BatchHeader {
            record_count: self.current.len() as i32,
            max_size: max_size as i32,
        })
    }

    fn read_next_record(&mut self, buf: &mut [u8]) -> NextRecord {
        let Some(record) = self.current.front() else {
            return NextRecord {
                len: -1,
                timestamp_ms: 0,
                offset: 0,
            };
        };
        let (timestamp_ms, offset) = (record.timestamp_ms, record.offset);
        if record.payload.len() > buf.len() {
            return NextRecord {
                len: -2,
                timestamp_ms,
                offset,
            };
        }
        let record = self.current.pop_front().expect("looked at");
        buf[..record.payload.len()].copy_from_slice(&record.payload);
        NextRecord {
            len: record.payload.len() as i32,
            timestamp_ms,
            offset,
        }
    }

    /// As Redpanda answers (`src/v/wasm/transform_module.cc`), but for the
    /// options it would trap on, which the stub answers with -2.
    fn write_record(&mut self, payload: &[u8], options: &[u8]) -> i32 {
        if decode_record(payload).is_err() {
            return -2;
        }
        let topic = match write_options(options) {
            Err(_) => return -2,
            Ok(Options::Default) => 0,
            Ok(Options::Topic(name)) => {
                match self.output_topics.iter().position(|t| t.as_bytes() == name) {
                    Some(i) => i,
                    None => return -3,
                }
            }
        };
        self.written.push((topic, payload.to_vec()));
        payload.len() as i32
    }
}
