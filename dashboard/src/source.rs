//! Where panes come from. The file source reads the harness's output
//! format (and follows the file as it grows); the Kafka source reads the
//! `results` topic from the beginning. The embedded mode plugs its
//! in-memory topics in through the same trait.

use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::Arc;
use std::time::{Duration, Instant};

use analytics::Pane;
use anyhow::{bail, Context, Result};
use kafka_client::{partition_bounds, probe, KafkaConfig, Unusable};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Headers;
use rdkafka::{Message, Offset, TopicPartitionList};
use serde::Serialize;

/// What a source reports.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceEvent {
    Pane {
        partition: i32,
        pane: Box<Pane>,
        /// The transform version that wrote it, when its host says
        /// (the harness's `harness.transform.version` header).
        version: Option<String>,
    },
    /// A record of the dead-letter topic: counted by kind, the latest shown.
    DeadLetter(Box<DeadLetter>),
    /// A record that is not a pane: counted and shown, not merged.
    Unreadable {
        reason: String,
    },
    Connected(bool),
    /// The broker answered and refused (credentials, certificates): why.
    Refused(String),
    /// Records in the source not yet read.
    Lag(i64),
    /// Everything the source held when it started has been read: once the
    /// merge reaches this event, the dashboard shows the whole history.
    CaughtUp,
}

pub trait Source: Send {
    /// Reads until `stop` is set, sending what it reads; returns early only
    /// on an error it cannot recover from.
    fn run(self: Box<Self>, out: SyncSender<SourceEvent>, stop: Arc<AtomicBool>) -> Result<()>;
    fn describe(&self) -> String;
}

/// The header a harness host puts on its outputs.
pub const VERSION_HEADER: &str = "harness.transform.version";

/// The dead-letter topic the pipeline writes, which the dashboard reads
/// beside `results` by default.
pub const DEAD_LETTER_TOPIC: &str = "logs.dlq";

/// Most characters of a dead letter's key and value kept for the page.
const SAMPLE_CHARS: usize = 200;

/// A dead-letter record: why (the pipeline's `error`, `error.kind` and
/// `error.stage` headers), where, and the start of what it held.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeadLetter {
    /// A stable name to count by: `error.kind`, or for records from other
    /// writers the reason up to its first `:`.
    pub kind: String,
    pub reason: String,
    pub stage: Option<String>,
    pub partition: i32,
    pub offset: Option<i64>,
    pub key: Option<String>,
    pub value: Option<String>,
}

impl DeadLetter {
    /// From a dead-letter record's parts; `headers` as (key, value).
    pub fn new<'a>(
        partition: i32,
        offset: Option<i64>,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: impl IntoIterator<Item = (&'a [u8], Option<&'a [u8]>)>,
    ) -> DeadLetter {
        let (mut kind, mut reason, mut stage) = (None, None, None);
        for (k, v) in headers {
            let v = v.map(|v| String::from_utf8_lossy(v).into_owned());
            match k {
                b"error" => reason = v,
                b"error.kind" => kind = v,
                b"error.stage" => stage = v,
                _ => {}
            }
        }
        let reason = reason.unwrap_or_else(|| "no `error` header".into());
        let kind = kind.unwrap_or_else(|| {
            let head = reason.split(':').next().unwrap_or_default().trim();
            head.chars().take(48).collect()
        });
        DeadLetter {
            kind,
            reason: sample(reason.as_bytes()),
            stage,
            partition,
            offset,
            key: key.map(sample),
            value: value.map(sample),
        }
    }
}

/// The start of some bytes, as text.
fn sample(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(4 * SAMPLE_CHARS)]);
    match text.char_indices().nth(SAMPLE_CHARS) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.into_owned(),
    }
}

/// A record of the results topic as what the source reports.
pub fn pane_event(partition: i32, value: &[u8], version: Option<&[u8]>) -> SourceEvent {
    match serde_json::from_slice::<Pane>(value) {
        Ok(pane) => SourceEvent::Pane {
            partition,
            pane: Box::new(pane),
            version: version.map(|v| String::from_utf8_lossy(v).into_owned()),
        },
        Err(e) => SourceEvent::Unreadable {
            reason: format!("not a pane: {e}"),
        },
    }
}

