//! A cluster that requires SASL/SCRAM: every command that speaks Kafka
//! takes the same client configuration (`-X`, `--kafka-config`), runs
//! exact over it, and fails within seconds, saying why and showing no
//! secret, on a wrong password.

mod broker;
mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use broker::Broker;

const USER: &str = "analyst";
const PASSWORD: &str = "pw-7c1e9a";

fn sasl(brokers: &str) -> Vec<String> {
    [
        "--brokers",
        brokers,
        "-X",
        "security.protocol=SASL_PLAINTEXT",
        "-X",
        "sasl.mechanisms=SCRAM-SHA-512",
        "-X",
        &format!("sasl.username={USER}"),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

#[test]
fn scram_clients_run_exact_and_a_wrong_password_fails_fast() {
    let dir = common::scratch_data_dir("sasl");
    let Some(broker) = Broker::start_with_users(
        "scram_clients_run_exact_and_a_wrong_password_fails_fast",
        &dir,
        &[(USER, PASSWORD)],
    ) else {
        return;
    };
    let brokers = broker.address();

    // A wrong password: refused at once, with librdkafka's reason.
    let started = Instant::now();
    let refused = Command::new(env!("CARGO_BIN_EXE_harness"))
        .args([
            "bridge",
            "@pipeline",
            "--admin-listen",
            "127.0.0.1:0",
            "--config",
        ])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../transform.yaml"))
        .args(sasl(&brokers))
        .args(["-X", "sasl.password=not-the-password"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "took {:?}",
        started.elapsed()
    );
    assert!(stderr.contains("refused the connection"), "{stderr}");
    assert!(stderr.contains("uthentication"), "{stderr}");
    assert!(!stderr.contains("not-the-password"), "{stderr}");

    // The password in a properties file: the whole pipeline runs on the
    // broker and equals the truth.
    let properties = dir.join("client.properties");
    std::fs::write(
        &properties,
        format!("# kept off the command line\nsasl.password={PASSWORD}\n"),
    )
    .unwrap();
    let truth = dir.join("truth.json");
    let mut args = sasl(&brokers);
    args.extend(["--kafka-config".into(), properties.display().to_string()]);
    args.extend(common::counted_stream(3, 3_000, "max", 0.01, &truth));
    let up = common::Up::start(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(!up.said.contains(PASSWORD), "{}", up.said);
    up.assert_equals_truth(&truth);
    up.interrupt();
    let _ = std::fs::remove_dir_all(&dir);
}
