//! The `redpanda_transform` module: batches in, records out, as
//! `src/v/wasm/transform_module.cc` answers.

use std::future::poll_fn;
use std::sync::atomic::Ordering;
use std::task::Poll;

use record_payload::encode_record;
use record_payload::redpanda::{decode_record, write_options, Options, OptionsError};
use wasmtime::{format_err, Result};
use wasmtime::{Caller, Linker};

use crate::memory::{check, guest_range, put};
use crate::records::Output;
use crate::state::{memory_and_state, HostState};

const MODULE: &str = "redpanda_transform";

/// Return codes of the ABI.
const NO_RECORD: i32 = -1;
const OUTSIDE_BATCH: i32 = -1;
const BUFFER_TOO_SMALL: i32 = -2;
const MALFORMED: i32 = -2;
const UNKNOWN_TOPIC: i32 = -3;

pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> Result<()> {
    // Both versions are no-ops: importing one tells which ABI the module speaks.
    linker.func_wrap(MODULE, "check_abi_version_1", || {})?;
    linker.func_wrap(MODULE, "check_abi_version_2", || {})?;
    linker.func_wrap_async(
        MODULE,
        "read_batch_header",
        |caller: Caller<'_, HostState>,
         ptrs: (i32, i32, i32, i32, i32, i32, i32, i32, i32, i32)| {
            Box::new(HostState::read_batch_header(caller, ptrs))
        },
    )?;
    linker.func_wrap(MODULE, "read_next_record", HostState::read_next_record)?;
    linker.func_wrap(
        MODULE,
        "write_record",
        |caller: Caller<'_, HostState>, buf: i32, len: i32| {
            HostState::write_record(caller, buf, len, None)
        },
    )?;
    linker.func_wrap(
        MODULE,
        "write_record_with_options",
        |caller: Caller<'_, HostState>, buf: i32, len: i32, opts: i32, opts_len: i32| {
            HostState::write_record(caller, buf, len, Some((opts, opts_len)))
        },
    )?;
    Ok(())
}

impl HostState {
    /// Ends the current batch, if any, and blocks until the next one.
    async fn read_batch_header(
        mut caller: Caller<'_, HostState>,
        ptrs: (i32, i32, i32, i32, i32, i32, i32, i32, i32, i32),
    ) -> Result<i32> {
        let (p0, p1, p2, p3, p4, p5, p6, p7, p8, p9) = ptrs;
        // Every out-parameter is checked before the call blocks.
        let (memory, _) = memory_and_state(&mut caller)?;
        check(
            memory,
            &[
                (p0, 8),
                (p1, 4),
                (p2, 4),
                (p3, 2),
                (p4, 4),
                (p5, 8),
                (p6, 8),
                (p7, 8),
                (p8, 2),
                (p9, 4),
            ],
        )?;
        let shared = caller.data().shared.clone();
        if caller.data_mut().batch.take().is_some() {
            let outputs = std::mem::take(&mut caller.data_mut().outputs);
            shared.exchange.lock().expect("exchange lock").done = Some(outputs);
        }
        let batch = poll_fn(|_| {
            let mut exchange = shared.exchange.lock().expect("exchange lock");
            match exchange.inbox.take() {
                Some(batch) => {
                    exchange.parked = false;
                    Poll::Ready(batch)
                }
                None => {
                    exchange.parked = true;
                    Poll::Pending
                }
            }
        })
        .await;
        // No record of the new batch is read yet. Fuel is not refilled
        // here: only a record read does that.
        shared.current_offset.store(-1, Ordering::Relaxed);
        let header = batch.header();
        let (memory, state) = memory_and_state(&mut caller)?;
        put(memory, p0, header.base_offset.to_le_bytes())?;
        put(memory, p1, header.record_count.to_le_bytes())?;
        put(memory, p2, header.partition_leader_epoch.to_le_bytes())?;
        put(memory, p3, header.attributes.to_le_bytes())?;
        put(memory, p4, header.last_offset_delta.to_le_bytes())?;
        put(memory, p5, header.base_timestamp.to_le_bytes())?;
        put(memory, p6, header.max_timestamp.to_le_bytes())?;
        put(memory, p7, header.producer_id.to_le_bytes())?;
        put(memory, p8, header.producer_epoch.to_le_bytes())?;
        put(memory, p9, header.base_sequence.to_le_bytes())?;
        // A batch of create-time records: the realtime clock is its first
        // timestamp until a record is read.
        state.wasi.set_realtime(header.base_timestamp);
        state.next_record = 0;
        state.batch = Some(batch);
        Ok(header.max_payload as i32)
    }

    fn read_next_record(
        mut caller: Caller<'_, HostState>,
        attr_ptr: i32,
        ts_ptr: i32,
        offset_ptr: i32,
        buf: i32,
        len: i32,
    ) -> Result<i32> {
        let (memory, state) = memory_and_state(&mut caller)?;
        // Redpanda translates every pointer argument before the call, so a
        // bad one traps even when there is no record to copy.
        check(memory, &[(attr_ptr, 1), (ts_ptr, 8), (offset_ptr, 8)])?;
        let buf = guest_range(memory, buf, len as u32 as usize)?;
        let Some(batch) = &state.batch else {
            return Ok(NO_RECORD);
        };
        let Some(record) = batch.records.get(state.next_record) else {
            return Ok(NO_RECORD);
        };
        if record.payload.len() > buf.len() {
            return Ok(BUFFER_TOO_SMALL);
        }
        memory[buf.start..buf.start + record.payload.len()].copy_from_slice(&record.payload);
        put(memory, attr_ptr, [0u8])?;
        put(memory, ts_ptr, record.timestamp_ms.to_le_bytes())?;
        put(memory, offset_ptr, record.offset.to_le_bytes())?;
        state.next_record += 1;
        state.wasi.set_realtime(record.timestamp_ms);
        state
            .shared
            .current_offset
            .store(record.offset, Ordering::Relaxed);
        let written = record.payload.len() as i32;
        let fuel = state.fuel_per_record;
        caller.set_fuel(fuel)?;
        Ok(written)
    }

    fn write_record(
        mut caller: Caller<'_, HostState>,
        buf: i32,
        len: i32,
        options: Option<(i32, i32)>,
    ) -> Result<i32> {
        let (memory, state) = memory_and_state(&mut caller)?;
        let payload = &memory[guest_range(memory, buf, len as u32 as usize)?];
        let opts = match options {
            Some((ptr, opts_len)) => {
                Some(&memory[guest_range(memory, ptr, opts_len as u32 as usize)?])
            }
            None => None,
        };
        if state.batch.is_none() {
            return Ok(OUTSIDE_BATCH);
        }
        let Ok((record, canonical)) = decode_record(payload) else {
            return Ok(MALFORMED);
        };
        let topic = match opts.map(write_options).unwrap_or(Ok(Options::Default)) {
            Err(OptionsError::Invalid) => return Ok(MALFORMED),
            Err(OptionsError::Trap(why)) => return Err(format_err!("{why}")),
            Ok(Options::Default) => 0,
            Ok(Options::Topic(name)) => match state
                .output_topics
                .iter()
                .position(|t| t.as_bytes() == name)
            {
                Some(i) => i,
                None => return Ok(UNKNOWN_TOPIC),
            },
        };
        // What Redpanda takes leniently (an empty payload: empty key and
        // value) is stored in the format every reader expects.
        let payload = if canonical {
            payload.to_vec()
        } else {
            let mut encoded = Vec::new();
            encode_record(&record, &mut encoded);
            encoded
        };
        state.outputs.push(Output { topic, payload });
        Ok(len)
    }
}
