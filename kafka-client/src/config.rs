//! One Kafka client configuration for every command: librdkafka properties
//! as kcat takes them, from (lowest to highest precedence) the environment,
//! `--kafka-config FILE`, `-X KEY=VALUE` and `--brokers`. Secrets never
//! show: the configuration displays them masked.

use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

/// Environment variables that set a property: `KAFKA_SASL_PASSWORD` sets
/// `sasl.password`. Only the connection's properties, where secrets live,
/// so that `KAFKA_HOME` and the like on a machine with Kafka mean nothing.
const ENV_PREFIX: &str = "KAFKA_";
const ENV_PROPERTIES: &[&str] = &["bootstrap.", "security.", "sasl.", "ssl.", "client.id"];

/// Parts of a property's name that make its value a secret.
const SECRET: &[&str] = &[
    "password",
    "secret",
    "key.pem",
    "oauthbearer.config",
    "jaas",
];

/// How long [`check`] waits for a first answer from the cluster.
const CHECK_TIMEOUT: Duration = Duration::from_secs(10);

/// How a command that speaks Kafka is told where and how.
#[derive(Args, Clone, Debug, Default)]
pub struct KafkaArgs {
    /// Kafka bootstrap servers, HOST:PORT[,…]; also bootstrap.servers from -X, --kafka-config or
    /// KAFKA_BOOTSTRAP_SERVERS.
    #[arg(long, value_name = "HOST:PORT[,…]")]
    pub brokers: Option<String>,
    /// A librdkafka property, as kcat takes it (repeatable): -X security.protocol=SASL_SSL
    /// -X sasl.mechanisms=SCRAM-SHA-512 -X ssl.ca.location=ca.pem. Over --kafka-config and the
    /// environment (KAFKA_SASL_PASSWORD sets sasl.password; KAFKA_SECURITY_*, KAFKA_SASL_*,
    /// KAFKA_SSL_*, KAFKA_BOOTSTRAP_SERVERS and KAFKA_CLIENT_ID are read).
    #[arg(short = 'X', value_name = "KEY=VALUE", value_parser = property)]
    pub properties: Vec<(String, String)>,
    /// A file of librdkafka properties, KEY=VALUE a line (# comments), so that secrets stay off the
    /// command line.
    #[arg(long, value_name = "FILE")]
    pub kafka_config: Option<PathBuf>,
}

impl KafkaArgs {
    /// The configuration, or `None` when nothing names the brokers.
    pub fn config(&self) -> Result<Option<KafkaConfig>> {
        let mut config = KafkaConfig::default();
        config.extend(from_env(std::env::vars()));
        if let Some(path) = &self.kafka_config {
            config.extend(read_file(path)?);
        }
        config.extend(self.properties.iter().cloned());
        if let Some(brokers) = &self.brokers {
            config.set("bootstrap.servers", brokers);
        }
        Ok((!config.brokers().is_empty()).then_some(config))
    }

    /// The configuration, which must name the brokers.
    pub fn required(&self) -> Result<KafkaConfig> {
        self.config()?.context(
            "no brokers: give --brokers HOST:PORT (or bootstrap.servers through -X, \
             --kafka-config or KAFKA_BOOTSTRAP_SERVERS)",
        )
    }
}

/// `KEY=VALUE`, for `-X`.
fn property(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_string(), value.to_string()))
        }
        _ => Err(format!("{text:?} is not KEY=VALUE")),
    }
}

/// The properties of a kcat-style file: `KEY=VALUE` lines, `#` comments.
fn read_file(path: &Path) -> Result<Vec<(String, String)>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading --kafka-config {}", path.display()))?;
    parse_properties(&text).with_context(|| format!("--kafka-config {}", path.display()))
}

fn parse_properties(text: &str) -> Result<Vec<(String, String)>> {
    let mut properties = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match property(line) {
            Ok((key, value)) => properties.push((key, value.trim().to_string())),
            Err(_) => bail!("line {}: not KEY=VALUE", n + 1),
        }
    }
    Ok(properties)
}

