//! Panes into windows, exactly (docs/architecture.md, "Exactness").
//!
//! A pane's identity is (results partition, campaign, channel, window,
//! first offset, last offset). Panes of one key come from one input
//! partition, processed in offset order, and land in order in one results
//! partition; a restart or a version swap re-emits the panes of re-read
//! batches, which have the same offsets as before. So a pane is new exactly
//! when its first offset is past the last offset already counted for its
//! (window, partition): one number per window keeps the whole identity set,
//! which is what lets a day of windows fit in a few megabytes.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::reach::{Reach, ReachUnion};
use crate::{Counters, Pane};

/// Where a pane went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Added {
    /// Counted into the window `key`; `late` if it corrects the window with
    /// records the transform found late.
    Counted { late: bool, key: WindowKey },
    /// Already counted: a re-emitted pane.
    Duplicate,
    /// Older than the retention and not held: not kept. A consumer with a
    /// history restores the window ([`Merger::restore`]) and adds it again.
    Expired,
}

/// A window's key: start, campaign, channel.
pub type WindowKey = (i64, Arc<str>, Arc<str>);

#[derive(Debug, Clone)]
pub struct Window {
    pub campaign: Arc<str>,
    pub channel: Arc<str>,
    pub window_start: i64,
    pub window_end: i64,
    pub counters: Counters,
    /// The union of its panes' reach sketches: a pane counted twice
    /// changes nothing, and panes without one (formats 1 and 2) add nothing.
    pub reach: WindowReach,
    pub panes: u64,
    pub records: u64,
    /// Panes with late records: corrections to the window.
    pub late_panes: u64,
    /// The transform's windows it holds: 1, or a history's rollup's count.
    pub windows: u64,
    pub campaign_name: Option<Arc<str>>,
    pub target_cpa_micros: Option<i64>,
    pub daily_budget_micros: Option<i64>,
    pub flight: Option<(i64, i64)>,
    /// The results partition of its panes, and the last input offset
    /// counted from it: the pane-identity marks.
    counted: Vec<(i32, i64)>,
}

impl Window {
    /// An empty window of a key, with the marks it keeps.
    pub fn new(
        campaign: Arc<str>,
        channel: Arc<str>,
        window_start: i64,
        window_end: i64,
        marks: Vec<(i32, i64)>,
    ) -> Window {
        Window {
            campaign,
            channel,
            window_start,
            window_end,
            counters: Counters::default(),
            reach: WindowReach::default(),
            panes: 0,
            records: 0,
            late_panes: 0,
            windows: 1,
            campaign_name: None,
            target_cpa_micros: None,
            daily_budget_micros: None,
            flight: None,
            counted: marks,
        }
    }

    /// Per results partition, the last input offset counted.
    pub fn marks(&self) -> &[(i32, i64)] {
        &self.counted
    }

    pub fn key(&self) -> WindowKey {
        (
            self.window_start,
            self.campaign.clone(),
            self.channel.clone(),
        )
    }
}

/// Counters for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MergeStats {
    pub panes: u64,
    pub duplicates: u64,
    pub late_panes: u64,
    pub expired: u64,
    /// The records of the panes read, but for duplicates: counted, or
    /// expired on arrival.
    pub records: u64,
    /// The newest event time among the panes counted.
    pub newest_event_ms: i64,
}

/// How much history is kept: memory stays bounded whatever comes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Windows starting this long before the newest watermark (see
    /// `Watermark`) are dropped.
    pub span_ms: i64,
    /// At most this many windows; the oldest go first.
    pub max_windows: usize,
}

/// A window's reach: a union open to more panes, or packed into
/// DataSketches' compact bytes (exactly as long as its coupons) once the
/// window is done. A late pane opens it again.
#[derive(Debug, Clone)]
pub enum WindowReach {
    /// Boxed: a packed window is then two words.
    Open(Box<ReachUnion>),
    Packed(Box<[u8]>),
}

impl WindowReach {
    /// DataSketches' compact bytes of the union; `None` for a window no
    /// pane with a sketch reached.
    pub fn to_bytes(&self) -> Option<Vec<u8>> {
        match self {
            WindowReach::Open(union) if union.is_empty() => None,
            WindowReach::Open(union) => Some(union.to_reach().to_bytes()),
            WindowReach::Packed(bytes) => Some(bytes.to_vec()),
        }
    }
}

