//! One transform's thread: a bridge over the host's transport, restarted
//! from the last committed position with Redpanda's backoff
//! (`src/v/transform/transform_manager.cc`) when the bridge itself fails
//! (its VM cannot start again, say). A record that fails the transform
//! backs off its own partition only, inside the bridge.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use topic_io::Transport;
use transform_host::{Host, Logger, Transform, TransformSpec};

use super::{Current, HostingOptions};
use crate::backoff::Backoff;
use crate::bridge::{Bridge, BridgeOptions, BridgeProgress, Command, Deployment, TransformFailed};
use crate::status::{State, TransformState};

/// One transform's thread.
pub(super) struct Supervisor {
    pub(super) host: Host,
    pub(super) transport: Arc<dyn Transport>,
    pub(super) options: Arc<HostingOptions>,
    pub(super) logger: Logger,
    pub(super) current: Arc<Mutex<Current>>,
    pub(super) state: Arc<Mutex<TransformState>>,
    pub(super) stop: Arc<AtomicBool>,
    pub(super) progress: Arc<Mutex<BridgeProgress>>,
}

impl Supervisor {
    pub(super) fn run(self, commands: &Receiver<Command>) {
        let mut backoff = Backoff::default();
        loop {
            let (transform, spec, paused, deleted, deployment) = {
                let c = self.current.lock();
                (
                    c.transform.clone(),
                    c.spec.clone(),
                    c.paused,
                    c.deleted,
                    c.deployment,
                )
            };
            if deleted || self.stop.load(Ordering::Relaxed) {
                return;
            }
            // Known before a start succeeds: a transform that fails at
            // start shows each partition errored, as Redpanda's processors.
            let partitions = match self.transport.partition_count(&spec.input_topic) {
                Ok(Some(n)) => n as usize,
                _ => self.state.lock().partitions.len(),
            };
            if paused {
                let mut state = self.state.lock();
                state.paused = true;
                state.set_all(partitions, State::Inactive);
                drop(state);
                self.wait(commands, None);
                continue;
            }
            {
                let mut state = self.state.lock();
                state.paused = false;
                state.set_all(partitions, State::Inactive);
            }
            backoff.started();
            let failure = match self.run_once(&transform, spec.clone(), deployment, commands) {
                Ok(()) => continue,
                // Stopping cuts a batch short: that is the stop, not a failure.
                Err(_) if self.stop.load(Ordering::Relaxed) => return,
                Err(e) => e,
            };
            // Only a first start may start fresh: a restart resumes.
            self.current.lock().deployment.fresh = false;
            let delay = backoff.failed();
            let failed = failure
                .chain()
                .find_map(|c| c.downcast_ref::<TransformFailed>())
                .map(|f| f.partition);
            let message = format!(
                "{}: {failure:#}; retrying in {} s",
                spec.name,
                delay.as_secs()
            );
            tracing::warn!("{message}");
            {
                let mut state = self.state.lock();
                state.error(message);
                let count = state.partitions.len();
                state.set_all(count, State::Inactive);
                match failed {
                    Some(p) => {
                        if let Some(partition) = state.partitions.get_mut(p as usize) {
                            partition.state = State::Errored;
                        }
                    }
                    None => state.set_all(count, State::Errored),
                }
            }
            self.wait(commands, Some(delay));
        }
    }

    /// Starts a bridge and runs it until it stops: `Ok` when asked to (or
    /// the host stops), `Err` when it fails.
    fn run_once(
        &self,
        transform: &Transform,
        spec: TransformSpec,
        deployment: Deployment,
        commands: &Receiver<Command>,
    ) -> anyhow::Result<()> {
        let options = BridgeOptions {
            batch_size: self.options.batch_size,
            commit_interval: self.options.commit_interval,
            deployment,
        };
        let mut bridge = Bridge::start(
            &self.host,
            transform,
            spec,
            self.transport.as_ref(),
            options,
            self.logger.clone(),
            self.state.clone(),
        )?;
        self.current.lock().deployment.fresh = false;
        let mut last = BridgeProgress::default();
        let result = bridge.run(
            &self.stop,
            Some(commands),
            Duration::from_millis(200),
            &mut |p| {
                self.add_progress(&mut last, p);
            },
        );
        self.add_progress(&mut last, &bridge.progress);
        result.map(|_| ())
    }

    /// Adds what a bridge did since `last` to the host's counters.
    fn add_progress(&self, last: &mut BridgeProgress, now: &BridgeProgress) {
        let mut total = self.progress.lock();
        total.records_in += now.records_in - last.records_in;
        total.records_out += now.records_out - last.records_out;
        total.batches += now.batches - last.batches;
        total.transform_bytes = now.transform_bytes;
        *last = *now;
    }

    /// Waits for a command (any command means: look again), the host's
    /// stop, or `timeout`.
    fn wait(&self, commands: &Receiver<Command>, timeout: Option<Duration>) {
        let deadline = timeout.map(|t| Instant::now() + t);
        while !self.stop.load(Ordering::Relaxed) {
            let slice = match deadline {
                Some(d) if Instant::now() >= d => return,
                Some(d) => (d - Instant::now()).min(Duration::from_millis(100)),
                None => Duration::from_millis(100),
            };
            match commands.recv_timeout(slice) {
                // A new version was set in `current` before it was sent.
                Ok(Command::Swap(swap)) => {
                    let _ = swap.done.send(());
                    return;
                }
                Ok(Command::Stop) => return,
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
    }
}
