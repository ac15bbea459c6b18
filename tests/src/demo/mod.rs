//! The one-command demo (`scripts/demo.sh`, the `lb-demo` binary): the seed's two-node
//! setup in network namespaces, its names and addresses, the pieces it is built from, and
//! its teardown.
//!
//! Everything the demo creates carries the prefix [`PREFIX`]: namespaces `lbdemo-*`,
//! `lb` instances `lbdemo-lb1`/`lbdemo-lb2` (pins under `/sys/fs/bpf/lb/lbdemo-*`, status
//! under `/run/lb/lbdemo-*`, admin sockets `/run/lb/lbdemo-*.sock`) and the state
//! directory [`STATE_DIR`]. [`down`] removes all of it, whatever state it is in.

pub mod client;
pub mod server;

use std::ffi::OsStr;
use std::fs::File;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// The prefix of every name the demo creates.
pub const PREFIX: &str = "lbdemo-";
/// Where the demo keeps configs, logs and the seed files.
pub const STATE_DIR: &str = "/run/lbdemo";
/// Where `lb` pins its instances' maps.
pub const PIN_ROOT: &str = "/sys/fs/bpf/lb";
/// Where `lb` keeps its admin sockets and status files.
pub const RUN_ROOT: &str = "/run/lb";

/// The seed's HAProxy config (the in-repo copy `lb import` is tested against).
pub const SEED_HAPROXY: &str =
    include_str!("../../../lb-userspace/src/import/testdata/haproxy.cfg");
/// The seed's Wackamole config.
pub const SEED_WACKAMOLE: &str =
    include_str!("../../../lb-userspace/src/import/testdata/wackamole.conf");

/// The L7 VIP (the seed's webfarm, 192.168.0.99 there).
pub const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 99);
/// The L4 `dsr` VIP the demo adds.
pub const VIP_DSR: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 98);
/// The `dsr` service's port.
pub const DSR_PORT: u16 = 8080;
/// The seed's stats page (`stats enable`, HAProxy's default `stats uri`).
pub const STATS_URI: &str = "/haproxy?stats";
/// The seed's `stats auth` line.
pub const STATS_AUTH: &str = "someuser:somepassword";
/// An address nobody uses: the pass-through `lb decap` programs on the bridge ports
/// (XDP_TX on a veth needs an XDP program on its peer) decapsulate for it.
pub const UNUSED: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 254);

/// One namespace of the demo.
#[derive(Debug, Clone, Copy)]
pub struct Node {
    /// Short name: `client`, `lb1`, ...
    pub name: &'static str,
    /// Its address on the segment (/24).
    pub addr: Ipv4Addr,
}

impl Node {
    /// The namespace name, `lbdemo-<name>`.
    pub fn ns(&self) -> String {
        format!("{PREFIX}{}", self.name)
    }

    /// The bridge port its veth is plugged into, `p-<name>`.
    pub fn port(&self) -> String {
        format!("p-{}", self.name)
    }
}

/// The client (not in the seed, which uses any browser).
pub const CLIENT: Node = Node {
    name: "client",
    addr: Ipv4Addr::new(198, 18, 0, 10),
};
/// The first load balancer (the seed's lb1, 192.168.0.100).
pub const LB1: Node = Node {
    name: "lb1",
    addr: Ipv4Addr::new(198, 18, 0, 100),
};
/// The second load balancer (lb2, 192.168.0.101).
pub const LB2: Node = Node {
    name: "lb2",
    addr: Ipv4Addr::new(198, 18, 0, 101),
};
/// The first web server (http1, 192.168.0.102; HAProxy's `webA`).
pub const HTTP1: Node = Node {
    name: "http1",
    addr: Ipv4Addr::new(198, 18, 0, 102),
};
/// The second web server (http2, 192.168.0.103; `webB`).
pub const HTTP2: Node = Node {
    name: "http2",
    addr: Ipv4Addr::new(198, 18, 0, 103),
};
/// Every host, in creation order.
pub const NODES: [Node; 5] = [CLIENT, LB1, LB2, HTTP1, HTTP2];
/// The namespace that holds the bridge.
pub const BRIDGE_NS: &str = "lbdemo-br";

/// The `lb` instance name of a load-balancer node (`lbdemo-lb1`).
pub fn instance(node: &Node) -> String {
    node.ns()
}

/// The admin socket of a load-balancer node (`/run/lb/lbdemo-lb1.sock`).
pub fn socket(node: &Node) -> PathBuf {
    Path::new(RUN_ROOT).join(format!("{}.sock", instance(node)))
}

/// The pin directory of a load-balancer node.
pub fn pin_dir(node: &Node) -> PathBuf {
    Path::new(PIN_ROOT).join(instance(node))
}

