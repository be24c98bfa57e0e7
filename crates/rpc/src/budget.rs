//! A byte budget per connection for answers the client has not taken yet.
//!
//! Over WebSocket, jsonrpsee reads a client's requests as they come and runs each at
//! once; an answer then waits until the connection's outgoing buffer (a bounded number
//! of messages) has room. A client that sends and never reads therefore piles up
//! finished answers in memory (300 unread `eth_getLogs` answers grew a node by 130
//! MiB). This middleware counts, per connection, the bytes of answers produced and not
//! yet handed to the outgoing buffer. Past the budget, a new call is refused at once
//! with -32005 (nothing is computed), and an answer that would cross it is replaced by
//! that error (its memory is freed). What remains bounded per connection is the budget
//! plus the outgoing buffer (`ServerLimits::message_buffer`), and a client that does
//! not answer the server's WebSocket pings is disconnected (`ServerLimits::ws_ping`),
//! which frees both.

use jsonrpsee::core::middleware::{Batch, Notification, RpcServiceT};
use jsonrpsee::core::server::ResponsePayload;
use jsonrpsee::types::{ErrorObjectOwned, Request};
use jsonrpsee::MethodResponse;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// The middleware: one per connection (jsonrpsee builds the service per connection).
#[derive(Clone)]
pub struct Budget<S> {
    inner: S,
    unsent: Arc<AtomicUsize>,
    limit: usize,
}

impl<S> Budget<S> {
    pub fn new(inner: S, limit: usize) -> Self {
        Self { inner, unsent: Arc::default(), limit }
    }
}

fn over_budget(limit: usize, unsent: usize) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(
        -32005,
        format!(
            "this connection holds {unsent} bytes of answers it has not read (limit {limit}); read them before sending more"
        ),
        None::<()>,
    )
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    result: Option<&'a RawValue>,
}

/// Counts `resp` against the budget until it is handed to the connection's buffer;
/// an answer that does not fit is replaced by the error.
fn track(
    resp: MethodResponse,
    unsent: &Arc<AtomicUsize>,
    limit: usize,
    id: jsonrpsee::types::Id<'static>,
) -> MethodResponse {
    if !resp.is_method_call() || !resp.is_success() {
        return resp;
    }
    let size = resp.as_json().get().len();
    let before = unsent.fetch_add(size, Ordering::AcqRel);
    if before + size > limit {
        unsent.fetch_sub(size, Ordering::AcqRel);
        return MethodResponse::error(id, over_budget(limit, before));
    }
    // Rebuilt with a completion notice, so that the bytes are released once the answer
    // is in the outgoing buffer (or the connection is gone).
    let json = resp.to_json();
    let Ok(envelope) = serde_json::from_str::<Envelope<'_>>(json.get()) else {
        unsent.fetch_sub(size, Ordering::AcqRel);
        return resp;
    };
    let Some(result) = envelope.result else {
        unsent.fetch_sub(size, Ordering::AcqRel);
        return resp;
    };
    let (payload, done) = ResponsePayload::success(result).notify_on_completion();
    let rebuilt = MethodResponse::response(id, payload, usize::MAX).with_extensions(resp.extensions().clone());
    let unsent = unsent.clone();
    tokio::spawn(async move {
        let _ = done.await;
        unsent.fetch_sub(size, Ordering::AcqRel);
    });
    rebuilt
}

impl<S> RpcServiceT for Budget<S>
where
    S: RpcServiceT<
            MethodResponse = MethodResponse,
            BatchResponse = MethodResponse,
            NotificationResponse = MethodResponse,
        > + Send
        + Sync
        + Clone
        + 'static,
{
    type MethodResponse = MethodResponse;
    type BatchResponse = MethodResponse;
    type NotificationResponse = MethodResponse;

    fn call<'a>(&self, req: Request<'a>) -> impl std::future::Future<Output = Self::MethodResponse> + Send + 'a {
        let inner = self.inner.clone();
        let unsent = self.unsent.clone();
        let limit = self.limit;
        async move {
            let id = req.id().into_owned();
            let now = unsent.load(Ordering::Acquire);
            if now >= limit {
                return MethodResponse::error(id, over_budget(limit, now));
            }
            let resp = inner.call(req).await;
            track(resp, &unsent, limit, id)
        }
    }

    fn batch<'a>(&self, batch: Batch<'a>) -> impl std::future::Future<Output = Self::BatchResponse> + Send + 'a {
        // A batch answer is bounded by the response size limit; it is not counted.
        self.inner.batch(batch)
    }

    fn notification<'a>(
        &self,
        n: Notification<'a>,
    ) -> impl std::future::Future<Output = Self::NotificationResponse> + Send + 'a {
        self.inner.notification(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonrpsee::types::Id;

    /// An inner service whose every answer is `size` bytes.
    #[derive(Clone)]
    struct Big(usize);

    impl RpcServiceT for Big {
        type MethodResponse = MethodResponse;
        type BatchResponse = MethodResponse;
        type NotificationResponse = MethodResponse;

        fn call<'a>(&self, req: Request<'a>) -> impl std::future::Future<Output = MethodResponse> + Send + 'a {
            let answer = "x".repeat(self.0);
            async move { MethodResponse::response(req.id().into_owned(), ResponsePayload::success(answer), usize::MAX) }
        }

        fn batch<'a>(&self, _: Batch<'a>) -> impl std::future::Future<Output = MethodResponse> + Send + 'a {
            std::future::ready(MethodResponse::error(
                Id::Null,
                ErrorObjectOwned::owned(-32600, "no batches", None::<()>),
            ))
        }

        fn notification<'a>(
            &self,
            _: Notification<'a>,
        ) -> impl std::future::Future<Output = MethodResponse> + Send + 'a {
            std::future::ready(MethodResponse::notification())
        }
    }

    fn request(i: u64) -> Request<'static> {
        Request::owned("eth_getLogs".into(), None, Id::Number(i))
    }

    #[tokio::test]
    async fn unread_answers_are_bounded_and_released_once_taken() {
        let budget = Budget::new(Big(400_000), 1_000_000);
        // Answers held (not handed to the connection's buffer) count against the budget.
        let mut held = Vec::new();
        for i in 0..2 {
            let r = budget.call(request(i)).await;
            assert!(r.is_success(), "answer {i} fits");
            held.push(r);
        }
        // A third would cross 1 MB: replaced by the error, and its memory not kept.
        let r = budget.call(request(2)).await;
        assert_eq!(r.as_error_code(), Some(-32005), "{}", r.as_json());
        assert!(r.as_json().get().len() < 1_000, "the big answer was dropped");
        assert!(budget.unsent.load(Ordering::Acquire) <= 1_000_000);
        // Taking the answers (here: dropping them, as a closed connection does) frees
        // the budget; the release runs on a task, so wait for it (bounded).
        drop(held);
        tokio::time::timeout(std::time::Duration::from_secs(10), async {
            while budget.unsent.load(Ordering::Acquire) != 0 {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("released");
        assert!(budget.call(request(3)).await.is_success(), "answers again");
        // Past the budget a call is refused before any work is done.
        budget.unsent.store(2_000_000, Ordering::Release);
        assert_eq!(budget.call(request(4)).await.as_error_code(), Some(-32005));
    }
}
