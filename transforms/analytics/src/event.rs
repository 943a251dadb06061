//! The event model: raw `logs` records in, validated and enriched `events` out.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::config::{normalise, Config};
use crate::json::{flat_object, JsonObject, Scalar};
use crate::money::{decimal_to_micros, to_units};
use crate::text::trim;
use crate::time::{
    format_duration, format_utc, parse_timestamp_ms, window_start, MAX_TS_MS, MIN_TS_MS,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Impression,
    Click,
    Conversion,
}

impl Kind {
    const ALL: [Kind; 3] = [Kind::Impression, Kind::Click, Kind::Conversion];

    /// Any case, without allocating: this runs for every record.
    fn parse(s: &str) -> Option<Kind> {
        let s = trim(s);
        Kind::ALL
            .into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(s))
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Impression => "impression",
            Kind::Click => "click",
            Kind::Conversion => "conversion",
        }
    }
}

/// Why a record was sent to the dead-letter topic: a stable kind for
/// counting (the `error.kind` header) and a message for people (`error`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub kind: &'static str,
    pub message: String,
}

/// Longest `error` message: a reason quotes field values, which are long
/// only when the record is broken anyway.
pub const MAX_REASON_BYTES: usize = 512;

impl Rejection {
    pub fn new(kind: &'static str, message: impl Into<String>) -> Rejection {
        let mut message = message.into();
        if message.len() > MAX_REASON_BYTES {
            let mut end = MAX_REASON_BYTES - 3;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
            message.push_str("...");
        }
        Rejection { kind, message }
    }
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

fn reject<T>(kind: &'static str, message: impl Into<String>) -> Result<T, Rejection> {
    Err(Rejection::new(kind, message))
}

/// What is known of a record besides its value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecordMeta {
    /// The record's timestamp (the producer's or the broker's clock);
    /// 0 or less when unknown.
    pub timestamp_ms: i64,
    /// Key, value and headers, in bytes.
    pub size_bytes: usize,
}

/// A `logs` record as producers write it; every field optional here so that
/// a missing one gets our own message.
#[derive(Deserialize)]
struct RawEvent<'a> {
    #[serde(borrow, default)]
    event_id: Option<Text<'a>>,
    #[serde(borrow, default)]
    ts: Option<Text<'a>>,
    #[serde(borrow, default)]
    user_id: Option<Text<'a>>,
    #[serde(borrow, default)]
    campaign_id: Option<Text<'a>>,
    #[serde(borrow, default)]
    channel: Option<Text<'a>>,
    #[serde(borrow, default)]
    event: Option<Text<'a>>,
    #[serde(borrow, default)]
    cost: Option<&'a RawValue>,
    #[serde(borrow, default)]
    revenue: Option<&'a RawValue>,
}

/// A string borrowed from the record when it has no escapes: serde borrows
/// a `Cow` only outside an `Option`, so the option holds this.
#[derive(Deserialize)]
struct Text<'a>(#[serde(borrow)] Cow<'a, str>);

impl<'a> From<Text<'a>> for Cow<'a, str> {
    fn from(text: Text<'a>) -> Cow<'a, str> {
        text.0
    }
}

/// An `events` record: the raw fields normalised, plus what the rest of the
/// pipeline needs so that it never parses a timestamp or a decimal again.
#[derive(Debug, Clone, PartialEq)]
pub struct Event<'a> {
    pub event_id: Option<Cow<'a, str>>,
    pub ts: Cow<'a, str>,
    pub ts_ms: i64,
    pub window_start: i64,
    pub window_end: i64,
    pub user_id: Cow<'a, str>,
    pub campaign_id: Cow<'a, str>,
    pub channel: Cow<'a, str>,
    pub channel_group: &'static str,
    pub event: Kind,
    pub cost: f64,
    pub cost_micros: i64,
    /// The order value of a conversion, when the producer gives one.
    pub revenue_micros: Option<i64>,
    pub campaign_name: Option<&'a str>,
    pub target_cpa_micros: Option<i64>,
}

