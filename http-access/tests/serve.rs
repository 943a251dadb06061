//! Servers as clients meet them: a token, basic users and the login form
//! required everywhere but /healthz, HTTPS with a private CA, slow clients
//! cut off, and no unprotected listening beyond loopback.

use std::convert::Infallible;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::prelude::{Engine, BASE64_STANDARD};
use http_access::{serve, Access, Listen, Timeouts};
use warp::reply::Response;
use warp::{Filter, Reply};

/// A page, an API route, an echo of a posted body, and health.
fn app() -> impl Filter<Extract = (Response,), Error = Infallible> + Clone {
    let health = warp::path!("healthz").map(|| "ok".into_response());
    let page = warp::path::end().map(|| warp::reply::html("<h1>the page</h1>").into_response());
    let numbers = warp::path!("api" / "numbers")
        .map(|| warp::reply::json(&serde_json::json!({ "clicks": 7 })).into_response());
    let echo = warp::path!("echo")
        .and(warp::post())
        .and(warp::body::bytes())
        .map(|body: bytes::Bytes| format!("{} bytes", body.len()).into_response());
    health
        .or(page)
        .unify()
        .or(numbers)
        .unify()
        .or(echo)
        .unify()
        .recover(|_| async {
            Ok::<_, Infallible>(warp::http::StatusCode::NOT_FOUND.into_response())
        })
        .unify()
}

struct Served {
    address: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<()>,
    runtime: tokio::runtime::Runtime,
}

impl Served {
    fn start(access: &Access, pages: bool, timeouts: Timeouts) -> Served {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let mut listen = Listen::new(
            "the test server",
            "--listen",
            "127.0.0.1:0".parse().unwrap(),
        );
        listen.timeouts = timeouts;
        if pages {
            listen = listen.with_pages();
        }
        let (address, server) = serve(&runtime, listen, access, warp::service(app()), async {
            let _ = stopped.await;
        })
        .unwrap();
        Served {
            address,
            stop: Some(stop),
            server,
            runtime,
        }
    }

    fn url(&self, scheme: &str, path: &str) -> String {
        format!("{scheme}://{}{path}", self.address)
    }
}

/// What came back: status, headers, body.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// A client that follows no redirects and trusts `ca` if given.
fn client(ca: Option<&Path>) -> ureq::Agent {
    let mut tls = ureq::tls::TlsConfig::builder().provider(ureq::tls::TlsProvider::NativeTls);
    if let Some(ca) = ca {
        let pem = std::fs::read(ca).unwrap();
        let certs: Vec<_> = ureq::tls::parse_pem(&pem)
            .filter_map(|i| match i {
                Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                _ => None,
            })
            .collect();
        tls = tls.root_certs(ureq::tls::RootCerts::new_with_certs(&certs));
    }
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(Duration::from_secs(10)))
        .tls_config(tls.build())
        .build()
        .into()
}

