//! A started transform over partitioned topics, as Redpanda's engine is:
//! its VM, with batches in and records routed to output topics and
//! partitions out.

use std::ops::Range;
use std::sync::Arc;

use transform_host::{Batch, Failure, Host, Logger, Output, Transform, TransformSpec, Vm};

pub struct Engine {
    vm: Vm,
    spec: TransformSpec,
    /// Partitions of each output topic.
    output_partitions: Vec<i32>,
    /// What a restart starts again from.
    host: Host,
    transform: Transform,
    logger: Logger,
}

/// An output record with its topic and partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputRecord {
    pub topic: usize,
    pub partition: i32,
    pub payload: Vec<u8>,
}

impl Engine {
    /// One VM for every partition of the input topic, as Redpanda runs one
    /// per core for all the partitions it leads there.
    pub fn start(
        host: &Host,
        transform: &Transform,
        spec: TransformSpec,
        output_partitions: Vec<i32>,
        logger: Logger,
    ) -> Result<Engine, Failure> {
        assert_eq!(output_partitions.len(), spec.output_topics.len());
        let vm = Vm::start(host, transform, &spec, logger.clone())?;
        Ok(Engine {
            vm,
            spec,
            output_partitions,
            host: host.clone(),
            transform: transform.clone(),
            logger,
        })
    }

    /// A fresh VM of the same module, as Redpanda's shared engine makes one
    /// after a failure (`src/v/wasm/cache.cc`, `shared_engine::transform`:
    /// `stop()` then `start()`): the transform's memory starts over.
    pub fn restart(&mut self) -> Result<(), Failure> {
        self.vm = Vm::start(&self.host, &self.transform, &self.spec, self.logger.clone())?;
        Ok(())
    }

    pub fn spec(&self) -> &TransformSpec {
        &self.spec
    }

    /// The guest's linear memory in bytes: the most it has used.
    pub fn memory_bytes(&self) -> usize {
        self.vm.memory_bytes()
    }

    /// Runs a batch of input partition `partition`; each output goes to the
    /// same partition number of its topic (modulo its partition count).
    pub fn process(
        &mut self,
        partition: i32,
        batch: Arc<Batch>,
    ) -> Result<Vec<OutputRecord>, Failure> {
        let outputs = self.vm.process(batch)?;
        Ok(outputs
            .into_iter()
            .map(|Output { topic, payload }| OutputRecord {
                topic,
                partition: partition.rem_euclid(self.output_partitions[topic]),
                payload,
            })
            .collect())
    }
}

/// What a batch held, for a failure before the guest read any of it: the
/// usual cause is a record too large for the transform's memory.
pub fn unread_batch(batch: &Batch) -> String {
    let (Some(first), Some(last)) = (batch.records.first(), batch.records.last()) else {
        return "an empty batch".into();
    };
    let largest = batch
        .records
        .iter()
        .max_by_key(|r| r.payload.len())
        .expect("not empty");
    format!(
        "offsets {}..={}, the largest record {} bytes at offset {}",
        first.offset,
        last.offset,
        largest.payload.len(),
        largest.offset
    )
}

/// Splits records into batches: consecutive records of one partition, at
/// most `max` each.
pub fn batch_ranges(partitions: &[i32], max: usize) -> Vec<(i32, Range<usize>)> {
    let mut out: Vec<(i32, Range<usize>)> = Vec::new();
    for (i, &p) in partitions.iter().enumerate() {
        match out.last_mut() {
            Some((last, range)) if *last == p && range.len() < max => range.end = i + 1,
            _ => out.push((p, i..i + 1)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::batch_ranges;

    #[test]
    fn batches_are_consecutive_runs_of_a_partition() {
        assert_eq!(
            batch_ranges(&[0, 0, 0, 1, 1, 0], 2),
            [(0, 0..2), (0, 2..3), (1, 3..5), (0, 5..6)]
        );
        assert!(batch_ranges(&[], 5).is_empty());
    }
}