impl Event<'_> {
    /// `campaign|channel`: the record key, so every aggregation key lives in one partition.
    pub fn key(&self) -> String {
        format!("{}|{}", self.campaign_id, self.channel)
    }

    pub fn write_json(&self, out: &mut Vec<u8>) {
        out.clear();
        let mut json = JsonObject::new(out);
        if let Some(id) = &self.event_id {
            json.str("event_id", id);
        }
        json.str("ts", &self.ts)
            .i64("ts_ms", self.ts_ms)
            .i64("window_start", self.window_start)
            .i64("window_end", self.window_end)
            .str("user_id", &self.user_id)
            .str("campaign_id", &self.campaign_id)
            .str("channel", &self.channel)
            .str("channel_group", self.channel_group)
            .str("event", self.event.as_str())
            .value("cost", &self.cost)
            .i64("cost_micros", self.cost_micros);
        if let Some(revenue) = self.revenue_micros {
            json.value("revenue", &to_units(revenue))
                .i64("revenue_micros", revenue);
        }
        if let Some(name) = self.campaign_name {
            json.str("campaign_name", name);
        }
        if let Some(cpa) = self.target_cpa_micros {
            json.i64("target_cpa_micros", cpa);
        }
        json.end();
    }
}

/// Records over `MAX_RECORD_BYTES` are refused before they are parsed.
pub fn check_record_size(meta: RecordMeta, config: &Config) -> Result<(), Rejection> {
    if meta.size_bytes > config.max_record_bytes {
        return reject(
            "record_too_large",
            format!(
                "the record is {} bytes, over MAX_RECORD_BYTES ({})",
                meta.size_bytes, config.max_record_bytes
            ),
        );
    }
    Ok(())
}

/// Validates, normalises and enriches one raw `logs` value (JSON).
pub fn enrich<'a>(
    value: Option<&'a [u8]>,
    meta: RecordMeta,
    config: &'a Config,
) -> Result<Event<'a>, Rejection> {
    check_record_size(meta, config)?;
    let Some(value) = value else {
        return reject("no_value", "record has no value");
    };
    validate(parse_json(value)?, meta, config)
}

fn parse_json(value: &[u8]) -> Result<Fields<'_>, Rejection> {
    scan_json(value).map_or_else(|| serde_fields(value), Ok)
}

/// Any JSON, through serde_json, which words what is wrong with it.
fn serde_fields(value: &[u8]) -> Result<Fields<'_>, Rejection> {
    // serde would also take a JSON array for the struct, with a baffling message.
    if value.trim_ascii_start().first() != Some(&b'{')
        && serde_json::from_slice::<serde::de::IgnoredAny>(value).is_ok()
    {
        return reject("not_an_object", "event is not a JSON object");
    }
    let raw: RawEvent<'_> = match serde_json::from_slice(value) {
        Ok(raw) => raw,
        Err(e) => return reject("invalid_json", format!("invalid JSON: {e}")),
    };
    Ok(Fields {
        event_id: raw.event_id.map(Cow::from),
        ts: raw.ts.map(Cow::from),
        user_id: raw.user_id.map(Cow::from),
        campaign_id: raw.campaign_id.map(Cow::from),
        channel: raw.channel.map(Cow::from),
        event: raw.event.map(Cow::from),
        cost: raw.cost.map(|c| Cow::Borrowed(c.get())),
        revenue: raw.revenue.map(|c| Cow::Borrowed(c.get())),
    })
}

