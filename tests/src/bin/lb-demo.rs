//! `lb-demo`: the seed's two-node HAProxy + Wackamole setup, rebuilt with `lb` in network
//! namespaces, and a walk through the seed's section 7 ("Testing") with a PASS/FAIL line
//! per claim. Run through `scripts/demo.sh` (as root).
//!
//! ```text
//! lb-demo [--keep]   set up, walk through, tear down (--keep: leave it running)
//! lb-demo --down     remove every lbdemo- namespace, process, pin and file (idempotent)
//! lb-demo serve ...  (internal) the demo's backend web server
//! ```
//!
//! Ctrl-C (SIGINT) or SIGTERM at any point tears everything down.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use lb_tests::demo::{
    self, client, server, Node, BRIDGE_NS, CLIENT, DSR_PORT, HTTP1, HTTP2, LB1, LB2, NODES,
    STATE_DIR, UNUSED, VIP, VIP_DSR,
};

/// Health-check interval the demo sets (the import keeps HAProxy's 2 s default).
const INTER_MS: u64 = 500;
/// HAProxy's default `fall`, which the seed keeps.
const FALL: u64 = 3;
/// VRRP advert interval the demo sets.
const ADVERT_MS: u64 = 100;
/// Deadline of one demo request.
const REQ_TIMEOUT: Duration = Duration::from_secs(2);

/// Set by SIGINT/SIGTERM; every wait polls it.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// The error a step returns when the user interrupted the demo.
#[derive(Debug)]
struct Interrupted;

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("interrupted")
    }
}

impl std::error::Error for Interrupted {}

fn check_stop() -> Result<()> {
    if STOP.load(Ordering::SeqCst) {
        return Err(Interrupted.into());
    }
    Ok(())
}

/// Sleeps `d`, waking early (with an error) when interrupted.
fn nap(d: Duration) -> Result<()> {
    let end = Instant::now() + d;
    while Instant::now() < end {
        check_stop()?;
        std::thread::sleep((end - Instant::now()).min(Duration::from_millis(20)));
    }
    Ok(())
}

