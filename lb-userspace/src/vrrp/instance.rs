//! One virtual router instance as a tokio task: the state machine wired to its sockets,
//! netlink, announcements, the daemon's data plane (through [`RoleEvent`]s) and `notify`.

use super::{
    announce::Announcer,
    auth::{ReplayGuard, Signer},
    iface::{self, Iface},
    packet::{self, Advert, DropReason, RxPolicy},
    socket::{Received, VrrpSocket},
    state::{Action, Heard, Machine, Params, State},
    status::{InstanceStatus, StatusBoard},
    track::{self, Tracked},
    Role, RoleEvent, VrrpError,
};
use crate::{config::VrrpConfig, control::ServiceAvailability, netlink_addr::AddrHandle};
use std::{
    net::IpAddr,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};
use tokio::{
    sync::{mpsc, oneshot, watch},
    time::Instant,
};
use tracing::{debug, info, warn};

/// How often the link state of the interface is polled (FAULT detection).
const LINK_POLL: Duration = Duration::from_millis(100);
/// Most packets read per wakeup before the loop looks at timers and signals again.
const RECV_BATCH: usize = 64;
/// Most queued packets read before a master-down timeout is acted on.
const DRAIN_MAX: usize = 4096;
/// When the second GARP/NA burst follows a takeover. Linux ignores neighbour updates
/// for an address within `locktime` (1 s) of the previous one unless they are
/// recognised as gratuitous, and other stacks are stricter: keepalived repeats its burst
/// after 5 s (`vrrp_garp_master_delay`) for the same reason.
const GARP_REPEAT_DELAY: Duration = Duration::from_millis(1100);
/// When no L4 VIP needs XDP before the VIP appears, how long after a takeover the daemon
/// is asked to attach XDP: attaching to a veth (and, on many NIC drivers, reconfiguring
/// the rings) stalls the interface's traffic for 10-30 ms, which must not fall on the
/// clients' first connections after the gratuitous ARPs. The XDP program only counts
/// (and drops unserved ports of) `pass`/`http` VIPs meanwhile.
const ATTACH_DELAY: Duration = Duration::from_millis(200);
/// How long a transition waits for the daemon to attach or detach XDP.
const ROLE_ACK_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a stopping master keeps the VIP after its successor spoke, at most: long
/// enough for the successor's announcements to reach the clients.
const STOP_LINGER_MAX: Duration = Duration::from_millis(100);

/// What an instance follows besides its packets: the daemon's stop, config updates from
/// a reload, and the tracked objects.
pub(super) struct Inputs {
    /// Turns true for a graceful stop (daemon shutdown, or the instance was removed).
    pub stop: watch::Receiver<bool>,
    /// A reloaded config for the same virtual router (priority, timers, tracking, ...).
    pub updates: watch::Receiver<Arc<VrrpConfig>>,
    /// Which services have a server available (`track_service`).
    pub services: watch::Receiver<ServiceAvailability>,
    /// Bumped on netlink link events (`track_interface`).
    pub links: watch::Receiver<u64>,
    /// Whether XDP must be attached before the VIPs appear (see [`Instance::xdp_first`]).
    pub xdp_first: Arc<AtomicBool>,
}

/// Everything an instance task owns.
pub(super) struct Instance {
    pub cfg: VrrpConfig,
    pub iface: Iface,
    pub sock: VrrpSocket,
    pub announcer: Announcer,
    pub addrs: AddrHandle,
    pub events: mpsc::Sender<RoleEvent>,
    pub stop: watch::Receiver<bool>,
    pub updates: watch::Receiver<Arc<VrrpConfig>>,
    pub services: watch::Receiver<ServiceAvailability>,
    pub links: watch::Receiver<u64>,
    /// True while the daemon has L4 VIPs: their flows must be in XDP's hands before the
    /// VIP appears, so a takeover waits for the attach. Otherwise the VIPs, the GARPs and
    /// the first advert go out first and the daemon attaches afterwards: attaching XDP to
    /// a veth holds the RTNL lock for 10-20 ms, and a VIP add queued behind it delayed
    /// takeovers by as much (seen in the side-by-side with keepalived).
    pub xdp_first: Arc<AtomicBool>,
    pub board: Arc<StatusBoard>,
    /// Authenticated mode's sending side (`auth_key`).
    pub signer: Option<Signer>,
    /// When to tell the daemon about a takeover it need not wait for (ATTACH_DELAY).
    pub attach_at: Option<Instant>,
}

