//! Issue 4 end to end: health checks move servers out of and back into both planes (the
//! HTTP proxy's rotation and the XDP Maglev tables), the decision reaches the XDP maps
//! within 50 ms, killing a backend under load costs no L7 request, and drain / maint /
//! ready through the `lb` CLI do what HAProxy users expect.
//!
//! Topology: h0 client, h1 lb (an `http` VIP and a `dsr` VIP), h2 and h3 backends on one
//! bridge. Each backend runs a small HTTP server on port 80 that answers with its name and
//! serves /check.txt with 200 or 404 as the test says.

use anyhow::{Context, Result};
use lb_tests::{
    daemon::{lb, Daemon, Instance},
    l4lab::{route_via, vip_on_lo, xdp_tx_peer},
    netns::{Netns, Topology},
    require,
};
use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

const VIP_HTTP: Ipv4Addr = Ipv4Addr::new(198, 19, 7, 10);
const VIP_L4: Ipv4Addr = Ipv4Addr::new(198, 19, 7, 20);
const INTER_MS: u64 = 200;
const RISE: u64 = 2;
const FALL: u64 = 3;
const IO_TIMEOUT: Duration = Duration::from_secs(3);

/// A backend: HTTP/1.1 keep-alive server on 0.0.0.0:80 in its namespace.
struct Backend {
    name: String,
    check_ok: Arc<AtomicBool>,
    /// Answer /check.txt only after 3 x inter (a slow server).
    slow: Arc<AtomicBool>,
    up: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn serve_conn(
    mut s: TcpStream,
    name: String,
    check_ok: Arc<AtomicBool>,
    slow: Arc<AtomicBool>,
    up: Arc<AtomicBool>,
) {
    let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 2048];
    let started = Instant::now();
    // Bounded: a connection lives at most a minute.
    while started.elapsed() < Duration::from_secs(60) && up.load(Ordering::SeqCst) {
        match s.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(_) => return,
        }
        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            buf.drain(..end + 4);
            let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
            if path == "/check.txt" && slow.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(3 * INTER_MS));
            }
            let resp = if path == "/check.txt" {
                if check_ok.load(Ordering::SeqCst) {
                    "HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n".to_string()
                } else {
                    "HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_string()
                }
            } else {
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{name}",
                    name.len()
                )
            };
            if s.write_all(resp.as_bytes()).is_err()
                || head.to_ascii_lowercase().contains("connection: close")
            {
                return;
            }
        }
    }
}

