//! `--kafka-listen`: the embedded topics served to Kafka clients (kcat,
//! rpk, confluent-kafka, a Connect worker) by the `kafka-listener` crate,
//! in a harness built with `--features kafka-listener`; behind SASL SCRAM
//! (`--kafka-sasl`) with the users `harness user` keeps in the data
//! folder, and over TLS with the other listeners' `--tls-cert`.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{bail, Result};
use http_access::Access;

use crate::kept::Kept;

/// Redpanda's Kafka API port.
pub const KAFKA_PORT: u16 = 9092;

/// Redpanda's variable for the user a new cluster starts with:
/// `NAME:PASSWORD[:MECHANISM]`.
pub const BOOTSTRAP_USER_ENV: &str = "RP_BOOTSTRAP_USER";

/// Where `--kafka-listen` asks the listener to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KafkaListen {
    /// Redpanda's 127.0.0.1:9092, or a free loopback port if that is
    /// taken (a Redpanda running beside, another `harness up`).
    Default,
    At(SocketAddr),
    Off,
}

impl std::str::FromStr for KafkaListen {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if s == "off" {
            return Ok(KafkaListen::Off);
        }
        s.parse()
            .map(KafkaListen::At)
            .map_err(|_| format!("`{s}` is not HOST:PORT (127.0.0.1:9092) or `off`"))
    }
}

/// A user to create at start if it does not exist yet.
#[derive(Clone)]
pub struct BootstrapUser {
    pub name: String,
    pub password: String,
    pub mechanism: String,
}

impl BootstrapUser {
    /// `RP_BOOTSTRAP_USER`, if set.
    pub fn from_env() -> Result<Option<BootstrapUser>> {
        match std::env::var(BOOTSTRAP_USER_ENV) {
            Ok(value) => BootstrapUser::parse(&value).map(Some),
            Err(_) => Ok(None),
        }
    }

    fn parse(value: &str) -> Result<BootstrapUser> {
        let Some((name, rest)) = value.split_once(':') else {
            bail!("{BOOTSTRAP_USER_ENV} is NAME:PASSWORD or NAME:PASSWORD:MECHANISM");
        };
        let (password, mechanism) = match rest.rsplit_once(':') {
            Some((password, mechanism)) if mechanism.to_ascii_uppercase().starts_with("SCRAM-") => {
                (password, mechanism)
            }
            _ => (rest, "SCRAM-SHA-256"),
        };
        Ok(BootstrapUser {
            name: name.to_string(),
            password: password.to_string(),
            mechanism: mechanism.to_string(),
        })
    }
}

/// How the listener serves.
#[derive(Clone)]
pub struct KafkaOptions {
    pub listen: KafkaListen,
    /// The address Metadata gives clients, HOST[:PORT], if not the one
    /// bound.
    pub advertise: Option<String>,
    /// Clients authenticate with SASL SCRAM.
    pub sasl: bool,
    pub bootstrap_user: Option<BootstrapUser>,
}

impl KafkaOptions {
    /// No listener.
    pub fn off() -> KafkaOptions {
        KafkaOptions {
            listen: KafkaListen::Off,
            advertise: None,
            sasl: false,
            bootstrap_user: None,
        }
    }

    /// What the listener would refuse, refused before anything starts.
    /// `embedded`: the topics are this process's, not a broker's.
    pub fn check(&self, access: &Access, embedded: bool) -> Result<()> {
        let explicit = match self.listen {
            KafkaListen::At(addr) => Some(addr),
            _ => None,
        };
        if !embedded {
            if let Some(addr) = explicit {
                bail!("--kafka-listen {addr}: the topics are on the broker given with --brokers; its Kafka clients reach them there");
            }
            if self.sasl {
                bail!("--kafka-sasl: the topics are on the broker given with --brokers, which has its own users");
            }
            return Ok(());
        }
        if self.sasl && self.listen == KafkaListen::Off {
            bail!("--kafka-sasl with --kafka-listen off: there is no Kafka listener to authenticate for");
        }
        if !cfg!(feature = "kafka-listener") && (explicit.is_some() || self.sasl) {
            bail!("--kafka-listen, --kafka-sasl: this harness was built without the Kafka listener; run it with `cargo run --release -p harness --features kafka-listener -- up`");
        }
        let Some(addr) = explicit else {
            return Ok(());
        };
        if !addr.ip().is_loopback() && !self.sasl && !access.allows_unauthenticated() {
            bail!(
                "refusing to serve the Kafka API on {addr} (from --kafka-listen) without \
                 authentication: anyone who can reach it could read and write every topic. Require \
                 SASL (--kafka-sasl, with users from `harness user create NAME` or \
                 {BOOTSTRAP_USER_ENV}=NAME:PASSWORD), serve on 127.0.0.1, or pass \
                 --allow-unauthenticated if this network is trusted"
            );
        }
        if addr.ip().is_unspecified() && self.advertise.is_none() {
            bail!("--kafka-listen {addr} listens on every interface: say where clients reach it with --advertise-kafka-addr HOST[:PORT]");
        }
        Ok(())
    }
}

