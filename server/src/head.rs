//! Request heads checked before hyper parses them, so that malformed HTTP gets the SPEC error body.
//!
//! hyper answers a head it cannot parse (a bad header line, an over-long URI, too many headers) by
//! itself, with a status and no body, and offers no hook to change that. [`HeadCheck`] sits between
//! the socket and hyper: it holds each request head back until it is complete, checks it with the
//! parser hyper uses (`httparse`) and the rules hyper adds on top (method, URI, `Content-Length`,
//! `Transfer-Encoding`), and only then lets hyper read it. A head that fails is answered here
//! (`{"status","code","message"}`, then the connection closes) and hyper sees the end of the stream,
//! so it never answers on its own. Our head limits are below hyper's, so hyper never meets its own.
//!
//! To know where the next head starts, the wrapper counts each request's `Content-Length` body
//! through. A chunked body is left to hyper, and the server closes the connection after that request
//! (see `http_server`), so no head after it goes unchecked.
//!
//! A refused head may arrive while hyper still answers earlier (pipelined) requests: hyper sees the
//! end of the stream only once those are answered ([`InFlight`]), and the refusal is written when
//! hyper shuts the connection down, after its own responses.

use bytes::{Buf, Bytes, BytesMut};
use futures::task::AtomicWaker;
use http::StatusCode;
use license_api::error::ApiError;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Most bytes of a request line's target (path and query); longer answers `414`.
pub const MAX_URI_BYTES: usize = 16 * 1024;
/// Most bytes of a request head (request line and header lines); longer answers `431`.
pub const MAX_HEAD_BYTES: usize = 32 * 1024;
/// Most header lines in one request; more answers `431`.
pub const MAX_HEADERS: usize = 100;
/// How long a refused client's remaining bytes are read and dropped before the socket closes, so the
/// close does not reset the connection before the client read the answer.
const LINGER: Duration = Duration::from_millis(500);
/// What one read from the socket asks for.
const READ_CHUNK: usize = 8 * 1024;

/// What a complete, valid head says about the bytes that follow it.
#[derive(Debug, PartialEq, Eq)]
enum Framing {
    /// The head (`head` bytes) and a body of `body` bytes.
    Sized { head: usize, body: u64 },
    /// The head, then a chunked body whose end only hyper finds.
    Chunked { head: usize },
}

/// Checks the bytes at a request boundary: `Ok(None)` while the head is incomplete (and within the
/// limits), the framing once it is complete, the error to answer when it is not HTTP/1.1 we accept.
fn check_head(buf: &[u8]) -> Result<Option<Framing>, ApiError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let head = match req.parse(buf) {
        Ok(httparse::Status::Complete(head)) => head,
        Ok(httparse::Status::Partial) => return partial_within_limits(buf).map(|()| None),
        Err(httparse::Error::TooManyHeaders) => return Err(ApiError::HeadTooLarge(MAX_HEAD_BYTES)),
        Err(e) => return Err(malformed(e)),
    };
    let (Some(method), Some(target)) = (req.method, req.path) else {
        return Err(malformed("incomplete request line"));
    };
    if target.len() > MAX_URI_BYTES {
        return Err(ApiError::UriTooLong(MAX_URI_BYTES));
    }
    if head > MAX_HEAD_BYTES {
        return Err(ApiError::HeadTooLarge(MAX_HEAD_BYTES));
    }
    http::Method::from_bytes(method.as_bytes()).map_err(malformed)?;
    http::Uri::try_from(target).map_err(malformed)?;
    framing(req.version == Some(1), req.headers, head)
}

/// An incomplete head is only waited for while it could still fit the limits.
fn partial_within_limits(buf: &[u8]) -> Result<(), ApiError> {
    let line = buf.iter().skip_while(|b| matches!(b, b'\r' | b'\n'));
    if !line.clone().any(|b| *b == b'\n') && line.count() > MAX_URI_BYTES + 1024 {
        return Err(ApiError::UriTooLong(MAX_URI_BYTES));
    }
    if buf.len() > MAX_HEAD_BYTES {
        return Err(ApiError::HeadTooLarge(MAX_HEAD_BYTES));
    }
    Ok(())
}

