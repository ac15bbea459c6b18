//! Membership: VRRPv3 (RFC 5798) on the wire, so `lb` nodes elect a master among
//! themselves and with keepalived.
//!
//! Split by concern: [`packet`] (bytes and the receive checks), [`state`] (the RFC state
//! machine, pure and clock-injected), [`socket`] (raw protocol-112 sockets), [`announce`]
//! (gratuitous ARP / unsolicited NA), [`status`] (what `lb vrrp-status` shows), and the
//! per-instance task that wires them together. The daemon sees only [`Membership`] and a
//! stream of [`RoleEvent`]s: it attaches XDP while any instance is master and detaches
//! when none is; the instances add and remove their own VIPs.
//!
//! Also: [`track`] (interfaces and services lowering the priority, keepalived's
//! `track_interface`/`track_script`), [`auth`] (optional HMAC-authenticated adverts with
//! replay protection, off by default so keepalived interoperates), and
//! [`Membership::reconfigure`] (a reload changes instances in place, without a role flap
//! on the unchanged ones).

pub mod announce;
pub mod auth;
pub mod iface;
mod instance;
pub mod packet;
pub mod socket;
pub mod state;
pub mod status;
pub mod track;

use crate::{config::VrrpConfig, control::ServiceAvailability, netlink_addr::AddrHandle};
use instance::{Inputs, Instance};
use status::StatusBoard;
use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};
use tokio::{
    sync::{mpsc, oneshot, watch},
    task::JoinSet,
};
use tracing::{info, warn};

/// SCHED_RR priority of the membership thread (1-99; low, so kernel threads win).
const RT_PRIORITY: libc::c_int = 10;
/// How long startup waits for an interface's primary address to appear.
const PRIMARY_WAIT: Duration = Duration::from_secs(3);

/// Why membership could not start.
#[derive(Debug, thiserror::Error)]
pub enum VrrpError {
    /// The configured interface does not exist.
    #[error("vrrp: interface {0:?} does not exist")]
    NoInterface(String),
    /// Reading the interface failed.
    #[error("vrrp: reading interface {interface}: {source}")]
    Interface {
        /// Interface name.
        interface: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The interface has no address to send adverts from.
    #[error(
        "vrrp: interface {interface} has no {} address to send adverts from",
        if *ipv6 { "IPv6 link-local" } else { "IPv4 (besides the VIPs)" }
    )]
    NoPrimary {
        /// Interface name.
        interface: String,
        /// The family looked for.
        ipv6: bool,
    },
    /// Socket setup failed.
    #[error(transparent)]
    Socket(#[from] socket::SocketError),
    /// Announcement socket setup failed.
    #[error(transparent)]
    Announce(#[from] announce::AnnounceError),
    /// The membership thread or its runtime could not be started.
    #[error("vrrp: cannot start the membership thread: {0}")]
    Runtime(#[source] std::io::Error),
    /// The netlink connection could not be opened.
    #[error(transparent)]
    Netlink(#[from] crate::netlink_addr::NetlinkAddrError),
}

/// What an instance asks of the daemon when its role changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Serving: the data plane must be attached.
    Master,
    /// Not serving (backup, fault, stopped).
    Backup,
}

/// A role change, sent to the daemon; the instance waits (bounded) until `done` is sent
/// or dropped, so XDP is attached before the VIP appears.
#[derive(Debug)]
pub struct RoleEvent {
    /// Instance name.
    pub instance: String,
    /// The new role.
    pub role: Role,
    /// Send (or drop) when the data plane is in place.
    pub done: oneshot::Sender<()>,
}

/// The running instances, on their own thread.
///
/// Membership runs on a dedicated thread with its own single-threaded runtime and a
/// raised scheduling priority (SCHED_RR, else nice -10, when allowed): a busy proxy, or a flood of junk
/// adverts handled by the same runtime, must not delay the master's adverts, or the
/// backups take over and the roles flap. keepalived has `vrrp_rt_priority` for the same
/// reason.
pub struct Membership {
    stop: watch::Sender<bool>,
    abort: Option<oneshot::Sender<()>>,
    done: Option<oneshot::Receiver<()>>,
    board: Arc<StatusBoard>,
    reload: mpsc::UnboundedSender<Vec<VrrpConfig>>,
    current: Mutex<Vec<VrrpConfig>>,
    xdp_first: Arc<AtomicBool>,
}

/// What a reload does to the running instances, by name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// New instances: opened and started.
    pub added: Vec<String>,
    /// Instances gone from the config: stopped gracefully (a master hands over).
    pub removed: Vec<String>,
    /// Same virtual router, new settings (priority, timers, preempt, tracking, key,
    /// notify, GARP): adopted in place, no transition.
    pub updated: Vec<String>,
    /// Another interface, VRID, VIPs or peers: stopped, then started again.
    pub restarted: Vec<String>,
    /// Nothing changed: left alone.
    pub unchanged: Vec<String>,
}

impl Plan {
    /// Compares the running instances with a reloaded config.
    pub fn new(old: &[VrrpConfig], new: &[VrrpConfig]) -> Plan {
        let mut p = Plan::default();
        for n in new {
            match old.iter().find(|o| o.name == n.name) {
                None => p.added.push(n.name.clone()),
                Some(o) if o == n => p.unchanged.push(n.name.clone()),
                Some(o) if o.same_router(n) => p.updated.push(n.name.clone()),
                Some(_) => p.restarted.push(n.name.clone()),
            }
        }
        for o in old {
            if !new.iter().any(|n| n.name == o.name) {
                p.removed.push(o.name.clone());
            }
        }
        p
    }

    /// One line for the reload answer and the log.
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        for (what, names) in [
            ("added", &self.added),
            ("removed", &self.removed),
            ("updated", &self.updated),
            ("restarted", &self.restarted),
            ("unchanged", &self.unchanged),
        ] {
            if !names.is_empty() {
                parts.push(format!("{what} {}", names.join(",")));
            }
        }
        format!("vrrp: {}", parts.join("; "))
    }
}

