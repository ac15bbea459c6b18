//! The running HTTP proxies of a config's `mode = "http"` services.
//!
//! Each service gets its listener (bound with IP_FREEBIND, so it can come up before its
//! VIP is local, e.g. on a VRRP backup) and one proxy task. The server states and counters
//! live here so health checks, the admin API and stats can reach them.
//!
//! A reload is two steps, so that nothing changes until everything that can fail has
//! succeeded: [`Frontends::stage`] binds the listeners of new services and makes the
//! server states of changed farms; [`Frontends::commit`] hands each running proxy its new
//! generation (same listener, open connections kept), starts the new services and lets
//! removed ones drain.

use crate::{
    config::Config,
    l7::{
        self, AccessLogSink, BatchedStdoutSink, Farm, HttpService, NullSink, ServerStates,
        ServiceStats,
    },
};
use std::time::Duration;
use std::{collections::HashMap, net::SocketAddr, sync::atomic::Ordering::Relaxed, sync::Arc};
use tokio::{sync::watch, task::JoinHandle};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// How long a stopping daemon lets open HTTP connections finish.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// The server states and counters of each running HTTP service, by service name: what
/// the state manager publishes server statuses to and reads stats from.
pub type HttpHandles = HashMap<String, (Arc<ServerStates>, Arc<ServiceStats>)>;

/// A listener could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("service {service}: cannot listen on {addr}: {source}")]
pub struct ListenError {
    /// The service.
    pub service: String,
    /// Its VIP and port.
    pub addr: SocketAddr,
    /// The OS error.
    pub source: std::io::Error,
}

/// One running HTTP service.
pub struct Frontend {
    /// Service name.
    pub name: String,
    /// Where it listens; a reload keeps the socket of a service whose address stays.
    pub listen: SocketAddr,
    /// Server states the proxy balances over (written by health checks and admin).
    pub states: Arc<ServerStates>,
    /// Counters the proxy keeps (read by stats).
    pub stats: Arc<ServiceStats>,
    service: Arc<HttpService>,
    farms: watch::Sender<Farm>,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
}

/// All HTTP services of a config.
pub struct Frontends {
    /// In config order.
    pub frontends: Vec<Frontend>,
    /// Removed by a reload, still finishing their connections.
    retired: Vec<Frontend>,
    shutdown: CancellationToken,
    sink: Arc<dyn AccessLogSink>,
    access_log: Option<Arc<BatchedStdoutSink>>,
}

/// What a reload does to one HTTP service of the new config.
enum Step {
    /// A running service (same listen address) takes `farm`.
    Keep {
        /// Index in [`Frontends::frontends`].
        index: usize,
        farm: Farm,
    },
    /// A new service on a freshly bound listener.
    Start {
        farm: Farm,
        listener: std::net::TcpListener,
    },
}

/// A reload's HTTP side, ready but not in force: new listeners are bound, changed farms
/// have their server states and counters. Dropping it closes the new listeners and
/// changes nothing.
pub struct Staged {
    steps: Vec<Step>,
    /// Indexes of running services the new config no longer has.
    retire: Vec<usize>,
}

impl Staged {
    /// The server states and counters every HTTP service will have once committed.
    pub fn handles(&self) -> HttpHandles {
        self.steps
            .iter()
            .map(|s| {
                let f = match s {
                    Step::Keep { farm, .. } | Step::Start { farm, .. } => farm,
                };
                (
                    f.service.name.clone(),
                    (Arc::clone(&f.states), Arc::clone(&f.stats)),
                )
            })
            .collect()
    }

    /// Names of the services that start and that stop, for the reload's message.
    fn summary(&self, running: &[Frontend]) -> (Vec<String>, Vec<String>) {
        let started = self
            .steps
            .iter()
            .filter_map(|s| match s {
                Step::Start { farm, .. } => Some(farm.service.name.clone()),
                Step::Keep { .. } => None,
            })
            .collect();
        let stopped = self
            .retire
            .iter()
            .map(|&i| running[i].name.clone())
            .collect();
        (started, stopped)
    }
}

/// Whether two farms index their servers the same way (same names, same order), so the
/// server states and counters of one serve the other.
fn same_farm(a: &HttpService, b: &HttpService) -> bool {
    a.servers.len() == b.servers.len()
        && a.servers
            .iter()
            .zip(&b.servers)
            .all(|(x, y)| x.name == y.name)
}

