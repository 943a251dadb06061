//! The running dashboard: a thread merges what the source reads into the
//! hot windows and the history, and pushes each change to every connected
//! page; Warp serves the page, the API, server-sent updates, health and
//! metrics.

mod dead_letters;
mod merging;
mod metrics;
mod routes;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use http_access::{Access, Listen};
use parking_lot::RwLock;
use serde::Serialize;
use tokio::sync::broadcast;

use crate::pacing::{Alerts, Thresholds};
use crate::source::{Positions, Source, SourceEvent, Start};
use crate::webhook::Webhook;
use analytics::merge::{MergeState, Merger, Retention};
use anyhow::Context;
pub use dead_letters::DeadLetters;
use history::{History, Place, Spans};
pub use routes::routes;

#[derive(Debug, Clone)]
pub struct Settings {
    pub lateness_ms: i64,
    /// How far behind the newest event time windows stay in memory (the
    /// hot set); at least what the alerts look back over.
    pub hot_ms: i64,
    /// Where the history is kept, and how long each tier keeps its rows.
    pub history: Place,
    pub spans: Spans,
    /// Most pages (server-sent streams) at once.
    pub max_streams: usize,
    pub thresholds: Thresholds,
    /// Where alerts' starts and ends are posted.
    pub alert_webhook: Option<String>,
}

