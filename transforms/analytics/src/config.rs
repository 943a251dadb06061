//! The transforms' settings, read from the environment Redpanda gives them
//! (`env:` in transform.yaml, or `--var` on deploy).

use std::collections::BTreeMap;

use crate::money::decimal_to_micros;
use crate::time::{parse_duration_ms, parse_timestamp_ms};

pub const DEFAULT_WINDOW_MS: i64 = 60_000;
pub const DEFAULT_LATENESS_MS: i64 = 10_000;
/// The newest `results` format this library writes; see [`crate::Pane::format`].
pub const LATEST_PANE_FORMAT: u32 = 3;
/// Records larger than this go to the dead-letter topic unparsed. Events
/// are a few hundred bytes; the limit keeps one record far below the 2 MiB
/// a transform has in all.
pub const DEFAULT_MAX_RECORD_BYTES: usize = 64 << 10;
/// Longest text field of an event (ids, names, the timestamp).
pub const DEFAULT_MAX_FIELD_BYTES: usize = 256;
/// How far an event's time may be ahead of its record's timestamp (the
/// producer's or the broker's clock) before it counts as a broken clock.
pub const DEFAULT_MAX_CLOCK_SKEW_MS: i64 = 86_400_000;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Campaign {
    /// Display name, from `CAMPAIGN_<ID>_NAME`.
    pub name: Option<String>,
    /// Target cost per acquisition, from `CAMPAIGN_<ID>_TARGET_CPA` (units).
    pub target_cpa_micros: Option<i64>,
    /// Daily budget, from `CAMPAIGN_<ID>_DAILY_BUDGET` (units).
    pub daily_budget_micros: Option<i64>,
    /// When the campaign runs, from `CAMPAIGN_<ID>_FLIGHT`
    /// (`2025-08-01..2025-08-31`, days in UTC, both included): the first
    /// instant and the instant after the last.
    pub flight: Option<(i64, i64)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Tumbling window size, `WINDOW_SIZE` (default `1m`).
    pub window_ms: i64,
    /// How far behind the newest event time a window stays open,
    /// `ALLOWED_LATENESS` (default `10s`).
    pub lateness_ms: i64,
    /// Campaign metadata by normalised campaign id.
    pub campaigns: BTreeMap<String, Campaign>,
    /// Extra channel aliases, `CHANNEL_ALIASES=fb=facebook_ads,ig=facebook_ads`.
    pub channel_aliases: BTreeMap<String, String>,
    /// The `results` format to write, `PANE_FORMAT` (default the latest):
    /// an older one serves readers that cannot take the newer fields yet.
    pub pane_format: u32,
    /// `MAX_RECORD_BYTES`: key, value and headers of one record.
    pub max_record_bytes: usize,
    /// `MAX_FIELD_BYTES`: each text field of an event.
    pub max_field_bytes: usize,
    /// `MAX_CLOCK_SKEW`: how far an event may be ahead of its record's timestamp.
    pub max_clock_skew_ms: i64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            window_ms: DEFAULT_WINDOW_MS,
            lateness_ms: DEFAULT_LATENESS_MS,
            campaigns: BTreeMap::new(),
            channel_aliases: BTreeMap::new(),
            pane_format: LATEST_PANE_FORMAT,
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
            max_field_bytes: DEFAULT_MAX_FIELD_BYTES,
            max_clock_skew_ms: DEFAULT_MAX_CLOCK_SKEW_MS,
        }
    }
}