impl WindowReach {
    /// The sketch, and its DataSketches bytes; `None` for a window no pane
    /// with a sketch reached. A packed window's bytes are its own.
    pub fn sketch_and_bytes(&self) -> Option<(Reach, Vec<u8>)> {
        match self {
            WindowReach::Open(union) if union.is_empty() => None,
            WindowReach::Open(union) => {
                let reach = union.to_reach();
                let bytes = reach.to_bytes();
                Some((reach, bytes))
            }
            WindowReach::Packed(bytes) => Some((Reach::from_bytes(bytes).ok()?, bytes.to_vec())),
        }
    }
}

impl Default for WindowReach {
    fn default() -> WindowReach {
        WindowReach::Open(Box::default())
    }
}

impl WindowReach {
    pub fn add(&mut self, sketch: &Reach) {
        self.open().add(sketch);
    }

    fn open(&mut self) -> &mut ReachUnion {
        if let WindowReach::Packed(bytes) = self {
            let mut union = ReachUnion::default();
            if let Ok(reach) = Reach::from_bytes(bytes) {
                union.add(&reach);
            }
            *self = WindowReach::Open(Box::new(union));
        }
        match self {
            WindowReach::Open(union) => union,
            WindowReach::Packed(_) => unreachable!("opened above"),
        }
    }

    fn pack(&mut self) {
        if let WindowReach::Open(union) = self {
            *self = WindowReach::Packed(union.to_reach().to_bytes().into_boxed_slice());
        }
    }

    /// Adds this window's users to a range's.
    pub fn add_to(&self, range: &mut ReachUnion) {
        match self {
            WindowReach::Open(union) => range.add_union(union),
            WindowReach::Packed(bytes) => {
                if let Ok(reach) = Reach::from_bytes(bytes) {
                    range.add(&reach);
                }
            }
        }
    }

    pub fn estimate(&self) -> u64 {
        match self {
            WindowReach::Open(union) => union.estimate(),
            WindowReach::Packed(bytes) => Reach::from_bytes(bytes).map_or(0, |r| r.estimate()),
        }
    }
}

/// Windows are packed once this far behind the watermark beyond the lateness.
const PACK_AFTER_MS: i64 = 60_000;

/// Panes a watermark looks back over.
const WATERMARK_PANES: usize = 16;

/// A results partition's event-time watermark, which finality and retention
/// go by. It is the second newest event time among the partition's latest
/// panes, never going back: so no single pane — one event with a clock
/// decades ahead — can finalize the partition's windows or push the
/// history out of the retention. A stream that truly moves on moves it
/// with its next pane.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct Watermark {
    recent: VecDeque<i64>,
    value: Option<i64>,
}

/// What a merge knows beside its windows, kept with a history so that a
/// restart goes on with the same finality, horizon and counts.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct MergeState {
    watermarks: BTreeMap<i32, Watermark>,
    pub stats: MergeStats,
}

impl Watermark {
    fn observe(&mut self, event_ts_ms: i64) -> Option<i64> {
        if self.recent.len() == WATERMARK_PANES {
            self.recent.pop_front();
        }
        self.recent.push_back(event_ts_ms);
        let (mut first, mut second) = (i64::MIN, None);
        for &t in &self.recent {
            if t > first {
                second = (first != i64::MIN).then_some(first);
                first = t;
            } else if second.is_none_or(|s| t > s) {
                second = Some(t);
            }
        }
        if let Some(second) = second {
            self.value = Some(self.value.map_or(second, |v| v.max(second)));
        }
        self.value
    }
}

pub struct Merger {
    lateness_ms: i64,
    retention: Retention,
    windows: BTreeMap<WindowKey, Window>,
    /// Per results partition.
    watermarks: HashMap<i32, Watermark>,
    names: HashSet<Arc<str>>,
    /// The newest watermark: windows starting a retention span before it go.
    newest: i64,
    /// Windows starting before this have packed sketches.
    packed_until: i64,
    /// Whether `add` drops what falls out of the retention itself, or
    /// leaves that to [`Merger::expire`] (a consumer that first stores it).
    expires_on_add: bool,
    pub stats: MergeStats,
}

