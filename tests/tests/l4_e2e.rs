//! Issue 9 acceptance 2 and 3, end to end in namespaces: a client, the load balancer and
//! three backends on one bridge (IPv4 and IPv6). The client fetches over TCP from a `dsr`
//! VIP and an `ipip` VIP (backends hold the VIPs on `lo`; `ipip` backends decapsulate
//! with `lb decap`); replies come straight from the backends (checked on the client's wire:
//! no frame from a VIP carries the load balancer's MAC); many short connections spread in
//! proportion to the weights and each lands where `maglev::backend_for_flow` predicts; and
//! a long-lived stream keeps its backend, with no reset, while a backend is added and
//! another removed through SIGHUP.

use anyhow::{bail, Context, Result};
use lb::{config, maglev};
use lb_tests::{
    backend::line_server,
    daemon::{Daemon, Instance},
    l4lab::{lb_quiet, route_via, vip_on_lo, xdp_tx_peer},
    netns::{Netns, Topology},
    require,
};
use std::{
    collections::HashMap,
    io::{BufRead, BufReader, Read, Write},
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream},
    path::Path,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

const VIP_DSR4: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 100);
const VIP_IPIP4: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 101);
const VIP_DSR6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x100, 0, 0, 0, 0, 0x100);
const VIP_IPIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x100, 0, 0, 0, 0, 0x101);
const PORT: u16 = 80;
const SHORT_CONNECTIONS: usize = 600;
const IO_TIMEOUT: Duration = Duration::from_secs(3);

/// One short connection: connect, send a line, read the backend's name. Returns (name,
/// client source address).
fn fetch(vip: SocketAddr) -> Result<(String, SocketAddr)> {
    let s =
        TcpStream::connect_timeout(&vip, IO_TIMEOUT).with_context(|| format!("connect {vip}"))?;
    s.set_read_timeout(Some(IO_TIMEOUT))?;
    let local = s.local_addr()?;
    (&s).write_all(b"hello\n")?;
    let mut line = String::new();
    BufReader::new(&s)
        .read_line(&mut line)
        .with_context(|| format!("reading from {vip}"))?;
    let name = line.trim().to_string();
    if name.is_empty() {
        bail!("empty answer from {vip}");
    }
    Ok((name, local))
}

/// (Ethernet source, IP source) of the frames a [`Sniffer`] saw.
type Seen = Arc<Mutex<Vec<([u8; 6], IpAddr)>>>;

/// Records (Ethernet source, IP source) of IPv4/IPv6 frames arriving at the namespace it
/// is created in, until dropped.
struct Sniffer {
    stop: Arc<AtomicBool>,
    seen: Seen,
}

impl Sniffer {
    fn start(ns: &Netns) -> Result<Sniffer> {
        let fd = ns.run(|| {
            // SAFETY: a raw packet socket; the fd is owned by the reader thread below.
            unsafe {
                libc::socket(
                    libc::AF_PACKET,
                    libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                    (libc::ETH_P_ALL as u16).to_be() as i32,
                )
            }
        })?;
        if fd < 0 {
            bail!("packet socket: {}", std::io::Error::last_os_error());
        }
        let tv = libc::timeval {
            tv_sec: 0,
            tv_usec: 100_000,
        };
        // SAFETY: valid fd and timeval.
        unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                &tv as *const _ as *const libc::c_void,
                std::mem::size_of::<libc::timeval>() as u32,
            );
        }
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (st, sn) = (Arc::clone(&stop), Arc::clone(&seen));
        std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !st.load(Ordering::Relaxed) {
                let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
                let mut len = std::mem::size_of::<libc::sockaddr_ll>() as u32;
                // SAFETY: buffer and address of the sizes given.
                let n = unsafe {
                    libc::recvfrom(
                        fd,
                        buf.as_mut_ptr() as *mut libc::c_void,
                        buf.len(),
                        0,
                        &mut from as *mut _ as *mut libc::sockaddr,
                        &mut len,
                    )
                };
                // Only frames coming in (not our own transmissions).
                if n < 34 || from.sll_pkttype == libc::PACKET_OUTGOING {
                    continue;
                }
                let f = &buf[..n as usize];
                let src: [u8; 6] = f[6..12].try_into().unwrap_or([0; 6]);
                let ip = match (f[12], f[13]) {
                    (0x08, 0x00) => IpAddr::from([f[26], f[27], f[28], f[29]]),
                    (0x86, 0xdd) if f.len() >= 54 => {
                        IpAddr::from(<[u8; 16]>::try_from(&f[22..38]).unwrap_or([0; 16]))
                    }
                    _ => continue,
                };
                sn.lock().unwrap_or_else(|e| e.into_inner()).push((src, ip));
            }
            // SAFETY: our fd.
            unsafe { libc::close(fd) };
        });
        Ok(Sniffer { stop, seen })
    }

    fn frames_from(&self, ip: IpAddr) -> Vec<[u8; 6]> {
        self.seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|(_, a)| *a == ip)
            .map(|(m, _)| *m)
            .collect()
    }
}

