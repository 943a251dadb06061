//! `harness test`: declarative cases for any transform (`*.test.yaml`),
//! each run through the host as `harness run` runs it, compared with its
//! expected records, and replayed the ways production delivers records.

mod diff;
mod file;
mod replay;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use transform_host::{Failure, Host, LogEvent, Logger, Transform, TransformSpec};

use crate::records::InputRecord;
use crate::run::{default_partitions, run, RunOptions};
use crate::spec::{resolve, Overrides, TransformYaml};
use crate::Extensions;
use file::{beside, expected_records, input_records, CaseFile, Records};
use replay::{values, Baseline, Deliveries, Variation};

pub use file::Invariant;
pub use replay::{Merge, Merged, Output};

/// The suffix that makes a file a case.
pub const SUFFIX: &str = ".test.yaml";

/// `harness run`'s default batch size, a case's too.
const BATCH_SIZE: usize = 100;

/// The case files in `paths` (files, or folders searched below, skipping
/// hidden ones and `target`), sorted.
pub fn discover(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    for path in paths {
        if path.is_file() {
            found.push(path.clone());
        } else if path.is_dir() {
            search(path, &mut found)?;
        } else {
            bail!("{}: no such file or folder", path.display());
        }
    }
    found.sort();
    found.dedup();
    Ok(found)
}

fn search(dir: &Path, found: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if path.is_dir() {
            if !name.starts_with('.') && name != "target" && name != "node_modules" {
                search(&path, found)?;
            }
        } else if name.ends_with(SUFFIX) {
            found.push(path);
        }
    }
    Ok(())
}

/// How one case went.
pub struct Outcome {
    pub path: PathBuf,
    pub time: Duration,
    pub result: std::result::Result<Passed, Failed>,
}

pub struct Passed {
    pub inputs: usize,
    pub outputs: usize,
    /// Replays run, each under the invariant.
    pub replays: usize,
    /// What `--accept` wrote, if it wrote anything.
    pub accepted: Option<String>,
}

pub struct Failed {
    /// One line: what broke.
    pub reason: String,
    /// The first differences, one a line.
    pub details: Vec<String>,
}

impl Failed {
    fn new(reason: impl Into<String>) -> Failed {
        Failed {
            reason: reason.into(),
            details: Vec::new(),
        }
    }
}

impl From<anyhow::Error> for Failed {
    fn from(e: anyhow::Error) -> Failed {
        Failed::new(format!("{e:#}"))
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let time = self.time.as_secs_f64();
        match &self.result {
            Ok(p) => {
                write!(
                    f,
                    "ok    {} ({} records in, {} out",
                    self.path.display(),
                    p.inputs,
                    p.outputs
                )?;
                if p.replays > 0 {
                    write!(f, ", {} replays", p.replays)?;
                }
                write!(f, "; {time:.2} s)")?;
                if let Some(accepted) = &p.accepted {
                    write!(f, "\n      {accepted}")?;
                }
                Ok(())
            }
            Err(failed) => {
                write!(f, "FAIL  {}: {}", self.path.display(), failed.reason)?;
                for line in &failed.details {
                    write!(f, "\n      {line}")?;
                }
                Ok(())
            }
        }
    }
}

/// Modules compiled once for all the cases that name them, and what the
/// binary brings (its built-in transforms, how its outputs merge).
pub struct Modules<'a> {
    extensions: &'a Extensions,
    loaded: HashMap<String, (Transform, String)>,
}

impl Modules<'_> {
    pub fn new(extensions: &Extensions) -> Modules<'_> {
        Modules {
            extensions,
            loaded: HashMap::new(),
        }
    }

    /// The module `wasm` names, compiled the first time it is asked for.
    pub fn load(&mut self, host: &Host, wasm: &str) -> Result<(Transform, String)> {
        if let Some(loaded) = self.loaded.get(wasm) {
            return Ok(loaded.clone());
        }
        let loaded = self.extensions.load(host, wasm)?;
        self.loaded.insert(wasm.to_string(), loaded.clone());
        Ok(loaded)
    }
}

/// Runs the case at `path`; with `accept`, writes what came out as its
/// expected records.
pub fn run_case(host: &Host, modules: &mut Modules<'_>, path: &Path, accept: bool) -> Outcome {
    let started = Instant::now();
    let result = check(host, modules, path, accept);
    Outcome {
        path: path.to_path_buf(),
        time: started.elapsed(),
        result,
    }
}