impl Membership {
    /// Starts one task per configured instance; role changes arrive on `events`. The
    /// status file goes to `status_path` if given. Returns once every instance's sockets
    /// are open (or with the first error).
    /// `services` is the state manager's service availability (`track_service`);
    /// `xdp_first`: the daemon has L4 VIPs (see [`Membership::set_xdp_first`]).
    pub async fn start(
        configs: &[VrrpConfig],
        status_path: Option<PathBuf>,
        events: mpsc::Sender<RoleEvent>,
        services: watch::Receiver<ServiceAvailability>,
        xdp_first: bool,
    ) -> Result<Self, VrrpError> {
        let xdp_first = Arc::new(AtomicBool::new(xdp_first));
        let (stop, stop_rx) = watch::channel(false);
        let (abort, abort_rx) = oneshot::channel::<()>();
        let (ready_tx, ready_rx) = oneshot::channel::<Result<(), VrrpError>>();
        let (done_tx, done) = oneshot::channel::<()>();
        let board = Arc::new(StatusBoard::new(status_path));
        let (reload, reload_rx) = mpsc::unbounded_channel();
        let current = Mutex::new(configs.to_vec());
        let configs = configs.to_vec();
        let b = board.clone();
        let x = Arc::clone(&xdp_first);
        std::thread::Builder::new()
            .name("lb-vrrp".into())
            .spawn(move || {
                raise_priority();
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(VrrpError::Runtime(e)));
                        return;
                    }
                };
                let io = Io {
                    xdp_first: x,
                    board: b,
                    events,
                    services,
                    stop: stop_rx,
                    abort: abort_rx,
                    reload: reload_rx,
                };
                rt.block_on(run_all(configs, io, ready_tx));
                drop(rt);
                let _ = done_tx.send(());
            })
            .map_err(VrrpError::Runtime)?;
        match ready_rx.await {
            Ok(Ok(())) => Ok(Self {
                stop,
                abort: Some(abort),
                done: Some(done),
                board,
                reload,
                current,
                xdp_first,
            }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(VrrpError::Runtime(std::io::Error::other(
                "membership thread died",
            ))),
        }
    }

    /// Applies a reloaded `[[vrrp]]` list (see [`Plan`]); returns the plan's summary.
    /// Instances whose settings did not change keep running untouched: no role change.
    pub fn reconfigure(&self, configs: &[VrrpConfig]) -> String {
        let mut cur = self.current.lock().unwrap_or_else(|e| e.into_inner());
        let plan = Plan::new(&cur, configs);
        *cur = configs.to_vec();
        let _ = self.reload.send(configs.to_vec());
        let line = plan.summary();
        info!("{line}");
        line
    }

    /// Whether a takeover must wait for XDP before adding the VIPs: true while the
    /// daemon has L4 VIPs (their flows must not reach the local stack); otherwise the
    /// VIPs and announcements go first and XDP is attached right after.
    pub fn set_xdp_first(&self, on: bool) {
        self.xdp_first.store(on, Ordering::Relaxed);
    }

    /// Starts the graceful stop of every instance (a master hands over first).
    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }

    /// Waits until every instance has finished; then (and on every later call) `None`.
    pub async fn join_next(&mut self) -> Option<()> {
        if let Some(done) = self.done.as_mut() {
            let _ = done.await;
            self.done = None;
        }
        None
    }

    /// Ends every instance at once, without a handover (a second signal).
    pub fn abort(&mut self) {
        if let Some(a) = self.abort.take() {
            let _ = a.send(());
        }
    }

    /// The current status lines.
    pub fn status(&self) -> Vec<String> {
        self.board.lines()
    }

    /// A function rendering the current status, for the admin socket's `show vrrp`.
    pub fn reporter(&self) -> Arc<dyn Fn() -> String + Send + Sync> {
        let board = Arc::clone(&self.board);
        Arc::new(move || board.lines().join("\n"))
    }

    /// Writes out the final status (on the calling thread, before the process exits).
    pub fn finish(&self) {
        self.board.flush_now();
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.abort();
    }
}