/// Counters for `new`'s farm that continue `old`'s: totals of the service and of every
/// server that keeps its name carry over; current (in-flight) values stay with the old
/// block, where the requests that hold them will release them.
fn carry_stats(old: &ServiceStats, old_svc: &HttpService, new: &HttpService) -> ServiceStats {
    let out = ServiceStats::new(new.servers.len());
    copy_totals(&old.counters, &out.counters);
    copy_totals(&old.tunnels, &out.tunnels);
    for (a, b) in [
        (&old.requests, &out.requests),
        (&old.no_server, &out.no_server),
        (&old.tunnel_failures, &out.tunnel_failures),
        (&old.intercepted, &out.intercepted),
    ] {
        b.store(a.load(Relaxed), Relaxed);
    }
    for (i, s) in new.servers.iter().enumerate() {
        if let Some(j) = old_svc.servers.iter().position(|o| o.name == s.name) {
            copy_totals(&old.servers[j].counters, &out.servers[i].counters);
            out.servers[i]
                .queue_max
                .store(old.servers[j].queue_max.load(Relaxed), Relaxed);
        }
    }
    out
}

fn copy_totals(from: &l7::Counters, to: &l7::Counters) {
    to.max.store(from.max.load(Relaxed), Relaxed);
    for (a, b) in [
        (&from.total, &to.total),
        (&from.bytes_in, &to.bytes_in),
        (&from.bytes_out, &to.bytes_out),
        (&from.retries, &to.retries),
        (&from.redispatches, &to.redispatches),
        (&from.errors_conn, &to.errors_conn),
        (&from.errors_resp, &to.errors_resp),
    ] {
        b.store(a.load(Relaxed), Relaxed);
    }
    for (a, b) in from.status.iter().zip(&to.status) {
        b.store(a.load(Relaxed), Relaxed);
    }
}

fn bind(http: &HttpService, service: &str) -> Result<std::net::TcpListener, ListenError> {
    l7::bind(http.listen).map_err(|source| ListenError {
        service: service.to_string(),
        addr: http.listen,
        source,
    })
}

fn new_farm(http: &Arc<HttpService>) -> Farm {
    Farm {
        service: Arc::clone(http),
        states: Arc::new(ServerStates::all_up(http.servers.len())),
        stats: Arc::new(ServiceStats::new(http.servers.len())),
    }
}

impl Frontends {
    /// Binds every `http` service's listener, then starts its proxy. All listeners are
    /// bound before any proxy starts, so a bad address fails the start cleanly.
    pub fn start(config: &Config) -> Result<Frontends, ListenError> {
        // The access log is on when LB_LOG enables target `access` at INFO (it does by
        // default); the lines go to stdout, raw httplog, batched.
        let batched = tracing::enabled!(target: "access", tracing::Level::INFO)
            .then(BatchedStdoutSink::start);
        let sink: Arc<dyn AccessLogSink> = match &batched {
            Some(b) => b.clone(),
            None => Arc::new(NullSink),
        };
        let mut fe = Frontends {
            frontends: Vec::new(),
            retired: Vec::new(),
            shutdown: CancellationToken::new(),
            sink,
            access_log: batched,
        };
        let staged = fe.stage(config)?;
        fe.commit(staged);
        Ok(fe)
    }

    /// The server states and counters of the running services.
    pub fn handles(&self) -> HttpHandles {
        self.frontends
            .iter()
            .map(|f| {
                (
                    f.name.clone(),
                    (Arc::clone(&f.states), Arc::clone(&f.stats)),
                )
            })
            .collect()
    }

    /// First step of a reload to `config`: matches its HTTP services to the running ones
    /// by listen address, binds the listeners of the new ones. Changes nothing running;
    /// fails if a new listener cannot be bound.
    pub fn stage(&self, config: &Config) -> Result<Staged, ListenError> {
        let mut taken = vec![false; self.frontends.len()];
        let mut steps = Vec::new();
        for svc in &config.services {
            let Some(http) = &svc.http else { continue };
            let running = self
                .frontends
                .iter()
                .enumerate()
                .position(|(i, f)| !taken[i] && f.listen == http.listen);
            match running {
                Some(index) => {
                    taken[index] = true;
                    let f = &self.frontends[index];
                    let farm = if same_farm(&f.service, http) {
                        Farm {
                            service: Arc::clone(http),
                            states: Arc::clone(&f.states),
                            stats: Arc::clone(&f.stats),
                        }
                    } else {
                        Farm {
                            stats: Arc::new(carry_stats(&f.stats, &f.service, http)),
                            ..new_farm(http)
                        }
                    };
                    steps.push(Step::Keep { index, farm });
                }
                None => steps.push(Step::Start {
                    farm: new_farm(http),
                    listener: bind(http, &svc.name)?,
                }),
            }
        }
        let retire = (0..self.frontends.len()).filter(|&i| !taken[i]).collect();
        Ok(Staged { steps, retire })
    }

