//! What a module must pass: first the checks `rpk transform deploy` meets
//! (Redpanda's `wasmtime_runtime::validate`, `src/v/wasm/wasmtime.cc`,
//! in the same order, with the same reasons), then what Redpanda only finds
//! when a VM starts (compiling, linking the imports, the memory).

use sha2::{Digest, Sha256};
use wasmparser::{ExternalKind, Parser, Payload, TypeRef, ValType};
use wasmtime::{ExternType, InstancePre, Module};

use crate::state::HostState;
use crate::Host;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AbiVersion {
    V1,
    V2,
}

/// A module that passed every check, compiled and linked.
#[derive(Clone)]
pub struct Transform {
    pub(crate) pre: InstancePre<HostState>,
    pub abi: AbiVersion,
    /// Whether it imports the Schema Registry module.
    pub uses_schema_registry: bool,
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

/// Why Redpanda refuses a module at deploy (`src/v/wasm/errc.h`); each has
/// the admin API's own answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Not a module Redpanda's parser takes, or over the size limit.
    InvalidModule,
    /// No `_start` () -> (), or no memory named `memory`.
    MissingWasi,
    /// A Schema Registry ABI other than version 0.
    UnsupportedSchemaRegistry,
    /// No `redpanda_transform::check_abi_version_1` or `_2`.
    MissingAbi,
}

impl Refusal {
    /// The admin API's message for it (HTTP 400,
    /// `src/v/redpanda/admin/server.cc`, `admin_server::throw_on_error`).
    pub fn admin_message(self) -> &'static str {
        match self {
            Refusal::InvalidModule => "invalid WebAssembly module",
            Refusal::MissingWasi => "invalid WebAssembly - missing required WASI functions",
            Refusal::UnsupportedSchemaRegistry => {
                "Invalid WebAssembly - the binary is using an unsupported Schema Registry client. \
                 Does the broker support this version of the Data Transforms Schema Registry SDK?"
            }
            Refusal::MissingAbi => {
                "Invalid WebAssembly - the binary is missing required transform functions. \
                 Check the broker support for the version of the Data Transforms SDK being used."
            }
        }
    }
}

/// Why a module cannot run: refused at deploy (`refusal` says how), or
/// accepted at deploy and failing when it starts (`refusal` is `None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployError {
    pub refusal: Option<Refusal>,
    pub message: String,
}

impl std::fmt::Display for DeployError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.refusal {
            Some(_) => write!(f, "refused at deploy: {}", self.message),
            None => write!(
                f,
                "accepted at deploy, but it fails when it starts: {}",
                self.message
            ),
        }
    }
}

impl std::error::Error for DeployError {}

fn refuse<T>(refusal: Refusal, message: impl Into<String>) -> Result<T, DeployError> {
    Err(DeployError {
        refusal: Some(refusal),
        message: message.into(),
    })
}

fn fails_at_start<T>(message: impl Into<String>) -> Result<T, DeployError> {
    Err(DeployError {
        refusal: None,
        message: message.into(),
    })
}

/// What the deploy checks learn of a module.
struct Declarations {
    abi: AbiVersion,
    uses_schema_registry: bool,
}

