//! A byte budget per connection for answers the client has not read yet.
//!
//! jsonrpsee reads a WebSocket client's requests as they come and runs each at once;
//! finished answers queue in the connection's outgoing buffer (a bounded number of
//! *messages*, of any size) until the socket takes them. A client that sends and never
//! reads therefore piles up answers in memory (300 unread `eth_getLogs` answers grew a
//! node by 130 MiB, and a message bound does not bound bytes).
//!
//! So each connection has a [`Backlog`]: the bytes of answers produced for it and not
//! yet written to its socket. The RPC middleware ([`Budget`]) adds each answer's size
//! when it is produced; the connection's stream ([`Counted`], under hyper and the
//! WebSocket framing) takes off what the socket accepts. A connection whose backlog
//! would pass the budget is disconnected: its next read or write fails, the server
//! drops the connection with everything queued for it, and the memory is freed. One
//! answer larger than the budget is still delivered to a client with nothing unread
//! (answers are bounded by the response size limit), so the most one connection holds
//! is the budget plus one answer. Subscription notifications are not counted: they
//! never wait (a full buffer ends the subscription, `pubsub`).
//!
//! Answers being computed are not in the backlog yet, so a connection also runs at
//! most a bounded number of calls at once ([`Backlog::new`]); the others wait for a
//! turn, holding only their request. Per connection, memory is thus bounded by the
//! budget, one answer, and the answers of the calls running.

use jsonrpsee::core::middleware::{Batch, Notification, RpcServiceT};
use jsonrpsee::types::{ErrorObjectOwned, Request};
use jsonrpsee::MethodResponse;
use parking_lot::Mutex;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// One connection's unread answers.
#[derive(Debug)]
pub struct Backlog {
    unsent: AtomicUsize,
    closed: AtomicBool,
    /// The task reading the connection, woken to notice a close.
    reader: Mutex<Option<Waker>>,
    /// Calls this connection may run at once.
    running: tokio::sync::Semaphore,
}

impl Default for Backlog {
    fn default() -> Self {
        Self::new(DEFAULT_CALLS_PER_CONNECTION)
    }
}

/// Calls one connection runs at once by default.
pub const DEFAULT_CALLS_PER_CONNECTION: usize = 16;

impl Backlog {
    /// A connection that runs at most `calls` calls at once.
    pub fn new(calls: usize) -> Self {
        Self {
            unsent: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            reader: Mutex::new(None),
            running: tokio::sync::Semaphore::new(calls.max(1)),
        }
    }

    /// Bytes produced and not yet written to the socket.
    pub fn unsent(&self) -> usize {
        self.unsent.load(Ordering::Acquire)
    }

    /// Whether the connection was cut for passing its budget.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Counts `size` more bytes of answers; `false` (and the connection is closed) when
    /// that passes `limit` while other answers are still unread.
    fn produced(&self, size: usize, limit: usize) -> bool {
        let before = self.unsent.fetch_add(size, Ordering::AcqRel);
        if before > 0 && before + size > limit {
            self.unsent.fetch_sub(size, Ordering::AcqRel);
            self.close();
            return false;
        }
        true
    }

    /// The socket took `n` bytes (answers and framing: saturating at zero).
    fn written(&self, n: usize) {
        let _ = self.unsent.fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| Some(u.saturating_sub(n)));
    }

    fn close(&self) {
        if !self.closed.swap(true, Ordering::AcqRel) {
            tracing::debug!(unsent = self.unsent(), "disconnecting a client that does not read its answers");
            if let Some(w) = self.reader.lock().take() {
                w.wake();
            }
        }
    }
}

fn cut() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::ConnectionAborted, "the client left too many answers unread")
}

/// A connection's byte stream, counting what the socket accepts against its
/// [`Backlog`] and failing once the backlog closed the connection.
pub struct Counted<S> {
    inner: S,
    backlog: Arc<Backlog>,
}