/// What the membership thread talks to.
struct Io {
    xdp_first: Arc<AtomicBool>,
    board: Arc<StatusBoard>,
    events: mpsc::Sender<RoleEvent>,
    services: watch::Receiver<ServiceAvailability>,
    stop: watch::Receiver<bool>,
    abort: oneshot::Receiver<()>,
    reload: mpsc::UnboundedReceiver<Vec<VrrpConfig>>,
}

/// A running instance as the membership thread sees it.
struct Slot {
    cfg: VrrpConfig,
    /// Distinguishes a restarted instance's task from its predecessor's.
    generation: u64,
    stop: watch::Sender<bool>,
    updates: watch::Sender<Arc<VrrpConfig>>,
}

/// Creates the per-instance inputs and its slot.
fn slot(
    cfg: &VrrpConfig,
    generation: u64,
    services: &watch::Receiver<ServiceAvailability>,
    links: &watch::Receiver<u64>,
    xdp_first: &Arc<AtomicBool>,
) -> (Slot, Inputs) {
    let (stop, stop_rx) = watch::channel(false);
    let (updates, updates_rx) = watch::channel(Arc::new(cfg.clone()));
    (
        Slot {
            cfg: cfg.clone(),
            generation,
            stop,
            updates,
        },
        Inputs {
            stop: stop_rx,
            updates: updates_rx,
            services: services.clone(),
            links: links.clone(),
            xdp_first: Arc::clone(xdp_first),
        },
    )
}