impl Config {
    /// Reads the settings from `KEY=VALUE` pairs; unrelated variables are ignored.
    pub fn from_vars<K, V>(vars: impl IntoIterator<Item = (K, V)>) -> Result<Config, String>
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut config = Config::default();
        for (key, value) in vars {
            let (key, value) = (key.as_ref(), value.as_ref());
            match key {
                "WINDOW_SIZE" => {
                    config.window_ms = positive_duration(key, value)?;
                }
                "ALLOWED_LATENESS" => {
                    config.lateness_ms = parse_duration_ms(value)
                        .ok_or_else(|| format!("{key}={value}: expected a duration like 10s"))?;
                }
                "PANE_FORMAT" => {
                    config.pane_format = value
                        .trim()
                        .parse()
                        .ok()
                        .filter(|f| (1..=LATEST_PANE_FORMAT).contains(f))
                        .ok_or_else(|| {
                            format!("{key}={value}: expected a pane format from 1 to {LATEST_PANE_FORMAT}")
                        })?;
                }
                "MAX_RECORD_BYTES" => config.max_record_bytes = positive_bytes(key, value)?,
                "MAX_FIELD_BYTES" => config.max_field_bytes = positive_bytes(key, value)?,
                "MAX_CLOCK_SKEW" => {
                    config.max_clock_skew_ms = positive_duration(key, value)?;
                }
                "CHANNEL_ALIASES" => {
                    for pair in value.split(',').filter(|p| !p.trim().is_empty()) {
                        let (alias, channel) = pair
                            .split_once('=')
                            .ok_or_else(|| format!("{key}: `{pair}` is not alias=channel"))?;
                        config
                            .channel_aliases
                            .insert(normalise(alias), normalise(channel));
                    }
                }
                _ => {
                    let money =
                        || decimal_to_micros(value).map_err(|e| format!("{key}={value}: {e}"));
                    if let Some(id) = campaign_key(key, "_TARGET_CPA") {
                        config.campaign(id).target_cpa_micros = Some(money()?);
                    } else if let Some(id) = campaign_key(key, "_DAILY_BUDGET") {
                        config.campaign(id).daily_budget_micros = Some(money()?);
                    } else if let Some(id) = campaign_key(key, "_FLIGHT") {
                        config.campaign(id).flight = Some(flight(value).ok_or_else(|| {
                            format!("{key}={value}: expected days as 2025-08-01..2025-08-31")
                        })?);
                    } else if let Some(id) = campaign_key(key, "_NAME") {
                        config.campaign(id).name = Some(value.trim().to_string());
                    }
                }
            }
        }
        Ok(config)
    }

    fn campaign(&mut self, id: String) -> &mut Campaign {
        self.campaigns.entry(id).or_default()
    }
}

fn positive_duration(key: &str, value: &str) -> Result<i64, String> {
    match parse_duration_ms(value) {
        Some(ms) if ms > 0 => Ok(ms),
        _ => Err(format!(
            "{key}={value}: expected a positive duration like 1m, 30s or 1h"
        )),
    }
}

fn positive_bytes(key: &str, value: &str) -> Result<usize, String> {
    match value.trim().parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!(
            "{key}={value}: expected a positive number of bytes"
        )),
    }
}

/// `2025-08-01..2025-08-31` → the start of the first day and the end of
/// the last, in milliseconds (UTC).
fn flight(value: &str) -> Option<(i64, i64)> {
    let (first, last) = value.trim().split_once("..")?;
    let day = |d: &str| parse_timestamp_ms(&format!("{}T00:00:00Z", d.trim()));
    let (start, end) = (day(first)?, day(last)? + 86_400_000);
    (start < end).then_some((start, end))
}

/// `CAMPAIGN_SPRING_SALE_TARGET_CPA` → `spring_sale`.
fn campaign_key(key: &str, suffix: &str) -> Option<String> {
    let id = key.strip_prefix("CAMPAIGN_")?.strip_suffix(suffix)?;
    (!id.is_empty()).then(|| id.to_ascii_lowercase())
}

