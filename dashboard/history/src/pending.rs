//! What the merge counted since the last checkpoint: the windows that
//! changed, and what each hour and day row gains.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use analytics::merge::WindowKey;
use analytics::reach::ReachUnion;
use analytics::{Counters, Pane};

use crate::tiers::Tier;

/// What a rollup row gains from the panes counted since the last
/// checkpoint.
#[derive(Debug, Default)]
pub struct Gain {
    pub window_end: i64,
    pub counters: Counters,
    pub reach: Option<ReachUnion>,
    pub panes: u64,
    pub records: u64,
    pub late_panes: u64,
    /// Windows of the transform new to the row.
    pub windows: u64,
}

#[derive(Debug, Default)]
pub struct Pending {
    /// The minute windows changed: written whole.
    pub windows: HashSet<WindowKey>,
    /// Per (tier, row start, campaign, channel).
    pub gains: HashMap<(Tier, i64, Arc<str>, Arc<str>), Gain>,
}

impl Pending {
    /// A pane the merge counted into the window `key`; `first` if it is
    /// the window's first.
    pub fn count(&mut self, pane: &Pane, key: WindowKey, first: bool) {
        for tier in [Tier::Hour, Tier::Day] {
            let start = tier.start_of(pane.window_start);
            let gain = self
                .gains
                .entry((tier, start, key.1.clone(), key.2.clone()))
                .or_default();
            gain.window_end = start + tier.grain().expect("rollups have a grain");
            gain.counters.add(&pane.counters());
            if let Some(sketch) = &pane.reach_sketch {
                gain.reach
                    .get_or_insert_with(ReachUnion::default)
                    .add(sketch);
            }
            gain.panes += 1;
            gain.records += pane.records;
            gain.late_panes += u64::from(pane.late_records > 0);
            gain.windows += u64::from(first);
        }
        self.windows.insert(key);
    }
}
