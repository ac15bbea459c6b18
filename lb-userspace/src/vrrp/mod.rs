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

/// The running instances.
pub struct Membership {
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
    board: Arc<StatusBoard>,
}

impl Membership {
    /// Starts one task per configured instance; role changes arrive on `events`. The
    /// status file goes to `status_path` if given.
    pub async fn start(
        configs: &[VrrpConfig],
        status_path: Option<PathBuf>,
        events: mpsc::Sender<RoleEvent>,
    ) -> Result<Self, VrrpError> {
        let (stop, stop_rx) = watch::channel(false);
        let board = Arc::new(StatusBoard::new(status_path));
        let addrs = AddrHandle::new()?;
        let mut instances = Vec::with_capacity(configs.len());
        for cfg in configs {
            instances.push(
                Instance::open(
                    cfg.clone(),
                    addrs.clone(),
                    events.clone(),
                    stop_rx.clone(),
                    board.clone(),
                    PRIMARY_WAIT,
                )
                .await?,
            );
        }
        let mut tasks = JoinSet::new();
        for i in instances {
            tasks.spawn(i.run());
        }
        let b = board.clone();
        let mut flush_stop = stop_rx.clone();
        tokio::spawn(async move {
            let mut t = tokio::time::interval(status::FLUSH_INTERVAL);
            loop {
                tokio::select! {
                    _ = t.tick() => b.flush(),
                    _ = flush_stop.changed() => { b.flush(); break; }
                }
            }
        });
        Ok(Self { stop, tasks, board })
    }

    /// Starts the graceful stop of every instance (a master hands over first).
    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }

    /// Waits for the next instance to finish; `None` when all have.
    pub async fn join_next(&mut self) -> Option<()> {
        self.tasks.join_next().await.map(|_| ())
    }

    /// Ends every instance at once, without a handover (a second signal).
    pub fn abort(&mut self) {
        self.tasks.abort_all();
    }

    /// The current status lines.
    pub fn status(&self) -> Vec<String> {
        self.board.lines()
    }

    /// Writes out the final status.
    pub fn finish(&self) {
        self.board.flush();
    }
}

/// Where the daemon of `instance` writes its VRRP status (read by `lb vrrp-status`).
pub fn status_path(instance: &str) -> PathBuf {
    PathBuf::from("/run/lb").join(instance).join("vrrp.status")
}
