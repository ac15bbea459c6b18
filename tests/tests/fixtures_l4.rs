//! Issue 9 acceptance 1 and 4 (agreement): BPF_PROG_TEST_RUN packet fixtures for the L4
//! data plane. Input bytes built with etherparse, expected action, expected output bytes
//! checked field by field (outer headers and their checksum), inner packets byte-identical,
//! and one drop counter per malformed case. The object is loaded and its maps written
//! through `lb::dataplane` exactly as `lb run` does, without attaching.

use etherparse::PacketBuilder;
use lb::{
    config::{self, Config},
    dataplane::{decap::Decap, testrun, DataPlane, L2Addr, L2Map},
    maglev::{self, MaglevBackend},
};
use lb_common::stats::DropReason;
use lb_tests::{daemon::Instance, require};
use std::{
    net::{IpAddr, SocketAddr},
    path::Path,
};

const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;
const XDP_TX: u32 = 3;

const CLIENT_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0xc1];
const LB_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x1b];
const OUR_MAC: [u8; 6] = [2, 0, 0, 0, 0xaa, 0x01];

const CONFIG: &str = r#"
[xdp]
interface = "lo"
[l4]
conntrack_size = 4096
ipip_source_v4 = "198.18.255.0/24"
ipip_source_v6 = "2001:db8:ffff::/112"

[[service]]
name = "dsr4"
vip = "198.18.0.100"
port = 80
mode = "dsr"
table_size = 65537
[[service.server]]
name = "a"
address = "198.18.0.11"
[[service.server]]
name = "b"
address = "198.18.0.12"
weight = 2
[[service.server]]
name = "c"
address = "198.18.0.13"

[[service]]
name = "dsr4udp"
vip = "198.18.0.100"
port = 53
protocol = "udp"
mode = "dsr"
[[service.server]]
name = "a"
address = "198.18.0.11"

[[service]]
name = "ipip4"
vip = "198.18.0.101"
port = 80
mode = "ipip"
[[service.server]]
name = "a"
address = "198.18.0.21"
[[service.server]]
name = "b"
address = "198.18.0.22"

[[service]]
name = "ipip6"
vip = "2001:db8::101"
port = 80
mode = "ipip"
[[service.server]]
name = "a"
address = "2001:db8::21"
[[service.server]]
name = "b"
address = "2001:db8::22"

[[service]]
name = "dsr6"
vip = "2001:db8::100"
port = 443
mode = "dsr"
[[service.server]]
name = "a"
address = "2001:db8::11"
[[service.server]]
name = "b"
address = "2001:db8::12"

[[service]]
name = "nobackend"
vip = "198.18.0.103"
port = 80
mode = "dsr"
[[service.server]]
name = "unresolved"
address = "198.18.0.99"

[[service]]
name = "web"
vip = "198.18.0.102"
port = 80
"#;

/// A fake, distinct MAC per backend: 02:00:00:00:<third>:<last> of its address.
fn mac_of(ip: IpAddr) -> [u8; 6] {
    let o = maglev::wire_addr(ip);
    let (x, y) = if ip.is_ipv4() {
        (o[2], o[3])
    } else {
        (o[14], o[15])
    };
    [2, 0, 0, 0, x, y]
}

struct Fixture {
    _inst: Instance,
    cfg: Config,
    dp: DataPlane,
    /// Maglev tables built for predictions, per service (building one takes a while).
    tables: std::cell::RefCell<std::collections::HashMap<String, Vec<u32>>>,
}

fn config_with(inst: &Instance, body: &str) -> Config {
    config::parse(
        Path::new("fixtures_l4.toml"),
        &format!("instance = \"{}\"\n{body}", inst.name()),
    )
    .expect("fixture config is valid")
}

/// Every backend except 198.18.0.99 resolves.
fn l2_for(cfg: &Config) -> L2Map {
    let mut l2 = L2Map::new();
    for s in &cfg.services {
        for b in &s.backends {
            if b.addr != "198.18.0.99".parse::<IpAddr>().unwrap() {
                l2.insert(
                    b.addr,
                    L2Addr {
                        dst: mac_of(b.addr),
                        src: OUR_MAC,
                        mtu: 1500,
                    },
                );
            }
        }
    }
    l2
}

fn fixture(name: &str) -> Option<Fixture> {
    if !require::privileged(name) {
        return None;
    }
    let inst = Instance::new("l4fx");
    let cfg = config_with(&inst, CONFIG);
    let mut dp = DataPlane::load_with(&cfg.pin_dir(), cfg.l4.conntrack_size)
        .expect("loading the XDP object");
    dp.configure_l4(&cfg.l4).expect("settings");
    dp.sync(&cfg.services, &l2_for(&cfg))
        .expect("writing the L4 maps");
    Some(Fixture {
        _inst: inst,
        cfg,
        dp,
        tables: Default::default(),
    })
}

impl Fixture {
    fn run(&self, pkt: &[u8]) -> testrun::TestRun {
        testrun::run(self.dp.program_fd().expect("fd"), pkt, 1).expect("BPF_PROG_TEST_RUN")
    }

    fn service(&self, name: &str) -> &config::Service {
        self.cfg
            .services
            .iter()
            .find(|s| s.name == name)
            .expect("service in config")
    }

