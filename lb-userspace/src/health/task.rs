//! One tokio task per checked server: probe at the interval the counter asks for, apply
//! results, passive observations and forced states, and report state changes.
//!
//! Outputs go two ways, matching DESIGN.md's "one flow of state": every state change is a
//! [`HealthEvent`] on an mpsc channel (the state manager turns it into a new snapshot; the
//! task never touches the proxy or BPF maps), and the latest counters are published on a
//! `watch` channel for stats (`show stat`, `show servers state`).
//!
//! A server starts UP (HAProxy's `health = rise`); no event is sent for that initial state.
//! The first check is spread over the interval by the server's position, like HAProxy
//! spreads its first checks, so N servers are not all probed in the same millisecond.

use super::{
    check::{run_probe, CheckOutcome, CheckStatus, Probe, ProbeTimeouts},
    counter::{HealthCounter, HealthState, Intervals, Phase, Transition, Verdict},
    observe::{ObserveSettings, Observer, OnError, Tripped},
};
use std::{
    future::Future,
    hash::{BuildHasher, Hasher},
    net::SocketAddr,
    pin::Pin,
    sync::Arc,
    time::{Duration, Instant},
};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, info, warn};

/// Largest `spread-checks` percentage HAProxy accepts.
pub const MAX_SPREAD_CHECKS: u8 = 50;
/// Reason text of a state forced through the admin API (HAProxy's wording).
pub const FORCED_REASON: &str = "changed from CLI";

/// Why a request to a check task failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HealthError {
    /// The task has stopped (shutdown, or it was aborted).
    #[error("health check task of {service}/{server} has stopped")]
    TaskGone {
        /// Service name.
        service: String,
        /// Server name.
        server: String,
    },
}

/// Everything that drives the checks of one server, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckSettings {
    /// inter / fastinter / downinter.
    pub intervals: Intervals,
    /// Consecutive successes to go UP.
    pub rise: u32,
    /// Consecutive failures to go DOWN.
    pub fall: u32,
    /// `timeout check` of the service.
    pub timeout_check: Option<Duration>,
    /// `timeout connect` of the service, used with `timeout check` (see [`ProbeTimeouts`]).
    pub connect_timeout: Option<Duration>,
    /// Passive observation, if configured.
    pub observe: Option<ObserveSettings>,
    /// `spread-checks`: +/- this percentage of random jitter on each interval (0..=50).
    pub spread_checks: u8,
}

/// One server to check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckSpec {
    /// Service (HAProxy's backend) name.
    pub service: String,
    /// Server name.
    pub server: String,
    /// Where checks connect: the server address with the check `port` if one is set.
    pub addr: SocketAddr,
    /// TCP or HTTP.
    pub probe: Probe,
    /// Timing and thresholds.
    pub settings: CheckSettings,
    /// This server's position among all checked servers (0-based), for spreading the
    /// first checks.
    pub position: usize,
    /// How many servers are checked in total.
    pub count: usize,
}

/// What changed the state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cause {
    /// An active check.
    Check,
    /// Passive observation reaching `error-limit`.
    Observe,
    /// `set server <s> health ...` on the admin socket.
    Admin,
}

/// A server changed state. Consumed by the state manager, which rebuilds the snapshot
/// and logs [`HealthEvent::log_line`] with the server counts it knows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthEvent {
    /// Service name.
    pub service: String,
    /// Server name.
    pub server: String,
    /// The new state.
    pub state: HealthState,
    /// The state before.
    pub previous: HealthState,
    /// What decided it.
    pub cause: Cause,
    /// `Layer7 wrong status, code: 404, info: "Not Found"`, or [`FORCED_REASON`].
    pub reason: String,
    /// Duration of the deciding check, when a real check decided.
    pub check_duration: Option<Duration>,
    /// When the decision was taken (measure decision-to-dataplane latency from here).
    pub decided_at: Instant,
}

