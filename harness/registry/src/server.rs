//! The registry's REST API, Confluent's, as Redpanda's schema registry
//! serves it (its port, 8081, by default): what `confluent-kafka`'s
//! `SchemaRegistryClient`, the Avro serdes and curl use.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use http_access::{Access, Listen};
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Reply};

use crate::local::LocalRegistry;
use crate::model::{RegistryError, Schema, SchemaRegistry};

/// Redpanda's (and Confluent's) schema registry port, on loopback.
pub const DEFAULT_REGISTRY: &str = "127.0.0.1:8081";

const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

fn json(value: &impl serde::Serialize) -> Response {
    warp::reply::with_header(warp::reply::json(value), "content-type", CONTENT_TYPE).into_response()
}

/// Confluent's errors: `{"error_code", "message"}`.
fn error(status: StatusCode, code: u32, message: String) -> Response {
    Refused {
        status,
        code,
        message,
    }
    .reply()
}

/// A request refused, before its reply is made.
struct Refused {
    status: StatusCode,
    code: u32,
    message: String,
}

impl Refused {
    fn reply(self) -> Response {
        let body = serde_json::json!({"error_code": self.code, "message": self.message});
        warp::reply::with_status(json(&body), self.status).into_response()
    }
}

fn failure(e: RegistryError, not_found: u32) -> Response {
    match e {
        RegistryError::NotFound(what) => error(
            StatusCode::NOT_FOUND,
            not_found,
            format!("{what} not found"),
        ),
        RegistryError::Invalid(why) => error(StatusCode::UNPROCESSABLE_ENTITY, 42201, why),
        RegistryError::Unreachable(why) => error(StatusCode::INTERNAL_SERVER_ERROR, 50001, why),
    }
}

fn unescape(segment: &str) -> String {
    percent_encoding::percent_decode_str(segment)
        .decode_utf8_lossy()
        .into_owned()
}

/// `latest` or `-1` is the latest; else a positive number.
fn version(text: &str) -> Result<Option<i32>, Refused> {
    match text {
        "latest" | "-1" => Ok(None),
        v => match v.parse::<i32>() {
            Ok(n) if n >= 1 => Ok(Some(n)),
            _ => Err(Refused {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                code: 42202,
                message: format!("The specified version '{v}' is not a valid version id. Allowed values are between [1, 2^31-1] and the string \"latest\""),
            }),
        },
    }
}

/// A schema in a request body.
fn parse_schema(body: &[u8]) -> Result<Schema, Refused> {
    serde_json::from_slice(body).map_err(|e| Refused {
        status: StatusCode::UNPROCESSABLE_ENTITY,
        code: 42201,
        message: format!("Invalid schema: {e}"),
    })
}

