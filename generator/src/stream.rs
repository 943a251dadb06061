//! The event stream: seed-shaped ad events, reproducible from a seed, with
//! an optional share of malformed ones of several kinds.

use analytics::avro::{frame, AvroSchema, LOGS_SCHEMA};
use analytics::time::format_naive;
use apache_avro::types::{Record, Value};

use crate::rng::Rng;

/// What to generate.
#[derive(Debug, Clone)]
pub struct Profile {
    pub campaigns: Vec<String>,
    pub channels: Vec<String>,
    /// Relative weights of impression, click, conversion.
    pub weights: [u32; 3],
    /// Cost ranges in cents, inclusive: clicks, conversions. Impressions are free.
    pub click_cents: (u64, u64),
    pub conversion_cents: (u64, u64),
    /// Order values of conversions in micro-units, inclusive.
    pub revenue_micros: (u64, u64),
    /// Users events are drawn from; a skewed draw, so that some return often.
    pub users: u64,
    /// Share of malformed events, 0 to 1.
    pub invalid_ratio: f64,
    /// A simulated clock advances a random 0 to this less one ms per event
    /// at the daily peak: 133, about 15 events a second, as the seed.
    pub simulated_step_ms: u64,
}

impl Default for Profile {
    fn default() -> Self {
        Profile {
            campaigns: ["brand_awareness", "spring_sale", "retargeting"]
                .map(String::from)
                .to_vec(),
            channels: ["email", "facebook_ads", "google_ads", "tiktok"]
                .map(String::from)
                .to_vec(),
            weights: [80, 15, 5],
            click_cents: (50, 200),
            conversion_cents: (500, 2000),
            revenue_micros: (10_000_000, 200_000_000),
            users: 20_000,
            invalid_ratio: 0.0,
            simulated_step_ms: SEED_STEP_MS,
        }
    }
}

pub const KINDS: [&str; 3] = ["impression", "click", "conversion"];

/// The seed's pace in simulated time: a step of 0-132 ms, about 15 events a
/// second.
pub const SEED_STEP_MS: u64 = 133;

/// Where event time comes from.
#[derive(Debug, Clone, Copy)]
pub enum Clock {
    /// Now, for live streams.
    Wall,
    /// From a start time, advancing a random 0–132 ms per event (about 15
    /// events a simulated second, as the seed; see
    /// [`Profile::simulated_step_ms`]) at the daily peak, and up to 4 times
    /// as long at night (see [`daily_shape`]), whatever the real rate: the
    /// stream is then the same byte for byte at any rate.
    Simulated { next_ms: i64 },
}

/// A valid event's contribution to the totals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counted {
    pub campaign: usize,
    pub channel: usize,
    pub kind: usize,
    pub cost_micros: i64,
    pub revenue_micros: i64,
    /// The user's index in the pool.
    pub user: u64,
}

/// How values are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The seed's JSON.
    Json,
    /// Avro of [`LOGS_SCHEMA`] in Confluent's framing, with the id the
    /// schema registry gave it.
    Avro { schema_id: i32 },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// `campaign|channel`, so that every aggregation key lives in one partition.
    pub key: String,
    pub value: Vec<u8>,
    pub ts_ms: i64,
    /// `None` for a malformed event, which must end in the dead-letter topic.
    pub counted: Option<Counted>,
}

pub struct Stream {
    rng: Rng,
    profile: Profile,
    clock: Clock,
    invalid_per_million: u64,
    /// The framing id and the parsed schema, for Avro.
    avro: Option<(i32, AvroSchema)>,
}

impl Stream {
    pub fn new(profile: Profile, seed: u64, clock: Clock) -> Stream {
        Stream {
            rng: Rng::new(seed),
            invalid_per_million: (profile.invalid_ratio.clamp(0.0, 1.0) * 1e6).round() as u64,
            profile,
            clock,
            avro: None,
        }
    }

    /// Values in `format`; the events are the same whatever it is.
    pub fn with_format(mut self, format: Format) -> Stream {
        self.avro = match format {
            Format::Json => None,
            Format::Avro { schema_id } => Some((
                schema_id,
                AvroSchema::parse_str(LOGS_SCHEMA).expect("the logs schema parses"),
            )),
        };
        self
    }

    fn encode(&self, fields: &Fields<'_>) -> Vec<u8> {
        match &self.avro {
            None => fields.json().into_bytes(),
            Some((id, schema)) => {
                let mut out = Vec::new();
                frame(*id, &fields.avro(schema), &mut out);
                out
            }
        }
    }

