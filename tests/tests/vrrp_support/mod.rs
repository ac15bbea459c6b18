//! Shared pieces of the VRRP tests: a lab (client, lb1, lb2 on one bridge), `lb` and
//! keepalived nodes with the same timers, a tiny HTTP server per node that answers with
//! the node's name, and a bounded client load that records who answered when.
//!
//! Every namespace and process is owned by a value whose `Drop` removes it, so a failing
//! assertion still cleans up; pinned maps and status files of the `lb` instances are
//! removed by [`Lab`]'s `Drop`.

#![allow(dead_code)] // each test file uses a different subset

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{mpsc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use lb_tests::netns::{wait_for, Host, Netns, NsProcess, Topology};
use lb_tests::require;

/// Port the per-node HTTP servers listen on (inside private namespaces: no collisions).
pub const HTTP_PORT: u16 = 8080;
/// Last octet of the VIP in the lab's /24.
pub const VIP_OCTET: u8 = 99;
/// Virtual router id used unless a test picks another.
pub const VRID: u8 = 51;

/// Host indexes in the lab.
pub const CLIENT: usize = 0;
/// The higher-priority node.
pub const LB1: usize = 1;
/// The lower-priority node.
pub const LB2: usize = 2;

/// One lab at a time per test binary: the timing these tests measure (takeover within
/// tens of milliseconds) is not worth measuring while another lab competes for the CPUs.
static SERIAL: Mutex<()> = Mutex::new(());
/// Numbers keepalived runs, for their pid file directories.
static KA_STARTS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// A client, two load balancer nodes, and optionally more hosts, on one bridge.
pub struct Lab {
    pub topo: Topology,
    pub dir: PathBuf,
    instances: Vec<String>,
    _serial: MutexGuard<'static, ()>,
}

impl Lab {
    /// Builds the topology; `hosts` >= 3.
    pub fn new(prefix: &str, hosts: usize) -> Result<Lab> {
        Self::build(prefix, hosts, false)
    }

    /// [`Lab::new`] with IPv6 addresses (2001:db8:0:S::N/64) as well.
    pub fn new_v6(prefix: &str, hosts: usize) -> Result<Lab> {
        Self::build(prefix, hosts, true)
    }

    fn build(prefix: &str, hosts: usize, ipv6: bool) -> Result<Lab> {
        let serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let topo = Topology::builder(prefix).hosts(hosts).ipv6(ipv6).build()?;
        Self::finish(topo, serial)
    }

    /// A lab on a topology the caller built (host 0 client, 1 lb1, 2 lb2, then others).
    pub fn with_topology(topo: Topology) -> Result<Lab> {
        let serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        Self::finish(topo, serial)
    }

    fn finish(topo: Topology, serial: MutexGuard<'static, ()>) -> Result<Lab> {
        let dir = std::env::temp_dir().join(format!("{}-files", topo.host(LB1).ns().name()));
        std::fs::create_dir_all(&dir)?;
        Ok(Lab {
            topo,
            dir,
            instances: Vec::new(),
            _serial: serial,
        })
    }

    pub fn host(&self, i: usize) -> &Host {
        self.topo.host(i)
    }

    pub fn ns(&self, i: usize) -> &Netns {
        self.topo.host(i).ns()
    }

    /// The VIP: .99 in the lab's /24.
    pub fn vip(&self) -> Ipv4Addr {
        let o = self.host(CLIENT).ipv4().octets();
        Ipv4Addr::new(o[0], o[1], o[2], VIP_OCTET)
    }

    /// The IPv6 VIP: ::99 in the lab's /64.
    pub fn vip6(&self) -> std::net::Ipv6Addr {
        let s = self
            .host(CLIENT)
            .ipv6()
            .map(|a| a.segments())
            .unwrap_or_default();
        std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, u16::from(VIP_OCTET))
    }

    /// The VIP a node config uses, with its prefix length.
    fn vip_cidr(&self, node: &NodeOpts) -> (String, String) {
        if node.ipv6 {
            (self.vip6().to_string(), format!("{}/64", self.vip6()))
        } else {
            (self.vip().to_string(), format!("{}/24", self.vip()))
        }
    }

    /// Starts `python3 -m http.server` in host `i`, answering `GET /node` with `name`.
    pub fn start_http(&self, i: usize, name: &str) -> Result<NsProcess> {
        let www = self.dir.join(format!("www{i}"));
        std::fs::create_dir_all(&www)?;
        std::fs::write(www.join("node"), name)?;
        let mut cmd = self.ns(i).command("python3");
        cmd.args([
            "-m",
            "http.server",
            &HTTP_PORT.to_string(),
            "--bind",
            "0.0.0.0",
            "--directory",
        ])
        .arg(&www)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        let p = NsProcess::spawn(cmd)?;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, HTTP_PORT));
        wait_for(
            || {
                self.ns(i)
                    .run(|| TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok())
                    .unwrap_or(false)
            },
            Duration::from_secs(10),
        )
        .context("http server did not come up")?;
        Ok(p)
    }

    /// Writes an `lb` config for host `i` and starts `lb run` in its namespace.
    pub fn start_lb(&mut self, i: usize, node: &NodeOpts) -> Result<NsProcess> {
        let instance = self.ns(i).name().replace('.', "_");
        let text = self.lb_config(&instance, node);
        self.start_lb_config(i, &text)
    }

    /// Starts `lb run` in host `i` with a config text of the caller's; its `instance` must
    /// be the host's namespace name (as [`Lab::lb_config`] makes it), so cleanup finds it.
    pub fn start_lb_config(&mut self, i: usize, text: &str) -> Result<NsProcess> {
        let instance = self.ns(i).name().replace('.', "_");
        let cfg = self.dir.join(format!("lb{i}.toml"));
        std::fs::write(&cfg, text)?;
        if !self.instances.contains(&instance) {
            self.instances.push(instance);
        }
        let log = std::fs::File::create(self.dir.join(format!("lb{i}.log")))?;
        let mut cmd = self.ns(i).command_net_only(require::lb_bin())?;
        cmd.args(["run", "-c"])
            .arg(&cfg)
            .env("LB_LOG", "info,lb::vrrp=debug")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        NsProcess::spawn(cmd)
    }

    /// Starts `lb run` in host `i` with [`Lab::lb_config`] plus `services` (more
    /// `[[service]]` tables) and `vrrp` (more keys of the `[[vrrp]]` table).
    pub fn start_lb_with(
        &mut self,
        i: usize,
        node: &NodeOpts,
        services: &str,
        vrrp: &str,
    ) -> Result<NsProcess> {
        let text = self.lb_config_with(i, node, services, vrrp);
        self.start_lb_config(i, &text)
    }

    /// [`Lab::lb_config`] for host `i` with extra services and `[[vrrp]]` keys.
    pub fn lb_config_with(&self, i: usize, node: &NodeOpts, services: &str, vrrp: &str) -> String {
        let instance = self.ns(i).name().replace('.', "_");
        let text = self.lb_config(&instance, node);
        let text = text.replacen("[[vrrp]]", &format!("{services}\n[[vrrp]]"), 1);
        format!("{text}{vrrp}\n")
    }

    /// Rewrites host `i`'s config file (for a reload).
    pub fn write_lb_config(&self, i: usize, text: &str) -> Result<()> {
        std::fs::write(self.dir.join(format!("lb{i}.toml")), text)?;
        Ok(())
    }

    /// Runs `lb ARGS --socket <host i's admin socket>`; (success, stdout + stderr).
    pub fn lb_cli(&self, i: usize, args: &[&str]) -> Result<(bool, String)> {
        let instance = self.ns(i).name().replace('.', "_");
        let sock = format!("/run/lb/{instance}.sock");
        let out = std::process::Command::new(require::lb_bin())
            .args(args)
            .args(["--socket", &sock])
            .output()
            .context("running lb")?;
        Ok((
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        ))
    }

    /// The status fields of `lb` instance `name` on host `i`.
    pub fn lb_status_of(&self, i: usize, name: &str) -> BTreeMap<String, String> {
        let instance = self.ns(i).name().replace('.', "_");
        let path = Path::new("/run/lb").join(instance).join("vrrp.status");
        let needle = format!("instance={name} ");
        std::fs::read_to_string(path)
            .ok()
            .and_then(|t| t.lines().find(|l| l.starts_with(&needle)).map(parse_line))
            .unwrap_or_default()
    }

    /// The `[[vrrp]]` section of the failover tests that carry a service of their own:
    /// instance `web` on `eth0` with [`VRID`], the lab's VIP/24, adverts every 100 ms.
    pub fn vrrp_section(&self, priority: u8) -> String {
        format!(
            r#"
[[vrrp]]
name = "web"
interface = "eth0"
vrid = {VRID}
priority = {priority}
advert_interval = "100ms"
vips = ["{vip}/24"]
"#,
            vip = self.vip(),
        )
    }

    /// The `lb` config text for a node.
    pub fn lb_config(&self, instance: &str, node: &NodeOpts) -> String {
        let peers: Vec<String> = node
            .unicast_peers
            .iter()
            .map(|p| format!("\"{p}\""))
            .collect();
        format!(
            r#"instance = "{instance}"
[xdp]
interface = "eth0"

[[service]]
name = "web"
vip = "{vip}"
port = {HTTP_PORT}
mode = "pass"

[[vrrp]]
name = "web"
interface = "eth0"
vrid = {vrid}
priority = {prio}
advert_interval = "{ms}ms"
preempt = {preempt}
vips = ["{cidr}"]
unicast_peers = [{peers}]
"#,
            vip = self.vip_cidr(node).0,
            cidr = self.vip_cidr(node).1,
            vrid = node.vrid,
            prio = node.priority,
            ms = node.interval_ms,
            preempt = node.preempt,
            peers = peers.join(", "),
        )
    }

    /// Writes a keepalived config with the same timers and starts keepalived (VRRP only).
    pub fn start_keepalived(&self, i: usize, node: &NodeOpts) -> Result<NsProcess> {
        // A fresh directory per start: a killed keepalived's VRRP child may linger as a
        // zombie (when nothing reaps orphans), and keepalived refuses to start while its
        // pid files name a process that exists.
        let n = KA_STARTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let d = self.dir.join(format!("ka{i}-{n}"));
        std::fs::create_dir_all(&d)?;
        let conf = d.join("keepalived.conf");
        let interval = format!("{}", node.interval_ms as f64 / 1000.0);
        let nopreempt = if node.preempt { "" } else { "  nopreempt\n" };
        std::fs::write(
            &conf,
            format!(
                "global_defs {{\n  vrrp_version 3\n  router_id lb{i}\n}}\n\
                 vrrp_instance web {{\n  state BACKUP\n  interface eth0\n  virtual_router_id {}\n  \
                 priority {}\n  advert_int {interval}\n{nopreempt}  virtual_ipaddress {{\n    {}\n  }}\n}}\n",
                node.vrid,
                node.priority,
                self.vip_cidr(node).1
            ),
        )?;
        let log = std::fs::File::create(d.join("keepalived.log"))?;
        let mut cmd = self.ns(i).command("keepalived");
        cmd.args(["-n", "-l", "-D", "-P", "-f"])
            .arg(&conf)
            .arg("-p")
            .arg(d.join("keepalived.pid"))
            .arg("-r")
            .arg(d.join("vrrp.pid"))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        NsProcess::spawn(cmd)
    }

    /// Whether host `i` has the VIP on eth0.
    pub fn holds_vip(&self, i: usize) -> bool {
        let vip = self.vip().to_string();
        self.ns(i)
            .exec_stdout(&["ip", "-4", "-o", "addr", "show", "dev", "eth0"])
            .map(|s| {
                s.split_whitespace()
                    .any(|w| w.split('/').next() == Some(vip.as_str()))
            })
            .unwrap_or(false)
    }

    /// Whether host `i` has the IPv6 VIP on eth0.
    pub fn holds_vip6(&self, i: usize) -> bool {
        let vip = self.vip6().to_string();
        self.ns(i)
            .exec_stdout(&["ip", "-6", "-o", "addr", "show", "dev", "eth0"])
            .map(|s| {
                s.split_whitespace()
                    .any(|w| w.split('/').next() == Some(vip.as_str()))
            })
            .unwrap_or(false)
    }

    /// Waits until host `i` holds the VIP.
    pub fn wait_vip(&self, i: usize, timeout: Duration) -> Result<()> {
        wait_for(|| self.holds_vip(i), timeout)
            .with_context(|| format!("host {i} never got the VIP"))
    }

    /// The status fields of `lb` instance "web" on host `i` (from its status file).
    pub fn lb_status(&self, i: usize) -> BTreeMap<String, String> {
        let instance = self.ns(i).name().replace('.', "_");
        let path = Path::new("/run/lb").join(instance).join("vrrp.status");
        std::fs::read_to_string(path)
            .ok()
            .and_then(|t| {
                t.lines()
                    .find(|l| l.contains("instance=web"))
                    .map(parse_line)
            })
            .unwrap_or_default()
    }

    /// A counter from the status, 0 when absent.
    pub fn lb_counter(&self, i: usize, key: &str) -> u64 {
        self.lb_status(i)
            .get(key)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    /// The log of node `i`'s `lb`, for failure messages.
    pub fn lb_log(&self, i: usize) -> String {
        std::fs::read_to_string(self.dir.join(format!("lb{i}.log"))).unwrap_or_default()
    }

    /// One GET /node from the client; the node name that answered.
    pub fn fetch(&self) -> Option<String> {
        let vip = self.vip();
        self.ns(CLIENT)
            .run(move || http_get(vip, Duration::from_secs(1)))
            .ok()
            .flatten()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for inst in &self.instances {
            let _ = std::fs::remove_dir_all(Path::new("/sys/fs/bpf/lb").join(inst));
            let _ = std::fs::remove_dir_all(Path::new("/run/lb").join(inst));
            // The default admin socket, left behind when a test SIGKILLs its daemon.
            let _ = std::fs::remove_file(Path::new("/run/lb").join(format!("{inst}.sock")));
        }
        if std::env::var_os("VRRP_KEEP_FILES").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn parse_line(line: &str) -> BTreeMap<String, String> {
    line.split_whitespace()
        .filter_map(|f| f.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Per-node VRRP settings, shared by the `lb` and keepalived configs.
#[derive(Clone, Debug)]
pub struct NodeOpts {
    pub vrid: u8,
    pub priority: u8,
    pub interval_ms: u32,
    pub preempt: bool,
    pub unicast_peers: Vec<IpAddr>,
    /// An IPv6 virtual router (VIP 2001:db8:0:S::99/64) instead of IPv4.
    pub ipv6: bool,
}

impl NodeOpts {
    pub fn new(priority: u8, interval_ms: u32) -> Self {
        NodeOpts {
            vrid: VRID,
            priority,
            interval_ms,
            preempt: true,
            unicast_peers: Vec::new(),
            ipv6: false,
        }
    }
}

/// `GET /node` over HTTP/1.0 with an overall deadline; the body, or `None` on any failure.
pub fn http_get(vip: Ipv4Addr, timeout: Duration) -> Option<String> {
    let start = Instant::now();
    let addr = SocketAddr::from((vip, HTTP_PORT));
    let mut s = TcpStream::connect_timeout(&addr, timeout).ok()?;
    let left = timeout.checked_sub(start.elapsed())?;
    s.set_read_timeout(Some(left.max(Duration::from_millis(1))))
        .ok()?;
    s.set_write_timeout(Some(left.max(Duration::from_millis(1))))
        .ok()?;
    s.write_all(b"GET /node HTTP/1.0\r\nHost: vip\r\n\r\n")
        .ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf);
    if !text.starts_with("HTTP/1.0 200") && !text.starts_with("HTTP/1.1 200") {
        return None;
    }
    text.split_once("\r\n\r\n")
        .map(|(_, b)| b.trim().to_string())
}

/// One request of a load run.
#[derive(Clone, Debug)]
pub struct Sample {
    /// When it was sent, from the start of the load.
    pub sent: Duration,
    /// When it finished.
    pub done: Duration,
    /// Which node answered, or `None` (timeout, reset, refused).
    pub node: Option<String>,
}

/// A load in progress: one request every `period`, each in its own thread (so a slow one
/// never delays the schedule), `count` in all, each with a 1 s deadline.
pub struct Load {
    rx: mpsc::Receiver<Vec<Sample>>,
    pub start: Instant,
}

impl Load {
    pub fn start(lab: &Lab, count: usize, period: Duration) -> Result<Load> {
        Self::start_at(lab, count, period, Instant::now())
    }

    /// [`Load::start`] with the first request at `start` (now or later).
    pub fn start_at(lab: &Lab, count: usize, period: Duration, start: Instant) -> Result<Load> {
        let (tx, rx) = mpsc::channel();
        let vip = lab.vip();
        let path = lab.ns(CLIENT).path();
        std::thread::spawn(move || {
            let f = std::fs::File::open(path).expect("open netns");
            use std::os::fd::AsRawFd;
            // SAFETY: setns on a namespace fd changes only this thread (and its children).
            assert_eq!(unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) }, 0);
            let (stx, srx) = mpsc::channel();
            for i in 0..count {
                let at = start + period * i as u32;
                if let Some(d) = at.checked_duration_since(Instant::now()) {
                    std::thread::sleep(d);
                }
                let stx = stx.clone();
                std::thread::spawn(move || {
                    let sent = start.elapsed();
                    let node = http_get(vip, Duration::from_secs(1));
                    let _ = stx.send(Sample {
                        sent,
                        done: start.elapsed(),
                        node,
                    });
                });
            }
            drop(stx);
            let mut all: Vec<Sample> = srx.iter().collect();
            all.sort_by_key(|s| s.sent);
            let _ = tx.send(all);
        });
        Ok(Load { rx, start })
    }

    pub fn finish(self) -> Result<Vec<Sample>> {
        self.rx
            .recv_timeout(Duration::from_secs(120))
            .context("load did not finish")
    }
}

/// What a failover looked like from the client.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub sent: usize,
    pub failed: usize,
    /// First answer from `to` minus last answer from `from` (completion times).
    pub gap: Option<Duration>,
    pub answers_from: BTreeMap<String, usize>,
}