/// The common record, a flat object whose strings have no escapes, read
/// without serde: the same fields serde_json would give, or `None` for
/// anything else.
fn scan_json(value: &[u8]) -> Option<Fields<'_>> {
    let mut fields = Fields::default();
    let mut seen = 0u8;
    flat_object(value, |name, value| {
        let Some(i) = Fields::index(name) else {
            // serde ignores fields it does not know.
            return Some(());
        };
        // A field given twice is serde's error to word.
        (seen & 1 << i == 0).then_some(())?;
        seen |= 1 << i;
        *fields.slot(i) = match (value, Fields::is_money(i)) {
            (Scalar::Null, _) => None,
            (Scalar::Str { text, .. }, false) => Some(Cow::Borrowed(text)),
            // Money is kept as JSON text, quotes and all.
            (Scalar::Str { token, .. }, true) => Some(Cow::Borrowed(token)),
            (Scalar::Literal(text), true) => Some(Cow::Borrowed(text)),
            (Scalar::Literal(_), false) => return None,
        };
        Some(())
    })?;
    Some(fields)
}

/// A raw event's fields, from JSON or Avro; `cost` and `revenue` are JSON
/// text (a number or a quoted one) or a plain decimal.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Fields<'a> {
    pub event_id: Option<Cow<'a, str>>,
    pub ts: Option<Cow<'a, str>>,
    pub user_id: Option<Cow<'a, str>>,
    pub campaign_id: Option<Cow<'a, str>>,
    pub channel: Option<Cow<'a, str>>,
    pub event: Option<Cow<'a, str>>,
    pub cost: Option<Cow<'a, str>>,
    pub revenue: Option<Cow<'a, str>>,
}

impl<'a> Fields<'a> {
    /// The field's index, for [`Fields::slot`].
    pub fn index(name: &str) -> Option<usize> {
        // A match compares lengths first: this runs for every member read.
        Some(match name {
            "event_id" => 0,
            "ts" => 1,
            "user_id" => 2,
            "campaign_id" => 3,
            "channel" => 4,
            "event" => 5,
            "cost" => 6,
            "revenue" => 7,
            _ => return None,
        })
    }

    fn is_money(index: usize) -> bool {
        index >= 6
    }

    pub fn slot(&mut self, index: usize) -> &mut Option<Cow<'a, str>> {
        match index {
            0 => &mut self.event_id,
            1 => &mut self.ts,
            2 => &mut self.user_id,
            3 => &mut self.campaign_id,
            4 => &mut self.channel,
            5 => &mut self.event,
            6 => &mut self.cost,
            _ => &mut self.revenue,
        }
    }
}

