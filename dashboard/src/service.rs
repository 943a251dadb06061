//! The running dashboard: a thread merges what the source reads and
//! pushes each change to every connected page; Warp serves the page, the
//! API, server-sent updates, health and metrics.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use futures_util::StreamExt;
use http_access::{Access, Listen};
use serde::Serialize;
use tokio::sync::broadcast;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::wrappers::BroadcastStream;
use warp::http::StatusCode;
use warp::{Filter, Rejection, Reply};

use crate::pacing::{self, Alerts, Thresholds};
use crate::source::{DeadLetter, Source, SourceEvent};
use crate::view::{self, Filter as Query, Selection, WindowView};
use crate::webhook::Webhook;
use analytics::merge::{Added, Merger, Retention, WindowKey};

#[derive(Debug, Clone)]
pub struct Settings {
    pub lateness_ms: i64,
    pub retention: Retention,
    /// Most pages (server-sent streams) at once.
    pub max_streams: usize,
    pub thresholds: Thresholds,
    /// Where alerts' starts and ends are posted.
    pub alert_webhook: Option<String>,
}

impl Default for Settings {
    /// The transform's default lateness, a day of windows, at most 500,000
    /// of them, and 1,000 live pages.
    fn default() -> Settings {
        Settings {
            lateness_ms: analytics::config::DEFAULT_LATENESS_MS,
            retention: Retention {
                span_ms: 24 * 3_600_000,
                max_windows: 500_000,
            },
            max_streams: 1000,
            thresholds: Thresholds::default(),
            alert_webhook: None,
        }
    }
}

/// What the dashboard holds, for a progress line.
#[derive(Debug, Clone, Copy, Default)]
pub struct Figures {
    pub windows: usize,
    /// The records of the panes merged, once each.
    pub records: u64,
    /// The newest event time merged.
    pub newest_event_ms: i64,
    pub dead_letters: u64,
}

/// A running dashboard: see [`serve`].
pub struct Served {
    pub shared: Arc<Shared>,
    pub address: SocketAddr,
    /// Ends once `stop` is set and the last page is answered.
    pub server: tokio::task::JoinHandle<()>,
}

/// The whole dashboard: `source` and the merge on threads of their own,
/// the page and the API on `listen` (port 0 picks a free one) as `access`
/// allows, served on `runtime` until `stop` is set.
pub fn serve(
    runtime: &tokio::runtime::Runtime,
    settings: Settings,
    source: Box<dyn Source>,
    listen: Listen<'_>,
    access: &Access,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<Served> {
    let webhook = settings
        .alert_webhook
        .as_deref()
        .map(Webhook::start)
        .transpose()?;
    let shared = Shared::new(settings, source.describe());
    if let Some(webhook) = webhook {
        shared.post_alerts_to(webhook);
    }
    let (address, server) = http_access::serve(
        runtime,
        listen.with_pages(),
        access,
        warp::service(routes(shared.clone())),
        shutdown::until_set(stop.clone()),
    )?;
    start(shared.clone(), source, stop);
    Ok(Served {
        shared,
        address,
        server,
    })
}

/// How many dead letters the page lists.
const DEAD_LETTER_SAMPLES: usize = 5;

/// Most kinds of dead letters counted apart; the rest count as `other`.
const DEAD_LETTER_KINDS: usize = 64;

/// The dead-letter topic as the page shows it: counts by kind, the latest.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DeadLetters {
    pub total: u64,
    pub by_reason: BTreeMap<String, u64>,
    /// The latest, newest first.
    pub samples: VecDeque<DeadLetter>,
}

impl DeadLetters {
    fn add(&mut self, dead: DeadLetter) {
        self.total += 1;
        let kind = if self.by_reason.len() < DEAD_LETTER_KINDS
            || self.by_reason.contains_key(&dead.kind)
        {
            dead.kind.clone()
        } else {
            "other".to_string()
        };
        *self.by_reason.entry(kind).or_default() += 1;
        if self.samples.len() == DEAD_LETTER_SAMPLES {
            self.samples.pop_back();
        }
        self.samples.push_front(dead);
    }
}

