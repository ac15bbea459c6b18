//! The one flow of state (docs/architecture.md): config, health checks and admin commands
//! change a server's status here, and only here; every change is published at once to
//! both planes — the HTTP proxies' server states and, through a watch channel, the task
//! that owns the data plane and rewrites the Maglev tables and backend flags.

mod handler;
mod stat;

use crate::{
    config::{Config, Service},
    health::{self, CheckSpec, HealthEvent, HealthHandle, HealthState},
    http_frontends::Frontends,
    l7::{ServerState, ServerStates, ServiceStats},
};
use std::{
    collections::{HashMap, HashSet},
    net::{IpAddr, SocketAddr},
    sync::{Arc, Mutex, MutexGuard},
    time::Instant,
};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{info, warn};

pub use crate::admin::AdminState;

/// How often weights are republished while a server ramps up after `slowstart`.
pub const RAMP_STEP: std::time::Duration = std::time::Duration::from_millis(500);

/// What an operator (admin socket) and the health checks say about one server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerStatus {
    /// Operator state: ready, drain or maint.
    pub admin: AdminState,
    /// Health check (or forced) state.
    pub health: HealthState,
    /// Current weight: the configured one unless changed with `set weight`.
    pub weight: u32,
    /// The weight in the config file (for `set weight N%`).
    pub config_weight: u32,
    /// When admin or health state last changed.
    pub since: Instant,
    /// When health last came back UP from DOWN (starts a `slowstart` ramp).
    pub up_since: Option<Instant>,
}

impl ServerStatus {
    fn new(weight: u32, now: Instant) -> Self {
        ServerStatus {
            admin: AdminState::Ready,
            health: HealthState::Up,
            weight,
            config_weight: weight,
            since: now,
            up_since: None,
        }
    }

    /// The weight in force at `now`: the current weight, ramped up after a return to UP
    /// when the server has `slowstart` (HAProxy's slowstart).
    pub fn weight_at(&self, slowstart: Option<std::time::Duration>, now: Instant) -> u32 {
        health::slowstart_weight(self.weight, self.up_since, slowstart, now)
    }

    /// May receive new sessions (L7 balancing) and new flows (L4 Maglev).
    pub fn takes_new(&self) -> bool {
        self.admin == AdminState::Ready && self.health == HealthState::Up && self.weight > 0
    }

    /// May keep serving what is already its own (persistent L7 sessions, L4 flows).
    pub fn keeps_existing(&self) -> bool {
        self.admin != AdminState::Maint && self.health != HealthState::Down
    }

    /// HAProxy's status word for stats (`UP`, `DOWN`, `NOLB`, `DRAIN`, `MAINT`).
    pub fn status_word(&self) -> &'static str {
        match (self.admin, self.health) {
            (AdminState::Maint, _) => "MAINT",
            (_, HealthState::Down) => "DOWN",
            (AdminState::Drain, _) => "DRAIN",
            (_, HealthState::Nolb) => "NOLB",
            _ => "UP",
        }
    }
}

/// What the data plane task needs to rewrite the L4 maps: the status of every server of
/// every service (config order) and when the change that caused it was decided.
#[derive(Clone, Debug)]
pub struct L4State {
    /// Bumped on every change.
    pub generation: u64,
    /// When the deciding check finished (for the "decision to map update" latency).
    pub decided_at: Option<Instant>,
    /// `[service][server]` status, config order.
    pub servers: Arc<Vec<Vec<ServerStatus>>>,
}

/// A request from the admin socket to the task that owns the data plane.
pub enum PlaneRequest {
    /// `reload`: re-read the config; answer with the outcome.
    Reload(oneshot::Sender<Result<String, String>>),
    /// `show flows`: dump conntrack; answer with the text.
    ShowFlows(
        Option<crate::admin::VipFilter>,
        oneshot::Sender<Result<String, String>>,
    ),
}

/// The state manager: owns server statuses and publishes them.
pub struct Control {
    config: std::sync::RwLock<Arc<Config>>,
    status: Mutex<Vec<Vec<ServerStatus>>>,
    http: HashMap<String, (Arc<ServerStates>, Arc<ServiceStats>)>,
    health: Mutex<HashMap<(usize, usize), Arc<HealthHandle>>>,
    checks_stop: Mutex<Option<watch::Sender<bool>>>,
    l4_tx: watch::Sender<L4State>,
    plane_tx: mpsc::Sender<PlaneRequest>,
    vrrp: Mutex<Option<Arc<dyn Fn() -> String + Send + Sync>>>,
    started: Instant,
}

