//! What the API and the page see: windows (or rows of the history's
//! rollups) with their ratios, the totals over a range, and the filters
//! that choose them. Which rows a filter reads is [`crate::range`]'s call.

use analytics::money::{ratio, to_units};
use analytics::reach::ReachUnion;
use analytics::time::{format_utc, parse_timestamp_ms};
use analytics::Counters;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::range::Preset;
use analytics::merge::{Merger, Window};

/// `?campaign=&channel=&from=&to=&bucket=&tz=`; `from`/`to` are window
/// starts, in milliseconds since the epoch, as timestamps, or as dates
/// (naive ones in `tz`, else UTC); `bucket` rolls windows up (see
/// [`Bucket`]). `/api/top` adds `by`, `n`,
/// `dimension` and `order`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Filter {
    pub campaign: Option<String>,
    pub channel: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub bucket: Option<String>,
    pub tz: Option<String>,
    pub by: Option<String>,
    pub n: Option<String>,
    pub dimension: Option<String>,
    pub order: Option<String>,
    /// A named range, as Meta's Marketing API names them: `today`,
    /// `last_7d`, … (see [`Preset`]).
    pub date_preset: Option<String>,
    /// `previous`: `/api/summary` adds the period of the same length just
    /// before, and each figure's change.
    pub compare: Option<String>,
    /// `/api/export`: `csv` or `parquet`.
    pub format: Option<String>,
}

/// A parsed [`Filter`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Selection {
    pub campaign: Option<String>,
    pub channel: Option<String>,
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    pub bucket: Option<Bucket>,
    pub top: Top,
    /// Resolved into `from_ms`/`to_ms` at the merge's "now", in `tz`.
    pub preset: Option<Preset>,
    pub tz: Option<jiff::tz::TimeZone>,
    pub compare: bool,
}

/// How windows roll up into buckets.
#[derive(Debug, Clone, PartialEq)]
pub enum Bucket {
    /// Hours, days, weeks (from Monday) or months of a time zone, as its
    /// clocks show them: a day in which summer time starts has 23 hours.
    Calendar {
        unit: jiff::Unit,
        tz: jiff::tz::TimeZone,
    },
    /// Fixed spans aligned to the epoch: `5m`, `15m`.
    Fixed(i64),
}

impl Bucket {
    fn parse(bucket: Option<&str>, tz: Option<&str>) -> Result<Option<Bucket>, String> {
        // Without a bucket, `tz` says whose days dates and named ranges are.
        let Some(bucket) = bucket else {
            return Ok(None);
        };
        let unit = match bucket {
            "1w" => jiff::Unit::Week,
            "1mo" => jiff::Unit::Month,
            _ => {
                let ms = analytics::time::parse_duration_ms(bucket)
                    .filter(|&ms| ms > 0 && ms <= 86_400_000)
                    .ok_or_else(|| {
                        format!(
                            "`bucket` must be 1w, 1mo or a span from 1s to 1d such as 1h or 1d, \
                             not `{bucket}`"
                        )
                    })?;
                match ms {
                    3_600_000 => jiff::Unit::Hour,
                    86_400_000 => jiff::Unit::Day,
                    // Aligned to the epoch, whatever `tz` says.
                    _ => return Ok(Some(Bucket::Fixed(ms))),
                }
            }
        };
        Ok(Some(Bucket::Calendar {
            unit,
            tz: parse_zone(tz)?,
        }))
    }

    /// The days of a time zone.
    pub fn days(tz: jiff::tz::TimeZone) -> Bucket {
        Bucket::Calendar {
            unit: jiff::Unit::Day,
            tz,
        }
    }

