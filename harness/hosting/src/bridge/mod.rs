//! `harness bridge`: hosts a transform against any Kafka-protocol broker, as
//! Redpanda hosts it in the broker: one VM for all input partitions,
//! outputs on the same partition number (mod), input offsets committed after
//! the outputs are acknowledged.
//!
//! # Why results stay exact without broker transactions
//!
//! The results consumer keeps a pane once by its identity (partition,
//! campaign, channel, window, first and last offset), so a re-run batch must
//! be cut at exactly the same offsets as the first time; and `events` and
//! `logs.dlq` have no identity at all, so a re-run must not write them twice.
//! The bridge works one batch at a time:
//!
//! 1. the VM runs the batch (while the previous batch's outputs are still
//!    on their way);
//! 2. it waits until every earlier output is acknowledged;
//! 3. it writes the batch's input offsets, and the end offset of every
//!    output partition it writes to, to the batch log, and waits for that;
//! 4. it sends the outputs.
//!
//! So at any moment at most one batch — the last one in the batch log —
//! can have written part of its outputs, and everything before it is
//! complete. After a crash, for each input partition whose last batch-log
//! entry is not behind the committed offset, the bridge resumes at the
//! entry's first offset, cuts its first batch at exactly the entry's last
//! offset (so panes come out with the same identities), and skips, per
//! output partition, as many outputs as were written since the recorded
//! end. The VM emits a batch's outputs in a fixed order and number, so
//! those are exactly the ones already there: nothing is written twice and
//! nothing is skipped. Committed input offsets only shorten the re-read.
//!
//! This needs the bridge to be the only writer of its output partitions
//! while it runs, as a transform is in Redpanda.

pub mod recovery;
pub mod version;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::Arc;

use parking_lot::Mutex;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use record_payload::decode_record;
use topic_io::{Offsets, Polled, Sink, Source, StartOffset, Transport};
use transform_host::{Batch, Host, Logger, Record, Transform, TransformSpec};

use crate::batch_log::{self, BatchEntry, OutputEnd};
use crate::engine::{unread_batch, Engine};
use crate::records::show;
use crate::status::{State, TransformState};
use recovery::{PartitionState, Resume};
use version::{Swap, VersionSlot};

pub struct BridgeOptions {
    /// Most records in one batch.
    pub batch_size: usize,
    pub commit_interval: Duration,
    pub deployment: Deployment,
}

/// Which deployment of a transform runs: its id tags the batch log, so a
/// new deployment of the same name never re-runs an old one's batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deployment {
    pub id: u64,
    /// Where partitions with nothing committed start.
    pub start: StartOffset,
    /// A new deployment: every partition starts at `start`, whatever an
    /// earlier deployment of the name committed.
    pub fresh: bool,
}

/// What a host asks of a running bridge, between two batches.
pub enum Command {
    /// Run this new version from the next batch on.
    Swap(Box<Swap>),
    /// Finish the batch in flight, commit, and stop.
    Stop,
}

/// Counters for the progress line.
#[derive(Debug, Clone, Copy, Default)]
pub struct BridgeProgress {
    pub records_in: u64,
    pub records_out: u64,
    pub batches: u64,
    /// The transform's linear memory, in bytes.
    pub transform_bytes: usize,
}

/// The transform failed on a record of `partition`: Redpanda marks the
/// partition errored and restarts the transform from committed offsets.
#[derive(Debug, Clone)]
pub struct TransformFailed {
    pub partition: i32,
    pub message: String,
}

impl std::fmt::Display for TransformFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for TransformFailed {}

/// The longest a record waits in a partition's buffer while others flow.
const LINGER: Duration = Duration::from_millis(50);

