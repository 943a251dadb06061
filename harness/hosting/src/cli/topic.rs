//! `harness topic list|consume|produce`: the topics of a running host
//! (through its admin endpoint), of a stopped `harness up`'s data folder,
//! or of a Kafka-protocol broker (`harness up`'s Kafka listener among
//! them), as `rpk topic` shows them.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::args::AdminArgs;
use crate::topic_access;
use admin::{ApiError, Client, NewRecord, Produced, TopicInfo, TopicRecord};
use anyhow::{anyhow, bail, Result};
use clap::{Args, Subcommand};
use kafka_client::{check, KafkaArgs, KafkaTransport};
use topic_io::Transport;
use topics::{DataFolder, Retention, Topics};

#[derive(Args)]
#[command(
    after_help = "Against a running `harness up` or `harness bridge`, through its admin \
endpoint (--admin); against a stopped `harness up`'s data folder, directly (--data-dir); against Redpanda \
or any Kafka broker, `harness up`'s Kafka listener included, as a Kafka client (--brokers).\n\nExamples:\n  harness topic list\n  harness topic consume \
results --offset -5\n  echo '{\"hello\":1}' | harness topic produce logs --key spring_sale|email"
)]
pub struct TopicArgs {
    #[command(subcommand)]
    command: TopicCommand,
}

#[derive(Subcommand)]
enum TopicCommand {
    /// The topics, with each partition's first offset kept and end.
    #[command(alias = "ls")]
    List(Where),
    /// Records as JSON lines, as `rpk topic consume` prints them.
    Consume(ConsumeArgs),
    /// Each line of stdin as a record's value.
    Produce(ProduceArgs),
}

#[derive(Args)]
struct Where {
    #[command(flatten)]
    admin: AdminArgs,
    /// A stopped `harness up`'s data folder, read and written directly.
    #[arg(long, conflicts_with = "admin")]
    data_dir: Option<PathBuf>,
    /// With --brokers: a Kafka-protocol broker's topics, through a Kafka client configured as
    /// the bridge's.
    #[command(flatten)]
    kafka: KafkaArgs,
}

#[derive(Args)]
struct ConsumeArgs {
    topic: String,
    /// Where to start in each partition: start, end, an offset, +N (N after the start) or -N (N
    /// before the end).
    #[arg(short, long, default_value = "start", allow_hyphen_values = true)]
    offset: String,
    /// The same as --offset start.
    #[arg(long, conflicts_with = "offset")]
    from_beginning: bool,
    /// Only these partitions (comma-separated); default all.
    #[arg(short, long, value_delimiter = ',')]
    partitions: Vec<i32>,
    /// Stop after this many records.
    #[arg(short, long)]
    num: Option<usize>,
    /// Keep printing new records until Ctrl-C.
    #[arg(short, long)]
    follow: bool,
    #[command(flatten)]
    at: Where,
}

#[derive(Args)]
struct ProduceArgs {
    topic: String,
    /// The key of every record (its partition then follows from it, as Kafka's partitioner).
    #[arg(short, long)]
    key: Option<String>,
    /// The partition of every record.
    #[arg(short, long)]
    partition: Option<i32>,
    /// A header KEY:VALUE on every record; repeatable.
    #[arg(short = 'H', long = "header", value_parser = header)]
    headers: Vec<(String, String)>,
    #[command(flatten)]
    at: Where,
}

fn header(s: &str) -> Result<(String, String), String> {
    s.split_once(':')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("`{s}` is not KEY:VALUE"))
}

/// A running host, the topics of a stopped one, or a broker's.
enum Target {
    Admin(Client),
    Folder(Topics),
    Broker(Arc<KafkaTransport>),
}

fn api(e: ApiError) -> anyhow::Error {
    anyhow!("{}", e.message)
}

impl Target {
    fn open(at: &Where) -> Result<Target> {
        // Only --brokers names a broker: KAFKA_BOOTSTRAP_SERVERS alone does not.
        if at.kafka.brokers.is_some() {
            if at.data_dir.is_some() {
                bail!("--brokers and --data-dir name two places: give one");
            }
            let kafka = at.kafka.required()?;
            check(&kafka)?;
            return Ok(Target::Broker(Arc::new(KafkaTransport { kafka })));
        }
        let Some(dir) = &at.data_dir else {
            return Ok(Target::Admin(at.admin.client()?));
        };
        if topics::contents(dir)?.is_none() {
            bail!("{} holds no harness data", dir.display());
        }
        let folder = DataFolder::open(dir).map_err(|e| {
            anyhow!("{e:#}\n(a running harness up serves its topics through its admin endpoint: --admin)")
        })?;
        Ok(Target::Folder(Topics::open(folder, Retention::default())?))
    }

    /// The topics read directly: everything but a host's admin endpoint.
    fn transport(&self) -> Result<&dyn Transport, &Client> {
        match self {
            Target::Admin(client) => Err(client),
            Target::Folder(topics) => Ok(topics),
            Target::Broker(kafka) => Ok(kafka.as_ref()),
        }
    }

    fn topics(&self) -> Result<Vec<TopicInfo>> {
        match self.transport() {
            Err(client) => client.topics(),
            Ok(transport) => topic_access::topics(transport).map_err(api),
        }
    }

