//! Counters the XDP program keeps in per-CPU maps; userspace sums them over CPUs.

/// Per-VIP traffic counters (one per CPU; summed by userspace).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VipStats {
    /// Packets that matched the VIP, host byte order.
    pub packets: u64,
    /// Bytes of those packets, Ethernet header included, host byte order.
    pub bytes: u64,
}

impl VipStats {
    /// Adds another CPU's counters to these.
    pub fn add(&mut self, other: &VipStats) {
        self.packets = self.packets.wrapping_add(other.packets);
        self.bytes = self.bytes.wrapping_add(other.bytes);
    }
}

/// Why the XDP program dropped a packet to a VIP: the index into the drop counters.
///
/// Plain `u32` constants rather than an enum, so the value indexes the map directly.
pub struct DropReason;

impl DropReason {
    /// Headers end before the bytes the program needs.
    pub const TRUNCATED: u32 = 0;
    /// IPv4 header length field below 5 words.
    pub const BAD_IHL: u32 = 1;
    /// IPv4 options present (not parsed; never forwarded half-understood).
    pub const IP_OPTIONS: u32 = 2;
    /// IPv4 fragment (no ports to hash on).
    pub const FRAGMENT: u32 = 3;
    /// IPv6 extension header before the transport header.
    pub const IPV6_EXT_HDR: u32 = 4;
    /// Number of drop reasons; the size of the drop counter array.
    pub const COUNT: u32 = 5;

    /// Names indexed by reason, for stats and logs.
    pub const NAMES: [&'static str; Self::COUNT as usize] =
        ["truncated", "bad_ihl", "ip_options", "fragment", "ipv6_ext_hdr"];
}

crate::impl_pod!(VipStats);
