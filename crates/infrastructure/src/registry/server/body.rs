//! The response body of the registry server: the whole payload in one frame, or, for
//! a `truncateAfterBytes` fault rule (spec 20 §3.4), its first N bytes followed by an
//! error, which makes hyper drop the connection short of the declared
//! `Content-Length`.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};

/// How long the connection stays open after the last byte of a truncated body, so
/// hyper flushes those bytes before the error closes the socket.
const FLUSH_PAUSE: Duration = Duration::from_millis(20);

/// A whole or deliberately truncated body.
pub(crate) struct ReplyBody {
    data: Option<Bytes>,
    /// Set for a truncated body: the pause, then the error.
    cut: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl ReplyBody {
    /// The whole payload.
    pub(crate) fn full(data: Bytes) -> ReplyBody {
        ReplyBody {
            data: Some(data),
            cut: None,
        }
    }

    /// No bytes (HEAD).
    pub(crate) fn empty() -> ReplyBody {
        ReplyBody::full(Bytes::new())
    }

    /// The first `keep` bytes of `data`, then a broken connection. The caller sets the
    /// true `Content-Length` header.
    pub(crate) fn truncated(mut data: Bytes, keep: usize) -> ReplyBody {
        data.truncate(keep);
        ReplyBody {
            data: Some(data),
            cut: Some(Box::pin(tokio::time::sleep(FLUSH_PAUSE))),
        }
    }
}

impl Body for ReplyBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let this = self.get_mut();
        if let Some(data) = this.data.take().filter(|data| !data.is_empty()) {
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        match this.cut.as_mut() {
            Some(pause) => {
                if pause.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                this.cut = None;
                Poll::Ready(Some(Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionAborted,
                    "body truncated by a fault rule",
                ))))
            }
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.cut.is_none() && self.data.as_ref().is_none_or(Bytes::is_empty)
    }

    fn size_hint(&self) -> SizeHint {
        match (&self.cut, &self.data) {
            // Unknown, so hyper takes the length from the Content-Length header.
            (Some(_), _) => SizeHint::default(),
            (None, Some(data)) => SizeHint::with_exact(data.len() as u64),
            (None, None) => SizeHint::with_exact(0),
        }
    }
}
