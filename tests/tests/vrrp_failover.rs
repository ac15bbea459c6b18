//! Issue 5, acceptance 1: lb1 (priority 150) owns the VIP; lb1 dies under a bounded client
//! load (one GET every 50 ms, 1 s deadline each) and lb2 (priority 100) takes over. The
//! same scenario runs with keepalived 2.2 (VRRPv3, same timers) in the same run, and both
//! are printed side by side: the gap between the last answer via lb1 and the first via lb2,
//! and the failed requests.
//!
//! Each SIGKILL run is also taken apart from a capture on the client's link (the
//! "where the time went" table): where the kill landed after lb1's last advert, lb2's
//! detection (its first advert after lb1's last: 3 x interval + skew), its gratuitous
//! ARP, and the first answer after it. That is how the 10-40 ms by which lb used to
//! trail keepalived was found: random kill phases (now fixed per round, the same for
//! both), the VIP add waiting behind the XDP attach for the RTNL lock (the VIPs now go
//! first when no L4 VIP needs XDP), and that attach stalling the first connections
//! (now 200 ms after the takeover).
//!
//! "lb1 dies" means the node's service dies: the VRRP daemon (lb, or keepalived) and the
//! node's web server are SIGKILLed together. (Killing only keepalived would leave the VIP
//! and the web server on lb1 answering, and there would be nothing to measure.)

mod vrrp_support;

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use vrrp_support::*;

/// Requests per failover run (at 50 ms: 2.5 s of load), well under the 400 cap.
const REQUESTS: usize = 50;
/// These tests measure timing on a 2-CPU machine: run them one at a time, not against
/// each other (each runs two daemons, peers and a client load).
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}
const PERIOD: Duration = Duration::from_millis(50);
/// When lb1 is stopped, from the start of the load, about: the exact moment is set in
/// step with lb1's adverts (see `scenario_timed`).
const KILL_AT: Duration = Duration::from_millis(1000);
/// Rounds per implementation: the gap depends on where in the advert cycle the kill
/// lands (up to one interval) and on the 50 ms request grid (up to two periods), so runs
/// are compared by their mean.
const ROUNDS: usize = 5;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Impl {
    Lb,
    Keepalived,
}

impl Impl {
    fn name(self, ms: u32) -> String {
        match self {
            Impl::Lb => format!("lb (VRRPv3, {ms} ms)"),
            Impl::Keepalived => format!("keepalived 2.2 (VRRPv3, {ms} ms)"),
        }
    }
}

enum Stop {
    Kill,
    Term,
}

/// Where the time of one failover went, from the client's side of the wire (ms).
#[derive(Clone, Copy, Debug, Default)]
struct Timeline {
    /// The kill, after lb1's last advert (where in the advert cycle it landed).
    kill_after_advert: f64,
    /// lb2's first advert after lb1's last one: master-down detection.
    detect: f64,
    /// lb2's first gratuitous ARP, after its first advert (negative: before it).
    garp_after_advert: f64,
    /// The first answer via lb2, after its first gratuitous ARP.
    answer_after_garp: f64,
    /// The last answer via lb1, before the kill (negative: after it).
    last_answer_before_kill: f64,
}

fn ms_between(a: Instant, b: Instant) -> f64 {
    if b >= a {
        (b - a).as_secs_f64() * 1000.0
    } else {
        -((a - b).as_secs_f64() * 1000.0)
    }
}

/// Takes a failover apart from the capture and the client's samples.
fn timeline(
    lab: &Lab,
    wire: &[(Instant, WireEvent)],
    kill: Instant,
    start: Instant,
    samples: &[Sample],
) -> Option<Timeline> {
    let lb1 = lab.host(LB1).ipv4();
    let lb2 = lab.host(LB2).ipv4();
    let lb2_mac = lab.host(LB2).mac().ok()?;
    let last_a1 = wire
        .iter()
        .filter(|(t, e)| *e == WireEvent::Advert(lb1) && *t <= kill)
        .map(|(t, _)| *t)
        .max()?;
    let first_a2 = wire
        .iter()
        .filter(|(t, e)| *e == WireEvent::Advert(lb2) && *t > kill)
        .map(|(t, _)| *t)
        .min()?;
    let first_garp = wire
        .iter()
        .filter(|(t, e)| *e == WireEvent::Garp(lb2_mac) && *t > kill)
        .map(|(t, _)| *t)
        .min()?;
    let first_answer = samples
        .iter()
        .filter(|s| s.node.as_deref() == Some("lb2"))
        .map(|s| start + s.done)
        .min()?;
    let last_answer = samples
        .iter()
        .filter(|s| s.node.as_deref() == Some("lb1"))
        .map(|s| start + s.done)
        .max()?;
    Some(Timeline {
        kill_after_advert: ms_between(last_a1, kill),
        detect: ms_between(last_a1, first_a2),
        garp_after_advert: ms_between(first_a2, first_garp),
        answer_after_garp: ms_between(first_garp, first_answer),
        last_answer_before_kill: ms_between(last_answer, kill),
    })
}