/// Records of `topic` (and the dead letters of `dlq_topic`) from a file in
/// the harness's output format (one `{"topic":…,"partition":…,"value":"…"}`
/// a line), then what is appended.
pub struct FileSource {
    pub path: PathBuf,
    pub topic: String,
    pub dlq_topic: Option<String>,
}

#[derive(serde::Deserialize)]
struct OutputLine {
    topic: String,
    #[serde(default)]
    partition: i32,
    #[serde(default)]
    key: Option<String>,
    value: Option<String>,
    #[serde(default)]
    headers: std::collections::BTreeMap<String, Option<String>>,
}

/// Lines in a file, counted once at the start: what the lag counts down.
fn count_lines(path: &std::path::Path) -> Result<u64> {
    let mut file = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut lines = 0;
    loop {
        let n = std::io::Read::read(&mut file, &mut buf)?;
        if n == 0 {
            return Ok(lines);
        }
        lines += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
    }
}

impl FileSource {
    fn event(&self, line: &str) -> Option<SourceEvent> {
        let line = match serde_json::from_str::<OutputLine>(line) {
            Ok(line) => line,
            Err(e) => {
                return Some(SourceEvent::Unreadable {
                    reason: format!("not an output line: {e}"),
                })
            }
        };
        let header = |name: &str| line.headers.get(name).and_then(|v| v.as_deref());
        if line.topic == self.topic {
            let value = line.value.as_deref().unwrap_or_default();
            return Some(pane_event(
                line.partition,
                value.as_bytes(),
                header(VERSION_HEADER).map(str::as_bytes),
            ));
        }
        if self.dlq_topic.as_ref() == Some(&line.topic) {
            let headers = line
                .headers
                .iter()
                .map(|(k, v)| (k.as_bytes(), v.as_deref().map(str::as_bytes)));
            return Some(SourceEvent::DeadLetter(Box::new(DeadLetter::new(
                line.partition,
                None,
                line.key.as_deref().map(str::as_bytes),
                line.value.as_deref().map(str::as_bytes),
                headers,
            ))));
        }
        None
    }
}

impl Source for FileSource {
    fn run(self: Box<Self>, out: SyncSender<SourceEvent>, stop: Arc<AtomicBool>) -> Result<()> {
        if self.path.is_dir() {
            bail!(
                "{} is a directory: give the file `harness run` wrote",
                self.path.display()
            );
        }
        let file = std::fs::File::open(&self.path)
            .with_context(|| format!("opening {}", self.path.display()))?;
        let mut known_lines = count_lines(&self.path)?;
        let mut reader = BufReader::new(file);
        let _ = out.send(SourceEvent::Connected(true));
        let _ = out.send(SourceEvent::Lag(known_lines as i64));
        let mut line = String::new();
        let (mut position, mut lines_read) = (0u64, 0u64);
        let mut caught_up = false;
        let mut last_lag = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            line.clear();
            let read = reader.read_line(&mut line)?;
            // A line without its newline is still being written: wait for it.
            if read == 0 || !line.ends_with('\n') {
                reader.seek(SeekFrom::Start(position))?;
                if !caught_up {
                    caught_up = true;
                    known_lines = lines_read;
                    let _ = out.send(SourceEvent::Lag(0));
                    let _ = out.send(SourceEvent::CaughtUp);
                }
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
            position += read as u64;
            lines_read += 1;
            let event = match line.trim().is_empty() {
                true => None,
                false => self.event(&line),
            };
            if let Some(event) = event {
                if out.send(event).is_err() {
                    break;
                }
            }
            // After the line's event: what the lag says is read is merged
            // by the time the lag is.
            if last_lag.elapsed() >= Duration::from_secs(1) {
                last_lag = Instant::now();
                known_lines = known_lines.max(lines_read);
                let _ = out.send(SourceEvent::Lag((known_lines - lines_read) as i64));
            }
        }
        Ok(())
    }

