//! A request's guest, run inside the task of the connection that carries the request: it is polled
//! until it sets its response, then by the response body until it returns. Before, every request
//! spawned a task of its own and the connection waited on a channel for the response: one more task,
//! and one more wake-up, often on the other core, per request.
//!
//! A guest is never cut off half-way: if its connection goes away first (the client hung up, the
//! host stopped serving), what is left of it moves to a task of its own and runs to its end, so a
//! function that had started work (a mint that started a runner) still finishes or cleans up.

use anyhow::{anyhow, Result};
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, SizeHint};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::sync::oneshot;
use wasmtime_wasi_http::p2::bindings::http::types::ErrorCode;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

/// A guest's whole run: instantiation, then its handler.
pub(crate) type GuestFuture = Pin<Box<dyn Future<Output = Result<()>> + Send>>;

/// What the guest hands back through its `response-outparam`.
pub(crate) type ResponseReceiver = oneshot::Receiver<Result<hyper::Response<HyperOutgoingBody>, ErrorCode>>;

/// A guest that may still be running.
pub(crate) struct Running {
    guest: Option<GuestFuture>,
    /// The component's id, for the log (shared with the loaded component: no copy per request).
    component: Arc<str>,
    /// How the guest failed, if it did.
    failure: Option<anyhow::Error>,
}

impl Running {
    pub(crate) fn new(component: Arc<str>, guest: GuestFuture) -> Running {
        Running { guest: Some(guest), component, failure: None }
    }

    /// Lets the guest run until it waits; ready once it has returned.
    fn poll_guest(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Some(guest) = self.guest.as_mut() else { return Poll::Ready(()) };
        let Poll::Ready(outcome) = guest.as_mut().poll(cx) else { return Poll::Pending };
        self.guest = None;
        if let Err(e) = outcome {
            self.failure = Some(e);
        }
        Poll::Ready(())
    }

    /// Runs the guest until it sets its response; the response's body carries the rest of the run.
    /// An error is how the guest failed before it answered (or that it returned without answering).
    pub(crate) async fn response(
        mut self,
        mut receiver: ResponseReceiver,
    ) -> Result<hyper::Response<HyperOutgoingBody>> {
        let answer = std::future::poll_fn(|cx| {
            let returned = self.poll_guest(cx).is_ready();
            match Pin::new(&mut receiver).poll(cx) {
                Poll::Ready(answer) => Poll::Ready(answer.ok()),
                // The outparam lives in the guest's store, which a returned guest has dropped: the
                // channel is closed by now, so this is only a guard.
                Poll::Pending if returned => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            }
        })
        .await;
        match answer {
            Some(Ok(response)) => Ok(response.map(|body| GuestBody { body, running: self }.boxed_unsync())),
            Some(Err(code)) => Err(anyhow!("the function returned an error code: {code:?}")),
            None => Err(self.failure.take().unwrap_or_else(|| anyhow!("the function never set a response"))),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(e) = self.failure.take() {
            eprintln!("edgeshell-spin-host: component {} failed after answering: {e:#}", self.component);
        }
        let Some(guest) = self.guest.take() else { return };
        // No runtime means the host is going away with the process; the guest goes with it.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let component = self.component.clone();
        runtime.spawn(async move {
            if let Err(e) = guest.await {
                eprintln!("edgeshell-spin-host: component {component} failed after its client left: {e:#}");
            }
        });
    }
}

/// A response body that also drives its guest, which is still writing it.
struct GuestBody {
    body: HyperOutgoingBody,
    running: Running,
}

impl Body for GuestBody {
    type Data = Bytes;
    type Error = wasmtime_wasi_http::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        // The guest first: it produces what the body yields. Once the body ends, hyper drops it, and a
        // guest with work left after its response goes on in a task of its own (`Running::drop`).
        let _ = this.running.poll_guest(cx);
        Pin::new(&mut this.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
