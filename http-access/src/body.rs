//! A request body that must keep coming: a client that stops sending in
//! the middle of one is cut off, instead of holding a task and its buffer
//! open for ever.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::{Body, Frame, Incoming, SizeHint};
use tokio::time::{Instant, Sleep};

/// What the routes of a server read: the client's body, each part due
/// within [`Timeouts::body`](crate::Timeouts::body) of the last.
pub struct RequestBody {
    inner: Incoming,
    idle: Duration,
    deadline: Pin<Box<Sleep>>,
}

impl RequestBody {
    pub(crate) fn new(inner: Incoming, idle: Duration) -> RequestBody {
        RequestBody {
            inner,
            idle,
            deadline: Box::pin(tokio::time::sleep(idle)),
        }
    }
}

/// The client sent nothing for too long.
#[derive(Debug)]
pub struct Stalled(Duration);

impl std::fmt::Display for Stalled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the client sent nothing of the request's body for {} s",
            self.0.as_secs_f64()
        )
    }
}

impl std::error::Error for Stalled {}

impl Body for RequestBody {
    type Data = bytes::Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.deadline.as_mut().reset(Instant::now() + this.idle);
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => match this.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(Stalled(this.idle).into()))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
