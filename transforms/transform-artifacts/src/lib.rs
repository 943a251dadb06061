//! The transforms, built for wasm32-wasip1 by this crate's build script and
//! embedded: the harness runs them without a separate build step.

/// The deployable pipeline transform (root transform.yaml).
pub const PIPELINE: &[u8] = include_bytes!(env!("PIPELINE_WASM"));
/// Standalone enrich: logs -> events + logs.dlq.
pub const ENRICH: &[u8] = include_bytes!(env!("ENRICH_WASM"));
/// Standalone aggregate: events -> results.
pub const AGGREGATE: &[u8] = include_bytes!(env!("AGGREGATE_WASM"));
/// The SDK alone: every record to every output topic, untouched.
pub const TEE: &[u8] = include_bytes!(env!("TEE_WASM"));
