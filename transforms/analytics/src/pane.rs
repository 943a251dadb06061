//! Window panes: what one input batch contributed to one (campaign, channel,
//! window). See docs/architecture.md, "Exactness": a transform keeps no contribution
//! un-emitted across batches, so a re-read batch re-emits the same panes and
//! the consumer keeps each once.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::event::Kind;
use crate::money::{ratio, to_units};
use crate::reach::{Reach, User};
use crate::time::{format_utc, window_start};

/// Additive counters of a window; panes and merged windows both carry them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    pub impressions: u64,
    pub clicks: u64,
    pub conversions: u64,
    pub spend_micros: i64,
    #[serde(default)]
    pub revenue_micros: i64,
    pub late_records: u64,
}

impl Counters {
    pub fn add(&mut self, other: &Counters) {
        self.impressions += other.impressions;
        self.clicks += other.clicks;
        self.conversions += other.conversions;
        self.spend_micros += other.spend_micros;
        self.revenue_micros += other.revenue_micros;
        self.late_records += other.late_records;
    }

    pub fn count(&mut self, kind: Kind, cost_micros: i64, revenue_micros: i64) {
        match kind {
            Kind::Impression => self.impressions += 1,
            Kind::Click => self.clicks += 1,
            Kind::Conversion => self.conversions += 1,
        }
        self.spend_micros += cost_micros;
        self.revenue_micros += revenue_micros;
    }

    pub fn spend(&self) -> f64 {
        to_units(self.spend_micros)
    }
    pub fn cpc(&self) -> f64 {
        ratio(self.spend(), self.clicks as f64)
    }
    pub fn cpa(&self) -> f64 {
        ratio(self.spend(), self.conversions as f64)
    }
    pub fn ctr(&self) -> f64 {
        ratio(self.clicks as f64, self.impressions as f64)
    }
    pub fn cvr(&self) -> f64 {
        ratio(self.conversions as f64, self.clicks as f64)
    }
    /// Cost per thousand impressions.
    pub fn cpm(&self) -> f64 {
        ratio(self.spend() * 1000.0, self.impressions as f64)
    }
    pub fn revenue(&self) -> f64 {
        to_units(self.revenue_micros)
    }
    /// Return on ad spend: revenue per unit spent.
    pub fn roas(&self) -> f64 {
        ratio(self.revenue(), self.spend())
    }
    /// Average order value: revenue per conversion.
    pub fn aov(&self) -> f64 {
        ratio(self.revenue(), self.conversions as f64)
    }
}

/// One `results` record.
///
/// Formats change only by adding fields, so a reader that ignores fields it
/// does not know reads every format, and panes of several formats merge.
/// Format 1 has no `format` field; format 2 adds `format` and `CPM`;
/// format 3 adds `ROAS`, `AOV`, `reach` and `reach_sketch`. Revenue is a
/// counter like spend, in every format (absent, it reads as 0).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pane {
    #[serde(default = "format_1", skip_serializing_if = "is_format_1")]
    pub format: u32,
    pub campaign: String,
    pub channel: String,
    /// Window start, `2025-08-17T14:46:00Z`.
    pub window: String,
    pub window_start: i64,
    pub window_end: i64,
    pub impressions: u64,
    pub clicks: u64,
    pub conversions: u64,
    pub spend: f64,
    pub spend_micros: i64,
    #[serde(default)]
    pub revenue: f64,
    #[serde(default)]
    pub revenue_micros: i64,
    #[serde(rename = "CPC")]
    pub cpc: f64,
    #[serde(rename = "CPA")]
    pub cpa: f64,
    #[serde(rename = "CTR")]
    pub ctr: f64,
    #[serde(rename = "CVR")]
    pub cvr: f64,
    /// Cost per thousand impressions; format 2 on.
    #[serde(rename = "CPM", default, skip_serializing_if = "Option::is_none")]
    pub cpm: Option<f64>,
    /// Return on ad spend and average order value; format 3 on.
    #[serde(rename = "ROAS", default, skip_serializing_if = "Option::is_none")]
    pub roas: Option<f64>,
    #[serde(rename = "AOV", default, skip_serializing_if = "Option::is_none")]
    pub aov: Option<f64>,
    /// The distinct users with an impression, estimated, and their sketch
    /// (see [`crate::reach`]); format 3 on. Reach over several panes is the
    /// union of their sketches, never a sum.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reach: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reach_sketch: Option<Reach>,
    /// Offsets of the first and last input record counted here: with the
    /// results partition, campaign, channel and window, the pane's identity.
    pub first_offset: i64,
    pub last_offset: i64,
    pub records: u64,
    pub max_event_ts_ms: i64,
    pub late_records: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub campaign_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_cpa_micros: Option<i64>,
    /// The campaign's daily budget and flight, from the transform's
    /// environment, for pacing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daily_budget_micros: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flight_start_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flight_end_ms: Option<i64>,
}