/// The demo's files: `/run/lbdemo/<name>`.
pub fn state_file(name: &str) -> PathBuf {
    Path::new(STATE_DIR).join(name)
}

/// Runs `cmd` to completion within `timeout` and returns its output, or fails naming it.
pub fn run(cmd: &mut Command, timeout: Duration) -> Result<std::process::Output> {
    let desc = format!("{cmd:?}");
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = cmd
        .spawn()
        .with_context(|| format!("cannot start {desc}"))?;
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(timeout) {
        Ok(out) => out.with_context(|| format!("running {desc}")),
        Err(_) => {
            if let Ok(p) = libc::pid_t::try_from(pid) {
                // SAFETY: plain syscall on our own child, which has not been reaped.
                unsafe { libc::kill(p, libc::SIGKILL) };
            }
            bail!("{desc} did not finish within {timeout:?}")
        }
    }
}

/// Runs `ip ARGS` in the root namespace; fails with its stderr on a non-zero exit.
pub fn ip(args: &[&str]) -> Result<String> {
    let out = run(Command::new("ip").args(args), Duration::from_secs(20))?;
    if !out.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs `ip -n NS ARGS`.
pub fn ip_in(ns: &str, args: &[&str]) -> Result<String> {
    let mut all = vec!["-n", ns];
    all.extend_from_slice(args);
    ip(&all)
}

/// Runs `ip netns exec NS ARGS` (for tools that do not pin BPF objects) and returns its
/// stdout; fails with stderr on a non-zero exit.
pub fn exec_in(ns: &str, args: &[&str]) -> Result<String> {
    let out = run(
        Command::new("ip").args(["netns", "exec", ns]).args(args),
        Duration::from_secs(20),
    )?;
    if !out.status.success() {
        bail!(
            "{} in {ns}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A command that runs `program` inside network namespace `ns` only (setns between fork
/// and exec, so bpffs stays visible, unlike `ip netns exec`), in a session of its own (so
/// a Ctrl-C on the terminal reaches the demo, which tears down, and a kept demo survives
/// the terminal), with stdout and stderr appended to `log`.
pub fn ns_command(ns: &str, program: impl AsRef<OsStr>, log: &Path) -> Result<Command> {
    let path = Path::new("/run/netns").join(ns);
    let file = File::open(&path).with_context(|| format!("opening {}", path.display()))?;
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("opening {}", log.display()))?;
    let mut cmd = Command::new(program);
    cmd.stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out);
    let fd = file.as_raw_fd();
    // SAFETY: runs between fork and exec and makes only async-signal-safe syscalls; `file`
    // is moved into the closure so `fd` stays open until the spawn.
    unsafe {
        cmd.pre_exec(move || {
            let _keep_open = &file;
            if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    Ok(cmd)
}

/// Runs `f` on a thread inside network namespace `ns` (sockets it makes belong there,
/// and so do threads it spawns).
pub fn in_ns<F, R>(ns: &str, f: F) -> Result<R>
where
    F: FnOnce() -> R + Send,
    R: Send,
{
    let path = Path::new("/run/netns").join(ns);
    let file = File::open(&path).with_context(|| format!("opening {}", path.display()))?;
    std::thread::scope(|s| {
        s.spawn(move || -> Result<R> {
            // SAFETY: setns on a namespace fd changes only this thread's namespace.
            if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(std::io::Error::last_os_error()).context("setns");
            }
            drop(file);
            Ok(f())
        })
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p))
    })
}

/// Writes a sysctl inside namespace `ns` (`net.ipv4.conf.all.arp_ignore`).
pub fn sysctl(ns: &str, key: &str, value: &str) -> Result<()> {
    let path = Path::new("/proc/sys").join(key.replace('.', "/"));
    in_ns(ns, || std::fs::write(&path, value))?
        .with_context(|| format!("sysctl {key}={value} in {ns}"))
}

/// The demo's namespaces that exist now.
pub fn namespaces() -> Result<Vec<String>> {
    Ok(ip(&["netns", "list"])?
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(PREFIX))
        .map(str::to_owned)
        .collect())
}

/// Pids of the processes in namespace `ns`.
pub fn pids_in(ns: &str) -> Vec<libc::pid_t> {
    ip(&["netns", "pids", ns])
        .map(|o| {
            o.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .filter(|&p: &libc::pid_t| p > 1)
                .collect()
        })
        .unwrap_or_default()
}

/// Leftovers of the demo: namespaces, pin directories, run files, the state directory.
pub fn leftovers() -> Vec<String> {
    let mut found: Vec<String> = namespaces()
        .unwrap_or_default()
        .into_iter()
        .map(|n| format!("netns {n}"))
        .collect();
    for root in [PIN_ROOT, RUN_ROOT] {
        if let Ok(rd) = std::fs::read_dir(root) {
            for e in rd.flatten() {
                if e.file_name().to_string_lossy().starts_with(PREFIX) {
                    found.push(e.path().display().to_string());
                }
            }
        }
    }
    if Path::new(STATE_DIR).exists() {
        found.push(STATE_DIR.to_string());
    }
    found
}

/// Removes everything the demo may have created, in any state, idempotently: stops the
/// processes in the `lbdemo-*` namespaces (SIGTERM, then SIGKILL after a grace period),
/// deletes the namespaces (which takes their interfaces, addresses and XDP programs with
/// them), then the pin directories, run files and the state directory. Returns what it
/// removed, for the caller to print.
pub fn down() -> Result<Vec<String>> {
    let mut removed = Vec::new();
    let me = std::process::id() as libc::pid_t;
    let spaces = namespaces()?;
    let mut pids: Vec<libc::pid_t> = spaces
        .iter()
        .flat_map(|n| pids_in(n))
        .filter(|&p| p != me)
        .collect();
    pids.sort_unstable();
    pids.dedup();
    for &p in &pids {
        // SAFETY: plain syscall on a positive pid that lives in one of our namespaces.
        unsafe { libc::kill(p, libc::SIGTERM) };
    }
    let deadline = Instant::now() + Duration::from_millis(1500);
    let alive = |p: libc::pid_t| {
        // SAFETY: signal 0 only checks for existence.
        unsafe { libc::kill(p, 0) == 0 }
    };
    while pids.iter().any(|&p| alive(p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    for ns in &spaces {
        // Also whatever entered a namespace after the first sweep.
        for _ in 0..50 {
            let left: Vec<_> = pids_in(ns).into_iter().filter(|&p| p != me).collect();
            if left.is_empty() {
                break;
            }
            for p in left {
                // SAFETY: as above.
                unsafe { libc::kill(p, libc::SIGKILL) };
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    if !pids.is_empty() {
        removed.push(format!("{} processes", pids.len()));
    }
    for ns in &spaces {
        let mut last = None;
        for _ in 0..10 {
            match ip(&["netns", "del", ns]) {
                Ok(_) => {
                    last = None;
                    break;
                }
                Err(e) => {
                    last = Some(e);
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
        if let Some(e) = last {
            if namespaces()?.contains(ns) {
                return Err(e.context(format!("deleting netns {ns}")));
            }
        }
        removed.push(format!("netns {ns}"));
    }
    for root in [PIN_ROOT, RUN_ROOT] {
        let Ok(rd) = std::fs::read_dir(root) else {
            continue;
        };
        for e in rd.flatten() {
            if !e.file_name().to_string_lossy().starts_with(PREFIX) {
                continue;
            }
            let p = e.path();
            let r = if p.is_dir() {
                std::fs::remove_dir_all(&p)
            } else {
                std::fs::remove_file(&p)
            };
            r.with_context(|| format!("removing {}", p.display()))?;
            removed.push(p.display().to_string());
        }
    }
    if Path::new(STATE_DIR).exists() {
        std::fs::remove_dir_all(STATE_DIR).with_context(|| format!("removing {STATE_DIR}"))?;
        removed.push(STATE_DIR.to_string());
    }
    Ok(removed)
}

/// The commands `lb-demo --keep` suggests for poking the kept demo, as a user types them
/// from the repository's root (docs/demo.md lists the same; a test runs them).
pub fn poke_commands() -> Vec<String> {
    let c = CLIENT.ns();
    let s2 = socket(&LB2).display().to_string();
    let down = server::down_switch(Path::new(STATE_DIR), HTTP1.name);
    vec![
        format!("ip netns exec {c} curl -si http://{VIP}/"),
        format!("ip netns exec {c} curl -s http://{VIP_DSR}:{DSR_PORT}/"),
        format!("target/debug/lb show vrrp --socket {s2}"),
        format!("target/debug/lb show stat --socket {s2}"),
        format!("ip netns exec {c} curl -s -u {STATS_AUTH} 'http://{VIP}{STATS_URI};csv'"),
        format!("target/debug/lb show servers state webfarm --socket {s2}"),
        format!("target/debug/lb show flows --socket {s2}"),
        format!("target/debug/lb set server webfarm/webA state drain --socket {s2}"),
        format!("target/debug/lb set server webfarm/webA state ready --socket {s2}"),
        format!("touch {}", down.display()),
        format!("rm {}", down.display()),
        format!(
            "bpftool map dump pinned {}/lb_vips",
            pin_dir(&LB2).display()
        ),
        format!("tail -n 5 {STATE_DIR}/lb2.log"),
    ]
}