fn call(
    agent: &ureq::Agent,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Answer {
    let mut request = ureq::http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let mut response = agent
        .run(request.body(body.as_bytes().to_vec()).unwrap())
        .unwrap();
    Answer {
        status: response.status().as_u16(),
        headers: response
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
            .collect(),
        body: response.body_mut().read_to_string().unwrap(),
    }
}

/// The API route's answer, whole.
fn assert_numbers(answer: &Answer) {
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (200, r#"{"clicks":7}"#)
    );
}

fn basic(user_password: &str) -> String {
    format!("Basic {}", BASE64_STANDARD.encode(user_password))
}

#[test]
fn a_token_or_a_basic_user_is_required_everywhere_but_healthz() {
    let access = Access::open()
        .with_token("t0ken-of-32-characters-or-so..")
        .with_user("ops", "pa:ss");
    let mut served = Served::start(&access, false, Timeouts::default());
    let agent = client(None);
    let get = |path: &str, headers: &[(&str, &str)]| {
        call(&agent, "GET", &served.url("http", path), headers, "")
    };

    let anonymous = get("/api/numbers", &[]);
    assert_eq!(anonymous.status, 401);
    let error: serde_json::Value = serde_json::from_str(&anonymous.body).unwrap();
    assert_eq!(error["code"], 401);
    assert!(error["message"]
        .as_str()
        .unwrap()
        .starts_with("authentication required"));
    assert_eq!(
        anonymous.header("www-authenticate"),
        [
            "Bearer realm=\"marketing-pipeline\"",
            "Basic realm=\"marketing-pipeline\", charset=\"UTF-8\""
        ]
    );
    // An API's page answers 401 too: only servers of pages show a form.
    assert_eq!(get("/", &[("accept", "text/html")]).status, 401);
    assert_eq!(get("/login", &[]).status, 401);

    let bearer = get(
        "/api/numbers",
        &[("authorization", "Bearer t0ken-of-32-characters-or-so..")],
    );
    assert_numbers(&bearer);
    assert!(bearer.header("x-pipeline-session").is_empty());
    let wrong = get("/api/numbers", &[("authorization", "Bearer t0ken")]);
    assert_eq!(wrong.status, 401);
    assert!(wrong.body.contains("not accepted"), "{}", wrong.body);
    assert_eq!(
        get("/api/numbers", &[("authorization", &basic("ops:pa:ss"))]).status,
        200
    );
    assert_eq!(
        get("/api/numbers", &[("authorization", &basic("ops:pa"))]).status,
        401
    );
    assert_eq!(
        get("/api/numbers", &[("authorization", &basic("root:pa:ss"))]).status,
        401
    );
    let posted = call(&agent, "POST", &served.url("http", "/echo"), &[], "12345");
    assert_eq!(posted.status, 401);

    let health = get("/healthz", &[]);
    assert_eq!((health.status, health.body.as_str()), (200, "ok"));

    // Stopping ends the server.
    served.stop.take().unwrap().send(()).unwrap();
    served
        .runtime
        .block_on(async { tokio::time::timeout(Duration::from_secs(10), &mut served.server).await })
        .expect("the server stops")
        .unwrap();
}

#[test]
fn a_browser_logs_in_with_the_form_and_keeps_a_cookie() {
    let access = Access::open().with_token("right-token");
    let served = Served::start(&access, true, Timeouts::default());
    let agent = client(None);
    let url = |path: &str| served.url("http", path);

    let page = call(&agent, "GET", &url("/"), &[("accept", "text/html,*/*")], "");
    assert_eq!(
        (page.status, page.header("location")),
        (303, vec!["/login"])
    );
    let form = call(&agent, "GET", &url("/login"), &[], "");
    assert_eq!(form.status, 200);
    assert!(form.body.contains("name=\"token\"") && !form.body.contains("class=\"error\""));
    // Scripts get a 401, not a redirect.
    assert_eq!(
        call(&agent, "GET", &url("/api/numbers"), &[], "").status,
        401
    );

    let form_type = ("content-type", "application/x-www-form-urlencoded");
    let started = Instant::now();
    let wrong = call(
        &agent,
        "POST",
        &url("/login"),
        &[form_type],
        "token=wrong-token",
    );
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "a wrong token is answered at once"
    );
    assert_eq!(wrong.status, 401);
    assert!(wrong.body.contains("class=\"error\"") && wrong.header("set-cookie").is_empty());

    let right = call(
        &agent,
        "POST",
        &url("/login"),
        &[form_type],
        "token=right-token",
    );
    assert_eq!((right.status, right.header("location")), (303, vec!["/"]));
    let set = right.header("set-cookie");
    assert_eq!(set.len(), 1);
    assert!(
        set[0].starts_with("pipeline_session=")
            && set[0].ends_with("; Path=/; HttpOnly; SameSite=Strict"),
        "{}",
        set[0]
    );
    assert!(!set[0].contains("right-token"));
    let cookie = set[0].split(';').next().unwrap();

    let numbers = call(
        &agent,
        "GET",
        &url("/api/numbers"),
        &[("cookie", cookie)],
        "",
    );
    assert_numbers(&numbers);
    assert_eq!(numbers.header("x-pipeline-session"), ["cookie"]);
    let page = call(
        &agent,
        "GET",
        &url("/"),
        &[("cookie", cookie), ("accept", "text/html")],
        "",
    );
    assert_eq!(
        (page.status, page.body.as_str()),
        (200, "<h1>the page</h1>")
    );
    let again = call(&agent, "GET", &url("/login"), &[("cookie", cookie)], "");
    assert_eq!((again.status, again.header("location")), (303, vec!["/"]));

    let out = call(&agent, "POST", &url("/logout"), &[("cookie", cookie)], "");
    assert_eq!((out.status, out.header("location")), (303, vec!["/login"]));
    assert!(out.header("set-cookie")[0].contains("Max-Age=0"));
}