pub fn outcome(samples: &[Sample], from: &str, to: &str) -> Outcome {
    let last_from = samples
        .iter()
        .filter(|s| s.node.as_deref() == Some(from))
        .map(|s| s.done)
        .max();
    let first_to = samples
        .iter()
        .filter(|s| s.node.as_deref() == Some(to))
        .filter(|s| last_from.is_none_or(|l| s.sent >= l.saturating_sub(Duration::from_secs(2))))
        .map(|s| s.done)
        .min();
    let mut answers_from = BTreeMap::new();
    for s in samples {
        *answers_from
            .entry(s.node.clone().unwrap_or_else(|| "FAILED".into()))
            .or_insert(0) += 1;
    }
    Outcome {
        sent: samples.len(),
        failed: samples.iter().filter(|s| s.node.is_none()).count(),
        gap: match (last_from, first_to) {
            (Some(a), Some(b)) => Some(b.saturating_sub(a)),
            _ => None,
        },
        answers_from,
    }
}

pub fn fmt_gap(g: Option<Duration>) -> String {
    g.map_or("-".into(), |g| format!("{:.3} s", g.as_secs_f64()))
}

/// Waits until `lb` instance "web" on host `i` reports `state`.
pub fn wait_state(lab: &Lab, i: usize, state: &str, timeout: Duration) -> Result<()> {
    wait_for(
        || lab.lb_status(i).get("state").map(String::as_str) == Some(state),
        timeout,
    )
    .with_context(|| {
        format!(
            "host {i} never reached {state}: status {:?}\nlog:\n{}",
            lab.lb_status(i),
            lab.lb_log(i)
        )
    })
}

