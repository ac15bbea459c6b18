//! Issue 5, acceptance 4: lb1 returns after a failover. With preempt it takes the VIP back
//! cleanly (no lost requests, at most a moment with two holders, never two afterwards);
//! with nopreempt it stays backup and lb2 keeps the VIP.

mod vrrp_support;

use std::time::Duration;

use vrrp_support::*;

const PERIOD: Duration = Duration::from_millis(50);

/// Starts lb1 and lb2, moves the VIP to lb2 by stopping lb1 gracefully, and returns the lab
/// with lb2 as master and lb1 stopped.
fn lab_with_lb2_master(prefix: &str, preempt: bool) -> (Lab, Vec<lb_tests::netns::NsProcess>) {
    let mut lab = Lab::new(prefix, 3).unwrap();
    let mut keep = vec![
        lab.start_http(LB1, "lb1").unwrap(),
        lab.start_http(LB2, "lb2").unwrap(),
    ];
    let opts = |prio| NodeOpts {
        preempt,
        ..NodeOpts::new(prio, 100)
    };
    let mut d1 = lab.start_lb(LB1, &opts(150)).unwrap();
    lab.wait_vip(LB1, Duration::from_secs(10)).unwrap();
    keep.push(lab.start_lb(LB2, &opts(100)).unwrap());
    wait_state(&lab, LB2, "BACKUP", Duration::from_secs(5)).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    d1.kill_with(libc::SIGTERM).unwrap();
    assert!(
        d1.wait_timeout(Duration::from_secs(10)).unwrap().is_some(),
        "lb1 did not stop"
    );
    lab.wait_vip(LB2, Duration::from_secs(5)).unwrap();
    assert!(
        !lab.holds_vip(LB1),
        "lb1 kept the VIP after a graceful stop"
    );
    (lab, keep)
}

#[test]
fn vrrp_preempt_returns_the_vip_cleanly() {
    if !can_run("vrrp_preempt_returns_the_vip_cleanly", &["python3"]) {
        return;
    }
    let (mut lab, _keep) = lab_with_lb2_master("vpre", true);
    let load = Load::start(&lab, 60, PERIOD).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let _d1 = lab.start_lb(LB1, &NodeOpts::new(150, 100)).unwrap();
    // Watch who holds the VIP while lb1 comes back and takes over.
    let (max_holders, changes) = watch_holders(
        &lab,
        &[LB1, LB2],
        Duration::from_millis(2000),
        Duration::from_millis(2),
    );
    let samples = load.finish().unwrap();
    let out = outcome(&samples, "lb2", "lb1");
    println!(
        "\npreempt: lb1 (150) returns while lb2 (100) is master, requests every 50 ms:\n  \
         failed {}/{}, answers {:?}, handover gap {}, VIP holder changes seen {changes}, \
         most simultaneous holders seen {max_holders}",
        out.failed,
        out.sent,
        out.answers_from,
        fmt_gap(out.gap)
    );
    assert!(
        lab.holds_vip(LB1) && !lab.holds_vip(LB2),
        "the VIP did not return to lb1 alone"
    );
    assert_eq!(
        lab.lb_status(LB2).get("state").map(String::as_str),
        Some("BACKUP")
    );
    assert_eq!(
        out.failed, 0,
        "requests were lost during the preemption: {out:?}"
    );
    assert!(
        out.answers_from.get("lb1").copied().unwrap_or(0) > 0,
        "{out:?}"
    );
}

#[test]
fn vrrp_nopreempt_keeps_the_new_master() {
    if !can_run("vrrp_nopreempt_keeps_the_new_master", &["python3"]) {
        return;
    }
    let (mut lab, _keep) = lab_with_lb2_master("vnopre", false);
    let _d1 = lab
        .start_lb(
            LB1,
            &NodeOpts {
                preempt: false,
                ..NodeOpts::new(150, 100)
            },
        )
        .unwrap();
    wait_state(&lab, LB1, "BACKUP", Duration::from_secs(5)).unwrap();
    // Ten master-down intervals: lb1 has every chance to (wrongly) take over.
    let (max_holders, changes) = watch_holders(
        &lab,
        &[LB1, LB2],
        Duration::from_secs(4),
        Duration::from_millis(20),
    );
    println!(
        "\nnopreempt: lb1 (150) returns while lb2 (100) is master: lb1 {}, lb2 {}, holder changes {changes}",
        lab.lb_status(LB1).get("state").cloned().unwrap_or_default(),
        lab.lb_status(LB2).get("state").cloned().unwrap_or_default()
    );
    assert_eq!(changes, 0);
    assert_eq!(max_holders, 1);
    assert!(lab.holds_vip(LB2) && !lab.holds_vip(LB1));
    assert_eq!(
        lab.lb_status(LB1).get("state").map(String::as_str),
        Some("BACKUP")
    );
    assert_eq!(lab.fetch().as_deref(), Some("lb2"));
}
