//! `/metrics` in the OpenMetrics text format, through Prometheus's own
//! client library: the merge's counters, the source's state, and per
//! campaign the last hour's figures (in event time, as the alerts see
//! them), today's pacing and the active alerts. The figures are the
//! state's at the scrape, so the registry is filled then.

use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::{Shared, State};
use crate::pacing;
use crate::view::{self, Selection};

/// What `/metrics` answers with.
pub(super) const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Labels, by name.
type Labels = Vec<(&'static str, String)>;

/// A gauge of a fractional value.
type Real = Gauge<f64, AtomicU64>;

/// One figure of a campaign's totals or pacing, as a metric's value.
type Figure<T> = fn(&T) -> f64;

impl Shared {
    /// Every metric, as a scrape reads it.
    pub(super) fn metrics(&self) -> String {
        let state = self.state.read();
        let mut registry = Registry::default();
        let s = state.merger.stats;
        for (name, help, n) in [
            (
                "dashboard_panes_read",
                "Panes read from the source.",
                s.panes,
            ),
            (
                "dashboard_panes_duplicate",
                "Re-emitted panes dropped by identity.",
                s.duplicates,
            ),
            (
                "dashboard_panes_late",
                "Panes carrying records the transform found late.",
                s.late_panes,
            ),
            (
                "dashboard_panes_expired",
                "Panes older than the retention, not kept.",
                s.expired,
            ),
            (
                "dashboard_records_unreadable",
                "Records of the source that are not panes.",
                state.source.unreadable,
            ),
        ] {
            registry.register(name, help, counter(n));
        }
        // Absent, as Prometheus has it, until the source has said.
        if let Some(lag) = state.source.lag {
            registry.register(
                "dashboard_consumer_lag",
                "Records in the source not yet merged.",
                gauge(lag),
            );
        }
        for (name, help, value) in [
            (
                "dashboard_source_connected",
                "1 while the source is reachable.",
                i64::from(state.source.connected),
            ),
            (
                "dashboard_ready",
                "1 once everything the source held at the start is merged.",
                i64::from(state.source.ready),
            ),
            (
                "dashboard_windows",
                "Windows kept.",
                state.merger.len() as i64,
            ),
            (
                "dashboard_clients_connected",
                "Pages receiving live updates.",
                self.streams() as i64,
            ),
        ] {
            registry.register(name, help, gauge(value));
        }
        let dead_letters = Family::<Labels, Counter>::default();
        for (kind, n) in &state.source.dlq.by_reason {
            dead_letters
                .get_or_create(&vec![("kind", kind.clone())])
                .inc_by(*n);
        }
        registry.register(
            "dashboard_dead_letters",
            "Records of the dead-letter topic, by kind.",
            dead_letters,
        );
        self.campaign_metrics(&state, &mut registry);
        let mut out = String::new();
        encode(&mut out, &registry).expect("writing to a String cannot fail");
        out
    }

    /// Per campaign: the last hour's figures, today's pacing, and the
    /// active alerts; and the webhook's counts.
    fn campaign_metrics(&self, state: &State, registry: &mut Registry) {
        let campaign = |c: &str| vec![("campaign", c.to_string())];
        let hour = state.merger.watermark().map_or_else(Vec::new, |now| {
            let selection = Selection {
                from_ms: Some(now - 3_600_000),
                top: view::Top {
                    n: 10_000,
                    ..view::Top::default()
                },
                ..Selection::default()
            };
            let hot = state
                .merger
                .windows()
                .filter(|w| w.window_start >= now - 3_600_000);
            view::top(hot, &state.merger, &selection)
        });
        let figures: [(&str, &str, Figure<view::Totals>); 6] = [
            ("impressions", "Impressions", |t| t.impressions as f64),
            ("clicks", "Clicks", |t| t.clicks as f64),
            ("conversions", "Conversions", |t| t.conversions as f64),
            ("spend", "Spend (currency units)", |t| t.spend),
            ("revenue", "Revenue (currency units)", |t| t.revenue),
            ("reach", "Distinct users reached (a sketch union)", |t| {
                t.reach as f64
            }),
        ];
        for (name, what, figure) in figures {
            let family = Family::<Labels, Real>::default();
            for row in &hour {
                let c = row.campaign.as_deref().unwrap_or("");
                family.get_or_create(&campaign(c)).set(figure(&row.totals));
            }
            registry.register(
                format!("dashboard_campaign_{name}_1h"),
                format!("{what} in the last hour of event time."),
                family,
            );
        }
        let pacing = pacing::pacing(
            &state.merger,
            &state.history,
            &self.settings.thresholds.pacing_tz,
        );
        let paced: [(&str, &str, Figure<pacing::Pacing>); 3] = [
            (
                "daily_budget",
                "The campaign's daily budget, in currency units.",
                |p| p.daily_budget_micros as f64 / 1e6,
            ),
            (
                "spend_today",
                "Spend so far on the day being paced (event time), in currency units.",
                |p| p.spend_micros as f64 / 1e6,
            ),
            (
                "pacing_ratio",
                "Spend so far over what even pacing plans by now: 1 is on plan.",
                |p| p.pacing,
            ),
        ];
        for (name, help, figure) in paced {
            let family = Family::<Labels, Real>::default();
            for p in &pacing {
                family.get_or_create(&campaign(&p.campaign)).set(figure(p));
            }
            registry.register(format!("dashboard_campaign_{name}"), help, family);
        }
        let alerts = Family::<Labels, Gauge>::default();
        for a in state.alerts.active() {
            let mut labels = campaign(&a.campaign);
            labels.push(("kind", a.kind.to_string()));
            alerts.get_or_create(&labels).set(1);
        }
        registry.register(
            "dashboard_alert_active",
            "1 for each alert that holds, by campaign and kind.",
            alerts,
        );
        if let Some(webhook) = self.webhook.get() {
            let c = &webhook.counts;
            for (name, help, n) in [
                (
                    "dashboard_alert_webhook_sent",
                    "Alert changes the webhook accepted.",
                    &c.sent,
                ),
                (
                    "dashboard_alert_webhook_failed",
                    "Alert changes given up on after every retry.",
                    &c.failed,
                ),
                (
                    "dashboard_alert_webhook_dropped",
                    "Alert changes dropped because the queue was full.",
                    &c.dropped,
                ),
            ] {
                registry.register(name, help, counter(n.load(Ordering::Relaxed)));
            }
        }
    }
}

fn counter(n: u64) -> Counter {
    let counter = Counter::default();
    counter.inc_by(n);
    counter
}

fn gauge(value: i64) -> Gauge {
    let gauge = Gauge::default();
    gauge.set(value);
    gauge
}
