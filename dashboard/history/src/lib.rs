//! The dashboard's analytical memory: every window it merged, kept in
//! SQLite in three tiers (the transform's windows, and their rollups by
//! hour and by day), with the positions in the topics they were merged up
//! to, in the same transaction. A restart loads the positions and the hot
//! windows and reads on from there: no pane is counted twice, none is lost,
//! and the time to start does not grow with the history
//! (docs/architecture.md, "The analytical memory").
//!
//! Counters are summed exactly; reach is the union of DataSketches
//! sketches, never a sum. Analysts read the same file with `sqlite3` or
//! DuckDB (docs/history.md).

mod pending;
mod store;
pub mod tiers;

pub use store::{Campaign, Checkpoint, History, Key, Place, Resumed, FORMAT};
pub use tiers::{cover, Range, Scope, Spans, Tier, DAY_MS, HOUR_MS};
