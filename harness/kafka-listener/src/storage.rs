//! [`TopicStorage`]: Nisshi's `Storage` over the embedded topics. Records
//! keep their payload format (key, value, headers; the transforms read it
//! unchanged); the listener's own state lives in the topics' meta entries:
//! producers' sequences (written with their records), group offsets and
//! group state.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use nisshi_sans_io::{
    add_partitions_to_txn_response::{AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult},
    create_topics_request::CreatableTopic,
    delete_groups_response::DeletableGroupResult,
    delete_records_request::DeleteRecordsTopic,
    delete_records_response::DeleteRecordsTopicResult,
    describe_cluster_response::DescribeClusterBroker,
    describe_configs_response::DescribeConfigsResult,
    describe_topic_partitions_response::{
        DescribeTopicPartitionsResponsePartition, DescribeTopicPartitionsResponseTopic,
    },
    fetch_response::AbortedTransaction,
    incremental_alter_configs_request::AlterConfigsResource,
    incremental_alter_configs_response::AlterConfigsResourceResponse,
    metadata_response::{MetadataResponseBroker, MetadataResponseTopic},
    record::{deflated, header, inflated, Record as KafkaRecord},
    txn_offset_commit_response::TxnOffsetCommitResponseTopic,
    ConfigResource, ErrorCode, IsolationLevel, ListOffset, ScramMechanism, NULL_TOPIC_ID,
};
use nisshi_storage::{
    inflate_produced, BrokerRegistrationRequest, Error, GroupDetail, GroupDetailResponse,
    ListOffsetResponse, MetadataResponse, NamedGroupDetail, OffsetCommitRequest, OffsetStage,
    ProducerIdResponse, Result, ScramCredential, Storage, TopicId, Topition,
    TxnAddPartitionsRequest, TxnAddPartitionsResponse, TxnOffsetCommitRequest, UpdateError,
    Version,
};
use parking_lot::Mutex;
use record_payload::{decode_record, encode_record, BorrowedHeader, BorrowedRecord};
use serde::{Deserialize, Serialize};
use topics::Topics;
use url::Url;
use uuid::Uuid;

use crate::long_poll;
use crate::producers::{Check, Sequences};
use crate::users::Users;

const ENGINE: &str = "harness topics";

/// How often a long poll looks for records appended: at most this long
/// after they are, the fetch answers.
const LONG_POLL_LOOK: Duration = Duration::from_millis(2);

/// Records read from a partition at a time while a fetch fills.
const READ_CHUNK: usize = 256;

/// The embedded topics, as Nisshi's broker stores into them.
#[derive(Clone)]
pub struct TopicStorage {
    topics: Topics,
    cluster: String,
    node: i32,
    advertised: Url,
    /// Held from a produce's sequence check to its append, so two requests
    /// of one producer cannot both pass the check; and over the producer
    /// id counter's read and increment.
    producing: Arc<Mutex<()>>,
    /// Held from a group's read to its conditional update.
    groups: Arc<Mutex<()>>,
    users: Users,
}

impl std::fmt::Debug for TopicStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TopicStorage")
            .field("advertised", &self.advertised.as_str())
            .finish()
    }
}

#[derive(Serialize, Deserialize)]
struct StoredGroup {
    detail: GroupDetail,
    version: u64,
}

impl TopicStorage {
    pub fn new(topics: Topics, cluster: &str, node: i32, advertised: Url) -> Self {
        TopicStorage {
            cluster: cluster.to_string(),
            node,
            advertised,
            producing: Arc::default(),
            groups: Arc::default(),
            users: Users::new(topics.clone()),
            topics,
        }
    }

    pub(crate) fn cluster(&self) -> String {
        self.cluster.clone()
    }

    fn host_port(&self) -> (String, i32) {
        (
            self.advertised
                .host_str()
                .unwrap_or("localhost")
                .to_string(),
            i32::from(self.advertised.port().unwrap_or(9092)),
        )
    }

