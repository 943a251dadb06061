//! The admin API's documents (`api-doc/transform.json`,
//! `src/v/redpanda/admin/transform.cc`), as rpk reads and writes them.

use serde::{Deserialize, Serialize};

/// An environment variable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvVar {
    pub key: String,
    pub value: String,
}

impl EnvVar {
    /// An environment given as (key, value) pairs, as the API carries it.
    pub fn all(pairs: &[(String, String)]) -> Vec<EnvVar> {
        pairs
            .iter()
            .map(|(key, value)| EnvVar {
                key: key.clone(),
                value: value.clone(),
            })
            .collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OffsetFormat {
    FromStart,
    FromEnd,
    Timestamp,
}

/// Where a new transform starts reading its input: `+N` (from the start),
/// `-N` (from the end), `@T` (the first record at or after T, in ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OffsetSpec {
    pub format: OffsetFormat,
    pub value: i64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    #[default]
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

/// The JSON document at the head of `POST /v1/transform/deploy`; the
/// module's bytes follow it directly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeployRequest {
    pub name: String,
    pub input_topic: String,
    pub output_topics: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub environment: Vec<EnvVar>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression: Option<Compression>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<OffsetSpec>,
}

/// One input partition of a transform, in `GET /v1/transform`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionStatus {
    pub node_id: i32,
    pub partition: i32,
    pub lag: i64,
    /// `running`, `inactive` (starting, or paused), `errored` (waiting to
    /// retry after a failure) or `unknown`.
    pub status: String,
}

/// One transform, in `GET /v1/transform`. Empty lists are left out, as
/// Redpanda leaves them out; `harness` is ours, and rpk ignores it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransformMetadata {
    pub name: String,
    pub input_topic: String,
    pub output_topics: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub status: Vec<PartitionStatus>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub environment: Vec<EnvVar>,
    #[serde(default)]
    pub compression: Compression,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub harness: Option<HarnessStatus>,
}

/// What a harness host tells of a transform beyond Redpanda's fields.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HarnessStatus {
    /// The start of the running module's SHA-256.
    pub version: String,
    pub paused: bool,
    pub records_in: u64,
    pub records_out: u64,
    /// Deploys of new versions since it was first deployed.
    pub deploys: u64,
    /// How the latest swaps went, newest last.
    pub swaps: Vec<SwapTiming>,
    /// The latest refusals and failures, newest last.
    pub errors: Vec<String>,
}

/// How one swap went.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
pub struct SwapTiming {
    /// From the deploy request to the switch: validating, compiling and
    /// starting the new version beside the old one, which keeps processing.
    pub request_ms: f64,
    /// Processing stopped for the switch itself, between two batches.
    pub pause_ms: f64,
    /// The median time per record of the batches just before the swap.
    pub before_us_per_record: Option<f64>,
    /// The new version's first batch: a fresh VM's warm-up shows here.
    pub first_batch_us_per_record: Option<f64>,
    pub first_batch_records: u64,
}

/// `PUT /v1/transform/{name}/meta`: what changes; the environment, if
/// given, is replaced as a whole.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetaPatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_paused: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<EnvVar>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression: Option<Compression>,
}

impl MetaPatch {
    pub fn is_empty(&self) -> bool {
        self.is_paused.is_none() && self.env.is_none() && self.compression.is_none()
    }
}

/// What a deploy did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deployed {
    pub name: String,
    pub version: String,
}

/// An error as Redpanda's admin API answers it: the HTTP status, and
/// `{"message": …, "code": status}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    #[serde(rename = "code")]
    pub status: u16,
    pub message: String,
}

impl ApiError {
    pub fn new(status: u16, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(400, message)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.status)
    }
}

impl std::error::Error for ApiError {}

/// A record of a host's topic, as the harness's read route gives it (text
/// as UTF-8, lossily).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicRecord {
    pub partition: i32,
    pub offset: i64,
    pub timestamp: i64,
    pub key: Option<String>,
    pub value: Option<String>,
    #[serde(default)]
    pub headers: Vec<(String, Option<String>)>,
}

/// A host's topic, as the harness's topic route describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicInfo {
    pub name: String,
    pub partitions: i32,
    /// Per partition, the first offset kept and the next one to be
    /// written, where the host can tell.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub offsets: Vec<(i64, i64)>,
}

/// A record to produce through the harness's produce route; without a
/// partition, one is chosen from the key as Kafka's default partitioner
/// does, else in turn.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewRecord {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<(String, Option<String>)>,
}

/// Where a produced record went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Produced {
    pub partition: i32,
    pub offset: i64,
}

/// A user's credential, as `POST /v1/security/users` and `PUT
/// /v1/security/users/{user}` take it (`redpanda/admin/security.cc`,
/// `parse_scram_credential`; rpk's `rpadmin/api_user.go`).
#[derive(Clone, Serialize, Deserialize)]
pub struct NewUser {
    /// Only in a create: an update names the user in its path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    pub password: String,
    /// `SCRAM-SHA-256` or `SCRAM-SHA-512`.
    pub algorithm: String,
}

/// Never the password.
impl std::fmt::Debug for NewUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewUser")
            .field("username", &self.username)
            .field("algorithm", &self.algorithm)
            .finish()
    }
}
