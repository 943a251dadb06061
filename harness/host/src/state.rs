//! The `Store`'s data: everything the host functions of one VM touch.

use std::ops::Range;
use std::sync::atomic::{AtomicI64, AtomicUsize};
use std::sync::{Arc, Mutex};

use wasmtime::{format_err, Result};
use wasmtime::{Caller, Memory, ResourceLimiter};

use crate::vm::{Batch, Output};
use crate::wasi::WasiState;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogStream {
    Stdout,
    Stderr,
}

/// One line the guest wrote to stdout or stderr.
#[derive(Debug, Clone, Copy)]
pub struct LogLine<'a> {
    pub transform: &'a str,
    pub stream: LogStream,
    pub line: &'a str,
}

/// Where guest log lines go, as Redpanda sends them to its own log.
pub type Logger = Arc<dyn Fn(LogLine<'_>) + Send + Sync>;

/// What the driver and the parked guest hand each other. The guest runs as
/// a future that owns its `Store`, so batches in and outputs out pass here.
#[derive(Default)]
pub(crate) struct Exchange {
    pub inbox: Option<Arc<Batch>>,
    pub done: Option<Vec<Output>>,
    pub parked: bool,
}

#[derive(Default)]
pub(crate) struct Shared {
    pub exchange: Mutex<Exchange>,
    /// Offset of the record the guest read last, for failure reports.
    pub current_offset: AtomicI64,
    /// Memory size the guest last asked for and was refused (0: none).
    pub refused_memory: AtomicUsize,
    /// The guest's linear memory: it only grows, so this is also its peak.
    pub memory_bytes: AtomicUsize,
}

pub struct HostState {
    pub(crate) name: String,
    pub(crate) memory: Option<Memory>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) batch: Option<Arc<Batch>>,
    pub(crate) next_record: usize,
    pub(crate) outputs: Vec<Output>,
    pub(crate) output_topics: Vec<String>,
    pub(crate) fuel_per_record: u64,
    pub(crate) memory_limit: usize,
    pub(crate) wasi: WasiState,
}

impl ResourceLimiter for HostState {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> Result<bool> {
        if desired > self.memory_limit {
            self.shared
                .refused_memory
                .store(desired, std::sync::atomic::Ordering::Relaxed);
            return Ok(false);
        }
        self.shared
            .memory_bytes
            .store(desired, std::sync::atomic::Ordering::Relaxed);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        _desired: usize,
        _max: Option<usize>,
    ) -> Result<bool> {
        Ok(true)
    }
}

/// The guest's linear memory and the host state, borrowed together.
pub(crate) fn memory_and_state<'a>(
    caller: &'a mut Caller<'_, HostState>,
) -> Result<(&'a mut [u8], &'a mut HostState)> {
    let memory = caller
        .data()
        .memory
        .ok_or_else(|| format_err!("the module exports no memory named `memory`"))?;
    Ok(memory.data_and_store_mut(caller))
}

/// A guest range; outside linear memory it traps the call, as in Redpanda.
pub(crate) fn guest_range(memory: &[u8], ptr: i32, len: usize) -> Result<Range<usize>> {
    let start = ptr as u32 as usize;
    match start.checked_add(len) {
        Some(end) if end <= memory.len() => Ok(start..end),
        _ => Err(format_err!(
            "out of bounds memory access: {len} bytes at {start} in a {} byte memory",
            memory.len()
        )),
    }
}

/// Writes a little-endian out-parameter.
pub(crate) fn put<const N: usize>(memory: &mut [u8], ptr: i32, bytes: [u8; N]) -> Result<()> {
    let range = guest_range(memory, ptr, N)?;
    memory[range].copy_from_slice(&bytes);
    Ok(())
}
