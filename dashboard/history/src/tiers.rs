//! The tiers of the history, how long each is kept, and which of them
//! answer a range exactly.

use analytics::time::format_duration;

pub const HOUR_MS: i64 = 3_600_000;
pub const DAY_MS: i64 = 24 * HOUR_MS;

/// A tier of the history: the transform's windows, or their rollups by
/// UTC hour and day. A window belongs to the hour and the day of its start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Tier {
    Minute,
    Hour,
    Day,
}

impl Tier {
    pub const ALL: [Tier; 3] = [Tier::Minute, Tier::Hour, Tier::Day];

    /// The table that holds it.
    pub fn table(self) -> &'static str {
        match self {
            Tier::Minute => "minute",
            Tier::Hour => "hour",
            Tier::Day => "day",
        }
    }

    /// The table of its rows at `scope`: each key's, or summed per
    /// campaign, per channel or over every key (where the summed-over
    /// columns are `*`). The minute tier keeps keys only.
    pub fn table_of(self, scope: Scope) -> Option<&'static str> {
        Some(match (self, scope) {
            (_, Scope::Key) => self.table(),
            (Tier::Minute, _) => return None,
            (Tier::Hour, Scope::Campaign) => "hour_campaign",
            (Tier::Hour, Scope::Channel) => "hour_channel",
            (Tier::Hour, Scope::All) => "hour_total",
            (Tier::Day, Scope::Campaign) => "day_campaign",
            (Tier::Day, Scope::Channel) => "day_channel",
            (Tier::Day, Scope::All) => "day_total",
        })
    }

    /// Every table of the tier.
    pub fn tables(self) -> impl Iterator<Item = &'static str> {
        Scope::ALL.into_iter().filter_map(move |s| self.table_of(s))
    }

    /// The span of its rows; the windows' own for the minute tier.
    pub fn grain(self) -> Option<i64> {
        match self {
            Tier::Minute => None,
            Tier::Hour => Some(HOUR_MS),
            Tier::Day => Some(DAY_MS),
        }
    }

    /// The row's start for a window starting at `start`.
    pub fn start_of(self, start: i64) -> i64 {
        self.grain().map_or(start, |g| start.div_euclid(g) * g)
    }

    /// The flag that sets how long it is kept.
    pub fn flag(self) -> &'static str {
        match self {
            Tier::Minute => "--keep-minutes",
            Tier::Hour => "--keep-hours",
            Tier::Day => "--keep-days",
        }
    }

    fn kept_for(self, spans: &Spans) -> Option<i64> {
        match self {
            Tier::Minute => spans.minute_ms,
            Tier::Hour => spans.hour_ms,
            Tier::Day => spans.day_ms,
        }
    }
}

/// What a rollup row sums over: one key (campaign × channel), a campaign's
/// channels, a channel's campaigns, or every key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    Key,
    Campaign,
    Channel,
    All,
}

impl Scope {
    pub const ALL: [Scope; 4] = [Scope::Key, Scope::Campaign, Scope::Channel, Scope::All];

    /// The scope a filter of one campaign and/or one channel reads: the
    /// narrowest rows that hold it, for a total (`by` none) or per
    /// campaign or channel.
    pub fn for_filter(campaign: bool, channel: bool, by: Option<Scope>) -> Scope {
        match (campaign, channel, by) {
            (false, false, None) => Scope::All,
            (true, false, None | Some(Scope::Campaign)) | (false, false, Some(Scope::Campaign)) => {
                Scope::Campaign
            }
            (false, true, None | Some(Scope::Channel)) | (false, false, Some(Scope::Channel)) => {
                Scope::Channel
            }
            _ => Scope::Key,
        }
    }
}

/// How long each tier keeps its rows behind the newest event time;
/// `None` keeps them forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spans {
    pub minute_ms: Option<i64>,
    pub hour_ms: Option<i64>,
    pub day_ms: Option<i64>,
}

impl Default for Spans {
    /// Minute windows for 7 days, hours for 400, days forever.
    fn default() -> Spans {
        Spans {
            minute_ms: Some(7 * DAY_MS),
            hour_ms: Some(400 * DAY_MS),
            day_ms: None,
        }
    }
}

impl Spans {
    /// Where a tier is whole from, with `newest` the newest event time.
    pub fn floor(&self, tier: Tier, newest: Option<i64>) -> i64 {
        match (tier.kept_for(self), newest) {
            (Some(span), Some(newest)) => newest.saturating_sub(span),
            _ => i64::MIN,
        }
    }

    /// What is kept, for messages.
    pub fn describe(&self) -> String {
        let kept = |tier: Tier| match tier.kept_for(self) {
            Some(ms) => format!("for {} ({})", format_duration(ms), tier.flag()),
            None => format!("forever ({})", tier.flag()),
        };
        format!(
            "minute windows are kept {}, hours {}, days {}",
            kept(Tier::Minute),
            kept(Tier::Hour),
            kept(Tier::Day)
        )
    }
}

/// Windows starting in `[from, to)`, read from one tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub tier: Tier,
    pub from: i64,
    pub to: i64,
}

