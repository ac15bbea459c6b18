//! Packet parsing: Ethernet, IPv4/IPv6, TCP/UDP ports. All packet access, reads and
//! writes, goes through [`ptr_at`].

use aya_ebpf::programs::XdpContext;
use core::mem::size_of;
use lb_common::{
    conntrack::{FlowKey, FlowKeyV4},
    stats::DropReason,
    vip::{VipAddr4Key, VipAddrKey, FAMILY_V4, FAMILY_V6, PROTO_TCP, PROTO_UDP},
};

/// EtherType of IPv4, host order.
pub const ETH_P_IP: u16 = 0x0800;
/// EtherType of IPv6, host order.
pub const ETH_P_IPV6: u16 = 0x86DD;
/// Length of the Ethernet header: where the IP header starts.
pub const ETH_LEN: usize = size_of::<EthHdr>();
/// IP protocol numbers that matter here.
pub const PROTO_ICMP: u8 = 1;
/// IPv4-in-IP (outer protocol of `ipip` IPv4 packets).
pub const PROTO_IPIP: u8 = 4;
/// IPv6-in-IP (outer next header of `ipip` IPv6 packets).
pub const PROTO_IPV6: u8 = 41;
/// ICMPv6.
pub const PROTO_ICMPV6: u8 = 58;
/// IPv4 `frag_off` bits (host order): more fragments, and the offset.
const IP_MF: u16 = 0x2000;
const IP_OFFSET: u16 = 0x1fff;

/// Ethernet header.
#[repr(C)]
pub struct EthHdr {
    /// Destination MAC.
    pub dst: [u8; 6],
    /// Source MAC.
    pub src: [u8; 6],
    /// EtherType, network byte order.
    pub proto: u16,
}

/// IPv4 header without options. Multi-byte integers in network byte order.
#[repr(C)]
pub struct Ipv4Hdr {
    pub vihl: u8,
    pub tos: u8,
    pub tot_len: u16,
    pub id: u16,
    pub frag_off: u16,
    pub ttl: u8,
    pub proto: u8,
    pub check: u16,
    pub saddr: [u8; 4],
    pub daddr: [u8; 4],
}

/// IPv6 fixed header. Multi-byte integers in network byte order.
#[repr(C)]
pub struct Ipv6Hdr {
    pub vtcfl: u32,
    pub payload_len: u16,
    pub next_hdr: u8,
    pub hop_limit: u8,
    pub saddr: [u8; 16],
    pub daddr: [u8; 16],
}

/// The first four bytes of TCP and UDP headers: the ports.
#[repr(C)]
pub struct Ports {
    /// Network byte order.
    pub src: u16,
    /// Network byte order.
    pub dst: u16,
}

/// The TCP header up to its flags byte.
#[repr(C)]
pub struct TcpToFlags {
    ports: Ports,
    seq: u32,
    ack: u32,
    data_off: u8,
    flags: u8,
}

const TCP_SYN: u8 = 0x02;
const TCP_ACK: u8 = 0x10;

/// Whether the TCP segment at `offset` opens a connection (SYN without ACK). A header too
/// short to tell counts as no: the packet then takes the conntrack lookup like any other.
#[inline(always)]
fn is_syn(ctx: &XdpContext, offset: usize) -> bool {
    match ptr_at::<TcpToFlags>(ctx, offset) {
        // SAFETY: bounds checked by ptr_at.
        Some(t) => unsafe { (*t).flags & (TCP_SYN | TCP_ACK) == TCP_SYN },
        None => false,
    }
}

/// Returns a pointer to a `T` at `offset` bytes into the packet, or `None` when the packet
/// is too short. The only way this program touches packet bytes.
#[inline(always)]
pub fn ptr_at<T>(ctx: &XdpContext, offset: usize) -> Option<*mut T> {
    let start = ctx.data();
    let end = ctx.data_end();
    if start + offset + size_of::<T>() > end {
        return None;
    }
    Some((start + offset) as *mut T)
}

