//! Issue 5, acceptance 2: a long-lived TCP stream through an L4 `dsr` VIP continues on the
//! same backend across a failover, with no reset, and no state shared between the nodes:
//! lb2 has never seen the flow, its Maglev table (same config, same seed) sends it to the
//! same backend.
//!
//! Topology: client, lb1, lb2 and two backends on one bridge. The service VIP
//! (198.19.0.100) is routed by the client via the floating VRRP address 198.18.S.99, the
//! way a router points a VIP prefix at a load-balancer pair; backends hold the service VIP
//! on `lo` and answer the client directly.

mod vrrp_support;

use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use lb_tests::backend::line_server;
use lb_tests::l4lab::{route_via, vip_on_lo, xdp_tx_peer};
use lb_tests::netns::{NsProcess, Topology};
use lb_tests::require;
use lb_tests::stream::spawn_in;
use vrrp_support::*;

const SVC_VIP: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 100);
const SVC_PORT: u16 = 7000;
const B1: usize = 3;
const B2: usize = 4;

fn config(lab: &Lab, i: usize, prio: u8) -> String {
    let instance = lab.ns(i).name().replace('.', "_");
    format!(
        r#"instance = "{instance}"
[xdp]
interface = "eth0"

[l4]
conntrack_size = 65536

[[service]]
name = "stream"
vip = "{SVC_VIP}"
port = {SVC_PORT}
mode = "dsr"
[[service.server]]
name = "b1"
address = "{b1}"
[[service.server]]
name = "b2"
address = "{b2}"
{vrrp}"#,
        b1 = lab.host(B1).ipv4(),
        b2 = lab.host(B2).ipv4(),
        vrrp = lab.vrrp_section(prio),
    )
}

#[test]
fn vrrp_l4_dsr_stream_survives_failover() {
    if !can_run("vrrp_l4_dsr_stream_survives_failover", &[]) {
        return;
    }
    let mut lab = Lab::with_topology(
        Topology::builder("vl4")
            .hosts(5)
            .disable_tx_offload(true)
            .build()
            .unwrap(),
    )
    .unwrap();
    // Line servers answering every line with their name.
    let mut servers = Vec::new();
    for (h, name) in [(B1, "b1"), (B2, "b2")] {
        vip_on_lo(lab.ns(h), SVC_VIP.into()).unwrap();
        servers.push(line_server(lab.ns(h), name, SVC_PORT, false).unwrap());
    }
    route_via(lab.ns(CLIENT), "198.19.0.0/24", lab.vip()).unwrap();
    // XDP_TX on veth needs an XDP program on the peer: pass-through ones on lb1's and lb2's
    // bridge ports (`lb decap` for a VIP nobody uses).
    let _keep: Vec<NsProcess> = ["p1", "p2"]
        .iter()
        .map(|port| xdp_tx_peer(&lab.topo, port, "198.19.0.254").unwrap())
        .collect();
    let c1 = config(&lab, LB1, 150);
    let c2 = config(&lab, LB2, 100);
    let mut d1 = lab.start_lb_config(LB1, &c1).unwrap();
    lab.wait_vip(LB1, Duration::from_secs(10)).unwrap();
    let _d2 = lab.start_lb_config(LB2, &c2).unwrap();
    wait_state(&lab, LB2, "BACKUP", Duration::from_secs(5)).unwrap();
    std::thread::sleep(Duration::from_millis(300));

    // One connection, a line every 50 ms for 4 s; lb1 is killed after 1 s.
    let vip = SocketAddr::new(IpAddr::V4(SVC_VIP), SVC_PORT);
    let talker = spawn_in(
        lab.ns(CLIENT),
        move || -> Result<Vec<(Duration, String)>> {
            let s = TcpStream::connect_timeout(&vip, Duration::from_secs(2)).context("connect")?;
            s.set_read_timeout(Some(Duration::from_secs(5)))?;
            let mut r = BufReader::new(s.try_clone()?);
            let mut w = s;
            let start = Instant::now();
            let mut got = Vec::new();
            for i in 0..80 {
                w.write_all(format!("{i}\n").as_bytes())
                    .with_context(|| format!("write {i}"))?;
                let mut line = String::new();
                r.read_line(&mut line)
                    .with_context(|| format!("read {i}"))?;
                if line.is_empty() {
                    bail!("connection closed at line {i}");
                }
                got.push((start.elapsed(), line.trim().to_string()));
                std::thread::sleep(Duration::from_millis(50));
            }
            Ok(got)
        },
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(1000));
    d1.kill_with(libc::SIGKILL).unwrap();
    let got = talker.join().unwrap();
    drop(servers);
    let got =
        got.unwrap_or_else(|e| panic!("the stream broke: {e:#}\nlb2 log:\n{}", lab.lb_log(LB2)));

    let backends: std::collections::BTreeSet<&str> = got
        .iter()
        .filter_map(|(_, l)| l.split_whitespace().next())
        .collect();
    let longest = got
        .windows(2)
        .map(|w| w[1].0.saturating_sub(w[0].0))
        .max()
        .unwrap_or_default();
    let stats = lab
        .ns(LB2)
        .exec_stdout(&["true"])
        .ok()
        .and_then(|_| {
            let mut cmd = lab.ns(LB2).command_net_only(require::lb_bin()).ok()?;
            cmd.args(["stats", "-c"])
                .arg(lab.dir.join(format!("lb{LB2}.toml")));
            cmd.output().ok()
        })
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    println!(
        "\nL4 dsr stream across SIGKILL of lb1: {} lines answered, backends {:?}, longest pause {:.0} ms; \
         lb2 holds the VIP: {}\nlb2 stats:\n{stats}",
        got.len(),
        backends,
        longest.as_secs_f64() * 1000.0,
        lab.holds_vip(LB2)
    );
    assert_eq!(got.len(), 80);
    assert_eq!(
        backends.len(),
        1,
        "the stream changed backends: {backends:?}"
    );
    assert!(lab.holds_vip(LB2));
    let line = stats
        .lines()
        .find(|l| l.starts_with("stream"))
        .unwrap_or_default()
        .to_string();
    let packets: u64 = line
        .split_whitespace()
        .nth(2)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    assert!(packets > 0, "lb2's XDP never forwarded the stream: {stats}");
}
