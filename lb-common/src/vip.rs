//! VIP keys and per-VIP metadata.

/// IP protocol number of TCP.
pub const PROTO_TCP: u8 = 6;
/// IP protocol number of UDP.
pub const PROTO_UDP: u8 = 17;

/// Address family tag for IPv4 keys.
pub const FAMILY_V4: u8 = 4;
/// Address family tag for IPv6 keys.
pub const FAMILY_V6: u8 = 6;

/// A service's listening point: what a packet's destination is matched against.
///
/// Aligned to 4 so that the XDP program builds and hashes keys with word stores instead
/// of byte loops (`memset` calls) on the stack; the size (20) needs no padding.
#[repr(C, align(4))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct VipKey {
    /// Destination address, network byte order. IPv4 fills bytes 0..4; the rest stay zero.
    pub addr: [u8; 16],
    /// Destination port, host byte order (so `bpftool` shows it as written in the config).
    pub port: u16,
    /// IP protocol: [`PROTO_TCP`] or [`PROTO_UDP`].
    pub proto: u8,
    /// [`FAMILY_V4`] or [`FAMILY_V6`]; keeps an IPv4 key apart from an IPv6 one with zeros.
    pub family: u8,
}

impl VipKey {
    /// Key for an IPv4 VIP; `addr` in network byte order as it appears on the wire.
    #[inline(always)]
    pub const fn v4(addr: [u8; 4], port: u16, proto: u8) -> Self {
        let mut a = [0u8; 16];
        a[0] = addr[0];
        a[1] = addr[1];
        a[2] = addr[2];
        a[3] = addr[3];
        Self {
            addr: a,
            port,
            proto,
            family: FAMILY_V4,
        }
    }

    /// Key for an IPv6 VIP; `addr` in network byte order.
    #[inline(always)]
    pub const fn v6(addr: [u8; 16], port: u16, proto: u8) -> Self {
        Self {
            addr,
            port,
            proto,
            family: FAMILY_V6,
        }
    }
}

/// Forwarding mode value for [`VipMeta::mode`]: count, then pass to the local stack (L7 proxy).
pub const MODE_PASS: u32 = 0;
/// Forwarding mode: L2 direct server return (rewrite MACs, `XDP_TX`).
pub const MODE_DSR: u32 = 1;
/// Forwarding mode: IP-in-IP encapsulation to the backend (`XDP_TX` to the next hop).
pub const MODE_IPIP: u32 = 2;

/// What the XDP program does with a packet that matched a [`VipKey`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VipMeta {
    /// Index into the per-VIP counters, host byte order; below [`crate::maps::MAX_VIPS`].
    pub id: u32,
    /// Forwarding mode, host byte order: one of the `MODE_*` constants.
    pub mode: u32,
    /// Outer index of the VIP's current Maglev table in `lb_maglev` (host order), see
    /// [`crate::maglev::table_slot`]. Written last when a table changes.
    pub table: u32,
    /// Slots in that table (prime, host order); 0 = no table (every new flow dropped).
    pub table_size: u32,
    /// `ipip`: outer source prefix, network byte order (IPv4 in bytes 0..4). The outer
    /// source of a flow is this prefix with [`Self::encap_host_mask`] bits taken from the
    /// flow hash, so a backend's receive queues spread the flows of one VIP.
    pub encap_src: [u8; 16],
    /// Host bits of the outer source (host order), applied to its last 32 bits
    /// (IPv4: the whole address; IPv6: bytes 12..16).
    pub encap_host_mask: u32,
    /// Conntrack idle timeout of this VIP's protocol in jiffies (host order); 0 = none.
    /// Carried here rather than read from the settings map: the meta is already in hand,
    /// so it costs no lookup.
    pub ct_timeout_jiffies: u32,
    /// `ipip`: the largest IP length field (IPv4 `tot_len`, IPv6 `payload_len`; host
    /// order) of a packet that still fits the egress MTU once encapsulated. A larger one
    /// is answered with ICMP "fragmentation needed" / ICMPv6 "packet too big" instead of
    /// being sent (the NIC would drop it silently). 0 = no limit (`dsr`, `pass`).
    pub encap_max_len: u32,
    /// This VIP's reference as conntrack entries hold it (host order): its id in the low
    /// [`VIP_REF_ID_BITS`] bits, above them a generation that changes whenever the id is
    /// given to another VIP. Never 0 for a VIP in the maps. An established packet finds
    /// its VIP's meta by this id in `lb_vip_metas` (an array: no hash lookup) and trusts
    /// it only if the references match.
    pub vip_ref: u32,
}

