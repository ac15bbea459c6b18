//! HAProxy's health counter: the rise/fall hysteresis that turns check results into a
//! server state.
//!
//! `health` runs over `0..=rise+fall-1`. The server is UP when `health >= rise`:
//!
//! ```text
//!  0 ........ rise-1 | rise ........ rise+fall-1
//!  DOWN  (going up)  | UP (going down)     full UP
//! ```
//!
//! - a success increments; reaching `rise` jumps straight to full UP (`rise+fall-1`), so a
//!   success while "going down" restores full health at once;
//! - a failure decrements; dropping below `rise` resets to 0, so a failure while "going
//!   up" starts the climb again and the drop from `rise` to DOWN is immediate;
//! - a server starts at `health = rise`: UP, but a single failure marks it DOWN (HAProxy
//!   does this so a dead server at startup leaves the farm after one check, not `fall`);
//! - a *conditional* pass (`http-check disable-on-404`: a 404) counts as a success except
//!   that it cannot take the first step from 0, and while UP it puts the server in NOLB
//!   (persistent traffic only). A stopped server stays stopped even if it answers 404s.
//!
//! So from full UP exactly `fall` consecutive failures mark the server DOWN, and from DOWN
//! exactly `rise` consecutive successes mark it UP. This module is pure: no clock, no I/O,
//! so the rules are tested exhaustively below.

use std::time::Duration;

/// The three states the rest of the system acts on (L7 rotation, Maglev tables).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HealthState {
    /// Takes new sessions and flows.
    Up,
    /// Up, but not for new sessions: only persistent (cookie) traffic (`disable-on-404`).
    Nolb,
    /// Out of rotation; its L4 flows are re-picked.
    Down,
}

impl HealthState {
    /// The word HAProxy's stats and logs use.
    pub fn as_str(self) -> &'static str {
        match self {
            HealthState::Up => "UP",
            HealthState::Nolb => "NOLB",
            HealthState::Down => "DOWN",
        }
    }

    /// The verb of HAProxy's state-change log line ("is UP", "is stopping", "is DOWN").
    pub fn log_word(self) -> &'static str {
        match self {
            HealthState::Up => "UP",
            HealthState::Nolb => "stopping",
            HealthState::Down => "DOWN",
        }
    }
}

impl std::fmt::Display for HealthState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What one check (or one simulated check) said about the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// 2xx/3xx, or a TCP connect that succeeded.
    Pass,
    /// 404 with `disable-on-404`: alive, but wants no new sessions.
    ConditionalPass,
    /// Anything else: refused, timeout, wrong status, garbage.
    Fail,
}

/// Where the counter is, with the detail the stats page shows ("UP 2/3", "DOWN 1/2").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Full health.
    Up,
    /// UP, but failures have used some of the `fall` margin ("UP 2/3").
    UpGoingDown,
    /// NOLB at full health.
    Nolb,
    /// NOLB with some failures counted.
    NolbGoingDown,
    /// DOWN with some successes counted.
    DownGoingUp,
    /// DOWN, health 0.
    Down,
}

impl Phase {
    /// The stats page legend for this phase.
    pub fn legend(self) -> &'static str {
        match self {
            Phase::Up => "UP",
            Phase::UpGoingDown => "UP, going down",
            Phase::Nolb => "NOLB",
            Phase::NolbGoingDown => "NOLB, going down",
            Phase::DownGoingUp => "DOWN, going up",
            Phase::Down => "DOWN",
        }
    }
}

/// A state change caused by one update of the counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transition {
    /// State before the update.
    pub from: HealthState,
    /// State after the update.
    pub to: HealthState,
}

/// The check intervals, resolved: `fastinter` and `downinter` already default to `inter`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Intervals {
    /// Between checks of a server at full health.
    pub inter: Duration,
    /// Between checks while the counter is between the two stable ends (going up or down).
    pub fastinter: Duration,
    /// Between checks of a server that is DOWN with health 0.
    pub downinter: Duration,
}