fn start_backend(ns: &Netns, name: &str) -> Result<Backend> {
    let listener = ns.run(|| TcpListener::bind("0.0.0.0:80"))??;
    listener.set_nonblocking(true)?;
    let b = Backend {
        name: name.to_string(),
        check_ok: Arc::new(AtomicBool::new(true)),
        slow: Arc::new(AtomicBool::new(false)),
        up: Arc::new(AtomicBool::new(true)),
        stop: Arc::new(AtomicBool::new(false)),
    };
    let (n, c, w, u, s) = (
        b.name.clone(),
        b.check_ok.clone(),
        b.slow.clone(),
        b.up.clone(),
        b.stop.clone(),
    );
    std::thread::spawn(move || {
        let mut listener = Some(listener);
        while !s.load(Ordering::SeqCst) {
            // "Stopping the backend" closes its listener: new connections are refused.
            if !u.load(Ordering::SeqCst) {
                listener = None;
            }
            match listener.as_ref().map(|l| l.accept()) {
                Some(Ok((conn, _))) => {
                    let _ = conn.set_nonblocking(false);
                    let (n, c, w, u) = (n.clone(), c.clone(), w.clone(), u.clone());
                    std::thread::spawn(move || serve_conn(conn, n, c, w, u));
                }
                _ => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    });
    Ok(b)
}

/// One HTTP GET over a fresh connection from the client namespace; returns the body.
fn get(client: &Netns, vip: Ipv4Addr) -> Result<String> {
    get_port(client, vip, 80)
}

/// [`get`] on another port.
fn get_port(client: &Netns, vip: Ipv4Addr, port: u16) -> Result<String> {
    client.run(move || -> Result<String> {
        let mut s = TcpStream::connect_timeout(&SocketAddr::new(vip.into(), port), IO_TIMEOUT)?;
        s.set_read_timeout(Some(IO_TIMEOUT))?;
        s.write_all(
            format!("GET / HTTP/1.1\r\nHost: {vip}\r\nConnection: close\r\n\r\n").as_bytes(),
        )?;
        let mut out = String::new();
        s.read_to_string(&mut out)?;
        let (head, body) = out.split_once("\r\n\r\n").context("no header end")?;
        anyhow::ensure!(head.starts_with("HTTP/1.1 200"), "status: {head}");
        Ok(body.to_string())
    })?
}

/// A keep-alive connection from the client namespace.
struct Conn(TcpStream);

impl Conn {
    fn open(client: &Netns, vip: Ipv4Addr) -> Result<Conn> {
        let s = client.run(move || {
            TcpStream::connect_timeout(&SocketAddr::new(vip.into(), 80), IO_TIMEOUT)
        })??;
        s.set_read_timeout(Some(IO_TIMEOUT))?;
        Ok(Conn(s))
    }

    fn get(&mut self) -> Result<String> {
        self.get_with(None)
    }

    /// A request with `Cookie: SRV=<cookie>` when given (the HTTP service's persistence).
    fn get_with(&mut self, cookie: Option<&str>) -> Result<String> {
        let c = cookie.map_or(String::new(), |c| format!("Cookie: SRV={c}\r\n"));
        self.0
            .write_all(format!("GET / HTTP/1.1\r\nHost: x\r\n{c}\r\n").as_bytes())?;
        let mut r = BufReader::new(&self.0);
        let mut status = String::new();
        r.read_line(&mut status)?;
        anyhow::ensure!(status.starts_with("HTTP/1.1 200"), "status {status:?}");
        let mut len = 0usize;
        loop {
            let mut line = String::new();
            r.read_line(&mut line)?;
            if line == "\r\n" || line.is_empty() {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse()?;
            }
        }
        let mut body = vec![0u8; len];
        r.read_exact(&mut body)?;
        Ok(String::from_utf8_lossy(&body).into_owned())
    }
}

fn admin(socket: &str, args: &[&str]) -> Result<(bool, String, String)> {
    let mut all = args.to_vec();
    all.extend(["--socket", socket]);
    let (st, out, err) = lb(&all)?;
    Ok((st.success(), out, err))
}

/// `set server <server> state <state>` through the admin socket, which must succeed.
fn set_state(socket: &str, server: &str, state: &str) -> Result<()> {
    let (ok, _, err) = admin(socket, &["set", "server", server, "state", state])?;
    assert!(ok, "set server {server} state {state}: {err}");
    Ok(())
}

fn bpftool_json(args: &[&str]) -> Result<serde_json::Value> {
    let out = std::process::Command::new("bpftool")
        .arg("-j")
        .args(args)
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "bpftool {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(serde_json::from_slice(&out.stdout)?)
}

fn u64s(v: &serde_json::Value) -> Vec<u64> {
    v.as_array()
        .map(|a| a.iter().filter_map(|x| x.as_u64()).collect())
        .unwrap_or_default()
}

/// Reads the live Maglev table of `vip` from the pinned maps (as an operator would with
/// bpftool) and returns the addresses of the backends it names.
fn maglev_backends(
    pin_dir: &std::path::Path,
    vip: Ipv4Addr,
) -> Result<std::collections::HashSet<Ipv4Addr>> {
    let pin = |m: &str| pin_dir.join(m).display().to_string();
    let vips = bpftool_json(&["map", "dump", "pinned", &pin("lb_vips")])?;
    let meta = vips
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| &e["formatted"])
        .find(|e| u64s(&e["key"]["addr"]).get(..4) == Some(&vip.octets().map(u64::from)[..]))
        .context("VIP not in lb_vips")?;
    let slot = meta["value"]["table"].as_u64().context("table slot")? as u32;
    let slot_bytes: Vec<String> = slot.to_le_bytes().iter().map(|b| b.to_string()).collect();
    let maglev = pin("lb_maglev");
    let mut args = vec!["map", "lookup", "pinned", maglev.as_str(), "key"];
    args.extend(slot_bytes.iter().map(String::as_str));
    let inner = bpftool_json(&args)?;
    // The value of a map-of-maps entry is the inner map's id, little-endian bytes.
    let id_bytes: Vec<u8> = inner["value"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|b| {
            b.as_str()
                .and_then(|h| u8::from_str_radix(h.trim_start_matches("0x"), 16).ok())
        })
        .collect();
    let id = match id_bytes[..] {
        [a, b, c, d] => u32::from_le_bytes([a, b, c, d]),
        _ => anyhow::bail!("inner map id in {inner}"),
    };
    let table = bpftool_json(&["map", "dump", "id", &id.to_string()])?;
    let mut ids = std::collections::HashSet::new();
    for e in table.as_array().into_iter().flatten() {
        let bytes: Vec<u8> = e["value"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|b| {
                b.as_str()
                    .and_then(|h| u8::from_str_radix(h.trim_start_matches("0x"), 16).ok())
            })
            .collect();
        if let [a, b, c, d] = bytes[..] {
            ids.insert(u32::from_le_bytes([a, b, c, d]));
        }
    }
    let backends = bpftool_json(&["map", "dump", "pinned", &pin("lb_backends")])?;
    let mut addrs = std::collections::HashSet::new();
    for e in backends.as_array().into_iter().flatten() {
        let f = &e["formatted"];
        let Some(k) = f["key"].as_u64() else { continue };
        if ids.contains(&(k as u32)) {
            if let [a, b, c, d, ..] = u64s(&f["value"]["addr"])[..] {
                addrs.insert(Ipv4Addr::new(a as u8, b as u8, c as u8, d as u8));
            }
        }
    }
    Ok(addrs)
}

fn config(instance: &str, socket: &str, b1: Ipv4Addr, b2: Ipv4Addr) -> String {
    let check = format!("check = true\ninter = \"{INTER_MS}ms\"\nrise = {RISE}\nfall = {FALL}\n");
    format!(
        r#"instance = "{instance}"
[xdp]
interface = "eth0"
[admin]
socket = "{socket}"

[[service]]
name = "web"
vip = "{VIP_HTTP}"
port = 80
mode = "http"
[service.http]
retries = 3
redispatch = true
cookie = {{ name = "SRV", mode = "insert", indirect = true }}
[service.health]
httpchk = "GET /check.txt HTTP/1.0"
[[service.server]]
name = "b1"
address = "{b1}:80"
cookie = "b1"
{check}
[[service.server]]
name = "b2"
address = "{b2}:80"
cookie = "b2"
{check}

# Passive health: b1's traffic port (9) refuses, its check port (80) is fine, so only
# `observe` can find out.
[[service]]
name = "obs"
vip = "{VIP_HTTP}"
port = 8080
mode = "http"
[service.http]
retries = 3
redispatch = true
[[service.server]]
name = "b1"
address = "{b1}:9"
check = true
port = 80
inter = "10s"
observe = "layer4"
error_limit = 3
on_error = "mark-down"
[[service.server]]
name = "b2"
address = "{b2}:80"

[[service]]
name = "l4"
vip = "{VIP_L4}"
port = 80
mode = "dsr"
[service.health]
httpchk = "GET /check.txt HTTP/1.0"
[[service.server]]
name = "b1"
address = "{b1}"
{check}
[[service.server]]
name = "b2"
address = "{b2}"
{check}
"#
    )
}

#[test]
fn health_checks_drive_both_planes_and_admin_commands_work() -> Result<()> {
    if !require::privileged("health_checks_drive_both_planes_and_admin_commands_work") {
        return Ok(());
    }
    let inst = Instance::new("hc");
    let topo = Topology::builder("hce")
        .hosts(4)
        .subnet(7)
        .disable_tx_offload(true)
        .build()?;
    let client = topo.host(0).ns();
    let lbh = topo.host(1);
    let lb4 = lbh.ipv4().to_string();
    route_via(client, "198.19.7.0/24", &lb4)?;
    lbh.ns()
        .ip(&["addr", "add", &format!("{VIP_HTTP}/32"), "dev", "eth0"])?;
    let (b1, b2) = (topo.host(2).ipv4(), topo.host(3).ipv4());
    let mut backends = Vec::new();
    for (i, name) in [(2, "b1"), (3, "b2")] {
        let ns = topo.host(i).ns();
        vip_on_lo(ns, VIP_L4.into())?;
        backends.push(start_backend(ns, name)?);
    }
    let _peer = xdp_tx_peer(&topo, "p1", "198.19.7.254")?;
    std::thread::sleep(Duration::from_millis(300));

    let sock_dir = tempfile::tempdir()?;
    let socket = sock_dir.path().join("lb.sock").display().to_string();
    let mut d = Daemon::start(lbh.ns(), &config(inst.name(), &socket, b1, b2))?;

    // Both servers serve both VIPs at first.
    let mut seen = std::collections::HashSet::new();
    for _ in 0..6 {
        seen.insert(get(client, VIP_HTTP)?);
    }
    assert_eq!(seen.len(), 2, "L7 round robin reaches both: {seen:?}");
    let mut seen = std::collections::HashSet::new();
    for _ in 0..40 {
        seen.insert(get(client, VIP_L4)?);
    }
    assert_eq!(seen.len(), 2, "L4 Maglev spreads over both: {seen:?}");

    // Passive health (`observe layer4`, `error_limit 3`, `on_error mark-down`): real
    // traffic finds the refusing port that the active checks do not see.
    for _ in 0..12 {
        assert_eq!(
            get_port(client, VIP_HTTP, 8080)?,
            "b2",
            "retries hide the refusing server"
        );
    }
    d.wait_log("Server obs/b1 is DOWN", 1, Duration::from_secs(5))?;
    assert!(
        d.log().contains("Detected 3 consecutive errors"),
        "observe is the reason:\n{}",
        d.log()
    );

    // Acceptance 2: b1's check file answers 404 -> DOWN after exactly `fall` checks.
    backends[0].check_ok.store(false, Ordering::SeqCst);
    let took = d.wait_log("Server web/b1 is DOWN", 1, Duration::from_secs(5))?;
    d.wait_log("Server l4/b1 is DOWN", 1, Duration::from_secs(5))?;
    println!("b1 DOWN after {took:?} (fall {FALL} x inter {INTER_MS} ms)");
    let lo = Duration::from_millis((FALL - 1) * INTER_MS);
    let hi = Duration::from_millis((FALL + 2) * INTER_MS);
    assert!(
        took >= lo && took <= hi,
        "DOWN after {took:?}, expected about {FALL} checks at {INTER_MS} ms"
    );
    assert!(
        d.log().contains("reason: Layer7 wrong status, code: 404"),
        "{}",
        d.log()
    );
    for _ in 0..10 {
        assert_eq!(
            get(client, VIP_HTTP)?,
            "b2",
            "no L7 request reaches a DOWN server"
        );
    }
    for _ in 0..30 {
        assert_eq!(
            get(client, VIP_L4)?,
            "b2",
            "no new L4 flow reaches a DOWN server"
        );
    }
    let named = maglev_backends(&inst.pin_dir(), VIP_L4)?;
    println!("Maglev table of {VIP_L4} names {named:?}");
    assert!(
        !named.contains(&b1),
        "the Maglev table no longer names b1: {named:?}"
    );
    assert!(named.contains(&b2), "{named:?}");
    let (ok, stat, _) = admin(&socket, &["show", "stat"])?;
    assert!(ok);
    assert!(
        stat.lines()
            .any(|l| l.starts_with("web,b1,") && l.contains(",DOWN")),
        "{stat}"
    );
    assert!(
        stat.lines()
            .any(|l| l.starts_with("l4,b1,") && l.contains(",DOWN")),
        "{stat}"
    );

    // Acceptance 3: the decision reaches the XDP maps in under 50 ms.
    let lat: Vec<u64> = d
        .log()
        .lines()
        .filter(|l| l.contains("XDP maps updated after a health decision"))
        .filter_map(|l| {
            l.split("latency_us=")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .collect();
    println!("health decision -> XDP map update: {lat:?} us");
    for l in d
        .log()
        .lines()
        .filter(|l| l.contains("health decision") || l.contains("is DOWN"))
    {
        println!("  {l}");
    }
    assert!(!lat.is_empty(), "latency logged:\n{}", d.log());
    assert!(lat.iter().all(|&us| us < 50_000), "under 50 ms: {lat:?}");

    // ... and b1 comes back after `rise` good checks.
    backends[0].check_ok.store(true, Ordering::SeqCst);
    let took = d.wait_log("Server web/b1 is UP", 1, Duration::from_secs(5))?;
    d.wait_log("Server l4/b1 is UP", 1, Duration::from_secs(5))?;
    println!("b1 UP after {took:?} (rise {RISE})");
    std::thread::sleep(Duration::from_millis(50));
    let named = maglev_backends(&inst.pin_dir(), VIP_L4)?;
    assert!(
        named.contains(&b1) && named.contains(&b2),
        "b1 back in the table: {named:?}"
    );

    // A slow server (checks answered after 3 x inter; without `timeout check` a check must
    // finish within `inter`) goes DOWN the same way, and comes back when it is fast again.
    backends[0].slow.store(true, Ordering::SeqCst);
    let took = d.wait_log("Server web/b1 is DOWN", 2, Duration::from_secs(10))?;
    d.wait_log("Server l4/b1 is DOWN", 2, Duration::from_secs(10))?;
    println!("slow b1 DOWN after {took:?}");
    assert!(
        d.log().contains("timeout"),
        "a timeout is the reason:\n{}",
        d.log()
    );
    for _ in 0..5 {
        assert_eq!(
            get(client, VIP_HTTP)?,
            "b2",
            "no L7 request reaches a slow DOWN server"
        );
    }
    backends[0].slow.store(false, Ordering::SeqCst);
    d.wait_log("Server web/b1 is UP", 2, Duration::from_secs(10))?;
    d.wait_log("Server l4/b1 is UP", 2, Duration::from_secs(10))?;
    let mut seen = std::collections::HashSet::new();
    for _ in 0..6 {
        seen.insert(get(client, VIP_HTTP)?);
    }
    assert_eq!(seen.len(), 2, "b1 back in the L7 rotation");

    // Acceptance 5: drain lets a keep-alive L7 session (its persistence cookie names the
    // server) finish there while new sessions go elsewhere; maint stops all; ready restores.
    let mut ka = Conn::open(client, VIP_HTTP)?;
    let owner = ka.get()?;
    let other = if owner == "b1" { "b2" } else { "b1" };
    assert_eq!(ka.get_with(Some(&owner))?, owner, "the cookie sticks");
    set_state(&socket, &format!("web/{owner}"), "drain")?;
    for _ in 0..6 {
        assert_eq!(
            get(client, VIP_HTTP)?,
            other,
            "drain: new sessions go elsewhere"
        );
    }
    for _ in 0..3 {
        assert_eq!(
            ka.get_with(Some(&owner))?,
            owner,
            "drain: the open session keeps its server"
        );
    }
    set_state(&socket, &format!("web/{owner}"), "maint")?;
    for _ in 0..4 {
        assert_eq!(
            get(client, VIP_HTTP)?,
            other,
            "maint: nothing new reaches it"
        );
    }
    let mut again = Conn::open(client, VIP_HTTP)?;
    assert_eq!(
        again.get_with(Some(&owner))?,
        other,
        "maint: even its sessions are redispatched"
    );
    set_state(&socket, &format!("web/{owner}"), "ready")?;
    let mut seen = std::collections::HashSet::new();
    for _ in 0..6 {
        seen.insert(get(client, VIP_HTTP)?);
    }
    assert_eq!(seen.len(), 2, "ready restores the rotation");

    // `set weight` (HAProxy's): 3:1 on the HTTP service, then back to the config's.
    let (ok, _, err) = admin(&socket, &["set", "weight", "web/b1", "3"])?;
    assert!(ok, "{err}");
    let mut to_b1 = 0;
    for _ in 0..40 {
        if get(client, VIP_HTTP)? == "b1" {
            to_b1 += 1;
        }
    }
    println!("set weight web/b1 3: {to_b1} of 40 requests to b1");
    assert!(
        (28..=32).contains(&to_b1),
        "weight 3:1 gives b1 about 30 of 40: {to_b1}"
    );
    let (ok, _, err) = admin(&socket, &["set", "weight", "web/b1", "100%"])?;
    assert!(ok, "{err}");
    // ... and on the L4 service: weight 0 takes no new flows.
    let (ok, _, err) = admin(&socket, &["set", "weight", "l4/b1", "0"])?;
    assert!(ok, "{err}");
    std::thread::sleep(Duration::from_millis(50));
    for _ in 0..20 {
        assert_eq!(get(client, VIP_L4)?, "b2", "L4 weight 0: no new flows");
    }
    let (ok, _, err) = admin(&socket, &["set", "weight", "l4/b1", "100%"])?;
    assert!(ok, "{err}");
    std::thread::sleep(Duration::from_millis(50));

    // Drain on L4: an open stream keeps its backend, new flows go elsewhere.
    let mut stream = Conn::open(client, VIP_L4)?;
    let owner = stream.get()?;
    let other = if owner == "b1" { "b2" } else { "b1" };
    set_state(&socket, &format!("l4/{owner}"), "drain")?;
    std::thread::sleep(Duration::from_millis(50));
    for _ in 0..20 {
        assert_eq!(
            get(client, VIP_L4)?,
            other,
            "L4 drain: new flows go elsewhere"
        );
    }
    for _ in 0..3 {
        assert_eq!(
            stream.get()?,
            owner,
            "L4 drain: the open stream keeps its backend"
        );
    }
    set_state(&socket, &format!("l4/{owner}"), "maint")?;
    std::thread::sleep(Duration::from_millis(50));
    // Maint re-picks the stream's flow: the other backend has no such connection and resets it.
    assert!(stream.get().is_err(), "L4 maint stops the open stream too");
    set_state(&socket, &format!("l4/{owner}"), "ready")?;
    std::thread::sleep(Duration::from_millis(50));
    let mut seen = std::collections::HashSet::new();
    for _ in 0..40 {
        seen.insert(get(client, VIP_L4)?);
    }
    assert_eq!(seen.len(), 2, "L4 ready restores the table");

    // Acceptance 6: CLI errors.
    let (ok, _, err) = admin("/nonexistent/lb.sock", &["show", "stat"])?;
    assert!(
        !ok && err.contains("cannot connect to admin socket /nonexistent/lb.sock"),
        "{err}"
    );
    let (ok, _, err) = admin(&socket, &["show", "nonsense"])?;
    assert!(!ok && err.contains("Unknown command"), "{err}");
    let (ok, _, err) = admin(&socket, &["set", "server", "web/zz", "state", "drain"])?;
    assert!(!ok && err.contains("No such server."), "{err}");

    // Acceptance 4: kill b1 under a bounded load: no L7 request fails; L4 connections
    // opened after detection all succeed.
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let sent = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    std::thread::scope(|s| -> Result<()> {
        let (stop2, failures2, sent2) = (stop.clone(), failures.clone(), sent.clone());
        s.spawn(move || {
            // Bounded: 400 requests at most.
            for _ in 0..400 {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                sent2.fetch_add(1, Ordering::SeqCst);
                if get(client, VIP_HTTP).is_err() {
                    failures2.fetch_add(1, Ordering::SeqCst);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        std::thread::sleep(Duration::from_millis(300));
        backends[0].up.store(false, Ordering::SeqCst);
        let r = d.wait_log("Server l4/b1 is DOWN", 3, Duration::from_secs(5));
        std::thread::sleep(Duration::from_millis(300));
        stop.store(true, Ordering::SeqCst);
        r.map(drop)
    })?;
    let (sent, failed) = (sent.load(Ordering::SeqCst), failures.load(Ordering::SeqCst));
    println!("killing b1 under load: {failed} of {sent} L7 requests failed");
    assert_eq!(failed, 0, "no L7 request fails when a backend dies");
    for _ in 0..30 {
        assert_eq!(
            get(client, VIP_L4)?,
            "b2",
            "L4 connections after detection succeed"
        );
    }

    assert!(d.stop()?.success());
    Ok(())
}