    /// A stable id per topic name: Fetch from v13 names topics by id.
    fn topic_id(name: &str) -> Uuid {
        Uuid::new_v5(
            &Uuid::NAMESPACE_URL,
            format!("harness-topic:{name}").as_bytes(),
        )
    }

    fn name_of(&self, topic: &TopicId) -> Option<String> {
        match topic {
            TopicId::Name(name) => self.topics.partition_count(name).map(|_| name.clone()),
            TopicId::Id(id) => self
                .topics
                .names()
                .into_iter()
                .find(|name| Self::topic_id(name) == *id),
        }
    }

    fn partitions(&self, topition: &Topition) -> Result<()> {
        match self.topics.partition_count(topition.topic()) {
            Some(n) if (0..n).contains(&topition.partition()) => Ok(()),
            _ => Err(Error::Api(ErrorCode::UnknownTopicOrPartition)),
        }
    }

    /// Records of a partition from `offset` on, up to `max_bytes`, but at
    /// least one even past it, so a consumer gets past a large one (KIP-74).
    fn read(
        &self,
        topition: &Topition,
        offset: i64,
        max_bytes: u32,
    ) -> Result<Vec<topics::Record>> {
        let mut records = Vec::new();
        let mut bytes = 0usize;
        let mut next = offset;
        'fill: while records.is_empty() || bytes < max_bytes as usize {
            let chunk = self
                .topics
                .read(topition.topic(), topition.partition(), next, READ_CHUNK)
                .map_err(failed)?;
            let Some(last) = chunk.last() else { break };
            next = last.offset + 1;
            for r in chunk {
                if !records.is_empty() && bytes + r.payload.len() > max_bytes as usize {
                    break 'fill;
                }
                bytes += r.payload.len();
                records.push(r);
            }
        }
        Ok(records)
    }

    /// Returns once a partition of `wanted` has a record at its offset,
    /// or at `until`, looking every [`LONG_POLL_LOOK`]. Looks rather than
    /// waits on the topics' condition variable: a future dropped with the
    /// listener leaves no thread behind holding the data folder.
    async fn until_any_has_records(&self, wanted: &[long_poll::Wanted], until: Instant) {
        let wanted: Vec<(String, i32, i64)> = wanted
            .iter()
            .filter_map(|(topic, p, offset)| Some((self.name_of(topic)?, *p, *offset)))
            .collect();
        loop {
            let has_records = wanted.iter().any(|(topic, p, offset)| {
                self.topics
                    .bounds(topic, *p)
                    .is_ok_and(|(_, end)| end > *offset)
            });
            let now = Instant::now();
            if has_records || now >= until {
                tracing::debug!(has_records, ?wanted, "long poll ends");
                return;
            }
            tokio::time::sleep(LONG_POLL_LOOK.min(until - now)).await;
        }
    }

    /// Forgets producers idle for longer than Kafka's
    /// `producer.id.expiration.ms`. Run as a new producer comes, under the
    /// producing lock: producers come far less often than batches.
    fn expire_producers(&self) {
        let now = now_ms();
        for (key, value) in self.topics.meta_prefixed(PRODUCER_PREFIX) {
            if serde_json::from_slice::<Sequences>(&value).is_ok_and(|s| s.expired(now)) {
                self.topics.remove_meta(&key);
            }
        }
    }

    fn get_json<T: for<'de> Deserialize<'de>>(&self, key: &str) -> Result<Option<T>> {
        self.topics
            .meta(key)
            .map(|v| serde_json::from_slice(&v))
            .transpose()
            .map_err(Into::into)
    }

    fn set_json<T: Serialize>(&self, key: &str, value: &T) -> Result<()> {
        self.topics.set_meta(key, serde_json::to_vec(value)?);
        Ok(())
    }

    /// Waits, off the async threads, until every change so far is written.
    async fn flushed(&self) -> Result<()> {
        let topics = self.topics.clone();
        tokio::task::spawn_blocking(move || topics.flush())
            .await?
            .map_err(failed)
    }

    fn group_offsets(&self, group: &str) -> Result<BTreeMap<String, BTreeMap<i32, i64>>> {
        Ok(self.get_json(&offsets_key(group))?.unwrap_or_default())
    }

    fn group(&self, group: &str) -> Result<Option<StoredGroup>> {
        self.get_json(&group_key(group))
    }

    fn group_names(&self) -> Vec<String> {
        self.topics
            .meta_prefixed(GROUP_PREFIX)
            .into_iter()
            .map(|(k, _)| k[GROUP_PREFIX.len()..].to_string())
            .collect()
    }

    fn topic_response(&self, name: &str) -> Result<MetadataResponseTopic> {
        let Some(partitions) = self.topics.partition_count(name) else {
            // Every field the version has must be there, or the client
            // reads past the end of the response.
            return Ok(MetadataResponseTopic::default()
                .error_code(ErrorCode::UnknownTopicOrPartition.into())
                .name(Some(name.to_string()))
                .topic_id(Some(NULL_TOPIC_ID))
                .is_internal(Some(false))
                .partitions(Some(vec![]))
                .topic_authorized_operations(Some(i32::MIN)));
        };
        let partitions = nisshi_storage::assign_replicas(
            &[self.node],
            partitions,
            1,
            ErrorCode::None.into(),
            -1,
        )?;
        Ok(MetadataResponseTopic::default()
            .error_code(ErrorCode::None.into())
            .name(Some(name.to_string()))
            .topic_id(Some(Self::topic_id(name).into_bytes()))
            .is_internal(Some(false))
            .partitions(Some(partitions))
            .topic_authorized_operations(Some(i32::MIN)))
    }
}

