//! The marketing pipeline's logic as plain Rust: the event model, enrichment,
//! window panes and their exact merge into windows. No I/O: it compiles natively for tests and benchmarks
//! and to `wasm32-wasip1` inside the transforms.

pub mod avro;
pub mod config;
pub mod event;
mod json;
pub mod merge;
pub mod money;
pub mod pane;
pub mod pipeline;
pub mod reach;
mod text;
pub mod time;

pub use config::Config;
pub use event::{enrich, Event, EventRef, Kind, RecordMeta, Rejection};
pub use pane::{Contribution, Counters, Pane, PaneBuilder};
pub use pipeline::{pane_record, Aggregator, Pipeline, Routed};
