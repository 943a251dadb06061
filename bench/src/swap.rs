//! `bench swap`: hot swaps under a steady stream, as `harness up`
//! runs them. Each swap deploys a new version through the admin endpoint;
//! the bridge times the switch and the new version's first batch, and the
//! batches before it are the baseline, in the same run.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use generator::StreamArgs;
use transform_host::{Host, Logger, Transform, TransformSpec};

use admin::{Client, DeployRequest, EnvVar, SwapTiming};
use hosting::{quantile, with_custom_section};
use topics::Retention;
use up::{RegistryChoice, Stack, Storage, UpOptions};

pub struct SwapBench {
    pub swaps: usize,
    /// Events a second.
    pub rate: f64,
    pub partitions: i32,
    pub batch_size: usize,
}

/// Every swap's timing, and what the figures sum up to.
pub struct SwapReport {
    pub swaps: Vec<SwapTiming>,
    pub records_in: u64,
}

/// A figure over the swaps: p50, p99 and max.
#[derive(Debug, Clone, Copy)]
pub struct Spread {
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

impl std::fmt::Display for SwapReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let show = |f: &mut std::fmt::Formatter<'_>,
                    label: &str,
                    spread: Option<Spread>,
                    unit: &str| match spread {
            Some(s) => writeln!(
                f,
                "{label:<34} p50 {:>8.2}{unit}  p99 {:>8.2}{unit}  max {:>8.2}{unit}",
                s.p50, s.p99, s.max
            ),
            None => writeln!(f, "{label:<34} not measured"),
        };
        writeln!(
            f,
            "swaps:                             {} ({} records processed meanwhile)",
            self.swaps.len(),
            self.records_in
        )?;
        show(f, "pause (the switch itself):", self.pause_ms(), " ms")?;
        show(
            f,
            "first batch vs the batches before:",
            self.first_batch_ratio(),
            "x ",
        )?;
        show(f, "processing lost per swap:", self.lost_ms(), " ms")?;
        show(
            f,
            "request to switch (old one runs):",
            self.request_ms(),
            " ms",
        )
    }
}

impl SwapReport {
    fn spread(&self, figure: impl Fn(&SwapTiming) -> Option<f64>) -> Option<Spread> {
        let values: Vec<f64> = self.swaps.iter().filter_map(figure).collect();
        Some(Spread {
            p50: quantile(&values, 0.5)?,
            p99: quantile(&values, 0.99)?,
            max: quantile(&values, 1.0)?,
        })
    }

    /// Processing stopped for the switch, in milliseconds.
    pub fn pause_ms(&self) -> Option<Spread> {
        self.spread(|s| Some(s.pause_ms))
    }

    /// The new version's first batch, per record, over the median batch
    /// before the swap.
    pub fn first_batch_ratio(&self) -> Option<Spread> {
        self.spread(|s| Some(s.first_batch_us_per_record? / s.before_us_per_record?))
    }

    /// What a swap costs processing in all, in milliseconds: the pause,
    /// plus how much longer the first batch took than the batches before.
    pub fn lost_ms(&self) -> Option<Spread> {
        self.spread(|s| {
            let extra = (s.first_batch_us_per_record? - s.before_us_per_record?)
                * s.first_batch_records as f64
                / 1e3;
            Some(s.pause_ms + extra.max(0.0))
        })
    }

    /// From the deploy request to the switch, in milliseconds.
    pub fn request_ms(&self) -> Option<Spread> {
        self.spread(|s| Some(s.request_ms))
    }
}

/// Runs the pipeline in this process at `bench.rate` and swaps versions of
/// `module` in, one after the other, `bench.swaps` times.
pub fn bench_swap(
    host: &Host,
    transform: &Transform,
    module: &[u8],
    spec: TransformSpec,
    bench: &SwapBench,
    logger: Logger,
    progress: &dyn Fn(&str),
) -> Result<SwapReport> {
    let stop = Arc::new(AtomicBool::new(false));
    let options = UpOptions {
        module: Arc::new(module.to_vec()),
        stream: StreamArgs {
            rate: bench.rate.to_string(),
            ..StreamArgs::default()
        },
        partitions: bench.partitions,
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        admin_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        access: http_access::Access::open(),
        batch_size: bench.batch_size,
        memory_reservation: hosting::transforms::DEFAULT_MEMORY_RESERVATION,
        storage: Storage::Memory,
        retention: Retention {
            memory_bytes: 64 << 20,
            ..Retention::default()
        },
        truth: None,
        schema_registry: RegistryChoice::Serve(SocketAddr::from(([127, 0, 0, 1], 0))),
        thresholds: Default::default(),
        alert_webhook: None,
        spans: history::Spans::default(),
        hot_ms: dashboard::service::Settings::default().hot_ms,
        kafka: up::kafka::KafkaOptions::off(),
    };
    let request = DeployRequest {
        name: spec.name.clone(),
        input_topic: spec.input_topic.clone(),
        output_topics: spec.output_topics.clone(),
        environment: EnvVar::all(&spec.env),
        compression: None,
        offset: None,
    };
    let stack = Stack::start(host, transform, spec, options, logger, stop.clone())?;
    let measured = (|| {
        let client = Client::new(&stack.endpoints().admin.to_string())?;
        progress("warming up for 3 s…");
        std::thread::sleep(Duration::from_secs(3));
        for i in 1..=bench.swaps {
            let version = with_custom_section(module, &format!("bench-swap-{i}"));
            client.deploy(&request, &version)?;
            // A few batches on each version: the next swap's baseline.
            std::thread::sleep(Duration::from_millis(250));
            if i % 10 == 0 {
                progress(&format!("{i} of {} swaps", bench.swaps));
            }
        }
        let status = client
            .list()?
            .pop()
            .and_then(|t| t.harness)
            .context("the host lists no transform")?;
        Ok(SwapReport {
            swaps: status.swaps,
            records_in: status.records_in,
        })
    })();
    stop.store(true, Ordering::Relaxed);
    // The pipeline's own error explains a failed measurement best.
    stack.shut_down()?;
    measured
}
