//! The live dashboard: panes from `results` merged into windows exactly
//! (each pane once), served as a page that updates itself, a JSON API and
//! Prometheus metrics. Sources are swappable: a file of `harness run`'s
//! output, or topics (a broker's or the embedded ones, through
//! `topic_io`).

pub mod export;
pub mod keep;
pub mod pacing;
pub mod range;
pub mod service;
pub mod source;
pub mod view;
pub mod webhook;