fn format_1() -> u32 {
    1
}

fn is_format_1(format: &u32) -> bool {
    *format == 1
}

impl Pane {
    pub fn counters(&self) -> Counters {
        Counters {
            impressions: self.impressions,
            clicks: self.clicks,
            conversions: self.conversions,
            spend_micros: self.spend_micros,
            revenue_micros: self.revenue_micros,
            late_records: self.late_records,
        }
    }

    /// `campaign|channel`, the key of its `results` record.
    pub fn key(&self) -> String {
        format!("{}|{}", self.campaign, self.channel)
    }
}

/// What one record adds to a pane.
#[derive(Debug, Clone, Copy)]
pub struct Contribution<'a> {
    pub offset: i64,
    pub campaign: &'a str,
    pub channel: &'a str,
    pub kind: Kind,
    pub ts_ms: i64,
    pub cost_micros: i64,
    pub revenue_micros: i64,
    /// Counted into reach when the record is an impression.
    pub user_id: &'a str,
}

#[derive(Debug, Clone)]
struct Open {
    window_start: i64,
    counters: Counters,
    /// Format 3 on: the users of the pane's impressions.
    reach: Option<Reach>,
    first_offset: i64,
    last_offset: i64,
    records: u64,
    max_event_ts_ms: i64,
}

/// The open panes of one key: `key` is `campaign|channel`, split at
/// `campaign_len` (a campaign id may itself hold a `|`).
#[derive(Debug)]
struct OpenKey {
    campaign_len: usize,
    /// Its watermark slot, hashed when the key is opened rather than per record.
    slot: usize,
    panes: Vec<Open>,
}

/// Lateness watermarks: the largest event time seen, per slot of a fixed
/// table that keys hash into. A record is late once its window ended more
/// than the allowed lateness before its slot's watermark. The table's size
/// is fixed, so the state kept between batches is the same for 10 keys or
/// a million; keys sharing a slot share the larger watermark, which can
/// only mark a record late sooner, and late records are still counted.
pub const WATERMARK_SLOTS: usize = 4096;

/// Open panes beyond about this many bytes are emitted before the batch
/// ends, so a batch of many keys or windows fits in a transform's memory.
/// A re-read batch is cut at the same records, so its panes keep their
/// identities; see [`PaneBuilder::must_flush`].
pub const MAX_OPEN_PANE_BYTES: usize = 192 << 10;

/// Heap bytes counted per open key besides its text, and per open pane:
/// allocations, map nodes and vector slack, generously.
const KEY_OVERHEAD_BYTES: usize = 128;
const PANE_OVERHEAD_BYTES: usize = 2 * std::mem::size_of::<Open>();

/// Collects the panes of the current batch.
#[derive(Debug)]
pub struct PaneBuilder {
    window_ms: i64,
    lateness_ms: i64,
    format: u32,
    watermarks: Box<[i64]>,
    open: BTreeMap<String, OpenKey>,
    open_bytes: usize,
    key_buf: String,
}

impl PaneBuilder {
    pub fn new(config: &Config) -> PaneBuilder {
        PaneBuilder {
            window_ms: config.window_ms,
            lateness_ms: config.lateness_ms,
            format: config.pane_format,
            watermarks: vec![i64::MIN; WATERMARK_SLOTS].into_boxed_slice(),
            open: BTreeMap::new(),
            open_bytes: 0,
            key_buf: String::new(),
        }
    }