    /// Second step: puts `staged` in force. Running services take their new generation
    /// (listener and connections kept), new ones start, removed ones stop accepting and
    /// let their connections finish for up to [`DRAIN_TIMEOUT`]. Returns a summary.
    pub fn commit(&mut self, staged: Staged) -> String {
        let (started, stopped) = staged.summary(&self.frontends);
        let mut old: Vec<Option<Frontend>> = std::mem::take(&mut self.frontends)
            .into_iter()
            .map(Some)
            .collect();
        let mut changed = Vec::new();
        for step in staged.steps {
            match step {
                Step::Keep { index, farm } => {
                    let Some(mut f) = old.get_mut(index).and_then(Option::take) else {
                        continue;
                    };
                    if *farm.service != *f.service || !Arc::ptr_eq(&farm.states, &f.states) {
                        changed.push(farm.service.name.clone());
                        f.name = farm.service.name.clone();
                        f.service = Arc::clone(&farm.service);
                        f.states = Arc::clone(&farm.states);
                        f.stats = Arc::clone(&farm.stats);
                        f.farms.send_replace(farm);
                    }
                    self.frontends.push(f);
                }
                Step::Start { farm, listener } => {
                    self.frontends.push(self.spawn(farm, listener));
                }
            }
        }
        for f in old.into_iter().flatten() {
            info!(service = %f.name, listen = %f.listen, "HTTP service removed: listener closed, connections finishing");
            f.shutdown.cancel();
            self.retired.push(f);
        }
        self.retired.retain(|f| !f.task.is_finished());
        let mut msg = Vec::new();
        for (what, names) in [
            ("http services changed", changed),
            ("started", started),
            ("stopped", stopped),
        ] {
            if !names.is_empty() {
                msg.push(format!("{what}: {}", names.join(", ")));
            }
        }
        msg.join("; ")
    }

    fn spawn(&self, farm: Farm, listener: std::net::TcpListener) -> Frontend {
        let http = Arc::clone(&farm.service);
        info!(service = %http.name, listen = %http.listen, servers = http.servers.len(), "HTTP proxy listening");
        let (farms, rx) = watch::channel(farm.clone());
        let shutdown = self.shutdown.child_token();
        let task = tokio::spawn({
            let (sink, shutdown, name) =
                (Arc::clone(&self.sink), shutdown.clone(), http.name.clone());
            async move {
                if let Err(e) = l7::serve_farms(listener, rx, sink, shutdown).await {
                    warn!(service = %name, error = %e, "HTTP proxy stopped");
                }
            }
        });
        Frontend {
            name: http.name.clone(),
            listen: http.listen,
            states: farm.states,
            stats: farm.stats,
            service: http,
            farms,
            shutdown,
            task,
        }
    }

