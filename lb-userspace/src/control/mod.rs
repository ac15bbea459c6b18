//! The one flow of state (docs/architecture.md): config, health checks and admin commands
//! change a server's status here, and only here; every change is published at once to
//! both planes — the HTTP proxies' server states and, through a watch channel, the task
//! that owns the data plane and rewrites the Maglev tables and backend flags.

mod handler;
#[cfg(test)]
mod reload_tests;
mod stat;

use crate::{
    config::{Config, Service},
    health::{self, CheckSpec, HealthEvent, HealthHandle, HealthState},
    http_frontends::HttpHandles,
    l7::{ServerState, ServiceStats},
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

/// Per service name: whether any of its servers can take new sessions now (false is
/// HAProxy's "no server available"). VRRP's `track_service` watches it.
pub type ServiceAvailability = Arc<std::collections::BTreeMap<String, bool>>;

fn availability(config: &Config, st: &[Vec<ServerStatus>]) -> ServiceAvailability {
    Arc::new(
        config
            .services
            .iter()
            .enumerate()
            .map(|(si, svc)| {
                let up = st.get(si).is_some_and(|v| v.iter().any(|s| s.takes_new()));
                (svc.name.clone(), up)
            })
            .collect(),
    )
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
    http: std::sync::RwLock<HttpHandles>,
    health: Mutex<HashMap<(usize, usize), Check>>,
    /// Where every check task sends its results (one channel for the daemon's life, so
    /// a task kept across a reload keeps reporting).
    events: mpsc::UnboundedSender<HealthEvent>,
    events_rx: Mutex<Option<mpsc::UnboundedReceiver<HealthEvent>>>,
    l4_tx: watch::Sender<L4State>,
    plane_tx: mpsc::Sender<PlaneRequest>,
    vrrp: Mutex<Option<Arc<dyn Fn() -> String + Send + Sync>>>,
    avail_tx: watch::Sender<ServiceAvailability>,
    started: Instant,
}

/// A running check task and what it checks (a reload keeps the task when this is equal).
struct Check {
    spec: CheckSpec,
    handle: Arc<HealthHandle>,
}

/// Whether two check specs check the same thing the same way (start-up spreading aside).
fn same_check(a: &CheckSpec, b: &CheckSpec) -> bool {
    a.service == b.service
        && a.server == b.server
        && a.addr == b.addr
        && a.probe == b.probe
        && a.settings == b.settings
}

/// The check task of every server with `check = true` in `config`, by `(service, server)`
/// index.
fn check_specs(config: &Config) -> Vec<((usize, usize), CheckSpec)> {
    let mut specs = Vec::new();
    for (si, svc) in config.services.iter().enumerate() {
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
                CheckSpec {
                    service: svc.name.clone(),
                    server: name.to_string(),
                    addr,
                    probe: svc.health.service.probe.clone(),
                    settings: crate::config::health::check_settings(
                        check,
                        &svc.health.service,
                        connect,
                    ),
                    position: 0,
                    count: 0,
                },
            ));
        }
    }
    let count = specs.len();
    for (position, (_, spec)) in specs.iter_mut().enumerate() {
        spec.position = position;
        spec.count = count;
    }
    specs
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
        http: HttpHandles,
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
        let (l4_tx, l4_rx) = watch::channel(L4State {
            generation: 0,
            decided_at: None,
            servers: Arc::new(status.clone()),
        });
        let (plane_tx, plane_rx) = mpsc::channel(4);
        let (events, events_rx) = mpsc::unbounded_channel();
        let (avail_tx, _) = watch::channel(availability(&config, &status));
        let control = Arc::new(Control {
            config: std::sync::RwLock::new(config),
            status: Mutex::new(status),
            http: std::sync::RwLock::new(http),
            health: Mutex::new(HashMap::new()),
            events,
            events_rx: Mutex::new(Some(events_rx)),
            l4_tx,
            plane_tx,
            vrrp: Mutex::new(None),
            avail_tx,
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

    /// Follows which services have a server available (published with every change).
    pub fn service_availability(&self) -> watch::Receiver<ServiceAvailability> {
        self.avail_tx.subscribe()
    }

    /// Starts one check task per server with `check = true`, the task that applies their
    /// results and the `slowstart` ramp. Tasks end when `shutdown` turns true.
    pub fn start_checks(self: &Arc<Self>, shutdown: watch::Receiver<bool>) {
        self.sync_checks(&shutdown);
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
        let Some(mut rx) = self
            .events_rx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        else {
            return;
        };
        let me = Arc::clone(self);
        let mut stop = shutdown;
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.wait_for(|&s| s) => break,
                    ev = rx.recv() => match ev {
                        Some(ev) => me.on_health(&ev),
                        None => break,
                    },
                }
            }
        });
    }

    /// Makes the running check tasks match the config: a server whose check is unchanged
    /// keeps its task (and so its health counter); others get a new task; tasks of
    /// servers that are gone or no longer checked stop. Reinstalls the proxies'
    /// passive-health observers.
    fn sync_checks(&self, shutdown: &watch::Receiver<bool>) {
        let cfg = self.config();
        let mut handles = self.health.lock().unwrap_or_else(|e| e.into_inner());
        let mut old: HashMap<(String, String), Check> = handles
            .drain()
            .map(|(_, c)| ((c.spec.service.clone(), c.spec.server.clone()), c))
            .collect();
        for (key, spec) in check_specs(&cfg) {
            let name = (spec.service.clone(), spec.server.clone());
            let check = match old.remove(&name) {
                Some(c) if same_check(&c.spec, &spec) && !c.handle.is_finished() => c,
                prev => {
                    if let Some(p) = prev {
                        p.handle.abort();
                    }
                    let handle = Arc::new(health::spawn(
                        spec.clone(),
                        self.events.clone(),
                        shutdown.clone(),
                    ));
                    Check { spec, handle }
                }
            };
            handles.insert(key, check);
        }
        for (_, c) in old {
            c.handle.abort();
        }
        // Passive health: the HTTP proxies report each server's connection and response
        // outcomes to its check task's observer (a no-op without `observe`).
        let http = self.http.read().unwrap_or_else(|e| e.into_inner());
        for (si, svc) in cfg.services.iter().enumerate() {
            if let Some((states, _)) = http.get(&svc.name) {
                states.set_observers(
                    (0..server_count(svc))
                        .map(|i| {
                            handles
                                .get(&(si, i))
                                .map(|c| c.handle.observer())
                                .unwrap_or_default()
                        })
                        .collect(),
                );
            }
        }
    }

    /// Switches to a reloaded config whose HTTP services have `http` as server states and
    /// counters. Servers that keep their service and name keep their operator state and
    /// weight (unless the config's weight changed); those whose health check is unchanged
    /// (or that stay unchecked at the same address) also keep their check task and their
    /// health. Everything is published at once.
    pub fn reconfigure(
        self: &Arc<Self>,
        new: Arc<Config>,
        http: HttpHandles,
        shutdown: &watch::Receiver<bool>,
    ) {
        let now = Instant::now();
        let old_cfg = self.config();
        let old = self.statuses();
        let old_checks: HashMap<(String, String), CheckSpec> = self
            .health
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .map(|c| {
                (
                    (c.spec.service.clone(), c.spec.server.clone()),
                    c.spec.clone(),
                )
            })
            .collect();
        let new_checks: HashMap<(String, String), CheckSpec> = check_specs(&new)
            .into_iter()
            .map(|(_, c)| ((c.service.clone(), c.server.clone()), c))
            .collect();
        let mut by_name: HashMap<(&str, &str), (ServerStatus, Option<SocketAddr>)> = HashMap::new();
        for (svc, statuses) in old_cfg.services.iter().zip(&old) {
            for (i, st) in statuses.iter().enumerate() {
                if let Some(n) = server_name(svc, i) {
                    by_name.insert((svc.name.as_str(), n), (*st, check_addr(svc, i)));
                }
            }
        }
        let carry = |svc: &Service, i: usize| -> ServerStatus {
            let w = server_weight(svc, i);
            let prev = server_name(svc, i)
                .and_then(|n| by_name.get(&(svc.name.as_str(), n)).map(|p| (n, p)));
            let Some((name, (prev, prev_addr))) = prev else {
                return ServerStatus::new(w, now);
            };
            let key = (svc.name.clone(), name.to_string());
            let same_health = match (old_checks.get(&key), new_checks.get(&key)) {
                (Some(a), Some(b)) => same_check(a, b),
                (None, None) => *prev_addr == check_addr(svc, i),
                _ => false,
            };
            let mut st = if prev.config_weight == w {
                *prev
            } else {
                ServerStatus {
                    admin: prev.admin,
                    ..ServerStatus::new(w, now)
                }
            };
            if same_health {
                st.health = prev.health;
                st.up_since = prev.up_since;
            } else {
                st.health = HealthState::Up;
                st.up_since = None;
            }
            st
        };
        let status: Vec<Vec<ServerStatus>> = new
            .services
            .iter()
            .map(|svc| (0..server_count(svc)).map(|i| carry(svc, i)).collect())
            .collect();
        *self.lock() = status;
        *self.config.write().unwrap_or_else(|e| e.into_inner()) = new;
        *self.http.write().unwrap_or_else(|e| e.into_inner()) = http;
        self.sync_checks(shutdown);
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
        let http = self.http.read().unwrap_or_else(|e| e.into_inner());
        for (si, svc) in cfg.services.iter().enumerate() {
            if let Some((states, _)) = http.get(&svc.name) {
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
        let avail = availability(&cfg, &st);
        self.avail_tx.send_if_modified(|a| {
            let changed = **a != *avail;
            if changed {
                *a = Arc::clone(&avail);
            }
            changed
        });
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
        self.http
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&svc.name)
            .map(|(_, s)| Arc::clone(s))
    }

    /// Health stats of a checked server.
    pub fn health_stats(&self, si: usize, i: usize) -> Option<health::HealthStats> {
        self.health
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(si, i))
            .map(|c| c.handle.stats())
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
