//! `harness`: run Redpanda data transforms outside Redpanda, exactly as
//! Redpanda would run them, and the marketing pipeline in one process.
//! One call per command: the generic host's (`hosting::cli`), given the
//! pipeline's transforms (`up::extensions`), and `up`, which composes the
//! application over it.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use hosting::cli;

#[derive(Parser)]
#[command(
    name = "harness",
    version,
    about = "Run Redpanda data transforms (.wasm) outside Redpanda, with Redpanda's host contract",
    long_about = "Run Redpanda data transforms (.wasm) outside Redpanda, with Redpanda's host contract: \
the same ABI, WASI subset, memory limit, fuel, deploy-time checks, failure model and admin API.\n\n\
WASM is a path to a .wasm file, or one of the transforms built into the harness: \
@pipeline (the deployable transform of transform.yaml), @enrich, @aggregate, and @tee (every record to every output topic).\n\n\
Log detail: RUST_LOG (e.g. RUST_LOG=debug)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check a module as `rpk transform deploy` would, and whether it starts.
    Validate(cli::validate::ValidateArgs),
    /// Run records from a file through a transform; outputs go to stdout as JSON lines.
    Run(cli::run::RunArgs),
    /// Run case files (*.test.yaml) through transforms: expected records, logs and errors, and replays.
    Test(cli::test::TestArgs),
    /// Host a transform against a Kafka-protocol broker until stopped (Ctrl-C).
    Bridge(cli::bridge::BridgeArgs),
    /// Run the whole pipeline in this process: generator, topics kept on disk, the transform, the dashboard.
    Up(Box<up::cli::UpArgs>),
    /// Deploy a transform, or a new version of one, to a running `harness up` or `harness bridge`.
    Deploy(cli::deploy::DeployArgs),
    /// Show the transforms a running host runs: status and lag per partition, version, errors.
    #[command(alias = "ls")]
    List(cli::list::ListArgs),
    /// Delete a transform from a running host.
    Delete(cli::meta::DeleteArgs),
    /// Pause a transform: it stops processing, keeping its position.
    Pause(cli::meta::NameArgs),
    /// Resume a paused transform from where it stopped.
    Resume(cli::meta::NameArgs),
    /// Print a transform's log events, as `rpk transform logs` does.
    Logs(cli::logs::LogsArgs),
    /// List, read and write the topics of a running host or a stopped data folder, as `rpk topic` does.
    Topic(cli::topic::TopicArgs),
    /// Manage the SASL users of up's Kafka listener, as `rpk security user` does.
    User(cli::user::UserArgs),
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                // librdkafka reports a partition's end as a "global error";
                // the store says each step of opening it; Nisshi each
                // request's size.
                .unwrap_or_else(|_| {
                    tracing_subscriber::EnvFilter::new(
                        "info,rdkafka=off,fjall=warn,lsm_tree=warn,nisshi=warn,rama=warn",
                    )
                }),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .without_time()
        .with_target(false)
        .with_level(false)
        .init();
    let extensions = up::extensions();
    let result = match Cli::parse().command {
        Command::Validate(args) => cli::validate::run(args, &extensions),
        Command::Run(args) => cli::run::run(args, &extensions),
        Command::Test(args) => cli::test::run(args, &extensions),
        Command::Bridge(args) => cli::bridge::run(args, &extensions),
        Command::Up(args) => up::cli::run(*args, &extensions),
        Command::Deploy(args) => cli::deploy::run(args, &extensions),
        Command::List(args) => cli::list::run(args),
        Command::Delete(args) => cli::meta::delete(args),
        Command::Pause(args) => cli::meta::pause(args),
        Command::Resume(args) => cli::meta::resume(args),
        Command::Logs(args) => cli::logs::run(args),
        Command::Topic(args) => cli::topic::run(args),
        Command::User(args) => cli::user::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // A reader that has seen enough (`| head`) is not an error.
        Err(e)
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) =>
        {
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