impl Default for Settings {
    /// The transform's default lateness, 3 hours of hot windows, a history
    /// in memory with the default spans, and 1,000 live pages.
    fn default() -> Settings {
        Settings {
            lateness_ms: analytics::config::DEFAULT_LATENESS_MS,
            hot_ms: 3 * 3_600_000,
            history: Place::Memory,
            spans: Spans::default(),
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
    let (shared, start) = Shared::new(settings, source.describe())?;
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
    run(shared.clone(), source, start, stop);
    Ok(Served {
        shared,
        address,
        server,
    })
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
    /// The version of the transform running, when its host is this
    /// process (`harness up`): see [`Shared::tell_running_version`].
    pub version: Option<String>,
    /// Panes read, by their format: shows a format's rollout.
    pub pane_formats: BTreeMap<u32, u64>,
    pub dlq: DeadLetters,
    /// The merge's "now": its newest event time, which named ranges end at.
    pub now: Option<i64>,
    /// The time zone of the account's days (`--pacing-tz`).
    pub time_zone: String,
}

/// What of the [`SourceState`] the history keeps: the dead-letter topic
/// is read once, as `results` is.
#[derive(Debug, Default, Serialize, serde::Deserialize)]
struct KeptSource {
    unreadable: u64,
    pane_formats: BTreeMap<u32, u64>,
    dlq: DeadLetters,
}

/// The names the history keeps the merge's and the source's state under.
const MERGE_STATE: &str = "merge";
const SOURCE_STATE: &str = "source";

pub struct State {
    /// The hot windows: what the alerts and the live page look at, and the
    /// marks that keep re-emitted panes out.
    pub merger: Merger,
    /// Every window merged, to the last checkpoint.
    pub history: History,
    /// Where the merge is in each topic.
    pub positions: Positions,
    /// Whether records were read since the last checkpoint.
    unsaved: bool,
    pub source: SourceState,
    pub alerts: Alerts,
}

pub struct Shared {
    pub state: RwLock<State>,
    /// The positions of the last checkpoint, which the source commits.
    stored: Arc<parking_lot::Mutex<Positions>>,
    /// Set when the source's topics want it to commit: checkpoint now.
    checkpoint_wanted: Arc<AtomicBool>,
    updates: broadcast::Sender<Arc<str>>,
    streams: AtomicUsize,
    settings: Settings,
    webhook: OnceLock<Webhook>,
    running: OnceLock<RunningVersion>,
}

/// Says which version of the transform runs now.
pub type RunningVersion = Box<dyn Fn() -> Option<String> + Send + Sync>;

impl Shared {
    /// The dashboard's state as its history left it: the hot windows, the
    /// merge's watermarks, the source's counts; and where the source starts.
    pub fn new(settings: Settings, source: String) -> anyhow::Result<(Arc<Shared>, Start)> {
        let (history, resumed) = History::open(&settings.history, settings.spans)?;
        let state = |name: &str| resumed.state.get(name).map(String::as_str);
        let merge: MergeState = match state(MERGE_STATE) {
            Some(json) => serde_json::from_str(json)
                .with_context(|| format!("reading the merge's state in {}", history.place()))?,
            None => MergeState::default(),
        };
        let kept: KeptSource = match state(SOURCE_STATE) {
            Some(json) => serde_json::from_str(json)
                .with_context(|| format!("reading the source's state in {}", history.place()))?,
            None => KeptSource::default(),
        };
        let hot_ms = settings
            .hot_ms
            .max(crate::pacing::LOOK_BACK_MS + settings.thresholds.hold_ms);
        let retention = Retention {
            span_ms: hot_ms,
            max_windows: usize::MAX,
        };
        let mut merger = Merger::resumed(settings.lateness_ms, retention, merge);
        let horizon = merger
            .watermark()
            .map_or(i64::MIN, |w| w.saturating_sub(hot_ms));
        for window in history.hot(horizon)? {
            merger.restore(window);
        }
        let start = Start {
            from: resumed.positions.clone(),
            stored: Arc::new(parking_lot::Mutex::new(resumed.positions.clone())),
            checkpoint_wanted: Arc::default(),
        };
        let (updates, _) = broadcast::channel(1024);
        let now = merger.watermark();
        let shared = Arc::new(Shared {
            state: RwLock::new(State {
                merger,
                history,
                positions: resumed.positions,
                unsaved: false,
                source: SourceState {
                    source,
                    unreadable: kept.unreadable,
                    pane_formats: kept.pane_formats,
                    dlq: kept.dlq,
                    now,
                    time_zone: settings
                        .thresholds
                        .pacing_tz
                        .iana_name()
                        .unwrap_or("UTC")
                        .to_string(),
                    ..SourceState::default()
                },
                alerts: Alerts::default(),
            }),
            stored: start.stored.clone(),
            checkpoint_wanted: start.checkpoint_wanted.clone(),
            updates,
            streams: AtomicUsize::new(0),
            settings,
            webhook: OnceLock::new(),
            running: OnceLock::new(),
        });
        Ok((shared, start))
    }

    /// Where alerts' starts and ends are posted; set once, before merging.
    pub fn post_alerts_to(&self, webhook: Webhook) {
        let _ = self.webhook.set(webhook);
    }

    /// How to learn which version of the transform runs, for a host in
    /// this process: the page shows it. The records carry no version, as
    /// in Redpanda. Set once.
    pub fn tell_running_version(&self, running: RunningVersion) {
        let _ = self.running.set(running);
    }

    fn running_version(&self) -> Option<String> {
        self.running.get().and_then(|running| running())
    }

    pub fn figures(&self) -> Figures {
        let state = self.state.read();
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
}

/// Runs `source` from `start` and the merge on threads of their own. A
/// source that fails for good (a missing file) shows as disconnected, with
/// its error, in the page and the metrics; the Kafka source rides out
/// broker outages itself.
pub fn run(shared: Arc<Shared>, source: Box<dyn Source>, start: Start, stop: Arc<AtomicBool>) {
    let (tx, rx) = std::sync::mpsc::sync_channel(10_000);
    let merging = shared.clone();
    std::thread::spawn(move || merging.merge_from(rx));
    std::thread::spawn(move || {
        if let Err(e) = source.run(start, tx.clone(), stop) {
            let _ = tx.send(SourceEvent::Connected(false));
            let _ = tx.send(SourceEvent::Unreadable {
                at: None,
                reason: format!("{e:#}"),
            });
            tracing::error!("source stopped: {e:#}");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A backlog longer than one run of the merge: every event is applied,
    /// the one taken as a run ends included.
    #[test]
    fn a_backlog_is_merged_whole() {
        let (shared, _) = Shared::new(Settings::default(), "test".into()).unwrap();
        let panes = 25_001u64;
        let (send, backlog) = std::sync::mpsc::sync_channel(panes as usize);
        for i in 0..panes {
            let ms = 1_700_000_000_000 + i as i64 * 1000;
            let pane = format!(
                r#"{{"campaign":"c{i}","channel":"email","window":"","window_start":{ms},"window_end":{},"impressions":1,"clicks":0,"conversions":0,"spend":0.0,"spend_micros":0,"CPC":0.0,"CPA":0.0,"CTR":0.0,"CVR":0.0,"first_offset":{i},"last_offset":{i},"records":1,"max_event_ts_ms":{ms},"late_records":0}}"#,
                ms + 60_000
            );
            let at = crate::source::At {
                topic: "results".into(),
                partition: 0,
                offset: i as i64,
            };
            send.send(crate::source::pane_event(at, pane.as_bytes()))
                .unwrap();
        }
        drop(send);
        shared.merge_from(backlog);
        let state = shared.state.read();
        assert_eq!(state.merger.stats.panes, panes);
        assert_eq!(state.positions[&("results".to_string(), 0)], panes as i64);
        assert_eq!(
            shared.stored.lock()[&("results".to_string(), 0)],
            panes as i64
        );
    }
}
