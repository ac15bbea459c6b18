//! Issue 9, `ipip` and the MTU, end to end in namespaces: client, load balancer and one
//! backend on a bridge; the client's and the load balancer's interfaces have MTU 1450 and
//! `l4.ipip_mtu` is not set, so `lb run` takes 1450 from its interface (netlink). The
//! client's full-sized segments (1450 bytes) would be 1470 bytes encapsulated: the XDP
//! program answers them with ICMP "fragmentation needed" / ICMPv6 "packet too big", the
//! client's stack lowers its path MTU, and a 200 KB upload over each of an IPv4 and an
//! IPv6 `ipip` VIP arrives whole at the backend. `lb stats` counts the answers, and the
//! client's route cache holds the MTU the answers carried.

use anyhow::{Context, Result};
use lb_tests::{
    backend::Server,
    daemon::{lb, Daemon, Instance},
    l4lab::{lb_quiet, route_via, service_toml, vip_on_lo, xdp_tx_peer},
    netns::Topology,
    require,
};
use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream},
    time::Duration,
};

const VIP4: Ipv4Addr = Ipv4Addr::new(198, 19, 4, 101);
const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x104, 0, 0, 0, 0, 0x101);
const PORT: u16 = 80;
const MTU: u32 = 1450;
const UPLOAD: usize = 200_000;
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// Reads each connection to its end and answers with the byte count; stops when dropped.
fn counter(l: TcpListener) -> Result<Server> {
    let server = Server::new();
    server.accept(l, |mut s| {
        let _ = s.set_read_timeout(Some(IO_TIMEOUT));
        let mut n = 0usize;
        let mut buf = [0u8; 16384];
        while let Ok(k) = s.read(&mut buf) {
            if k == 0 {
                break;
            }
            n += k;
        }
        let _ = s.write_all(format!("{n}\n").as_bytes());
    })?;
    Ok(server)
}

/// Uploads [`UPLOAD`] bytes to `vip`; returns what the backend says it received.
fn upload(vip: SocketAddr) -> Result<usize> {
    let mut s =
        TcpStream::connect_timeout(&vip, IO_TIMEOUT).with_context(|| format!("connect {vip}"))?;
    s.set_read_timeout(Some(IO_TIMEOUT))?;
    s.set_write_timeout(Some(IO_TIMEOUT))?;
    let data: Vec<u8> = (0..UPLOAD).map(|i| (i % 253) as u8).collect();
    s.write_all(&data)
        .with_context(|| format!("upload to {vip}"))?;
    s.shutdown(Shutdown::Write)?;
    let mut line = String::new();
    BufReader::new(&s)
        .read_line(&mut line)
        .with_context(|| format!("reading the count from {vip}"))?;
    line.trim()
        .parse()
        .with_context(|| format!("count {line:?} from {vip}"))
}

#[test]
fn oversized_ipip_packets_get_icmp_and_the_client_adapts() -> Result<()> {
    if !require::privileged("oversized_ipip_packets_get_icmp_and_the_client_adapts") {
        return Ok(());
    }
    let inst = Instance::new("l4mtu");
    // h0 client, h1 lb, h2 backend.
    let topo = Topology::builder("l4mtu")
        .hosts(3)
        .ipv6(true)
        .disable_tx_offload(true)
        .build()?;
    let (client, lbh, backend) = (topo.host(0), topo.host(1), topo.host(2));
    for h in [client, lbh] {
        h.ns()
            .ip(&["link", "set", "dev", h.ifname(), "mtu", &MTU.to_string()])?;
    }
    let lb4 = lbh.ipv4().to_string();
    let lb6 = lbh.ipv6().context("ipv6")?.to_string();
    route_via(client.ns(), &format!("{VIP4}/32"), &lb4)?;
    route_via(client.ns(), &format!("{VIP6}/128"), &lb6)?;
    let bns = backend.ns();
    vip_on_lo(bns, VIP4.into())?;
    vip_on_lo(bns, VIP6.into())?;
    let listener = bns.run(|| TcpListener::bind(("::", PORT)))??;
    let _server = counter(listener)?;
    let procs = vec![
        lb_quiet(
            bns,
            &[
                "decap",
                "--interface",
                "eth0",
                "--vip",
                &VIP4.to_string(),
                "--vip",
                &VIP6.to_string(),
            ],
        )?,
        xdp_tx_peer(&topo, "p1", "198.19.4.254")?,
    ];
    std::thread::sleep(Duration::from_millis(500));

    let text = format!(
        r#"instance = "{}"
[xdp]
interface = "eth0"
[l4]
ipip_source_v4 = "198.18.254.0/24"
ipip_source_v6 = "2001:db8:254::/112"
{}{}"#,
        inst.name(),
        service_toml("ipip4", VIP4, PORT, "ipip", &[("b1", backend.ipv4())]),
        service_toml(
            "ipip6",
            VIP6,
            PORT,
            "ipip",
            &[("b1", backend.ipv6().context("ipv6")?)]
        ),
    );
    let d = Daemon::start(lbh.ns(), &text)?;
    let log_text = || d.log();

    for (vip, pmtu) in [
        (SocketAddr::new(IpAddr::V4(VIP4), PORT), MTU - 20),
        (SocketAddr::new(IpAddr::V6(VIP6), PORT), MTU - 40),
    ] {
        let got = client
            .ns()
            .run(move || upload(vip))?
            .with_context(|| format!("{vip}:\n{}", log_text()))?;
        assert_eq!(got, UPLOAD, "{vip}: the backend received every byte");
        let route = client
            .ns()
            .exec_stdout(&["ip", "route", "get", &vip.ip().to_string()])?;
        eprintln!("client: ip route get {}: {}", vip.ip(), route.trim());
        assert!(
            route.contains(&format!("mtu {pmtu}")),
            "{vip}: the client learnt path MTU {pmtu} from the ICMP answer: {route}"
        );
    }
    let (status, out, err) = lb(&["stats", "--config", &d.config_path().to_string_lossy()])?;
    assert!(status.success(), "lb stats: {err}");
    let sent: u64 = out
        .lines()
        .find_map(|l| l.strip_prefix("drop too_big_icmp_sent"))
        .context("lb stats prints too_big_icmp_sent")?
        .trim()
        .parse()?;
    eprintln!("lb stats: drop too_big_icmp_sent {sent}");
    assert!(sent >= 2, "one answer per family at least, got {sent}");
    drop(procs);
    Ok(())
}
