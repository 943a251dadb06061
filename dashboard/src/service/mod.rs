//! The running dashboard: a thread merges what the source reads and
//! pushes each change to every connected page; Warp serves the page, the
//! API, server-sent updates, health and metrics.

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
use crate::source::{Source, SourceEvent};
use crate::webhook::Webhook;
use analytics::merge::{Merger, Retention};
pub use dead_letters::DeadLetters;
pub use routes::routes;

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
        assert_eq!(shared.state.read().merger.stats.panes, panes);
    }
}
