//! Which rows of the history answer a filter: its range as whole windows,
//! cut at its buckets' bounds, each piece read from the coarsest tier
//! that holds it whole (`history::cover`). A filter no tier can answer
//! exactly, or one that would read too much, is refused with the reason.

use analytics::merge::Window;
use analytics::time::{format_duration, format_utc, window_start};
use history::{History, Range, Tier, DAY_MS};

use crate::view::Selection;

/// Most windows `/api/windows` lists without a bucket.
pub const MAX_LISTED: usize = 100_000;

/// Most rows one answer reads.
pub const MAX_ROWS: usize = 2_000_000;

/// Most buckets one answer has.
pub const MAX_BUCKETS: usize = 100_000;

/// The rows that answer `selection`: with `listing` (`/api/windows`
/// without a bucket), the windows themselves; else rows of any tier, none
/// crossing a bucket's bounds. `window_ms` is the transform's window size.
pub fn rows(
    history: &History,
    selection: &Selection,
    window_ms: i64,
    listing: bool,
) -> Result<Vec<Window>, String> {
    let Some((earliest, latest)) = history.bounds().map_err(|e| format!("{e:#}"))? else {
        return Ok(Vec::new());
    };
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
        return Ok(Vec::new());
    }
    let (ranges, limit) = if listing {
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
        (vec![range], MAX_LISTED)
    } else {
        let cuts = cuts(selection, from, to)?;
        let ranges = history::cover(&cuts, |tier| history.floor(tier)).map_err(|_| {
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
        (ranges, MAX_ROWS)
    };
    let rows = history
        .read(
            &ranges,
            selection.campaign.as_deref(),
            selection.channel.as_deref(),
            limit,
        )
        .map_err(|e| format!("{e:#}"))?;
    if rows.len() > limit {
        return Err(format!(
            "more than {limit} {} from {} to {}: narrow `from`/`to`, choose a campaign or a \
             channel{}",
            if listing { "windows" } else { "rows" },
            format_utc(from),
            format_utc(to),
            if listing { ", or give a bucket" } else { "" }
        ));
    }
    Ok(rows)
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
