//! The VRRP state machine of RFC 5798 section 6.4, as a pure function of events and time.
//!
//! No sockets, no clock: the caller passes `now` with every event and asks
//! [`Machine::deadline`] when to call [`Machine::on_timer`] next. That makes every rule of
//! the RFC a unit test (including split brain and the priority-0 handover) that runs in
//! microseconds, and the IO loop a thin translation of [`Action`]s into packets and
//! netlink calls.
//!
//! One extension over the RFC: graceful shutdown of a master goes through
//! [`State::Stopping`]. The RFC's master sends priority 0 and drops its addresses at once,
//! which loses the requests sent between that moment and the backup's takeover (what
//! keepalived does). We send priority 0 and keep serving until the new master's first
//! advert is seen (or a bounded wait ends), so the handover has no gap at all.

use std::{net::IpAddr, time::Duration};

/// A point in time, as the caller's clock gives it. `std::time::Instant` in production;
/// tests use the same type and add durations to a fixed start.
pub type Instant = std::time::Instant;

/// One centisecond, the unit of VRRPv3 intervals.
pub const CENTISECOND: Duration = Duration::from_millis(10);

/// How many advert intervals a stopping master waits for a successor before it lets go
/// anyway: the backup takes over after its skew time (under one interval) when it heard
/// our priority 0, or after 3 intervals plus skew when it did not.
pub const STOP_WAIT_INTERVALS: u32 = 4;

/// The RFC's states, plus [`State::Stopping`] for graceful shutdown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Not participating (before startup, after shutdown).
    Initialize,
    /// Watching the master; takes over when its adverts stop.
    Backup,
    /// Owning the virtual addresses and advertising.
    Master,
    /// Shutting down as master: priority 0 sent, still serving until a successor speaks.
    Stopping,
    /// The interface is down: not participating until it comes back (keepalived's FAULT).
    Fault,
}

impl State {
    /// Upper-case name, as keepalived and the RFC print it (also the `notify` value).
    pub fn as_str(self) -> &'static str {
        match self {
            State::Initialize => "INIT",
            State::Backup => "BACKUP",
            State::Master => "MASTER",
            State::Stopping => "STOPPING",
            State::Fault => "FAULT",
        }
    }
}

/// The configuration the machine needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Params {
    /// Our priority, 1-255; 255 means we own the addresses.
    pub priority: u8,
    /// Our Advertisement_Interval.
    pub advert_interval: Duration,
    /// Whether a higher-priority backup preempts a lower-priority master.
    pub preempt: bool,
    /// How long a higher-priority backup tolerates a lower-priority master before it
    /// preempts (keepalived's `preempt_delay`); zero preempts at once.
    pub preempt_delay: Duration,
    /// Our primary address on the interface: the tie-breaker between equal priorities.
    pub primary: IpAddr,
}

/// A received advert, reduced to what the state machine looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Heard {
    /// Sender's priority.
    pub priority: u8,
    /// Sender's Max Adver Int.
    pub interval: Duration,
    /// Sender's primary address (the packet's source).
    pub src: IpAddr,
}

/// What the IO layer must do after an event, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Send an advert with this priority (ours, or 0 when leaving).
    SendAdvert(u8),
    /// We became master: take the addresses, attach, announce (GARP/NA), notify.
    BecomeMaster,
    /// We became backup (from master or at startup): release the addresses, notify.
    BecomeBackup,
    /// Send gratuitous ARPs / unsolicited NAs again (we stay master after another router
    /// claimed the VIP: the clients may have followed its announcements).
    Announce,
    /// Shutdown finished: release whatever is still held, notify, and end.
    Stopped,
}

/// The state machine of one virtual router.
#[derive(Clone, Debug)]
pub struct Machine {
    params: Params,
    state: State,
    master_adver_interval: Duration,
    master_down_at: Option<Instant>,
    adver_at: Option<Instant>,
    stop_at: Option<Instant>,
    /// When a higher-priority backup may preempt the lower-priority master it hears.
    preempt_at: Option<Instant>,
    /// When a master may next reassert itself against a lower-priority master.
    reassert_at: Option<Instant>,
}

