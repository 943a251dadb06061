//! The running version of a hosted transform: its VM, and the bookkeeping
//! of swaps to new versions (the pause, and the new version's first batch
//! against the batches before it).

use std::collections::VecDeque;
use std::sync::mpsc::SyncSender;
use std::sync::Arc;

use parking_lot::Mutex;
use std::time::{Duration, Instant};

use admin::SwapTiming;
use transform_host::{Batch, Failure};

use crate::engine::{Engine, OutputRecord};
use crate::quantile;
use crate::status::TransformState;

/// A started VM of a new version, for the bridge to switch to.
pub struct Swap {
    pub engine: Engine,
    pub version: String,
    /// When the request arrived, for the timing.
    pub requested: Instant,
    /// Told once the new version runs.
    pub done: SyncSender<()>,
}

/// How many batch times a swap's baseline is the median of.
const RECENT_BATCHES: usize = 256;

pub struct VersionSlot {
    engine: Engine,
    version: String,
    /// Time per record of the latest batches, in microseconds.
    recent: VecDeque<f64>,
    /// A swap happened and its first batch is not timed yet.
    timing_first_batch: bool,
}

impl VersionSlot {
    pub fn new(engine: Engine, version: String) -> VersionSlot {
        VersionSlot {
            engine,
            version,
            recent: VecDeque::with_capacity(RECENT_BATCHES),
            timing_first_batch: false,
        }
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Starts the running version's VM again, after a failure.
    pub fn restart(&mut self) -> Result<(), Failure> {
        self.engine.restart()
    }

    /// Runs a batch on the running version, timing it.
    pub fn process(
        &mut self,
        partition: i32,
        batch: Arc<Batch>,
        state: &Mutex<TransformState>,
    ) -> Result<Vec<OutputRecord>, Failure> {
        let records = batch.records.len();
        let started = Instant::now();
        let outputs = self.engine.process(partition, batch);
        self.timed(records, started.elapsed(), state);
        outputs
    }

    /// Keeps the batch's time per record; the first batch after a swap
    /// goes into that swap's timing.
    fn timed(&mut self, records: usize, took: Duration, state: &Mutex<TransformState>) {
        let us_per_record = took.as_secs_f64() * 1e6 / records as f64;
        if std::mem::take(&mut self.timing_first_batch) {
            let mut state = state.lock();
            if let Some(swap) = state.swaps.last_mut() {
                swap.first_batch_us_per_record = Some(us_per_record);
                swap.first_batch_records = records as u64;
            }
        }
        if self.recent.len() == RECENT_BATCHES {
            self.recent.pop_front();
        }
        self.recent.push_back(us_per_record);
    }

    /// Switches to a started VM of a new version, between two batches:
    /// records buffered since go to the new one.
    pub fn swap(&mut self, swap: Swap, state: &Mutex<TransformState>) {
        let paused = Instant::now();
        let old = std::mem::replace(&mut self.engine, swap.engine);
        self.version = swap.version;
        drop(old);
        let pause = paused.elapsed();
        let timing = SwapTiming {
            request_ms: swap.requested.elapsed().as_secs_f64() * 1e3,
            pause_ms: pause.as_secs_f64() * 1e3,
            before_us_per_record: quantile(self.recent.make_contiguous(), 0.5),
            ..SwapTiming::default()
        };
        self.timing_first_batch = true;
        let mut state = state.lock();
        state.version = self.version.clone();
        state.deploys += 1;
        state.swapped(timing);
        tracing::info!(
            "swapped {} to version {} ({:.2} ms pause, {:.0} ms from the request)",
            self.engine.spec().name,
            self.version,
            timing.pause_ms,
            timing.request_ms
        );
        let _ = swap.done.send(());
    }
}
