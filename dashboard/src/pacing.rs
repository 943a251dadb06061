//! Budgets, pacing and alerts, per campaign, in event time: "now" is the
//! merge's watermark, so a back-fill paces as its own day did. A day's
//! spend is summed from the history, exactly, however many keys there are;
//! the alert rules' last hour comes from the hot windows.

use std::collections::{BTreeMap, HashMap};

use analytics::time::{format_utc, parse_duration_ms};
use analytics::Counters;
use history::History;
use serde::Serialize;

use crate::view::{self, Bucket};
use analytics::merge::{Merger, Window};

const MINUTE: i64 = 60_000;
/// Alerts compare the last few minutes with the hour before them.
const RECENT: i64 = 5 * MINUTE;
const TRAILING: i64 = 60 * MINUTE;

/// How far back the alert rules look from their "now": the hot windows
/// reach at least this far, and the rules' hold beyond it.
pub const LOOK_BACK_MS: i64 = RECENT + TRAILING;

/// A campaign's day against its daily budget.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Pacing {
    pub campaign: String,
    pub campaign_name: Option<String>,
    pub daily_budget_micros: i64,
    /// The day paced, a day of `time_zone` (23 or 25 hours when its clocks
    /// change), and how far into it the stream is.
    pub time_zone: String,
    pub day_start: i64,
    pub day_end: i64,
    pub now: i64,
    /// Where the pacing of the day starts: its start, or the first event
    /// time the dashboard holds when that is later (a pipeline started
    /// during the day has not seen what was spent before it).
    pub paced_from: i64,
    pub spend_micros: i64,
    /// What even pacing would have spent from `paced_from` to now, and
    /// what the day ends at if it goes on as it went so far.
    pub expected_micros: i64,
    pub projected_micros: i64,
    /// Spend over expected spend: 1 is on plan; 0 with nothing expected yet.
    pub pacing: f64,
    /// Within the campaign's flight (always, with none set).
    pub in_flight: bool,
}

/// A campaign's hot windows, added up over the spans the rules compare.
struct Recent<'a> {
    /// Its first hot window's start.
    first_seen: i64,
    /// The last 5 minutes, the hour before them, and the last hour.
    recent: Counters,
    trailing: Counters,
    hour: Counters,
    /// Its newest window of the last hour, for its settings.
    latest: Option<&'a Window>,
}

/// Every campaign's hot windows added up around `now`, in one pass (the
/// rules run at every checkpoint), in order of campaign.
fn recent_by_campaign(merger: &Merger, now: i64) -> Vec<(&str, Recent<'_>)> {
    let mut by: HashMap<&str, Recent> = HashMap::new();
    for w in merger.windows() {
        let r = by.entry(&w.campaign).or_insert(Recent {
            first_seen: w.window_start,
            recent: Counters::default(),
            trailing: Counters::default(),
            hour: Counters::default(),
            latest: None,
        });
        let start = w.window_start;
        if start > now {
            continue;
        }
        if start >= now - RECENT {
            r.recent.add(&w.counters);
        } else if start >= now - RECENT - TRAILING {
            r.trailing.add(&w.counters);
        }
        if start >= now - TRAILING {
            r.hour.add(&w.counters);
            r.latest = Some(w);
        }
    }
    let mut by: Vec<(&str, Recent)> = by.into_iter().collect();
    by.sort_unstable_by_key(|(campaign, _)| *campaign);
    by
}

/// Every campaign with a daily budget, paced over the day of the merge's
/// "now" in `tz`.
pub fn pacing(merger: &Merger, history: &History, tz: &jiff::tz::TimeZone) -> Vec<Pacing> {
    merger
        .watermark()
        .map_or_else(Vec::new, |now| pacing_at(history, tz, now))
}

