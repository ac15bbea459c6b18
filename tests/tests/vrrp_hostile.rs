//! Issue 5, acceptance 6: malformed and hostile adverts are dropped and counted, and the
//! roles do not flap. An attacker host on the same segment sends, with a raw IP socket that
//! writes its own IP header: one batch per receive check of RFC 5798 7.1 (TTL, version,
//! type, truncated, length, checksum, VRID, interval), a forged higher-priority advert from
//! a non-peer when unicast peers are configured, and a flood.

mod vrrp_support;

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use lb::vrrp::packet::{Advert, GROUP_V4};
use vrrp_support::*;

const ATTACKER: usize = 3;

/// Sends `payload` as IP protocol 112 from `src` to `dst` with `ttl`, `count` times, from
/// inside the attacker's namespace (IP_HDRINCL: we choose TTL and source).
fn send_raw(lab: &Lab, src: Ipv4Addr, dst: Ipv4Addr, ttl: u8, payload: &[u8], count: usize) {
    send_raw_paced(lab, src, dst, ttl, payload, count, None)
}

/// [`send_raw`] at most `pps` packets per second (in bursts of 100), or as fast as the
/// socket takes them.
fn send_raw_paced(
    lab: &Lab,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    ttl: u8,
    payload: &[u8],
    count: usize,
    pps: Option<u32>,
) {
    let pkt = vrrp_ip_packet(src, dst, ttl, payload);
    lab.ns(ATTACKER)
        .run(move || {
            let sock = RawSender::open(dst).unwrap_or_else(|e| panic!("raw socket: {e}"));
            let start = Instant::now();
            for i in 0..count {
                if let Some(pps) = pps {
                    if i % 100 == 0 {
                        let at = start + Duration::from_secs_f64(i as f64 / f64::from(pps));
                        if let Some(d) = at.checked_duration_since(Instant::now()) {
                            std::thread::sleep(d);
                        }
                    }
                }
                if let Err(e) = sock.send(&pkt) {
                    if e.raw_os_error() == Some(libc::ENOBUFS) {
                        std::thread::sleep(Duration::from_micros(200));
                        continue;
                    }
                    panic!("sendto: {e}");
                }
            }
        })
        .unwrap();
}

fn advert(vrid: u8, priority: u8, cs: u16, vip: Ipv4Addr) -> Advert {
    Advert {
        vrid,
        priority,
        interval_cs: cs,
        addrs: vec![IpAddr::V4(vip)],
    }
}

#[test]
fn vrrp_malformed_adverts_are_dropped_and_counted() {
    if !can_run(
        "vrrp_malformed_adverts_are_dropped_and_counted",
        &["python3"],
    ) {
        return;
    }
    let mut lab = Lab::new("vbad", 4).unwrap();
    let _d1 = lab.start_lb(LB1, &NodeOpts::new(150, 100)).unwrap();
    lab.wait_vip(LB1, Duration::from_secs(10)).unwrap();
    let _d2 = lab.start_lb(LB2, &NodeOpts::new(100, 100)).unwrap();
    wait_state(&lab, LB2, "BACKUP", Duration::from_secs(5)).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let before = (
        lab.lb_counter(LB1, "transitions"),
        lab.lb_counter(LB2, "transitions"),
    );

    let me = lab.host(ATTACKER).ipv4();
    let group = GROUP_V4;
    let vip = lab.vip();
    let good = |prio: u8| advert(VRID, prio, 10, vip).encode(me.into(), group.into());
    const N: usize = 20;
    // Every packet claims priority 254: accepted, it would make lb1 step down.
    let mut v2 = good(254);
    v2[0] = 0x21;
    let mut type2 = good(254);
    type2[0] = 0x32;
    let mut count3 = good(254);
    count3[3] = 3; // claims three addresses, carries one
    let mut bad_sum = good(254);
    bad_sum[6] ^= 0xff;
    let other_vrid = advert(VRID + 1, 254, 10, vip).encode(me.into(), group.into());
    let zero_interval = advert(VRID, 254, 0, vip).encode(me.into(), group.into());
    let long = {
        let mut l = good(254);
        l.extend_from_slice(&[0; 4]);
        l
    };
    let cases: Vec<(&str, u8, Vec<u8>)> = vec![
        ("ttl", 64, good(254)),
        ("version", 255, v2),
        ("type", 255, type2),
        ("truncated", 255, good(254)[..6].to_vec()),
        ("truncated", 255, count3),
        ("length", 255, long),
        ("checksum", 255, bad_sum),
        ("vrid", 255, other_vrid),
        ("interval", 255, zero_interval),
    ];
    for (_, ttl, payload) in &cases {
        send_raw(&lab, me, group, *ttl, payload, N);
    }
    std::thread::sleep(Duration::from_millis(600)); // a status flush, and several intervals
    println!("\nmalformed adverts, {N} of each kind, multicast, claiming priority 254:");
    println!("{:<10} {:>8} {:>8}", "reason", "lb1", "lb2");
    for reason in [
        "ttl",
        "version",
        "type",
        "truncated",
        "length",
        "checksum",
        "vrid",
        "interval",
    ] {
        let key = format!("drop.{reason}");
        let (a, b) = (lab.lb_counter(LB1, &key), lab.lb_counter(LB2, &key));
        println!("{reason:<10} {a:>8} {b:>8}");
        let expect = cases.iter().filter(|c| c.0 == reason).count() * N;
        assert_eq!(
            (a, b),
            (expect as u64, expect as u64),
            "{reason} on lb1/lb2"
        );
    }
    let after = (
        lab.lb_counter(LB1, "transitions"),
        lab.lb_counter(LB2, "transitions"),
    );
    assert_eq!(before, after, "roles changed");
    assert!(lab.holds_vip(LB1) && !lab.holds_vip(LB2));

    // A flood: 60k bad-checksum adverts at 20k per second (3 s), while the roles must
    // hold (the master keeps advertising, the backup keeps hearing it). The sender shares
    // this machine's two CPUs with both nodes; unpaced (about 40k/s here) it starves
    // them of CPU outright, and the master's adverts were seen up to 0.76 s late.
    const FLOOD: usize = 60_000;
    let t = Instant::now();
    let mut flood = good(254);
    flood[6] ^= 0x55;
    send_raw_paced(&lab, me, group, 255, &flood, FLOOD, Some(20_000));
    let took = t.elapsed();
    std::thread::sleep(Duration::from_millis(600));
    let (a, b) = (
        lab.lb_counter(LB1, "drop.checksum"),
        lab.lb_counter(LB2, "drop.checksum"),
    );
    println!(
        "flood: {FLOOD} bad-checksum adverts in {:.2} s; counted lb1 {}, lb2 {}; \
         transitions {:?} -> {:?}",
        took.as_secs_f64(),
        a - N as u64,
        b - N as u64,
        before,
        (
            lab.lb_counter(LB1, "transitions"),
            lab.lb_counter(LB2, "transitions")
        )
    );
    assert!(a > N as u64 && b > N as u64);
    assert_eq!(
        before,
        (
            lab.lb_counter(LB1, "transitions"),
            lab.lb_counter(LB2, "transitions")
        )
    );
    assert!(lab.holds_vip(LB1) && !lab.holds_vip(LB2));
}

