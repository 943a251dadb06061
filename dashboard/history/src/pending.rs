//! What the merge counted since the last checkpoint: per window, what its
//! panes added. A checkpoint turns that into what each hour and day row
//! gains, once per window rather than once per pane.

use std::collections::HashMap;
use std::sync::Arc;

use analytics::merge::{Window, WindowKey, WindowReach};
use analytics::reach::{Reach, ReachUnion};
use analytics::{Counters, Pane};

use crate::tiers::{Scope, Tier};

/// What a window or a rollup row gains from the panes counted since the
/// last checkpoint.
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
        self.panes += 1;
        self.records += pane.records;
        self.late_panes += u64::from(pane.late_records > 0);
        self.windows += u64::from(first);
    }

    /// Adds a window's gain; `reach` is the window's whole sketch, whose
    /// union with the row's is the same however often it is added.
    fn add_gain(&mut self, gain: &Gain, reach: Option<&Reach>) {
        self.counters.add(&gain.counters);
        if let Some(reach) = reach {
            self.reach
                .get_or_insert_with(ReachUnion::default)
                .add(reach);
        }
        self.panes += gain.panes;
        self.records += gain.records;
        self.late_panes += gain.late_panes;
        self.windows += gain.windows;
    }
}

/// A rollup row: its start, campaign and channel.
pub type Row = (i64, Arc<str>, Arc<str>);

/// The rows a checkpoint adds to, per table.
pub type Gains = HashMap<&'static str, HashMap<Row, Gain>>;

/// The key of the rows of totals.
pub const ALL: &str = "*";

/// The windows the merge counted into since the last checkpoint, with
/// what their panes added.
#[derive(Debug, Default)]
pub struct Pending {
    pub windows: HashMap<WindowKey, Gain>,
}

impl Pending {
    /// A pane the merge counted into the window `key`; `first` if it is
    /// the window's first.
    pub fn count(&mut self, pane: &Pane, key: WindowKey, first: bool) {
        self.windows
            .entry(key)
            .or_insert_with(|| Gain::starting(pane.window_end))
            .add_pane(pane, first);
    }
}

/// Adds a window's gain to its hour's rows (each key's, its campaign's,
/// its channel's and the total), and to its day's if the day is rolled up
/// already (before `days_rolled`): an open day is rolled up from its
/// hours when it closes.
pub fn roll_up(
    gains: &mut Gains,
    key: &WindowKey,
    gain: &Gain,
    reach: Option<&Reach>,
    days_rolled: i64,
) {
    let all: Arc<str> = Arc::from(ALL);
    for tier in [Tier::Hour, Tier::Day] {
        let start = tier.start_of(key.0);
        if tier == Tier::Day && start >= days_rolled {
            continue;
        }
        let end = start + tier.grain().expect("rollups have a grain");
        for scope in Scope::ALL {
            let table = tier.table_of(scope).expect("rollups have every scope");
            let (campaign, channel) = match scope {
                Scope::Key => (&key.1, &key.2),
                Scope::Campaign => (&key.1, &all),
                Scope::Channel => (&all, &key.2),
                Scope::All => (&all, &all),
            };
            gains
                .entry(table)
                .or_default()
                .entry((start, campaign.clone(), channel.clone()))
                .or_insert_with(|| Gain::starting(end))
                .add_gain(gain, reach);
        }
    }
}
