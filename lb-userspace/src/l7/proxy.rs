//! The HTTP proxy: accepts clients (HTTP/1.0, 1.1, h2c prior knowledge), picks a server
//! (persistence cookie, then the balancer), forwards over pooled HTTP/1.1 connections
//! and applies HAProxy's semantics: retries/redispatch, forwardfor, httpclose, maxconn
//! with queues, timeouts, error pages, httplog.

use super::{
    balance::{Balancer, ServerStates},
    cookie::{self, ResponseContext},
    io::{DeadlineIo, HeadScan},
    log::{AccessLogSink, AccessRecord},
    pages,
    service::{HttpService, Timeouts, DEFAULT_MAX_IDLE_PER_SERVER, DEFAULT_SHUTDOWN_GRACE},
    stats::ServiceStats,
};
use crate::health::ObservedEvent;
use bytes::Bytes;
use hyper::{
    body::{Body, Frame, Incoming, SizeHint},
    client::conn::http1::SendRequest,
    header::{self, HeaderMap, HeaderName, HeaderValue},
    Method, Request, Response, StatusCode, Uri, Version,
};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::{
    convert::Infallible,
    future::Future,
    io,
    net::{IpAddr, SocketAddr},
    pin::Pin,
    sync::{
        atomic::{AtomicU64, Ordering::Relaxed},
        Arc, Mutex,
    },
    task::{Context, Poll},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};
use tokio::{
    net::TcpStream,
    sync::{OwnedSemaphorePermit, Semaphore},
};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

/// Listen backlog of proxy sockets (HAProxy uses the frontend maxconn; the kernel caps
/// it at net.core.somaxconn anyway).
pub const LISTEN_BACKLOG: i32 = 4096;
/// Pause after a failed accept (e.g. out of file descriptors) before trying again.
pub const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);
/// Longest wait for a pooled server connection, given back with its last response
/// read, to be ready for the next request (it normally is at once).
const POOL_READY_WAIT: Duration = Duration::from_millis(100);
/// hyper refuses read buffers below this size.
pub const MIN_HEAD_BUFFER: usize = 8192;

/// Why the proxy could not run.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The listening socket handed to [`serve`] is unusable.
    #[error("service {service}: cannot use listener: {source}")]
    Listener {
        /// Service name.
        service: String,
        /// OS error.
        source: io::Error,
    },
}

/// Why a connection to a server could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// `timeout connect` expired.
    #[error("connect to {addr} timed out after {timeout:?}")]
    Timeout {
        /// Server address.
        addr: SocketAddr,
        /// The timeout.
        timeout: Duration,
    },
    /// Refused, unreachable, ...
    #[error("connect to {addr}: {source}")]
    Io {
        /// Server address.
        addr: SocketAddr,
        /// OS error.
        source: io::Error,
    },
    /// HTTP/1.1 handshake on the new connection failed.
    #[error("HTTP handshake with {addr}: {source}")]
    Handshake {
        /// Server address.
        addr: SocketAddr,
        /// hyper's error.
        source: hyper::Error,
    },
}

/// Binds a listening TCP socket for a VIP with IP_FREEBIND (the address need not be
/// local yet: the VIP arrives when this node becomes MASTER) and SO_REUSEADDR (restart
/// while old connections linger in TIME_WAIT). Non-blocking, ready for [`serve`].
pub fn bind(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    s.set_reuse_address(true)?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
        s.set_freebind_v6(true)?;
    } else {
        s.set_freebind_v4(true)?;
    }
    s.bind(&addr.into())?;
    s.listen(LISTEN_BACKLOG)?;
    s.set_nonblocking(true)?;
    Ok(s.into())
}

/// Runs one service on `listener` until `shutdown` is cancelled, then stops accepting,
/// asks open connections to finish their current request, and returns once they are
/// gone or [`DEFAULT_SHUTDOWN_GRACE`] has passed.
///
/// `states` is read per request (health checks and the admin socket write it);
/// `stats` must have one entry per server ([`ServiceStats::new`]); `access_log`
/// receives one record per request.
pub async fn serve(
    service: Arc<HttpService>,
    listener: std::net::TcpListener,
    states: Arc<ServerStates>,
    stats: Arc<ServiceStats>,
    access_log: Arc<dyn AccessLogSink>,
    shutdown: CancellationToken,
) -> Result<(), ProxyError> {
    let (_keep, farms) = tokio::sync::watch::channel(Farm {
        service,
        states,
        stats,
    });
    serve_farms(listener, farms, access_log, shutdown).await
}

/// One generation of a service: its settings and the server states and counters indexed
/// like its farm. A reload sends [`serve_farms`] a new one.
#[derive(Clone, Debug)]
pub struct Farm {
    /// The service's settings and servers.
    pub service: Arc<HttpService>,
    /// Server states, same order as `service.servers`.
    pub states: Arc<ServerStates>,
    /// Counters, same order as `service.servers`.
    pub stats: Arc<ServiceStats>,
}

/// [`serve`] for a service that can be reconfigured while it runs: every new farm sent on
/// `farms` is used by the next request, on new and already open connections alike (the
/// listener and the connections stay; idle server connections of unchanged servers are
/// kept). Per-connection settings (`timeout http-request`, `httpclose` keep-alive, head
/// size) apply to connections accepted after the change.
pub async fn serve_farms(
    listener: std::net::TcpListener,
    mut farms: tokio::sync::watch::Receiver<Farm>,
    access_log: Arc<dyn AccessLogSink>,
    shutdown: CancellationToken,
) -> Result<(), ProxyError> {
    let first = farms.borrow_and_update().clone();
    let name = first.service.name.clone();
    let lerr = move |source| ProxyError::Listener {
        service: name.clone(),
        source,
    };
    listener.set_nonblocking(true).map_err(&lerr)?;
    // Accepted sockets inherit TCP_NODELAY from the listener (Linux copies the
    // listener's options): one setsockopt(2) per service instead of per connection.
    let inherit_nodelay = socket2::SockRef::from(&listener)
        .set_tcp_nodelay(true)
        .is_ok();
    let current = Arc::new(arc_swap::ArcSwap::from_pointee(Proxy::new(
        first.service,
        first.states,
        first.stats,
        access_log.clone(),
    )));
    tokio::spawn({
        let (current, shutdown) = (current.clone(), shutdown.clone());
        async move {
            loop {
                tokio::select! {
                    r = farms.changed() => if r.is_err() { break },
                    _ = shutdown.cancelled() => break,
                }
                let f = farms.borrow_and_update().clone();
                let next = Proxy::next(&current.load(), f, access_log.clone());
                current.store(Arc::new(next));
            }
        }
    });
    // Every event loop accepts on the one listening socket (a duplicate descriptor,
    // registered with its own reactor): whichever loop is free first takes a connection
    // and serves it, unless the loops' connection counts are clearly uneven
    // (`shards::place`).
    let tracker = TaskTracker::new();
    let loops = super::shards::loops();
    // One descriptor per loop: the listener itself for the first, duplicates for the
    // others. Without loops, the caller's runtime accepts.
    let mut listeners = vec![listener];
    for _ in 1..loops.len() {
        listeners.push(listeners[0].try_clone().map_err(&lerr)?);
    }
    let mut accepting = Vec::with_capacity(listeners.len());
    for (i, l) in listeners.into_iter().enumerate() {
        let a = accept_loop(
            l,
            current.clone(),
            inherit_nodelay,
            tracker.clone(),
            shutdown.clone(),
        );
        accepting.push(match loops.get(i) {
            Some(handle) => handle.spawn(a),
            None => tokio::spawn(a),
        });
    }
    for a in accepting {
        let _ = a.await;
    }
    tracker.close();
    let _ = tokio::time::timeout(DEFAULT_SHUTDOWN_GRACE, tracker.wait()).await;
    Ok(())
}