    pub fn add(&mut self, c: Contribution<'_>) {
        self.key_buf.clear();
        self.key_buf.push_str(c.campaign);
        self.key_buf.push('|');
        self.key_buf.push_str(c.channel);
        let key = match self.open.get_mut(self.key_buf.as_str()) {
            Some(key) => key,
            None => {
                self.open_bytes += self.key_buf.len() + KEY_OVERHEAD_BYTES;
                self.open
                    .entry(self.key_buf.clone())
                    .or_insert_with(|| OpenKey {
                        campaign_len: c.campaign.len(),
                        slot: slot(&self.key_buf),
                        panes: Vec::new(),
                    })
            }
        };
        let watermark = &mut self.watermarks[key.slot];
        let start = window_start(c.ts_ms, self.window_ms);
        let late = *watermark != i64::MIN
            && start + self.window_ms <= watermark.saturating_sub(self.lateness_ms);
        *watermark = (*watermark).max(c.ts_ms);
        let pane = match key.panes.iter_mut().position(|p| p.window_start == start) {
            Some(i) => &mut key.panes[i],
            None => {
                self.open_bytes += PANE_OVERHEAD_BYTES;
                key.panes.push(Open {
                    window_start: start,
                    counters: Counters::default(),
                    reach: None,
                    first_offset: c.offset,
                    last_offset: c.offset,
                    records: 0,
                    max_event_ts_ms: c.ts_ms,
                });
                key.panes.last_mut().expect("just pushed")
            }
        };
        pane.counters.count(c.kind, c.cost_micros, c.revenue_micros);
        if self.format >= 3 && c.kind == Kind::Impression && !c.user_id.is_empty() {
            let reach = pane.reach.get_or_insert_with(Reach::default);
            let before = reach.size();
            reach.add(User::new(c.user_id));
            // A sketch grows from a few coupons to 8 KiB: it counts toward the flush.
            self.open_bytes = (self.open_bytes + reach.size()).saturating_sub(before);
        }
        pane.counters.late_records += u64::from(late);
        pane.records += 1;
        pane.first_offset = pane.first_offset.min(c.offset);
        pane.last_offset = pane.last_offset.max(c.offset);
        pane.max_event_ts_ms = pane.max_event_ts_ms.max(c.ts_ms);
    }

    /// Whether the open panes should be emitted now, before the batch
    /// ends: they hold more than [`MAX_OPEN_PANE_BYTES`]. The answer
    /// depends only on the records added since the last emit, so a re-read
    /// batch is cut at the same records.
    pub fn must_flush(&self) -> bool {
        self.open_bytes > MAX_OPEN_PANE_BYTES
    }

    /// Emits every open pane, ordered by key and window: at the end of a
    /// batch, or within it when [`PaneBuilder::must_flush`] says so.
    pub fn flush<E>(
        &mut self,
        config: &Config,
        mut emit: impl FnMut(Pane) -> Result<(), E>,
    ) -> Result<(), E> {
        self.open_bytes = 0;
        for (key, mut open) in std::mem::take(&mut self.open) {
            open.panes.sort_by_key(|p| p.window_start);
            let (campaign, channel) = (&key[..open.campaign_len], &key[open.campaign_len + 1..]);
            let meta = config.campaigns.get(campaign);
            let flight = meta.and_then(|m| m.flight);
            for open in open.panes {
                let c = open.counters;
                emit(Pane {
                    format: self.format,
                    campaign: campaign.to_string(),
                    channel: channel.to_string(),
                    window: format_utc(open.window_start),
                    window_start: open.window_start,
                    window_end: open.window_start + self.window_ms,
                    impressions: c.impressions,
                    clicks: c.clicks,
                    conversions: c.conversions,
                    spend: c.spend(),
                    spend_micros: c.spend_micros,
                    revenue: c.revenue(),
                    revenue_micros: c.revenue_micros,
                    cpc: c.cpc(),
                    cpa: c.cpa(),
                    ctr: c.ctr(),
                    cvr: c.cvr(),
                    cpm: (self.format >= 2).then(|| c.cpm()),
                    roas: (self.format >= 3).then(|| c.roas()),
                    aov: (self.format >= 3).then(|| c.aov()),
                    reach: (self.format >= 3)
                        .then(|| open.reach.as_ref().map_or(0, Reach::estimate)),
                    reach_sketch: (self.format >= 3).then(|| open.reach.unwrap_or_default()),
                    first_offset: open.first_offset,
                    last_offset: open.last_offset,
                    records: open.records,
                    max_event_ts_ms: open.max_event_ts_ms,
                    late_records: c.late_records,
                    campaign_name: meta.and_then(|m| m.name.clone()),
                    target_cpa_micros: meta.and_then(|m| m.target_cpa_micros),
                    daily_budget_micros: meta.and_then(|m| m.daily_budget_micros),
                    flight_start_ms: flight.map(|f| f.0),
                    flight_end_ms: flight.map(|f| f.1),
                })?;
            }
        }
        Ok(())
    }

