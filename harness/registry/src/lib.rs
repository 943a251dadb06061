//! Schemas as a Confluent-compatible registry keeps them, for the
//! transforms' Schema Registry module (`redpanda_schema_registry`):
//! [`SchemaRegistry`] is what the module needs; [`Client`] gives it any
//! registry over Confluent's REST API, caching what cannot change;
//! [`LocalRegistry`] is a registry of the host's own, which [`serve`]
//! exposes over the same REST API, as Redpanda serves one.

mod client;
mod local;
mod model;
mod server;

pub use client::Client;
pub use local::LocalRegistry;
pub use model::{Reference, RegistryError, Schema, SchemaRegistry, SchemaType, SubjectSchema};
pub use server::{listen, routes, serve, DEFAULT_REGISTRY};