const GROUP_PREFIX: &str = "kafka/group/";

fn group_key(group: &str) -> String {
    format!("{GROUP_PREFIX}{group}")
}

fn offsets_key(group: &str) -> String {
    format!("kafka/offsets/{group}")
}

const PRODUCER_PREFIX: &str = "kafka/producer/";

fn producer_key(id: i64, topition: &Topition) -> String {
    format!(
        "{PRODUCER_PREFIX}{id}/{}/{}",
        topition.topic(),
        topition.partition()
    )
}

const NEXT_PRODUCER: &str = "kafka/next-producer-id";

fn epoch_ms(at: SystemTime) -> i64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn now_ms() -> i64 {
    epoch_ms(SystemTime::now())
}

fn failed(e: anyhow::Error) -> Error {
    Error::Message(format!("{e:#}"))
}

fn refused() -> Error {
    Error::Api(ErrorCode::PolicyViolation)
}

/// A produced batch's records as the topics keep them.
fn payloads(batch: &inflated::Batch) -> Vec<(i64, Vec<u8>)> {
    let mut out = Vec::new();
    batch
        .records
        .iter()
        .map(|r| {
            let headers: Vec<BorrowedHeader<'_>> = r
                .headers
                .iter()
                .map(|h| {
                    BorrowedHeader::new(h.key.as_deref().unwrap_or_default(), h.value.as_deref())
                })
                .collect();
            encode_record(
                &BorrowedRecord::new_with_headers(r.key.as_deref(), r.value.as_deref(), headers),
                &mut out,
            );
            (batch.base_timestamp + r.timestamp_delta, out.clone())
        })
        .collect()
}

