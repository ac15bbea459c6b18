//! Issue 5 / issue 7: SIGHUP or `lb reload` applies `[[vrrp]]` changes without a restart:
//! a new advert interval and preempt setting are adopted in place (the backup learns the
//! interval, nobody changes role), an instance is added and later removed, and a raised
//! priority makes the backup preempt; instances that did not change never transition.

mod vrrp_support;

use std::net::Ipv4Addr;
use std::time::Duration;

use lb_tests::netns::wait_for;
use vrrp_support::*;

fn holds(lab: &Lab, i: usize, addr: Ipv4Addr) -> bool {
    let a = addr.to_string();
    lab.ns(i)
        .exec_stdout(&["ip", "-4", "-o", "addr", "show", "dev", "eth0"])
        .map(|s| {
            s.split_whitespace()
                .any(|w| w.split('/').next() == Some(a.as_str()))
        })
        .unwrap_or(false)
}

fn field(lab: &Lab, i: usize, name: &str, key: &str) -> String {
    lab.lb_status_of(i, name)
        .get(key)
        .cloned()
        .unwrap_or_default()
}

fn reload(lab: &Lab, i: usize, text: &str) -> String {
    lab.write_lb_config(i, text).unwrap();
    let (ok, out) = lab.lb_cli(i, &["reload"]).unwrap();
    assert!(ok, "lb reload on host {i}: {out}\n{}", lab.lb_log(i));
    println!("host {i}: {}", out.trim());
    out
}

#[test]
fn vrrp_reload_changes_instances_in_place() {
    if !can_run("vrrp_reload_changes_instances_in_place", &["python3"]) {
        return;
    }
    let mut lab = Lab::new("vrld", 3).unwrap();
    let _h1 = lab.start_http(LB1, "lb1").unwrap();
    let _h2 = lab.start_http(LB2, "lb2").unwrap();
    let mut d1 = lab.start_lb(LB1, &NodeOpts::new(150, 100)).unwrap();
    lab.wait_vip(LB1, Duration::from_secs(10)).unwrap();
    let mut d2 = lab.start_lb(LB2, &NodeOpts::new(100, 100)).unwrap();
    wait_state(&lab, LB2, "BACKUP", Duration::from_secs(5)).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let transitions = |lab: &Lab| {
        (
            field(lab, LB1, "web", "transitions"),
            field(lab, LB2, "web", "transitions"),
        )
    };
    let t0 = transitions(&lab);

    // 1. lb1: advert interval 100 -> 200 ms, nopreempt. Same roles; lb2 learns 200 ms.
    let slow = NodeOpts {
        preempt: false,
        ..NodeOpts::new(150, 200)
    };
    let out = reload(&lab, LB1, &lab.lb_config_with(LB1, &slow, "", ""));
    assert!(out.contains("vrrp: updated web"), "{out}");
    wait_for(
        || field(&lab, LB2, "web", "master_interval_ms") == "200",
        Duration::from_secs(3),
    )
    .expect("lb2 learns the new interval");
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(
        transitions(&lab),
        t0,
        "a role changed on an interval reload"
    );
    assert!(lab.holds_vip(LB1) && !lab.holds_vip(LB2));

    // 2. lb1: a second instance (VRID 52, VIP .98) appears; `web` is left alone.
    let o = lab.host(CLIENT).ipv4().octets();
    let vip2 = Ipv4Addr::new(o[0], o[1], o[2], 98);
    let web2 = format!(
        "\n[[vrrp]]\nname = \"web2\"\ninterface = \"eth0\"\nvrid = 52\npriority = 150\n\
         advert_interval = \"100ms\"\nvips = [\"{vip2}/24\"]\n"
    );
    let out = reload(&lab, LB1, &lab.lb_config_with(LB1, &slow, "", &web2));
    assert!(
        out.contains("added web2") && out.contains("unchanged web"),
        "{out}"
    );
    wait_for(|| holds(&lab, LB1, vip2), Duration::from_secs(3)).expect("web2's VIP on lb1");
    assert_eq!(field(&lab, LB1, "web2", "state"), "MASTER");

    // 3. lb2: priority 100 -> 200 (preempt): lb2 takes `web` over, without a restart.
    let out = reload(
        &lab,
        LB2,
        &lab.lb_config_with(LB2, &NodeOpts::new(200, 100), "", ""),
    );
    assert!(out.contains("vrrp: updated web"), "{out}");
    wait_for(
        || lab.holds_vip(LB2) && !lab.holds_vip(LB1),
        Duration::from_secs(3),
    )
    .expect("lb2 preempts after its priority was raised");
    assert_eq!(field(&lab, LB2, "web", "priority"), "200");
    assert_eq!(field(&lab, LB1, "web", "state"), "BACKUP");
    assert_eq!(lab.fetch().as_deref(), Some("lb2"));
    // web2 is not affected.
    assert!(holds(&lab, LB1, vip2));

    // 4. lb1: web2 removed: it lets go of its VIP, its status line goes.
    let t_web = field(&lab, LB1, "web", "transitions");
    let out = reload(&lab, LB1, &lab.lb_config_with(LB1, &slow, "", ""));
    assert!(
        out.contains("removed web2") && out.contains("unchanged web"),
        "{out}"
    );
    wait_for(|| !holds(&lab, LB1, vip2), Duration::from_secs(3)).expect("web2's VIP released");
    wait_for(
        || lab.lb_status_of(LB1, "web2").is_empty(),
        Duration::from_secs(3),
    )
    .expect("web2's status removed");
    assert_eq!(field(&lab, LB1, "web", "transitions"), t_web);

    // Both daemons are the processes started at the beginning.
    assert!(d1.is_running() && d2.is_running());
    println!(
        "transitions of web: lb1 {} -> {}, lb2 {} -> {}",
        t0.0,
        field(&lab, LB1, "web", "transitions"),
        t0.1,
        field(&lab, LB2, "web", "transitions")
    );
}
