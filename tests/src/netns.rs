//! Network namespaces for tests, with cleanup that cannot be forgotten.
//!
//! Every test that needs a network gets its own namespaces ([`Netns`]), links them with veth
//! pairs ([`veth_pair`]) or a bridge ([`Topology`]), and runs programs inside them
//! ([`Netns::exec`], [`Netns::spawn`]). Dropping a [`Netns`] kills whatever still runs in
//! it and deletes it, which also destroys its interfaces; since unwinding runs `Drop`, a
//! failing test cleans up too. A run that was killed outright (SIGKILL, Ctrl-C) leaves
//! namespaces behind; their names carry the pid of the process that made them, so
//! [`sweep_stale`] (called by every [`Netns::new`] for its prefix) removes them later.
//!
//! Addresses: tests use only 198.18.0.0/15 and 2001:db8::/32 (see TOOLCHAIN.md section 6),
//! always inside namespaces they created.

use std::ffi::OsStr;
use std::fs::File;
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{
    Child, ChildStderr, ChildStdin, ChildStdout, Command, ExitStatus, Output, Stdio,
};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};

/// How long [`Netns::exec`] and friends let a command run before killing it: every command
/// a test runs must end, even when the program under test hangs.
pub const EXEC_TIMEOUT: Duration = Duration::from_secs(60);

/// How long one `ip` invocation may take. `ip` talks to the kernel over netlink and answers
/// in milliseconds; anything longer means something is wedged and the test should fail.
const IP_TIMEOUT: Duration = Duration::from_secs(20);

/// How long [`veth_pair`] and [`TopologyBuilder::build`] wait for links to report carrier.
pub const LINK_UP_TIMEOUT: Duration = Duration::from_secs(10);

/// Where iproute2 keeps the bind mounts that name network namespaces.
const NETNS_RUN_DIR: &str = "/run/netns";

/// Linux limit for interface names (IFNAMSIZ - 1).
pub const IFNAME_MAX: usize = 15;

/// Name of the bridge device that [`Topology`] creates.
pub const BRIDGE_IFNAME: &str = "br0";

/// Name of the interface each [`Topology`] host gets (unless it holds the bridge).
pub const HOST_IFNAME: &str = "eth0";

/// The process-wide counter that, with the pid, makes names unique. It is the only shared
/// state in this module, so parallel tests never wait on each other.
static COUNTER: AtomicU64 = AtomicU64::new(0);

fn next_counter() -> u64 {
    COUNTER.fetch_add(1, Ordering::Relaxed)
}

/// A few bits that differ between two runs that happen to get the same pid (pid reuse after
/// a crashed run), so a stale namespace never has the exact name a new one wants.
fn time_suffix(counter: u64) -> u16 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let mixed = (nanos as u64) ^ (nanos >> 64) as u64 ^ counter.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (mixed ^ (mixed >> 16) ^ (mixed >> 32) ^ (mixed >> 48)) as u16
}

fn check_prefix(prefix: &str) -> Result<()> {
    if prefix.is_empty() || prefix.len() > 64 {
        bail!("netns prefix {prefix:?} must be 1..=64 characters");
    }
    if !prefix
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
    {
        bail!("netns prefix {prefix:?} may contain only ASCII letters, digits, '-', '_' and '.'");
    }
    Ok(())
}

fn check_ifname(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > IFNAME_MAX {
        bail!("interface name {name:?} must be 1..={IFNAME_MAX} bytes");
    }
    if name == "."
        || name == ".."
        || name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace())
    {
        bail!("interface name {name:?} is not valid (no '/', ':' or whitespace)");
    }
    Ok(())
}

/// Temporary names for a veth pair: unique per process (pid) and per pair (counter), at most
/// 15 bytes, so that creating two pairs at once never collides even if the kernel briefly
/// sees both names in one namespace.
fn temp_ifnames() -> (String, String) {
    let pid = std::process::id() & 0x3f_ffff; // pid_max is at most 2^22
    let n = next_counter() & 0xf_ffff;
    (format!("t{pid:x}_{n:x}a"), format!("t{pid:x}_{n:x}b"))
}

/// Quotes a command for error messages, so a failure names exactly what ran.
fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Reads a pipe to its end on a helper thread, so a chatty child never blocks on a full pipe
/// while we wait for it; the result comes back over a channel so the wait stays bounded.
fn read_in_thread<R: Read + Send + 'static>(pipe: Option<R>) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    match pipe {
        Some(mut p) => {
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let _ = p.read_to_end(&mut buf);
                let _ = tx.send(buf);
            });
        }
        None => {
            let _ = tx.send(Vec::new());
        }
    }
    rx
}

/// Sends `signal` to a process group; errors (group already gone) are irrelevant to callers.
fn killpg(pgid: u32, signal: libc::c_int) {
    if let Ok(pgid) = libc::pid_t::try_from(pgid) {
        if pgid > 1 {
            // SAFETY: plain syscall; pgid > 1 so this never targets "every process".
            unsafe { libc::kill(-pgid, signal) };
        }
    }
}