/// Stored records, consecutive from the first, as one Kafka batch.
fn batch(records: &[topics::Record]) -> Result<deflated::Batch> {
    let first = &records[0];
    let mut builder = inflated::Batch::builder()
        .base_offset(first.offset)
        .base_timestamp(first.timestamp_ms)
        .last_offset_delta((records.len() - 1) as i32)
        .producer_epoch(-1)
        .base_sequence(-1);
    for r in records {
        let decoded = decode_record(&r.payload).map_err(|e| Error::Message(e.to_string()))?;
        let mut record = KafkaRecord::builder()
            .offset_delta((r.offset - first.offset) as i32)
            .timestamp_delta(r.timestamp_ms - first.timestamp_ms)
            .key(decoded.key().map(Bytes::copy_from_slice))
            .value(decoded.value().map(Bytes::copy_from_slice));
        for h in decoded.headers() {
            let mut kept = header::Header::builder().key(Bytes::copy_from_slice(h.key()));
            if let Some(v) = h.value() {
                kept = kept.value(Bytes::copy_from_slice(v));
            }
            record = record.header(kept);
        }
        builder = builder.record(record);
    }
    deflated::Batch::try_from(builder.max_timestamp_of_records().build()?).map_err(Into::into)
}

#[async_trait]
impl Storage for TopicStorage {
    async fn register_broker(&self, _: BrokerRegistrationRequest) -> Result<()> {
        Ok(())
    }

    async fn create_topic(&self, topic: CreatableTopic, validate_only: bool) -> Result<Uuid> {
        if self.topics.partition_count(&topic.name).is_some() {
            return Err(Error::Api(ErrorCode::TopicAlreadyExists));
        }
        // -1 asks for the broker's default: Redpanda's is 1.
        let partitions = if topic.num_partitions == -1 {
            1
        } else {
            topic.num_partitions
        };
        if partitions < 1 {
            return Err(Error::Api(ErrorCode::InvalidPartitions));
        }
        if !validate_only {
            self.topics
                .ensure_topic(&topic.name, partitions)
                .map_err(failed)?;
            self.flushed().await?;
        }
        Ok(Self::topic_id(&topic.name))
    }

    async fn incremental_alter_resource(
        &self,
        _: AlterConfigsResource,
    ) -> Result<AlterConfigsResourceResponse> {
        Err(refused())
    }

    async fn delete_records(
        &self,
        _: &[DeleteRecordsTopic],
    ) -> Result<Vec<DeleteRecordsTopicResult>> {
        Err(refused())
    }

    async fn delete_topic(&self, _: &TopicId) -> Result<ErrorCode> {
        Ok(ErrorCode::PolicyViolation)
    }

    async fn brokers(&self) -> Result<Vec<DescribeClusterBroker>> {
        let (host, port) = self.host_port();
        Ok(vec![DescribeClusterBroker::default()
            .broker_id(self.node)
            .host(host)
            .port(port)
            .rack(None)])
    }

    async fn produce(
        &self,
        transaction_id: Option<&str>,
        topition: &Topition,
        deflated: deflated::Batch,
    ) -> Result<i64> {
        self.partitions(topition)?;
        if transaction_id.is_some() || deflated.is_transactional() || deflated.is_control() {
            return Err(Error::Api(ErrorCode::TransactionalIdAuthorizationFailed));
        }
        let idempotent = deflated.is_idempotent();
        let (producer, epoch, first) = (
            deflated.producer_id,
            deflated.producer_epoch,
            deflated.base_sequence,
        );
        let inflated = nisshi_storage::offload(move || inflate_produced(deflated)).await?;
        let records: Vec<topics::Append> = payloads(&inflated)
            .into_iter()
            .map(|(ms, payload)| (topition.partition(), ms, payload))
            .collect();
        if records.is_empty() {
            return Err(Error::Api(ErrorCode::InvalidRecord));
        }
        let count = records.len() as i32;
        let this = self.clone();
        let topition = topition.clone();
        let offset = tokio::task::spawn_blocking(move || -> Result<i64> {
            let topic = topition.topic();
            if !idempotent {
                let offsets = this.topics.append_all(topic, records).map_err(failed)?;
                return Ok(offsets[0]);
            }
            let _held = this.producing.lock();
            let key = producer_key(producer, &topition);
            let state: Option<Sequences> = this.get_json(&key)?;
            match Sequences::check(state.as_ref(), epoch, first, count).map_err(Error::Api)? {
                Check::Duplicate(offset) => Ok(offset),
                Check::Append => {
                    let offsets = this
                        .topics
                        .append_all_with_meta(topic, records, &key, |offset| {
                            let next =
                                Sequences::appended(state, epoch, first, count, offset, now_ms());
                            serde_json::to_vec(&next).expect("plain data serializes")
                        })
                        .map_err(failed)?;
                    Ok(offsets[0])
                }
            }
        })
        .await??;
        // Acknowledged only once on disk: a kill loses nothing acknowledged.
        self.flushed().await?;
        Ok(offset)
    }

