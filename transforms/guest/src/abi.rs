//! The batch loop over Redpanda's ABI imports (the same ones the SDK binds).

use redpanda_transform_sdk_types::{
    BorrowedRecord, RecordSink, RecordWriter, WriteError, WriteOptions,
};

use record_payload::{decode_record, encode_record, write_sized};

use crate::{BatchTransform, Input};

#[link(wasm_import_module = "redpanda_transform")]
extern "C" {
    fn check_abi_version_2();
    fn read_batch_header(
        base_offset: *mut i64,
        record_count: *mut i32,
        partition_leader_epoch: *mut i32,
        attributes: *mut i16,
        last_offset_delta: *mut i32,
        base_timestamp: *mut i64,
        max_timestamp: *mut i64,
        producer_id: *mut i64,
        producer_epoch: *mut i16,
        base_sequence: *mut i32,
    ) -> i32;
    fn read_next_record(
        attributes: *mut u8,
        timestamp: *mut i64,
        offset: *mut i64,
        buf: *mut u8,
        len: u32,
    ) -> i32;
    fn write_record(buf: *const u8, len: u32) -> i32;
    fn write_record_with_options(buf: *const u8, len: u32, opts: *const u8, opts_len: u32) -> i32;
}

#[derive(Default)]
struct AbiSink {
    payload: Vec<u8>,
    options: Vec<u8>,
}

impl RecordSink for AbiSink {
    fn write(&mut self, r: BorrowedRecord, opts: WriteOptions) -> Result<(), WriteError> {
        encode_record(&r, &mut self.payload);
        let len = self.payload.len() as u32;
        let written = match opts.topic {
            None => unsafe { write_record(self.payload.as_ptr(), len) },
            Some(topic) => {
                self.options.clear();
                self.options.push(0x01);
                write_sized(&mut self.options, Some(topic.as_bytes()));
                unsafe {
                    write_record_with_options(
                        self.payload.as_ptr(),
                        len,
                        self.options.as_ptr(),
                        self.options.len() as u32,
                    )
                }
            }
        };
        if written == len as i32 {
            Ok(())
        } else {
            Err(WriteError::Unknown(written))
        }
    }
}

/// Runs `transform` forever: a failed write or callback stops the transform,
/// and Redpanda resumes from the last committed offset.
pub fn run(transform: &mut impl BatchTransform) -> ! {
    unsafe { check_abi_version_2() };
    let mut input: Vec<u8> = Vec::new();
    let mut sink = AbiSink::default();
    loop {
        let (mut base_offset, mut count, mut epoch, mut attrs) = (0i64, 0i32, 0i32, 0i16);
        let (mut delta, mut base_ts, mut max_ts) = (0i32, 0i64, 0i64);
        let (mut pid, mut pepoch, mut seq) = (0i64, 0i16, 0i32);
        let max_size = unsafe {
            read_batch_header(
                &mut base_offset,
                &mut count,
                &mut epoch,
                &mut attrs,
                &mut delta,
                &mut base_ts,
                &mut max_ts,
                &mut pid,
                &mut pepoch,
                &mut seq,
            )
        };
        assert!(max_size >= 0, "read_batch_header failed: {max_size}");
        input.resize(max_size as usize, 0);
        let mut writer = RecordWriter::new(&mut sink);
        for _ in 0..count {
            let (mut attr, mut timestamp_ms, mut offset) = (0u8, 0i64, 0i64);
            let len = unsafe {
                read_next_record(
                    &mut attr,
                    &mut timestamp_ms,
                    &mut offset,
                    input.as_mut_ptr(),
                    input.len() as u32,
                )
            };
            assert!(len >= 0, "read_next_record failed: {len}");
            let record = decode_record(&input[..len as usize]).expect("malformed record payload");
            transform
                .record(
                    Input {
                        offset,
                        timestamp_ms,
                        record,
                    },
                    &mut writer,
                )
                .expect("writing a record failed");
        }
        transform
            .end_of_batch(&mut writer)
            .expect("writing at the end of a batch failed");
    }
}
