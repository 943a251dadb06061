//! The registry's REST API through the crate's own client, and requests no
//! client should send: Confluent's status codes and error bodies
//! (`error_code`, `message`), and a server that keeps serving.

use std::sync::Arc;

use registry::{Client, LocalRegistry, RegistryError, Schema, SchemaRegistry, SchemaType};

const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// A registry served on a free port, for the length of the test.
fn served() -> (String, Arc<LocalRegistry>, tokio::runtime::Runtime) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let local = Arc::new(LocalRegistry::new());
    let (address, _) = registry::serve(
        &runtime,
        "127.0.0.1:0".parse().unwrap(),
        &http_access::Access::open(),
        local.clone(),
        std::future::pending(),
    )
    .unwrap();
    (format!("http://{address}"), local, runtime)
}

fn avro(text: &str) -> Schema {
    Schema {
        schema: text.into(),
        ..Schema::default()
    }
}

#[test]
fn the_client_registers_and_reads_back() {
    let (url, local, _runtime) = served();
    let client = Client::new(&url).unwrap();
    let long = avro(r#""long""#);
    assert_eq!(client.register("a-value", &long), Ok(1));
    assert_eq!(
        client.register("a-value", &long),
        Ok(1),
        "the same schema, the same id"
    );
    let proto = Schema {
        schema: "syntax = \"proto3\"; message M {}".into(),
        schema_type: SchemaType::Protobuf,
        references: vec![],
    };
    assert_eq!(client.register("a-value", &proto), Ok(2));
    assert_eq!(client.schema_by_id(2).unwrap(), proto);
    let latest = client.subject_schema("a-value", None).unwrap();
    assert_eq!(
        (latest.id, latest.version, latest.subject.as_str()),
        (2, 2, "a-value")
    );
    assert_eq!(
        client.subject_schema("a-value", Some(1)).unwrap().schema,
        long
    );
    assert!(matches!(
        client.schema_by_id(9),
        Err(RegistryError::NotFound(_))
    ));
    assert!(matches!(
        client.subject_schema("nobody", None),
        Err(RegistryError::NotFound(_))
    ));
    assert!(matches!(
        client.register("a-value", &avro("{not json")),
        Err(RegistryError::Invalid(_))
    ));
    // Subjects with characters a path must escape.
    assert_eq!(client.register("a b/c", &long), Ok(1));
    assert_eq!(local.subjects(), ["a b/c", "a-value"]);
}

#[test]
fn errors_are_confluents() {
    let (url, _local, _runtime) = served();
    let get = |path: &str| test_kit::get(&format!("{url}{path}"));
    for (path, status, code) in [
        ("/subjects/none/versions", 404, 40401),
        ("/subjects/none/versions/latest", 404, 40401),
        ("/schemas/ids/7", 404, 40403),
        ("/subjects/none/versions/zero", 422, 42202),
        ("/nowhere", 404, 404),
    ] {
        let answer = get(path);
        assert_eq!(answer.status, status, "{path}: {}", answer.body);
        assert_eq!(answer.json()["error_code"], code, "{path}");
        assert!(answer.json()["message"].is_string(), "{path}");
    }
    let post = |path: &str, body: &[u8]| {
        test_kit::send("POST", &format!("{url}{path}"), CONTENT_TYPE, body)
            .unwrap_or_else(|| panic!("POST {path}: no answer"))
    };
    for body in [
        &b"not json"[..],
        b"{}",
        br#"{"schema": 5}"#,
        br#"{"schema":"x","schemaType":"XML"}"#,
    ] {
        let answer = post("/subjects/s/versions", body);
        assert_eq!(answer.status, 422, "{}", String::from_utf8_lossy(body));
    }
    // Too large a body: refused (or cut off while it is sent), and the
    // server serves on.
    let big = test_kit::send(
        "POST",
        &format!("{url}/subjects/s/versions"),
        CONTENT_TYPE,
        &vec![b' '; 17 << 20],
    );
    assert!(big.as_ref().is_none_or(|a| a.status == 413), "{big:?}");
    // Registered, then looked up by its text (spacing aside).
    let answer = post(
        "/subjects/s/versions",
        br#"{"schema":"{\"type\": \"string\"}"}"#,
    );
    assert_eq!(answer.json()["id"], 1);
    let found = post("/subjects/s", br#"{"schema":"{\"type\":\"string\"}"}"#).json();
    assert_eq!(
        (found["id"].as_i64(), found["version"].as_i64()),
        (Some(1), Some(1))
    );
    assert_eq!(post("/subjects/s", br#"{"schema":"\"int\""}"#).status, 404);
    assert_eq!(
        get("/subjects/s/versions/1/schema").body,
        r#"{"type":"string"}"#
    );
    assert_eq!(get("/subjects").json(), serde_json::json!(["s"]));
}

#[test]
fn a_client_url_must_be_http() {
    for url in ["ftp://host", "not a url", "http://"] {
        assert!(Client::new(url).is_err(), "{url}");
    }
    assert!(Client::new("https://user:secret@registry.example:8081/prefix").is_ok());
}
