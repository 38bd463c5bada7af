//! hyper's own error answers, given the JSON body every other error answer has.
//!
//! When a request head does not parse (a bad method, header line, target or version) or
//! passes hyper's own size limits, hyper answers by itself, before any service runs: a bare
//! `400`, `414` or `431` with an empty body, and closes the connection. No hyper setting adds a
//! body to it. This wrapper around the socket recognises such an answer as it is written (a
//! 4xx head without `Content-Type`: every answer the routes write has one) and writes it with
//! a JSON `{"error": "..."}` body instead. Everything else passes through untouched.
//!
//! It sees hyper's writes whole: the automatic answer is the only thing hyper writes on a
//! connection after a parse error. If an earlier pipelined answer was still waiting to be
//! flushed when the bad head arrived, the two may come in one write, and the error then goes
//! out bare: still a correct answer, just without the body.

use std::{
    io,
    pin::Pin,
    task::{Context, Poll, ready},
};

use hyper::StatusCode;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::{Limits, errors::ApiError};

/// The error answers' bodies, built once per server.
#[derive(Debug)]
pub struct Bodies {
    bad_request: Vec<u8>,
    too_large: Vec<u8>,
    uri_too_long: Vec<u8>,
}

impl Bodies {
    pub fn new(limits: &Limits) -> Bodies {
        let bad_request = ApiError::BadRequest(
            "the request is not valid HTTP/1.1: check the request line (METHOD /path HTTP/1.1), \
             the header lines (Name: value) and Content-Length or Transfer-Encoding"
                .into(),
        );
        let too_large = ApiError::HeadTooLarge(format!(
            "the request head is larger than the server reads: send at most {} bytes and {} \
             headers",
            limits.max_head, limits.max_headers
        ));
        let uri_too_long = ApiError::BadRequest("the request target is too long".into());
        Bodies {
            bad_request: bad_request.body(),
            too_large: too_large.body(),
            uri_too_long: uri_too_long.body(),
        }
    }

    fn for_status(&self, status: u16) -> &[u8] {
        match status {
            431 => &self.too_large,
            414 => &self.uri_too_long,
            _ => &self.bad_request,
        }
    }
}

/// A connection's socket, rewriting hyper's bare error answers on their way out.
pub struct JsonErrors<T> {
    inner: T,
    bodies: std::sync::Arc<Bodies>,
    /// A rewritten answer and how much of it has been written.
    pending: Option<(Vec<u8>, usize)>,
}

impl<T> JsonErrors<T> {
    pub fn new(inner: T, bodies: std::sync::Arc<Bodies>) -> Self {
        JsonErrors {
            inner,
            bodies,
            pending: None,
        }
    }
}

/// `head` with a JSON body, if it is one of hyper's own error answers: a whole 4xx response
/// head without `Content-Type` and without a body.
fn rewrite(head: &[u8], bodies: &Bodies) -> Option<Vec<u8>> {
    if !head.starts_with(b"HTTP/1.1 4") {
        return None;
    }
    let mut headers = [httparse::EMPTY_HEADER; 16];
    let mut resp = httparse::Response::new(&mut headers);
    let httparse::Status::Complete(len) = resp.parse(head).ok()? else {
        return None;
    };
    let status = StatusCode::from_u16(resp.code?).ok()?;
    let named = |name: &str| {
        resp.headers
            .iter()
            .any(|h| h.name.eq_ignore_ascii_case(name))
    };
    let no_body = resp
        .headers
        .iter()
        .all(|h| !h.name.eq_ignore_ascii_case("content-length") || h.value == b"0");
    if len != head.len() || named("content-type") || !no_body {
        return None;
    }
    let body = bodies.for_status(status.as_u16());
    let mut out = Vec::with_capacity(len + body.len() + 128);
    out.extend_from_slice(
        format!(
            "HTTP/1.1 {} {}\r\n",
            status.as_u16(),
            status.canonical_reason().unwrap_or("")
        )
        .as_bytes(),
    );
    for h in resp.headers.iter() {
        if !(h.name.eq_ignore_ascii_case("content-length")
            || h.name.eq_ignore_ascii_case("connection"))
        {
            out.extend_from_slice(h.name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(h.value);
            out.extend_from_slice(b"\r\n");
        }
    }
    out.extend_from_slice(
        format!(
            "content-type: application/json\r\ncache-control: no-store\r\nconnection: close\r\n\
             content-length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    out.extend_from_slice(body);
    Some(out)
}

impl<T: AsyncWrite + Unpin> JsonErrors<T> {
    /// Writes what is left of a rewritten answer.
    fn drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some((out, done)) = &mut self.pending {
            if *done == out.len() {
                self.pending = None;
                break;
            }
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &out[*done..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *done += n;
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for JsonErrors<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for JsonErrors<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.drain(cx))?;
        if let Some(out) = rewrite(buf, &this.bodies) {
            this.pending = Some((out, 0));
            // The answer is ours to write now: hyper's bytes are taken whole.
            if let Poll::Ready(Err(e)) = this.drain(cx) {
                return Poll::Ready(Err(e));
            }
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.drain(cx))?;
        // hyper queues a head in a buffer of its own: the automatic answer is a lone head.
        if let Some(first) = bufs.iter().find(|b| !b.is_empty())
            && bufs.iter().filter(|b| !b.is_empty()).count() == 1
            && let Some(out) = rewrite(first, &this.bodies)
        {
            this.pending = Some((out, 0));
            if let Poll::Ready(Err(e)) = this.drain(cx) {
                return Poll::Ready(Err(e));
            }
            return Poll::Ready(Ok(first.len()));
        }
        Pin::new(&mut this.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.drain(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.drain(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_bare_error_heads_are_rewritten() {
        let bodies = Bodies::new(&Limits::default());
        let bare =
            b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: x\r\n\r\n";
        let out = String::from_utf8(rewrite(bare, &bodies).unwrap()).unwrap();
        let (head, body) = out.split_once("\r\n\r\n").unwrap();
        assert!(
            head.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"),
            "{head}"
        );
        assert!(
            head.contains("\r\ndate: x\r\n") && head.contains("content-type: application/json")
        );
        assert!(
            head.contains(&format!("content-length: {}", body.len())),
            "{out}"
        );
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert!(v["error"].as_str().unwrap().contains("16384 bytes"), "{v}");
        for untouched in [
            &b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"[..],
            b"HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n",
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\ntrailing",
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n",
            b"HTTP/1.1 100 Continue\r\n\r\n",
        ] {
            assert!(rewrite(untouched, &bodies).is_none(), "{:?}", String::from_utf8_lossy(untouched));
        }
    }
}