/// One run: lab, both nodes, load, stop lb1 at KILL_AT; returns what the client saw.
fn scenario(which: Impl, ms: u32, stop: Stop, round: u32, prefix: &str) -> Result<Outcome> {
    scenario_timed(which, ms, stop, round, prefix).map(|(o, _)| o)
}

/// [`scenario`] with the failover's timeline (SIGKILL runs only).
fn scenario_timed(
    which: Impl,
    ms: u32,
    stop: Stop,
    round: u32,
    prefix: &str,
) -> Result<(Outcome, Option<Timeline>)> {
    let mut lab = Lab::new(prefix, 3)?;
    let http1 = lab.start_http(LB1, "lb1")?;
    let _http2 = lab.start_http(LB2, "lb2")?;
    let start = |lab: &mut Lab, i: usize, prio: u8| match which {
        Impl::Lb => lab.start_lb(i, &NodeOpts::new(prio, ms)),
        Impl::Keepalived => lab.start_keepalived(i, &NodeOpts::new(prio, ms)),
    };
    let mut d1 = start(&mut lab, LB1, 150)?;
    lab.wait_vip(LB1, Duration::from_secs(10))?;
    let mut d2 = start(&mut lab, LB2, 100)?;
    // Let lb2 settle as backup (it hears lb1 within one interval).
    std::thread::sleep(Duration::from_millis(500).max(Duration::from_millis(u64::from(ms) * 5)));
    check(lab.fetch().as_deref() == Some("lb1"), || {
        "lb1 does not answer on the VIP".into()
    })?;
    check(!lab.holds_vip(LB2), || {
        "lb2 holds the VIP while lb1 is master".into()
    })?;

    // Round r kills lb1 at the same point of its advert cycle (phase) and of the client's
    // request grid (shift) for both implementations, spread over the cycle and the grid
    // from round to round: the gap depends on both by up to one advert interval and one
    // request period, and with random phases five rounds compared noise, not takeovers.
    let wire = WireLog::start(&lab, Duration::from_secs(10))?;
    let lb1_ip = lab.host(LB1).ipv4();
    let nominal = Duration::from_millis(u64::from(ms));
    let phase = nominal * (2 * (round % 5) + 1) / 10;
    let shift = Duration::from_millis(u64::from((5 + 20 * (round % 5)) % 50));
    let mut seen = Vec::new();
    for _ in 0..6 {
        seen.push(
            wire.next_advert(lb1_ip, Duration::from_secs(2))
                .context("no advert from lb1 on the wire")?,
        );
    }
    let (first, last) = (seen[0], seen[5]);
    let period = (last - first) / 5;
    let n = (KILL_AT.as_nanos() / period.as_nanos().max(1)) as u32 + 4;
    let advert_before_kill = last + period * n;
    let load_start = advert_before_kill + phase - KILL_AT - shift;
    let load = Load::start_at(&lab, REQUESTS, PERIOD, load_start)?;
    // In step with lb1's real adverts: wait for the one expected just before the kill.
    std::thread::sleep((advert_before_kill - period / 2).saturating_duration_since(Instant::now()));
    let advert = wire
        .next_advert(lb1_ip, period * 2)
        .context("lb1 stopped advertising before the kill")?;
    std::thread::sleep((advert + phase).saturating_duration_since(Instant::now()));
    let killed = Instant::now();
    match stop {
        Stop::Kill => {
            // The whole process group: keepalived's VRRP child would otherwise notice its
            // parent's death and stop gracefully (priority 0), which is not a crash.
            killpg(&d1);
            killpg(&http1);
        }
        Stop::Term => {
            d1.kill_with(libc::SIGTERM)?;
        }
    }
    let start = load.start;
    let samples = load.finish()?;
    let wire = wire.finish();
    let times = timeline(&lab, &wire, killed, start, &samples);
    if matches!(stop, Stop::Term) {
        let st = d1.wait_timeout(Duration::from_secs(10))?;
        check(st.is_some(), || "lb1 did not exit after SIGTERM".into())?;
    }
    let out = outcome(&samples, "lb1", "lb2");
    check(lab.holds_vip(LB2), || {
        format!(
            "lb2 does not hold the VIP after lb1 stopped; lb2 log:\n{}",
            lab.lb_log(LB2)
        )
    })?;
    drop(d2.kill_with(libc::SIGKILL));
    Ok((out, times))
}

