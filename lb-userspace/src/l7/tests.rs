//! In-process end-to-end tests: real sockets on 127.0.0.1 with ephemeral ports, tiny
//! hyper backends that echo who they are and what they received.

use super::{
    balance::ServerStates,
    log::{AccessLogSink, AccessRecord},
    proxy::{bind, serve},
    service::{CookieMode, CookiePersistence, HttpService, InsertOptions, Server},
    stats::ServiceStats,
};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{body::Incoming, Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::{
    net::SocketAddr,
    sync::{atomic::Ordering::Relaxed, Arc, Mutex},
    time::{Duration, Instant},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};
use tokio_util::sync::CancellationToken;

const STEP: Duration = Duration::from_secs(5);

/// Echo backend: body = "server=<name>\n" then the request headers, one per line.
/// `/setcookie` also sets `JSESSIONID=abc123`; `/slow` waits 500 ms.
async fn backend(name: &'static str) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind backend");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = l.accept().await else { return };
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<Incoming>| async move {
                    let mut text = format!("server={name}\n");
                    for (k, v) in req.headers() {
                        text.push_str(&format!(
                            "{}: {}\n",
                            k,
                            String::from_utf8_lossy(v.as_bytes())
                        ));
                    }
                    let path = req.uri().path().to_string();
                    let body = req
                        .into_body()
                        .collect()
                        .await
                        .map(|c| c.to_bytes())
                        .unwrap_or_default();
                    text.push_str(&format!("body-len={}\n", body.len()));
                    let mut resp = Response::new(Full::new(Bytes::from(text)));
                    resp.headers_mut()
                        .insert("x-server", name.parse().expect("hv"));
                    if path == "/setcookie" {
                        resp.headers_mut().insert(
                            "set-cookie",
                            "JSESSIONID=abc123; Path=/".parse().expect("hv"),
                        );
                    }
                    if path == "/slow" {
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                    Ok::<_, std::convert::Infallible>(resp)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    addr
}

/// A port nothing listens on (bound then closed): connections are refused.
async fn closed_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let a = l.local_addr().expect("addr");
    drop(l);
    a
}

#[derive(Debug, Default)]
struct Capture(Mutex<Vec<String>>);
impl AccessLogSink for Capture {
    fn log(&self, r: &AccessRecord) {
        if let Ok(mut v) = self.0.lock() {
            v.push(r.format());
        }
    }
}
impl Capture {
    fn lines(&self) -> Vec<String> {
        self.0.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

struct Running {
    addr: SocketAddr,
    stats: Arc<ServiceStats>,
    log: Arc<Capture>,
    stop: CancellationToken,
}
impl Drop for Running {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn server(name: &str, addr: SocketAddr, cookie: &str) -> Server {
    let mut s = Server::new(name, addr);
    s.cookie = Some(cookie.into());
    s
}

async fn two_backends() -> Vec<Server> {
    vec![
        server("webA", backend("A").await, "A"),
        server("webB", backend("B").await, "B"),
    ]
}

fn start(mut svc: HttpService) -> Running {
    let l = bind("127.0.0.1:0".parse().expect("addr")).expect("bind proxy");
    let addr = l.local_addr().expect("addr");
    svc.listen = addr;
    let n = svc.servers.len();
    let stats = Arc::new(ServiceStats::new(n));
    let log = Arc::new(Capture::default());
    let stop = CancellationToken::new();
    tokio::spawn(serve(
        Arc::new(svc),
        l,
        Arc::new(ServerStates::all_up(n)),
        stats.clone(),
        log.clone(),
        stop.clone(),
    ));
    Running {
        addr,
        stats,
        log,
        stop,
    }
}

fn service(servers: Vec<Server>) -> HttpService {
    let mut s = HttpService::new("webfarm", "127.0.0.1:0".parse().expect("addr"), servers);
    s.redispatch = true;
    s.forwardfor = true;
    s
}

struct Reply {
    status: u16,
    headers: hyper::HeaderMap,
    body: String,
}
impl Reply {
    fn server(&self) -> &str {
        self.headers
            .get("x-server")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

/// One request on a new connection.
async fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Reply {
    let s = TcpStream::connect(addr).await.expect("connect proxy");
    let (mut tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(s))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let mut b = Request::get(path).header("host", "vip.example");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let req = b.body(Full::new(Bytes::new())).expect("request");
    let resp = tokio::time::timeout(STEP, tx.send_request(req))
        .await
        .expect("in time")
        .expect("response");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp
        .into_body()
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    Reply {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// Writes raw bytes and reads until the server closes (or 5 s).
async fn raw(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(bytes).await.expect("write");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(STEP, s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn round_robin_alternates() {
    let p = start(service(two_backends().await));
    let mut seen = Vec::new();
    for _ in 0..4 {
        let r = get(p.addr, "/", &[]).await;
        assert_eq!(r.status, 200);
        seen.push(r.server().to_string());
    }
    assert_ne!(seen[0], seen[1]);
    assert_eq!(seen[0], seen[2]);
    assert_eq!(seen[1], seen[3]);
    assert_eq!(p.stats.requests.load(Relaxed), 4);
    assert_eq!(p.stats.counters.status[1].load(Relaxed), 4);
}

#[tokio::test]
async fn prefix_cookie_persistence_end_to_end() {
    let mut svc = service(two_backends().await);
    svc.cookie = Some(CookiePersistence {
        name: "JSESSIONID".into(),
        mode: CookieMode::Prefix,
        indirect: false,
        preserve: false,
    });
    let p = start(svc);
    let first = get(p.addr, "/setcookie", &[]).await;
    let sc = first
        .headers
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .expect("set-cookie")
        .to_string();
    let who = first.server().to_string();
    assert_eq!(sc, format!("JSESSIONID={who}~abc123; Path=/"));
    let cookie = format!("JSESSIONID={who}~abc123; other=1");
    for _ in 0..3 {
        let r = get(p.addr, "/", &[("cookie", &cookie)]).await;
        assert_eq!(r.server(), who);
        assert!(
            r.body.contains("cookie: JSESSIONID=abc123; other=1\n"),
            "{}",
            r.body
        );
    }
    // Unknown id and garbage: normal balancing, both servers answer, never an error.
    for c in [
        "JSESSIONID=Z~abc",
        "JSESSIONID=\"~;;,,=\\",
        "JSESSIONID=A~1; JSESSIONID=B~2",
        ";;JSESSIONID",
    ] {
        assert_eq!(get(p.addr, "/", &[("cookie", c)]).await.status, 200);
    }
    // Non-UTF-8 bytes in the cookie.
    let out = raw(p.addr, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nCookie: JSESSIONID=\xff\xfe~\x80; a=\xc3\r\n\r\n").await;
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    let lines = p.log.lines();
    assert!(lines.iter().any(|l| l.contains(" --VN ")), "{lines:?}");
    assert!(lines.iter().any(|l| l.contains(" --NR ")), "{lines:?}");
}

#[tokio::test]
async fn insert_indirect_nocache() {
    let mut svc = service(two_backends().await);
    let opts = InsertOptions {
        nocache: true,
        httponly: true,
        ..Default::default()
    };
    svc.cookie = Some(CookiePersistence {
        name: "SRV".into(),
        mode: CookieMode::Insert(opts),
        indirect: true,
        preserve: false,
    });
    let p = start(svc);
    let first = get(p.addr, "/", &[]).await;
    let who = first.server().to_string();
    let sc = first
        .headers
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .expect("set-cookie");
    assert_eq!(sc, format!("SRV={who}; path=/; HttpOnly"));
    assert_eq!(
        first
            .headers
            .get("cache-control")
            .and_then(|v| v.to_str().ok()),
        Some("private")
    );
    let c = format!("a=1; SRV={who}");
    for _ in 0..3 {
        let r = get(p.addr, "/", &[("cookie", &c)]).await;
        assert_eq!(r.server(), who);
        assert!(r.headers.get("set-cookie").is_none());
        assert!(
            r.body.contains("cookie: a=1\n") && !r.body.contains("SRV="),
            "{}",
            r.body
        );
    }
}

#[tokio::test]
async fn rewrite_mode() {
    let mut svc = service(two_backends().await);
    svc.cookie = Some(CookiePersistence {
        name: "JSESSIONID".into(),
        mode: CookieMode::Rewrite,
        indirect: false,
        preserve: false,
    });
    let p = start(svc);
    let first = get(p.addr, "/setcookie", &[]).await;
    let who = first.server().to_string();
    let sc = first
        .headers
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .expect("set-cookie");
    assert_eq!(sc, format!("JSESSIONID={who}; Path=/"));
    let r = get(p.addr, "/", &[("cookie", &format!("JSESSIONID={who}"))]).await;
    assert_eq!(r.server(), who);
}

#[tokio::test]
async fn forwardfor_appends() {
    let p = start(service(two_backends().await));
    let r = get(p.addr, "/", &[]).await;
    assert!(
        r.body.contains("x-forwarded-for: 127.0.0.1\n"),
        "{}",
        r.body
    );
    let r = get(p.addr, "/", &[("x-forwarded-for", "192.0.2.1")]).await;
    let xff: Vec<&str> = r
        .body
        .lines()
        .filter(|l| l.starts_with("x-forwarded-for:"))
        .collect();
    assert_eq!(
        xff,
        vec!["x-forwarded-for: 192.0.2.1", "x-forwarded-for: 127.0.0.1"]
    );
}

#[tokio::test]
async fn refused_server_is_redispatched_fast() {
    let dead = closed_port().await;
    let servers = vec![
        server("webA", dead, "A"),
        server("webB", backend("B").await, "B"),
    ];
    let mut svc = service(servers);
    svc.cookie = Some(CookiePersistence {
        name: "JSESSIONID".into(),
        mode: CookieMode::Prefix,
        indirect: false,
        preserve: false,
    });
    let p = start(svc);
    // Persistent to the refusing (not yet DOWN) server: answered by B well within 100 ms.
    let t0 = Instant::now();
    let r = get(p.addr, "/", &[("cookie", "JSESSIONID=A~s1")]).await;
    assert!(
        t0.elapsed() < Duration::from_millis(100),
        "{:?}",
        t0.elapsed()
    );
    assert_eq!((r.status, r.server()), (200, "B"));
    assert!(r.body.contains("cookie: JSESSIONID=s1\n"));
    // Plain requests: none fails.
    for _ in 0..6 {
        assert_eq!(get(p.addr, "/", &[]).await.status, 200);
    }
    assert!(p.stats.counters.redispatches.load(Relaxed) >= 2);
    assert!(p.stats.servers[0].counters.errors_conn.load(Relaxed) >= 2);
    let lines = p.log.lines();
    assert!(
        lines
            .iter()
            .any(|l| l.contains(" webfarm/webB ") && l.contains("/+1 ")),
        "{lines:?}"
    );
}

#[tokio::test]
async fn all_refused_is_503_and_no_redispatch_retries_same() {
    let mut svc = service(vec![
        Server::new("a", closed_port().await),
        Server::new("b", closed_port().await),
    ]);
    svc.retries = 2;
    let p = start(svc);
    let r = get(p.addr, "/", &[]).await;
    assert_eq!(r.status, 503);
    assert!(r.body.contains("No server is available"));
    assert_eq!(p.stats.counters.retries.load(Relaxed), 2);
    let lines = p.log.lines();
    assert!(
        lines
            .iter()
            .any(|l| l.contains(" 503 ") && l.contains(" SC-- ")),
        "{lines:?}"
    );
}

/// Two requests on one client connection; returns (second succeeded, first reply).
async fn two_on_one_connection(addr: SocketAddr) -> (bool, Reply) {
    let s = TcpStream::connect(addr).await.expect("connect");
    let (mut tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(s))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let req = || {
        Request::get("/")
            .header("host", "x")
            .body(Full::new(Bytes::new()))
            .expect("req")
    };
    let r1 = tx.send_request(req()).await.expect("first");
    let headers = r1.headers().clone();
    let status = r1.status().as_u16();
    let body = r1
        .into_body()
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let first = Reply {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    };
    let ok = match tokio::time::timeout(STEP, tx.ready()).await {
        Ok(Ok(())) => {
            matches!(tokio::time::timeout(STEP, tx.send_request(req())).await, Ok(Ok(r)) if r.status() == 200)
        }
        _ => false,
    };
    (ok, first)
}

#[tokio::test]
async fn keepalive_by_default_httpclose_closes() {
    let p = start(service(two_backends().await));
    let (second_ok, first) = two_on_one_connection(p.addr).await;
    assert!(second_ok);
    assert!(first.headers.get("connection").is_none());
    assert!(!first.body.contains("connection: close"));
    assert_eq!(
        p.stats.counters.total.load(Relaxed),
        1,
        "one client connection"
    );

    let mut svc = service(two_backends().await);
    svc.httpclose = true;
    let p = start(svc);
    let (second_ok, first) = two_on_one_connection(p.addr).await;
    assert!(!second_ok);
    assert_eq!(
        first
            .headers
            .get("connection")
            .and_then(|v| v.to_str().ok()),
        Some("close")
    );
    assert!(first.body.contains("connection: close\n"), "{}", first.body);
}

#[tokio::test]
async fn http10_client() {
    let p = start(service(two_backends().await));
    let out = raw(p.addr, b"GET / HTTP/1.0\r\n\r\n").await;
    assert!(
        out.starts_with("HTTP/1.1 200") || out.starts_with("HTTP/1.0 200"),
        "{out}"
    );
    assert!(out.contains("server="));
}

#[tokio::test]
async fn oversized_head_is_431() {
    let p = start(service(two_backends().await));
    let big = "a".repeat(40 * 1024);
    let out = raw(
        p.addr,
        format!("GET / HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n").as_bytes(),
    )
    .await;
    assert!(
        out.starts_with("HTTP/1.1 431"),
        "{}",
        &out[..out.len().min(200)]
    );
    // HAProxy-style page and headers, not hyper's empty body.
    assert_eq!(
        out,
        String::from_utf8_lossy(&super::pages::raw(431)),
        "{out}"
    );
}

/// hyper refuses a malformed head with a bare 400; the client gets HAProxy's page,
/// byte for byte, also after a good request on the same keep-alive connection, while a
/// server's own 400 passes through untouched.
#[tokio::test]
async fn malformed_head_gets_haproxys_400_page() {
    let p = start(service(two_backends().await));
    let want = String::from_utf8_lossy(&super::pages::raw(400)).into_owned();
    let out = raw(
        p.addr,
        b"GET / HTTP/1.1\r\nHost: x\r\nNo colon here\r\n\r\n",
    )
    .await;
    assert_eq!(out, want);
    // Keep-alive: a good exchange first, then a malformed head on the same connection.
    let mut s = TcpStream::connect(p.addr).await.expect("connect");
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let mut b = vec![0u8; 4096];
    let n = tokio::time::timeout(STEP, s.read(&mut b))
        .await
        .expect("in time")
        .expect("read");
    let first = String::from_utf8_lossy(&b[..n]).into_owned();
    assert!(
        first.starts_with("HTTP/1.1 200") && first.contains("server="),
        "{first}"
    );
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nBad\x01Name: v\r\n\r\n")
        .await
        .expect("write");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(STEP, s.read_to_end(&mut out)).await;
    assert_eq!(String::from_utf8_lossy(&out), want);
    // A server's 400 is forwarded as the server sent it.
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let be = l.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut b = [0u8; 4096];
                let _ = s.read(&mut b).await;
                let _ = s
                    .write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                    .await;
            });
        }
    });
    let p = start(service(vec![Server::new("web400", be)]));
    let out = raw(
        p.addr,
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{out}");
    assert!(!out.contains("<html>"), "{out}");
}

#[tokio::test]
async fn smuggling_is_400() {
    let p = start(service(two_backends().await));
    let req = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /admin HTTP/1.1\r\nHost: x\r\n\r\n";
    let out = raw(p.addr, req).await;
    assert!(out.starts_with("HTTP/1.1 400"), "{out}");
    assert!(out.contains("400 Bad request"));
    assert_eq!(
        out.matches("HTTP/1.1").count(),
        1,
        "the smuggled request must not be served: {out}"
    );
    // Two different Content-Lengths: hyper's parser refuses.
    let out = raw(
        p.addr,
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde",
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 400"), "{out}");
}

#[tokio::test]
async fn slow_header_is_408() {
    let mut svc = service(two_backends().await);
    svc.timeouts.http_request = Duration::from_millis(200);
    let p = start(svc);
    let t0 = Instant::now();
    let out = raw(p.addr, b"GET / HTTP/1.1\r\nHost: x\r\n").await;
    assert!(out.starts_with("HTTP/1.1 408"), "{out}");
    assert!(t0.elapsed() < Duration::from_secs(2));
    assert!(p
        .log
        .lines()
        .iter()
        .any(|l| l.contains(" 408 ") && l.contains(" cR-- ")));
}

#[tokio::test]
async fn server_timeout_is_504() {
    let mut svc = service(two_backends().await);
    svc.timeouts.server = Duration::from_millis(150);
    let p = start(svc);
    let r = get(p.addr, "/slow", &[]).await;
    assert_eq!(r.status, 504);
    assert!(r.body.contains("504 Gateway Time-out"));
}

#[tokio::test]
async fn maxconn_queue_timeout_is_503() {
    let mut servers = vec![Server::new("only", backend("A").await)];
    servers[0].maxconn = 1;
    let mut svc = service(servers);
    svc.timeouts.queue = Duration::from_millis(100);
    let p = start(svc);
    let addr = p.addr;
    let slow = tokio::spawn(async move { get(addr, "/slow", &[]).await.status });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let r = get(p.addr, "/", &[]).await;
    assert_eq!(r.status, 503);
    assert_eq!(slow.await.expect("join"), 200);
    assert!(p.log.lines().iter().any(|l| l.contains(" sQ")));
    // Once the slot is free, requests pass again.
    assert_eq!(get(p.addr, "/", &[]).await.status, 200);
}

#[tokio::test]
async fn h2c_prior_knowledge() {
    let p = start(service(two_backends().await));
    let s = TcpStream::connect(p.addr).await.expect("connect");
    let (status, _, body) = h2_get(s, p.addr).await;
    assert_eq!(status, 200);
    assert!(body.contains(&format!("host: {}\n", p.addr)), "{body}");
}

/// One GET over prior-knowledge HTTP/2 on `io`: status, version and body.
async fn h2_get<T>(io: T, addr: SocketAddr) -> (hyper::StatusCode, hyper::Version, String)
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut tx, conn) = tokio::time::timeout(
        STEP,
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(io)),
    )
    .await
    .expect("in time")
    .expect("h2 handshake");
    tokio::spawn(conn);
    let req = Request::get(format!("http://{addr}/"))
        .body(Full::new(Bytes::new()))
        .expect("req");
    let r = tokio::time::timeout(STEP, tx.send_request(req))
        .await
        .expect("in time")
        .expect("resp");
    let (status, version) = (r.status(), r.version());
    let body = r
        .into_body()
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    (status, version, String::from_utf8_lossy(&body).into_owned())
}

/// A client stream whose first write sends only 16 bytes, and whose next write waits
/// `pause` first: an HTTP/2 client's preface arrives in two segments.
struct SplitFirstWrite {
    inner: TcpStream,
    /// 0: the first write is still to come; 1: the pause is still to come; 2: plain.
    stage: u8,
    pause: Duration,
    sleep: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
}

impl tokio::io::AsyncRead for SplitFirstWrite {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for SplitFirstWrite {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        data: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        use std::future::Future;
        let this = &mut *self;
        match this.stage {
            0 => {
                let n = data.len().min(16);
                let r = std::pin::Pin::new(&mut this.inner).poll_write(cx, &data[..n]);
                if matches!(r, std::task::Poll::Ready(Ok(_))) {
                    this.stage = 1;
                }
                r
            }
            1 => {
                let sleep = this
                    .sleep
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(this.pause)));
                std::task::ready!(sleep.as_mut().poll(cx));
                this.stage = 2;
                std::pin::Pin::new(&mut this.inner).poll_write(cx, data)
            }
            _ => std::pin::Pin::new(&mut this.inner).poll_write(cx, data),
        }
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A prior-knowledge HTTP/2 client whose preface comes in two segments 50 ms apart
/// ("PRI * HTTP/2.0\r\n", then the rest) is served over HTTP/2 as HAProxy does, not
/// answered 505 for an HTTP/1 request line with version 2.0.
#[tokio::test]
async fn h2c_preface_in_two_pieces() {
    let p = start(service(two_backends().await));
    let s = TcpStream::connect(p.addr).await.expect("connect");
    s.set_nodelay(true).expect("nodelay");
    let io = SplitFirstWrite {
        inner: s,
        stage: 0,
        pause: Duration::from_millis(50),
        sleep: None,
    };
    let (status, version, body) = h2_get(io, p.addr).await;
    assert_eq!(status, 200);
    assert_eq!(version, hyper::Version::HTTP_2);
    assert!(body.starts_with("server="), "{body}");
}

#[tokio::test]
async fn request_body_is_forwarded_and_counted() {
    let p = start(service(two_backends().await));
    let s = TcpStream::connect(p.addr).await.expect("connect");
    let (mut tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(s))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let req = Request::post("/")
        .header("host", "x")
        .body(Full::new(Bytes::from(vec![b'x'; 10_000])))
        .expect("req");
    let r = tx.send_request(req).await.expect("resp");
    let body = r
        .into_body()
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    assert!(String::from_utf8_lossy(&body).contains("body-len=10000"));
    // The body, plus the request head (`bin` counts heads too, as HAProxy does).
    assert!(p.stats.counters.bytes_in.load(Relaxed) > 10_000);
    assert!(p.stats.counters.bytes_out.load(Relaxed) > 0);
}

/// A real WebSocket echo server (tungstenite): echoes text and binary messages.
async fn ws_echo_backend() -> SocketAddr {
    use futures_util::{SinkExt, StreamExt};
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind ws");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = l.accept().await else { return };
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(s).await else {
                    return;
                };
                while let Some(Ok(m)) = ws.next().await {
                    if (m.is_text() || m.is_binary()) && ws.send(m).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// RFC 8441: a WebSocket over HTTP/2 (extended CONNECT, `:protocol websocket`) from an
/// h2c client reaches an HTTP/1.1-only WebSocket server as an ordinary upgrade, and
/// messages echo both ways through the tunnel.
#[tokio::test]
async fn websocket_over_h2_is_tunnelled_both_ways() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::{tungstenite::protocol::Role, tungstenite::Message, WebSocketStream};
    let be = ws_echo_backend().await;
    let p = start(service(vec![server("webA", be, "A")]));
    let s = TcpStream::connect(p.addr).await.expect("connect");
    let (mut tx, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(s))
            .await
            .expect("h2 handshake");
    tokio::spawn(conn);
    // The server's SETTINGS (with ENABLE_CONNECT_PROTOCOL) arrive with the first
    // exchange; hyper refuses an extended CONNECT before that.
    let mut resp = None;
    for _ in 0..50 {
        let mut r = Request::connect(format!("http://{}/chat", p.addr))
            .header("sec-websocket-version", "13")
            .body(http_body_util::Empty::<Bytes>::new())
            .expect("req");
        r.extensions_mut()
            .insert(hyper::ext::Protocol::from_static("websocket"));
        tx.ready().await.expect("ready");
        match tokio::time::timeout(STEP, tx.send_request(r))
            .await
            .expect("in time")
        {
            Ok(r) => {
                resp = Some(r);
                break;
            }
            // Sent before the server's SETTINGS arrived: try again shortly.
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    let resp = resp.expect("extended CONNECT accepted");
    assert_eq!(resp.status(), 200, "{:?}", resp.headers());
    assert!(!resp.headers().contains_key("sec-websocket-accept"));
    let up = tokio::time::timeout(STEP, hyper::upgrade::on(resp))
        .await
        .expect("in time")
        .expect("upgraded stream");
    let mut ws = WebSocketStream::from_raw_socket(TokioIo::new(up), Role::Client, None).await;
    for i in 0..3 {
        let text = format!("over h2 {i}");
        ws.send(Message::text(text.clone())).await.expect("send");
        let m = tokio::time::timeout(STEP, ws.next())
            .await
            .expect("echo in time")
            .expect("open")
            .expect("message");
        assert_eq!(m.into_text().expect("text").as_str(), text);
    }
    let big = vec![0xa5u8; 100_000];
    ws.send(Message::binary(big.clone())).await.expect("send");
    let m = tokio::time::timeout(STEP, ws.next())
        .await
        .expect("echo in time")
        .expect("open")
        .expect("message");
    assert_eq!(m.into_data().as_ref(), &big[..]);
    assert_eq!(p.stats.tunnels.cur.load(Relaxed), 1);
    ws.close(None).await.expect("close");
    drop(ws);
    let deadline = Instant::now() + STEP;
    while p.stats.tunnels.cur.load(Relaxed) != 0 || p.log.lines().is_empty() {
        assert!(
            Instant::now() < deadline,
            "tunnel not closed: {:?}",
            p.log.lines()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let lines = p.log.lines();
    assert!(
        lines
            .iter()
            .any(|l| l.contains(" 101 ") && l.contains("CONNECT")),
        "{lines:?}"
    );
}

#[tokio::test]
async fn websocket_echo_is_tunnelled_both_ways() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let be = ws_echo_backend().await;
    let p = start(service(vec![server("webA", be, "A")]));
    let url = format!("ws://{}/chat", p.addr);
    let (mut ws, resp) = tokio::time::timeout(STEP, tokio_tungstenite::connect_async(url))
        .await
        .expect("in time")
        .expect("websocket handshake through the proxy");
    assert_eq!(resp.status().as_u16(), 101);
    // The tunnel opens on the connection's event loop once the 101 is out.
    let deadline = Instant::now() + STEP;
    while p.stats.tunnels.cur.load(Relaxed) != 1 {
        assert!(Instant::now() < deadline, "tunnel never opened");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for i in 0..3 {
        let text = format!("hello {i}");
        ws.send(Message::text(text.clone())).await.expect("send");
        let m = tokio::time::timeout(STEP, ws.next())
            .await
            .expect("echo in time")
            .expect("open")
            .expect("message");
        assert_eq!(m.into_text().expect("text").as_str(), text);
    }
    // Larger than any single buffer on the way: exercises partial reads and writes.
    let big = vec![0x5au8; 200_000];
    ws.send(Message::binary(big.clone())).await.expect("send");
    let m = tokio::time::timeout(STEP, ws.next())
        .await
        .expect("echo in time")
        .expect("open")
        .expect("message");
    assert_eq!(m.into_data().as_ref(), &big[..]);
    ws.close(None).await.expect("close");
    drop(ws);
    let deadline = Instant::now() + STEP;
    while p.stats.tunnels.cur.load(Relaxed) != 0 || p.log.lines().is_empty() {
        assert!(
            Instant::now() < deadline,
            "tunnel not closed: {:?}",
            p.log.lines()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(p.stats.tunnels.total.load(Relaxed), 1);
    assert!(p.stats.tunnels.bytes_out.load(Relaxed) > 200_000);
    assert!(p.stats.tunnels.bytes_in.load(Relaxed) > 200_000);
    let lines = p.log.lines();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains(" webfarm/webA "), "{lines:?}");
    assert!(lines[0].contains(" 101 "), "{lines:?}");
    assert!(lines[0].contains("\"GET /chat HTTP/1.1\""), "{lines:?}");
    // The in-flight count of the server was held for the tunnel's life, then released.
    assert_eq!(p.stats.servers[0].counters.cur.load(Relaxed), 0);
}

#[tokio::test]
async fn upgrade_refused_by_server_is_a_plain_response() {
    let p = start(service(two_backends().await));
    let r = get(
        p.addr,
        "/",
        &[("connection", "Upgrade"), ("upgrade", "websocket")],
    )
    .await;
    assert_eq!(r.status, 200);
    // The server saw the upgrade request (it just did not accept it).
    assert!(r.body.contains("upgrade: websocket"), "{}", r.body);
    assert_eq!(p.stats.tunnels.total.load(Relaxed), 0);
}

#[tokio::test]
async fn idle_connection_closes_at_http_request_timeout() {
    let mut svc = service(two_backends().await);
    svc.timeouts.http_request = Duration::from_millis(300);
    svc.timeouts.client = Duration::from_secs(3);
    let p = start(svc);
    let t0 = Instant::now();
    let mut s = TcpStream::connect(p.addr).await.expect("connect");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(STEP, s.read_to_end(&mut out)).await;
    let e = t0.elapsed();
    assert!(out.is_empty(), "{out:?}");
    assert!(
        e >= Duration::from_millis(280) && e < Duration::from_secs(2),
        "{e:?}"
    );
    assert!(p.log.lines().is_empty());
}

/// A raw HTTP/1.1 backend that answers one request per connection with mixed-case
/// header names and sends the raw request head it received back as the body.
async fn raw_case_backend() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut b = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut b).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&b[..n]),
                    }
                }
                let resp = format!(
                    "HTTP/1.1 200 OK\r\nX-Mixed-CASE: v\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    head.len()
                );
                let _ = s.write_all(resp.as_bytes()).await;
                let _ = s.write_all(&head).await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn header_case_lowercase_by_default_preserved_on_request() {
    let be = raw_case_backend().await;
    let req = b"GET / HTTP/1.1\r\nHost: x\r\nX-Client-CaSe: 1\r\nConnection: close\r\n\r\n";
    // Default: lowercase both ways, as HAProxy 2.x does.
    let p = start(service(vec![Server::new("a", be)]));
    let out = raw(p.addr, req).await;
    assert!(out.contains("\r\nx-mixed-case: v\r\n"), "{out}");
    assert!(out.contains("\r\nx-client-case: 1\r\n"), "{out}");
    assert!(out.contains("\r\nx-forwarded-for: 127.0.0.1\r\n"), "{out}");
    drop(p);
    // preserve_header_case: names keep their case; ours are Title-Case.
    let mut svc = service(vec![Server::new("a", be)]);
    svc.preserve_header_case = true;
    let p = start(svc);
    let out = raw(p.addr, req).await;
    assert!(out.contains("\r\nX-Mixed-CASE: v\r\n"), "{out}");
    assert!(out.contains("\r\nX-Client-CaSe: 1\r\n"), "{out}");
    assert!(out.contains("\r\nX-Forwarded-For: 127.0.0.1\r\n"), "{out}");
}