/// Number of servers a service balances over.
pub fn server_count(svc: &Service) -> usize {
    match (&svc.http, svc.mode) {
        (Some(h), _) => h.servers.len(),
        (None, m) if m.is_l4() => svc.backends.len(),
        _ => 0,
    }
}

fn server_name(svc: &Service, i: usize) -> Option<&str> {
    match &svc.http {
        Some(h) => h.servers.get(i).map(|s| s.name.as_str()),
        None => svc.backends.get(i).map(|b| b.name.as_str()),
    }
}

fn server_weight(svc: &Service, i: usize) -> u32 {
    match &svc.http {
        Some(h) => h.servers.get(i).map_or(0, |s| s.weight),
        None => svc.backends.get(i).map_or(0, |b| b.weight),
    }
}

fn server_is_backup(svc: &Service, i: usize) -> bool {
    svc.http
        .as_ref()
        .and_then(|h| h.servers.get(i))
        .is_some_and(|s| s.backup)
}

/// A server's `slowstart` setting.
fn slowstart_of(svc: &Service, i: usize) -> Option<std::time::Duration> {
    svc.health.servers.get(i).and_then(|c| c.slowstart)
}

/// Where a server's health checks connect: its address, with the check port if set
/// (L4 backends have no port of their own: the VIP's port is the default).
fn check_addr(svc: &Service, i: usize) -> Option<SocketAddr> {
    let port = svc.health.servers.get(i).and_then(|c| c.port);
    match &svc.http {
        Some(h) => h
            .servers
            .get(i)
            .map(|s| SocketAddr::new(s.addr.ip(), port.unwrap_or(s.addr.port()))),
        None => svc
            .backends
            .get(i)
            .map(|b| SocketAddr::new(b.addr, port.unwrap_or(svc.vip.port))),
    }
}

