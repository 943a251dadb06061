//! `harness bench`: the pipeline transform in WASM under the harness against
//! the same library natively, on the same events in the same process.

use std::sync::Arc;
use std::time::{Duration, Instant};

use analytics::{pane_record, Config, Pipeline, Routed};
use anyhow::{anyhow, Result};
use record_payload::{encode_record, BorrowedRecord};
use transform_host::{Batch, Host, Logger, Record, Transform, TransformSpec};

use crate::runtime::Runtime;

pub struct BenchReport {
    pub events: usize,
    pub outputs: usize,
    pub wasm: Duration,
    pub native: Duration,
}

impl BenchReport {
    pub fn wasm_events_per_sec(&self) -> f64 {
        self.events as f64 / self.wasm.as_secs_f64()
    }
    pub fn native_events_per_sec(&self) -> f64 {
        self.events as f64 / self.native.as_secs_f64()
    }
    /// How many times longer WASM takes than native for the same work.
    pub fn cost_ratio(&self) -> f64 {
        self.wasm.as_secs_f64() / self.native.as_secs_f64()
    }
}

/// Runs each side `rounds` times, alternating, and keeps each side's best.
pub fn bench(
    host: &Host,
    transform: &Transform,
    spec: &TransformSpec,
    events: usize,
    batch_size: usize,
    rounds: usize,
    logger: Logger,
) -> Result<BenchReport> {
    let mut stream = generator::Stream::new(
        generator::Profile::default(),
        42,
        generator::Clock::Simulated {
            next_ms: 1_755_439_200_000,
        },
    );
    let values: Vec<Vec<u8>> = (0..events)
        .map(|_| stream.next_event().value.into_bytes())
        .collect();
    let batches: Vec<Arc<Batch>> = values
        .chunks(batch_size.max(1))
        .enumerate()
        .map(|(b, chunk)| {
            let records = chunk
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    let mut payload = Vec::new();
                    encode_record(&BorrowedRecord::new(Some(b"key"), Some(v)), &mut payload);
                    Record {
                        offset: (b * batch_size + i) as i64,
                        timestamp_ms: 0,
                        payload,
                    }
                })
                .collect();
            Arc::new(Batch { records })
        })
        .collect();
    let config = Config::from_vars(spec.env.clone()).map_err(|e| anyhow!(e))?;
    let (mut best_wasm, mut best_native) = (Duration::MAX, Duration::MAX);
    let mut outputs = 0;
    for _ in 0..rounds.max(1) {
        let mut runtime = Runtime::start(
            host,
            transform,
            spec.clone(),
            vec![1; spec.output_topics.len()],
            logger.clone(),
        )
        .map_err(|f| anyhow!("the transform failed at start: {f}"))?;
        let start = Instant::now();
        let mut wasm_outputs = 0;
        for batch in &batches {
            wasm_outputs += runtime
                .process(0, batch.clone())
                .map_err(|f| anyhow!("{f}"))?
                .len();
        }
        best_wasm = best_wasm.min(start.elapsed());

        let start = Instant::now();
        let native_outputs = native_pipeline(&config, &values, batch_size);
        best_native = best_native.min(start.elapsed());
        if native_outputs != wasm_outputs {
            return Err(anyhow!(
                "WASM wrote {wasm_outputs} records and native {native_outputs}: they disagree"
            ));
        }
        outputs = wasm_outputs;
    }
    Ok(BenchReport {
        events,
        outputs,
        wasm: best_wasm,
        native: best_native,
    })
}

/// The same work as the transform, natively: enrich, aggregate, and encode
/// every output as the guest does for the host.
fn native_pipeline(config: &Config, values: &[Vec<u8>], batch_size: usize) -> usize {
    let mut pipeline = Pipeline::new(config.clone());
    let mut outputs: Vec<Vec<u8>> = Vec::with_capacity(batch_size * 2);
    let mut total = 0;
    for (b, chunk) in values.chunks(batch_size.max(1)).enumerate() {
        for (i, value) in chunk.iter().enumerate() {
            let mut payload = Vec::new();
            match pipeline.record((b * batch_size + i) as i64, Some(value)) {
                Routed::Event { key, value } => {
                    encode_record(&BorrowedRecord::new(Some(key), Some(value)), &mut payload)
                }
                Routed::Rejected(why) => encode_record(
                    &BorrowedRecord::new(Some(why.0.as_bytes()), Some(value)),
                    &mut payload,
                ),
            }
            outputs.push(payload);
        }
        for pane in pipeline.finish_batch() {
            let (key, value) = pane_record(&pane);
            let mut payload = Vec::new();
            encode_record(
                &BorrowedRecord::new(Some(key.as_bytes()), Some(&value)),
                &mut payload,
            );
            outputs.push(payload);
        }
        total += outputs.len();
        outputs.clear();
    }
    total
}