/// The network header of a frame, if it is one the program looks at.
pub enum L3 {
    /// IPv4 (fixed part present).
    V4(*mut Ipv4Hdr),
    /// IPv6 (fixed header present).
    V6(*mut Ipv6Hdr),
    /// Anything else (ARP, VLAN, truncated IP): not ours, pass.
    Other,
}

/// Finds the IP header behind the Ethernet header.
#[inline(always)]
pub fn l3(ctx: &XdpContext) -> L3 {
    let Some(eth) = ptr_at::<EthHdr>(ctx, 0) else {
        return L3::Other;
    };
    // SAFETY: bounds checked by ptr_at.
    match u16::from_be(unsafe { (*eth).proto }) {
        ETH_P_IP => match ptr_at::<Ipv4Hdr>(ctx, ETH_LEN) {
            Some(ip) => L3::V4(ip),
            None => L3::Other,
        },
        ETH_P_IPV6 => match ptr_at::<Ipv6Hdr>(ctx, ETH_LEN) {
            Some(ip) => L3::V6(ip),
            None => L3::Other,
        },
        _ => L3::Other,
    }
}

/// The VIP-address-set key of an IPv4 destination (for the decap program's map).
#[inline(always)]
pub fn addr_key_v4(ip: &Ipv4Hdr) -> VipAddrKey {
    VipAddrKey {
        addr: v4_to_16(&ip.daddr),
        family: FAMILY_V4 as u32,
    }
}

/// The IPv4 VIP-address-set key of a destination.
#[inline(always)]
pub fn addr4_key(ip: &Ipv4Hdr) -> VipAddr4Key {
    VipAddr4Key { addr: ip.daddr }
}

/// The VIP-address-set key of an IPv6 destination.
#[inline(always)]
pub fn addr_key_v6(ip: &Ipv6Hdr) -> VipAddrKey {
    VipAddrKey {
        addr: ip.daddr,
        family: FAMILY_V6 as u32,
    }
}

/// An IPv4 address in the 16-byte layout (bytes 0..4, zeros after).
#[inline(always)]
pub fn v4_to_16(a: &[u8; 4]) -> [u8; 16] {
    // Built as words so no byte-wise zeroing (a `memset` loop) is emitted.
    let w: [u32; 4] = [u32::from_ne_bytes(*a), 0, 0, 0];
    // SAFETY: [u32; 4] and [u8; 16] have the same size and every bit pattern is valid.
    unsafe { core::mem::transmute::<[u32; 4], [u8; 16]>(w) }
}

/// What a packet to a VIP address turned out to be.
pub enum L4<K> {
    /// A TCP or UDP flow.
    Flow(Flow<K>),
    /// ICMP/ICMPv6 to the VIP address: the local stack answers (ping, PMTU, ND).
    Pass,
    /// Malformed or unsupported: drop and count under this [`DropReason`].
    Drop(u32),
}

/// A TCP/UDP packet to a VIP address. `K` is the family's conntrack key
/// ([`FlowKeyV4`] or [`FlowKey`]), built straight from the headers: the established path
/// looks it up as is, and the 16-byte address form is only made for a new flow's hash.
pub struct Flow<K> {
    /// The 5-tuple, client -> VIP.
    pub key: K,
    /// IPv4 `tot_len` or IPv6 `payload_len`, host order, as the header says (not the frame
    /// length, which may include Ethernet padding).
    pub ip_len: u16,
    /// IPv4 TOS / IPv6 traffic class, copied to the outer header.
    pub tos: u8,
    /// A TCP SYN: a new connection, whose conntrack entry (if the 5-tuple had one) is
    /// replaced without being looked up first, as Katran does.
    pub syn: bool,
}

