//! The `Store`'s data: everything the host functions of one VM touch.

use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use wasmtime::{format_err, Caller, Memory, ResourceLimiter, Result};

use crate::records::{Batch, Output};
use crate::wasi::WasiState;

/// Table elements a VM may have, as in Redpanda (`wasmtime.cc`: 128 KiB of
/// pointers).
pub const MAX_TABLE_ELEMENTS: usize = 16_384;

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
    /// Cached for the per-record calls; WASI looks it up per call.
    pub(crate) memory: Option<Memory>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) batch: Option<Arc<Batch>>,
    pub(crate) next_record: usize,
    pub(crate) outputs: Vec<Output>,
    pub(crate) output_topics: Vec<String>,
    pub(crate) fuel_per_record: u64,
    pub(crate) memory_limit: usize,
    pub(crate) wasi: WasiState,
    /// What `redpanda_schema_registry` asks; `None`: no registry configured.
    pub(crate) registry: Option<Arc<dyn registry::SchemaRegistry>>,
}

impl HostState {
    /// The accessor WASI reaches its state through.
    pub(crate) fn wasi(&mut self) -> &mut WasiState {
        &mut self.wasi
    }
}

/// Redpanda's store limits: the memory limit, 16,384 table elements, and
/// one instance, table and memory.
impl ResourceLimiter for HostState {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> Result<bool> {
        if desired > self.memory_limit {
            self.shared.refused_memory.store(desired, Ordering::Relaxed);
            return Ok(false);
        }
        self.shared.memory_bytes.store(desired, Ordering::Relaxed);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }

    fn instances(&self) -> usize {
        1
    }

    fn tables(&self) -> usize {
        1
    }

    fn memories(&self) -> usize {
        1
    }
}

/// The guest's linear memory and the host state, borrowed together.
pub(crate) fn memory_and_state<'a>(
    caller: &'a mut Caller<'_, HostState>,
) -> Result<(&'a mut [u8], &'a mut HostState)> {
    let memory = caller
        .data()
        .memory
        .ok_or_else(|| format_err!("Missing memory export"))?;
    Ok(memory.data_and_store_mut(caller))
}