impl Control {
    /// Builds the state manager for `config`; all servers start UP and ready (HAProxy
    /// starts servers with full health). Returns the receiver the data plane task
    /// watches and the one it takes admin requests from.
    pub fn new(
        config: Arc<Config>,
        frontends: &Frontends,
    ) -> (
        Arc<Control>,
        watch::Receiver<L4State>,
        mpsc::Receiver<PlaneRequest>,
    ) {
        let now = Instant::now();
        let status: Vec<Vec<ServerStatus>> = config
            .services
            .iter()
            .map(|svc| {
                (0..server_count(svc))
                    .map(|i| ServerStatus::new(server_weight(svc, i), now))
                    .collect()
            })
            .collect();
        let http = frontends
            .frontends
            .iter()
            .map(|f| {
                (
                    f.name.clone(),
                    (Arc::clone(&f.states), Arc::clone(&f.stats)),
                )
            })
            .collect();
        let (l4_tx, l4_rx) = watch::channel(L4State {
            generation: 0,
            decided_at: None,
            servers: Arc::new(status.clone()),
        });
        let (plane_tx, plane_rx) = mpsc::channel(4);
        let control = Arc::new(Control {
            config: std::sync::RwLock::new(config),
            status: Mutex::new(status),
            http,
            health: Mutex::new(HashMap::new()),
            checks_stop: Mutex::new(None),
            l4_tx,
            plane_tx,
            vrrp: Mutex::new(None),
            started: now,
        });
        (control, l4_rx, plane_rx)
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Vec<ServerStatus>>> {
        self.status.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Lets `show vrrp` report membership: `f` renders the current VRRP state.
    pub fn set_vrrp_reporter(&self, f: Arc<dyn Fn() -> String + Send + Sync>) {
        *self.vrrp.lock().unwrap_or_else(|e| e.into_inner()) = Some(f);
    }

    /// Starts one check task per server with `check = true`, and the task that applies
    /// their results. Tasks end when `shutdown` turns true or at the next reconfigure.
    pub fn start_checks(self: &Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let (stop_tx, own_stop) = watch::channel(false);
        if let Some(old) = self
            .checks_stop
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .replace(stop_tx)
        {
            let _ = old.send(true);
        }
        // One stop signal for the tasks: daemon shutdown or replacement by a reconfigure.
        let (task_stop_tx, task_stop) = watch::channel(false);
        let mut own = own_stop.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = shutdown.wait_for(|&s| s) => {}
                _ = own.wait_for(|&s| s) => {}
            }
            let _ = task_stop_tx.send(true);
        });
        let shutdown = task_stop;
        let (tx, mut rx) = mpsc::unbounded_channel::<HealthEvent>();
        let mut specs = Vec::new();
        for (si, svc) in self.config().services.iter().enumerate() {
            for i in 0..server_count(svc) {
                let Some(check) = svc.health.servers.get(i) else {
                    continue;
                };
                if !check.enabled {
                    continue;
                }
                let (Some(addr), Some(name)) = (check_addr(svc, i), server_name(svc, i)) else {
                    continue;
                };
                let connect = svc.http.as_ref().map(|h| h.timeouts.connect);
                specs.push((
                    (si, i),
                    svc.name.clone(),
                    name.to_string(),
                    addr,
                    svc.health.service.probe.clone(),
                    crate::config::health::check_settings(check, &svc.health.service, connect),
                ));
            }
        }
        let count = specs.len();
        let mut handles = self.health.lock().unwrap_or_else(|e| e.into_inner());
        handles.clear();
        for (position, (key, service, server, addr, probe, settings)) in
            specs.into_iter().enumerate()
        {
            let spec = CheckSpec {
                service,
                server,
                addr,
                probe,
                settings,
                position,
                count,
            };
            handles.insert(
                key,
                Arc::new(health::spawn(spec, tx.clone(), shutdown.clone())),
            );
        }
        // Passive health: the HTTP proxies report each server's connection and response
        // outcomes to its check task's observer (a no-op without `observe`).
        let cfg = self.config();
        for (si, svc) in cfg.services.iter().enumerate() {
            if let Some((states, _)) = self.http.get(&svc.name) {
                states.set_observers(
                    (0..server_count(svc))
                        .map(|i| {
                            handles
                                .get(&(si, i))
                                .map(|h| h.observer())
                                .unwrap_or_default()
                        })
                        .collect(),
                );
            }
        }
        drop(handles);
        // While a server ramps up after `slowstart`, republish its weight every
        // RAMP_STEP so both planes follow the ramp.
        let ramp = Arc::clone(self);
        let mut ramp_stop = shutdown.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(RAMP_STEP);
            loop {
                tokio::select! {
                    _ = ramp_stop.wait_for(|&s| s) => break,
                    _ = tick.tick() => {
                        if ramp.ramping() {
                            ramp.publish(None);
                        }
                    }
                }
            }
        });
        let me = Arc::clone(self);
        let stale = own_stop;
        tokio::spawn(async move {
            while let Some(ev) = rx.recv().await {
                if *stale.borrow() {
                    break;
                }
                me.on_health(&ev);
            }
        });
    }

    /// Switches to a reloaded config: operator states and weights of servers that keep
    /// their service and name carry over; health restarts from UP with fresh check tasks
    /// (HAProxy resets health on reload the same way); everything is published at once.
    pub fn reconfigure(self: &Arc<Self>, new: Arc<Config>, shutdown: watch::Receiver<bool>) {
        let now = Instant::now();
        let old_cfg = self.config();
        let old = self.statuses();
        let mut by_name: HashMap<(&str, &str), ServerStatus> = HashMap::new();
        for (svc, statuses) in old_cfg.services.iter().zip(&old) {
            for (i, st) in statuses.iter().enumerate() {
                if let Some(n) = server_name(svc, i) {
                    by_name.insert((svc.name.as_str(), n), *st);
                }
            }
        }
        let status: Vec<Vec<ServerStatus>> = new
            .services
            .iter()
            .map(|svc| {
                (0..server_count(svc))
                    .map(|i| {
                        let w = server_weight(svc, i);
                        match server_name(svc, i).and_then(|n| by_name.get(&(svc.name.as_str(), n)))
                        {
                            Some(prev) if prev.config_weight == w => ServerStatus {
                                health: HealthState::Up,
                                ..*prev
                            },
                            Some(prev) => ServerStatus {
                                admin: prev.admin,
                                ..ServerStatus::new(w, now)
                            },
                            None => ServerStatus::new(w, now),
                        }
                    })
                    .collect()
            })
            .collect();
        *self.lock() = status;
        *self.config.write().unwrap_or_else(|e| e.into_inner()) = new;
        self.start_checks(shutdown);
        self.publish(None);
    }

    fn index_of(&self, service: &str, server: &str) -> Option<(usize, usize)> {
        let si = self
            .config()
            .services
            .iter()
            .position(|s| s.name == service)?;
        let svc = &self.config().services[si];
        let i = (0..server_count(svc)).find(|&i| server_name(svc, i) == Some(server))?;
        Some((si, i))
    }

    /// Applies a health check result and publishes it.
    fn on_health(&self, ev: &HealthEvent) {
        let Some((si, i)) = self.index_of(&ev.service, &ev.server) else {
            warn!(service = %ev.service, server = %ev.server, "health event for an unknown server");
            return;
        };
        let (active, backup) = {
            let mut st = self.lock();
            let s = &mut st[si][i];
            if ev.state == HealthState::Up && ev.previous == HealthState::Down {
                s.up_since = Some(ev.decided_at);
            }
            s.health = ev.state;
            s.since = ev.decided_at;
            let svc = &self.config().services[si];
            let up = |j: &usize| st[si][*j].takes_new();
            let active = (0..st[si].len())
                .filter(|j| !server_is_backup(svc, *j))
                .filter(up)
                .count();
            let backup = (0..st[si].len())
                .filter(|j| server_is_backup(svc, *j))
                .filter(up)
                .count();
            (active, backup)
        };
        let line = ev.log_line(active, backup);
        if ev.state == HealthState::Down {
            warn!(target: "health", "{line}");
        } else {
            info!(target: "health", "{line}");
        }
        if active + backup == 0 {
            warn!(target: "health", "{}", health::format_no_server_available(&ev.service));
        }
        self.publish(Some(ev.decided_at));
    }

    /// Pushes the current statuses to the HTTP proxies and the data plane task.
    fn publish(&self, decided_at: Option<Instant>) {
        let st = self.lock().clone();
        let cfg = self.config();
        let now = Instant::now();
        for (si, svc) in cfg.services.iter().enumerate() {
            if let Some((states, _)) = self.http.get(&svc.name) {
                states.store(
                    st[si]
                        .iter()
                        .enumerate()
                        .map(|(i, s)| {
                            let w = s.weight_at(slowstart_of(svc, i), now);
                            ServerState {
                                up: s.keeps_existing(),
                                drain: !s.takes_new() && s.keeps_existing(),
                                weight: (w != s.config_weight).then_some(w),
                            }
                        })
                        .collect(),
                );
            }
        }
        if cfg.services.iter().any(|s| s.mode.is_l4()) {
            self.l4_tx.send_modify(|l4| {
                l4.generation += 1;
                l4.decided_at = decided_at;
                l4.servers = Arc::new(st);
            });
        }
    }

    /// Whether any server is in a `slowstart` ramp now.
    fn ramping(&self) -> bool {
        let cfg = self.config();
        let now = Instant::now();
        self.lock().iter().zip(&cfg.services).any(|(st, svc)| {
            st.iter()
                .enumerate()
                .any(|(i, s)| health::slowstart_active(s.up_since, slowstart_of(svc, i), now))
        })
    }

    /// When the daemon started (for `show info`).
    pub fn started(&self) -> Instant {
        self.started
    }

    /// The config the statuses index into.
    pub fn config(&self) -> Arc<Config> {
        Arc::clone(&self.config.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// A copy of every server's status, `[service][server]`.
    pub fn statuses(&self) -> Vec<Vec<ServerStatus>> {
        self.lock().clone()
    }

    /// The L7 counters of service `si`, if it is a running HTTP service.
    pub fn http_stats(&self, si: usize) -> Option<Arc<ServiceStats>> {
        let cfg = self.config();
        let svc = cfg.services.get(si)?;
        self.http.get(&svc.name).map(|(_, s)| Arc::clone(s))
    }

    /// Health stats of a checked server.
    pub fn health_stats(&self, si: usize, i: usize) -> Option<health::HealthStats> {
        self.health
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(si, i))
            .map(|h| h.stats())
    }
}

