//! A cluster that requires SASL/SCRAM over mutual TLS: every command that speaks
//! Kafka takes the same client configuration (`-X`, `--kafka-config`),
//! runs exact over it, and fails within seconds, saying why and showing no
//! secret, on a wrong password, a broker certificate it cannot trust or a
//! missing client certificate.
//!
//! A test binary of its own, as cargo runs one binary at a time: its checks
//! are timed (a refusal within seconds), and the TLS and SCRAM handshakes
//! through stunnel miss them under a neighbouring test's load.
#[path = "../integration/broker/mod.rs"]
mod broker;
#[path = "../integration/common/mod.rs"]
mod common;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use broker::Broker;
use generator::{generate, Clock, Plan, Profile, Stream, Truth, TruthFile};
use kafka_client::KafkaConfig;
use kafka_client::KafkaTransport;
use std::process::{Command, Stdio};
use topic_io::Transport;

const USER: &str = "analyst";
const PASSWORD: &str = "pw-7c1e9a";

/// SASL_SSL with SCRAM-SHA-512 as `USER`, trusting the CA `ca`, without
/// a client certificate.
fn sasl_ssl(brokers: &str, ca: &Path) -> Vec<String> {
    [
        "--brokers",
        brokers,
        "-X",
        "security.protocol=SASL_SSL",
        "-X",
        "sasl.mechanisms=SCRAM-SHA-512",
        "-X",
        &format!("sasl.username={USER}"),
        "-X",
        &format!("ssl.ca.location={}", ca.display()),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// [`sasl_ssl`] with the client certificate in `dir`.
fn secured(brokers: &str, ca: &Path, dir: &Path) -> Vec<String> {
    let mut args = sasl_ssl(brokers, ca);
    for (property, file) in [
        ("ssl.certificate.location", "client.pem"),
        ("ssl.key.location", "client.key"),
    ] {
        args.extend([
            "-X".into(),
            format!("{property}={}", dir.join(file).display()),
        ]);
    }
    args
}

/// `harness bridge` with `args`: it must fail within seconds; its stderr.
fn bridge_refused(args: &[String]) -> String {
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("../transform.yaml");
    let bridge = [
        "bridge",
        "@pipeline",
        "--admin-listen",
        "127.0.0.1:0",
        "--config",
    ];
    let mut all: Vec<String> = bridge.iter().map(|s| s.to_string()).collect();
    all.push(config.display().to_string());
    all.extend(args.iter().cloned());
    let started = Instant::now();
    let stderr = common::harness_refused(&all);
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "took {:?}: {stderr}",
        started.elapsed()
    );
    assert!(stderr.contains("refused the connection"), "{stderr}");
    stderr
}

/// The client configuration that `args` give a command, as its flags
/// read them.
fn client_config(args: &[String]) -> KafkaConfig {
    use clap::Parser;
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        kafka: kafka_client::KafkaArgs,
    }
    Cli::parse_from(std::iter::once("client".to_string()).chain(args.iter().cloned()))
        .kafka
        .required()
        .unwrap()
}

/// The dashboard's source with the client settings of `args`: why it says
/// it cannot read, as `/api/status` shows it.
fn dashboard_refusal(args: &[String]) -> String {
    let kafka = client_config(args);
    let (shared, start) =
        dashboard::service::Shared::new(Default::default(), "results".into()).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let source = dashboard::source::TopicSource {
        transport: Arc::new(KafkaTransport { kafka }),
        topic: "results".into(),
        dlq_topic: None,
    };
    dashboard::service::run(shared.clone(), Box::new(source), start, stop.clone());
    let why = test_kit::wait_for("the refusal", Duration::from_secs(30), || {
        let state = shared.state.read();
        assert!(!state.source.connected);
        state.source.refused.clone()
    });
    stop.store(true, Ordering::Relaxed);
    let status = serde_json::to_value(&shared.state.read().source).unwrap();
    assert_eq!(status["refused"], why.as_str());
    why
}