/// What one run gave: the output records (or why it failed) and the log
/// lines.
struct Ran {
    outputs: Result<Vec<Output>>,
    logs: Vec<String>,
}

/// Whether `logs` show each of `wanted`, in this order: each after the
/// one before it, in the same line or a later one.
fn logs_show(wanted: &[String], logs: &[String]) -> std::result::Result<(), Failed> {
    // Where the search goes on: a line, and a byte in it.
    let (mut line, mut column) = (0, 0);
    for text in wanted {
        let found = logs.iter().enumerate().skip(line).find_map(|(at, l)| {
            let from = if at == line { column } else { 0 };
            let start = l.get(from..)?.find(text.as_str())?;
            Some((at, from + start + text.len()))
        });
        match found {
            Some(next) => (line, column) = next,
            None => {
                return Err(Failed {
                    reason: format!(
                        "no log line with {text:?} (in order after the ones before it)"
                    ),
                    details: last_logs(logs),
                })
            }
        }
    }
    Ok(())
}

/// A case whose transform had to fail with `wanted`, in its error or its
/// log lines (where a transform says why it exits), and log `logs_wanted`.
fn refused_as_expected(
    error: &anyhow::Error,
    logs: &[String],
    wanted: &str,
    logs_wanted: &[String],
    inputs: usize,
) -> std::result::Result<Passed, Failed> {
    let message = format!("{error:#}");
    if message.contains(wanted) || logs.iter().any(|l| l.contains(wanted)) {
        logs_show(logs_wanted, logs)?;
        return Ok(Passed {
            inputs,
            outputs: 0,
            replays: 0,
            accepted: None,
        });
    }
    Err(Failed {
        reason: format!(
            "expected an error with {wanted:?}, got: {}",
            first_line(error)
        ),
        details: why(error, logs),
    })
}

/// What says why a run failed: the end of the transform's stderr, as one
/// text (a Go panic is many writes), or else its last log lines.
fn why(error: &anyhow::Error, logs: &[String]) -> Vec<String> {
    const SHOWN: usize = 16;
    let Some(stderr) = error
        .downcast_ref::<Failure>()
        .and_then(|f| f.stderr.as_deref())
    else {
        return last_logs(logs);
    };
    let lines: Vec<&str> = stderr.lines().collect();
    let shown: Vec<&str> = if lines.len() <= SHOWN {
        lines
    } else {
        // A panic's message comes first, its stack after.
        let head = &lines[..SHOWN / 2];
        let tail = &lines[lines.len() - (SHOWN / 2 - 1)..];
        head.iter().chain(&["…"]).chain(tail).copied().collect()
    };
    shown.iter().map(|l| format!("stderr: {l}")).collect()
}

