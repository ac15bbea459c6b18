//! Issue 5, acceptance 7: cut lb1's link (its bridge port down), then heal it. During the
//! partition lb1 sees its link down, goes to FAULT and lets go of the VIP, and lb2 is the
//! one master; after healing lb1 (higher priority, preempt) takes over again and lb2 steps
//! down: one master during, one master after.

mod vrrp_support;

use std::time::Duration;

use vrrp_support::*;

fn states(lab: &Lab) -> (String, String) {
    let s = |i| lab.lb_status(i).get("state").cloned().unwrap_or_default();
    (s(LB1), s(LB2))
}

fn masters(lab: &Lab) -> usize {
    let (a, b) = states(lab);
    [a, b].iter().filter(|s| *s == "MASTER").count()
}

#[test]
fn vrrp_partition_and_heal_leave_one_master() {
    if !can_run("vrrp_partition_and_heal_leave_one_master", &["python3"]) {
        return;
    }
    let mut lab = Lab::new("vpart", 3).unwrap();
    let _h1 = lab.start_http(LB1, "lb1").unwrap();
    let _h2 = lab.start_http(LB2, "lb2").unwrap();
    let _d1 = lab.start_lb(LB1, &NodeOpts::new(150, 100)).unwrap();
    lab.wait_vip(LB1, Duration::from_secs(10)).unwrap();
    let _d2 = lab.start_lb(LB2, &NodeOpts::new(100, 100)).unwrap();
    wait_state(&lab, LB2, "BACKUP", Duration::from_secs(5)).unwrap();

    // Cut: lb1's port on the bridge goes down, so lb1's eth0 loses carrier.
    let port = format!("p{LB1}");
    lab.topo
        .bridge_ns()
        .ip(&["link", "set", "dev", &port, "down"])
        .unwrap();
    lab.wait_vip(LB2, Duration::from_secs(3)).unwrap();
    wait_state(&lab, LB1, "FAULT", Duration::from_secs(3)).unwrap();
    let (during_max, _) = watch_holders(
        &lab,
        &[LB1, LB2],
        Duration::from_secs(1),
        Duration::from_millis(10),
    );
    let during = states(&lab);
    assert_eq!(masters(&lab), 1, "during the partition: {during:?}");
    assert_eq!(during_max, 1, "two VIP holders during the partition");
    assert_eq!(lab.fetch().as_deref(), Some("lb2"));

    // Heal.
    lab.topo
        .bridge_ns()
        .ip(&["link", "set", "dev", &port, "up"])
        .unwrap();
    lab.wait_vip(LB1, Duration::from_secs(5)).unwrap();
    wait_state(&lab, LB2, "BACKUP", Duration::from_secs(3)).unwrap();
    let (after_max, _) = watch_holders(
        &lab,
        &[LB1, LB2],
        Duration::from_secs(1),
        Duration::from_millis(10),
    );
    let after = states(&lab);
    println!("\npartition: during {during:?} (most VIP holders seen {during_max}); after heal {after:?} (most holders {after_max})");
    assert_eq!(masters(&lab), 1, "after healing: {after:?}");
    assert_eq!(after_max, 1);
    assert_eq!(lab.fetch().as_deref(), Some("lb1"));
}

/// Split brain without link loss: multicast between the nodes is cut (an nftables rule on
/// the bridge drops VRRP), both become master; when it heals, the lower one steps down
/// within an advert interval.
#[test]
fn vrrp_split_brain_resolves_when_adverts_flow_again() {
    if !can_run(
        "vrrp_split_brain_resolves_when_adverts_flow_again",
        &["python3", "nft"],
    ) {
        return;
    }
    let mut lab = Lab::new("vsplit", 3).unwrap();
    let _d1 = lab.start_lb(LB1, &NodeOpts::new(150, 100)).unwrap();
    lab.wait_vip(LB1, Duration::from_secs(10)).unwrap();
    let _d2 = lab.start_lb(LB2, &NodeOpts::new(100, 100)).unwrap();
    wait_state(&lab, LB2, "BACKUP", Duration::from_secs(5)).unwrap();
    let br = lab.topo.bridge_ns();
    br.exec(&["nft", "add table bridge vrrp_cut"]).unwrap();
    br.exec(&[
        "nft",
        "add chain bridge vrrp_cut cut { type filter hook forward priority 0 ; }",
    ])
    .unwrap();
    br.exec(&["nft", "add rule bridge vrrp_cut cut ip protocol 112 drop"])
        .unwrap();
    wait_state(&lab, LB2, "MASTER", Duration::from_secs(3)).unwrap();
    assert_eq!(
        masters(&lab),
        2,
        "the cut did not split the brain: {:?}",
        states(&lab)
    );
    br.exec(&["nft", "delete table bridge vrrp_cut"]).unwrap();
    let t = std::time::Instant::now();
    wait_state(&lab, LB2, "BACKUP", Duration::from_secs(2)).unwrap();
    let took = t.elapsed();
    println!(
        "\nsplit brain healed: lb2 stepped down {:.0} ms after adverts flowed again; states {:?}",
        took.as_secs_f64() * 1000.0,
        states(&lab)
    );
    assert!(took < Duration::from_millis(400), "{took:?}");
    assert_eq!(masters(&lab), 1);
    assert!(lab.holds_vip(LB1) && !lab.holds_vip(LB2));
}