impl Intervals {
    /// All three equal to `inter`: HAProxy's behaviour when only `inter` is set.
    pub fn uniform(inter: Duration) -> Self {
        Intervals {
            inter,
            fastinter: inter,
            downinter: inter,
        }
    }
}

/// HAProxy's health counter for one server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthCounter {
    health: u32,
    rise: u32,
    fall: u32,
    /// Set by a conditional pass while UP, cleared by a pass or by going DOWN.
    nolb: bool,
}

impl HealthCounter {
    /// A counter at its starting point, `health = rise`: UP, one failure from DOWN.
    /// `rise` and `fall` below 1 are taken as 1 (config validation rejects them anyway).
    pub fn new(rise: u32, fall: u32) -> Self {
        let rise = rise.max(1);
        let fall = fall.max(1);
        HealthCounter {
            health: rise,
            rise,
            fall,
            nolb: false,
        }
    }

    /// The raw counter value (`check_health` in `show servers state`).
    pub fn health(&self) -> u32 {
        self.health
    }

    /// Consecutive successes needed to go UP.
    pub fn rise(&self) -> u32 {
        self.rise
    }

    /// Consecutive failures needed to go DOWN from full health.
    pub fn fall(&self) -> u32 {
        self.fall
    }

    /// Top of the range: full UP.
    pub fn full(&self) -> u32 {
        self.rise.saturating_add(self.fall).saturating_sub(1)
    }

    /// The state the planes act on.
    pub fn state(&self) -> HealthState {
        if self.health < self.rise {
            HealthState::Down
        } else if self.nolb {
            HealthState::Nolb
        } else {
            HealthState::Up
        }
    }

    /// The detailed phase (for stats and for choosing the interval).
    pub fn phase(&self) -> Phase {
        match self.state() {
            HealthState::Down if self.health == 0 => Phase::Down,
            HealthState::Down => Phase::DownGoingUp,
            HealthState::Up if self.health == self.full() => Phase::Up,
            HealthState::Up => Phase::UpGoingDown,
            HealthState::Nolb if self.health == self.full() => Phase::Nolb,
            HealthState::Nolb => Phase::NolbGoingDown,
        }
    }

    /// HAProxy's status column: `UP`, `UP 2/3` (going down: the number is how many of the
    /// `fall` failures are still needed, counting this one), `DOWN 1/2` (going up:
    /// successes so far out of `rise`), `NOLB`, `NOLB 2/3`, `DOWN`.
    pub fn status_text(&self) -> String {
        match self.phase() {
            Phase::Up => "UP".to_string(),
            Phase::Nolb => "NOLB".to_string(),
            Phase::Down => "DOWN".to_string(),
            Phase::UpGoingDown | Phase::NolbGoingDown => format!(
                "{} {}/{}",
                self.state().as_str(),
                self.health + 1 - self.rise,
                self.fall
            ),
            Phase::DownGoingUp => format!("DOWN {}/{}", self.health, self.rise),
        }
    }

    /// Applies one check result; returns the state change if there was one.
    pub fn record(&mut self, verdict: Verdict) -> Option<Transition> {
        let from = self.state();
        let full = self.full();
        match verdict {
            Verdict::Fail => {
                if self.health > 0 {
                    self.health -= 1;
                    if self.health < self.rise {
                        self.health = 0;
                    }
                }
            }
            Verdict::Pass => {
                if self.health < full {
                    self.health += 1;
                    if self.health >= self.rise {
                        self.health = full;
                    }
                }
                self.nolb = false;
            }
            Verdict::ConditionalPass => {
                // A 404 cannot make the first step out of DOWN, but continues a climb.
                if self.health < full && self.health > 0 {
                    self.health += 1;
                    if self.health >= self.rise {
                        self.health = full;
                    }
                }
                if self.health >= self.rise {
                    self.nolb = true;
                }
            }
        }
        if self.health < self.rise {
            self.nolb = false;
        }
        self.transition_from(from)
    }

