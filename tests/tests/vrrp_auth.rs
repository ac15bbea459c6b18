//! Issue 5, authenticated mode (`auth_key`): two `lb` nodes with the same key elect and
//! fail over as usual; adverts with a wrong key, unauthenticated adverts, and replayed
//! captures of the real master's adverts are dropped and counted, and no role changes.

mod vrrp_support;

use std::net::IpAddr;
use std::time::{Duration, Instant, SystemTime};

use lb::vrrp::{
    auth::TRAILER_LEN,
    packet::{Advert, GROUP_V4},
};
use lb_tests::netns::NsProcess;
use vrrp_support::*;

const ATTACKER: usize = 3;
const KEY: &str = "vrrp-test-shared-key-0123";

fn states(lab: &Lab) -> (String, String) {
    let s = |i| lab.lb_status(i).get("state").cloned().unwrap_or_default();
    (s(LB1), s(LB2))
}

/// Starts node `i` with the shared key, `priority` and 100 ms adverts.
fn start_keyed(lab: &mut Lab, i: usize, priority: u8) -> NsProcess {
    let auth = format!("auth_key = \"{KEY}\"");
    lab.start_lb_with(i, &NodeOpts::new(priority, 100), "", &auth)
        .unwrap()
}

/// lb1 keyed at priority 150, once it holds the VIP.
fn keyed_master(lab: &mut Lab) -> NsProcess {
    let d = start_keyed(lab, LB1, 150);
    lab.wait_vip(LB1, Duration::from_secs(10)).unwrap();
    d
}

