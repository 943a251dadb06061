//! The generator: a reproducible stream of seed-shaped ad events for `logs`,
//! the exact totals of what it generated, sent to any sink (`topic_io`):
//! a broker's topic, the embedded topics, or a file.

pub mod args;
pub mod rng;
pub mod sink;
pub mod stream;
pub mod truth;

use std::time::{Duration, Instant};

use anyhow::Result;
use kafka_client::partition_for;
use topic_io::{BorrowedRecord, Sink};

pub use args::{StreamArgs, ValueFormat};
pub use sink::FileSink;
pub use stream::{Clock, Event, Format, Profile, Stream};
pub use truth::{Totals, Truth, TruthFile, WindowTotals};

/// How much and how fast.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Events a second; `None` for as fast as the sink takes them.
    pub rate: Option<f64>,
    pub count: Option<u64>,
    pub duration: Option<Duration>,
    pub partitions: i32,
}

/// Progress, for a live line or a final summary.
#[derive(Debug, Clone, Copy, Default)]
pub struct Progress {
    pub sent: u64,
    pub invalid: u64,
    pub failed: u64,
    pub elapsed: Duration,
}

impl Progress {
    pub fn rate(&self) -> f64 {
        self.sent as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// The shortest wait at a set rate: the events due meanwhile go out
/// together, as a Kafka producer's batch does after librdkafka's default
/// `linger.ms` (5 ms), instead of one batch (and one transform batch, one
/// batch-log entry) each.
const LINGER: Duration = Duration::from_millis(5);

/// Most events handed to the sink before it is told to send them.
const SINK_BATCH: u64 = 256;

/// Sends the stream to `topic` through the sink until the plan is done or
/// `stop` says so, each event stamped with its event time; every event is
/// also added to `truth`. `report` is called about every 200 ms.
pub fn generate(
    stream: &mut Stream,
    plan: &Plan,
    topic: &str,
    sink: &mut dyn Sink,
    truth: &mut Truth,
    stop: &dyn Fn() -> bool,
    report: &mut dyn FnMut(&Progress),
) -> Result<Progress> {
    let start = Instant::now();
    let mut progress = Progress::default();
    let mut last_report = start;
    while plan.count.is_none_or(|n| progress.sent < n)
        && plan.duration.is_none_or(|d| start.elapsed() < d)
    {
        if stop() {
            break;
        }
        if let Some(rate) = plan.rate {
            let due = start + Duration::from_secs_f64(progress.sent as f64 / rate);
            let now = Instant::now();
            if due > now {
                sink.push()?;
                std::thread::sleep((due - now).clamp(LINGER, Duration::from_millis(100)));
                continue;
            }
        }
        let event = stream.next_event();
        sink.send(
            topic,
            partition_for(event.key.as_bytes(), plan.partitions),
            Some(event.ts_ms),
            &BorrowedRecord::new(Some(event.key.as_bytes()), Some(event.value.as_slice())),
        )?;
        truth.add(&event);
        progress.sent += 1;
        // At full speed the next event is never far behind: the sink's
        // batches are this long.
        if progress.sent % SINK_BATCH == 0 {
            sink.push()?;
        }
        progress.invalid += u64::from(event.counted.is_none());
        // At a set rate every event may be the one a report is due at; as
        // fast as possible, the clock is read every 256 events only.
        let may_report = plan.rate.is_some() || progress.sent % 256 == 0;
        if may_report && last_report.elapsed() >= Duration::from_millis(200) {
            last_report = Instant::now();
            progress.elapsed = start.elapsed();
            progress.failed = sink.failed();
            report(&progress);
        }
    }
    sink.flush()?;
    progress.failed = sink.failed();
    progress.elapsed = start.elapsed();
    report(&progress);
    Ok(progress)
}