/// Every campaign with a daily budget, paced over the day of `now` in `tz`,
/// from where the history begins.
fn pacing_at(history: &History, tz: &jiff::tz::TimeZone, now: i64) -> Vec<Pacing> {
    let budgets: BTreeMap<&str, (&history::Campaign, i64)> = history
        .campaigns()
        .filter_map(|(campaign, c)| Some((campaign, (c, c.daily_budget_micros?))))
        .collect();
    if budgets.is_empty() {
        return Vec::new();
    }
    let (day_start, day_end) = Bucket::days(tz.clone()).bounds(now);
    let first_seen = match history.bounds() {
        Ok(bounds) => bounds.map_or(now, |(earliest, _)| earliest),
        Err(e) => {
            tracing::error!("reading {}: {e:#}", history.place());
            return Vec::new();
        }
    };
    let paced_from = first_seen.clamp(day_start, now);
    let spent = match history::cover(&[day_start, now + 1], |t| history.held(t))
        .map_err(|_| anyhow::anyhow!("today's minute windows are no longer kept"))
        .and_then(|ranges| history.sums(&ranges))
    {
        Ok(spent) => spent,
        Err(e) => {
            tracing::error!("summing today's spend in {}: {e:#}", history.place());
            return Vec::new();
        }
    };
    // Even pacing spends the budget at a steady rate over the day: what it
    // plans is that rate over the part of the day paced.
    let elapsed = (now - paced_from) as f64 / (day_end - day_start) as f64;
    budgets
        .into_iter()
        .map(|(campaign, (c, budget))| {
            let spend = spent.get(campaign).map_or(0, |c| c.spend_micros);
            let expected = (budget as f64 * elapsed).round() as i64;
            Pacing {
                campaign: campaign.to_string(),
                campaign_name: c.name.as_deref().map(str::to_string),
                daily_budget_micros: budget,
                time_zone: tz.iana_name().unwrap_or("UTC").to_string(),
                day_start,
                day_end,
                now,
                paced_from,
                spend_micros: spend,
                expected_micros: expected,
                projected_micros: if elapsed > 0.0 {
                    (spend as f64 / elapsed).round() as i64
                } else {
                    spend
                },
                pacing: analytics::money::ratio(spend as f64, expected as f64),
                in_flight: c.flight.is_none_or(|(s, e)| (s..e).contains(&now)),
            }
        })
        .collect()
}

/// The alerts' command-line options, the same on `dashboard` and `harness up`.
#[derive(clap::Args, Debug, Clone)]
pub struct AlertArgs {
    /// Post each alert's start and end as JSON to this URL (USER:PASSWORD@ for Basic
    /// credentials); retried with backoff, from a bounded queue.
    #[arg(long, value_name = "URL")]
    pub alert_webhook: Option<String>,
    /// Alert when a campaign's CPA over the last hour is above its target by more than this
    /// share (0 = any amount).
    #[arg(long, default_value_t = Thresholds::default().cpa_over, value_name = "SHARE")]
    pub alert_cpa_over: f64,
    /// Alert when a campaign's spend today is off its even-pacing plan by more than this
    /// share, either way.
    #[arg(long, default_value_t = Thresholds::default().pacing, value_name = "SHARE")]
    pub alert_pacing: f64,
    /// Alert when a campaign's CTR over the last 5 minutes is below the hour before's by more
    /// than this share.
    #[arg(long, default_value_t = Thresholds::default().ctr_drop, value_name = "SHARE")]
    pub alert_ctr_drop: f64,
    /// Alert when a campaign's spend over the last 5 minutes is more than this many times the
    /// hour before's 5-minute average.
    #[arg(long, default_value_t = Thresholds::default().spend_spike, value_name = "TIMES")]
    pub alert_spend_spike: f64,
    /// The time zone whose days the daily budgets are for, as an ad account's: pacing
    /// starts each day at its midnight (an IANA name such as America/New_York).
    #[arg(long, default_value = "UTC", value_name = "ZONE")]
    pub pacing_tz: String,
    /// How long (in event time) a rule must hold before its alert starts, as Alertmanager's
    /// `for:`: a condition that comes and goes raises none. 0 for at once.
    #[arg(long, default_value = "5m", value_name = "DURATION")]
    pub alert_for: String,
}

impl AlertArgs {
    /// The thresholds, checked, and the webhook's URL.
    pub fn settings(&self) -> anyhow::Result<(Thresholds, Option<String>)> {
        for (flag, v, max) in [
            ("--alert-cpa-over", self.alert_cpa_over, f64::MAX),
            ("--alert-pacing", self.alert_pacing, 1.0),
            ("--alert-ctr-drop", self.alert_ctr_drop, 1.0),
            ("--alert-spend-spike", self.alert_spend_spike, f64::MAX),
        ] {
            if !(v.is_finite() && (0.0..=max).contains(&v)) {
                let range = if max == 1.0 {
                    "from 0 to 1"
                } else {
                    "of 0 or more"
                };
                anyhow::bail!("{flag} {v}: use a number {range}");
            }
        }
        let pacing_tz = view::zone(&self.pacing_tz)
            .map_err(|e| anyhow::anyhow!("--pacing-tz {} {e}", self.pacing_tz))?;
        let hold_ms = parse_duration_ms(&self.alert_for)
            .filter(|ms| (0..=MAX_HOLD).contains(ms))
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "--alert-for {}: use a duration from 0s to 1d, such as 5m",
                    self.alert_for
                )
            })?;
        if let Some(url) = &self.alert_webhook {
            http_access::client::split_url(url, "--alert-webhook's").map_err(anyhow::Error::msg)?;
        }
        Ok((
            Thresholds {
                cpa_over: self.alert_cpa_over,
                pacing: self.alert_pacing,
                ctr_drop: self.alert_ctr_drop,
                spend_spike: self.alert_spend_spike,
                pacing_tz,
                hold_ms,
            },
            self.alert_webhook.clone(),
        ))
    }
}