/// Why an instance is (or is not) in FAULT, and what tracking does to its priority.
struct Faults {
    link_up: bool,
    tracked: Tracked,
}

impl Faults {
    fn fault(&self) -> bool {
        !self.link_up || self.tracked.fault
    }
}

impl Instance {
    /// Opens the sockets for `cfg`; waits up to `wait` for the interface's primary address
    /// (an IPv6 link-local address appears a moment after the link comes up).
    pub(super) async fn open(
        cfg: VrrpConfig,
        addrs: AddrHandle,
        events: mpsc::Sender<RoleEvent>,
        inputs: Inputs,
        board: Arc<StatusBoard>,
        wait: Duration,
    ) -> Result<Self, VrrpError> {
        let vip_addrs: Vec<IpAddr> = cfg.vips.iter().map(|v| v.addr).collect();
        let deadline = Instant::now() + wait;
        let (iface, src) = loop {
            let iface = iface::read(&cfg.interface)
                .map_err(|e| VrrpError::Interface {
                    interface: cfg.interface.clone(),
                    source: e,
                })?
                .ok_or_else(|| VrrpError::NoInterface(cfg.interface.clone()))?;
            if let Some(src) = iface.primary(cfg.is_ipv6(), &vip_addrs) {
                // An IPv6 link-local address under DAD cannot send yet: starting now would
                // make us a deaf-and-mute master for a second (split brain at boot).
                let tentative =
                    src.is_ipv6() && addrs.is_tentative(iface.index, src).await.unwrap_or(false);
                if !tentative {
                    break (iface, src);
                }
                if Instant::now() >= deadline {
                    warn!(instance = %cfg.name, %src, "link-local address still tentative; starting anyway");
                    break (iface, src);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            if Instant::now() >= deadline {
                return Err(VrrpError::NoPrimary {
                    interface: cfg.interface.clone(),
                    ipv6: cfg.is_ipv6(),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let sock = VrrpSocket::open(&iface, src, &cfg.unicast_peers)?;
        let announcer = Announcer::new(&iface, &vip_addrs)?;
        let signer = cfg.auth_key.as_ref().map(|k| Signer::new(&k.0));
        Ok(Self {
            cfg,
            iface,
            sock,
            announcer,
            addrs,
            events,
            stop: inputs.stop,
            updates: inputs.updates,
            services: inputs.services,
            links: inputs.links,
            xdp_first: inputs.xdp_first,
            board,
            signer,
            attach_at: None,
        })
    }

    /// The machine's parameters for the current config and tracking.
    fn params(&self, tracked: &Tracked) -> Params {
        Params {
            priority: tracked.priority(self.cfg.priority),
            advert_interval: self.cfg.advert_interval,
            preempt: self.cfg.preempt,
            preempt_delay: self.cfg.preempt_delay,
            primary: self.sock.src(),
        }
    }

    /// What the tracked objects say now.
    fn track_now(&self) -> Tracked {
        let services = self.services.borrow().clone();
        track::evaluate(&self.cfg.tracks, &services, link_running)
    }

    /// Re-reads the link and the tracked objects and moves the machine accordingly: into
    /// or out of FAULT, or to a new priority in place (no transition).
    fn retrack(
        &self,
        m: &mut Machine,
        f: &mut Faults,
        stopping: bool,
        status: &mut InstanceStatus,
    ) -> Vec<Action> {
        let link_up = link_running(&self.cfg.interface);
        let tracked = self.track_now();
        if link_up == f.link_up && tracked == f.tracked {
            return Vec::new();
        }
        let was_fault = f.fault();
        if tracked != f.tracked {
            let (old, new) = (
                f.tracked.priority(self.cfg.priority),
                tracked.priority(self.cfg.priority),
            );
            let failed = if tracked.failed.is_empty() {
                "none".to_string()
            } else {
                tracked.failed.join(",")
            };
            if tracked.fault {
                warn!(instance = %self.cfg.name, %failed, "tracked object failed with weight 0: FAULT");
            } else {
                info!(instance = %self.cfg.name, %failed, priority = new, previous = old, "tracking changed the priority");
            }
        }
        if link_up != f.link_up {
            if link_up {
                info!(instance = %self.cfg.name, "interface up");
            } else {
                warn!(instance = %self.cfg.name, interface = %self.cfg.interface, "interface down: FAULT");
            }
        }
        f.link_up = link_up;
        f.tracked = tracked;
        status.priority = f.tracked.priority(self.cfg.priority);
        status.track_failed = f.tracked.failed.clone();
        let now = now();
        let mut actions = m.reconfigure(now, self.params(&f.tracked));
        match (was_fault, f.fault()) {
            (false, true) => {
                actions = m.link_down();
                status.state = State::Fault;
                status.transitions += 1;
                self.board.update(status, true);
                self.notify(State::Fault, status.priority);
            }
            (true, false) => {
                info!(instance = %self.cfg.name, "leaving FAULT");
                actions = if stopping {
                    vec![Action::Stopped]
                } else {
                    m.link_up(now)
                };
            }
            _ => self.board.update(status, true),
        }
        actions
    }

    /// A reload changed this instance's settings (same interface, VRID, VIPs, peers):
    /// adopt them without a transition.
    fn update(&mut self, new: &VrrpConfig) {
        if self.cfg.auth_key != new.auth_key {
            self.signer = new.auth_key.as_ref().map(|k| Signer::new(&k.0));
        }
        info!(
            instance = %new.name, priority = new.priority, preempt = new.preempt,
            interval_ms = new.advert_interval.as_millis() as u64, "VRRP instance reconfigured"
        );
        self.cfg = new.clone();
    }

    /// Runs until a graceful stop has completed.
    pub(super) async fn run(mut self) {
        let mut f = Faults {
            link_up: link_running(&self.cfg.interface),
            tracked: self.track_now(),
        };
        let mut status = InstanceStatus::new(&self.cfg, self.sock.src());
        status.priority = f.tracked.priority(self.cfg.priority);
        status.track_failed = f.tracked.failed.clone();
        let mut m = Machine::new(self.params(&f.tracked));
        let vips: Vec<IpAddr> = self.cfg.vips.iter().map(|v| v.addr).collect();
        let own: Vec<IpAddr> = self.iface.addrs.clone();
        let mut replay = ReplayGuard::default();
        let mut held = false;
        let mut stopping = false;
        let mut link_poll = tokio::time::interval(LINK_POLL);
        let refresh_timer = |d: Option<Duration>| {
            d.map(|d| {
                let mut i = tokio::time::interval_at(Instant::now() + d, d);
                i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                i
            })
        };
        let mut refresh = refresh_timer(self.cfg.garp_refresh);
        info!(
            instance = %self.cfg.name, vrid = self.cfg.vrid, priority = status.priority,
            interface = %self.cfg.interface, src = %self.sock.src(),
            interval_ms = self.cfg.advert_interval.as_millis() as u64,
            authenticated = self.signer.is_some(), tracked = self.cfg.tracks.len(),
            "VRRP instance starting"
        );
        let first = if f.fault() {
            Vec::new()
        } else {
            m.startup(now())
        };
        let mut done = self.apply(&mut m, first, &mut held, &mut status).await;
        let mut garp_again = held.then(|| Instant::now() + GARP_REPEAT_DELAY);
        if f.fault() {
            status.state = State::Fault;
            status.transitions += 1;
            self.board.update(&status, true);
            warn!(
                instance = %self.cfg.name, interface = %self.cfg.interface,
                link_up = f.link_up, failed = %f.tracked.failed.join(","), "starting in FAULT"
            );
        }
        while !done {
            let deadline = m.deadline().map(Instant::from_std);
            let actions = tokio::select! {
                biased;
                _ = self.stop.changed(), if !stopping => {
                    stopping = true;
                    info!(instance = %self.cfg.name, state = m.state().as_str(), "stopping");
                    m.shutdown(now())
                }
                _ = sleep_until(deadline), if deadline.is_some() => {
                    let late = deadline.map(|d| d.elapsed()).unwrap_or_default();
                    if late > Duration::from_millis(5) {
                        debug!(instance = %self.cfg.name, late_us = late.as_micros() as u64, "timer fired late");
                    }
                    let mut actions = Vec::new();
                    if m.state() == State::Backup {
                        // Before declaring the master dead, read what is queued: under a
                        // flood its last advert may be waiting behind junk.
                        for _ in 0..DRAIN_MAX {
                            match self.sock.try_recv() {
                                Some(r) => actions.extend(self.handle(&mut m, &mut status, &own, &mut replay, r)),
                                None => break,
                            }
                        }
                    }
                    actions.extend(m.on_timer(now()));
                    actions
                }
                Ok(()) = self.updates.changed() => {
                    let new = Arc::clone(&self.updates.borrow_and_update());
                    if new.garp_refresh != self.cfg.garp_refresh {
                        refresh = refresh_timer(new.garp_refresh);
                    }
                    self.update(&new);
                    status.base_priority = self.cfg.priority;
                    // Forces the re-evaluation below to apply the new parameters.
                    let mut actions = m.reconfigure(now(), self.params(&f.tracked));
                    status.priority = f.tracked.priority(self.cfg.priority);
                    actions.extend(self.retrack(&mut m, &mut f, stopping, &mut status));
                    self.board.update(&status, true);
                    actions
                }
                Ok(()) = self.services.changed() => {
                    self.services.borrow_and_update();
                    self.retrack(&mut m, &mut f, stopping, &mut status)
                }
                Ok(()) = self.links.changed() => {
                    self.links.borrow_and_update();
                    self.retrack(&mut m, &mut f, stopping, &mut status)
                }
                _ = link_poll.tick() => {
                    // Counters reach the status board here, not per packet: under a flood
                    // every microsecond per packet counts.
                    self.board.update(&status, false);
                    self.retrack(&mut m, &mut f, stopping, &mut status)
                }
                _ = sleep_until(self.attach_at), if self.attach_at.is_some() => {
                    self.attach_at = None;
                    self.role(Role::Master, false).await;
                    continue;
                }
                _ = sleep_until(garp_again), if held && garp_again.is_some() => {
                    garp_again = None;
                    for _ in 0..self.cfg.garp_count {
                        if let Err(e) = self.announcer.announce(&vips) {
                            debug!(instance = %self.cfg.name, "second GARP burst: {e}");
                            break;
                        }
                    }
                    continue;
                }
                _ = tick(&mut refresh), if held && refresh.is_some() => {
                    if let Err(e) = self.announcer.announce(&vips) {
                        debug!(instance = %self.cfg.name, "GARP refresh: {e}");
                    }
                    continue;
                }
                r = self.sock.recv() => {
                    // Read what else is queued in the same wakeup (up to a batch), so a
                    // flood costs one pass through this loop per batch, not per packet;
                    // stop early when a packet asks for action, to apply it in order.
                    let mut actions = self.handle(&mut m, &mut status, &own, &mut replay, r);
                    let mut n = 1;
                    while actions.is_empty() && n < RECV_BATCH && !due(&m) {
                        match self.sock.try_recv() {
                            Some(r) => actions = self.handle(&mut m, &mut status, &own, &mut replay, r),
                            None => break,
                        }
                        n += 1;
                    }
                    actions
                }
            };
            let was_held = held;
            done = self.apply(&mut m, actions, &mut held, &mut status).await;
            if held && !was_held {
                garp_again = Some(Instant::now() + GARP_REPEAT_DELAY);
            }
        }
        status.state = State::Initialize;
        self.board.update(&status, true);
        info!(instance = %self.cfg.name, "VRRP instance stopped");
    }

    /// Classifies one received packet: counts it as dropped, or feeds it to the machine.
    fn handle(
        &self,
        m: &mut Machine,
        status: &mut InstanceStatus,
        own: &[IpAddr],
        replay: &mut ReplayGuard,
        r: std::io::Result<Received>,
    ) -> Vec<Action> {
        let (meta, payload) = match r {
            Err(e) => {
                debug!(instance = %self.cfg.name, "VRRP receive: {e}");
                return Vec::new();
            }
            Ok(Err(reason)) => {
                status.count_drop(&reason);
                return Vec::new();
            }
            Ok(Ok(p)) => p,
        };
        let policy = RxPolicy {
            vrid: self.cfg.vrid,
            priority: self.cfg.priority,
            peers: &self.cfg.unicast_peers,
            own,
        };
        let key = self.cfg.auth_key.as_ref().map(|k| k.0.as_slice());
        let checked = packet::check_auth(&payload, &meta, &policy, key).and_then(|(adv, seq)| {
            match seq.map(|seq| (seq, replay.accept(meta.src, seq))) {
                Some((seq, Err(last))) => Err(DropReason::Replay { seq, last }),
                _ => Ok(adv),
            }
        });
        match checked {
            Err(reason) => {
                status.count_drop(&reason);
                // Logged at counts 1, 2, 4, 8, ...: a flood must not become a flood of
                // log lines.
                let n = status.drops.get(reason.index()).copied().unwrap_or(0);
                if n.is_power_of_two() && !matches!(reason, packet::DropReason::Vrid(_)) {
                    debug!(instance = %self.cfg.name, src = %meta.src, count = n, "advert dropped: {reason}");
                }
                Vec::new()
            }
            Ok(adv) => {
                status.rx += 1;
                status.last_heard = Some((meta.src, adv.priority));
                let heard = Heard {
                    priority: adv.priority,
                    interval: Duration::from_millis(u64::from(adv.interval_cs) * 10),
                    src: meta.src,
                };
                let actions = m.on_advert(now(), heard);
                status.master_adver_interval = m.master_adver_interval();
                actions
            }
        }
    }

    /// Carries out the machine's actions; true once the instance has stopped.
    async fn apply(
        &mut self,
        m: &mut Machine,
        actions: Vec<Action>,
        held: &mut bool,
        status: &mut InstanceStatus,
    ) -> bool {
        let mut stopped = false;
        for a in actions {
            match a {
                Action::SendAdvert(priority) => {
                    let adv = Advert {
                        vrid: self.cfg.vrid,
                        priority,
                        interval_cs: self.cfg.interval_cs(),
                        addrs: self.cfg.vips.iter().map(|v| v.addr).collect(),
                    };
                    let sent = match self.signer.as_mut() {
                        Some(s) => {
                            let seq = s.next_seq();
                            self.sock.send_auth(&adv, Some((s.key(), seq)))
                        }
                        None => self.sock.send(&adv),
                    };
                    match sent {
                        Ok(()) => {
                            status.tx += 1;
                        }
                        Err(e) => {
                            status.tx_errors += 1;
                            debug!(instance = %self.cfg.name, "{e}");
                        }
                    }
                }
                Action::BecomeMaster => {
                    let t0 = std::time::Instant::now();
                    let xdp_first = self.xdp_first.load(Ordering::Relaxed);
                    if xdp_first {
                        self.role(Role::Master, true).await;
                    } else {
                        self.attach_at = Some(Instant::now() + ATTACH_DELAY);
                    }
                    self.take_vips().await;
                    *held = true;
                    for _ in 0..self.cfg.garp_count {
                        if let Err(e) = self.announcer.announce(&status.vips) {
                            warn!(instance = %self.cfg.name, "{e}");
                            break;
                        }
                    }
                    info!(
                        instance = %self.cfg.name, vrid = self.cfg.vrid,
                        takeover_us = t0.elapsed().as_micros() as u64, xdp_first, "MASTER"
                    );
                    self.transition(m, State::Master, status);
                }
                Action::BecomeBackup => {
                    if *held {
                        self.release_vips().await;
                        *held = false;
                    }
                    // A takeover the daemon has not heard of yet needs no undoing.
                    self.attach_at = None;
                    self.role(Role::Backup, self.xdp_first.load(Ordering::Relaxed))
                        .await;
                    info!(instance = %self.cfg.name, vrid = self.cfg.vrid, "BACKUP");
                    self.transition(m, m.state(), status);
                }
                Action::Announce => {
                    if *held {
                        for _ in 0..self.cfg.garp_count.max(1) {
                            if let Err(e) = self.announcer.announce(&status.vips) {
                                debug!(instance = %self.cfg.name, "re-announce: {e}");
                                break;
                            }
                        }
                        info!(instance = %self.cfg.name, "a lower-priority router claimed the VIP; re-announced");
                    }
                }
                Action::Stopped => {
                    if *held {
                        let linger = self.cfg.advert_interval.min(STOP_LINGER_MAX);
                        tokio::time::sleep(linger).await;
                        self.release_vips().await;
                        *held = false;
                    }
                    // A takeover the daemon has not heard of yet needs no undoing.
                    self.attach_at = None;
                    self.role(Role::Backup, self.xdp_first.load(Ordering::Relaxed))
                        .await;
                    self.transition(m, State::Initialize, status);
                    stopped = *self.stop.borrow();
                }
            }
        }
        stopped
    }

    fn transition(&self, m: &Machine, state: State, status: &mut InstanceStatus) {
        status.state = state;
        status.transitions += 1;
        status.master_adver_interval = m.master_adver_interval();
        self.board.update(status, true);
        self.notify(state, m.params().priority);
    }

    /// Runs the `notify` command for `state`, if one is configured.
    fn notify(&self, state: State, priority: u8) {
        if let Some(cmd) = &self.cfg.notify {
            let name = if state == State::Initialize {
                "STOP"
            } else {
                state.as_str()
            };
            notify(cmd, &self.cfg, name, priority);
        }
    }

    /// Tells the daemon (XDP attach/detach); with `wait`, waits (bounded) until it is done.
    async fn role(&self, role: Role, wait: bool) {
        let (done, acked) = oneshot::channel();
        let ev = RoleEvent {
            instance: self.cfg.name.clone(),
            role,
            done,
        };
        if self.events.send(ev).await.is_err() || !wait {
            return;
        }
        if tokio::time::timeout(ROLE_ACK_TIMEOUT, acked).await.is_err() {
            warn!(instance = %self.cfg.name, ?role, "data plane did not confirm the role change in time");
        }
    }

    async fn take_vips(&self) {
        for v in &self.cfg.vips {
            if let Err(e) = self
                .addrs
                .add(self.iface.index, &self.cfg.interface, v.addr, v.prefix_len)
                .await
            {
                warn!(instance = %self.cfg.name, "adding VIP {v}: {e}");
            }
        }
    }

    async fn release_vips(&self) {
        for v in &self.cfg.vips {
            if let Err(e) = self
                .addrs
                .del(self.iface.index, &self.cfg.interface, v.addr, v.prefix_len)
                .await
            {
                warn!(instance = %self.cfg.name, "removing VIP {v}: {e}");
            }
        }
    }
}

/// Whether a timer of the machine is due (a receive batch yields to it).
fn due(m: &Machine) -> bool {
    m.deadline().is_some_and(|d| d <= std::time::Instant::now())
}

fn now() -> std::time::Instant {
    std::time::Instant::now()
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn tick(i: &mut Option<tokio::time::Interval>) {
    match i {
        Some(i) => {
            i.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// Runs the notify command without waiting for it: `/bin/sh -c CMD` with keepalived's
/// positional arguments (`INSTANCE name state priority`) and `LB_VRRP_*` variables.
fn notify(cmd: &str, cfg: &VrrpConfig, state: &str, priority: u8) {
    let mut c = tokio::process::Command::new("/bin/sh");
    c.arg("-c")
        .arg(cmd)
        .arg("lb-notify")
        .args(["INSTANCE", &cfg.name, state, &priority.to_string()])
        .env("LB_VRRP_INSTANCE", &cfg.name)
        .env("LB_VRRP_STATE", state)
        .env("LB_VRRP_VRID", cfg.vrid.to_string())
        .env("LB_VRRP_PRIORITY", priority.to_string())
        .stdin(std::process::Stdio::null())
        .kill_on_drop(false);
    match c.spawn() {
        Ok(mut child) => {
            let name = cfg.name.clone();
            tokio::spawn(async move {
                match child.wait().await {
                    Ok(s) if !s.success() => {
                        warn!(instance = %name, "notify command exited with {s}")
                    }
                    Err(e) => warn!(instance = %name, "notify command: {e}"),
                    _ => {}
                }
            });
        }
        Err(e) => warn!(instance = %cfg.name, "cannot run notify command: {e}"),
    }
}

/// Whether the interface is up with carrier (IFF_UP and IFF_RUNNING).
fn link_running(name: &str) -> bool {
    // SAFETY: a plain datagram socket for the ioctl; closed below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return true; // cannot tell: do not declare a fault
    }
    // SAFETY: zeroed ifreq is valid; the name is copied with its length bounded.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req
        .ifr_name
        .iter_mut()
        .zip(name.as_bytes().iter().take(libc::IFNAMSIZ - 1))
    {
        *d = *s as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS reads into req.
    let r = unsafe { libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut req) };
    // SAFETY: fd is ours.
    unsafe { libc::close(fd) };
    if r != 0 {
        return false; // gone
    }
    // SAFETY: SIOCGIFFLAGS filled the flags member of the union.
    let flags = i32::from(unsafe { req.ifr_ifru.ifru_flags });
    flags & libc::IFF_UP != 0 && flags & libc::IFF_RUNNING != 0
}
