//! The live dashboard: panes from `results` merged into windows exactly
//! (each pane once), served as a page that updates itself, a JSON API and
//! Prometheus metrics. Sources are swappable: a file, Kafka, or the
//! embedded mode's in-memory topics.

pub mod bench;
pub mod merge;
pub mod pacing;
pub mod service;
pub mod source;
pub mod view;
pub mod webhook;