/// The ranges that answer `[cuts[0], cuts[last])` exactly, each piece
/// between two cuts (a bucket's bounds) read from the coarsest tier that
/// holds it whole and does not cross a cut. `held` says where each tier
/// is whole: from its floor (see [`Spans::floor`]) until where it is
/// rolled up to.
pub fn cover(cuts: &[i64], held: impl Fn(Tier) -> (i64, i64)) -> Result<Vec<Range>, Tier> {
    let mut out: Vec<Range> = Vec::new();
    for pair in cuts.windows(2) {
        piece(Tier::Day, pair[0], pair[1], &held, &mut out)?;
    }
    // Neighbours of one tier are read in one go.
    out.sort_by_key(|r| (r.tier, r.from));
    let mut merged: Vec<Range> = Vec::with_capacity(out.len());
    for r in out {
        match merged.last_mut() {
            Some(last) if last.tier == r.tier && last.to == r.from => last.to = r.to,
            _ => merged.push(r),
        }
    }
    Ok(merged)
}

fn piece(
    tier: Tier,
    from: i64,
    to: i64,
    held: &impl Fn(Tier) -> (i64, i64),
    out: &mut Vec<Range>,
) -> Result<(), Tier> {
    if from >= to {
        return Ok(());
    }
    let finer = match tier {
        Tier::Day => Tier::Hour,
        Tier::Hour => Tier::Minute,
        Tier::Minute => {
            if from < held(Tier::Minute).0 {
                return Err(Tier::Minute);
            }
            out.push(Range { tier, from, to });
            return Ok(());
        }
    };
    let grain = tier.grain().expect("rollups have a grain");
    let ceil = |t: i64| {
        t.div_euclid(grain)
            .saturating_add(i64::from(t.rem_euclid(grain) != 0))
            .saturating_mul(grain)
    };
    // Whole rows of this tier, where it is whole.
    let (floor, until) = held(tier);
    let inner_from = ceil(from).max(ceil(floor));
    let inner_to = to.min(until).div_euclid(grain).saturating_mul(grain);
    if inner_from >= inner_to {
        return piece(finer, from, to, held, out);
    }
    out.push(Range {
        tier,
        from: inner_from,
        to: inner_to,
    });
    piece(finer, from, inner_from, held, out)?;
    piece(finer, inner_to, to, held, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: i64 = DAY_MS;
    const H: i64 = HOUR_MS;
    const M: i64 = 60_000;

    fn range(tier: Tier, from: i64, to: i64) -> Range {
        Range { tier, from, to }
    }

    #[test]
    fn a_range_is_read_from_the_coarsest_tier_that_holds_each_piece() {
        let all = |_| (i64::MIN, i64::MAX);
        assert_eq!(
            cover(&[0, 3 * D], all),
            Ok(vec![range(Tier::Day, 0, 3 * D)])
        );
        // Unaligned ends come from hours, then minutes.
        assert_eq!(
            cover(&[D - H - 5 * M, 2 * D + H + 2 * M], all),
            Ok(vec![
                range(Tier::Minute, D - H - 5 * M, D - H),
                range(Tier::Minute, 2 * D + H, 2 * D + H + 2 * M),
                range(Tier::Hour, D - H, D),
                range(Tier::Hour, 2 * D, 2 * D + H),
                range(Tier::Day, D, 2 * D),
            ])
        );
        // Buckets of hours never read a day.
        assert_eq!(
            cover(&[0, H, 2 * H], all),
            Ok(vec![range(Tier::Hour, 0, 2 * H)])
        );
        // Half-hour zones' days need minutes.
        assert_eq!(
            cover(&[H / 2, D + H / 2], all),
            Ok(vec![
                range(Tier::Minute, H / 2, H),
                range(Tier::Minute, D, D + H / 2),
                range(Tier::Hour, H, D),
            ])
        );
    }

    #[test]
    fn a_piece_a_tier_no_longer_holds_comes_from_a_finer_one_or_is_refused() {
        // Days are gone before 10 D; hours from 5 D on; minutes from 9 D on.
        let floors = |t| match t {
            Tier::Day => (10 * D, i64::MAX),
            Tier::Hour => (5 * D, i64::MAX),
            Tier::Minute => (9 * D, i64::MAX),
        };
        assert_eq!(
            cover(&[6 * D, 12 * D], floors),
            Ok(vec![
                range(Tier::Hour, 6 * D, 10 * D),
                range(Tier::Day, 10 * D, 12 * D)
            ])
        );
        assert_eq!(cover(&[6 * D + M, 7 * D], floors), Err(Tier::Minute));
        assert_eq!(
            cover(&[9 * D + M, 9 * D + 2 * M], floors),
            Ok(vec![range(Tier::Minute, 9 * D + M, 9 * D + 2 * M)])
        );
    }

    #[test]
    fn days_not_yet_rolled_up_come_from_hours() {
        // Days are rolled up until 3 D; hours until 5 D + 2 H.
        let held = |t| match t {
            Tier::Day => (i64::MIN, 3 * D),
            Tier::Hour => (i64::MIN, 5 * D + 2 * H),
            Tier::Minute => (i64::MIN, i64::MAX),
        };
        assert_eq!(
            cover(&[D, 6 * D], held),
            Ok(vec![
                range(Tier::Minute, 5 * D + 2 * H, 6 * D),
                range(Tier::Hour, 3 * D, 5 * D + 2 * H),
                range(Tier::Day, D, 3 * D),
            ])
        );
        // No day has closed yet: every day comes from its hours.
        let none_closed = |t| match t {
            Tier::Day => (i64::MIN, i64::MIN),
            _ => (i64::MIN, i64::MAX),
        };
        assert_eq!(
            cover(&[0, 3 * D], none_closed),
            Ok(vec![range(Tier::Hour, 0, 3 * D)])
        );
    }

    #[test]
    fn spans_say_what_is_kept() {
        assert_eq!(
            Spans::default().describe(),
            "minute windows are kept for 7d (--keep-minutes), hours for 400d (--keep-hours), days forever (--keep-days)"
        );
    }
}
