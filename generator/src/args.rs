//! The stream's command-line options, shared by the `generator` binary and
//! `harness up`, so that both read and check them the same way.

use std::time::Duration;

use analytics::time::{parse_duration_ms, parse_timestamp_ms, MAX_TS_MS, MIN_TS_MS};
use anyhow::{bail, Context, Result};
use clap::{Args, FromArgMatches};

use crate::{Clock, Format, Plan, Profile};
use analytics::avro::LOGS_SCHEMA;
use kafka_client::MAX_PARTITIONS;
use registry::{Schema, SchemaRegistry};

#[derive(Args, Debug, Clone)]
pub struct StreamArgs {
    /// Events a second, or `max` for as fast as possible.
    #[arg(long, default_value = "15")]
    pub rate: String,
    /// Stop after this many events.
    #[arg(long)]
    pub count: Option<u64>,
    /// Stop after this long: 30s, 5m, 1h.
    #[arg(long)]
    pub duration: Option<String>,
    /// Seed of the stream; the same seed and --start give the same stream.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Simulated event time from this instant (naive = UTC, or RFC 3339), for back-fills;
    /// default: the wall clock.
    #[arg(long)]
    pub start: Option<String>,
    /// With --start: events a second of simulated event time at the daily peak (the seed's
    /// 15); lower spreads the same number of events over more days.
    #[arg(long, default_value_t = 15.0, value_name = "EVENTS")]
    pub simulated_rate: f64,
    /// Share of malformed events, 0 to 1.
    #[arg(long, default_value_t = 0.0)]
    pub invalid_ratio: f64,
    /// Campaign ids, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "brand_awareness,spring_sale,retargeting"
    )]
    pub campaigns: Vec<String>,
    /// Channels, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "email,facebook_ads,google_ads,tiktok"
    )]
    pub channels: Vec<String>,
    /// Weights of impression, click, conversion.
    #[arg(long, value_delimiter = ',', default_value = "80,15,5")]
    pub weights: Vec<u32>,
    /// Users the events come from: a skewed draw from this many, so that
    /// people return and frequency (impressions per user reached) is above 1.
    #[arg(long, default_value_t = 20_000)]
    pub users: u64,
    /// Order value of a conversion, MIN,MAX in currency units (up to 6 decimals).
    #[arg(long, value_delimiter = ',', default_value = "10,200")]
    pub revenue: Vec<String>,
    /// Values as the seed's JSON, or as Avro in Confluent's framing (the schema registered
    /// under `<topic>-value`).
    #[arg(long, value_enum, default_value_t = ValueFormat::Json)]
    pub format: ValueFormat,
}

/// `--format`.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueFormat {
    Json,
    Avro,
}

impl Default for StreamArgs {
    /// The command line's defaults.
    fn default() -> Self {
        let command = StreamArgs::augment_args(clap::Command::new("stream"));
        StreamArgs::from_arg_matches(&command.get_matches_from(["stream"]))
            .expect("the defaults parse")
    }
}

impl StreamArgs {
    /// The profile of the events, checked.
    pub fn profile(&self) -> Result<Profile> {
        if !(0.0..=1.0).contains(&self.invalid_ratio) {
            bail!("--invalid-ratio must be between 0 and 1");
        }
        if self.weights.len() != 3 || self.weights.iter().all(|&w| w == 0) {
            bail!("--weights takes three numbers, impression,click,conversion, not all zero");
        }
        if self
            .campaigns
            .iter()
            .chain(&self.channels)
            .any(|n| n.is_empty() || n.contains(['"', '\\', '|']))
        {
            bail!(
                "campaign and channel names must be non-empty, without quotes, backslashes or `|`"
            );
        }
        if !(1..=1_000_000_000).contains(&self.users) {
            bail!("--users must be from 1 to 1000000000, not {}", self.users);
        }
        let revenue = match self.revenue.as_slice() {
            [lo, hi] => {
                let micros = |v: &str| {
                    analytics::money::decimal_to_micros(v)
                        .map_err(|e| anyhow::anyhow!("--revenue `{v}`: revenue {}", e.reason()))
                };
                let (lo, hi) = (micros(lo)?, micros(hi)?);
                if lo > hi {
                    bail!("--revenue MIN,MAX: the minimum is above the maximum");
                }
                (lo as u64, hi as u64)
            }
            _ => bail!("--revenue takes MIN,MAX in currency units, such as 10,200"),
        };
        if !(0.001..=1000.0).contains(&self.simulated_rate) {
            bail!(
                "--simulated-rate must be from 0.001 to 1000 events a second, not {}",
                self.simulated_rate
            );
        }
        Ok(Profile {
            simulated_step_ms: (2000.0 / self.simulated_rate).round().max(1.0) as u64,
            campaigns: self.campaigns.clone(),
            channels: self.channels.clone(),
            weights: [self.weights[0], self.weights[1], self.weights[2]],
            revenue_micros: revenue,
            users: self.users,
            invalid_ratio: self.invalid_ratio,
            ..Profile::default()
        })
    }