/// Polls `cond` every 20 ms until it holds; fails after `timeout` or when interrupted.
fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) -> Result<Duration> {
    let start = Instant::now();
    loop {
        if cond() {
            return Ok(start.elapsed());
        }
        check_stop()?;
        if start.elapsed() > timeout {
            bail!("{what}: not within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn say(s: &str) {
    println!("    {s}");
}

fn shell(s: &str) {
    println!("    $ {s}");
}

fn indent(text: &str) {
    for l in text.lines() {
        println!("      {l}");
    }
}

/// The running demo. Dropping it tears everything down unless it was kept.
struct Demo {
    lb: PathBuf,
    me: PathBuf,
    keep: bool,
    lbs: Vec<(Node, Child)>,
    servers: Vec<(Node, Child)>,
    others: Vec<Child>,
}

impl Drop for Demo {
    fn drop(&mut self) {
        if self.keep {
            return;
        }
        println!("\n==> Tearing down");
        match demo::down() {
            Ok(removed) => say(&format!("removed: {}", removed.join(", "))),
            Err(e) => eprintln!("lb-demo: teardown: {e:#} (run scripts/demo.sh --down)"),
        }
        for (_, c) in self.lbs.iter_mut().chain(self.servers.iter_mut()) {
            let _ = c.kill();
            let _ = c.wait();
        }
        for c in &mut self.others {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Demo {
    fn log_path(name: &str) -> PathBuf {
        demo::state_file(&format!("{name}.log"))
    }

    fn config_path(node: &Node) -> PathBuf {
        demo::state_file(&format!("{}.toml", node.name))
    }

    /// Runs `lb ARGS` (outside the namespaces: admin sockets and pins are files).
    fn lb(&self, args: &[&str]) -> Result<(bool, String, String)> {
        let out = demo::run(Command::new(&self.lb).args(args), Duration::from_secs(20))?;
        Ok((
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ))
    }

    fn lb_ok(&self, args: &[&str]) -> Result<String> {
        let (ok, out, err) = self.lb(args)?;
        if !ok {
            bail!("lb {}: {}", args.join(" "), err.trim());
        }
        Ok(out)
    }

    /// The `state=` of a node's VRRP instance via `lb show vrrp`, if it answers.
    fn vrrp_state(&self, node: &Node) -> Option<String> {
        let sock = demo::socket(node).display().to_string();
        let (ok, out, _) = self.lb(&["show", "vrrp", "--socket", &sock]).ok()?;
        ok.then(|| {
            out.split_whitespace()
                .find_map(|w| w.strip_prefix("state="))
                .map(str::to_owned)
        })
        .flatten()
    }

    fn holds(&self, node: &Node, addr: IpAddr) -> bool {
        demo::ip_in(&node.ns(), &["-4", "-o", "addr", "show", "dev", "eth0"])
            .map(|s| {
                s.split_whitespace()
                    .any(|w| w.split('/').next() == Some(addr.to_string().as_str()))
            })
            .unwrap_or(false)
    }

    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(Self::log_path(name)).unwrap_or_default()
    }

    /// The first line of `name`'s log containing `needle`.
    fn log_line(&self, name: &str, needle: &str) -> Option<String> {
        self.log(name)
            .lines()
            .find(|l| l.contains(needle))
            .map(str::to_owned)
    }

    fn start_server(&mut self, node: Node) -> Result<()> {
        let mut cmd = demo::ns_command(&node.ns(), &self.me, &Self::log_path(node.name))?;
        cmd.args(["serve", "--name", node.name, "--dir", STATE_DIR])
            .args(["--listen", "0.0.0.0:80"])
            .args(["--listen", &format!("0.0.0.0:{DSR_PORT}")]);
        let child = cmd.spawn().context("starting the demo web server")?;
        self.servers.push((node, child));
        let addr = SocketAddr::new(node.addr.into(), 80);
        wait_until(
            &format!("{} answering", node.name),
            Duration::from_secs(10),
            || {
                demo::in_ns(&CLIENT.ns(), || {
                    client::get(addr, "/check.txt", None, Duration::from_millis(300)).is_ok()
                })
                .unwrap_or(false)
            },
        )?;
        Ok(())
    }

    fn stop_server(&mut self, node: &Node) -> Result<()> {
        if let Some(i) = self.servers.iter().position(|(n, _)| n.name == node.name) {
            let (_, mut c) = self.servers.remove(i);
            c.kill()?;
            c.wait()?;
        }
        Ok(())
    }

    fn start_lb(&mut self, node: Node) -> Result<()> {
        let log = Self::log_path(node.name);
        let mut cmd = demo::ns_command(&node.ns(), &self.lb, &log)?;
        cmd.arg("run")
            .arg("--config")
            .arg(Self::config_path(&node))
            .env("LB_LOG", "info");
        let mut child = cmd.spawn().context("starting lb run")?;
        let start = Instant::now();
        loop {
            let text = self.log(node.name);
            // Count only this start's line (the log is appended to across restarts).
            if text.matches("VRRP membership started").count()
                > self.lbs.iter().filter(|(n, _)| n.name == node.name).count()
            {
                break;
            }
            if let Some(st) = child.try_wait()? {
                bail!("lb run on {} exited ({st}):\n{text}", node.name);
            }
            if start.elapsed() > Duration::from_secs(20) {
                let _ = child.kill();
                bail!("lb run on {} did not start within 20 s:\n{text}", node.name);
            }
            if let Err(e) = check_stop() {
                self.lbs.push((node, child));
                return Err(e);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.lbs.push((node, child));
        Ok(())
    }

    /// One GET from the client namespace.
    fn get(&self, addr: SocketAddr, cookie: Option<&str>) -> Result<client::Response> {
        demo::in_ns(&CLIENT.ns(), || client::get(addr, "/", cookie, REQ_TIMEOUT))?
    }

    fn get_vip(&self, cookie: Option<&str>) -> Result<client::Response> {
        let r = self.get(SocketAddr::new(VIP.into(), 80), cookie)?;
        if r.status != 200 {
            bail!("status {}: {}", r.status, r.body.trim());
        }
        Ok(r)
    }
}

/// What `lb import` printed, adapted per node: instance, admin socket, priority, a fast
/// advert interval, the `dsr` VIP, faster health checks, and the `dsr` service.
fn node_config(imported: &str, node: &Node, priority: u8) -> Result<String> {
    let mut text = imported.to_string();
    let mut replace = |from: &str, to: &str| -> Result<()> {
        if !text.contains(from) {
            bail!("the imported config has no `{from}`: lb import's output changed");
        }
        text = text.replace(from, to);
        Ok(())
    };
    replace(
        "priority = 100",
        &format!("priority = {priority}\nadvert_interval = \"{ADVERT_MS}ms\""),
    )?;
    replace(
        &format!("vips = [\"{VIP}/24\"]"),
        &format!("vips = [\"{VIP}/24\", \"{VIP_DSR}/32\"]"),
    )?;
    replace(
        "check = true",
        &format!("check = true\ninter = \"{INTER_MS}ms\""),
    )?;
    let head = format!(
        "# Edited for the demo node {name}: see lb-demo.\ninstance = \"{inst}\"\n\n[admin]\nsocket = \"{sock}\"\n\n",
        name = node.name,
        inst = demo::instance(node),
        sock = demo::socket(node).display(),
    );
    let dsr = format!(
        r#"
# Added for the demo: an L4 service forwarded in XDP with direct server return; the
# backends hold {VIP_DSR} on lo and answer the client themselves.
[[service]]
name = "webfarm-dsr"
vip = "{VIP_DSR}"
port = {DSR_PORT}
mode = "dsr"

[[service.server]]
name = "http1"
address = "{h1}"
check = true
inter = "{INTER_MS}ms"

[[service.server]]
name = "http2"
address = "{h2}"
check = true
inter = "{INTER_MS}ms"
"#,
        h1 = HTTP1.addr,
        h2 = HTTP2.addr,
    );
    Ok(format!("{head}{text}{dsr}"))
}

/// Builds the namespaces, the bridge, the backends, the configs and the two lb nodes.
fn setup(d: &mut Demo) -> Result<()> {
    println!(
        "==> Setting up the seed's network in namespaces (prefix {})",
        demo::PREFIX
    );
    std::fs::create_dir_all(demo::state_file("seed"))?;
    std::fs::write(demo::state_file("seed/haproxy.cfg"), demo::SEED_HAPROXY)?;
    std::fs::write(
        demo::state_file("seed/wackamole.conf"),
        demo::SEED_WACKAMOLE,
    )?;

    demo::ip(&["netns", "add", BRIDGE_NS])?;
    demo::ip_in(BRIDGE_NS, &["link", "set", "lo", "up"])?;
    demo::ip_in(
        BRIDGE_NS,
        &[
            "link",
            "add",
            "br0",
            "type",
            "bridge",
            "mcast_snooping",
            "0",
        ],
    )?;
    demo::ip_in(BRIDGE_NS, &["link", "set", "br0", "up"])?;
    for node in NODES {
        check_stop()?;
        let ns = node.ns();
        let port = node.port();
        demo::ip(&["netns", "add", &ns])?;
        demo::ip_in(&ns, &["link", "set", "lo", "up"])?;
        demo::ip(&[
            "link", "add", "eth0", "netns", &ns, "type", "veth", "peer", "name", &port, "netns",
            BRIDGE_NS,
        ])?;
        demo::ip_in(BRIDGE_NS, &["link", "set", &port, "master", "br0", "up"])?;
        demo::ip_in(&ns, &["link", "set", "eth0", "up"])?;
        demo::ip_in(
            &ns,
            &["addr", "add", &format!("{}/24", node.addr), "dev", "eth0"],
        )?;
        // Full checksums on frames XDP_TX forwards, as from a real NIC.
        demo::exec_in(&ns, &["ethtool", "-K", "eth0", "tx", "off"])?;
        say(&format!("{:<7} {:<14} netns {ns}", node.name, node.addr));
    }
    say(&format!(
        "VIPs: {VIP} (L7 webfarm, port 80), {VIP_DSR} (L4 dsr, port {DSR_PORT})"
    ));
    for node in [HTTP1, HTTP2] {
        let ns = node.ns();
        // dsr backends hold the VIP on lo and must not answer ARP for it.
        demo::ip_in(&ns, &["addr", "add", &format!("{VIP_DSR}/32"), "dev", "lo"])?;
        for (k, v) in [
            ("net.ipv4.conf.all.arp_ignore", "1"),
            ("net.ipv4.conf.all.arp_announce", "2"),
        ] {
            demo::sysctl(&ns, k, v)?;
        }
        d.start_server(node)?;
    }
    say("backends: lb-demo's own web server on :80 and :8080 in http1 and http2");

    println!("\n==> Translating the seed's haproxy.cfg + wackamole.conf with lb import");
    let seed = demo::state_file("seed");
    let (h, w) = (seed.join("haproxy.cfg"), seed.join("wackamole.conf"));
    let mut args: Vec<String> = vec![
        "import".into(),
        h.display().to_string(),
        "--wackamole".into(),
        w.display().to_string(),
        "--interface".into(),
        "eth0".into(),
    ];
    for last in [99, 100, 101, 102, 103] {
        args.push("--map".into());
        args.push(format!("192.168.0.{last}=198.18.0.{last}"));
    }
    let imported_path = demo::state_file("imported.toml");
    shell(&format!(
        "lb {} > {}",
        args.join(" "),
        imported_path.display()
    ));
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let (ok, imported, notes) = d.lb(&argv)?;
    if !ok {
        bail!("lb import failed: {notes}");
    }
    std::fs::write(&imported_path, &imported)?;
    std::fs::write(demo::state_file("import-notes.txt"), &notes)?;
    say(&format!(
        "{} source lines not translated as written (Spread, logging, stats page): see {}",
        notes.lines().filter(|l| l.starts_with("  ")).count(),
        demo::state_file("import-notes.txt").display()
    ));
    say("then a small edit per node (what a user does after importing):");
    say(&format!(
        "  instance, [admin] socket; priority 150 on lb1, 100 on lb2; advert_interval {ADVERT_MS}ms;"
    ));
    say(&format!(
        "  inter {INTER_MS}ms on the servers; the dsr VIP {VIP_DSR}/32 in vips; a dsr service on :{DSR_PORT}"
    ));
    for (node, prio) in [(LB1, 150), (LB2, 100)] {
        let path = Demo::config_path(&node);
        std::fs::write(&path, node_config(&imported, &node, prio)?)?;
        let p = path.display().to_string();
        shell(&format!("lb check --config {p}"));
        indent(d.lb_ok(&["check", "--config", &p])?.trim());
    }

    // XDP_TX on a veth needs an XDP program on its peer: pass-through ones on the lb
    // nodes' bridge ports (a real NIC needs nothing of the kind).
    for node in [LB1, LB2] {
        let port = node.port();
        let mut cmd =
            demo::ns_command(BRIDGE_NS, &d.lb, &Demo::log_path(&format!("decap-{port}")))?;
        cmd.args(["decap", "--interface", &port, "--vip", &UNUSED.to_string()]);
        d.others.push(cmd.spawn().context("starting lb decap")?);
    }
    nap(Duration::from_millis(300))?;

    println!("\n==> Starting lb on lb1, then on lb2 (the same config but the priority)");
    shell(&format!(
        "nsenter --net=/run/netns/{} lb run --config {}",
        LB1.ns(),
        Demo::config_path(&LB1).display()
    ));
    d.start_lb(LB1)?;
    wait_until("lb1 MASTER", Duration::from_secs(10), || {
        d.vrrp_state(&LB1).as_deref() == Some("MASTER")
    })?;
    shell(&format!(
        "nsenter --net=/run/netns/{} lb run --config {}",
        LB2.ns(),
        Demo::config_path(&LB2).display()
    ));
    d.start_lb(LB2)?;
    wait_until("lb2 BACKUP", Duration::from_secs(10), || {
        d.vrrp_state(&LB2).as_deref() == Some("BACKUP")
    })?;
    Ok(())
}

fn step1(d: &Demo) -> Result<String> {
    for node in [LB1, LB2] {
        let sock = demo::socket(&node).display().to_string();
        shell(&format!("lb show vrrp --socket {sock}"));
        let out = d.lb_ok(&["show", "vrrp", "--socket", &sock])?;
        let short: Vec<&str> = out
            .split_whitespace()
            .filter(|w| {
                ["instance=", "state=", "priority=", "vips="]
                    .iter()
                    .any(|p| w.starts_with(p))
            })
            .collect();
        indent(&short.join(" "));
        shell(&format!("ip -n {} -br -4 addr show eth0", node.ns()));
        indent(demo::ip_in(&node.ns(), &["-br", "-4", "addr", "show", "eth0"])?.trim());
    }
    let (s1, s2) = (d.vrrp_state(&LB1), d.vrrp_state(&LB2));
    let (v1, v2) = (d.holds(&LB1, VIP.into()), d.holds(&LB2, VIP.into()));
    if s1.as_deref() != Some("MASTER") || s2.as_deref() != Some("BACKUP") || !v1 || v2 {
        bail!("lb1 {s1:?} holds VIP: {v1}; lb2 {s2:?} holds VIP: {v2}");
    }
    Ok("lb1 is MASTER and holds 198.18.0.99, lb2 is BACKUP".into())
}

fn via(r: &client::Response) -> &'static str {
    match r.peer_ip() {
        Some(ip) if ip == LB1.addr.to_string() => "lb1",
        Some(ip) if ip == LB2.addr.to_string() => "lb2",
        _ => "?",
    }
}

fn step2(d: &Demo) -> Result<String> {
    shell(&format!(
        "ip netns exec {} curl -s http://{VIP}/   (x4)",
        CLIENT.ns()
    ));
    let mut seen = Vec::new();
    for i in 1..=4 {
        let r = d.get_vip(None)?;
        let s = r.server().unwrap_or("?").to_string();
        say(&format!(
            "request {i}: answered by {s} (proxied by {})",
            via(&r)
        ));
        seen.push(s);
    }
    let alternate = seen.windows(2).all(|w| w[0] != w[1]);
    if !alternate || !seen.iter().any(|s| s == "http1") || !seen.iter().any(|s| s == "http2") {
        bail!("no round robin: {seen:?}");
    }
    Ok("requests alternate between http1 and http2 (roundrobin)".into())
}

fn expected_server(cookie: &str) -> Option<&'static str> {
    match cookie.split_once('~').map(|(p, _)| p) {
        Some("A") => Some("http1"),
        Some("B") => Some("http2"),
        _ => None,
    }
}

fn step3(d: &Demo) -> Result<(String, String)> {
    let first = d.get_vip(None)?;
    let cookie = first
        .session_cookie()
        .context("the first response set no JSESSIONID")?;
    let owner = expected_server(&cookie)
        .with_context(|| format!("JSESSIONID={cookie} has no A~/B~ prefix"))?;
    say(&format!(
        "first visit: {} answered, Set-Cookie: JSESSIONID={cookie}",
        first.server().unwrap_or("?")
    ));
    if first.server() != Some(owner) {
        bail!(
            "the cookie prefix names {owner}, but {:?} answered",
            first.server()
        );
    }
    shell(&format!(
        "ip netns exec {} curl -s -b JSESSIONID={cookie} http://{VIP}/   (x4)",
        CLIENT.ns()
    ));
    let raw = cookie.split_once('~').map(|(_, v)| v).unwrap_or_default();
    let mut last = None;
    for i in 1..=4 {
        let r = d.get_vip(Some(&cookie))?;
        say(&format!(
            "request {i} with the cookie: {}",
            r.server().unwrap_or("?")
        ));
        if r.server() != Some(owner) {
            bail!(
                "request {i} with JSESSIONID={cookie} went to {:?}",
                r.server()
            );
        }
        last = Some(r);
    }
    let last = last.context("no response")?;
    say(&format!("what {owner} saw on the last request:"));
    for k in ["peer", "x_forwarded_for", "cookie"] {
        indent(&format!("{k}={}", last.field(k).unwrap_or("-")));
    }
    if last.field("cookie") != Some(&format!("JSESSIONID={raw}")) {
        bail!(
            "the backend saw cookie {:?}, not JSESSIONID={raw}",
            last.field("cookie")
        );
    }
    if last.field("x_forwarded_for") != Some(&CLIENT.addr.to_string()) {
        bail!("X-Forwarded-For is {:?}", last.field("x_forwarded_for"));
    }
    let log = std::fs::read_to_string(server::access_log(Path::new(STATE_DIR), owner))
        .unwrap_or_default();
    let views = log.lines().count();
    say(&format!(
        "{owner}'s access log: {views} page views, no /check.txt lines (tail -2):"
    ));
    let lines: Vec<&str> = log.lines().collect();
    indent(&lines[lines.len().saturating_sub(2)..].join("\n"));
    if views == 0 || log.contains("/check.txt") {
        bail!(
            "access log: {views} views, check.txt logged: {}",
            log.contains("/check.txt")
        );
    }
    Ok((
        format!(
            "JSESSIONID={cookie} sticks to {owner}; it sees JSESSIONID={raw} and X-Forwarded-For {}",
            CLIENT.addr
        ),
        cookie,
    ))
}

fn step4(d: &Demo) -> Result<String> {
    shell(&format!(
        "ip netns exec {} curl -s http://{VIP_DSR}:{DSR_PORT}/   (x20, new connections)",
        CLIENT.ns()
    ));
    let addr = SocketAddr::new(VIP_DSR.into(), DSR_PORT);
    let mut count = std::collections::BTreeMap::<String, usize>::new();
    let mut last = None;
    for _ in 0..20 {
        let r = d.get(addr, None)?;
        if r.status != 200 {
            bail!("status {}", r.status);
        }
        let client = CLIENT.addr.to_string();
        if r.peer_ip() != Some(client.as_str()) {
            bail!("the backend saw peer {:?}, not the client", r.peer_ip());
        }
        if r.field("local") != Some(&addr.to_string()) {
            bail!("the backend's local address is {:?}", r.field("local"));
        }
        *count
            .entry(r.server().unwrap_or("?").to_string())
            .or_default() += 1;
        last = Some(r);
    }
    say(&format!("answered by: {count:?}"));
    if let Some(r) = last {
        say(&format!(
            "the backend saw peer={} local={}: the connection is the client's own, so the",
            r.field("peer").unwrap_or("-"),
            r.field("local").unwrap_or("-")
        ));
        say("backend's replies go straight to the client; lb1 only rewrote MACs in XDP");
    }
    let cfg = Demo::config_path(&LB1).display().to_string();
    shell(&format!("lb stats --config {cfg}"));
    let stats = d.lb_ok(&["stats", "--config", &cfg])?;
    indent(
        &stats
            .lines()
            .filter(|l| !l.trim().is_empty())
            .take(6)
            .collect::<Vec<_>>()
            .join("\n"),
    );
    if count.len() != 2 {
        bail!("only {count:?} answered");
    }
    Ok(format!(
        "the dsr VIP {VIP_DSR}:{DSR_PORT} is served by both backends, replies straight from them"
    ))
}

fn step5(d: &mut Demo) -> Result<String> {
    let down_line = "Server webfarm/webA is DOWN";
    let up_line = "Server webfarm/webA is UP";
    say("stopping http1's web server: connections to it are refused from now on");
    let t0 = Instant::now();
    d.stop_server(&HTTP1)?;
    let (mut sent, mut failed) = (0, 0);
    let mut down_after = None;
    // Bounded: at most 10 s of requests, one every 100 ms.
    for _ in 0..100 {
        check_stop()?;
        if down_after.is_none() && d.log_line("lb1", down_line).is_some() {
            down_after = Some(t0.elapsed());
        }
        if down_after.is_some() && sent >= 10 {
            break;
        }
        sent += 1;
        match d.get_vip(None) {
            Ok(r) if r.server() == Some("http2") => {}
            Ok(r) => {
                failed += 1;
                say(&format!("unexpected answer from {:?}", r.server()));
            }
            Err(e) => {
                failed += 1;
                say(&format!("request failed: {e:#}"));
            }
        }
        nap(Duration::from_millis(100))?;
    }
    say(&format!(
        "{sent} requests while http1 was down: {failed} failed (retries + redispatch)"
    ));
    let took = down_after.context("lb1 never logged webA DOWN")?;
    say(&format!(
        "lb1's log ({:.1} s after the stop; fall {FALL} x inter {INTER_MS} ms = {:.1} s):",
        took.as_secs_f64(),
        (FALL * INTER_MS) as f64 / 1000.0
    ));
    for l in d.log("lb1").lines().filter(|l| l.contains("is DOWN")) {
        indent(l.trim());
    }
    let bound = Duration::from_millis((FALL + 1) * INTER_MS + 1000);
    if failed > 0 {
        bail!("{failed} of {sent} requests failed");
    }
    if took > bound {
        bail!("DOWN after {took:?}, more than {bound:?}");
    }
    say("starting http1's web server again");
    let t1 = Instant::now();
    d.start_server(HTTP1)?;
    wait_until("webA UP", Duration::from_secs(10), || {
        d.log_line("lb1", up_line).is_some()
    })?;
    say(&format!(
        "lb1's log ({:.1} s later):",
        t1.elapsed().as_secs_f64()
    ));
    for l in d.log("lb1").lines().filter(|l| l.contains("is UP")) {
        indent(l.trim());
    }
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..4 {
        seen.insert(d.get_vip(None)?.server().unwrap_or("?").to_string());
    }
    say(&format!("4 more requests answered by {seen:?}"));
    if seen.len() != 2 {
        bail!("http1 is not back in the rotation: {seen:?}");
    }
    Ok(format!(
        "no request failed with http1 stopped; DOWN after {:.1} s, UP again after restart",
        took.as_secs_f64()
    ))
}

/// One request of the failover load.
struct Sample {
    done: Duration,
    via: &'static str,
    ok: bool,
}

fn step6(d: &mut Demo, cookie: &str) -> Result<String> {
    let owner = expected_server(cookie).unwrap_or("?");
    const COUNT: usize = 80;
    const PERIOD: Duration = Duration::from_millis(40);
    say(&format!(
        "a request every {} ms from the client ({COUNT} in all); SIGKILL lb1 after 0.8 s",
        PERIOD.as_millis()
    ));
    let (tx, rx) = mpsc::channel::<Sample>();
    let start = Instant::now();
    let ns = CLIENT.ns();
    let loader = std::thread::spawn(move || {
        let _ = demo::in_ns(&ns, || {
            let mut handles = Vec::new();
            for i in 0..COUNT {
                if STOP.load(Ordering::SeqCst) {
                    break;
                }
                let at = start + PERIOD * i as u32;
                if let Some(w) = at.checked_duration_since(Instant::now()) {
                    std::thread::sleep(w);
                }
                let tx = tx.clone();
                handles.push(std::thread::spawn(move || {
                    let r = client::get(SocketAddr::new(VIP.into(), 80), "/", None, REQ_TIMEOUT);
                    let (ok, v) = match &r {
                        Ok(r) if r.status == 200 => (true, via(r)),
                        _ => (false, "-"),
                    };
                    let _ = tx.send(Sample {
                        done: start.elapsed(),
                        via: v,
                        ok,
                    });
                }));
            }
            for h in handles {
                let _ = h.join();
            }
        });
    });
    nap(Duration::from_millis(800))?;
    let killed_at = start.elapsed();
    if let Some((_, c)) = d.lbs.iter_mut().find(|(n, _)| n.name == "lb1") {
        c.kill()?; // SIGKILL: a crash, no goodbye advert
        c.wait()?;
    }
    say(&format!(
        "{:.2} s: kill -9 lb1's lb (a crash: no priority-0 advert)",
        killed_at.as_secs_f64()
    ));
    let _ = loader.join();
    let mut samples: Vec<Sample> = rx.try_iter().collect();
    samples.sort_by_key(|s| s.done);
    let failed = samples.iter().filter(|s| !s.ok).count();
    let last_lb1 = samples
        .iter()
        .filter(|s| s.via == "lb1")
        .map(|s| s.done)
        .max();
    let first_lb2 = samples
        .iter()
        .filter(|s| s.via == "lb2" && Some(s.done) > last_lb1)
        .map(|s| s.done)
        .min();
    if let Some(l) = d.log("lb2").lines().find(|l| l.contains("takeover_us")) {
        say("lb2's log:");
        indent(l.trim());
    }
    let (Some(a), Some(b)) = (last_lb1, first_lb2) else {
        bail!("no answers via lb1 ({last_lb1:?}) or lb2 ({first_lb2:?}) after the kill");
    };
    let gap = b - a;
    say(&format!(
        "last answer via lb1 at {:.2} s, first via lb2 at {:.2} s: gap {:.0} ms",
        a.as_secs_f64(),
        b.as_secs_f64(),
        gap.as_secs_f64() * 1000.0
    ));
    say(&format!(
        "{failed} of {} requests failed (those in flight to lb1 or sent before lb2's gratuitous ARP)",
        samples.len()
    ));
    let s2 = d.vrrp_state(&LB2);
    let v2 = d.holds(&LB2, VIP.into());
    shell(&format!("ip -n {} -br -4 addr show eth0", LB2.ns()));
    indent(demo::ip_in(&LB2.ns(), &["-br", "-4", "addr", "show", "eth0"])?.trim());
    let r = d.get_vip(Some(cookie))?;
    say(&format!(
        "JSESSIONID={cookie} through lb2: answered by {} (proxied by {})",
        r.server().unwrap_or("?"),
        via(&r)
    ));
    if s2.as_deref() != Some("MASTER") || !v2 {
        bail!("lb2 is {s2:?}, holds the VIP: {v2}");
    }
    if gap > Duration::from_secs(3) {
        bail!("the takeover took {gap:?}");
    }
    if r.server() != Some(owner) || via(&r) != "lb2" {
        bail!("the session went to {:?} via {}", r.server(), via(&r));
    }
    Ok(format!(
        "lb2 took over in {:.0} ms ({failed} requests failed); the session still sticks to {owner}",
        gap.as_secs_f64() * 1000.0
    ))
}

fn step7(d: &Demo) -> Result<String> {
    let sock = demo::socket(&LB2).display().to_string();
    shell(&format!("lb show stat --socket {sock}"));
    let csv = d.lb_ok(&["show", "stat", "--socket", &sock])?;
    // HAProxy's 100 columns; the first ones fit a terminal.
    for l in csv.lines() {
        let cols: Vec<&str> = l.split(',').collect();
        indent(&format!("{},...", cols[..cols.len().min(18)].join(",")));
    }
    let has = |p: &str| csv.lines().any(|l| l.starts_with(p));
    if !csv.starts_with("# pxname,svname") || !has("webfarm,webA,") || !has("webfarm,webB,") {
        bail!("unexpected CSV");
    }
    say(&format!("admin socket of the surviving node: {sock}"));
    say(&format!("  lb show servers state webfarm --socket {sock}"));
    say(&format!(
        "  lb set server webfarm/webA state drain --socket {sock}"
    ));
    // The seed's stats page, where HAProxy had it, with the seed's credentials.
    let url = format!("http://{VIP}{}", demo::STATS_URI);
    let (user, password) = demo::STATS_AUTH.split_once(':').unwrap_or_default();
    say(&format!(
        "stats page: {url}  user {user}  password {password}"
    ));
    let addr = SocketAddr::new(VIP.into(), 80);
    let denied = demo::in_ns(&CLIENT.ns(), || {
        client::get(addr, demo::STATS_URI, None, REQ_TIMEOUT)
    })??;
    let page = demo::in_ns(&CLIENT.ns(), || {
        client::get_basic(addr, demo::STATS_URI, demo::STATS_AUTH, REQ_TIMEOUT)
    })??;
    say(&format!(
        "GET {url} without credentials: {}; with them: {} ({} bytes of HTML)",
        denied.status,
        page.status,
        page.body.len()
    ));
    if denied.status != 401 || page.status != 200 {
        bail!(
            "stats page: {} without, {} with credentials",
            denied.status,
            page.status
        );
    }
    if !page.body.contains("webA") || !page.body.contains("webB") || !page.body.contains("MASTER") {
        bail!("the stats page lacks the servers or lb2's MASTER role");
    }
    say(&format!(
        "  also {url};csv, {url};json (same figures as lb show stat); open it in a browser with --keep"
    ));
    Ok("lb2's stats page answers 200 with the seed's credentials (401 without); lb show stat prints HAProxy's CSV".into())
}

fn print_keep() {
    println!("\n==> Kept running (lb1's lb was killed in step 6; lb2 serves). Poke it:");
    for c in demo::poke_commands() {
        shell(&c);
    }
    println!("    configs and logs: {STATE_DIR}/");
    println!("\n    Tear it all down:  scripts/demo.sh --down");
}

fn lb_path() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("LB_BIN").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    let me = std::env::current_exe()?;
    let p = me
        .parent()
        .context("no directory for the running executable")?
        .join("lb");
    if !p.is_file() {
        bail!(
            "the lb binary is missing at {}: build it with cargo xtask build (or set LB_BIN)",
            p.display()
        );
    }
    Ok(p)
}

fn walkthrough(keep: bool) -> Result<bool> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("run as root: the demo creates network namespaces and loads XDP programs");
    }
    let left = demo::leftovers();
    if !left.is_empty() {
        bail!(
            "a demo is still set up ({}): remove it with scripts/demo.sh --down",
            left.join(", ")
        );
    }
    let handler = on_signal as extern "C" fn(libc::c_int);
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe { libc::signal(sig, handler as libc::sighandler_t) };
    }
    let mut d = Demo {
        lb: lb_path()?,
        me: std::env::current_exe()?,
        keep: false,
        lbs: Vec::new(),
        servers: Vec::new(),
        others: Vec::new(),
    };
    if let Err(e) = setup(&mut d) {
        if e.is::<Interrupted>() || STOP.load(Ordering::SeqCst) {
            println!("\ninterrupted");
            return Ok(false);
        }
        println!("FAIL setup: {e:#}");
        return Ok(false);
    }

    let titles = [
        "lb1 is MASTER and holds the VIP, lb2 is BACKUP",
        "requests from the client alternate between http1 and http2",
        "a cookie session sticks to one server",
        "the L4 dsr VIP serves from both backends",
        "stop http1: traffic continues, the health check marks it DOWN, then UP",
        "kill lb1: lb2 takes over",
        "statistics from the surviving node",
    ];
    let mut passed = 0;
    let mut cookie = String::new();
    for (i, title) in titles.iter().enumerate() {
        let n = i + 1;
        if STOP.load(Ordering::SeqCst) {
            break;
        }
        println!("\n==> Step {n}: {title}");
        let r = match n {
            1 => step1(&d),
            2 => step2(&d),
            3 => step3(&d).map(|(s, c)| {
                cookie = c;
                s
            }),
            4 => step4(&d),
            5 => step5(&mut d),
            6 if cookie.is_empty() => Err(anyhow::anyhow!("no session cookie from step 3")),
            6 => step6(&mut d, &cookie),
            _ => step7(&d),
        };
        match r {
            Ok(msg) => {
                passed += 1;
                println!("PASS step {n}: {msg}");
            }
            Err(e) if e.is::<Interrupted>() || STOP.load(Ordering::SeqCst) => break,
            Err(e) => println!("FAIL step {n}: {e:#}"),
        }
    }
    if STOP.load(Ordering::SeqCst) {
        println!("\ninterrupted");
        return Ok(false);
    }
    println!("\n==> {passed} of {} steps passed", titles.len());
    if keep {
        d.keep = true;
        print_keep();
    }
    Ok(passed == titles.len())
}

fn usage() -> &'static str {
    "usage: lb-demo [--keep] | --down\n\
     \n\
     The seed's two-node HAProxy + Wackamole setup, rebuilt with lb in network namespaces\n\
     (prefix lbdemo-), and a walk through the seed's tests. Run as root, normally through\n\
     scripts/demo.sh.\n\
     \n\
       --keep   leave everything running afterwards, and print how to poke it\n\
       --down   remove every lbdemo- namespace, process, pinned map and file"
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("serve") {
        return match server::ServeOptions::parse(&args[1..]).and_then(server::serve) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("lb-demo serve: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    let (mut keep, mut down) = (false, false);
    for a in &args {
        match a.as_str() {
            "--keep" => keep = true,
            "--down" => down = true,
            "-h" | "--help" => {
                println!("{}", usage());
                return ExitCode::SUCCESS;
            }
            _ => {
                eprintln!("lb-demo: unknown argument {a:?}\n{}", usage());
                return ExitCode::from(2);
            }
        }
    }
    if down {
        return match demo::down() {
            Ok(r) if r.is_empty() => {
                println!("lb-demo: nothing to remove");
                ExitCode::SUCCESS
            }
            Ok(r) => {
                println!("lb-demo: removed {}", r.join(", "));
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("lb-demo: --down: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    match walkthrough(keep) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) if STOP.load(Ordering::SeqCst) => ExitCode::from(130),
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("lb-demo: {e:#}");
            ExitCode::FAILURE
        }
    }
}
