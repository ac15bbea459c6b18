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
//! Not done yet: HMAC-authenticated adverts (issue 5, optional; off by default anyway so
//! keepalived interoperates) and priority tracking of interfaces/backends.

pub mod announce;
pub mod iface;
mod instance;
pub mod packet;
pub mod socket;
pub mod state;
pub mod status;

use crate::{config::VrrpConfig, netlink_addr::AddrHandle};
use instance::Instance;
use status::StatusBoard;
use std::{path::PathBuf, sync::Arc, time::Duration};
use tokio::{
    sync::{mpsc, oneshot, watch},
    task::JoinSet,
};

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
}

impl Membership {
    /// Starts one task per configured instance; role changes arrive on `events`. The
    /// status file goes to `status_path` if given. Returns once every instance's sockets
    /// are open (or with the first error).
    pub async fn start(
        configs: &[VrrpConfig],
        status_path: Option<PathBuf>,
        events: mpsc::Sender<RoleEvent>,
    ) -> Result<Self, VrrpError> {
        let (stop, stop_rx) = watch::channel(false);
        let (abort, abort_rx) = oneshot::channel::<()>();
        let (ready_tx, ready_rx) = oneshot::channel::<Result<(), VrrpError>>();
        let (done_tx, done) = oneshot::channel::<()>();
        let board = Arc::new(StatusBoard::new(status_path));
        let configs = configs.to_vec();
        let b = board.clone();
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
                rt.block_on(run_all(configs, b, events, stop_rx, abort_rx, ready_tx));
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
            }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(VrrpError::Runtime(std::io::Error::other(
                "membership thread died",
            ))),
        }
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

    /// Writes out the final status.
    pub fn finish(&self) {
        self.board.flush();
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.abort();
    }
}

/// The membership thread's main task: open every instance, run them, flush the status.
async fn run_all(
    configs: Vec<VrrpConfig>,
    board: Arc<StatusBoard>,
    events: mpsc::Sender<RoleEvent>,
    stop_rx: watch::Receiver<bool>,
    abort_rx: oneshot::Receiver<()>,
    ready: oneshot::Sender<Result<(), VrrpError>>,
) {
    let opened = async {
        let addrs = AddrHandle::new()?;
        let mut instances = Vec::with_capacity(configs.len());
        for cfg in &configs {
            let i = Instance::open(
                cfg.clone(),
                addrs.clone(),
                events.clone(),
                stop_rx.clone(),
                board.clone(),
                PRIMARY_WAIT,
            )
            .await?;
            instances.push(i);
        }
        Ok::<_, VrrpError>(instances)
    }
    .await;
    drop(events);
    let instances = match opened {
        Ok(i) => {
            let _ = ready.send(Ok(()));
            i
        }
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let mut tasks = JoinSet::new();
    for i in instances {
        tasks.spawn(i.run());
    }
    let mut flush = tokio::time::interval(status::FLUSH_INTERVAL);
    let mut abort_rx = abort_rx;
    loop {
        tokio::select! {
            r = tasks.join_next() => if r.is_none() { break },
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