/// The properties the environment sets.
fn from_env(vars: impl Iterator<Item = (String, String)>) -> Vec<(String, String)> {
    vars.filter_map(|(name, value)| {
        let key = name
            .strip_prefix(ENV_PREFIX)?
            .to_ascii_lowercase()
            .replace('_', ".");
        ENV_PROPERTIES
            .iter()
            .any(|p| key.starts_with(p))
            .then_some((key, value))
    })
    .collect()
}

/// librdkafka properties for every client of a cluster; what the user set
/// goes over our defaults.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct KafkaConfig {
    properties: BTreeMap<String, String>,
}

impl KafkaConfig {
    /// Plain bootstrap servers, nothing else.
    pub fn new(brokers: &str) -> KafkaConfig {
        let mut config = KafkaConfig::default();
        config.set("bootstrap.servers", brokers);
        config
    }

    pub fn set(&mut self, key: &str, value: &str) -> &mut KafkaConfig {
        self.properties.insert(key.to_string(), value.to_string());
        self
    }

    fn extend(&mut self, properties: impl IntoIterator<Item = (String, String)>) {
        self.properties.extend(properties);
    }

    /// The bootstrap servers, for messages.
    pub fn brokers(&self) -> &str {
        self.properties
            .get("bootstrap.servers")
            .map_or("", String::as_str)
    }

    /// A client: our defaults, then every property set.
    pub fn client(&self) -> ClientConfig {
        self.client_with(&[])
    }

    /// A client: our defaults and `defaults`, then every property set.
    pub fn client_with(&self, defaults: &[(&str, &str)]) -> ClientConfig {
        let mut config = ClientConfig::new();
        // A broker that goes away comes back: keep reconnecting, quickly.
        config
            .set("reconnect.backoff.ms", "50")
            .set("reconnect.backoff.max.ms", "1000")
            .set("log_level", "3");
        for (key, value) in defaults {
            config.set(*key, *value);
        }
        for (key, value) in &self.properties {
            config.set(key, value);
        }
        config
    }
}

/// The properties, secrets masked.
impl std::fmt::Display for KafkaConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, (key, value)) in self.properties.iter().enumerate() {
            let shown = if SECRET.iter().any(|s| key.contains(s)) {
                "****"
            } else {
                value
            };
            write!(f, "{}{key}={shown}", if i > 0 { " " } else { "" })?;
        }
        Ok(())
    }
}

/// As `Display`: a configuration in a log or an error never shows a secret.
impl std::fmt::Debug for KafkaConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KafkaConfig({self})")
    }
}

/// The first error librdkafka reports that retrying will not mend:
/// failed authentication, a failed TLS handshake. A metadata request alone
/// would only time out behind librdkafka's retries.
#[derive(Default)]
struct Refusal {
    reason: Mutex<Option<String>>,
    /// The latest transient error, for the message if nothing answers.
    last: Mutex<Option<String>>,
}

/// Words of librdkafka's messages for a refusal that retrying will not
/// mend: a TLS alert from the other side (a client certificate it wants or
/// refuses) names OpenSSL's routines or the handshake.
const LASTING: [&str; 4] = [
    "SSL routines",
    "SSL handshake failed",
    "SASL authentication error",
    "Authentication failed",
];

impl Refusal {
    fn heard(&self, lasting: bool, reason: &str) {
        let lasting = lasting || LASTING.iter().any(|w| reason.contains(w));
        let slot = if lasting { &self.reason } else { &self.last };
        slot.lock().get_or_insert_with(|| reason.to_string());
    }
}

