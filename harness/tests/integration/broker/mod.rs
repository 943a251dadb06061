//! A real Kafka-protocol broker for the tests (Tansu, in memory or requiring
//! SASL, on a free
//! loopback port), a proxy in front of it that can cut every connection
//! for a while, and a reader of whole topics.
// Shared by the integration and the sasl test binaries, each of which
// uses a part.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use test_kit::free_port;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Headers;
use rdkafka::{Message, Offset, TopicPartitionList};

/// Where the broker binary is: `$TANSU`, the cache `.ci/run` installs it
/// to, or the `PATH`.
fn tansu_binary() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("TANSU").map(PathBuf::from),
        std::env::var_os("HOME")
            .map(|h| PathBuf::from(h).join(".cache/marketing-pipeline/tansu/bin/tansu")),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|p| p.is_file())
        .or_else(|| {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|d| d.join("tansu"))
                    .find(|p| p.is_file())
            })
        })
}

pub struct Broker {
    child: Child,
    proxy: Proxy,
    /// The TLS terminator in front, and the port it accepts on.
    tls: Option<(Child, u16)>,
}

impl Broker {
    /// Starts a broker, or says loudly why the test is skipped. With
    /// `REQUIRE_BROKER` set (as `.ci/run` does) a missing broker fails.
    pub fn start(test: &str) -> Option<Broker> {
        let tansu = tansu_or_skip(test)?;
        let broker_port = free_port();
        let proxy = Proxy::start(broker_port);
        let memory = ("memory://tansu/", std::env::temp_dir());
        let child = spawn_tansu(
            &tansu,
            broker_port,
            proxy.port,
            (memory.0, &memory.1),
            false,
        );
        Some(Broker {
            child,
            proxy,
            tls: None,
        })
    }

    /// A broker that requires SASL (PLAIN or SCRAM) from every client,
    /// with these SCRAM-SHA-512 users, behind mutual TLS: clients trust
    /// `dir/ca.pem` and show `dir/client.pem` (see [`crate::common::make_certificates`]).
    ///
    /// Tansu creates users only while authentication is off, so: a SQLite
    /// engine in `dir`, the users created, then the broker started again on
    /// it with authentication. Its CLI refuses a certificate with a key,
    /// so stunnel terminates TLS in front of it, and Tansu tells clients
    /// to come back through stunnel.
    pub fn start_secured(test: &str, dir: &Path, users: &[(&str, &str)]) -> Option<Broker> {
        let tansu = tansu_or_skip(test)?;
        std::fs::create_dir_all(dir).unwrap();
        crate::common::make_certificates(dir);
        // Tansu takes the file relative to its working folder.
        let engine = "sqlite://tansu.db";
        let broker_port = free_port();
        let proxy = Proxy::start(broker_port);
        let mut open = spawn_tansu(&tansu, broker_port, proxy.port, (engine, dir), false);
        for (user, password) in users {
            let status = Command::new(&tansu)
                .args(["user", "create", user, password, "--mechanism", "scram512"])
                .args(["--broker", &format!("tcp://127.0.0.1:{broker_port}")])
                .stdout(Stdio::null())
                .status()
                .expect("tansu user create");
            assert!(status.success(), "tansu user create {user}: {status}");
        }
        let _ = open.kill();
        let _ = open.wait();
        let tls_port = free_port();
        let child = spawn_tansu(&tansu, broker_port, tls_port, (engine, dir), true);
        let stunnel = spawn_stunnel(dir, tls_port, proxy.port);
        Some(Broker {
            child,
            proxy,
            tls: Some((stunnel, tls_port)),
        })
    }

    /// Where clients connect: through TLS when the broker has it.
    pub fn address(&self) -> String {
        let port = self.tls.as_ref().map_or(self.proxy.port, |(_, port)| *port);
        format!("127.0.0.1:{port}")
    }

