//! The admin API's control of a host's transforms: deploy, list, delete,
//! pause and resume, and the topic routes.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use admin::{
    check_environment, check_name, check_topics, ApiError, Control, DeployRequest, Deployed,
    EnvVar, MetaPatch, NewRecord, Produced, TopicInfo, TopicRecord, TransformMetadata,
};
use topic_io::{StartOffset, Transport};
use transform_host::{DeployError, Host, Logger, Transform, TransformSpec};

use super::{Hosting, STOP_WAIT};
use crate::bridge::{Command, Deployment};
use crate::engine::Engine;
use crate::topic_access;

/// A deploy refusal as Redpanda's admin API words it, with the reason.
pub(super) fn refusal(e: DeployError) -> ApiError {
    match e.refusal {
        Some(refusal) => ApiError::bad_request(format!("{}: {e}", refusal.admin_message())),
        None => ApiError::bad_request(e.to_string()),
    }
}

/// Starts a VM; if it fails, the error carries the end of its stderr.
pub(super) fn start_telling_why(
    host: &Host,
    transform: &Transform,
    spec: TransformSpec,
    partitions: Vec<i32>,
    echo: &Logger,
) -> Result<Engine, ApiError> {
    Engine::start(host, transform, spec, partitions, echo.clone())
        .map_err(|f| ApiError::bad_request(format!("the transform failed at start: {f}")))
}

pub(super) fn env_pairs(env: &[EnvVar]) -> Vec<(String, String)> {
    env.iter()
        .map(|v| (v.key.clone(), v.value.clone()))
        .collect()
}

/// The partition counts of a transform's outputs (missing ones are created
/// with the input's count, as the bridge creates them).
pub(super) fn output_partitions(
    transport: &dyn Transport,
    spec: &TransformSpec,
) -> Result<Vec<i32>, ApiError> {
    let inputs = transport
        .partition_count(&spec.input_topic)
        .map_err(|e| ApiError::new(503, format!("{e:#}")))?
        .ok_or_else(|| {
            ApiError::bad_request(format!("Topic does not exists: {}", spec.input_topic))
        })?;
    spec.output_topics
        .iter()
        .map(|t| {
            transport
                .ensure_topic(t, inputs)
                .map_err(|e| ApiError::new(503, format!("{e:#}")))
        })
        .collect()
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Control for Hosting {
    fn deploy(&self, request: DeployRequest, wasm: Vec<u8>) -> Result<Deployed, ApiError> {
        check_name(&request.name)?;
        check_environment(&request.environment)?;
        let name = request.name.clone();
        if self.find(&name, |_| ()).is_some() {
            return self.redeploy(&name, request, wasm);
        }
        check_topics(&request.input_topic, &request.output_topics)?;
        let most = self.options.memory_reservation / self.host.limits().memory_bytes;
        if self.transforms.lock().len() >= most {
            // Redpanda's answer (`plugin_frontend.cc`, `validate_mutation`;
            // `admin/server.cc`).
            return Err(ApiError::bad_request(format!(
                "The limit of transforms has been reached ({most}), more memory must be configured \
                 via data_transforms_per_core_memory_reservation (the harness's \
                 --memory-reservation, {} bytes for a --memory-limit of {} bytes)",
                self.options.memory_reservation,
                self.host.limits().memory_bytes
            )));
        }
        if self.cycle(&request.input_topic, &request.output_topics) {
            return Err(ApiError::bad_request(
                "Invalid create transform configuration: its outputs would feed its input through other transforms",
            ));
        }
        let spec = TransformSpec {
            name: name.clone(),
            input_topic: request.input_topic.clone(),
            output_topics: request.output_topics.clone(),
            env: env_pairs(&request.environment),
        };
        output_partitions(self.transport.as_ref(), &spec)?;
        // As Redpanda: a new transform is only validated here; one that
        // fails at start is accepted, errored and retried (a replacement
        // must start, or the running version stays: see `redeploy`).
        let transform = self.host.load(&wasm).map_err(refusal)?;
        let version = transform.version.clone();
        // Without an offset, Redpanda starts a new transform at the records
        // stamped from the deploy on.
        let start = request
            .offset
            .map_or(StartOffset::Timestamp(now_ms()), |o| o.start());
        let deployment = Deployment {
            id: now_ms() as u64,
            start,
            fresh: true,
        };
        self.add(transform, Arc::new(wasm), spec, deployment, false);
        Ok(Deployed { name, version })
    }

    fn list(&self) -> Vec<TransformMetadata> {
        let transforms = self.transforms.lock();
        transforms
            .iter()
            .map(|h| h.state.lock().metadata(&h.spec()))
            .collect()
    }

    fn delete(&self, name: &str) -> Result<(), ApiError> {
        let hosted = {
            let mut transforms = self.transforms.lock();
            let Some(i) = transforms.iter().position(|h| h.spec().name == name) else {
                // As Redpanda: deleting what is not there succeeds (and a
                // saved transform that could not run is forgotten).
                drop(transforms);
                self.saved(name);
                return Ok(());
            };
            transforms.remove(i)
        };
        hosted.current.lock().deleted = true;
        hosted.nudge();
        self.saved(name);
        if let Some(thread) = hosted.thread {
            let deadline = Instant::now() + STOP_WAIT;
            while !thread.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Ok(())
    }

    fn patch(&self, name: &str, patch: MetaPatch) -> Result<(), ApiError> {
        let Some((current, commands)) =
            self.find(name, |h| (h.current.clone(), h.commands.clone()))
        else {
            return Err(ApiError::bad_request("Transform does not exist"));
        };
        if let Some(env) = &patch.env {
            check_environment(env)?;
            // A new environment restarts the transform, as in Redpanda; one
            // it cannot start with is refused and the old one kept.
            let (transform, spec) = {
                let current = current.lock();
                let spec = TransformSpec {
                    env: env_pairs(env),
                    ..current.spec.clone()
                };
                (current.transform.clone(), spec)
            };
            let partitions = output_partitions(self.transport.as_ref(), &spec)?;
            start_telling_why(&self.host, &transform, spec.clone(), partitions, &self.echo)?;
            current.lock().spec = spec;
        }
        if let Some(paused) = patch.is_paused {
            current.lock().paused = paused;
        }
        let _ = commands.try_send(Command::Stop);
        self.saved(name);
        Ok(())
    }

    fn topic(&self, name: &str) -> Result<Option<TopicInfo>, ApiError> {
        topic_access::topic(self.transport.as_ref(), name)
    }

    fn topics(&self) -> Result<Vec<TopicInfo>, ApiError> {
        topic_access::topics(self.transport.as_ref())
    }

    fn produce(&self, topic: &str, records: Vec<NewRecord>) -> Result<Vec<Produced>, ApiError> {
        topic_access::produce(self.transport.as_ref(), topic, records)
    }

    fn read(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        max: usize,
    ) -> Result<Vec<TopicRecord>, ApiError> {
        topic_access::read(self.transport.as_ref(), topic, partition, offset, max)
    }
}
