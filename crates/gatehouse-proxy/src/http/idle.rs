//! A body that fails when no frame has moved for a while: a backend that sends its headers and
//! then stalls, or a client that stops sending its upload, is cut off after the listener's
//! `idleTimeout` instead of holding both connections forever.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

/// The error an idle body ends with.
#[derive(Debug)]
pub(crate) struct IdleTimeout(Duration);

impl std::fmt::Display for IdleTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "no body bytes for {:?}", self.0)
    }
}

impl std::error::Error for IdleTimeout {}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// `inner`, failing with [`IdleTimeout`] after `timeout` without a frame.
pub(crate) struct Idle<B> {
    inner: B,
    timeout: Duration,
    last: Instant,
    /// Armed the first time the inner body has nothing ready (most small bodies never do),
    /// and moved to `last + timeout` only when the body waits again after bytes moved.
    timer: Option<Pin<Box<Sleep>>>,
}

impl<B> Idle<B> {
    pub(crate) fn new(inner: B, timeout: Duration) -> Self {
        Idle {
            inner,
            timeout,
            last: Instant::now(),
            timer: None,
        }
    }
}

impl<B> Body for Idle<B>
where
    B: Body + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = B::Data;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.last = Instant::now();
                return Poll::Ready(frame.map(|r| r.map_err(Into::into)));
            }
            Poll::Pending => {}
        }
        let deadline = this.last + this.timeout;
        let timer = this
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if timer.deadline() != deadline {
            timer.as_mut().reset(deadline);
        }
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(IdleTimeout(this.timeout))))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
