//! The deployable pipeline transform: every `logs` record is enriched once;
//! valid events go to `events`, invalid ones to `logs.dlq`, and each batch
//! ends with one pane per (campaign, channel, window) it touched in `results`
//! (more, cut at the same records every time, when a batch holds more keys
//! than fit in memory at once). Output topics, in order: results, events,
//! logs.dlq. `logs` values are JSON, or Avro in Confluent's framing, read
//! with their writer schema from Redpanda's Schema Registry.

use analytics::{pane_record, Pipeline, Routed};
use redpanda_transform_sdk_types::{BorrowedRecord, RecordWriter, WriteError, WriteOptions};
use transform_guest::{
    config_from_env, output_topic, run, BatchTransform, DeadLetter, Input, RegistrySchemas,
};

struct PipelineTransform {
    pipeline: Pipeline,
    events: String,
    dlq: String,
}

impl PipelineTransform {
    fn write_panes(&mut self, out: &mut RecordWriter<'_>) -> Result<(), WriteError> {
        self.pipeline.flush(|pane| {
            let (key, value) = pane_record(&pane);
            out.write(BorrowedRecord::new(Some(key.as_bytes()), Some(&value)))
        })
    }
}

impl BatchTransform for PipelineTransform {
    fn record(
        &mut self,
        input: Input<'_>,
        out: &mut RecordWriter<'_>,
    ) -> Result<Option<DeadLetter>, WriteError> {
        match self
            .pipeline
            .record(input.offset, input.meta(), input.record.value())
        {
            Routed::Event { key, value } => out.write_with_options(
                BorrowedRecord::new_with_headers(
                    Some(key),
                    Some(value),
                    input.record.headers().to_vec(),
                ),
                WriteOptions::to_topic(&self.events),
            )?,
            Routed::Rejected(rejection) => {
                return Ok(Some(DeadLetter {
                    rejection,
                    stage: "enrich",
                }))
            }
        }
        if self.pipeline.must_flush() {
            self.write_panes(out)?;
        }
        Ok(None)
    }

    fn end_of_batch(&mut self, out: &mut RecordWriter<'_>) -> Result<(), WriteError> {
        self.write_panes(out)
    }

    fn dead_letter_topic(&self) -> Option<&str> {
        Some(&self.dlq)
    }
}

fn main() {
    let (Some(events), Some(dlq)) = (output_topic(1), output_topic(2)) else {
        eprintln!(
            "marketing-pipeline needs three output topics, in order: results, events, logs.dlq"
        );
        std::process::exit(1)
    };
    let mut transform = PipelineTransform {
        pipeline: Pipeline::new(config_from_env()).with_schemas(Box::<RegistrySchemas>::default()),
        events,
        dlq,
    };
    run(&mut transform)
}