/// The source's state, as the page shows it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SourceState {
    pub source: String,
    pub connected: bool,
    /// Whether everything the source held when the dashboard started has
    /// been merged: until then the page shows part of the history.
    pub ready: bool,
    /// Records in the source not yet merged; `None` until the source has
    /// said where it stands.
    pub lag: Option<i64>,
    pub unreadable: u64,
    pub last_error: Option<String>,
    /// Why the broker refuses the source (credentials, certificates),
    /// until it connects.
    pub refused: Option<String>,
    /// The transform version that wrote the latest pane, when known.
    pub version: Option<String>,
    /// Panes read, by their format: shows a format's rollout.
    pub pane_formats: BTreeMap<u32, u64>,
    pub dlq: DeadLetters,
}

pub struct State {
    pub merger: Merger,
    pub source: SourceState,
    pub alerts: Alerts,
}

pub struct Shared {
    pub state: RwLock<State>,
    updates: broadcast::Sender<Arc<str>>,
    streams: AtomicUsize,
    settings: Settings,
    webhook: OnceLock<Webhook>,
}

/// Alerts are checked at most this often while a backlog is merged, and
/// whenever the merge has caught up.
const ALERT_CHECK: Duration = Duration::from_secs(1);

/// What a page receives on every change: the windows that changed, and the
/// source's state.
#[derive(Serialize)]
struct Update<'a> {
    windows: Vec<WindowView>,
    source: &'a SourceState,
}

impl Shared {
    pub fn new(settings: Settings, source: String) -> Arc<Shared> {
        let (updates, _) = broadcast::channel(1024);
        Arc::new(Shared {
            state: RwLock::new(State {
                merger: Merger::new(settings.lateness_ms, settings.retention),
                source: SourceState {
                    source,
                    ..SourceState::default()
                },
                alerts: Alerts::default(),
            }),
            updates,
            streams: AtomicUsize::new(0),
            settings,
            webhook: OnceLock::new(),
        })
    }

    /// Where alerts' starts and ends are posted; set once, before merging.
    pub fn post_alerts_to(&self, webhook: Webhook) {
        let _ = self.webhook.set(webhook);
    }

    /// Checks the alert rules at the merge's "now" and posts what changed.
    fn check_alerts(&self, state: &mut State) {
        let Some(now) = state.merger.watermark() else {
            return;
        };
        let holding = pacing::conditions(&state.merger, &self.settings.thresholds, &state.alerts);
        for event in state.alerts.update(now, holding) {
            tracing::info!(
                campaign = %event.alert.campaign,
                kind = event.alert.kind,
                "alert {}: {}",
                event.state,
                event.alert.message
            );
            if let Some(webhook) = self.webhook.get() {
                webhook.post(event);
            }
        }
    }

    pub fn figures(&self) -> Figures {
        let state = self.state.read().expect("not poisoned");
        Figures {
            windows: state.merger.len(),
            records: state.merger.stats.records,
            newest_event_ms: state.merger.stats.newest_event_ms,
            dead_letters: state.source.dlq.total,
        }
    }

    pub fn streams(&self) -> usize {
        self.streams.load(Ordering::Relaxed)
    }