/// Checks an IPv4 packet to a VIP address and extracts its flow.
#[inline(always)]
pub fn flow_v4(ctx: &XdpContext, ip: &Ipv4Hdr) -> L4<FlowKeyV4> {
    let ihl = ip.vihl & 0x0f;
    if ihl < 5 || ip.vihl >> 4 != 4 {
        return L4::Drop(DropReason::BAD_IHL);
    }
    if ihl != 5 {
        return L4::Drop(DropReason::IP_OPTIONS);
    }
    if u16::from_be(ip.frag_off) & (IP_MF | IP_OFFSET) != 0 {
        return L4::Drop(DropReason::FRAGMENT);
    }
    let tot_len = u16::from_be(ip.tot_len);
    let avail = ctx.data_end() - ctx.data() - ETH_LEN;
    if (tot_len as usize) < size_of::<Ipv4Hdr>() + size_of::<Ports>() || tot_len as usize > avail {
        return L4::Drop(DropReason::TRUNCATED);
    }
    let proto = ip.proto;
    if proto == PROTO_ICMP {
        return L4::Pass;
    }
    if proto != PROTO_TCP && proto != PROTO_UDP {
        return L4::Drop(DropReason::NO_SERVICE);
    }
    let Some(ports) = ptr_at::<Ports>(ctx, ETH_LEN + size_of::<Ipv4Hdr>()) else {
        return L4::Drop(DropReason::TRUNCATED);
    };
    // SAFETY: bounds checked by ptr_at.
    let ports = unsafe { &*ports };
    L4::Flow(Flow {
        key: FlowKeyV4 {
            src: ip.saddr,
            dst: ip.daddr,
            sport: u16::from_be(ports.src),
            dport: u16::from_be(ports.dst),
            proto: proto as u32,
        },
        ip_len: tot_len,
        tos: ip.tos,
        syn: proto == PROTO_TCP && is_syn(ctx, ETH_LEN + size_of::<Ipv4Hdr>()),
    })
}

/// Checks an IPv6 packet to a VIP address and extracts its flow. Extension headers are
/// not walked (a bounded walk costs every packet; VIP traffic does not carry them).
#[inline(always)]
pub fn flow_v6(ctx: &XdpContext, ip: &Ipv6Hdr) -> L4<FlowKey> {
    let payload_len = u16::from_be(ip.payload_len);
    let avail = ctx.data_end() - ctx.data() - ETH_LEN - size_of::<Ipv6Hdr>();
    if (payload_len as usize) < size_of::<Ports>() || payload_len as usize > avail {
        return L4::Drop(DropReason::TRUNCATED);
    }
    let proto = ip.next_hdr;
    match proto {
        PROTO_TCP | PROTO_UDP => {}
        PROTO_ICMPV6 => return L4::Pass,
        // Hop-by-hop, routing, fragment, ESP, AH, destination options, mobility, HIP,
        // shim6, and the two experimental numbers.
        0 | 43 | 44 | 50 | 51 | 60 | 135 | 139 | 140 | 253 | 254 => {
            return L4::Drop(DropReason::IPV6_EXT_HDR)
        }
        _ => return L4::Drop(DropReason::NO_SERVICE),
    }
    let Some(ports) = ptr_at::<Ports>(ctx, ETH_LEN + size_of::<Ipv6Hdr>()) else {
        return L4::Drop(DropReason::TRUNCATED);
    };
    // SAFETY: bounds checked by ptr_at.
    let ports = unsafe { &*ports };
    L4::Flow(Flow {
        key: FlowKey {
            src: ip.saddr,
            dst: ip.daddr,
            sport: u16::from_be(ports.src),
            dport: u16::from_be(ports.dst),
            proto,
            family: FAMILY_V6,
            _pad: [0; 2],
        },
        ip_len: payload_len,
        tos: ((u32::from_be(ip.vtcfl) >> 20) & 0xff) as u8,
        syn: proto == PROTO_TCP && is_syn(ctx, ETH_LEN + size_of::<Ipv6Hdr>()),
    })
}
