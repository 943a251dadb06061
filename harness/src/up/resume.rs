//! What `up` finds in a data folder it starts on again: the topics it
//! needs with their partition counts, where the generator's stream
//! stopped, and the transforms it ran.

use anyhow::{bail, Result};
use record_payload::decode_record;
use registry::{LocalRegistry, Schema, SchemaRegistry};
use serde::{Deserialize, Serialize};
use topics::Topics;

use crate::hosting::{SaveTransform, SavedTransform};
use crate::transport::embedded::SEQUENCE_HEADER;
use crate::transport::Transport;

/// The key of the generator's entry beside the topics.
const GENERATOR: &str = "generator";

/// Where each transform is kept, by name.
const TRANSFORM: &str = "transform/";

/// Each registration of up's schema registry, numbered in order.
const SCHEMA: &str = "schema/";

/// What the command line asked to run last time.
const COMMAND_LINE: &str = "command-line";

/// Records looked at, back from a partition's end, for the generator's
/// last numbered event.
const LOOK_BACK: usize = 4096;

/// The stream the generator writes, as kept beside the topics.
#[derive(Serialize, Deserialize)]
struct GeneratorEntry {
    /// [`generator::StreamArgs::identity`].
    identity: String,
    /// Where the stream's events start in each partition of its topic.
    starts: Vec<i64>,
}

/// Creates the topics `up` needs, or checks that those already there have
/// `partitions` partitions; `place` names where they are and what else to
/// do, for the error.
pub fn ensure_topics(
    topics: &dyn Transport,
    names: &[&str],
    partitions: i32,
    place: (&str, &str),
) -> Result<()> {
    let (there, otherwise) = place;
    for name in names {
        let have = topics.ensure_topic(name, partitions)?;
        if have != partitions {
            bail!(
                "{there} holds topic {name} with {have} partitions, not the {partitions} of \
                 --partitions: start with --partitions {have}, or {otherwise}"
            );
        }
    }
    Ok(())
}

/// Where the generator starts: the number of events of the stream
/// `identity` already in `topic`, and a note to show when it is not the
/// start. A stream with another identity starts anew after what is there.
pub fn generator_start(
    topics: &Topics,
    topic: &str,
    identity: &str,
) -> Result<(u64, Option<String>)> {
    let ends = topics.ends(topic)?;
    let entry = topics
        .meta(GENERATOR)
        .and_then(|v| serde_json::from_slice::<GeneratorEntry>(&v).ok());
    let starts = match entry {
        Some(e) if e.identity == identity && e.starts.len() == ends.len() => e.starts,
        previous => {
            let note = previous.map(|_| {
                format!(
                    "the generator's stream is not the last run's ({identity}): a new one \
                     starts after the {} records in {topic}",
                    ends.iter().sum::<i64>()
                )
            });
            let entry = GeneratorEntry {
                identity: identity.to_string(),
                starts: ends,
            };
            topics.set_meta(GENERATOR, serde_json::to_vec(&entry)?);
            return Ok((0, note));
        }
    };
    let mut next = 0;
    for (p, start) in starts.iter().enumerate() {
        if let Some(seq) = last_sequence(topics, topic, p as i32, *start)? {
            next = next.max(seq + 1);
        }
    }
    let note = (next > 0).then(|| {
        format!("the generator goes on from event {next} of its stream, where it stopped")
    });
    Ok((next, note))
}

/// The number of the last event of the generator in a partition, at or
/// after `start`.
fn last_sequence(topics: &Topics, topic: &str, partition: i32, start: i64) -> Result<Option<u64>> {
    let (low, end) = topics.bounds(topic, partition)?;
    let from = (end - LOOK_BACK as i64).max(start).max(low);
    let records = topics.read(topic, partition, from, LOOK_BACK)?;
    for r in records.iter().rev() {
        let decoded = decode_record(&r.payload)?;
        let seq = decoded
            .headers()
            .iter()
            .find(|h| h.key() == SEQUENCE_HEADER.as_bytes())
            .and_then(|h| std::str::from_utf8(h.value()?).ok()?.parse().ok());
        if seq.is_some() {
            return Ok(seq);
        }
    }
    Ok(None)
}

/// The transforms kept in the folder.
pub fn saved_transforms(topics: &Topics) -> Vec<SavedTransform> {
    topics
        .meta_prefixed(TRANSFORM)
        .into_iter()
        .filter_map(|(key, value)| match serde_json::from_slice(&value) {
            Ok(saved) => saved,
            Err(e) => {
                tracing::warn!("{key} in the data folder is not a transform ({e}): skipped");
                None
            }
        })
        .collect()
}

/// Keeps each transform in the folder as it changes.
pub fn saver(topics: Topics) -> SaveTransform {
    Box::new(move |name, saved| {
        let value = serde_json::to_vec(&saved).expect("serialisable");
        topics.set_meta(&format!("{TRANSFORM}{name}"), value);
    })
}

/// Whether the command line asks for the same module and environment as
/// last time, so that what was deployed since (a hot swap, a pause) stays;
/// remembers what it asks now.
pub fn same_command_line(topics: &Topics, version: &str, env: &[(String, String)]) -> bool {
    let asked = serde_json::to_vec(&(version, env)).expect("serialisable");
    let same = topics.meta(COMMAND_LINE).as_deref() == Some(asked.as_slice());
    topics.set_meta(COMMAND_LINE, asked);
    same
}

/// Up's own schema registry, with the schemas the folder kept, keeping
/// those registered from now on.
pub fn registry(topics: &Topics) -> Result<LocalRegistry> {
    let local = LocalRegistry::new();
    let kept = topics.meta_prefixed(SCHEMA);
    for (key, value) in &kept {
        let (subject, schema): (String, Schema) = serde_json::from_slice(value)
            .map_err(|e| anyhow::anyhow!("{key} in the data folder is not a schema: {e}"))?;
        local
            .register(&subject, &schema)
            .map_err(|e| anyhow::anyhow!("{key} in the data folder: {e}"))?;
    }
    if !kept.is_empty() {
        tracing::info!(
            "the schema registry has its {} registrations back",
            kept.len()
        );
    }
    let next = std::sync::atomic::AtomicUsize::new(kept.len());
    let topics = topics.clone();
    Ok(local.with_log(Box::new(move |subject, schema| {
        let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let value = serde_json::to_vec(&(subject, schema)).expect("serialisable");
        // Zero-padded: the keys sort in the order of the registrations.
        topics.set_meta(&format!("{SCHEMA}{n:010}"), value);
    })))
}