impl HealthEvent {
    /// HAProxy's state-change line, e.g. `Server webfarm/webA is DOWN, reason: Layer7 wrong
    /// status, code: 404, info: "Not Found", check duration: 1ms. 1 active and 0 backup
    /// servers left.` The counts are the servers usable after this change.
    pub fn log_line(&self, active: usize, backup: usize) -> String {
        format_state_change(
            &self.service,
            &self.server,
            self.state,
            self.cause,
            &self.reason,
            self.check_duration,
            active,
            backup,
        )
    }
}

/// Formats HAProxy's state-change line (see [`HealthEvent::log_line`]); also for state
/// changes that do not come from a check task (admin `state maint`, reload).
#[allow(clippy::too_many_arguments)]
pub fn format_state_change(
    service: &str,
    server: &str,
    state: HealthState,
    cause: Cause,
    reason: &str,
    check_duration: Option<Duration>,
    active: usize,
    backup: usize,
) -> String {
    let mut s = format!("Server {service}/{server} is {}", state.log_word());
    match cause {
        Cause::Admin => s.push_str(&format!(", {reason}")),
        Cause::Check | Cause::Observe => s.push_str(&format!(", reason: {reason}")),
    }
    if let Some(d) = check_duration {
        s.push_str(&format!(", check duration: {}ms", d.as_millis()));
    }
    let tail = if state == HealthState::Up {
        "online"
    } else {
        "left"
    };
    s.push_str(&format!(
        ". {active} active and {backup} backup servers {tail}."
    ));
    s
}

/// HAProxy's alert when the last server of a service goes away.
pub fn format_no_server_available(service: &str) -> String {
    format!("backend {service} has no server available!")
}

/// The latest counters of one server, for stats.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthStats {
    /// Current state.
    pub state: HealthState,
    /// Detailed phase ("UP, going down").
    pub phase: Phase,
    /// `UP`, `UP 2/3`, `DOWN 1/2`, `NOLB`...
    pub status_text: String,
    /// Counter value.
    pub health: u32,
    /// Configured rise.
    pub rise: u32,
    /// Configured fall.
    pub fall: u32,
    /// The last check (or `HANA` simulated check).
    pub last_check: Option<CheckOutcome>,
    /// When it finished.
    pub last_check_at: Option<Instant>,
    /// Failed active checks in a row (0 after any pass).
    pub consecutive_failures: u32,
    /// Failed checks counted while health was above 0 (HAProxy's `chkfail`).
    pub failed_checks: u64,
    /// UP/NOLB -> DOWN transitions (`chkdown`).
    pub down_transitions: u64,
    /// Times `error-limit` was reached (`hanafail`).
    pub observe_trips: u64,
    /// Last state change, or the task start.
    pub last_change: Instant,
    /// Downtime of finished DOWN periods; see [`HealthStats::downtime_at`].
    pub downtime: Duration,
    /// Start of the current DOWN period.
    pub down_since: Option<Instant>,
    /// When the server last came UP after having been DOWN (slowstart starts here; HAProxy
    /// never applies slowstart to the initial UP state).
    pub up_since: Option<Instant>,
}

impl HealthStats {
    fn new(counter: &HealthCounter, now: Instant) -> Self {
        HealthStats {
            state: counter.state(),
            phase: counter.phase(),
            status_text: counter.status_text(),
            health: counter.health(),
            rise: counter.rise(),
            fall: counter.fall(),
            last_check: None,
            last_check_at: None,
            consecutive_failures: 0,
            failed_checks: 0,
            down_transitions: 0,
            observe_trips: 0,
            last_change: now,
            downtime: Duration::ZERO,
            down_since: None,
            up_since: None,
        }
    }

    /// Total downtime including the current DOWN period (`downtime` column).
    pub fn downtime_at(&self, now: Instant) -> Duration {
        self.downtime
            + self
                .down_since
                .map_or(Duration::ZERO, |t| now.saturating_duration_since(t))
    }

