//! `bench up`: `harness up` end to end in this process, its topics
//! in memory and on disk in the same run: events/s from the start until
//! the dashboard has counted every event, peak memory, bytes on disk per
//! event, the time a restart takes to serve and to show the history back,
//! the CPU an idle pipeline at the seed's rate takes, and how old the
//! newest event on the dashboard is at 1k events/s.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Result;
use generator::StreamArgs;
use topics::Retention;
use transform_host::{Host, Logger, Transform, TransformSpec};

use hosting::quantile;
use up::{RegistryChoice, Stack, Status, Storage, UpOptions};

pub struct UpBench {
    /// The module `transform` was loaded from.
    pub module: Arc<Vec<u8>>,
    pub events: u64,
    pub partitions: i32,
    pub batch_size: usize,
    /// Where the on-disk runs keep their folders (emptied first).
    pub data_dir: PathBuf,
    pub idle_seconds: u64,
    pub latency_seconds: u64,
}

/// One end-to-end run.
pub struct Run {
    pub elapsed: Duration,
    pub peak_rss_bytes: u64,
}

pub struct UpReport {
    pub events: u64,
    pub memory: Run,
    pub disk: Run,
    pub disk_bytes: u64,
    /// Started again on the folder: until it serves, and until the
    /// dashboard has counted every event again.
    pub restart_serving: Duration,
    pub restart_history: Duration,
    /// Cores used at the seed's rate, on disk.
    pub idle_cores: f64,
    pub latency_p50_ms: f64,
    pub latency_p99_ms: f64,
}

impl UpReport {
    fn rate(&self, run: &Run) -> f64 {
        self.events as f64 / run.elapsed.as_secs_f64()
    }

    pub fn bytes_per_event(&self) -> f64 {
        self.disk_bytes as f64 / self.events as f64
    }
}

impl std::fmt::Display for UpReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mib = |b: u64| b as f64 / (1 << 20) as f64;
        writeln!(f, "events:                 {}", self.events)?;
        writeln!(
            f,
            "in memory:              {:>9.0} events/s end to end ({:.1} s), peak {:.0} MiB resident",
            self.rate(&self.memory),
            self.memory.elapsed.as_secs_f64(),
            mib(self.memory.peak_rss_bytes)
        )?;
        writeln!(
            f,
            "on disk:                {:>9.0} events/s end to end ({:.1} s), peak {:.0} MiB resident",
            self.rate(&self.disk),
            self.disk.elapsed.as_secs_f64(),
            mib(self.disk.peak_rss_bytes)
        )?;
        writeln!(
            f,
            "on disk / in memory:    {:>9.2}x the throughput",
            self.rate(&self.disk) / self.rate(&self.memory)
        )?;
        writeln!(
            f,
            "disk:                   {:>9.0} bytes an event ({:.0} MiB for these events, back-filled in large batches; at the seed's rate each event is a batch of its own and takes more)",
            self.bytes_per_event(),
            mib(self.disk_bytes),
        )?;
        writeln!(
            f,
            "restart on the folder:  serving after {:.1} s, every event back on the dashboard after {:.1} s",
            self.restart_serving.as_secs_f64(),
            self.restart_history.as_secs_f64()
        )?;
        writeln!(
            f,
            "idle at 15 events/s:    {:>9.1}% of one core",
            self.idle_cores * 100.0
        )?;
        writeln!(
            f,
            "event to dashboard at 1k events/s: p50 {:.0} ms, p99 {:.0} ms",
            self.latency_p50_ms, self.latency_p99_ms
        )
    }
}

fn options(bench: &UpBench, stream: StreamArgs, storage: Storage) -> UpOptions {
    let any = SocketAddr::from(([127, 0, 0, 1], 0));
    UpOptions {
        module: bench.module.clone(),
        stream,
        partitions: bench.partitions,
        listen: any,
        admin_listen: any,
        access: http_access::Access::open(),
        batch_size: bench.batch_size,
        memory_reservation: hosting::transforms::DEFAULT_MEMORY_RESERVATION,
        storage,
        retention: Retention::default(),
        truth: None,
        schema_registry: RegistryChoice::Serve(any),
        thresholds: Default::default(),
        alert_webhook: None,
        spans: history::Spans::default(),
        hot_ms: dashboard::service::Settings::default().hot_ms,
        kafka: up::kafka::KafkaOptions::off(),
    }
}

