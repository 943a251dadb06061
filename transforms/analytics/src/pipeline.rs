//! The transforms' per-record logic, transport-free: the wasm binaries wrap
//! these in Redpanda's ABI, the benchmarks and tests call them natively.

use crate::avro::{enrich_value, NoRegistry, Schemas};
use crate::config::Config;
use crate::event::{check_record_size, EventRef, RecordMeta, Rejection};
use crate::pane::{Contribution, Pane, PaneBuilder};

/// Where one input record goes.
pub enum Routed<'a> {
    /// An enriched event for `events`.
    Event { key: &'a [u8], value: &'a [u8] },
    /// The record goes to the dead-letter topic as it is, with this reason.
    Rejected(Rejection),
}

/// The deployable transform: enrich every record and aggregate the valid ones.
pub struct Pipeline {
    config: Config,
    schemas: Box<dyn Schemas>,
    panes: PaneBuilder,
    key: String,
    value: Vec<u8>,
}

impl Pipeline {
    pub fn new(config: Config) -> Pipeline {
        Pipeline {
            panes: PaneBuilder::new(&config),
            config,
            schemas: Box::new(NoRegistry),
            key: String::new(),
            value: Vec::with_capacity(512),
        }
    }

    /// Where the writer schemas of Avro values come from.
    pub fn with_schemas(mut self, schemas: Box<dyn Schemas>) -> Pipeline {
        self.schemas = schemas;
        self
    }

    pub fn record(&mut self, offset: i64, meta: RecordMeta, value: Option<&[u8]>) -> Routed<'_> {
        let event = match enrich_value(value, meta, &self.config, self.schemas.as_mut()) {
            Ok(event) => event,
            Err(rejection) => return Routed::Rejected(rejection),
        };
        self.panes.add(Contribution {
            offset,
            campaign: &event.campaign_id,
            channel: &event.channel,
            kind: event.event,
            ts_ms: event.ts_ms,
            cost_micros: event.cost_micros,
            revenue_micros: event.revenue_micros.unwrap_or(0),
            user_id: &event.user_id,
        });
        event.write_json(&mut self.value);
        self.key.clear();
        self.key.push_str(&event.campaign_id);
        self.key.push('|');
        self.key.push_str(&event.channel);
        Routed::Event {
            key: self.key.as_bytes(),
            value: &self.value,
        }
    }

    /// Whether the open panes must be emitted before the next record.
    pub fn must_flush(&self) -> bool {
        self.panes.must_flush()
    }

    /// Emits the open panes: at the end of a batch, or when [`Pipeline::must_flush`].
    pub fn flush<E>(&mut self, emit: impl FnMut(Pane) -> Result<(), E>) -> Result<(), E> {
        self.panes.flush(&self.config, emit)
    }

    pub fn finish_batch(&mut self) -> Vec<Pane> {
        self.panes.finish_batch(&self.config)
    }
}

/// The standalone aggregate transform over `events`.
pub struct Aggregator {
    config: Config,
    panes: PaneBuilder,
}

impl Aggregator {
    pub fn new(config: Config) -> Aggregator {
        Aggregator {
            panes: PaneBuilder::new(&config),
            config,
        }
    }

    pub fn record(
        &mut self,
        offset: i64,
        meta: RecordMeta,
        value: Option<&[u8]>,
    ) -> Result<(), Rejection> {
        check_record_size(meta, &self.config)?;
        let event = EventRef::parse(value)?;
        self.panes.add(Contribution {
            offset,
            campaign: &event.campaign_id,
            channel: &event.channel,
            kind: event.event,
            ts_ms: event.ts_ms,
            cost_micros: event.cost_micros,
            revenue_micros: event.revenue_micros,
            user_id: &event.user_id,
        });
        Ok(())
    }

    pub fn must_flush(&self) -> bool {
        self.panes.must_flush()
    }

    pub fn flush<E>(&mut self, emit: impl FnMut(Pane) -> Result<(), E>) -> Result<(), E> {
        self.panes.flush(&self.config, emit)
    }
}

/// A pane as a `results` record: key and JSON value.
pub fn pane_record(pane: &Pane) -> (String, Vec<u8>) {
    (
        pane.key(),
        serde_json::to_vec(pane).expect("a pane always serialises"),
    )
}