    /// Applies what the source reads, until it stops; after each run of
    /// events at hand, one update goes to every page.
    pub fn merge_from(&self, events: Receiver<SourceEvent>) {
        let Ok(mut event) = events.recv() else {
            return;
        };
        let mut checked = std::time::Instant::now();
        loop {
            let mut changed: BTreeSet<WindowKey> = BTreeSet::new();
            let mut source_changed = false;
            let mut state = self.state.write().expect("not poisoned");
            // Bounded, so that pages see progress while a backlog is read.
            let mut pending = Some(event);
            for _ in 0..10_000 {
                let Some(event) = pending.take() else {
                    break;
                };
                match event {
                    SourceEvent::Pane {
                        partition,
                        pane,
                        version,
                    } => {
                        if let Added::Counted { key, .. } = state.merger.add(partition, &pane) {
                            changed.insert(key);
                        }
                        if version.is_some() && state.source.version != version {
                            state.source.version = version;
                            source_changed = true;
                        }
                        let read = state.source.pane_formats.entry(pane.format).or_default();
                        source_changed |= *read == 0;
                        *read += 1;
                    }
                    SourceEvent::DeadLetter(dead) => {
                        state.source.dlq.add(*dead);
                        source_changed = true;
                    }
                    SourceEvent::CaughtUp => {
                        source_changed |= !state.source.ready;
                        state.source.ready = true;
                    }
                    SourceEvent::Unreadable { reason } => {
                        state.source.unreadable += 1;
                        state.source.last_error = Some(reason);
                        source_changed = true;
                    }
                    SourceEvent::Connected(c) => {
                        source_changed |= state.source.connected != c;
                        state.source.connected = c;
                        if c {
                            state.source.refused = None;
                        }
                    }
                    SourceEvent::Refused(why) => {
                        source_changed |= state.source.refused.as_ref() != Some(&why);
                        state.source.connected = false;
                        state.source.refused = Some(why);
                    }
                    SourceEvent::Lag(lag) => {
                        source_changed |= state.source.lag != Some(lag);
                        state.source.lag = Some(lag);
                    }
                }
                pending = events.try_recv().ok();
            }
            if !changed.is_empty() && (pending.is_none() || checked.elapsed() >= ALERT_CHECK) {
                checked = std::time::Instant::now();
                self.check_alerts(&mut state);
            }
            if !changed.is_empty() || source_changed {
                let windows = changed
                    .iter()
                    .filter_map(|k| state.merger.get(k))
                    .map(|w| WindowView::new(&state.merger, w))
                    .collect();
                let update = Update {
                    windows,
                    source: &state.source,
                };
                let json: Arc<str> = serde_json::to_string(&update)
                    .expect("views serialize")
                    .into();
                drop(state);
                // No page connected is fine.
                let _ = self.updates.send(json);
            } else {
                drop(state);
            }
            // An event taken but not applied in this run starts the next.
            event = match pending {
                Some(next) => next,
                None => match events.recv() {
                    Ok(next) => next,
                    Err(_) => return,
                },
            };
        }
    }