    /// The broker is unreachable for `how_long`: every connection is cut
    /// and new ones are refused.
    pub fn outage(&self, how_long: Duration) {
        self.proxy.cut(how_long);
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some((stunnel, _)) = &mut self.tls {
            let _ = stunnel.kill();
            let _ = stunnel.wait();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.proxy.stopped.store(true, Ordering::Relaxed);
    }
}

/// The broker binary, or `None` after saying loudly why `test` is skipped.
fn tansu_or_skip(test: &str) -> Option<PathBuf> {
    let tansu = tansu_binary();
    if tansu.is_none() {
        let message = format!(
            "SKIPPED {test}: no broker binary. Install one with \
             `cargo install tansu --version 0.6.0 --features dynostore,libsql --root ~/.cache/marketing-pipeline/tansu` \
             or set TANSU=/path/to/tansu"
        );
        if std::env::var_os("REQUIRE_BROKER").is_some() {
            panic!("{message} (REQUIRE_BROKER is set)");
        }
        eprintln!("\n!!!!! {message}\n");
    }
    tansu
}

/// stunnel accepting TLS on `port` for the broker behind `to`, once it
/// listens; clients must show a certificate the CA signed (mutual TLS).
/// TLS 1.2 at most: there a missing client certificate fails the handshake
/// itself, as an SSL error; under TLS 1.3 the server's alert can come
/// after the client thinks it is connected and read as a dropped
/// connection, which made the refusal test see no answer now and then.
fn spawn_stunnel(dir: &Path, port: u16, to: u16) -> Child {
    let config = dir.join("stunnel.conf");
    let file = |name: &str| dir.join(name).display().to_string();
    std::fs::write(
        &config,
        format!(
            "foreground = yes\npid =\n[kafka]\naccept = 127.0.0.1:{port}\n\
             connect = 127.0.0.1:{to}\ncert = {}\nkey = {}\nCAfile = {}\nverify = 2\n\
             sslVersionMax = TLSv1.2\n",
            file("server.pem"),
            file("server.key"),
            file("ca.pem")
        ),
    )
    .unwrap();
    let mut command = Command::new("stunnel4");
    command.arg(&config);
    listening(command, port, "stunnel4 (apt-get install stunnel4)")
}

/// Runs `command`, quiet, and waits until something listens on `port`.
fn listening(mut command: Command, port: u16, what: &str) -> Child {
    let child = command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {what}: {e}"));
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not start listening");
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

/// Tansu on `port`, telling clients to use `advertised` (the proxy, so
/// that it can cut them off), with a storage engine and the folder it
/// runs in, once it listens.
fn spawn_tansu(
    tansu: &Path,
    port: u16,
    advertised: u16,
    (engine, folder): (&str, &Path),
    authentication: bool,
) -> Child {
    let mut command = Command::new(tansu);
    command.current_dir(folder);
    command.args([
        "broker",
        "--listener-url",
        &format!("tcp://127.0.0.1:{port}"),
        "--advertised-listener-url",
        &format!("tcp://127.0.0.1:{advertised}"),
        "--storage-engine",
        engine,
    ]);
    if authentication {
        command.arg("--authentication");
    }
    listening(command, port, "tansu")
}

/// A TCP proxy on its own port; `cut` closes every connection and refuses
/// new ones for a while.
struct Proxy {
    port: u16,
    down: Arc<AtomicBool>,
    stopped: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    fn start(upstream: u16) -> Proxy {
        let port = free_port();
        let proxy = Proxy {
            port,
            down: Arc::default(),
            stopped: Arc::default(),
            connections: Arc::default(),
        };
        let (down, stopped, connections) = (
            proxy.down.clone(),
            proxy.stopped.clone(),
            proxy.connections.clone(),
        );
        std::thread::spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                if down.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                }
                // Bound only while up: while down, connecting is refused.
                let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
                listener.set_nonblocking(true).unwrap();
                while !down.load(Ordering::Relaxed) && !stopped.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((client, _)) => {
                            client.set_nonblocking(false).unwrap();
                            let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                                continue;
                            };
                            let mut open = connections.lock().unwrap();
                            open.push(client.try_clone().unwrap());
                            open.push(server.try_clone().unwrap());
                            pipe(client.try_clone().unwrap(), server.try_clone().unwrap());
                            pipe(server, client);
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            }
        });
        proxy
    }

    fn cut(&self, how_long: Duration) {
        self.down.store(true, Ordering::Relaxed);
        for c in self.connections.lock().unwrap().drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
        std::thread::sleep(how_long);
        self.down.store(false, Ordering::Relaxed);
    }
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 || to.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Both);
        let _ = from.shutdown(Shutdown::Both);
    });
}

/// A record read back from a topic.
#[derive(Debug, Clone)]
pub struct Consumed {
    pub partition: i32,
    pub key: Option<Vec<u8>>,
    pub value: Vec<u8>,
    pub headers: Vec<(String, Vec<u8>)>,
    pub timestamp_ms: i64,
}

/// Reads every partition of `topics` from the beginning.
pub struct TopicReader {
    consumer: BaseConsumer,
}

impl TopicReader {
    pub fn new(brokers: &str, topics: &[(&str, i32)]) -> TopicReader {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("group.id", "test-reader")
            .set("enable.auto.commit", "false")
            .set("fetch.wait.max.ms", "20")
            .create()
            .unwrap();
        let mut tpl = TopicPartitionList::new();
        for &(topic, partitions) in topics {
            for p in 0..partitions {
                tpl.add_partition_offset(topic, p, Offset::Beginning)
                    .unwrap();
            }
        }
        consumer.assign(&tpl).unwrap();
        TopicReader { consumer }
    }

    /// Everything that arrives within `wait`, per topic.
    pub fn read_for(&self, wait: Duration, into: &mut dyn FnMut(&str, Consumed)) {
        let deadline = Instant::now() + wait;
        while Instant::now() < deadline {
            match self.consumer.poll(Duration::from_millis(50)) {
                Some(Ok(m)) => into(
                    m.topic(),
                    Consumed {
                        partition: m.partition(),
                        key: m.key().map(<[u8]>::to_vec),
                        value: m.payload().unwrap_or_default().to_vec(),
                        headers: m
                            .headers()
                            .map(|hs| {
                                hs.iter()
                                    .map(|h| {
                                        (h.key.to_string(), h.value.unwrap_or_default().to_vec())
                                    })
                                    .collect()
                            })
                            .unwrap_or_default(),
                        timestamp_ms: m.timestamp().to_millis().unwrap_or(0),
                    },
                ),
                Some(Err(e)) => eprintln!("test reader: {e}"),
                None => {}
            }
        }
    }
}
