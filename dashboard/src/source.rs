//! Where panes come from. The file source reads the harness's output
//! format (and follows the file as it grows); the topic source reads the
//! `results` topic (and the dead letters beside it), on a broker or the
//! embedded topics alike (`topic_io`). Both start where the history says
//! the merge stopped, and report where each record was, so that the
//! history keeps its position with what it merged.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::Arc;
use std::time::{Duration, Instant};

use analytics::Pane;
use anyhow::{bail, Context, Result};
use parking_lot::Mutex;
use record_payload::decode_record;
use serde::Serialize;
use topic_io::{Offsets, Polled, StartAt, Transport};

/// Per (topic, partition), the next offset to read.
pub type Positions = BTreeMap<(String, i32), i64>;

/// Where a record was read: the offset in a file source is the record's
/// number among its topic and partition's lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct At {
    pub topic: Arc<str>,
    pub partition: i32,
    pub offset: i64,
}

/// Where a source starts, and what it may let its topics drop.
#[derive(Debug, Clone, Default)]
pub struct Start {
    /// The positions the history holds; a partition without one starts at
    /// its beginning.
    pub from: Positions,
    /// The positions the history has stored so far: what the source
    /// commits to its consumer group (so that retention may drop it).
    pub stored: Arc<Mutex<Positions>>,
    /// Set by the source when a writer waits for its commits (topics in
    /// memory): the merge then checkpoints at once, for the source to
    /// commit.
    pub checkpoint_wanted: Arc<AtomicBool>,
}

/// What a source reports.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceEvent {
    Pane {
        at: At,
        pane: Box<Pane>,
    },
    /// A record of the dead-letter topic: counted by kind, the latest shown.
    DeadLetter {
        at: At,
        dead: Box<DeadLetter>,
    },
    /// A record that is not a pane (`at` says where), or a source that
    /// stopped: counted and shown, not merged.
    Unreadable {
        at: Option<At>,
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
    /// Reads from `start` until `stop` is set, sending what it reads;
    /// returns early only on an error it cannot recover from.
    fn run(
        self: Box<Self>,
        start: Start,
        out: SyncSender<SourceEvent>,
        stop: Arc<AtomicBool>,
    ) -> Result<()>;
    fn describe(&self) -> String;
}

/// The dead-letter topic the pipeline writes, which the dashboard reads
/// beside `results` by default.
pub const DEAD_LETTER_TOPIC: &str = "logs.dlq";

/// Most characters of a dead letter's key and value kept for the page.
const SAMPLE_CHARS: usize = 200;