/// hyper's rules (RFC 9112 §6.3): `Transfer-Encoding` only in HTTP/1.1 and ending in `chunked`, where
/// it overrides `Content-Length`; repeated `Content-Length` values must agree and be plain digits.
fn framing(http11: bool, headers: &[httparse::Header<'_>], head: usize) -> Result<Option<Framing>, ApiError> {
    let (mut chunked, mut length) = (None, None::<u64>);
    for h in headers {
        http::HeaderName::from_bytes(h.name.as_bytes()).map_err(malformed)?;
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            if !http11 {
                return Err(malformed("Transfer-Encoding is not allowed in HTTP/1.0"));
            }
            let last = std::str::from_utf8(h.value).ok().and_then(|v| v.rsplit(',').next());
            chunked = Some(last.is_some_and(|c| c.trim().eq_ignore_ascii_case("chunked")));
        } else if h.name.eq_ignore_ascii_case("content-length") && chunked.is_none() {
            let value = std::str::from_utf8(h.value)
                .ok()
                .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|v| v.parse::<u64>().ok())
                .filter(|n| *n < u64::MAX - 1)
                .ok_or_else(|| malformed("Content-Length is not a number"))?;
            if length.is_some_and(|l| l != value) {
                return Err(malformed("Content-Length headers disagree"));
            }
            length = Some(value);
        }
    }
    match chunked {
        Some(true) => Ok(Some(Framing::Chunked { head })),
        Some(false) => Err(malformed("Transfer-Encoding must end with chunked")),
        None => Ok(Some(Framing::Sized {
            head,
            body: length.unwrap_or(0),
        })),
    }
}

fn malformed(why: impl std::fmt::Display) -> ApiError {
    ApiError::Validation(format!(
        "The request is not valid HTTP/1.1 ({why}); fix the client's request"
    ))
}

/// `err` as a whole HTTP/1.1 response that closes the connection: for answers given without hyper.
pub fn raw_response(err: &ApiError) -> Bytes {
    let body = err.body();
    let status = StatusCode::from_u16(err.status()).unwrap_or(StatusCode::BAD_REQUEST);
    let mut out = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: {}\r\ncontent-length: {}\r\nconnection: close\r\ndate: {}\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        license_api::http::JSON,
        body.len(),
        httpdate::fmt_http_date(SystemTime::now()),
    );
    if status == StatusCode::TOO_MANY_REQUESTS {
        out.push_str("retry-after: 1\r\n");
    }
    out.push_str("\r\n");
    out.push_str(&body);
    Bytes::from(out)
}

/// Requests of one connection handed to hyper and not answered yet: counted up by [`HeadCheck`], down
/// by the service through [`InFlight::answering`].
#[derive(Default)]
pub struct InFlight {
    open: AtomicUsize,
    idle: AtomicWaker,
}

/// Held while the service answers one request.
pub struct Answering(Arc<InFlight>);

impl InFlight {
    /// Call when the service starts on a request; the request counts as answered when this is dropped.
    pub fn answering(self: &Arc<Self>) -> Answering {
        Answering(self.clone())
    }

    fn is_idle(&self, cx: &mut Context<'_>) -> bool {
        self.idle.register(cx.waker());
        self.open.load(Ordering::Acquire) == 0
    }
}

impl Drop for Answering {
    fn drop(&mut self) {
        if self.0.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.wake();
        }
    }
}

enum State {
    /// At a request boundary: the bytes are a head, held back until complete and checked.
    Head,
    /// This many more bytes belong to the current request (its head and body); then a head follows,
    /// or with `chunked` a body only hyper can frame.
    Message { left: u64, chunked: bool },
    /// After a chunked request's head: hyper frames the rest.
    Passthrough,
    /// A head was refused: hyper sees the end of the stream once its requests are answered, and this
    /// answer is written when it shuts the connection down.
    Refused(Bytes),
    /// Writing an answer, then closing.
    Answer(Bytes),
    /// Reading and dropping what the client still sends, until it closes or the time is up.
    Linger(Pin<Box<tokio::time::Sleep>>),
    /// The reader sees the end of the stream.
    Done,
}

/// A client connection whose request heads are checked before its reader sees them (module docs).
pub struct HeadCheck<S> {
    inner: S,
    /// Bytes read from the client and not yet handed on.
    pending: BytesMut,
    state: State,
    in_flight: Arc<InFlight>,
}