impl Machine {
    /// A machine in [`State::Initialize`]; nothing happens until [`Machine::startup`].
    pub fn new(params: Params) -> Self {
        let adv = params.advert_interval;
        Machine {
            params,
            state: State::Initialize,
            master_adver_interval: adv,
            master_down_at: None,
            adver_at: None,
            stop_at: None,
            preempt_at: None,
            reassert_at: None,
        }
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The parameters the machine runs with.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// The master's advert interval as last learned (ours while we are master).
    pub fn master_adver_interval(&self) -> Duration {
        self.master_adver_interval
    }

    /// Skew_Time: lower priorities wait longer, so the best backup wins the race.
    pub fn skew_time(&self) -> Duration {
        self.master_adver_interval * (256 - u32::from(self.params.priority)) / 256
    }

    /// Master_Down_Interval = 3 x Master_Adver_Interval + Skew_Time.
    pub fn master_down_interval(&self) -> Duration {
        self.master_adver_interval * 3 + self.skew_time()
    }

    /// When [`Machine::on_timer`] must be called next, if any timer runs.
    pub fn deadline(&self) -> Option<Instant> {
        [self.master_down_at, self.adver_at, self.stop_at]
            .into_iter()
            .flatten()
            .min()
    }

    /// The Startup event.
    pub fn startup(&mut self, now: Instant) -> Vec<Action> {
        if self.state != State::Initialize {
            return Vec::new();
        }
        if self.params.priority == 255 {
            self.become_master(now)
        } else {
            self.master_adver_interval = self.params.advert_interval;
            self.enter_backup(now)
        }
    }

    /// Processes whatever timers expired at `now`.
    pub fn on_timer(&mut self, now: Instant) -> Vec<Action> {
        let due = |t: Option<Instant>| t.is_some_and(|t| t <= now);
        match self.state {
            State::Backup if due(self.master_down_at) => self.become_master(now),
            State::Master if due(self.adver_at) => {
                self.adver_at = Some(now + self.params.advert_interval);
                vec![Action::SendAdvert(self.params.priority)]
            }
            State::Stopping if due(self.stop_at) => self.finish_stop(),
            State::Stopping if due(self.adver_at) => {
                // Repeat the goodbye in case the first one was lost.
                self.adver_at = Some(now + self.params.advert_interval);
                vec![Action::SendAdvert(0)]
            }
            _ => Vec::new(),
        }
    }

    /// A validated advert for our VRID arrived.
    pub fn on_advert(&mut self, now: Instant, heard: Heard) -> Vec<Action> {
        match self.state {
            State::Initialize | State::Fault => Vec::new(),
            State::Backup => {
                if heard.priority == 0 {
                    // The master is leaving: take over after our skew only.
                    self.master_down_at = Some(now + self.skew_time());
                    return Vec::new();
                }
                let lower = heard.priority < self.params.priority;
                if !self.params.preempt || !lower || self.preempt_held(now, lower) {
                    self.master_adver_interval = heard.interval;
                    self.master_down_at = Some(now + self.master_down_interval());
                }
                // Otherwise (preempt, lower priority, delay over): ignore it and let the
                // master-down timer make us master.
                Vec::new()
            }
            State::Master => {
                if heard.priority == 0 {
                    // A leaving peer thought it was master: assert ourselves at once.
                    self.adver_at = Some(now + self.params.advert_interval);
                    return vec![Action::SendAdvert(self.params.priority)];
                }
                if self.loses_to(&heard) {
                    self.master_adver_interval = heard.interval;
                    self.adver_at = None;
                    self.preempt_at = None;
                    self.state = State::Backup;
                    self.master_down_at = Some(now + self.master_down_interval());
                    return vec![Action::BecomeBackup];
                }
                // A lower-priority router thinks it is master (it missed our adverts, or
                // just started): the RFC discards its advert, but it has announced the VIP
                // and clients may have followed. Advertise at once so it steps down now,
                // and re-announce so the clients come back; at most once an interval, so
                // forged adverts cannot make us flood.
                if self.reassert_at.is_some_and(|t| now < t) {
                    return Vec::new();
                }
                self.reassert_at = Some(now + self.params.advert_interval);
                self.adver_at = Some(now + self.params.advert_interval);
                vec![Action::SendAdvert(self.params.priority), Action::Announce]
            }
            State::Stopping => {
                if heard.priority > 0 {
                    // Someone announced itself as master: hand over now.
                    self.finish_stop()
                } else {
                    Vec::new()
                }
            }
        }
    }

    /// The Shutdown event. A master keeps serving (see [`State::Stopping`]); everything
    /// else stops at once.
    pub fn shutdown(&mut self, now: Instant) -> Vec<Action> {
        match self.state {
            State::Master => {
                self.state = State::Stopping;
                self.adver_at = Some(now + self.params.advert_interval);
                self.stop_at = Some(now + self.params.advert_interval * STOP_WAIT_INTERVALS);
                vec![Action::SendAdvert(0)]
            }
            State::Stopping => Vec::new(),
            State::Backup | State::Initialize | State::Fault => {
                self.state = State::Initialize;
                self.master_down_at = None;
                vec![Action::Stopped]
            }
        }
    }

    /// The interface lost its link: stop taking part, and let go of the addresses if we
    /// held them (they are unreachable through a dead link anyway).
    pub fn link_down(&mut self) -> Vec<Action> {
        let was = self.state;
        if matches!(was, State::Initialize | State::Fault) {
            return Vec::new();
        }
        self.state = State::Fault;
        self.master_down_at = None;
        self.adver_at = None;
        self.stop_at = None;
        self.preempt_at = None;
        match was {
            State::Master => vec![Action::BecomeBackup],
            State::Stopping => vec![Action::Stopped],
            _ => Vec::new(),
        }
    }

    /// The link is back: start over as at startup.
    pub fn link_up(&mut self, now: Instant) -> Vec<Action> {
        if self.state != State::Fault {
            return Vec::new();
        }
        self.state = State::Initialize;
        self.startup(now)
    }

    /// Tracking or a reload changed our priority, timers or preempt settings: adopt them
    /// without a transition (no role flap). A master advertises a new priority or
    /// interval at once, so a backup that now outranks it preempts without waiting for
    /// the next scheduled advert (keepalived does the same); a backup's next master-down
    /// timer uses the new skew. The primary address is the socket's and stays.
    pub fn reconfigure(&mut self, now: Instant, params: Params) -> Vec<Action> {
        let changed = params.priority != self.params.priority
            || params.advert_interval != self.params.advert_interval;
        let primary = self.params.primary;
        self.params = Params { primary, ..params };
        if self.params.preempt_delay.is_zero() {
            self.preempt_at = None;
        }
        match self.state {
            State::Master if changed => {
                self.master_adver_interval = self.params.advert_interval;
                self.adver_at = Some(now + self.params.advert_interval);
                vec![Action::SendAdvert(self.params.priority)]
            }
            _ => Vec::new(),
        }
    }

    /// Whether `heard` makes a master step down: higher priority, or equal priority from a
    /// higher primary address (compared as unsigned integers, RFC 5798 6.4.3).
    fn loses_to(&self, heard: &Heard) -> bool {
        heard.priority > self.params.priority
            || (heard.priority == self.params.priority
                && addr_key(heard.src) > addr_key(self.params.primary))
    }

    /// With a preempt delay, a lower-priority master is tolerated until the delay has run
    /// since we first heard it.
    fn preempt_held(&mut self, now: Instant, lower: bool) -> bool {
        if !lower || self.params.preempt_delay.is_zero() {
            return false;
        }
        let at = *self
            .preempt_at
            .get_or_insert(now + self.params.preempt_delay);
        now < at
    }

    fn become_master(&mut self, now: Instant) -> Vec<Action> {
        self.state = State::Master;
        self.master_down_at = None;
        self.preempt_at = None;
        self.master_adver_interval = self.params.advert_interval;
        self.adver_at = Some(now + self.params.advert_interval);
        // Take the addresses before telling the others: a stopping master lets go as soon
        // as it hears us, and the clients must already have been told where the VIP is.
        vec![
            Action::BecomeMaster,
            Action::SendAdvert(self.params.priority),
        ]
    }

    fn enter_backup(&mut self, now: Instant) -> Vec<Action> {
        self.state = State::Backup;
        self.adver_at = None;
        self.master_down_at = Some(now + self.master_down_interval());
        vec![Action::BecomeBackup]
    }

    fn finish_stop(&mut self) -> Vec<Action> {
        self.state = State::Initialize;
        self.adver_at = None;
        self.stop_at = None;
        vec![Action::Stopped]
    }
}

/// Orders addresses as the RFC compares them: as unsigned integers in network byte order.
fn addr_key(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn params(priority: u8, last_octet: u8) -> Params {
        Params {
            priority,
            advert_interval: Duration::from_millis(100),
            preempt: true,
            preempt_delay: Duration::ZERO,
            primary: IpAddr::from([198, 18, 0, last_octet]),
        }
    }

    fn heard(priority: u8, last_octet: u8) -> Heard {
        Heard {
            priority,
            interval: Duration::from_millis(100),
            src: IpAddr::from([198, 18, 0, last_octet]),
        }
    }

    #[test]
    fn timers_follow_the_rfc_formulas() {
        let m = Machine::new(params(100, 2));
        // skew = (256 - 100) * 100 ms / 256 = 60.9375 ms
        assert_eq!(
            m.skew_time(),
            Duration::from_micros(60_937) + Duration::from_nanos(500)
        );
        assert_eq!(
            m.master_down_interval(),
            Duration::from_millis(300) + m.skew_time()
        );
    }

    #[test]
    fn owner_starts_as_master_others_as_backup() {
        let t = Instant::now();
        let mut owner = Machine::new(params(255, 1));
        assert_eq!(
            owner.startup(t),
            vec![Action::BecomeMaster, Action::SendAdvert(255)]
        );
        assert_eq!(owner.state(), State::Master);
        let mut b = Machine::new(params(100, 2));
        assert_eq!(b.startup(t), vec![Action::BecomeBackup]);
        assert_eq!(b.deadline(), Some(t + b.master_down_interval()));
    }

    #[test]
    fn backup_takes_over_when_adverts_stop_and_then_advertises() {
        let t = Instant::now();
        let mut m = Machine::new(params(100, 2));
        m.startup(t);
        // Adverts from a higher-priority master keep resetting the timer.
        for i in 1..10 {
            let now = t + 100 * MS * i;
            assert!(m.on_advert(now, heard(150, 3)).is_empty());
            assert_eq!(m.on_timer(now), vec![]);
        }
        let last = t + 900 * MS;
        let down = last + m.master_down_interval();
        assert_eq!(m.deadline(), Some(down));
        assert!(m.on_timer(down - MS).is_empty());
        assert_eq!(
            m.on_timer(down),
            vec![Action::BecomeMaster, Action::SendAdvert(100)]
        );
        assert_eq!(m.on_timer(down + 100 * MS), vec![Action::SendAdvert(100)]);
        assert_eq!(m.deadline(), Some(down + 200 * MS));
    }

    #[test]
    fn backup_learns_the_masters_interval() {
        let t = Instant::now();
        let mut m = Machine::new(params(100, 2));
        m.startup(t);
        let slow = Heard {
            interval: Duration::from_secs(1),
            ..heard(150, 3)
        };
        m.on_advert(t, slow);
        assert_eq!(m.master_adver_interval(), Duration::from_secs(1));
        assert_eq!(
            m.deadline(),
            Some(t + Duration::from_secs(3) + m.skew_time())
        );
        assert!(m.skew_time() > Duration::from_millis(600));
    }

    #[test]
    fn priority_zero_makes_the_backup_take_over_after_skew() {
        let t = Instant::now();
        let mut m = Machine::new(params(100, 2));
        m.startup(t);
        m.on_advert(t, heard(150, 3));
        assert!(m.on_advert(t + 10 * MS, heard(0, 3)).is_empty());
        assert_eq!(m.deadline(), Some(t + 10 * MS + m.skew_time()));
        assert_eq!(
            m.on_timer(t + 10 * MS + m.skew_time()),
            vec![Action::BecomeMaster, Action::SendAdvert(100)]
        );
    }

    #[test]
    fn master_steps_down_for_higher_priority_and_reasserts_against_lower() {
        let t = Instant::now();
        let mut m = Machine::new(params(100, 2));
        m.startup(t);
        m.on_timer(t + m.master_down_interval());
        assert_eq!(m.state(), State::Master);
        let now = t + Duration::from_secs(1);
        assert_eq!(
            m.on_advert(now, heard(50, 9)),
            vec![Action::SendAdvert(100), Action::Announce]
        );
        // ...at most once an advert interval.
        assert!(m.on_advert(now + 50 * MS, heard(50, 9)).is_empty());
        assert_eq!(m.on_advert(now + 100 * MS, heard(50, 9)).len(), 2);
        assert_eq!(m.state(), State::Master);
        assert_eq!(m.on_advert(now, heard(101, 1)), vec![Action::BecomeBackup]);
        assert_eq!(m.state(), State::Backup);
        assert_eq!(m.deadline(), Some(now + m.master_down_interval()));
    }

    #[test]
    fn master_answers_a_priority_zero_advert_at_once() {
        let t = Instant::now();
        let mut m = Machine::new(params(255, 1));
        m.startup(t);
        assert_eq!(
            m.on_advert(t + 10 * MS, heard(0, 5)),
            vec![Action::SendAdvert(255)]
        );
        assert_eq!(m.deadline(), Some(t + 110 * MS));
    }

    #[test]
    fn split_brain_resolves_to_exactly_one_master() {
        // Two masters (a healed partition) with equal priority: the higher address wins;
        // with different priorities the higher priority wins, whoever hears first.
        for (pa, pb, expect_a_master) in [(100, 100, false), (100, 150, false), (150, 100, true)] {
            let t = Instant::now();
            let mut a = Machine::new(params(pa, 2));
            let mut b = Machine::new(params(pb, 3));
            a.startup(t);
            b.startup(t);
            a.on_timer(t + a.master_down_interval());
            b.on_timer(t + b.master_down_interval());
            assert_eq!((a.state(), b.state()), (State::Master, State::Master));
            let now = t + Duration::from_secs(1);
            let ha = Heard {
                priority: pa,
                interval: 100 * MS,
                src: a.params().primary,
            };
            let hb = Heard {
                priority: pb,
                interval: 100 * MS,
                src: b.params().primary,
            };
            a.on_advert(now, hb);
            b.on_advert(now, ha);
            let masters = [&a, &b]
                .iter()
                .filter(|m| m.state() == State::Master)
                .count();
            assert_eq!(masters, 1);
            assert_eq!(a.state() == State::Master, expect_a_master);
        }
    }

    #[test]
    fn preempt_lets_a_better_backup_take_over_nopreempt_does_not() {
        let t = Instant::now();
        let mut p = Machine::new(params(150, 2));
        p.startup(t);
        // A lower-priority master keeps advertising: with preempt we ignore it...
        for i in 0..5 {
            p.on_advert(t + 100 * MS * i, heard(100, 3));
        }
        assert_eq!(p.deadline(), Some(t + p.master_down_interval()));
        assert_eq!(
            p.on_timer(t + p.master_down_interval())[0],
            Action::BecomeMaster
        );

        let mut n = Machine::new(Params {
            preempt: false,
            ..params(150, 2)
        });
        n.startup(t);
        for i in 0..50 {
            n.on_advert(t + 100 * MS * i, heard(100, 3));
            assert!(n.on_timer(t + 100 * MS * i).is_empty());
        }
        assert_eq!(n.state(), State::Backup);
    }

    #[test]
    fn preempt_delay_tolerates_a_lower_master_for_a_while() {
        let t = Instant::now();
        let mut m = Machine::new(Params {
            preempt_delay: Duration::from_secs(1),
            ..params(150, 2)
        });
        m.startup(t);
        let mut now = t;
        let mut became = None;
        while now < t + Duration::from_secs(3) {
            m.on_advert(now, heard(100, 3));
            if m.on_timer(now).contains(&Action::BecomeMaster) {
                became = Some(now);
                break;
            }
            now += 10 * MS;
        }
        let became = became.expect("preempted eventually") - t;
        assert!(became >= Duration::from_secs(1), "{became:?}");
        assert!(
            became <= Duration::from_secs(1) + m.master_down_interval() + 10 * MS,
            "{became:?}"
        );
    }

    #[test]
    fn graceful_stop_keeps_serving_until_the_successor_speaks() {
        let t = Instant::now();
        let mut m = Machine::new(params(150, 2));
        m.startup(t);
        m.on_timer(t + m.master_down_interval());
        let now = t + Duration::from_secs(1);
        assert_eq!(m.shutdown(now), vec![Action::SendAdvert(0)]);
        assert_eq!(m.state(), State::Stopping);
        // Still "serving": no Stopped until a master with priority > 0 is heard...
        assert_eq!(m.on_timer(now + 100 * MS), vec![Action::SendAdvert(0)]);
        assert!(m.on_advert(now + 120 * MS, heard(0, 3)).is_empty());
        assert_eq!(
            m.on_advert(now + 150 * MS, heard(100, 3)),
            vec![Action::Stopped]
        );
        assert_eq!(m.state(), State::Initialize);
        assert_eq!(m.deadline(), None);
    }

    #[test]
    fn graceful_stop_is_bounded_without_a_successor() {
        let t = Instant::now();
        let mut m = Machine::new(params(255, 1));
        m.startup(t);
        m.shutdown(t);
        let end = t + 100 * MS * STOP_WAIT_INTERVALS;
        let mut now = t;
        let mut stopped = None;
        while now <= end + 100 * MS {
            if m.on_timer(now).contains(&Action::Stopped) {
                stopped = Some(now);
                break;
            }
            now += 10 * MS;
        }
        assert_eq!(stopped, Some(end));
    }

    #[test]
    fn backup_shutdown_is_immediate() {
        let t = Instant::now();
        let mut m = Machine::new(params(100, 2));
        m.startup(t);
        assert_eq!(m.shutdown(t), vec![Action::Stopped]);
        assert_eq!(m.deadline(), None);
        assert!(m.on_advert(t, heard(200, 3)).is_empty());
    }

    #[test]
    fn link_down_releases_and_link_up_restarts() {
        let t = Instant::now();
        let mut m = Machine::new(params(150, 2));
        m.startup(t);
        m.on_timer(t + m.master_down_interval());
        assert_eq!(m.link_down(), vec![Action::BecomeBackup]);
        assert_eq!(m.state(), State::Fault);
        assert_eq!(m.deadline(), None);
        assert!(m.on_advert(t, heard(200, 3)).is_empty());
        assert_eq!(
            m.link_up(t + Duration::from_secs(2)),
            vec![Action::BecomeBackup]
        );
        assert_eq!(m.state(), State::Backup);
    }

    #[test]
    fn lowered_master_advertises_at_once_and_a_better_backup_preempts() {
        let t = Instant::now();
        let mut master = Machine::new(params(150, 2));
        master.startup(t);
        master.on_timer(t + master.master_down_interval());
        let now = t + Duration::from_secs(1);
        let lowered = Params {
            priority: 50,
            ..master.params().clone()
        };
        assert_eq!(
            master.reconfigure(now, lowered.clone()),
            vec![Action::SendAdvert(50)]
        );
        assert_eq!(master.state(), State::Master, "no transition by itself");
        assert_eq!(master.reconfigure(now, lowered), vec![], "nothing changed");
        // The backup (100) now ignores the master's 50 and takes over after master-down.
        let mut backup = Machine::new(params(100, 3));
        backup.startup(t);
        backup.on_advert(now, heard(150, 2));
        let down = now + backup.master_down_interval();
        for i in 1..=3u32 {
            backup.on_advert(now + 10 * MS * i, heard(50, 2));
        }
        assert!(backup.on_timer(down - MS).is_empty());
        assert_eq!(backup.on_timer(down)[0], Action::BecomeMaster);
        // ...and the lowered master steps down when it hears the new master.
        assert_eq!(
            master.on_advert(down, heard(100, 3)),
            vec![Action::BecomeBackup]
        );
    }

    #[test]
    fn reconfigured_backup_keeps_its_role_and_uses_the_new_skew() {
        let t = Instant::now();
        let mut m = Machine::new(params(100, 2));
        m.startup(t);
        m.on_advert(t, heard(150, 3));
        let p = Params {
            priority: 200,
            advert_interval: Duration::from_millis(200),
            ..m.params().clone()
        };
        assert!(m.reconfigure(t, p).is_empty());
        assert_eq!(m.state(), State::Backup);
        // Still the master's learned interval; our priority sets the skew.
        assert_eq!(m.skew_time(), 100 * MS * 56 / 256);
        // Outranking the master now (preempt): its adverts no longer hold us back.
        let before = m.deadline();
        m.on_advert(t + 50 * MS, heard(150, 3));
        assert_eq!(m.deadline(), before);
    }

    #[test]
    fn ipv6_tie_break_compares_whole_addresses() {
        let t = Instant::now();
        let mut m = Machine::new(Params {
            primary: "fe80::2".parse().unwrap(),
            ..params(255, 0)
        });
        m.startup(t);
        let h = Heard {
            priority: 255,
            interval: 100 * MS,
            src: "fe80::1:0".parse().unwrap(),
        };
        assert_eq!(m.on_advert(t, h), vec![Action::BecomeBackup]);
    }
}
