//! Standalone aggregation of `events` into `results` panes. A record that is
//! not an enriched event goes to the second output topic when there is one,
//! and is reported in the transform's log otherwise: never dropped silently.

use analytics::{pane_record, Aggregator};
use redpanda_transform_sdk_types::{BorrowedRecord, RecordWriter, WriteError, WriteOptions};
use transform_guest::{config_from_env, dead_letter, output_topic, run, BatchTransform, Input};

struct AggregateTransform {
    aggregator: Aggregator,
    dlq: Option<String>,
}

impl BatchTransform for AggregateTransform {
    fn record(&mut self, input: Input<'_>, out: &mut RecordWriter<'_>) -> Result<(), WriteError> {
        let Err(why) = self.aggregator.record(input.offset, input.record.value()) else {
            return Ok(());
        };
        match &self.dlq {
            Some(dlq) => out.write_with_options(
                dead_letter(&input.record, &why.0, "aggregate"),
                WriteOptions::to_topic(dlq),
            ),
            None => {
                eprintln!("offset {}: skipped, {why}", input.offset);
                Ok(())
            }
        }
    }

    fn end_of_batch(&mut self, out: &mut RecordWriter<'_>) -> Result<(), WriteError> {
        for pane in self.aggregator.finish_batch() {
            let (key, value) = pane_record(&pane);
            out.write(BorrowedRecord::new(Some(key.as_bytes()), Some(&value)))?;
        }
        Ok(())
    }
}

fn main() {
    let mut transform = AggregateTransform {
        aggregator: Aggregator::new(config_from_env()),
        dlq: output_topic(1),
    };
    run(&mut transform)
}
