//! The admin endpoint speaks Redpanda's admin API for transforms, as rpk
//! sends it (`rpadmin/api_transform.go`) and Redpanda answers it
//! (`src/v/redpanda/admin/transform.cc`, `api-doc/transform.json`,
//! `src/v/cluster/plugin_frontend.cc`), over plain HTTP against a running
//! `harness up`. No rpk binary runs here: the requests are rpk's, byte for
//! byte as its client writes them.

use crate::common;

use std::io::{Read, Write};
use std::time::Duration;

use common::Up;
use serde_json::{json, Value};
use test_kit::{get, send, wait_for, Response};

fn up() -> Up {
    Up::start(&["--rate", "100", "--seed", "3"])
}

/// rpk's deploy: `json.Marshal(metadata)` then the module, nothing between.
fn deploy(up: &Up, metadata: &Value, wasm: &[u8]) -> Response {
    let body = [serde_json::to_vec(metadata).unwrap(), wasm.to_vec()].concat();
    send(
        "POST",
        &format!("http://{}/v1/transform/deploy", up.admin),
        "application/json",
        &body,
    )
    .unwrap()
}

/// rpk's delete: `DELETE /v1/transform/NAME`.
fn delete(up: &Up, name: &str) -> Response {
    send(
        "DELETE",
        &format!("http://{}/v1/transform/{name}", up.admin),
        "application/json",
        b"",
    )
    .unwrap()
}

fn list(up: &Up) -> Vec<Value> {
    let listed = get(&format!("http://{}/v1/transform/", up.admin));
    assert_eq!(listed.status, 200, "{}", listed.body);
    listed.json().as_array().unwrap().clone()
}

fn error(response: &Response) -> (u16, String) {
    let body = response.json();
    assert_eq!(body["code"], response.status, "{body}");
    (
        response.status,
        body["message"].as_str().unwrap().to_string(),
    )
}

fn tee(name: &str, input: &str, outputs: &[&str]) -> Value {
    json!({"name": name, "input_topic": input, "output_topics": outputs})
}

