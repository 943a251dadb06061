//! The admin API's HTTP side: Redpanda's routes, bodies and error replies
//! (`src/v/redpanda/admin/transform.cc`; errors as seastar writes them,
//! `{"message": …, "code": …}`). Every request runs to an answer: nothing a
//! client sends can take the host down.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Buf;
use futures_util::{Stream, StreamExt};
use http_access::{Access, Listen};
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Reply};

use crate::api::{
    ApiError, DeployRequest, Deployed, MetaPatch, NewRecord, NewUser, Produced, TopicInfo,
    TopicRecord, TransformMetadata,
};

/// Redpanda's admin port, on loopback.
pub const DEFAULT_ADMIN: &str = "127.0.0.1:9644";

/// Most bytes a request may hold: the metadata and a module of at most
/// 10 MiB (`data_transforms_binary_max_size`), with room for the JSON.
pub const MAX_BODY_BYTES: usize = 11 << 20;

/// What a host does for the admin API. Calls may block (a deploy compiles
/// and starts a module); the server runs them off its async threads.
pub trait Control: Send + Sync + 'static {
    /// Deploys a new transform, or a new version of one.
    fn deploy(&self, request: DeployRequest, wasm: Vec<u8>) -> Result<Deployed, ApiError>;
    /// Every transform, in the order they were first deployed.
    fn list(&self) -> Vec<TransformMetadata>;
    /// Removes a transform; an unknown name is no error, as in Redpanda.
    fn delete(&self, name: &str) -> Result<(), ApiError>;
    /// Pauses, resumes, or replaces the environment of a transform.
    fn patch(&self, name: &str, patch: MetaPatch) -> Result<(), ApiError>;
    /// The harness's own: a topic of the host, `None` if there is none.
    fn topic(&self, name: &str) -> Result<Option<TopicInfo>, ApiError>;
    /// The harness's own: every topic of the host.
    fn topics(&self) -> Result<Vec<TopicInfo>, ApiError>;
    /// The harness's own: appends records to a topic, stored when it
    /// answers.
    fn produce(&self, topic: &str, records: Vec<NewRecord>) -> Result<Vec<Produced>, ApiError>;
    /// The harness's own: up to `max` records of a partition from `offset` on.
    fn read(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        max: usize,
    ) -> Result<Vec<TopicRecord>, ApiError>;
}

/// What a host with a Kafka listener does for `/v1/security/users`: its
/// SASL users, as `rpk security user` manages Redpanda's.
pub trait Users: Send + Sync + 'static {
    /// Every user's name.
    fn list(&self) -> Result<Vec<String>, ApiError>;
    /// Creates a user; again with the same credential, nothing changes.
    fn create(&self, name: &str, user: NewUser) -> Result<(), ApiError>;
    /// A new credential for an existing user.
    fn update(&self, name: &str, user: NewUser) -> Result<(), ApiError>;
    /// Removes a user; an unknown one is no error.
    fn delete(&self, name: &str) -> Result<(), ApiError>;
}

/// The query of the read route.
#[derive(serde::Deserialize)]
struct ReadQuery {
    #[serde(default)]
    offset: i64,
    #[serde(default = "default_max")]
    max: usize,
}

fn default_max() -> usize {
    1000
}

fn error_reply(e: &ApiError) -> Response {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    warp::reply::with_status(warp::reply::json(e), status).into_response()
}

fn answer<T: serde::Serialize>(result: Result<T, ApiError>) -> Response {
    match result {
        Ok(body) => warp::reply::json(&body).into_response(),
        Err(e) => error_reply(&e),
    }
}

