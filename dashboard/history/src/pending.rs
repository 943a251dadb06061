//! What the merge counted since the last checkpoint: the windows that
//! changed, and what each hour and day row gains.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use analytics::merge::{Window, WindowKey, WindowReach};
use analytics::reach::ReachUnion;
use analytics::{Counters, Pane};

use crate::tiers::{Scope, Tier};

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

impl Gain {
    /// A gain to a row that ends at `window_end`.
    pub fn starting(window_end: i64) -> Gain {
        Gain {
            window_end,
            ..Gain::default()
        }
    }

    /// Adds a finer tier's row (a day's hour).
    pub fn add_row(&mut self, row: &Window) {
        self.counters.add(&row.counters);
        if let WindowReach::Packed(_) = row.reach {
            row.reach
                .add_to(self.reach.get_or_insert_with(ReachUnion::default));
        }
        self.panes += row.panes;
        self.records += row.records;
        self.late_panes += row.late_panes;
        self.windows += row.windows;
    }

    fn add_pane(&mut self, pane: &Pane, first: bool) {
        self.counters.add(&pane.counters());
        if let Some(sketch) = &pane.reach_sketch {
            self.reach
                .get_or_insert_with(ReachUnion::default)
                .add(sketch);
        }
        self.panes += 1;
        self.records += pane.records;
        self.late_panes += u64::from(pane.late_records > 0);
        self.windows += u64::from(first);
    }
}

#[derive(Debug, Default)]
pub struct Pending {
    /// The minute windows changed: written whole.
    pub windows: HashSet<WindowKey>,
    /// A tier's rows, and its totals over every key (`*`).
    pub gains: HashMap<Row, Gain>,
}

/// A rollup row: its table, start, campaign and channel.
pub type Row = (&'static str, i64, Arc<str>, Arc<str>);

/// The key of the rows of totals.
pub const ALL: &str = "*";

impl Pending {
    /// A pane the merge counted into the window `key`; `first` if it is
    /// the window's first. Days from `days_rolled` on are rolled up from
    /// their hours when they close: only a closed day gains directly.
    pub fn count(&mut self, pane: &Pane, key: WindowKey, first: bool, days_rolled: i64) {
        let all: Arc<str> = Arc::from(ALL);
        for tier in [Tier::Hour, Tier::Day] {
            let start = tier.start_of(pane.window_start);
            if tier == Tier::Day && start >= days_rolled {
                continue;
            }
            for scope in Scope::ALL {
                let table = tier.table_of(scope).expect("rollups have every scope");
                let (campaign, channel) = match scope {
                    Scope::Key => (&key.1, &key.2),
                    Scope::Campaign => (&key.1, &all),
                    Scope::Channel => (&all, &key.2),
                    Scope::All => (&all, &all),
                };
                let end = start + tier.grain().expect("rollups have a grain");
                self.gains
                    .entry((table, start, campaign.clone(), channel.clone()))
                    .or_insert_with(|| Gain::starting(end))
                    .add_pane(pane, first);
            }
        }
        self.windows.insert(key);
    }
}