impl Merger {
    pub fn new(lateness_ms: i64, retention: Retention) -> Merger {
        Merger {
            lateness_ms,
            retention,
            windows: BTreeMap::new(),
            watermarks: HashMap::new(),
            names: HashSet::new(),
            newest: i64::MIN,
            packed_until: i64::MIN,
            expires_on_add: true,
            stats: MergeStats::default(),
        }
    }

    /// A merge whose windows stay until [`Merger::expire`] is called, going
    /// on from `state`: a consumer that stores windows before they go.
    pub fn resumed(lateness_ms: i64, retention: Retention, state: MergeState) -> Merger {
        let mut merger = Merger::new(lateness_ms, retention);
        merger.expires_on_add = false;
        merger.newest = state
            .watermarks
            .values()
            .filter_map(|w| w.value)
            .max()
            .unwrap_or(i64::MIN);
        merger.watermarks = state.watermarks.into_iter().collect();
        merger.stats = state.stats;
        merger
    }

    /// What [`Merger::resumed`] goes on from.
    pub fn state(&self) -> MergeState {
        MergeState {
            watermarks: self
                .watermarks
                .iter()
                .map(|(&p, w)| (p, w.clone()))
                .collect(),
            stats: self.stats,
        }
    }

    /// Holds a window again (one a history kept), so that its panes to
    /// come are merged into it and its marks keep re-emitted ones out.
    pub fn restore(&mut self, mut window: Window) {
        window.campaign = intern(&mut self.names, &window.campaign);
        window.channel = intern(&mut self.names, &window.channel);
        self.windows.insert(window.key(), window);
    }

    /// Whether a pane's window is neither held nor within the retention:
    /// a consumer with a history restores it before adding the pane.
    pub fn is_cold(&self, pane: &Pane) -> bool {
        pane.window_start < self.horizon()
            && !self.windows.contains_key(&(
                pane.window_start,
                Arc::from(pane.campaign.as_str()),
                Arc::from(pane.channel.as_str()),
            ))
    }

    pub fn add(&mut self, partition: i32, pane: &Pane) -> Added {
        self.stats.panes += 1;
        if self.expires_on_add && pane.window_start < self.horizon() || self.is_cold(pane) {
            self.stats.expired += 1;
            self.stats.records += pane.records;
            return Added::Expired;
        }
        let key = (
            pane.window_start,
            intern(&mut self.names, &pane.campaign),
            intern(&mut self.names, &pane.channel),
        );
        // Lateness is the transform's call, per record and exact; the
        // dashboard's own watermark only decides when a window is final
        // (panes of one batch arrive one by one, so a watermark moved by
        // one of them would make its siblings look late).
        let late = pane.late_records > 0;
        let window = self.windows.entry(key.clone()).or_insert_with_key(|key| {
            Window::new(
                key.1.clone(),
                key.2.clone(),
                pane.window_start,
                pane.window_end,
                Vec::new(),
            )
        });
        let counted = match window.counted.iter_mut().find(|(p, _)| *p == partition) {
            Some((_, last)) => last,
            None => {
                window.counted.push((partition, i64::MIN));
                &mut window.counted.last_mut().expect("just pushed").1
            }
        };
        if pane.first_offset <= *counted {
            self.stats.duplicates += 1;
            return Added::Duplicate;
        }
        *counted = pane.last_offset;
        self.stats.records += pane.records;
        self.stats.newest_event_ms = self.stats.newest_event_ms.max(pane.max_event_ts_ms);
        window.counters.add(&pane.counters());
        if let Some(sketch) = &pane.reach_sketch {
            window.reach.add(sketch);
            // A correction to a window already packed packs it again.
            if pane.window_start < self.packed_until {
                window.reach.pack();
            }
        }
        window.panes += 1;
        window.records += pane.records;
        window.late_panes += u64::from(late);
        // The newest pane says what the transform's environment says now.
        if let Some(name) = &pane.campaign_name {
            window.campaign_name = Some(intern(&mut self.names, name));
        }
        window.target_cpa_micros = pane.target_cpa_micros.or(window.target_cpa_micros);
        window.daily_budget_micros = pane.daily_budget_micros.or(window.daily_budget_micros);
        if let (Some(start), Some(end)) = (pane.flight_start_ms, pane.flight_end_ms) {
            window.flight = Some((start, end));
        }
        self.stats.late_panes += u64::from(late);
        let watermark = self
            .watermarks
            .entry(partition)
            .or_default()
            .observe(pane.max_event_ts_ms);
        let newer = watermark.is_some_and(|w| w > self.newest);
        if newer || self.windows.len() > self.retention.max_windows {
            self.newest = self.newest.max(watermark.unwrap_or(i64::MIN));
            if self.expires_on_add {
                self.expire();
            }
            self.pack();
        }
        Added::Counted { late, key }
    }