    fn describe(&self) -> String {
        format!("{} (topic {})", self.path.display(), self.topic)
    }
}

/// Every partition of `topic` (and of `dlq_topic`, once it exists), from
/// the beginning, then live.
pub struct KafkaSource {
    pub kafka: KafkaConfig,
    pub topic: String,
    pub dlq_topic: Option<String>,
}

/// One topic the Kafka source reads, with a consumer of its own: adding a
/// topic to a running consumer would re-seek its partitions, and a seek
/// into the middle of a producer's batch makes Tansu 0.6 skip the rest of
/// that batch.
struct TopicConsumer {
    consumer: BaseConsumer,
    topic: String,
    dead_letters: bool,
    /// Per partition: the next offset to read, and whether a fetch found
    /// its end.
    positions: Vec<i64>,
    at_end: Vec<bool>,
}

impl TopicConsumer {
    /// A consumer of every partition of `topic` from the beginning, or
    /// `None` while the topic does not exist.
    fn start(
        kafka: &KafkaConfig,
        topic: &str,
        dead_letters: bool,
    ) -> Result<Option<TopicConsumer>> {
        let consumer: BaseConsumer = kafka
            .client_with(&[
                ("group.id", "dashboard"),
                ("enable.auto.commit", "false"),
                ("fetch.wait.max.ms", "50"),
                ("enable.partition.eof", "true"),
            ])
            .create()
            .context("creating the Kafka consumer")?;
        let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(5))?;
        let Some(partitions) = metadata
            .topics()
            .iter()
            .find(|t| t.name() == topic && !t.partitions().is_empty())
            .map(|t| t.partitions().len() as i32)
        else {
            return Ok(None);
        };
        let mut list = TopicPartitionList::new();
        let mut positions = Vec::new();
        for p in 0..partitions {
            let (low, _) = consumer.fetch_watermarks(topic, p, Duration::from_secs(5))?;
            list.add_partition_offset(topic, p, Offset::Beginning)?;
            positions.push(low);
        }
        consumer.assign(&list)?;
        Ok(Some(TopicConsumer {
            consumer,
            topic: topic.to_string(),
            dead_letters,
            positions,
            at_end: vec![false; partitions as usize],
        }))
    }

    /// The next record as an event; `Err` when the broker cannot be reached.
    fn poll(&mut self, wait: Duration) -> Option<Result<SourceEvent, ()>> {
        let m = match self.consumer.poll(wait)? {
            Ok(m) => m,
            Err(KafkaError::PartitionEOF(p)) => {
                if let Some(at_end) = self.at_end.get_mut(p as usize) {
                    *at_end = true;
                }
                return None;
            }
            Err(_) => return Some(Err(())),
        };
        if let Some(position) = self.positions.get_mut(m.partition() as usize) {
            *position = m.offset() + 1;
        }
        let headers = m.headers();
        let header_list = || {
            headers
                .into_iter()
                .flat_map(|hs| hs.iter())
                .map(|h| (h.key.as_bytes(), h.value))
        };
        Some(Ok(if self.dead_letters {
            SourceEvent::DeadLetter(Box::new(DeadLetter::new(
                m.partition(),
                Some(m.offset()),
                m.key(),
                m.payload(),
                header_list(),
            )))
        } else {
            let version = header_list()
                .find(|(k, _)| *k == VERSION_HEADER.as_bytes())
                .and_then(|(_, v)| v);
            pane_event(m.partition(), m.payload().unwrap_or_default(), version)
        }))
    }

    /// Every partition was read to its end once: everything it held when
    /// the source started has been read. A fetch response says where a
    /// partition ends; ListOffsets may say less (see `kafka_client::fetched_end`).
    fn caught_up(&self) -> bool {
        self.at_end.iter().all(|&at_end| at_end)
    }

    /// Records not yet read; `None` if the broker cannot be reached.
    fn lag(&self) -> Option<i64> {
        let mut lag = 0;
        for (p, position) in self.positions.iter().enumerate() {
            let (low, high) = partition_bounds(
                &self.consumer,
                &self.topic,
                p as i32,
                Duration::from_secs(1),
            )
            .ok()?;
            lag += (high - (*position).max(low)).max(0);
        }
        Some(lag)
    }
}