pub struct Bridge {
    options: BridgeOptions,
    slot: VersionSlot,
    reader: Box<dyn Source>,
    writer: Box<dyn Sink>,
    offsets: Box<dyn Offsets>,
    batch_log: String,
    deployment: u64,
    partitions: Vec<PartitionState>,
    output_partitions: Vec<i32>,
    /// End offsets of the output partitions when the bridge started; ours
    /// come from delivery reports after that.
    start_ends: HashMap<(usize, i32), i64>,
    /// The batch whose outputs were sent last and may not be acknowledged.
    unacked: Option<(i32, i64)>,
    last_commit: Instant,
    pub progress: BridgeProgress,
    state: Arc<Mutex<TransformState>>,
}

impl Bridge {
    /// Connects, creates missing output topics and the batch log, recovers
    /// from the batch log, and starts the VM.
    pub fn start(
        host: &Host,
        transform: &Transform,
        spec: TransformSpec,
        transport: &dyn Transport,
        options: BridgeOptions,
        logger: Logger,
        state: Arc<Mutex<TransformState>>,
    ) -> Result<Bridge> {
        let deployment = options.deployment;
        if options.batch_size == 0 {
            bail!("--batch-size must be at least 1");
        }
        let input = spec.input_topic.as_str();
        let inputs = transport.partition_count(input)?.ok_or_else(|| {
            anyhow!(
                "the input topic {input} does not exist on {}: create it, or start the generator first",
                transport.describe()
            )
        })?;
        let output_partitions = spec
            .output_topics
            .iter()
            .map(|t| transport.ensure_topic(t, inputs))
            .collect::<Result<Vec<i32>>>()?;
        let batch_log = batch_log::topic_name(&spec.name);
        let log_partitions = transport.ensure_topic(&batch_log, inputs)?;
        if log_partitions < inputs {
            bail!("the batch log {batch_log} has {log_partitions} partitions, fewer than {input}'s {inputs}: delete it");
        }
        let mut start_ends = HashMap::new();
        for (t, topic) in spec.output_topics.iter().enumerate() {
            let tails = transport.tail(topic, output_partitions[t])?;
            for (p, tail) in tails.into_iter().enumerate() {
                start_ends.insert((t, p as i32), tail.end);
            }
        }
        let mut offsets = transport.offsets(&spec.name, input)?;
        let plan = recovery::plan(
            transport,
            offsets.as_mut(),
            &spec,
            deployment,
            inputs,
            &start_ends,
            &batch_log,
        )?;
        let reader = transport.source(&spec.name, input, &plan.starts)?;
        let writer = transport.sink()?;
        let engine = Engine::start(host, transform, spec, output_partitions.clone(), logger)
            .map_err(|f| anyhow!("the transform failed at start: {f}"))?;
        {
            let mut state = state.lock();
            state.version = transform.version.clone();
            state.set_all(inputs as usize, State::Running);
        }
        Ok(Bridge {
            options,
            slot: VersionSlot::new(engine, transform.version.clone()),
            reader,
            writer,
            offsets,
            batch_log,
            deployment: deployment.id,
            partitions: plan.partitions,
            output_partitions,
            start_ends,
            unacked: None,
            last_commit: Instant::now(),
            progress: BridgeProgress::default(),
            state,
        })
    }

    pub fn spec(&self) -> &TransformSpec {
        self.slot.engine().spec()
    }

    /// Runs until `stop` is set, a command says so (`Ok(true)` then), or the
    /// transform fails (an error whose root is [`TransformFailed`]).
    /// `report` is called about every `every`.
    pub fn run(
        &mut self,
        stop: &AtomicBool,
        commands: Option<&Receiver<Command>>,
        every: Duration,
        report: &mut dyn FnMut(&BridgeProgress),
    ) -> Result<bool> {
        let result = self.run_until(stop, commands, every, report);
        // Whatever happened, what was acknowledged gets committed.
        let finished = self.finish_sent();
        let result = result.and_then(|commanded| finished.map(|()| commanded));
        let committed = self.commit(true);
        result.and_then(|commanded| committed.map(|()| commanded))
    }

