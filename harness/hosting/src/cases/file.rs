//! A `*.test.yaml` case file, read strictly: an unknown key or a missing
//! file is an error that names the file and the key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use serde_json::Value;

use crate::records::{in_output_form, read_input, InputRecord};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseFile {
    /// A .wasm path relative to the case file, or @pipeline, @enrich, …
    pub transform: String,
    /// The transform's name (default: from `config`, else the file's).
    pub name: Option<String>,
    /// Its linear memory limit in bytes, over `--memory-limit` (a Go
    /// module needs more than Redpanda's 2 MiB).
    pub memory_limit: Option<usize>,
    /// A transform.yaml (relative to the case file): name, topics, environment.
    pub config: Option<PathBuf>,
    pub input_topic: Option<String>,
    #[serde(default)]
    pub output_topics: Vec<String>,
    #[serde(default)]
    pub vars: BTreeMap<String, String>,
    pub partitions: Option<i32>,
    pub batch_size: Option<usize>,
    /// Records in `harness run`'s input format: inline, or a .jsonl file.
    #[serde(default)]
    pub input: Option<Records>,
    /// Records in `harness run`'s output format, compared one by one.
    pub expect: Option<Records>,
    /// Texts that the transform's log lines must show, in this order.
    #[serde(default)]
    pub expect_logs: Vec<String>,
    /// The case passes only if deploying or running fails with this text.
    pub expect_error: Option<String>,
    pub replay: Option<Replay>,
    /// Schemas registered, in this order, in a registry of the case's own
    /// before it runs: subject to a file (.avsc Avro, .proto Protobuf,
    /// .json JSON Schema). Present, even empty, it gives the transform a
    /// registry.
    pub schemas: Option<serde_yaml::Mapping>,
    /// Or a Confluent-compatible registry to use,
    /// http[s]://[USER:PASSWORD@]HOST:PORT.
    pub schema_registry: Option<String>,
}

/// Records written out in the case file, or the name of a JSON-lines file.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Records {
    File(PathBuf),
    Inline(Vec<Value>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Replay {
    /// The whole input again with each of these batch sizes.
    #[serde(default)]
    pub batch_sizes: Vec<usize>,
    /// Crashes: the VM is lost after a batch, and the records since the
    /// last commit point are delivered again to a new one, as Redpanda does.
    #[serde(default)]
    pub restarts: usize,
    /// The partitions interleaved otherwise in one VM.
    #[serde(default)]
    pub interleave: bool,
    #[serde(default)]
    pub invariant: Invariant,
}

/// What must hold between the plain run and each replay.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Invariant {
    /// The same records in the same order.
    #[default]
    Identical,
    /// The same records in any order.
    Unordered,
    /// The same sums per pane key once panes are kept once by identity
    /// (the dashboard's rule), and the same other records once each.
    Merged,
}

impl CaseFile {
    pub fn load(path: &Path) -> Result<CaseFile> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("{}: cannot read it", path.display()))?;
        let case: CaseFile =
            serde_yaml::from_str(&text).with_context(|| format!("{}", path.display()))?;
        if case.schemas.is_some() && case.schema_registry.is_some() {
            bail!(
                "{}: give schemas (a registry of the case's own) or schema_registry, not both",
                path.display()
            );
        }
        if case.batch_size == Some(0) {
            bail!("{}: batch_size must be at least 1", path.display());
        }
        if let Some(0) = case
            .replay
            .as_ref()
            .and_then(|r| r.batch_sizes.iter().copied().find(|&b| b == 0))
        {
            bail!("{}: replay.batch_sizes must be at least 1", path.display());
        }
        Ok(case)
    }
}

/// `path` as written in `case`: relative to the case file's folder.
pub fn beside(case: &Path, path: &Path) -> PathBuf {
    case.parent().unwrap_or(Path::new(".")).join(path)
}

/// The input records of the case at `case`.
pub fn input_records(case: &Path, records: Option<&Records>) -> Result<Vec<InputRecord>> {
    match records {
        None => Ok(Vec::new()),
        Some(Records::File(file)) => {
            let path = beside(case, file);
            let opened = std::fs::File::open(&path).with_context(|| {
                format!("{}: input: cannot read {}", case.display(), path.display())
            })?;
            read_input(std::io::BufReader::new(opened))
                .with_context(|| format!("{}: input {}", case.display(), path.display()))
        }
        Some(Records::Inline(values)) => values
            .iter()
            .enumerate()
            .map(|(i, v)| {
                InputRecord::parse(i + 1, &v.to_string())
                    .with_context(|| format!("{}: input record {}", case.display(), i + 1))
            })
            .collect(),
    }
}

/// The expected output records of the case at `case`.
pub fn expected_records(case: &Path, records: &Records) -> Result<Vec<Value>> {
    let records = match records {
        Records::Inline(values) => values.clone(),
        Records::File(file) => {
            let path = beside(case, file);
            let text = std::fs::read_to_string(&path).with_context(|| {
                format!("{}: expect: cannot read {}", case.display(), path.display())
            })?;
            text.lines()
                .enumerate()
                .filter(|(_, line)| !line.trim().is_empty())
                .map(|(i, line)| {
                    serde_json::from_str(line)
                        .with_context(|| format!("{} line {}: not JSON", path.display(), i + 1))
                })
                .collect::<Result<Vec<Value>>>()?
        }
    };
    Ok(records.into_iter().map(in_output_form).collect())
}

/// The registry the case's transform reaches, if it has one: its own,
/// holding `schemas`, or the one `schema_registry` names.
pub fn registry(
    case_path: &Path,
    case: &CaseFile,
) -> Result<Option<std::sync::Arc<dyn registry::SchemaRegistry>>> {
    use registry::{LocalRegistry, Schema, SchemaRegistry, SchemaType};
    if let Some(url) = &case.schema_registry {
        let client = registry::Client::new(url)
            .map_err(|e| anyhow::anyhow!("{}: schema_registry: {e}", case_path.display()))?;
        return Ok(Some(std::sync::Arc::new(client)));
    }
    let Some(schemas) = &case.schemas else {
        return Ok(None);
    };
    let local = LocalRegistry::new();
    for (subject, file) in schemas {
        let (Some(subject), Some(file)) = (subject.as_str(), file.as_str()) else {
            bail!(
                "{}: schemas: each entry is SUBJECT: FILE",
                case_path.display()
            );
        };
        let path = beside(case_path, Path::new(file));
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "{}: schemas: {subject}: cannot read {}",
                case_path.display(),
                path.display()
            )
        })?;
        let schema_type = match path.extension().and_then(|e| e.to_str()) {
            Some("proto") => SchemaType::Protobuf,
            Some("json") => SchemaType::Json,
            _ => SchemaType::Avro,
        };
        let schema = Schema {
            schema: text,
            schema_type,
            references: Vec::new(),
        };
        local.register(subject, &schema).map_err(|e| {
            anyhow::anyhow!(
                "{}: schemas: {subject}: the registry refused {}: {e:?}",
                case_path.display(),
                path.display()
            )
        })?;
    }
    Ok(Some(std::sync::Arc::new(local)))
}
