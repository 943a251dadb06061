//! The embedded topics over the Kafka protocol. Nisshi's broker library
//! does the protocol: framing, every request's validation, the group
//! coordinator, fetch's waiting for `min_bytes`. [`TopicStorage`] is the
//! `Storage` it runs on, over [`topics::Topics`]; [`serve`] accepts
//! connections for it.

mod listener;
mod producers;
mod storage;

pub use listener::{bind, serve, Listener};
pub use storage::TopicStorage;
