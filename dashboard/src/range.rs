//! Which rows of the history answer a filter: its range as whole windows,
//! cut at its buckets' bounds, each piece read from the coarsest tier
//! that holds it whole (`history::cover`). A filter no tier can answer
//! exactly, or one that would read too much, is refused with the reason.

use std::collections::HashMap;

use analytics::merge::Window;
use analytics::reach::ReachUnion;
use analytics::time::{format_duration, format_utc, window_start};
use analytics::Counters;
use history::{History, Key, Range, Tier, DAY_MS};

use crate::view::{self, Dimension, Selection, TopRow, Totals};

/// Most windows `/api/windows` lists without a bucket.
pub const MAX_LISTED: usize = 100_000;

/// Most rows one answer reads.
pub const MAX_ROWS: usize = 2_000_000;

/// Most buckets one answer has.
pub const MAX_BUCKETS: usize = 100_000;

/// Which rows an answer reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    /// The transform's windows themselves (`/api/windows` without a
    /// bucket).
    Windows,
    /// Rows of any tier, each key's.
    Keys,
    /// Rows of any tier summed over every key (or the campaign's or
    /// channel's chosen).
    Totals,
}

/// The rows that answer `selection`: the windows, or rows of any tier,
/// none crossing a bucket's bounds. `window_ms` is the transform's window
/// size.
pub fn rows(
    history: &History,
    selection: &Selection,
    window_ms: i64,
    read: Read,
) -> Result<Vec<Window>, String> {
    let Some((ranges, limit)) = ranges(history, selection, window_ms, read)? else {
        return Ok(Vec::new());
    };
    let (campaign, channel) = (selection.campaign.as_deref(), selection.channel.as_deref());
    let rows = match read {
        Read::Totals => history.totals(&ranges, campaign, channel, limit),
        _ => history.read(
            &ranges,
            selection.campaign.as_deref(),
            selection.channel.as_deref(),
            limit,
        ),
    }
    .map_err(|e| format!("{e:#}"))?;
    if rows.len() > limit {
        let what = if read == Read::Windows {
            "windows"
        } else {
            "rows"
        };
        return Err(format!(
            "more than {limit} {what}: narrow `from`/`to`, choose a campaign or a channel{}",
            if read == Read::Windows {
                ", or give a bucket"
            } else {
                ""
            }
        ));
    }
    Ok(rows)
}

/// The tier ranges that answer `selection`, and how many rows they may
/// give; `None` when the history is empty or the range is.
fn ranges(
    history: &History,
    selection: &Selection,
    window_ms: i64,
    read: Read,
) -> Result<Option<(Vec<Range>, usize)>, String> {
    let Some((earliest, latest)) = history.bounds().map_err(|e| format!("{e:#}"))? else {
        return Ok(None);
    };
    let listing = read == Read::Windows;
    let whole = |ms: i64, size: i64| window_start(ms, size);
    let minute_floor = history.floor(Tier::Minute);
    // Window starts in [from, to): `to` is the last window's start, kept.
    let from = match selection.from_ms {
        Some(from) => whole(from.saturating_add(window_ms - 1), window_ms),
        None if listing => whole(earliest, window_ms).max(minute_floor),
        None => whole(earliest, DAY_MS),
    };
    let to = match selection.to_ms {
        Some(to) => whole(to, window_ms).saturating_add(window_ms),
        None => whole(latest, DAY_MS).saturating_add(DAY_MS),
    };
    if from >= to {
        return Ok(None);
    }
    if listing {
        if from < minute_floor {
            return Err(format!(
                "minute windows before {} are no longer kept ({}): ask for a later `from`, or \
                 roll them up with bucket=1h or bucket=1d",
                format_utc(minute_floor),
                history.spans().describe()
            ));
        }
        let range = Range {
            tier: Tier::Minute,
            from,
            to,
        };
        return Ok(Some((vec![range], MAX_LISTED)));
    }
    let cuts = cuts(selection, from, to)?;
    let ranges = history::cover(&cuts, |tier| history.held(tier)).map_err(|_| {
        format!(
            "this range needs minute windows before {}, which are no longer kept ({}): give \
             `from` and `to` on whole hours{}",
            format_utc(minute_floor),
            history.spans().describe(),
            if selection.bucket.is_some() {
                ", and buckets of whole hours (a `tz` whose offset is whole hours)"
            } else {
                ""
            }
        )
    })?;
    Ok(Some((ranges, MAX_ROWS)))
}