    /// The backend address userspace predicts for a new flow, from the same table build
    /// and flow hash the program uses.
    fn predict(&self, svc: &str, client: SocketAddr, proto: u8) -> IpAddr {
        let s = self.service(svc);
        let l2 = l2_for(&self.cfg);
        let mb: Vec<MaglevBackend> = s
            .backends
            .iter()
            .map(|b| {
                let w = if l2.contains_key(&b.addr) {
                    b.weight
                } else {
                    0
                };
                MaglevBackend::from_addr(
                    self.dp.backend_id(b.addr).expect("backend id"),
                    w,
                    SocketAddr::new(b.addr, 0),
                )
            })
            .collect();
        let table = self
            .tables
            .borrow_mut()
            .entry(svc.to_string())
            .or_insert_with(|| maglev::build_table(s.table_size, &mb).expect("table"))
            .clone();
        let id = maglev::backend_for_flow(
            &table,
            &maglev::wire_addr(client.ip()),
            &maglev::wire_addr(s.vip.addr),
            client.port(),
            s.vip.port,
            proto,
        );
        s.backends
            .iter()
            .find(|b| self.dp.backend_id(b.addr) == Some(id))
            .map(|b| b.addr)
            .expect("predicted backend exists")
    }

    fn drops(&self) -> Vec<u64> {
        self.dp.drop_stats().expect("drop counters")
    }

    fn vip_stats(&self, svc: &str) -> lb_common::stats::VipStats {
        let key = lb::dataplane::vip_key(self.service(svc));
        self.dp
            .vip_stats(self.dp.vip_id(&key).expect("vip id"))
            .expect("vip stats")
    }
}

fn build(b: etherparse::PacketBuilderStep<etherparse::TcpHeader>, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.size(payload.len()));
    b.write(&mut out, payload)
        .expect("building a fixture packet");
    out
}

fn tcp4(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16, syn: bool) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(CLIENT_MAC, LB_MAC)
        .ipv4(src, dst, 64)
        .tcp(sport, dport, 1000, 64240);
    let b = if syn { b.syn() } else { b.ack(1) };
    build(b, if syn { &[] } else { b"GET / HTTP/1.0\r\n\r\n" })
}

fn tcp6(src: [u8; 16], sport: u16, dst: [u8; 16], dport: u16) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(CLIENT_MAC, LB_MAC)
        .ipv6(src, dst, 64)
        .tcp(sport, dport, 1000, 64240)
        .syn();
    build(b, &[])
}

fn udp4(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(CLIENT_MAC, LB_MAC)
        .ipv4(src, dst, 64)
        .udp(sport, dport);
    let payload = b"query";
    let mut out = Vec::with_capacity(b.size(payload.len()));
    b.write(&mut out, payload)
        .expect("building a fixture packet");
    out
}

fn v6(s: &str) -> [u8; 16] {
    s.parse::<std::net::Ipv6Addr>().unwrap().octets()
}

fn sa(ip: [u8; 4], port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::from(ip), port)
}

/// Checks a `dsr` output: MACs rewritten to (backend, ours), everything after the MACs
/// byte-identical. Returns the backend address the MAC names.
fn check_dsr(input: &[u8], out: &[u8], candidates: &[IpAddr]) -> IpAddr {
    assert_eq!(out.len(), input.len(), "dsr does not change the length");
    assert_eq!(
        &out[6..12],
        &OUR_MAC,
        "source MAC is the load balancer's own"
    );
    assert_eq!(
        &out[12..],
        &input[12..],
        "dsr leaves the IP packet byte for byte"
    );
    *candidates
        .iter()
        .find(|a| out[0..6] == mac_of(**a))
        .unwrap_or_else(|| panic!("destination MAC {:02x?} is no backend's", &out[0..6]))
}

