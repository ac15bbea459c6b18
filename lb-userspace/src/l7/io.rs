//! A TCP stream with inactivity timeouts (HAProxy's `timeout client`/`timeout server`)
//! that can be shared: the proxy keeps a handle to the socket while hyper owns the
//! connection, so it can still answer 408 after hyper gives up on a slow request head.

use std::{
    future::Future,
    io,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{ready, Context, Poll},
    time::Duration,
};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpStream,
    time::Sleep,
};

/// A shared TCP stream whose reads and writes fail with `TimedOut` after `idle`
/// without progress in either direction.
#[derive(Debug)]
pub struct DeadlineIo {
    stream: Arc<TcpStream>,
    idle: Option<Duration>,
    /// One deadline for both directions: armed when an operation must wait, pushed
    /// back on every byte moved. It keeps the waker of the last wait, so it fires even
    /// if hyper does not poll again.
    timer: Option<Pin<Box<Sleep>>>,
    /// Last byte moved while the timer was armed.
    last_progress: tokio::time::Instant,
    scan: Option<Arc<HeadScan>>,
    /// HAProxy's error page being written in place of hyper's own bare error response,
    /// and how much of it is out (see [`HeadScan::error_page`]). Boxed, as rare as
    /// [`Held`] bytes: every connection carries only a pointer for them.
    replacing: Option<Box<(Vec<u8>, usize)>>,
    /// The connection is closed as soon as it is shut down (see [`DeadlineIo::closing`]).
    close_only: bool,
    /// A client connection whose bytes so far are a strict prefix of the HTTP/2
    /// preface (none read yet counts): reads still hold them back (see [`Held`]).
    /// Cleared for good at the first mismatch, complete preface or EOF.
    preface_open: bool,
    /// Bytes held back while they could be the start of an HTTP/2 preface, then until
    /// the caller has taken them all. Boxed: almost every connection never has any.
    held: Option<Box<Held>>,
}

/// The HTTP/2 connection preface (RFC 9113 section 3.4) a prior-knowledge (h2c) client
/// starts with.
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The first bytes of a client connection, held back while they are a strict prefix of
/// [`H2_PREFACE`]: hyper's HTTP/1 parser recognises the preface (and hands the
/// connection over to HTTP/2) only when all 24 bytes are in its buffer at once; a part
/// of it is an HTTP/1 request line with version 2.0, answered 505. So a client that
/// sends the preface in pieces (allowed: TCP has no message boundaries) is served as
/// HAProxy does only if hyper sees the pieces together.
#[derive(Debug)]
struct Held {
    bytes: [u8; H2_PREFACE.len()],
    /// How many of `bytes` were read from the socket.
    len: usize,
    /// How many of those the caller has taken (once the preface question is settled).
    out: usize,
}

impl DeadlineIo {
    /// Wraps `stream`; `idle = None` means no timeout.
    pub fn new(stream: Arc<TcpStream>, idle: Option<Duration>) -> Self {
        DeadlineIo {
            stream,
            idle,
            timer: None,
            last_progress: tokio::time::Instant::now(),
            scan: None,
            replacing: None,
            close_only: false,
            preface_open: false,
            held: None,
        }
    }

    /// For a server connection that serves one request and is never upgraded to a
    /// tunnel, so that whoever shuts its write side (hyper, once the response is read
    /// through) drops it right after: the shutdown(2) is left out, and close(2) resets
    /// the connection (see `poll_shutdown`).
    pub fn closing(mut self) -> Self {
        self.close_only = true;
        self
    }

    /// Whether a shutdown is only the prelude to close(2): always for [`closing`]
    /// connections; for a client connection until it becomes a tunnel (where a
    /// shutdown is a half-close the peer must see at once).
    ///
    /// [`closing`]: DeadlineIo::closing
    fn shutdown_is_close(&self) -> bool {
        self.close_only || self.scan.as_ref().is_some_and(|s| !s.in_tunnel())
    }

    /// For a client connection: also feeds every byte read to `scan` while it looks for
    /// a request head, and holds back the first bytes while they are an incomplete
    /// HTTP/2 preface (see [`Held`]).
    pub fn with_scan(mut self, scan: Arc<HeadScan>) -> Self {
        self.scan = Some(scan);
        self.preface_open = true;
        self
    }