impl Drop for Sniffer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Rewrites the daemon's config file and sends SIGHUP; waits for the `n`th reload.
fn reload(lb: &mut Daemon, text: &str, n: usize) -> Result<()> {
    std::fs::write(lb.config_path(), text)?;
    lb.signal(libc::SIGHUP)?;
    lb.wait_log("config reloaded", n, Duration::from_secs(30))
        .map(drop)
}

struct Servers {
    name: &'static str,
    addr4: Ipv4Addr,
    addr6: Ipv6Addr,
    weight: u32,
}

fn config_text(instance: &str, servers: &[&Servers]) -> String {
    let mut s = format!(
        r#"instance = "{instance}"
[xdp]
interface = "eth0"
[l4]
conntrack_size = 65536
ipip_source_v4 = "198.18.254.0/24"
ipip_source_v6 = "2001:db8:254::/112"
"#
    );
    for (name, vip, mode, v6) in [
        ("dsr4", IpAddr::V4(VIP_DSR4), "dsr", false),
        ("ipip4", IpAddr::V4(VIP_IPIP4), "ipip", false),
        ("dsr6", IpAddr::V6(VIP_DSR6), "dsr", true),
        ("ipip6", IpAddr::V6(VIP_IPIP6), "ipip", true),
    ] {
        s.push_str(&format!(
            "\n[[service]]\nname = \"{name}\"\nvip = \"{vip}\"\nport = {PORT}\nmode = \"{mode}\"\n"
        ));
        for b in servers {
            let a: IpAddr = if v6 { b.addr6.into() } else { b.addr4.into() };
            s.push_str(&format!(
                "[[service.server]]\nname = \"{}\"\naddress = \"{a}\"\nweight = {}\n",
                b.name, b.weight
            ));
        }
    }
    s
}

/// The backend name userspace predicts for a new flow to `svc` from `client`.
fn predict(cfg: &config::Config, svc: &str, client: SocketAddr) -> String {
    let s = cfg
        .services
        .iter()
        .find(|s| s.name == svc)
        .expect("service");
    let mb: Vec<maglev::MaglevBackend> = s
        .backends
        .iter()
        .enumerate()
        .map(|(i, b)| {
            maglev::MaglevBackend::from_addr(i as u32, b.weight, SocketAddr::new(b.addr, 0))
        })
        .collect();
    let table = maglev::build_table(s.table_size, &mb).expect("table");
    let id = maglev::backend_for_flow(
        &table,
        &maglev::wire_addr(client.ip()),
        &maglev::wire_addr(s.vip.addr),
        client.port(),
        s.vip.port,
        6,
    );
    s.backends[id as usize].name.clone()
}