/// An error's first line: a trap's backtrace follows it.
fn first_line(error: &anyhow::Error) -> String {
    format!("{error:#}")
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// The transform's last log lines, which say why it failed, if it said.
fn last_logs(logs: &[String]) -> Vec<String> {
    let skip = logs.len().saturating_sub(8);
    logs[skip..].iter().map(|l| format!("log: {l}")).collect()
}

fn check(
    host: &Host,
    modules: &mut Modules<'_>,
    path: &Path,
    accept: bool,
) -> std::result::Result<Passed, Failed> {
    let case = CaseFile::load(path)?;
    let records = input_records(path, case.input.as_ref())?;
    let mut host = host.clone();
    if let Some(bytes) = case.memory_limit {
        host = host.with_memory_limit(bytes);
    }
    if let Some(registry) = file::registry(path, &case)? {
        host = host.with_schema_registry(registry);
    }
    let host = &host;
    let batch_size = case.batch_size.unwrap_or(BATCH_SIZE);
    let partitions = case
        .partitions
        .unwrap_or_else(|| default_partitions(&records));
    let (transform, spec) = match (deploy(host, modules, path, &case), &case.expect_error) {
        (Ok(deployed), _) => deployed,
        (Err(e), Some(wanted)) => {
            return refused_as_expected(&e, &[], wanted, &case.expect_logs, records.len())
        }
        (Err(e), None) => return Err(e.into()),
    };
    let Ran { outputs, logs } = run_records(
        host,
        &transform,
        &spec,
        &records,
        &RunOptions {
            batch_size,
            partitions: Some(partitions),
            start_offsets: Vec::new(),
            unstamped_ms: 0,
        },
    );
    let outputs = match (outputs, &case.expect_error) {
        (Err(e), Some(wanted)) => {
            return refused_as_expected(&e, &logs, wanted, &case.expect_logs, records.len())
        }
        (Err(e), None) => {
            return Err(Failed {
                reason: first_line(&e),
                details: why(&e, &logs),
            })
        }
        (Ok(outputs), Some(wanted)) => {
            return Err(Failed::new(format!(
                "expected an error with {wanted:?}, but the transform ran through ({} records out)",
                outputs.len()
            )))
        }
        (Ok(outputs), None) => outputs,
    };

    let mut accepted = None;
    match (&case.expect, accept) {
        (Some(Records::File(file)), true) => {
            accepted = Some(write_expected(path, file, &outputs, false)?);
        }
        (None, true) if case.replay.is_none() => {
            let file = default_expected(path);
            accepted = Some(write_expected(path, &file, &outputs, true)?);
        }
        (Some(expect), _) => {
            let expected = expected_records(path, expect)?;
            let got = values(outputs.iter().map(|o| o.line.as_str()));
            let details = diff::differences(&expected, &got);
            if !details.is_empty() {
                let reason = if matches!(expect, Records::Inline(_)) {
                    "the output differs from expect (written inline: edit it, or name a .jsonl file for --accept to write)"
                } else {
                    "the output differs from expect (--accept takes it as the new expectation)"
                };
                return Err(Failed {
                    reason: reason.into(),
                    details,
                });
            }
        }
        (None, _) => {}
    }

    logs_show(&case.expect_logs, &logs)?;

    let mut replays = 0;
    if let Some(replay) = &case.replay {
        let baseline = Baseline::new(replay.invariant, &outputs, modules.extensions.merge)?;
        let variations = replay::variations(replay, &records, batch_size, partitions);
        let deployed = Deployed {
            host,
            transform: &transform,
            spec: &spec,
            partitions,
        };
        // Replays are independent: as many at once as there are cores.
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        for group in variations.chunks(cores) {
            let results: Vec<_> = std::thread::scope(|scope| {
                let running: Vec<_> = group
                    .iter()
                    .map(|v| scope.spawn(|| deployed.replay(v, &records, &baseline)))
                    .collect();
                running
                    .into_iter()
                    .map(|r| r.join().expect("a replay does not panic"))
                    .collect()
            });
            for result in results {
                result?;
                replays += 1;
            }
        }
    }
    Ok(Passed {
        inputs: records.len(),
        outputs: outputs.len(),
        replays,
        accepted,
    })
}

/// A case's transform as deployed, for its replays.
struct Deployed<'a> {
    host: &'a Host,
    transform: &'a Transform,
    spec: &'a TransformSpec,
    partitions: i32,
}

impl Deployed<'_> {
    /// Delivers `records` as `variation` says, and checks the invariant.
    fn replay(
        &self,
        variation: &Variation,
        records: &[InputRecord],
        baseline: &Baseline<'_>,
    ) -> std::result::Result<(), Failed> {
        let merged = baseline.invariant() == Invariant::Merged;
        let mut deliveries = Deliveries::default();
        for delivery in &variation.runs {
            let subset: Vec<InputRecord> = delivery
                .records
                .iter()
                .map(|&i| records[i].clone())
                .collect();
            let again = run_records(
                self.host,
                self.transform,
                self.spec,
                &subset,
                &RunOptions {
                    batch_size: variation.batch_size,
                    partitions: Some(self.partitions),
                    start_offsets: delivery.start_offsets.clone(),
                    unstamped_ms: 0,
                },
            );
            match again.outputs {
                Ok(more) => {
                    let found = deliveries.add(&subset, variation.batch_size, more, merged);
                    if !found.is_empty() && !merged {
                        return Err(Failed {
                            reason: format!(
                                "replay with {}: a batch delivered again after the restart wrote \
                                 other records than the first time (state lost on a restart?)",
                                variation.name
                            ),
                            details: found,
                        });
                    }
                }
                Err(e) => {
                    return Err(Failed {
                        reason: format!("replay with {}: {}", variation.name, first_line(&e)),
                        details: why(&e, &again.logs),
                    })
                }
            }
        }
        let details = baseline.broken(&deliveries.outputs);
        if details.is_empty() {
            return Ok(());
        }
        Err(Failed {
            reason: format!(
                "replay with {}: the output is not {} to the plain run's",
                variation.name,
                match baseline.invariant() {
                    Invariant::Identical => "identical",
                    Invariant::Unordered => "equal, in any order,",
                    Invariant::Merged => "equal, once merged,",
                }
            ),
            details,
        })
    }
}

