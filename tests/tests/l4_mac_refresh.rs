//! Issue 9, MAC refresh and debug logging, end to end in namespaces: a client, the load
//! balancer and one `dsr` backend (IPv4 and IPv6 VIPs) on a bridge. The backend's NIC is
//! "replaced" twice (`ip link set dev eth0 address ...`): once announcing itself
//! (gratuitous ARP and unsolicited NA, `arp_notify`/`ndisc_notify`), once silently with the
//! load balancer's neighbour entries flushed. Each time `lb run` follows the new MAC
//! (neighbour events -> re-resolution -> the backends map) and new connections to both
//! VIPs reach the backend again. The daemon runs with `l4.debug_log = true`, and its log
//! shows the XDP program's aya-log records for the new flows.

use anyhow::{Context, Result};
use lb_tests::{
    backend::Server,
    daemon::{Daemon, Instance},
    l4lab::{route_via, service_toml, vip_on_lo, xdp_tx_peer},
    netns::Topology,
    require,
};
use std::{
    io::{BufRead, BufReader, Write},
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream},
    time::Duration,
};

const VIP4: Ipv4Addr = Ipv4Addr::new(198, 19, 3, 100);
const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x103, 0, 0, 0, 0, 0x100);
const PORT: u16 = 80;
const IO_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the daemon may take to follow a MAC change (events, or the 10 s refresh).
const FOLLOW_TIMEOUT: Duration = Duration::from_secs(15);

/// Answers every connection with one line, its name; stops when dropped.
fn serve(l: TcpListener, name: &'static str) -> Result<Server> {
    let server = Server::new();
    server.accept(l, move |mut s| {
        let _ = s.write_all(format!("{name}\n").as_bytes());
    })?;
    Ok(server)
}

/// One new connection: the name the server behind `vip` answers with.
fn fetch(vip: SocketAddr) -> Result<String> {
    let s =
        TcpStream::connect_timeout(&vip, IO_TIMEOUT).with_context(|| format!("connect {vip}"))?;
    s.set_read_timeout(Some(IO_TIMEOUT))?;
    let mut line = String::new();
    BufReader::new(&s)
        .read_line(&mut line)
        .with_context(|| format!("reading from {vip}"))?;
    Ok(line.trim().to_string())
}

#[test]
fn backend_mac_change_is_followed() -> Result<()> {
    if !require::privileged("backend_mac_change_is_followed") {
        return Ok(());
    }
    let inst = Instance::new("l4mac");
    // h0 client, h1 lb, h2 backend.
    let topo = Topology::builder("l4mac")
        .hosts(3)
        .ipv6(true)
        .disable_tx_offload(true)
        .build()?;
    let (client, lbh, backend) = (topo.host(0), topo.host(1), topo.host(2));
    let lb4 = lbh.ipv4().to_string();
    let lb6 = lbh.ipv6().context("ipv6")?.to_string();
    route_via(client.ns(), &format!("{VIP4}/32"), &lb4)?;
    route_via(client.ns(), &format!("{VIP6}/128"), &lb6)?;
    let bns = backend.ns();
    vip_on_lo(bns, VIP4.into())?;
    vip_on_lo(bns, VIP6.into())?;
    // Dual-stack listener: IPv4 arrives as mapped addresses.
    let listener = bns.run(|| TcpListener::bind(("::", PORT)))??;
    let _server = serve(listener, "b1")?;
    let _peer = xdp_tx_peer(&topo, "p1", "198.19.3.254")?;
    std::thread::sleep(Duration::from_millis(500));

    let b4 = backend.ipv4();
    let b6 = backend.ipv6().context("ipv6")?;
    let text = format!(
        "instance = \"{}\"\n[xdp]\ninterface = \"eth0\"\n[l4]\ndebug_log = true\n{}{}",
        inst.name(),
        service_toml("dsr4", VIP4, PORT, "dsr", &[("b1", b4)]),
        service_toml("dsr6", VIP6, PORT, "dsr", &[("b1", b6)]),
    );
    let lb = Daemon::start(lbh.ns(), &text)?;

    let vips = [
        SocketAddr::new(IpAddr::V4(VIP4), PORT),
        SocketAddr::new(IpAddr::V6(VIP6), PORT),
    ];
    let fetch_all = |what: &str| -> Result<()> {
        for vip in vips {
            let got = client
                .ns()
                .run(move || fetch(vip))?
                .with_context(|| format!("{what}: {vip}\n{}", lb.log()))?;
            assert_eq!(got, "b1", "{what}: {vip} answered by the backend");
        }
        Ok(())
    };
    fetch_all("before any change")?;

    // aya-log: the XDP program's records reach the daemon's log (target xdp).
    lb.wait_log("xdp: new flow", 2, Duration::from_secs(5))?;
    let line = lb
        .log()
        .lines()
        .find(|l| l.contains("xdp: new flow") && l.contains(&VIP4.to_string()))
        .map(str::to_string)
        .context("an XDP log line for the IPv4 flow")?;
    eprintln!("XDP log: {line}");
    assert!(
        line.contains(&format!("{}:", client.ipv4())),
        "the record names the client: {line}"
    );

    // 1. A new NIC that announces itself: gratuitous ARP and unsolicited NA.
    bns.sysctl("net.ipv4.conf.eth0.arp_notify", "1")?;
    bns.sysctl("net.ipv6.conf.eth0.ndisc_notify", "1")?;
    bns.ip(&["link", "set", "dev", "eth0", "address", "02:00:00:00:be:01"])?;
    lb.wait_log("backend link-layer address changed", 2, FOLLOW_TIMEOUT)?;
    lb.wait_log(
        "L4 maps updated with new backend link-layer addresses",
        1,
        FOLLOW_TIMEOUT,
    )?;
    assert!(
        lb.log().contains("new=02:00:00:00:be:01"),
        "the new MAC is logged:\n{}",
        lb.log()
    );
    fetch_all("after an announced MAC change")?;

    // 2. A silent one; the load balancer's neighbour entries are flushed (as after the
    //    old entries failed): the daemon resolves the backends again.
    bns.sysctl("net.ipv4.conf.eth0.arp_notify", "0")?;
    bns.sysctl("net.ipv6.conf.eth0.ndisc_notify", "0")?;
    bns.ip(&["link", "set", "dev", "eth0", "address", "02:00:00:00:be:02"])?;
    lbh.ns().ip(&["neigh", "flush", "dev", "eth0"])?;
    lbh.ns().ip(&["-6", "neigh", "flush", "dev", "eth0"])?;
    lb.wait_log("backend link-layer address changed", 4, FOLLOW_TIMEOUT)?;
    assert!(
        lb.log().contains("new=02:00:00:00:be:02"),
        "the second MAC is logged:\n{}",
        lb.log()
    );
    fetch_all("after a silent MAC change")?;
    for l in lb
        .log()
        .lines()
        .filter(|l| l.contains("link-layer address changed"))
    {
        eprintln!("{l}");
    }
    Ok(())
}