/// Checks, normalises and enriches an event's fields, whatever their format.
pub(crate) fn validate<'a>(
    raw: Fields<'a>,
    meta: RecordMeta,
    config: &'a Config,
) -> Result<Event<'a>, Rejection> {
    for (field, v) in [
        ("event_id", &raw.event_id),
        ("ts", &raw.ts),
        ("user_id", &raw.user_id),
        ("campaign_id", &raw.campaign_id),
        ("channel", &raw.channel),
        ("event", &raw.event),
        ("cost", &raw.cost),
        ("revenue", &raw.revenue),
    ] {
        if let Some(v) = v.as_deref().filter(|v| v.len() > config.max_field_bytes) {
            return reject(
                "field_too_long",
                format!(
                    "field `{field}` is {} bytes, over MAX_FIELD_BYTES ({})",
                    v.len(),
                    config.max_field_bytes
                ),
            );
        }
    }
    let ts = required(raw.ts, "ts")?;
    let user_id = trimmed(required(raw.user_id, "user_id")?);
    let campaign_id = name(required(raw.campaign_id, "campaign_id")?);
    let channel = name(required(raw.channel, "channel")?);
    let kind_text = required(raw.event, "event")?;
    let cost_text = raw.cost.ok_or_else(|| missing("cost"))?;
    if cost_text == "null" {
        return Err(missing("cost"));
    }
    let revenue_text = raw.revenue.filter(|r| r != "null");
    for (field, v) in [
        ("user_id", &user_id),
        ("campaign_id", &campaign_id),
        ("channel", &channel),
    ] {
        if v.is_empty() {
            return reject("empty_field", format!("field `{field}` is empty"));
        }
    }
    let Some(kind) = Kind::parse(&kind_text) else {
        return reject(
            "unknown_event_type",
            format!("unknown event type `{kind_text}` (expected impression, click or conversion)"),
        );
    };
    let Some(ts_ms) = parse_timestamp_ms(&ts) else {
        return reject("bad_timestamp", format!("unparseable timestamp `{ts}`"));
    };
    if !(MIN_TS_MS..MAX_TS_MS).contains(&ts_ms) {
        return reject(
            "timestamp_out_of_range",
            format!("timestamp `{ts}` is outside 2000..2100"),
        );
    }
    if meta.timestamp_ms > 0 && ts_ms - meta.timestamp_ms > config.max_clock_skew_ms {
        return reject(
            "clock_skew",
            format!(
                "event time `{ts}` is {} ahead of the record's timestamp {}, more than MAX_CLOCK_SKEW ({}): a broken clock",
                format_duration(ts_ms - meta.timestamp_ms),
                format_utc(meta.timestamp_ms),
                format_duration(config.max_clock_skew_ms)
            ),
        );
    }
    let cost_micros = money_micros("cost", &cost_text)?;
    let revenue_micros = match &revenue_text {
        Some(text) => Some(money_micros("revenue", text)?),
        None => None,
    };
    let channel = canonical_channel(channel, config);
    let meta = config.campaigns.get(campaign_id.as_ref());
    let start = window_start(ts_ms, config.window_ms);
    Ok(Event {
        event_id: raw.event_id.map(trimmed),
        ts,
        ts_ms,
        window_start: start,
        window_end: start + config.window_ms,
        user_id,
        channel_group: channel_group(&channel),
        campaign_id,
        channel,
        event: kind,
        cost: to_units(cost_micros),
        cost_micros,
        revenue_micros,
        campaign_name: meta.and_then(|m| m.name.as_deref()),
        target_cpa_micros: meta.and_then(|m| m.target_cpa_micros),
    })
}

fn missing(field: &str) -> Rejection {
    Rejection::new("missing_field", format!("missing field `{field}`"))
}

fn required<'a>(v: Option<Cow<'a, str>>, field: &str) -> Result<Cow<'a, str>, Rejection> {
    v.ok_or_else(|| missing(field))
}

/// An amount of money, `cost` or `revenue`, in micro-units; a bad one is
/// rejected as `bad_cost` or `bad_revenue`.
fn money_micros(field: &'static str, text: &str) -> Result<i64, Rejection> {
    let kind = if field == "cost" {
        "bad_cost"
    } else {
        "bad_revenue"
    };
    // Numbers arrive as JSON numbers; some producers quote them.
    let number: Cow<str> = if text.starts_with('"') {
        serde_json::from_str(text).map_err(|e| Rejection::new(kind, format!("{field}: {e}")))?
    } else {
        Cow::Borrowed(text)
    };
    decimal_to_micros(&number)
        .map_err(|e| Rejection::new(kind, format!("{field} {}: {}", e.reason(), number.trim())))
}

fn trimmed(s: Cow<'_, str>) -> Cow<'_, str> {
    match s {
        Cow::Borrowed(b) => Cow::Borrowed(trim(b)),
        Cow::Owned(o) if trim(&o).len() == o.len() => Cow::Owned(o),
        Cow::Owned(o) => Cow::Owned(o.trim().to_string()),
    }
}

/// Normalised names without an allocation in the common, already-clean case.
fn name(s: Cow<'_, str>) -> Cow<'_, str> {
    let clean = |t: &str| {
        t.bytes()
            .all(|c| !c.is_ascii_uppercase() && c != b' ' && c != b'-')
    };
    match trimmed(s) {
        Cow::Borrowed(b) if clean(b) => Cow::Borrowed(b),
        other => Cow::Owned(normalise(&other)),
    }
}

fn canonical_channel<'a>(channel: Cow<'a, str>, config: &Config) -> Cow<'a, str> {
    if let Some(target) = config.channel_aliases.get(channel.as_ref()) {
        return Cow::Owned(target.clone());
    }
    let builtin = match channel.as_ref() {
        "facebook" | "fb" | "meta" | "facebook_ad" | "fb_ads" => "facebook_ads",
        "google" | "adwords" | "google_ad" | "gads" | "google_search" => "google_ads",
        "tik_tok" | "tt" | "tiktok_ads" => "tiktok",
        "e_mail" | "mail" | "newsletter" => "email",
        _ => return channel,
    };
    Cow::Borrowed(builtin)
}

