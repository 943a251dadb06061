//! The harness's topic routes over any transport: what a host's topics
//! hold, records read back, records produced. The admin API serves them for
//! a running host; `harness topic` uses them on a stopped data folder too.

use admin::{ApiError, NewRecord, Produced, TopicInfo, TopicRecord};
use kafka_client::partition_for;
use record_payload::{decode_record, BorrowedHeader, BorrowedRecord};
use topic_io::Transport;

/// The transport failed: the host cannot answer now.
fn unavailable(e: anyhow::Error) -> ApiError {
    ApiError::new(503, format!("{e:#}"))
}

/// A topic, with its partitions' offsets; `None` if there is none.
pub fn topic(transport: &dyn Transport, name: &str) -> Result<Option<TopicInfo>, ApiError> {
    let Some(partitions) = transport.partition_count(name).map_err(unavailable)? else {
        return Ok(None);
    };
    Ok(Some(TopicInfo {
        name: name.to_string(),
        partitions,
        offsets: transport.bounds(name, partitions).map_err(unavailable)?,
    }))
}

/// Every topic.
pub fn topics(transport: &dyn Transport) -> Result<Vec<TopicInfo>, ApiError> {
    let names = transport.topic_names().map_err(unavailable)?;
    let mut all = Vec::with_capacity(names.len());
    for name in &names {
        all.extend(topic(transport, name)?);
    }
    Ok(all)
}

/// Up to `max` records of a partition from `offset` on, as text.
pub fn read(
    transport: &dyn Transport,
    topic: &str,
    partition: i32,
    offset: i64,
    max: usize,
) -> Result<Vec<TopicRecord>, ApiError> {
    let records = transport
        .read(topic, partition, offset, max)
        .map_err(|e| ApiError::bad_request(format!("{e:#}")))?;
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    Ok(records
        .into_iter()
        .filter_map(|r| {
            let decoded = decode_record(&r.payload).ok()?;
            Some(TopicRecord {
                partition,
                offset: r.offset,
                timestamp: r.timestamp_ms,
                key: decoded.key().map(text),
                value: decoded.value().map(text),
                headers: decoded
                    .headers()
                    .iter()
                    .map(|h| (text(h.key()), h.value().map(text)))
                    .collect(),
            })
        })
        .collect())
}

/// Appends records to a topic, choosing partitions as Kafka's default
/// partitioner does (else in turn); answers once they are stored.
pub fn produce(
    transport: &dyn Transport,
    topic: &str,
    records: Vec<NewRecord>,
) -> Result<Vec<Produced>, ApiError> {
    let Some(partitions) = transport.partition_count(topic).map_err(unavailable)? else {
        return Err(ApiError::new(404, format!("topic {topic} does not exist")));
    };
    let mut writer = transport.sink().map_err(unavailable)?;
    let mut sent = Vec::with_capacity(records.len());
    for (i, r) in records.iter().enumerate() {
        let partition = match (r.partition, &r.key) {
            (Some(p), _) if (0..partitions).contains(&p) => p,
            (Some(p), _) => {
                return Err(ApiError::bad_request(format!(
                    "topic {topic} has no partition {p}"
                )))
            }
            (None, Some(key)) => partition_for(key.as_bytes(), partitions),
            (None, None) => i as i32 % partitions,
        };
        let headers = r
            .headers
            .iter()
            .map(|(k, v)| BorrowedHeader::new(k.as_bytes(), v.as_deref().map(str::as_bytes)))
            .collect();
        let record = BorrowedRecord::new_with_headers(
            r.key.as_deref().map(str::as_bytes),
            r.value.as_deref().map(str::as_bytes),
            headers,
        );
        writer
            .send(topic, partition, None, &record)
            .map_err(|e| ApiError::bad_request(format!("{e:#}")))?;
        sent.push(partition);
    }
    writer.flush().map_err(unavailable)?;
    transport.sync().map_err(unavailable)?;
    // Each partition's records end where the writer says, in order.
    let mut produced = vec![
        Produced {
            partition: 0,
            offset: 0
        };
        sent.len()
    ];
    for p in 0..partitions {
        let Some(end) = writer.end_offset(topic, p) else {
            continue;
        };
        let mine: Vec<usize> = (0..sent.len()).filter(|&i| sent[i] == p).collect();
        for (k, &i) in mine.iter().enumerate() {
            produced[i] = Produced {
                partition: p,
                offset: end - (mine.len() - k) as i64,
            };
        }
    }
    Ok(produced)
}
