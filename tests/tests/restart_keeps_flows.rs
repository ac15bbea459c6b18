//! Issue 7 acceptance 4: restart without losing L4 flows. `lb run` stopped for upgrade
//! (SIGUSR2) leaves its XDP program attached with the pinned maps; the next `lb run` of the
//! same instance takes the link over (atomic program replacement), so a long-lived TCP
//! stream through a `dsr` VIP keeps flowing on the same backend, with no reset, before,
//! during and after the restart; new connections work. Pins left by a build with another
//! map layout are detected and replaced with a message. This is the procedure of
//! docs/upgrade.md: `kill -USR2`, then `lb run` again.
//!
//! Topology: h0 client, h1 lb, h2..h4 backends b1..b3 (the VIP on their `lo`), each a line
//! server on port 80 answering every line with its name.

use anyhow::{ensure, Context, Result};
use lb_tests::{
    backend::{line_server, Server},
    daemon::{Daemon, Instance},
    l4lab::{route_via, service_toml, vip_on_lo, xdp_tx_peer},
    netns::{Netns, NsProcess, Topology},
    require,
    stream::{fetch_line, Stream},
};
use std::{
    net::{Ipv4Addr, SocketAddr},
    time::Duration,
};

const VIP: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 100);
const IO_TIMEOUT: Duration = Duration::from_secs(3);
/// Bound on the stream's life, whatever happens.
const STREAM_LIMIT: Duration = Duration::from_secs(90);
/// Pause between two pings on the stream.
const PING_EVERY: Duration = Duration::from_millis(10);

fn vip() -> SocketAddr {
    SocketAddr::new(VIP.into(), 80)
}

/// A short connection: one line, the backend's name.
fn fetch() -> Result<String> {
    fetch_line(vip(), IO_TIMEOUT)
}

/// The long-lived stream from the client; the first answer is in its log on return.
fn start_stream(client: &Netns) -> Result<Stream> {
    Stream::start(client, vip(), PING_EVERY, STREAM_LIMIT, IO_TIMEOUT)
}

