//! Packet parsing: Ethernet, IPv4/IPv6, TCP/UDP ports. All access goes through [`ptr_at`].

use aya_ebpf::programs::XdpContext;
use core::mem::size_of;
use lb_common::vip::{VipKey, PROTO_TCP, PROTO_UDP};

const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86DD;

/// Ethernet header.
#[repr(C)]
pub struct EthHdr {
    pub dst: [u8; 6],
    pub src: [u8; 6],
    /// EtherType, network byte order.
    pub proto: u16,
}

/// IPv4 header without options.
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

/// IPv6 fixed header.
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

/// Returns a pointer to a `T` at `offset` bytes into the packet, or `None` when the packet
/// is too short. The only way this program reads packet bytes.
#[inline(always)]
pub fn ptr_at<T>(ctx: &XdpContext, offset: usize) -> Option<*const T> {
    let start = ctx.data();
    let end = ctx.data_end();
    if start + offset + size_of::<T>() > end {
        return None;
    }
    Some((start + offset) as *const T)
}

/// What [`parse`] found.
pub enum Parsed {
    /// Not a packet the program acts on (not IP, not TCP/UDP, or unparsed): pass it.
    NotIp,
    /// A TCP or UDP packet and its destination.
    Flow(Flow),
}

/// The parts of a packet used to find its VIP.
pub struct Flow {
    /// Destination address, network byte order; IPv4 fills the first 4 bytes.
    pub daddr: [u8; 16],
    /// Destination port, host byte order.
    pub dport: u16,
    pub proto: u8,
    pub family: u8,
}

impl Flow {
    /// The key of the VIP this packet is addressed to.
    #[inline(always)]
    pub fn vip_key(&self) -> VipKey {
        VipKey { addr: self.daddr, port: self.dport, proto: self.proto, family: self.family }
    }
}

/// Parses Ethernet / IP / TCP-or-UDP far enough to know the destination.
#[inline(always)]
pub fn parse(ctx: &XdpContext) -> Parsed {
    let Some(eth) = ptr_at::<EthHdr>(ctx, 0) else { return Parsed::NotIp };
    // SAFETY: bounds checked by ptr_at.
    let ethertype = u16::from_be(unsafe { (*eth).proto });
    let l3 = size_of::<EthHdr>();
    let (daddr, proto, family, l4) = match ethertype {
        ETH_P_IP => {
            let Some(ip) = ptr_at::<Ipv4Hdr>(ctx, l3) else { return Parsed::NotIp };
            // SAFETY: bounds checked by ptr_at.
            let ip = unsafe { &*ip };
            if ip.vihl & 0x0f != 5 {
                return Parsed::NotIp;
            }
            let mut d = [0u8; 16];
            d[0] = ip.daddr[0];
            d[1] = ip.daddr[1];
            d[2] = ip.daddr[2];
            d[3] = ip.daddr[3];
            (d, ip.proto, lb_common::vip::FAMILY_V4, l3 + size_of::<Ipv4Hdr>())
        }
        ETH_P_IPV6 => {
            let Some(ip) = ptr_at::<Ipv6Hdr>(ctx, l3) else { return Parsed::NotIp };
            // SAFETY: bounds checked by ptr_at.
            let ip = unsafe { &*ip };
            (ip.daddr, ip.next_hdr, lb_common::vip::FAMILY_V6, l3 + size_of::<Ipv6Hdr>())
        }
        _ => return Parsed::NotIp,
    };
    if proto != PROTO_TCP && proto != PROTO_UDP {
        return Parsed::NotIp;
    }
    let Some(ports) = ptr_at::<Ports>(ctx, l4) else { return Parsed::NotIp };
    // SAFETY: bounds checked by ptr_at.
    let dport = u16::from_be(unsafe { (*ports).dst });
    Parsed::Flow(Flow { daddr, dport, proto, family })
}
