//! Issue 3 acceptance 1-5 end to end: `lb run` in its own namespace proxies HTTP for a
//! VIP, real clients (curl, h2load, a WebSocket client) in a client namespace, two real
//! HTTP backends in their own namespaces, and HAProxy 2.6 with the equivalent config
//! beside it for the refusing-server figure.
//!
//! ```text
//!  client 198.18.5.2 --- eth0 lb 198.18.5.1 (+ VIP 198.18.5.99, HAProxy on .98)
//!                        eth1 198.18.6.1 --- backend A 198.18.6.2:8000 (+ WebSocket :8001)
//!                        eth2 198.18.7.1 --- backend B 198.18.7.2:8000
//! ```

use anyhow::{bail, ensure, Context, Result};
use lb_tests::{
    daemon::{Daemon, Instance},
    http_backend::Backend,
    netns::{veth_pair, wait_for, Netns, NsProcess},
    require,
};
use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    process::Stdio,
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

const VIP: &str = "198.18.5.99";
const HAPROXY_ADDR: &str = "198.18.5.98";
const BACKEND_A: &str = "198.18.6.2";
const BACKEND_B: &str = "198.18.7.2";
const BACKEND_PORT: u16 = 8000;
const WS_PORT: u16 = 8001;
/// Port per service of the daemon's config.
const PREFIX: u16 = 80;
const HAPROXY_PORT: u16 = 8081;
const INSERT: u16 = 8082;
const REWRITE: u16 = 8083;
const WS: u16 = 8084;
const LIMITS: u16 = 8085;
const CONNECT_TIMEOUT: u16 = 8086;
/// Client-side limit of every single exchange in this file.
const IO_TIMEOUT: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------------------------
// A tiny HTTP/1.1 backend (std only): answers every request with who it is and what it
// received, so the test can see what the proxy forwarded.

/// A WebSocket echo server (tungstenite) inside `ns`, one thread per connection.
fn ws_echo(ns: &Netns, addr: SocketAddr, stop: Arc<AtomicBool>) -> Result<()> {
    let listener = ns.run(move || TcpListener::bind(addr))??;
    listener.set_nonblocking(true)?;
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            match listener.accept() {
                Ok((s, _)) => {
                    std::thread::spawn(move || {
                        let _ = s.set_nonblocking(false);
                        let _ = s.set_read_timeout(Some(IO_TIMEOUT));
                        let Ok(mut ws) = tungstenite::accept(s) else {
                            return;
                        };
                        while let Ok(m) = ws.read() {
                            if (m.is_text() || m.is_binary()) && ws.send(m).is_err() {
                                return;
                            }
                        }
                    });
                }
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    });
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Clients.

/// An HTTP answer as the client saw it.
#[derive(Debug, Default)]
struct Reply {
    status: u16,
    head: String,
    body: String,
    elapsed: Duration,
}

impl Reply {
    fn parse(raw: &[u8], elapsed: Duration) -> Reply {
        let text = String::from_utf8_lossy(raw).into_owned();
        // curl -i prints interim heads (100 Continue) too; the last head counts.
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        Reply {
            status,
            head: head.to_string(),
            body: body.to_string(),
            elapsed,
        }
    }

    /// The backend that answered (its `server=` line).
    fn server(&self) -> &str {
        self.line("server=")
    }

    /// A `key=` line of the backend's echo.
    fn line(&self, key: &str) -> &str {
        self.body
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .unwrap_or("")
    }

    /// Values of the response header `name` (case-insensitive).
    fn header(&self, name: &str) -> Vec<&str> {
        self.head
            .lines()
            .filter_map(|l| l.split_once(':'))
            .filter(|(k, _)| k.trim().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim())
            .collect()
    }
}