/// One's-complement sum of big-endian 16-bit words.
fn ones_sum(b: &[u8]) -> u16 {
    let mut s: u32 = b
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

#[test]
fn syn_then_established_dsr_v4() {
    let Some(f) = fixture("syn_then_established_dsr_v4") else {
        return;
    };
    let backends: Vec<IpAddr> = f.service("dsr4").backends.iter().map(|b| b.addr).collect();
    let syn = tcp4([198, 18, 1, 7], 40001, [198, 18, 0, 100], 80, true);
    let r = f.run(&syn);
    assert_eq!(r.action, XDP_TX);
    let got = check_dsr(&syn, &r.output, &backends);
    assert_eq!(
        got,
        f.predict("dsr4", sa([198, 18, 1, 7], 40001), 6),
        "XDP and userspace agree"
    );
    let s = f.vip_stats("dsr4");
    assert_eq!(
        (s.packets, s.bytes, s.new_flows, s.ct_hits),
        (1, syn.len() as u64, 1, 0)
    );
    let bs = f.dp.backend_stats(f.dp.backend_id(got).unwrap()).unwrap();
    assert_eq!((bs.packets, bs.new_flows), (1, 1));

    let est = tcp4([198, 18, 1, 7], 40001, [198, 18, 0, 100], 80, false);
    let r = f.run(&est);
    assert_eq!(r.action, XDP_TX);
    assert_eq!(
        check_dsr(&est, &r.output, &backends),
        got,
        "established packet keeps its backend"
    );
    let s = f.vip_stats("dsr4");
    assert_eq!(
        (s.packets, s.new_flows, s.ct_hits),
        (2, 1, 1),
        "second packet is a conntrack hit"
    );
    assert!(f.drops().iter().all(|&d| d == 0));
}

#[test]
fn udp_and_ipv6_dsr() {
    let Some(f) = fixture("udp_and_ipv6_dsr") else {
        return;
    };
    let pkt = udp4([198, 18, 1, 8], 5353, [198, 18, 0, 100], 53);
    let r = f.run(&pkt);
    assert_eq!(r.action, XDP_TX);
    assert_eq!(
        check_dsr(&pkt, &r.output, &["198.18.0.11".parse().unwrap()]),
        "198.18.0.11".parse::<IpAddr>().unwrap()
    );
    assert_eq!(f.vip_stats("dsr4udp").new_flows, 1);

    let backends: Vec<IpAddr> = f.service("dsr6").backends.iter().map(|b| b.addr).collect();
    let pkt = tcp6(v6("2001:db8:1::7"), 40002, v6("2001:db8::100"), 443);
    let r = f.run(&pkt);
    assert_eq!(r.action, XDP_TX);
    let got = check_dsr(&pkt, &r.output, &backends);
    let client = SocketAddr::new("2001:db8:1::7".parse().unwrap(), 40002);
    assert_eq!(got, f.predict("dsr6", client, 6));
}

#[test]
fn ipip_v4_outer_header_field_by_field() {
    let Some(f) = fixture("ipip_v4_outer_header_field_by_field") else {
        return;
    };
    let mut pkt = tcp4([198, 18, 1, 9], 40003, [198, 18, 0, 101], 80, false);
    pkt[15] = 0x28; // inner TOS, copied to the outer header
                    // Fix the inner IPv4 checksum after changing TOS.
    pkt[24] = 0;
    pkt[25] = 0;
    let c = !ones_sum(&pkt[14..34]);
    pkt[24..26].copy_from_slice(&c.to_be_bytes());
    let r = f.run(&pkt);
    assert_eq!(r.action, XDP_TX);
    let o = &r.output;
    assert_eq!(o.len(), pkt.len() + 20, "one outer IPv4 header added");
    let want = f.predict("ipip4", sa([198, 18, 1, 9], 40003), 6);
    assert_eq!(
        &o[0..6],
        &mac_of(want),
        "Ethernet destination: the backend's next hop"
    );
    assert_eq!(&o[6..12], &OUR_MAC, "Ethernet source: ours");
    assert_eq!(&o[12..14], &[0x08, 0x00], "EtherType IPv4");
    let ip = &o[14..34];
    assert_eq!(ip[0], 0x45, "version 4, IHL 5");
    assert_eq!(ip[1], 0x28, "TOS copied from the inner header");
    assert_eq!(
        u16::from_be_bytes([ip[2], ip[3]]) as usize,
        pkt.len() - 14 + 20,
        "total length"
    );
    assert_eq!(&ip[4..8], &[0, 0, 0, 0], "id 0, no fragmentation flags");
    assert_eq!(ip[8], 64, "TTL");
    assert_eq!(ip[9], 4, "protocol IPIP");
    assert_eq!(ones_sum(ip), 0xffff, "outer header checksum verifies");
    let mut zeroed = ip.to_vec();
    zeroed[10] = 0;
    zeroed[11] = 0;
    assert_eq!(
        u16::from_be_bytes([ip[10], ip[11]]),
        !ones_sum(&zeroed),
        "checksum field"
    );
    assert_eq!(
        &ip[12..15],
        &[198, 18, 255],
        "outer source inside l4.ipip_source_v4"
    );
    let hash = lb_common::flow_hash::flow_hash(
        &maglev::wire_addr("198.18.1.9".parse().unwrap()),
        &maglev::wire_addr("198.18.0.101".parse().unwrap()),
        40003,
        80,
        6,
    );
    assert_eq!(
        ip[15],
        (hash & 0xff) as u8,
        "outer source host bits from the flow hash"
    );
    assert_eq!(
        IpAddr::from([ip[16], ip[17], ip[18], ip[19]]),
        want,
        "outer destination: backend"
    );
    assert_eq!(&o[34..], &pkt[14..], "inner packet byte for byte");

    // The backend's decap program restores the client's packet.
    let d = Decap::load(&["198.18.0.101".parse().unwrap()]).expect("decap program");
    let back = testrun::run(d.program_fd().unwrap(), o, 1).expect("decap run");
    assert_eq!(back.action, XDP_PASS);
    assert_eq!(&back.output[0..12], &o[0..12], "decap keeps the MACs");
    assert_eq!(
        &back.output[12..],
        &pkt[12..],
        "decap yields the original IP packet"
    );
    // Not for one of its VIPs: untouched.
    let other = Decap::load(&["198.18.0.200".parse().unwrap()]).expect("decap program");
    let same = testrun::run(other.program_fd().unwrap(), o, 1).expect("decap run");
    assert_eq!((same.action, &same.output), (XDP_PASS, o));
}

#[test]
fn ipip_v6_outer_header_field_by_field() {
    let Some(f) = fixture("ipip_v6_outer_header_field_by_field") else {
        return;
    };
    let pkt = tcp6(v6("2001:db8:1::9"), 40004, v6("2001:db8::101"), 80);
    let r = f.run(&pkt);
    assert_eq!(r.action, XDP_TX);
    let o = &r.output;
    assert_eq!(o.len(), pkt.len() + 40);
    let client = SocketAddr::new("2001:db8:1::9".parse().unwrap(), 40004);
    let want = f.predict("ipip6", client, 6);
    assert_eq!(&o[0..6], &mac_of(want));
    assert_eq!(&o[6..12], &OUR_MAC);
    assert_eq!(&o[12..14], &[0x86, 0xdd]);
    let ip = &o[14..54];
    let hash =
        lb_common::flow_hash::flow_hash(&v6("2001:db8:1::9"), &v6("2001:db8::101"), 40004, 80, 6);
    let vtcfl = u32::from_be_bytes([ip[0], ip[1], ip[2], ip[3]]);
    assert_eq!(vtcfl >> 28, 6, "version 6");
    assert_eq!((vtcfl >> 20) & 0xff, 0, "traffic class copied (0)");
    assert_eq!(
        vtcfl & 0xfffff,
        hash & 0xfffff,
        "flow label from the flow hash"
    );
    assert_eq!(
        u16::from_be_bytes([ip[4], ip[5]]) as usize,
        pkt.len() - 14,
        "payload length = inner packet"
    );
    assert_eq!(ip[6], 41, "next header IPv6");
    assert_eq!(ip[7], 64, "hop limit");
    let src: [u8; 16] = ip[8..24].try_into().unwrap();
    assert_eq!(
        &src[..14],
        &v6("2001:db8:ffff::")[..14],
        "outer source inside the /112"
    );
    assert_eq!(
        u16::from_be_bytes([src[14], src[15]]),
        (hash & 0xffff) as u16,
        "host bits from the hash"
    );
    let dst: [u8; 16] = ip[24..40].try_into().unwrap();
    assert_eq!(IpAddr::from(dst), want, "outer destination: backend");
    assert_eq!(&o[54..], &pkt[14..], "inner packet byte for byte");

    let d = Decap::load(&["2001:db8::101".parse().unwrap()]).expect("decap program");
    let back = testrun::run(d.program_fd().unwrap(), o, 1).expect("decap run");
    assert_eq!(back.action, XDP_PASS);
    assert_eq!(&back.output[12..], &pkt[12..]);
}

#[test]
fn malformed_packets_to_a_vip_are_dropped_and_counted() {
    let Some(f) = fixture("malformed_packets_to_a_vip_are_dropped_and_counted") else {
        return;
    };
    let good = tcp4([198, 18, 1, 10], 40005, [198, 18, 0, 100], 80, true);
    let fix_csum = |p: &mut Vec<u8>, ihl: usize| {
        p[24] = 0;
        p[25] = 0;
        let c = !ones_sum(&p[14..14 + ihl]);
        p[24..26].copy_from_slice(&c.to_be_bytes());
    };
    let mut cases: Vec<(&str, u32, Vec<u8>)> = Vec::new();
    // IP total length beyond the frame.
    let mut p = good.clone();
    p[16..18].copy_from_slice(&((good.len() - 14 + 100) as u16).to_be_bytes());
    fix_csum(&mut p, 20);
    cases.push(("truncated (length)", DropReason::TRUNCATED, p));
    // Frame cut inside the TCP ports.
    let mut p = good[..14 + 20 + 2].to_vec();
    p[16..18].copy_from_slice(&22u16.to_be_bytes());
    fix_csum(&mut p, 20);
    cases.push(("truncated (ports)", DropReason::TRUNCATED, p));
    let mut p = good.clone();
    p[14] = 0x44;
    cases.push(("bad ihl", DropReason::BAD_IHL, p));
    // IHL 6: four bytes of options (NOPs + EOL) before TCP.
    let mut p = good[..34].to_vec();
    p.extend_from_slice(&[1, 1, 1, 0]);
    p.extend_from_slice(&good[34..]);
    p[14] = 0x46;
    let len = (p.len() - 14) as u16;
    p[16..18].copy_from_slice(&len.to_be_bytes());
    fix_csum(&mut p, 24);
    cases.push(("ip options", DropReason::IP_OPTIONS, p));
    let mut p = good.clone();
    p[20] |= 0x20; // MF
    fix_csum(&mut p, 20);
    cases.push(("fragment (MF)", DropReason::FRAGMENT, p));
    let mut p = good.clone();
    p[21] = 8; // offset 64 bytes
    fix_csum(&mut p, 20);
    cases.push(("fragment (offset)", DropReason::FRAGMENT, p));
    let mut p = tcp6(v6("2001:db8:1::10"), 40006, v6("2001:db8::100"), 443);
    p[20] = 0; // next header: hop-by-hop options
    cases.push(("ipv6 extension header", DropReason::IPV6_EXT_HDR, p));
    cases.push((
        "no service on port",
        DropReason::NO_SERVICE,
        tcp4([198, 18, 1, 10], 40005, [198, 18, 0, 100], 81, true),
    ));
    cases.push((
        "no backend",
        DropReason::NO_BACKEND,
        tcp4([198, 18, 1, 10], 40005, [198, 18, 0, 103], 80, true),
    ));

    for (what, reason, pkt) in cases {
        let before = f.drops();
        let r = f.run(&pkt);
        assert_eq!(r.action, XDP_DROP, "{what}: dropped");
        let after = f.drops();
        for i in 0..before.len() {
            let want = before[i] + u64::from(i as u32 == reason);
            assert_eq!(
                after[i],
                want,
                "{what}: counter {} moved as expected",
                DropReason::NAMES[i]
            );
        }
    }
    let s = f.vip_stats("dsr4");
    assert_eq!(s.new_flows, 0, "no malformed packet reached a backend");
}

#[test]
fn non_vip_and_icmp_untouched() {
    let Some(f) = fixture("non_vip_and_icmp_untouched") else {
        return;
    };
    let before = (f.drops(), f.vip_stats("dsr4"));
    for pkt in [
        tcp4([198, 18, 1, 11], 40007, [198, 18, 0, 1], 80, true),
        udp4([198, 18, 1, 11], 40007, [198, 18, 0, 1], 53),
        tcp6(v6("2001:db8:1::11"), 40008, v6("2001:db8::1"), 443),
    ] {
        let r = f.run(&pkt);
        assert_eq!(r.action, XDP_PASS);
        assert_eq!(r.output, pkt, "non-VIP packet untouched");
    }
    let b = PacketBuilder::ethernet2(CLIENT_MAC, LB_MAC)
        .ipv4([198, 18, 1, 11], [198, 18, 0, 100], 64)
        .icmpv4_echo_request(1, 1);
    let mut ping = Vec::new();
    b.write(&mut ping, b"hi").unwrap();
    let r = f.run(&ping);
    assert_eq!(
        (r.action, &r.output),
        (XDP_PASS, &ping),
        "ICMP to a VIP address goes to the stack"
    );
    let pass = tcp4([198, 18, 1, 11], 40009, [198, 18, 0, 102], 80, true);
    let r = f.run(&pass);
    assert_eq!(
        (r.action, &r.output),
        (XDP_PASS, &pass),
        "mode pass unchanged"
    );
    assert_eq!((f.drops(), f.vip_stats("dsr4")), before, "no counter moved");
}

/// Issue 9 acceptance 4's other half: for many 5-tuples, the backend the XDP program
/// picks is the one `maglev::backend_for_flow` predicts (IPv4 and IPv6).
#[test]
fn xdp_and_userspace_agree_on_many_flows() {
    let Some(f) = fixture("xdp_and_userspace_agree_on_many_flows") else {
        return;
    };
    let b4: Vec<IpAddr> = f.service("dsr4").backends.iter().map(|b| b.addr).collect();
    let b6: Vec<IpAddr> = f.service("dsr6").backends.iter().map(|b| b.addr).collect();
    let mut seen = std::collections::HashMap::new();
    for i in 0..3000u32 {
        let src = [198, 18, 2 + (i % 7) as u8, (i * 37 % 251) as u8];
        let sport = 1024 + (i * 7919 % 60000) as u16;
        let pkt = tcp4(src, sport, [198, 18, 0, 100], 80, true);
        let r = f.run(&pkt);
        assert_eq!(r.action, XDP_TX);
        let got = check_dsr(&pkt, &r.output, &b4);
        assert_eq!(got, f.predict("dsr4", sa(src, sport), 6), "flow {i}");
        *seen.entry(got).or_insert(0u32) += 1;
    }
    assert_eq!(seen.len(), 3, "all backends get flows: {seen:?}");
    for i in 0..1000u32 {
        let src = format!("2001:db8:2::{:x}", i * 13 + 1);
        let pkt = tcp6(v6(&src), 2000 + i as u16, v6("2001:db8::100"), 443);
        let r = f.run(&pkt);
        assert_eq!(r.action, XDP_TX);
        let got = check_dsr(&pkt, &r.output, &b6);
        let client = SocketAddr::new(src.parse().unwrap(), 2000 + i as u16);
        assert_eq!(got, f.predict("dsr6", client, 6), "v6 flow {i}");
    }
}

/// Acceptance 3 at the map level: adding a backend and removing another keeps established
/// flows on their backends; flows of the removed backend are re-picked.
#[test]
fn conntrack_survives_table_changes() {
    let Some(mut f) = fixture("conntrack_survives_table_changes") else {
        return;
    };
    let all: Vec<IpAddr> = ["198.18.0.11", "198.18.0.12", "198.18.0.13", "198.18.0.14"]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
    // 300 flows established.
    let flows: Vec<([u8; 4], u16)> = (0..300u32)
        .map(|i| ([198, 18, 3, (i % 250) as u8], 30000 + i as u16))
        .collect();
    let mut owner = Vec::new();
    for &(src, sport) in &flows {
        let r = f.run(&tcp4(src, sport, [198, 18, 0, 100], 80, true));
        owner.push(check_dsr(
            &tcp4(src, sport, [198, 18, 0, 100], 80, true),
            &r.output,
            &all,
        ));
    }
    // Add .14, remove .13.
    let changed = CONFIG.replace(
        "[[service.server]]\nname = \"c\"\naddress = \"198.18.0.13\"",
        "[[service.server]]\nname = \"d\"\naddress = \"198.18.0.14\"",
    );
    assert_ne!(changed, CONFIG);
    let cfg2 = config_with(&f._inst, &changed);
    f.dp.sync(&cfg2.services, &l2_for(&cfg2))
        .expect("sync after change");
    f.cfg = cfg2;
    f.tables.borrow_mut().clear();
    let removed: IpAddr = "198.18.0.13".parse().unwrap();
    let mut moved_new = 0;
    for (i, &(src, sport)) in flows.iter().enumerate() {
        let pkt = tcp4(src, sport, [198, 18, 0, 100], 80, false);
        let r = f.run(&pkt);
        assert_eq!(r.action, XDP_TX);
        let now = check_dsr(&pkt, &r.output, &all);
        if owner[i] == removed {
            assert_ne!(now, removed, "flow {i} of the removed backend re-picked");
            assert_eq!(
                now,
                f.predict("dsr4", sa(src, sport), 6),
                "re-pick follows the new table"
            );
        } else {
            assert_eq!(now, owner[i], "established flow {i} keeps its backend");
        }
        moved_new += usize::from(now == "198.18.0.14".parse::<IpAddr>().unwrap());
    }
    assert!(
        owner.contains(&removed),
        "some flows were on the removed backend"
    );
    assert!(
        moved_new > 0,
        "the added backend got the re-picked flows' share"
    );
    // A SYN opens a new connection: it follows the new table without consulting the entry
    // its 5-tuple had (Katran's rule: one conntrack lookup less per connection), and the
    // entry is replaced by the new pick.
    let mut reopened = 0;
    for (i, &(src, sport)) in flows.iter().enumerate() {
        let want = f.predict("dsr4", sa(src, sport), 6);
        if owner[i] == removed || want == owner[i] {
            continue;
        }
        let syn = tcp4(src, sport, [198, 18, 0, 100], 80, true);
        let r = f.run(&syn);
        assert_eq!(
            check_dsr(&syn, &r.output, &all),
            want,
            "a new SYN of flow {i}'s 5-tuple follows the new table"
        );
        let ack = tcp4(src, sport, [198, 18, 0, 100], 80, false);
        let r = f.run(&ack);
        assert_eq!(
            check_dsr(&ack, &r.output, &all),
            want,
            "flow {i}'s entry now holds the SYN's pick"
        );
        reopened += 1;
    }
    assert!(
        reopened > 0,
        "some kept flows' 5-tuples map elsewhere in the new table"
    );
}

/// Draining (weight 0): established flows stay on the backend, new flows never reach it.
#[test]
fn draining_backend_keeps_established_flows_only() {
    let Some(mut f) = fixture("draining_backend_keeps_established_flows_only") else {
        return;
    };
    let all: Vec<IpAddr> = f.service("dsr4").backends.iter().map(|b| b.addr).collect();
    let drained: IpAddr = "198.18.0.12".parse().unwrap();
    let flows: Vec<([u8; 4], u16)> = (0..200u32)
        .map(|i| ([198, 18, 4, (i % 250) as u8], 20000 + i as u16))
        .collect();
    let mut owner = Vec::new();
    for &(src, sport) in &flows {
        let pkt = tcp4(src, sport, [198, 18, 0, 100], 80, true);
        let r = f.run(&pkt);
        owner.push(check_dsr(&pkt, &r.output, &all));
    }
    assert!(
        owner.contains(&drained),
        "some flows on the backend to drain"
    );
    let changed = CONFIG.replace("weight = 2", "weight = 0");
    assert_ne!(changed, CONFIG);
    let cfg2 = config_with(&f._inst, &changed);
    f.dp.sync(&cfg2.services, &l2_for(&cfg2))
        .expect("sync with a draining backend");
    f.cfg = cfg2;
    f.tables.borrow_mut().clear();
    for (i, &(src, sport)) in flows.iter().enumerate() {
        let pkt = tcp4(src, sport, [198, 18, 0, 100], 80, false);
        let r = f.run(&pkt);
        assert_eq!(r.action, XDP_TX);
        assert_eq!(
            check_dsr(&pkt, &r.output, &all),
            owner[i],
            "established flow {i} stays"
        );
    }
    for i in 0..300u32 {
        let src = [198, 18, 5, (i % 250) as u8];
        let pkt = tcp4(src, 40000 + i as u16, [198, 18, 0, 100], 80, true);
        let r = f.run(&pkt);
        assert_ne!(
            check_dsr(&pkt, &r.output, &all),
            drained,
            "new flow {i} avoids the draining backend"
        );
    }
}

/// A TCP ACK with `payload` bytes of data, IPv4 or IPv6 per the addresses.
fn tcp_sized(src: IpAddr, sport: u16, dst: IpAddr, dport: u16, payload: usize) -> Vec<u8> {
    let data: Vec<u8> = (0..payload).map(|i| (i % 251) as u8).collect();
    let eth = PacketBuilder::ethernet2(CLIENT_MAC, LB_MAC);
    let b = match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => eth.ipv4(s.octets(), d.octets(), 64),
        (IpAddr::V6(s), IpAddr::V6(d)) => eth.ipv6(s.octets(), d.octets(), 64),
        _ => panic!("mixed families"),
    };
    build(b.tcp(sport, dport, 1000, 64240).ack(1), &data)
}