#[test]
fn vrrp_authenticated_failover_refuses_forgeries_and_replays() {
    if !can_run(
        "vrrp_authenticated_failover_refuses_forgeries_and_replays",
        &["python3"],
    ) {
        return;
    }
    let mut lab = Lab::new("vauth", 4).unwrap();
    let http1 = lab.start_http(LB1, "lb1").unwrap();
    let _http2 = lab.start_http(LB2, "lb2").unwrap();
    let d1 = keyed_master(&mut lab);
    let _d2 = start_keyed(&mut lab, LB2, 100);
    wait_state(&lab, LB2, "BACKUP", Duration::from_secs(5)).unwrap();
    std::thread::sleep(Duration::from_millis(400));
    assert!(lab.lb_counter(LB2, "rx") > 0, "lb2 accepts lb1's adverts");
    assert_eq!(lab.lb_counter(LB2, "drop.auth"), 0);

    // The master's adverts on the wire: type 10 with the 28-byte trailer.
    let lb1_ip = lab.host(LB1).ipv4();
    let captured = capture(&lab, ATTACKER, lb1_ip, Duration::from_millis(350)).unwrap();
    assert!(captured.len() >= 2, "captured {} adverts", captured.len());
    for p in &captured {
        assert_eq!(p[0], 0x3a, "authenticated type: {p:02x?}");
        assert_eq!(p.len(), 8 + 4 + TRAILER_LEN);
    }

    // Forgeries claiming priority 254 (accepted, each would make lb1 step down): signed
    // with another key, from the attacker and spoofing lb1; and plain RFC adverts.
    let (t1, t2) = (
        lab.lb_counter(LB1, "transitions"),
        lab.lb_counter(LB2, "transitions"),
    );
    let me = lab.host(ATTACKER).ipv4();
    let group = GROUP_V4;
    let adv = Advert {
        vrid: VRID,
        priority: 254,
        interval_cs: 10,
        addrs: vec![IpAddr::V4(lab.vip())],
    };
    let seq = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    const N: usize = 20;
    let wrong: Vec<Vec<u8>> = (0..N as u64)
        .map(|i| adv.encode_auth(me.into(), group.into(), b"not-the-key-0123456789", seq + i))
        .collect();
    inject(
        &lab,
        ATTACKER,
        me,
        group,
        255,
        &wrong,
        Duration::from_millis(5),
    )
    .unwrap();
    let spoofed: Vec<Vec<u8>> = (0..N as u64)
        .map(|i| {
            adv.encode_auth(
                lb1_ip.into(),
                group.into(),
                b"not-the-key-0123456789",
                seq + i,
            )
        })
        .collect();
    inject(
        &lab,
        ATTACKER,
        lb1_ip,
        group,
        255,
        &spoofed,
        Duration::from_millis(5),
    )
    .unwrap();
    let plain = vec![adv.encode(me.into(), group.into()); N];
    inject(
        &lab,
        ATTACKER,
        me,
        group,
        255,
        &plain,
        Duration::from_millis(5),
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let auth_drops = (
        lab.lb_counter(LB1, "drop.auth"),
        lab.lb_counter(LB2, "drop.auth"),
    );
    println!(
        "wrong key / spoofed / unauthenticated, {N} each: drop.auth lb1 {} lb2 {}",
        auth_drops.0, auth_drops.1
    );
    // lb1 does not count what it sent itself; the spoofed ones carry its own address and
    // count as `own` there.
    assert_eq!(auth_drops.0, 2 * N as u64, "lb1 drop.auth");
    assert_eq!(auth_drops.1, 3 * N as u64, "lb2 drop.auth");
    assert_eq!(states(&lab), ("MASTER".into(), "BACKUP".into()));
    assert_eq!(
        (
            lab.lb_counter(LB1, "transitions"),
            lab.lb_counter(LB2, "transitions")
        ),
        (t1, t2),
        "roles changed"
    );
    assert!(lab.holds_vip(LB1) && !lab.holds_vip(LB2));

    // Failover as usual: lb1 dies, lb2 takes over.
    let t = Instant::now();
    // SAFETY: plain syscall on our own children's process groups.
    unsafe {
        libc::kill(-(d1.pid() as i32), libc::SIGKILL);
        libc::kill(-(http1.pid() as i32), libc::SIGKILL);
    }
    // The whole node is gone: a SIGKILLed daemon leaves the VIP on lb1's interface, and
    // its kernel would still answer ARP for it.
    lab.ns(LB1).ip(&["link", "set", "eth0", "down"]).unwrap();
    lab.wait_vip(LB2, Duration::from_secs(5)).unwrap();
    wait_state(&lab, LB2, "MASTER", Duration::from_secs(2)).unwrap();
    println!("SIGKILL of lb1: lb2 holds the VIP after {:?}", t.elapsed());
    assert_eq!(lab.fetch().as_deref(), Some("lb2"));

    // Replays of lb1's genuine adverts (priority 150 > lb2's 100: accepted, each would
    // make lb2 step down and leave the VIP without a master).
    let t2 = lab.lb_counter(LB2, "transitions");
    let rounds = 10;
    let replays: Vec<Vec<u8>> = (0..rounds).flat_map(|_| captured.clone()).collect();
    inject(
        &lab,
        ATTACKER,
        lb1_ip,
        group,
        255,
        &replays,
        Duration::from_millis(20),
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let replayed = lab.lb_counter(LB2, "drop.replay");
    println!(
        "{} replayed adverts of lb1 (priority 150) sent to lb2: drop.replay {replayed}",
        replays.len()
    );
    assert_eq!(replayed, replays.len() as u64);
    assert_eq!(lab.lb_counter(LB2, "transitions"), t2, "lb2's role changed");
    assert_eq!(
        lab.lb_status(LB2).get("state").map(String::as_str),
        Some("MASTER")
    );
    assert!(lab.holds_vip(LB2));
    assert_eq!(lab.fetch().as_deref(), Some("lb2"));
}

/// A node without the key ignores authenticated adverts (counted as `auth`), as keepalived
/// and RFC 5798 routers do (unknown type): mixing modes is a misconfiguration that shows.
#[test]
fn vrrp_unkeyed_node_counts_authenticated_adverts() {
    if !can_run(
        "vrrp_unkeyed_node_counts_authenticated_adverts",
        &["python3"],
    ) {
        return;
    }
    let mut lab = Lab::new("vauk", 3).unwrap();
    let _d1 = keyed_master(&mut lab);
    let _d2 = lab.start_lb(LB2, &NodeOpts::new(100, 100)).unwrap();
    // lb2 hears nothing it accepts: it becomes master too, and counts why.
    wait_state(&lab, LB2, "MASTER", Duration::from_secs(5)).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let (rx, dropped) = (lab.lb_counter(LB2, "rx"), lab.lb_counter(LB2, "drop.auth"));
    let lb1_dropped = lab.lb_counter(LB1, "drop.auth");
    println!("unkeyed lb2: rx {rx}, drop.auth {dropped}; keyed lb1 drop.auth {lb1_dropped}");
    assert_eq!(rx, 0);
    assert!(dropped >= 3, "{dropped}");
    assert!(
        lb1_dropped >= 1,
        "lb1 counts lb2's plain adverts: {lb1_dropped}"
    );
}