/// A CA, and a certificate it signed for 127.0.0.1, in `dir`: (ca, cert, key).
fn certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    use openssl::asn1::Asn1Time;
    use openssl::bn::BigNum;
    use openssl::ec::{EcGroup, EcKey};
    use openssl::hash::MessageDigest;
    use openssl::nid::Nid;
    use openssl::pkey::{PKey, Private};
    use openssl::x509::extension::{BasicConstraints, SubjectAlternativeName};
    use openssl::x509::{X509Builder, X509NameBuilder, X509};

    let key = || -> PKey<Private> {
        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
        PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap()
    };
    let cert =
        |name: &str, key: &PKey<Private>, issuer: Option<(&X509, &PKey<Private>)>, serial: u32| {
            let mut subject = X509NameBuilder::new().unwrap();
            subject.append_entry_by_text("CN", name).unwrap();
            let subject = subject.build();
            let mut b = X509Builder::new().unwrap();
            b.set_version(2).unwrap();
            b.set_serial_number(&BigNum::from_u32(serial).unwrap().to_asn1_integer().unwrap())
                .unwrap();
            b.set_subject_name(&subject).unwrap();
            b.set_pubkey(key).unwrap();
            b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
                .unwrap();
            b.set_not_after(&Asn1Time::days_from_now(2).unwrap())
                .unwrap();
            match issuer {
                None => {
                    b.set_issuer_name(&subject).unwrap();
                    b.append_extension(BasicConstraints::new().critical().ca().build().unwrap())
                        .unwrap();
                    b.sign(key, MessageDigest::sha256()).unwrap();
                }
                Some((ca, ca_key)) => {
                    b.set_issuer_name(ca.subject_name()).unwrap();
                    let san = SubjectAlternativeName::new()
                        .ip("127.0.0.1")
                        .build(&b.x509v3_context(Some(ca), None))
                        .unwrap();
                    b.append_extension(san).unwrap();
                    b.sign(ca_key, MessageDigest::sha256()).unwrap();
                }
            }
            b.build()
        };
    let ca_key = key();
    let ca = cert("test CA", &ca_key, None, 1);
    let server_key = key();
    let server = cert("127.0.0.1", &server_key, Some((&ca, &ca_key)), 2);
    let paths = (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server.key"),
    );
    std::fs::write(&paths.0, ca.to_pem().unwrap()).unwrap();
    std::fs::write(&paths.1, server.to_pem().unwrap()).unwrap();
    std::fs::write(&paths.2, server_key.private_key_to_pem_pkcs8().unwrap()).unwrap();
    paths
}