/// Redpanda's deploy-time checks, in its order: the module parses (its
/// declarations, not its code); `_start` is a function () -> (); a memory
/// is exported as `memory`; the imports, in order, name no Schema Registry
/// ABI but version 0; one imports the transform ABI's check function.
fn deploy_checks(wasm: &[u8]) -> Result<Declarations, DeployError> {
    let invalid = |e: wasmparser::BinaryReaderError| DeployError {
        refusal: Some(Refusal::InvalidModule),
        message: format!("not a valid WebAssembly module: {}", e.message()),
    };
    let mut types: Vec<(Vec<ValType>, Vec<ValType>)> = Vec::new();
    let mut imports: Vec<(String, String, Option<u32>)> = Vec::new();
    let mut functions: Vec<u32> = Vec::new();
    let mut start = None;
    let mut memory = false;
    for payload in Parser::new(0).parse_all(wasm) {
        match payload.map_err(invalid)? {
            Payload::TypeSection(section) => {
                for ty in section.into_iter_err_on_gc_types() {
                    let ty = ty.map_err(invalid)?;
                    if ty
                        .params()
                        .iter()
                        .chain(ty.results())
                        .any(|t| *t == ValType::V128)
                    {
                        // Redpanda's parser knows no v128 (`parser.cc`, `parse_val_type`).
                        return refuse(Refusal::InvalidModule, "unknown valtype: 123");
                    }
                    types.push((ty.params().to_vec(), ty.results().to_vec()));
                }
            }
            Payload::ImportSection(section) => {
                for import in section.into_imports() {
                    let import = import.map_err(invalid)?;
                    let func = match import.ty {
                        TypeRef::Func(index) => {
                            functions.push(index);
                            Some(index)
                        }
                        _ => None,
                    };
                    imports.push((import.module.to_string(), import.name.to_string(), func));
                }
            }
            Payload::FunctionSection(section) => {
                for ty in section {
                    functions.push(ty.map_err(invalid)?);
                }
            }
            Payload::ExportSection(section) => {
                for export in section {
                    let export = export.map_err(invalid)?;
                    match (export.name, export.kind) {
                        ("_start", ExternalKind::Func) => start = Some(export.index),
                        ("memory", ExternalKind::Memory) => memory = true,
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    let nullary = |type_index: u32| {
        types
            .get(type_index as usize)
            .is_some_and(|(params, results)| params.is_empty() && results.is_empty())
    };
    let start_type = start.and_then(|f| functions.get(f as usize).copied());
    if !start_type.is_some_and(nullary) {
        return refuse(
            Refusal::MissingWasi,
            "invalid module: missing _start function: it must export `_start`, a function () -> (); build it as a WASI command (a `main`)",
        );
    }
    if !memory {
        return refuse(
            Refusal::MissingWasi,
            "invalid module: missing memory export: it must export its memory as `memory`",
        );
    }
    let mut abi = None;
    let mut uses_schema_registry = false;
    for (module, name, func) in &imports {
        let void = func.is_some_and(nullary);
        match module.as_str() {
            "redpanda_schema_registry" => {
                uses_schema_registry = true;
                if name.starts_with("check_abi_version_")
                    && !(name == "check_abi_version_0" && void)
                {
                    return refuse(
                        Refusal::UnsupportedSchemaRegistry,
                        format!("invalid module: unsupported schema registry ABI: it imports redpanda_schema_registry::{name}; only check_abi_version_0 exists"),
                    );
                }
            }
            "redpanda_transform" if void => match name.as_str() {
                "check_abi_version_1" => abi = abi.or(Some(AbiVersion::V1)),
                "check_abi_version_2" => abi = Some(AbiVersion::V2),
                _ => {}
            },
            _ => {}
        }
    }
    let Some(abi) = abi else {
        return refuse(
            Refusal::MissingAbi,
            "invalid module: missing transform sdk ABI check function: it imports neither \
             redpanda_transform::check_abi_version_1 nor _2; is it built with Redpanda's transform SDK?",
        );
    };
    Ok(Declarations {
        abi,
        uses_schema_registry,
    })
}

impl Host {
    /// Checks a `.wasm` binary as Redpanda does at deploy, then compiles and
    /// links it as Redpanda does when a VM starts.
    pub fn load(&self, wasm: &[u8]) -> Result<Transform, DeployError> {
        let limits = self.limits;
        if wasm.len() > limits.max_module_bytes {
            return refuse(
                Refusal::InvalidModule,
                format!(
                    "the module is {} bytes; the limit is {} bytes",
                    wasm.len(),
                    limits.max_module_bytes
                ),
            );
        }
        let declarations = deploy_checks(wasm)?;
        let module = match Module::from_binary(&self.engine, wasm) {
            Ok(module) => module,
            Err(e) => return fails_at_start(format!("it does not compile: {e:#}")),
        };
        let initial_memory_bytes = match module.get_export("memory") {
            Some(ExternType::Memory(m)) if m.is_64() => {
                return fails_at_start("invalid 64bit memory: Redpanda needs a 32-bit memory")
            }
            Some(ExternType::Memory(m)) => m.minimum() * 65_536,
            _ => return fails_at_start("wasm module missing memory export"),
        };
        let pre = match self.linker.instantiate_pre(&module) {
            Ok(pre) => pre,
            Err(e) => {
                return fails_at_start(format!("it needs what Redpanda does not provide: {e:#}"))
            }
        };
        Ok(Transform {
            pre,
            abi: declarations.abi,
            uses_schema_registry: declarations.uses_schema_registry,
            size_bytes: wasm.len(),
            initial_memory_bytes,
            version: Sha256::digest(wasm)[..6]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
        })
    }
}