/// Bits of [`VipMeta::vip_ref`] that hold the VIP id.
pub const VIP_REF_ID_BITS: u32 = 16;
/// Mask of the VIP id in [`VipMeta::vip_ref`].
pub const VIP_REF_ID_MASK: u32 = (1 << VIP_REF_ID_BITS) - 1;

/// The reference of VIP `id` in generation `generation` (1..=0xffff; 0 is never used).
pub const fn vip_ref(id: u32, generation: u32) -> u32 {
    (generation << VIP_REF_ID_BITS) | (id & VIP_REF_ID_MASK)
}

/// Key of the VIP address set (and of the decap program's address map). Aligned like
/// [`VipKey`], for the same reason.
#[repr(C, align(4))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct VipAddrKey {
    /// Address, network byte order; IPv4 fills bytes 0..4, the rest zero.
    pub addr: [u8; 16],
    /// [`FAMILY_V4`] or [`FAMILY_V6`], host byte order (a whole word, so the key has no
    /// padding bytes to zero).
    pub family: u32,
}

/// Services whose meta the VIP address set carries inline (see [`VipAddrInfo`]).
pub const ADDR_INLINE_SERVICES: usize = 4;

/// One service of an address, carried inline in [`VipAddrInfo`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VipAddrSlot {
    /// Port, host byte order.
    pub port: u16,
    /// IP protocol.
    pub proto: u8,
    /// Reserved; zero.
    pub _pad: u8,
    /// A copy of the service's [`VipMeta`].
    pub meta: VipMeta,
}

/// Value of the VIP address set: how many services live on the address and, when there
/// are at most [`ADDR_INLINE_SERVICES`], their ports, protocols and metas, so a packet to
/// a VIP costs one hash lookup instead of two. Written after the VIP map, so it never
/// names a table the VIP map does not.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VipAddrInfo {
    /// Services (port/protocol pairs) on this address, host byte order. Above
    /// [`ADDR_INLINE_SERVICES`] the program looks the VIP up in the VIP map.
    pub services: u32,
    /// Reserved; zero.
    pub _pad: u32,
    /// The first `min(services, ADDR_INLINE_SERVICES)` services; the rest zero.
    pub slots: [VipAddrSlot; ADDR_INLINE_SERVICES],
}

/// Key of the IPv4 VIP address set: just the address (the kernel hashes every key byte,
/// and non-VIP traffic pays this lookup).
#[repr(C, align(4))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct VipAddr4Key {
    /// Address, network byte order.
    pub addr: [u8; 4],
}

impl VipKey {
    /// The address part of this key.
    #[inline(always)]
    pub const fn addr_key(&self) -> VipAddrKey {
        VipAddrKey {
            addr: self.addr,
            family: self.family as u32,
        }
    }
}

crate::impl_pod!(
    VipKey,
    VipMeta,
    VipAddrKey,
    VipAddr4Key,
    VipAddrInfo,
    VipAddrSlot
);

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::size_of;

    #[test]
    fn layouts_have_no_implicit_padding() {
        assert_eq!(size_of::<VipKey>(), 16 + 2 + 1 + 1);
        assert_eq!(size_of::<VipMeta>(), 4 * 4 + 16 + 4 + 4 + 4 + 4);
        assert_eq!(size_of::<VipAddrKey>(), 20);
        assert_eq!(size_of::<VipAddrSlot>(), 4 + size_of::<VipMeta>());
        assert_eq!(size_of::<VipAddrInfo>(), 8 + 4 * size_of::<VipAddrSlot>());
    }

    #[test]
    fn v4_and_v6_keys_differ_by_family() {
        let a = VipKey::v4([198, 18, 0, 99], 80, PROTO_TCP);
        let mut b6 = [0u8; 16];
        b6[..4].copy_from_slice(&[198, 18, 0, 99]);
        let b = VipKey::v6(b6, 80, PROTO_TCP);
        assert_ne!(a, b);
    }
}
