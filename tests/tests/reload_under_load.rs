//! Issue 7 acceptance 3: under a bounded load through an L7 VIP and an L4 `dsr` VIP (plus a
//! long-lived L4 stream), reloads by SIGHUP and by `lb reload` that add a server and change
//! a weight fail no request and reset no stream; the new server gets traffic, the weight
//! shows in `lb show servers state`; a broken file is refused (exit code, message, log)
//! and the old config keeps serving.
//!
//! Topology: h0 client, h1 lb (L7 VIP on its eth0), h2..h4 backends b1..b3 (the L4 VIP on
//! their `lo`), each an HTTP/1.1 keep-alive server on port 80 answering with its name.

use anyhow::{bail, ensure, Context, Result};
use lb_tests::{
    backend::http_name_server,
    daemon::{lb, Daemon, Instance},
    l4lab::{route_via, vip_on_lo, xdp_tx_peer},
    netns::{Netns, Topology},
    require,
    stream::spawn_in,
};
use std::{
    collections::HashMap,
    io::{BufRead, BufReader, Read, Write},
    net::{Ipv4Addr, SocketAddr, TcpStream},
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

const VIP_L7: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 80);
const VIP_L4: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 100);
const IO_TIMEOUT: Duration = Duration::from_secs(3);
/// Upper bound on the whole load, whatever happens.
const LOAD_LIMIT: Duration = Duration::from_secs(60);
/// Pause between two requests of one load thread.
const PACE: Duration = Duration::from_millis(4);
/// How long each phase runs under load.
const PHASE: Duration = Duration::from_millis(1500);
/// How long a reload may take to be logged.
const LOG_TIMEOUT: Duration = Duration::from_secs(10);

/// One request on an open connection; returns the body (the backend's name).
fn request(s: &TcpStream, close: bool) -> Result<String> {
    let c = if close { "Connection: close\r\n" } else { "" };
    (&*s).write_all(format!("GET / HTTP/1.1\r\nHost: x\r\n{c}\r\n").as_bytes())?;
    let mut r = BufReader::new(s);
    let mut status = String::new();
    r.read_line(&mut status)?;
    ensure!(status.starts_with("HTTP/1.1 200"), "status {status:?}");
    let mut len = 0usize;
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            bail!("connection closed in the head");
        }
        if line == "\r\n" {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse()?;
        }
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)?;
    ensure!(r.buffer().is_empty(), "unexpected bytes after the body");
    Ok(String::from_utf8_lossy(&body).into_owned())
}

fn connect(vip: Ipv4Addr) -> Result<TcpStream> {
    let s = TcpStream::connect_timeout(&SocketAddr::new(vip.into(), 80), IO_TIMEOUT)?;
    s.set_read_timeout(Some(IO_TIMEOUT))?;
    s.set_write_timeout(Some(IO_TIMEOUT))?;
    Ok(s)
}

/// What one load thread saw: per request the phase it started in and its outcome.
type Outcomes = Arc<Mutex<Vec<(usize, Result<String, String>)>>>;

/// The kinds of load running at the same time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Load {
    /// L7 VIP, one keep-alive connection for the whole run (reconnects only on failure).
    L7KeepAlive,
    /// L7 VIP, a new connection per request.
    L7Close,
    /// L4 VIP, a new flow per request.
    L4Close,
    /// L4 VIP, one long-lived stream; it must never fail.
    L4Stream,
}

fn load_thread(
    client: &Netns,
    kind: Load,
    phase: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
) -> Result<(Outcomes, std::thread::JoinHandle<Result<()>>)> {
    let out: Outcomes = Arc::default();
    let vip = match kind {
        Load::L7KeepAlive | Load::L7Close => VIP_L7,
        Load::L4Close | Load::L4Stream => VIP_L4,
    };
    // The thread enters the client's namespace: every socket it opens is the client's.
    let o = out.clone();
    let h = spawn_in(client, move || {
        let mut conn = match kind {
            Load::L7KeepAlive | Load::L4Stream => connect(vip).ok(),
            _ => None,
        };
        let started = Instant::now();
        while !stop.load(Ordering::SeqCst) && started.elapsed() < LOAD_LIMIT {
            let p = phase.load(Ordering::SeqCst);
            let r = match (&conn, kind) {
                (Some(s), _) => request(s, false),
                (None, Load::L7Close | Load::L4Close) => {
                    connect(vip).and_then(|s| request(&s, true))
                }
                (None, _) => Err(anyhow::anyhow!("no connection")),
            };
            let failed = r.is_err();
            o.lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((p, r.map_err(|e| format!("{e:#}"))));
            if failed && kind == Load::L7KeepAlive {
                conn = connect(vip).ok();
            }
            if failed && kind == Load::L4Stream {
                return Ok(());
            }
            std::thread::sleep(PACE);
        }
        Ok(())
    })?;
    Ok((out, h))
}