    fn now_ms(&mut self) -> i64 {
        match &mut self.clock {
            Clock::Wall => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64),
            Clock::Simulated { next_ms } => {
                let now = *next_ms;
                let step = self.rng.below(self.profile.simulated_step_ms);
                *next_ms += (step as f64 / daily_shape(now)) as i64;
                now
            }
        }
    }

    pub fn next_event(&mut self) -> Event {
        let ts_ms = self.now_ms();
        let campaign = self.rng.below(self.profile.campaigns.len() as u64) as usize;
        let channel = self.rng.below(self.profile.channels.len() as u64) as usize;
        let kind = self.rng.weighted(&self.profile.weights);
        let cents = match kind {
            0 => 0,
            1 => self
                .rng
                .between(self.profile.click_cents.0, self.profile.click_cents.1),
            _ => self.rng.between(
                self.profile.conversion_cents.0,
                self.profile.conversion_cents.1,
            ),
        };
        let revenue_micros = (kind == 2).then(|| {
            self.rng
                .between(self.profile.revenue_micros.0, self.profile.revenue_micros.1)
                as i64
        });
        // Squaring a uniform draw skews it: a quarter of the users make
        // half of the events.
        let u = (self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        let user = ((self.profile.users as f64 * u * u) as u64).min(self.profile.users - 1);
        let event_id = self.rng.uuid();
        let user_id = Rng::new(user ^ 0x5eed_0f05_e125).uuid();
        let revenue = revenue_micros.map(micros_text);
        let (c, ch) = (
            &self.profile.campaigns[campaign],
            &self.profile.channels[channel],
        );
        let key = [c.as_str(), "|", ch.as_str()].concat();
        let fields = Fields {
            event_id: &event_id,
            ts: &format_naive(ts_ms),
            user_id: &user_id,
            campaign: c,
            channel: ch,
            event: KINDS[kind],
            cost: &cost_text(cents),
            cost_micros: cents as i64 * 10_000,
            revenue: revenue.as_deref(),
            revenue_micros,
        };
        if self.rng.below(1_000_000) < self.invalid_per_million {
            let value = match self.rng.below(5) {
                // Cut short: not JSON, or not Avro of its schema.
                0 => {
                    let whole = self.encode(&fields);
                    let cut = if self.avro.is_some() {
                        whole.len() / 2
                    } else {
                        40
                    };
                    whole[..cut].to_vec()
                }
                // No user: the field left out of JSON, empty in Avro.
                1 if self.avro.is_none() => Fields {
                    user_id: "",
                    ..fields
                }
                .json()
                .replace(r#""user_id":"","#, "")
                .into_bytes(),
                1 => self.encode(&Fields {
                    user_id: "",
                    ..fields
                }),
                2 => self.encode(&Fields {
                    cost: &["-", &cost_text(cents + 1)].concat(),
                    cost_micros: -((cents as i64 + 1) * 10_000),
                    ..fields
                }),
                3 => self.encode(&Fields {
                    event: "purchase",
                    ..fields
                }),
                _ => self.encode(&Fields {
                    ts: "not-a-time",
                    ..fields
                }),
            };
            return Event {
                key,
                value,
                ts_ms,
                counted: None,
            };
        }
        Event {
            key,
            value: self.encode(&fields),
            ts_ms,
            counted: Some(Counted {
                campaign,
                channel,
                kind,
                cost_micros: cents as i64 * 10_000,
                revenue_micros: revenue_micros.unwrap_or(0),
                user,
            }),
        }
    }
}

/// Cents as a decimal with two places: `1.25`.
fn cost_text(cents: u64) -> String {
    let mut s = itoa::Buffer::new().format(cents / 100).to_string();
    s.push('.');
    s.push(char::from(b'0' + (cents % 100 / 10) as u8));
    s.push(char::from(b'0' + (cents % 10) as u8));
    s
}

/// Micro-units as a decimal with up to six places: `49.99`, `12.000001`.
fn micros_text(micros: i64) -> String {
    let text = format!("{}.{:06}", micros / 1_000_000, micros % 1_000_000);
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Traffic relative to the daily peak at a time of day (UTC): 1 at 20:00,
/// a quarter at 08:00, a smooth wave between.
pub fn daily_shape(ts_ms: i64) -> f64 {
    let hour = ts_ms.rem_euclid(86_400_000) as f64 / 3_600_000.0;
    0.625 + 0.375 * ((hour - 20.0) / 24.0 * std::f64::consts::TAU).cos()
}

#[derive(Clone, Copy)]
struct Fields<'a> {
    event_id: &'a str,
    ts: &'a str,
    user_id: &'a str,
    campaign: &'a str,
    channel: &'a str,
    event: &'a str,
    cost: &'a str,
    cost_micros: i64,
    revenue: Option<&'a str>,
    revenue_micros: Option<i64>,
}

impl Fields<'_> {
    /// The seed's schema plus an id. Our names and values need no escaping.
    fn json(&self) -> String {
        let mut s = String::with_capacity(256);
        for (prefix, value) in [
            (r#"{"event_id":""#, self.event_id),
            (r#"","ts":""#, self.ts),
            (r#"","user_id":""#, self.user_id),
            (r#"","campaign_id":""#, self.campaign),
            (r#"","channel":""#, self.channel),
            (r#"","event":""#, self.event),
            (r#"","cost":"#, self.cost),
        ] {
            s.push_str(prefix);
            s.push_str(value);
        }
        if let Some(revenue) = self.revenue {
            s.push_str(r#","revenue":"#);
            s.push_str(revenue);
        }
        s.push('}');
        s
    }

    /// The same fields as an Avro body of [`LOGS_SCHEMA`].
    fn avro(&self, schema: &AvroSchema) -> Vec<u8> {
        let mut record = Record::new(schema).expect("the logs schema is a record");
        record.put(
            "event_id",
            Value::Union(1, Box::new(Value::String(self.event_id.into()))),
        );
        record.put("ts", self.ts);
        record.put("user_id", self.user_id);
        record.put("campaign_id", self.campaign);
        record.put("channel", self.channel);
        record.put("event", self.event);
        record.put(
            "cost",
            Value::Decimal(self.cost_micros.to_be_bytes().to_vec().into()),
        );
        record.put(
            "revenue",
            match self.revenue_micros {
                Some(m) => {
                    Value::Union(1, Box::new(Value::Decimal(m.to_be_bytes().to_vec().into())))
                }
                None => Value::Union(0, Box::new(Value::Null)),
            },
        );
        apache_avro::to_avro_datum(schema, record).expect("the fields fit the logs schema")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_stream() {
        let run = |seed| {
            let mut s = Stream::new(
                Profile::default(),
                seed,
                Clock::Simulated {
                    next_ms: 1_755_439_200_000,
                },
            );
            (0..50).map(|_| s.next_event()).collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
    }

    #[test]
    fn events_follow_the_seed_shape() {
        let profile = Profile {
            invalid_ratio: 0.1,
            ..Profile::default()
        };
        let mut s = Stream::new(
            profile,
            1,
            Clock::Simulated {
                next_ms: 1_755_439_200_000,
            },
        );
        let events: Vec<Event> = (0..20_000).map(|_| s.next_event()).collect();
        let invalid = events.iter().filter(|e| e.counted.is_none()).count();
        assert!((1_700..2_300).contains(&invalid), "{invalid}");
        let mut kinds = [0usize; 3];
        for e in events.iter().filter_map(|e| e.counted) {
            kinds[e.kind] += 1;
            let range = match e.kind {
                0 => 0..=0,
                1 => 500_000..=2_000_000,
                _ => 5_000_000..=20_000_000,
            };
            assert!(range.contains(&e.cost_micros));
            assert_eq!(e.revenue_micros > 0, e.kind == 2);
            assert!(e.revenue_micros <= 200_000_000);
        }
        let valid = (events.len() - invalid) as f64;
        // Returning users: a quarter of the pool makes about half the events.
        let returning = events
            .iter()
            .filter_map(|e| e.counted)
            .filter(|c| c.user < 5_000)
            .count();
        assert!(
            (0.45..0.55).contains(&(returning as f64 / valid)),
            "{returning}"
        );
        for (count, share) in kinds.iter().zip([0.80, 0.15, 0.05]) {
            assert!((*count as f64 / valid - share).abs() < 0.02, "{kinds:?}");
        }
        for pair in events.windows(2) {
            assert!(pair[1].ts_ms >= pair[0].ts_ms);
        }
    }

    #[test]
    fn revenue_is_written_exactly_and_users_keep_their_ids() {
        assert_eq!(micros_text(49_990_000), "49.99");
        assert_eq!(micros_text(12_000_001), "12.000001");
        assert_eq!(micros_text(7_000_000), "7");
        let mut s = Stream::new(
            Profile::default(),
            3,
            Clock::Simulated {
                next_ms: 1_755_439_200_000,
            },
        );
        let mut ids = std::collections::HashMap::new();
        for _ in 0..5_000 {
            let e = s.next_event();
            let c = e.counted.unwrap();
            let json: serde_json::Value = serde_json::from_slice(&e.value).unwrap();
            let revenue = json.get("revenue").map(|r| r.to_string());
            let parsed = revenue.as_deref().map(analytics::money::decimal_to_micros);
            assert_eq!(parsed.unwrap_or(Ok(0)), Ok(c.revenue_micros), "{json}");
            let id = json["user_id"].as_str().unwrap().to_string();
            assert_eq!(ids.entry(c.user).or_insert_with(|| id.clone()), &id);
        }
    }

    #[test]
    fn traffic_peaks_in_the_evening() {
        let hour = |h: i64| daily_shape(1_755_388_800_000 + h * 3_600_000);
        assert!((hour(20) - 1.0).abs() < 1e-9);
        assert!((hour(8) - 0.25).abs() < 1e-9);
        assert!(hour(14) > hour(8) && hour(14) < hour(20));
    }
}