    async fn fetch(
        &self,
        topition: &Topition,
        offset: i64,
        _min_bytes: u32,
        max_bytes: u32,
        _isolation: IsolationLevel,
        budget: Duration,
    ) -> Result<Vec<deflated::Batch>> {
        self.partitions(topition)?;
        if let Some((wanted, until)) = long_poll::first_look() {
            // Within the read budget too, or Nisshi abandons the read.
            self.until_any_has_records(&wanted, until.min(Instant::now() + budget))
                .await;
        }
        let records = self.read(topition, offset, max_bytes)?;
        if records.is_empty() {
            Ok(vec![])
        } else {
            Ok(vec![batch(&records)?])
        }
    }

    async fn offset_stage(&self, topition: &Topition) -> Result<OffsetStage> {
        let (low, end) = self
            .topics
            .bounds(topition.topic(), topition.partition())
            .map_err(|_| Error::Api(ErrorCode::UnknownTopicOrPartition))?;
        Ok(OffsetStage {
            last_stable: end,
            high_watermark: end,
            log_start: low,
        })
    }

    async fn list_offsets(
        &self,
        _isolation: IsolationLevel,
        offsets: &[(Topition, ListOffset)],
    ) -> Result<Vec<(Topition, ListOffsetResponse)>> {
        offsets
            .iter()
            .map(|(topition, wanted)| {
                let answer = match self.topics.bounds(topition.topic(), topition.partition()) {
                    Err(_) => ListOffsetResponse {
                        error_code: ErrorCode::UnknownTopicOrPartition,
                        timestamp: None,
                        offset: None,
                    },
                    Ok((low, end)) => {
                        let offset = match wanted {
                            ListOffset::Earliest => Some(low),
                            ListOffset::Latest => Some(end),
                            ListOffset::Timestamp(at) => self
                                .topics
                                .offset_for_time(
                                    topition.topic(),
                                    topition.partition(),
                                    epoch_ms(*at),
                                )
                                .map_err(failed)?,
                        };
                        ListOffsetResponse {
                            error_code: ErrorCode::None,
                            timestamp: None,
                            offset,
                        }
                    }
                };
                Ok((topition.clone(), answer))
            })
            .collect()
    }

    async fn offset_commit(
        &self,
        group_id: &str,
        _retention: Option<Duration>,
        offsets: &[(Topition, OffsetCommitRequest)],
    ) -> Result<Vec<(Topition, ErrorCode)>> {
        let mut answers = Vec::with_capacity(offsets.len());
        {
            let _held = self.groups.lock();
            let mut committed = self.group_offsets(group_id)?;
            for (topition, commit) in offsets {
                let code = if self.partitions(topition).is_ok() {
                    committed
                        .entry(topition.topic().to_string())
                        .or_default()
                        .insert(topition.partition(), commit.offset);
                    ErrorCode::None
                } else {
                    ErrorCode::UnknownTopicOrPartition
                };
                answers.push((topition.clone(), code));
            }
            self.set_json(&offsets_key(group_id), &committed)?;
        }
        self.flushed().await?;
        Ok(answers)
    }

