//! Long polls: a Fetch that finds nothing waits for records to be
//! appended to a partition it asks for, and answers as soon as they are, up
//! to the client's `max_wait`, as Kafka's and Redpanda's brokers do.
//!
//! Nisshi's Fetch reads each partition once per round and, finding too
//! little, sleeps half of the time left before the next round; the storage
//! gets a per-partition read budget, not the request. So [`LongPoll`] wraps
//! the request route: a Fetch runs within its [`Window`] (the client's
//! deadline, and the partitions and offsets it asks for), and the storage's
//! first read of the request waits, before reading, until one of those
//! partitions has a record at its offset. Every partition of that round is
//! then read after the record came.

use std::cell::Cell;
use std::time::{Duration, Instant};

use nisshi_sans_io::{Body, Frame, FrameInput};
use nisshi_storage::TopicId;
use rama::Service;

tokio::task_local! {
    static FETCH: Window;
}

/// A partition a Fetch asks for, and the offset it asks from.
pub(crate) type Wanted = (TopicId, i32, i64);

/// One Fetch request's wait.
struct Window {
    until: Instant,
    wanted: Vec<Wanted>,
    /// Whether the storage has looked already: only its first read waits.
    looked: Cell<bool>,
}

/// The request route, with each Fetch inside its window.
#[derive(Clone)]
pub(crate) struct LongPoll<S>(pub(crate) S);

impl<S> Service<FrameInput> for LongPoll<S>
where
    S: Service<FrameInput, Output = Frame>,
{
    type Output = Frame;
    type Error = S::Error;

    async fn serve(&self, input: FrameInput) -> Result<Frame, S::Error> {
        let window = match &input.frame.body {
            // With `min_bytes` 0 too: Nisshi's fetch then still waits out
            // `max_wait` when there is nothing, so it may as well wait for
            // a record.
            Body::FetchRequest(fetch) if fetch.max_wait_ms > 0 => Window {
                until: Instant::now() + Duration::from_millis(fetch.max_wait_ms as u64),
                wanted: fetch
                    .topics
                    .iter()
                    .flatten()
                    .flat_map(|topic| {
                        let id = TopicId::from(topic);
                        topic
                            .partitions
                            .iter()
                            .flatten()
                            .map(move |p| (id.clone(), p.partition, p.fetch_offset))
                    })
                    .collect(),
                looked: Cell::new(false),
            },
            _ => return self.0.serve(input).await,
        };
        FETCH.scope(window, self.0.serve(input)).await
    }
}

/// At the storage's first read of a long poll: the partitions it asks for
/// and until when it may wait for one of them. `None` outside a long poll,
/// and at every later read.
pub(crate) fn first_look() -> Option<(Vec<Wanted>, Instant)> {
    FETCH
        .try_with(|window| {
            (!window.looked.replace(true)).then(|| (window.wanted.clone(), window.until))
        })
        .ok()
        .flatten()
}