/// A dead-letter record: why (the pipeline's `error`, `error.kind` and
/// `error.stage` headers), where, and the start of what it held.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
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
pub fn pane_event(at: At, value: &[u8]) -> SourceEvent {
    match serde_json::from_slice::<Pane>(value) {
        Ok(pane) => SourceEvent::Pane {
            at,
            pane: Box::new(pane),
        },
        Err(e) => SourceEvent::Unreadable {
            at: Some(at),
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
    headers: LineHeaders,
}

/// A line's headers: rpk's array, as `harness run` writes them, or the
/// object of lines written before.
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum LineHeaders {
    List(Vec<LineHeader>),
    Map(BTreeMap<String, Option<String>>),
}

impl Default for LineHeaders {
    fn default() -> LineHeaders {
        LineHeaders::List(Vec::new())
    }
}

#[derive(serde::Deserialize)]
struct LineHeader {
    key: String,
    #[serde(default)]
    value: Option<String>,
    #[serde(default)]
    value_base64: Option<String>,
}

impl LineHeaders {
    /// (key, value) pairs, in order; a binary value decoded.
    fn pairs(&self) -> Vec<(&[u8], Option<Vec<u8>>)> {
        use base64::Engine;
        match self {
            LineHeaders::Map(map) => map
                .iter()
                .map(|(k, v)| (k.as_bytes(), v.as_ref().map(|v| v.as_bytes().to_vec())))
                .collect(),
            LineHeaders::List(list) => list
                .iter()
                .map(|h| {
                    let binary = h
                        .value_base64
                        .as_ref()
                        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok());
                    let text = h.value.as_ref().map(|v| v.as_bytes().to_vec());
                    (h.key.as_bytes(), binary.or(text))
                })
                .collect(),
        }
    }
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

/// A file's records numbered per topic and partition, as offsets.
#[derive(Default)]
struct LineOffsets(BTreeMap<(String, i32), i64>);

impl LineOffsets {
    /// Where the line is, and whether `from` says it was merged already.
    fn next(&mut self, topic: &str, partition: i32, from: &Positions) -> (At, bool) {
        let key = (topic.to_string(), partition);
        let offset = self.0.entry(key.clone()).or_default();
        let at = At {
            topic: Arc::from(topic),
            partition,
            offset: *offset,
        };
        *offset += 1;
        let merged = from.get(&key).is_some_and(|&next| at.offset < next);
        (at, merged)
    }
}

impl FileSource {
    fn event(
        &self,
        line: &str,
        offsets: &mut LineOffsets,
        from: &Positions,
    ) -> Option<SourceEvent> {
        let line = match serde_json::from_str::<OutputLine>(line) {
            Ok(line) => line,
            Err(e) => {
                return Some(SourceEvent::Unreadable {
                    at: None,
                    reason: format!("not an output line: {e}"),
                })
            }
        };
        let ours = line.topic == self.topic || self.dlq_topic.as_ref() == Some(&line.topic);
        if !ours {
            return None;
        }
        let (at, merged) = offsets.next(&line.topic, line.partition, from);
        if merged {
            return None;
        }
        if line.topic == self.topic {
            let value = line.value.as_deref().unwrap_or_default();
            return Some(pane_event(at, value.as_bytes()));
        }
        let pairs = line.headers.pairs();
        let headers = pairs.iter().map(|(k, v)| (*k, v.as_deref()));
        let dead = DeadLetter::new(
            line.partition,
            None,
            line.key.as_deref().map(str::as_bytes),
            line.value.as_deref().map(str::as_bytes),
            headers,
        );
        Some(SourceEvent::DeadLetter {
            at,
            dead: Box::new(dead),
        })
    }
}

impl Source for FileSource {
    fn run(
        self: Box<Self>,
        start: Start,
        out: SyncSender<SourceEvent>,
        stop: Arc<AtomicBool>,
    ) -> Result<()> {
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
        let mut offsets = LineOffsets::default();
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
                false => self.event(&line, &mut offsets, &start.from),
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
/// where the history stopped (else the beginning), then live, wherever the
/// topics are; the consumer group `dashboard` commits what the history has
/// stored, so that the topics may drop it.
pub struct TopicSource {
    pub transport: Arc<dyn Transport>,
    pub topic: String,
    pub dlq_topic: Option<String>,
}

/// The consumer group the dashboard reads as.
const GROUP: &str = "dashboard";

/// How often the source commits what the history stored.
const COMMIT_EVERY: Duration = Duration::from_millis(200);

/// How often it commits while a writer waits for it.
const COMMIT_WANTED_EVERY: Duration = Duration::from_millis(2);

/// How often the source asks how far behind it is, which also says
/// whether the topics can be reached.
const LAG_EVERY: Duration = Duration::from_secs(1);

/// How often the source looks for a dead-letter topic that does not exist
/// yet.
const DLQ_CHECK_EVERY: Duration = Duration::from_secs(10);

/// One topic the source reads.
struct SourceTopic {
    topic: Arc<str>,
    source: Box<dyn topic_io::Source>,
    offsets: Box<dyn Offsets>,
    dead_letters: bool,
    /// Per partition, what was committed.
    committed: Vec<i64>,
}

impl SourceTopic {
    /// The record as what the source reports.
    fn event(&mut self, partition: i32, record: topic_io::Record) -> SourceEvent {
        let at = At {
            topic: self.topic.clone(),
            partition,
            offset: record.offset,
        };
        let decoded = match decode_record(&record.payload) {
            Ok(decoded) => decoded,
            Err(e) => {
                return SourceEvent::Unreadable {
                    at: Some(at),
                    reason: format!("not a record: {e}"),
                }
            }
        };
        if self.dead_letters {
            let headers = decoded.headers().iter().map(|h| (h.key(), h.value()));
            let dead = DeadLetter::new(
                partition,
                Some(record.offset),
                decoded.key(),
                decoded.value(),
                headers,
            );
            return SourceEvent::DeadLetter {
                at,
                dead: Box::new(dead),
            };
        }
        pane_event(at, decoded.value().unwrap_or_default())
    }

    /// Commits the stored positions that moved since the last commit.
    fn commit(&mut self, stored: &Positions) -> Result<()> {
        let moved: Vec<(i32, i64)> = self
            .committed
            .iter()
            .enumerate()
            .filter_map(|(p, &committed)| {
                let at = *stored.get(&(self.topic.to_string(), p as i32))?;
                (at > committed).then_some((p as i32, at))
            })
            .collect();
        if moved.is_empty() {
            return Ok(());
        }
        self.offsets.commit(&moved, false)?;
        for (p, at) in moved {
            self.committed[p as usize] = at;
        }
        Ok(())
    }
}

impl TopicSource {
    /// A source of every partition of `topic` from where `from` says (else
    /// from the beginning), or `None` while the topic does not exist.
    fn open(
        &self,
        topic: &str,
        dead_letters: bool,
        from: &Positions,
    ) -> Result<Option<SourceTopic>> {
        let Some(partitions) = self.transport.partition_count(topic)? else {
            return Ok(None);
        };
        let held = |p: i32| from.get(&(topic.to_string(), p)).copied();
        let starts: Vec<StartAt> = (0..partitions)
            .map(|p| held(p).map_or(StartAt::Beginning, StartAt::Offset))
            .collect();
        Ok(Some(SourceTopic {
            topic: Arc::from(topic),
            source: self.transport.source(GROUP, topic, &starts)?,
            offsets: self.transport.offsets(GROUP, topic)?,
            dead_letters,
            committed: (0..partitions).map(|p| held(p).unwrap_or(0)).collect(),
        }))
    }
}

/// Sends a change of connectivity, once.
fn report(connected: &mut Option<bool>, now: bool, out: &SyncSender<SourceEvent>) {
    if *connected != Some(now) {
        *connected = Some(now);
        let _ = out.send(SourceEvent::Connected(now));
    }
}

/// Records not yet read in every topic; `None` if they cannot be asked.
fn lag(topics: &[SourceTopic]) -> Option<i64> {
    topics
        .iter()
        .map(|t| t.source.lags().map(|l| l.iter().sum::<i64>()))
        .sum()
}

impl Source for TopicSource {
    fn run(
        self: Box<Self>,
        start: Start,
        out: SyncSender<SourceEvent>,
        stop: Arc<AtomicBool>,
    ) -> Result<()> {
        // The topic may not exist yet, or the broker may be away: wait.
        let mut connected = None;
        let mut topics = loop {
            if stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            match self.open(&self.topic, false, &start.from) {
                Ok(Some(results)) => break vec![results],
                Ok(None) => {}
                Err(_) => {
                    report(&mut connected, false, &out);
                    // Say why, when the other side says no: the page and
                    // /api/status show it while this keeps retrying.
                    if let Some(why) = self.transport.diagnose() {
                        let _ = out.send(SourceEvent::Refused(why));
                    }
                }
            }
            std::thread::sleep(Duration::from_secs(1));
        };
        // Connected once a record or an answer about the lag says so.
        if let Some(lag) = lag(&topics) {
            let _ = out.send(SourceEvent::Lag(lag));
        }
        let mut dlq_pending = self.dlq_topic.clone();
        let mut next_dlq_check = Instant::now();
        let mut caught_up = false;
        let (mut last_commit, mut last_lag) = (Instant::now(), Instant::now());
        let mut idle = false;
        while !stop.load(Ordering::Relaxed) {
            // The dead letters go beside the panes: look for them first.
            if let Some(dlq) = dlq_pending
                .as_deref()
                .filter(|_| Instant::now() >= next_dlq_check)
            {
                next_dlq_check = Instant::now() + DLQ_CHECK_EVERY;
                if let Ok(Some(source)) = self.open(dlq, true, &start.from) {
                    topics.push(source);
                    dlq_pending = None;
                }
            }
            // While a writer waits for its commit, what it waits for is the
            // merge's checkpoint, not a record: look again soon.
            let wanted = topics.iter().any(|t| t.offsets.commit_wanted());
            if wanted {
                start.checkpoint_wanted.store(true, Ordering::Relaxed);
            }
            // Wait for the panes only when no topic had a record last round:
            // a busy dead-letter topic is then read at full speed.
            let waited = idle;
            idle = true;
            for (i, topic) in topics.iter_mut().enumerate() {
                let wait = match (i == 0 && waited, wanted) {
                    (false, _) => Duration::ZERO,
                    (true, false) => Duration::from_millis(100),
                    (true, true) => COMMIT_WANTED_EVERY,
                };
                match topic.source.poll(wait) {
                    Polled::Idle => {}
                    Polled::Trouble(_) => report(&mut connected, false, &out),
                    Polled::Record(p, record) => {
                        idle = false;
                        // A record may come from what was fetched before an
                        // outage: only an answer about the lag (below) says
                        // the broker is back.
                        if connected.is_none() {
                            report(&mut connected, true, &out);
                        }
                        if out.send(topic.event(p, record)).is_err() {
                            return Ok(());
                        }
                    }
                }
            }
            if !caught_up && idle && topics.iter().all(|t| t.source.caught_up()) {
                caught_up = true;
                let _ = out.send(SourceEvent::CaughtUp);
            }
            let every = if wanted {
                COMMIT_WANTED_EVERY
            } else {
                COMMIT_EVERY
            };
            if last_commit.elapsed() >= every {
                last_commit = Instant::now();
                let stored = start.stored.lock().clone();
                for topic in &mut topics {
                    if let Err(e) = topic.commit(&stored) {
                        tracing::debug!("committing what the dashboard read: {e:#}");
                    }
                }
            }
            if last_lag.elapsed() >= LAG_EVERY {
                last_lag = Instant::now();
                match lag(&topics) {
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
        let place = self.transport.describe();
        match &self.dlq_topic {
            Some(dlq) => format!("{} and {dlq} on {place}", self.topic),
            None => format!("{} on {place}", self.topic),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `harness run`'s lines carry rpk's header array now; files written
    /// before carry an object. Both are read, in order, binary values too.
    #[test]
    fn a_line_s_headers_are_read_in_either_form() {
        let line: OutputLine = serde_json::from_str(
            r#"{"topic":"logs.dlq","value":"x","headers":[{"key":"error","value":"bad"},{"key":"error","value_base64":"/w=="},{"key":"n","value":null}]}"#,
        )
        .unwrap();
        assert_eq!(
            line.headers.pairs(),
            [
                (&b"error"[..], Some(b"bad".to_vec())),
                (&b"error"[..], Some(vec![0xff])),
                (&b"n"[..], None),
            ]
        );
        let old: OutputLine =
            serde_json::from_str(r#"{"topic":"logs.dlq","value":"x","headers":{"error":"bad"}}"#)
                .unwrap();
        assert_eq!(
            old.headers.pairs(),
            [(&b"error"[..], Some(b"bad".to_vec()))]
        );
    }
}