    /// The bucket holding an instant: `[start, end)` in milliseconds.
    pub fn bounds(&self, ms: i64) -> (i64, i64) {
        match self {
            Bucket::Fixed(span) => {
                let start = analytics::time::window_start(ms, *span);
                (start, start + span)
            }
            Bucket::Calendar { unit, tz } => {
                let calendar = || -> Result<(i64, i64), jiff::Error> {
                    let at = jiff::Timestamp::from_millisecond(ms)?.to_zoned(tz.clone());
                    let (start, end) = match unit {
                        jiff::Unit::Hour => {
                            let start = at.round(
                                jiff::ZonedRound::new()
                                    .smallest(jiff::Unit::Hour)
                                    .mode(jiff::RoundMode::Trunc),
                            )?;
                            let end = start.checked_add(jiff::Span::new().hours(1))?;
                            (start, end)
                        }
                        jiff::Unit::Week => {
                            let back = at.weekday().to_monday_zero_offset();
                            let monday = at.checked_sub(jiff::Span::new().days(back))?;
                            let start = monday.start_of_day()?;
                            (
                                start.clone(),
                                start
                                    .checked_add(jiff::Span::new().weeks(1))?
                                    .start_of_day()?,
                            )
                        }
                        jiff::Unit::Month => {
                            let start = at.first_of_month()?.start_of_day()?;
                            (
                                start.clone(),
                                start
                                    .checked_add(jiff::Span::new().months(1))?
                                    .start_of_day()?,
                            )
                        }
                        _ => (at.start_of_day()?, at.tomorrow()?.start_of_day()?),
                    };
                    Ok((
                        start.timestamp().as_millisecond(),
                        end.timestamp().as_millisecond(),
                    ))
                };
                // Window starts lie within 2000..2100, where every zone's
                // hours and days exist.
                calendar().unwrap_or((ms, ms))
            }
        }
    }
}

/// `tz=`: UTC when not given.
fn parse_zone(tz: Option<&str>) -> Result<jiff::tz::TimeZone, String> {
    match tz {
        None => Ok(jiff::tz::TimeZone::UTC),
        Some(name) => zone(name).map_err(|e| format!("`tz={name}` {e}")),
    }
}

/// A time zone by its IANA name, from the database built in.
pub fn zone(name: &str) -> Result<jiff::tz::TimeZone, String> {
    jiff::tz::TimeZone::get(name)
        .map_err(|_| "is not a time zone: use an IANA name such as Europe/Paris, or UTC".into())
}

/// `/api/top`: which metric ranks what, and how many.
#[derive(Debug, Clone, PartialEq)]
pub struct Top {
    pub by: Metric,
    pub n: usize,
    pub dimension: Dimension,
    pub ascending: bool,
}

impl Default for Top {
    fn default() -> Top {
        Top {
            by: Metric::Spend,
            n: 10,
            dimension: Dimension::Campaign,
            ascending: false,
        }
    }
}

/// What `/api/top` ranks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dimension {
    Campaign,
    Channel,
}

/// The figures `/api/top` ranks by: the [`Totals`] fields, named as there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    Impressions,
    Clicks,
    Conversions,
    Spend,
    Revenue,
    Cpc,
    Cpa,
    Ctr,
    Cvr,
    Cpm,
    Roas,
    Aov,
    Reach,
    Frequency,
}

const METRICS: [(&str, Metric); 14] = [
    ("impressions", Metric::Impressions),
    ("clicks", Metric::Clicks),
    ("conversions", Metric::Conversions),
    ("spend", Metric::Spend),
    ("revenue", Metric::Revenue),
    ("CPC", Metric::Cpc),
    ("CPA", Metric::Cpa),
    ("CTR", Metric::Ctr),
    ("CVR", Metric::Cvr),
    ("CPM", Metric::Cpm),
    ("ROAS", Metric::Roas),
    ("AOV", Metric::Aov),
    ("reach", Metric::Reach),
    ("frequency", Metric::Frequency),
];

impl Metric {
    fn parse(name: &str) -> Result<Metric, String> {
        METRICS
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|&(_, m)| m)
            .ok_or_else(|| {
                let names: Vec<&str> = METRICS.iter().map(|(n, _)| *n).collect();
                format!("`by={name}`: rank by one of {}", names.join(", "))
            })
    }

    /// The figure of some totals; counts and money compare exactly.
    fn of(self, t: &Totals) -> f64 {
        match self {
            Metric::Impressions => t.impressions as f64,
            Metric::Clicks => t.clicks as f64,
            Metric::Conversions => t.conversions as f64,
            Metric::Spend => t.spend_micros as f64,
            Metric::Revenue => t.revenue_micros as f64,
            Metric::Cpc => t.cpc,
            Metric::Cpa => t.cpa,
            Metric::Ctr => t.ctr,
            Metric::Cvr => t.cvr,
            Metric::Cpm => t.cpm,
            Metric::Roas => t.roas,
            Metric::Aov => t.aov,
            Metric::Reach => t.reach as f64,
            Metric::Frequency => t.frequency,
        }
    }
}