    pub fn get(&self, key: &WindowKey) -> Option<&Window> {
        self.windows.get(key)
    }

    /// A window is final once its partition's watermark, less the allowed
    /// lateness, has passed its end.
    fn is_final(&self, partition: i32, window_end: i64) -> bool {
        self.watermarks
            .get(&partition)
            .and_then(|w| w.value)
            .is_some_and(|w| w.saturating_sub(self.lateness_ms) >= window_end)
    }

    /// A window of no known partition (a rollup of a history) is final
    /// once every partition's watermark has passed it.
    pub fn window_is_final(&self, window: &Window) -> bool {
        if window.counted.is_empty() {
            return !self.watermarks.is_empty()
                && self
                    .watermarks
                    .keys()
                    .all(|&p| self.is_final(p, window.window_end));
        }
        window
            .counted
            .iter()
            .all(|&(p, _)| self.is_final(p, window.window_end))
    }

    /// The windows' size, as the newest window held says.
    pub fn window_size(&self) -> Option<i64> {
        self.windows
            .values()
            .next_back()
            .map(|w| w.window_end - w.window_start)
    }

    /// The newest watermark: the merge's event-time "now", once a
    /// partition has one.
    pub fn watermark(&self) -> Option<i64> {
        (self.newest != i64::MIN).then_some(self.newest)
    }

    /// Packs the sketches of windows the newest watermark has passed by
    /// the lateness and a minute more: they are done nearly always (a
    /// pane that still comes opens its window and packs it again), and a
    /// packed union takes a third of the memory.
    fn pack(&mut self) {
        let until = self.newest.saturating_sub(self.lateness_ms + PACK_AFTER_MS);
        if until <= self.packed_until {
            return;
        }
        let from = (self.packed_until, Arc::from(""), Arc::from(""));
        let to = (until, Arc::from(""), Arc::from(""));
        for window in self.windows.range_mut(from..to).map(|(_, w)| w) {
            window.reach.pack();
        }
        self.packed_until = until;
    }

    fn horizon(&self) -> i64 {
        self.newest.saturating_sub(self.retention.span_ms)
    }

    /// Drops the windows out of the retention.
    pub fn expire(&mut self) {
        let horizon = self.horizon();
        while let Some(entry) = self.windows.first_entry() {
            if entry.key().0 >= horizon {
                break;
            }
            entry.remove();
        }
        while self.windows.len() > self.retention.max_windows {
            self.windows.pop_first();
        }
        // Names of dropped windows go too, however many distinct ones come.
        if self.names.len() > 2 * self.windows.len() + 64 {
            self.names = self
                .windows
                .values()
                .flat_map(|w| {
                    [
                        Some(&w.campaign),
                        Some(&w.channel),
                        w.campaign_name.as_ref(),
                    ]
                })
                .flatten()
                .cloned()
                .collect();
        }
    }

    /// Windows in order of start, then campaign, then channel.
    pub fn windows(&self) -> impl DoubleEndedIterator<Item = &Window> {
        self.windows.values()
    }

    pub fn len(&self) -> usize {
        self.windows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.windows.is_empty()
    }
}

fn intern(names: &mut HashSet<Arc<str>>, name: &str) -> Arc<str> {
    match names.get(name) {
        Some(n) => n.clone(),
        None => {
            let n: Arc<str> = Arc::from(name);
            names.insert(n.clone());
            n
        }
    }
}
