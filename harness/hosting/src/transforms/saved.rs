//! What a host keeps of each transform so that a restart runs it again.

use topic_io::StartOffset;
use transform_host::TransformSpec;

use crate::bridge::Deployment;

/// What a host keeps of a transform to run it again after a restart:
/// where it stopped is in its commits and batch log.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SavedTransform {
    pub name: String,
    pub input_topic: String,
    pub output_topics: Vec<String>,
    pub env: Vec<(String, String)>,
    pub deployment_id: u64,
    /// Where partitions with nothing committed start.
    pub start: StartOffset,
    pub paused: bool,
    /// The module, in base64.
    pub wasm: String,
}

impl SavedTransform {
    pub fn spec(&self) -> TransformSpec {
        TransformSpec {
            name: self.name.clone(),
            input_topic: self.input_topic.clone(),
            output_topics: self.output_topics.clone(),
            env: self.env.clone(),
        }
    }

    /// Its deployment, resumed: partitions go on from their commits.
    pub fn deployment(&self) -> Deployment {
        Deployment {
            id: self.deployment_id,
            start: self.start,
            fresh: false,
        }
    }

    pub fn module(&self) -> anyhow::Result<Vec<u8>> {
        use base64::Engine;
        Ok(base64::engine::general_purpose::STANDARD.decode(&self.wasm)?)
    }
}

/// Told of every change to a host's transforms: the transform as it is
/// now, or `None` once it is deleted.
pub type SaveTransform = Box<dyn Fn(&str, Option<&SavedTransform>) + Send + Sync>;