    /// The health-related columns of HAProxy's `show stat` CSV, so the stats writer fills
    /// them the way HAProxy users and their tools expect.
    pub fn csv_columns(&self, now: Instant) -> CsvColumns {
        let last = self.last_check.as_ref();
        CsvColumns {
            status: self.status_text.clone(),
            chkfail: self.failed_checks,
            chkdown: self.down_transitions,
            lastchg: now.saturating_duration_since(self.last_change).as_secs(),
            downtime: self.downtime_at(now).as_secs(),
            check_status: last.map_or(String::new(), |o| o.status.code().to_string()),
            check_code: last
                .and_then(|o| o.code)
                .map_or(String::new(), |c| c.to_string()),
            check_duration: last
                .and_then(|o| o.duration)
                .map_or(String::new(), |d| d.as_millis().to_string()),
            hanafail: self.observe_trips,
            last_chk: last.and_then(|o| o.info.clone()).unwrap_or_default(),
            check_rise: self.rise,
            check_fall: self.fall,
            check_health: self.health,
        }
    }
}

/// HAProxy `show stat` CSV columns owned by health checks, ready to print.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CsvColumns {
    /// `status`: `UP`, `UP 2/3`, `DOWN 1/2`, `NOLB`... (admin states such as MAINT and
    /// DRAIN take precedence and are the caller's).
    pub status: String,
    /// `chkfail`: failed checks counted while health was above 0.
    pub chkfail: u64,
    /// `chkdown`: UP -> DOWN transitions.
    pub chkdown: u64,
    /// `lastchg`: seconds since the last state change.
    pub lastchg: u64,
    /// `downtime`: total seconds DOWN.
    pub downtime: u64,
    /// `check_status`: `L7OK`, `L4CON`... (empty before the first check).
    pub check_status: String,
    /// `check_code`: HTTP status of the last check, if any.
    pub check_code: String,
    /// `check_duration`: milliseconds of the last check, if measured.
    pub check_duration: String,
    /// `hanafail`: times observation reached `error-limit`.
    pub hanafail: u64,
    /// `last_chk`: info of the last check.
    pub last_chk: String,
    /// `check_rise`.
    pub check_rise: u32,
    /// `check_fall`.
    pub check_fall: u32,
    /// `check_health`.
    pub check_health: u32,
}

enum Control {
    Force(HealthState, oneshot::Sender<Option<Transition>>),
}

/// The handle the state manager keeps per checked server.
#[derive(Debug)]
pub struct HealthHandle {
    service: String,
    server: String,
    control: mpsc::Sender<Control>,
    stats: watch::Receiver<HealthStats>,
    observer: Observer,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Control {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Control::Force(s, _) => write!(f, "Force({s})"),
        }
    }
}

impl HealthHandle {
    /// A copy of the latest counters.
    pub fn stats(&self) -> HealthStats {
        self.stats.borrow().clone()
    }

    /// A receiver that sees every counter update (for a stats task).
    pub fn subscribe_stats(&self) -> watch::Receiver<HealthStats> {
        self.stats.clone()
    }

    /// The proxy's reporting handle for passive observation (a no-op without `observe`).
    pub fn observer(&self) -> Observer {
        self.observer.clone()
    }

    /// `set server <s>/<v> health up|stopping|down`: sets the counter to full UP, full NOLB
    /// or 0 at once. Checks keep running and move it from there, as in HAProxy. Returns the
    /// transition (also sent as an event with [`Cause::Admin`]) or `None` if unchanged.
    pub async fn force(&self, state: HealthState) -> Result<Option<Transition>, HealthError> {
        let gone = || HealthError::TaskGone {
            service: self.service.clone(),
            server: self.server.clone(),
        };
        let (tx, rx) = oneshot::channel();
        self.control
            .send(Control::Force(state, tx))
            .await
            .map_err(|_| gone())?;
        rx.await.map_err(|_| gone())
    }