/// One event loop's accepting: takes connections from `listener` until `shutdown` and
/// serves each on this loop, or on a less loaded one (`shards::place`). Returns having
/// closed its descriptor.
async fn accept_loop(
    listener: std::net::TcpListener,
    current: Arc<arc_swap::ArcSwap<Proxy>>,
    inherit_nodelay: bool,
    tracker: TaskTracker,
    shutdown: CancellationToken,
) {
    // SAFETY: the listener owns its descriptor, which stays open and unchanged while the
    // AsyncFd (which owns the listener) lives.
    let listener = match unsafe {
        tokio::io::unix::AsyncFd::register_with_interest(listener, tokio::io::Interest::READABLE)
    } {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(service = %current.load().service.name, error = %e, "listener unusable on this event loop");
            return;
        }
    };
    loop {
        // A connection first, then a `maxconn` permit: a loop waiting with a permit in
        // hand would hold it against the connections the other loops could take.
        let mut ready = tokio::select! {
            r = listener.readable() => match r {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(service = %current.load().service.name, error = %e, "listener failed");
                    return;
                }
            },
            _ = shutdown.cancelled() => return,
        };
        // HAProxy's frontend maxconn: beyond it, connections wait in the kernel backlog.
        let limit = current.load().conn_limit.clone();
        let permit = match limit {
            None => None,
            Some(sem) => tokio::select! {
                p = sem.acquire_owned() => match p {
                    Ok(p) => Some(p),
                    Err(_) => return,
                },
                _ = shutdown.cancelled() => return,
            },
        };
        // Another loop may have taken it meanwhile: WouldBlock, and the permit goes back.
        let Ok(accepted) = ready.try_io(|l| accept_nonblocking(l.get_ref())) else {
            continue;
        };
        drop(ready);
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(service = %current.load().service.name, error = %e, "accept failed");
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                continue;
            }
        };
        if !inherit_nodelay {
            let _ = stream.set_nodelay(true);
        }
        let (current, shutdown) = (current.clone(), shutdown.clone());
        let (elsewhere, load) = super::shards::place();
        let serve = async move {
            let _load = load;
            match TcpStream::from_std(stream) {
                Ok(stream) => handle_connection(current, stream, peer, permit, shutdown).await,
                Err(e) => tracing::debug!(%peer, error = %e, "accepted connection unusable"),
            }
        };
        match elsewhere {
            Some(other_loop) => drop(tracker.spawn_on(serve, other_loop)),
            None => drop(tracker.spawn(serve)),
        }
    }
}

/// accept4(2) with SOCK_NONBLOCK | SOCK_CLOEXEC: a socket ready for tokio, and its peer.
fn accept_nonblocking(l: &std::net::TcpListener) -> io::Result<(std::net::TcpStream, SocketAddr)> {
    use std::os::fd::{AsRawFd, FromRawFd};
    let fd = l.as_raw_fd();
    // SAFETY: accept4 writes at most `*len` bytes of the peer's address into `storage`
    // and sets `*len`, which is what try_init expects of its closure.
    let (conn, addr) = unsafe {
        socket2::SockAddr::try_init(|storage, len| {
            let c = libc::accept4(
                fd,
                storage.cast(),
                len,
                libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            );
            if c < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(c)
            }
        })?
    };
    // SAFETY: `conn` is a socket accept4 just created; nothing else owns it.
    let stream = unsafe { std::net::TcpStream::from_raw_fd(conn) };
    let peer = addr
        .as_socket()
        .ok_or_else(|| io::Error::other("accepted a connection without an IP address"))?;
    Ok((stream, peer))
}

/// Per-connection facts the request handler needs.
#[derive(Debug)]
struct ConnInfo {
    peer: SocketAddr,
    requests: AtomicU64,
    scan: Arc<HeadScan>,
    /// The client's X-Forwarded-For value, made once per connection.
    xff: std::sync::OnceLock<HeaderValue>,
}

async fn handle_connection(
    current: Arc<arc_swap::ArcSwap<Proxy>>,
    stream: TcpStream,
    peer: SocketAddr,
    _permit: Option<OwnedSemaphorePermit>,
    shutdown: CancellationToken,
) {
    let proxy = current.load_full();
    let fe = &proxy.stats.counters;
    fe.open();
    let _close = OnDrop(Some(|| proxy.stats.counters.close()));
    let t = proxy.service.timeouts;
    let stream = Arc::new(stream);
    let scan = Arc::new(HeadScan::default());
    let io = TokioIo::new(DeadlineIo::new(stream.clone(), Some(t.client)).with_scan(scan.clone()));
    let info = Arc::new(ConnInfo {
        peer,
        requests: AtomicU64::new(0),
        scan,
        xff: std::sync::OnceLock::new(),
    });
    let svc_info = info.clone();
    // Each request uses the service's latest generation (a reload swaps it). The
    // handler's future is boxed: hyper keeps a slot of the service future's size for
    // every connection, busy or idle (idle memory, issue 3 acceptance 7).
    let svc = hyper::service::service_fn(move |req| -> HandlerFuture {
        let p = current.load_full();
        let i = svc_info.clone();
        Box::pin(async move { Ok::<_, Infallible>(p.handle(req, i).await) })
    });
    // HTTP/1 first, its head read straight into hyper's buffer (no peek, one syscall
    // less per connection). hyper stops at an HTTP/2 preface (h2c prior knowledge) and
    // hands the bytes it read back: the connection goes on as HTTP/2 with them replayed.
    let mut conn = proxy.h1.serve_connection(io, svc).with_upgrades();
    let mut res = until_shutdown(&mut conn, &shutdown, |c| c.graceful_shutdown()).await;
    if res.as_ref().is_err_and(|e| e.is_parse_version_h2()) {
        if let Some(parts) = conn.into_parts() {
            // Rare, and its connection state is large: boxed so the HTTP/1
            // connections do not carry its size.
            let io = super::io::Replay::new(parts.read_buf, parts.io);
            let mut conn = Box::pin(proxy.h2.serve_connection(io, parts.service));
            res = until_shutdown(&mut conn, &shutdown, |c| {
                c.get_mut().as_mut().graceful_shutdown()
            })
            .await;
        }
    }
    if let Err(e) = res {
        let bad = if is_header_timeout(&e) {
            // hyper closes silently; HAProxy answers 408 when part of a request head
            // came, and closes a connection that sent nothing (`timeout http-request`
            // also bounds the wait for the first byte: hyper's header timer starts
            // with the connection; nothing logged, `option dontlognull`) or an idle
            // keep-alive connection without a word.
            let partial = info.scan.partial_head_ms();
            partial.is_some().then(|| {
                let _ = stream.try_write(&pages::raw_408());
                let ms = partial
                    .unwrap_or_else(|| i64::try_from(t.http_request.as_millis()).unwrap_or(0));
                (408, ['c', 'R'], ms)
            })
        } else {
            // hyper already answered 400/414/431 to a head it could not parse.
            parse_error_status(&e).map(|status| {
                let ms = info.scan.partial_head_ms().unwrap_or(0);
                (status, ['P', 'R'], ms)
            })
        };
        if let Some((status, term, ms)) = bad {
            proxy.stats.counters.count_status(status);
            proxy.stats.counters.errors_conn.fetch_add(1, Relaxed);
            let mut rec = proxy.record(peer, SystemTime::now(), String::from("<BADREQ>"));
            rec.status = status;
            rec.termination = [term[0], term[1], '-', '-'];
            rec.t_request = ms;
            proxy.sink.log(&rec);
        }
        tracing::debug!(service = %proxy.service.name, %peer, error = %e, "client connection ended with error");
    }
}

/// What the handler returns to hyper (boxed, see `handle_connection`).
type HandlerFuture =
    Pin<Box<dyn std::future::Future<Output = Result<Response<ResponseBody>, Infallible>> + Send>>;

/// Drives a client connection; once `shutdown` fires, asks it to finish the request in
/// progress (`graceful`) and waits for that.
async fn until_shutdown<C>(
    conn: &mut C,
    shutdown: &CancellationToken,
    graceful: fn(Pin<&mut C>),
) -> Result<(), hyper::Error>
where
    C: std::future::Future<Output = Result<(), hyper::Error>> + Unpin,
{
    tokio::select! {
        r = &mut *conn => r,
        _ = shutdown.cancelled() => {
            graceful(Pin::new(&mut *conn));
            conn.await
        }
    }
}

/// The status hyper sent for a request head it could not parse (its `on_error`).
fn parse_error_status(e: &(dyn std::error::Error + 'static)) -> Option<u16> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(h) = err.downcast_ref::<hyper::Error>() {
            if h.is_parse_too_large() {
                return Some(if h.to_string().contains("URI") {
                    414
                } else {
                    431
                });
            }
            if h.is_parse() && !h.is_parse_version_h2() && !h.is_parse_status() {
                return Some(400);
            }
        }
        cur = err.source();
    }
    None
}

fn is_header_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(h) = err.downcast_ref::<hyper::Error>() {
            if h.is_timeout() {
                return true;
            }
        }
        cur = err.source();
    }
    false
}

fn is_io_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<io::Error>() {
            if io.kind() == io::ErrorKind::TimedOut {
                return true;
            }
        }
        cur = err.source();
    }
    false
}