/// The whole body, refused past `MAX_BODY_BYTES` whether or not its length
/// was announced (rpk streams the module, chunked).
async fn read_body<S, B>(mut body: S) -> Result<Vec<u8>, ApiError>
where
    S: Stream<Item = Result<B, warp::Error>> + Unpin,
    B: Buf,
{
    let mut bytes = Vec::new();
    while let Some(chunk) = body.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::bad_request(format!("reading the request: {e}")))?;
        if bytes.len() + chunk.remaining() > MAX_BODY_BYTES {
            return Err(ApiError::bad_request(format!(
                "the request body is over {MAX_BODY_BYTES} bytes: a module may be at most 10 MiB"
            )));
        }
        bytes.extend_from_slice(chunk.chunk());
    }
    Ok(bytes)
}

/// `POST /v1/transform/deploy`'s body: one JSON document, then the module's
/// bytes, with nothing between (`transform.cc`, `admin_server::deploy_transform`).
pub(crate) fn split_deploy_body(body: &[u8]) -> Result<(DeployRequest, Vec<u8>), ApiError> {
    let mut values = serde_json::Deserializer::from_slice(body).into_iter::<serde_json::Value>();
    let value = match values.next() {
        None => {
            return Err(ApiError::bad_request(
                "JSON parse error: the body is empty; it is the transform's JSON metadata followed by the module",
            ))
        }
        Some(Err(e)) => return Err(ApiError::bad_request(format!("JSON parse error: {e}"))),
        Some(Ok(value)) => value,
    };
    let wasm = body[values.byte_offset()..].to_vec();
    let request: DeployRequest = serde_json::from_value(value)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON request body: {e}")))?;
    if let Some(offset) = &request.offset {
        offset.check().map_err(ApiError::bad_request)?;
    }
    Ok((request, wasm))
}

/// `PUT /v1/transform/{name}/meta`'s body: one JSON object and nothing after.
pub(crate) fn parse_patch(body: &[u8]) -> Result<MetaPatch, ApiError> {
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("JSON parse error: {e}")))?;
    if !value.is_object() {
        return Err(ApiError::bad_request("Request body is not a JSON object"));
    }
    serde_json::from_value(value)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON request body: {e}")))
}

/// A user's credential: one JSON object with the strings Redpanda requires
/// (`security.cc`, `parse_scram_credential` and `create_user_handler`).
pub(crate) fn parse_user(body: &[u8], needs_name: bool) -> Result<NewUser, ApiError> {
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("JSON parse error: {e}")))?;
    let string = |field: &str| value.get(field).and_then(serde_json::Value::as_str);
    if !value.is_object() {
        return Err(ApiError::bad_request("Not an object"));
    }
    let algorithm =
        string("algorithm").ok_or_else(|| ApiError::bad_request("String algo missing"))?;
    let password =
        string("password").ok_or_else(|| ApiError::bad_request("String password missing"))?;
    let username = string("username");
    if needs_name && username.is_none() {
        return Err(ApiError::bad_request("String username missing"));
    }
    Ok(NewUser {
        username: username.map(str::to_string),
        password: password.to_string(),
        algorithm: algorithm.to_string(),
    })
}

/// A user's credential comes as JSON, as rpk sends it: a web page can post
/// plain text to a loopback endpoint without the browser asking first, but
/// not JSON, so no page a user visits can make Kafka users.
fn json_only(content_type: Option<&str>) -> Result<(), ApiError> {
    match content_type {
        Some(kind) if kind.trim_start().starts_with("application/json") => Ok(()),
        _ => Err(ApiError::new(415, "Content-Type must be application/json")),
    }
}

/// The users of `users`, or why a host has none.
fn users_of(users: Option<Arc<dyn Users>>) -> Result<Arc<dyn Users>, ApiError> {
    users.ok_or_else(|| {
        ApiError::new(
            404,
            "this host keeps no Kafka users: `harness up`'s Kafka listener (a harness built with \
             --features kafka-listener, topics embedded) has them",
        )
    })
}

/// A path segment as sent: rpk escapes names (`url.PathEscape`).
fn unescape(segment: &str) -> String {
    percent_encoding::percent_decode_str(segment)
        .decode_utf8_lossy()
        .into_owned()
}