    /// Progress was made: the inactivity deadline moves to `idle` from now. Only the
    /// time is noted; the timer itself is moved when it fires (re-arming a tokio timer
    /// on every read and write costs a timer-wheel update each).
    fn progress(&mut self) {
        if self.timer.is_some() {
            self.last_progress = tokio::time::Instant::now();
        }
    }

    /// Called when an operation must wait: arms (once) and polls its timer.
    fn wait(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        let Some(idle) = self.idle else {
            return Poll::Pending;
        };
        if self.timer.is_none() {
            self.last_progress = tokio::time::Instant::now();
        }
        let t = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(idle)));
        loop {
            match t.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(()) => {
                    let deadline = self.last_progress + idle;
                    if deadline <= tokio::time::Instant::now() {
                        return Poll::Ready(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "inactivity timeout",
                        ));
                    }
                    // Progress since the timer was set: wait for the rest.
                    t.as_mut().reset(deadline);
                }
            }
        }
    }
}

impl DeadlineIo {
    /// When hyper writes its own answer to a head it refused, writes HAProxy's page
    /// instead and reports hyper's bytes as written; `None` for every other write.
    fn poll_replace(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Option<Poll<io::Result<usize>>> {
        if self.replacing.is_none() {
            let page = self.scan.as_ref()?.error_page(bufs)?;
            self.replacing = Some(Box::new((page, 0)));
        }
        let total = bufs.iter().map(|b| b.len()).sum();
        loop {
            let (page, off) = &mut **self.replacing.as_mut()?;
            if *off >= page.len() {
                // Anything hyper writes after its error head (nothing, normally) is
                // dropped: the connection closes.
                return Some(Poll::Ready(Ok(total)));
            }
            match self.stream.poll_write_ready(cx) {
                Poll::Ready(Err(e)) => return Some(Poll::Ready(Err(e))),
                Poll::Ready(Ok(())) => match self.stream.try_write(&page[*off..]) {
                    Ok(n) => {
                        *off += n;
                        self.progress();
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Some(Poll::Ready(Err(e))),
                },
                Poll::Pending => {
                    return Some(match self.wait(cx) {
                        Poll::Ready(e) => Poll::Ready(Err(e)),
                        Poll::Pending => Poll::Pending,
                    })
                }
            }
        }
    }
}

/// Reads into the unfilled, possibly uninitialised part of `buf` and marks what was
/// read as filled. `try_read(buf.initialize_unfilled())` would zero the whole spare
/// capacity (8 KiB of hyper's read buffer) before every read: a memset per read that
/// showed in profiles.
///
/// A short read (fewer bytes than asked) drained the socket's receive queue, so the
/// stream's readiness is cleared with it, as HAProxy and nginx do: otherwise the next
/// read is a recv(2) that fails with EAGAIN, one wasted syscall per message and
/// direction. Readiness is edge-triggered: bytes arriving after the recv raise a new
/// event, which tokio records with a newer tick than the one cleared.
fn recv_uninit(stream: &TcpStream, buf: &mut ReadBuf<'_>) -> io::Result<usize> {
    use std::os::fd::AsRawFd;
    let fd = stream.as_raw_fd();
    // SAFETY: the slice is only handed to recv(2), which writes at most `len` bytes and
    // never reads them; exactly the `n` bytes it reports are then marked initialised.
    let dst = unsafe { buf.unfilled_mut() };
    let mut drained = None;
    let r = stream.try_io(tokio::io::Interest::READABLE, || {
        // SAFETY: `dst` is valid for writes of `dst.len()` bytes for this call.
        let r = unsafe { libc::recv(fd, dst.as_mut_ptr().cast(), dst.len(), 0) };
        let n = usize::try_from(r).map_err(|_| io::Error::last_os_error())?;
        if n > 0 && n < dst.len() {
            // Reported as WouldBlock only so that try_io clears the readiness.
            drained = Some(n);
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(n)
    });
    let n = match (r, drained) {
        (_, Some(n)) => n,
        (r, None) => r?,
    };
    // SAFETY: recv initialised the first `n` bytes of the unfilled part.
    unsafe { buf.assume_init(n) };
    buf.advance(n);
    Ok(n)
}

impl DeadlineIo {
    /// One recv(2) into `buf` once the socket is readable; waits (with the inactivity
    /// timer, unless the client awaits its response) while it is not.
    fn poll_recv(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<usize>> {
        loop {
            match self.stream.poll_read_ready(cx) {
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) => match recv_uninit(&self.stream, buf) {
                    Ok(n) => return Poll::Ready(Ok(n)),
                    // Readiness was cleared by try_read; poll again to register.
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    Err(e) => return Poll::Ready(Err(e)),
                },
                Poll::Pending => {
                    if self.scan.as_ref().is_some_and(|s| s.awaiting()) {
                        // The client is not expected to send anything while its request
                        // is with the server: `timeout server` governs that wait. The
                        // timer restarts in full once the response is done.
                        self.timer = None;
                        return Poll::Pending;
                    }
                    let err = ready!(self.wait(cx));
                    return Poll::Ready(Err(err));
                }
            }
        }
    }

    /// Bytes just read from the socket: fed to the head scanner (once, on arrival) and
    /// counted as progress.
    fn arrived(&mut self, bytes: &[u8]) {
        if let Some(scan) = &self.scan {
            scan.feed(bytes);
        }
        self.progress();
    }

    /// Reads while the held bytes are still an incomplete preface, into the held buffer
    /// (never more than the preface's length in all, so nothing read has to be kept
    /// beyond it), then hands them to the caller, as many as `buf` has room for.
    /// Nothing is put into `buf` before the question is settled, so a Pending loses
    /// nothing.
    fn poll_read_held(
        &mut self,
        cx: &mut Context<'_>,
        held: &mut Held,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        while self.preface_open {
            let len = held.len;
            let n = ready!(self.poll_recv(cx, &mut ReadBuf::new(&mut held.bytes[len..])))?;
            held.len += n;
            let new = &held.bytes[len..held.len];
            self.arrived(new);
            if n == 0 || new != &H2_PREFACE[len..held.len] || held.len == H2_PREFACE.len() {
                // EOF, an HTTP/1 request, or the whole preface: hyper can tell now.
                self.preface_open = false;
            }
        }
        let k = (held.len - held.out).min(buf.remaining());
        buf.put_slice(&held.bytes[held.out..held.out + k]);
        held.out += k;
        Poll::Ready(Ok(()))
    }

    /// [`DeadlineIo::poll_read_held`], keeping the held bytes until all are taken.
    fn poll_held(
        &mut self,
        cx: &mut Context<'_>,
        mut held: Box<Held>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let r = self.poll_read_held(cx, &mut held, buf);
        if held.out < held.len {
            self.held = Some(held);
        }
        r
    }
}

impl AsyncRead for DeadlineIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if let Some(held) = this.held.take() {
            return this.poll_held(cx, held, buf);
        }
        if this.preface_open && buf.remaining() == 0 {
            // Nothing can be read: a zero-byte recv would look like EOF.
            return Poll::Ready(Ok(()));
        }
        let start = buf.filled().len();
        let n = ready!(this.poll_recv(cx, buf))?;
        this.arrived(&buf.filled()[start..]);
        if this.preface_open {
            // The first read of a client connection: straight into the caller's buffer
            // like any other; only when it is a strict prefix of the HTTP/2 preface are
            // its bytes taken back and held until the rest settles it.
            let new = &buf.filled()[start..];
            if n == 0 || n >= H2_PREFACE.len() || new != &H2_PREFACE[..n] {
                this.preface_open = false;
            } else {
                let mut held = Box::new(Held {
                    bytes: [0; H2_PREFACE.len()],
                    len: n,
                    out: 0,
                });
                held.bytes[..n].copy_from_slice(new);
                buf.set_filled(start);
                return this.poll_held(cx, held, buf);
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for DeadlineIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if let Some(r) = this.poll_replace(cx, &[io::IoSlice::new(data)]) {
            return r;
        }
        loop {
            match this.stream.poll_write_ready(cx) {
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) => match this.stream.try_write(data) {
                    Ok(n) => {
                        this.progress();
                        return Poll::Ready(Ok(n));
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    Err(e) => return Poll::Ready(Err(e)),
                },
                Poll::Pending => {
                    let err = ready!(this.wait(cx));
                    return Poll::Ready(Err(err));
                }
            }
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if let Some(r) = this.poll_replace(cx, bufs) {
            return r;
        }
        loop {
            match this.stream.poll_write_ready(cx) {
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) => match this.stream.try_write_vectored(bufs) {
                    Ok(n) => {
                        this.progress();
                        return Poll::Ready(Ok(n));
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    Err(e) => return Poll::Ready(Err(e)),
                },
                Poll::Pending => {
                    let err = ready!(this.wait(cx));
                    return Poll::Ready(Err(err));
                }
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.close_only {
            // A server connection whose one exchange is complete: hyper shuts it down
            // only once the response was read through. Closing it with a reset (HAProxy's
            // `option nolinger` on a backend) saves the FIN exchange and the
            // TIME_WAIT socket that either side would keep for a minute (the server's,
            // as it usually closes first after `Connection: close`). Nothing is lost:
            // the request was read and the response received.
            let _ = socket2::SockRef::from(&*self.stream).set_linger(Some(Duration::ZERO));
            return Poll::Ready(Ok(()));
        }
        if self.shutdown_is_close() {
            // hyper ends the connection, which is dropped (closed) right after: one
            // syscall per connection saved.
            return Poll::Ready(Ok(()));
        }
        let r = socket2::SockRef::from(&*self.stream).shutdown(std::net::Shutdown::Write);
        match r {
            // Already closed by the peer: nothing left to shut down.
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Poll::Ready(Ok(())),
            other => Poll::Ready(other),
        }
    }
}

/// An I/O that first returns bytes already read from it (hyper's HTTP/1 read buffer
/// when it met an HTTP/2 preface), then reads on.
#[derive(Debug)]
pub struct Replay<T> {
    prefix: bytes::Bytes,
    inner: T,
}

impl<T> Replay<T> {
    /// `prefix` is returned by the first reads, before anything of `inner`.
    pub fn new(prefix: bytes::Bytes, inner: T) -> Self {
        Replay { prefix, inner }
    }
}

impl<T: hyper::rt::Read + Unpin> hyper::rt::Read for Replay<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            let chunk = self.prefix.split_to(n);
            buf.put_slice(&chunk);
            if self.prefix.is_empty() {
                // Lets go of the buffer it came from.
                self.prefix = bytes::Bytes::new();
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: hyper::rt::Write + Unpin> hyper::rt::Write for Replay<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Largest head the scanner keeps; beyond it hyper answers 431 anyway.
pub const HEAD_SCAN_LIMIT: usize = 64 * 1024;

/// Spots a request head carrying both Content-Length and Transfer-Encoding before
/// hyper parses it: hyper silently drops the Content-Length (chunked wins, and the
/// connection closes), so without this the proxy could not answer HAProxy-style 400 to
/// a smuggling attempt. Best effort: pipelined heads read ahead by hyper are not
/// scanned, which is safe because hyper's own handling stays in force.
#[derive(Debug, Default)]
pub struct HeadScan {
    state: Mutex<ScanState>,
    /// The whole request was read and the response is not done: client reads must
    /// not time out (see [`HeadScan::set_awaiting`]).
    awaiting: std::sync::atomic::AtomicBool,
    /// The connection was handed to a byte tunnel (see [`HeadScan::set_tunnel`]).
    tunnel: std::sync::atomic::AtomicBool,
}

#[derive(Debug, Default)]
struct ScanState {
    paused: bool,
    disabled: bool,
    buf: Vec<u8>,
    conflict: bool,
    /// When the first byte of the head being read arrived.
    started: Option<std::time::Instant>,
    /// Milliseconds from the first byte to the end of the last complete head (`%TR`).
    head_ms: i64,
    /// The last head reached the request handler, and no new head has started since:
    /// what is written now is the handler's response, not an error of hyper's own.
    handled: bool,
}

impl HeadScan {
    fn lock(&self) -> std::sync::MutexGuard<'_, ScanState> {
        match self.state.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Bytes read from the client.
    pub fn feed(&self, bytes: &[u8]) {
        let mut st = self.lock();
        if st.paused || st.disabled {
            return;
        }
        if st.buf.is_empty() && !bytes.is_empty() {
            st.started = Some(std::time::Instant::now());
            st.handled = false;
        }
        let room = HEAD_SCAN_LIMIT.saturating_sub(st.buf.len());
        st.buf.extend_from_slice(&bytes[..bytes.len().min(room)]);
        if st.buf.starts_with(b"PRI * HTTP/2.0") {
            // HTTP/2 has no such ambiguity (and no Transfer-Encoding).
            st.disabled = true;
            st.buf = Vec::new();
            return;
        }
        let end = st
            .buf
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .or_else(|| st.buf.windows(2).position(|w| w == b"\n\n"));
        if let Some(end) = end {
            let (mut cl, mut te) = (false, false);
            let starts = |line: &[u8], name: &[u8]| {
                line.get(..name.len())
                    .is_some_and(|p| p.eq_ignore_ascii_case(name))
            };
            for line in st.buf[..end].split(|&b| b == b'\n') {
                cl |= starts(line, b"content-length:");
                te |= starts(line, b"transfer-encoding:");
            }
            st.conflict = cl && te;
            st.head_ms = st.started.take().map_or(0, |t| {
                i64::try_from(t.elapsed().as_millis()).unwrap_or(i64::MAX)
            });
            st.paused = true;
            st.buf.clear();
        } else if st.buf.len() >= HEAD_SCAN_LIMIT {
            st.paused = true;
            st.buf.clear();
        }
    }

    /// Called when a request head reached the handler: whether it had both framings.
    /// Until the next head starts, responses written are the handler's.
    pub fn take_conflict(&self) -> bool {
        let mut st = self.lock();
        st.handled = true;
        std::mem::take(&mut st.conflict)
    }

    /// HAProxy's page for hyper's own answer to a head its parser refused (400, 414 or
    /// 431 with an empty body: hyper has no way to give it one), if `bufs` is that
    /// answer: an HTTP/1 status line with one of those codes and a bare head, written
    /// while no head of this connection's current exchange reached the handler.
    pub fn error_page(&self, bufs: &[io::IoSlice<'_>]) -> Option<Vec<u8>> {
        let first = bufs.iter().find(|b| !b.is_empty())?;
        if !first.starts_with(b"HTTP/1.") || first.len() < 12 {
            return None;
        }
        let status = std::str::from_utf8(&first[9..12])
            .ok()?
            .parse::<u16>()
            .ok()?;
        if ![400, 414, 431].contains(&status) {
            return None;
        }
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        if total != first.len() || !first.ends_with(b"\r\n\r\n") {
            return None;
        }
        let st = self.lock();
        if st.disabled || st.handled {
            return None;
        }
        Some(super::pages::raw(status))
    }

    /// Milliseconds the last complete head took from its first byte (HAProxy's `%TR`).
    pub fn head_ms(&self) -> i64 {
        self.lock().head_ms
    }

    /// Milliseconds since the first byte of a head still incomplete, if one is being
    /// read: a timeout now is HAProxy's 408, while an idle keep-alive connection that
    /// times out is closed silently.
    pub fn partial_head_ms(&self) -> Option<i64> {
        let st = self.lock();
        if st.paused || st.disabled || st.buf.is_empty() {
            return None;
        }
        st.started
            .map(|t| i64::try_from(t.elapsed().as_millis()).unwrap_or(i64::MAX))
    }

    /// The request (head and body) was read completely; until [`HeadScan::resume`] or
    /// `set_awaiting(false)` the client side's inactivity timeout does not apply to
    /// reads (HAProxy does not expire a client that waits for a slow server).
    pub fn set_awaiting(&self, on: bool) {
        self.awaiting
            .store(on, std::sync::atomic::Ordering::Relaxed);
    }

    /// The connection is (about to be) handed to a byte tunnel: from now on a shutdown
    /// of its write side is a half-close, done at once (see `DeadlineIo`).
    pub fn set_tunnel(&self) {
        self.tunnel
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether the connection became a tunnel.
    pub fn in_tunnel(&self) -> bool {
        self.tunnel.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Whether the connection waits for the server on behalf of its client.
    pub fn awaiting(&self) -> bool {
        self.awaiting.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The current exchange is over; the next bytes start a new head.
    pub fn resume(&self) {
        self.set_awaiting(false);
        let mut st = self.lock();
        st.paused = false;
        st.buf.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn shutdown_is_left_to_close_except_in_a_tunnel_and_one_request_servers_are_reset() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = l.local_addr().expect("addr");
        // EOF seen by the peer within a short wait, or not.
        async fn eof_within(peer: &mut TcpStream, ms: u64) -> bool {
            let mut b = [0u8; 8];
            let wait = Duration::from_millis(ms);
            matches!(
                tokio::time::timeout(wait, peer.read(&mut b)).await,
                Ok(Ok(0))
            )
        }
        for (tunnel, closing) in [(false, false), (true, false), (false, true)] {
            let c = TcpStream::connect(addr).await.expect("connect");
            let (mut peer, _) = l.accept().await.expect("accept");
            let scan = Arc::new(HeadScan::default());
            let mut io = DeadlineIo::new(Arc::new(c), None);
            io = if closing {
                io.closing()
            } else {
                io.with_scan(scan.clone())
            };
            if tunnel {
                scan.set_tunnel();
            }
            io.shutdown().await.expect("shutdown");
            // A tunnel's half-close reaches the peer at once; otherwise the FIN
            // comes with close(2), and a one-request server connection is reset.
            assert_eq!(eof_within(&mut peer, 200).await, tunnel);
            drop(io);
            if closing {
                let mut b = [0u8; 8];
                let r = tokio::time::timeout(Duration::from_secs(2), peer.read(&mut b)).await;
                assert!(
                    matches!(&r, Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionReset),
                    "the server saw {r:?}, not a reset"
                );
            } else {
                assert!(eof_within(&mut peer, 2000).await);
            }
        }
    }

    /// A client connection as the proxy makes it (`with_scan`) and its peer, which
    /// sends segments as soon as they are written.
    async fn client_pair(idle: Option<Duration>) -> (DeadlineIo, Arc<HeadScan>, TcpStream) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let peer = TcpStream::connect(l.local_addr().expect("addr"))
            .await
            .expect("connect");
        peer.set_nodelay(true).expect("nodelay");
        let (c, _) = l.accept().await.expect("accept");
        let scan = Arc::new(HeadScan::default());
        let io = DeadlineIo::new(Arc::new(c), idle).with_scan(scan.clone());
        (io, scan, peer)
    }

    /// Writes `pieces` one by one with `pause` between them, then (if `eof`) shuts the
    /// write side, while `io` is read with reads of at most `room` bytes until EOF or
    /// `want` bytes: what each read returned.
    async fn read_pieces(
        io: &mut DeadlineIo,
        mut peer: TcpStream,
        pieces: Vec<Vec<u8>>,
        pause: Duration,
        eof: bool,
        room: usize,
        want: usize,
    ) -> (io::Result<()>, Vec<Vec<u8>>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let writer = tokio::spawn(async move {
            for (i, p) in pieces.iter().enumerate() {
                if i > 0 {
                    tokio::time::sleep(pause).await;
                }
                peer.write_all(p).await.expect("write");
            }
            if eof {
                peer.shutdown().await.expect("shutdown");
            }
            // Kept open (no EOF) until the reader is done.
            peer
        });
        let mut reads = Vec::new();
        let mut got = 0;
        let mut buf = vec![0u8; room];
        let res = loop {
            if got >= want {
                break Ok(());
            }
            let r = tokio::time::timeout(Duration::from_secs(5), io.read(&mut buf)).await;
            match r.expect("read in time") {
                Ok(0) => break Ok(()),
                Ok(n) => {
                    got += n;
                    reads.push(buf[..n].to_vec());
                }
                Err(e) => break Err(e),
            }
        };
        drop(writer.await.expect("writer"));
        (res, reads)
    }

    fn pieces_of(bytes: &[u8], sizes: &[usize]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut rest = bytes;
        for &n in sizes {
            let (a, b) = rest.split_at(n.min(rest.len()));
            out.push(a.to_vec());
            rest = b;
        }
        if !rest.is_empty() {
            out.push(rest.to_vec());
        }
        out
    }

    /// An empty SETTINGS frame: what an HTTP/2 client sends right after its preface.
    const SETTINGS: &[u8] = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00";

    #[tokio::test]
    async fn preface_in_pieces_reaches_the_reader_whole() {
        let mut stream = H2_PREFACE.to_vec();
        stream.extend_from_slice(SETTINGS);
        let ones = vec![1; H2_PREFACE.len()];
        let threes = vec![3; H2_PREFACE.len() / 3];
        for sizes in [
            &ones[..],
            &threes[..],
            &[16, 8][..],
            &[16][..],
            &[2, 30][..],
        ] {
            let (mut io, scan, peer) = client_pair(Some(Duration::from_secs(5))).await;
            let pieces = pieces_of(&stream, sizes);
            let pause = Duration::from_millis(if sizes.len() > 10 { 5 } else { 30 });
            let (res, reads) =
                read_pieces(&mut io, peer, pieces, pause, false, 4096, stream.len()).await;
            res.expect("read");
            // The first read returns the whole preface (hyper's HTTP/1 parser tells
            // it from a request only then), then everything in order.
            assert!(reads[0].len() >= H2_PREFACE.len(), "{sizes:?}: {reads:?}");
            assert_eq!(reads.concat(), stream, "{sizes:?}");
            assert!(io.held.is_none() && !io.preface_open);
            // Fed once to the head scanner, which then stands aside.
            assert!(scan.lock().disabled);
        }
    }

    #[tokio::test]
    async fn http1_and_diverging_pri_pass_through_unchanged() {
        let cases: [(&[u8], &[usize]); 5] = [
            (b"POST / HTTP/1.1\r\nHost: x\r\n", &[1, 2]),
            (b"PUT /a HTTP/1.1\r\nHost: x\r\n", &[1, 1, 1]),
            (b"PRI / HTTP/1.1\r\nHost: x\r\n", &[4, 1]),
            (b"PRI * HTTP/2.0\r\nHost: x\r\n", &[16, 5]),
            (b"GET / HTTP/1.1\r\nHost: x\r\n", &[]),
        ];
        for (stream, sizes) in cases {
            let (mut io, scan, peer) = client_pair(Some(Duration::from_secs(5))).await;
            let pieces = pieces_of(stream, sizes);
            let (res, reads) = read_pieces(
                &mut io,
                peer,
                pieces,
                Duration::from_millis(30),
                false,
                4096,
                stream.len(),
            )
            .await;
            res.expect("read");
            assert_eq!(reads.concat(), stream, "{reads:?}");
            assert!(io.held.is_none() && !io.preface_open);
            if sizes.is_empty() {
                // One segment: one read straight into the caller's buffer.
                assert_eq!(reads.len(), 1);
            }
            if !stream.starts_with(b"PRI * HTTP/2.0") {
                // Each byte fed to the head scanner exactly once.
                assert_eq!(scan.lock().buf, stream);
            }
        }
    }

    #[tokio::test]
    async fn eof_inside_a_held_preface_yields_the_bytes_then_eof() {
        let (mut io, _scan, peer) = client_pair(Some(Duration::from_secs(5))).await;
        let pieces = pieces_of(&H2_PREFACE[..10], &[3, 4]);
        let (res, reads) = read_pieces(
            &mut io,
            peer,
            pieces,
            Duration::from_millis(30),
            true,
            4096,
            usize::MAX,
        )
        .await;
        res.expect("read");
        assert_eq!(reads, vec![H2_PREFACE[..10].to_vec()]);
        // EOF again on the next read, as from a socket.
        let mut b = [0u8; 8];
        assert_eq!(
            tokio::io::AsyncReadExt::read(&mut io, &mut b).await.ok(),
            Some(0)
        );
    }

    #[tokio::test]
    async fn small_reads_lose_and_reorder_nothing() {
        let mut stream = H2_PREFACE.to_vec();
        stream.extend_from_slice(SETTINGS);
        for (stream, sizes) in [
            (stream.clone(), &[1, 1, 1, 5, 3][..]),
            (stream.clone(), &[16, 8][..]),
            (stream.clone(), &[][..]),
            (b"PRI / HTTP/1.1\r\nHost: x\r\n".to_vec(), &[2, 3][..]),
        ] {
            for room in [1, 2, 5, 7] {
                let (mut io, _scan, peer) = client_pair(Some(Duration::from_secs(5))).await;
                let pieces = pieces_of(&stream, sizes);
                let (res, reads) = read_pieces(
                    &mut io,
                    peer,
                    pieces,
                    Duration::from_millis(10),
                    false,
                    room,
                    stream.len(),
                )
                .await;
                res.expect("read");
                assert_eq!(reads.concat(), stream, "room {room}, {sizes:?}");
            }
        }
    }

    #[tokio::test]
    async fn held_preface_bytes_are_progress_for_the_inactivity_timeout() {
        // 12 pieces 60 ms apart: 660 ms in all, longer than the 300 ms timeout, but
        // never 300 ms without a byte.
        let (mut io, _scan, peer) = client_pair(Some(Duration::from_millis(300))).await;
        let pieces = pieces_of(H2_PREFACE, &[2; 12]);
        let (res, reads) = read_pieces(
            &mut io,
            peer,
            pieces,
            Duration::from_millis(60),
            false,
            4096,
            H2_PREFACE.len(),
        )
        .await;
        res.expect("no timeout");
        assert_eq!(reads, vec![H2_PREFACE.to_vec()]);
        // A stall inside the preface still times out.
        let (mut io, _scan, peer) = client_pair(Some(Duration::from_millis(100))).await;
        let pieces = vec![H2_PREFACE[..5].to_vec(), H2_PREFACE[5..].to_vec()];
        let (res, _) = read_pieces(
            &mut io,
            peer,
            pieces,
            Duration::from_millis(600),
            false,
            4096,
            H2_PREFACE.len(),
        )
        .await;
        assert_eq!(res.map_err(|e| e.kind()), Err(io::ErrorKind::TimedOut));
    }

    #[tokio::test]
    async fn server_connections_are_not_held_back() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let mut peer = TcpStream::connect(l.local_addr().expect("addr"))
            .await
            .expect("connect");
        let (c, _) = l.accept().await.expect("accept");
        let mut io = DeadlineIo::new(Arc::new(c), None);
        tokio::io::AsyncWriteExt::write_all(&mut peer, b"PRI")
            .await
            .expect("write");
        let mut b = [0u8; 64];
        let n = tokio::io::AsyncReadExt::read(&mut io, &mut b)
            .await
            .expect("read");
        assert_eq!(&b[..n], b"PRI");
        assert!(io.held.is_none());
    }

    #[test]
    fn head_scan_finds_both_framings() {
        let s = HeadScan::default();
        s.feed(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n");
        s.feed(b"transfer-encoding: chunked\r\n\r\n0\r\n\r\n");
        assert!(s.take_conflict());
        assert!(!s.take_conflict());
        // Paused until resumed: body bytes are not mistaken for a head.
        s.feed(b"Content-Length: 1\r\nTransfer-Encoding: x\r\n\r\n");
        assert!(!s.take_conflict());
        s.resume();
        s.feed(b"GET / HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
        assert!(!s.take_conflict());
        let h2 = HeadScan::default();
        h2.feed(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
        h2.resume();
        h2.feed(b"Content-Length: 1\r\nTransfer-Encoding: x\r\n\r\n");
        assert!(!h2.take_conflict());
    }

    #[test]
    fn only_hypers_own_error_heads_are_replaced() {
        let bare = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n";
        let slices = |b: &'static [u8]| vec![io::IoSlice::new(b)];
        let s = HeadScan::default();
        s.feed(b"GET / HTTP/1.1\r\nBad header\r\n\r\n");
        let page = s.error_page(&slices(bare)).expect("replaced");
        assert!(page.starts_with(b"HTTP/1.1 400 Bad request\r\nContent-length: 90\r\n"));
        for other in [
            &b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"[..],
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 3\r\n\r\nabc",
            b"<html>HTTP/1.1 400 </html>\r\n\r\n",
        ] {
            assert!(s.error_page(&slices(other)).is_none());
        }
        // A head that reached the handler: its response (a server's 400) is left alone
        // until the next head starts.
        s.resume();
        s.feed(b"GET / HTTP/1.1\r\n\r\n");
        assert!(!s.take_conflict());
        assert!(s.error_page(&slices(bare)).is_none());
        s.resume();
        s.feed(b"GET");
        assert!(s.error_page(&slices(bare)).is_some());
        // HTTP/2 connections are never touched.
        let h2 = HeadScan::default();
        h2.feed(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
        assert!(h2.error_page(&slices(bare)).is_none());
    }
}