/// Runs a closure when dropped (counters that must be released on every path).
struct OnDrop<F: FnOnce()>(Option<F>);
impl<F: FnOnce()> Drop for OnDrop<F> {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            f();
        }
    }
}

/// One service's shared proxy state.
#[derive(Debug)]
struct Proxy {
    service: Arc<HttpService>,
    states: Arc<ServerStates>,
    stats: Arc<ServiceStats>,
    balancer: Balancer,
    pools: Vec<Arc<Pool>>,
    slots: Vec<Option<Arc<Semaphore>>>,
    /// The service's `maxconn` (frontend), shared by every event loop's accepting; a
    /// reload that keeps the figure keeps the semaphore (and the connections it counts).
    conn_limit: Option<Arc<Semaphore>>,
    sink: Arc<dyn AccessLogSink>,
    /// Client connection settings, built once per service (not per connection: they
    /// are sizeable, and each connection's future borrows them instead of holding them).
    h1: hyper::server::conn::http1::Builder,
    /// The same for h2c (prior knowledge) clients.
    h2: hyper::server::conn::http2::Builder<TokioExecutor>,
}

fn h1_builder(service: &HttpService) -> hyper::server::conn::http1::Builder {
    let mut b = hyper::server::conn::http1::Builder::new();
    b.timer(TokioTimer::new())
        .header_read_timeout(service.timeouts.http_request)
        .max_buf_size(service.max_request_head.max(MIN_HEAD_BUFFER))
        .keep_alive(!service.httpclose)
        .preserve_header_case(service.preserve_header_case)
        .title_case_headers(service.preserve_header_case);
    b
}

fn h2_builder() -> hyper::server::conn::http2::Builder<TokioExecutor> {
    let mut b = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    // WebSocket over HTTP/2 (RFC 8441).
    b.timer(TokioTimer::new()).enable_connect_protocol();
    b
}

/// A response head from a server: server index, response, whether the request went
/// where its cookie said (HAProxy's SF_DIRECT), the server slot and in-flight count to
/// hold until the response body is done.
type Forwarded = (
    usize,
    Response<Incoming>,
    bool,
    Option<OwnedSemaphorePermit>,
    InflightGuard,
);

/// How a request failed before a response came from a server.
enum Failure {
    NoServer,
    QueueTimeout,
    /// The last connection attempt failed; `true` when it timed out (`sC`, else `SC`).
    Connect(bool),
    ServerTimeout,
    BadResponse,
}

impl Proxy {
    fn new(
        service: Arc<HttpService>,
        states: Arc<ServerStates>,
        mut stats: Arc<ServiceStats>,
        sink: Arc<dyn AccessLogSink>,
    ) -> Self {
        let n = service.servers.len();
        if stats.servers.len() < n {
            // Defensive: a stats block for another farm size would make indexing panic.
            stats = Arc::new(ServiceStats::new(n));
        }
        Proxy {
            h1: h1_builder(&service),
            h2: h2_builder(),
            balancer: Balancer::new(service.balance, n),
            pools: service
                .servers
                .iter()
                .map(|s| {
                    Arc::new(Pool::new(
                        s.addr,
                        DEFAULT_MAX_IDLE_PER_SERVER,
                        service.preserve_header_case,
                    ))
                })
                .collect(),
            slots: service
                .servers
                .iter()
                .map(|s| (s.maxconn > 0).then(|| Arc::new(Semaphore::new(s.maxconn as usize))))
                .collect(),
            conn_limit: (service.maxconn > 0)
                .then(|| Arc::new(Semaphore::new(service.maxconn as usize))),
            service,
            states,
            stats,
            sink,
        }
    }

    /// The generation after `prev` for `farm`: servers at an unchanged address keep their
    /// pool of idle connections, and their `maxconn` slots when that is unchanged too.
    fn next(prev: &Proxy, farm: Farm, sink: Arc<dyn AccessLogSink>) -> Self {
        let mut p = Proxy::new(farm.service, farm.states, farm.stats, sink);
        if prev.service.maxconn == p.service.maxconn {
            p.conn_limit = prev.conn_limit.clone();
        }
        for (i, s) in p.service.servers.iter().enumerate() {
            let Some(j) = prev.service.servers.iter().position(|o| o.addr == s.addr) else {
                continue;
            };
            if prev.service.preserve_header_case == p.service.preserve_header_case {
                p.pools[i] = prev.pools[j].clone();
            }
            if prev.service.servers[j].maxconn == s.maxconn {
                p.slots[i] = prev.slots[j].clone();
            }
        }
        p
    }

    fn record(&self, client: SocketAddr, date: SystemTime, request_line: String) -> AccessRecord {
        let (c, s) = match self.service.cookie {
            Some(_) => ('N', 'N'),
            None => ('-', '-'),
        };
        AccessRecord {
            client,
            date,
            frontend: self.service.name.clone(),
            backend: self.service.name.clone(),
            server: None,
            t_request: 0,
            t_queue: -1,
            t_connect: -1,
            t_response: -1,
            t_active: 0,
            status: 0,
            bytes: 0,
            termination: ['-', '-', c, s],
            actconn: self.stats.counters.cur.load(Relaxed),
            feconn: self.stats.counters.cur.load(Relaxed),
            beconn: self
                .stats
                .servers
                .iter()
                .map(|s| s.counters.cur.load(Relaxed))
                .sum(),
            srv_conn: 0,
            retries: 0,
            redispatched: false,
            srv_queue: 0,
            backend_queue: 0,
            request_line,
        }
    }

