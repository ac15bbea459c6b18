//! Foundation acceptance 3 and 4: `lb run` attached in namespace A counts real TCP traffic
//! from namespace B to the VIP and not to A's other address; `bpftool` shows the pinned VIP
//! map with typed fields; after SIGTERM nothing stays attached and the namespaces go.

use anyhow::{Context, Result};
use lb_tests::{
    daemon::{lb, ConfigFile, Daemon, Instance},
    netns::{self, veth_pair, Netns},
    require,
};
use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    time::Duration,
};

const VIP: &str = "198.18.1.99";
const OTHER: &str = "198.18.1.1";
const PORT: u16 = 8080;
const CONNECTIONS: usize = 5;

/// Answers each connection's "ping" with "pong", for a bounded number of connections.
fn serve(listener: TcpListener, connections: usize) {
    std::thread::spawn(move || {
        for stream in listener.incoming().take(connections) {
            let Ok(mut s) = stream else { continue };
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let mut buf = [0u8; 4];
            if s.read_exact(&mut buf).is_ok() {
                let _ = s.write_all(b"pong");
            }
        }
    });
}

fn ping_pong(client: &Netns, to: SocketAddr) -> Result<()> {
    client
        .run(move || -> Result<()> {
            let mut s = TcpStream::connect_timeout(&to, Duration::from_secs(5))?;
            s.set_read_timeout(Some(Duration::from_secs(5)))?;
            s.write_all(b"ping")?;
            let mut buf = [0u8; 4];
            s.read_exact(&mut buf)?;
            anyhow::ensure!(&buf == b"pong", "unexpected answer {buf:?}");
            Ok(())
        })?
        .with_context(|| format!("ping-pong with {to}"))
}

/// Parses the `web` line of `lb stats`: (packets, bytes).
fn vip_counters(config: &ConfigFile) -> Result<(u64, u64)> {
    let (status, out, err) = lb(&["stats", "--config", config.path().to_str().unwrap()])?;
    anyhow::ensure!(status.success(), "lb stats failed: {err}");
    let line = out
        .lines()
        .find(|l| l.starts_with("web "))
        .context("no web line")?;
    let f: Vec<&str> = line.split_whitespace().collect();
    Ok((f[2].parse()?, f[3].parse()?))
}

fn xdp_attached(ns: &Netns) -> Result<bool> {
    let out = ns.exec_stdout(&["ip", "-d", "link", "show", "dev", "eth0"])?;
    Ok(out.contains("prog/xdp"))
}

#[test]
fn run_counts_vip_traffic_only_and_detaches_on_sigterm() -> Result<()> {
    if !require::privileged("run_counts_vip_traffic_only_and_detaches_on_sigterm") {
        return Ok(());
    }
    let inst = Instance::new("att");
    let a = Netns::new("slA")?;
    let b = Netns::new("slB")?;
    let names = [a.name().to_string(), b.name().to_string()];
    veth_pair(&a, &b, "eth0", "eth0")?;
    a.add_addr("eth0", &format!("{OTHER}/24"))?;
    a.add_addr("eth0", &format!("{VIP}/32"))?;
    b.add_addr("eth0", "198.18.1.2/24")?;

    let vip: SocketAddr = format!("{VIP}:{PORT}").parse()?;
    let other: SocketAddr = format!("{OTHER}:{PORT}").parse()?;
    serve(a.run(move || TcpListener::bind(vip))??, CONNECTIONS);
    serve(a.run(move || TcpListener::bind(other))??, CONNECTIONS);

    let text = format!(
        "instance = \"{}\"\n[xdp]\ninterface = \"eth0\"\n\n[[service]]\nname = \"web\"\nvip = \"{VIP}\"\nport = {PORT}\n",
        inst.name()
    );
    let stats_cfg = ConfigFile::new(&text)?;
    let mut daemon = Daemon::start(&a, &text)?;
    assert!(xdp_attached(&a)?, "XDP program attached to A's eth0");
    assert_eq!(vip_counters(&stats_cfg)?, (0, 0));

    for _ in 0..CONNECTIONS {
        ping_pong(&b, vip)?;
    }
    let (packets, bytes) = vip_counters(&stats_cfg)?;
    // Each connection brings at least SYN, ACK+data and FIN from B to A.
    assert!(
        packets >= 3 * CONNECTIONS as u64,
        "VIP packets counted: {packets}"
    );
    assert!(bytes >= packets * 54, "VIP bytes counted: {bytes}");

    for _ in 0..CONNECTIONS {
        ping_pong(&b, other)?;
    }
    assert_eq!(
        vip_counters(&stats_cfg)?,
        (packets, bytes),
        "traffic to A's other address is not counted"
    );

    // Acceptance 4: bpftool reads the pinned map with typed fields from BTF.
    let pin = inst.pin_dir().join(lb_common::maps::VIPS);
    let dump = std::process::Command::new("bpftool")
        .args(["-j", "map", "dump", "pinned"])
        .arg(&pin)
        .output()?;
    assert!(
        dump.status.success(),
        "bpftool: {}",
        String::from_utf8_lossy(&dump.stderr)
    );
    let entries: serde_json::Value = serde_json::from_slice(&dump.stdout)?;
    let entry = &entries[0]["formatted"];
    let addr: Vec<u64> = entry["key"]["addr"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_u64()).collect())
        .unwrap_or_default();
    assert_eq!(addr[..4], [198, 18, 1, 99], "{entries}");
    assert!(addr[4..].iter().all(|&b| b == 0), "{entries}");
    assert_eq!(entry["key"]["port"], PORT, "{entries}");
    assert_eq!(entry["key"]["proto"], 6, "{entries}");
    assert_eq!(entry["key"]["family"], 4, "{entries}");
    assert_eq!(entry["value"]["id"], 0, "{entries}");
    assert_eq!(entries.as_array().map(Vec::len), Some(1), "{entries}");

    let status = daemon.stop()?;
    assert!(
        status.success(),
        "lb exits 0 on SIGTERM: {status}\n{}",
        daemon.log()
    );
    assert!(daemon.log().contains("XDP detached"), "{}", daemon.log());
    assert!(!xdp_attached(&a)?, "nothing stays attached after SIGTERM");

    drop(daemon);
    drop(a);
    drop(b);
    let left = netns::list()?;
    for n in &names {
        assert!(!left.contains(n), "namespace {n} removed");
    }
    Ok(())
}