    /// Whether the task has ended.
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Stops the task now (e.g. the server was removed by a reload).
    pub fn abort(&self) {
        self.task.abort();
    }

    /// Waits for the task to end after shutdown was signalled.
    pub async fn join(self) {
        let _ = self.task.await;
    }
}

/// Starts the check task of one server (call inside a tokio runtime). It runs until
/// `shutdown` becomes `true` (or its sender is dropped) or the handle aborts it.
///
/// The event channel is unbounded on purpose: events are rare (at most one per check),
/// and a bounded channel would deadlock a state manager that awaits
/// [`HealthHandle::force`] while the task waits for room to send it an event.
pub fn spawn(
    spec: CheckSpec,
    events: mpsc::UnboundedSender<HealthEvent>,
    shutdown: watch::Receiver<bool>,
) -> HealthHandle {
    let counter = HealthCounter::new(spec.settings.rise, spec.settings.fall);
    let now = Instant::now();
    let (stats_tx, stats_rx) = watch::channel(HealthStats::new(&counter, now));
    let (control_tx, control_rx) = mpsc::channel(8);
    let (trip_tx, trip_rx) = mpsc::channel(1);
    let observer = match spec.settings.observe {
        Some(o) => Observer::new(o, trip_tx),
        None => Observer::disabled(),
    };
    let handle_service = spec.service.clone();
    let handle_server = spec.server.clone();
    let worker = Worker {
        rng: seed(&spec.service, &spec.server),
        spec: Arc::new(spec),
        counter,
        stats: stats_tx,
        events,
        observer: observer.clone(),
    };
    let task = tokio::spawn(worker.run(control_rx, trip_rx, shutdown));
    HealthHandle {
        service: handle_service,
        server: handle_server,
        control: control_tx,
        stats: stats_rx,
        observer,
        task,
    }
}