struct Srv {
    name: &'static str,
    addr: Ipv4Addr,
}

/// The config: `web` (http) and `l4` (dsr) over `servers` with `(name, weight)`.
fn config(instance: &str, socket: &str, servers: &[(&Srv, u32)]) -> String {
    let mut s = format!(
        r#"instance = "{instance}"
[xdp]
interface = "eth0"
[admin]
socket = "{socket}"

[[service]]
name = "web"
vip = "{VIP_L7}"
port = 80
mode = "http"
[service.http]
retries = 3
redispatch = true
"#
    );
    for (b, w) in servers {
        s.push_str(&format!(
            "[[service.server]]\nname = \"{}\"\naddress = \"{}:80\"\nweight = {w}\ncheck = true\ninter = \"300ms\"\n",
            b.name, b.addr
        ));
    }
    s.push_str(&format!(
        "\n[[service]]\nname = \"l4\"\nvip = \"{VIP_L4}\"\nport = 80\nmode = \"dsr\"\n"
    ));
    for (b, w) in servers {
        s.push_str(&format!(
            "[[service.server]]\nname = \"{}\"\naddress = \"{}\"\nweight = {w}\n",
            b.name, b.addr
        ));
    }
    s
}

/// `srv_uweight` of `svc/srv` in `lb show servers state`.
fn shown_weight(socket: &str, svc: &str, srv: &str) -> Result<u32> {
    let (st, out, err) = lb(&["show", "servers", "state", "--socket", socket])?;
    ensure!(st.success(), "show servers state: {err}");
    for line in out.lines().filter(|l| !l.starts_with('#')) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.get(1) == Some(&svc) && f.get(3) == Some(&srv) {
            return Ok(f.get(7).context("uweight column")?.parse()?);
        }
    }
    bail!("{svc}/{srv} not in:\n{out}")
}