/// Where clients reach the listener, and how: the line `up` announces it
/// with.
#[derive(Clone, Debug)]
pub struct KafkaEndpoint {
    /// What Metadata gives clients.
    pub address: String,
    pub sasl: bool,
    pub tls: bool,
}

impl KafkaEndpoint {
    /// librdkafka's `security.protocol`.
    pub fn protocol(&self) -> &'static str {
        match (self.sasl, self.tls) {
            (false, false) => "PLAINTEXT",
            (false, true) => "SSL",
            (true, false) => "SASL_PLAINTEXT",
            (true, true) => "SASL_SSL",
        }
    }
}

impl std::fmt::Display for KafkaEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let address = &self.address;
        if !self.sasl && !self.tls {
            return write!(f, "{address} (kcat -b {address}, rpk -X brokers={address})");
        }
        let protocol = self.protocol();
        write!(
            f,
            "{address} ({protocol}: kcat -b {address} -X security.protocol={protocol}"
        )?;
        if self.sasl {
            write!(
                f,
                " -X sasl.mechanism=SCRAM-SHA-256 -X sasl.username=USER -X sasl.password=PASSWORD"
            )?;
        }
        if self.tls {
            write!(f, " -X ssl.ca.location=CA.pem")?;
        }
        write!(f, ")")
    }
}

/// `--advertise-kafka-addr`: HOST or HOST:PORT; without a port (or with
/// 0), the port bound.
#[cfg(feature = "kafka-listener")]
fn advertised(advertise: Option<&str>, bound: SocketAddr) -> String {
    let Some(address) = advertise else {
        return bound.to_string();
    };
    match address.rsplit_once(':') {
        Some((host, port)) if port.parse::<u16>().is_ok_and(|p| p != 0) => {
            format!("{host}:{port}")
        }
        Some((host, port)) if port.parse::<u16>().is_ok() => format!("{host}:{}", bound.port()),
        _ => format!("{address}:{}", bound.port()),
    }
}

/// The listener, while it serves.
#[cfg(feature = "kafka-listener")]
pub struct Served(kafka_listener::Listener, KafkaEndpoint);

#[cfg(feature = "kafka-listener")]
impl Served {
    pub fn endpoint(&self) -> KafkaEndpoint {
        self.1.clone()
    }

    /// Stops accepting, and cuts the connections open.
    pub fn stop(self) {
        drop(self.0);
    }
}

/// A harness built without the listener never serves one.
#[cfg(not(feature = "kafka-listener"))]
pub enum Served {}

#[cfg(not(feature = "kafka-listener"))]
impl Served {
    pub fn endpoint(&self) -> KafkaEndpoint {
        match *self {}
    }

    pub fn stop(self) {
        match self {}
    }
}

/// Serves the embedded topics as `options` ask, over TLS if `access` has
/// it; nothing on a broker's.
pub fn start(kept: &dyn Kept, options: &KafkaOptions, access: &Access) -> Result<Option<Served>> {
    options.check(access, kept.embedded().is_some())?;
    match kept.embedded() {
        Some(topics) => serve(topics, options, access),
        None => Ok(None),
    }
}

#[cfg(feature = "kafka-listener")]
fn serve(
    topics: &topics::Topics,
    options: &KafkaOptions,
    access: &Access,
) -> Result<Option<Served>> {
    use anyhow::Context;
    use std::net::Ipv4Addr;
    let users = kafka_listener::Users::new(topics.clone());
    if let Some(user) = &options.bootstrap_user {
        if !users.list().contains(&user.name) {
            let mechanism = user.mechanism.parse().map_err(anyhow::Error::msg)?;
            users
                .create(&user.name, &user.password, mechanism)
                .with_context(|| format!("{BOOTSTRAP_USER_ENV}: creating {}", user.name))?;
            eprintln!(
                "created the Kafka user {} ({BOOTSTRAP_USER_ENV})",
                user.name
            );
        }
    }
    let bound = match options.listen {
        KafkaListen::Off => return Ok(None),
        KafkaListen::At(addr) => kafka_listener::bind(addr)?,
        KafkaListen::Default => {
            let redpanda = SocketAddr::from((Ipv4Addr::LOCALHOST, KAFKA_PORT));
            match kafka_listener::bind(redpanda) {
                Ok(bound) => bound,
                Err(_) => kafka_listener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))?,
            }
        }
    };
    // Clients go where Metadata sends them: the address bound, unless told.
    let address = advertised(options.advertise.as_deref(), bound.local_addr()?);
    let url = format!("tcp://{address}")
        .parse()
        .with_context(|| format!("--advertise-kafka-addr {address}: not HOST[:PORT]"))?;
    if options.sasl && users.list().is_empty() {
        eprintln!(
            "the Kafka API requires SASL and has no users yet: create one with `harness user create NAME`"
        );
    }
    let storage = kafka_listener::TopicStorage::new(topics.clone(), "harness-up", 0, url);
    let security = kafka_listener::Security {
        sasl: options.sasl,
        tls: access.tls().cloned(),
    };
    let endpoint = KafkaEndpoint {
        address,
        sasl: security.sasl,
        tls: security.tls.is_some(),
    };
    let listener = kafka_listener::serve(bound, storage, security)?;
    Ok(Some(Served(listener, endpoint)))
}