    async fn offset_fetch(
        &self,
        group_id: Option<&str>,
        topics: &[Topition],
        _require_stable: Option<bool>,
    ) -> Result<BTreeMap<Topition, i64>> {
        let committed = match group_id {
            Some(group) => self.group_offsets(group)?,
            None => BTreeMap::new(),
        };
        Ok(topics
            .iter()
            .map(|t| {
                let offset = committed
                    .get(t.topic())
                    .and_then(|p| p.get(&t.partition()))
                    .copied()
                    .unwrap_or(-1);
                (t.clone(), offset)
            })
            .collect())
    }

    async fn committed_offset_topitions(&self, group_id: &str) -> Result<BTreeMap<Topition, i64>> {
        Ok(self
            .group_offsets(group_id)?
            .into_iter()
            .flat_map(|(topic, partitions)| {
                partitions
                    .into_iter()
                    .map(move |(p, o)| (Topition::new(topic.clone(), p), o))
            })
            .collect())
    }

    async fn metadata(&self, topics: Option<&[TopicId]>) -> Result<MetadataResponse> {
        let names: Vec<String> = match topics {
            None => self.topics.names(),
            Some(wanted) => wanted
                .iter()
                .map(|t| match t {
                    TopicId::Name(name) => name.clone(),
                    TopicId::Id(_) => self.name_of(t).unwrap_or_default(),
                })
                .collect(),
        };
        let (host, port) = self.host_port();
        Ok(MetadataResponse {
            cluster: Some(self.cluster.clone()),
            controller: Some(self.node),
            brokers: vec![MetadataResponseBroker::default()
                .node_id(self.node)
                .host(host)
                .port(port)
                .rack(None)],
            topics: names
                .iter()
                .map(|name| self.topic_response(name))
                .collect::<Result<_>>()?,
        })
    }

    /// Users are managed through the admin API (`harness user`, `rpk
    /// security user`), which has its own access rules: over the Kafka
    /// protocol, any authenticated client could otherwise make more.
    async fn upsert_user_scram_credential(
        &self,
        _: &str,
        _: ScramMechanism,
        _: ScramCredential,
    ) -> Result<()> {
        Err(Error::UserCredentialsUnsupported {
            engine: ENGINE.into(),
        })
    }

    async fn delete_user_scram_credential(&self, _: &str, _: ScramMechanism) -> Result<()> {
        Err(Error::UserCredentialsUnsupported {
            engine: ENGINE.into(),
        })
    }

    async fn user_scram_credential(
        &self,
        user: &str,
        mechanism: ScramMechanism,
    ) -> Result<Option<ScramCredential>> {
        Ok(self.users.credential(user, mechanism))
    }

    async fn describe_config(
        &self,
        name: &str,
        resource: ConfigResource,
        _keys: Option<&[String]>,
    ) -> Result<DescribeConfigsResult> {
        let code = if self.topics.partition_count(name).is_some() {
            ErrorCode::None
        } else {
            ErrorCode::UnknownTopicOrPartition
        };
        Ok(DescribeConfigsResult::default()
            .configs(Some(vec![]))
            .resource_name(name.to_string())
            .resource_type(resource.into())
            .error_code(code.into())
            .error_message(None))
    }

    async fn list_groups(&self) -> Result<Vec<NamedGroupDetail>> {
        self.group_names()
            .into_iter()
            .map(|name| {
                let detail = self.group(&name)?.map(|g| g.detail).unwrap_or_default();
                Ok(NamedGroupDetail::found(name, detail))
            })
            .collect()
    }

    async fn delete_groups(
        &self,
        group_ids: Option<&[String]>,
    ) -> Result<Vec<DeletableGroupResult>> {
        Ok(group_ids
            .unwrap_or_default()
            .iter()
            .map(|id| {
                DeletableGroupResult::default()
                    .group_id(id.clone())
                    .error_code(ErrorCode::PolicyViolation.into())
            })
            .collect())
    }

