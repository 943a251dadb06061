//! How much the dashboard keeps, and where: the command-line options of
//! the history and the hot windows, the same on `dashboard` and
//! `harness up`.

use analytics::time::{format_duration, parse_duration_ms};
use anyhow::{bail, Result};
use history::{Spans, DAY_MS};

use crate::service::Settings;

/// How long each tier of the history keeps its rows, and how long windows
/// stay in memory.
#[derive(clap::Args, Debug, Clone)]
pub struct KeepArgs {
    /// How long the history keeps the transform's own windows (minute windows), behind the
    /// newest event time: 7d, 30d, or `forever`.
    #[arg(long, default_value = "7d", value_name = "SPAN")]
    pub keep_minutes: String,
    /// How long the history keeps hourly rollups.
    #[arg(long, default_value = "400d", value_name = "SPAN")]
    pub keep_hours: String,
    /// How long the history keeps daily rollups.
    #[arg(long, default_value = "forever", value_name = "SPAN")]
    pub keep_days: String,
    /// How far behind the newest event time windows stay in memory (the hot set the live page
    /// and the alerts use); memory grows with it and with the keys.
    #[arg(long, alias = "retention", default_value_t = format_duration(Settings::default().hot_ms), value_name = "SPAN")]
    pub hot: String,
}

/// `7d`, `12h`, or `forever` (`none`).
fn span(flag: &str, value: &str) -> Result<Option<i64>> {
    if matches!(value, "forever" | "none") {
        return Ok(None);
    }
    match parse_duration_ms(value) {
        Some(ms) if ms > 0 => Ok(Some(ms)),
        _ => bail!("--{flag} {value}: use a span such as 7d, 400d or 36h, or `forever`"),
    }
}

impl KeepArgs {
    /// The tiers' spans, checked: each keeps at least what the finer one
    /// does, and minute windows at least a day (today's pacing reads them).
    pub fn spans(&self) -> Result<Spans> {
        let spans = Spans {
            minute_ms: span("keep-minutes", &self.keep_minutes)?,
            hour_ms: span("keep-hours", &self.keep_hours)?,
            day_ms: span("keep-days", &self.keep_days)?,
        };
        let longer = |a: Option<i64>, b: Option<i64>| match (a, b) {
            (_, None) => true,
            (None, Some(_)) => false,
            (Some(a), Some(b)) => b >= a,
        };
        if spans.minute_ms.is_some_and(|ms| ms < DAY_MS) {
            bail!(
                "--keep-minutes {}: keep minute windows for at least 1d",
                self.keep_minutes
            );
        }
        if !longer(spans.minute_ms, spans.hour_ms) || !longer(spans.hour_ms, spans.day_ms) {
            bail!(
                "--keep-minutes {}, --keep-hours {}, --keep-days {}: keep each rollup at least \
                 as long as the finer one",
                self.keep_minutes,
                self.keep_hours,
                self.keep_days
            );
        }
        Ok(spans)
    }

    pub fn hot_ms(&self) -> Result<i64> {
        match parse_duration_ms(&self.hot) {
            Some(ms) if ms > 0 => Ok(ms),
            _ => bail!("--hot {}: use a span such as 3h", self.hot),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        keep: KeepArgs,
    }

    fn spans(args: &[&str]) -> Result<Spans> {
        Cli::parse_from([&["dashboard"], args].concat())
            .keep
            .spans()
    }

    #[test]
    fn spans_default_check_and_say_what_is_wrong() {
        assert_eq!(spans(&[]).unwrap(), Spans::default());
        let forever = spans(&["--keep-minutes", "forever", "--keep-hours", "none"]).unwrap();
        assert_eq!((forever.minute_ms, forever.hour_ms), (None, None));
        for (args, says) in [
            (&["--keep-minutes", "3h"][..], "at least 1d"),
            (&["--keep-hours", "2d"], "at least as long"),
            (&["--keep-minutes", "forever"], "at least as long"),
            (&["--keep-days", "soon"], "--keep-days soon: use a span"),
        ] {
            let err = spans(args).unwrap_err().to_string();
            assert!(err.contains(says), "{args:?}: {err}");
        }
    }
}
