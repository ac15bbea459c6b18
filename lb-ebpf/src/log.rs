//! Debug logging through aya-log, for events off the established path: new flows, drops
//! and "packet too big" answers. Callers ask [`crate::maps::debug_log`] first (off by
//! default), so with logging off a packet pays one load and a branch; each function is a
//! separate BPF subprogram so its formatting code is not copied into every call site.

use aya_log_ebpf::info;
use lb_common::conntrack::{FlowKey, FlowKeyV4};

/// A new (or re-picked) IPv4 flow got backend `index`.
#[inline(never)]
pub fn new_flow4(key: &FlowKeyV4, index: u32) {
    info!(
        (),
        target: "xdp",
        "new flow {:i}:{} -> {:i}:{} proto {} -> backend {}",
        key.src,
        key.sport,
        key.dst,
        key.dport,
        key.proto,
        index
    );
}

/// A new (or re-picked) IPv6 flow got backend `index`.
#[inline(never)]
pub fn new_flow6(key: &FlowKey, index: u32) {
    info!(
        (),
        target: "xdp",
        "new flow [{:i}]:{} -> [{:i}]:{} proto {} -> backend {}",
        key.src,
        key.sport,
        key.dst,
        key.dport,
        key.proto,
        index
    );
}

/// A packet to a VIP address was dropped for `reason` (a [`DropReason`]; the number only:
/// a table of names would be pointers in .rodata, which BPF loaders do not relocate).
#[inline(never)]
pub fn drop(reason: u32) {
    info!((), target: "xdp", "drop: reason {} (see DropReason)", reason);
}

/// An `ipip` packet of IP length `len` exceeded `max`: answered with ICMP.
#[inline(never)]
pub fn too_big(family: u8, len: u32, max: u32) {
    info!(
        (),
        target: "xdp",
        "packet too big for ipip (IPv{} length {} > {}): ICMP sent",
        family,
        len,
        max
    );
}