#[test]
fn vrrp_forged_priority_from_a_non_peer_is_ignored() {
    if !can_run(
        "vrrp_forged_priority_from_a_non_peer_is_ignored",
        &["python3"],
    ) {
        return;
    }
    let mut lab = Lab::new("vforge", 4).unwrap();
    let (a1, a2) = (lab.host(LB1).ipv4(), lab.host(LB2).ipv4());
    let o1 = NodeOpts {
        unicast_peers: vec![a2.into()],
        ..NodeOpts::new(150, 100)
    };
    let o2 = NodeOpts {
        unicast_peers: vec![a1.into()],
        ..NodeOpts::new(100, 100)
    };
    let _d1 = lab.start_lb(LB1, &o1).unwrap();
    lab.wait_vip(LB1, Duration::from_secs(10)).unwrap();
    let _d2 = lab.start_lb(LB2, &o2).unwrap();
    wait_state(&lab, LB2, "BACKUP", Duration::from_secs(5)).unwrap();
    lb_tests::netns::wait_for(|| lab.lb_counter(LB2, "rx") > 0, Duration::from_secs(3))
        .unwrap_or_else(|_| {
            panic!(
                "unicast adverts do not arrive: {:?}\nlb1: {:?}\n{}",
                lab.lb_status(LB2),
                lab.lb_status(LB1),
                lab.lb_log(LB2)
            )
        });
    assert_eq!(
        lab.lb_status(LB2).get("state").map(String::as_str),
        Some("BACKUP")
    );
    let before = (
        lab.lb_counter(LB1, "transitions"),
        lab.lb_counter(LB2, "transitions"),
    );

    // Correct in every field, priority 255, checksum valid for each destination: only the
    // source gives it away.
    let me = lab.host(ATTACKER).ipv4();
    let vip = lab.vip();
    for dst in [a1, a2] {
        let p = advert(VRID, 255, 10, vip).encode(me.into(), dst.into());
        send_raw(&lab, me, dst, 255, &p, 50);
    }
    let p = advert(VRID, 255, 10, vip).encode(me.into(), GROUP_V4.into());
    send_raw(&lab, me, GROUP_V4, 255, &p, 50);
    std::thread::sleep(Duration::from_millis(1000));
    let (n1, n2) = (
        lab.lb_counter(LB1, "drop.not_peer"),
        lab.lb_counter(LB2, "drop.not_peer"),
    );
    println!(
        "\nforged priority-255 adverts from non-peer {me}: dropped as not_peer lb1 {n1}, lb2 {n2}"
    );
    assert_eq!(
        (n1, n2),
        (50, 50),
        "{:?} {:?}",
        lab.lb_status(LB1),
        lab.lb_status(LB2)
    );
    assert_eq!(
        before,
        (
            lab.lb_counter(LB1, "transitions"),
            lab.lb_counter(LB2, "transitions")
        )
    );
    assert!(lab.holds_vip(LB1) && !lab.holds_vip(LB2));
}