/// The membership thread's main task: open every instance, run them, apply reloads,
/// flush the status.
async fn run_all(configs: Vec<VrrpConfig>, io: Io, ready: oneshot::Sender<Result<(), VrrpError>>) {
    let Io {
        xdp_first,
        board,
        events,
        services,
        mut stop,
        abort,
        mut reload,
    } = io;
    let links = track::link_events();
    let mut slots: HashMap<String, Slot> = HashMap::new();
    let mut generation = 0u64;
    let opened = async {
        let addrs = AddrHandle::new()?;
        let mut instances = Vec::with_capacity(configs.len());
        for cfg in &configs {
            generation += 1;
            let (sl, inputs) = slot(cfg, generation, &services, &links, &xdp_first);
            let i = Instance::open(
                cfg.clone(),
                addrs.clone(),
                events.clone(),
                inputs,
                board.clone(),
                PRIMARY_WAIT,
            )
            .await?;
            slots.insert(cfg.name.clone(), sl);
            instances.push((i, generation));
        }
        Ok::<_, VrrpError>((addrs, instances))
    }
    .await;
    let (addrs, instances) = match opened {
        Ok(i) => {
            let _ = ready.send(Ok(()));
            i
        }
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let mut tasks: JoinSet<(String, u64)> = JoinSet::new();
    for (i, g) in instances {
        let name = i.cfg.name.clone();
        tasks.spawn(async move {
            i.run().await;
            (name, g)
        });
    }
    // Restarted instances wait here until their predecessor has let go of the VIPs.
    let mut pending: HashMap<String, VrrpConfig> = HashMap::new();
    let spawn = |tasks: &mut JoinSet<(String, u64)>,
                 slots: &mut HashMap<String, Slot>,
                 generation: &mut u64,
                 cfg: VrrpConfig| {
        *generation += 1;
        let g = *generation;
        let (sl, inputs) = slot(&cfg, g, &services, &links, &xdp_first);
        slots.insert(cfg.name.clone(), sl);
        let (addrs, events, board) = (addrs.clone(), events.clone(), board.clone());
        tasks.spawn(async move {
            let name = cfg.name.clone();
            match Instance::open(cfg, addrs, events, inputs, board, PRIMARY_WAIT).await {
                Ok(i) => i.run().await,
                Err(e) => warn!(instance = %name, "cannot start the reloaded VRRP instance: {e}"),
            }
            (name, g)
        });
    };
    let mut stopping = false;
    let mut flush = tokio::time::interval(status::FLUSH_INTERVAL);
    let mut abort_rx = abort;
    loop {
        tokio::select! {
            r = tasks.join_next() => {
                let Some(r) = r else { break };
                if let Ok((name, g)) = r {
                    if slots.get(&name).is_some_and(|s| s.generation == g) {
                        slots.remove(&name);
                    }
                    if let Some(cfg) = pending.remove(&name) {
                        if !stopping {
                            spawn(&mut tasks, &mut slots, &mut generation, cfg);
                        }
                    } else if !slots.contains_key(&name) {
                        board.forget(&name);
                    }
                }
                if tasks.is_empty() && (stopping || pending.is_empty()) {
                    break;
                }
            }
            Some(new) = reload.recv(), if !stopping => {
                let old: Vec<VrrpConfig> = slots.values().map(|s| s.cfg.clone()).collect();
                let plan = Plan::new(&old, &new);
                for name in plan.removed.iter().chain(&plan.restarted) {
                    if let Some(s) = slots.get(name) {
                        let _ = s.stop.send(true);
                    }
                }
                for cfg in new {
                    if plan.added.contains(&cfg.name) {
                        spawn(&mut tasks, &mut slots, &mut generation, cfg);
                    } else if plan.restarted.contains(&cfg.name) {
                        pending.insert(cfg.name.clone(), cfg);
                    } else if plan.updated.contains(&cfg.name) {
                        if let Some(s) = slots.get_mut(&cfg.name) {
                            s.cfg = cfg.clone();
                            let _ = s.updates.send(Arc::new(cfg));
                        }
                    }
                }
            }
            Ok(()) = stop.changed(), if !stopping => {
                if *stop.borrow() {
                    stopping = true;
                    pending.clear();
                    for s in slots.values() {
                        let _ = s.stop.send(true);
                    }
                }
            }
            _ = flush.tick() => board.flush(),
            _ = &mut abort_rx => break,
        }
    }
    board.flush();
}

/// Real-time round-robin scheduling at a low RT priority for this thread, falling back to
/// nice -10, then to the default. Adverts every 20 ms leave a backup 72 ms before it
/// declares the master dead; on a busy machine a normal thread was seen waiting 50-230 ms
/// for a CPU. The thread sleeps whenever no packet or timer is due, and the kernel's RT
/// throttling caps it even under a flood (keepalived's `vrrp_rt_priority` does the same).
fn raise_priority() {
    // SAFETY: sched_setscheduler/gettid/setpriority have no memory-safety preconditions;
    // `param` outlives the call.
    unsafe {
        let param = libc::sched_param {
            sched_priority: RT_PRIORITY,
        };
        if libc::sched_setscheduler(0, libc::SCHED_RR, &param) == 0 {
            return;
        }
        let rt = std::io::Error::last_os_error();
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        if libc::setpriority(libc::PRIO_PROCESS, tid, -10) != 0 {
            tracing::debug!(
                "membership thread keeps its priority: SCHED_RR: {rt}; nice: {}",
                std::io::Error::last_os_error()
            );
        }
    }
}

/// Where the daemon of `instance` writes its VRRP status (read by `lb vrrp-status`).
pub fn status_path(instance: &str) -> PathBuf {
    PathBuf::from("/run/lb").join(instance).join("vrrp.status")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(name: &str, vrid: u8, priority: u8) -> VrrpConfig {
        let text = format!(
            "[[vrrp]]\nname = \"{name}\"\ninterface = \"eth0\"\nvrid = {vrid}\npriority = {priority}\nvips = [\"198.18.0.{vrid}/24\"]\n"
        );
        #[derive(serde::Deserialize)]
        struct Doc {
            vrrp: Vec<toml::Spanned<crate::config::vrrp::RawVrrp>>,
        }
        let doc: Doc = toml::from_str(&text).unwrap();
        crate::config::vrrp::validate(std::path::Path::new("t"), &text, doc.vrrp, &[])
            .unwrap()
            .remove(0)
    }

    #[test]
    fn reload_plan_keeps_unchanged_instances() {
        let old = vec![cfg("a", 1, 100), cfg("b", 2, 100), cfg("c", 3, 100)];
        let mut moved = cfg("b", 9, 100);
        moved.name = "b".into();
        let new = vec![cfg("a", 1, 100), moved, cfg("c", 3, 150), cfg("d", 4, 100)];
        let mut gone = old.clone();
        gone.push(cfg("e", 5, 100));
        let p = Plan::new(&gone, &new);
        assert_eq!(p.unchanged, vec!["a"]);
        assert_eq!(p.restarted, vec!["b"], "another VRID and VIP");
        assert_eq!(p.updated, vec!["c"], "priority only");
        assert_eq!(p.added, vec!["d"]);
        assert_eq!(p.removed, vec!["e"]);
        assert_eq!(
            p.summary(),
            "vrrp: added d; removed e; updated c; restarted b; unchanged a"
        );
    }
}
