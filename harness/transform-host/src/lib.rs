//! Redpanda's data-transform host contract on wasmtime (docs/architecture.md,
//! "The harness's host"), so that the very `.wasm` files deployed with `rpk
//! transform deploy` run here with the same imports, return codes, limits
//! and failures.
//!
//! Shaped like wasmtime's embedding examples: one [`Host`] holds the `Engine`
//! and a `Linker` whose host functions are small methods on the `Store`'s
//! [`state::HostState`]; a [`Vm`] is one instance fed batch by batch.

mod abi;
mod log_lines;
mod memory;
mod records;
mod sr;
mod state;
mod validate;
mod vm;
mod wasi;

use std::sync::Arc;

use wasmtime::Result;
use wasmtime::{Config, Engine, Linker};

pub use log_lines::lines;
pub use records::{Batch, Output, Record};
pub use state::MAX_TABLE_ELEMENTS;
pub use validate::{AbiVersion, DeployError, Refusal, Transform};
pub use vm::{Failure, Vm};
pub use wasi::{LogEvent, LogStream, Logger, LOG_EVENT_MAX_BYTES};

/// The wasm stack a guest may use, as in Redpanda (`wasmtime.cc`).
pub const MAX_WASM_STACK: usize = 64 << 10;

/// Redpanda's defaults (`data_transforms_per_function_memory_limit`, fuel
/// per record, output topics, binary size); each can be changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub memory_bytes: usize,
    pub fuel_per_record: u64,
    pub max_output_topics: usize,
    pub max_module_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: 2 << 20,
            // 3 s of CPU at Redpanda's estimate of 2·10⁹ fuel units a second.
            fuel_per_record: 3 * 2_000_000_000,
            max_output_topics: 8,
            max_module_bytes: 10 << 20,
        }
    }
}

/// What a transform is deployed as: its name, topics and environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransformSpec {
    pub name: String,
    pub input_topic: String,
    pub output_topics: Vec<String>,
    pub env: Vec<(String, String)>,
}

impl TransformSpec {
    /// The environment the guest sees: the user's variables, then the
    /// topics as Redpanda names them.
    pub fn environ(&self) -> Vec<String> {
        let mut vars: Vec<String> = self.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        vars.push(format!("REDPANDA_INPUT_TOPIC={}", self.input_topic));
        for (i, topic) in self.output_topics.iter().enumerate() {
            vars.push(format!("REDPANDA_OUTPUT_TOPIC_{i}={topic}"));
        }
        vars
    }
}

/// The engine and the linker with every host function; cheap to clone.
#[derive(Clone)]
pub struct Host {
    engine: Engine,
    linker: Arc<Linker<state::HostState>>,
    limits: Limits,
    registry: Option<Arc<dyn registry::SchemaRegistry>>,
}

impl Host {
    pub fn new(limits: Limits) -> Result<Host> {
        let mut config = Config::new();
        config.consume_fuel(true);
        // Redpanda's guest stack (`max_vm_guest_stack_usage`).
        config.max_wasm_stack(MAX_WASM_STACK);
        let engine = Engine::new(&config)?;
        let mut linker = Linker::new(&engine);
        abi::add_to_linker(&mut linker)?;
        sr::add_to_linker(&mut linker)?;
        wasi::add_to_linker(&mut linker, state::HostState::wasi)?;
        Ok(Host {
            engine,
            linker: Arc::new(linker),
            limits,
            registry: None,
        })
    }

    /// The registry behind `redpanda_schema_registry`; without one its
    /// calls answer -1, as on a broker with no Schema Registry configured.
    pub fn with_schema_registry(mut self, registry: Arc<dyn registry::SchemaRegistry>) -> Host {
        self.registry = Some(registry);
        self
    }

    /// The same host with another linear memory limit: the engine does not
    /// depend on it.
    pub fn with_memory_limit(mut self, bytes: usize) -> Host {
        self.limits.memory_bytes = bytes;
        self
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }
}
