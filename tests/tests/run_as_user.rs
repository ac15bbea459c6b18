//! `[global] user`/`group` (issue 7, global section): after setup `lb run` runs as that
//! user with only the capabilities it needs at run time, on every thread; what it does
//! after the drop still works: a VRRP takeover (XDP attach, VIP add, gratuitous ARP),
//! L4 forwarding, a reload that re-reads the file, adds a backend (map updates) and an HTTP
//! listener on a port below 1024, `show flows`, and a clean stop.
//!
//! Topology: h0 client, h1 lb (single VRRP node: BACKUP at start, MASTER after the
//! master-down interval, i.e. after the drop), h2/h3 backends b1/b2 (the service VIP on
//! their `lo`), each a line server on port 80 answering with its name.

use anyhow::{bail, ensure, Context, Result};
use lb_tests::{
    backend::line_server,
    daemon::{lb, Daemon, Instance},
    l4lab::{route_via, service_toml, vip_on_lo, xdp_tx_peer},
    netns::Topology,
    procfs::{process_creds, read_creds, Creds},
    require,
    stream::fetch_line,
};
use std::{
    net::{Ipv4Addr, SocketAddr},
    os::unix::fs::PermissionsExt,
    time::{Duration, Instant},
};

/// Held by VRRP on the lb's eth0; the client routes the service VIP through it.
const VRRP_VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 250);
const VIP: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 100);
const IO_TIMEOUT: Duration = Duration::from_secs(3);
/// uid/gid of `nobody`/`nogroup` on Debian.
const NOBODY: u32 = 65534;
/// CAP_NET_BIND_SERVICE (10), CAP_NET_ADMIN (12), CAP_NET_RAW (13), CAP_BPF (39).
const RUNTIME_CAPS: u64 = (1 << 10) | (1 << 12) | (1 << 13) | (1 << 39);

/// A short connection to the service VIP: one line, the backend's name.
fn fetch() -> Result<String> {
    fetch_line(SocketAddr::new(VIP.into(), 80), IO_TIMEOUT)
}

fn config(instance: &str, socket: &str, backends: &[(&str, Ipv4Addr)], http: bool) -> String {
    let mut s = format!(
        r#"instance = "{instance}"
[global]
user = "nobody"
group = "nogroup"
[xdp]
interface = "eth0"
[admin]
socket = "{socket}"

[[vrrp]]
name = "web"
interface = "eth0"
vrid = 77
priority = 100
advert_interval = "100ms"
vips = ["{VRRP_VIP}/24"]
"#
    );
    s.push_str(&service_toml("l4", VIP, 80, "dsr", backends));
    if http {
        let w1 = SocketAddr::new(backends[0].1.into(), 80);
        s.push_str(&service_toml(
            "web",
            "198.19.0.101",
            81,
            "http",
            &[("w1", w1)],
        ));
    }
    s
}