/// Names compare trimmed, lower case, with spaces and dashes as underscores.
pub fn normalise(s: &str) -> String {
    s.trim()
        .chars()
        .map(|c| match c {
            ' ' | '-' => '_',
            c => c.to_ascii_lowercase(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_without_variables() {
        let c = Config::from_vars(Vec::<(String, String)>::new()).unwrap();
        assert_eq!(c, Config::default());
        assert_eq!(c.window_ms, 60_000);
    }

    #[test]
    fn reads_campaigns_windows_and_aliases() {
        let c = Config::from_vars([
            ("WINDOW_SIZE", "5m"),
            ("ALLOWED_LATENESS", "0s"),
            ("CAMPAIGN_SPRING_SALE_TARGET_CPA", "12.50"),
            ("CAMPAIGN_SPRING_SALE_NAME", " Spring Sale "),
            ("CHANNEL_ALIASES", "IG=Facebook Ads, snap=snapchat"),
            ("PANE_FORMAT", "2"),
            ("MAX_RECORD_BYTES", "1000"),
            ("MAX_FIELD_BYTES", "64"),
            ("MAX_CLOCK_SKEW", "1h"),
            ("REDPANDA_INPUT_TOPIC", "logs"),
        ])
        .unwrap();
        assert_eq!(
            (c.max_record_bytes, c.max_field_bytes, c.max_clock_skew_ms),
            (1000, 64, 3_600_000)
        );
        assert_eq!(c.window_ms, 300_000);
        assert_eq!(c.lateness_ms, 0);
        let spring = &c.campaigns["spring_sale"];
        assert_eq!(spring.target_cpa_micros, Some(12_500_000));
        assert_eq!(spring.name.as_deref(), Some("Spring Sale"));
        assert_eq!(c.channel_aliases["ig"], "facebook_ads");
        assert_eq!(c.channel_aliases["snap"], "snapchat");
        assert_eq!(c.pane_format, 2);
    }

    #[test]
    fn reads_budgets_and_flights() {
        let c = Config::from_vars([
            ("CAMPAIGN_SPRING_SALE_DAILY_BUDGET", "1500.50"),
            ("CAMPAIGN_SPRING_SALE_FLIGHT", "2025-08-01..2025-08-31"),
        ])
        .unwrap();
        let spring = &c.campaigns["spring_sale"];
        assert_eq!(spring.daily_budget_micros, Some(1_500_500_000));
        // 2025-08-01T00:00Z to 2025-09-01T00:00Z.
        assert_eq!(spring.flight, Some((1_754_006_400_000, 1_756_684_800_000)));
        for bad in ["2025-08-31..2025-08-01", "soon", "2025-08-01"] {
            let e = Config::from_vars([("CAMPAIGN_X_FLIGHT", bad)]).unwrap_err();
            assert!(e.contains("expected days"), "{e}");
        }
        let e = Config::from_vars([("CAMPAIGN_X_DAILY_BUDGET", "-1")]).unwrap_err();
        assert!(e.contains("negative"), "{e}");
    }

    #[test]
    fn explains_bad_values() {
        let e = Config::from_vars([("WINDOW_SIZE", "0s")]).unwrap_err();
        assert!(e.contains("WINDOW_SIZE=0s"), "{e}");
        let e = Config::from_vars([("CAMPAIGN_X_TARGET_CPA", "-3")]).unwrap_err();
        assert!(e.contains("negative"), "{e}");
        let e = Config::from_vars([("CHANNEL_ALIASES", "fb")]).unwrap_err();
        assert!(e.contains("alias=channel"), "{e}");
        for bad in ["0", "4", "two"] {
            let e = Config::from_vars([("PANE_FORMAT", bad)]).unwrap_err();
            assert!(e.contains("from 1 to 3"), "{e}");
        }
        for (key, bad) in [
            ("MAX_RECORD_BYTES", "0"),
            ("MAX_FIELD_BYTES", "-5"),
            ("MAX_FIELD_BYTES", "1k"),
        ] {
            let e = Config::from_vars([(key, bad)]).unwrap_err();
            assert!(e.contains("positive number of bytes"), "{e}");
        }
        let e = Config::from_vars([("MAX_CLOCK_SKEW", "0s")]).unwrap_err();
        assert!(e.contains("MAX_CLOCK_SKEW=0s"), "{e}");
    }
}