    /// A locally generated response (error page), logged when its body is done.
    fn local(
        self: &Arc<Self>,
        status: u16,
        close: bool,
        mut rec: AccessRecord,
        start: Instant,
        scan: Arc<HeadScan>,
    ) -> Response<ResponseBody> {
        let body = pages::body(status).unwrap_or_default();
        rec.status = status;
        self.stats.counters.count_status(status);
        let mut resp = Response::new(ResponseBody::full(body.clone()));
        *resp.status_mut() =
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let h = resp.headers_mut();
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
        if close {
            h.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        resp.body_mut().finish = Some(Finish {
            proxy: self.clone(),
            rec,
            start,
            inflight: None,
            _slot: None,
            scan: Some(scan),
        });
        resp
    }

    async fn handle(
        self: Arc<Self>,
        mut req: Request<Incoming>,
        conn: Arc<ConnInfo>,
    ) -> Response<ResponseBody> {
        let start = Instant::now();
        let date = SystemTime::now();
        conn.requests.fetch_add(1, Relaxed);
        self.stats.requests.fetch_add(1, Relaxed);
        // `bin` counts request heads too, as HAProxy does (bodies: RequestBody).
        let head_in = request_head_len(&req);
        self.stats.counters.bytes_in.fetch_add(head_in, Relaxed);
        let mut rec = self.record(conn.peer, date, request_line(&req));
        let client_h1 = req.version() < Version::HTTP_2;
        let close_client = self.service.httpclose && client_h1;

        // Request smuggling: a message with both framings is refused outright (hyper
        // already rejects duplicate/invalid Content-Length and non-chunked TE, and drops
        // Content-Length when both are present, which the head scanner sees).
        let conflict = conn.scan.take_conflict();
        rec.t_request = conn.scan.head_ms();
        if conflict
            || (req.headers().contains_key(header::TRANSFER_ENCODING)
                && req.headers().contains_key(header::CONTENT_LENGTH))
        {
            self.stats.counters.errors_conn.fetch_add(1, Relaxed);
            rec.termination[0] = 'P';
            rec.termination[1] = 'R';
            return self.local(400, client_h1, rec, start, conn.scan.clone());
        }

        // The stats page and metrics are answered here, not proxied (HAProxy's stats uri).
        if self
            .service
            .stats
            .as_ref()
            .is_some_and(|s| s.matches(req.uri()))
        {
            return Box::pin(self.intercepted(req, conn.peer, close_client, rec, start, &conn))
                .await;
        }

        // HTTP/1.1 Upgrade (WebSocket): the protocol is forwarded and, on 101, both
        // connections are handed over to a byte tunnel (HAProxy's tunnel mode).
        let upgrade = (req.version() == Version::HTTP_11)
            .then(|| upgrade_protocol(req.headers()))
            .flatten();
        // RFC 8441: a WebSocket over HTTP/2 (extended CONNECT) goes to the server as an
        // HTTP/1.1 WebSocket upgrade; the server's 101 becomes the client's 200.
        let h2_websocket = is_h2_websocket(&req);
        let upgrade =
            upgrade.or_else(|| h2_websocket.then(|| HeaderValue::from_static("websocket")));
        let client_upgrade = upgrade.is_some().then(|| hyper::upgrade::on(&mut req));

        let (mut parts, body) = req.into_parts();
        let states = self.states.snapshot();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);

        // Persistence cookie.
        let mut ck = None;
        if let Some(cfg) = &self.service.cookie {
            let values: Vec<&[u8]> = parts
                .headers
                .get_all(header::COOKIE)
                .iter()
                .map(|v| v.as_bytes())
                .collect();
            let r = cookie::on_request(cfg, &values, &self.service.servers, &states, now);
            if let Some(new) = &r.rewritten {
                parts.headers.remove(header::COOKIE);
                for v in new.iter().filter(|v| !v.is_empty()) {
                    if let Ok(v) = HeaderValue::from_bytes(v) {
                        parts.headers.append(header::COOKIE, v);
                    }
                }
            }
            rec.termination[2] = r.status.letter();
            ck = Some(r);
        }
        let is_post = parts.method == Method::POST;
        let get_or_head = parts.method == Method::GET || parts.method == Method::HEAD;

        let xff = self
            .service
            .forwardfor
            .then(|| conn.xff.get_or_init(|| forwarded_for(conn.peer.ip())));
        prepare_upstream_request(&mut parts, xff, self.service.httpclose);
        if let Some(proto) = &upgrade {
            parts
                .headers
                .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            parts.headers.insert(header::UPGRADE, proto.clone());
        }
        if h2_websocket {
            // The HTTP/1.1 handshake needs a key (RFC 6455 4.1); an HTTP/2 client
            // sends none (RFC 8441 5). Its Sec-WebSocket-Version and extensions pass.
            parts.method = Method::GET;
            parts
                .headers
                .entry(header::SEC_WEBSOCKET_KEY)
                .or_insert_with(websocket_key);
        }
        if body.is_end_stream() {
            conn.scan.set_awaiting(true);
        }
        let up_req = Request::from_parts(
            parts,
            RequestBody {
                inner: body,
                stats: self.stats.clone(),
                server: None,
                scan: conn.scan.clone(),
            },
        );

        let persistent = ck.as_ref().and_then(|c| c.server);
        // Boxed: hyper keeps a slot of the handler future's size for every client
        // connection, busy or idle; the connect/send machinery only exists while a
        // request is in flight (idle memory, issue 3 acceptance 7).
        let outcome = Box::pin(self.forward(up_req, persistent, conn.peer.ip(), &mut rec)).await;
        let (idx, mut resp, direct, slot, inflight) = match outcome {
            Ok(x) => x,
            Err(f) => {
                let (status, t) = match f {
                    Failure::NoServer => {
                        self.stats.no_server.fetch_add(1, Relaxed);
                        (503, ['S', 'C'])
                    }
                    Failure::QueueTimeout => {
                        self.stats.no_server.fetch_add(1, Relaxed);
                        (503, ['s', 'Q'])
                    }
                    Failure::Connect(timed_out) => (503, [if timed_out { 's' } else { 'S' }, 'C']),
                    Failure::ServerTimeout => (504, ['s', 'H']),
                    Failure::BadResponse => (502, ['S', 'H']),
                };
                rec.termination[0] = t[0];
                rec.termination[1] = t[1];
                return self.local(status, close_client, rec, start, conn.scan.clone());
            }
        };

        let tunnel = match client_upgrade {
            Some(c) if resp.status() == StatusCode::SWITCHING_PROTOCOLS => {
                Some((c, hyper::upgrade::on(&mut resp)))
            }
            _ => None,
        };
        let (mut rparts, rbody) = resp.into_parts();
        let status = rparts.status.as_u16();
        self.stats.counters.count_status(status);
        self.stats.servers[idx].counters.count_status(status);
        let head_out = response_head_len(&rparts);
        self.stats.counters.bytes_out.fetch_add(head_out, Relaxed);
        let srv = &self.stats.servers[idx].counters;
        srv.bytes_in.fetch_add(head_in, Relaxed);
        srv.bytes_out.fetch_add(head_out, Relaxed);
        self.states.observe(idx, ObservedEvent::HttpStatus(status));
        let server_proto = rparts.headers.get(header::UPGRADE).cloned();
        strip_hop_by_hop(&mut rparts.headers);

        if let (Some(cfg), Some(reqck)) = (&self.service.cookie, &ck) {
            let values: Vec<&[u8]> = rparts
                .headers
                .get_all(header::SET_COOKIE)
                .iter()
                .map(|v| v.as_bytes())
                .collect();
            let cache_control: Vec<&[u8]> = rparts
                .headers
                .get_all(header::CACHE_CONTROL)
                .iter()
                .map(|v| v.as_bytes())
                .collect();
            let pragma = rparts
                .headers
                .get_all(header::PRAGMA)
                .iter()
                .any(|v| v.as_bytes().eq_ignore_ascii_case(b"no-cache"));
            let ctx = ResponseContext {
                server: idx,
                direct,
                first_date: reqck.first_date,
                last_date: reqck.last_date,
                is_post,
                cacheable: cookie::is_cacheable(get_or_head, status, &cache_control, pragma),
            };
            let out = cookie::on_response(cfg, &values, &self.service.servers, ctx, now);
            if let Some(new) = out.rewritten {
                rparts.headers.remove(header::SET_COOKIE);
                for v in new.into_iter().flatten() {
                    if let Ok(v) = HeaderValue::from_bytes(&v) {
                        rparts.headers.append(header::SET_COOKIE, v);
                    }
                }
            }
            if let Some(ins) = out.insert {
                if let Ok(v) = HeaderValue::from_str(&ins) {
                    rparts.headers.append(header::SET_COOKIE, v);
                }
            }
            if out.cache_private {
                rparts
                    .headers
                    .append(header::CACHE_CONTROL, HeaderValue::from_static("private"));
            }
            rec.termination[3] = out.status.letter();
        }
        rparts.version = Version::HTTP_11;
        rec.status = status;
        if let Some((client_up, server_up)) = tunnel {
            if h2_websocket {
                // RFC 8441 5: success is a 2xx, without the HTTP/1.1 handshake's
                // accept header (and HTTP/2 has no Connection/Upgrade).
                rparts.status = StatusCode::OK;
                rparts.headers.remove(header::SEC_WEBSOCKET_ACCEPT);
            } else {
                rparts
                    .headers
                    .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
                if let Some(p) = server_proto.or(upgrade) {
                    rparts.headers.insert(header::UPGRADE, p);
                }
            }
            let fin = Finish {
                proxy: self.clone(),
                rec,
                start,
                inflight: Some(inflight),
                _slot: slot,
                scan: None,
            };
            // The response body of a 101 is empty; hyper hands the client connection
            // over once the head is written, and the tunnel logs when it closes.
            drop(rbody);
            // In the tunnel both sides talk: the client timeout applies again.
            conn.scan.set_awaiting(false);
            conn.scan.set_tunnel();
            tokio::spawn(run_tunnel(client_up, server_up, fin));
            return Response::from_parts(rparts, ResponseBody::empty());
        }
        if close_client {
            rparts
                .headers
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        let body = ResponseBody {
            inner: Some(rbody),
            full: None,
            bytes: 0,
            stats: Some(self.stats.clone()),
            server: Some(idx),
            finish: Some(Finish {
                proxy: self.clone(),
                rec,
                start,
                inflight: Some(inflight),
                _slot: slot,
                scan: Some(conn.scan.clone()),
            }),
        };
        Response::from_parts(rparts, body)
    }

    /// Chooses a server, connects (retrying and redispatching), sends the request and
    /// waits for the response head. Returns the server index, the response, whether the
    /// request went where its cookie said (HAProxy's SF_DIRECT), and the server slot to
    /// hold until the response body is done.
    async fn forward(
        self: &Arc<Self>,
        mut req: Request<RequestBody>,
        persistent: Option<usize>,
        client: IpAddr,
        rec: &mut AccessRecord,
    ) -> Result<Forwarded, Failure> {
        let t = self.service.timeouts;
        let mut target = persistent;
        let mut direct = persistent.is_some();
        let mut tried: Vec<usize> = Vec::new();
        let mut retries = 0u32;
        let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        loop {
            let idx = match target {
                Some(i) => i,
                None => match self.pick(client, &tried) {
                    Some(i) => i,
                    None => return Err(Failure::NoServer),
                },
            };
            // Logged even when the request fails there (HAProxy names the server
            // whose queue or connect failed; only "no server at all" is <NOSRV>).
            rec.server = Some(self.service.servers[idx].name.clone());
            let q0 = Instant::now();
            let slot = self.acquire_slot(idx, t.queue).await.map_err(|()| {
                rec.t_queue = ms(q0.elapsed());
                Failure::QueueTimeout
            })?;
            rec.t_queue = ms(q0.elapsed());
            let srv = &self.stats.servers[idx].counters;
            let c0 = Instant::now();
            // Under httpclose the server connection serves this request only: it is
            // driven by this request's own task (see `ServerLink::Owned`) instead of a
            // task of its own. Upgrades keep the spawned driver (their tunnel takes
            // the connection over).
            let owned = self.service.httpclose && !req.headers().contains_key(header::UPGRADE);
            // The owned path's futures are boxed: the request future (boxed per request,
            // keep-alive included) would otherwise carry their size.
            let got = if owned {
                Box::pin(self.pools[idx].connect_owned(&t))
                    .await
                    .map(|(s, c)| (s, Some(Box::pin(c)), false))
            } else {
                self.pools[idx].get(&t).await.map(|(s, r)| (s, None, r))
            };
            match got {
                Ok((sender, conn, reused)) => {
                    rec.t_connect = ms(c0.elapsed());
                    self.states.observe(idx, ObservedEvent::ConnectOk);
                    srv.open();
                    let mut guard = InflightGuard(idx, self.stats.clone(), None);
                    req.body_mut().server = Some(idx);
                    let r0 = Instant::now();
                    let res = match conn {
                        Some(conn) => Box::pin(self.send_owned(idx, sender, conn, req)).await,
                        None => self.send(idx, sender, reused, req, &t).await,
                    };
                    rec.t_response = ms(r0.elapsed());
                    return match res {
                        Ok((resp, reuse)) => {
                            guard.2 = reuse;
                            Ok((idx, resp, direct, slot, guard))
                        }
                        Err(f) => {
                            drop(guard);
                            srv.errors_resp.fetch_add(1, Relaxed);
                            let ev = match f {
                                Failure::ServerTimeout => ObservedEvent::HttpReadTimeout,
                                Failure::BadResponse => ObservedEvent::HttpBadResponse,
                                _ => ObservedEvent::HttpReadError,
                            };
                            self.states.observe(idx, ev);
                            Err(f)
                        }
                    };
                }
                Err(e) => {
                    drop(slot);
                    srv.errors_conn.fetch_add(1, Relaxed);
                    self.states.observe(idx, ObservedEvent::ConnectError);
                    tracing::debug!(service = %self.service.name, server = %self.service.servers[idx].name, error = %e, "connect failed");
                    if !tried.contains(&idx) {
                        tried.push(idx);
                    }
                    if retries >= self.service.retries {
                        rec.retries = retries;
                        return Err(Failure::Connect(matches!(e, ConnectError::Timeout { .. })));
                    }
                    retries += 1;
                    rec.retries = retries;
                    srv.retries.fetch_add(1, Relaxed);
                    self.stats.counters.retries.fetch_add(1, Relaxed);
                    if self.service.redispatch {
                        // Our improvement on HAProxy: redispatch at once instead of on the
                        // last retry, and without the 1 s pause, so a refusing server
                        // costs the client nothing (issue 3, acceptance 3).
                        let next = self.pick(client, &tried);
                        if next.is_some_and(|n| n != idx) {
                            srv.redispatches.fetch_add(1, Relaxed);
                            self.stats.counters.redispatches.fetch_add(1, Relaxed);
                            rec.redispatched = true;
                            if direct && rec.termination[2] == 'V' {
                                // HAProxy's 'D': the cookie named a server that failed,
                                // and the client was redispatched.
                                rec.termination[2] = 'D';
                            }
                            direct = false;
                        }
                        target = next.or(Some(idx));
                    } else {
                        target = Some(idx);
                    }
                    tracing::info!(service = %self.service.name, server = %self.service.servers[idx].name, retry = retries, redispatch = rec.redispatched, "retrying after connect failure");
                }
            }
        }
    }

    /// Balancer pick avoiding servers that failed this request and, if possible, full
    /// servers; when every usable server is full, the pick among them queues.
    fn pick(&self, client: IpAddr, tried: &[usize]) -> Option<usize> {
        let states = self.states.snapshot();
        // Only leastconn looks at in-flight counts; skip the per-request Vec otherwise.
        let inflight = if self.service.balance == super::service::Balance::LeastConn {
            self.stats.inflight()
        } else {
            Vec::new()
        };
        let servers = &self.service.servers;
        let full = |i: usize| {
            self.slots
                .get(i)
                .and_then(Option::as_ref)
                .is_some_and(|s| s.available_permits() == 0)
        };
        self.balancer
            .pick(servers, &states, &inflight, client, &|i| {
                tried.contains(&i) || full(i)
            })
            .or_else(|| {
                self.balancer
                    .pick(servers, &states, &inflight, client, &|i| tried.contains(&i))
            })
    }

    /// Waits for a free slot on server `idx` (its `maxconn`), at most `queue`.
    async fn acquire_slot(
        &self,
        idx: usize,
        queue: Duration,
    ) -> Result<Option<OwnedSemaphorePermit>, ()> {
        let Some(Some(sem)) = self.slots.get(idx) else {
            return Ok(None);
        };
        if let Ok(p) = sem.clone().try_acquire_owned() {
            return Ok(Some(p));
        }
        let st = &self.stats.servers[idx];
        let q = st.queue_cur.fetch_add(1, Relaxed) + 1;
        st.queue_max.fetch_max(q, Relaxed);
        let r = tokio::time::timeout(queue, sem.clone().acquire_owned()).await;
        let _ = st
            .queue_cur
            .fetch_update(Relaxed, Relaxed, |v| Some(v.saturating_sub(1)));
        match r {
            Ok(Ok(p)) => Ok(Some(p)),
            _ => Err(()),
        }
    }

    /// Sends on a connection of this request's own, driving it while waiting.
    async fn send_owned(
        &self,
        idx: usize,
        mut sender: SendRequest<RequestBody>,
        conn: Pin<Box<ServerConn>>,
        req: Request<RequestBody>,
    ) -> Result<(Response<Incoming>, Option<ServerLink>), Failure> {
        let mut link = Some(ServerLink::Owned(conn));
        let r = {
            let resp = sender.try_send_request(req);
            tokio::pin!(resp);
            std::future::poll_fn(|cx| {
                drive(&mut link, cx);
                resp.as_mut().poll(cx)
            })
            .await
        };
        match r {
            Ok(resp) => Ok((resp, link)),
            Err(e) => Err(self.send_failure(idx, e.into_error())),
        }
    }

    /// Sends on a (possibly pooled) connection; a pooled connection that turns out to
    /// be dead before the request was written is replaced by a fresh one once.
    async fn send(
        &self,
        idx: usize,
        mut sender: SendRequest<RequestBody>,
        mut reused: bool,
        mut req: Request<RequestBody>,
        t: &Timeouts,
    ) -> Result<(Response<Incoming>, Option<ServerLink>), Failure> {
        let pool = &self.pools[idx];
        // A connection carrying an Upgrade becomes a tunnel: never back to the pool.
        let poolable = !self.service.httpclose && !req.headers().contains_key(header::UPGRADE);
        loop {
            match sender.try_send_request(req).await {
                Ok(resp) => {
                    // Back to the pool once the response body is through (see
                    // `ResponseBody`'s drop), not by a task per request waiting for it.
                    let reuse = poolable.then(|| ServerLink::Pooled(pool.clone(), sender));
                    return Ok((resp, reuse));
                }
                Err(mut e) => match e.take_message() {
                    Some(r) if reused => {
                        req = r;
                        sender = pool.connect(t).await.map_err(|e| {
                            Failure::Connect(matches!(e, ConnectError::Timeout { .. }))
                        })?;
                        reused = false;
                    }
                    _ => return Err(self.send_failure(idx, e.into_error())),
                },
            }
        }
    }

    fn send_failure(&self, idx: usize, err: hyper::Error) -> Failure {
        tracing::debug!(service = %self.service.name, server = %self.service.servers[idx].name, error = %err, "server response failed");
        if is_io_timeout(&err) {
            Failure::ServerTimeout
        } else {
            Failure::BadResponse
        }
    }
}

/// A server connection driven by the task of the one request it serves (httpclose).
type ServerConn = hyper::client::conn::http1::Connection<TokioIo<DeadlineIo>, RequestBody>;

/// The server connection a response comes from, held until the response is over.
enum ServerLink {
    /// Driven by a task of its own; given back to its pool once the response is read
    /// through.
    Pooled(Arc<Pool>, SendRequest<RequestBody>),
    /// Driven by whoever waits for its response (`send`, then the response body's
    /// polls), and closed when dropped: under httpclose a spawned driver task per
    /// request, its wake-ups across tasks and hyper's shutdown(2) before close cost
    /// more than the request's own I/O on this connection.
    Owned(Pin<Box<ServerConn>>),
}

/// Polls an owned server connection, forgetting it once it is finished (a dropped
/// connection fails whatever still waits on it, so nothing hangs).
fn drive(link: &mut Option<ServerLink>, cx: &mut Context<'_>) {
    if let Some(ServerLink::Owned(conn)) = link {
        if let Poll::Ready(r) = conn.as_mut().poll(cx) {
            if let Err(e) = r {
                tracing::trace!(error = %e, "server connection closed");
            }
            *link = None;
        }
    }
}

/// Decrements a server's in-flight count when the request is over, and holds the
/// server connection until then.
struct InflightGuard(usize, Arc<ServiceStats>, Option<ServerLink>);
impl Drop for InflightGuard {
    fn drop(&mut self) {
        if let Some(s) = self.1.servers.get(self.0) {
            s.counters.close();
        }
    }
}

/// Hop-by-hop headers (RFC 9110 7.6.1) never forwarded; hyper frames messages itself.
const HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TRANSFER_ENCODING,
    header::TE,
    header::TRAILER,
    header::UPGRADE,
];

