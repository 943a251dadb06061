//! `bench pipeline`: the pipeline transform in WASM under the harness
//! against the same library natively, on the same events in the same
//! process; and how many distinct keys it holds in its memory.

use std::sync::Arc;
use std::time::{Duration, Instant};

use analytics::{pane_record, Config, Pipeline, RecordMeta, Routed};
use anyhow::{anyhow, Result};
use record_payload::{encode_record, BorrowedRecord};
use transform_host::{Batch, Host, Logger, Record, Transform, TransformSpec};

use hosting::engine::Engine;

pub struct BenchReport {
    pub events: usize,
    pub outputs: usize,
    pub wasm: Duration,
    pub native: Duration,
    /// The guest's linear memory after the seed's stream.
    pub wasm_memory_bytes: usize,
}

impl std::fmt::Display for BenchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "events:            {}", self.events)?;
        writeln!(f, "records written:   {}", self.outputs)?;
        writeln!(
            f,
            "wasm (harness):    {:>12.0} events/s  ({:.3} s, one core)",
            self.wasm_events_per_sec(),
            self.wasm.as_secs_f64()
        )?;
        writeln!(
            f,
            "native (library):  {:>12.0} events/s  ({:.3} s, one core)",
            self.native_events_per_sec(),
            self.native.as_secs_f64()
        )?;
        writeln!(f, "wasm/native cost:  {:>12.2}x", self.cost_ratio())?;
        writeln!(
            f,
            "guest memory:      {:>12} KiB after the seed's stream",
            self.wasm_memory_bytes >> 10
        )
    }
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
    // Records as the generator writes them: stamped with their event time.
    let values: Vec<(i64, Vec<u8>)> = (0..events)
        .map(|_| {
            let event = stream.next_event();
            (event.ts_ms, event.value)
        })
        .collect();
    let batches: Vec<Arc<Batch>> = values
        .chunks(batch_size.max(1))
        .enumerate()
        .map(|(b, chunk)| {
            let records = chunk
                .iter()
                .enumerate()
                .map(|(i, (ts_ms, v))| {
                    let mut payload = Vec::new();
                    encode_record(&BorrowedRecord::new(Some(b"key"), Some(v)), &mut payload);
                    Record {
                        offset: (b * batch_size + i) as i64,
                        timestamp_ms: *ts_ms,
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
    let mut wasm_memory_bytes = 0;
    for _ in 0..rounds.max(1) {
        let mut runtime = Engine::start(
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
        wasm_memory_bytes = runtime.memory_bytes();

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
        wasm_memory_bytes,
    })
}

/// How the transform's memory holds up when every record has a key of its
/// own: the most it used, against the seed's handful of keys.
pub struct KeyCapacity {
    pub keys: usize,
    pub batch_size: usize,
    pub memory_bytes: usize,
    pub took: Duration,
    /// The guest memory of the seed stream, measured before.
    pub baseline_bytes: usize,
}

impl KeyCapacity {
    /// What one more key in a batch costs, in bytes of guest memory: the
    /// memory over the seed stream's, per key of a batch.
    pub fn bytes_per_key_in_a_batch(&self) -> f64 {
        self.memory_bytes.saturating_sub(self.baseline_bytes) as f64 / self.batch_size as f64
    }
}

/// Its lines of the report, against the seed stream's memory.
impl std::fmt::Display for KeyCapacity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "distinct keys:     {:>12} in {:.1} s, no trap; guest memory {} KiB at most",
            self.keys,
            self.took.as_secs_f64(),
            self.memory_bytes >> 10
        )?;
        writeln!(
            f,
            "per key in a batch: {:>11.0} bytes of guest memory (batches of {}); none kept between batches",
            self.bytes_per_key_in_a_batch(),
            self.batch_size
        )
    }
}

/// Runs `keys` events, each of a campaign of its own, through the
/// transform in batches of `batch_size`; `baseline_bytes` is the seed
/// stream's guest memory.
pub fn key_capacity(
    host: &Host,
    transform: &Transform,
    spec: &TransformSpec,
    keys: usize,
    batch_size: usize,
    baseline_bytes: usize,
    logger: Logger,
) -> Result<KeyCapacity> {
    let mut runtime = Engine::start(
        host,
        transform,
        spec.clone(),
        vec![1; spec.output_topics.len()],
        logger,
    )
    .map_err(|f| anyhow!("the transform failed at start: {f}"))?;
    let start = Instant::now();
    let base_ms = 1_755_439_200_000i64;
    let mut offset = 0i64;
    while (offset as usize) < keys {
        let n = batch_size.min(keys - offset as usize);
        let records = (0..n as i64)
            .map(|i| {
                let o = offset + i;
                let ts_ms = base_ms + o;
                let value = format!(
                    r#"{{"event_id":"e{o}","ts":"{}","user_id":"u{o}","campaign_id":"campaign_{o:08}","channel":"email","event":"click","cost":1.25}}"#,
                    analytics::time::format_naive(ts_ms)
                );
                let mut payload = Vec::new();
                encode_record(&BorrowedRecord::new(None, Some(value.as_bytes())), &mut payload);
                Record {
                    offset: o,
                    timestamp_ms: ts_ms,
                    payload,
                }
            })
            .collect();
        runtime
            .process(0, Arc::new(Batch { records }))
            .map_err(|f| anyhow!("at {offset} distinct keys: {f}"))?;
        offset += n as i64;
    }
    Ok(KeyCapacity {
        keys,
        batch_size,
        memory_bytes: runtime.memory_bytes(),
        took: start.elapsed(),
        baseline_bytes,
    })
}

/// The same work as the transform, natively: enrich, aggregate, and encode
/// every output as the guest does for the host.
fn native_pipeline(config: &Config, values: &[(i64, Vec<u8>)], batch_size: usize) -> usize {
    let mut pipeline = Pipeline::new(config.clone());
    let mut outputs: Vec<Vec<u8>> = Vec::with_capacity(batch_size * 2);
    let mut total = 0;
    let write_panes = |pipeline: &mut Pipeline, outputs: &mut Vec<Vec<u8>>| {
        let Ok(()) = pipeline.flush(|pane| {
            let (key, value) = pane_record(&pane);
            let mut payload = Vec::new();
            encode_record(
                &BorrowedRecord::new(Some(key.as_bytes()), Some(&value)),
                &mut payload,
            );
            outputs.push(payload);
            Ok::<(), std::convert::Infallible>(())
        });
    };
    for (b, chunk) in values.chunks(batch_size.max(1)).enumerate() {
        for (i, (timestamp_ms, value)) in chunk.iter().enumerate() {
            let mut payload = Vec::new();
            encode_record(
                &BorrowedRecord::new(Some(b"key"), Some(value)),
                &mut payload,
            );
            let meta = RecordMeta {
                timestamp_ms: *timestamp_ms,
                size_bytes: payload.len(),
            };
            match pipeline.record((b * batch_size + i) as i64, meta, Some(value)) {
                Routed::Event { key, value } => {
                    encode_record(&BorrowedRecord::new(Some(key), Some(value)), &mut payload)
                }
                Routed::Rejected(why) => encode_record(
                    &BorrowedRecord::new(Some(why.message.as_bytes()), Some(value)),
                    &mut payload,
                ),
            }
            outputs.push(payload);
            if pipeline.must_flush() {
                write_panes(&mut pipeline, &mut outputs);
            }
        }
        write_panes(&mut pipeline, &mut outputs);
        total += outputs.len();
        outputs.clear();
    }
    total
}
