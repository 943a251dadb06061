//! The harness's integration tests, one binary: the `harness` command and
//! `harness up` as users run them, the host against a real Kafka-protocol
//! broker (Tansu), the dashboard in a real browser, a real schema registry
//! client, and the pipeline's exactness against the generator's truth. One
//! module per subject. SASL and TLS, whose checks are timed, have a binary
//! of their own (`tests/sasl`).

mod access;
mod admin_api;
mod bridge;
mod broker;
mod cases;
mod cli;
mod common;
mod durable;
mod history;
mod hostile;
mod kafka_listener;
mod logs_offsets;
mod properties;
mod schema_registry;
mod snapshots;
mod truth;
mod up;