/// Every route of the API.
pub fn routes(
    registry: Arc<LocalRegistry>,
) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone {
    let with = move || {
        let registry = registry.clone();
        warp::any().map(move || registry.clone())
    };
    let subjects = warp::path!("subjects")
        .and(warp::get())
        .and(with())
        .map(|r: Arc<LocalRegistry>| json(&r.subjects()));
    let versions = warp::path!("subjects" / String / "versions")
        .and(warp::get())
        .and(with())
        .map(|s: String, r: Arc<LocalRegistry>| {
            let subject = unescape(&s);
            match r.versions(&subject) {
                Some(v) => json(&v),
                None => error(
                    StatusCode::NOT_FOUND,
                    40401,
                    format!("Subject '{subject}' not found."),
                ),
            }
        });
    let one_version = |raw: bool| {
        move |s: String, v: String, r: Arc<LocalRegistry>| {
            let subject = unescape(&s);
            let version = match version(&v) {
                Ok(v) => v,
                Err(refused) => return refused.reply(),
            };
            match r.subject_schema(&subject, version) {
                Ok(found) if raw => {
                    warp::reply::with_header(found.schema.schema, "content-type", CONTENT_TYPE)
                        .into_response()
                }
                Ok(found) => json(&found),
                Err(RegistryError::NotFound(_)) if r.versions(&subject).is_none() => error(
                    StatusCode::NOT_FOUND,
                    40401,
                    format!("Subject '{subject}' not found."),
                ),
                Err(e) => failure(e, 40402),
            }
        }
    };
    let version_get = warp::path!("subjects" / String / "versions" / String)
        .and(warp::get())
        .and(with())
        .map(one_version(false));
    let version_schema = warp::path!("subjects" / String / "versions" / String / "schema")
        .and(warp::get())
        .and(with())
        .map(one_version(true));
    let register = warp::path!("subjects" / String / "versions")
        .and(warp::post())
        .and(warp::body::content_length_limit(16 << 20))
        .and(warp::body::bytes())
        .and(with())
        .map(|s: String, body: bytes::Bytes, r: Arc<LocalRegistry>| {
            let schema = match parse_schema(&body) {
                Ok(schema) => schema,
                Err(refused) => return refused.reply(),
            };
            match r.register(&unescape(&s), &schema) {
                Ok(id) => json(&serde_json::json!({ "id": id })),
                Err(e) => failure(e, 40401),
            }
        });
    let lookup = warp::path!("subjects" / String)
        .and(warp::post())
        .and(warp::body::content_length_limit(16 << 20))
        .and(warp::body::bytes())
        .and(with())
        .map(|s: String, body: bytes::Bytes, r: Arc<LocalRegistry>| {
            let subject = unescape(&s);
            let schema = match parse_schema(&body) {
                Ok(schema) => schema,
                Err(refused) => return refused.reply(),
            };
            match (r.versions(&subject), r.lookup(&subject, &schema)) {
                (None, _) => error(
                    StatusCode::NOT_FOUND,
                    40401,
                    format!("Subject '{subject}' not found."),
                ),
                (_, None) => error(StatusCode::NOT_FOUND, 40403, "Schema not found".into()),
                (_, Some(found)) => json(&found),
            }
        });
    let by_id = |raw: bool| {
        move |id: i32, r: Arc<LocalRegistry>| match r.schema_by_id(id) {
            Ok(schema) if raw => {
                warp::reply::with_header(schema.schema, "content-type", CONTENT_TYPE)
                    .into_response()
            }
            Ok(schema) => json(&schema),
            Err(_) => error(
                StatusCode::NOT_FOUND,
                40403,
                format!("Schema {id} not found"),
            ),
        }
    };
    let schema = warp::path!("schemas" / "ids" / i32)
        .and(warp::get())
        .and(with())
        .map(by_id(false));
    let schema_raw = warp::path!("schemas" / "ids" / i32 / "schema")
        .and(warp::get())
        .and(with())
        .map(by_id(true));
    let types = warp::path!("schemas" / "types")
        .and(warp::get())
        .map(|| json(&["JSON", "PROTOBUF", "AVRO"]));
    // No compatibility checks: the level says so.
    let config = warp::path("config")
        .and(warp::get().or(warp::put()).unify())
        .map(|| json(&serde_json::json!({"compatibilityLevel": "NONE"})));
    subjects
        .or(versions)
        .unify()
        .or(version_get)
        .unify()
        .or(version_schema)
        .unify()
        .or(register)
        .unify()
        .or(lookup)
        .unify()
        .or(schema)
        .unify()
        .or(schema_raw)
        .unify()
        .or(types)
        .unify()
        .or(config)
        .unify()
        .recover(|_| async {
            Ok::<_, Infallible>(error(
                StatusCode::NOT_FOUND,
                404,
                "HTTP 404 Not Found".into(),
            ))
        })
        .unify()
}

/// The registry at `address`, as errors and refusals name it.
pub fn listen(address: SocketAddr) -> Listen<'static> {
    Listen::new("the schema registry", "--schema-registry-listen", address)
}

/// Serves `registry` on `listen`, as `access` allows, until `stop`
/// completes.
pub fn serve(
    runtime: &tokio::runtime::Runtime,
    listen: SocketAddr,
    access: &Access,
    registry: Arc<LocalRegistry>,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    http_access::serve(
        runtime,
        self::listen(listen),
        access,
        warp::service(routes(registry)),
        stop,
    )
}