/// Fails unless the machine can run these tests (root, netns, bpffs, programs).
pub fn can_run(test: &str, programs: &[&str]) -> bool {
    if !require::privileged(test) {
        return false;
    }
    programs.iter().all(|p| require::program(p))
}

/// Samples who holds the VIP every `every` for `dur`; returns the largest number of
/// simultaneous holders seen and the number of holder changes.
pub fn watch_holders(lab: &Lab, hosts: &[usize], dur: Duration, every: Duration) -> (usize, usize) {
    let end = Instant::now() + dur;
    let mut max = 0;
    let mut changes = 0;
    let mut last: Option<Vec<usize>> = None;
    while Instant::now() < end {
        let holders: Vec<usize> = hosts
            .iter()
            .copied()
            .filter(|&h| lab.holds_vip(h))
            .collect();
        max = max.max(holders.len());
        if last.as_ref().is_some_and(|l| *l != holders) {
            changes += 1;
        }
        last = Some(holders);
        std::thread::sleep(every);
    }
    (max, changes)
}

pub fn check(cond: bool, msg: impl FnOnce() -> String) -> Result<()> {
    if !cond {
        bail!(msg());
    }
    Ok(())
}

/// `payload` behind an IPv4 header (no options) of protocol 112 (VRRP) from `src` (which
/// may be spoofed) to `dst` with `ttl`: what a [`RawSender`] sends as is.
pub fn vrrp_ip_packet(src: Ipv4Addr, dst: Ipv4Addr, ttl: u8, payload: &[u8]) -> Vec<u8> {
    let mut pkt = vec![0u8; 20];
    pkt[0] = 0x45;
    let total = (20 + payload.len()) as u16;
    pkt[2..4].copy_from_slice(&total.to_be_bytes());
    pkt[8] = ttl;
    pkt[9] = 112;
    pkt[12..16].copy_from_slice(&src.octets());
    pkt[16..20].copy_from_slice(&dst.octets());
    pkt.extend_from_slice(payload);
    pkt
}