/// The channel family analysts group spend by.
pub fn channel_group(channel: &str) -> &'static str {
    match channel {
        "email" => "owned",
        "facebook_ads" | "tiktok" => "paid_social",
        "google_ads" => "paid_search",
        _ => "other",
    }
}

/// The fields of an `events` record that aggregation needs.
#[derive(Debug, Deserialize)]
pub struct EventRef<'a> {
    #[serde(borrow)]
    pub campaign_id: Cow<'a, str>,
    #[serde(borrow)]
    pub channel: Cow<'a, str>,
    pub event: Kind,
    pub ts_ms: i64,
    pub cost_micros: i64,
    #[serde(default)]
    pub revenue_micros: i64,
    /// Empty in an event that names no user: it adds to no reach.
    #[serde(borrow, default)]
    pub user_id: Cow<'a, str>,
}

impl<'a> EventRef<'a> {
    pub fn parse(value: Option<&'a [u8]>) -> Result<EventRef<'a>, Rejection> {
        let value = value.ok_or_else(|| Rejection::new("no_value", "record has no value"))?;
        let event: EventRef = serde_json::from_slice(value)
            .map_err(|e| Rejection::new("not_an_event", format!("not an enriched event: {e}")))?;
        if event.cost_micros < 0 {
            return reject("bad_cost", "cost_micros is negative");
        }
        if event.revenue_micros < 0 {
            return reject("bad_revenue", "revenue_micros is negative");
        }
        Ok(event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn config() -> Config {
        Config::from_vars([
            ("CAMPAIGN_SPRING_SALE_TARGET_CPA", "10"),
            ("CAMPAIGN_SPRING_SALE_NAME", "Spring Sale"),
        ])
        .unwrap()
    }

    fn ok(json: &str) -> Event<'static> {
        let config = Box::leak(Box::new(config()));
        let value: &'static [u8] = Box::leak(json.as_bytes().to_vec().into_boxed_slice());
        enrich(Some(value), RecordMeta::default(), config).unwrap()
    }

    fn err(json: &str) -> String {
        enrich(Some(json.as_bytes()), RecordMeta::default(), &config())
            .unwrap_err()
            .message
    }

    #[test]
    fn enriches_a_seed_event() {
        let e = ok(
            r#"{"event_id":"e1","ts":"2025-08-17T14:46:04.169993","user_id":"u1",
            "campaign_id":" Spring_Sale ","channel":"FB","event":"Click","cost":1.25}"#,
        );
        assert_eq!(e.campaign_id, "spring_sale");
        assert_eq!(e.channel, "facebook_ads");
        assert_eq!(e.channel_group, "paid_social");
        assert_eq!(e.event, Kind::Click);
        assert_eq!(e.cost_micros, 1_250_000);
        assert_eq!(e.ts_ms, 1_755_441_964_169);
        assert_eq!(e.window_start, 1_755_441_960_000);
        assert_eq!(e.window_end, 1_755_442_020_000);
        assert_eq!(e.campaign_name, Some("Spring Sale"));
        assert_eq!(e.target_cpa_micros, Some(10_000_000));
        assert_eq!(e.key(), "spring_sale|facebook_ads");
    }

    #[test]
    fn quoted_costs_and_missing_event_ids_are_accepted() {
        let e = ok(
            r#"{"ts":"2025-08-17T14:46:04Z","user_id":"u","campaign_id":"x",
            "channel":"snapchat","event":"impression","cost":"0.000001"}"#,
        );
        assert_eq!(e.event_id, None);
        assert_eq!(e.cost_micros, 1);
        assert_eq!(e.channel_group, "other");
    }