/// The ICMPv6 checksum check: one's-complement sum over the pseudo-header (addresses,
/// upper-layer length, next header 58) and the message.
fn icmpv6_sum(ip6: &[u8], msg: &[u8]) -> u16 {
    let mut pseudo = Vec::new();
    pseudo.extend_from_slice(&ip6[8..40]);
    pseudo.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    pseudo.extend_from_slice(&[0, 0, 0, 58]);
    pseudo.extend_from_slice(msg);
    ones_sum(&pseudo)
}

#[test]
fn ipip_too_big_v4_answers_icmp_frag_needed() {
    let Some(f) = fixture("ipip_too_big_v4_answers_icmp_frag_needed") else {
        return;
    };
    // The interface MTU (1500, from the neighbour data) leaves 1480 bytes for the inner
    // packet: tot_len 1480 is encapsulated, 1481 answered.
    let client: IpAddr = "198.18.1.30".parse().unwrap();
    let vip: IpAddr = "198.18.0.101".parse().unwrap();
    let fits = tcp_sized(client, 40100, vip, 80, 1480 - 40);
    let r = f.run(&fits);
    assert_eq!(r.action, XDP_TX);
    assert_eq!(r.output.len(), fits.len() + 20, "1480 bytes: encapsulated");
    assert_eq!(r.output[14 + 9], 4, "outer protocol IPIP");

    let big = tcp_sized(client, 40101, vip, 80, 1481 - 40);
    let drops_before = f.drops();
    let flows_before = f.vip_stats("ipip4").new_flows;
    let r = f.run(&big);
    assert_eq!(r.action, XDP_TX, "answered back out of the interface");
    let o = &r.output;
    assert_answer_frame(o, 14 + 20 + 8 + 20 + 64, [0x08, 0x00], "IPv4");
    let ip = &o[14..34];
    assert_eq!(ip[0], 0x45, "version 4, IHL 5");
    assert_eq!(ip[1], 0, "TOS");
    assert_eq!(
        u16::from_be_bytes([ip[2], ip[3]]),
        20 + 8 + 84,
        "total length"
    );
    assert_eq!(&ip[4..8], &[0, 0, 0, 0], "id 0, no fragmentation flags");
    assert_eq!(ip[8], 64, "TTL");
    assert_eq!(ip[9], 1, "protocol ICMP");
    assert_eq!(ones_sum(ip), 0xffff, "IP header checksum verifies");
    assert_eq!(&ip[12..16], &[198, 18, 0, 101], "source: the VIP");
    assert_eq!(&ip[16..20], &[198, 18, 1, 30], "destination: the client");
    let icmp = &o[34..];
    assert_eq!(
        (icmp[0], icmp[1]),
        (3, 4),
        "destination unreachable, fragmentation needed"
    );
    assert_eq!(ones_sum(icmp), 0xffff, "ICMP checksum verifies");
    assert_checksum_field(icmp, ones_sum, "ICMP");
    assert_eq!(&icmp[4..6], &[0, 0], "unused");
    assert_eq!(u16::from_be_bytes([icmp[6], icmp[7]]), 1480, "next-hop MTU");
    assert_eq!(
        &icmp[8..],
        &big[14..14 + 84],
        "quote: the client's header and 64 bytes"
    );

    let drops = f.drops();
    for i in 0..drops.len() {
        let want = drops_before[i] + u64::from(i as u32 == DropReason::TOO_BIG);
        assert_eq!(drops[i], want, "counter {}", DropReason::NAMES[i]);
    }
    assert_eq!(
        f.vip_stats("ipip4").new_flows,
        flows_before,
        "a too-big packet creates no flow"
    );
}

