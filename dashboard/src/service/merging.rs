//! The merge thread: applies what the source reads to the hot windows,
//! writes them to the history with the positions they were read up to,
//! checks the alerts, and pushes each change to every connected page.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::{Duration, Instant};

use analytics::merge::{Added, Window, WindowKey};
use analytics::Pane;
use history::Checkpoint;
use parking_lot::RwLockWriteGuard;
use serde::Serialize;

use super::{KeptSource, Shared, SourceState, State, MERGE_STATE, SOURCE_STATE};
use crate::pacing;
use crate::source::{At, SourceEvent};
use crate::view::WindowView;

/// The history is written, and the alerts checked, whenever the merge has
/// caught up, and at least this often while a backlog is merged.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// How long a checkpoint that failed (a full disk) waits to try again.
const RETRY: Duration = Duration::from_secs(1);

/// How `last_error` says that the history cannot be written, until it can.
const HISTORY_WAITS: &str = "the history cannot be written (waiting)";

/// What a page receives on every change: the windows that changed, and the
/// source's state.
#[derive(Serialize)]
struct Update<'a> {
    windows: Vec<WindowView>,
    source: &'a SourceState,
}

impl State {
    /// Counts a pane into its hot window, first restoring the window from
    /// the history when it is no longer hot (a late pane).
    fn add(&mut self, partition: i32, pane: &Pane) -> Added {
        if self.merger.is_cold(pane) {
            let key: WindowKey = (
                pane.window_start,
                Arc::from(pane.campaign.as_str()),
                Arc::from(pane.channel.as_str()),
            );
            // A history that cannot be read makes the merge wait, as one
            // that cannot be written does: the pane is not dropped.
            let stored = loop {
                match self.history.window(&key) {
                    Ok(stored) => break stored,
                    Err(e) => {
                        tracing::error!(
                            "reading a window of {} (waiting): {e:#}",
                            self.history.place()
                        );
                        std::thread::sleep(RETRY);
                    }
                }
            };
            let window = stored.unwrap_or_else(|| {
                Window::new(key.1, key.2, pane.window_start, pane.window_end, Vec::new())
            });
            self.merger.restore(window);
        }
        let added = self.merger.add(partition, pane);
        if let Added::Counted { key, .. } = &added {
            let first = self.merger.get(key).is_some_and(|w| w.panes == 1);
            self.history.count(pane, key.clone(), first);
        }
        added
    }

    fn read(&mut self, at: &At) {
        self.positions
            .insert((at.topic.to_string(), at.partition), at.offset + 1);
        self.unsaved = true;
    }

    /// Writes what was merged since the last checkpoint, with the
    /// positions and the state; then the windows no longer hot go.
    fn checkpoint(&mut self) -> anyhow::Result<()> {
        let kept = KeptSource {
            unreadable: self.source.unreadable,
            pane_formats: self.source.pane_formats.clone(),
            dlq: self.source.dlq.clone(),
        };
        let merger = &self.merger;
        self.history.checkpoint(
            |key| merger.get(key),
            Checkpoint {
                positions: &self.positions,
                state: vec![
                    (MERGE_STATE, serde_json::to_string(&merger.state())?),
                    (SOURCE_STATE, serde_json::to_string(&kept)?),
                ],
                newest: merger.watermark(),
            },
        )?;
        self.unsaved = false;
        self.merger.expire();
        Ok(())
    }
}

impl Shared {
    /// Checkpoints until it succeeds, letting the API read between tries:
    /// a full disk makes the merge wait, and nothing read is lost.
    fn checkpoint<'a>(
        &'a self,
        mut state: RwLockWriteGuard<'a, State>,
    ) -> RwLockWriteGuard<'a, State> {
        loop {
            match state.checkpoint() {
                Ok(()) => {
                    *self.stored.lock() = state.positions.clone();
                    let waited = state.source.last_error.as_deref();
                    if waited.is_some_and(|e| e.starts_with(HISTORY_WAITS)) {
                        state.source.last_error = None;
                    }
                    return state;
                }
                Err(e) => {
                    let why = format!("{HISTORY_WAITS}: {e:#}");
                    tracing::warn!("{why}");
                    state.source.last_error = Some(why);
                    drop(state);
                    std::thread::sleep(RETRY);
                    state = self.state.write();
                }
            }
        }
    }

    /// Checks the alert rules at the merge's "now" and posts what changed.
    fn check_alerts(&self, state: &mut State) {
        let Some(now) = state.merger.watermark() else {
            return;
        };
        let holding = pacing::conditions(
            &state.merger,
            &state.history,
            &self.settings.thresholds,
            &state.alerts,
        );
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
        let mut checkpointed = Instant::now();
        let mut alerts_due = false;
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
                    SourceEvent::Pane { at, pane } => {
                        if let Added::Counted { key, .. } = state.add(at.partition, &pane) {
                            changed.insert(key);
                        }
                        state.read(&at);
                        let read = state.source.pane_formats.entry(pane.format).or_default();
                        source_changed |= *read == 0;
                        *read += 1;
                    }
                    SourceEvent::DeadLetter { at, dead } => {
                        state.source.dlq.add(*dead);
                        state.read(&at);
                        source_changed = true;
                    }
                    SourceEvent::CaughtUp => {
                        source_changed |= !state.source.ready;
                        state.source.ready = true;
                    }
                    SourceEvent::Unreadable { at, reason } => {
                        if let Some(at) = at {
                            state.read(&at);
                        }
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
            alerts_due |= !changed.is_empty();
            let version = self.running_version();
            source_changed |= state.source.version != version;
            state.source.version = version;
            let now = state.merger.watermark();
            source_changed |= state.source.now != now;
            state.source.now = now;
            // Built only for connected pages: a backlog read with none
            // connected spends nothing on views.
            let listened = self.updates.receiver_count() > 0;
            let update = (listened && (!changed.is_empty() || source_changed)).then(|| {
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
                json
            });
            // The API answers from the history, and the alerts sum today
            // there: it is written before either looks, and before the
            // page hears of the change.
            if pending.is_none()
                || checkpointed.elapsed() >= CHECKPOINT_EVERY
                || self.checkpoint_wanted.swap(false, Ordering::Relaxed)
            {
                checkpointed = Instant::now();
                if state.unsaved {
                    state = self.checkpoint(state);
                }
                if std::mem::take(&mut alerts_due) {
                    self.check_alerts(&mut state);
                }
            }
            drop(state);
            if let Some(json) = update {
                // A page that left meanwhile is fine.
                let _ = self.updates.send(json);
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