    #[test]
    fn says_why_a_record_is_rejected() {
        assert!(err("{not json").starts_with("invalid JSON"));
        assert_eq!(err("[1,2]"), "event is not a JSON object");
        assert_eq!(err("\"text\""), "event is not a JSON object");
        let base =
            r#""ts":"2025-08-17T14:46:04","user_id":"u","campaign_id":"c","channel":"email""#;
        assert_eq!(
            err(&format!("{{{base},\"event\":\"click\"}}")),
            "missing field `cost`"
        );
        assert_eq!(
            err(&format!("{{{base},\"event\":\"view\",\"cost\":0}}")),
            "unknown event type `view` (expected impression, click or conversion)"
        );
        assert_eq!(
            err(&format!("{{{base},\"event\":\"click\",\"cost\":-1.5}}")),
            "cost is negative: -1.5"
        );
        assert_eq!(
            err(
                r#"{"ts":"soon","user_id":"u","campaign_id":"c","channel":"email","event":"click","cost":1}"#
            ),
            "unparseable timestamp `soon`"
        );
        assert_eq!(
            err(
                r#"{"ts":"1999-12-31T23:59:59Z","user_id":"u","campaign_id":"c","channel":"email","event":"click","cost":1}"#
            ),
            "timestamp `1999-12-31T23:59:59Z` is outside 2000..2100"
        );
        assert_eq!(
            err(
                r#"{"ts":"2025-08-17T14:46:04","user_id":"u","campaign_id":"  ","channel":"email","event":"click","cost":1}"#
            ),
            "field `campaign_id` is empty"
        );
        assert_eq!(
            enrich(None, RecordMeta::default(), &config())
                .unwrap_err()
                .message,
            "record has no value"
        );
    }

    fn seed_event(campaign: &str, ts: &str) -> String {
        format!(
            r#"{{"ts":"{ts}","user_id":"u","campaign_id":"{campaign}","channel":"email","event":"click","cost":1}}"#
        )
    }

    #[test]
    fn oversized_records_and_fields_are_rejected_with_the_limit() {
        let config = config();
        let small = seed_event("c", "2025-08-17T14:46:04");
        let meta = |size_bytes| RecordMeta {
            timestamp_ms: 0,
            size_bytes,
        };
        let e = enrich(Some(small.as_bytes()), meta(70_000), &config).unwrap_err();
        assert_eq!(e.kind, "record_too_large");
        assert_eq!(
            e.message,
            "the record is 70000 bytes, over MAX_RECORD_BYTES (65536)"
        );
        assert!(enrich(Some(small.as_bytes()), meta(65_536), &config).is_ok());

        let long = seed_event(&"x".repeat(257), "2025-08-17T14:46:04");
        let e = enrich(Some(long.as_bytes()), meta(long.len()), &config).unwrap_err();
        assert_eq!(e.kind, "field_too_long");
        assert_eq!(
            e.message,
            "field `campaign_id` is 257 bytes, over MAX_FIELD_BYTES (256)"
        );
        let fits = seed_event(&"x".repeat(256), "2025-08-17T14:46:04");
        assert!(enrich(Some(fits.as_bytes()), meta(fits.len()), &config).is_ok());
        let long_cost = small.replace("\"cost\":1", &format!("\"cost\":1.{}", "0".repeat(300)));
        let e = enrich(Some(long_cost.as_bytes()), meta(0), &config).unwrap_err();
        assert_eq!(
            e.message,
            "field `cost` is 302 bytes, over MAX_FIELD_BYTES (256)"
        );
    }