/// When each rule fires; `--alert-*` on the command line.
#[derive(Debug, Clone, PartialEq)]
pub struct Thresholds {
    /// CPA over the last hour above the target by more than this share.
    pub cpa_over: f64,
    /// Spend off the plan by more than this share, either way.
    pub pacing: f64,
    /// CTR of the last 5 minutes below the hour before by more than this share.
    pub ctr_drop: f64,
    /// Spend of the last 5 minutes above this many times the hour before's
    /// 5-minute average.
    pub spend_spike: f64,
    /// Whose days budgets are paced over.
    pub pacing_tz: jiff::tz::TimeZone,
    /// How long a rule must hold before its alert starts, in event time.
    pub hold_ms: i64,
}

impl Default for Thresholds {
    fn default() -> Thresholds {
        Thresholds {
            cpa_over: 0.0,
            pacing: 0.15,
            ctr_drop: 0.3,
            spend_spike: 3.0,
            pacing_tz: jiff::tz::TimeZone::UTC,
            hold_ms: 5 * MINUTE,
        }
    }
}

/// Fewest conversions for a CPA, and impressions for a CTR, to mean
/// something: below, a rule stays quiet.
const MIN_CONVERSIONS: u64 = 3;
const MIN_RECENT_IMPRESSIONS: u64 = 100;
const MIN_TRAILING_IMPRESSIONS: u64 = 500;
/// Pacing is judged once this much of the day has been paced.
const MIN_PACED: i64 = 60 * MINUTE;

/// The longest a rule may have to hold before its alert starts.
const MAX_HOLD: i64 = 24 * 60 * MINUTE;

/// A rule that holds now.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Condition {
    pub campaign: String,
    pub kind: &'static str,
    pub message: String,
    pub value: f64,
    pub threshold: f64,
}

/// The rules that hold at the merge's "now" and, for those not alerting
/// yet, held all through the `hold_ms` before it too (looked at every
/// minute), as Alertmanager's `for:`: a condition that comes and goes
/// raises no alert.
pub fn conditions(
    merger: &Merger,
    history: &History,
    t: &Thresholds,
    alerts: &Alerts,
) -> Vec<Condition> {
    let Some(now) = merger.watermark() else {
        return Vec::new();
    };
    let (mut held, mut new): (Vec<Condition>, Vec<Condition>) =
        conditions_at(merger, history, t, now)
            .into_iter()
            .partition(|c| alerts.active.contains_key(&(c.campaign.clone(), c.kind)));
    let looks = (t.hold_ms + MINUTE - 1) / MINUTE;
    for i in 1..=looks {
        if new.is_empty() {
            break;
        }
        let then = conditions_at(merger, history, t, now - t.hold_ms * i / looks);
        new.retain(|c| {
            then.iter()
                .any(|h| h.campaign == c.campaign && h.kind == c.kind)
        });
    }
    held.extend(new);
    held
}