/// `curl -i` from the client namespace with extra arguments.
fn curl(client: &Netns, url: &str, extra: &[&str]) -> Result<Reply> {
    let mut args = vec!["curl", "-sS", "-i", "-m", "5"];
    args.extend_from_slice(extra);
    args.push(url);
    let t0 = Instant::now();
    let out = client.exec_unchecked(&args)?;
    let r = Reply::parse(&out.stdout, t0.elapsed());
    if r.status == 0 {
        bail!(
            "curl {url} {extra:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(r)
}

/// Writes `request` on a new connection from the client namespace and reads until the
/// server closes or `timeout`.
fn raw(client: &Netns, to: SocketAddr, request: &[u8], timeout: Duration) -> Result<Reply> {
    let request = request.to_vec();
    client.run(move || -> Result<Reply> {
        let t0 = Instant::now();
        let mut s = TcpStream::connect_timeout(&to, IO_TIMEOUT)?;
        s.set_read_timeout(Some(timeout))?;
        s.write_all(&request)?;
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        Ok(Reply::parse(&out, t0.elapsed()))
    })?
}

fn get_close(path: &str, extra: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: vip\r\n{extra}Connection: close\r\n\r\n").into_bytes()
}

fn url(port: u16, path: &str) -> String {
    format!("http://{VIP}:{port}{path}")
}

fn sa(ip: &str, port: u16) -> SocketAddr {
    SocketAddr::new(ip.parse().expect("test address"), port)
}

// ---------------------------------------------------------------------------------------
// The lab.

struct Lab {
    client: Netns,
    lb: Netns,
    a: Netns,
    b: Netns,
    inst: Instance,
}

impl Lab {
    fn new() -> Result<Lab> {
        let client = Netns::new("l7c")?;
        let lb = Netns::new("l7lb")?;
        let a = Netns::new("l7a")?;
        let b = Netns::new("l7b")?;
        veth_pair(&client, &lb, "eth0", "eth0")?;
        veth_pair(&lb, &a, "eth1", "eth0")?;
        veth_pair(&lb, &b, "eth2", "eth0")?;
        client.add_addr("eth0", "198.18.5.2/24")?;
        lb.add_addr("eth0", "198.18.5.1/24")?;
        lb.add_addr("eth0", &format!("{VIP}/32"))?;
        lb.add_addr("eth0", &format!("{HAPROXY_ADDR}/32"))?;
        lb.add_addr("eth1", "198.18.6.1/24")?;
        lb.add_addr("eth2", "198.18.7.1/24")?;
        a.add_addr("eth0", &format!("{BACKEND_A}/24"))?;
        b.add_addr("eth0", &format!("{BACKEND_B}/24"))?;
        for (ns, ifs) in [
            (&client, &["eth0"][..]),
            (&lb, &["eth0", "eth1", "eth2"][..]),
            (&a, &["eth0"][..]),
            (&b, &["eth0"][..]),
        ] {
            for i in ifs {
                ns.wait_link_up(i, IO_TIMEOUT)?;
            }
        }
        Ok(Lab {
            client,
            lb,
            a,
            b,
            inst: Instance::new("l7e2e"),
        })
    }

    fn config(&self) -> String {
        let servers = |port: u16| {
            format!(
                "[[service.server]]\nname = \"webA\"\naddress = \"{BACKEND_A}:{port}\"\ncookie = \"A\"\n\
                 [[service.server]]\nname = \"webB\"\naddress = \"{BACKEND_B}:{port}\"\ncookie = \"B\"\n"
            )
        };
        let svc = |name: &str, port: u16, http: &str, servers: &str| {
            format!(
                "\n[[service]]\nname = \"{name}\"\nvip = \"{VIP}\"\nport = {port}\nmode = \"http\"\n\
                 [service.http]\n{http}\n{servers}"
            )
        };
        let mut c = format!(
            "instance = \"{}\"\n[xdp]\ninterface = \"eth0\"\n",
            self.inst.name()
        );
        // The seed's listen section.
        c += &svc(
            "webfarm",
            PREFIX,
            "balance = \"roundrobin\"\ncookie = { name = \"JSESSIONID\", mode = \"prefix\" }\n\
             forwardfor = true\nhttpclose = true\nretries = 3\nredispatch = true\nmaxconn = 2000\n\
             timeout = { connect = \"5s\", client = \"50s\", server = \"50s\" }",
            &servers(BACKEND_PORT),
        );
        c += &svc(
            "insert",
            INSERT,
            "cookie = { name = \"SRV\", mode = \"insert\", indirect = true, nocache = true, httponly = true }\n\
             forwardfor = true\nredispatch = true",
            &servers(BACKEND_PORT),
        );
        c += &svc(
            "rewrite",
            REWRITE,
            "cookie = { name = \"JSESSIONID\", mode = \"rewrite\" }\nforwardfor = true\nredispatch = true",
            &servers(BACKEND_PORT),
        );
        c += &svc(
            "ws",
            WS,
            "forwardfor = true",
            &format!("[[service.server]]\nname = \"wsA\"\naddress = \"{BACKEND_A}:{WS_PORT}\"\n"),
        );
        c += &svc(
            "limits",
            LIMITS,
            "retries = 0\n\
             timeout = { connect = \"1s\", client = \"1s\", server = \"1s\", http_request = \"500ms\", queue = \"300ms\" }",
            &format!(
                "[[service.server]]\nname = \"one\"\naddress = \"{BACKEND_A}:{BACKEND_PORT}\"\nmaxconn = 1\n"
            ),
        );
        // 198.18.6.3 does not exist: ARP never resolves, the SYN is never answered.
        c += &svc(
            "blackhole",
            CONNECT_TIMEOUT,
            "retries = 1\ntimeout = { connect = \"300ms\" }",
            "[[service.server]]\nname = \"nobody\"\naddress = \"198.18.6.3:8000\"\n",
        );
        c
    }
}

/// HAProxy 2.6 with the seed's listen section (config syntax of 2.6), on the lb
/// namespace's second address, logging to stdout.
fn haproxy(
    lb: &Netns,
    dir: &std::path::Path,
) -> Result<(NsProcess, Arc<std::sync::Mutex<String>>)> {
    let cfg = format!(
        "global\n  maxconn 4096\n  log stdout format raw local0\n\
         defaults\n  log global\n  mode http\n  option httplog\n  option dontlognull\n  retries 3\n\
         \x20 option redispatch\n  maxconn 2000\n  timeout connect 5s\n  timeout client 50s\n  timeout server 50s\n\
         listen webfarm\n  bind {HAPROXY_ADDR}:{HAPROXY_PORT}\n  balance roundrobin\n\
         \x20 cookie JSESSIONID prefix\n  option httpclose\n  option forwardfor\n\
         \x20 server webA {BACKEND_A}:{BACKEND_PORT} cookie A\n  server webB {BACKEND_B}:{BACKEND_PORT} cookie B\n"
    );
    let path = dir.join("haproxy.cfg");
    std::fs::write(&path, cfg)?;
    let mut cmd = lb.command("haproxy");
    cmd.arg("-db").arg("-f").arg(&path);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut p = NsProcess::spawn(cmd)?;
    let log = Arc::new(std::sync::Mutex::new(String::new()));
    for pipe in [
        p.take_stdout().map(|x| Box::new(x) as Box<dyn Read + Send>),
        p.take_stderr().map(|x| Box::new(x) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .flatten()
    {
        let log = log.clone();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(pipe).lines().map_while(Result::ok) {
                let mut l = log.lock().unwrap_or_else(|e| e.into_inner());
                l.push_str(&line);
                l.push('\n');
            }
        });
    }
    Ok((p, log))
}

/// The daemon's access log lines of `service`, after giving its batched writer
/// (50 ms) time to write what was logged.
fn daemon_lines(daemon: &Daemon, service: &str) -> Vec<String> {
    std::thread::sleep(Duration::from_millis(200));
    access_lines(&daemon.log(), service)
}

fn access_lines(log: &str, service: &str) -> Vec<String> {
    let pat = format!(" {service} {service}/");
    log.lines()
        .filter(|l| l.contains(&pat))
        .map(str::to_string)
        .collect()
}

// ---------------------------------------------------------------------------------------

#[test]
fn l7_end_to_end_with_real_clients_and_haproxy_side_by_side() -> Result<()> {
    if !require::privileged("l7_end_to_end_with_real_clients_and_haproxy_side_by_side")
        || !require::program("curl")
    {
        return Ok(());
    }
    let lab = Lab::new()?;
    let be_a = Backend::start(&lab.a, "A", sa(BACKEND_A, BACKEND_PORT))?;
    let be_b = Backend::start(&lab.b, "B", sa(BACKEND_B, BACKEND_PORT))?;
    let ws_stop = Arc::new(AtomicBool::new(false));
    let _ws_guard = StopOnDrop(ws_stop.clone());
    ws_echo(&lab.a, sa(BACKEND_A, WS_PORT), ws_stop)?;
    let daemon = Daemon::start(&lab.lb, &lab.config())?;
    let vip = |port| sa(VIP, port);
    wait_for(
        || curl(&lab.client, &url(PREFIX, "/"), &[]).is_ok_and(|r| r.status == 200),
        IO_TIMEOUT,
    )
    .context("proxy answers")?;

    acceptance_1_prefix(&lab)?;
    acceptance_2_insert_rewrite_and_bad_cookies(&lab, vip(PREFIX))?;
    acceptance_4_limits(&lab, &daemon)?;
    acceptance_5_h2_and_websocket(&lab)?;
    // Last: it stops backend A.
    acceptance_3_refusing_server(&lab, &daemon, &be_a, &be_b)?;

    let log = daemon.log();
    assert!(!log.contains("panicked"), "{log}");
    Ok(())
}

struct StopOnDrop(Arc<AtomicBool>);
impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

fn acceptance_1_prefix(lab: &Lab) -> Result<()> {
    let c = &lab.client;
    // Requests alternate between the backends.
    let servers: Vec<String> = (0..4)
        .map(|_| curl(c, &url(PREFIX, "/"), &[]).map(|r| r.server().to_string()))
        .collect::<Result<_>>()?;
    assert!(
        servers.windows(2).all(|w| w[0] != w[1]) && servers.iter().all(|s| s == "A" || s == "B"),
        "round robin alternates: {servers:?}"
    );
    // The backend sets JSESSIONID; the client gets it prefixed with the server's id.
    let r = curl(c, &url(PREFIX, "/login"), &[])?;
    assert_eq!(r.status, 200, "{r:?}");
    let who = r.server().to_string();
    let set = r.header("set-cookie").join(" | ");
    let expect = format!("JSESSIONID={who}~s{who}; Path=/");
    assert_eq!(set, expect, "prefixed Set-Cookie: {r:?}");
    // The client's address in X-Forwarded-For.
    assert_eq!(r.line("xff="), "198.18.5.2", "{r:?}");
    println!("acceptance 1: alternation {servers:?}; first response Set-Cookie: {set}");
    // With the cookie: sticks to that server, which gets its own value back.
    for _ in 0..4 {
        let r = curl(
            c,
            &url(PREFIX, "/"),
            &["-H", &format!("Cookie: JSESSIONID={who}~s{who}")],
        )?;
        assert_eq!(r.server(), who, "{r:?}");
        assert_eq!(r.line("cookie="), format!("JSESSIONID=s{who}"), "{r:?}");
        assert_eq!(r.line("xff="), "198.18.5.2", "{r:?}");
    }
    // The other server too.
    let other = if who == "A" { "B" } else { "A" };
    let r = curl(
        c,
        &url(PREFIX, "/"),
        &["-b", &format!("JSESSIONID={other}~xyz; lang=fr")],
    )?;
    assert_eq!(r.server(), other, "{r:?}");
    assert_eq!(r.line("cookie="), "JSESSIONID=xyz; lang=fr", "{r:?}");
    // XFF appended after a client-supplied one.
    let r = curl(
        c,
        &url(PREFIX, "/"),
        &["-H", "X-Forwarded-For: 203.0.113.7"],
    )?;
    assert_eq!(r.line("xff="), "203.0.113.7 | 198.18.5.2", "{r:?}");
    Ok(())
}

fn acceptance_2_insert_rewrite_and_bad_cookies(lab: &Lab, prefix_vip: SocketAddr) -> Result<()> {
    let c = &lab.client;
    // insert (indirect, nocache, httponly): the proxy's own cookie, not passed on.
    let r = curl(c, &url(INSERT, "/"), &[])?;
    let who = r.server().to_string();
    let set = r.header("set-cookie").join(" | ");
    assert_eq!(set, format!("SRV={who}; path=/; HttpOnly"), "{r:?}");
    assert!(
        r.header("cache-control")
            .iter()
            .any(|v| v.contains("private")),
        "{r:?}"
    );
    for _ in 0..3 {
        let r = curl(c, &url(INSERT, "/"), &["-b", &format!("SRV={who}; app=1")])?;
        assert_eq!(r.server(), who, "{r:?}");
        assert_eq!(r.line("cookie="), "app=1", "indirect removes SRV: {r:?}");
        assert!(
            r.header("set-cookie").is_empty(),
            "indirect: no new cookie: {r:?}"
        );
    }
    println!("acceptance 2: insert first response Set-Cookie: {set}");
    // rewrite: the backend's JSESSIONID value is replaced by the server id.
    let r = curl(c, &url(REWRITE, "/login"), &[])?;
    let who = r.server().to_string();
    assert_eq!(
        r.header("set-cookie").join(" | "),
        format!("JSESSIONID={who}; Path=/"),
        "{r:?}"
    );
    for _ in 0..3 {
        let r = curl(c, &url(REWRITE, "/"), &["-b", &format!("JSESSIONID={who}")])?;
        assert_eq!(r.server(), who, "{r:?}");
    }
    // Unknown id: balanced normally (both servers answer), prefix removed.
    let mut seen = Vec::new();
    for _ in 0..4 {
        let r = curl(c, &url(PREFIX, "/"), &["-b", "JSESSIONID=Z~abc"])?;
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.line("cookie="), "JSESSIONID=abc", "{r:?}");
        seen.push(r.server().to_string());
    }
    assert!(
        seen.contains(&"A".into()) && seen.contains(&"B".into()),
        "{seen:?}"
    );
    // Tampered cookies: never an error, balanced normally.
    for tampered in [
        "JSESSIONID=A~",
        "JSESSIONID=~~~",
        "JSESSIONID=AA~x",
        "JSESSIONID=a~x",
        "JSESSIONID",
        "=A~x",
        "JSESSIONID=A~x~y;;;",
    ] {
        let r = curl(
            c,
            &url(PREFIX, "/"),
            &["-H", &format!("Cookie: {tampered}")],
        )?;
        assert_eq!(r.status, 200, "tampered {tampered:?}: {r:?}");
    }
    // Many cookies: 200 cookies in one header, ours in the middle.
    let mut many: Vec<String> = (0..100).map(|i| format!("c{i}=v{i}")).collect();
    many.push("JSESSIONID=B~deep".into());
    many.extend((100..200).map(|i| format!("c{i}=v{i}")));
    let r = curl(
        c,
        &url(PREFIX, "/"),
        &["-H", &format!("Cookie: {}", many.join("; "))],
    )?;
    assert_eq!(r.server(), "B", "{}", r.head);
    assert!(
        r.line("cookie=").contains("; JSESSIONID=deep; "),
        "{}",
        r.line("cookie=")
    );
    // Duplicate cookies (HAProxy: the first valid one decides), also in separate headers.
    let r = curl(
        c,
        &url(PREFIX, "/"),
        &["-H", "Cookie: JSESSIONID=A~one; JSESSIONID=B~two"],
    )?;
    assert_eq!(r.server(), "A", "{r:?}");
    let r = raw(
        c,
        prefix_vip,
        &get_close(
            "/",
            "Cookie: JSESSIONID=B~one\r\nCookie: JSESSIONID=A~two\r\n",
        ),
        IO_TIMEOUT,
    )?;
    assert_eq!((r.status, r.server()), (200, "B"), "{r:?}");
    // Garbage bytes: high bytes in the cookie are passed; control bytes are a 400.
    let r = raw(
        c,
        prefix_vip,
        &get_close("/", "Cookie: JSESSIONID=A~\u{ff}\u{fe}; \u{80}=\u{81}\r\n"),
        IO_TIMEOUT,
    )?;
    assert_eq!(r.status, 200, "{r:?}");
    let mut bad = b"GET / HTTP/1.1\r\nHost: vip\r\nCookie: JSESSIONID=A~\x00\x01\xff\xfe\r\nConnection: close\r\n\r\n".to_vec();
    let r = raw(c, prefix_vip, &bad, IO_TIMEOUT)?;
    assert_eq!(r.status, 400, "{r:?}");
    bad = (0..=255u8).cycle().take(3000).collect();
    let r = raw(c, prefix_vip, &bad, IO_TIMEOUT)?;
    assert_eq!(r.status, 400, "random bytes: {r:?}");
    // Still serving.
    assert_eq!(curl(c, &url(PREFIX, "/"), &[])?.status, 200);
    println!("acceptance 2: unknown id, 7 tampered, 201 cookies, duplicates, garbage: all answered as expected");
    Ok(())
}

fn acceptance_4_limits(lab: &Lab, daemon: &Daemon) -> Result<()> {
    let c = &lab.client;
    let limits = sa(VIP, LIMITS);
    // maxconn 1 + queue 300 ms: the second concurrent request waits, then 503.
    let (first, second) = std::thread::scope(|s| {
        let h = s.spawn(|| raw(c, limits, &get_close("/slow?ms=650", ""), IO_TIMEOUT));
        std::thread::sleep(Duration::from_millis(100));
        let second = raw(c, limits, &get_close("/", ""), IO_TIMEOUT);
        (h.join().map_err(|_| anyhow::anyhow!("panic")), second)
    });
    let (first, second) = (first??, second?);
    assert_eq!(first.status, 200, "{first:?}");
    assert_eq!(second.status, 503, "{second:?}");
    assert!(second.elapsed >= Duration::from_millis(280), "{second:?}");
    println!(
        "acceptance 4: maxconn 1: first 200, queued second 503 after {:?}",
        second.elapsed
    );
    // timeout server 1 s: 504.
    let r = raw(c, limits, &get_close("/slow?ms=2000", ""), IO_TIMEOUT)?;
    assert_eq!(r.status, 504, "{r:?}");
    println!("acceptance 4: timeout server: 504 after {:?}", r.elapsed);
    // timeout http-request 500 ms with a slowloris client: one header byte every 100 ms.
    let r = c.run(move || -> Result<Reply> {
        let t0 = Instant::now();
        let mut s = TcpStream::connect_timeout(&limits, IO_TIMEOUT)?;
        s.set_read_timeout(Some(Duration::from_millis(50)))?;
        s.write_all(b"GET / HTTP/1.1\r\nHost: vip\r\n")?;
        let mut out = Vec::new();
        while t0.elapsed() < IO_TIMEOUT {
            if s.write_all(b"X").is_err() {
                break;
            }
            let mut b = [0u8; 1024];
            match s.read(&mut b) {
                Ok(0) => break,
                Ok(n) => out.extend_from_slice(&b[..n]),
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
        Ok(Reply::parse(&out, t0.elapsed()))
    })??;
    assert_eq!(r.status, 408, "{r:?}");
    assert!(r.elapsed < Duration::from_secs(2), "{r:?}");
    println!("acceptance 4: slowloris: 408 after {:?}", r.elapsed);
    // An idle connection that never sends a request: closed silently at timeout
    // http-request (HAProxy does the same for empty connections), not at timeout client.
    let r = raw(c, limits, b"", IO_TIMEOUT)?;
    assert_eq!(r.status, 0, "{r:?}");
    assert!(r.elapsed < Duration::from_millis(900), "{r:?}");
    println!(
        "acceptance 4: idle connection without a request: closed after {:?}",
        r.elapsed
    );
    // timeout client 1 s: a request body that stops coming.
    let r = raw(
        c,
        limits,
        b"POST / HTTP/1.1\r\nHost: vip\r\nContent-Length: 100\r\nConnection: close\r\n\r\npartial",
        IO_TIMEOUT,
    )?;
    assert!(
        r.elapsed < Duration::from_secs(3),
        "client timeout enforced: {r:?}"
    );
    println!(
        "acceptance 4: timeout client (stalled body): status {} after {:?}",
        r.status, r.elapsed
    );
    // timeout connect 300 ms (unanswered SYN), 1 retry: 503.
    let r = raw(c, sa(VIP, CONNECT_TIMEOUT), &get_close("/", ""), IO_TIMEOUT)?;
    assert_eq!(r.status, 503, "{r:?}");
    assert!(
        r.elapsed >= Duration::from_millis(550) && r.elapsed < Duration::from_secs(3),
        "{r:?}"
    );
    println!("acceptance 4: timeout connect: 503 after {:?}", r.elapsed);
    // Oversized head: 431.
    let big = format!("X-Big: {}\r\n", "x".repeat(20_000));
    let r = raw(c, limits, &get_close("/", &big), IO_TIMEOUT)?;
    assert_eq!(r.status, 431, "{r:?}");
    // Smuggling: both framings.
    let r = raw(
        c,
        limits,
        b"POST / HTTP/1.1\r\nHost: vip\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        IO_TIMEOUT,
    )?;
    assert_eq!(r.status, 400, "{r:?}");
    let r = raw(
        c,
        limits,
        b"POST / HTTP/1.1\r\nHost: vip\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde",
        IO_TIMEOUT,
    )?;
    assert_eq!(r.status, 400, "{r:?}");
    println!("acceptance 4: 431 for a 20 kB header; 400 for CL+TE and for two Content-Lengths");
    // A failed connect names the server that failed, not <NOSRV>.
    let bh = daemon_lines(daemon, "blackhole");
    assert!(
        bh.iter().any(|l| l.contains(" blackhole/nobody ")
            && l.contains(" 503 ")
            && l.contains(" sC-- ")),
        "{bh:#?}"
    );
    let lines = daemon_lines(daemon, "limits");
    // The slowloris 408 says how long the head took (%TR), not 0.
    assert!(
        lines
            .iter()
            .any(|l| l.contains(" 408 ") && !l.contains(" 0/-1/-1/-1/")),
        "{lines:#?}"
    );
    for code in [" 503 ", " 504 ", " 408 ", " 431 ", " 400 "] {
        assert!(
            lines.iter().any(|l| l.contains(code)),
            "access log has {code}: {lines:#?}"
        );
    }
    Ok(())
}

fn acceptance_5_h2_and_websocket(lab: &Lab) -> Result<()> {
    let c = &lab.client;
    let r = curl(c, &url(PREFIX, "/"), &["--http2-prior-knowledge"])?;
    assert!(r.head.starts_with("HTTP/2 200"), "{r:?}");
    assert_eq!(r.line("xff="), "198.18.5.2", "{r:?}");
    let r = curl(
        c,
        &url(PREFIX, "/"),
        &["--http2-prior-knowledge", "-b", "JSESSIONID=B~h2; x=1"],
    )?;
    assert_eq!(
        (r.server(), r.line("cookie=")),
        ("B", "JSESSIONID=h2; x=1"),
        "{r:?}"
    );
    println!("acceptance 5: curl --http2-prior-knowledge: HTTP/2 200, cookie persistence works");
    if require::find_program("h2load").is_some() {
        let out = c.exec_timeout(
            &[
                "h2load",
                "-n",
                "400",
                "-c",
                "4",
                "-m",
                "8",
                &url(INSERT, "/"),
            ],
            Duration::from_secs(30),
        )?;
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("400 succeeded, 0 failed, 0 errored"),
            "{text}"
        );
        let line = text
            .lines()
            .find(|l| l.starts_with("finished in"))
            .unwrap_or("");
        println!("acceptance 5: h2load -n 400 -c 4 -m 8: 400 succeeded, 0 failed; {line}");
    } else {
        println!("acceptance 5: h2load not installed, skipped (apt-get install nghttp2-client)");
    }
    // WebSocket echo through the daemon.
    let to = sa(VIP, WS);
    c.run(move || -> Result<()> {
        let s = TcpStream::connect_timeout(&to, IO_TIMEOUT)?;
        s.set_read_timeout(Some(IO_TIMEOUT))?;
        let (mut ws, resp) = tungstenite::client(format!("ws://{VIP}:{WS}/echo"), s)
            .map_err(|e| anyhow::anyhow!("websocket handshake: {e}"))?;
        ensure!(resp.status().as_u16() == 101, "{resp:?}");
        for i in 0..5 {
            let text = format!("hello {i}");
            ws.send(tungstenite::Message::text(text.clone()))?;
            let m = ws.read()?;
            ensure!(m.to_text()? == text, "echo {m:?}");
        }
        let big = vec![7u8; 100_000];
        ws.send(tungstenite::Message::binary(big.clone()))?;
        ensure!(ws.read()?.into_data().as_ref() == &big[..], "binary echo");
        let _ = ws.close(None);
        Ok(())
    })??;
    println!("acceptance 5: WebSocket through the daemon: 101, 5 text + 100 kB binary echoed");
    Ok(())
}

fn acceptance_3_refusing_server(
    lab: &Lab,
    daemon: &Daemon,
    a: &Backend,
    b: &Backend,
) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let hap = if require::program("haproxy") {
        Some(haproxy(&lab.lb, dir.path())?)
    } else {
        None
    };
    if hap.is_some() {
        let to = sa(HAPROXY_ADDR, HAPROXY_PORT);
        wait_for(
            || raw(&lab.client, to, &get_close("/", ""), IO_TIMEOUT).is_ok_and(|r| r.status == 200),
            IO_TIMEOUT,
        )
        .context("haproxy answers")?;
    }
    let c = &lab.client;
    const LOAD: usize = 200;
    let before = daemon_lines(daemon, "webfarm").len();
    let a_before = a.served();
    let done = AtomicUsize::new(0);
    let failures: Vec<String> = std::thread::scope(|s| -> Result<Vec<String>> {
        let load = s.spawn(|| {
            let mut failed = Vec::new();
            for i in 0..LOAD {
                match raw(c, sa(VIP, PREFIX), &get_close("/", ""), IO_TIMEOUT) {
                    Ok(r) if r.status == 200 => {}
                    Ok(r) => failed.push(format!("request {i}: {r:?}")),
                    Err(e) => failed.push(format!("request {i}: {e:#}")),
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
            failed
        });
        wait_for(
            || done.load(Ordering::Relaxed) >= LOAD / 4,
            Duration::from_secs(30),
        )?;
        a.stop();
        load.join()
            .map_err(|_| anyhow::anyhow!("load thread panicked"))
    })?;
    assert!(
        failures.is_empty(),
        "no request fails while A stops: {failures:#?}"
    );
    let lines = daemon_lines(daemon, "webfarm");
    let during = &lines[before.min(lines.len())..];
    let retried: Vec<&String> = during.iter().filter(|l| l.contains("/+1 ")).collect();
    assert!(!retried.is_empty(), "log shows retries: {during:#?}");
    println!(
        "acceptance 3: {LOAD} requests while backend A stopped after ~{}: 0 failed; A served {} of them; {} log lines show a retry+redispatch, e.g.\n    {}",
        LOAD / 4,
        a.served() - a_before,
        retried.len(),
        retried[0]
    );
    // A cookie naming the stopped server: answered by B at once.
    let r = raw(
        c,
        sa(VIP, PREFIX),
        &get_close("/", "Cookie: JSESSIONID=A~sA\r\n"),
        IO_TIMEOUT,
    )?;
    assert_eq!((r.status, r.server()), (200, "B"), "{r:?}");
    assert!(
        r.elapsed < Duration::from_millis(100),
        "redispatched within 100 ms: {r:?}"
    );
    assert_eq!(r.line("cookie="), "JSESSIONID=sA", "{r:?}");
    let last = daemon_lines(daemon, "webfarm").pop().unwrap_or_default();
    assert!(last.contains(" --DN ") && last.contains("/+1 "), "{last}");
    println!(
        "acceptance 3: lb:      cookie A~ of the stopped server -> {} from {} in {:?}\n    {last}",
        r.status,
        r.server(),
        r.elapsed
    );
    let _ = b;
    if let Some((_p, log)) = &hap {
        let to = sa(HAPROXY_ADDR, HAPROXY_PORT);
        let r = raw(
            c,
            to,
            &get_close("/", "Cookie: JSESSIONID=A~sA\r\n"),
            IO_TIMEOUT,
        )?;
        let hl = log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .lines()
            .last()
            .unwrap_or("")
            .to_string();
        println!("acceptance 3: HAProxy: cookie A~ of the stopped server -> {} from {} in {:?}\n    {hl}", r.status, r.server(), r.elapsed);
        // A client with a 1 s timeout.
        let r1 = raw(
            c,
            to,
            &get_close("/", "Cookie: JSESSIONID=A~sA\r\n"),
            Duration::from_secs(1),
        )?;
        let ok = r1.status == 200;
        println!(
            "acceptance 3: HAProxy with a 1 s client timeout: {}",
            if ok {
                "answered".to_string()
            } else {
                format!("failed (no answer after {:?})", r1.elapsed)
            }
        );
        let rl = raw(
            c,
            sa(VIP, PREFIX),
            &get_close("/", "Cookie: JSESSIONID=A~sA\r\n"),
            Duration::from_secs(1),
        )?;
        println!(
            "acceptance 3: lb with a 1 s client timeout: {} in {:?}",
            rl.status, rl.elapsed
        );
        assert_eq!(rl.status, 200);
    }
    Ok(())
}