    fn metrics(&self) -> String {
        let state = self.state.read().expect("not poisoned");
        let s = state.merger.stats;
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, value: String| {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
            ));
        };
        metric(
            "dashboard_panes_read_total",
            "counter",
            "Panes read from the source.",
            s.panes.to_string(),
        );
        metric(
            "dashboard_panes_duplicate_total",
            "counter",
            "Re-emitted panes dropped by identity.",
            s.duplicates.to_string(),
        );
        metric(
            "dashboard_panes_late_total",
            "counter",
            "Panes carrying records the transform found late.",
            s.late_panes.to_string(),
        );
        metric(
            "dashboard_panes_expired_total",
            "counter",
            "Panes older than the retention, not kept.",
            s.expired.to_string(),
        );
        metric(
            "dashboard_records_unreadable_total",
            "counter",
            "Records of the source that are not panes.",
            state.source.unreadable.to_string(),
        );
        // Absent, as Prometheus has it, until the source has said.
        if let Some(lag) = state.source.lag {
            metric(
                "dashboard_consumer_lag",
                "gauge",
                "Records in the source not yet merged.",
                lag.to_string(),
            );
        }
        metric(
            "dashboard_source_connected",
            "gauge",
            "1 while the source is reachable.",
            u8::from(state.source.connected).to_string(),
        );
        metric(
            "dashboard_ready",
            "gauge",
            "1 once everything the source held at the start is merged.",
            u8::from(state.source.ready).to_string(),
        );
        metric(
            "dashboard_windows",
            "gauge",
            "Windows kept.",
            state.merger.len().to_string(),
        );
        metric(
            "dashboard_clients_connected",
            "gauge",
            "Pages receiving live updates.",
            self.streams().to_string(),
        );
        let dlq = &state.source.dlq;
        out.push_str(
            "# HELP dashboard_dead_letters_total Records of the dead-letter topic, by kind.\n\
             # TYPE dashboard_dead_letters_total counter\n",
        );
        for (kind, n) in &dlq.by_reason {
            out.push_str(&format!(
                "dashboard_dead_letters_total{{kind=\"{}\"}} {n}\n",
                label_value(kind)
            ));
        }
        self.campaign_metrics(&state, &mut out);
        out
    }

    /// Per campaign: the last hour's figures (in event time, as the
    /// alerts see them), today's pacing, and the active alerts.
    fn campaign_metrics(&self, state: &State, out: &mut String) {
        let mut family = |name: &str, help: &str, rows: Vec<(String, String)>| {
            out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} gauge\n"));
            for (labels, value) in rows {
                out.push_str(&format!("{name}{{{labels}}} {value}\n"));
            }
        };
        let label = |campaign: &str| format!("campaign=\"{}\"", label_value(campaign));
        let hour = state.merger.watermark().map_or_else(Vec::new, |now| {
            let selection = Selection {
                from_ms: Some(now - 3_600_000),
                top: view::Top {
                    n: 10_000,
                    ..view::Top::default()
                },
                ..Selection::default()
            };
            view::top(&state.merger, &selection)
        });
        let per_campaign = |f: fn(&view::Totals) -> String| {
            hour.iter()
                .map(|r| (label(r.campaign.as_deref().unwrap_or("")), f(&r.totals)))
                .collect()
        };
        let figures: [(&str, &str, Figure<view::Totals>); 6] = [
            ("impressions", "Impressions", |t| t.impressions.to_string()),
            ("clicks", "Clicks", |t| t.clicks.to_string()),
            ("conversions", "Conversions", |t| t.conversions.to_string()),
            ("spend", "Spend (currency units)", |t| t.spend.to_string()),
            ("revenue", "Revenue (currency units)", |t| {
                t.revenue.to_string()
            }),
            ("reach", "Distinct users reached (a sketch union)", |t| {
                t.reach.to_string()
            }),
        ];
        for (name, what, figure) in figures {
            family(
                &format!("dashboard_campaign_{name}_1h"),
                &format!("{what} in the last hour of event time."),
                per_campaign(figure),
            );
        }
        let pacing = pacing::pacing(&state.merger, &self.settings.thresholds.pacing_tz);
        let paced: [(&str, &str, Figure<pacing::Pacing>); 3] = [
            (
                "daily_budget",
                "The campaign's daily budget, in currency units.",
                |p| (p.daily_budget_micros as f64 / 1e6).to_string(),
            ),
            (
                "spend_today",
                "Spend so far on the day being paced (UTC, event time), in currency units.",
                |p| (p.spend_micros as f64 / 1e6).to_string(),
            ),
            (
                "pacing_ratio",
                "Spend so far over what even pacing plans by now: 1 is on plan.",
                |p| p.pacing.to_string(),
            ),
        ];
        for (name, help, figure) in paced {
            family(
                &format!("dashboard_campaign_{name}"),
                help,
                pacing
                    .iter()
                    .map(|p| (label(&p.campaign), figure(p)))
                    .collect(),
            );
        }
        family(
            "dashboard_alert_active",
            "1 for each alert that holds, by campaign and kind.",
            state
                .alerts
                .active()
                .map(|a| {
                    (
                        format!("{},kind=\"{}\"", label(&a.campaign), a.kind),
                        "1".to_string(),
                    )
                })
                .collect(),
        );
        if let Some(webhook) = self.webhook.get() {
            let c = &webhook.counts;
            for (name, help, n) in [
                (
                    "dashboard_alert_webhook_sent_total",
                    "Alert changes the webhook accepted.",
                    &c.sent,
                ),
                (
                    "dashboard_alert_webhook_failed_total",
                    "Alert changes given up on after every retry.",
                    &c.failed,
                ),
                (
                    "dashboard_alert_webhook_dropped_total",
                    "Alert changes dropped because the queue was full.",
                    &c.dropped,
                ),
            ] {
                out.push_str(&format!(
                    "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}\n",
                    n.load(Ordering::Relaxed)
                ));
            }
        }
    }
}

