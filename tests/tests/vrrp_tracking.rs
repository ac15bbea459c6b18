//! Issue 5, tracking: a tracked service none of whose servers is available, or a tracked
//! interface that goes down, lowers lb1's priority below lb2's, so lb2 (preempt) takes
//! the VIP; when the object recovers lb1's priority is restored and it preempts back.
//!
//! The service case goes through the one flow of state twice: lb1's only server of
//! service `app` stops (its health checks mark it DOWN), and later `lb disable` puts it
//! into maintenance; each time lb1 drops from 150 to 90 and lb2 (100) becomes master.

mod vrrp_support;

use std::time::{Duration, Instant};

use lb_tests::netns::wait_for;
use vrrp_support::*;

/// A second service on each node whose only server is the node's own web server, checked
/// every 100 ms; lb1 tracks it.
fn app_service(lab: &Lab) -> String {
    format!(
        r#"
[[service]]
name = "app"
vip = "{vip}"
port = 8081
mode = "http"
[[service.server]]
name = "s1"
address = "127.0.0.1:{HTTP_PORT}"
check = true
inter = "100ms"
rise = 2
fall = 2
"#,
        vip = lab.vip()
    )
}

fn status_line(lab: &Lab, i: usize) -> String {
    format!("{:?}", lab.lb_status(i))
}

/// Waits until lb1 is BACKUP and lb2 MASTER holding the VIP (or the reverse); returns how
/// long it took.
fn wait_master(lab: &Lab, master: usize, timeout: Duration) -> Duration {
    let backup = if master == LB1 { LB2 } else { LB1 };
    let t = Instant::now();
    wait_for(
        || {
            lab.lb_status(master).get("state").map(String::as_str) == Some("MASTER")
                && lab.lb_status(backup).get("state").map(String::as_str) == Some("BACKUP")
                && lab.holds_vip(master)
                && !lab.holds_vip(backup)
        },
        timeout,
    )
    .unwrap_or_else(|_| {
        panic!(
            "host {master} did not become the only master: lb1 {}\nlb2 {}\nlb1 log:\n{}",
            status_line(lab, LB1),
            status_line(lab, LB2),
            lab.lb_log(LB1)
        )
    });
    t.elapsed()
}

fn priority(lab: &Lab, i: usize) -> String {
    lab.lb_status(i)
        .get("priority")
        .cloned()
        .unwrap_or_default()
}

#[test]
fn vrrp_tracked_service_down_moves_the_vip_and_back() {
    if !can_run(
        "vrrp_tracked_service_down_moves_the_vip_and_back",
        &["python3"],
    ) {
        return;
    }
    let mut lab = Lab::new("vtrs", 3).unwrap();
    let mut http1 = lab.start_http(LB1, "lb1").unwrap();
    let _http2 = lab.start_http(LB2, "lb2").unwrap();
    let app = app_service(&lab);
    let track = "track_service = [{ service = \"app\", weight = -60 }]";
    let _d1 = lab
        .start_lb_with(LB1, &NodeOpts::new(150, 100), &app, track)
        .unwrap();
    lab.wait_vip(LB1, Duration::from_secs(10)).unwrap();
    let _d2 = lab
        .start_lb_with(LB2, &NodeOpts::new(100, 100), &app, track)
        .unwrap();
    wait_state(&lab, LB2, "BACKUP", Duration::from_secs(5)).unwrap();
    wait_master(&lab, LB1, Duration::from_secs(5));
    assert_eq!(priority(&lab, LB1), "150");

    // 1. lb1's only server of `app` stops: health checks mark it DOWN.
    http1.kill_with(libc::SIGKILL).unwrap();
    let took = wait_master(&lab, LB2, Duration::from_secs(5));
    let st = lab.lb_status(LB1);
    println!(
        "app/s1 stopped on lb1: lb2 master after {took:?}; lb1 priority {} (base {}), failed {}",
        st["priority"], st["base_priority"], st["track_failed"]
    );
    assert_eq!(st["priority"], "90");
    assert_eq!(st["base_priority"], "150");
    assert_eq!(st["track_failed"], "svc:app");
    assert!(lab.lb_log(LB1).contains("tracking changed the priority"));

    // It comes back: lb1's priority returns to 150 and it preempts.
    let _http1 = lab.start_http(LB1, "lb1").unwrap();
    let took = wait_master(&lab, LB1, Duration::from_secs(5));
    println!("app/s1 back on lb1: lb1 master again after {took:?}");
    assert_eq!(priority(&lab, LB1), "150");
    assert_eq!(lab.lb_status(LB1)["track_failed"], "-");
    assert_eq!(lab.fetch().as_deref(), Some("lb1"));

    // 2. The same through the admin socket: maintenance of lb1's server.
    let (ok, out) = lab.lb_cli(LB1, &["disable", "server", "app/s1"]).unwrap();
    assert!(ok, "lb disable: {out}");
    let took = wait_master(&lab, LB2, Duration::from_secs(5));
    println!("lb disable server app/s1 on lb1: lb2 master after {took:?}");
    assert_eq!(priority(&lab, LB1), "90");
    assert_eq!(lab.fetch().as_deref(), Some("lb2"));
    let (ok, out) = lab.lb_cli(LB1, &["enable", "server", "app/s1"]).unwrap();
    assert!(ok, "lb enable: {out}");
    let took = wait_master(&lab, LB1, Duration::from_secs(5));
    println!("lb enable server app/s1 on lb1: lb1 master again after {took:?}");
    assert_eq!(priority(&lab, LB1), "150");
    // lb2 never tracked anything down: its priority stayed.
    assert_eq!(priority(&lab, LB2), "100");
}