/// An ICMP answer's frame: `len` bytes (headers and the quote), sent back to the client's
/// MAC from the address it was sent to, with the `family`'s EtherType.
fn assert_answer_frame(o: &[u8], len: usize, ethertype: [u8; 2], family: &str) {
    assert_eq!(o.len(), len, "headers + quote of header and 64 bytes");
    assert_eq!(
        &o[0..6],
        &CLIENT_MAC,
        "Ethernet destination: where it came from"
    );
    assert_eq!(
        &o[6..12],
        &LB_MAC,
        "Ethernet source: the address it was sent to"
    );
    assert_eq!(&o[12..14], &ethertype, "EtherType {family}");
}

/// The checksum field (bytes 2..4) of an ICMP message is the complement of `sum` over the
/// message with the field zeroed.
fn assert_checksum_field(icmp: &[u8], sum: impl Fn(&[u8]) -> u16, what: &str) {
    let mut zeroed = icmp.to_vec();
    zeroed[2] = 0;
    zeroed[3] = 0;
    assert_eq!(
        u16::from_be_bytes([icmp[2], icmp[3]]),
        !sum(&zeroed),
        "{what} checksum field"
    );
}

#[test]
fn ipip_too_big_v6_answers_packet_too_big() {
    let Some(f) = fixture("ipip_too_big_v6_answers_packet_too_big") else {
        return;
    };
    // MTU 1500 minus two IPv6 headers: payload_len 1420 fits, 1421 does not.
    let client: IpAddr = "2001:db8:1::30".parse().unwrap();
    let vip: IpAddr = "2001:db8::101".parse().unwrap();
    let fits = tcp_sized(client, 40200, vip, 80, 1420 - 20);
    let r = f.run(&fits);
    assert_eq!(r.action, XDP_TX);
    assert_eq!(
        r.output.len(),
        fits.len() + 40,
        "payload 1420: encapsulated"
    );

    let big = tcp_sized(client, 40201, vip, 80, 1421 - 20);
    let drops_before = f.drops();
    let r = f.run(&big);
    assert_eq!(r.action, XDP_TX, "answered back out of the interface");
    let o = &r.output;
    assert_answer_frame(o, 14 + 40 + 8 + 40 + 64, [0x86, 0xdd], "IPv6");
    let ip = &o[14..54];
    assert_eq!(
        &ip[0..4],
        &[0x60, 0, 0, 0],
        "version 6, class 0, flow label 0"
    );
    assert_eq!(
        u16::from_be_bytes([ip[4], ip[5]]),
        8 + 104,
        "payload length"
    );
    assert_eq!((ip[6], ip[7]), (58, 64), "next header ICMPv6, hop limit 64");
    assert_eq!(&ip[8..24], &v6("2001:db8::101"), "source: the VIP");
    assert_eq!(
        &ip[24..40],
        &v6("2001:db8:1::30"),
        "destination: the client"
    );
    let icmp = &o[54..];
    assert_eq!((icmp[0], icmp[1]), (2, 0), "packet too big");
    assert_eq!(icmpv6_sum(ip, icmp), 0xffff, "ICMPv6 checksum verifies");
    assert_checksum_field(icmp, |m| icmpv6_sum(ip, m), "ICMPv6");
    assert_eq!(
        u32::from_be_bytes([icmp[4], icmp[5], icmp[6], icmp[7]]),
        1460,
        "MTU: what is left for the client's packet"
    );
    assert_eq!(
        &icmp[8..],
        &big[14..14 + 104],
        "quote: the client's header and 64 bytes"
    );
    let drops = f.drops();
    assert_eq!(
        drops[DropReason::TOO_BIG as usize],
        drops_before[DropReason::TOO_BIG as usize] + 1,
        "counted"
    );
}