/// One figure of a campaign's totals or pacing, as a metric's value.
type Figure<T> = fn(&T) -> String;

/// A Prometheus label value: backslash, quote and newline escaped.
fn label_value(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Runs `source` and the merge on threads of their own. A source that
/// fails for good (a missing file) shows as disconnected, with its error,
/// in the page and the metrics; the Kafka source rides out broker outages
/// itself.
pub fn start(shared: Arc<Shared>, source: Box<dyn Source>, stop: Arc<AtomicBool>) {
    let (tx, rx) = std::sync::mpsc::sync_channel(10_000);
    let merging = shared.clone();
    std::thread::spawn(move || merging.merge_from(rx));
    std::thread::spawn(move || {
        if let Err(e) = source.run(tx.clone(), stop) {
            let _ = tx.send(SourceEvent::Connected(false));
            let _ = tx.send(SourceEvent::Unreadable {
                reason: format!("{e:#}"),
            });
            tracing::error!("source stopped: {e:#}");
        }
    });
}

/// Counts a live stream while it lasts.
struct StreamGuard(Arc<Shared>);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.streams.fetch_sub(1, Ordering::Relaxed);
    }
}

const INDEX: &str = include_str!("../static/index.html");
const STATIC: [(&str, &str, &str); 4] = [
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("../static/app.js"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!("../static/style.css"),
    ),
    (
        "uPlot.iife.min.js",
        "text/javascript; charset=utf-8",
        include_str!("../static/vendor/uPlot.iife.min.js"),
    ),
    (
        "uPlot.min.css",
        "text/css; charset=utf-8",
        include_str!("../static/vendor/uPlot.min.css"),
    ),
];

fn with_shared(
    shared: Arc<Shared>,
) -> impl Filter<Extract = (Arc<Shared>,), Error = Infallible> + Clone {
    warp::any().map(move || shared.clone())
}

fn bad_request(message: String) -> warp::reply::Response {
    warp::reply::with_status(
        warp::reply::json(&serde_json::json!({ "error": message })),
        StatusCode::BAD_REQUEST,
    )
    .into_response()
}

/// `GET /api/<name>?campaign=&channel=&from=&to=&…`, answered by `answer`
/// over the merged windows; a bad filter is a 400 that says why.
fn filtered<T: Serialize>(
    name: &'static str,
    shared: Arc<Shared>,
    answer: fn(&Merger, &Selection) -> T,
) -> impl Filter<Extract = (warp::reply::Response,), Error = Rejection> + Clone {
    warp::path("api")
        .and(warp::path(name))
        .and(warp::path::end())
        .and(warp::get())
        .and(warp::query::<Query>())
        .and(with_shared(shared))
        .map(move |q: Query, shared: Arc<Shared>| match q.parse() {
            Ok(selection) => {
                let state = shared.state.read().expect("not poisoned");
                warp::reply::json(&answer(&state.merger, &selection)).into_response()
            }
            Err(e) => bad_request(e),
        })
}

