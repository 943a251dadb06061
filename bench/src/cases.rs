//! `bench test`: how long `harness test` takes on a large case, a
//! pipeline case of generated records with three replays under `merged`,
//! against the plain run of the same records in the same process.

use std::io::{BufReader, BufWriter, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use generator::{generate, Clock, FileSink, Plan, Profile, Stream, Truth};
use transform_host::Host;

use hosting::cases::{run_case, Modules};
use hosting::records::read_input;
use hosting::run::{run, RunOptions};
use hosting::spec::{resolve, Overrides, TransformYaml};

pub struct CasesBench {
    pub records: u64,
    /// The whole case: the plain run, its three replays and the checks.
    pub case: Duration,
    /// The plain run alone, as `harness run` makes it.
    pub plain: Duration,
}

impl std::fmt::Display for CasesBench {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (case, plain) = (self.case.as_secs_f64(), self.plain.as_secs_f64());
        writeln!(f, "records:              {}", self.records)?;
        writeln!(
            f,
            "the case, 3 replays:  {case:.2} s (batch sizes 100 and 1000, 3 restarts; invariant merged)"
        )?;
        writeln!(f, "the plain run alone:  {plain:.2} s")?;
        write!(
            f,
            "ratio:                {:.2}× the plain run",
            case / plain
        )
    }
}

/// Writes the case and its input into `dir`, then times it and the plain
/// run; the module is compiled before either is timed.
pub fn bench_cases(host: &Host, records: u64, dir: &Path, config: &Path) -> Result<CasesBench> {
    std::fs::create_dir_all(dir)?;
    let input = dir.join("input.jsonl");
    let mut sink = FileSink::new(BufWriter::new(std::fs::File::create(&input)?));
    let mut stream = Stream::new(
        Profile::default(),
        42,
        Clock::Simulated {
            next_ms: 1_755_439_200_000,
        },
    );
    let plan = Plan {
        rate: None,
        count: Some(records),
        duration: None,
        partitions: 3,
    };
    generate(
        &mut stream,
        &plan,
        "logs",
        &mut sink,
        &mut Truth::new(60_000),
        &|| false,
        &mut |_| {},
    )?;
    sink.into_inner().flush()?;
    let config = std::path::absolute(config)?;
    let case = dir.join("bench.test.yaml");
    std::fs::write(
        &case,
        format!(
            "transform: \"@pipeline\"\nconfig: {}\npartitions: 3\nbatch_size: 500\n\
             input: input.jsonl\nreplay:\n  batch_sizes: [100, 1000]\n  restarts: 3\n  \
             invariant: merged\n",
            config.display()
        ),
    )?;

    let extensions = up::extensions();
    let mut modules = Modules::new(&extensions);
    let (transform, name) = modules.load(host, "@pipeline")?;
    let started = Instant::now();
    let outcome = run_case(host, &mut modules, &case, false);
    let case_time = started.elapsed();
    if let Err(failed) = &outcome.result {
        bail!("the bench case failed: {}", failed.reason);
    }

    let spec = resolve(
        Some(TransformYaml::load(&config)?),
        Overrides::default(),
        &name,
    )?;
    let records_read = read_input(BufReader::new(std::fs::File::open(&input)?))?;
    let started = Instant::now();
    let mut out = Vec::new();
    run(
        host,
        &transform,
        spec,
        &records_read,
        &RunOptions {
            batch_size: 500,
            partitions: Some(3),
            start_offsets: Vec::new(),
            unstamped_ms: 0,
        },
        std::sync::Arc::new(|_| {}),
        |line, _| out.push(line.to_json()),
    )?;
    Ok(CasesBench {
        records,
        case: case_time,
        plain: started.elapsed(),
    })
}