    async fn describe_groups(
        &self,
        group_ids: Option<&[String]>,
        _include_authorized_operations: bool,
    ) -> Result<Vec<NamedGroupDetail>> {
        group_ids
            .unwrap_or_default()
            .iter()
            .map(|name| {
                Ok(match self.group(name)? {
                    Some(g) => NamedGroupDetail::found(name.clone(), g.detail),
                    None => NamedGroupDetail {
                        name: name.clone(),
                        response: GroupDetailResponse::ErrorCode(ErrorCode::GroupIdNotFound),
                    },
                })
            })
            .collect()
    }

    async fn describe_topic_partitions(
        &self,
        topics: Option<&[TopicId]>,
        _partition_limit: i32,
        _cursor: Option<Topition>,
    ) -> Result<Vec<DescribeTopicPartitionsResponseTopic>> {
        let names: Vec<String> = match topics {
            None => self.topics.names(),
            Some(wanted) => wanted.iter().filter_map(|t| self.name_of(t)).collect(),
        };
        Ok(names
            .into_iter()
            .map(|name| {
                let partitions = self.topics.partition_count(&name).unwrap_or(0);
                DescribeTopicPartitionsResponseTopic::default()
                    .error_code(ErrorCode::None.into())
                    .topic_id(Self::topic_id(&name).into_bytes())
                    .name(Some(name))
                    .partitions(Some(
                        (0..partitions)
                            .map(|index| {
                                DescribeTopicPartitionsResponsePartition::default()
                                    .leader_id(self.node)
                                    .partition_index(index)
                                    .replica_nodes(Some(vec![self.node]))
                                    .isr_nodes(Some(vec![self.node]))
                            })
                            .collect(),
                    ))
            })
            .collect())
    }

    async fn group_with_version(&self, group_id: &str) -> Result<Option<(GroupDetail, Version)>> {
        Ok(self
            .group(group_id)?
            .map(|g| (g.detail, version(g.version))))
    }

    async fn update_group(
        &self,
        group_id: &str,
        detail: GroupDetail,
        expected: Option<Version>,
    ) -> Result<Version, UpdateError<GroupDetail>> {
        let _held = self.groups.lock();
        let stored = self.group(group_id).map_err(UpdateError::Error)?;
        let current = stored.as_ref().map(|g| version(g.version));
        if current != expected {
            let stored = stored.unwrap_or(StoredGroup {
                detail: GroupDetail::default(),
                version: 0,
            });
            return Err(UpdateError::Outdated {
                current: Box::new(stored.detail),
                version: version(stored.version),
            });
        }
        let next = stored.map_or(1, |g| g.version + 1);
        self.set_json(
            &group_key(group_id),
            &StoredGroup {
                detail,
                version: next,
            },
        )
        .map_err(UpdateError::Error)?;
        Ok(version(next))
    }

    async fn init_producer(
        &self,
        transaction_id: Option<&str>,
        _transaction_timeout_ms: i32,
        producer_id: Option<i64>,
        producer_epoch: Option<i16>,
    ) -> Result<ProducerIdResponse> {
        if transaction_id.is_some() {
            return Ok(ProducerIdResponse {
                error: ErrorCode::TransactionalIdAuthorizationFailed,
                ..ProducerIdResponse::default()
            });
        }
        // A producer that asks to bump its epoch (KIP-360) keeps its id.
        let (id, epoch) = match (producer_id, producer_epoch) {
            (Some(id), Some(epoch)) if id >= 0 && (0..i16::MAX).contains(&epoch) => (id, epoch + 1),
            _ => {
                let _held = self.producing.lock();
                self.expire_producers();
                let id: i64 = self.get_json(NEXT_PRODUCER)?.unwrap_or(0);
                self.set_json(NEXT_PRODUCER, &(id + 1))?;
                (id, 0)
            }
        };
        self.flushed().await?;
        Ok(ProducerIdResponse {
            error: ErrorCode::None,
            id,
            epoch,
        })
    }