/// The VIP filter can say yes for an address that is no VIP (two addresses share a bit):
/// such packets still pass untouched, malformed ones included, and move no counter.
#[test]
fn filter_collisions_pass_untouched() {
    let Some(f) = fixture("filter_collisions_pass_untouched") else {
        return;
    };
    let vip_bit = lb_common::filter::bit_v4([198, 18, 0, 100]);
    let twin = (0..=u16::MAX)
        .map(|i| [198, 19, (i >> 8) as u8, i as u8])
        .find(|a| lb_common::filter::bit_v4(*a) == vip_bit)
        .expect("an address in 198.19.0.0/16 sharing the VIP's filter bit");
    eprintln!("{twin:?} shares filter bit {vip_bit} with 198.18.0.100");
    let before = (f.drops(), f.vip_stats("dsr4"));
    let ok = tcp4([198, 18, 1, 12], 40300, twin, 80, true);
    let mut frag = tcp4([198, 18, 1, 12], 40301, twin, 80, true);
    frag[20] = 0x20; // more fragments: malformed for a VIP
    for (what, pkt) in [("TCP", ok), ("fragment", frag)] {
        let r = f.run(&pkt);
        assert_eq!(
            (r.action, &r.output),
            (XDP_PASS, &pkt),
            "{what} to {twin:?}: passed untouched"
        );
    }
    assert_eq!((f.drops(), f.vip_stats("dsr4")), before, "no counter moved");
}

