//! Foundation acceptance 2: BPF_PROG_TEST_RUN fixtures for the first XDP slice. A TCP
//! packet to a configured VIP and one to a non-VIP address both pass untouched, and only
//! the first moves that VIP's counters.

use etherparse::PacketBuilder;
use lb::{
    config,
    dataplane::{testrun, DataPlane},
};
use lb_tests::{daemon::Instance, require};
use std::path::Path;

const XDP_PASS: u32 = 2;

fn tcp_packet(dst: [u8; 4], dport: u16) -> Vec<u8> {
    let builder = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4([198, 18, 0, 2], dst, 64)
        .tcp(40000, dport, 1, 65535)
        .syn();
    let payload = [];
    let mut out = Vec::with_capacity(builder.size(payload.len()));
    builder
        .write(&mut out, &payload)
        .expect("building a fixture packet");
    out
}

#[test]
fn vip_packet_counted_non_vip_untouched() {
    if !require::privileged("vip_packet_counted_non_vip_untouched") {
        return;
    }
    let inst = Instance::new("fix");
    let cfg = config::parse(
        Path::new("fixture.toml"),
        &format!(
            r#"
instance = "{}"
[xdp]
interface = "lo"
[[service]]
name = "web"
vip = "198.18.0.99"
port = 80
"#,
            inst.name()
        ),
    )
    .expect("fixture config is valid");
    let mut dp = DataPlane::load(&cfg.pin_dir()).expect("loading the XDP object");
    dp.sync_services(&cfg.services).expect("writing VIPs");
    let prog = dp.program_fd().expect("program fd");

    let before = dp.vip_stats(0).expect("reading counters");
    assert_eq!(
        (before.packets, before.bytes),
        (0, 0),
        "fresh instance starts at zero"
    );

    let to_vip = tcp_packet([198, 18, 0, 99], 80);
    let r = testrun::run(prog, &to_vip, 1).expect("BPF_PROG_TEST_RUN");
    assert_eq!(
        r.action, XDP_PASS,
        "VIP packet in pass mode goes to the stack"
    );
    assert_eq!(
        r.output, to_vip,
        "pass mode leaves the packet byte for byte"
    );
    let after_vip = dp.vip_stats(0).expect("reading counters");
    assert_eq!(after_vip.packets, 1);
    assert_eq!(after_vip.bytes, to_vip.len() as u64);

    for other in [
        tcp_packet([198, 18, 0, 1], 80),
        tcp_packet([198, 18, 0, 1], 22),
    ] {
        let r = testrun::run(prog, &other, 1).expect("BPF_PROG_TEST_RUN");
        assert_eq!(r.action, XDP_PASS, "non-VIP packet passes");
        assert_eq!(r.output, other, "non-VIP packet untouched");
    }
    let after = dp.vip_stats(0).expect("reading counters");
    assert_eq!(after, after_vip, "non-VIP packets move no VIP counter");
    assert!(dp
        .drop_stats()
        .expect("drop counters")
        .iter()
        .all(|&d| d == 0));
}