#[test]
fn vrrp_tracked_interface_down_moves_the_vip_and_back() {
    if !can_run(
        "vrrp_tracked_interface_down_moves_the_vip_and_back",
        &["python3"],
    ) {
        return;
    }
    let mut lab = Lab::new("vtri", 3).unwrap();
    let _http1 = lab.start_http(LB1, "lb1").unwrap();
    let _http2 = lab.start_http(LB2, "lb2").unwrap();
    // An uplink stand-in in lb1's namespace (a veth pair: no dummy module here; removed
    // with the namespace).
    lab.ns(LB1)
        .ip(&[
            "link", "add", "trk0", "type", "veth", "peer", "name", "trk1",
        ])
        .unwrap();
    lab.ns(LB1).link_up("trk1").unwrap();
    lab.ns(LB1).link_up("trk0").unwrap();
    let track = "track_interface = [{ interface = \"trk0\", weight = -60 }]";
    let _d1 = lab
        .start_lb_with(LB1, &NodeOpts::new(150, 100), "", track)
        .unwrap();
    lab.wait_vip(LB1, Duration::from_secs(10)).unwrap();
    let _d2 = lab.start_lb(LB2, &NodeOpts::new(100, 100)).unwrap();
    wait_state(&lab, LB2, "BACKUP", Duration::from_secs(5)).unwrap();
    wait_master(&lab, LB1, Duration::from_secs(5));

    lab.ns(LB1).ip(&["link", "set", "trk0", "down"]).unwrap();
    let took = wait_master(&lab, LB2, Duration::from_secs(5));
    let st = lab.lb_status(LB1);
    println!(
        "trk0 down on lb1: lb2 master after {took:?}; lb1 priority {}, failed {}",
        st["priority"], st["track_failed"]
    );
    assert_eq!(st["priority"], "90");
    assert_eq!(st["track_failed"], "if:trk0");

    lab.ns(LB1).link_up("trk0").unwrap();
    let took = wait_master(&lab, LB1, Duration::from_secs(5));
    println!("trk0 up on lb1: lb1 master again after {took:?}");
    assert_eq!(priority(&lab, LB1), "150");
    assert_eq!(lab.fetch().as_deref(), Some("lb1"));

    // Weight 0 (keepalived's default), set by a reload: the interface going down puts
    // lb1 in FAULT at once (VIP released, no adverts), and it comes back when it recovers.
    let fault = "track_interface = [{ interface = \"trk0\", weight = 0 }]";
    let text = lab.lb_config_with(LB1, &NodeOpts::new(150, 100), "", fault);
    lab.write_lb_config(LB1, &text).unwrap();
    let (ok, out) = lab.lb_cli(LB1, &["reload"]).unwrap();
    assert!(ok && out.contains("updated web"), "{out}");
    lab.ns(LB1).ip(&["link", "set", "trk0", "down"]).unwrap();
    wait_state(&lab, LB1, "FAULT", Duration::from_secs(3)).unwrap();
    let took = wait_for(
        || lab.holds_vip(LB2) && !lab.holds_vip(LB1),
        Duration::from_secs(3),
    );
    assert!(took.is_ok(), "lb2 did not take over from a FAULT lb1");
    println!(
        "weight 0, trk0 down: lb1 {:?}",
        lab.lb_status(LB1).get("state")
    );
    lab.ns(LB1).link_up("trk0").unwrap();
    wait_master(&lab, LB1, Duration::from_secs(5));
    assert_eq!(lab.fetch().as_deref(), Some("lb1"));
}