/// A VIP removed and another added on the same address in one sync: the new VIP gets the
/// freed id (and stats slot), but the old VIP's established flows must not be forwarded
/// with the new VIP's meta: their packets are for a port no service serves any more.
#[test]
fn reused_vip_id_does_not_adopt_old_flows() {
    let Some(mut f) = fixture("reused_vip_id_does_not_adopt_old_flows") else {
        return;
    };
    let old_id =
        f.dp.vip_id(&lb::dataplane::vip_key(f.service("dsr4udp")))
            .expect("id");
    let udp = udp4([198, 18, 1, 13], 40400, [198, 18, 0, 100], 53);
    assert_eq!(f.run(&udp).action, XDP_TX, "flow established on udp/53");
    // udp/53 goes, tcp/8080 comes on the same address.
    let changed = CONFIG.replace(
        "port = 53\nprotocol = \"udp\"",
        "port = 8080\nprotocol = \"tcp\"",
    );
    assert_ne!(changed, CONFIG);
    let cfg2 = config_with(&f._inst, &changed);
    f.dp.sync(&cfg2.services, &l2_for(&cfg2)).expect("sync");
    f.cfg = cfg2;
    let new_id =
        f.dp.vip_id(&lb::dataplane::vip_key(f.service("dsr4udp")))
            .expect("id");
    assert_eq!(new_id, old_id, "the new VIP took the freed id");
    let before = f.drops();
    let r = f.run(&udp);
    assert_eq!(r.action, XDP_DROP, "the old flow's packet is not forwarded");
    assert_eq!(
        f.drops()[DropReason::NO_SERVICE as usize],
        before[DropReason::NO_SERVICE as usize] + 1,
        "counted as no_service"
    );
    let tcp = tcp4([198, 18, 1, 13], 40401, [198, 18, 0, 100], 8080, true);
    assert_eq!(f.run(&tcp).action, XDP_TX, "the new VIP serves");
}