    #[test]
    fn events_far_ahead_of_their_record_are_a_broken_clock() {
        let config = config();
        let record_ts = 1_755_441_964_000; // 2025-08-17T14:46:04Z
        let at = |ts: &str| {
            let json = seed_event("c", ts);
            enrich(
                Some(json.as_bytes()),
                RecordMeta {
                    timestamp_ms: record_ts,
                    size_bytes: json.len(),
                },
                &config,
            )
            .map(|e| e.ts_ms)
        };
        assert_eq!(at("2025-08-18T14:46:04Z"), Ok(record_ts + 86_400_000));
        assert_eq!(
            at("2001-01-01T00:00:00Z"),
            Ok(978_307_200_000),
            "the past is late, not broken"
        );
        let e = at("2099-01-01T00:00:00Z").unwrap_err();
        assert_eq!(e.kind, "clock_skew");
        assert_eq!(
            e.message,
            "event time `2099-01-01T00:00:00Z` is 26799d 9h ahead of the record's timestamp \
             2025-08-17T14:46:04Z, more than MAX_CLOCK_SKEW (1d): a broken clock"
        );
        // No record timestamp (0): nothing to compare with.
        let json = seed_event("c", "2099-01-01T00:00:00Z");
        assert!(enrich(Some(json.as_bytes()), RecordMeta::default(), &config).is_ok());
    }

    #[test]
    fn long_reasons_are_cut() {
        let config = Config::from_vars([("MAX_FIELD_BYTES", "2000")]).unwrap();
        let json = seed_event("c", &"9".repeat(1000));
        let e = enrich(Some(json.as_bytes()), RecordMeta::default(), &config)
            .unwrap_err()
            .message;
        assert!(e.len() <= MAX_REASON_BYTES && e.ends_with("..."), "{e}");
        let r = Rejection::new("k", "é".repeat(400));
        assert!(r.message.len() <= MAX_REASON_BYTES);
    }