impl Top {
    fn parse(f: &Filter) -> Result<Top, String> {
        let mut top = Top::default();
        if let Some(by) = &f.by {
            top.by = Metric::parse(by)?;
        }
        if let Some(n) = &f.n {
            top.n = n
                .parse()
                .ok()
                .filter(|n| (1..=10_000).contains(n))
                .ok_or_else(|| format!("`n` must be from 1 to 10000, not `{n}`"))?;
        }
        top.dimension = match f.dimension.as_deref() {
            None | Some("campaign") => Dimension::Campaign,
            Some("channel") => Dimension::Channel,
            Some(d) => return Err(format!("`dimension` is campaign or channel, not `{d}`")),
        };
        top.ascending = match f.order.as_deref() {
            None | Some("desc") => false,
            Some("asc") => true,
            Some(o) => return Err(format!("`order` is asc or desc, not `{o}`")),
        };
        Ok(top)
    }
}

impl Filter {
    pub fn parse(&self) -> Result<Selection, String> {
        let name = |v: &Option<String>| v.clone().filter(|v| !v.is_empty());
        let tz = parse_zone(name(&self.tz).as_deref())?;
        // A date is its whole day: `from` its first instant, `to` its last.
        let time = |name: &str, v: &Option<String>| -> Result<Option<i64>, String> {
            match v.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
                None => Ok(None),
                Some(v) => v
                    .parse::<i64>()
                    .ok()
                    .or_else(|| parse_timestamp_ms(v))
                    .or_else(|| {
                        day_bounds(v, &tz).map(|(s, e)| if name == "to" { e - 1 } else { s })
                    })
                    .map(Some)
                    .ok_or_else(|| {
                        format!(
                            "`{name}` must be milliseconds since the epoch, a timestamp or a \
                             date (2025-08-17), not `{v}`"
                        )
                    }),
            }
        };
        let selection = Selection {
            campaign: name(&self.campaign),
            channel: name(&self.channel),
            from_ms: time("from", &self.from)?,
            to_ms: time("to", &self.to)?,
            bucket: Bucket::parse(name(&self.bucket).as_deref(), name(&self.tz).as_deref())?,
            top: Top::parse(self)?,
            preset: name(&self.date_preset)
                .as_deref()
                .map(Preset::parse)
                .transpose()?,
            tz: Some(tz),
            compare: match name(&self.compare).as_deref() {
                None => false,
                Some("previous") => true,
                Some(c) => return Err(format!("`compare` is `previous`, not `{c}`")),
            },
        };
        if selection.preset.is_some() && (selection.from_ms.is_some() || selection.to_ms.is_some())
        {
            return Err("give `date_preset` or `from`/`to`, not both".into());
        }
        if let (Some(from), Some(to)) = (selection.from_ms, selection.to_ms) {
            if from > to {
                return Err(format!(
                    "`from` ({}) is after `to` ({})",
                    format_utc(from),
                    format_utc(to)
                ));
            }
        }
        Ok(selection)
    }
}

/// A date's day in `tz`, `[start, end)`: `2025-08-17`.
fn day_bounds(date: &str, tz: &jiff::tz::TimeZone) -> Option<(i64, i64)> {
    let date: jiff::civil::Date = date.parse().ok()?;
    let start = date.to_zoned(tz.clone()).ok()?.start_of_day().ok()?;
    let end = start.tomorrow().ok()?.start_of_day().ok()?;
    Some((
        start.timestamp().as_millisecond(),
        end.timestamp().as_millisecond(),
    ))
}

/// Counters with the ratios the seed reports, and reach; ratios with a
/// zero denominator are 0.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Totals {
    pub impressions: u64,
    pub clicks: u64,
    pub conversions: u64,
    pub spend_micros: i64,
    pub spend: f64,
    pub revenue_micros: i64,
    pub revenue: f64,
    #[serde(rename = "CPC")]
    pub cpc: f64,
    #[serde(rename = "CPA")]
    pub cpa: f64,
    #[serde(rename = "CTR")]
    pub ctr: f64,
    #[serde(rename = "CVR")]
    pub cvr: f64,
    #[serde(rename = "CPM")]
    pub cpm: f64,
    #[serde(rename = "ROAS")]
    pub roas: f64,
    #[serde(rename = "AOV")]
    pub aov: f64,
    /// Distinct users with an impression: a union of sketches, never a sum.
    pub reach: u64,
    /// Impressions per user reached.
    pub frequency: f64,
    pub late_records: u64,
}

