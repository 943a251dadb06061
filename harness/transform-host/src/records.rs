//! What crosses the ABI: the records of a batch the host hands over, and
//! the records the guest writes. The VM and the host state both use them,
//! so they live apart from either.

pub use record_payload::Record;

/// Consecutive records of one partition, as Redpanda hands them over.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    pub records: Vec<Record>,
}

pub(crate) struct Header {
    pub base_offset: i64,
    pub record_count: i32,
    pub partition_leader_epoch: i32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub max_payload: usize,
}

impl Batch {
    pub(crate) fn header(&self) -> Header {
        let first = self
            .records
            .first()
            .expect("empty batches are never delivered");
        let last = self
            .records
            .last()
            .expect("empty batches are never delivered");
        Header {
            base_offset: first.offset,
            record_count: self.records.len() as i32,
            partition_leader_epoch: 1,
            attributes: 0,
            last_offset_delta: (last.offset - first.offset) as i32,
            base_timestamp: first.timestamp_ms,
            max_timestamp: self
                .records
                .iter()
                .map(|r| r.timestamp_ms)
                .max()
                .unwrap_or(0),
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            max_payload: self
                .records
                .iter()
                .map(|r| r.payload.len())
                .max()
                .unwrap_or(0),
        }
    }
}

/// A record the guest wrote: output topic index and payload (validated).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    pub topic: usize,
    pub payload: Vec<u8>,
}