#[test]
fn runs_as_the_configured_user_with_runtime_capabilities_only() -> Result<()> {
    if !require::privileged("runs_as_the_configured_user_with_runtime_capabilities_only") {
        return Ok(());
    }
    let inst = Instance::new("usr");
    let topo = Topology::builder("usr")
        .hosts(4)
        .disable_tx_offload(true)
        .build()?;
    let client = topo.host(0).ns();
    let lbh = topo.host(1);
    route_via(client, "198.19.0.0/24", VRRP_VIP)?;
    let (b1, b2) = (topo.host(2).ipv4(), topo.host(3).ipv4());
    let mut backends = Vec::new();
    for (i, name) in [(2, "b1"), (3, "b2")] {
        let ns = topo.host(i).ns();
        vip_on_lo(ns, VIP.into())?;
        backends.push(line_server(ns, name, 80, false)?);
    }
    let _peer = xdp_tx_peer(&topo, "p1", "198.19.0.254")?;
    std::thread::sleep(Duration::from_millis(300));

    // The admin socket and the config live where `nobody` can reach them (a reload
    // re-reads the file as that user).
    let dir = tempfile::tempdir()?;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))?;
    let socket = dir.path().join("lb.sock").display().to_string();
    // Daemon::start waits for "XDP attached": with VRRP that is the takeover, after the drop.
    let mut d = Daemon::start(
        lbh.ns(),
        &config(inst.name(), &socket, &[("b1", b1)], false),
    )?;
    let path = d.config_path().to_path_buf();
    std::fs::set_permissions(
        path.parent().context("config dir")?,
        std::fs::Permissions::from_mode(0o755),
    )?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))?;

    let outcome = (|| -> Result<()> {
        let log = d.log();
        let dropped = log.find("privileges dropped").context("no drop logged")?;
        let attached = log.find("XDP attached").context("no attach logged")?;
        ensure!(
            dropped < attached,
            "the VRRP takeover (XDP attach) happens after the drop:\n{log}"
        );
        // Every thread: nobody/nogroup, exactly the runtime capabilities.
        let pid = d.pid();
        let Creds {
            uids,
            gids,
            cap_eff: eff,
        } = process_creds(pid)?;
        println!("lb pid {pid}: Uid {uids:?} Gid {gids:?} CapEff {eff:016x}");
        ensure!(uids.iter().all(|&u| u == NOBODY), "uid: {uids:?}");
        ensure!(gids.iter().all(|&g| g == NOBODY), "gid: {gids:?}");
        ensure!(
            eff == RUNTIME_CAPS,
            "CapEff {eff:#x}, want {RUNTIME_CAPS:#x}"
        );
        let mut n = 0;
        for t in std::fs::read_dir(format!("/proc/{pid}/task"))? {
            let (c, st) = read_creds(t?.path().join("status"))?;
            ensure!(
                c.uids.iter().all(|&x| x == NOBODY) && c.cap_eff == RUNTIME_CAPS,
                "a thread kept other credentials:\n{st}"
            );
            n += 1;
        }
        println!("all {n} threads: uid {NOBODY}, CapEff {RUNTIME_CAPS:016x}");

        // Failover after the drop: VIP added, XDP attached, traffic flows.
        let mut got = None;
        let deadline = Instant::now() + Duration::from_secs(10);
        while got.is_none() && Instant::now() < deadline {
            got = client.run(fetch)?.ok();
        }
        ensure!(
            got.as_deref() == Some("b1"),
            "L4 through the VRRP VIP: {got:?}"
        );

        // A reload as `nobody`: re-reads the file, writes the maps, binds port 81.
        std::fs::write(
            &path,
            config(inst.name(), &socket, &[("b1", b1), ("b2", b2)], true),
        )?;
        let (st, out, err) = lb(&["reload", "--socket", &socket])?;
        println!("lb reload as nobody: {}{}", out.trim(), err.trim());
        ensure!(st.success(), "reload: {out}{err}");
        // The daemon's log reaches the test through a reader thread: it may lag the reply.
        let _ = d.wait_log("HTTP proxy listening", 1, Duration::from_secs(5));
        ensure!(
            d.log().contains("HTTP proxy listening") && d.log().contains("198.19.0.101:81"),
            "the new HTTP listener on port 81:\n{}",
            d.log()
        );
        let names = client.run(|| (0..40).map(|_| fetch()).collect::<Result<Vec<_>>>())??;
        let b2n = names.iter().filter(|n| *n == "b2").count();
        println!("40 new flows after the reload: {b2n} to b2");
        ensure!(
            b2n > 0,
            "the added backend gets flows (maps updated): {names:?}"
        );
        // Reading the maps as `nobody` (the conntrack dump).
        let (st, out, err) = lb(&["show", "flows", "--socket", &socket])?;
        ensure!(
            st.success() && out.starts_with("# client"),
            "show flows: {out}{err}"
        );
        // The 40 IPv4 flows just made are in the IPv4 conntrack table, and listed.
        let vip = VIP.to_string();
        let listed = out.lines().filter(|l| l.contains(&vip)).count();
        println!("show flows lists {listed} IPv4 flows to the VIP");
        ensure!(listed >= 40, "show flows lists the IPv4 flows: {out}");
        Ok(())
    })();
    if let Err(e) = outcome {
        bail!("{e:#}\n{}", d.log());
    }
    let st = d.stop()?;
    ensure!(st.success(), "clean stop: {st}\n{}", d.log());
    drop(backends);
    Ok(())
}
