//! The embedded topics over the Kafka protocol. Nisshi's broker library
//! does the protocol: framing, every request's validation, the group
//! coordinator, fetch's waiting for `min_bytes`. [`TopicStorage`] is the
//! `Storage` it runs on, over [`topics::Topics`]; [`serve`] accepts
//! connections for it, over TLS and behind SASL SCRAM as [`Security`]
//! asks, with the [`Users`] kept beside the topics.

mod listener;
mod long_poll;
mod producers;
mod storage;
mod users;

pub use listener::{bind, serve, Listener, Security};
pub use storage::TopicStorage;
pub use users::{Mechanism, UserError, Users};
