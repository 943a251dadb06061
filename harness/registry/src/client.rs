//! Any Confluent-compatible registry over its REST API:
//! `GET /schemas/ids/{id}`, `GET /subjects/{s}/versions/{v|latest}`,
//! `POST /subjects/{s}/versions`. What cannot change is cached: a schema by
//! its id, and a subject's numbered version; "latest" is asked each time,
//! as Redpanda's broker asks its own registry each time
//! (`src/v/wasm/schema_registry_module.cc`).

use parking_lot::Mutex;
use std::collections::HashMap;
use std::time::Duration;

use http_access::client::path_segment;

use crate::model::{RegistryError, Schema, SchemaRegistry, SubjectSchema};

const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

pub struct Client {
    base: String,
    /// `user:password` from the URL, sent as Basic authentication (as
    /// Confluent's clients take `basic.auth.user.info`).
    authorization: Option<String>,
    agent: ureq::Agent,
    by_id: Mutex<HashMap<i32, Schema>>,
    by_version: Mutex<HashMap<(String, i32), SubjectSchema>>,
}

impl Client {
    /// `url` as `http[s]://[USER:PASSWORD@]HOST:PORT[/PREFIX]`.
    pub fn new(url: &str) -> Result<Client, String> {
        let (base, authorization) = http_access::client::split_url(url, "a schema registry")?;
        let agent =
            http_access::client::agent(Duration::from_secs(10), None).map_err(|e| e.to_string())?;
        Ok(Client {
            base,
            authorization,
            agent,
            by_id: Mutex::default(),
            by_version: Mutex::default(),
        })
    }

    /// The registry's URL, without credentials.
    pub fn url(&self) -> &str {
        &self.base
    }

    fn call<T: serde::de::DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<T, RegistryError> {
        let mut request = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("accept", CONTENT_TYPE)
            .header("content-type", CONTENT_TYPE);
        if let Some(authorization) = &self.authorization {
            request = request.header("authorization", authorization);
        }
        let request = request
            .body(body.unwrap_or_default())
            .map_err(|e| RegistryError::Invalid(e.to_string()))?;
        let mut response = self
            .agent
            .run(request)
            .map_err(|e| RegistryError::Unreachable(format!("{}: {e}", self.base)))?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .read_to_string()
            .map_err(|e| RegistryError::Unreachable(format!("{}: {e}", self.base)))?;
        if status == 404 {
            return Err(RegistryError::NotFound(message(&text)));
        }
        if status != 200 {
            return Err(RegistryError::Invalid(format!(
                "{status}: {}",
                message(&text)
            )));
        }
        serde_json::from_str(&text).map_err(|e| {
            RegistryError::Invalid(format!(
                "{path} answered something else ({e}): {}",
                cut(&text)
            ))
        })
    }
}

/// A Confluent error's message, else the body.
fn message(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["message"].as_str().map(String::from))
        .unwrap_or_else(|| cut(body))
}

fn cut(body: &str) -> String {
    body.chars().take(200).collect()
}

#[derive(serde::Deserialize)]
struct Registered {
    id: i32,
}

impl SchemaRegistry for Client {
    fn schema_by_id(&self, id: i32) -> Result<Schema, RegistryError> {
        if let Some(schema) = self.by_id.lock().get(&id) {
            return Ok(schema.clone());
        }
        let schema: Schema = self.call("GET", &format!("/schemas/ids/{id}"), None)?;
        self.by_id.lock().insert(id, schema.clone());
        Ok(schema)
    }

    fn subject_schema(
        &self,
        subject: &str,
        version: Option<i32>,
    ) -> Result<SubjectSchema, RegistryError> {
        if let Some(v) = version {
            let key = (subject.to_string(), v);
            if let Some(found) = self.by_version.lock().get(&key) {
                return Ok(found.clone());
            }
        }
        let which = version.map_or("latest".to_string(), |v| v.to_string());
        let found: SubjectSchema = self.call(
            "GET",
            &format!("/subjects/{}/versions/{which}", path_segment(subject)),
            None,
        )?;
        self.by_version
            .lock()
            .insert((subject.to_string(), found.version), found.clone());
        Ok(found)
    }

    fn register(&self, subject: &str, schema: &Schema) -> Result<i32, RegistryError> {
        let body = serde_json::to_vec(schema).map_err(|e| RegistryError::Invalid(e.to_string()))?;
        let registered: Registered = self.call(
            "POST",
            &format!("/subjects/{}/versions", path_segment(subject)),
            Some(body),
        )?;
        Ok(registered.id)
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;

    use super::*;

    /// The request line of the one request a registry gets, answered with
    /// a subject's schema.
    fn request_line(ask: impl FnOnce(&Client) + Send + 'static) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let asking = std::thread::spawn(move || ask(&Client::new(&url).unwrap()));
        let (stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let body = r#"{"subject":"clicks-value","version":1,"id":1,"schema":"\"string\""}"#;
        write!(
            reader.get_mut(),
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        asking.join().unwrap();
        line.trim_end().to_string()
    }

    /// RFC 3986 (section 2.3): producers should not percent-encode the
    /// unreserved characters; a server or proxy that matches the raw path
    /// would not find `clicks%2Dvalue`.
    #[test]
    fn a_subject_goes_out_as_it_is_written() {
        let line = request_line(|client| {
            client.subject_schema("clicks-value", None).unwrap();
        });
        assert_eq!(line, "GET /subjects/clicks-value/versions/latest HTTP/1.1");
        let line = request_line(|client| {
            let _ = client.subject_schema("a b/c", Some(1));
        });
        assert_eq!(line, "GET /subjects/a%20b%2Fc/versions/1 HTTP/1.1");
    }
}
