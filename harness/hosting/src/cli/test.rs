//! `harness test`: the case files of any transform, with replays.

use std::io::Write;
use std::path::PathBuf;

use crate::cases::{discover, junit, run_case, Modules, SUFFIX};
use crate::Extensions;
use anyhow::{bail, Context, Result};
use clap::Args;

use super::args::LimitArgs;

#[derive(Args)]
#[command(
    after_help = "A case is a YAML file named *.test.yaml:\n\n  transform: ../target/wasm32-wasip1/release/my.wasm   # relative to the file, or a built-in (@name)\n  \
config: transform.yaml          # name, topics, environment (or input_topic, output_topics, vars)\n  \
partitions: 3\n  batch_size: 100\n  \
input: input.jsonl              # `harness run`'s input format, or a list of records written inline\n  \
expect: my.expected.jsonl       # `harness run`'s output format, compared record by record (--accept writes it)\n  \
expect_logs: [\"starting\"]       # texts the transform's log lines show, in order\n  \
expect_error: \"unreachable\"     # the case passes only if deploying or running fails with this\n  \
schemas: {orders-value: orders.avsc}   # a registry of the case's own (or schema_registry: URL)\n  \
replay:                         # the same input delivered again, compared with the plain run\n    \
batch_sizes: [1, 7]\n    restarts: 2                   # crashes, then delivery again from the last commit point\n    \
interleave: true              # the partitions interleaved otherwise in one VM\n    \
invariant: merged             # identical | unordered | merged (panes summed, kept once by identity)\n\n\
Each case prints `ok` or `FAIL` with the first differences; the last line is `N passed, N failed`, \
and the exit status is 1 if any failed.\n\nExamples:\n  harness test\n  harness test cases/ --junit \
target/harness-test.xml\n  harness test cases/enrich.test.yaml --accept"
)]
pub struct TestArgs {
    /// Case files, or folders searched for *.test.yaml [default: .]
    paths: Vec<PathBuf>,
    /// Take what came out as each case's expectation: write its expect file (a new
    /// <case>.expected.jsonl, named in the case, when it has none) and say what changed.
    #[arg(long)]
    accept: bool,
    /// Also write the results as JUnit XML to this file, for CI systems.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    #[command(flatten)]
    limits: LimitArgs,
}

pub fn run(args: TestArgs, extensions: &Extensions) -> Result<()> {
    let host = args.limits.host()?;
    let paths = if args.paths.is_empty() {
        vec![PathBuf::from(".")]
    } else {
        args.paths
    };
    let cases = discover(&paths)?;
    if cases.is_empty() {
        let searched: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        bail!("no *{SUFFIX} case files in {}", searched.join(", "));
    }
    let mut out = std::io::stdout().lock();
    let mut outcomes = Vec::with_capacity(cases.len());
    let mut modules = Modules::new(extensions);
    for case in &cases {
        let outcome = run_case(&host, &mut modules, case, args.accept);
        writeln!(out, "{outcome}")?;
        outcomes.push(outcome);
    }
    let failed = outcomes.iter().filter(|o| o.result.is_err()).count();
    writeln!(out, "{} passed, {failed} failed", outcomes.len() - failed)?;
    if let Some(path) = &args.junit {
        std::fs::write(path, junit(&outcomes)?)
            .with_context(|| format!("--junit {}", path.display()))?;
    }
    if failed > 0 {
        out.flush()?;
        std::process::exit(1);
    }
    Ok(())
}