/// Removes the hop-by-hop headers and those `Connection` names. Looks before it
/// removes: most messages carry none or only `Connection`, and a removal by name
/// hashes it (seven blind removals per message showed in instruction profiles).
fn strip_hop_by_hop(h: &mut HeaderMap) {
    let mut listed: Vec<HeaderName> = Vec::new();
    for v in h.get_all(header::CONNECTION) {
        for n in v.to_str().unwrap_or_default().split(',') {
            let n = n.trim();
            if n.is_empty()
                || HOP_BY_HOP
                    .iter()
                    .any(|k| n.eq_ignore_ascii_case(k.as_str()))
            {
                continue;
            }
            if let Ok(name) = HeaderName::from_bytes(n.as_bytes()) {
                listed.push(name);
            }
        }
    }
    for n in listed {
        h.remove(n);
    }
    let mut present = [false; 7];
    let mut any = false;
    for k in h.keys() {
        if let Some(i) = HOP_BY_HOP.iter().position(|n| n == k) {
            present[i] = true;
            any = true;
        }
    }
    if any {
        for (n, _) in HOP_BY_HOP.iter().zip(present).filter(|(_, p)| *p) {
            h.remove(n);
        }
    }
}

/// The request line as logged (`%r`): method, target as received, version.
fn request_line<B>(req: &Request<B>) -> String {
    let uri = req.uri();
    let version = match req.version() {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_11 => "HTTP/1.1",
        Version::HTTP_2 => "HTTP/2.0",
        Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/?",
    };
    let method = req.method().as_str();
    let mut s = String::with_capacity(method.len() + uri.path().len() + 16);
    s.push_str(method);
    s.push(' ');
    match (uri.authority(), uri.path_and_query()) {
        (None, Some(pq)) if uri.scheme().is_none() => s.push_str(pq.as_str()),
        _ => s.push_str(&uri.to_string()),
    }
    s.push(' ');
    s.push_str(version);
    s
}