/// An IP_HDRINCL raw socket bound to `eth0` that sends whole IPv4 packets to one
/// destination, so a test chooses the TTL and source of forged adverts. Open it inside the
/// sender's namespace (e.g. in [`Netns::run`]); closed on drop.
pub struct RawSender {
    fd: libc::c_int,
    to: libc::sockaddr_in,
}

impl RawSender {
    /// A raw socket for packets to `dst`.
    pub fn open(dst: Ipv4Addr) -> std::io::Result<RawSender> {
        // SAFETY: plain socket syscalls with valid buffers; the fd is owned by the result.
        unsafe {
            let fd = libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_RAW);
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            let dev = b"eth0\0";
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_BINDTODEVICE,
                dev.as_ptr().cast(),
                dev.len() as u32,
            );
            let mut to: libc::sockaddr_in = std::mem::zeroed();
            to.sin_family = libc::AF_INET as u16;
            to.sin_addr.s_addr = u32::from(dst).to_be();
            Ok(RawSender { fd, to })
        }
    }

    /// Sends `pkt` (a whole IPv4 packet, see [`vrrp_ip_packet`]).
    pub fn send(&self, pkt: &[u8]) -> std::io::Result<()> {
        // SAFETY: sendto with a valid buffer and address on our own fd.
        let r = unsafe {
            libc::sendto(
                self.fd,
                pkt.as_ptr().cast(),
                pkt.len(),
                0,
                (&self.to as *const libc::sockaddr_in).cast(),
                std::mem::size_of::<libc::sockaddr_in>() as u32,
            )
        };
        if r < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }
}

