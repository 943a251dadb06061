//! `--alert-webhook URL`: each alert's start and end, posted as JSON, in
//! order, with retries and backoff. The queue is bounded: when the
//! receiver is down for long, the newest changes are dropped and counted,
//! and the merge never waits on it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;

use crate::pacing::AlertEvent;

/// Alert changes waiting to be posted, at most.
pub const QUEUE: usize = 1024;
/// Tries per change, and the first wait between them (doubling, at most 30 s).
const ATTEMPTS: u32 = 6;
const FIRST_BACKOFF: Duration = Duration::from_millis(250);

/// What the webhook has done, for `/metrics`.
#[derive(Debug, Default)]
pub struct Counts {
    pub sent: AtomicU64,
    pub failed: AtomicU64,
    pub dropped: AtomicU64,
}

pub struct Webhook {
    queue: SyncSender<AlertEvent>,
    pub counts: Arc<Counts>,
}

impl Webhook {
    /// Posts to `url` from a thread of its own; `USER:PASSWORD@` in the
    /// URL is sent as Basic credentials.
    pub fn start(url: &str) -> Result<Webhook> {
        let (base, authorization) = http_access::client::split_url(url, "the alert webhook's")
            .map_err(anyhow::Error::msg)?;
        let agent = http_access::client::agent(Duration::from_secs(10), None)?;
        let (queue, events) = sync_channel::<AlertEvent>(QUEUE);
        let counts = Arc::new(Counts::default());
        let done = counts.clone();
        std::thread::Builder::new()
            .name("alert-webhook".into())
            .spawn(move || {
                for event in events {
                    let body = serde_json::to_vec(&event).expect("alerts serialize");
                    let mut backoff = FIRST_BACKOFF;
                    for attempt in 1..=ATTEMPTS {
                        let mut request = agent.post(&base).header("content-type", "application/json");
                        if let Some(a) = &authorization {
                            request = request.header("authorization", a);
                        }
                        match request.send(&body[..]) {
                            Ok(r) if r.status().is_success() => {
                                done.sent.fetch_add(1, Ordering::Relaxed);
                                break;
                            }
                            outcome => {
                                let why = match outcome {
                                    Ok(r) => format!("status {}", r.status()),
                                    Err(e) => e.to_string(),
                                };
                                if attempt == ATTEMPTS {
                                    done.failed.fetch_add(1, Ordering::Relaxed);
                                    tracing::warn!(%base, %why, "alert webhook: gave up on a {} {} of {}", event.state, event.alert.kind, event.alert.campaign);
                                } else {
                                    tracing::debug!(%base, %why, attempt, "alert webhook: retrying");
                                    std::thread::sleep(backoff);
                                    backoff = (backoff * 2).min(Duration::from_secs(30));
                                }
                            }
                        }
                    }
                }
            })?;
        Ok(Webhook { queue, counts })
    }

    /// Queues a change without waiting; a full queue drops it.
    pub fn post(&self, event: AlertEvent) {
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) =
            self.queue.try_send(event)
        {
            self.counts.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}