    /// `set server <s> health up|stopping|down`: jumps to full UP, full NOLB or 0.
    pub fn force(&mut self, to: HealthState) -> Option<Transition> {
        let from = self.state();
        match to {
            HealthState::Up => {
                self.health = self.full();
                self.nolb = false;
            }
            HealthState::Nolb => {
                self.health = self.full();
                self.nolb = true;
            }
            HealthState::Down => {
                self.health = 0;
                self.nolb = false;
            }
        }
        self.transition_from(from)
    }

    /// `on-error sudden-death`: leave at most one failure of margin, then count a failure.
    /// From full UP with `fall >= 2` the server stays UP, and the next failure downs it.
    pub fn sudden_death(&mut self) -> Option<Transition> {
        let from = self.state();
        if self.health > self.rise {
            self.health = self.rise + 1;
        }
        self.record(Verdict::Fail);
        self.transition_from(from)
    }

    /// `on-error mark-down`: counts a failure from the edge, so the server is DOWN now.
    pub fn mark_down(&mut self) -> Option<Transition> {
        let from = self.state();
        self.health = self.rise;
        self.record(Verdict::Fail);
        self.transition_from(from)
    }

    /// How long to wait before the next check, as HAProxy chooses it: `inter` at full
    /// health, `downinter` when DOWN at 0, `fastinter` anywhere in between.
    pub fn next_interval(&self, intervals: &Intervals) -> Duration {
        if self.health == self.full() {
            intervals.inter
        } else if self.health == 0 {
            intervals.downinter
        } else {
            intervals.fastinter
        }
    }