/// Runs `up` until `done` says so; returns the time until it served and
/// until it was done.
fn run_until(
    host: &Host,
    transform: &Transform,
    spec: &TransformSpec,
    options: UpOptions,
    logger: &Logger,
    done: &mut dyn FnMut(&Status, Duration) -> bool,
) -> Result<(Duration, Duration)> {
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let stack = Stack::start(
        host,
        transform,
        spec.clone(),
        options,
        logger.clone(),
        stop.clone(),
    )?;
    let serving = started.elapsed();
    let finished = loop {
        std::thread::sleep(Duration::from_millis(10));
        if done(&stack.status(), started.elapsed()) {
            break started.elapsed();
        }
    };
    stop.store(true, Ordering::Relaxed);
    stack.shut_down()?;
    Ok((serving, finished))
}

/// `/proc/self/status`'s peak resident set, reset for the next run.
fn take_peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let peak = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb << 10);
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    peak
}

/// The CPU time this process has used (user and system), from
/// `/proc/self/stat` at Linux's 100 ticks a second.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name, which is in parentheses.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|t| t.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15, the 12th and 13th after it.
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

fn fresh(dir: &Path) -> Result<PathBuf> {
    topics::remove(dir)?;
    Ok(dir.to_path_buf())
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

pub fn bench_up(
    host: &Host,
    transform: &Transform,
    spec: &TransformSpec,
    bench: &UpBench,
    logger: Logger,
    progress: &dyn Fn(&str),
) -> Result<UpReport> {
    let counted = StreamArgs {
        rate: "max".into(),
        count: Some(bench.events),
        start: Some("2025-08-17T00:00:00".into()),
        ..StreamArgs::default()
    };
    let all_counted = |s: &Status, _: Duration| s.dashboard.records >= bench.events;
    let mut runs = Vec::new();
    let folder = bench.data_dir.join("throughput");
    for storage in [Storage::Memory, Storage::Folder(fresh(&folder)?)] {
        let on = storage.to_string();
        progress(&format!("{} events at full speed, {on}…", bench.events));
        take_peak_rss();
        let (_, elapsed) = run_until(
            host,
            transform,
            spec,
            options(bench, counted.clone(), storage),
            &logger,
            &mut { all_counted },
        )?;
        runs.push(Run {
            elapsed,
            peak_rss_bytes: take_peak_rss(),
        });
    }
    let disk_bytes = topics::folder_bytes(&folder);

    progress("started again on the folder…");
    let (restart_serving, restart_history) = run_until(
        host,
        transform,
        spec,
        options(bench, counted, Storage::Folder(folder.clone())),
        &logger,
        &mut { all_counted },
    )?;

    progress(&format!(
        "the seed's 15 events/s on disk for {} s…",
        bench.idle_seconds
    ));
    let idle_folder = fresh(&bench.data_dir.join("idle"))?;
    let warm = Duration::from_secs(5);
    let mut from: Option<(Duration, Duration)> = None;
    let mut idle_cores = 0.0;
    run_until(
        host,
        transform,
        spec,
        options(bench, StreamArgs::default(), Storage::Folder(idle_folder)),
        &logger,
        &mut |_, elapsed| {
            if elapsed < warm {
                return false;
            }
            let (at, cpu) = *from.get_or_insert((elapsed, cpu_time()));
            let over = elapsed - at;
            idle_cores = (cpu_time() - cpu).as_secs_f64() / over.as_secs_f64().max(1e-9);
            over >= Duration::from_secs(bench.idle_seconds)
        },
    )?;

    progress(&format!(
        "1,000 events/s on disk for {} s…",
        bench.latency_seconds
    ));
    let latency_folder = fresh(&bench.data_dir.join("latency"))?;
    let mut ages = Vec::new();
    let live = StreamArgs {
        rate: "1000".into(),
        ..StreamArgs::default()
    };
    run_until(
        host,
        transform,
        spec,
        options(bench, live, Storage::Folder(latency_folder)),
        &logger,
        &mut |status, elapsed| {
            if elapsed >= Duration::from_secs(3) && status.dashboard.newest_event_ms > 0 {
                ages.push((now_ms() - status.dashboard.newest_event_ms) as f64);
            }
            elapsed >= Duration::from_secs(3 + bench.latency_seconds)
        },
    )?;
    for dir in ["throughput", "idle", "latency"] {
        topics::remove(&bench.data_dir.join(dir))?;
    }
    let mut runs = runs.into_iter();
    let (memory, disk) = (
        runs.next().expect("two runs"),
        runs.next().expect("two runs"),
    );
    Ok(UpReport {
        events: bench.events,
        memory,
        disk,
        disk_bytes,
        restart_serving,
        restart_history,
        idle_cores,
        latency_p50_ms: quantile(&ages, 0.5).unwrap_or(0.0),
        latency_p99_ms: quantile(&ages, 0.99).unwrap_or(0.0),
    })
}