/// Delay before the first check: the interval scaled by the server's position, like
/// HAProxy's start-up spreading.
pub fn initial_delay(interval: Duration, position: usize, count: usize) -> Duration {
    if count == 0 {
        return Duration::ZERO;
    }
    let pos = position.min(count - 1) as u128;
    let nanos = interval.as_nanos() * pos / count as u128;
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

/// `interval` moved by up to +/- `percent`% (`spread-checks`), with `unit` in `0..1`.
pub fn spread(interval: Duration, percent: u8, unit: f64) -> Duration {
    let pct = f64::from(percent.min(MAX_SPREAD_CHECKS)) / 100.0;
    let base = interval.as_secs_f64();
    let delta = base * pct * (1.0 - 2.0 * unit.clamp(0.0, 1.0));
    Duration::from_secs_f64((base + delta).max(0.0))
}

type ProbeFuture = Pin<Box<dyn Future<Output = CheckOutcome> + Send>>;

struct Worker {
    spec: Arc<CheckSpec>,
    counter: HealthCounter,
    stats: watch::Sender<HealthStats>,
    events: mpsc::UnboundedSender<HealthEvent>,
    observer: Observer,
    rng: u64,
}

impl Worker {
    async fn run(
        mut self,
        mut control: mpsc::Receiver<Control>,
        mut trips: mpsc::Receiver<Tripped>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let s = &self.spec.settings;
        let first = initial_delay(
            self.counter.next_interval(&s.intervals),
            self.spec.position,
            self.spec.count,
        );
        let mut next = tokio::time::Instant::now() + first;
        let mut in_flight: Option<ProbeFuture> = None;
        let mut control_open = true;
        // A trip during an in-flight check brings the check after it forward instead.
        let mut hurry = false;
        let mut trips_open = true;
        debug!(service = %self.spec.service, server = %self.spec.server, addr = %self.spec.addr, "health check task started");
        loop {
            tokio::select! {
                biased;
                _ = stopped(&mut shutdown) => break,
                cmd = control.recv(), if control_open => match cmd {
                    Some(Control::Force(state, reply)) => {
                        let t = self.counter.force(state);
                        self.after_update(t, Cause::Admin, FORCED_REASON.to_string(), None);
                        let _ = reply.send(t);
                    }
                    None => control_open = false,
                },
                trip = trips.recv(), if trips_open => match trip {
                    Some(trip) => {
                        self.on_trip(trip);
                        let soon = tokio::time::Instant::now() + self.spec.settings.intervals.fastinter;
                        if in_flight.is_some() {
                            hurry = true;
                        } else if soon < next {
                            next = soon;
                        }
                    }
                    None => trips_open = false,
                },
                outcome = poll_probe(&mut in_flight), if in_flight.is_some() => {
                    in_flight = None;
                    self.on_check(outcome);
                    let interval = self.counter.next_interval(&self.spec.settings.intervals);
                    let unit = self.next_unit();
                    let now = tokio::time::Instant::now();
                    next = now + spread(interval, self.spec.settings.spread_checks, unit);
                    if std::mem::take(&mut hurry) {
                        next = next.min(now + self.spec.settings.intervals.fastinter);
                    }
                }
                _ = tokio::time::sleep_until(next), if in_flight.is_none() => {
                    let spec = Arc::clone(&self.spec);
                    let timeouts = ProbeTimeouts {
                        inter: spec.settings.intervals.inter,
                        timeout_check: spec.settings.timeout_check,
                        connect: spec.settings.connect_timeout,
                    };
                    in_flight = Some(Box::pin(async move {
                        run_probe(spec.addr, &spec.probe, &timeouts).await
                    }));
                }
            }
        }
        debug!(service = %self.spec.service, server = %self.spec.server, "health check task stopped");
    }

    fn on_check(&mut self, outcome: CheckOutcome) {
        let verdict = outcome.verdict();
        let before = self.counter.health();
        let t = self.counter.record(verdict);
        let now = Instant::now();
        let reason = outcome.reason();
        let duration = outcome.duration;
        self.stats.send_modify(|st| {
            if verdict == Verdict::Fail {
                st.consecutive_failures = st.consecutive_failures.saturating_add(1);
                if before > 0 {
                    st.failed_checks += 1;
                }
            } else {
                st.consecutive_failures = 0;
            }
            st.last_check = Some(outcome);
            st.last_check_at = Some(now);
        });
        if verdict != Verdict::Fail {
            self.observer.reset();
        }
        self.after_update(t, Cause::Check, reason, duration);
    }

    fn on_trip(&mut self, trip: Tripped) {
        let on_error = self
            .spec
            .settings
            .observe
            .map_or(OnError::FailCheck, |o| o.on_error);
        let before = self.counter.health();
        let t = match on_error {
            OnError::Fastinter => None,
            OnError::FailCheck => self.counter.record(Verdict::Fail),
            OnError::SuddenDeath => self.counter.sudden_death(),
            OnError::MarkDown => self.counter.mark_down(),
        };
        let counted = match on_error {
            OnError::Fastinter => false,
            OnError::MarkDown => true,
            _ => before > 0,
        };
        let outcome = CheckOutcome {
            status: CheckStatus::Hana,
            code: None,
            info: Some(trip.info()),
            duration: None,
        };
        let reason = outcome.reason();
        warn!(
            service = %self.spec.service,
            server = %self.spec.server,
            on_error = on_error.as_str(),
            "{reason}"
        );
        self.stats.send_modify(|st| {
            st.observe_trips += 1;
            if counted {
                st.failed_checks += 1;
                st.last_check = Some(outcome);
                st.last_check_at = Some(Instant::now());
            }
        });
        self.after_update(t, Cause::Observe, reason, None);
    }

    /// Publishes the counter and, on a transition, updates the clocks and sends the event.
    fn after_update(
        &mut self,
        t: Option<Transition>,
        cause: Cause,
        reason: String,
        check_duration: Option<Duration>,
    ) {
        let now = Instant::now();
        let counter = &self.counter;
        self.stats.send_modify(|st| {
            st.state = counter.state();
            st.phase = counter.phase();
            st.status_text = counter.status_text();
            st.health = counter.health();
            if let Some(t) = t {
                st.last_change = now;
                if t.to == HealthState::Down {
                    st.down_transitions += 1;
                    st.down_since = Some(now);
                    st.up_since = None;
                } else if t.from == HealthState::Down {
                    if let Some(since) = st.down_since.take() {
                        st.downtime += now.saturating_duration_since(since);
                    }
                    st.up_since = Some(now);
                }
            }
        });
        let Some(t) = t else { return };
        let event = HealthEvent {
            service: self.spec.service.clone(),
            server: self.spec.server.clone(),
            state: t.to,
            previous: t.from,
            cause,
            reason,
            check_duration,
            decided_at: now,
        };
        info!(
            service = %event.service,
            server = %event.server,
            state = event.state.as_str(),
            "health state change"
        );
        if self.events.send(event).is_err() {
            debug!(service = %self.spec.service, server = %self.spec.server, "health event receiver is gone");
        }
    }

    /// xorshift64*: jitter needs no cryptographic quality, and no extra dependency.
    fn next_unit(&mut self) -> f64 {
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Resolves when shutdown is requested or its sender is gone.
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

async fn poll_probe(in_flight: &mut Option<ProbeFuture>) -> CheckOutcome {
    match in_flight.as_mut() {
        Some(f) => f.await,
        None => std::future::pending().await,
    }
}

fn seed(service: &str, server: &str) -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write(service.as_bytes());
    h.write(server.as_bytes());
    h.finish() | 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::{check::HttpCheck, observe::ObserveLayer, ObservedEvent};
    use std::sync::atomic::{AtomicU16, Ordering};
    use tokio::{
        io::{AsyncReadExt, AsyncWriteExt},
        net::TcpListener,
    };

    /// A loopback HTTP backend whose answer status can be changed; 0 = close at once.
    async fn backend(status: Arc<AtomicU16>) -> (SocketAddr, tokio::task::JoinHandle<()>) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let h = tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = l.accept().await else {
                    return;
                };
                let status = Arc::clone(&status);
                tokio::spawn(async move {
                    let mut b = [0u8; 512];
                    let _ = s.read(&mut b).await;
                    let code = status.load(Ordering::Relaxed);
                    if code != 0 {
                        let reason = if code == 404 { "Not Found" } else { "OK" };
                        let _ = s
                            .write_all(format!("HTTP/1.0 {code} {reason}\r\n\r\n").as_bytes())
                            .await;
                    }
                });
            }
        });
        (addr, h)
    }

    fn spec(addr: SocketAddr, observe: Option<ObserveSettings>) -> CheckSpec {
        CheckSpec {
            service: "webfarm".into(),
            server: "webA".into(),
            addr,
            probe: Probe::Http(HttpCheck {
                disable_on_404: false,
                ..HttpCheck::parse("HEAD /check.txt HTTP/1.0").unwrap()
            }),
            settings: CheckSettings {
                intervals: Intervals::uniform(Duration::from_millis(40)),
                rise: 2,
                fall: 3,
                timeout_check: None,
                connect_timeout: None,
                observe,
                spread_checks: 0,
            },
            position: 0,
            count: 1,
        }
    }

    async fn next_event(rx: &mut mpsc::UnboundedReceiver<HealthEvent>) -> HealthEvent {
        tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("no health event within 5s")
            .expect("event channel closed")
    }

    #[tokio::test]
    async fn down_after_fall_checks_and_up_after_rise() {
        let status = Arc::new(AtomicU16::new(200));
        let (addr, _b) = backend(Arc::clone(&status)).await;
        let (tx, mut rx) = mpsc::unbounded_channel();
        let (stop_tx, stop_rx) = watch::channel(false);
        let h = spawn(spec(addr, None), tx, stop_rx);
        // Let it reach full health.
        let mut stats = h.subscribe_stats();
        tokio::time::timeout(Duration::from_secs(5), stats.wait_for(|s| s.health == 4))
            .await
            .unwrap()
            .unwrap();
        status.store(404, Ordering::Relaxed);
        let ev = next_event(&mut rx).await;
        assert_eq!(
            (ev.previous, ev.state, ev.cause),
            (HealthState::Up, HealthState::Down, Cause::Check)
        );
        assert_eq!(
            ev.reason,
            "Layer7 wrong status, code: 404, info: \"Not Found\""
        );
        let st = h.stats();
        assert_eq!(st.failed_checks, 3, "exactly fall=3 failed checks");
        assert!(st.consecutive_failures >= 3);
        assert_eq!(st.down_transitions, 1);
        let line = ev.log_line(1, 0);
        assert!(line.starts_with("Server webfarm/webA is DOWN, reason: Layer7 wrong status, code: 404, info: \"Not Found\", check duration: "), "{line}");
        assert!(
            line.ends_with("ms. 1 active and 0 backup servers left."),
            "{line}"
        );

        status.store(200, Ordering::Relaxed);
        let ev = next_event(&mut rx).await;
        assert_eq!(
            (ev.previous, ev.state),
            (HealthState::Down, HealthState::Up)
        );
        assert_eq!(ev.reason, "Layer7 check passed, code: 200, info: \"OK\"");
        let st = h.stats();
        assert!(st.up_since.is_some());
        assert!(st.downtime > Duration::ZERO);
        assert_eq!(st.down_since, None);
        stop_tx.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(5), h.join())
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn forced_health_overrides_and_checks_continue() {
        let status = Arc::new(AtomicU16::new(200));
        let (addr, _b) = backend(Arc::clone(&status)).await;
        let (tx, mut rx) = mpsc::unbounded_channel();
        let (_stop_tx, stop_rx) = watch::channel(false);
        let mut sp = spec(addr, None);
        sp.settings.intervals = Intervals::uniform(Duration::from_secs(3600));
        // Second of two servers: the first check is half an interval away, out of the way.
        (sp.position, sp.count) = (1, 2);
        let h = spawn(sp, tx, stop_rx);
        let t = h.force(HealthState::Down).await.unwrap();
        assert_eq!(
            t,
            Some(Transition {
                from: HealthState::Up,
                to: HealthState::Down
            })
        );
        let ev = next_event(&mut rx).await;
        assert_eq!(
            (ev.state, ev.cause, ev.reason.as_str()),
            (HealthState::Down, Cause::Admin, FORCED_REASON)
        );
        assert_eq!(
            ev.log_line(0, 0),
            "Server webfarm/webA is DOWN, changed from CLI. 0 active and 0 backup servers left."
        );
        assert_eq!(h.force(HealthState::Down).await.unwrap(), None);
        assert_eq!(h.stats().health, 0);
        assert_eq!(
            h.force(HealthState::Up).await.unwrap(),
            Some(Transition {
                from: HealthState::Down,
                to: HealthState::Up
            })
        );
        assert_eq!(next_event(&mut rx).await.state, HealthState::Up);
        assert_eq!(h.stats().health, 4);
        h.abort();
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(h.force(HealthState::Down).await.is_err());
    }

    #[tokio::test]
    async fn observe_mark_down_is_immediate() {
        let status = Arc::new(AtomicU16::new(200));
        let (addr, _b) = backend(Arc::clone(&status)).await;
        let (tx, mut rx) = mpsc::unbounded_channel();
        let (_stop_tx, stop_rx) = watch::channel(false);
        let mut sp = spec(
            addr,
            Some(ObserveSettings {
                layer: ObserveLayer::Layer4,
                error_limit: 5,
                on_error: OnError::MarkDown,
            }),
        );
        // Slow regular checks, fast fastinter: the trip must pull the next check forward.
        sp.settings.intervals = Intervals {
            inter: Duration::from_secs(3600),
            fastinter: Duration::from_millis(30),
            downinter: Duration::from_secs(3600),
        };
        sp.position = 0;
        let h = spawn(sp, tx, stop_rx);
        let obs = h.observer();
        for _ in 0..4 {
            obs.report(ObservedEvent::ConnectError);
        }
        obs.report(ObservedEvent::ConnectOk); // resets the run
        for _ in 0..5 {
            obs.report(ObservedEvent::ConnectError);
        }
        let ev = next_event(&mut rx).await;
        assert_eq!((ev.state, ev.cause), (HealthState::Down, Cause::Observe));
        assert_eq!(
            ev.reason,
            "Health analyze, info: \"Detected 5 consecutive errors, last one was: L4 unsuccessful connection\""
        );
        assert_eq!(ev.check_duration, None);
        assert_eq!(h.stats().observe_trips, 1);
        // fastinter checks (backend answers 200) bring it back after rise=2.
        let ev = next_event(&mut rx).await;
        assert_eq!((ev.state, ev.cause), (HealthState::Up, Cause::Check));
    }

    #[test]
    fn spreading() {
        let s = Duration::from_secs(2);
        assert_eq!(initial_delay(s, 0, 4), Duration::ZERO);
        assert_eq!(initial_delay(s, 1, 4), Duration::from_millis(500));
        assert_eq!(initial_delay(s, 9, 4), Duration::from_millis(1500));
        assert_eq!(initial_delay(s, 0, 0), Duration::ZERO);
        assert_eq!(spread(s, 0, 0.9), s);
        assert_eq!(spread(s, 10, 0.5), s);
        assert_eq!(spread(s, 10, 0.0), Duration::from_millis(2200));
        assert_eq!(spread(s, 10, 1.0), Duration::from_millis(1800));
        assert_eq!(spread(s, 200, 1.0), Duration::from_secs(1)); // capped at 50%
    }

    #[test]
    fn csv_columns_follow_haproxy() {
        let t0 = Instant::now();
        let mut st = HealthStats::new(&HealthCounter::new(2, 3), t0);
        st.last_check = Some(CheckOutcome {
            status: CheckStatus::L7Sts,
            code: Some(404),
            info: Some("Not Found".into()),
            duration: Some(Duration::from_millis(7)),
        });
        st.down_since = Some(t0);
        st.downtime = Duration::from_secs(5);
        let c = st.csv_columns(t0 + Duration::from_secs(3));
        assert_eq!(c.status, "UP 1/3");
        assert_eq!(
            (
                c.check_status.as_str(),
                c.check_code.as_str(),
                c.check_duration.as_str()
            ),
            ("L7STS", "404", "7")
        );
        assert_eq!(
            (c.lastchg, c.downtime, c.last_chk.as_str()),
            (3, 8, "Not Found")
        );
        assert_eq!((c.check_rise, c.check_fall, c.check_health), (2, 3, 2));
        let empty = HealthStats::new(&HealthCounter::new(2, 3), t0).csv_columns(t0);
        assert_eq!(
            (empty.check_status.as_str(), empty.check_code.as_str()),
            ("", "")
        );
    }

    #[test]
    fn log_line_formats() {
        assert_eq!(
            format_state_change(
                "webfarm",
                "webA",
                HealthState::Up,
                Cause::Check,
                "Layer7 check passed, code: 200, info: \"OK\"",
                Some(Duration::from_millis(3)),
                2,
                0
            ),
            "Server webfarm/webA is UP, reason: Layer7 check passed, code: 200, info: \"OK\", check duration: 3ms. 2 active and 0 backup servers online."
        );
        assert_eq!(
            format_no_server_available("webfarm"),
            "backend webfarm has no server available!"
        );
    }
}