    fn transition_from(&self, from: HealthState) -> Option<Transition> {
        let to = self.state();
        (from != to).then_some(Transition { from, to })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use HealthState::{Down, Nolb, Up};
    use Verdict::{ConditionalPass as C, Fail as F, Pass as P};

    /// Runs `steps` from a fresh counter and checks (state, status text) after each.
    fn run(rise: u32, fall: u32, steps: &[(Verdict, HealthState, &str)]) {
        let mut c = HealthCounter::new(rise, fall);
        for (i, (v, state, text)) in steps.iter().enumerate() {
            c.record(*v);
            assert_eq!(
                (c.state(), c.status_text().as_str()),
                (*state, *text),
                "rise={rise} fall={fall} step {i} ({v:?}), health {}",
                c.health()
            );
        }
    }

    #[test]
    fn starts_up_at_rise_one_failure_from_down() {
        for (rise, fall) in [(2, 3), (1, 1), (3, 2), (5, 5)] {
            let c = HealthCounter::new(rise, fall);
            assert_eq!(c.health(), rise);
            assert_eq!(c.state(), Up);
            let mut d = c.clone();
            assert_eq!(
                d.record(F),
                Some(Transition { from: Up, to: Down }),
                "rise={rise} fall={fall}"
            );
            assert_eq!(d.health(), 0);
        }
    }

    #[test]
    fn sequence_rise2_fall3() {
        run(
            2,
            3,
            &[
                (P, Up, "UP"),         // 2 -> 3 would be >= rise: full (4)
                (F, Up, "UP 2/3"),     // 3
                (F, Up, "UP 1/3"),     // 2
                (P, Up, "UP"),         // success while going down: full
                (F, Up, "UP 2/3"),     // 3
                (F, Up, "UP 1/3"),     // 2
                (F, Down, "DOWN"),     // 1 < rise -> 0
                (F, Down, "DOWN"),     // stays 0
                (P, Down, "DOWN 1/2"), // 1
                (F, Down, "DOWN"),     // failure while going up: 0
                (P, Down, "DOWN 1/2"), // 1
                (P, Up, "UP"),         // 2 -> full
                (P, Up, "UP"),
            ],
        );
    }

    #[test]
    fn sequence_rise1_fall1() {
        run(
            1,
            1,
            &[
                (P, Up, "UP"),
                (F, Down, "DOWN"),
                (F, Down, "DOWN"),
                (P, Up, "UP"),
                (F, Down, "DOWN"),
                (P, Up, "UP"),
                (P, Up, "UP"),
            ],
        );
    }

    #[test]
    fn sequence_rise3_fall2() {
        run(
            3,
            2,
            &[
                (P, Up, "UP"),         // 3 -> full 4
                (F, Up, "UP 1/2"),     // 3
                (P, Up, "UP"),         // 4
                (F, Up, "UP 1/2"),     // 3
                (F, Down, "DOWN"),     // 2 -> 0
                (P, Down, "DOWN 1/3"), // 1
                (P, Down, "DOWN 2/3"), // 2
                (F, Down, "DOWN"),     // 0
                (P, Down, "DOWN 1/3"),
                (P, Down, "DOWN 2/3"),
                (P, Up, "UP"), // 3 -> 4
            ],
        );
    }

    #[test]
    fn sequence_rise5_fall5() {
        let mut steps = vec![(P, Up, "UP")];
        for t in ["UP 4/5", "UP 3/5", "UP 2/5", "UP 1/5"] {
            steps.push((F, Up, t));
        }
        steps.push((F, Down, "DOWN"));
        for t in ["DOWN 1/5", "DOWN 2/5", "DOWN 3/5", "DOWN 4/5"] {
            steps.push((P, Down, t));
        }
        steps.push((F, Down, "DOWN"));
        for t in ["DOWN 1/5", "DOWN 2/5", "DOWN 3/5", "DOWN 4/5"] {
            steps.push((P, Down, t));
        }
        steps.push((P, Up, "UP"));
        run(5, 5, &steps);
    }

    /// From full UP, DOWN after exactly `fall` failures; from 0, UP after exactly `rise`
    /// successes; and no transition before that.
    #[test]
    fn exact_fall_and_rise_counts() {
        for rise in 1..=6u32 {
            for fall in 1..=6u32 {
                let mut c = HealthCounter::new(rise, fall);
                c.force(Up);
                assert_eq!(c.health(), rise + fall - 1);
                for i in 1..=fall {
                    let t = c.record(F);
                    if i < fall {
                        assert_eq!(t, None, "rise={rise} fall={fall} failure {i}");
                        assert_eq!(c.state(), Up);
                    } else {
                        assert_eq!(t, Some(Transition { from: Up, to: Down }));
                    }
                }
                assert_eq!(c.health(), 0);
                for i in 1..=rise {
                    let t = c.record(P);
                    if i < rise {
                        assert_eq!(t, None, "rise={rise} fall={fall} success {i}");
                        assert_eq!(c.state(), Down);
                    } else {
                        assert_eq!(t, Some(Transition { from: Down, to: Up }));
                    }
                }
                assert_eq!(c.health(), rise + fall - 1);
            }
        }
    }

    #[test]
    fn health_stays_in_range_for_every_sequence() {
        // Every sequence of 10 verdicts (3^10 = 59049) for a few rise/fall pairs.
        for (rise, fall) in [(2, 3), (1, 1), (3, 2), (5, 5)] {
            for mut code in 0..3u32.pow(10) {
                let mut c = HealthCounter::new(rise, fall);
                for _ in 0..10 {
                    let v = [P, F, C][(code % 3) as usize];
                    code /= 3;
                    c.record(v);
                    assert!(c.health() <= c.full());
                    assert!(c.health() == 0 || c.health() >= rise || c.state() == Down);
                    assert_eq!(c.state() == Down, c.health() < rise);
                }
            }
        }
    }

    #[test]
    fn disable_on_404() {
        let mut c = HealthCounter::new(2, 3);
        c.record(P);
        assert_eq!(c.record(C), Some(Transition { from: Up, to: Nolb }));
        assert_eq!(c.status_text(), "NOLB");
        assert_eq!(c.record(F), None);
        assert_eq!(c.status_text(), "NOLB 2/3");
        assert_eq!(c.record(C), None); // 404 restores full health, stays NOLB
        assert_eq!(c.status_text(), "NOLB");
        assert_eq!(c.record(P), Some(Transition { from: Nolb, to: Up }));
        // NOLB -> DOWN after fall failures.
        c.record(C);
        for _ in 0..2 {
            assert_eq!(c.record(F), None);
        }
        assert_eq!(
            c.record(F),
            Some(Transition {
                from: Nolb,
                to: Down
            })
        );
        // A stopped server stays stopped even if it answers 404s.
        for _ in 0..5 {
            assert_eq!(c.record(C), None);
            assert_eq!(c.health(), 0);
        }
        // But a 404 continues a climb started by a pass, and lands in NOLB.
        c.record(P);
        assert_eq!(c.status_text(), "DOWN 1/2");
        assert_eq!(
            c.record(C),
            Some(Transition {
                from: Down,
                to: Nolb
            })
        );
    }

    #[test]
    fn forced_states() {
        let mut c = HealthCounter::new(2, 3);
        assert_eq!(c.force(Down), Some(Transition { from: Up, to: Down }));
        assert_eq!(c.health(), 0);
        assert_eq!(c.force(Down), None);
        assert_eq!(c.force(Up), Some(Transition { from: Down, to: Up }));
        assert_eq!(c.health(), 4);
        assert_eq!(c.force(Nolb), Some(Transition { from: Up, to: Nolb }));
        // Checks keep running after a forced state: one pass makes it UP again.
        assert_eq!(c.record(P), Some(Transition { from: Nolb, to: Up }));
    }

    #[test]
    fn observe_actions() {
        // sudden-death from full UP with fall 3: one failure of margin left.
        let mut c = HealthCounter::new(2, 3);
        c.force(Up);
        assert_eq!(c.sudden_death(), None);
        assert_eq!(c.status_text(), "UP 1/3");
        assert_eq!(c.record(F), Some(Transition { from: Up, to: Down }));
        // sudden-death with fall 1 is fatal at once.
        let mut c = HealthCounter::new(2, 1);
        assert_eq!(c.sudden_death(), Some(Transition { from: Up, to: Down }));
        // mark-down: DOWN immediately, from any UP health.
        let mut c = HealthCounter::new(5, 5);
        c.force(Up);
        assert_eq!(c.mark_down(), Some(Transition { from: Up, to: Down }));
        assert_eq!(c.health(), 0);
        // mark-down of a DOWN server going up: back to 0, no transition.
        c.record(P);
        assert_eq!(c.mark_down(), None);
        assert_eq!(c.health(), 0);
    }

    #[test]
    fn interval_choice() {
        let iv = Intervals {
            inter: Duration::from_secs(2),
            fastinter: Duration::from_millis(500),
            downinter: Duration::from_secs(5),
        };
        let mut c = HealthCounter::new(2, 3);
        // Starting at rise (not full): transitioning, fastinter.
        assert_eq!(c.next_interval(&iv), iv.fastinter);
        c.record(P);
        assert_eq!(c.next_interval(&iv), iv.inter);
        c.record(F);
        assert_eq!(c.next_interval(&iv), iv.fastinter);
        c.force(Down);
        assert_eq!(c.next_interval(&iv), iv.downinter);
        c.record(P);
        assert_eq!(c.next_interval(&iv), iv.fastinter);
        // rise=1 fall=1: always at an end.
        let mut c = HealthCounter::new(1, 1);
        assert_eq!(c.next_interval(&iv), iv.inter);
        c.record(F);
        assert_eq!(c.next_interval(&iv), iv.downinter);
        assert_eq!(
            Intervals::uniform(Duration::from_secs(2)).downinter,
            Duration::from_secs(2)
        );
    }

    #[test]
    fn phases_and_legend() {
        let mut c = HealthCounter::new(2, 3);
        assert_eq!(c.phase(), Phase::UpGoingDown);
        assert_eq!(c.phase().legend(), "UP, going down");
        c.force(Down);
        c.record(P);
        assert_eq!(c.phase().legend(), "DOWN, going up");
        assert_eq!(Nolb.log_word(), "stopping");
    }
}
