//! The [`Abi`] over the host's `redpanda_transform` imports (the same ones
//! the SDK binds).

use crate::batch_loop::{run_with, Abi, BatchHeader, NextRecord};
use crate::BatchTransform;

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

struct HostAbi;

impl Abi for HostAbi {
    fn read_batch_header(&mut self) -> Option<BatchHeader> {
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
        Some(BatchHeader {
            record_count: count,
            max_size,
        })
    }

    fn read_next_record(&mut self, buf: &mut [u8]) -> NextRecord {
        let (mut attr, mut timestamp_ms, mut offset) = (0u8, 0i64, 0i64);
        let len = unsafe {
            read_next_record(
                &mut attr,
                &mut timestamp_ms,
                &mut offset,
                buf.as_mut_ptr(),
                buf.len() as u32,
            )
        };
        NextRecord {
            len,
            timestamp_ms,
            offset,
        }
    }

    fn write_record(&mut self, payload: &[u8], options: &[u8]) -> i32 {
        let len = payload.len() as u32;
        unsafe {
            if options.is_empty() {
                write_record(payload.as_ptr(), len)
            } else {
                write_record_with_options(
                    payload.as_ptr(),
                    len,
                    options.as_ptr(),
                    options.len() as u32,
                )
            }
        }
    }
}

pub fn run(transform: &mut impl BatchTransform) -> ! {
    unsafe { check_abi_version_2() };
    run_with(&mut HostAbi, transform);
    unreachable!("Redpanda's read_batch_header blocks until there is a batch")
}