#[test]
fn reload_under_load_fails_nothing_and_a_broken_file_keeps_the_old_config() -> Result<()> {
    if !require::privileged(
        "reload_under_load_fails_nothing_and_a_broken_file_keeps_the_old_config",
    ) {
        return Ok(());
    }
    let inst = Instance::new("rld");
    let topo = Topology::builder("rld")
        .hosts(5)
        .disable_tx_offload(true)
        .build()?;
    let client = topo.host(0).ns();
    let lbh = topo.host(1);
    route_via(client, "198.19.0.0/24", lbh.ipv4())?;
    lbh.ns()
        .ip(&["addr", "add", &format!("{VIP_L7}/32"), "dev", "eth0"])?;
    let srv: Vec<Srv> = (2..5)
        .map(|i| Srv {
            name: ["b1", "b2", "b3"][i - 2],
            addr: topo.host(i).ipv4(),
        })
        .collect();
    let mut backends = Vec::new();
    for (i, s) in srv.iter().enumerate() {
        let ns = topo.host(i + 2).ns();
        vip_on_lo(ns, VIP_L4.into())?;
        backends.push(http_name_server(ns, s.name, 80)?);
    }
    let _peer = xdp_tx_peer(&topo, "p1", "198.19.0.254")?;
    std::thread::sleep(Duration::from_millis(300));

    let sock_dir = tempfile::tempdir()?;
    let socket = sock_dir.path().join("lb.sock").display().to_string();
    let (b1, b2, b3) = (&srv[0], &srv[1], &srv[2]);
    let v1 = config(inst.name(), &socket, &[(b1, 1), (b2, 1)]);
    let v2 = config(inst.name(), &socket, &[(b1, 1), (b2, 1), (b3, 1)]);
    let v3 = config(inst.name(), &socket, &[(b1, 1), (b2, 4), (b3, 1)]);
    let mut d = Daemon::start(lbh.ns(), &v1)?;
    let path = d.config_path().to_path_buf();
    let path_s = path.display().to_string();

    let phase = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut loads = HashMap::new();
    let mut joins = Vec::new();
    for kind in [
        Load::L7KeepAlive,
        Load::L7Close,
        Load::L4Close,
        Load::L4Stream,
    ] {
        let (o, h) = load_thread(client, kind, phase.clone(), stop.clone())?;
        loads.insert(kind, o);
        joins.push(h);
    }
    let mut run = || -> Result<()> {
        std::thread::sleep(PHASE);
        // Phase 1, SIGHUP: b3 joins both services.
        std::fs::write(&path, &v2)?;
        phase.store(1, Ordering::SeqCst);
        d.signal(libc::SIGHUP)?;
        d.wait_log("config reloaded", 1, LOG_TIMEOUT)?;
        std::thread::sleep(PHASE);
        // Phase 2, `lb reload`: b2's weight 1 -> 4 in both.
        std::fs::write(&path, &v3)?;
        phase.store(2, Ordering::SeqCst);
        let (st, out, err) = lb(&["reload", "--socket", &socket])?;
        println!("lb reload: exit {st}, {}{}", out.trim(), err.trim());
        ensure!(st.success(), "lb reload failed: {out}{err}");
        ensure!(
            out.contains("config reloaded") && out.contains("http services changed: web"),
            "lb reload says what it did: {out}"
        );
        std::thread::sleep(PHASE);
        ensure!(shown_weight(&socket, "web", "b2")? == 4, "web/b2 weight 4");
        ensure!(shown_weight(&socket, "l4", "b2")? == 4, "l4/b2 weight 4");
        // Phase 3: a broken file is refused; the running config stays.
        std::fs::write(&path, "[[service]\nname = \"web\"\n")?;
        phase.store(3, Ordering::SeqCst);
        let (st, out, err) = lb(&["reload", "--socket", &socket])?;
        println!(
            "lb reload (broken file): exit {:?}: {}{}",
            st.code(),
            out.trim(),
            err.trim()
        );
        ensure!(!st.success(), "a broken file fails `lb reload`");
        ensure!(
            err.contains("reload refused") && err.contains(&path_s),
            "the error names the refusal and the file: {err}"
        );
        d.wait_log("reload refused", 1, LOG_TIMEOUT)?;
        d.signal(libc::SIGHUP)?;
        d.wait_log("reload refused", 2, LOG_TIMEOUT)?;
        std::thread::sleep(PHASE);
        ensure!(shown_weight(&socket, "web", "b2")? == 4, "old config kept");
        Ok(())
    };
    let outcome = run();
    stop.store(true, Ordering::SeqCst);
    // A load thread that could not enter the client's namespace ran no request.
    let entered = joins
        .into_iter()
        .try_for_each(|h| h.join().unwrap_or(Ok(())));
    outcome.with_context(|| d.log())?;
    entered?;

    // Zero failed requests of any kind, in any phase.
    let mut per: HashMap<(Load, usize), HashMap<String, usize>> = HashMap::new();
    for (kind, o) in &loads {
        let o = o.lock().unwrap_or_else(|e| e.into_inner());
        let failed: Vec<_> = o.iter().filter(|(_, r)| r.is_err()).collect();
        println!("{kind:?}: {} requests, {} failed", o.len(), failed.len());
        assert!(
            failed.is_empty(),
            "{kind:?}: failed requests {failed:?}\n{}",
            d.log()
        );
        assert!(o.len() > 50, "{kind:?} ran ({} requests)", o.len());
        for (p, r) in o.iter() {
            if let Ok(name) = r {
                *per.entry((*kind, *p))
                    .or_default()
                    .entry(name.clone())
                    .or_default() += 1;
            }
        }
    }
    for p in 0..4 {
        for kind in [
            Load::L7KeepAlive,
            Load::L7Close,
            Load::L4Close,
            Load::L4Stream,
        ] {
            println!("phase {p} {kind:?}: {:?}", per.get(&(kind, p)));
        }
    }
    // The long-lived L4 stream kept its backend through all reloads.
    let stream: Vec<&String> = per
        .iter()
        .filter(|((k, _), _)| *k == Load::L4Stream)
        .flat_map(|(_, m)| m.keys())
        .collect();
    let mut owners = stream.clone();
    owners.sort();
    owners.dedup();
    assert_eq!(
        owners.len(),
        1,
        "the L4 stream stays on one backend: {owners:?}"
    );
    // The added server takes traffic from both VIPs, and the old keep-alive connection
    // reaches it too.
    for kind in [Load::L7KeepAlive, Load::L7Close, Load::L4Close] {
        let after: usize = (1..4)
            .filter_map(|p| per.get(&(kind, p)).and_then(|m| m.get("b3")))
            .sum();
        assert!(after > 0, "{kind:?}: b3 gets requests after the reload");
        let before = per.get(&(kind, 0)).and_then(|m| m.get("b3")).copied();
        assert_eq!(before, None, "{kind:?}: b3 got nothing before it was added");
    }
    // The weight change: b2 (weight 4 of 6) takes most L7 requests in phases 2 and 3.
    for kind in [Load::L7KeepAlive, Load::L7Close] {
        let m = per.get(&(kind, 2)).cloned().unwrap_or_default();
        let (b1n, b2n) = (
            m.get("b1").copied().unwrap_or(0),
            m.get("b2").copied().unwrap_or(0),
        );
        assert!(b2n > 2 * b1n, "{kind:?}: b2 weight 4 vs b1 weight 1: {m:?}");
    }
    // The listener of `web` was bound once: the reloads kept it.
    assert_eq!(
        d.log().matches("HTTP proxy listening").count(),
        1,
        "{}",
        d.log()
    );
    assert!(d.log().contains("reload refused"), "the log says why");
    assert!(d.stop()?.success());
    drop(backends);
    Ok(())
}