/// The L4 services as the data plane should see them now: weights of servers that must
/// not take new flows set to 0, and the addresses of servers whose flows must be re-picked
/// (DOWN or in maintenance).
pub fn effective_l4(
    config: &Config,
    servers: &[Vec<ServerStatus>],
) -> (Vec<Service>, HashSet<IpAddr>) {
    let mut down = HashSet::new();
    let now = Instant::now();
    let services = config
        .services
        .iter()
        .enumerate()
        .map(|(si, svc)| {
            let configured = svc;
            let mut svc = svc.clone();
            if svc.mode.is_l4() {
                for (i, b) in svc.backends.iter_mut().enumerate() {
                    let Some(s) = servers.get(si).and_then(|v| v.get(i)) else {
                        continue;
                    };
                    b.weight = if s.takes_new() {
                        s.weight_at(slowstart_of(configured, i), now)
                    } else {
                        0
                    };
                    if !s.keeps_existing() {
                        down.insert(b.addr);
                    }
                }
            }
            svc
        })
        .collect();
    // An address shared by several services is only down if it is down everywhere.
    for (si, svc) in config.services.iter().enumerate() {
        if svc.mode.is_l4() {
            for (i, b) in svc.backends.iter().enumerate() {
                if servers
                    .get(si)
                    .and_then(|v| v.get(i))
                    .is_some_and(|s| s.keeps_existing())
                {
                    down.remove(&b.addr);
                }
            }
        }
    }
    (services, down)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::{path::Path, time::Duration};

    const CONFIG: &str = r#"
[xdp]
interface = "eth0"
[[service]]
name = "l4"
vip = "198.18.0.99"
port = 80
mode = "dsr"
[[service.server]]
name = "a"
address = "198.18.0.2"
weight = 100
check = true
slowstart = "10s"
[[service.server]]
name = "b"
address = "198.18.0.3"
weight = 100
"#;

    fn statuses(cfg: &Config, now: Instant) -> Vec<Vec<ServerStatus>> {
        cfg.services
            .iter()
            .map(|s| {
                s.backends
                    .iter()
                    .map(|b| ServerStatus::new(b.weight, now))
                    .collect()
            })
            .collect()
    }

    #[test]
    fn drain_and_down_shape_the_l4_view() {
        let cfg = crate::config::parse(Path::new("t.toml"), CONFIG).unwrap();
        let now = Instant::now();
        let mut st = statuses(&cfg, now);
        st[0][0].admin = AdminState::Drain;
        let (svcs, down) = effective_l4(&cfg, &st);
        assert_eq!(svcs[0].backends[0].weight, 0, "drain: no new flows");
        assert!(down.is_empty(), "drain keeps existing flows");
        st[0][0].admin = AdminState::Ready;
        st[0][1].health = HealthState::Down;
        let (svcs, down) = effective_l4(&cfg, &st);
        assert_eq!(svcs[0].backends[1].weight, 0);
        assert!(
            down.contains(&"198.18.0.3".parse::<IpAddr>().unwrap()),
            "DOWN: flows re-picked"
        );
        st[0][1].health = HealthState::Up;
        st[0][1].weight = 7;
        let (svcs, _) = effective_l4(&cfg, &st);
        assert_eq!(svcs[0].backends[1].weight, 7, "set weight");
    }

    #[test]
    fn slowstart_ramps_the_weight_after_a_return_to_up() {
        let cfg = crate::config::parse(Path::new("t.toml"), CONFIG).unwrap();
        let now = Instant::now();
        let mut st = statuses(&cfg, now);
        // Up for half of the 10 s ramp: about half the weight.
        st[0][0].up_since = Some(now - Duration::from_secs(5));
        let (svcs, _) = effective_l4(&cfg, &st);
        let w = svcs[0].backends[0].weight;
        assert!((45..=55).contains(&w), "half-way weight {w}");
        assert_eq!(svcs[0].backends[1].weight, 100, "no slowstart, no ramp");
        // The ramp is over after the period.
        st[0][0].up_since = Some(now - Duration::from_secs(11));
        let (svcs, _) = effective_l4(&cfg, &st);
        assert_eq!(svcs[0].backends[0].weight, 100);
        // A server that never went down has no ramp.
        st[0][0].up_since = None;
        assert_eq!(st[0][0].weight_at(Some(Duration::from_secs(10)), now), 100);
    }
}
