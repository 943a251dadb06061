//! The merge thread: applies what the source reads to the windows, checks
//! the alerts, and pushes each change to every connected page.

use std::collections::BTreeSet;
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::Duration;

use analytics::merge::{Added, WindowKey};
use serde::Serialize;

use super::{Shared, SourceState, State};
use crate::pacing;
use crate::source::SourceEvent;
use crate::view::WindowView;

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
            let mut state = self.state.write();
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
}
