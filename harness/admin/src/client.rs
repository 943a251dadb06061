//! A client of the admin API, for the harness's own commands: the same
//! requests rpk sends (`rpadmin/api_transform.go`).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use http_access::client::{agent, path_segment, split_url};

use crate::api::{
    ApiError, DeployRequest, Deployed, MetaPatch, NewRecord, NewUser, Produced, TopicInfo,
    TopicRecord, TransformMetadata,
};

pub struct Client {
    admin: String,
    base: String,
    /// The `Authorization` header: the token, or the URL's `USER:PASSWORD`.
    authorization: Option<String>,
    agent: ureq::Agent,
}

/// What a client needs beyond the address of a secured endpoint.
#[derive(Debug, Default, Clone)]
pub struct ClientOptions {
    /// Sent as a bearer token.
    pub token: Option<String>,
    /// The CA (PEM) an https endpoint's certificate is checked against,
    /// instead of the system's.
    pub ca: Option<PathBuf>,
}

impl Client {
    /// `admin` is `HOST:PORT`, or `http[s]://[USER:PASSWORD@]HOST:PORT`.
    pub fn new(admin: &str) -> Result<Client> {
        Client::with(admin, &ClientOptions::default())
    }

    pub fn with(admin: &str, options: &ClientOptions) -> Result<Client> {
        let url = if admin.contains("://") {
            admin.to_string()
        } else {
            format!("http://{admin}")
        };
        let (base, basic) =
            split_url(&url, "an admin endpoint").map_err(|e| anyhow!("--admin {e}"))?;
        let agent = agent(Duration::from_secs(120), options.ca.as_deref()).context("--admin-ca")?;
        Ok(Client {
            admin: base.trim_start_matches("http://").to_string(),
            base,
            authorization: options
                .token
                .as_ref()
                .map(|token| format!("Bearer {token}"))
                .or(basic),
            agent,
        })
    }

    fn send(&self, method: &str, path: &str, body: Vec<u8>) -> Result<String> {
        let mut request = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("content-type", "application/json");
        if let Some(authorization) = &self.authorization {
            request = request.header("authorization", authorization);
        }
        let mut response = self.agent.run(request.body(body)?).map_err(|e| {
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
        let mut error = serde_json::from_str::<ApiError>(&body)
            .unwrap_or_else(|_| ApiError::new(status, body.trim().to_string()));
        if status == 401 {
            error.message = format!(
                "{}: {} — give its token with --auth-token-file FILE or {}, or USER:PASSWORD@ in --admin",
                self.admin,
                error.message,
                http_access::TOKEN_ENV
            );
        }
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
            &format!("/v1/transform/{}", path_segment(name)),
            Vec::new(),
        )?;
        Ok(())
    }

    pub fn patch(&self, name: &str, patch: &MetaPatch) -> Result<()> {
        let path = format!("/v1/transform/{}/meta", path_segment(name));
        self.send("PUT", &path, serde_json::to_vec(patch)?)?;
        Ok(())
    }
}

impl Client {
    /// A topic of the host, `None` if it has none of that name.
    pub fn topic(&self, name: &str) -> Result<Option<TopicInfo>> {
        match self.send(
            "GET",
            &format!("/v1/harness/topics/{}", path_segment(name)),
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
        let path = format!("/v1/harness/topics/{}/records", path_segment(topic));
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
            path_segment(topic)
        );
        Ok(serde_json::from_str(&self.send(
            "GET",
            &path,
            Vec::new(),
        )?)?)
    }
}

/// The Kafka listener's SASL users, through the routes `rpk security user`
/// calls (`rpadmin/api_user.go`).
impl Client {
    pub fn users(&self) -> Result<Vec<String>> {
        Ok(serde_json::from_str(&self.send(
            "GET",
            "/v1/security/users",
            Vec::new(),
        )?)?)
    }

    pub fn create_user(&self, user: &NewUser) -> Result<()> {
        self.send("POST", "/v1/security/users", serde_json::to_vec(user)?)?;
        Ok(())
    }

    pub fn update_user(&self, name: &str, user: &NewUser) -> Result<()> {
        let path = format!("/v1/security/users/{}", path_segment(name));
        self.send("PUT", &path, serde_json::to_vec(user)?)?;
        Ok(())
    }

    pub fn delete_user(&self, name: &str) -> Result<()> {
        let path = format!("/v1/security/users/{}", path_segment(name));
        self.send("DELETE", &path, Vec::new())?;
        Ok(())
    }
}