    /// [`PaneBuilder::flush`] into a vector.
    pub fn finish_batch(&mut self, config: &Config) -> Vec<Pane> {
        let mut panes = Vec::new();
        let Ok(()) = self.flush(config, |pane| {
            panes.push(pane);
            Ok::<(), std::convert::Infallible>(())
        });
        panes
    }
}

/// A key's watermark slot: FNV-1a, the same on every host and run.
fn slot(key: &str) -> usize {
    let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    (hash % WATERMARK_SLOTS as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add(b: &mut PaneBuilder, offset: i64, channel: &str, kind: Kind, ts_ms: i64, cost: i64) {
        b.add(Contribution {
            offset,
            campaign: "c",
            channel,
            kind,
            ts_ms,
            cost_micros: cost,
            revenue_micros: 0,
            user_id: "u",
        });
    }

    #[test]
    fn one_pane_per_key_and_window_per_batch() {
        let config = Config::default();
        let mut b = PaneBuilder::new(&config);
        add(&mut b, 10, "email", Kind::Click, 61_000, 1_500_000);
        add(&mut b, 11, "email", Kind::Impression, 1_000, 0);
        add(&mut b, 12, "email", Kind::Conversion, 62_000, 5_000_000);
        add(&mut b, 13, "tiktok", Kind::Click, 62_000, 700_000);
        let panes = b.finish_batch(&config);
        let summary: Vec<_> = panes
            .iter()
            .map(|p| {
                (
                    p.channel.as_str(),
                    p.window_start,
                    p.records,
                    p.first_offset,
                    p.last_offset,
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("email", 0, 1, 11, 11),
                ("email", 60_000, 2, 10, 12),
                ("tiktok", 60_000, 1, 13, 13)
            ]
        );
        let p = &panes[1];
        assert_eq!((p.clicks, p.conversions, p.spend_micros), (1, 1, 6_500_000));
        assert_eq!(p.cpa, 6.5);
        assert_eq!(p.cvr, 1.0);
        assert_eq!(p.ctr, 0.0, "no impressions: a zero denominator gives 0");
        assert_eq!(p.window, "1970-01-01T00:01:00Z");
        assert!(
            b.finish_batch(&config).is_empty(),
            "nothing is kept across batches"
        );
    }

    #[test]
    fn late_records_are_counted_and_marked() {
        let config = Config::from_vars([("ALLOWED_LATENESS", "5s")]).unwrap();
        let mut b = PaneBuilder::new(&config);
        add(&mut b, 0, "email", Kind::Click, 59_000, 1);
        add(&mut b, 1, "email", Kind::Click, 64_000, 1);
        // Window [0, 60s) closes once the key's time passes 65s.
        add(&mut b, 2, "email", Kind::Click, 30_000, 1);
        add(&mut b, 3, "email", Kind::Click, 66_000, 1);
        add(&mut b, 4, "email", Kind::Click, 30_000, 1);
        // Another key's time does not close this key's windows.
        add(&mut b, 5, "tiktok", Kind::Click, 1_000, 1);
        let panes = b.finish_batch(&config);
        let late: Vec<_> = panes
            .iter()
            .map(|p| (p.channel.as_str(), p.window_start, p.clicks, p.late_records))
            .collect();
        assert_eq!(
            late,
            [
                ("email", 0, 3, 1),
                ("email", 60_000, 2, 0),
                ("tiktok", 0, 1, 0)
            ]
        );
    }

    /// Every pane of a batch of `keys` distinct keys (each record of one
    /// shared key `c|email` too), flushing whenever the builder asks.
    fn run_batch(config: &Config, keys: i64) -> (Vec<Pane>, usize) {
        let mut b = PaneBuilder::new(config);
        let mut panes = Vec::new();
        let mut flushes = 0;
        for i in 0..keys {
            let campaign = format!("campaign_number_{i}");
            for (offset, campaign) in [(2 * i, campaign.as_str()), (2 * i + 1, "c")] {
                b.add(Contribution {
                    offset,
                    campaign,
                    channel: "email",
                    kind: Kind::Click,
                    ts_ms: 1_000,
                    cost_micros: 1,
                    revenue_micros: 0,
                    user_id: "u",
                });
            }
            assert!(
                b.open_bytes
                    <= MAX_OPEN_PANE_BYTES + 2 * (KEY_OVERHEAD_BYTES + 64 + PANE_OVERHEAD_BYTES)
            );
            if b.must_flush() {
                flushes += 1;
                b.flush(config, |p| {
                    panes.push(p);
                    Ok::<(), ()>(())
                })
                .unwrap();
            }
        }
        panes.extend(b.finish_batch(config));
        (panes, flushes)
    }

    #[test]
    fn a_batch_of_many_keys_is_emitted_in_bounded_parts_cut_the_same_on_a_rerun() {
        let config = Config::default();
        let (panes, flushes) = run_batch(&config, 20_000);
        assert!(flushes >= 10, "{flushes} flushes");
        let clicks: u64 = panes.iter().map(|p| p.clicks).sum();
        assert_eq!(clicks, 40_000);
        assert_eq!(
            run_batch(&config, 20_000).0,
            panes,
            "a rerun cuts at the same records"
        );
        // The shared key's window got one pane per part, with disjoint,
        // increasing offsets: the consumer's identity rule keeps them all.
        let shared: Vec<(i64, i64)> = panes
            .iter()
            .filter(|p| p.campaign == "c")
            .map(|p| (p.first_offset, p.last_offset))
            .collect();
        assert_eq!(shared.len(), flushes + 1);
        assert!(shared.windows(2).all(|w| w[0].1 < w[1].0), "{shared:?}");
        assert_eq!(shared[0].0, 1);
        assert_eq!(shared.last().unwrap().1, 39_999);
    }

    #[test]
    fn lateness_state_is_a_fixed_table_whatever_the_keys() {
        let config = Config::default();
        let mut b = PaneBuilder::new(&config);
        for i in 0..100_000i64 {
            b.add(Contribution {
                offset: i,
                campaign: &format!("k{i}"),
                channel: "email",
                kind: Kind::Impression,
                ts_ms: 1_000 * i,
                cost_micros: 0,
                revenue_micros: 0,
                user_id: "u",
            });
            if b.must_flush() {
                b.flush(&config, |_| Ok::<(), ()>(())).unwrap();
            }
        }
        b.finish_batch(&config);
        assert!(b.open.is_empty() && b.open_bytes == 0);
        assert_eq!(b.watermarks.len(), WATERMARK_SLOTS);
        assert!(b.watermarks.iter().filter(|&&w| w != i64::MIN).count() > WATERMARK_SLOTS * 9 / 10);
    }

    #[test]
    fn panes_roundtrip_through_json_with_the_seed_fields() {
        let config =
            Config::from_vars([("CAMPAIGN_C_TARGET_CPA", "4"), ("PANE_FORMAT", "1")]).unwrap();
        let mut b = PaneBuilder::new(&config);
        add(&mut b, 0, "email", Kind::Conversion, 0, 5_000_000);
        let pane = b.finish_batch(&config).remove(0);
        let json = serde_json::to_value(&pane).unwrap();
        for field in [
            "campaign",
            "channel",
            "window",
            "clicks",
            "conversions",
            "spend",
            "CPC",
            "CPA",
            "CTR",
            "CVR",
        ] {
            assert!(json.get(field).is_some(), "{field} missing from {json}");
        }
        assert_eq!(json["target_cpa_micros"], 4_000_000);
        assert!(json.get("format").is_none() && json.get("CPM").is_none());
        let back: Pane = serde_json::from_value(json).unwrap();
        assert_eq!(back, pane);
    }

    #[test]
    fn format_2_adds_fields_and_both_formats_read_back() {
        let v2 = Config::from_vars([("PANE_FORMAT", "2")]).unwrap();
        let mut b = PaneBuilder::new(&v2);
        add(&mut b, 0, "email", Kind::Impression, 0, 0);
        add(&mut b, 1, "email", Kind::Click, 0, 2_500_000);
        let pane = b.finish_batch(&v2).remove(0);
        let json = serde_json::to_value(&pane).unwrap();
        assert_eq!(json["format"], 2);
        assert_eq!(json["CPM"], 2500.0);
        assert_eq!(serde_json::from_value::<Pane>(json).unwrap(), pane);

        // Format 1 is format 2 without the new fields.
        let v1_config = Config::from_vars([("PANE_FORMAT", "1")]).unwrap();
        let mut b = PaneBuilder::new(&v1_config);
        add(&mut b, 0, "email", Kind::Impression, 0, 0);
        add(&mut b, 1, "email", Kind::Click, 0, 2_500_000);
        let v1 = b.finish_batch(&v1_config).remove(0);
        assert_eq!((v1.format, v1.cpm), (1, None));
        assert_eq!(
            Pane {
                format: 1,
                cpm: None,
                ..pane.clone()
            },
            v1
        );
        assert_eq!(v1.counters(), pane.counters());
    }

    fn record(
        b: &mut PaneBuilder,
        offset: i64,
        kind: Kind,
        user_id: &str,
        cost: i64,
        revenue: i64,
    ) {
        b.add(Contribution {
            offset,
            campaign: "c",
            channel: "email",
            kind,
            ts_ms: 1_000,
            cost_micros: cost,
            revenue_micros: revenue,
            user_id,
        });
    }

    #[test]
    fn format_3_adds_revenue_ratios_and_the_reach_of_impressions() {
        let config = Config::default();
        assert_eq!(config.pane_format, 3, "the latest format is the default");
        let mut b = PaneBuilder::new(&config);
        for (i, user) in ["ann", "bob", "ann", "cy"].into_iter().enumerate() {
            record(&mut b, i as i64, Kind::Impression, user, 0, 0);
        }
        // Clicks and conversions reach no one new: reach is of impressions.
        record(&mut b, 4, Kind::Click, "dee", 2_000_000, 0);
        record(&mut b, 5, Kind::Conversion, "dee", 3_000_000, 45_500_001);
        let pane = b.finish_batch(&config).remove(0);
        assert_eq!((pane.revenue_micros, pane.revenue), (45_500_001, 45.500001));
        assert_eq!(pane.roas, Some(45.500001 / 5.0));
        assert_eq!(pane.aov, Some(45.500001));
        assert_eq!(pane.reach, Some(3));
        assert_eq!(pane.reach_sketch.as_ref().unwrap().estimate(), 3);
        let json = serde_json::to_value(&pane).unwrap();
        assert_eq!(json["format"], 3);
        assert_eq!(json["reach"], 3);
        assert!(json["reach_sketch"].is_string());
        assert_eq!(serde_json::from_value::<Pane>(json).unwrap(), pane);

        // Older formats keep revenue, a counter, but carry no sketch.
        let v2 = Config::from_vars([("PANE_FORMAT", "2")]).unwrap();
        let mut b = PaneBuilder::new(&v2);
        record(&mut b, 0, Kind::Impression, "ann", 0, 0);
        record(&mut b, 1, Kind::Conversion, "ann", 1, 7);
        let old = b.finish_batch(&v2).remove(0);
        assert_eq!((old.revenue_micros, old.reach, old.roas), (7, None, None));
        assert!(old.reach_sketch.is_none());
        // A pane written before revenue existed reads as no revenue.
        let mut json = serde_json::to_value(&old).unwrap();
        json.as_object_mut().unwrap().remove("revenue_micros");
        json.as_object_mut().unwrap().remove("revenue");
        assert_eq!(
            serde_json::from_value::<Pane>(json).unwrap().revenue_micros,
            0
        );
    }

    #[test]
    fn sketches_count_toward_the_flush() {
        // 64 keys and one window hold a few KiB besides their sketches:
        // only the sketches' growth can make the builder flush.
        let config = Config::default();
        let mut b = PaneBuilder::new(&config);
        let mut i = 0;
        while !b.must_flush() {
            b.add(Contribution {
                offset: i,
                campaign: &format!("c{}", i % 64),
                channel: "email",
                kind: Kind::Impression,
                ts_ms: 1_000,
                cost_micros: 0,
                revenue_micros: 0,
                user_id: &format!("user-{i}"),
            });
            i += 1;
            assert!(i < 64 * 5_000, "no flush after {i} users");
        }
        let panes = b.finish_batch(&config);
        assert_eq!(panes.len(), 64);
        let reach: u64 = panes.iter().map(|p| p.reach.unwrap()).sum();
        let error = (reach as f64 - i as f64).abs() / i as f64;
        assert!(error < 0.02, "{reach} of {i}");
    }
}
