//! Redpanda's data-transform control plane, as `rpk transform` speaks it
//! (`src/v/redpanda/admin/transform.cc`, `api-doc/transform.json`; rpk's
//! client is `rpadmin/api_transform.go`): the types on the wire, the rules
//! a deploy must follow, rpk's offset grammar, a server for a harness
//! host and a client for the harness's own commands.
//!
//! The server knows nothing of how transforms run: a host gives it a
//! [`Control`], and, if it has a Kafka listener, its [`Users`]
//! (`rpk security user`'s routes, `src/v/redpanda/admin/security.cc`).

mod api;
mod client;
mod offset;
mod rules;
mod server;

pub use api::{
    ApiError, Compression, DeployRequest, Deployed, EnvVar, HarnessStatus, MetaPatch, NewRecord,
    NewUser, OffsetFormat, OffsetSpec, PartitionStatus, Produced, SwapTiming, TopicInfo,
    TopicRecord, TransformMetadata,
};
pub use client::{Client, ClientOptions};
pub use offset::parse_from_offset;
pub use rules::{check_environment, check_name, check_topics, MAX_ENV_VARS, MAX_NAME_BYTES};
pub use server::{listen, routes, serve, Control, Users, DEFAULT_ADMIN, MAX_BODY_BYTES};