/// The rules that hold at `now`.
fn conditions_at(merger: &Merger, history: &History, t: &Thresholds, now: i64) -> Vec<Condition> {
    let mut out = Vec::new();
    let mut fire = |campaign: &str, kind, value: f64, threshold: f64, message: String| {
        out.push(Condition {
            campaign: campaign.to_string(),
            kind,
            message,
            value,
            threshold,
        })
    };
    let by_campaign = recent_by_campaign(merger, now);
    for (campaign, r) in &by_campaign {
        let Some(w) = r.latest else { continue };
        let c = &r.hour;
        if let Some(target) = w.target_cpa_micros {
            let limit = target as f64 * (1.0 + t.cpa_over) / 1e6;
            if c.conversions >= MIN_CONVERSIONS && c.cpa() > limit {
                fire(
                    campaign,
                    "cpa_over_target",
                    c.cpa(),
                    limit,
                    format!(
                        "CPA {:.2} over the last hour, above the target {:.2}",
                        c.cpa(),
                        limit
                    ),
                );
            }
        }
    }
    for (campaign, x) in &by_campaign {
        // The 5-minute rules need the whole hour before: not at a stream's
        // start. (A campaign with no window in a span has zeros there,
        // which no rule fires on.)
        if x.first_seen > now - RECENT - TRAILING {
            continue;
        }
        let (r, h) = (&x.recent, &x.trailing);
        if r.impressions >= MIN_RECENT_IMPRESSIONS && h.impressions >= MIN_TRAILING_IMPRESSIONS {
            let limit = h.ctr() * (1.0 - t.ctr_drop);
            if r.ctr() < limit {
                fire(
                    campaign,
                    "ctr_drop",
                    r.ctr(),
                    limit,
                    format!(
                        "CTR {:.2}% in the last 5 minutes, down from {:.2}% the hour before",
                        r.ctr() * 100.0,
                        h.ctr() * 100.0
                    ),
                );
            }
        }
        let per_slot = h.spend() * RECENT as f64 / TRAILING as f64;
        let limit = per_slot * t.spend_spike;
        if h.spend_micros > 0 && r.spend() > limit {
            fire(
                campaign,
                "spend_spike",
                r.spend(),
                limit,
                format!(
                    "spend {:.2} in the last 5 minutes, {:.1}x the hour before's {:.2} per 5 minutes",
                    r.spend(),
                    r.spend() / per_slot,
                    per_slot
                ),
            );
        }
    }
    for p in pacing_at(history, &t.pacing_tz, now) {
        if !p.in_flight || p.now - p.paced_from < MIN_PACED || p.expected_micros == 0 {
            continue;
        }
        let (over, under) = (1.0 + t.pacing, 1.0 - t.pacing);
        let say = |how| {
            format!(
                "spent {:.2} of a {:.2} budget by {}, {how} the {:.2} planned by now (projected {:.2})",
                p.spend_micros as f64 / 1e6,
                p.daily_budget_micros as f64 / 1e6,
                format_utc(p.now),
                p.expected_micros as f64 / 1e6,
                p.projected_micros as f64 / 1e6
            )
        };
        if p.pacing > over {
            fire(&p.campaign, "pacing_over", p.pacing, over, say("over"));
        } else if p.pacing < under {
            fire(&p.campaign, "pacing_under", p.pacing, under, say("under"));
        }
    }
    out
}

/// An active alert, as `/api/alerts` lists it and the webhook posts it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alert {
    pub campaign: String,
    pub kind: &'static str,
    pub message: String,
    /// When it started, in event time.
    pub since: String,
    pub since_ms: i64,
    pub value: f64,
    pub threshold: f64,
}

/// A change of an alert: what the webhook posts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertEvent {
    /// `start` or `end`.
    pub state: &'static str,
    /// When, in event time.
    pub at: String,
    #[serde(flatten)]
    pub alert: Alert,
}

/// The alerts that hold, and since when.
#[derive(Debug, Default)]
pub struct Alerts {
    active: BTreeMap<(String, &'static str), Alert>,
}

impl Alerts {
    /// Takes the rules that hold now; returns the alerts that started and
    /// ended.
    pub fn update(&mut self, now_ms: i64, holding: Vec<Condition>) -> Vec<AlertEvent> {
        let mut events = Vec::new();
        let mut next = BTreeMap::new();
        for c in holding {
            let key = (c.campaign.clone(), c.kind);
            let (since, since_ms, started) = match self.active.remove(&key) {
                Some(a) => (a.since, a.since_ms, false),
                None => (format_utc(now_ms), now_ms, true),
            };
            let alert = Alert {
                campaign: c.campaign,
                kind: c.kind,
                message: c.message,
                since,
                since_ms,
                value: c.value,
                threshold: c.threshold,
            };
            if started {
                events.push(AlertEvent {
                    state: "start",
                    at: format_utc(now_ms),
                    alert: alert.clone(),
                });
            }
            next.insert(key, alert);
        }
        for (_, alert) in std::mem::replace(&mut self.active, next) {
            events.push(AlertEvent {
                state: "end",
                at: format_utc(now_ms),
                alert,
            });
        }
        events
    }

    pub fn active(&self) -> impl Iterator<Item = &Alert> {
        self.active.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn condition(campaign: &str, kind: &'static str) -> Condition {
        Condition {
            campaign: campaign.into(),
            kind,
            message: String::new(),
            value: 2.0,
            threshold: 1.0,
        }
    }

    #[test]
    fn alerts_start_once_hold_their_start_and_end() {
        let mut alerts = Alerts::default();
        let started = alerts.update(1_000, vec![condition("a", "ctr_drop")]);
        assert_eq!(started.len(), 1);
        assert_eq!(started[0].state, "start");
        assert!(alerts
            .update(
                2_000,
                vec![condition("a", "ctr_drop"), condition("b", "spend_spike")]
            )
            .iter()
            .all(|e| e.alert.campaign == "b"));
        assert_eq!(alerts.active().next().unwrap().since_ms, 1_000);
        let ended = alerts.update(3_000, vec![condition("b", "spend_spike")]);
        assert_eq!(ended.len(), 1);
        assert_eq!((ended[0].state, ended[0].alert.kind), ("end", "ctr_drop"));
        assert_eq!(alerts.active().count(), 1);
    }
}