/// The X-Forwarded-For value for a client: its address, IPv4-mapped IPv6 as IPv4.
fn forwarded_for(client: IpAddr) -> HeaderValue {
    let ip = match client {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    let v4 = match ip {
        IpAddr::V4(v4) => v4,
        v6 => {
            return HeaderValue::from_str(&v6.to_string())
                .unwrap_or(HeaderValue::from_static("unknown"))
        }
    };
    // Dotted quad written by hand: `to_string` goes through the formatting machinery,
    // which showed per connection in httpclose profiles.
    let mut text = [0u8; 15];
    let mut len = 0;
    for (i, octet) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            text[len] = b'.';
            len += 1;
        }
        let digits = [octet / 100, octet / 10 % 10, octet % 10];
        let skip = if octet >= 100 {
            0
        } else if octet >= 10 {
            1
        } else {
            2
        };
        for d in &digits[skip..] {
            text[len] = b'0' + d;
            len += 1;
        }
    }
    HeaderValue::from_bytes(&text[..len]).unwrap_or(HeaderValue::from_static("unknown"))
}

/// Turns the client's request head into the one sent to the server: origin-form URI,
/// HTTP/1.1, Host present, hop-by-hop headers gone, HTTP/2 cookie crumbs joined,
/// `xff` appended as X-Forwarded-For (when `option forwardfor`), `Connection: close`
/// under httpclose.
fn prepare_upstream_request(
    parts: &mut hyper::http::request::Parts,
    xff: Option<&HeaderValue>,
    httpclose: bool,
) {
    strip_hop_by_hop(&mut parts.headers);
    if !parts.headers.contains_key(header::HOST) {
        if let Some(a) = parts.uri.authority() {
            if let Ok(v) = HeaderValue::from_str(a.as_str()) {
                parts.headers.insert(header::HOST, v);
            }
        }
    }
    // Origin-form already (HTTP/1 clients' usual form): nothing to rebuild.
    let origin_form = parts.uri.scheme().is_none()
        && parts.uri.authority().is_none()
        && parts.uri.path_and_query().is_some();
    if !origin_form {
        let pq = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        if let Ok(u) = pq.parse::<Uri>() {
            parts.uri = u;
        }
    }
    if parts.version == Version::HTTP_2 {
        // RFC 9113 8.2.3: crumbs must be joined with "; " for HTTP/1.1.
        let crumbs: Vec<Vec<u8>> = parts
            .headers
            .get_all(header::COOKIE)
            .iter()
            .map(|v| v.as_bytes().to_vec())
            .collect();
        if crumbs.len() > 1 {
            if let Ok(v) = HeaderValue::from_bytes(&crumbs.join(&b"; "[..])) {
                parts.headers.insert(header::COOKIE, v);
            }
        }
    }
    parts.version = Version::HTTP_11;
    if let Some(v) = xff {
        // HAProxy adds its own header line after any existing ones; servers should use
        // the last occurrence.
        parts
            .headers
            .append(HeaderName::from_static("x-forwarded-for"), v.clone());
    }
    if httpclose {
        parts
            .headers
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
}

/// Idle HTTP/1.1 connections to one server, for keep-alive reuse.
#[derive(Debug)]
struct Pool {
    addr: SocketAddr,
    /// One list per event loop (`shards::slot`): a server connection is driven by the
    /// loop that opened it, so it is reused by requests on that loop.
    idle: Box<[Mutex<Vec<SendRequest<RequestBody>>>]>,
    max_idle: usize,
    /// The service's `preserve_header_case`.
    header_case: bool,
}

impl Pool {
    fn new(addr: SocketAddr, max_idle: usize, header_case: bool) -> Self {
        Pool {
            addr,
            idle: (0..super::shards::slots())
                .map(|_| Mutex::new(Vec::new()))
                .collect(),
            max_idle,
            header_case,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<SendRequest<RequestBody>>> {
        let i = super::shards::slot().min(self.idle.len().saturating_sub(1));
        match self.idle[i].lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// A pooled connection that still looks alive, else a new one; `true` = pooled.
    async fn get(&self, t: &Timeouts) -> Result<(SendRequest<RequestBody>, bool), ConnectError> {
        loop {
            let Some(mut s) = self.lock().pop() else {
                break;
            };
            if s.is_closed() {
                continue;
            }
            if s.is_ready() {
                return Ok((s, true));
            }
            // Given back as soon as its last response was read: its connection task
            // may not have noted the end yet.
            if let Ok(Ok(())) = tokio::time::timeout(POOL_READY_WAIT, s.ready()).await {
                return Ok((s, true));
            }
        }
        Ok((self.connect(t).await?, false))
    }

    /// A new connection with its driver task.
    async fn connect(&self, t: &Timeouts) -> Result<SendRequest<RequestBody>, ConnectError> {
        let addr = self.addr;
        let (sender, conn) = self.open(t, false).await?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::trace!(%addr, error = %e, "server connection closed");
            }
        });
        Ok(sender)
    }

    /// A new connection whose driver the caller polls, for one request without
    /// upgrade: closed without shutdown(2) when done.
    async fn connect_owned(
        &self,
        t: &Timeouts,
    ) -> Result<(SendRequest<RequestBody>, ServerConn), ConnectError> {
        self.open(t, true).await
    }

    /// Connects and performs the HTTP/1.1 handshake; `closing`: see
    /// [`DeadlineIo::closing`].
    async fn open(
        &self,
        t: &Timeouts,
        closing: bool,
    ) -> Result<(SendRequest<RequestBody>, ServerConn), ConnectError> {
        let addr = self.addr;
        let stream = match tokio::time::timeout(t.connect, connect(addr)).await {
            Err(_) => {
                return Err(ConnectError::Timeout {
                    addr,
                    timeout: t.connect,
                })
            }
            Ok(Err(source)) => return Err(ConnectError::Io { addr, source }),
            Ok(Ok(s)) => s,
        };
        let io = DeadlineIo::new(Arc::new(stream), Some(t.server));
        let io = TokioIo::new(if closing { io.closing() } else { io });
        hyper::client::conn::http1::Builder::new()
            .preserve_header_case(self.header_case)
            .title_case_headers(self.header_case)
            .handshake(io)
            .await
            .map_err(|source| ConnectError::Handshake { addr, source })
    }

    /// Takes back a connection whose response was read through.
    fn put(&self, sender: SendRequest<RequestBody>) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.lock();
        if idle.len() < self.max_idle {
            idle.push(sender);
        }
    }
}