    /// Stops accepting, lets open connections finish for up to [`DRAIN_TIMEOUT`].
    pub async fn stop(&mut self) {
        self.shutdown.cancel();
        let all = std::mem::take(&mut self.frontends);
        for f in all.into_iter().chain(std::mem::take(&mut self.retired)) {
            if tokio::time::timeout(DRAIN_TIMEOUT, f.task).await.is_err() {
                warn!(service = %f.name, "HTTP connections still open after {DRAIN_TIMEOUT:?}; closing");
            }
        }
        if let Some(log) = &self.access_log {
            log.flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::{path::Path, time::Duration};
    use tokio::{
        io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
        net::{TcpListener, TcpStream},
    };

    /// A keep-alive HTTP/1.1 backend answering every request with its name.
    async fn backend(name: &'static str) -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = l.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let mut r = BufReader::new(s);
                    let mut line = String::new();
                    loop {
                        line.clear();
                        match r.read_line(&mut line).await {
                            Ok(0) | Err(_) => return,
                            Ok(_) if line == "\r\n" => {
                                let resp = format!(
                                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{name}",
                                    name.len()
                                );
                                if r.get_mut().write_all(resp.as_bytes()).await.is_err() {
                                    return;
                                }
                            }
                            Ok(_) => {}
                        }
                    }
                });
            }
        });
        addr
    }

    /// One GET on an open keep-alive connection; returns the body.
    async fn get(s: &mut BufReader<TcpStream>) -> String {
        s.get_mut()
            .write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            .await
            .expect("write");
        let mut len = 0;
        let mut line = String::new();
        loop {
            line.clear();
            s.read_line(&mut line).await.expect("read head");
            if line == "\r\n" || line.is_empty() {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().expect("length");
            }
        }
        let mut body = vec![0; len];
        s.read_exact(&mut body).await.expect("body");
        String::from_utf8(body).expect("utf8")
    }

    fn config(listen: SocketAddr, servers: &[(&str, SocketAddr, u32)]) -> Config {
        let mut text = format!(
            "[xdp]\ninterface = \"lo\"\n[[service]]\nname = \"web\"\nvip = \"{}\"\nport = {}\nmode = \"http\"\n",
            listen.ip(),
            listen.port()
        );
        for (name, addr, weight) in servers {
            text.push_str(&format!(
                "[[service.server]]\nname = \"{name}\"\naddress = \"{addr}\"\nweight = {weight}\n"
            ));
        }
        crate::config::parse(Path::new("t.toml"), &text).expect("config")
    }

    fn free_port() -> SocketAddr {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    }

    #[tokio::test]
    async fn reload_swaps_the_farm_on_open_connections_and_keeps_the_listener() {
        let (a, b) = (backend("a").await, backend("b").await);
        let listen = free_port();
        let mut fe = Frontends::start(&config(listen, &[("a", a, 1)])).expect("start");
        let mut conn = BufReader::new(TcpStream::connect(listen).await.expect("connect"));
        assert_eq!(get(&mut conn).await, "a");

        // An added server and a changed weight: the open connection sees both.
        let staged = fe
            .stage(&config(listen, &[("a", a, 1), ("b", b, 3)]))
            .expect("stage");
        let states = staged.handles()["web"].0.clone();
        assert_eq!(
            states.snapshot().len(),
            2,
            "the new farm has its own states"
        );
        let msg = fe.commit(staged);
        assert!(msg.contains("http services changed: web"), "{msg}");
        // The connection's event loop may still answer one request from the old farm
        // while the new one propagates: wait (bounded) for the added server first.
        let mut seen = Vec::new();
        while seen.last().map(String::as_str) != Some("b") {
            assert!(seen.len() < 10, "the added server never answers: {seen:?}");
            seen.push(get(&mut conn).await);
        }
        // Smooth weighted round robin over a:1, b:3 has period 4 (b a b b): any 8
        // consecutive picks hold exactly 6 b's.
        let mut got = Vec::new();
        for _ in 0..8 {
            got.push(get(&mut conn).await);
        }
        let bs = got.iter().filter(|s| *s == "b").count();
        assert_eq!(
            bs, 6,
            "weight 3:1 on the same connection: {got:?} (after {seen:?})"
        );

        // A listener that stays is not bound again: a conflicting new listener fails the
        // stage and changes nothing.
        let busy = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let mut bad = config(listen, &[("a", a, 1)]);
        let mut extra = bad.services[0].clone();
        extra.name = "other".into();
        let mut http = HttpService::clone(extra.http.as_deref().expect("http"));
        http.listen = busy.local_addr().expect("addr");
        http.name = "other".into();
        extra.http = Some(Arc::new(http));
        bad.services.push(extra);
        assert!(fe.stage(&bad).is_err(), "bind conflict refused");
        assert_eq!(get(&mut conn).await.len(), 1, "still serving");

        // Removed: the listener closes, the open connection finishes its request.
        let empty = config(free_port(), &[("a", a, 1)]);
        let staged = fe.stage(&empty).expect("stage");
        let msg = fe.commit(staged);
        assert!(
            msg.contains("stopped: web") && msg.contains("started: web"),
            "{msg}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(
            TcpStream::connect(listen).await.is_err(),
            "old listener closed"
        );
        fe.stop().await;
    }
}
