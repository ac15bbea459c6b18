//! What a reload keeps: check tasks and health of unchanged servers, operator states by
//! name; what it resets: health of servers whose check or address changed.

use super::*;
use std::path::Path;

fn config(servers: &[(&str, &str, bool, &str)]) -> Arc<Config> {
    let mut text = String::from(
        "[xdp]\ninterface = \"eth0\"\n[[service]]\nname = \"l4\"\nvip = \"198.18.0.99\"\nport = 80\nmode = \"dsr\"\n",
    );
    for (name, addr, check, inter) in servers {
        text.push_str(&format!(
            "[[service.server]]\nname = \"{name}\"\naddress = \"{addr}\"\ncheck = {check}\ninter = \"{inter}\"\n"
        ));
    }
    Arc::new(crate::config::parse(Path::new("t.toml"), &text).expect("config"))
}

fn task_of(c: &Control, si: usize, i: usize) -> Option<Arc<HealthHandle>> {
    c.health
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&(si, i))
        .map(|c| Arc::clone(&c.handle))
}

#[tokio::test]
async fn reload_keeps_the_health_and_check_task_of_unchanged_servers() {
    // Checks (to loopback ports nobody listens on) run once a minute: no result arrives during the
    // test, so every state seen below is the one set here or carried by the reload.
    let (a, b) = (
        ("a", "127.0.0.2", true, "60s"),
        ("b", "127.0.0.3", false, "60s"),
    );
    let (c, _l4, _plane) = Control::new(config(&[a, b]), HttpHandles::new());
    let (_stop_tx, stop) = watch::channel(false);
    c.start_checks(stop.clone());
    let task_a = task_of(&c, 0, 0).expect("a is checked");
    {
        let mut st = c.lock();
        st[0][0].health = HealthState::Down;
        st[0][1].health = HealthState::Down;
        st[0][1].admin = AdminState::Drain;
    }

    // A server is added in front: indexes move, names and health stay.
    let new = ("n", "127.0.0.4", false, "60s");
    c.reconfigure(config(&[new, a, b]), HttpHandles::new(), &stop);
    let st = c.statuses();
    assert_eq!(st[0][0].health, HealthState::Up, "a new server starts UP");
    assert_eq!(st[0][1].health, HealthState::Down, "a keeps its DOWN");
    assert_eq!(
        st[0][2].health,
        HealthState::Down,
        "unchecked b keeps its health"
    );
    assert_eq!(st[0][2].admin, AdminState::Drain, "b stays drained");
    let kept = task_of(&c, 0, 1).expect("a still checked");
    assert!(
        Arc::ptr_eq(&task_a, &kept),
        "a's check task (its counter) is kept"
    );
    assert!(!kept.is_finished());

    // a's check changes (interval) and b moves: both start afresh, b keeps its drain.
    let a2 = ("a", "127.0.0.2", true, "30s");
    let b2 = ("b", "127.0.0.5", false, "60s");
    c.reconfigure(config(&[new, a2, b2]), HttpHandles::new(), &stop);
    let st = c.statuses();
    assert_eq!(
        st[0][1].health,
        HealthState::Up,
        "a changed check: fresh health"
    );
    assert_eq!(
        st[0][2].health,
        HealthState::Up,
        "b changed address: fresh health"
    );
    assert_eq!(st[0][2].admin, AdminState::Drain);
    let fresh = task_of(&c, 0, 1).expect("a checked");
    assert!(!Arc::ptr_eq(&task_a, &fresh), "a new check task");
    tokio::task::yield_now().await;
    assert!(task_a.is_finished(), "the replaced task stops");
}
