//! `harness bridge`: host a transform against a Kafka-protocol broker.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use admin::{Control, DEFAULT_ADMIN};
use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use http_access::AccessArgs;
use kafka_client::{check, KafkaArgs, KafkaTransport};
use shutdown::{stop_on_ctrl_c, until_set};
use topic_io::{StartOffset, Transport};

use crate::bridge::Deployment;
use crate::engine::Engine;
use crate::transforms::{Hosting, HostingOptions};
use crate::{stderr_logger, Extensions};

use super::args::{admin_url, at_least_one, from_offset, DeployArgs, LimitArgs, RegistryArgs};

#[derive(Args)]
#[command(
    after_help = "Consumes the input topic as consumer group <name>, runs batches through one VM for \
all partitions, produces to the output topics on the same partition number (mod their partition count), \
and commits input offsets after the outputs are acknowledged. Missing output topics are created with the \
input's partition count. Before each batch's outputs, the batch's offsets go to the topic \
_harness.<name>.batches, so that after a crash (even kill -9) the restarted bridge re-runs exactly that \
batch and writes none of its outputs twice. A transform that fails (a trap, fuel or memory used up) is \
restarted from the last committed position after 1 s, then 2 s, … up to 30 s, as Redpanda does; \
`harness list` shows it errored. More transforms can be deployed to it with `harness deploy` or \
`rpk transform deploy -X admin.hosts=…`. Run one host per set of transforms."
)]
pub struct BridgeArgs {
    /// The .wasm file, or a built-in transform (@name; `harness --help` lists them).
    wasm: String,
    #[command(flatten)]
    kafka: KafkaArgs,
    #[command(flatten)]
    deploy: DeployArgs,
    /// Most records in one batch.
    #[arg(long, default_value_t = 1000, value_parser = at_least_one)]
    batch_size: usize,
    /// Where partitions with nothing committed start, as rpk's --from-offset: +N from the
    /// start, -N from the end, @T the first record at or after T (ms).
    #[arg(long, default_value = "+0", value_parser = from_offset, allow_hyphen_values = true)]
    from_offset: StartOffset,
    /// How often acknowledged input offsets are committed, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    commit_interval_ms: u64,
    /// The admin endpoint: Redpanda's admin API for transforms (loopback only by default).
    #[arg(long, default_value = DEFAULT_ADMIN)]
    admin_listen: SocketAddr,
    /// Who may call the admin endpoint, and over what.
    #[command(flatten)]
    access: AccessArgs,
    #[command(flatten)]
    limits: LimitArgs,
    #[command(flatten)]
    registry: RegistryArgs,
}

pub fn run(args: BridgeArgs, extensions: &Extensions) -> Result<()> {
    let access = args.access.access()?;
    // Refused before connecting to anything; the server checks again as it binds.
    access.check_listen(&admin::listen(args.admin_listen))?;
    let memory_reservation = args.limits.reservation()?;
    let host = args.registry.attach(args.limits.host()?);
    let (module, default_name) = extensions.module(&args.wasm)?;
    let transform = host.load(&module).with_context(|| args.wasm.clone())?;
    let spec = args.deploy.resolve(&default_name, None)?;
    let kafka = args.kafka.required()?;
    check(&kafka)?;
    let brokers = kafka.brokers().to_string();
    let transport = Arc::new(KafkaTransport { kafka });
    let Some(inputs) = transport.partition_count(&spec.input_topic)? else {
        bail!(
            "the input topic {} does not exist on {}: create it, or start the generator first",
            spec.input_topic,
            brokers
        );
    };
    let outputs = vec![inputs; spec.output_topics.len()];
    Engine::start(&host, &transform, spec.clone(), outputs, stderr_logger())
        .map_err(|f| anyhow!("the transform failed at start: {f}"))?;
    let stop = stop_on_ctrl_c("stopping: finishing the batch in flight and committing")?;
    eprintln!(
        "bridging {} → [{}] → {} on {} (group {})",
        spec.input_topic,
        spec.name,
        spec.output_topics.join(", "),
        brokers,
        spec.name
    );
    let hosting = Arc::new(Hosting::new(
        host,
        transport,
        HostingOptions {
            batch_size: args.batch_size,
            commit_interval: Duration::from_millis(args.commit_interval_ms),
            memory_reservation,
        },
        stderr_logger(),
        stop.clone(),
    ));
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let (admin, _server) = admin::serve(
        &runtime,
        args.admin_listen,
        &access,
        hosting.clone() as Arc<dyn Control>,
        None,
        until_set(stop.clone()),
    )?;
    let name = spec.name.clone();
    hosting.add(
        transform,
        Arc::new(module.into_owned()),
        spec,
        Deployment {
            id: 0,
            start: args.from_offset,
            fresh: false,
        },
        false,
    );
    hosting.wait_started(&name, Duration::from_secs(60));
    eprintln!("admin endpoint on {} (harness deploy / list / pause / resume / delete --admin {0}, or rpk -X admin.hosts={admin})", admin_url(&access, admin));
    let logs = std::thread::spawn({
        let hosting = hosting.clone();
        move || hosting.flush_logs()
    });
    let started = Instant::now();
    let mut last = (started, 0u64);
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
        if last.0.elapsed() < Duration::from_secs(5) {
            continue;
        }
        let p = hosting.progress();
        let now = Instant::now();
        let rate = (p.records_in - last.1) as f64 / (now - last.0).as_secs_f64();
        last = (now, p.records_in);
        eprintln!(
            "{} records in, {} out, {} batches; {rate:.0} records/s",
            p.records_in, p.records_out, p.batches
        );
    }
    hosting.join();
    let _ = logs.join();
    let p = hosting.progress();
    eprintln!(
        "stopped after {:.1} s: {} records in, {} out, {} batches",
        started.elapsed().as_secs_f64(),
        p.records_in,
        p.records_out,
        p.batches
    );
    Ok(())
}