fn killpg(p: &lb_tests::netns::NsProcess) {
    // SAFETY: plain syscall; the pid is our unreaped child and leads its own group.
    unsafe { libc::kill(-(p.pid() as i32), libc::SIGKILL) };
}

fn mean(v: Vec<Duration>) -> Duration {
    v.iter().sum::<Duration>() / v.len().max(1) as u32
}

fn rounds(which: Impl, ms: u32, prefix: &str) -> Result<(Vec<Outcome>, Duration)> {
    let mut outs = Vec::new();
    let mut times = Vec::new();
    for round in 0..ROUNDS {
        let (o, t) = scenario_timed(which, ms, Stop::Kill, round as u32, prefix)?;
        outs.push(o);
        times.extend(t);
    }
    print_timelines(&which.name(ms), &times);
    let gaps: Vec<Duration> = outs
        .iter()
        .map(|o| o.gap.unwrap_or(Duration::from_secs(99)))
        .collect();
    Ok((outs, mean(gaps)))
}

/// Prints each round's timeline and the means, so a difference between implementations
/// shows where it comes from.
fn print_timelines(name: &str, times: &[Timeline]) {
    println!("\n{name}: where the time went (ms, seen from the client's link)");
    println!(
        "{:>10} {:>10} {:>10} {:>10} {:>10}",
        "kill-adv", "detect", "garp-adv", "ans-garp", "ans1-kill"
    );
    let mut sum = Timeline::default();
    for t in times {
        println!(
            "{:>10.1} {:>10.1} {:>10.1} {:>10.1} {:>10.1}",
            t.kill_after_advert,
            t.detect,
            t.garp_after_advert,
            t.answer_after_garp,
            t.last_answer_before_kill
        );
        sum.kill_after_advert += t.kill_after_advert;
        sum.detect += t.detect;
        sum.garp_after_advert += t.garp_after_advert;
        sum.answer_after_garp += t.answer_after_garp;
        sum.last_answer_before_kill += t.last_answer_before_kill;
    }
    let n = times.len().max(1) as f64;
    println!(
        "{:>10.1} {:>10.1} {:>10.1} {:>10.1} {:>10.1}  mean of {}",
        sum.kill_after_advert / n,
        sum.detect / n,
        sum.garp_after_advert / n,
        sum.answer_after_garp / n,
        sum.last_answer_before_kill / n,
        times.len()
    );
}

fn print_table(title: &str, rows: &[(String, &Outcome)]) {
    println!("\n{title}");
    println!("{:<34} {:>9} {:>12}  answers", "", "gap", "failed/sent");
    for (name, o) in rows {
        println!(
            "{:<34} {:>9} {:>12}  {:?}",
            name,
            fmt_gap(o.gap),
            format!("{}/{}", o.failed, o.sent),
            o.answers_from
        );
    }
}

#[test]
fn vrrp_sigkill_failover_100ms_lb_vs_keepalived() {
    let _serial = serial();
    if !can_run(
        "vrrp_sigkill_failover_100ms_lb_vs_keepalived",
        &["keepalived", "python3"],
    ) {
        return;
    }
    let (lb, lb_mean) = rounds(Impl::Lb, 100, "vfo1").unwrap();
    let (ka, ka_mean) = rounds(Impl::Keepalived, 100, "vfo1k").unwrap();
    let mut rows = Vec::new();
    for (i, o) in lb.iter().enumerate() {
        rows.push((format!("{} #{}", Impl::Lb.name(100), i + 1), o));
    }
    for (i, o) in ka.iter().enumerate() {
        rows.push((format!("{} #{}", Impl::Keepalived.name(100), i + 1), o));
    }
    print_table(
        "SIGKILL of lb1 (daemon + web server), requests every 50 ms, 1 s deadline:",
        &rows,
    );
    println!(
        "mean gap: lb {:.3} s, keepalived {:.3} s",
        lb_mean.as_secs_f64(),
        ka_mean.as_secs_f64()
    );
    // The targets: under 0.4 s, and at most keepalived's. Both implementations are killed
    // at the same five points of the advert cycle and the request grid, so the gaps
    // differ only by takeover latency, and a round's gap moves in 50 ms steps (the grid).
    // The tolerance is one such step spread over the rounds: a single CPU stall of the
    // shared machine must not fail the test, a slower takeover does.
    const TOLERANCE: Duration = Duration::from_millis(15);
    assert!(
        lb_mean < Duration::from_millis(400),
        "lb mean gap {lb_mean:?} is not under 0.4 s"
    );
    assert!(
        lb_mean <= ka_mean + TOLERANCE,
        "lb mean gap {lb_mean:?} is worse than keepalived's {ka_mean:?} by more than {TOLERANCE:?}"
    );
}