/// The module and its deployment, as `harness run` would deploy them.
fn deploy(
    host: &Host,
    modules: &mut Modules<'_>,
    path: &Path,
    case: &CaseFile,
) -> Result<(Transform, TransformSpec)> {
    let wasm = if case.transform.starts_with('@') {
        case.transform.clone()
    } else {
        beside(path, Path::new(&case.transform))
            .to_string_lossy()
            .into_owned()
    };
    let (transform, default_name) = modules.load(host, &wasm)?;
    let config = match &case.config {
        Some(file) => Some(TransformYaml::load(&beside(path, file))?),
        None => None,
    };
    let spec = resolve(
        config,
        Overrides {
            name: case.name.clone(),
            input_topic: case.input_topic.clone(),
            output_topics: case.output_topics.clone(),
            vars: case.vars.clone().into_iter().collect(),
        },
        &default_name,
    )?;
    Ok((transform, spec))
}

/// Runs `records` by a new VM: what came out, and what it logged.
fn run_records(
    host: &Host,
    transform: &Transform,
    spec: &TransformSpec,
    records: &[InputRecord],
    options: &RunOptions,
) -> Ran {
    let logs = Arc::new(Mutex::new(Vec::new()));
    let logger: Logger = {
        let logs = logs.clone();
        transform_host::lines(move |event: LogEvent<'_>| {
            logs.lock().push(event.message.to_string())
        })
    };
    let mut outputs = Vec::new();
    let ran = run(
        host,
        transform,
        spec.clone(),
        records,
        options,
        logger,
        |line, batch| {
            outputs.push(Output {
                line: line.to_json(),
                batch,
                topic: spec
                    .output_topics
                    .iter()
                    .position(|t| t == line.topic)
                    .unwrap_or_default(),
                partition: line.partition,
            })
        },
    );
    let logs = std::mem::take(&mut *logs.lock());
    Ran {
        outputs: ran.map(|()| outputs),
        logs,
    }
}

/// `<case>.expected.jsonl` beside the case, named as the case file says it.
fn default_expected(case: &Path) -> PathBuf {
    let name = case
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    PathBuf::from(format!("{}.expected.jsonl", name.trim_end_matches(SUFFIX)))
}

/// Writes `outputs` as the expected records in `file` (relative to the
/// case); `new` also names the file in the case. Says what changed.
fn write_expected(case: &Path, file: &Path, outputs: &[Output], new: bool) -> Result<String> {
    let path = beside(case, file);
    let before = expected_records(case, &Records::File(file.to_path_buf())).unwrap_or_default();
    let mut text = String::new();
    for record in outputs {
        text.push_str(&record.line);
        text.push('\n');
    }
    std::fs::write(&path, text)?;
    if new {
        let mut yaml = std::fs::read_to_string(case)?;
        if !yaml.ends_with('\n') {
            yaml.push('\n');
        }
        yaml.push_str(&format!("expect: {}\n", file.display()));
        std::fs::write(case, yaml)?;
    }
    let changed = diff::differences(&before, &values(outputs.iter().map(|o| o.line.as_str())));
    Ok(if changed.is_empty() {
        format!("{}: unchanged ({} records)", path.display(), outputs.len())
    } else if before.is_empty() {
        format!("wrote {} ({} records)", path.display(), outputs.len())
    } else {
        format!(
            "updated {}: {}",
            path.display(),
            changed.into_iter().take(4).collect::<Vec<_>>().join("; ")
        )
    })
}

/// Every outcome as JUnit XML, for CI systems.
pub fn junit(outcomes: &[Outcome]) -> Result<String> {
    use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
    let mut suite = TestSuite::new("harness test");
    for outcome in outcomes {
        let status = match &outcome.result {
            Ok(_) => TestCaseStatus::success(),
            Err(failed) => {
                let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
                status.set_message(failed.reason.clone());
                status.set_description(failed.details.join("\n"));
                status
            }
        };
        let mut case = TestCase::new(outcome.path.display().to_string(), status);
        case.set_time(outcome.time);
        suite.add_test_case(case);
    }
    let mut report = Report::new("harness test");
    report.add_test_suite(suite);
    Ok(report.to_string()?)
}
