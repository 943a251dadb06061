//! Standalone aggregation of `events` into `results` panes. A record that is
//! not an enriched event goes to the second output topic when there is one,
//! and is reported in the transform's log otherwise: never dropped silently.

use analytics::{pane_record, Aggregator};
use redpanda_transform_sdk_types::{BorrowedRecord, RecordWriter, WriteError};
use transform_guest::{config_from_env, output_topic, run, BatchTransform, DeadLetter, Input};

struct AggregateTransform {
    aggregator: Aggregator,
    dlq: Option<String>,
}

impl AggregateTransform {
    fn write_panes(&mut self, out: &mut RecordWriter<'_>) -> Result<(), WriteError> {
        self.aggregator.flush(|pane| {
            let (key, value) = pane_record(&pane);
            out.write(BorrowedRecord::new(Some(key.as_bytes()), Some(&value)))
        })
    }
}

impl BatchTransform for AggregateTransform {
    fn record(
        &mut self,
        input: Input<'_>,
        out: &mut RecordWriter<'_>,
    ) -> Result<Option<DeadLetter>, WriteError> {
        if let Err(rejection) =
            self.aggregator
                .record(input.offset, input.meta(), input.record.value())
        {
            return Ok(Some(DeadLetter {
                rejection,
                stage: "aggregate",
            }));
        }
        if self.aggregator.must_flush() {
            self.write_panes(out)?;
        }
        Ok(None)
    }

    fn end_of_batch(&mut self, out: &mut RecordWriter<'_>) -> Result<(), WriteError> {
        self.write_panes(out)
    }

    fn dead_letter_topic(&self) -> Option<&str> {
        self.dlq.as_deref()
    }
}

fn main() {
    let mut transform = AggregateTransform {
        aggregator: Aggregator::new(config_from_env()),
        dlq: output_topic(1),
    };
    run(&mut transform)
}
