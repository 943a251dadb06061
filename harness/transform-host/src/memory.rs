//! Guest memory as host functions see it. Redpanda translates every pointer
//! parameter before a host function runs, and a range outside linear
//! memory traps the call (`src/v/wasm/ffi.h`, `wasmtime.cc`
//! `translate_raw`): it is not an error code.

use std::ops::Range;

use wasmtime::{format_err, Caller, Extern, Result};

/// The guest's exported `memory` and the store's data, borrowed together.
/// Redpanda looks the export up before every host call.
pub(crate) fn memory_and_data<'a, T>(
    caller: &'a mut Caller<'_, T>,
) -> Result<(&'a mut [u8], &'a mut T)> {
    match caller.get_export("memory") {
        Some(Extern::Memory(memory)) => Ok(memory.data_and_store_mut(caller)),
        _ => Err(format_err!("Missing memory export")),
    }
}

/// A guest range; outside linear memory it traps the call, as in Redpanda
/// (a zero-length range at the very end is inside).
pub(crate) fn guest_range(memory: &[u8], ptr: i32, len: usize) -> Result<Range<usize>> {
    let start = ptr as u32 as usize;
    match start.checked_add(len) {
        Some(end) if end <= memory.len() => Ok(start..end),
        _ => Err(format_err!(
            "Out of bounds memory access in FFI: {start} + {len} >= {}",
            memory.len()
        )),
    }
}

/// Checks every range first, as Redpanda translates all parameters before
/// a call: a bad one traps before anything is written.
pub(crate) fn check(memory: &[u8], ranges: &[(i32, usize)]) -> Result<()> {
    for &(ptr, len) in ranges {
        guest_range(memory, ptr, len)?;
    }
    Ok(())
}

/// Writes a little-endian out-parameter.
pub(crate) fn put<const N: usize>(memory: &mut [u8], ptr: i32, bytes: [u8; N]) -> Result<()> {
    let range = guest_range(memory, ptr, N)?;
    memory[range].copy_from_slice(&bytes);
    Ok(())
}
