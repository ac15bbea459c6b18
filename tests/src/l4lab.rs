//! The pieces every L4 end-to-end test sets up on a bridge [`Topology`]: the client routes
//! the VIPs through the load balancer's host, `dsr`/`ipip` backends hold the VIPs on `lo`,
//! and the load balancer's bridge port gets an XDP program so that XDP_TX works on veth.
//! Written once here so every test builds the same, known-good lab.

use crate::{
    netns::{Netns, NsProcess, Topology},
    require::lb_bin,
};
use anyhow::Result;
use std::{fmt::Display, net::IpAddr, process::Stdio};

/// Routes `dest` (an IPv4 or IPv6 prefix) in `ns` via `gateway`: how the client reaches
/// the VIPs through the load balancer (or a VRRP address it holds).
pub fn route_via(ns: &Netns, dest: &str, gateway: impl Display) -> Result<()> {
    let gateway = gateway.to_string();
    if dest.contains(':') {
        ns.ip(&["-6", "route", "add", dest, "via", &gateway])?;
    } else {
        ns.ip(&["route", "add", dest, "via", &gateway])?;
    }
    Ok(())
}

/// Puts `vip` on `ns`'s `lo` (a /32, or a /128 without DAD): a `dsr` or `ipip` backend
/// takes the VIP's packets as its own and answers the client from the VIP.
pub fn vip_on_lo(ns: &Netns, vip: IpAddr) -> Result<()> {
    match vip {
        IpAddr::V4(v) => ns.ip(&["addr", "add", &format!("{v}/32"), "dev", "lo"])?,
        IpAddr::V6(v) => ns.ip(&[
            "-6",
            "addr",
            "add",
            &format!("{v}/128"),
            "dev",
            "lo",
            "nodad",
        ])?,
    };
    Ok(())
}

/// `lb <args>` in `ns`'s network namespace (bpffs stays visible) with its output
/// discarded, for helpers such as `lb decap`; killed when the handle is dropped.
pub fn lb_quiet(ns: &Netns, args: &[&str]) -> Result<NsProcess> {
    let mut cmd = ns.command_net_only(lb_bin())?;
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    NsProcess::spawn(cmd)
}

/// XDP_TX on veth needs an XDP program on the peer: a pass-through one (`lb decap` for
/// `unused_vip`, a VIP nobody sends to) on bridge port `port` (`p1` for host 1).
pub fn xdp_tx_peer(topo: &Topology, port: &str, unused_vip: &str) -> Result<NsProcess> {
    lb_quiet(
        topo.bridge_ns(),
        &["decap", "--interface", port, "--vip", unused_vip],
    )
}

/// A `[[service]]` table with its `[[service.server]]` tables (`(name, address)`), as the
/// tests append them to their configs: one definition of that TOML shape.
pub fn service_toml<A: Display>(
    name: &str,
    vip: impl Display,
    port: u16,
    mode: &str,
    servers: &[(&str, A)],
) -> String {
    let mut s = format!(
        "\n[[service]]\nname = \"{name}\"\nvip = \"{vip}\"\nport = {port}\nmode = \"{mode}\"\n"
    );
    for (server, address) in servers {
        s.push_str(&format!(
            "[[service.server]]\nname = \"{server}\"\naddress = \"{address}\"\n"
        ));
    }
    s
}