#[test]
fn l4_dsr_and_ipip_end_to_end() -> Result<()> {
    if !require::privileged("l4_dsr_and_ipip_end_to_end") {
        return Ok(());
    }
    let inst = Instance::new("l4e2e");
    // h0 client, h1 lb, h2..h5 backends (h5 joins later).
    let topo = Topology::builder("l4e")
        .hosts(6)
        .ipv6(true)
        .disable_tx_offload(true)
        .build()?;
    let client = topo.host(0);
    let lbh = topo.host(1);
    let lb4 = lbh.ipv4().to_string();
    let lb6 = lbh.ipv6().context("ipv6")?.to_string();
    route_via(client.ns(), "198.19.0.0/24", &lb4)?;
    route_via(client.ns(), "2001:db8:100::/64", &lb6)?;

    let specs: Vec<Servers> = (2..6)
        .map(|i| Servers {
            name: ["", "", "b1", "b2", "b3", "b4"][i],
            addr4: topo.host(i).ipv4(),
            addr6: topo.host(i).ipv6().unwrap_or(Ipv6Addr::UNSPECIFIED),
            weight: [0, 0, 1, 1, 2, 1][i] as u32,
        })
        .collect();
    let mut servers = Vec::new();
    let mut decaps = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        let ns = topo.host(i + 2).ns();
        for vip in [
            IpAddr::V4(VIP_DSR4),
            IpAddr::V4(VIP_IPIP4),
            IpAddr::V6(VIP_DSR6),
            IpAddr::V6(VIP_IPIP6),
        ] {
            vip_on_lo(ns, vip)?;
        }
        servers.push(line_server(ns, spec.name, PORT, true)?);
        decaps.push(lb_quiet(
            ns,
            &[
                "decap",
                "--interface",
                "eth0",
                "--vip",
                &VIP_IPIP4.to_string(),
                "--vip",
                &VIP_IPIP6.to_string(),
            ],
        )?);
    }
    decaps.push(xdp_tx_peer(&topo, "p1", "198.19.0.254")?);
    std::thread::sleep(Duration::from_millis(500));

    // Start with b1..b3 (weights 1, 1, 2); b4 joins later.
    let text = config_text(inst.name(), &[&specs[0], &specs[1], &specs[2]]);
    let cfg = config::parse(Path::new("e2e.toml"), &text)?;
    let mut lb = Daemon::start(lbh.ns(), &text)?;
    let lb_mac = lbh.mac()?;
    let backend_macs: Vec<[u8; 6]> = (2..6).map(|i| topo.host(i).mac()).collect::<Result<_>>()?;

    // Acceptance 2: short connections over each VIP; replies straight from backends.
    let sniffer = Sniffer::start(client.ns())?;
    for (svc, vip, n) in [
        (
            "dsr4",
            SocketAddr::new(VIP_DSR4.into(), PORT),
            SHORT_CONNECTIONS,
        ),
        (
            "ipip4",
            SocketAddr::new(VIP_IPIP4.into(), PORT),
            SHORT_CONNECTIONS,
        ),
        (
            "dsr6",
            SocketAddr::new(VIP_DSR6.into(), PORT),
            SHORT_CONNECTIONS / 4,
        ),
        (
            "ipip6",
            SocketAddr::new(VIP_IPIP6.into(), PORT),
            SHORT_CONNECTIONS / 4,
        ),
    ] {
        let results = client
            .ns()
            .run(|| (0..n).map(|_| fetch(vip)).collect::<Result<Vec<_>>>())?
            .with_context(|| format!("{svc}:\n{}", lb.log()))?;
        let mut counts: HashMap<String, usize> = HashMap::new();
        for (name, local) in &results {
            assert_eq!(
                *name,
                predict(&cfg, svc, *local),
                "{svc}: flow from {local} lands where userspace predicts"
            );
            *counts.entry(name.clone()).or_default() += 1;
        }
        let total_w: u32 = specs[..3].iter().map(|s| s.weight).sum();
        eprintln!("{svc}: {n} connections: {counts:?}");
        for s in &specs[..3] {
            let got = *counts.get(s.name).unwrap_or(&0) as f64 / n as f64;
            let want = f64::from(s.weight) / f64::from(total_w);
            assert!(got > 0.0, "{svc}: backend {} got no connection", s.name);
            if n >= SHORT_CONNECTIONS {
                assert!(
                    (got - want).abs() <= 0.10,
                    "{svc}: {} got {:.3} of flows, weight share {:.3} (±0.10)",
                    s.name,
                    got,
                    want
                );
            }
        }
        let vip_ip = vip.ip();
        let macs = sniffer.frames_from(vip_ip);
        assert!(
            !macs.is_empty(),
            "{svc}: the client's wire saw replies from {vip_ip}"
        );
        assert!(
            macs.iter().all(|m| *m != lb_mac),
            "{svc}: no reply frame comes from the load balancer"
        );
        assert!(
            macs.iter().all(|m| backend_macs.contains(m)),
            "{svc}: every reply frame comes from a backend"
        );
    }
    drop(sniffer);

    // Acceptance 3: a long-lived stream keeps its backend, with no reset, while b4 is added
    // and a backend that is not its own is removed.
    let vip = SocketAddr::new(VIP_DSR4.into(), PORT);
    let stream = client
        .ns()
        .run(|| TcpStream::connect_timeout(&vip, IO_TIMEOUT))??;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut ask = |what: &str| -> Result<String> {
        (&stream)
            .write_all(b"ping\n")
            .with_context(|| format!("write ({what})"))?;
        let mut line = String::new();
        let n = reader
            .read_line(&mut line)
            .with_context(|| format!("read ({what})"))?;
        if n == 0 {
            bail!("stream closed ({what})");
        }
        Ok(line.trim().to_string())
    };
    let owner = ask("before")?;
    let removed = specs[..3]
        .iter()
        .find(|s| s.name != owner)
        .context("another backend")?;
    let keep: Vec<&Servers> = specs.iter().filter(|s| s.name != removed.name).collect();
    reload(&mut lb, &config_text(inst.name(), &keep), 1)?;
    for i in 0..20 {
        assert_eq!(
            ask(&format!("after reload, ping {i}"))?,
            owner,
            "the stream keeps its backend"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // New flows now spread over the new set, b4 included, never the removed one.
    let text2 = config_text(inst.name(), &keep);
    let cfg2 = config::parse(Path::new("e2e.toml"), &text2)?;
    let after = client
        .ns()
        .run(|| (0..200).map(|_| fetch(vip)).collect::<Result<Vec<_>>>())??;
    for (name, local) in &after {
        assert_ne!(
            name, removed.name,
            "no new flow goes to the removed backend"
        );
        assert_eq!(*name, predict(&cfg2, "dsr4", *local));
    }
    assert!(
        after.iter().any(|(n, _)| n == "b4"),
        "the added backend gets new flows"
    );
    assert_eq!(ask("at the end")?, owner);
    let mut rest = Vec::new();
    let _ = (&stream).read(&mut rest);
    drop(stream);
    drop(servers);
    drop(decaps);
    Ok(())
}
