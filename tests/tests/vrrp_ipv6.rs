//! IPv6 virtual routers (RFC 5798 over ff02::12, link-local sources, hop limit 255):
//! two `lb` nodes elect and fail over, the new master's unsolicited neighbour
//! advertisement moves the client's neighbour entry, and an `lb` backup accepts
//! keepalived's IPv6 adverts (checksum over the IPv6 pseudo-header).

mod vrrp_support;

use std::net::IpAddr;
use std::time::Duration;

use lb_tests::netns::wait_for;
use vrrp_support::*;

fn v6(prio: u8) -> NodeOpts {
    NodeOpts {
        ipv6: true,
        ..NodeOpts::new(prio, 100)
    }
}

/// The client's neighbour entry for the IPv6 VIP: its MAC, if any.
fn client_neigh_mac(lab: &Lab) -> Option<String> {
    let out = lab
        .ns(CLIENT)
        .exec_stdout(&["ip", "-6", "neigh", "show", &lab.vip6().to_string()])
        .ok()?;
    out.split_whitespace()
        .skip_while(|w| *w != "lladdr")
        .nth(1)
        .map(str::to_string)
}

fn mac_string(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[test]
fn vrrp_ipv6_election_failover_and_unsolicited_na() {
    if !can_run("vrrp_ipv6_election_failover_and_unsolicited_na", &[]) {
        return;
    }
    let mut lab = Lab::new_v6("vv6", 3).unwrap();
    let mut d1 = lab.start_lb(LB1, &v6(150)).unwrap();
    wait_for(|| lab.holds_vip6(LB1), Duration::from_secs(10)).expect("lb1 never got the IPv6 VIP");
    let _d2 = lab.start_lb(LB2, &v6(100)).unwrap();
    wait_state(&lab, LB2, "BACKUP", Duration::from_secs(5)).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let st = lab.lb_status(LB2);
    println!("\nIPv6: lb2 backup status: {st:?}");
    assert!(
        lab.lb_counter(LB2, "rx") >= 3,
        "lb2 hears no IPv6 adverts: {st:?}"
    );
    assert_eq!(lab.lb_counter(LB2, "drop.checksum"), 0, "{st:?}");
    assert!(
        st.get("last_heard")
            .is_some_and(|a| a.starts_with("fe80::")),
        "{st:?}"
    );
    assert!(!lab.holds_vip6(LB2));

    // The client learns lb1's MAC for the VIP.
    let vip = IpAddr::V6(lab.vip6());
    wait_for(
        || {
            lab.ns(CLIENT)
                .ping(vip, Duration::from_millis(300))
                .unwrap_or(false)
        },
        Duration::from_secs(5),
    )
    .expect("the IPv6 VIP does not answer");
    let mac1 = mac_string(lab.ns(LB1).mac("eth0").unwrap());
    let mac2 = mac_string(lab.ns(LB2).mac("eth0").unwrap());
    assert_eq!(client_neigh_mac(&lab).as_deref(), Some(mac1.as_str()));

    // lb1 dies; lb2 takes over and its unsolicited NA moves the client's entry.
    d1.kill_with(libc::SIGKILL).unwrap();
    let t = std::time::Instant::now();
    wait_for(|| lab.holds_vip6(LB2), Duration::from_secs(3)).expect("lb2 never took the IPv6 VIP");
    let takeover = t.elapsed();
    wait_for(
        || client_neigh_mac(&lab).as_deref() == Some(mac2.as_str()),
        Duration::from_secs(3),
    )
    .unwrap_or_else(|_| {
        panic!(
            "the client still maps the VIP to {:?}, not lb2's {mac2}",
            client_neigh_mac(&lab)
        )
    });
    println!(
        "IPv6: lb1 killed; lb2 held the VIP after {:.0} ms, client neighbour entry moved to lb2 after {:.0} ms",
        takeover.as_secs_f64() * 1000.0,
        t.elapsed().as_secs_f64() * 1000.0
    );
}

#[test]
fn vrrp_ipv6_interop_with_keepalived() {
    if !can_run("vrrp_ipv6_interop_with_keepalived", &["keepalived"]) {
        return;
    }
    let mut lab = Lab::new_v6("vv6k", 3).unwrap();
    // keepalived sends from the link-local address and fails (EINVAL) while duplicate
    // address detection still holds it tentative; lb binds with IPV6_FREEBIND and does not.
    wait_for(
        || {
            lab.ns(LB1)
                .exec_stdout(&["ip", "-6", "addr", "show", "dev", "eth0", "scope", "link"])
                .is_ok_and(|s| s.contains("fe80") && !s.contains("tentative"))
        },
        Duration::from_secs(5),
    )
    .expect("lb1's link-local address stays tentative");
    let _ka = lab.start_keepalived(LB1, &v6(150)).unwrap();
    wait_for(|| lab.holds_vip6(LB1), Duration::from_secs(10))
        .expect("keepalived never took the IPv6 VIP");
    let _lb = lab.start_lb(LB2, &v6(100)).unwrap();
    wait_state(&lab, LB2, "BACKUP", Duration::from_secs(5)).unwrap();
    std::thread::sleep(Duration::from_millis(600));
    let st = lab.lb_status(LB2);
    println!("\nIPv6 interop: lb (100) backup of keepalived (150): {st:?}");
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
    assert_eq!(lab.lb_counter(LB2, "drop.checksum"), 0, "{st:?}");
    assert!(!lab.holds_vip6(LB2));
}