/// Runs `cmd` to completion with its output captured, killing its process group when it
/// outlives `timeout`. Returns the output whatever the exit status; errors only when it
/// cannot be started or does not finish.
pub fn run_bounded(mut cmd: Command, timeout: Duration) -> Result<Output> {
    let desc = describe(&cmd);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot start `{desc}`"))?;
    let out_rx = read_in_thread(child.stdout.take());
    let err_rx = read_in_thread(child.stderr.take());
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(1);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => {}
            Err(e) => {
                killpg(child.id(), libc::SIGKILL);
                let _ = child.kill();
                let _ = child.wait();
                return Err(e).with_context(|| format!("waiting for `{desc}`"));
            }
        }
        if Instant::now() >= deadline {
            killpg(child.id(), libc::SIGKILL);
            let _ = child.kill();
            let _ = child.wait();
            let stderr = err_rx
                .recv_timeout(Duration::from_millis(200))
                .unwrap_or_default();
            bail!(
                "`{desc}` did not finish within {timeout:?} and was killed; stderr: {}",
                String::from_utf8_lossy(&stderr).trim()
            );
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    };
    // The child is gone; its pipes close unless it left a grandchild holding them.
    let grace = deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_secs(1));
    let stdout = out_rx.recv_timeout(grace).unwrap_or_default();
    let stderr = err_rx
        .recv_timeout(Duration::from_millis(500))
        .unwrap_or_default();
    Ok(Output {
        status,
        stdout,
        stderr,
    })
}

/// Turns a non-zero exit into an error that carries the command line and its stderr, which
/// is what a reader of a failed test needs first.
fn check_output(desc: &str, out: Output) -> Result<Output> {
    if out.status.success() {
        return Ok(out);
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let why = match (out.status.code(), out.status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        _ => out.status.to_string(),
    };
    let mut msg = format!("`{desc}` failed ({why})");
    if !stderr.trim().is_empty() {
        msg.push_str(&format!("; stderr: {}", stderr.trim()));
    }
    if !stdout.trim().is_empty() {
        msg.push_str(&format!("; stdout: {}", stdout.trim()));
    }
    Err(anyhow!(msg))
}

fn run_checked(cmd: Command, timeout: Duration) -> Result<Output> {
    let desc = describe(&cmd);
    let out = run_bounded(cmd, timeout)?;
    check_output(&desc, out)
}

/// Runs `ip ARGS` in the caller's (root) namespace.
fn ip(args: &[&str]) -> Result<Output> {
    let mut cmd = Command::new("ip");
    cmd.args(args);
    run_checked(cmd, IP_TIMEOUT)
}

/// Lists the names iproute2 knows (`ip netns list`), without the "(id: N)" annotations.
pub fn list() -> Result<Vec<String>> {
    let out = ip(&["netns", "list"])?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect())
}

/// Pids of the processes whose network namespace is `name` (`ip netns pids`).
fn pids_in(name: &str) -> Result<Vec<libc::pid_t>> {
    let out = ip(&["netns", "pids", name])?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect())
}

