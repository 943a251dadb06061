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
use anyhow::{Context, Result};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Headers;
use rdkafka::{Message, Offset, TopicPartitionList};

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
    /// A record that is not a pane: counted and shown, not merged.
    Unreadable {
        reason: String,
    },
    Connected(bool),
    /// Records in the source not yet read.
    Lag(i64),
}

pub trait Source: Send {
    /// Reads until `stop` is set, sending what it reads; returns early only
    /// on an error it cannot recover from.
    fn run(self: Box<Self>, out: SyncSender<SourceEvent>, stop: Arc<AtomicBool>) -> Result<()>;
    fn describe(&self) -> String;
}

/// The header a harness host puts on its outputs.
pub const VERSION_HEADER: &str = "harness.transform.version";

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

/// Records of `topic` from a file in the harness's output format (one
/// `{"topic":…,"partition":…,"value":"…"}` a line), then what is appended.
pub struct FileSource {
    pub path: PathBuf,
    pub topic: String,
}

#[derive(serde::Deserialize)]
struct OutputLine {
    topic: String,
    #[serde(default)]
    partition: i32,
    value: Option<String>,
    #[serde(default)]
    headers: std::collections::BTreeMap<String, String>,
}

impl Source for FileSource {
    fn run(self: Box<Self>, out: SyncSender<SourceEvent>, stop: Arc<AtomicBool>) -> Result<()> {
        let file = std::fs::File::open(&self.path)
            .with_context(|| format!("opening {}", self.path.display()))?;
        let mut reader = BufReader::new(file);
        let _ = out.send(SourceEvent::Connected(true));
        let mut line = String::new();
        let mut position = 0u64;
        while !stop.load(Ordering::Relaxed) {
            line.clear();
            let read = reader.read_line(&mut line)?;
            // A line without its newline is still being written: wait for it.
            if read == 0 || !line.ends_with('\n') {
                reader.seek(SeekFrom::Start(position))?;
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
            position += read as u64;
            if line.trim().is_empty() {
                continue;
            }
            let event = match serde_json::from_str::<OutputLine>(&line) {
                Ok(l) if l.topic != self.topic => continue,
                Ok(l) => pane_event(
                    l.partition,
                    l.value.unwrap_or_default().as_bytes(),
                    l.headers.get(VERSION_HEADER).map(|v| v.as_bytes()),
                ),
                Err(e) => SourceEvent::Unreadable {
                    reason: format!("not an output line: {e}"),
                },
            };
            if out.send(event).is_err() {
                break;
            }
        }
        Ok(())
    }

    fn describe(&self) -> String {
        format!("{} (topic {})", self.path.display(), self.topic)
    }
}

/// Every partition of a topic, from the beginning, then live.
pub struct KafkaSource {
    pub brokers: String,
    pub topic: String,
}

impl Source for KafkaSource {
    fn run(self: Box<Self>, out: SyncSender<SourceEvent>, stop: Arc<AtomicBool>) -> Result<()> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.brokers)
            .set("group.id", "dashboard")
            .set("enable.auto.commit", "false")
            .set("fetch.wait.max.ms", "50")
            .set("reconnect.backoff.max.ms", "1000")
            .set("log_level", "3")
            .create()
            .context("creating the Kafka consumer")?;
        // The topic may not exist yet, or the broker may be away: wait.
        let partitions = loop {
            if stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            match consumer.fetch_metadata(Some(&self.topic), Duration::from_secs(5)) {
                Ok(m) => match m.topics().iter().find(|t| t.name() == self.topic) {
                    Some(t) if !t.partitions().is_empty() => break t.partitions().len() as i32,
                    _ => {}
                },
                Err(_) => {
                    let _ = out.send(SourceEvent::Connected(false));
                }
            }
            std::thread::sleep(Duration::from_secs(1));
        };
        let mut assignment = TopicPartitionList::new();
        for p in 0..partitions {
            assignment.add_partition_offset(&self.topic, p, Offset::Beginning)?;
        }
        consumer.assign(&assignment)?;
        let mut connected = None;
        let mut last_lag = Instant::now();
        let mut positions = vec![0i64; partitions as usize];
        while !stop.load(Ordering::Relaxed) {
            let event = match consumer.poll(Duration::from_millis(100)) {
                None => None,
                Some(Ok(m)) => {
                    positions[m.partition() as usize] = m.offset() + 1;
                    let version = m.headers().and_then(|hs| {
                        hs.iter()
                            .find(|h| h.key == VERSION_HEADER)
                            .and_then(|h| h.value)
                    });
                    Some(pane_event(
                        m.partition(),
                        m.payload().unwrap_or_default(),
                        version,
                    ))
                }
                Some(Err(_)) => {
                    if connected != Some(false) {
                        connected = Some(false);
                        let _ = out.send(SourceEvent::Connected(false));
                    }
                    None
                }
            };
            if let Some(event) = event {
                if connected != Some(true) {
                    connected = Some(true);
                    let _ = out.send(SourceEvent::Connected(true));
                }
                if out.send(event).is_err() {
                    break;
                }
            }
            if last_lag.elapsed() >= Duration::from_secs(1) {
                last_lag = Instant::now();
                let mut lag = 0;
                let mut reachable = true;
                for (p, position) in positions.iter().enumerate() {
                    match consumer.fetch_watermarks(&self.topic, p as i32, Duration::from_secs(1)) {
                        Ok((low, high)) => lag += (high - (*position).max(low)).max(0),
                        Err(_) => reachable = false,
                    }
                }
                if reachable {
                    if connected != Some(true) {
                        connected = Some(true);
                        let _ = out.send(SourceEvent::Connected(true));
                    }
                    let _ = out.send(SourceEvent::Lag(lag));
                } else if connected != Some(false) {
                    connected = Some(false);
                    let _ = out.send(SourceEvent::Connected(false));
                }
            }
        }
        Ok(())
    }

    fn describe(&self) -> String {
        format!("{} on {}", self.topic, self.brokers)
    }
}