#[cfg(not(feature = "kafka-listener"))]
fn serve(_: &topics::Topics, _: &KafkaOptions, _: &Access) -> Result<Option<Served>> {
    Ok(None)
}

/// The users of `rpk security user` and `harness user`, kept with the
/// embedded topics; none on a broker's, or without the listener.
pub fn users(kept: &dyn Kept) -> Option<Arc<dyn admin::Users>> {
    #[cfg(feature = "kafka-listener")]
    if let Some(topics) = kept.embedded() {
        return Some(Arc::new(KafkaUsers(kafka_listener::Users::new(
            topics.clone(),
        ))));
    }
    let _ = kept;
    None
}

#[cfg(feature = "kafka-listener")]
struct KafkaUsers(kafka_listener::Users);

#[cfg(feature = "kafka-listener")]
impl KafkaUsers {
    fn refusal(e: kafka_listener::UserError) -> admin::ApiError {
        use kafka_listener::UserError;
        let status = match e {
            UserError::Invalid(_) => 400,
            UserError::NotFound(_) => 404,
            UserError::Store(_) => 500,
        };
        admin::ApiError::new(status, e.to_string())
    }

    fn mechanism(user: &admin::NewUser) -> Result<kafka_listener::Mechanism, admin::ApiError> {
        user.algorithm.parse().map_err(admin::ApiError::bad_request)
    }
}

#[cfg(feature = "kafka-listener")]
impl admin::Users for KafkaUsers {
    fn list(&self) -> Result<Vec<String>, admin::ApiError> {
        Ok(self.0.list())
    }

    fn create(&self, name: &str, user: admin::NewUser) -> Result<(), admin::ApiError> {
        let mechanism = Self::mechanism(&user)?;
        self.0
            .create(name, &user.password, mechanism)
            .map_err(Self::refusal)
    }

    fn update(&self, name: &str, user: admin::NewUser) -> Result<(), admin::ApiError> {
        let mechanism = Self::mechanism(&user)?;
        self.0
            .update(name, &user.password, mechanism)
            .map_err(Self::refusal)
    }

    fn delete(&self, name: &str) -> Result<(), admin::ApiError> {
        self.0.delete(name).map_err(Self::refusal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bootstrap_user_is_redpandas_name_password_and_mechanism() {
        let user = BootstrapUser::parse("alice:pa:ss").unwrap();
        assert_eq!(
            (user.name.as_str(), user.password.as_str()),
            ("alice", "pa:ss")
        );
        assert_eq!(user.mechanism, "SCRAM-SHA-256");
        let user = BootstrapUser::parse("bob:secret:scram-sha-512").unwrap();
        assert_eq!(
            (user.password.as_str(), user.mechanism.as_str()),
            ("secret", "scram-sha-512")
        );
        assert!(BootstrapUser::parse("no-password").is_err());
    }

    #[cfg(feature = "kafka-listener")]
    #[test]
    fn an_advertised_address_without_a_port_takes_the_port_bound() {
        let bound: SocketAddr = "0.0.0.0:40123".parse().unwrap();
        assert_eq!(advertised(None, bound), "0.0.0.0:40123");
        assert_eq!(advertised(Some("kafka.lan"), bound), "kafka.lan:40123");
        assert_eq!(advertised(Some("kafka.lan:0"), bound), "kafka.lan:40123");
        assert_eq!(
            advertised(Some("kafka.lan:19092"), bound),
            "kafka.lan:19092"
        );
    }

    #[cfg(feature = "kafka-listener")]
    #[test]
    fn beyond_loopback_needs_sasl_and_an_advertised_address() {
        let options = |listen: &str, sasl: bool, advertise: Option<&str>| KafkaOptions {
            listen: listen.parse().unwrap(),
            advertise: advertise.map(str::to_string),
            sasl,
            bootstrap_user: None,
        };
        let open = Access::open();
        let e = options("192.0.2.1:9092", false, None)
            .check(&open, true)
            .unwrap_err();
        assert!(e.to_string().contains("--kafka-sasl"), "{e}");
        let trusted = Access::open().allowing_unauthenticated();
        options("192.0.2.1:9092", false, None)
            .check(&trusted, true)
            .unwrap();
        options("192.0.2.1:9092", true, None)
            .check(&open, true)
            .unwrap();
        let e = options("0.0.0.0:9092", true, None)
            .check(&open, true)
            .unwrap_err();
        assert!(e.to_string().contains("--advertise-kafka-addr"), "{e}");
        options("0.0.0.0:9092", true, Some("kafka.lan:9092"))
            .check(&open, true)
            .unwrap();
        let e = options("off", true, None).check(&open, true).unwrap_err();
        assert!(e.to_string().contains("no Kafka listener"), "{e}");
        let e = options("127.0.0.1:9092", false, None)
            .check(&open, false)
            .unwrap_err();
        assert!(e.to_string().contains("--brokers"), "{e}");
    }
}