/// The backends' line servers and the XDP_TX peer, running while this lives.
struct Lab {
    _backends: Vec<Server>,
    /// The backends' names and addresses, for the config.
    list: Vec<(&'static str, Ipv4Addr)>,
    _peer: NsProcess,
}

/// The lab all three tests share: the client routes 198.19.0.0/24 via `gateway`, backend
/// `names[i]` on host i + 2 holds the VIP on `lo` and runs a line server on port 80, and
/// the lb's bridge port gets the XDP_TX peer.
fn lab(topo: &Topology, gateway: Ipv4Addr, names: &[&'static str]) -> Result<Lab> {
    route_via(topo.host(0).ns(), "198.19.0.0/24", gateway)?;
    let mut backends = Vec::new();
    let mut list = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let ns = topo.host(i + 2).ns();
        vip_on_lo(ns, VIP.into())?;
        backends.push(line_server(ns, name, 80, false)?);
        list.push((*name, topo.host(i + 2).ipv4()));
    }
    let peer = xdp_tx_peer(topo, "p1", "198.19.0.254")?;
    std::thread::sleep(Duration::from_millis(300));
    Ok(Lab {
        _backends: backends,
        list,
        _peer: peer,
    })
}

fn config(instance: &str, socket: &str, backends: &[(&str, Ipv4Addr)]) -> String {
    let mut s = format!(
        r#"instance = "{instance}"
[xdp]
interface = "eth0"
[admin]
socket = "{socket}"
"#
    );
    s.push_str(&service_toml("l4", VIP, 80, "dsr", backends));
    s
}

/// The id of the XDP program attached to `eth0` in `ns`, if any.
fn xdp_prog_id(ns: &Netns) -> Result<Option<u64>> {
    let out = ns.exec_stdout(&["ip", "-j", "-d", "link", "show", "eth0"])?;
    let v: serde_json::Value = serde_json::from_str(&out)?;
    Ok(v[0]["xdp"]["prog"]["id"]
        .as_u64()
        .or_else(|| v[0]["xdp"]["attached"][0]["prog"]["id"].as_u64()))
}

/// Waits for the daemon's exit after a signal; its exit status must be success.
fn wait_exit(d: &mut Daemon) -> Result<()> {
    let st = d.wait_exit(Duration::from_secs(15))?;
    ensure!(st.success(), "lb exited with {st}:\n{}", d.log());
    Ok(())
}

#[test]
fn stop_for_upgrade_and_restart_keeps_an_open_l4_stream() -> Result<()> {
    if !require::privileged("stop_for_upgrade_and_restart_keeps_an_open_l4_stream") {
        return Ok(());
    }
    if !require::program("bpftool") {
        return Ok(());
    }
    let inst = Instance::new("rst");
    let topo = Topology::builder("rst")
        .hosts(5)
        .disable_tx_offload(true)
        .build()?;
    let client = topo.host(0).ns();
    let lbh = topo.host(1);
    let lab = lab(&topo, lbh.ipv4(), &["b1", "b2", "b3"])?;

    let sock_dir = tempfile::tempdir()?;
    let socket = sock_dir.path().join("lb.sock").display().to_string();
    let text = config(inst.name(), &socket, &lab.list);
    let mut old = Daemon::start(lbh.ns(), &text)?;
    let old_prog = xdp_prog_id(lbh.ns())?.context("XDP attached")?;

    let mut stream = start_stream(client)?;
    let owner = {
        let g = stream.log();
        g.answers
            .first()
            .cloned()
            .with_context(|| format!("first answer: {:?}", g.error))?
    };
    println!("stream on {owner}, XDP program {old_prog}");

    let outcome = (|| -> Result<()> {
        // Stop for upgrade: the process exits, XDP stays attached with its link pinned.
        old.signal(libc::SIGUSR2)?;
        wait_exit(&mut old)?;
        ensure!(
            old.log().contains("XDP left attached"),
            "the old lb says it left XDP attached:\n{}",
            old.log()
        );
        let pin = inst.pin_dir().join("xdp_link-native-eth0");
        ensure!(pin.exists(), "the link is pinned at {}", pin.display());
        ensure!(
            xdp_prog_id(lbh.ns())? == Some(old_prog),
            "the old program is still attached with no lb running"
        );
        // No lb process: the old program keeps forwarding the stream and new flows.
        let seen = stream.answers();
        std::thread::sleep(Duration::from_millis(500));
        let now = stream.answers();
        ensure!(
            now > seen + 10,
            "the stream flows with no lb running ({seen} -> {now})"
        );
        let gap_fetch = client.run(fetch)??;
        println!(
            "between the two processes: stream +{} answers, a new connection reached {gap_fetch}",
            now - seen
        );

        // The new lb takes the link over.
        let new = Daemon::start(lbh.ns(), &text)?;
        ensure!(
            new.log().contains("took over the XDP program"),
            "the new lb says it took over:\n{}",
            new.log()
        );
        ensure!(!new.log().contains("another map layout"), "{}", new.log());
        ensure!(!pin.exists(), "the pin is removed once the link is ours");
        let new_prog = xdp_prog_id(lbh.ns())?.context("XDP attached")?;
        ensure!(new_prog != old_prog, "the new program replaced the old one");
        println!("new XDP program {new_prog} replaced {old_prog}");
        std::thread::sleep(Duration::from_millis(500));
        let fetched = client.run(|| (0..30).map(|_| fetch()).collect::<Result<Vec<_>>>())??;
        ensure!(fetched.len() == 30, "new connections work");
        let mut spread = fetched.clone();
        spread.sort();
        spread.dedup();
        println!("30 new connections after the restart reached {spread:?}");
        // The stream ends before the lb stops (a detach would stall it).
        std::thread::sleep(Duration::from_millis(300));
        stream.finish();
        let mut new = new;
        ensure!(new.stop()?.success(), "normal stop");
        ensure!(new.log().contains("XDP detached"), "{}", new.log());
        ensure!(
            xdp_prog_id(lbh.ns())?.is_none(),
            "SIGTERM detaches as before"
        );
        Ok(())
    })();
    stream.finish();
    outcome.with_context(|| old.log())?;
    let g = stream.log();
    println!(
        "stream: {} answers, longest gap {:?}, error {:?}",
        g.answers.len(),
        g.longest_gap,
        g.error
    );
    ensure!(
        g.error.is_none(),
        "the stream was never reset: {:?}",
        g.error
    );
    ensure!(
        g.answers.iter().all(|n| *n == owner),
        "the stream stayed on {owner}"
    );
    ensure!(
        g.longest_gap < Duration::from_secs(1),
        "no pause in the stream: longest gap {:?}",
        g.longest_gap
    );
    drop(g);
    drop(lab);
    Ok(())
}

#[test]
fn pins_of_another_map_layout_are_replaced_with_a_message() -> Result<()> {
    if !require::privileged("pins_of_another_map_layout_are_replaced_with_a_message") {
        return Ok(());
    }
    if !require::program("bpftool") {
        return Ok(());
    }
    let inst = Instance::new("rsl");
    let topo = Topology::builder("rsl")
        .hosts(3)
        .disable_tx_offload(true)
        .build()?;
    let client = topo.host(0).ns();
    let lbh = topo.host(1);
    let lab = lab(&topo, lbh.ipv4(), &["b1"])?;

    // What an older build would have left: lb_backends with another value size.
    let dir = inst.pin_dir();
    std::fs::create_dir_all(&dir)?;
    let stale = dir.join("lb_backends");
    let out = std::process::Command::new("bpftool")
        .args(["map", "create"])
        .arg(&stale)
        .args([
            "type",
            "array",
            "key",
            "4",
            "value",
            "12",
            "entries",
            "16",
            "name",
            "lb_backends",
        ])
        .output()?;
    ensure!(
        out.status.success(),
        "bpftool map create: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let sock_dir = tempfile::tempdir()?;
    let socket = sock_dir.path().join("lb.sock").display().to_string();
    let mut d = Daemon::start(lbh.ns(), &config(inst.name(), &socket, &lab.list))?;
    let log = d.log();
    let line = log
        .lines()
        .find(|l| l.contains("another map layout"))
        .with_context(|| format!("the stale pin is reported:\n{log}"))?;
    println!("{line}");
    ensure!(
        line.contains("lb_backends") && line.contains("value 12 B"),
        "the message names the map and its layout: {line}"
    );
    let show = std::process::Command::new("bpftool")
        .args(["-j", "map", "show", "pinned"])
        .arg(&stale)
        .output()?;
    let v: serde_json::Value = serde_json::from_slice(&show.stdout)?;
    ensure!(
        v["value_size"].as_u64() != Some(12) && v["max_entries"].as_u64() != Some(16),
        "the pin now holds this build's map: {v}"
    );
    let got = client.run(|| (0..5).map(|_| fetch()).collect::<Result<Vec<_>>>())??;
    ensure!(got.iter().all(|n| n == "b1"), "serving: {got:?}");
    ensure!(d.stop()?.success());
    Ok(())
}

/// Held by VRRP on the lb's eth0 in the VRRP case; the client routes the VIP through it.
const VRRP_VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 250);

/// With VRRP, only what is attached is taken over: the new lb adopts the link a MASTER
/// left, then follows its role (BACKUP at start: detached; MASTER after the master-down
/// interval: attached again). The stream pauses for that moment but is not reset and
/// stays on its backend, because the conntrack table is the pinned one.
#[test]
fn vrrp_master_stopped_for_upgrade_is_adopted_then_follows_its_role() -> Result<()> {
    if !require::privileged("vrrp_master_stopped_for_upgrade_is_adopted_then_follows_its_role") {
        return Ok(());
    }
    let inst = Instance::new("rsv");
    let topo = Topology::builder("rsv")
        .hosts(4)
        .disable_tx_offload(true)
        .build()?;
    let client = topo.host(0).ns();
    let lbh = topo.host(1);
    let lab = lab(&topo, VRRP_VIP, &["b1", "b2"])?;

    let sock_dir = tempfile::tempdir()?;
    let socket = sock_dir.path().join("lb.sock").display().to_string();
    let text = format!(
        "{}\n[[vrrp]]\nname = \"web\"\ninterface = \"eth0\"\nvrid = 78\npriority = 100\n\
         advert_interval = \"100ms\"\nvips = [\"{VRRP_VIP}/24\"]\n",
        config(inst.name(), &socket, &lab.list)
    );
    // Daemon::start returns once XDP is attached: with VRRP, once MASTER.
    let mut old = Daemon::start(lbh.ns(), &text)?;
    let mut stream = start_stream(client)?;
    let owner = stream
        .log()
        .answers
        .first()
        .cloned()
        .context("first answer")?;

    let outcome = (|| -> Result<()> {
        old.signal(libc::SIGUSR2)?;
        wait_exit(&mut old)?;
        ensure!(old.log().contains("XDP left attached"), "{}", old.log());
        let new = Daemon::start(lbh.ns(), &text)?;
        let log = new.log();
        let took = log.find("took over the XDP program").context("adopted")?;
        let detached = log
            .find("XDP detached (no instance is MASTER)")
            .context("detached as BACKUP")?;
        let attached = log.rfind("XDP attached").context("attached as MASTER")?;
        ensure!(
            took < detached && detached < attached,
            "adopt, BACKUP detach, MASTER attach:\n{log}"
        );
        println!("new lb: adopted the link, detached as BACKUP, attached as MASTER");
        let before = stream.answers();
        std::thread::sleep(Duration::from_millis(1500));
        let after = stream.answers();
        ensure!(
            after > before + 20,
            "the stream flows again ({before} -> {after})"
        );
        stream.finish();
        let mut new = new;
        ensure!(new.stop()?.success());
        Ok(())
    })();
    stream.finish();
    outcome.with_context(|| old.log())?;
    let g = stream.log();
    println!(
        "stream: {} answers, longest gap {:?}, error {:?}",
        g.answers.len(),
        g.longest_gap,
        g.error
    );
    ensure!(g.error.is_none(), "the stream was not reset: {:?}", g.error);
    ensure!(g.answers.iter().all(|n| *n == owner), "stayed on {owner}");
    drop(g);
    drop(lab);
    Ok(())
}