/// Runs a call to the host off the server's async threads.
async fn blocking<T: Send + 'static>(
    call: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(call)
        .await
        .unwrap_or_else(|e| Err(ApiError::new(500, format!("the host failed: {e}"))))
}

/// Every route of the API.
pub fn routes(
    control: Arc<dyn Control>,
    users: Option<Arc<dyn Users>>,
) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone {
    let with = move || {
        let control = control.clone();
        warp::any().map(move || control.clone())
    };
    let with_users = move || {
        let users = users.clone();
        warp::any().map(move || users.clone())
    };
    let deploy = warp::path!("v1" / "transform" / "deploy")
        .and(warp::post())
        .and(warp::body::stream())
        .and(with())
        .then(|body, control: Arc<dyn Control>| async move {
            let result = async {
                let body = read_body(Box::pin(body)).await?;
                let (request, wasm) = split_deploy_body(&body)?;
                blocking(move || control.deploy(request, wasm)).await
            };
            answer(result.await)
        });
    let list = warp::path!("v1" / "transform")
        .and(warp::get())
        .and(with())
        .then(|control: Arc<dyn Control>| async move {
            answer(blocking(move || Ok(control.list())).await)
        });
    let delete = warp::path!("v1" / "transform" / String)
        .and(warp::delete())
        .and(with())
        .then(|name: String, control: Arc<dyn Control>| async move {
            let name = unescape(&name);
            answer(blocking(move || control.delete(&name).map(|()| serde_json::json!({}))).await)
        });
    let patch = warp::path!("v1" / "transform" / String / "meta")
        .and(warp::put())
        .and(warp::body::stream())
        .and(with())
        .then(|name: String, body, control: Arc<dyn Control>| async move {
            let name = unescape(&name);
            let result = async {
                let patch = parse_patch(&read_body(Box::pin(body)).await?)?;
                if patch.is_empty() {
                    // As Redpanda: nothing to change, not even a check.
                    return Ok(serde_json::json!({}));
                }
                blocking(move || control.patch(&name, patch).map(|()| serde_json::json!({}))).await
            };
            answer(result.await)
        });
    // The harness's own routes, beside Redpanda's: what a host's topics hold.
    let topic = warp::path!("v1" / "harness" / "topics" / String)
        .and(warp::get())
        .and(with())
        .then(|name: String, control: Arc<dyn Control>| async move {
            let name = unescape(&name);
            let found = blocking(move || control.topic(&name)).await;
            answer(found.and_then(|t| t.ok_or_else(|| ApiError::new(404, "no such topic"))))
        });
    let topics = warp::path!("v1" / "harness" / "topics")
        .and(warp::get())
        .and(with())
        .then(|control: Arc<dyn Control>| async move {
            answer(blocking(move || control.topics()).await)
        });
    let produce = warp::path!("v1" / "harness" / "topics" / String / "records")
        .and(warp::post())
        .and(warp::body::stream())
        .and(with())
        .then(|name: String, body, control: Arc<dyn Control>| async move {
            let result = async {
                let body = read_body(Box::pin(body)).await?;
                let records: Vec<NewRecord> = serde_json::from_slice(&body).map_err(|e| {
                    ApiError::bad_request(format!(
                        "the body is not a JSON array of records ({{partition, key, value, headers}}): {e}"
                    ))
                })?;
                let name = unescape(&name);
                blocking(move || control.produce(&name, records)).await
            };
            answer(result.await)
        });
    let read = warp::path!("v1" / "harness" / "topics" / String / i32)
        .and(warp::get())
        .and(warp::query::<ReadQuery>())
        .and(with())
        .then(
            |name: String, partition: i32, q: ReadQuery, control: Arc<dyn Control>| async move {
                let name = unescape(&name);
                let max = q.max.min(10_000);
                answer(blocking(move || control.read(&name, partition, q.offset, max)).await)
            },
        );
    // Redpanda's `security.cc`: rpk security user list, create, update, delete.
    let list_users = warp::path!("v1" / "security" / "users")
        .and(warp::get())
        .and(with_users())
        .then(|users: Option<Arc<dyn Users>>| async move {
            answer(blocking(move || users_of(users)?.list()).await)
        });
    let create_user = warp::path!("v1" / "security" / "users")
        .and(warp::post())
        .and(warp::header::optional::<String>("content-type"))
        .and(warp::body::stream())
        .and(with_users())
        .then(
            |kind: Option<String>, body, users: Option<Arc<dyn Users>>| async move {
                let result = async {
                    json_only(kind.as_deref())?;
                    let user = parse_user(&read_body(Box::pin(body)).await?, true)?;
                    let users = users_of(users)?;
                    let name = user.username.clone().unwrap_or_default();
                    blocking(move || users.create(&name, user).map(|()| serde_json::json!({})))
                        .await
                };
                answer(result.await)
            },
        );
    let update_user = warp::path!("v1" / "security" / "users" / String)
        .and(warp::put())
        .and(warp::header::optional::<String>("content-type"))
        .and(warp::body::stream())
        .and(with_users())
        .then(
            |name: String, kind: Option<String>, body, users: Option<Arc<dyn Users>>| async move {
                let name = unescape(&name);
                let result = async {
                    json_only(kind.as_deref())?;
                    let user = parse_user(&read_body(Box::pin(body)).await?, false)?;
                    let users = users_of(users)?;
                    blocking(move || users.update(&name, user).map(|()| serde_json::json!({})))
                        .await
                };
                answer(result.await)
            },
        );
    let delete_user = warp::path!("v1" / "security" / "users" / String)
        .and(warp::delete())
        .and(with_users())
        .then(|name: String, users: Option<Arc<dyn Users>>| async move {
            let name = unescape(&name);
            answer(
                blocking(move || {
                    users_of(users)?
                        .delete(&name)
                        .map(|()| serde_json::json!({}))
                })
                .await,
            )
        });
    let users = list_users
        .or(create_user)
        .unify()
        .or(update_user)
        .unify()
        .or(delete_user)
        .unify();
    deploy
        .or(list)
        .unify()
        .or(users)
        .unify()
        .or(topics)
        .unify()
        .or(produce)
        .unify()
        .or(topic)
        .unify()
        .or(read)
        .unify()
        .or(delete)
        .unify()
        .or(patch)
        .unify()
        .recover(|_| async { Ok::<_, Infallible>(error_reply(&ApiError::new(404, "Not found"))) })
        .unify()
}