    /// Where event time comes from.
    /// What makes the stream what it is: two runs with the same identity
    /// generate the same events (the same times too with --start), whatever
    /// their rate, count or duration.
    pub fn identity(&self) -> String {
        // The seed's pace is left out: streams kept before the option came
        // keep their identity.
        let pace = match self.simulated_rate {
            15.0 => String::new(),
            r => format!(" simulated_rate={r}"),
        };
        format!(
            "seed={} start={:?} invalid_ratio={} campaigns={:?} channels={:?} weights={:?} users={} revenue={:?} format={:?}{pace}",
            self.seed,
            self.start,
            self.invalid_ratio,
            self.campaigns,
            self.channels,
            self.weights,
            self.users,
            self.revenue,
            self.format
        )
    }

    pub fn clock(&self) -> Result<Clock> {
        Ok(match &self.start {
            None => Clock::Wall,
            Some(s) => {
                let next_ms = parse_timestamp_ms(s)
                    .with_context(|| format!("--start `{s}` is not a timestamp"))?;
                // Events outside what the pipeline accepts would all be dead letters.
                if !(MIN_TS_MS..MAX_TS_MS).contains(&next_ms) {
                    bail!("--start `{s}`: event times must fall within 2000..2100, which the pipeline accepts");
                }
                Clock::Simulated { next_ms }
            }
        })
    }

    /// The values' format; for Avro, the logs schema is registered under
    /// `<topic>-value` (Confluent's topic name strategy) for its id.
    pub fn format(&self, topic: &str, registry: &dyn SchemaRegistry) -> Result<Format> {
        Ok(match self.format {
            ValueFormat::Json => Format::Json,
            ValueFormat::Avro => {
                let schema = Schema {
                    schema: LOGS_SCHEMA.to_string(),
                    ..Schema::default()
                };
                let schema_id = registry
                    .register(&format!("{topic}-value"), &schema)
                    .with_context(|| format!("--format avro: registering the schema of {topic}"))?;
                Format::Avro { schema_id }
            }
        })
    }

    /// How much and how fast, over `partitions` partitions.
    pub fn plan(&self, partitions: i32) -> Result<Plan> {
        let rate = match self.rate.as_str() {
            "max" => None,
            r => match r.parse::<f64>() {
                Ok(r) if r > 0.0 && r.is_finite() => Some(r),
                _ => bail!(
                    "--rate must be a positive number of events a second, or `max`; got `{r}`"
                ),
            },
        };
        let duration = self
            .duration
            .as_deref()
            .map(|d| {
                parse_duration_ms(d).with_context(|| format!("--duration `{d}`: use 30s, 5m, 1h"))
            })
            .transpose()?
            .map(|ms| Duration::from_millis(ms as u64));
        if !(1..=MAX_PARTITIONS).contains(&partitions) {
            bail!("--partitions {partitions}: use 1 to {MAX_PARTITIONS}");
        }
        Ok(Plan {
            rate,
            count: self.count,
            duration,
            partitions,
        })
    }
}