#[test]
fn mtls_and_scram_run_exact_and_bad_credentials_or_certificates_fail_fast() {
    let dir = common::scratch_data_dir("sasl");
    let Some(broker) = Broker::start_secured(
        "mtls_and_scram_run_exact_and_bad_credentials_or_certificates_fail_fast",
        &dir,
        &[(USER, PASSWORD)],
    ) else {
        return;
    };
    let brokers = broker.address();
    // The broker, restarted with authentication behind stunnel, answers a
    // client it accepts before the refusals are timed.
    let mut accepted = secured(&brokers, &dir.join("ca.pem"), &dir);
    accepted.extend(["-X".into(), format!("sasl.password={PASSWORD}")]);
    kafka_client::probe(&client_config(&accepted), Duration::from_secs(60))
        .expect("the secured broker answers a client it accepts");

    let mut wrong_password = secured(&brokers, &dir.join("ca.pem"), &dir);
    wrong_password.extend(["-X".into(), "sasl.password=not-the-password".into()]);
    let stderr = bridge_refused(&wrong_password);
    assert!(stderr.contains("uthentication"), "{stderr}");
    assert!(!stderr.contains("not-the-password"), "{stderr}");

    let mut untrusted = secured(&brokers, &dir.join("other-ca.pem"), &dir);
    untrusted.extend(["-X".into(), format!("sasl.password={PASSWORD}")]);
    let stderr = bridge_refused(&untrusted);
    assert!(stderr.contains("SSL"), "{stderr}");
    assert!(!stderr.contains(PASSWORD), "{stderr}");

    // The dashboard, a service, keeps trying, and says why it cannot read.
    let refused = dashboard_refusal(&wrong_password);
    assert!(refused.contains("refused the connection"), "{refused}");
    assert!(refused.contains("uthentication"), "{refused}");
    assert!(!refused.contains("not-the-password"), "{refused}");

    let mut no_certificate = sasl_ssl(&brokers, &dir.join("ca.pem"));
    no_certificate.extend(["-X".into(), format!("sasl.password={PASSWORD}")]);
    let stderr = bridge_refused(&no_certificate);
    assert!(stderr.contains("SSL"), "{stderr}");

    // The password in a properties file: generator → transform →
    // dashboard on the broker, over SASL_SSL, equal to the truth.
    let properties = dir.join("client.properties");
    std::fs::write(
        &properties,
        format!("# kept off the command line\nsasl.password={PASSWORD}\n"),
    )
    .unwrap();
    let truth = dir.join("truth.json");
    let mut args = secured(&brokers, &dir.join("ca.pem"), &dir);
    args.extend(["--kafka-config".into(), properties.display().to_string()]);
    args.extend(common::counted_stream(3, 3_000, "max", 0.01, &truth));
    let up = common::Up::start(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(!up.said.contains(PASSWORD), "{}", up.said);
    up.assert_equals_truth(&truth);
    up.interrupt();

    // The same as parts of their own, as in production: the generator's
    // sink, `harness bridge` (a process of its own) and the dashboard's
    // source, each with its own client; the dashboard behind a token.
    let mut client = secured(&brokers, &dir.join("ca.pem"), &dir);
    client.extend(["--kafka-config".into(), properties.display().to_string()]);
    let truth = generate_secured(&client_config(&client), "s.logs", 3_000);
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("../transform.yaml");
    let log = dir.join("bridge.log");
    let mut bridge = Command::new(env!("CARGO_BIN_EXE_harness"))
        .args(["bridge", "@pipeline", "--config"])
        .arg(&config)
        .args(["--name", "sasl-chain", "--input-topic", "s.logs"])
        .args(["--output-topic", "s.results", "--output-topic", "s.events"])
        .args([
            "--output-topic",
            "s.logs.dlq",
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .args(&client)
        .stdin(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let source = dashboard::source::TopicSource {
        transport: Arc::new(KafkaTransport {
            kafka: client_config(&client),
        }),
        topic: "s.results".into(),
        dlq_topic: Some("s.logs.dlq".into()),
    };
    let served = dashboard::service::serve(
        &runtime,
        dashboard::service::Settings::default(),
        Box::new(source),
        http_access::Listen::new("the dashboard", "--listen", "127.0.0.1:0".parse().unwrap()),
        &http_access::Access::open().with_token("chain-token"),
        stop.clone(),
    )
    .unwrap();
    let get = |path: &str| {
        let url = format!("http://{}{path}", served.address);
        let answer =
            test_kit::try_get_with(&url, &[("authorization", "Bearer chain-token")]).unwrap();
        assert_eq!(answer.status, 200, "{path}: {}", answer.body);
        answer.json()
    };
    common::assert_dashboard_equals(&truth, get);
    assert_eq!(
        test_kit::get(&format!("http://{}/api/summary", served.address)).status,
        401
    );
    stop.store(true, Ordering::Relaxed);
    let _ = bridge.kill();
    let _ = bridge.wait();
    let said = std::fs::read_to_string(&log).unwrap();
    assert!(said.contains("bridging s.logs → [sasl-chain]"), "{said}");
    assert!(!said.contains(PASSWORD), "{said}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `count` events of a seeded stream, with invalid ones among them,
/// produced to `topic` through `kafka`: their truth.
fn generate_secured(kafka: &KafkaConfig, topic: &str, count: u64) -> TruthFile {
    let profile = Profile {
        invalid_ratio: 0.01,
        ..Profile::default()
    };
    kafka_client::ensure_topic(kafka, topic, 3).unwrap();
    let mut sink = KafkaTransport {
        kafka: kafka.clone(),
    }
    .sink()
    .unwrap();
    let mut truth = Truth::new(60_000);
    let plan = Plan {
        rate: None,
        count: Some(count),
        duration: None,
        partitions: 3,
    };
    let mut stream = Stream::new(
        profile.clone(),
        11,
        Clock::Simulated {
            next_ms: 1_755_439_200_000,
        },
    );
    let progress = generate(
        &mut stream,
        &plan,
        topic,
        sink.as_mut(),
        &mut truth,
        &|| false,
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(progress.failed, 0, "the generator lost events");
    truth.file(&profile)
}
