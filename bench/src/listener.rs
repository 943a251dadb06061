//! `bench listener`: librdkafka against `harness up`'s Kafka listener (in
//! this process, its topics on disk) and against a broker alone (Tansu,
//! given with --brokers), the same work in the same run: produce with the
//! idempotent producer and acks=all, consume from the start, and the fetch
//! latency of records sent at a set rate, with librdkafka's defaults.

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Result};
use hosting::quantile;
use kafka_client::{ensure_topic, flush, producer, send, KafkaConfig};
use rdkafka::consumer::BaseConsumer;
use rdkafka::producer::BaseRecord;
use rdkafka::Message;
use topics::{DataFolder, Retention, Topics};

use crate::broker::{assigned, per_sec};

pub struct ListenerBench {
    /// The broker alone, the baseline.
    pub baseline: KafkaConfig,
    pub records: u64,
    pub value_bytes: usize,
    pub partitions: i32,
    pub latency_rate: f64,
    pub latency_seconds: u64,
    /// Where the listener's topics go, deleted afterwards.
    pub data_dir: PathBuf,
}

/// One target's figures.
pub struct Figures {
    pub produce: Duration,
    pub consume: Duration,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

pub struct ListenerReport {
    pub records: u64,
    pub value_bytes: usize,
    pub latency_rate: f64,
    pub baseline: String,
    pub listener: Figures,
    pub broker: Figures,
}

impl std::fmt::Display for ListenerReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (n, l, b) = (self.records, &self.listener, &self.broker);
        writeln!(
            f,
            "{n} records of {} bytes; the broker alone: {}",
            self.value_bytes, self.baseline
        )?;
        writeln!(
            f,
            "{:<34} {:>14} {:>14} {:>7}",
            "", "listener", "broker", "ratio"
        )?;
        for (what, listener, broker) in [
            ("produce (idempotent, acks=all)", l.produce, b.produce),
            ("consume from the start", l.consume, b.consume),
        ] {
            writeln!(
                f,
                "{what:<34} {:>10.0} r/s {:>10.0} r/s {:>6.2}×",
                per_sec(n, listener),
                per_sec(n, broker),
                per_sec(n, listener) / per_sec(n, broker)
            )?;
        }
        writeln!(
            f,
            "fetch latency at {:.0} records/s, p50 / p99 / max: listener {:.1} / {:.1} / {:.1} ms, broker {:.1} / {:.1} / {:.1} ms",
            self.latency_rate, l.p50_ms, l.p99_ms, l.max_ms, b.p50_ms, b.p99_ms, b.max_ms
        )
    }
}

pub fn run(bench: &ListenerBench, say: &dyn Fn(&str)) -> Result<ListenerReport> {
    if bench.data_dir.exists() {
        bail!(
            "{} exists: give a --data-dir that does not",
            bench.data_dir.display()
        );
    }
    let topics = Topics::open(DataFolder::open(&bench.data_dir)?, Retention::default())?;
    let measured = measure(&topics, bench, say);
    topics.shut_down()?;
    std::fs::remove_dir_all(&bench.data_dir)?;
    let [listener, broker] = measured?;
    Ok(ListenerReport {
        records: bench.records,
        value_bytes: bench.value_bytes,
        latency_rate: bench.latency_rate,
        baseline: bench.baseline.brokers().to_string(),
        listener,
        broker,
    })
}

/// The listener's figures, then the broker's.
fn measure(topics: &Topics, bench: &ListenerBench, say: &dyn Fn(&str)) -> Result<[Figures; 2]> {
    let bound = kafka_listener::bind("127.0.0.1:0".parse()?)?;
    let address = bound.local_addr()?.to_string();
    let storage = kafka_listener::TopicStorage::new(
        topics.clone(),
        "bench",
        0,
        format!("tcp://{address}").parse()?,
    );
    let _listener = kafka_listener::serve(bound, storage, Default::default())?;
    say(&format!(
        "the listener on {address}, the broker alone on {}",
        bench.baseline.brokers()
    ));
    let topic = format!(
        "bench-{}",
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)?
            .as_millis()
    );
    let run = |name: &str, kafka: &KafkaConfig| {
        say(&format!("{name}: {} records", bench.records));
        work(kafka, &topic, bench)
    };
    Ok([
        run("the listener", &KafkaConfig::new(&address))?,
        run("the broker", &bench.baseline)?,
    ])
}

fn work(kafka: &KafkaConfig, topic: &str, bench: &ListenerBench) -> Result<Figures> {
    ensure_topic(kafka, topic, bench.partitions)?;
    let value = vec![b'x'; bench.value_bytes];
    let producer = producer(kafka)?;
    let start = Instant::now();
    for i in 0..bench.records {
        let key = i.to_string();
        let partition = (i % bench.partitions as u64) as i32;
        send(
            &producer,
            BaseRecord::to(topic)
                .key(key.as_bytes())
                .payload(&value[..])
                .partition(partition),
        )?;
        producer.poll(Duration::ZERO);
    }
    flush(&producer, &mut |_| {})?;
    let produce = start.elapsed();

    let consumer = assigned(kafka, topic, bench.partitions, &[])?;
    let start = Instant::now();
    let mut read = 0;
    while read < bench.records {
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            m?;
            read += 1;
        }
    }
    let consume = start.elapsed();

    // The consumer waits at the end; records sent at the rate are stamped
    // with their send time.
    let (p50_ms, p99_ms, max_ms) = latency(kafka, topic, bench, &consumer)?;
    Ok(Figures {
        produce,
        consume,
        p50_ms,
        p99_ms,
        max_ms,
    })
}

fn latency(
    kafka: &KafkaConfig,
    topic: &str,
    bench: &ListenerBench,
    consumer: &BaseConsumer,
) -> Result<(f64, f64, f64)> {
    let producer = producer(kafka)?;
    let total = (bench.latency_rate * bench.latency_seconds as f64) as u64;
    let start = Instant::now();
    let mut latencies = Vec::with_capacity(total as usize);
    let mut sent = 0;
    while (latencies.len() as u64) < total {
        let due = start + Duration::from_secs_f64(sent as f64 / bench.latency_rate);
        if sent < total && Instant::now() >= due {
            let at = start.elapsed().as_micros().to_string();
            send(
                &producer,
                BaseRecord::to(topic)
                    .payload(at.as_bytes())
                    .partition((sent % bench.partitions as u64) as i32),
            )?;
            sent += 1;
        }
        producer.poll(Duration::ZERO);
        if let Some(m) = consumer.poll(Duration::from_micros(200)) {
            let m = m?;
            let sent_us: u128 = std::str::from_utf8(m.payload().unwrap_or_default())?.parse()?;
            latencies.push((start.elapsed().as_micros() - sent_us) as f64 / 1000.0);
        }
        if start.elapsed() > Duration::from_secs(bench.latency_seconds + 60) {
            bail!("{} of {total} records came back", latencies.len());
        }
    }
    let at = |q| quantile(&latencies, q).unwrap_or(0.0);
    Ok((at(0.5), at(0.99), at(1.0)))
}
