//! The deployable pipeline transform: every `logs` record is enriched once;
//! valid events go to `events`, invalid ones to `logs.dlq`, and each batch
//! ends with one pane per (campaign, channel, window) it touched in `results`.
//! Output topics, in order: results, events, logs.dlq.

use analytics::{pane_record, Pipeline, Routed};
use redpanda_transform_sdk_types::{BorrowedRecord, RecordWriter, WriteError, WriteOptions};
use transform_guest::{config_from_env, dead_letter, output_topic, run, BatchTransform, Input};

struct PipelineTransform {
    pipeline: Pipeline,
    events: String,
    dlq: String,
}

impl BatchTransform for PipelineTransform {
    fn record(&mut self, input: Input<'_>, out: &mut RecordWriter<'_>) -> Result<(), WriteError> {
        match self.pipeline.record(input.offset, input.record.value()) {
            Routed::Event { key, value } => out.write_with_options(
                BorrowedRecord::new_with_headers(
                    Some(key),
                    Some(value),
                    input.record.headers().to_vec(),
                ),
                WriteOptions::to_topic(&self.events),
            ),
            Routed::Rejected(why) => out.write_with_options(
                dead_letter(&input.record, &why.0, "enrich"),
                WriteOptions::to_topic(&self.dlq),
            ),
        }
    }

    fn end_of_batch(&mut self, out: &mut RecordWriter<'_>) -> Result<(), WriteError> {
        for pane in self.pipeline.finish_batch() {
            let (key, value) = pane_record(&pane);
            out.write(BorrowedRecord::new(Some(key.as_bytes()), Some(&value)))?;
        }
        Ok(())
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
        pipeline: Pipeline::new(config_from_env()),
        events,
        dlq,
    };
    run(&mut transform)
}