    fn run_until(
        &mut self,
        stop: &AtomicBool,
        commands: Option<&Receiver<Command>>,
        every: Duration,
        report: &mut dyn FnMut(&BridgeProgress),
    ) -> Result<bool> {
        let mut last_report = Instant::now();
        let mut last_status = Instant::now();
        let mut last_cut = Instant::now();
        let mut last_error = String::new();
        let mut waiting_swap = None;
        while !stop.load(Ordering::Relaxed) {
            let command = waiting_swap
                .take()
                .map(Command::Swap)
                .or_else(|| commands.and_then(|c| c.try_recv().ok()));
            match command {
                Some(Command::Swap(swap)) => waiting_swap = self.swap(*swap).map(Box::new),
                Some(Command::Stop) => return Ok(true),
                None => {}
            }
            let buffered = self.partitions.iter().any(|s| !s.buffer.is_empty());
            // A writer waiting for this bridge's commit sends nothing more
            // until it has it: commit first.
            if !buffered && self.offsets.commit_wanted() {
                self.finish_sent()?;
                self.commit(false)?;
            }
            let wait = if buffered {
                Duration::ZERO
            } else {
                Duration::from_millis(100)
            };
            match self.reader.poll(wait) {
                Polled::Record(p, record) => {
                    let state = &mut self.partitions[p as usize];
                    state.read_to = record.offset + 1;
                    // A partition waiting out its backoff reads these again.
                    let waiting = state.retry.is_some();
                    if !waiting && self.resumed(p, record.offset)? {
                        self.progress.records_in += 1;
                        self.add(p, record)?;
                    }
                    // Under a steady backlog the poll is never empty: a
                    // quiet partition's records still go out this soon.
                    if last_cut.elapsed() >= LINGER {
                        self.process_buffered()?;
                        last_cut = Instant::now();
                    }
                }
                // The transport reconnects by itself; say so once per change.
                Polled::Trouble(error) => {
                    if error != last_error {
                        tracing::warn!("reading {}: {error} (retrying)", self.spec().input_topic);
                        last_error = error;
                    }
                }
                // Nothing more is at hand: what is buffered is a batch.
                Polled::Idle => {
                    self.process_buffered()?;
                    last_cut = Instant::now();
                    self.finish_sent()?;
                }
            }
            self.retry_due()?;
            if self.last_commit.elapsed() >= self.options.commit_interval {
                self.commit(false)?;
            }
            // Lag may cost the broker a round trip per partition: once a
            // second, whatever the report interval.
            if last_status.elapsed() >= Duration::from_secs(1) {
                last_status = Instant::now();
                self.update_status();
            }
            if last_report.elapsed() >= every {
                last_report = Instant::now();
                self.progress.transform_bytes = self.slot.engine().memory_bytes();
                report(&self.progress);
            }
        }
        Ok(false)
    }

    /// Switches to a new version between two batches. While a crashed
    /// run's last batch is being re-run the swap waits: that batch must
    /// produce the same outputs as the first time.
    fn swap(&mut self, swap: Swap) -> Option<Swap> {
        if self.partitions.iter().any(|s| s.cut_at.is_some()) {
            return Some(swap);
        }
        self.slot.swap(swap, &self.state);
        None
    }

    fn update_status(&mut self) {
        let lags = self.reader.lags();
        let mut state = self.state.lock();
        state.records_in = self.progress.records_in;
        state.records_out = self.progress.records_out;
        if let Some(lags) = lags {
            for ((shown, lag), ours) in state.partitions.iter_mut().zip(lags).zip(&self.partitions)
            {
                // A partition waiting to retry counts what it read again,
                // the record that failed first.
                let again = ours
                    .retry
                    .map_or(0, |(_, from)| (ours.read_to - from).max(0));
                shown.lag = lag + again;
            }
        }
    }

