//! Deploy-time checks: what `rpk transform deploy` would refuse is refused
//! here too, before anything runs, with the reason.

use sha2::{Digest, Sha256};
use wasmtime::{ExternType, InstancePre, Module};

use crate::state::HostState;
use crate::Host;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AbiVersion {
    V1,
    V2,
}

/// A module that passed the deploy-time checks, compiled and linked.
#[derive(Clone)]
pub struct Transform {
    pub(crate) pre: InstancePre<HostState>,
    pub abi: AbiVersion,
    pub size_bytes: usize,
    pub initial_memory_bytes: u64,
    /// The start of the module's SHA-256, in hex: which version runs.
    pub version: String,
}

impl std::fmt::Debug for Transform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transform")
            .field("abi", &self.abi)
            .field("size_bytes", &self.size_bytes)
            .field("initial_memory_bytes", &self.initial_memory_bytes)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployError(pub String);

impl std::fmt::Display for DeployError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DeployError {}

fn refuse<T>(why: String) -> Result<T, DeployError> {
    Err(DeployError(why))
}

impl Host {
    /// Validates and compiles a `.wasm` binary as Redpanda would at deploy.
    pub fn load(&self, wasm: &[u8]) -> Result<Transform, DeployError> {
        let limits = self.limits;
        if wasm.len() > limits.max_module_bytes {
            return refuse(format!(
                "the module is {} bytes; the limit is {} bytes",
                wasm.len(),
                limits.max_module_bytes
            ));
        }
        let module = Module::from_binary(&self.engine, wasm)
            .map_err(|e| DeployError(format!("not a valid WebAssembly module: {e:#}")))?;

        let abi = abi_version(&module)?;
        match module.get_export("_start") {
            Some(ExternType::Func(f)) if f.params().len() == 0 && f.results().len() == 0 => {}
            Some(_) => return refuse("the export `_start` must be a function () -> ()".into()),
            None => return refuse(
                "the module exports no `_start` function: build it as a WASI command (a `main`)"
                    .into(),
            ),
        }
        let initial_memory_bytes = match module.get_export("memory") {
            Some(ExternType::Memory(m)) if !m.is_64() => m.minimum() * 65_536,
            Some(ExternType::Memory(_)) => {
                return refuse(
                    "the exported `memory` is 64-bit; Redpanda needs a 32-bit memory".into(),
                )
            }
            _ => return refuse("the module exports no memory named `memory`".into()),
        };
        if initial_memory_bytes > limits.memory_bytes as u64 {
            return refuse(format!(
                "the module starts with {initial_memory_bytes} bytes of memory, over the limit of {} bytes",
                limits.memory_bytes
            ));
        }
        let pre = self.linker.instantiate_pre(&module).map_err(|e| {
            DeployError(format!(
                "the module needs what Redpanda does not provide: {e:#}"
            ))
        })?;
        Ok(Transform {
            pre,
            abi,
            size_bytes: wasm.len(),
            initial_memory_bytes,
            version: Sha256::digest(wasm)[..6]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
        })
    }
}

fn abi_version(module: &Module) -> Result<AbiVersion, DeployError> {
    let mut version = None;
    for import in module.imports() {
        if import.module() == "redpanda_transform" {
            match import.name() {
                "check_abi_version_1" => version = version.or(Some(AbiVersion::V1)),
                "check_abi_version_2" => version = Some(AbiVersion::V2),
                _ => {}
            }
        }
    }
    version.ok_or_else(|| {
        DeployError(
            "the module imports neither redpanda_transform::check_abi_version_1 nor _2: \
             is it built with Redpanda's transform SDK?"
                .into(),
        )
    })
}