impl<S> Counted<S> {
    pub fn new(inner: S, backlog: Arc<Backlog>) -> Self {
        Self { inner, backlog }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        if self.backlog.is_closed() {
            return Poll::Ready(Err(cut()));
        }
        {
            let mut reader = self.backlog.reader.lock();
            if !reader.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                *reader = Some(cx.waker().clone());
            }
        }
        if self.backlog.is_closed() {
            return Poll::Ready(Err(cut()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        if self.backlog.is_closed() {
            return Poll::Ready(Err(cut()));
        }
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = polled {
            self.backlog.written(n);
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        if self.backlog.is_closed() {
            return Poll::Ready(Err(cut()));
        }
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = polled {
            self.backlog.written(n);
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The middleware: one per connection, sharing the connection's [`Backlog`].
#[derive(Clone)]
pub struct Budget<S> {
    inner: S,
    backlog: Arc<Backlog>,
    limit: usize,
}

impl<S> Budget<S> {
    pub fn new(inner: S, backlog: Arc<Backlog>, limit: usize) -> Self {
        Self { inner, backlog, limit }
    }
}

fn over_budget(limit: usize, unsent: usize) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(
        -32005,
        format!(
            "this connection holds {unsent} bytes of answers it has not read (limit {limit}); it is being disconnected"
        ),
        None::<()>,
    )
}

/// Counts an answer; one that passes the budget is replaced by the error (its memory
/// freed) and the connection is cut.
fn track(resp: MethodResponse, backlog: &Backlog, limit: usize, id: jsonrpsee::types::Id<'static>) -> MethodResponse {
    let size = resp.as_json().get().len();
    if backlog.produced(size, limit) {
        return resp;
    }
    MethodResponse::error(id, over_budget(limit, backlog.unsent()))
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
        let backlog = self.backlog.clone();
        let limit = self.limit;
        async move {
            let id = req.id().into_owned();
            // The semaphore is never closed; a failure would only mean no bound.
            let _turn = backlog.running.acquire().await.ok();
            let now = backlog.unsent();
            if now >= limit || backlog.is_closed() {
                // Nothing is computed for a connection past its budget.
                backlog.close();
                return MethodResponse::error(id, over_budget(limit, now));
            }
            let resp = inner.call(req).await;
            track(resp, &backlog, limit, id)
        }
    }

    fn batch<'a>(&self, batch: Batch<'a>) -> impl std::future::Future<Output = Self::BatchResponse> + Send + 'a {
        let inner = self.inner.clone();
        let backlog = self.backlog.clone();
        let limit = self.limit;
        async move {
            let _turn = backlog.running.acquire().await.ok();
            if backlog.is_closed() {
                return MethodResponse::error(jsonrpsee::types::Id::Null, over_budget(limit, backlog.unsent()));
            }
            let resp = inner.batch(batch).await;
            if !backlog.produced(resp.as_json().get().len(), limit) {
                return MethodResponse::error(jsonrpsee::types::Id::Null, over_budget(limit, backlog.unsent()));
            }
            resp
        }
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
    use jsonrpsee::core::server::ResponsePayload;
    use jsonrpsee::types::Id;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

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
    async fn unread_answers_are_bounded_and_the_connection_is_cut_past_the_budget() {
        let backlog = Arc::new(Backlog::default());
        let budget = Budget::new(Big(400_000), backlog.clone(), 1_000_000);
        // Unwritten answers count against the budget.
        for i in 0..2 {
            assert!(budget.call(request(i)).await.is_success(), "answer {i} fits");
        }
        assert!(backlog.unsent() > 800_000);
        // A third would pass 1 MB: replaced by the error, and the connection is cut.
        let r = budget.call(request(2)).await;
        assert_eq!(r.as_error_code(), Some(-32005), "{}", r.as_json());
        assert!(r.as_json().get().len() < 1_000, "the big answer was dropped");
        assert!(backlog.unsent() <= 1_000_000);
        assert!(backlog.is_closed());
        // Nothing more is computed for it.
        assert_eq!(budget.call(request(3)).await.as_error_code(), Some(-32005));
    }

    #[tokio::test]
    async fn written_bytes_release_the_budget_and_one_big_answer_always_fits() {
        let backlog = Arc::new(Backlog::default());
        // An answer larger than the budget goes to a client with nothing unread.
        let budget = Budget::new(Big(3_000_000), backlog.clone(), 1_000_000);
        assert!(budget.call(request(0)).await.is_success());
        assert!(!backlog.is_closed());
        // What the socket takes is taken off.
        let (client, server) = tokio::io::duplex(64 * 1024);
        let mut stream = Counted::new(server, backlog.clone());
        let mut reader = client;
        let drain = tokio::spawn(async move {
            let mut sink = Vec::new();
            reader.read_to_end(&mut sink).await.map(|_| sink.len())
        });
        stream.write_all(&vec![b'x'; 3_000_100]).await.expect("written");
        stream.shutdown().await.expect("shutdown");
        drop(stream);
        assert_eq!(drain.await.expect("joined").expect("read"), 3_000_100);
        assert_eq!(backlog.unsent(), 0, "saturates at zero");
        assert!(budget.call(request(1)).await.is_success(), "answers again");
    }

    /// An inner service that records how many of its calls run at once.
    #[derive(Clone, Default)]
    struct Slow {
        now: Arc<AtomicUsize>,
        most: Arc<AtomicUsize>,
    }

    impl RpcServiceT for Slow {
        type MethodResponse = MethodResponse;
        type BatchResponse = MethodResponse;
        type NotificationResponse = MethodResponse;

        fn call<'a>(&self, req: Request<'a>) -> impl std::future::Future<Output = MethodResponse> + Send + 'a {
            let (now, most) = (self.now.clone(), self.most.clone());
            async move {
                let running = now.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(running, Ordering::SeqCst);
                for _ in 0..20 {
                    tokio::task::yield_now().await;
                }
                now.fetch_sub(1, Ordering::SeqCst);
                MethodResponse::response(req.id().into_owned(), ResponsePayload::success(1), usize::MAX)
            }
        }

        fn batch<'a>(&self, _: Batch<'a>) -> impl std::future::Future<Output = MethodResponse> + Send + 'a {
            std::future::ready(MethodResponse::error(Id::Null, ErrorObjectOwned::owned(-32600, "no", None::<()>)))
        }

