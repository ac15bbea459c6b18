//! Counters the XDP program keeps in per-CPU maps; userspace sums them over CPUs.

/// Per-VIP traffic counters (one per CPU; summed by userspace).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VipStats {
    /// Packets that matched the VIP, host byte order.
    pub packets: u64,
    /// Bytes of those packets as received, Ethernet header included, host byte order.
    pub bytes: u64,
    /// Flows that got a backend from the Maglev table (conntrack miss), host order.
    pub new_flows: u64,
    /// Packets forwarded from a conntrack hit, host order.
    pub ct_hits: u64,
}

impl VipStats {
    /// Adds another CPU's counters to these.
    pub fn add(&mut self, other: &VipStats) {
        self.packets = self.packets.wrapping_add(other.packets);
        self.bytes = self.bytes.wrapping_add(other.bytes);
        self.new_flows = self.new_flows.wrapping_add(other.new_flows);
        self.ct_hits = self.ct_hits.wrapping_add(other.ct_hits);
    }
}

/// Per-backend counters (one per CPU), indexed like the backends array.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BackendStats {
    /// Packets sent to the backend, host byte order.
    pub packets: u64,
    /// Bytes of those packets as received (before encapsulation), host byte order.
    pub bytes: u64,
    /// New flows assigned to the backend, host byte order.
    pub new_flows: u64,
    /// Reserved; zero.
    pub _reserved: u64,
}

impl BackendStats {
    /// Adds another CPU's counters to these.
    pub fn add(&mut self, other: &BackendStats) {
        self.packets = self.packets.wrapping_add(other.packets);
        self.bytes = self.bytes.wrapping_add(other.bytes);
        self.new_flows = self.new_flows.wrapping_add(other.new_flows);
    }
}

/// Why the XDP program dropped a packet to a VIP address: the index into the drop counters.
///
/// Plain `u32` constants rather than an enum, so the value indexes the map directly.
pub struct DropReason;

impl DropReason {
    /// Headers end before the bytes the program needs, or the IP length exceeds the frame.
    pub const TRUNCATED: u32 = 0;
    /// IPv4 header length field below 5 words.
    pub const BAD_IHL: u32 = 1;
    /// IPv4 options present (not parsed; never forwarded half-understood).
    pub const IP_OPTIONS: u32 = 2;
    /// IPv4 fragment (no ports to hash on).
    pub const FRAGMENT: u32 = 3;
    /// IPv6 extension header before the transport header.
    pub const IPV6_EXT_HDR: u32 = 4;
    /// The VIP has no usable backend (empty Maglev table).
    pub const NO_BACKEND: u32 = 5;
    /// A VIP address, but no service on this port/protocol.
    pub const NO_SERVICE: u32 = 6;
    /// Encapsulation could not be done (no headroom, backend of the other family).
    pub const ENCAP_FAILED: u32 = 7;
    /// An `ipip` packet too big for the egress MTU once encapsulated: not forwarded, the
    /// client was answered with ICMP "fragmentation needed" / ICMPv6 "packet too big".
    pub const TOO_BIG: u32 = 8;
    /// Number of drop reasons; the size of the drop counter array.
    pub const COUNT: u32 = 9;

    /// Names indexed by reason, for stats and logs.
    pub const NAMES: [&'static str; Self::COUNT as usize] = [
        "truncated",
        "bad_ihl",
        "ip_options",
        "fragment",
        "ipv6_ext_hdr",
        "no_backend",
        "no_service",
        "encap_failed",
        "too_big_icmp_sent",
    ];
}

crate::impl_pod!(VipStats, BackendStats);