impl ClientContext for Refusal {
    /// Quiet: what fails is said once, in `check`'s error. The log hears
    /// of a refusal on librdkafka's own threads, even when no error event
    /// reaches a poll before the wait is over.
    fn log(&self, _: RDKafkaLogLevel, _: &str, message: &str) {
        self.heard(false, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        let lasting = matches!(
            error.rdkafka_error_code(),
            Some(
                RDKafkaErrorCode::Authentication
                    | RDKafkaErrorCode::SaslAuthenticationFailed
                    | RDKafkaErrorCode::SSL
            )
        );
        self.heard(lasting, reason);
    }
}

impl ConsumerContext for Refusal {}

/// Why a cluster cannot be used, as [`probe`] found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unusable {
    /// It answered and refused: credentials, certificates. Retrying will
    /// not mend it.
    Refused(String),
    /// Nothing answered in time.
    NoAnswer(String),
}

impl std::fmt::Display for Unusable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unusable::Refused(why) | Unusable::NoAnswer(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for Unusable {}

/// Connects and reads the cluster's metadata, waiting at most `wait`.
pub fn probe(config: &KafkaConfig, wait: Duration) -> Result<(), Unusable> {
    let consumer: BaseConsumer<Refusal> = config
        .client()
        .create_with_context(Refusal::default())
        .map_err(|e| {
        Unusable::Refused(format!("the Kafka client configuration ({config}): {e}"))
    })?;
    let deadline = Instant::now() + wait;
    loop {
        let answer = consumer.fetch_metadata(None, Duration::from_millis(500));
        // Errors reach the context only through a poll; there is no message
        // to take, as nothing is assigned.
        let _ = consumer.poll(Duration::ZERO);
        let context = consumer.context();
        if let Some(reason) = context.reason.lock().take() {
            return Err(Unusable::Refused(format!(
                "{} refused the connection: {reason}",
                config.brokers()
            )));
        }
        match answer {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() >= deadline => {
                let last = context.last.lock().take();
                return Err(Unusable::NoAnswer(format!(
                    "no answer from {} within {} s: {}",
                    config.brokers(),
                    wait.as_secs(),
                    last.unwrap_or_else(|| e.to_string())
                )));
            }
            Err(_) => {}
        }
    }
}

/// [`probe`] before a command starts: a wrong password, an unknown user or
/// an untrusted certificate fails within seconds with librdkafka's reason,
/// instead of a command retrying in silence.
pub fn check(config: &KafkaConfig) -> Result<()> {
    Ok(probe(config, CHECK_TIMEOUT)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence_is_environment_file_x_then_brokers() {
        let dir = std::env::temp_dir().join(format!("kafka-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("client.properties");
        std::fs::write(
            &file,
            "# from the file\nsasl.username = file-user\nsasl.password=file-secret\nclient.id=file\n",
        )
        .unwrap();
        let mut config = KafkaConfig::default();
        config.extend(from_env(
            [
                ("KAFKA_SASL_PASSWORD", "env-secret"),
                ("KAFKA_SECURITY_PROTOCOL", "SASL_SSL"),
                ("KAFKA_HOME", "/opt/kafka"),
                ("PATH", "/bin"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string())),
        ));
        config.extend(read_file(&file).unwrap());
        config.extend([("client.id".to_string(), "x".to_string())]);
        config.set("bootstrap.servers", "b:9092");
        assert_eq!(
            config.to_string(),
            "bootstrap.servers=b:9092 client.id=x sasl.password=**** sasl.username=file-user \
             security.protocol=SASL_SSL"
        );
        assert_eq!(config.properties["sasl.password"], "file-secret");
        assert!(!format!("{config:?}").contains("secret"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn bad_properties_are_named() {
        assert!(property("novalue").is_err());
        assert!(property("=x").is_err());
        assert_eq!(property("a.b=c=d").unwrap(), ("a.b".into(), "c=d".into()));
        let e = parse_properties("ok=1\n\nbroken line\n").unwrap_err();
        assert_eq!(e.to_string(), "line 3: not KEY=VALUE");
    }
}