#[test]
fn https_with_a_private_ca_and_a_secure_cookie() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = certificates(dir.path());
    // A key that is not the certificate's is refused at start.
    let stray = dir.path().join("stray.key");
    std::fs::write(
        &stray,
        openssl::pkey::PKey::from_ec_key(
            openssl::ec::EcKey::generate(
                &openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1)
                    .unwrap(),
            )
            .unwrap(),
        )
        .unwrap()
        .private_key_to_pem_pkcs8()
        .unwrap(),
    )
    .unwrap();
    let e = format!("{:#}", Access::open().with_tls(&cert, &stray).unwrap_err());
    assert!(e.contains("is not the key of --tls-cert"), "{e}");
    let e = format!("{:#}", Access::open().with_tls(&key, &key).unwrap_err());
    assert!(e.contains("not a PEM certificate"), "{e}");

    let access = Access::open()
        .with_token("tls-token")
        .with_tls(&cert, &key)
        .unwrap();
    assert_eq!(access.scheme(), "https");
    let served = Served::start(&access, true, Timeouts::default());
    let trusted = client(Some(&ca));
    let numbers = call(
        &trusted,
        "GET",
        &served.url("https", "/api/numbers"),
        &[("authorization", "Bearer tls-token")],
        "",
    );
    assert_numbers(&numbers);
    let login = call(
        &trusted,
        "POST",
        &served.url("https", "/login"),
        &[("content-type", "application/x-www-form-urlencoded")],
        "token=tls-token",
    );
    assert!(login.header("set-cookie")[0].ends_with("; Secure"));

    // The harness's own client helper trusts the same CA.
    let helper = http_access::client::agent(Duration::from_secs(10), Some(&ca)).unwrap();
    let health = helper.get(&served.url("https", "/healthz")).call().unwrap();
    assert_eq!(health.status(), 200);

    // Without the CA, the certificate is not trusted; plain HTTP gets nowhere.
    let untrusted = ureq::Agent::config_builder()
        .tls_config(
            ureq::tls::TlsConfig::builder()
                .provider(ureq::tls::TlsProvider::NativeTls)
                .build(),
        )
        .timeout_global(Some(Duration::from_secs(10)))
        .build();
    let untrusted: ureq::Agent = untrusted.into();
    assert!(untrusted
        .get(&served.url("https", "/healthz"))
        .call()
        .is_err());
    assert!(client(None)
        .get(&served.url("http", "/healthz"))
        .call()
        .is_err());
}

/// Reads until the server closes the connection; how long that took.
fn closed_within(mut stream: TcpStream, limit: Duration) -> Duration {
    let started = Instant::now();
    stream.set_read_timeout(Some(limit)).unwrap();
    let mut buffer = [0u8; 4096];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => return started.elapsed(),
            Ok(_) => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                panic!("the server kept a stalled client for over {limit:?}")
            }
            Err(_) => return started.elapsed(),
        }
    }
}

#[test]
fn slow_clients_are_cut_off() {
    let short = Timeouts {
        head: Duration::from_millis(300),
        handshake: Duration::from_millis(300),
        body: Duration::from_millis(300),
    };
    let limit = Duration::from_secs(5);
    let served = Served::start(&Access::open(), false, short);

    // Half a request line and headers, then nothing.
    let mut stream = TcpStream::connect(served.address).unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    closed_within(stream, limit);

    // Part of a body, then nothing: the route sees an error, the client an
    // answer or a closed connection, and the task ends.
    let mut stream = TcpStream::connect(served.address).unwrap();
    stream
        .write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")
        .unwrap();
    closed_within(stream, limit);

    // A whole request is answered, and the connection kept for more.
    let mut stream = TcpStream::connect(served.address).unwrap();
    stream
        .write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n01234")
        .unwrap();
    let mut answer = [0u8; 512];
    let n = stream.read(&mut answer).unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(
        answer.starts_with("HTTP/1.1 200") && answer.ends_with("5 bytes"),
        "{answer}"
    );

    // TLS: a connection that never says hello.
    let dir = tempfile::tempdir().unwrap();
    let (_, cert, key) = certificates(dir.path());
    let tls = Served::start(&Access::open().with_tls(&cert, &key).unwrap(), false, short);
    closed_within(TcpStream::connect(tls.address).unwrap(), limit);
}

#[test]
fn beyond_loopback_only_with_authentication_or_when_told() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let anywhere: SocketAddr = "0.0.0.0:0".parse().unwrap();
    let start = |access: &Access| {
        serve(
            &runtime,
            Listen::new("the test server", "--listen", anywhere),
            access,
            warp::service(app()),
            std::future::pending(),
        )
    };
    let e = start(&Access::open()).unwrap_err().to_string();
    assert!(
        e.starts_with(
            "refusing to serve the test server on 0.0.0.0:0 (from --listen) without authentication"
        ) && e.contains("--auth-token-file")
            && e.contains("--allow-unauthenticated"),
        "{e}"
    );
    assert!(start(&Access::open().with_token("t")).is_ok());
    assert!(start(&Access::open().allowing_unauthenticated()).is_ok());
}