impl<S> HeadCheck<S> {
    /// Checks `inner`'s request heads; the service answering them holds `in_flight`'s
    /// [`InFlight::answering`] while it does.
    pub fn new(inner: S, in_flight: Arc<InFlight>) -> Self {
        Self {
            inner,
            pending: BytesMut::new(),
            state: State::Head,
            in_flight,
        }
    }

    /// A connection refused as a whole: reading it answers `err` and closes.
    pub fn refusing(inner: S, err: &ApiError) -> Self {
        Self {
            state: State::Answer(raw_response(err)),
            ..Self::new(inner, Arc::default())
        }
    }

    /// Counts a head handed on, which bytes of the message follow.
    fn handing_on(&mut self, left: u64, chunked: bool) {
        self.in_flight.open.fetch_add(1, Ordering::AcqRel);
        self.state = State::Message { left, chunked };
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> HeadCheck<S> {
    /// Reads more of the client's bytes into `pending`; the count (0: the client closed).
    fn fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let mut chunk = [0u8; READ_CHUNK];
        let mut buf = ReadBuf::new(&mut chunk);
        ready!(Pin::new(&mut self.inner).poll_read(cx, &mut buf))?;
        self.pending.extend_from_slice(buf.filled());
        Poll::Ready(Ok(buf.filled().len()))
    }

    /// Hands on at most `limit` pending bytes.
    fn hand_on(&mut self, out: &mut ReadBuf<'_>, limit: u64) -> usize {
        let n = self
            .pending
            .len()
            .min(out.remaining())
            .min(usize::try_from(limit).unwrap_or(usize::MAX));
        out.put_slice(&self.pending[..n]);
        self.pending.advance(n);
        n
    }

    /// At a request boundary: hands the head on once complete and valid, or refuses it.
    fn at_head(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match check_head(&self.pending) {
            Ok(Some(Framing::Sized { head, body })) => self.handing_on(head as u64 + body, false),
            Ok(Some(Framing::Chunked { head })) => self.handing_on(head as u64, true),
            Ok(None) if ready!(self.fill(cx))? == 0 => {
                // The client closed, maybe mid-head: nothing for hyper to answer.
                self.state = State::Done;
            }
            Ok(None) => {}
            Err(err) => {
                tracing::info!(status = err.status(), code = err.code(), message = %err, "request head refused");
                self.state = State::Refused(raw_response(&err));
            }
        }
        Poll::Ready(Ok(()))
    }

    /// Writes the answer, shuts the writing side down, and starts lingering.
    fn write_answer(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let State::Answer(answer) = &mut self.state {
            while !answer.is_empty() {
                let n = ready!(Pin::new(&mut self.inner).poll_write(cx, answer))?;
                if n == 0 {
                    break;
                }
                answer.advance(n);
            }
        }
        ready!(Pin::new(&mut self.inner).poll_shutdown(cx))?;
        self.pending.clear();
        self.state = State::Linger(Box::pin(tokio::time::sleep(LINGER)));
        Poll::Ready(Ok(()))
    }

    /// One step of the state machine; `Ready(Ok(true))` when `out` got bytes or the stream ended.
    fn step(&mut self, cx: &mut Context<'_>, out: &mut ReadBuf<'_>) -> Poll<io::Result<bool>> {
        match &mut self.state {
            State::Head => ready!(self.at_head(cx))?,
            State::Message { left: 0, chunked } => {
                self.state = if *chunked { State::Passthrough } else { State::Head };
            }
            State::Message { left, chunked } => {
                let (left, chunked) = (*left, *chunked);
                if self.pending.is_empty() && ready!(self.fill(cx))? == 0 {
                    self.state = State::Done;
                    return Poll::Ready(Ok(true));
                }
                let n = self.hand_on(out, left);
                self.state = State::Message {
                    left: left - n as u64,
                    chunked,
                };
                return Poll::Ready(Ok(true));
            }
            State::Passthrough if !self.pending.is_empty() => {
                self.hand_on(out, u64::MAX);
                return Poll::Ready(Ok(true));
            }
            State::Passthrough => {
                ready!(Pin::new(&mut self.inner).poll_read(cx, out))?;
                return Poll::Ready(Ok(true));
            }
            State::Refused(_) if self.in_flight.is_idle(cx) => return Poll::Ready(Ok(true)),
            State::Refused(_) => return Poll::Pending,
            State::Answer(_) => ready!(self.write_answer(cx))?,
            State::Linger(timer) => {
                if timer.as_mut().poll(cx).is_ready() || ready!(self.fill(cx))? == 0 {
                    self.state = State::Done;
                } else {
                    self.pending.clear();
                }
            }
            State::Done => return Poll::Ready(Ok(true)),
        }
        Poll::Ready(Ok(false))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for HeadCheck<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, out: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            match this.step(cx, out) {
                Poll::Ready(Ok(true)) => return Poll::Ready(Ok(())),
                Poll::Ready(Ok(false)) => continue,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for HeadCheck<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    /// After a refused head, writes the answer first (and shuts down and lingers, as refusing does).
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let State::Refused(answer) = &mut this.state {
            this.state = State::Answer(std::mem::take(answer));
        }
        if matches!(this.state, State::Answer(_) | State::Linger(_)) {
            let mut scratch = [0u8; 0];
            let mut none = ReadBuf::new(&mut scratch);
            while !matches!(this.state, State::Done) {
                ready!(this.step(cx, &mut none))?;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sized(head: &str, body: u64) -> Result<Option<Framing>, ApiError> {
        Ok(Some(Framing::Sized { head: head.len(), body }))
    }

    fn refused(buf: &[u8]) -> (u16, &'static str) {
        let err = check_head(buf).unwrap_err();
        (err.status(), err.code())
    }

    #[test]
    fn a_complete_head_gives_its_framing() {
        let get = "GET /api/v4/check_license?x=1 HTTP/1.1\r\nhost: x\r\n\r\n";
        assert_eq!(check_head(get.as_bytes()).unwrap(), sized(get, 0).unwrap());
        let post = "\r\nPOST / HTTP/1.1\r\ncontent-length: 12\r\nContent-Length: 12\r\n\r\n";
        assert_eq!(check_head(post.as_bytes()).unwrap(), sized(post, 12).unwrap());
        let chunked = "POST / HTTP/1.1\r\ncontent-length: 3\r\ntransfer-encoding: gzip, chunked\r\n\r\n";
        assert_eq!(
            check_head(chunked.as_bytes()).unwrap(),
            Some(Framing::Chunked { head: chunked.len() })
        );
        assert_eq!(check_head(b"GET / HTTP/1.1\r\nhost: x\r\n").unwrap(), None);
        assert_eq!(check_head(b"").unwrap(), None);
    }

    #[test]
    fn malformed_heads_are_refused_with_spec_codes() {
        for bad in [
            &b"GET / HTTP/1.1\r\nbad header line\r\n\r\n"[..],
            b"G\0T / HTTP/1.1\r\n\r\n",
            b"GET / HTTP/2.0\r\n\r\n",
            b"hello\r\n\r\n",
            b"POST / HTTP/1.1\r\ncontent-length: -1\r\n\r\n",
            b"POST / HTTP/1.1\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n",
            b"POST / HTTP/1.1\r\ntransfer-encoding: chunked, gzip\r\n\r\n",
            b"POST / HTTP/1.0\r\ntransfer-encoding: chunked\r\n\r\n",
        ] {
            assert_eq!(
                refused(bad),
                (400, "validation_error"),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let long_uri = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(MAX_URI_BYTES + 2000));
        assert_eq!(refused(long_uri.as_bytes()), (414, "validation_error"));
        // Refused before the request line even ends.
        assert_eq!(
            refused(&long_uri.as_bytes()[..MAX_URI_BYTES + 1100]),
            (414, "validation_error")
        );
        let many = format!("GET / HTTP/1.1\r\n{}\r\n", "a: b\r\n".repeat(MAX_HEADERS + 1));
        assert_eq!(refused(many.as_bytes()), (431, "validation_error"));
        let big = format!("GET / HTTP/1.1\r\na: {}\r\n", "b".repeat(MAX_HEAD_BYTES));
        assert_eq!(refused(big.as_bytes()), (431, "validation_error"));
    }

    #[test]
    fn the_raw_answer_is_a_whole_spec_shaped_response() {
        let raw = raw_response(&ApiError::UriTooLong(MAX_URI_BYTES));
        let text = std::str::from_utf8(&raw).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 414 URI Too Long\r\n"), "{head}");
        assert!(head.contains(&format!("content-length: {}", body.len())), "{head}");
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(
            (v["status"].as_u64(), v["code"].as_str()),
            (Some(414), Some("validation_error"))
        );
    }
}
