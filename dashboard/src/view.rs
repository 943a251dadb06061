//! What the API and the page see: merged windows with their ratios, the
//! totals over a range, and the filters that choose them.

use analytics::money::to_units;
use analytics::time::{format_utc, parse_timestamp_ms};
use analytics::Counters;
use serde::{Deserialize, Serialize};

use crate::merge::{Merger, Window};

/// `?campaign=&channel=&from=&to=`; `from`/`to` are window starts, in
/// milliseconds since the epoch or as timestamps (naive = UTC).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Filter {
    pub campaign: Option<String>,
    pub channel: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
}

/// A parsed [`Filter`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    pub campaign: Option<String>,
    pub channel: Option<String>,
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
}

impl Filter {
    pub fn parse(&self) -> Result<Selection, String> {
        let time = |name: &str, v: &Option<String>| -> Result<Option<i64>, String> {
            match v.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
                None => Ok(None),
                Some(v) => v
                    .parse::<i64>()
                    .ok()
                    .or_else(|| parse_timestamp_ms(v))
                    .map(Some)
                    .ok_or_else(|| {
                        format!("`{name}` must be milliseconds since the epoch or a timestamp, not `{v}`")
                    }),
            }
        };
        let name = |v: &Option<String>| v.clone().filter(|v| !v.is_empty());
        Ok(Selection {
            campaign: name(&self.campaign),
            channel: name(&self.channel),
            from_ms: time("from", &self.from)?,
            to_ms: time("to", &self.to)?,
        })
    }
}

impl Selection {
    pub fn matches(&self, w: &Window) -> bool {
        self.campaign.as_deref().is_none_or(|c| c == &*w.campaign)
            && self.channel.as_deref().is_none_or(|c| c == &*w.channel)
            && self.from_ms.is_none_or(|f| w.window_start >= f)
            && self.to_ms.is_none_or(|t| w.window_start <= t)
    }
}

/// Counters with the ratios the seed reports; ratios with a zero
/// denominator are 0.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Totals {
    pub impressions: u64,
    pub clicks: u64,
    pub conversions: u64,
    pub spend_micros: i64,
    pub spend: f64,
    #[serde(rename = "CPC")]
    pub cpc: f64,
    #[serde(rename = "CPA")]
    pub cpa: f64,
    #[serde(rename = "CTR")]
    pub ctr: f64,
    #[serde(rename = "CVR")]
    pub cvr: f64,
    pub late_records: u64,
}

impl From<&Counters> for Totals {
    fn from(c: &Counters) -> Totals {
        Totals {
            impressions: c.impressions,
            clicks: c.clicks,
            conversions: c.conversions,
            spend_micros: c.spend_micros,
            spend: to_units(c.spend_micros),
            cpc: c.cpc(),
            cpa: c.cpa(),
            ctr: c.ctr(),
            cvr: c.cvr(),
            late_records: c.late_records,
        }
    }
}

/// One merged window, as `/api/windows` lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WindowView {
    pub campaign: String,
    pub channel: String,
    /// Window start, `2025-08-17T14:46:00Z`.
    pub window: String,
    pub window_start: i64,
    pub window_end: i64,
    #[serde(flatten)]
    pub totals: Totals,
    #[serde(rename = "final")]
    pub is_final: bool,
    pub late_panes: u64,
    pub panes: u64,
    pub records: u64,
    pub campaign_name: Option<String>,
    pub target_cpa_micros: Option<i64>,
    /// CPA above the campaign's target.
    pub over_target: bool,
}

impl WindowView {
    pub fn new(merger: &Merger, w: &Window) -> WindowView {
        let totals = Totals::from(&w.counters);
        WindowView {
            campaign: w.campaign.to_string(),
            channel: w.channel.to_string(),
            window: format_utc(w.window_start),
            window_start: w.window_start,
            window_end: w.window_end,
            totals,
            is_final: merger.window_is_final(w),
            late_panes: w.late_panes,
            panes: w.panes,
            records: w.records,
            campaign_name: w.campaign_name.as_deref().map(str::to_string),
            target_cpa_micros: w.target_cpa_micros,
            over_target: over_target(&w.counters, w.target_cpa_micros),
        }
    }
}

/// CPA above the target, compared exactly in micro-units. With no
/// conversion the CPA is 0, as the seed reports it, so never above.
pub fn over_target(c: &Counters, target_micros: Option<i64>) -> bool {
    target_micros.is_some_and(|t| {
        c.conversions > 0 && i128::from(c.spend_micros) > i128::from(t) * i128::from(c.conversions)
    })
}

/// `/api/summary`: the filtered windows totalled.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub windows: usize,
    pub from: Option<i64>,
    pub to: Option<i64>,
    #[serde(flatten)]
    pub totals: Totals,
}

pub fn windows(merger: &Merger, selection: &Selection) -> Vec<WindowView> {
    merger
        .windows()
        .filter(|w| selection.matches(w))
        .map(|w| WindowView::new(merger, w))
        .collect()
}

pub fn summary(merger: &Merger, selection: &Selection) -> Summary {
    let mut counters = Counters::default();
    let mut count = 0;
    let (mut from, mut to) = (None::<i64>, None::<i64>);
    for w in merger.windows().filter(|w| selection.matches(w)) {
        counters.add(&w.counters);
        count += 1;
        from = Some(from.map_or(w.window_start, |f| f.min(w.window_start)));
        to = Some(to.map_or(w.window_end, |t| t.max(w.window_end)));
    }
    Summary {
        windows: count,
        from,
        to,
        totals: Totals::from(&counters),
    }
}
