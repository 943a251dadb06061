//! `--kafka-listen`: the embedded topics served to Kafka clients (kcat,
//! rpk, confluent-kafka, a Connect worker) by the `kafka-listener` crate,
//! in a harness built with `--features kafka-listener`.

use std::net::SocketAddr;

use anyhow::{bail, Result};

use crate::kept::Kept;

/// Redpanda's Kafka API port.
pub const KAFKA_PORT: u16 = 9092;

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

/// The listener, while it serves.
#[cfg(feature = "kafka-listener")]
pub struct Served(kafka_listener::Listener);

#[cfg(feature = "kafka-listener")]
impl Served {
    pub fn local_addr(&self) -> SocketAddr {
        self.0.local_addr()
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
    pub fn local_addr(&self) -> SocketAddr {
        match *self {}
    }

    pub fn stop(self) {
        match self {}
    }
}

/// Serves the embedded topics as `listen` asks; nothing on a broker's.
pub fn start(kept: &dyn Kept, listen: KafkaListen) -> Result<Option<Served>> {
    let Some(topics) = kept.embedded() else {
        if let KafkaListen::At(addr) = listen {
            bail!("--kafka-listen {addr}: the topics are on the broker given with --brokers; its Kafka clients reach them there");
        }
        return Ok(None);
    };
    if let KafkaListen::At(addr) = listen {
        if !addr.ip().is_loopback() {
            bail!("--kafka-listen {addr}: the Kafka listener serves this machine only (a loopback address such as 127.0.0.1:{KAFKA_PORT}); clients beyond it need SASL, which it does not have yet");
        }
    }
    serve(topics, listen)
}

#[cfg(feature = "kafka-listener")]
fn serve(topics: &topics::Topics, listen: KafkaListen) -> Result<Option<Served>> {
    use std::net::Ipv4Addr;
    let bound = match listen {
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
    // Clients go where Metadata sends them: the address bound.
    let advertised = format!("tcp://{}", bound.local_addr()?).parse()?;
    let storage = kafka_listener::TopicStorage::new(topics.clone(), "harness-up", 0, advertised);
    kafka_listener::serve(bound, storage).map(|listener| Some(Served(listener)))
}

#[cfg(not(feature = "kafka-listener"))]
fn serve(_: &topics::Topics, listen: KafkaListen) -> Result<Option<Served>> {
    if let KafkaListen::At(addr) = listen {
        bail!("--kafka-listen {addr}: this harness was built without the Kafka listener; run it with `cargo run --release -p harness --features kafka-listener -- up`");
    }
    Ok(None)
}