/// A non-blocking connect(2) to a server, with TCP_NODELAY set. Its outcome is read
/// from the readiness event: a refused or reset connect raises EPOLLERR/EPOLLHUP, and
/// only then is SO_ERROR fetched (tokio's `TcpStream::connect` asks for it on every
/// connection: a getsockopt(2) per `httpclose` request).
async fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
    use socket2::{Domain, Protocol, Socket, Type};
    let sock = Socket::new(
        Domain::for_address(addr),
        Type::STREAM.nonblocking().cloexec(),
        Some(Protocol::TCP),
    )?;
    sock.set_tcp_nodelay(true)?;
    match sock.connect(&addr.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    let stream = TcpStream::from_std(sock.into())?;
    let ready = stream
        .ready(tokio::io::Interest::WRITABLE | tokio::io::Interest::ERROR)
        .await?;
    if ready.is_error() || ready.is_write_closed() {
        return Err(stream
            .take_error()?
            .unwrap_or_else(|| io::ErrorKind::ConnectionRefused.into()));
    }
    Ok(stream)
}

/// The client's request body on its way to the server, counted into `bytes_in`.
#[derive(Debug)]
pub struct RequestBody {
    inner: Incoming,
    stats: Arc<ServiceStats>,
    server: Option<usize>,
    /// Told when the body is complete (the client timeout then pauses).
    scan: Arc<HeadScan>,
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let r = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(r, Poll::Ready(None)) || self.inner.is_end_stream() {
            self.scan.set_awaiting(true);
        }
        if let Poll::Ready(Some(Ok(f))) = &r {
            if let Some(d) = f.data_ref() {
                let n = d.len() as u64;
                self.stats.counters.bytes_in.fetch_add(n, Relaxed);
                if let Some(s) = self.server.and_then(|i| self.stats.servers.get(i)) {
                    s.counters.bytes_in.fetch_add(n, Relaxed);
                }
            }
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Logs the request when the response is over (sent, or abandoned by the client).
struct Finish {
    proxy: Arc<Proxy>,
    rec: AccessRecord,
    start: Instant,
    inflight: Option<InflightGuard>,
    _slot: Option<OwnedSemaphorePermit>,
    scan: Option<Arc<HeadScan>>,
}

impl std::fmt::Debug for Finish {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Finish")
            .field("rec", &self.rec)
            .finish_non_exhaustive()
    }
}

/// The body sent to the client: a server's response streamed through, or one of our
/// own pages. Counts `bytes_out`, and on drop releases the server's in-flight count and
/// slot and writes the access log line.
#[derive(Debug)]
pub struct ResponseBody {
    inner: Option<Incoming>,
    full: Option<Bytes>,
    bytes: u64,
    stats: Option<Arc<ServiceStats>>,
    server: Option<usize>,
    finish: Option<Finish>,
}

impl ResponseBody {
    fn empty() -> Self {
        ResponseBody {
            inner: None,
            full: None,
            bytes: 0,
            stats: None,
            server: None,
            finish: None,
        }
    }

    fn full(b: Bytes) -> Self {
        ResponseBody {
            inner: None,
            full: Some(b),
            bytes: 0,
            stats: None,
            server: None,
            finish: None,
        }
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        if let Some(b) = this.full.take() {
            this.bytes += b.len() as u64;
            return Poll::Ready(Some(Ok(Frame::data(b))));
        }
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        if let Some(g) = this.finish.as_mut().and_then(|f| f.inflight.as_mut()) {
            // The server connection this body comes from, if it is ours to drive.
            drive(&mut g.2, cx);
        }
        let r = Pin::new(inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(f))) = &r {
            if let Some(d) = f.data_ref() {
                let n = d.len() as u64;
                this.bytes += n;
                if let Some(st) = &this.stats {
                    st.counters.bytes_out.fetch_add(n, Relaxed);
                    if let Some(s) = this.server.and_then(|i| st.servers.get(i)) {
                        s.counters.bytes_out.fetch_add(n, Relaxed);
                    }
                }
            }
        }
        if let Poll::Ready(Some(Err(e))) = &r {
            if let Some(f) = this.finish.as_mut() {
                f.rec.termination[0] = if is_io_timeout(e) { 's' } else { 'S' };
                f.rec.termination[1] = 'D';
            }
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.full.is_none() && self.inner.as_ref().is_none_or(|b| b.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        match (&self.full, &self.inner) {
            (Some(b), _) => SizeHint::with_exact(b.len() as u64),
            (None, Some(i)) => i.size_hint(),
            (None, None) => SizeHint::with_exact(0),
        }
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        if let Some(mut f) = self.finish.take() {
            let ended =
                self.full.is_none() && self.inner.as_ref().is_none_or(|b| b.is_end_stream());
            if ended {
                // The server's response was read through: its connection can serve
                // the next request.
                if let Some(ServerLink::Pooled(pool, sender)) =
                    f.inflight.as_mut().and_then(|g| g.2.take())
                {
                    pool.put(sender);
                }
            }
            if !ended && f.rec.termination[0] == '-' {
                // The client went away before the whole body was sent.
                f.rec.termination[0] = 'C';
                f.rec.termination[1] = 'D';
            }
            f.done(self.bytes);
        }
    }
}

impl Finish {
    /// The exchange is over: fill in the totals, release the server, write the log line.
    fn done(mut self, bytes: u64) {
        self.rec.bytes = bytes;
        self.rec.t_active = i64::try_from(self.start.elapsed().as_millis()).unwrap_or(i64::MAX);
        if let Some(g) = self.inflight.take() {
            self.rec.srv_conn = self
                .proxy
                .stats
                .servers
                .get(g.0)
                .map_or(0, |s| s.counters.cur.load(Relaxed));
            // Releases the server's in-flight count taken in `forward`.
            drop(g);
        }
        self.proxy.sink.log(&self.rec);
        if let Some(scan) = self.scan.take() {
            scan.resume();
        }
    }
}

/// The protocol a request asks to switch to: an `Upgrade` header together with the
/// `upgrade` token in `Connection` (RFC 9110 7.8); anything else is a plain request.
fn upgrade_protocol(h: &HeaderMap) -> Option<HeaderValue> {
    let asked = h
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    if !asked {
        return None;
    }
    h.get(header::UPGRADE).filter(|v| !v.is_empty()).cloned()
}

/// An HTTP/2 extended CONNECT for a WebSocket (RFC 8441 4): `:method CONNECT` with
/// `:protocol websocket`.
fn is_h2_websocket<B>(req: &Request<B>) -> bool {
    req.version() == Version::HTTP_2
        && req.method() == Method::CONNECT
        && req
            .extensions()
            .get::<hyper::ext::Protocol>()
            .is_some_and(|p| p.as_str().eq_ignore_ascii_case("websocket"))
}

/// A fresh `Sec-WebSocket-Key`: 16 random bytes, base64 (RFC 6455 4.1).
fn websocket_key() -> HeaderValue {
    let mut raw = [0u8; 16];
    // SAFETY: getrandom writes at most `raw.len()` bytes into `raw`.
    let n = unsafe { libc::getrandom(raw.as_mut_ptr().cast(), raw.len(), 0) };
    if usize::try_from(n).ok() != Some(raw.len()) {
        // No entropy source: the key is a nonce for the handshake, not a secret.
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        raw = t.to_le_bytes();
    }
    HeaderValue::from_bytes(&base64(&raw))
        .unwrap_or(HeaderValue::from_static("dGhlIHNhbXBsZSBub25jZQ=="))
}

/// Standard base64 with padding (RFC 4648 4).
fn base64(raw: &[u8]) -> Vec<u8> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::with_capacity(raw.len().div_ceil(3) * 4);
    for chunk in raw.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = u32::from_be_bytes([0, b[0], b[1], b[2]]);
        for i in 0..4 {
            out.push(if i <= chunk.len() {
                ALPHABET[(n >> (18 - 6 * i)) as usize & 63]
            } else {
                b'='
            });
        }
    }
    out
}

