//! `harness up` served beyond a trusted machine: a token, basic users and
//! TLS on the dashboard, the admin endpoint and the schema registry. The
//! harness's own commands get in with the token, rpk-style clients with
//! basic credentials, nobody else; and an unprotected address beyond
//! loopback is refused before anything starts.

use crate::common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{harness_refused, make_certificates, Up};

/// `harness ARGS` with no token in the environment: success, and what it
/// wrote.
fn harness_without_env(args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_harness"))
        .args(args)
        .env_remove(http_access::TOKEN_ENV)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `GET url` over HTTPS trusting `ca`, with these headers: status and body.
fn get(url: &str, ca: &Path, headers: &[(&str, &str)]) -> (u16, String) {
    let agent = http_access::client::agent(Duration::from_secs(10), Some(ca)).unwrap();
    let mut request = agent.get(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let mut response = request.call().unwrap();
    (
        response.status().as_u16(),
        response.body_mut().read_to_string().unwrap(),
    )
}

#[test]
fn up_over_https_with_a_token_lets_in_only_who_has_it() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("access-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    make_certificates(&dir);
    let token = dir.join("token");
    std::fs::write(&token, "up-token-4c7d19\n").unwrap();
    let users = dir.join("users");
    std::fs::write(
        &users,
        "# who may use the admin API as rpk does\nops:rpk-pass\n",
    )
    .unwrap();
    let path = |name: &str| dir.join(name).to_str().unwrap().to_string();
    let (ca, cert, key) = (path("ca.pem"), path("server.pem"), path("server.key"));
    let up = Up::start(&[
        "--in-memory",
        "--rate",
        "200",
        "--auth-token-file",
        token.to_str().unwrap(),
        "--basic-auth-file",
        users.to_str().unwrap(),
        "--tls-cert",
        &cert,
        "--tls-key",
        &key,
    ]);
    assert!(up.said.contains("open https://"), "{}", up.said);
    assert!(up.admin.starts_with("https://127.0.0.1:"), "{}", up.admin);
    let ca = Path::new(&ca);
    let bearer = ("authorization", "Bearer up-token-4c7d19");

    // The dashboard: health for probes, everything else with the token.
    let dashboard = |p: &str| format!("https://{}{p}", up.address);
    assert_eq!(get(&dashboard("/healthz"), ca, &[]).0, 200);
    let (status, body) = get(&dashboard("/api/status"), ca, &[]);
    assert_eq!(status, 401, "{body}");
    let (status, body) = get(&dashboard("/api/status"), ca, &[bearer]);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"ready\""), "{body}");

    // The registry: Confluent's clients send basic credentials or a token.
    let registry = up.registry.replace("http://", "https://");
    let registry = registry.trim_end_matches('/');
    assert_eq!(get(&format!("{registry}/subjects"), ca, &[]).0, 401);
    assert_eq!(
        get(&format!("{registry}/subjects"), ca, &[bearer]),
        (200, "[]".to_string())
    );

    // The admin endpoint, through the harness's own commands.
    let admin = up.admin.as_str();
    let list = ["list", "--admin", admin, "--admin-ca", ca.to_str().unwrap()];
    let (ok, _, stderr) = harness_without_env(&list, &[]);
    assert!(!ok);
    assert!(
        stderr.contains("authentication required") && stderr.contains("--auth-token-file"),
        "{stderr}"
    );
    let (ok, stdout, stderr) = harness_without_env(
        &[&list[..], &["--auth-token-file", token.to_str().unwrap()]].concat(),
        &[],
    );
    assert!(ok && stdout.contains("marketing-pipeline"), "{stderr}");
    let (ok, stdout, stderr) =
        harness_without_env(&list, &[(http_access::TOKEN_ENV, "up-token-4c7d19")]);
    assert!(ok && stdout.contains("marketing-pipeline"), "{stderr}");
    let (ok, _, stderr) = harness_without_env(
        &[&list[..], &["--auth-token", "up-token-4c7d18"]].concat(),
        &[],
    );
    assert!(!ok && stderr.contains("not accepted"), "{stderr}");
    assert!(
        !stderr.contains("up-token-4c7d18"),
        "the token was shown: {stderr}"
    );
    // rpk sends -X user= -X pass= to an admin API as basic credentials.
    let with_user = admin.replace("https://", "https://ops:rpk-pass@");
    let (ok, stdout, stderr) = harness_without_env(
        &[
            "list",
            "--admin",
            &with_user,
            "--admin-ca",
            ca.to_str().unwrap(),
        ],
        &[],
    );
    assert!(ok && stdout.contains("marketing-pipeline"), "{stderr}");
    // A CA that did not sign the certificate: no connection at all.
    let (ok, _, stderr) = harness_without_env(
        &[
            "list",
            "--admin",
            admin,
            "--admin-ca",
            &path("other-ca.pem"),
            "--auth-token-file",
            token.to_str().unwrap(),
        ],
        &[],
    );
    assert!(
        !ok && stderr.contains("no harness admin endpoint"),
        "{stderr}"
    );

    // No route changes anything through GET, even with the token.
    for route in [
        "/v1/transform/deploy",
        "/v1/transform/marketing-pipeline/meta",
        "/v1/harness/topics/logs/records",
    ] {
        let (status, body) = get(&format!("{admin}{route}"), ca, &[bearer]);
        assert_eq!(status, 404, "GET {route}: {body}");
    }
    assert_eq!(get(&dashboard("/logout"), ca, &[bearer]).0, 404);
    let with_token = [
        &list[..],
        &["--json", "--auth-token-file", token.to_str().unwrap()],
    ]
    .concat();
    let (ok, stdout, stderr) = harness_without_env(&with_token, &[]);
    assert!(ok, "{stderr}");
    let listed: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed[0]["name"], "marketing-pipeline");
    // Still running, unpaused, never deployed again.
    let partitions = listed[0]["status"].as_array().unwrap();
    assert!(
        !partitions.is_empty() && partitions.iter().all(|p| p["status"] == "running"),
        "{listed}"
    );
    assert_eq!(listed[0]["harness"]["paused"], false, "{listed}");
    assert_eq!(listed[0]["harness"]["deploys"], 0, "{listed}");

    // A reader that has seen enough (`| head`) ends the command, cleanly.
    let mut closed = Command::new(env!("CARGO_BIN_EXE_harness"))
        .args(&with_token)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(closed.stdout.take());
    let out = closed.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && !stderr.contains("panicked"),
        "{stderr}"
    );
    up.interrupt();
}

#[test]
fn an_unprotected_address_beyond_loopback_is_refused_before_anything_starts() {
    for (flag, value, what) in [
        ("--bind", "0.0.0.0", "the dashboard"),
        ("--admin-listen", "0.0.0.0:0", "the admin endpoint"),
        (
            "--schema-registry-listen",
            "0.0.0.0:0",
            "the schema registry",
        ),
    ] {
        let stderr = harness_refused(&["up", "--in-memory", "--port", "0", flag, value]);
        assert!(
            stderr.contains(&format!("refusing to serve {what} on 0.0.0.0"))
                && stderr.contains("--allow-unauthenticated"),
            "{flag}: {stderr}"
        );
        assert!(!stderr.contains("pipeline up"), "{stderr}");
    }
    // The bridge refuses before it connects to any broker.
    let stderr = harness_refused(&[
        "bridge",
        "@pipeline",
        "--brokers",
        "127.0.0.1:1",
        "--admin-listen",
        "0.0.0.0:0",
    ]);
    assert!(
        stderr.contains("refusing to serve the admin endpoint on 0.0.0.0:0 (from --admin-listen)"),
        "{stderr}"
    );
}