#[test]
fn vrrp_sigkill_failover_20ms() {
    let _serial = serial();
    if !can_run("vrrp_sigkill_failover_20ms", &["python3"]) {
        return;
    }
    let (outs, mean_gap) = rounds(Impl::Lb, 20, "vfo2").unwrap();
    let rows: Vec<(String, &Outcome)> = outs
        .iter()
        .enumerate()
        .map(|(i, o)| (format!("{} #{}", Impl::Lb.name(20), i + 1), o))
        .collect();
    print_table("SIGKILL of lb1, 20 ms adverts:", &rows);
    println!("mean gap: {:.3} s", mean_gap.as_secs_f64());
    assert!(
        mean_gap < Duration::from_millis(150),
        "mean gap {mean_gap:?} is not under 0.15 s"
    );
}

/// Acceptance 1: 20 ms adverts under a 60 s client load (1200 requests, one every 50 ms):
/// no role transition on either node (counted by both daemons' status), no failed request.
#[test]
fn vrrp_20ms_adverts_do_not_flap_under_load() {
    let _serial = serial();
    if !can_run("vrrp_20ms_adverts_do_not_flap_under_load", &["python3"]) {
        return;
    }
    const FLAP_REQUESTS: usize = 1200;
    let mut lab = Lab::new("vflap", 3).unwrap();
    let _h1 = lab.start_http(LB1, "lb1").unwrap();
    let _h2 = lab.start_http(LB2, "lb2").unwrap();
    let _d1 = lab.start_lb(LB1, &NodeOpts::new(150, 20)).unwrap();
    lab.wait_vip(LB1, Duration::from_secs(10)).unwrap();
    let _d2 = lab.start_lb(LB2, &NodeOpts::new(100, 20)).unwrap();
    wait_state(&lab, LB2, "BACKUP", Duration::from_secs(5)).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let t1 = lab.lb_counter(LB1, "transitions");
    let t2 = lab.lb_counter(LB2, "transitions");
    let rx0 = lab.lb_counter(LB2, "rx");
    let load = Load::start(&lab, FLAP_REQUESTS, PERIOD).unwrap();
    let samples = load.finish().unwrap();
    let out = outcome(&samples, "lb1", "lb2");
    let took = samples.last().map(|s| s.sent).unwrap_or_default();
    print_table(
        &format!(
            "20 ms adverts, {FLAP_REQUESTS} requests over {:.0} s, no failure injected:",
            took.as_secs_f64()
        ),
        &[("lb".into(), &out)],
    );
    let (a1, a2) = (
        lab.lb_counter(LB1, "transitions"),
        lab.lb_counter(LB2, "transitions"),
    );
    let heard = lab.lb_counter(LB2, "rx") - rx0;
    println!(
        "transitions during the load: lb1 {t1} -> {a1}, lb2 {t2} -> {a2}; adverts lb2 accepted: {heard}"
    );
    assert!(took >= Duration::from_secs(59), "the load lasted {took:?}");
    assert!(
        heard >= 2500,
        "lb2 heard {heard} adverts in 60 s (20 ms: about 3000)"
    );
    assert_eq!(
        (a1 - t1, a2 - t2),
        (0, 0),
        "roles flapped during the load:\n{}\n{}",
        lab.lb_log(LB1),
        lab.lb_log(LB2)
    );
    assert_eq!(out.failed, 0, "{out:?}");
    assert_eq!(out.answers_from.get("lb1"), Some(&FLAP_REQUESTS), "{out:?}");
}

#[test]
fn vrrp_graceful_stop_loses_nothing() {
    let _serial = serial();
    if !can_run(
        "vrrp_graceful_stop_loses_nothing",
        &["keepalived", "python3"],
    ) {
        return;
    }
    let lb = scenario(Impl::Lb, 100, Stop::Term, 2, "vgs").unwrap();
    let ka = scenario(Impl::Keepalived, 100, Stop::Term, 2, "vgsk").unwrap();
    print_table(
        "SIGTERM of lb1's VRRP daemon (web server keeps running), 100 ms adverts:",
        &[(Impl::Lb.name(100), &lb), (Impl::Keepalived.name(100), &ka)],
    );
    assert_eq!(lb.failed, 0, "graceful stop lost requests: {lb:?}");
    assert!(
        lb.answers_from.get("lb2").copied().unwrap_or(0) > 0,
        "lb2 never answered: {lb:?}"
    );
}