        fn notification<'a>(
            &self,
            _: Notification<'a>,
        ) -> impl std::future::Future<Output = MethodResponse> + Send + 'a {
            std::future::ready(MethodResponse::notification())
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_connection_runs_a_bounded_number_of_calls_at_once() {
        let inner = Slow::default();
        let budget = Budget::new(inner.clone(), Arc::new(Backlog::new(4)), usize::MAX);
        let calls: Vec<_> = (0..64)
            .map(|i| {
                tokio::spawn({
                    let budget = budget.clone();
                    async move { budget.call(request(i)).await.is_success() }
                })
            })
            .collect();
        for c in calls {
            assert!(c.await.expect("joined"), "every call is answered in its turn");
        }
        let most = inner.most.load(Ordering::SeqCst);
        assert!((1..=4).contains(&most), "{most} calls ran at once");
    }

    #[tokio::test]
    async fn a_cut_connection_fails_its_pending_read() {
        let backlog = Arc::new(Backlog::default());
        let (_client, server) = tokio::io::duplex(1024);
        let mut stream = Counted::new(server, backlog.clone());
        let reading = tokio::spawn(async move {
            let mut buf = [0u8; 16];
            stream.read(&mut buf).await
        });
        // The read is pending (the client sends nothing) until the backlog cuts it.
        while backlog.reader.lock().is_none() {
            tokio::task::yield_now().await;
        }
        backlog.close();
        let err = reading.await.expect("joined").expect_err("cut");
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionAborted);
    }
}