/// `/api/top`: the campaigns or channels summed in SQLite, ranked, and
/// reach (a union of sketches) taken for the rows kept, or for every row
/// when reach ranks them.
pub fn top(
    history: &History,
    selection: &Selection,
    window_ms: i64,
) -> Result<Vec<TopRow>, String> {
    let Some((ranges, _)) = ranges(history, selection, window_ms, Read::Keys)? else {
        return Ok(Vec::new());
    };
    let t = &selection.top;
    let (campaign, channel) = (selection.campaign.as_deref(), selection.channel.as_deref());
    let by_campaign = t.dimension == Dimension::Campaign;
    let key = if by_campaign {
        Key::Campaign
    } else {
        Key::Channel
    };
    let sums = history
        .sums_by(&ranges, key, campaign, channel)
        .map_err(|e| format!("{e:#}"))?;
    let settings: HashMap<&str, &history::Campaign> = history.campaigns().collect();
    let mut rows: Vec<(TopRow, Counters)> = sums
        .into_iter()
        .map(|(name, (counters, windows))| {
            let settings = settings.get(name.as_str()).filter(|_| by_campaign);
            let row = TopRow {
                campaign: by_campaign.then(|| name.clone()),
                channel: (!by_campaign).then(|| name.clone()),
                campaign_name: settings.and_then(|c| c.name.as_deref().map(str::to_string)),
                target_cpa_micros: settings.and_then(|c| c.target_cpa_micros),
                windows: windows as usize,
                totals: Totals::new(&counters, 0),
            };
            (row, counters)
        })
        .collect();
    // The rows' reach: the union of their rows' sketches, in one pass.
    let reach = |rows: &mut [(TopRow, Counters)]| -> Result<(), String> {
        let name = |r: &TopRow| {
            r.campaign
                .clone()
                .or_else(|| r.channel.clone())
                .unwrap_or_default()
        };
        let names: Vec<String> = rows.iter().map(|r| name(&r.0)).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let unions = history
            .reach_by(&ranges, key, &names, campaign, channel)
            .map_err(|e| format!("{e:#}"))?;
        for (row, counters) in rows.iter_mut() {
            let reach = unions.get(&name(row)).map_or(0, ReachUnion::estimate);
            row.totals = Totals::new(counters, reach);
        }
        Ok(())
    };
    if t.by.needs_reach() {
        reach(&mut rows)?;
        view::rank(&mut rows, t, |r| &r.0.totals);
    } else {
        view::rank(&mut rows, t, |r| &r.0.totals);
        reach(&mut rows)?;
    }
    Ok(rows.into_iter().map(|(row, _)| row).collect())
}

/// `[from, to)` cut at every bound of the selection's buckets.
fn cuts(selection: &Selection, from: i64, to: i64) -> Result<Vec<i64>, String> {
    let mut cuts = vec![from];
    if let Some(bucket) = &selection.bucket {
        let mut at = from;
        loop {
            let (_, end) = bucket.bounds(at);
            if end <= at || end >= to {
                break;
            }
            cuts.push(end);
            at = end;
            if cuts.len() > MAX_BUCKETS {
                return Err(format!(
                    "more than {MAX_BUCKETS} buckets over {}: give a larger bucket or a \
                     narrower range",
                    format_duration(to - from)
                ));
            }
        }
    }
    cuts.push(to);
    Ok(cuts)
}

/// A named range, as Meta's Marketing API (`date_preset`) and Ads
/// Manager name them, in days of the filter's `tz`; "today" is the day of
/// the merge's "now" (its newest event time), so a back-fill's days read
/// as the days they were. `last_7d` and `last_30d` end with yesterday, as
/// Ads Manager's "Last 7 days".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    Today,
    Yesterday,
    Last7d,
    Last30d,
    ThisMonth,
    LastMonth,
    Maximum,
}

const PRESETS: [(&str, Preset); 7] = [
    ("today", Preset::Today),
    ("yesterday", Preset::Yesterday),
    ("last_7d", Preset::Last7d),
    ("last_30d", Preset::Last30d),
    ("this_month", Preset::ThisMonth),
    ("last_month", Preset::LastMonth),
    ("maximum", Preset::Maximum),
];

impl Preset {
    pub fn parse(name: &str) -> Result<Preset, String> {
        PRESETS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|&(_, p)| p)
            .ok_or_else(|| {
                let names: Vec<&str> = PRESETS.iter().map(|(n, _)| *n).collect();
                format!("`date_preset={name}`: use one of {}", names.join(", "))
            })
    }

    /// `[from, to)` at `now` in `tz`; `None` for everything.
    fn bounds(self, now: i64, tz: &jiff::tz::TimeZone) -> Option<(i64, i64)> {
        let at = jiff::Timestamp::from_millisecond(now)
            .ok()?
            .to_zoned(tz.clone());
        let today = at.start_of_day().ok()?;
        let ms = |z: &jiff::Zoned| z.timestamp().as_millisecond();
        let days_back = |n: i64| -> Option<jiff::Zoned> {
            today
                .checked_sub(jiff::Span::new().days(n))
                .ok()?
                .start_of_day()
                .ok()
        };
        let month = at.first_of_month().ok()?.start_of_day().ok()?;
        Some(match self {
            Preset::Today => (ms(&today), now + 1),
            Preset::Yesterday => (ms(&days_back(1)?), ms(&today)),
            Preset::Last7d => (ms(&days_back(7)?), ms(&today)),
            Preset::Last30d => (ms(&days_back(30)?), ms(&today)),
            Preset::ThisMonth => (ms(&month), now + 1),
            Preset::LastMonth => {
                let last = month.checked_sub(jiff::Span::new().months(1)).ok()?;
                (ms(&last.start_of_day().ok()?), ms(&month))
            }
            Preset::Maximum => return None,
        })
    }
}