impl Drop for RawSender {
    fn drop(&mut self) {
        // SAFETY: closes the fd this value owns, once.
        unsafe { libc::close(self.fd) };
    }
}

/// Sends `payload` as IP protocol 112 from host `from` with source `src` (spoofable),
/// destination `dst` and `ttl`, `count` times, `gap` apart (IP_HDRINCL raw socket).
pub fn inject(
    lab: &Lab,
    from: usize,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    ttl: u8,
    payloads: &[Vec<u8>],
    gap: Duration,
) -> Result<()> {
    let payloads = payloads.to_vec();
    lab.ns(from).run(move || -> Result<()> {
        let sock = RawSender::open(dst).context("raw socket")?;
        for payload in &payloads {
            let _ = sock.send(&vrrp_ip_packet(src, dst, ttl, payload));
            std::thread::sleep(gap);
        }
        Ok(())
    })?
}

/// Captures, in host `at`, the VRRP payloads (IP header stripped) of packets from `src`
/// seen on its eth0 during `dur` (AF_PACKET: the bridge floods 224.0.0.18 to every port).
pub fn capture(lab: &Lab, at: usize, src: Ipv4Addr, dur: Duration) -> Result<Vec<Vec<u8>>> {
    lab.ns(at).run(move || -> Result<Vec<Vec<u8>>> {
        let mut out = Vec::new();
        // SAFETY: plain socket syscalls with valid buffers; the fd is closed at the end.
        unsafe {
            let proto = (libc::ETH_P_IP as u16).to_be();
            let fd = libc::socket(libc::AF_PACKET, libc::SOCK_DGRAM, i32::from(proto));
            if fd < 0 {
                bail!("packet socket: {}", std::io::Error::last_os_error());
            }
            let tv = libc::timeval {
                tv_sec: 0,
                tv_usec: 50_000,
            };
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as u32,
            );
            let end = Instant::now() + dur;
            let mut buf = [0u8; 2048];
            while Instant::now() < end {
                let n = libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0);
                if n < 20 {
                    continue;
                }
                let p = &buf[..n as usize];
                let ihl = usize::from(p[0] & 0x0f) * 4;
                let total = usize::from(u16::from_be_bytes([p[2], p[3]])).min(p.len());
                if p[9] == 112 && p[12..16] == src.octets() && ihl < total {
                    out.push(p[ihl..total].to_vec());
                }
            }
            libc::close(fd);
        }
        Ok(out)
    })?
}