    /// The transform failed on a batch of partition `p` that starts at
    /// `from`, as `message` says. As Redpanda: the VM starts again at once,
    /// for the other partitions (`src/v/wasm/cache.cc`,
    /// `shared_engine::transform`), and only this partition waits out its
    /// backoff, errored, before it reads the batch again
    /// (`src/v/transform/transform_manager.cc`, `handle_transform_error`).
    fn failed(&mut self, p: i32, from: i64, records: usize, message: String) -> Result<()> {
        let state = &mut self.partitions[p as usize];
        // A batch re-run after a crash must be cut as it was: a restart of
        // the whole bridge does that.
        if state.skip.iter().any(|&s| s > 0) {
            return Err(TransformFailed {
                partition: p,
                message,
            }
            .into());
        }
        if let Err(f) = self.slot.restart() {
            return Err(TransformFailed {
                partition: p,
                message: format!("{message}; and it failed to start again: {f}"),
            }
            .into());
        }
        self.progress.records_in = self.progress.records_in.saturating_sub(records as u64);
        let delay = state.backoff.failed();
        state.retry = Some((Instant::now() + delay, from));
        let message = format!(
            "{}: {message}; retrying in {} s",
            self.slot.engine().spec().name,
            delay.as_secs()
        );
        tracing::warn!("{message}");
        let mut shown = self.state.lock();
        shown.error(message);
        if let Some(partition) = shown.partitions.get_mut(p as usize) {
            partition.state = State::Errored;
        }
        Ok(())
    }

    /// Partitions whose backoff is over read their failed batch again.
    fn retry_due(&mut self) -> Result<()> {
        // Called for every record read: the clock only when one waits.
        if self.partitions.iter().all(|s| s.retry.is_none()) {
            return Ok(());
        }
        let now = Instant::now();
        for p in 0..self.partitions.len() {
            let state = &mut self.partitions[p];
            let Some((_, from)) = state.retry.filter(|(at, _)| *at <= now) else {
                continue;
            };
            state.retry = None;
            state.backoff.started();
            let read = recovery::resume_at(state, from);
            self.reader.seek(p as i32, read)?;
            tracing::debug!("partition {p}: retrying from offset {from}");
            if let Some(partition) = self.state.lock().partitions.get_mut(p) {
                partition.state = State::Running;
            }
        }
        Ok(())
    }

    /// Whether a record is at or past its partition's resume offset; see
    /// [`Resume`].
    fn resumed(&mut self, p: i32, offset: i64) -> Result<bool> {
        let state = &mut self.partitions[p as usize];
        let Some(Resume { at, from }) = state.resume else {
            return Ok(true);
        };
        if offset < at {
            return Ok(false);
        }
        if offset > at && from > 0 {
            let from = (at - 2 * (at - from)).max(0);
            self.reader.seek(p, from)?;
            state.resume = Some(Resume { at, from });
            return Ok(false);
        }
        state.resume = None;
        Ok(true)
    }

    /// Every partition's buffered records as a batch, except a batch being
    /// re-run, which must end at its recorded offset.
    fn process_buffered(&mut self) -> Result<()> {
        for p in 0..self.partitions.len() {
            let state = &mut self.partitions[p];
            if !state.buffer.is_empty() && state.cut_at.is_none() {
                let batch = std::mem::take(&mut state.buffer);
                self.process(p as i32, batch)?;
            }
        }
        Ok(())
    }

    /// Buffers a record; a full batch, or the end of a batch being re-run,
    /// is processed at once.
    fn add(&mut self, p: i32, record: Record) -> Result<()> {
        let state = &mut self.partitions[p as usize];
        if let Some(cut) = state.cut_at {
            if record.offset > cut {
                // The re-run batch ends before this record (offsets may skip).
                let batch = std::mem::take(&mut state.buffer);
                state.cut_at = None;
                if !batch.is_empty() {
                    self.process(p, batch)?;
                }
                return self.add(p, record);
            }
            let last = record.offset == cut;
            state.buffer.push(record);
            if last {
                state.cut_at = None;
                let batch = std::mem::take(&mut state.buffer);
                self.process(p, batch)?;
            }
            return Ok(());
        }
        state.buffer.push(record);
        if state.buffer.len() >= self.options.batch_size {
            let batch = std::mem::take(&mut state.buffer);
            self.process(p, batch)?;
        }
        Ok(())
    }

