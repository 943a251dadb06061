//! A cluster that requires SASL/SCRAM over mutual TLS: every command that speaks
//! Kafka takes the same client configuration (`-X`, `--kafka-config`),
//! runs exact over it, and fails within seconds, saying why and showing no
//! secret, on a wrong password, a broker certificate it cannot trust or a
//! missing client certificate.

mod broker;
mod common;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use broker::Broker;

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

/// The dashboard's source with the client settings of `args`: why it says
/// it cannot read, as `/api/status` shows it.
fn dashboard_refusal(args: &[String]) -> String {
    use clap::Parser;
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        kafka: kafka_client::KafkaArgs,
    }
    let kafka =
        Cli::parse_from(std::iter::once("dashboard".to_string()).chain(args.iter().cloned()))
            .kafka
            .required()
            .unwrap();
    let shared = dashboard::service::Shared::new(Default::default(), "results".into());
    let stop = Arc::new(AtomicBool::new(false));
    let source = dashboard::source::KafkaSource {
        kafka,
        topic: "results".into(),
        dlq_topic: None,
    };
    dashboard::service::start(shared.clone(), Box::new(source), stop.clone());
    let why = test_kit::wait_for("the refusal", Duration::from_secs(30), || {
        let state = shared.state.read().unwrap();
        assert!(!state.source.connected);
        state.source.refused.clone()
    });
    stop.store(true, Ordering::Relaxed);
    let status = serde_json::to_value(&shared.state.read().unwrap().source).unwrap();
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
    let _ = std::fs::remove_dir_all(&dir);
}