/// How long the source waits for a broker's answer to learn why it cannot
/// read, between its attempts.
const REFUSAL_WAIT: Duration = Duration::from_secs(3);

/// Sends a change of connectivity, once.
fn report(connected: &mut Option<bool>, now: bool, out: &SyncSender<SourceEvent>) {
    if *connected != Some(now) {
        *connected = Some(now);
        let _ = out.send(SourceEvent::Connected(now));
    }
}

impl Source for KafkaSource {
    fn run(self: Box<Self>, out: SyncSender<SourceEvent>, stop: Arc<AtomicBool>) -> Result<()> {
        // The topic may not exist yet, or the broker may be away: wait.
        let mut topics = loop {
            if stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            match TopicConsumer::start(&self.kafka, &self.topic, false) {
                Ok(Some(results)) => break vec![results],
                Ok(None) => {}
                Err(_) => {
                    let _ = out.send(SourceEvent::Connected(false));
                    // Say why, when the broker says no: the page and
                    // /api/status show it while this keeps retrying.
                    if let Err(Unusable::Refused(why)) = probe(&self.kafka, REFUSAL_WAIT) {
                        let _ = out.send(SourceEvent::Refused(why));
                    }
                }
            }
            std::thread::sleep(Duration::from_secs(1));
        };
        if let Some(lag) = topics.iter().map(TopicConsumer::lag).sum::<Option<i64>>() {
            let _ = out.send(SourceEvent::Lag(lag));
        }
        let mut dlq_pending = self.dlq_topic.clone();
        let mut next_dlq_check = Instant::now();
        let mut connected = None;
        let mut caught_up = false;
        let mut last_check = Instant::now() - Duration::from_secs(1);
        let mut idle = false;
        while !stop.load(Ordering::Relaxed) {
            // The dead letters exist beside the panes: look for them first.
            if let Some(dlq) = dlq_pending
                .as_deref()
                .filter(|_| Instant::now() >= next_dlq_check)
            {
                next_dlq_check = Instant::now() + Duration::from_secs(10);
                if let Ok(Some(consumer)) = TopicConsumer::start(&self.kafka, dlq, true) {
                    topics.push(consumer);
                    dlq_pending = None;
                }
            }
            // Wait for the panes only when no topic had a record last round:
            // a busy dead-letter topic is then read at full speed.
            let waited = idle;
            idle = true;
            for (i, topic) in topics.iter_mut().enumerate() {
                let wait = Duration::from_millis(if i == 0 && waited { 100 } else { 0 });
                match topic.poll(wait) {
                    None => {}
                    Some(Err(())) => report(&mut connected, false, &out),
                    Some(Ok(event)) => {
                        idle = false;
                        // A record may come from what was fetched before an
                        // outage: only a round trip (below) says the broker
                        // is back.
                        if connected.is_none() {
                            report(&mut connected, true, &out);
                        }
                        if out.send(event).is_err() {
                            return Ok(());
                        }
                    }
                }
            }
            if !caught_up && topics.iter().all(TopicConsumer::caught_up) {
                caught_up = true;
                let _ = out.send(SourceEvent::CaughtUp);
            }
            if last_check.elapsed() >= Duration::from_secs(1) {
                last_check = Instant::now();
                match topics.iter().map(TopicConsumer::lag).sum::<Option<i64>>() {
                    Some(lag) => {
                        report(&mut connected, true, &out);
                        let _ = out.send(SourceEvent::Lag(lag));
                    }
                    None => report(&mut connected, false, &out),
                }
            }
        }
        Ok(())
    }

    fn describe(&self) -> String {
        match &self.dlq_topic {
            Some(dlq) => format!("{} and {dlq} on {}", self.topic, self.kafka.brokers()),
            None => format!("{} on {}", self.topic, self.kafka.brokers()),
        }
    }
}