#[test]
fn deploy_list_pause_resume_delete_as_rpk_sends_them() {
    let up = up();
    let mirror = json!({
        "name": "mirror", "input_topic": "logs", "output_topics": ["mirror"],
        "environment": [{"key": "A", "value": "b"}],
        "offset": {"format": "from_start", "value": 0}
    });
    let deployed = deploy(&up, &mirror, transform_artifacts::TEE);
    assert_eq!(deployed.status, 200, "{}", deployed.body);

    // Creation order, Redpanda's fields, an empty environment left out;
    // each partition's status once the new transform has started.
    let listed = test_kit::wait_for("mirror's partitions", Duration::from_secs(30), || {
        Some(list(&up)).filter(|l| l.len() == 2 && l[1]["status"].as_array().is_some())
    });
    let names: Vec<&str> = listed.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["marketing-pipeline", "mirror"]);
    let m = &listed[1];
    assert_eq!(m["input_topic"], "logs");
    assert_eq!(m["output_topics"], json!(["mirror"]));
    assert_eq!(m["environment"], json!([{"key": "A", "value": "b"}]));
    assert_eq!(m["compression"], "none");
    let pipeline = &listed[0];
    assert!(pipeline.get("environment").is_some());
    let status = m["status"].as_array().unwrap();
    assert_eq!(status.len(), 3, "one entry per input partition");
    for (p, s) in status.iter().enumerate() {
        assert_eq!(s["partition"], p);
        assert_eq!(s["node_id"], 0);
        assert!(s["lag"].is_i64());
        assert!(
            ["running", "inactive"].contains(&s["status"].as_str().unwrap()),
            "{s}"
        );
    }

    // Pause and resume as rpk does: PUT …/meta {"is_paused": bool}.
    let meta = |name: &str, body: &str| {
        send(
            "PUT",
            &format!("http://{}/v1/transform/{name}/meta", up.admin),
            "application/json",
            body.as_bytes(),
        )
        .unwrap()
    };
    assert_eq!(meta("mirror", r#"{"is_paused":true}"#).status, 200);
    let statuses = |up: &Up| -> Vec<String> {
        list(up)[1]["status"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["status"].as_str().unwrap().to_string())
            .collect()
    };
    wait_for("the pause", Duration::from_secs(10), || {
        Some(()).filter(|()| statuses(&up).iter().all(|s| s == "inactive"))
    });
    assert_eq!(meta("mirror", r#"{"is_paused":false}"#).status, 200);
    wait_for("the resume", Duration::from_secs(10), || {
        Some(()).filter(|()| statuses(&up).iter().all(|s| s == "running"))
    });
    // A new environment, as a whole.
    assert_eq!(
        meta("mirror", r#"{"env":[{"key":"C","value":"d"}]}"#).status,
        200
    );
    assert_eq!(
        list(&up)[1]["environment"],
        json!([{"key": "C", "value": "d"}])
    );
    // Nothing to change: 200, whatever the name (transform.cc, admin_server::patch_transform_metadata).
    assert_eq!(meta("nobody", "{}").status, 200);
    let (status, message) = error(&meta("nobody", r#"{"is_paused":true}"#));
    assert_eq!(
        (status, message.as_str()),
        (400, "Transform does not exist")
    );

    // Delete, and delete again: both succeed (api.cc, service::delete_transform).
    for _ in 0..2 {
        let deleted = delete(&up, "mirror");
        assert_eq!(deleted.status, 200, "{}", deleted.body);
    }
    assert_eq!(list(&up).len(), 1);
    up.interrupt();
}

#[test]
fn bad_requests_get_redpandas_errors_and_nothing_breaks() {
    let up = up();
    let url = format!("http://{}/v1/transform/deploy", up.admin);
    let raw = |body: &[u8]| error(&send("POST", &url, "application/json", body).unwrap());
    let starts = |(status, message): (u16, String), prefix: &str| {
        assert_eq!(status, 400, "{message}");
        assert!(message.starts_with(prefix), "{message}");
    };
    starts(raw(b""), "JSON parse error");
    starts(raw(transform_artifacts::TEE), "JSON parse error");
    starts(raw(b"{\"name\":"), "JSON parse error");
    starts(raw(br#"{"name":"x"}"#), "invalid JSON request body");
    starts(
        raw(br#"{"name":"x","input_topic":"logs","output_topics":["o"],"paused":true}"#),
        "invalid JSON request body",
    );
    // The metadata and no module after it.
    starts(
        raw(br#"{"name":"x","input_topic":"logs","output_topics":["o"]}"#),
        "invalid WebAssembly module",
    );
    let with_tee = |metadata: Value| error(&deploy(&up, &metadata, transform_artifacts::TEE));
    let mut bad_offset = tee("x", "logs", &["o"]);
    bad_offset["offset"] = json!({"format": "timestamp", "value": -10});
    assert_eq!(
        with_tee(bad_offset),
        (400, "Bad offset: expected value >= 0, got -10".into())
    );
    starts(with_tee(tee("x", "nope", &["o"])), "Topic does not exists");
    starts(
        with_tee(tee(&"n".repeat(129), "logs", &["o"])),
        "Invalid create transform configuration",
    );
    starts(
        with_tee(tee("x", "logs", &["logs"])),
        "Invalid create transform configuration",
    );
    starts(
        with_tee(tee(
            "x",
            "logs",
            &["a", "b", "c", "d", "e", "f", "g", "h", "i"],
        )),
        "Invalid create transform configuration",
    );
    // Ten thousand variables: refused with the reason, not a 414.
    let mut many = tee("x", "logs", &["o"]);
    many["environment"] = (0..10_000)
        .map(|i| json!({"key": format!("K{i}"), "value": "v"}))
        .collect();
    let (status, message) = with_tee(many);
    assert_eq!(status, 400);
    assert_eq!(
        message,
        "Invalid transform environment: 10000 variables; at most 128"
    );
    let mut reserved = tee("x", "logs", &["o"]);
    reserved["environment"] = json!([{"key": "REDPANDA_X", "value": "v"}]);
    starts(with_tee(reserved), "Invalid transform environment");
    // A redeploy may not change the topics.
    starts(
        with_tee(tee("marketing-pipeline", "logs", &["results"])),
        "Invalid update to transform, topic configuration cannot change",
    );
    // Modules Redpanda refuses, with its messages (server.cc, admin_server::throw_on_error).
    let module = test_kit::wat_parse;
    let no_abi = module(r#"(module (memory (export "memory") 1) (func (export "_start")))"#);
    starts(
        error(&deploy(&up, &tee("x", "logs", &["o"]), &no_abi)),
        "Invalid WebAssembly - the binary is missing required transform functions.",
    );
    let sr_v1 = module(
        r#"(module (import "redpanda_transform" "check_abi_version_2" (func))
             (import "redpanda_schema_registry" "check_abi_version_1" (func))
             (memory (export "memory") 1) (func (export "_start")))"#,
    );
    starts(
        error(&deploy(&up, &tee("x", "logs", &["o"]), &sr_v1)),
        "Invalid WebAssembly - the binary is using an unsupported Schema Registry client.",
    );
    let no_start = module(
        r#"(module (import "redpanda_transform" "check_abi_version_2" (func)) (memory (export "memory") 1))"#,
    );
    starts(
        error(&deploy(&up, &tee("x", "logs", &["o"]), &no_start)),
        "invalid WebAssembly - missing required WASI functions",
    );
    // Over the size limit, announced or streamed.
    let huge = vec![0u8; (12 << 20) as usize];
    starts(raw(&huge), "the request body is over");
    let chunked = chunked_post(&up.admin, "/v1/transform/deploy", &huge);
    assert!(chunked.starts_with("HTTP/1.1 400"), "{chunked}");
    // Unknown routes: seastar's 404.
    let missing = get(&format!("http://{}/v1/nothing", up.admin));
    assert_eq!(error(&missing), (404, "Not found".into()));
    // Nothing here took the host down, and nothing was deployed.
    assert_eq!(list(&up).len(), 1);
    up.get("/api/status");
    up.interrupt();
}

/// A request with a chunked body of unannounced length, as rpk streams the
/// module.
fn chunked_post(admin: &str, path: &str, body: &[u8]) -> String {
    let mut stream = std::net::TcpStream::connect(admin).unwrap();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {admin}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    for chunk in body.chunks(1 << 16) {
        if write!(stream, "{:x}\r\n", chunk.len()).is_err()
            || stream.write_all(chunk).is_err()
            || stream.write_all(b"\r\n").is_err()
        {
            break;
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n");
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer
}

/// Enrich and aggregate as two transforms chained through a topic, beside
/// the pipeline: their panes, kept once by identity, equal the truth.
#[test]
fn a_host_runs_several_transforms_chained() {
    let dir = std::env::temp_dir().join(format!("harness-chain-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let truth_path = dir.join("truth.json");
    let up = Up::start(&[
        "--count",
        "20000",
        "--rate",
        "4000",
        "--start",
        "2025-08-17T14:00:00",
        "--invalid-ratio",
        "0.01",
        // Nothing reads `panes` as a group: it keeps its retention only.
        "--retention-mb",
        "256",
        "--truth",
        truth_path.to_str().unwrap(),
    ]);
    let env: Vec<Value> = common::pipeline_spec()
        .env
        .into_iter()
        .map(|(key, value)| json!({"key": key, "value": value}))
        .collect();
    let from_start = json!({"format": "from_start", "value": 0});
    let mut enrich = tee("enrich", "logs", &["enriched", "enrich.dlq"]);
    enrich["environment"] = json!(env);
    enrich["offset"] = from_start.clone();
    let mut aggregate = tee("aggregate", "enriched", &["panes"]);
    aggregate["environment"] = json!(env);
    aggregate["offset"] = from_start;
    for (metadata, wasm) in [
        (enrich, transform_artifacts::ENRICH),
        (aggregate, transform_artifacts::AGGREGATE),
    ] {
        let deployed = deploy(&up, &metadata, wasm);
        assert_eq!(deployed.status, 200, "{}", deployed.body);
    }
    let truth = wait_for("the generator's truth", Duration::from_secs(120), || {
        let text = std::fs::read_to_string(&truth_path).ok()?;
        serde_json::from_str::<generator::TruthFile>(&text).ok()
    });
    let client = admin::Client::new(&up.admin).unwrap();
    let partitions = client.topic("panes").unwrap().unwrap().partitions;
    let valid = truth.events - truth.invalid;
    let panes = wait_for("every event in a pane", Duration::from_secs(60), || {
        let mut panes = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for p in 0..partitions {
            let mut records = Vec::new();
            loop {
                let from = records
                    .last()
                    .map_or(0, |r: &admin::TopicRecord| r.offset + 1);
                let page = client.read("panes", p, from, 10_000).unwrap();
                if page.is_empty() {
                    break;
                }
                records.extend(page);
            }
            for r in records {
                let pane: Value = serde_json::from_str(r.value.as_deref()?).unwrap();
                let identity = format!(
                    "{p}|{}|{}|{}|{}|{}",
                    pane["campaign"],
                    pane["channel"],
                    pane["window_start"],
                    pane["first_offset"],
                    pane["last_offset"]
                );
                if seen.insert(identity) {
                    panes.push(pane);
                }
            }
        }
        let counted: u64 = panes.iter().map(|p| p["records"].as_u64().unwrap()).sum();
        (counted >= valid).then_some(panes)
    });
    assert_eq!(common::pane_totals(&panes), truth.by_window());
    up.interrupt();
    std::fs::remove_dir_all(&dir).unwrap();
}

/// What a transform writes reaches its output topic as written: Redpanda
/// keeps the module's record bytes and adds no header
/// (`src/v/wasm/transform_module.cc`, `transform_module::write_record`,
/// `model::transformed_data::create_validated`). Two identity transforms
/// in a chain keep a record's duplicate headers, in order, and add none.
#[test]
fn outputs_are_what_the_transform_wrote_along_a_chain() {
    let up = up();
    let client = admin::Client::new(&up.admin).unwrap();
    let from_start = json!({"format": "from_start", "value": 0});
    let mut first = tee("first", "logs", &["chain.middle"]);
    first["offset"] = from_start.clone();
    let mut second = tee("second", "chain.middle", &["chain.end"]);
    second["offset"] = from_start;
    let deployed = deploy(&up, &first, transform_artifacts::TEE);
    assert_eq!(deployed.status, 200, "{}", deployed.body);
    wait_for("the middle topic", Duration::from_secs(30), || {
        client.topic("chain.middle").unwrap()
    });
    let deployed = deploy(&up, &second, transform_artifacts::TEE);
    assert_eq!(deployed.status, 200, "{}", deployed.body);
    let headers = vec![
        ("h".to_string(), Some("1".to_string())),
        ("h".to_string(), Some("2".to_string())),
        ("empty".to_string(), None),
    ];
    client
        .produce(
            "logs",
            &[admin::NewRecord {
                partition: Some(0),
                key: Some("chained".into()),
                value: Some("not an event".into()),
                headers: headers.clone(),
            }],
        )
        .unwrap();
    let copied = wait_for(
        "the record at the chain's end",
        Duration::from_secs(60),
        || {
            let partitions = client.topic("chain.end").unwrap()?.partitions;
            (0..partitions).find_map(|p| {
                let mut from = 0;
                loop {
                    let page = client.read("chain.end", p, from, 10_000).unwrap();
                    let last = page.last()?.offset;
                    if let Some(r) = page
                        .into_iter()
                        .find(|r| r.key.as_deref() == Some("chained"))
                    {
                        return Some(r);
                    }
                    from = last + 1;
                }
            })
        },
    );
    assert_eq!(copied.value.as_deref(), Some("not an event"));
    assert_eq!(copied.headers, headers);
    // The page learns the running version from the host instead.
    let running = list(&up)[0]["harness"]["version"].clone();
    assert!(running.is_string(), "{running}");
    wait_for("the page's version", Duration::from_secs(30), || {
        (up.get("/api/status")["version"] == running).then_some(())
    });
    up.interrupt();
}

/// A record that fails the transform stops its own partition only. As in
/// Redpanda, each partition has its processor, sharing the core's VM,
/// which starts again at once after a failure (`src/v/wasm/cache.cc`,
/// `shared_engine::transform`), and only the failing partition backs off,
/// errored (`src/v/transform/transform_manager.cc`,
/// `handle_transform_error`; `transform_processor.cc`). Its lag counts the
/// record that failed; the other partitions run on.
#[test]
fn a_failing_record_stalls_its_partition_only() {
    // Copies each record; traps on a record keyed "!" (key length 1, a
    // zigzag varint 2, then the byte 33).
    let wasm = test_kit::copy_module(
        "",
        r#"(if (i32.and (i32.eq (i32.load8_u (i32.const 1024)) (i32.const 2))
                        (i32.eq (i32.load8_u (i32.const 1025)) (i32.const 33)))
             (then unreachable))"#,
    );
    let up = up();
    let client = admin::Client::new(&up.admin).unwrap();
    let deployed = deploy(&up, &tee("picky", "logs", &["picky.out"]), &wasm);
    assert_eq!(deployed.status, 200, "{}", deployed.body);
    let statuses = |up: &Up| -> Vec<(String, i64)> {
        let listed = list(up);
        let picky = listed.iter().find(|t| t["name"] == "picky").unwrap();
        picky["status"]
            .as_array()
            .map(|s| {
                s.iter()
                    .map(|p| {
                        (
                            p["status"].as_str().unwrap().to_string(),
                            p["lag"].as_i64().unwrap(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    wait_for("picky running", Duration::from_secs(30), || {
        let s = statuses(&up);
        (s.len() == 3 && s.iter().all(|(state, _)| state == "running")).then_some(())
    });
    let record = |partition: i32, key: &str| admin::NewRecord {
        partition: Some(partition),
        key: Some(key.into()),
        value: Some(format!("to {partition}")),
        headers: Vec::new(),
    };
    client.produce("logs", &[record(0, "!")]).unwrap();
    // Partition 0 fails on its record again at each retry, 1 s, 2 s, …
    // apart; meanwhile the others take new records and run.
    wait_for("partition 0 to fail twice", Duration::from_secs(30), || {
        let picky = list(&up).into_iter().find(|t| t["name"] == "picky")?;
        (picky["harness"]["errors"].as_array()?.len() >= 2).then_some(())
    });
    client
        .produce("logs", &[record(1, "fine-1"), record(2, "fine-2")])
        .unwrap();
    let partitions = wait_for("picky.out", Duration::from_secs(30), || {
        client.topic("picky.out").unwrap()
    })
    .partitions;
    let ours = || -> Vec<String> {
        let mut keys: Vec<String> = (0..partitions)
            .flat_map(|p| client.read("picky.out", p, 0, 100_000).unwrap())
            .filter_map(|r| r.key)
            .filter(|k| k.starts_with("fine-") || k == "!")
            .collect();
        keys.sort();
        keys
    };
    wait_for(
        "the other partitions' records",
        Duration::from_secs(30),
        || (ours().len() >= 2).then_some(()),
    );
    assert_eq!(ours(), ["fine-1", "fine-2"]);
    let s = wait_for(
        "partition 0 errored, the others running",
        Duration::from_secs(30),
        || {
            let s = statuses(&up);
            (s[0].0 == "errored" && s[1].0 == "running" && s[2].0 == "running" && s[0].1 >= 1)
                .then_some(s)
        },
    );
    assert!(
        s[0].1 >= 1,
        "the failing record is in partition 0's lag: {s:?}"
    );
    let picky = list(&up)
        .into_iter()
        .find(|t| t["name"] == "picky")
        .unwrap();
    let errors = picky["harness"]["errors"].as_array().unwrap();
    assert!(
        errors.iter().all(|e| {
            let e = e.as_str().unwrap();
            e.contains("partition 0") && e.contains(r#"key "!""#) && e.contains("retrying in")
        }),
        "{errors:?}"
    );
    up.interrupt();
}

/// Deploys as Redpanda takes them. A *new* transform that fails at start
/// is accepted, its partitions go errored and it is retried
/// (`src/v/transform/api.cc`, `deploy_transform`, only validates the
/// module). And a host takes as many transforms as its memory reservation
/// holds at the memory limit (`src/v/cluster/plugin_frontend.cc`,
/// `validate_mutation`: `transform_count_limit_exceeded`), refused with
/// the admin API's message (`src/v/redpanda/admin/server.cc`).
#[test]
fn a_new_transform_failing_at_start_is_accepted_and_the_reservation_counts() {
    // 20 MiB at 8 MiB a transform: two, the pipeline's included.
    let up = Up::start(&["--rate", "100", "--seed", "3", "--memory-limit", "8388608"]);
    let broken = tee("broken", "logs", &["broken.out"]);
    let deployed = deploy(&up, &broken, &test_kit::go_panic_module("bad config", true));
    assert_eq!(deployed.status, 200, "{}", deployed.body);
    let errored = wait_for("broken errored", Duration::from_secs(30), || {
        let listed = list(&up);
        let t = listed.into_iter().find(|t| t["name"] == "broken")?;
        let all = t["status"]
            .as_array()?
            .iter()
            .all(|s| s["status"] == "errored");
        (all && !t["harness"]["errors"].as_array()?.is_empty()).then_some(t)
    });
    let why = errored["harness"]["errors"][0].as_str().unwrap();
    assert!(
        why.contains("failed at start") && why.contains("panic: bad config"),
        "{why}"
    );
    assert!(why.ends_with("retrying in 1 s"), "{why}");
    // The pipeline runs on.
    assert!(list(&up)[0]["status"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["status"] != "errored"));
    let third = deploy(
        &up,
        &tee("third", "logs", &["third.out"]),
        transform_artifacts::TEE,
    );
    let (status, message) = error(&third);
    assert_eq!(status, 400);
    assert!(
        message.starts_with(
            "The limit of transforms has been reached (2), more memory must be configured via \
             data_transforms_per_core_memory_reservation"
        ),
        "{message}"
    );
    // Deleting one makes room.
    let deleted = delete(&up, "broken");
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    let third = deploy(
        &up,
        &tee("third", "logs", &["third.out"]),
        transform_artifacts::TEE,
    );
    assert_eq!(third.status, 200, "{}", third.body);
    up.interrupt();
}