/// The selection with its preset turned into `from`/`to` at `now`.
pub fn resolve(selection: &Selection, now: i64) -> Selection {
    let mut resolved = selection.clone();
    let tz = selection.tz.clone().unwrap_or(jiff::tz::TimeZone::UTC);
    if let Some((from, to)) = selection.preset.and_then(|p| p.bounds(now, &tz)) {
        resolved.from_ms = Some(from);
        resolved.to_ms = Some(to - 1);
    }
    resolved
}

/// The period of the same length just before a resolved selection's, or
/// `None` when it is open-ended.
pub fn previous(selection: &Selection, window_ms: i64) -> Option<Selection> {
    let (from, to) = (selection.from_ms?, selection.to_ms?);
    let end = window_start(to, window_ms) + window_ms;
    let mut previous = selection.clone();
    previous.from_ms = Some(from - (end - from));
    previous.to_ms = Some(from - 1);
    Some(previous)
}

/// Each figure's change from `before` to `now`, as a share (0.1 = +10%);
/// `null` where `before` is 0.
pub fn change(now: &serde_json::Value, before: &serde_json::Value) -> serde_json::Value {
    const FIGURES: [&str; 15] = [
        "impressions",
        "clicks",
        "conversions",
        "spend",
        "revenue",
        "CPC",
        "CPA",
        "CTR",
        "CVR",
        "CPM",
        "ROAS",
        "AOV",
        "reach",
        "frequency",
        "late_records",
    ];
    let figures = FIGURES.iter().filter_map(|&f| {
        let (a, b) = (now[f].as_f64()?, before[f].as_f64()?);
        Some((f.to_string(), (b != 0.0).then(|| (a - b) / b).into()))
    });
    serde_json::Value::Object(figures.collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const JUNE_15_NOON: i64 = 1_749_988_800_000;
    const DAY: i64 = DAY_MS;

    fn bounds(preset: &str, tz: &str) -> Option<(i64, i64)> {
        let tz = jiff::tz::TimeZone::get(tz).unwrap();
        Preset::parse(preset).unwrap().bounds(JUNE_15_NOON, &tz)
    }

    #[test]
    fn presets_are_days_of_the_zone_before_now() {
        let midnight = JUNE_15_NOON - DAY / 2;
        assert_eq!(bounds("today", "UTC"), Some((midnight, JUNE_15_NOON + 1)));
        assert_eq!(bounds("yesterday", "UTC"), Some((midnight - DAY, midnight)));
        assert_eq!(
            bounds("last_7d", "UTC"),
            Some((midnight - 7 * DAY, midnight))
        );
        assert_eq!(
            bounds("last_30d", "UTC"),
            Some((midnight - 30 * DAY, midnight))
        );
        let june = midnight - 14 * DAY;
        assert_eq!(bounds("this_month", "UTC"), Some((june, JUNE_15_NOON + 1)));
        assert_eq!(bounds("last_month", "UTC"), Some((june - 31 * DAY, june)));
        assert_eq!(bounds("maximum", "UTC"), None);
        // New York's June 15th began at 04:00 UTC.
        let ny = midnight + 4 * 3_600_000;
        assert_eq!(
            bounds("yesterday", "America/New_York"),
            Some((ny - DAY, ny))
        );
        assert!(Preset::parse("last_week").unwrap_err().contains("last_7d"));
    }

    #[test]
    fn the_previous_period_has_the_same_length_just_before() {
        let selection = Selection {
            from_ms: Some(10 * DAY),
            to_ms: Some(17 * DAY - 1),
            ..Selection::default()
        };
        let previous = previous(&selection, 60_000).unwrap();
        assert_eq!(
            (previous.from_ms, previous.to_ms),
            (Some(3 * DAY), Some(10 * DAY - 1))
        );
        let now = serde_json::json!({"impressions": 150, "CTR": 0.0, "spend": 5.0});
        let before = serde_json::json!({"impressions": 100, "CTR": 0.0, "spend": 10.0});
        assert_eq!(
            change(&now, &before),
            serde_json::json!({"impressions": 0.5, "CTR": null, "spend": -0.5})
        );
    }
}
