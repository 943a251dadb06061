//! The event model: raw `logs` records in, validated and enriched `events` out.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::config::{normalise, Config};
use crate::json::JsonObject;
use crate::money::{decimal_to_micros, to_units};
use crate::time::{parse_timestamp_ms, window_start, MAX_TS_MS, MIN_TS_MS};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Impression,
    Click,
    Conversion,
}

impl Kind {
    fn parse(s: &str) -> Option<Kind> {
        match s.trim().to_ascii_lowercase().as_str() {
            "impression" => Some(Kind::Impression),
            "click" => Some(Kind::Click),
            "conversion" => Some(Kind::Conversion),
            _ => None,
        }
    }
}

/// Why a record was sent to the dead-letter topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection(pub String);

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn reject<T>(reason: impl Into<String>) -> Result<T, Rejection> {
    Err(Rejection(reason.into()))
}

/// A `logs` record as producers write it; every field optional here so that
/// a missing one gets our own message.
#[derive(Deserialize)]
struct RawEvent<'a> {
    #[serde(borrow, default)]
    event_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    ts: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    user_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    campaign_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    channel: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    event: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    cost: Option<&'a RawValue>,
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
            .value("event", &self.event)
            .value("cost", &self.cost)
            .i64("cost_micros", self.cost_micros);
        if let Some(name) = self.campaign_name {
            json.str("campaign_name", name);
        }
        if let Some(cpa) = self.target_cpa_micros {
            json.i64("target_cpa_micros", cpa);
        }
        json.end();
    }
}

/// Validates, normalises and enriches one raw `logs` value.
pub fn enrich<'a>(value: Option<&'a [u8]>, config: &'a Config) -> Result<Event<'a>, Rejection> {
    let Some(value) = value else {
        return reject("record has no value");
    };
    // serde would also take a JSON array for the struct, with a baffling message.
    if value.trim_ascii_start().first() != Some(&b'{')
        && serde_json::from_slice::<serde::de::IgnoredAny>(value).is_ok()
    {
        return reject("event is not a JSON object");
    }
    let raw: RawEvent<'a> = match serde_json::from_slice(value) {
        Ok(raw) => raw,
        Err(e) => return reject(format!("invalid JSON: {e}")),
    };
    let ts = required(raw.ts, "ts")?;
    let user_id = trimmed(required(raw.user_id, "user_id")?);
    let campaign_id = name(required(raw.campaign_id, "campaign_id")?);
    let channel = name(required(raw.channel, "channel")?);
    let kind_text = required(raw.event, "event")?;
    let cost_text = raw.cost.ok_or_else(|| missing("cost"))?.get();
    if cost_text == "null" {
        return Err(missing("cost"));
    }
    for (field, v) in [
        ("user_id", &user_id),
        ("campaign_id", &campaign_id),
        ("channel", &channel),
    ] {
        if v.is_empty() {
            return reject(format!("field `{field}` is empty"));
        }
    }
    let Some(kind) = Kind::parse(&kind_text) else {
        return reject(format!(
            "unknown event type `{kind_text}` (expected impression, click or conversion)"
        ));
    };
    let Some(ts_ms) = parse_timestamp_ms(&ts) else {
        return reject(format!("unparseable timestamp `{ts}`"));
    };
    if !(MIN_TS_MS..MAX_TS_MS).contains(&ts_ms) {
        return reject(format!("timestamp `{ts}` is outside 2000..2100"));
    }
    let cost_micros = cost_micros(cost_text)?;
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
        campaign_name: meta.and_then(|m| m.name.as_deref()),
        target_cpa_micros: meta.and_then(|m| m.target_cpa_micros),
    })
}

fn missing(field: &str) -> Rejection {
    Rejection(format!("missing field `{field}`"))
}

fn required<'a>(v: Option<Cow<'a, str>>, field: &str) -> Result<Cow<'a, str>, Rejection> {
    v.ok_or_else(|| missing(field))
}

fn cost_micros(text: &str) -> Result<i64, Rejection> {
    // Numbers arrive as JSON numbers; some producers quote them.
    let number: Cow<str> = if text.starts_with('"') {
        serde_json::from_str(text).map_err(|e| Rejection(format!("cost: {e}")))?
    } else {
        Cow::Borrowed(text)
    };
    decimal_to_micros(&number).map_err(|e| Rejection(format!("{e}: {}", number.trim())))
}

fn trimmed(s: Cow<'_, str>) -> Cow<'_, str> {
    match s {
        Cow::Borrowed(b) => Cow::Borrowed(b.trim()),
        Cow::Owned(o) if o.trim().len() == o.len() => Cow::Owned(o),
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
}

impl<'a> EventRef<'a> {
    pub fn parse(value: Option<&'a [u8]>) -> Result<EventRef<'a>, Rejection> {
        let value = value.ok_or_else(|| Rejection("record has no value".into()))?;
        let event: EventRef = serde_json::from_slice(value)
            .map_err(|e| Rejection(format!("not an enriched event: {e}")))?;
        if event.cost_micros < 0 {
            return reject("cost_micros is negative");
        }
        Ok(event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        enrich(Some(value), config).unwrap()
    }

    fn err(json: &str) -> String {
        enrich(Some(json.as_bytes()), &config()).unwrap_err().0
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
            enrich(None, &config()).unwrap_err().0,
            "record has no value"
        );
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
    }
}