    fn topic(&self, name: &str) -> Result<TopicInfo> {
        let found = match self.transport() {
            Err(client) => client.topic(name)?,
            Ok(transport) => topic_access::topic(transport, name).map_err(api)?,
        };
        found.ok_or_else(|| anyhow!("topic {name} does not exist"))
    }

    fn read(&self, topic: &str, partition: i32, offset: i64) -> Result<Vec<TopicRecord>> {
        const MAX: usize = 1000;
        match self.transport() {
            Err(client) => client.read(topic, partition, offset, MAX),
            Ok(transport) => {
                topic_access::read(transport, topic, partition, offset, MAX).map_err(api)
            }
        }
    }

    fn produce(&self, topic: &str, records: &[NewRecord]) -> Result<Vec<Produced>> {
        match self.transport() {
            Err(client) => client.produce(topic, records),
            Ok(transport) => topic_access::produce(transport, topic, records.to_vec()).map_err(api),
        }
    }

    fn close(self) -> Result<()> {
        match self {
            Target::Admin(_) | Target::Broker(_) => Ok(()),
            Target::Folder(topics) => topics.shut_down(),
        }
    }
}

pub fn run(args: TopicArgs) -> Result<()> {
    match args.command {
        TopicCommand::List(at) => list(&at),
        TopicCommand::Consume(args) => consume(&args),
        TopicCommand::Produce(args) => produce(&args),
    }
}

fn list(at: &Where) -> Result<()> {
    let target = Target::open(at)?;
    let all = target.topics()?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{:<40} {:>10} {:>14}", "NAME", "PARTITIONS", "RECORDS")?;
    for t in &all {
        let records: i64 = t.offsets.iter().map(|(low, end)| end - low).sum();
        writeln!(out, "{:<40} {:>10} {:>14}", t.name, t.partitions, records)?;
    }
    target.close()
}

/// Where `--offset` starts in a partition holding `low..end`.
fn start_at(offset: &str, low: i64, end: i64) -> Result<i64> {
    let number = |s: &str| {
        s.parse::<i64>()
            .map_err(|_| anyhow!("--offset `{offset}`: use start, end, N, +N or -N"))
    };
    Ok(match offset {
        "start" | "oldest" => low,
        "end" | "newest" => end,
        o if o.starts_with('+') => (low + number(&o[1..])?).min(end),
        o if o.starts_with('-') => (end - number(&o[1..])?).max(low),
        o => number(o)?.clamp(low, end),
    })
}

fn consume(args: &ConsumeArgs) -> Result<()> {
    let offset = if args.from_beginning {
        "start"
    } else {
        args.offset.as_str()
    };
    let target = Target::open(&args.at)?;
    let topic = target.topic(&args.topic)?;
    let partitions: Vec<i32> = if args.partitions.is_empty() {
        (0..topic.partitions).collect()
    } else {
        args.partitions.clone()
    };
    let mut next = Vec::new();
    for &p in &partitions {
        let Some(&(low, end)) = usize::try_from(p).ok().and_then(|i| topic.offsets.get(i)) else {
            bail!("topic {} has no partition {p}", args.topic);
        };
        next.push(start_at(offset, low, end)?);
    }
    let mut printed = 0;
    let mut out = std::io::stdout().lock();
    loop {
        let mut any = false;
        for (i, &p) in partitions.iter().enumerate() {
            for r in target.read(&args.topic, p, next[i])? {
                if args.num.is_some_and(|n| printed >= n) {
                    return target.close();
                }
                next[i] = r.offset + 1;
                let mut line = serde_json::json!({
                    "topic": args.topic,
                    "key": r.key,
                    "value": r.value,
                    "timestamp": r.timestamp,
                    "partition": r.partition,
                    "offset": r.offset,
                });
                if !r.headers.is_empty() {
                    line["headers"] = serde_json::json!(r
                        .headers
                        .iter()
                        .map(|(k, v)| serde_json::json!({"key": k, "value": v}))
                        .collect::<Vec<_>>());
                }
                writeln!(out, "{line}")?;
                printed += 1;
                any = true;
            }
        }
        if args.num.is_some_and(|n| printed >= n) || (!any && !args.follow) {
            return target.close();
        }
        if !any {
            out.flush()?;
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

fn produce(args: &ProduceArgs) -> Result<()> {
    let target = Target::open(&args.at)?;
    target.topic(&args.topic)?;
    let headers: Vec<(String, Option<String>)> = args
        .headers
        .iter()
        .map(|(k, v)| (k.clone(), Some(v.clone())))
        .collect();
    let mut records = Vec::new();
    for line in std::io::stdin().lock().lines() {
        records.push(NewRecord {
            partition: args.partition,
            key: args.key.clone(),
            value: Some(line?),
            headers: headers.clone(),
        });
    }
    let mut out = std::io::stdout().lock();
    for chunk in records.chunks(1000) {
        for p in target.produce(&args.topic, chunk)? {
            writeln!(
                out,
                "Produced to partition {} at offset {}.",
                p.partition, p.offset
            )?;
        }
    }
    target.close()
}