/// Every route of the service.
pub fn routes(
    shared: Arc<Shared>,
) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    let index = warp::path::end()
        .and(warp::get())
        .map(|| warp::reply::html(INDEX));
    let assets =
        warp::path!("static" / String)
            .and(warp::get())
            .and_then(|name: String| async move {
                match STATIC.iter().find(|(n, ..)| *n == name) {
                    Some(&(_, kind, body)) => {
                        Ok(warp::reply::with_header(body, "content-type", kind))
                    }
                    None => Err(warp::reject::not_found()),
                }
            });
    let windows = filtered("windows", shared.clone(), view::windows);
    let summary = filtered("summary", shared.clone(), view::summary);
    let top = filtered("top", shared.clone(), view::top);
    let pacing = warp::path!("api" / "pacing")
        .and(warp::get())
        .and(with_shared(shared.clone()))
        .map(|shared: Arc<Shared>| {
            let state = shared.state.read().expect("not poisoned");
            let tz = &shared.settings.thresholds.pacing_tz;
            warp::reply::json(&pacing::pacing(&state.merger, tz))
        });
    let alerts = warp::path!("api" / "alerts")
        .and(warp::get())
        .and(with_shared(shared.clone()))
        .map(|shared: Arc<Shared>| {
            let state = shared.state.read().expect("not poisoned");
            warp::reply::json(&state.alerts.active().collect::<Vec<_>>())
        });
    let status = warp::path!("api" / "status")
        .and(warp::get())
        .and(with_shared(shared.clone()))
        .map(|shared: Arc<Shared>| {
            let state = shared.state.read().expect("not poisoned");
            warp::reply::json(&state.source)
        });
    let updates = warp::path!("api" / "updates")
        .and(warp::get())
        .and(with_shared(shared.clone()))
        .map(|shared: Arc<Shared>| {
            let open = shared.streams.fetch_add(1, Ordering::Relaxed);
            let guard = StreamGuard(shared.clone());
            if open >= shared.settings.max_streams {
                return warp::reply::with_status(
                    "too many live pages; try again later",
                    StatusCode::SERVICE_UNAVAILABLE,
                )
                .into_response();
            }
            let hello = {
                let state = shared.state.read().expect("not poisoned");
                serde_json::to_string(&state.source).expect("state serializes")
            };
            let first = futures_util::stream::once(async move {
                Ok::<_, Infallible>(warp::sse::Event::default().event("hello").data(hello))
            });
            let rest = BroadcastStream::new(shared.updates.subscribe()).map(move |m| {
                let _alive = &guard;
                Ok::<_, Infallible>(match m {
                    Ok(json) => warp::sse::Event::default().event("update").data(&*json),
                    // Too slow to keep up: the page reloads the windows.
                    Err(BroadcastStreamRecvError::Lagged(_)) => {
                        warp::sse::Event::default().event("resync").data("{}")
                    }
                })
            });
            warp::sse::reply(
                warp::sse::keep_alive()
                    .interval(Duration::from_secs(10))
                    .stream(first.chain(rest)),
            )
            .into_response()
        });
    let health = warp::path!("healthz").and(warp::get()).map(|| "ok\n");
    let metrics = warp::path!("metrics")
        .and(warp::get())
        .and(with_shared(shared))
        .map(|shared: Arc<Shared>| {
            warp::reply::with_header(
                shared.metrics(),
                "content-type",
                "text/plain; version=0.0.4",
            )
        });
    index
        .or(assets)
        .or(windows)
        .or(summary)
        .or(top)
        .or(pacing)
        .or(alerts)
        .or(status)
        .or(updates)
        .or(health)
        .or(metrics)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A backlog longer than one run of the merge: every event is applied,
    /// the one taken as a run ends included.
    #[test]
    fn a_backlog_is_merged_whole() {
        let shared = Shared::new(Settings::default(), "test".into());
        let panes = 25_001u64;
        let (send, backlog) = std::sync::mpsc::sync_channel(panes as usize);
        for i in 0..panes {
            let ms = 1_700_000_000_000 + i as i64 * 1000;
            let pane = format!(
                r#"{{"campaign":"c{i}","channel":"email","window":"","window_start":{ms},"window_end":{},"impressions":1,"clicks":0,"conversions":0,"spend":0.0,"spend_micros":0,"CPC":0.0,"CPA":0.0,"CTR":0.0,"CVR":0.0,"first_offset":{i},"last_offset":{i},"records":1,"max_event_ts_ms":{ms},"late_records":0}}"#,
                ms + 60_000
            );
            send.send(crate::source::pane_event(0, pane.as_bytes(), None))
                .unwrap();
        }
        drop(send);
        shared.merge_from(backlog);
        assert_eq!(shared.state.read().unwrap().merger.stats.panes, panes);
    }
}
