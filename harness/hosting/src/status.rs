//! What a host knows of each transform it runs, as `harness list` and
//! `GET /v1/transform` show it.

use admin::{EnvVar, HarnessStatus, PartitionStatus, SwapTiming, TransformMetadata};
use transform_host::TransformSpec;

/// A partition's state, as Redpanda names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Records are processed.
    Running,
    /// Starting, or paused.
    Inactive,
    /// The transform failed; it is retried after a backoff.
    Errored,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Running => "running",
            State::Inactive => "inactive",
            State::Errored => "errored",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionState {
    pub state: State,
    pub lag: i64,
}

#[derive(Debug, Clone, Default)]
pub struct TransformState {
    pub version: String,
    pub paused: bool,
    pub partitions: Vec<PartitionState>,
    pub records_in: u64,
    pub records_out: u64,
    pub deploys: u64,
    pub swaps: Vec<SwapTiming>,
    pub errors: Vec<String>,
}

fn keep_last<T>(list: &mut Vec<T>, kept: usize, item: T) {
    if list.len() == kept {
        list.remove(0);
    }
    list.push(item);
}

impl TransformState {
    pub fn error(&mut self, error: String) {
        keep_last(&mut self.errors, 10, error);
    }

    pub fn swapped(&mut self, timing: SwapTiming) {
        keep_last(&mut self.swaps, 1000, timing);
    }

    /// Every partition in `state`, keeping the lags.
    pub fn set_all(&mut self, partitions: usize, state: State) {
        self.partitions
            .resize(partitions, PartitionState { state, lag: 0 });
        for p in &mut self.partitions {
            p.state = state;
        }
    }

    /// As `GET /v1/transform` lists it.
    pub fn metadata(&self, spec: &TransformSpec) -> TransformMetadata {
        TransformMetadata {
            name: spec.name.clone(),
            input_topic: spec.input_topic.clone(),
            output_topics: spec.output_topics.clone(),
            status: self
                .partitions
                .iter()
                .enumerate()
                .map(|(p, s)| PartitionStatus {
                    node_id: 0,
                    partition: p as i32,
                    lag: s.lag,
                    status: s.state.name().to_string(),
                })
                .collect(),
            environment: EnvVar::all(&spec.env),
            compression: admin::Compression::None,
            harness: Some(HarnessStatus {
                version: self.version.clone(),
                paused: self.paused,
                records_in: self.records_in,
                records_out: self.records_out,
                deploys: self.deploys,
                swaps: self.swaps.clone(),
                errors: self.errors.clone(),
            }),
        }
    }
}
