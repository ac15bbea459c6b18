//! Issue 5, acceptance 5: an `lb` node and a keepalived 2.2 node in one virtual router
//! (VRRPv3, 100 ms adverts) elect the higher priority and fail over to each other in both
//! directions: lb -> keepalived and keepalived -> lb, and back again by preemption.

mod vrrp_support;

use std::time::Duration;

use vrrp_support::*;

/// SIGKILLs the process group (keepalived and its VRRP child) and reaps the leader, so a
/// restarted keepalived does not find a "running" zombie behind its pid file.
fn killpg(p: &mut lb_tests::netns::NsProcess) {
    // SAFETY: plain syscall; the pid is our unreaped child and leads its own group.
    unsafe { libc::kill(-(p.pid() as i32), libc::SIGKILL) };
    let _ = p.wait_timeout(Duration::from_secs(5));
}

#[test]
fn vrrp_interop_lb_master_keepalived_backup() {
    if !can_run(
        "vrrp_interop_lb_master_keepalived_backup",
        &["keepalived", "python3"],
    ) {
        return;
    }
    let mut lab = Lab::new("vio1", 3).unwrap();
    let _h1 = lab.start_http(LB1, "lb1").unwrap();
    let _h2 = lab.start_http(LB2, "lb2").unwrap();
    let mut ka = lab.start_keepalived(LB2, &NodeOpts::new(100, 100)).unwrap();
    lab.wait_vip(LB2, Duration::from_secs(10)).unwrap();
    // lb (150) joins and preempts keepalived (100).
    let mut lb = lab.start_lb(LB1, &NodeOpts::new(150, 100)).unwrap();
    lab.wait_vip(LB1, Duration::from_secs(5)).unwrap();
    wait_for_alone(&lab, LB1);
    assert_eq!(lab.fetch().as_deref(), Some("lb1"));
    assert!(lab.lb_counter(LB1, "rx") == 0 || lab.lb_status(LB1)["last_heard_priority"] == "100");
    println!("\ninterop: lb (150) preempted keepalived (100)");

    // lb leaves gracefully: keepalived takes over.
    lb.kill_with(libc::SIGTERM).unwrap();
    assert!(lb.wait_timeout(Duration::from_secs(10)).unwrap().is_some());
    lab.wait_vip(LB2, Duration::from_secs(5)).unwrap();
    wait_for_alone(&lab, LB2);
    assert_eq!(lab.fetch().as_deref(), Some("lb2"));
    println!("interop: lb stopped -> keepalived master");

    // lb returns and preempts again; then keepalived dies and... lb stays master.
    let _lb = lab.start_lb(LB1, &NodeOpts::new(150, 100)).unwrap();
    lab.wait_vip(LB1, Duration::from_secs(5)).unwrap();
    wait_for_alone(&lab, LB1);
    println!("interop: lb returned -> lb master, keepalived backup");
    killpg(&mut ka);
    std::thread::sleep(Duration::from_millis(500));
    assert!(lab.holds_vip(LB1));
    assert_eq!(
        lab.lb_status(LB1).get("state").map(String::as_str),
        Some("MASTER")
    );
}

#[test]
fn vrrp_interop_keepalived_master_lb_backup() {
    if !can_run(
        "vrrp_interop_keepalived_master_lb_backup",
        &["keepalived", "python3"],
    ) {
        return;
    }
    let mut lab = Lab::new("vio2", 3).unwrap();
    let _h1 = lab.start_http(LB1, "lb1").unwrap();
    let _h2 = lab.start_http(LB2, "lb2").unwrap();
    let mut ka = lab.start_keepalived(LB1, &NodeOpts::new(150, 100)).unwrap();
    lab.wait_vip(LB1, Duration::from_secs(10)).unwrap();
    let _lb = lab.start_lb(LB2, &NodeOpts::new(100, 100)).unwrap();
    wait_state(&lab, LB2, "BACKUP", Duration::from_secs(5)).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let st = lab.lb_status(LB2);
    assert_eq!(
        st.get("state").map(String::as_str),
        Some("BACKUP"),
        "{st:?}"
    );
    assert_eq!(
        st.get("last_heard_priority").map(String::as_str),
        Some("150"),
        "{st:?}"
    );
    assert_eq!(
        st.get("drop.checksum").map(String::as_str),
        Some("0"),
        "{st:?}"
    );
    assert!(!lab.holds_vip(LB2));
    println!("\ninterop: keepalived (150) master, lb (100) backup, accepting its adverts: {st:?}");

    // keepalived crashes: lb takes over after master-down.
    // (keepalived leaves its VIP behind and lb1's web server still answers: the client
    // reaches lb2 once lb2's gratuitous ARP has arrived, a moment after the VIP is added.)
    killpg(&mut ka);
    lab.wait_vip(LB2, Duration::from_secs(3)).unwrap();
    let t = std::time::Instant::now();
    lb_tests::netns::wait_for(
        || lab.fetch().as_deref() == Some("lb2"),
        Duration::from_secs(3),
    )
    .unwrap_or_else(|_| {
        panic!(
            "the client does not reach lb2 after its takeover; client neighbours: {}; lb2 mac {:?}",
            lab.ns(CLIENT)
                .exec_stdout(&["ip", "neigh"])
                .unwrap_or_default(),
            lab.ns(LB2).mac("eth0")
        )
    });
    println!(
        "interop: keepalived killed -> lb master; the client reached lb2 {:.0} ms after its VIP appeared",
        t.elapsed().as_secs_f64() * 1000.0
    );

    // keepalived returns (stale VIP removed first, as a rebooted node would have none).
    let _ = lab
        .ns(LB1)
        .ip(&["addr", "del", &format!("{}/24", lab.vip()), "dev", "eth0"]);
    let _ka = lab.start_keepalived(LB1, &NodeOpts::new(150, 100)).unwrap();
    lab.wait_vip(LB1, Duration::from_secs(5)).unwrap();
    wait_state(&lab, LB2, "BACKUP", Duration::from_secs(3)).unwrap();
    wait_for_alone(&lab, LB1);
    assert_eq!(lab.fetch().as_deref(), Some("lb1"));
    println!("interop: keepalived returned and preempted -> lb backup");
}

/// Waits until host `i` is the only holder of the VIP among lb1/lb2.
fn wait_for_alone(lab: &Lab, i: usize) {
    let other = if i == LB1 { LB2 } else { LB1 };
    lb_tests::netns::wait_for(
        || lab.holds_vip(i) && !lab.holds_vip(other),
        Duration::from_secs(3),
    )
    .unwrap_or_else(|_| panic!("host {i} is not the only VIP holder\n{}", lab.lb_log(LB1)));
}