    #[test]
    fn enriched_events_feed_aggregation() {
        let e = ok(
            r#"{"ts":"2025-08-17T14:46:04Z","user_id":"u","campaign_id":"x",
            "channel":"tt","event":"conversion","cost":12.5}"#,
        );
        let mut buf = Vec::new();
        e.write_json(&mut buf);
        let back = EventRef::parse(Some(&buf)).unwrap();
        assert_eq!(back.channel, "tiktok");
        assert_eq!(back.event, Kind::Conversion);
        assert_eq!(back.cost_micros, 12_500_000);
        assert_eq!(back.ts_ms, e.ts_ms);
        assert_eq!((back.revenue_micros, back.user_id.as_ref()), (0, "u"));
    }

    #[test]
    fn revenue_is_exact_optional_and_checked() {
        let base = r#""ts":"2025-08-17T14:46:04Z","user_id":"u","campaign_id":"x","channel":"email","event":"conversion","cost":2"#;
        let e = ok(&format!(r#"{{{base},"revenue":"49.990001"}}"#));
        assert_eq!(e.revenue_micros, Some(49_990_001));
        let mut buf = Vec::new();
        e.write_json(&mut buf);
        let json: serde_json::Value = serde_json::from_slice(&buf).unwrap();
        assert_eq!(json["revenue_micros"], 49_990_001);
        assert_eq!(json["revenue"], 49.990001);
        assert_eq!(
            EventRef::parse(Some(&buf)).unwrap().revenue_micros,
            49_990_001
        );
        for absent in [
            format!("{{{base}}}"),
            format!(r#"{{{base},"revenue":null}}"#),
        ] {
            let e = ok(&absent);
            assert_eq!(e.revenue_micros, None);
            e.write_json(&mut buf);
            assert!(!String::from_utf8_lossy(&buf).contains("revenue"));
        }
        assert_eq!(
            err(&format!(r#"{{{base},"revenue":-5}}"#)),
            "revenue is negative: -5"
        );
        let e = enrich(
            Some(format!(r#"{{{base},"revenue":"lots"}}"#).as_bytes()),
            RecordMeta::default(),
            &config(),
        )
        .unwrap_err();
        assert_eq!(
            (e.kind, e.message.as_str()),
            (
                "bad_revenue",
                "revenue is not a finite decimal number: lots"
            )
        );
    }

    /// JSON objects near the records producers write: known and unknown
    /// fields, repeated ones, strings with escapes, controls and non-ASCII
    /// text, numbers good and bad, literals, nesting and odd whitespace.
    fn near_records() -> impl Strategy<Value = String> {
        let name = prop::sample::select(vec![
            "event_id",
            "ts",
            "user_id",
            "campaign_id",
            "channel",
            "event",
            "cost",
            "revenue",
            "extra",
            "Ts",
            "ts ",
            "\\u0074s",
        ]);
        let value = prop_oneof![
            "[a-z0-9_ :.-]{0,12}".prop_map(|t| format!("\"{t}\"")),
            "[a-zé€\\\\\"\\n\\t\\x01/]{0,6}".prop_map(|t| format!("\"{t}\"")),
            r#"-?(0|[1-9][0-9]{0,3})(\.[0-9]{0,3})?([eE][+-]?[0-9]{0,2})?"#,
            r#"[-+.0-9eE]{1,5}"#,
            prop::sample::select(vec!["null", "true", "false", "nul", "[1]", r#"{"a":1}"#])
                .prop_map(String::from),
        ];
        let ws = prop::sample::select(vec!["", " ", "\n\t", "\r", "\u{c}"]);
        prop::collection::vec((name, ws.clone(), value, ws.clone()), 0..10).prop_flat_map(
            move |members| {
                let ws = ws.clone();
                (
                    Just(members),
                    ws.clone(),
                    ws,
                    prop::sample::select(vec!["{", "[", ""]),
                )
                    .prop_map(|(members, lead, tail, open)| {
                        let body: Vec<String> = members
                            .iter()
                            .map(|(n, w1, v, w2)| format!("{w1}\"{n}\"{w2}:{w1}{v}{w2}"))
                            .collect();
                        let close = if open == "{" { "}" } else { "" };
                        format!("{lead}{open}{}{close}{tail}", body.join(","))
                    })
            },
        )
    }

    proptest! {
        /// The fast reader gives serde_json's fields whenever it reads a
        /// value, and a value it leaves still gets serde_json's answer.
        #[test]
        fn the_fast_reader_agrees_with_serde_json(json in near_records()) {
            let serde = serde_fields(json.as_bytes());
            if let Some(fields) = scan_json(json.as_bytes()) {
                prop_assert_eq!(Ok(fields), serde.clone(), "{}", json);
            }
            prop_assert_eq!(parse_json(json.as_bytes()), serde);
        }
    }

    #[test]
    fn generated_records_take_the_fast_reader() {
        let plain = r#"{"event_id":"e1","ts":"2025-08-17T14:46:04.169993","user_id":"u1","campaign_id":"spring_sale","channel":"tiktok","event":"conversion","cost":12.50,"revenue":"49.990001"}"#;
        let fields = scan_json(plain.as_bytes()).expect("a plain record is read fast");
        assert_eq!(fields, serde_fields(plain.as_bytes()).unwrap());
        assert_eq!(fields.cost.as_deref(), Some("12.50"));
        assert_eq!(fields.revenue.as_deref(), Some(r#""49.990001""#));
        // Spaced out, with a field of another producer's: still fast.
        let spaced = " {\n \"ts\" : \"x\" , \"source\": 3 ,\"cost\":null}\r\n";
        let fields = scan_json(spaced.as_bytes()).expect("spacing is read fast");
        assert_eq!((fields.ts.as_deref(), fields.cost), (Some("x"), None));
        // Escapes, nesting and repeats are left to serde_json.
        for other in [
            r#"{"ts":"a\"b"}"#,
            r#"{"ts":"x","extra":{"a":1}}"#,
            r#"{"ts":"x","ts":"y"}"#,
            r#"{"ts":null,"ts":"y"}"#,
            r#"{"user_id":5}"#,
            "[1]",
        ] {
            assert!(scan_json(other.as_bytes()).is_none(), "{other}");
        }
    }
}