/// What the wire capture in the client's namespace saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WireEvent {
    /// A VRRP packet from this source.
    Advert(Ipv4Addr),
    /// A gratuitous ARP for the VIP (the sender's IP is the VIP) from this MAC.
    Garp([u8; 6]),
}

/// A capture of VRRP and gratuitous ARP packets, seen from the client, with the times
/// they arrived (for taking a failover apart: detection, announcement, first answer).
pub struct WireLog {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    handle: Option<std::thread::JoinHandle<Vec<(Instant, WireEvent)>>>,
    /// Every event as it is seen, for tests that act in step with the adverts.
    pub live: mpsc::Receiver<(Instant, WireEvent)>,
}

impl WireLog {
    /// Starts capturing on the client's eth0 (for at most `max`).
    pub fn start(lab: &Lab, max: Duration) -> Result<WireLog> {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let s = stop.clone();
        let vip = lab.vip();
        let path = lab.ns(CLIENT).path();
        let (ready_tx, ready_rx) = mpsc::channel();
        let (live_tx, live) = mpsc::channel();
        let handle = std::thread::spawn(move || {
            let mut out = Vec::new();
            let f = std::fs::File::open(path).expect("open netns");
            use std::os::fd::AsRawFd;
            // SAFETY: setns/socket syscalls on this thread with valid arguments; the fd
            // is closed at the end.
            unsafe {
                assert_eq!(libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET), 0);
                let proto = (libc::ETH_P_ALL as u16).to_be();
                let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, i32::from(proto));
                let _ = ready_tx.send(fd >= 0);
                if fd < 0 {
                    return out;
                }
                let tv = libc::timeval {
                    tv_sec: 0,
                    tv_usec: 20_000,
                };
                libc::setsockopt(
                    fd,
                    libc::SOL_SOCKET,
                    libc::SO_RCVTIMEO,
                    (&tv as *const libc::timeval).cast(),
                    std::mem::size_of::<libc::timeval>() as u32,
                );
                let end = Instant::now() + max;
                let mut buf = [0u8; 2048];
                while Instant::now() < end && !s.load(std::sync::atomic::Ordering::Relaxed) {
                    let n = libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0);
                    let at = Instant::now();
                    if n < 42 {
                        continue;
                    }
                    let p = &buf[..n as usize];
                    match u16::from_be_bytes([p[12], p[13]]) {
                        0x0800 if p[14 + 9] == 112 => {
                            let src = Ipv4Addr::new(p[26], p[27], p[28], p[29]);
                            out.push((at, WireEvent::Advert(src)));
                            let _ = live_tx.send((at, WireEvent::Advert(src)));
                        }
                        0x0806 if p[28..32] == vip.octets() => {
                            let mut mac = [0u8; 6];
                            mac.copy_from_slice(&p[22..28]);
                            out.push((at, WireEvent::Garp(mac)));
                        }
                        _ => {}
                    }
                }
                libc::close(fd);
            }
            out
        });
        if !ready_rx.recv().unwrap_or(false) {
            bail!("cannot open a packet socket in the client's namespace");
        }
        Ok(WireLog {
            stop,
            handle: Some(handle),
            live,
        })
    }

    /// Waits (up to `timeout`) for the next advert from `src` seen from now on (older
    /// queued ones are skipped); when it was seen.
    pub fn next_advert(&self, src: Ipv4Addr, timeout: Duration) -> Option<Instant> {
        let now = Instant::now();
        let end = now + timeout;
        loop {
            let left = end.checked_duration_since(Instant::now())?;
            match self.live.recv_timeout(left) {
                Ok((t, WireEvent::Advert(a))) if a == src && t >= now => return Some(t),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    }

    /// Stops and returns what was seen.
    pub fn finish(mut self) -> Vec<(Instant, WireEvent)> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.handle
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default()
    }
}

impl Drop for WireLog {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}