/// SIGKILLs every process in namespace `name` (never this process or its parent) and waits
/// briefly for them to be gone, so deleting the namespace really frees it.
fn kill_all_in(name: &str) -> Result<()> {
    let me = std::process::id() as libc::pid_t;
    // SAFETY: getppid has no preconditions.
    let parent = unsafe { libc::getppid() };
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let pids: Vec<_> = pids_in(name)?
            .into_iter()
            .filter(|&p| p > 1 && p != me && p != parent)
            .collect();
        if pids.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("processes {pids:?} in netns {name} survived SIGKILL");
        }
        for p in pids {
            // SAFETY: plain syscall on a positive pid.
            unsafe { libc::kill(p, libc::SIGKILL) };
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Deletes namespace `name` after killing what runs in it; retries a little because the
/// kernel may still be tearing down a killed process's references.
fn destroy(name: &str) -> Result<()> {
    let killed = kill_all_in(name);
    let mut last = None;
    for _ in 0..5 {
        match ip(&["netns", "del", name]) {
            Ok(_) => {
                last = None;
                break;
            }
            Err(e) => {
                if !list().map(|l| l.iter().any(|n| n == name)).unwrap_or(true) {
                    // Someone else (a concurrent sweep) removed it: that is success.
                    last = None;
                    break;
                }
                last = Some(e);
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
    match (last, killed) {
        (Some(e), _) => Err(e),
        (None, Err(e)) => Err(e.context(format!("netns {name} deleted, but"))),
        (None, Ok(())) => Ok(()),
    }
}

/// Whether a process with this pid exists (EPERM counts as alive: it exists, we just may
/// not signal it).
fn pid_alive(pid: libc::pid_t) -> bool {
    if pid <= 0 {
        return false;
    }
    // SAFETY: signal 0 only checks for existence.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Parses the pid out of a name made by [`Netns::new`]: `PREFIX-PID-COUNTER-SUFFIX`.
/// Names of another shape return `None`, so a sweep never touches foreign namespaces.
fn pid_of_name(name: &str) -> Option<libc::pid_t> {
    let mut parts = name.rsplitn(4, '-');
    let suffix = parts.next()?;
    let counter = parts.next()?;
    let pid = parts.next()?;
    let rest = parts.next()?;
    if rest.is_empty()
        || suffix.is_empty()
        || !suffix.chars().all(|c| c.is_ascii_hexdigit())
        || counter.is_empty()
        || !counter.chars().all(|c| c.is_ascii_digit())
    {
        return None;
    }
    pid.parse().ok()
}

/// Deletes the namespaces whose name starts with `prefix`, has the shape [`Netns::new`]
/// gives, and embeds the pid of a process that no longer exists: the leftovers of a test
/// run that was killed before its `Drop`s ran. Returns the names it removed.
///
/// Best effort by design: a namespace that cannot be removed is reported on stderr and
/// skipped, because one stuck leftover must not fail every later test.
pub fn sweep_stale(prefix: &str) -> Result<Vec<String>> {
    let mut removed = Vec::new();
    for name in list().context("listing namespaces to sweep")? {
        if !name.starts_with(prefix) {
            continue;
        }
        let Some(pid) = pid_of_name(&name) else {
            continue;
        };
        if pid_alive(pid) {
            continue;
        }
        match destroy(&name) {
            Ok(()) => removed.push(name),
            Err(e) => eprintln!("lb-tests: could not sweep stale netns {name}: {e:#}"),
        }
    }
    Ok(removed)
}

/// Polls `condition` every 20 ms until it returns true or `timeout` passes. Tests wait for
/// kernel state (carrier, addresses, a daemon's socket) this way instead of sleeping a
/// fixed time, which is both slower and flaky.
pub fn wait_for<F: FnMut() -> bool>(mut condition: F, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("condition not met within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The MAC address of `ifname` inside `ns`, for tests that build or check Ethernet frames
/// (the XDP DSR path rewrites MACs).
pub fn mac(ns: &Netns, ifname: &str) -> Result<[u8; 6]> {
    let out = ns.ip(&["-o", "link", "show", "dev", ifname])?;
    let text = String::from_utf8_lossy(&out.stdout);
    let addr = text
        .split_whitespace()
        .skip_while(|w| *w != "link/ether")
        .nth(1)
        .ok_or_else(|| {
            anyhow!(
                "no link/ether address for {ifname} in netns {}: {text}",
                ns.name()
            )
        })?;
    parse_mac(addr)
}

/// Parses `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(s: &str) -> Result<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = s.split(':');
    for b in mac.iter_mut() {
        let p = parts
            .next()
            .ok_or_else(|| anyhow!("MAC {s:?} is too short"))?;
        *b = u8::from_str_radix(p, 16).with_context(|| format!("bad MAC {s:?}"))?;
    }
    if parts.next().is_some() {
        bail!("MAC {s:?} is too long");
    }
    Ok(mac)
}

/// Runs `ethtool -K IFNAME tx off` inside `ns`. veth hands out partially checksummed
/// frames that XDP_TX forwards unfinished; turning transmit offload off on the sending side
/// makes frames carry full checksums, as a real NIC's would (TOOLCHAIN.md section 5).
pub fn disable_tx_offload(ns: &Netns, ifname: &str) -> Result<()> {
    ns.exec(&["ethtool", "-K", ifname, "tx", "off"]).map(drop)
}

/// Creates a veth pair with one end in `a` named `ifname_a` and the other in `b` named
/// `ifname_b`, and sets both up (waiting for carrier). Names only need to be unique within
/// their namespace: the pair is created under unique temporary names directly inside the
/// target namespaces, then renamed, so the root namespace never holds it and parallel tests
/// can all use `eth0`. On any failure the half-made pair is deleted.
pub fn veth_pair(a: &Netns, b: &Netns, ifname_a: &str, ifname_b: &str) -> Result<()> {
    check_ifname(ifname_a)?;
    check_ifname(ifname_b)?;
    if a.name() == b.name() && ifname_a == ifname_b {
        bail!(
            "both ends of a veth pair in netns {} cannot be named {ifname_a}",
            a.name()
        );
    }
    let (tmp_a, tmp_b) = temp_ifnames();
    #[rustfmt::skip]
    ip(&["link", "add", &tmp_a, "netns", a.name(), "type", "veth",
         "peer", "name", &tmp_b, "netns", b.name()])
        .with_context(|| format!("creating veth pair {}/{ifname_a} <-> {}/{ifname_b}", a.name(), b.name()))?;
    // From here on the pair exists; `current_a` is the name under which it can be deleted.
    let mut current_a = tmp_a.clone();
    let result = (|| -> Result<()> {
        a.ip(&["link", "set", "dev", &tmp_a, "name", ifname_a])?;
        current_a = ifname_a.to_owned();
        b.ip(&["link", "set", "dev", &tmp_b, "name", ifname_b])?;
        a.link_up(ifname_a)?;
        b.link_up(ifname_b)?;
        a.wait_link_up(ifname_a, LINK_UP_TIMEOUT)?;
        b.wait_link_up(ifname_b, LINK_UP_TIMEOUT)?;
        Ok(())
    })();
    if let Err(e) = result {
        // Deleting one end deletes the pair.
        let _ = a.ip(&["link", "del", "dev", &current_a]);
        return Err(e.context(format!(
            "setting up veth pair {}/{ifname_a} <-> {}/{ifname_b}",
            a.name(),
            b.name()
        )));
    }
    Ok(())
}

/// A network namespace that exists exactly as long as this value.
///
/// The name is `PREFIX-PID-COUNTER-SUFFIX`: unique among parallel tests (counter), among
/// parallel test processes (pid), and across pid reuse (time-derived suffix), and it lets
/// [`sweep_stale`] recognise leftovers of dead processes. `Drop` kills every process still
/// inside and deletes the namespace, which destroys its interfaces (and with them the far
/// ends of its veth pairs).
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates a fresh namespace with `lo` up. `prefix` says which test owns it (ASCII
    /// letters, digits, `-_.`); stale namespaces of the same prefix left by killed runs are
    /// swept first (best effort).
    pub fn new(prefix: &str) -> Result<Netns> {
        check_prefix(prefix)?;
        let _ = sweep_stale(prefix);
        let counter = next_counter();
        let name = format!(
            "{prefix}-{}-{counter}-{:04x}",
            std::process::id(),
            time_suffix(counter)
        );
        ip(&["netns", "add", &name]).with_context(|| format!("creating netns {name}"))?;
        // From here on Drop removes it, also when the rest of the setup fails.
        let ns = Netns { name };
        ns.link_up("lo")?;
        // No duplicate address detection on interfaces created or moved here later: while
        // a link-local address is tentative the kernel sends no neighbour solicitation for
        // replies from other source addresses (a DSR backend answering from its VIP), so
        // a test's first IPv6 packets could go unanswered for a second or two. Best effort:
        // a kernel without IPv6 has no such keys.
        for key in [
            "net.ipv6.conf.all.accept_dad",
            "net.ipv6.conf.default.accept_dad",
        ] {
            let _ = ns.sysctl(key, "0");
        }
        Ok(ns)
    }

    /// The namespace's name, as `ip netns` and `ip -n` know it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The bind mount that names the namespace (`/run/netns/NAME`); open it to `setns(2)`
    /// or to hand it to tools that take a netns path.
    pub fn path(&self) -> PathBuf {
        PathBuf::from(NETNS_RUN_DIR).join(&self.name)
    }

    /// A `Command` that runs `program` in this namespace through `ip netns exec NAME`, for
    /// callers that need to set arguments, environment or stdio themselves.
    ///
    /// Note: `ip netns exec` gives the program a private mount namespace with a fresh
    /// `/sys`, which hides the host's bpffs at `/sys/fs/bpf`; use
    /// [`Netns::command_net_only`] for programs that pin BPF objects.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).arg(program);
        cmd
    }

    /// A `Command` that enters only this network namespace (via `setns(2)` between fork
    /// and exec) and keeps the caller's mounts, so `/sys/fs/bpf` is the host's bpffs and
    /// pinned maps survive a daemon restart. `/sys/class/net` still shows the root
    /// namespace's devices; netlink and ioctls see this namespace.
    pub fn command_net_only(&self, program: impl AsRef<OsStr>) -> Result<Command> {
        let file = File::open(self.path())
            .with_context(|| format!("opening {}", self.path().display()))?;
        let mut cmd = Command::new(program);
        let fd = file.as_raw_fd();
        // SAFETY: the closure runs between fork and exec and only makes the async-signal-
        // safe setns syscall; `file` is moved into it so `fd` stays open until spawn.
        unsafe {
            cmd.pre_exec(move || {
                let _keep_open = &file;
                if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        Ok(cmd)
    }

    fn args_command(&self, args: &[&str]) -> Result<Command> {
        let (program, rest) = args
            .split_first()
            .ok_or_else(|| anyhow!("empty command for netns {}", self.name))?;
        let mut cmd = self.command(program);
        cmd.args(rest);
        Ok(cmd)
    }

    /// Runs `args` in this namespace and returns its output; a non-zero exit is an error
    /// naming the command line and carrying its stderr. Killed after [`EXEC_TIMEOUT`].
    pub fn exec(&self, args: &[&str]) -> Result<Output> {
        self.exec_timeout(args, EXEC_TIMEOUT)
    }

    /// [`Netns::exec`] with a caller-chosen time limit.
    pub fn exec_timeout(&self, args: &[&str], timeout: Duration) -> Result<Output> {
        run_checked(self.args_command(args)?, timeout)
    }

    /// [`Netns::exec`] returning stdout as text, for commands whose output is the point.
    pub fn exec_stdout(&self, args: &[&str]) -> Result<String> {
        let out = self.exec(args)?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Runs `args` and returns its output whatever the exit status, for tests that expect
    /// failure (a refused connection, a dropped packet). Still errors on timeout.
    pub fn exec_unchecked(&self, args: &[&str]) -> Result<Output> {
        run_bounded(self.args_command(args)?, EXEC_TIMEOUT)
    }

    /// Whether `args` exits 0 within [`EXEC_TIMEOUT`]; handy inside [`wait_for`].
    pub fn exec_ok(&self, args: &[&str]) -> bool {
        self.exec(args).is_ok()
    }

    /// Runs `ip -n NAME ARGS`: configuring this namespace's links, addresses and routes.
    pub fn ip(&self, args: &[&str]) -> Result<Output> {
        let mut full = vec!["-n", self.name.as_str()];
        full.extend_from_slice(args);
        ip(&full)
    }

    /// Sets `ifname` up.
    pub fn link_up(&self, ifname: &str) -> Result<()> {
        self.ip(&["link", "set", "dev", ifname, "up"]).map(drop)
    }

    /// Adds an address in CIDR form (`198.18.0.1/24`, `2001:db8::1/64`) to `ifname`. IPv6
    /// addresses are added `nodad`, so they are usable at once instead of after ~1 s of
    /// duplicate address detection.
    pub fn add_addr(&self, ifname: &str, cidr: &str) -> Result<()> {
        if cidr.contains(':') {
            self.ip(&["-6", "addr", "add", cidr, "dev", ifname, "nodad"])
        } else {
            self.ip(&["addr", "add", cidr, "dev", ifname])
        }
        .map(drop)
    }

    /// Waits until `ifname` reports operational state UP (carrier on both ends of a veth),
    /// so that the first packet a test sends is not lost to a link still coming up.
    pub fn wait_link_up(&self, ifname: &str, timeout: Duration) -> Result<()> {
        let mut last = String::new();
        wait_for(
            || match self.ip(&["-o", "link", "show", "dev", ifname]) {
                Ok(out) => {
                    last = String::from_utf8_lossy(&out.stdout).into_owned();
                    last.contains(" state UP ")
                }
                Err(e) => {
                    last = format!("{e:#}");
                    false
                }
            },
            timeout,
        )
        .with_context(|| format!("{ifname} in netns {} not up: {}", self.name, last.trim()))
    }

    /// Writes a sysctl for this namespace (`net.ipv4.ip_forward`, `1`). Written from a
    /// thread inside the namespace, so it needs no `sysctl` binary; keys with dots in an
    /// interface name are not supported.
    pub fn sysctl(&self, key: &str, value: &str) -> Result<()> {
        let path = PathBuf::from("/proc/sys").join(key.replace('.', "/"));
        self.run(|| std::fs::write(&path, value))?
            .with_context(|| format!("sysctl {key}={value} in netns {}", self.name))
    }

    /// Runs `f` on a thread that has entered this network namespace and returns its result.
    /// Sockets created in `f` belong to the namespace for their whole life, which lets a test
    /// be client or server inside a namespace without any external program. (A socket kept
    /// past the `Netns` keeps the kernel namespace alive after its name is deleted.)
    pub fn run<F, R>(&self, f: F) -> Result<R>
    where
        F: FnOnce() -> R + Send,
        R: Send,
    {
        let file = File::open(self.path())
            .with_context(|| format!("opening {}", self.path().display()))?;
        std::thread::scope(|s| {
            let handle = s.spawn(move || -> Result<R> {
                // SAFETY: setns on a namespace fd changes only this thread's namespace.
                if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                    return Err(std::io::Error::last_os_error()).context("setns(CLONE_NEWNET)");
                }
                drop(file);
                Ok(f())
            });
            match handle.join() {
                Ok(r) => r,
                Err(panic) => std::panic::resume_unwind(panic),
            }
        })
        .with_context(|| format!("running in netns {}", self.name))
    }

    /// Sends one ICMP (or ICMPv6) echo request from this namespace to `addr` and reports
    /// whether the matching reply arrived within `timeout`. Implemented with a raw socket
    /// in-process, so tests do not depend on `ping` being installed. Unreachable networks
    /// count as "no reply"; other socket errors are errors.
    pub fn ping(&self, addr: IpAddr, timeout: Duration) -> Result<bool> {
        let id = (std::process::id() as u64 ^ next_counter().wrapping_mul(0x9e37)) as u16;
        self.run(|| icmp_echo(addr, id, timeout))?
            .with_context(|| format!("ping {addr} from netns {}", self.name))
    }

    /// Starts `args` in this namespace with stdin and stdout piped and stderr inherited, and
    /// returns a handle that kills and reaps it on drop. Read its stdout (or use
    /// [`NsProcess::spawn`] with your own stdio) if it writes more than a pipe holds.
    pub fn spawn(&self, args: &[&str]) -> Result<NsProcess> {
        let mut cmd = self.args_command(args)?;
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        NsProcess::spawn(cmd)
    }

    /// Pids of the processes currently inside this namespace.
    pub fn pids(&self) -> Result<Vec<i32>> {
        pids_in(&self.name)
    }

    /// The MAC address of `ifname` here; see [`mac`].
    pub fn mac(&self, ifname: &str) -> Result<[u8; 6]> {
        mac(self, ifname)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Err(e) = destroy(&self.name) {
            // Never panic in Drop (it may run during unwinding); say what leaked.
            eprintln!("lb-tests: cleaning up netns {}: {e:#}", self.name);
        }
    }
}

/// A process started in a namespace; dropping it SIGKILLs its process group and reaps it, so
/// a failing test never leaves a daemon running.
///
/// The process leads its own process group, so children it forks die with it, and a
/// Ctrl-C meant for the test runner does not reach it (the namespace's `Drop` or
/// [`sweep_stale`] does).
#[derive(Debug)]
pub struct NsProcess {
    child: Child,
    desc: String,
    status: Option<ExitStatus>,
}

impl NsProcess {
    /// Spawns `cmd` (typically from [`Netns::command`] or [`Netns::command_net_only`]) in a
    /// new process group and wraps it.
    pub fn spawn(mut cmd: Command) -> Result<NsProcess> {
        let desc = describe(&cmd);
        cmd.process_group(0);
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start `{desc}`"))?;
        Ok(NsProcess {
            child,
            desc,
            status: None,
        })
    }

    /// The process id (also its process group id), e.g. to check it is gone.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The child's stdin, if piped and not taken.
    pub fn stdin(&mut self) -> Option<&mut ChildStdin> {
        self.child.stdin.as_mut()
    }

    /// The child's stdout, if piped and not taken.
    pub fn stdout(&mut self) -> Option<&mut ChildStdout> {
        self.child.stdout.as_mut()
    }

    /// The child's stderr, if piped and not taken.
    pub fn stderr(&mut self) -> Option<&mut ChildStderr> {
        self.child.stderr.as_mut()
    }

    /// Takes stdin, e.g. to close it (EOF) or move it to a writer thread.
    pub fn take_stdin(&mut self) -> Option<ChildStdin> {
        self.child.stdin.take()
    }

    /// Takes stdout, e.g. to wrap it in a `BufReader` on a reader thread.
    pub fn take_stdout(&mut self) -> Option<ChildStdout> {
        self.child.stdout.take()
    }

    /// Takes stderr, e.g. to wrap it in a `BufReader` on a reader thread.
    pub fn take_stderr(&mut self) -> Option<ChildStderr> {
        self.child.stderr.take()
    }

    /// Sends `signal` (`libc::SIGTERM`, `libc::SIGHUP` for a reload, ...) to the process.
    /// Does nothing once it has been reaped, so a recycled pid is never signalled.
    pub fn kill_with(&mut self, signal: libc::c_int) -> Result<()> {
        if self.try_wait()?.is_some() {
            return Ok(());
        }
        let pid = libc::pid_t::try_from(self.pid()).context("pid out of range")?;
        // SAFETY: plain syscall on our own unreaped child.
        if unsafe { libc::kill(pid, signal) } != 0 {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("kill({pid}, {signal}) for `{}`", self.desc));
        }
        Ok(())
    }

    /// Returns the exit status if the process has exited, without blocking.
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>> {
        if self.status.is_none() {
            self.status = self
                .child
                .try_wait()
                .with_context(|| format!("waiting for `{}`", self.desc))?;
        }
        Ok(self.status)
    }

    /// Waits up to `timeout` for the process to exit; `Ok(None)` if it is still running.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Result<Option<ExitStatus>> {
        let deadline = Instant::now() + timeout;
        let mut pause = Duration::from_millis(1);
        loop {
            if let Some(status) = self.try_wait()? {
                return Ok(Some(status));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            std::thread::sleep(pause.min(deadline.saturating_duration_since(Instant::now())));
            pause = (pause * 2).min(Duration::from_millis(20));
        }
    }

    /// Graceful stop: SIGTERM, wait up to `grace`, then SIGKILL the group. Returns the
    /// exit status so a test can check a daemon shut down cleanly.
    pub fn stop(&mut self, grace: Duration) -> Result<ExitStatus> {
        self.kill_with(libc::SIGTERM)?;
        if let Some(status) = self.wait_timeout(grace)? {
            return Ok(status);
        }
        self.kill_group();
        self.wait_timeout(Duration::from_secs(10))?
            .ok_or_else(|| anyhow!("`{}` survived SIGKILL", self.desc))
    }

    /// Whether the process is still running (not yet exited).
    pub fn is_running(&mut self) -> bool {
        matches!(self.try_wait(), Ok(None))
    }

    fn kill_group(&mut self) {
        // Only while unreaped: the pid (= pgid) cannot have been recycled yet.
        if self.status.is_none() {
            killpg(self.child.id(), libc::SIGKILL);
            let _ = self.child.kill();
        }
    }
}

impl Drop for NsProcess {
    fn drop(&mut self) {
        self.kill_group();
        if self.status.is_none() {
            let _ = self.child.wait();
        }
    }
}

/// The Internet checksum (RFC 1071) over `data`.
fn inet_checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for chunk in data.chunks(2) {
        let word = match chunk {
            [a, b] => u16::from_be_bytes([*a, *b]),
            [a] => u16::from_be_bytes([*a, 0]),
            _ => 0,
        };
        sum += u32::from(word);
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// One echo request/reply exchange over a raw socket in the calling thread's namespace.
fn icmp_echo(addr: IpAddr, id: u16, timeout: Duration) -> Result<bool> {
    const SEQ: u16 = 1;
    let payload = b"lb-tests harness";
    let (family, proto, req_type, reply_type) = match addr {
        IpAddr::V4(_) => (libc::AF_INET, libc::IPPROTO_ICMP, 8u8, 0u8),
        IpAddr::V6(_) => (libc::AF_INET6, libc::IPPROTO_ICMPV6, 128u8, 129u8),
    };
    // SAFETY: plain syscall; the fd is owned right away.
    let raw = unsafe { libc::socket(family, libc::SOCK_RAW | libc::SOCK_CLOEXEC, proto) };
    if raw < 0 {
        return Err(std::io::Error::last_os_error()).context("raw ICMP socket");
    }
    // SAFETY: `raw` is a fresh, valid fd that nothing else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(raw) };

    let mut pkt = vec![req_type, 0, 0, 0];
    pkt.extend_from_slice(&id.to_be_bytes());
    pkt.extend_from_slice(&SEQ.to_be_bytes());
    pkt.extend_from_slice(payload);
    if addr.is_ipv4() {
        // The kernel fills in the ICMPv6 checksum (it covers a pseudo-header); ICMPv4's we do.
        let c = inet_checksum(&pkt);
        pkt[2..4].copy_from_slice(&c.to_be_bytes());
    }

    let sent = match addr {
        IpAddr::V4(v4) => {
            // SAFETY: zeroed sockaddr_in is a valid value.
            let mut sa: libc::sockaddr_in = unsafe { std::mem::zeroed() };
            sa.sin_family = libc::AF_INET as libc::sa_family_t;
            sa.sin_addr.s_addr = u32::from(v4).to_be();
            // SAFETY: pointers and lengths describe live buffers.
            unsafe {
                libc::sendto(
                    sock.as_raw_fd(),
                    pkt.as_ptr().cast(),
                    pkt.len(),
                    0,
                    (&sa as *const libc::sockaddr_in).cast(),
                    std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
                )
            }
        }
        IpAddr::V6(v6) => {
            // SAFETY: zeroed sockaddr_in6 is a valid value.
            let mut sa: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
            sa.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sa.sin6_addr.s6_addr = v6.octets();
            // SAFETY: pointers and lengths describe live buffers.
            unsafe {
                libc::sendto(
                    sock.as_raw_fd(),
                    pkt.as_ptr().cast(),
                    pkt.len(),
                    0,
                    (&sa as *const libc::sockaddr_in6).cast(),
                    std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
                )
            }
        }
    };
    if sent < 0 {
        let e = std::io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::ENETUNREACH | libc::EHOSTUNREACH | libc::EADDRNOTAVAIL) => Ok(false),
            _ => Err(e).context("sending echo request"),
        };
    }

    let deadline = Instant::now() + timeout;
    let mut buf = [0u8; 2048];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(false);
        }
        let mut pfd = libc::pollfd {
            fd: sock.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = left.as_millis().clamp(1, i32::MAX as u128) as libc::c_int;
        // SAFETY: one valid pollfd.
        let r = unsafe { libc::poll(&mut pfd, 1, ms) };
        if r < 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(e).context("poll on ICMP socket");
        }
        if r == 0 {
            return Ok(false);
        }
        // SAFETY: zeroed sockaddr_storage is valid; lengths match the buffers.
        let mut from: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        let mut from_len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        let n = unsafe {
            libc::recvfrom(
                sock.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT,
                (&mut from as *mut libc::sockaddr_storage).cast(),
                &mut from_len,
            )
        };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if matches!(e.raw_os_error(), Some(libc::EINTR | libc::EAGAIN)) {
                continue;
            }
            return Err(e).context("receiving echo reply");
        }
        let data = &buf[..n as usize];
        let (src, icmp) = match addr {
            IpAddr::V4(_) => {
                // Raw IPv4 sockets deliver the IP header too.
                let Some(&vihl) = data.first() else { continue };
                let ihl = usize::from(vihl & 0x0f) * 4;
                if data.len() < ihl.max(20) {
                    continue;
                }
                let src = Ipv4Addr::new(data[12], data[13], data[14], data[15]);
                (IpAddr::V4(src), &data[ihl..])
            }
            IpAddr::V6(_) => {
                // SAFETY: the kernel filled `from` as a sockaddr_in6 for an AF_INET6 socket.
                let sa6 = unsafe {
                    *(&from as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>()
                };
                (IpAddr::V6(Ipv6Addr::from(sa6.sin6_addr.s6_addr)), data)
            }
        };
        if icmp.len() >= 8
            && icmp[0] == reply_type
            && icmp[4..6] == id.to_be_bytes()
            && icmp[6..8] == SEQ.to_be_bytes()
            && src == addr
        {
            return Ok(true);
        }
    }
}

/// One namespace of a [`Topology`], with the addresses the builder gave it.
#[derive(Debug)]
pub struct Host {
    ns: Netns,
    ifname: String,
    ipv4: Ipv4Addr,
    ipv6: Option<Ipv6Addr>,
}

impl Host {
    /// The host's namespace, to run programs in.
    pub fn ns(&self) -> &Netns {
        &self.ns
    }

    /// The interface that carries the host's addresses (`eth0`, or `br0` for the host that
    /// holds the bridge).
    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    /// The host's IPv4 address (198.18.SUBNET.(index+1), prefix length 24).
    pub fn ipv4(&self) -> Ipv4Addr {
        self.ipv4
    }

    /// The host's IPv6 address (2001:db8:0:SUBNET::(index+1), prefix length 64), if the
    /// topology was built with IPv6.
    pub fn ipv6(&self) -> Option<Ipv6Addr> {
        self.ipv6
    }

    /// The MAC address of the host's interface.
    pub fn mac(&self) -> Result<[u8; 6]> {
        mac(&self.ns, &self.ifname)
    }
}

/// Which namespace holds the bridge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BridgeAt {
    Own,
    Host(usize),
}

/// Builds a [`Topology`]: N hosts on one Ethernet segment (a Linux bridge), the shape of
/// the load balancer's front network (clients, LB nodes and backends on one L2 segment).
#[derive(Debug, Clone)]
pub struct TopologyBuilder {
    prefix: String,
    hosts: usize,
    ipv6: bool,
    subnet: u8,
    bridge: BridgeAt,
    tx_offload_off: bool,
}

impl TopologyBuilder {
    /// Starts a builder; `prefix` names the namespaces (see [`Netns::new`]). Defaults:
    /// 2 hosts, IPv4 only, subnet 0, bridge in its own namespace, offloads untouched.
    pub fn new(prefix: &str) -> TopologyBuilder {
        TopologyBuilder {
            prefix: prefix.to_owned(),
            hosts: 2,
            ipv6: false,
            subnet: 0,
            bridge: BridgeAt::Own,
            tx_offload_off: false,
        }
    }

    /// Number of hosts (1..=250).
    pub fn hosts(mut self, n: usize) -> Self {
        self.hosts = n;
        self
    }

    /// Also give every host an IPv6 address in 2001:db8:0:SUBNET::/64.
    pub fn ipv6(mut self, on: bool) -> Self {
        self.ipv6 = on;
        self
    }

    /// The third octet of 198.18.SUBNET.0/24 (and the fourth group of the IPv6 prefix), so
    /// that a test joining two topologies can keep their subnets apart.
    pub fn subnet(mut self, subnet: u8) -> Self {
        self.subnet = subnet;
        self
    }

    /// Put the bridge inside host `index`'s namespace instead of a namespace of its own;
    /// that host's addresses then live on `br0` (a router or LB node that is the segment).
    pub fn bridge_in_host(mut self, index: usize) -> Self {
        self.bridge = BridgeAt::Host(index);
        self
    }

    /// Run `ethtool -K eth0 tx off` on every host's veth, so frames carry full checksums
    /// as from a real NIC (needed when XDP_TX forwards them).
    pub fn disable_tx_offload(mut self, on: bool) -> Self {
        self.tx_offload_off = on;
        self
    }

    /// Creates the namespaces, the bridge and the links, sets addresses, and waits until
    /// every link has carrier. Whatever was created is removed again if a step fails.
    pub fn build(self) -> Result<Topology> {
        if self.hosts == 0 || self.hosts > 250 {
            bail!("a topology needs 1..=250 hosts, not {}", self.hosts);
        }
        if let BridgeAt::Host(i) = self.bridge {
            if i >= self.hosts {
                bail!("bridge_in_host({i}) but only {} hosts", self.hosts);
            }
        }
        let bridge_own = match self.bridge {
            BridgeAt::Own => Some(Netns::new(&format!("{}-br", self.prefix))?),
            BridgeAt::Host(_) => None,
        };
        let mut hosts = Vec::with_capacity(self.hosts);
        for i in 0..self.hosts {
            let ifname = if self.bridge == BridgeAt::Host(i) {
                BRIDGE_IFNAME
            } else {
                HOST_IFNAME
            };
            hosts.push(Host {
                ns: Netns::new(&format!("{}-h{i}", self.prefix))?,
                ifname: ifname.to_owned(),
                ipv4: Ipv4Addr::new(198, 18, self.subnet, i as u8 + 1),
                ipv6: self.ipv6.then(|| {
                    Ipv6Addr::new(
                        0x2001,
                        0xdb8,
                        0,
                        u16::from(self.subnet),
                        0,
                        0,
                        0,
                        i as u16 + 1,
                    )
                }),
            });
        }
        let topo = Topology {
            hosts,
            bridge: bridge_own,
            bridge_host: match self.bridge {
                BridgeAt::Own => None,
                BridgeAt::Host(i) => Some(i),
            },
        };
        // From here on dropping `topo` removes everything.
        let br = topo.bridge_ns();
        br.ip(&[
            "link",
            "add",
            BRIDGE_IFNAME,
            "type",
            "bridge",
            "mcast_snooping",
            "0",
        ])?;
        br.link_up(BRIDGE_IFNAME)?;
        for (i, host) in topo.hosts.iter().enumerate() {
            if topo.bridge_host == Some(i) {
                continue;
            }
            let port = format!("p{i}");
            veth_pair(&host.ns, br, HOST_IFNAME, &port)?;
            br.ip(&["link", "set", "dev", &port, "master", BRIDGE_IFNAME])?;
            if self.tx_offload_off {
                disable_tx_offload(&host.ns, HOST_IFNAME)?;
            }
        }
        if topo.hosts.len() > 1 || topo.bridge_host.is_none() {
            br.wait_link_up(BRIDGE_IFNAME, LINK_UP_TIMEOUT)?;
        }
        for host in &topo.hosts {
            host.ns
                .add_addr(&host.ifname, &format!("{}/24", host.ipv4))?;
            if let Some(v6) = host.ipv6 {
                host.ns.add_addr(&host.ifname, &format!("{v6}/64"))?;
            }
        }
        Ok(topo)
    }
}

/// N hosts on one bridged Ethernet segment, each in its own namespace; everything is
/// removed when this value drops.
#[derive(Debug)]
pub struct Topology {
    hosts: Vec<Host>,
    bridge: Option<Netns>,
    bridge_host: Option<usize>,
}

impl Topology {
    /// Starts a [`TopologyBuilder`].
    pub fn builder(prefix: &str) -> TopologyBuilder {
        TopologyBuilder::new(prefix)
    }

    /// All hosts, in index order.
    pub fn hosts(&self) -> &[Host] {
        &self.hosts
    }

    /// Host `index`; panics when out of range, like slice indexing (a test bug).
    pub fn host(&self, index: usize) -> &Host {
        &self.hosts[index]
    }

    /// The namespace holding the bridge `br0` (its own, or a host's), for tests that attach
    /// more links to the segment or capture on it.
    pub fn bridge_ns(&self) -> &Netns {
        match (&self.bridge, self.bridge_host) {
            (Some(ns), _) => ns,
            (None, Some(i)) => &self.hosts[i].ns,
            (None, None) => unreachable!("a topology always has a bridge"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_made_by_new_parse_back_to_their_pid() {
        assert_eq!(pid_of_name("lbt-1234-7-beef"), Some(1234));
        assert_eq!(pid_of_name("a-b-c-1234-0-0a1f"), Some(1234));
        // Not our shape: a sweep must leave these alone.
        assert_eq!(pid_of_name("lbt-foreign"), None);
        assert_eq!(pid_of_name("lbt-1234-x-beef"), None);
        assert_eq!(pid_of_name("lbt-1234-7-zz"), None);
        assert_eq!(pid_of_name("1234-7-beef"), None);
        assert_eq!(pid_of_name("lbt-abc-7-beef"), None);
    }

    #[test]
    fn temp_ifnames_fit_ifnamsiz() {
        let (a, b) = temp_ifnames();
        assert!(a.len() <= IFNAME_MAX && b.len() <= IFNAME_MAX, "{a} {b}");
        assert_ne!(a, b);
        check_ifname(&a).unwrap();
        assert!(check_ifname("0123456789abcdef").is_err());
        assert!(check_ifname("a/b").is_err());
    }

    #[test]
    fn checksum_matches_rfc1071_example() {
        // RFC 1071 section 3 example words sum to 0xddf2; the checksum is its complement.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(inet_checksum(&data), !0xddf2);
        assert_eq!(
            parse_mac("02:fc:00:00:00:01").unwrap(),
            [2, 0xfc, 0, 0, 0, 1]
        );
        assert!(parse_mac("02:fc:00").is_err());
    }
}