impl Totals {
    pub fn new(c: &Counters, reach: u64) -> Totals {
        Totals {
            impressions: c.impressions,
            clicks: c.clicks,
            conversions: c.conversions,
            spend_micros: c.spend_micros,
            spend: to_units(c.spend_micros),
            revenue_micros: c.revenue_micros,
            revenue: c.revenue(),
            cpc: c.cpc(),
            cpa: c.cpa(),
            ctr: c.ctr(),
            cvr: c.cvr(),
            cpm: c.cpm(),
            roas: c.roas(),
            aov: c.aov(),
            reach,
            frequency: ratio(c.impressions as f64, reach as f64),
            late_records: c.late_records,
        }
    }
}

/// Windows added up: counters summed, reach unioned.
#[derive(Debug, Clone, Default)]
pub struct Rollup {
    pub windows: usize,
    pub counters: Counters,
    pub reach: ReachUnion,
    /// The earliest start and the latest end of the windows added.
    pub from: Option<i64>,
    pub to: Option<i64>,
}

impl Rollup {
    pub fn add(&mut self, w: &Window) {
        self.windows += w.windows as usize;
        self.counters.add(&w.counters);
        w.reach.add_to(&mut self.reach);
        self.from = Some(self.from.map_or(w.window_start, |f| f.min(w.window_start)));
        self.to = Some(self.to.map_or(w.window_end, |t| t.max(w.window_end)));
    }

    pub fn totals(&self) -> Totals {
        Totals::new(&self.counters, self.reach.estimate())
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
        let totals = Totals::new(&w.counters, w.reach.estimate());
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

/// `/api/summary`: the filtered windows totalled; with a bucket, also
/// each bucket's totals across the selected keys.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub windows: usize,
    pub from: Option<i64>,
    pub to: Option<i64>,
    #[serde(flatten)]
    pub totals: Totals,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub buckets: Option<Vec<BucketTotals>>,
}

/// One bucket of `/api/summary?bucket=`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BucketTotals {
    pub window: String,
    pub window_start: i64,
    pub window_end: i64,
    pub windows: usize,
    #[serde(flatten)]
    pub totals: Totals,
}

/// Windows rolled up into one row: a bucket of one key, or a campaign.
#[derive(Debug, Default)]
struct Group {
    all: Rollup,
    is_final: bool,
    late_panes: u64,
    panes: u64,
    records: u64,
    campaign_name: Option<String>,
    target_cpa_micros: Option<i64>,
}

impl Group {
    fn add(&mut self, merger: &Merger, w: &Window) {
        self.is_final = (self.all.windows == 0 || self.is_final) && merger.window_is_final(w);
        self.all.add(w);
        self.late_panes += w.late_panes;
        self.panes += w.panes;
        self.records += w.records;
        if let Some(name) = &w.campaign_name {
            self.campaign_name = Some(name.to_string());
        }
        self.target_cpa_micros = w.target_cpa_micros.or(self.target_cpa_micros);
    }
}