    async fn txn_add_offsets(&self, _: &str, _: i64, _: i16, _: &str) -> Result<ErrorCode> {
        Ok(ErrorCode::TransactionalIdAuthorizationFailed)
    }

    async fn txn_add_partitions(
        &self,
        partitions: TxnAddPartitionsRequest,
    ) -> Result<TxnAddPartitionsResponse> {
        // Unreachable in practice: InitProducerId refuses transactional ids.
        Ok(match partitions {
            TxnAddPartitionsRequest::VersionZeroToThree { topics, .. } => {
                TxnAddPartitionsResponse::VersionZeroToThree(
                    topics
                        .iter()
                        .map(|t| {
                            AddPartitionsToTxnTopicResult::default()
                                .name(t.name.clone())
                                .results_by_partition(Some(vec![]))
                        })
                        .collect(),
                )
            }
            TxnAddPartitionsRequest::VersionFourPlus { transactions } => {
                TxnAddPartitionsResponse::VersionFourPlus(
                    transactions
                        .iter()
                        .map(|_| AddPartitionsToTxnResult::default())
                        .collect(),
                )
            }
        })
    }

    async fn txn_offset_commit(
        &self,
        offsets: TxnOffsetCommitRequest,
    ) -> Result<Vec<TxnOffsetCommitResponseTopic>> {
        Ok(offsets
            .topics
            .iter()
            .map(|t| TxnOffsetCommitResponseTopic::default().name(t.name.clone()))
            .collect())
    }

    async fn txn_end(&self, _: &str, _: i64, _: i16, _: bool) -> Result<ErrorCode> {
        Ok(ErrorCode::TransactionalIdAuthorizationFailed)
    }

    async fn maintain(&self, _: SystemTime) -> Result<()> {
        Ok(())
    }

    async fn maintain_transactions(&self, _: SystemTime) -> Result<()> {
        Ok(())
    }

    async fn aborted_transactions(
        &self,
        _: &Topition,
        _: i64,
        _: i64,
    ) -> Result<Vec<AbortedTransaction>> {
        Ok(vec![])
    }

    async fn cluster_id(&self) -> Result<String> {
        Ok(self.cluster.clone())
    }

    async fn node(&self) -> Result<i32> {
        Ok(self.node)
    }

    async fn advertised_listener(&self) -> Result<Url> {
        Ok(self.advertised.clone())
    }

    async fn ping(&self) -> Result<()> {
        Ok(())
    }
}

fn version(n: u64) -> Version {
    Version {
        e_tag: Some(n.to_string()),
        version: Some(n.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A new producer's InitProducerId forgets the producers idle for over
    /// a day, and keeps the others.
    #[test]
    fn producers_idle_for_a_day_go_when_a_new_one_comes() {
        let topics = Topics::in_memory(1 << 20);
        let storage = TopicStorage::new(
            topics.clone(),
            "test",
            0,
            "tcp://127.0.0.1:9092".parse().unwrap(),
        );
        let at = |id: i64| producer_key(id, &Topition::new("logs", 0));
        let idle =
            Sequences::appended(None, 0, 0, 1, 0, now_ms() - crate::producers::EXPIRY_MS - 1);
        let recent = Sequences::appended(None, 0, 0, 1, 1, now_ms() - 60_000);
        storage.set_json(&at(1), &idle).unwrap();
        storage.set_json(&at(2), &recent).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let given = runtime
            .block_on(storage.init_producer(None, 0, None, None))
            .unwrap();
        assert_eq!(
            (given.error, given.id, given.epoch),
            (ErrorCode::None, 0, 0)
        );
        assert_eq!(topics.meta(&at(1)), None);
        assert!(topics.meta(&at(2)).is_some());
    }
}