/// The admin endpoint at `address`, as errors and refusals name it.
pub fn listen(address: SocketAddr) -> Listen<'static> {
    Listen::new("the admin endpoint", "--admin-listen", address)
}

/// Serves the API on `listen`, as `access` allows, until `stop` completes;
/// fails at once when the address is refused or cannot be bound.
pub fn serve(
    runtime: &tokio::runtime::Runtime,
    listen: SocketAddr,
    access: &Access,
    control: Arc<dyn Control>,
    users: Option<Arc<dyn Users>>,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    http_access::serve(
        runtime,
        self::listen(listen),
        access,
        warp::service(routes(control, users)),
        stop,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// rpk's deploy body: `json.Marshal` of the metadata, then the file,
    /// with nothing between (`rpadmin/api_transform.go`, `AdminAPI.DeployWasmTransform`).
    #[test]
    fn a_deploy_body_is_the_metadata_then_the_module() {
        let meta = br#"{"name":"n","input_topic":"in","output_topics":["out"],"environment":[{"key":"A","value":"b"}],"offset":{"format":"from_start","value":0}}"#;
        let body = [&meta[..], b"\0asm\x01\0\0\0"].concat();
        let (request, wasm) = split_deploy_body(&body).unwrap();
        assert_eq!(request.name, "n");
        assert_eq!(request.environment[0].value, "b");
        assert_eq!(wasm, b"\0asm\x01\0\0\0");
        // A newline between them is the module's first byte, as in Redpanda.
        let body = [&meta[..], b"\n\0asm"].concat();
        assert_eq!(split_deploy_body(&body).unwrap().1, b"\n\0asm");
    }

    #[test]
    fn bad_deploy_bodies_are_400s_that_say_why() {
        let message = |body: &[u8]| {
            let e = split_deploy_body(body).unwrap_err();
            assert_eq!(e.status, 400);
            e.message
        };
        assert!(message(b"").starts_with("JSON parse error"));
        assert!(message(b"\0asm\x01\0\0\0").starts_with("JSON parse error"));
        assert!(message(b"{\"name\":").starts_with("JSON parse error"));
        assert!(message(br#"{"name":"n"}"#)
            .starts_with("invalid JSON request body: missing field `input_topic`"));
        assert!(
            message(br#"{"name":"n","input_topic":"i","output_topics":[],"extra":1}"#)
                .starts_with("invalid JSON request body: unknown field `extra`")
        );
        assert_eq!(
            message(br#"{"name":"n","input_topic":"i","output_topics":["o"],"offset":{"format":"timestamp","value":-10}}"#),
            "Bad offset: expected value >= 0, got -10"
        );
        assert!(message(br#"{"name":"n","input_topic":"i","output_topics":["o"],"offset":{"format":"sideways","value":1}}"#)
            .starts_with("invalid JSON request body"));
    }

    /// rpk's bodies (`rpadmin/api_user.go`): a create names the user, an
    /// update names it in the path; Redpanda's messages for what is missing
    /// (`security.cc`, `parse_scram_credential`).
    #[test]
    fn user_bodies_carry_a_password_and_an_algorithm() {
        let user = parse_user(
            br#"{"username":"alice","password":"p","algorithm":"SCRAM-SHA-256"}"#,
            true,
        )
        .unwrap();
        assert_eq!(user.username.as_deref(), Some("alice"));
        assert_eq!(
            (user.password.as_str(), user.algorithm.as_str()),
            ("p", "SCRAM-SHA-256")
        );
        assert!(parse_user(br#"{"password":"p","algorithm":"SCRAM-SHA-512"}"#, false).is_ok());
        let message = |body: &[u8], needs_name| {
            let e = parse_user(body, needs_name).unwrap_err();
            assert_eq!(e.status, 400);
            e.message
        };
        assert_eq!(message(b"[]", true), "Not an object");
        assert_eq!(message(br#"{"password":"p"}"#, true), "String algo missing");
        assert_eq!(
            message(br#"{"algorithm":"SCRAM-SHA-256"}"#, true),
            "String password missing"
        );
        assert_eq!(
            message(br#"{"password":"p","algorithm":"SCRAM-SHA-256"}"#, true),
            "String username missing"
        );
        assert!(message(b"{", true).starts_with("JSON parse error"));
        // Never the password in a log.
        assert!(!format!("{user:?}").contains("\"p\""));
        assert_eq!(users_of(None).err().map(|e| e.status), Some(404));
        assert!(json_only(Some("application/json; charset=utf-8")).is_ok());
        for kind in [
            None,
            Some("text/plain"),
            Some("application/x-www-form-urlencoded"),
        ] {
            assert_eq!(json_only(kind).unwrap_err().status, 415);
        }
    }

    #[test]
    fn patches_are_one_object() {
        assert_eq!(
            parse_patch(br#"{"is_paused":true}"#).unwrap().is_paused,
            Some(true)
        );
        assert!(parse_patch(b"{}").unwrap().is_empty());
        assert_eq!(
            parse_patch(b"[1]").unwrap_err().message,
            "Request body is not a JSON object"
        );
        assert!(parse_patch(b"{} x")
            .unwrap_err()
            .message
            .starts_with("JSON parse error"));
        assert!(parse_patch(br#"{"paused":true}"#)
            .unwrap_err()
            .message
            .starts_with("invalid JSON request body"));
    }
}