    /// Steps 1 to 4 of the module's argument.
    fn process(&mut self, p: i32, records: Vec<Record>) -> Result<()> {
        let first_offset = records[0].offset;
        let last_offset = records[records.len() - 1].offset;
        let batch = Arc::new(Batch { records });
        let outputs = match self.slot.process(p, batch.clone(), &self.state) {
            Ok(outputs) => outputs,
            Err(failure) => {
                let culprit = failure
                    .offset
                    .and_then(|o| batch.records.iter().find(|r| r.offset == o));
                let message = match culprit {
                    Some(r) => {
                        let (key, value) = match decode_record(&r.payload) {
                            Ok(d) => (show(d.key()), show(d.value())),
                            Err(_) => ("?".into(), "?".into()),
                        };
                        format!(
                            "the transform failed on {} partition {p} offset {} (key {key}, value {value}): {failure}",
                            self.spec().input_topic,
                            r.offset,
                        )
                    }
                    None => format!(
                        "the transform failed on a batch of partition {p} ({}) before reading any of its records: {failure}",
                        unread_batch(&batch)
                    ),
                };
                return self.failed(p, first_offset, batch.records.len(), message);
            }
        };
        self.finish_sent()?;
        let spec = self.slot.engine().spec();
        let entry = BatchEntry {
            deployment: self.deployment,
            partition: p,
            first_offset,
            last_offset,
            outputs: spec
                .output_topics
                .iter()
                .enumerate()
                .map(|(t, topic)| {
                    let partition = p.rem_euclid(self.output_partitions[t]);
                    let end = self
                        .writer
                        .end_offset(topic, partition)
                        .unwrap_or(self.start_ends[&(t, partition)]);
                    OutputEnd {
                        topic: topic.clone(),
                        partition,
                        end,
                    }
                })
                .collect(),
        };
        batch_log::write(self.writer.as_mut(), &self.batch_log, &entry)?;
        let skip = &mut self.partitions[p as usize].skip;
        for out in outputs {
            if skip[out.topic] > 0 {
                skip[out.topic] -= 1;
                continue;
            }
            // As the module wrote it, byte for byte: Redpanda adds nothing.
            let record = decode_record(&out.payload).expect("the host validated every output");
            self.writer
                .send(&spec.output_topics[out.topic], out.partition, None, &record)?;
            self.progress.records_out += 1;
        }
        skip.iter_mut().for_each(|s| *s = 0);
        self.progress.batches += 1;
        self.unacked = Some((p, last_offset + 1));
        Ok(())
    }

    /// Waits for the outputs sent so far; their batch is then done.
    fn finish_sent(&mut self) -> Result<()> {
        let Some((p, next)) = self.unacked else {
            return Ok(());
        };
        self.writer.flush().map_err(|e| {
            anyhow!("{e:#}; nothing after the last stored batch was committed, so a restart resumes there")
        })?;
        self.partitions[p as usize].done = Some(next);
        self.unacked = None;
        Ok(())
    }

    fn commit(&mut self, wait: bool) -> Result<()> {
        self.last_commit = Instant::now();
        let mut offsets = Vec::new();
        for (p, state) in self.partitions.iter_mut().enumerate() {
            if let Some(done) = state.done.filter(|&d| Some(d) != state.committed) {
                offsets.push((p as i32, done));
                state.committed = Some(done);
            }
        }
        if offsets.is_empty() {
            return Ok(());
        }
        self.offsets.commit(&offsets, wait)
    }
}
