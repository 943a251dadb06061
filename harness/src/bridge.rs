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

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use record_payload::{decode_record, BorrowedHeader, BorrowedRecord};
use transform_host::{Batch, Host, Logger, Record, Transform, TransformSpec};

use crate::admin::{Admin, Swap, SwapTiming, TransformStatus};
use crate::batch_log::{self, BatchEntry, OutputEnd};
use crate::quantile;
use crate::records::show;
use crate::runtime::{unread_batch, Runtime};
use crate::transport::{Polled, Reader, StartAt, Transport, Writer};
// On every output: which transform version wrote it, for readers such as
// the dashboard.
use dashboard::source::VERSION_HEADER;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartFrom {
    Beginning,
    End,
}

pub struct BridgeOptions {
    /// Most records in one batch.
    pub batch_size: usize,
    /// Where a partition with no committed offset starts.
    pub from: StartFrom,
    pub commit_interval: Duration,
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

/// Where a partition resumes, and from how far back it is being read.
///
/// A resume offset can fall inside a batch a Kafka producer wrote. Kafka then
/// returns the whole batch and the client drops the records before the
/// offset; Tansu 0.6 instead answers with the *next* batch, silently
/// skipping the rest. So the bridge reads from before the offset, drops what
/// comes before it, and reads from further back still if the first record
/// it gets is past it.
#[derive(Debug, Clone, Copy)]
struct Resume {
    at: i64,
    from: i64,
}

/// The longest a record waits in a partition's buffer while others flow.
const LINGER: Duration = Duration::from_millis(50);

/// How far before a resume offset reading starts: librdkafka's largest
/// batch (`batch.num.messages`).
const REWIND: i64 = 10_000;

/// Where each input partition stands.
struct PartitionState {
    buffer: Vec<Record>,
    /// After a crash: the first batch ends exactly at this offset.
    cut_at: Option<i64>,
    resume: Option<Resume>,
    /// After a crash: outputs of the first batch already written, per
    /// output topic.
    skip: Vec<u64>,
    /// The offset after the last batch whose outputs are all acknowledged.
    done: Option<i64>,
    committed: Option<i64>,
}

pub struct Bridge {
    options: BridgeOptions,
    runtime: Runtime,
    reader: Box<dyn Reader>,
    writer: Box<dyn Writer>,
    batch_log: String,
    partitions: Vec<PartitionState>,
    output_partitions: Vec<i32>,
    /// End offsets of the output partitions when the bridge started; ours
    /// come from delivery reports after that.
    start_ends: HashMap<(usize, i32), i64>,
    /// The batch whose outputs were sent last and may not be acknowledged.
    unacked: Option<(i32, i64)>,
    last_commit: Instant,
    pub progress: BridgeProgress,
    host: Host,
    logger: Logger,
    version: String,
    status: Arc<Mutex<TransformStatus>>,
    swaps: Option<Receiver<Swap>>,
    /// Time per record of the latest batches, in microseconds: the
    /// baseline a swap's first batch is compared with.
    recent_batches: VecDeque<f64>,
    /// A swap happened and its first batch is not timed yet.
    timing_first_batch: bool,
}

/// How many batch times a swap's baseline is the median of.
const RECENT_BATCHES: usize = 256;

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
    ) -> Result<Bridge> {
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
        let entries = batch_log::last_entries(transport, &batch_log, inputs)?;
        let committed = transport.committed(&spec.name, input, inputs)?;

        let mut starts = Vec::new();
        let mut partitions = Vec::new();
        for (p, committed) in committed.into_iter().enumerate() {
            let mut state = PartitionState {
                buffer: Vec::new(),
                cut_at: None,
                resume: None,
                skip: vec![0; spec.output_topics.len()],
                done: committed,
                committed,
            };
            let entry = entries[p]
                .as_ref()
                .filter(|e| committed.is_none_or(|c| c <= e.last_offset));
            let resume_at = match (entry, committed) {
                (Some(entry), _) => {
                    for end in &entry.outputs {
                        let Some(t) = spec.output_topics.iter().position(|t| *t == end.topic)
                        else {
                            bail!("the batch log names output topic {}, which this transform does not have: outputs cannot change on a redeploy", end.topic);
                        };
                        let now = start_ends.get(&(t, end.partition)).copied().unwrap_or(0);
                        state.skip[t] = (now - end.end).max(0) as u64;
                    }
                    eprintln!(
                        "partition {p}: re-running offsets {}..={} as one batch; already written: {}",
                        entry.first_offset,
                        entry.last_offset,
                        describe_skip(&spec.output_topics, &state.skip)
                    );
                    state.cut_at = Some(entry.last_offset);
                    Some(entry.first_offset)
                }
                (None, Some(c)) => Some(c),
                (None, None) => None,
            };
            starts.push(match resume_at {
                Some(at) => {
                    let from = (at - REWIND).max(0);
                    state.resume = Some(Resume { at, from });
                    StartAt::Offset(from)
                }
                None => match options.from {
                    StartFrom::Beginning => StartAt::Beginning,
                    StartFrom::End => StartAt::End,
                },
            });
            partitions.push(state);
        }
        let reader = transport.reader(&spec.name, input, &starts)?;
        let writer = transport.writer()?;
        let status = Arc::new(Mutex::new(TransformStatus {
            name: spec.name.clone(),
            input_topic: spec.input_topic.clone(),
            output_topics: spec.output_topics.clone(),
            version: transform.version.clone(),
            status: "running".into(),
            ..TransformStatus::default()
        }));
        let runtime = Runtime::start(
            host,
            transform,
            spec,
            output_partitions.clone(),
            logger.clone(),
        )
        .map_err(|f| anyhow!("the transform failed at start: {f}"))?;
        Ok(Bridge {
            options,
            runtime,
            reader,
            writer,
            batch_log,
            partitions,
            output_partitions,
            start_ends,
            unacked: None,
            last_commit: Instant::now(),
            progress: BridgeProgress::default(),
            host: host.clone(),
            logger,
            version: transform.version.clone(),
            status,
            swaps: None,
            recent_batches: VecDeque::with_capacity(RECENT_BATCHES),
            timing_first_batch: false,
        })
    }

    /// The admin side of this bridge: its status, and new versions to swap
    /// in between two batches.
    pub fn admin(&mut self) -> Admin {
        let (admin, swaps) = Admin::new(
            self.host.clone(),
            self.logger.clone(),
            self.runtime.spec().clone(),
            self.output_partitions.clone(),
            self.status.clone(),
        );
        self.swaps = Some(swaps);
        admin
    }

    pub fn status(&self) -> Arc<Mutex<TransformStatus>> {
        self.status.clone()
    }

    /// Switches to a started VM of a new version. The batch in flight has
    /// finished on the old one (this runs between batches), and records
    /// buffered since go to the new one: nothing is skipped or run twice.
    /// While a crashed run's last batch is being re-run the swap waits: that
    /// batch must produce the same outputs as the first time.
    fn swap(&mut self, swap: Swap) -> Option<Swap> {
        if self.partitions.iter().any(|s| s.cut_at.is_some()) {
            return Some(swap);
        }
        let paused = Instant::now();
        let old = std::mem::replace(&mut self.runtime, swap.runtime);
        self.version = swap.version;
        drop(old);
        let pause = paused.elapsed();
        let timing = SwapTiming {
            request_ms: swap.requested.elapsed().as_secs_f64() * 1e3,
            pause_ms: pause.as_secs_f64() * 1e3,
            before_us_per_record: quantile(self.recent_batches.make_contiguous(), 0.5),
            ..SwapTiming::default()
        };
        self.timing_first_batch = true;
        let mut status = self.status.lock().expect("not poisoned");
        status.version = self.version.clone();
        status.deploys += 1;
        status.swapped(timing);
        eprintln!(
            "swapped {} to version {} ({:.2} ms pause, {:.0} ms from the request)",
            status.name, self.version, timing.pause_ms, timing.request_ms
        );
        let _ = swap.done.send(());
        None
    }

    /// Keeps the batch's time per record; the first batch after a swap
    /// goes into that swap's timing.
    fn timed_batch(&mut self, records: usize, took: Duration) {
        let us_per_record = took.as_secs_f64() * 1e6 / records as f64;
        if std::mem::take(&mut self.timing_first_batch) {
            let mut status = self.status.lock().expect("not poisoned");
            if let Some(swap) = status.swaps.last_mut() {
                swap.first_batch_us_per_record = Some(us_per_record);
                swap.first_batch_records = records as u64;
            }
        }
        if self.recent_batches.len() == RECENT_BATCHES {
            self.recent_batches.pop_front();
        }
        self.recent_batches.push_back(us_per_record);
    }

    /// Runs until `stop` is set or the transform fails. `report` is called
    /// about every `every`.
    pub fn run(
        &mut self,
        stop: &AtomicBool,
        every: Duration,
        report: &mut dyn FnMut(&BridgeProgress),
    ) -> Result<()> {
        let result = self.run_until(stop, every, report);
        // Whatever happened, what was acknowledged gets committed.
        let finished = self.finish_sent();
        result.and(finished).and_then(|()| self.commit(true))
    }

    fn run_until(
        &mut self,
        stop: &AtomicBool,
        every: Duration,
        report: &mut dyn FnMut(&BridgeProgress),
    ) -> Result<()> {
        let mut last_report = Instant::now();
        let mut last_status = Instant::now();
        let mut last_cut = Instant::now();
        let mut last_error = String::new();
        let mut waiting_swap = None;
        while !stop.load(Ordering::Relaxed) {
            if let Some(swap) = waiting_swap
                .take()
                .or_else(|| self.swaps.as_ref().and_then(|s| s.try_recv().ok()))
            {
                waiting_swap = self.swap(swap);
            }
            let buffered = self.partitions.iter().any(|s| !s.buffer.is_empty());
            let wait = if buffered {
                Duration::ZERO
            } else {
                Duration::from_millis(100)
            };
            match self.reader.poll(wait) {
                Polled::Record(p, record) => {
                    if self.resumed(p, record.offset)? {
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
                        eprintln!(
                            "reading {}: {error} (retrying)",
                            self.runtime.spec().input_topic
                        );
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
                self.progress.transform_bytes = self.runtime.memory_bytes();
                report(&self.progress);
            }
        }
        Ok(())
    }

    fn update_status(&mut self) {
        let lag = self.reader.lag();
        let mut status = self.status.lock().expect("not poisoned");
        status.records_in = self.progress.records_in;
        status.records_out = self.progress.records_out;
        status.lag = lag;
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
        let started = Instant::now();
        let processed = self.runtime.process(p, batch.clone());
        self.timed_batch(batch.records.len(), started.elapsed());
        let outputs = match processed {
            Ok(outputs) => outputs,
            Err(failure) => {
                let culprit = failure
                    .offset
                    .and_then(|o| batch.records.iter().find(|r| r.offset == o));
                return Err(match culprit {
                    Some(r) => {
                        let (key, value) = match decode_record(&r.payload) {
                            Ok(d) => (show(d.key()), show(d.value())),
                            Err(_) => ("?".into(), "?".into()),
                        };
                        anyhow!(
                            "the transform failed on {} partition {p} offset {} (key {key}, value {value}): {failure}; \
                             it was not committed, so a restart retries it",
                            self.runtime.spec().input_topic,
                            r.offset,
                        )
                    }
                    None => anyhow!(
                        "the transform failed on a batch of partition {p} ({}) before reading any of its records: {failure}",
                        unread_batch(&batch)
                    ),
                });
            }
        };
        self.finish_sent()?;
        let spec = self.runtime.spec();
        let entry = BatchEntry {
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
            let record = decode_record(&out.payload).expect("the host validated every output");
            let mut headers = record.headers().to_vec();
            headers.push(BorrowedHeader::new(
                VERSION_HEADER.as_bytes(),
                Some(self.version.as_bytes()),
            ));
            self.writer.send(
                &spec.output_topics[out.topic],
                out.partition,
                &BorrowedRecord::new_with_headers(record.key(), record.value(), headers),
            )?;
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
        self.reader.commit(&offsets, wait)
    }
}

fn describe_skip(topics: &[String], skip: &[u64]) -> String {
    let parts: Vec<String> = topics
        .iter()
        .zip(skip)
        .map(|(t, n)| format!("{n} to {t}"))
        .collect();
    parts.join(", ")
}