/// The rows in order, each with its bucket's bounds.
fn bucketed<'a>(
    rows: &'a [Window],
    bucket: &'a Bucket,
) -> impl Iterator<Item = ((i64, i64), &'a Window)> + 'a {
    let mut last = (i64::MIN, i64::MIN);
    rows.iter().map(move |w| {
        // Rows come in order of start: most share the last bucket.
        if !(last.0..last.1).contains(&w.window_start) {
            last = bucket.bounds(w.window_start);
        }
        (last, w)
    })
}

/// `/api/windows`: the windows read, or with a bucket, each key's rows
/// rolled up per bucket.
pub fn windows(rows: &[Window], merger: &Merger, selection: &Selection) -> Vec<WindowView> {
    table(rows, merger, selection, false)
        .into_iter()
        .map(|(view, _)| view)
        .collect()
}

/// The rows of [`windows`], each with its reach sketch in DataSketches'
/// serialization when `sketches` asks for it (for exports).
pub fn table(
    rows: &[Window],
    merger: &Merger,
    selection: &Selection,
    sketches: bool,
) -> Vec<(WindowView, Option<Vec<u8>>)> {
    let Some(bucket) = &selection.bucket else {
        return rows
            .iter()
            .map(|w| {
                let sketch = sketches.then(|| w.reach.to_bytes()).flatten();
                (WindowView::new(merger, w), sketch)
            })
            .collect();
    };
    let mut groups: BTreeMap<(i64, i64, &str, &str), Group> = BTreeMap::new();
    for ((start, end), w) in bucketed(rows, bucket) {
        groups
            .entry((start, end, &w.campaign, &w.channel))
            .or_default()
            .add(merger, w);
    }
    groups
        .into_iter()
        .map(|((start, end, campaign, channel), g)| {
            let totals = g.all.totals();
            let sketch =
                (sketches && !g.all.reach.is_empty()).then(|| g.all.reach.to_reach().to_bytes());
            let view = WindowView {
                campaign: campaign.to_string(),
                channel: channel.to_string(),
                window: format_utc(start),
                window_start: start,
                window_end: end,
                totals,
                is_final: g.is_final,
                late_panes: g.late_panes,
                panes: g.panes,
                records: g.records,
                over_target: over_target(&g.all.counters, g.target_cpa_micros),
                campaign_name: g.campaign_name,
                target_cpa_micros: g.target_cpa_micros,
            };
            (view, sketch)
        })
        .collect()
}

/// `/api/summary`: the rows read, totalled, and per bucket.
pub fn summary(rows: &[Window], _: &Merger, selection: &Selection) -> Summary {
    let mut all = Rollup::default();
    for w in rows {
        all.add(w);
    }
    let buckets = selection.bucket.as_ref().map(|bucket| {
        let mut sums: BTreeMap<(i64, i64), Rollup> = BTreeMap::new();
        for (bounds, w) in bucketed(rows, bucket) {
            sums.entry(bounds).or_default().add(w);
        }
        sums.into_iter()
            .map(|((start, end), r)| BucketTotals {
                window: format_utc(start),
                window_start: start,
                window_end: end,
                windows: r.windows,
                totals: r.totals(),
            })
            .collect()
    });
    Summary {
        windows: all.windows,
        from: all.from,
        to: all.to,
        totals: all.totals(),
        buckets,
    }
}

/// One row of `/api/top`: a campaign or a channel over the selected windows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TopRow {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub campaign: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub campaign_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_cpa_micros: Option<i64>,
    pub windows: usize,
    #[serde(flatten)]
    pub totals: Totals,
}

/// `/api/top?by=ROAS&n=5&dimension=campaign`: the first `n` campaigns (or
/// channels) by a metric over the selected windows, largest first; ties
/// by name.
pub fn top<'a>(
    rows: impl IntoIterator<Item = &'a Window>,
    merger: &Merger,
    selection: &Selection,
) -> Vec<TopRow> {
    let t = &selection.top;
    let mut groups: BTreeMap<&str, Group> = BTreeMap::new();
    for w in rows {
        let name = match t.dimension {
            Dimension::Campaign => &w.campaign,
            Dimension::Channel => &w.channel,
        };
        groups.entry(name).or_default().add(merger, w);
    }
    let mut rows: Vec<TopRow> = groups
        .into_iter()
        .map(|(name, g)| {
            let campaign = t.dimension == Dimension::Campaign;
            TopRow {
                campaign: campaign.then(|| name.to_string()),
                channel: (!campaign).then(|| name.to_string()),
                campaign_name: g.campaign_name.filter(|_| campaign),
                target_cpa_micros: g.target_cpa_micros.filter(|_| campaign),
                windows: g.all.windows,
                totals: g.all.totals(),
            }
        })
        .collect();
    rank(&mut rows, t, |r| &r.totals);
    rows
}

/// Sorts rows by the metric of their totals, largest first (unless
/// `ascending`), and keeps the first `n`; a stable sort keeps the names'
/// order among ties.
pub fn rank<T>(rows: &mut Vec<T>, t: &Top, totals: impl Fn(&T) -> &Totals) {
    rows.sort_by(|a, b| {
        let (x, y) = (t.by.of(totals(a)), t.by.of(totals(b)));
        if t.ascending {
            x.total_cmp(&y)
        } else {
            y.total_cmp(&x)
        }
    });
    rows.truncate(t.n);
}

impl Metric {
    /// Whether ranking by it needs every row's reach.
    pub fn needs_reach(self) -> bool {
        matches!(self, Metric::Reach | Metric::Frequency)
    }
}
