//! A client of the admin API, for the harness's own commands: the same
//! requests rpk sends (`rpadmin/api_transform.go`).

use std::time::Duration;

use anyhow::{anyhow, Result};

use crate::api::{
    ApiError, DeployRequest, Deployed, MetaPatch, NewRecord, Produced, TopicInfo, TopicRecord,
    TransformMetadata,
};

pub struct Client {
    admin: String,
    base: String,
    agent: ureq::Agent,
}

impl Client {
    /// `admin` is `HOST:PORT`, or a URL.
    pub fn new(admin: &str) -> Client {
        let base = if admin.contains("://") {
            admin.trim_end_matches('/').to_string()
        } else {
            format!("http://{admin}")
        };
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(120)))
            .build()
            .into();
        Client {
            admin: admin.to_string(),
            base,
            agent,
        }
    }

    fn send(&self, method: &str, path: &str, body: Vec<u8>) -> Result<String> {
        let request = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(body)?;
        let mut response = self.agent.run(request).map_err(|e| {
            anyhow!(
                "no harness admin endpoint at {}: is `harness up` or `harness bridge` running (see its --admin-listen)? ({e})",
                self.admin
            )
        })?;
        let status = response.status().as_u16();
        let body = response.body_mut().read_to_string()?;
        if status == 200 {
            return Ok(body);
        }
        let error = serde_json::from_str::<ApiError>(&body)
            .unwrap_or_else(|_| ApiError::new(status, body.trim().to_string()));
        Err(error.into())
    }

    /// `POST /v1/transform/deploy`: the metadata, then the module.
    pub fn deploy(&self, request: &DeployRequest, wasm: &[u8]) -> Result<Deployed> {
        let mut body = serde_json::to_vec(request)?;
        body.extend_from_slice(wasm);
        let answer = self.send("POST", "/v1/transform/deploy", body)?;
        Ok(serde_json::from_str(&answer)?)
    }

    /// `GET /v1/transform/`, as rpk calls it.
    pub fn list(&self) -> Result<Vec<TransformMetadata>> {
        let answer = self.send("GET", "/v1/transform/", Vec::new())?;
        serde_json::from_str(&answer).map_err(|e| {
            anyhow!(
                "{} did not answer with a list of transforms: {e}",
                self.admin
            )
        })
    }

    pub fn delete(&self, name: &str) -> Result<()> {
        self.send(
            "DELETE",
            &format!("/v1/transform/{}", escape(name)),
            Vec::new(),
        )?;
        Ok(())
    }

    pub fn patch(&self, name: &str, patch: &MetaPatch) -> Result<()> {
        let path = format!("/v1/transform/{}/meta", escape(name));
        self.send("PUT", &path, serde_json::to_vec(patch)?)?;
        Ok(())
    }
}

impl Client {
    /// A topic of the host, `None` if it has none of that name.
    pub fn topic(&self, name: &str) -> Result<Option<TopicInfo>> {
        match self.send(
            "GET",
            &format!("/v1/harness/topics/{}", escape(name)),
            Vec::new(),
        ) {
            Ok(answer) => Ok(Some(serde_json::from_str(&answer)?)),
            Err(e)
                if e.downcast_ref::<ApiError>()
                    .is_some_and(|e| e.status == 404) =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Every topic of the host.
    pub fn topics(&self) -> Result<Vec<TopicInfo>> {
        Ok(serde_json::from_str(&self.send(
            "GET",
            "/v1/harness/topics",
            Vec::new(),
        )?)?)
    }

    /// Appends records to a topic; where each went, once stored.
    pub fn produce(&self, topic: &str, records: &[NewRecord]) -> Result<Vec<Produced>> {
        let path = format!("/v1/harness/topics/{}/records", escape(topic));
        Ok(serde_json::from_str(&self.send(
            "POST",
            &path,
            serde_json::to_vec(records)?,
        )?)?)
    }

    /// Up to `max` records of a partition from `offset` on.
    pub fn read(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        max: usize,
    ) -> Result<Vec<TopicRecord>> {
        let path = format!(
            "/v1/harness/topics/{}/{partition}?offset={offset}&max={max}",
            escape(topic)
        );
        Ok(serde_json::from_str(&self.send(
            "GET",
            &path,
            Vec::new(),
        )?)?)
    }
}

/// A name as one path segment (Go's `url.PathEscape`).
fn escape(name: &str) -> String {
    percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC).to_string()
}