/// Carries bytes both ways between an upgraded client and server connection (each
/// still under its inactivity timeout) and logs the request, status 101, when the
/// tunnel closes, with the bytes sent to the client, as HAProxy does.
async fn run_tunnel(
    client: hyper::upgrade::OnUpgrade,
    server: hyper::upgrade::OnUpgrade,
    mut fin: Finish,
) {
    let stats = fin.proxy.stats.clone();
    let (c, s) = tokio::join!(client, server);
    let (mut c, mut s) = match (c, s) {
        (Ok(c), Ok(s)) => (TokioIo::new(c), TokioIo::new(s)),
        (c, s) => {
            if let Err(e) = &c {
                tracing::debug!(service = %fin.proxy.service.name, error = %e, "client upgrade failed");
                fin.rec.termination[..2].copy_from_slice(&['C', 'D']);
            }
            if let Err(e) = &s {
                tracing::debug!(service = %fin.proxy.service.name, error = %e, "server upgrade failed");
                fin.rec.termination[..2].copy_from_slice(&['S', 'D']);
            }
            stats.tunnel_failures.fetch_add(1, Relaxed);
            fin.done(0);
            return;
        }
    };
    let t = &stats.tunnels;
    t.open();
    let r = tokio::io::copy_bidirectional(&mut c, &mut s).await;
    t.close();
    let down = match r {
        Ok((up, down)) => {
            t.bytes_in.fetch_add(up, Relaxed);
            t.bytes_out.fetch_add(down, Relaxed);
            down
        }
        Err(e) => {
            // copy_bidirectional does not say which side failed; a timeout is the
            // usual cause, and the client side is the one HAProxy blames for it.
            fin.rec.termination[..2].copy_from_slice(if is_io_timeout(&e) {
                &['c', 'D']
            } else {
                &['C', 'D']
            });
            tracing::debug!(service = %fin.proxy.service.name, error = %e, "tunnel ended with error");
            0
        }
    };
    fin.done(down);
}

/// Bytes of a request head as HTTP/1.1 text (request line, headers, blank line): what
/// `bin` adds per request besides the body.
fn request_head_len<B>(req: &Request<B>) -> u64 {
    let uri = req.uri();
    let target = uri.path_and_query().map_or(1, |p| p.as_str().len())
        + uri.authority().map_or(0, |a| {
            a.as_str().len() + uri.scheme_str().map_or(0, str::len) + 3
        });
    let line = req.method().as_str().len() + 1 + target + 11;
    (line + headers_len(req.headers()) + 2) as u64
}

/// Bytes of a response head as HTTP/1.1 text: what `bout` adds besides the body.
fn response_head_len(parts: &hyper::http::response::Parts) -> u64 {
    let reason = parts.status.canonical_reason().map_or(0, str::len);
    (13 + reason + 2 + headers_len(&parts.headers) + 2) as u64
}

fn headers_len(h: &HeaderMap) -> usize {
    h.iter()
        .map(|(k, v)| k.as_str().len() + 2 + v.len() + 2)
        .sum()
}

impl Proxy {
    /// Answers a request for the stats page or metrics through the installed handler
    /// (503 while none is), counted and logged like any other request.
    async fn intercepted(
        self: &Arc<Self>,
        req: Request<Incoming>,
        peer: SocketAddr,
        close: bool,
        mut rec: AccessRecord,
        start: Instant,
        conn: &ConnInfo,
    ) -> Response<ResponseBody> {
        self.stats.intercepted.fetch_add(1, Relaxed);
        rec.server = Some(String::from("<STATS>"));
        let Some(handler) = super::intercept::handler() else {
            return self.local(503, close, rec, start, conn.scan.clone());
        };
        let (mut parts, body) = handler
            .handle(&self.service.name, req, peer)
            .await
            .into_parts();
        let status = parts.status.as_u16();
        rec.status = status;
        self.stats.counters.count_status(status);
        self.stats
            .counters
            .bytes_out
            .fetch_add(response_head_len(&parts) + body.len() as u64, Relaxed);
        parts
            .headers
            .insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
        if close {
            parts
                .headers
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        let mut resp = Response::from_parts(parts, ResponseBody::full(body));
        resp.body_mut().finish = Some(Finish {
            proxy: self.clone(),
            rec,
            start,
            inflight: None,
            _slot: None,
            scan: Some(conn.scan.clone()),
        });
        resp
    }
}

#[cfg(test)]
mod websocket_tests {
    use super::*;

    #[test]
    fn forwarded_for_values() {
        for ip in [
            "0.0.0.0",
            "9.10.99.100",
            "255.255.255.255",
            "198.18.0.1",
            "2001:db8::1",
        ] {
            assert_eq!(forwarded_for(ip.parse().expect("ip")), ip);
        }
        assert_eq!(
            forwarded_for("::ffff:198.18.7.42".parse().expect("ip")),
            "198.18.7.42"
        );
    }

    #[test]
    fn accepted_sockets_inherit_nodelay_from_the_listener() {
        let l = bind("127.0.0.1:0".parse().expect("addr")).expect("bind");
        socket2::SockRef::from(&l)
            .set_tcp_nodelay(true)
            .expect("nodelay");
        let _c = std::net::TcpStream::connect(l.local_addr().expect("addr")).expect("connect");
        let accepted = loop {
            match accept_nonblocking(&l) {
                Ok((s, _)) => break s,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::yield_now(),
                Err(e) => panic!("accept: {e}"),
            }
        };
        assert!(accepted.nodelay().expect("getsockopt"));
    }

    #[test]
    fn base64_and_keys() {
        // RFC 6455 1.3's sample nonce.
        assert_eq!(base64(b"the sample nonce"), b"dGhlIHNhbXBsZSBub25jZQ==");
        assert_eq!(base64(b"ab"), b"YWI=");
        assert_eq!(base64(b"abc"), b"YWJj");
        let (a, b) = (websocket_key(), websocket_key());
        assert_eq!(a.len(), 24);
        assert!(a.as_bytes().ends_with(b"=="));
        assert_ne!(a, b);
    }

    #[test]
    fn hop_by_hop_headers_and_connection_names_are_removed() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("connection", "keep-alive, X-Private , close"),
            ("connection", "Upgrade"),
            ("keep-alive", "timeout=5"),
            ("x-private", "1"),
            ("upgrade", "websocket"),
            ("te", "trailers"),
            ("proxy-connection", "keep-alive"),
            ("transfer-encoding", "chunked"),
            ("trailer", "x"),
            ("host", "a"),
            ("x-keep", "2"),
        ] {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).expect("name"),
                HeaderValue::from_static(v),
            );
        }
        strip_hop_by_hop(&mut h);
        let left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(left, ["host", "x-keep"]);
        let mut none = HeaderMap::new();
        none.insert(header::HOST, HeaderValue::from_static("a"));
        strip_hop_by_hop(&mut none);
        assert_eq!(none.len(), 1);
    }

    #[test]
    fn request_lines_as_received() {
        let r = Request::get("/a?b=c").body(()).expect("req");
        assert_eq!(request_line(&r), "GET /a?b=c HTTP/1.1");
        let r = Request::post("http://h:8/x")
            .version(Version::HTTP_2)
            .body(())
            .expect("req");
        assert_eq!(request_line(&r), "POST http://h:8/x HTTP/2.0");
        let r = Request::get("/")
            .version(Version::HTTP_10)
            .body(())
            .expect("req");
        assert_eq!(request_line(&r), "GET / HTTP/1.0");
    }
}