/// A VIP switched from `dsr` to `ipip`: its established flows keep their backend and are
/// sent the new way at once (the meta is read afresh for every packet).
#[test]
fn mode_change_applies_to_established_flows() {
    let Some(mut f) = fixture("mode_change_applies_to_established_flows") else {
        return;
    };
    let pkt = tcp4([198, 18, 1, 14], 40500, [198, 18, 0, 100], 80, false);
    let r = f.run(&pkt);
    assert_eq!(r.action, XDP_TX, "established on dsr");
    let owner = r.output[0..6].to_vec();
    let changed = CONFIG.replacen("port = 80\nmode = \"dsr\"", "port = 80\nmode = \"ipip\"", 1);
    assert_ne!(changed, CONFIG);
    let cfg2 = config_with(&f._inst, &changed);
    f.dp.sync(&cfg2.services, &l2_for(&cfg2)).expect("sync");
    f.cfg = cfg2;
    let r = f.run(&pkt);
    assert_eq!(r.action, XDP_TX);
    assert_eq!(r.output.len(), pkt.len() + 20, "now encapsulated");
    assert_eq!(r.output[14 + 9], 4, "outer protocol IPIP");
    assert_eq!(&r.output[0..6], &owner[..], "same backend");
    assert_eq!(&r.output[34..], &pkt[14..], "inner packet byte for byte");
}
