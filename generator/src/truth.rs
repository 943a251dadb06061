//! The exact totals of what was generated, per (campaign, channel, window),
//! in integer micro-units: the ground truth the pipeline is checked against.

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::stream::{Event, Profile};

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    pub impressions: i64,
    pub clicks: i64,
    pub conversions: i64,
    pub spend_micros: i64,
    /// Absent from files written before revenue was generated.
    #[serde(default)]
    pub revenue_micros: i64,
}

impl Totals {
    /// The counters of an API answer: a window, a bucket or a summary.
    pub fn from_json(value: &serde_json::Value) -> Option<Totals> {
        Totals::deserialize(value).ok()
    }
}

impl<'a> std::iter::Sum<&'a Totals> for Totals {
    fn sum<I: Iterator<Item = &'a Totals>>(all: I) -> Totals {
        all.fold(Totals::default(), |mut t, w| {
            t.impressions += w.impressions;
            t.clicks += w.clicks;
            t.conversions += w.conversions;
            t.spend_micros += w.spend_micros;
            t.revenue_micros += w.revenue_micros;
            t
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowTotals {
    pub campaign: String,
    pub channel: String,
    pub window_start: i64,
    #[serde(flatten)]
    pub totals: Totals,
    /// Distinct users with an impression in the window, exactly.
    #[serde(default)]
    pub reach: u64,
}

/// What the `--truth` file holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TruthFile {
    pub window_ms: i64,
    pub events: u64,
    /// Malformed events: exactly these reach `logs.dlq`.
    pub invalid: u64,
    /// Distinct users with an impression over the whole stream, exactly.
    #[serde(default)]
    pub reach: u64,
    pub windows: Vec<WindowTotals>,
}

impl TruthFile {
    /// The totals keyed by (campaign, channel, window start), for comparing
    /// with panes merged by the same key.
    pub fn by_window(&self) -> BTreeMap<(String, String, i64), Totals> {
        by_window(&self.windows)
    }

    /// The exact reach of each window, keyed as [`TruthFile::by_window`].
    pub fn reach_by_window(&self) -> BTreeMap<(String, String, i64), u64> {
        self.windows.iter().map(|w| (w.key(), w.reach)).collect()
    }
}

/// Window totals keyed by (campaign, channel, window start). The
/// dashboard's `/api/windows` items read as `WindowTotals` too, so both
/// sides of a comparison come out of here.
pub fn by_window(windows: &[WindowTotals]) -> BTreeMap<(String, String, i64), Totals> {
    windows.iter().map(|w| (w.key(), w.totals)).collect()
}

impl WindowTotals {
    fn key(&self) -> (String, String, i64) {
        (
            self.campaign.clone(),
            self.channel.clone(),
            self.window_start,
        )
    }
}

pub struct Truth {
    window_ms: i64,
    events: u64,
    invalid: u64,
    totals: BTreeMap<(usize, usize, i64), Totals>,
    /// The users with an impression, per window and in all.
    reached: BTreeMap<(usize, usize, i64), HashSet<u64>>,
    reached_all: HashSet<u64>,
}

impl Truth {
    pub fn new(window_ms: i64) -> Truth {
        Truth {
            window_ms,
            events: 0,
            invalid: 0,
            totals: BTreeMap::new(),
            reached: BTreeMap::new(),
            reached_all: HashSet::new(),
        }
    }

    pub fn add(&mut self, event: &Event) {
        self.events += 1;
        let Some(c) = event.counted else {
            self.invalid += 1;
            return;
        };
        let window = event.ts_ms.div_euclid(self.window_ms) * self.window_ms;
        let t = self
            .totals
            .entry((c.campaign, c.channel, window))
            .or_default();
        match c.kind {
            0 => {
                t.impressions += 1;
                self.reached
                    .entry((c.campaign, c.channel, window))
                    .or_default()
                    .insert(c.user);
                self.reached_all.insert(c.user);
            }
            1 => t.clicks += 1,
            _ => t.conversions += 1,
        }
        t.spend_micros += c.cost_micros;
        t.revenue_micros += c.revenue_micros;
    }

    pub fn file(&self, profile: &Profile) -> TruthFile {
        TruthFile {
            window_ms: self.window_ms,
            events: self.events,
            invalid: self.invalid,
            reach: self.reached_all.len() as u64,
            windows: self
                .totals
                .iter()
                .map(
                    |(&(campaign, channel, window_start), &totals)| WindowTotals {
                        campaign: profile.campaigns[campaign].clone(),
                        channel: profile.channels[channel].clone(),
                        window_start,
                        totals,
                        reach: self
                            .reached
                            .get(&(campaign, channel, window_start))
                            .map_or(0, |users| users.len() as u64),
                    },
                )
                .collect(),
        }
    }
}
