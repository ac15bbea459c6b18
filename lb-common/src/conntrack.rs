//! Connection tracking: which backend an established flow uses.

/// A flow's 5-tuple as seen on the way to the VIP (client -> VIP). Aligned to 8 (size 40,
/// no padding) so the XDP program copies it with 8-byte moves.
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FlowKey {
    /// Client address, network byte order; IPv4 in bytes 0..4, the rest zero.
    pub src: [u8; 16],
    /// VIP address, same layout.
    pub dst: [u8; 16],
    /// Client port, host byte order.
    pub sport: u16,
    /// VIP port, host byte order.
    pub dport: u16,
    /// IP protocol number.
    pub proto: u8,
    /// [`crate::vip::FAMILY_V4`] or [`crate::vip::FAMILY_V6`].
    pub family: u8,
    /// Reserved; zero (part of the hashed key, so it must always be zero).
    pub _pad: [u8; 2],
}

/// The conntrack key of an IPv4 flow: [`FlowKey`] without the unused address bytes.
/// IPv4 flows live in their own table because the kernel hashes every key byte: 16 bytes
/// instead of 40 is a measurable share of the per-packet cost.
#[repr(C, align(4))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FlowKeyV4 {
    /// Client address, network byte order.
    pub src: [u8; 4],
    /// VIP address, network byte order.
    pub dst: [u8; 4],
    /// Client port, host byte order.
    pub sport: u16,
    /// VIP port, host byte order.
    pub dport: u16,
    /// IP protocol number, host byte order (a whole word: no padding bytes to zero).
    pub proto: u32,
}

impl FlowKeyV4 {
    /// The same flow in the family-neutral layout, for userspace views (`show flows`)
    /// that list both tables as one.
    pub fn widen(&self) -> FlowKey {
        let mut key = FlowKey {
            sport: self.sport,
            dport: self.dport,
            proto: self.proto as u8,
            family: crate::vip::FAMILY_V4,
            ..FlowKey::default()
        };
        key.src[..4].copy_from_slice(&self.src);
        key.dst[..4].copy_from_slice(&self.dst);
        key
    }
}

impl FlowKey {
    /// The IPv4 table's key of this flow (meaningful for IPv4 flows only).
    #[inline(always)]
    pub fn v4(&self) -> FlowKeyV4 {
        FlowKeyV4 {
            src: [self.src[0], self.src[1], self.src[2], self.src[3]],
            dst: [self.dst[0], self.dst[1], self.dst[2], self.dst[3]],
            sport: self.sport,
            dport: self.dport,
            proto: self.proto as u32,
        }
    }
}

/// What the program remembers about a flow.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowState {
    /// Backend index, host byte order.
    pub backend: u32,
    /// [`crate::flow_hash::flow_hash`] of the flow (host order), kept so the `ipip` outer
    /// source need not be recomputed for established packets.
    pub hash: u32,
    /// `bpf_jiffies64()` at the last packet, host byte order.
    pub last_seen: u64,
    /// [`crate::vip::VipMeta::vip_ref`] of the flow's VIP when it was recorded (host
    /// order): where an established packet finds the VIP's meta without a hash lookup.
    pub vip_ref: u32,
    /// Reserved; zero.
    pub _pad: u32,
}

crate::impl_pod!(FlowKey, FlowKeyV4, FlowState);

#[cfg(test)]
mod tests {
    #[test]
    fn layouts_have_no_implicit_padding() {
        assert_eq!(
            core::mem::size_of::<super::FlowKey>(),
            16 + 16 + 2 + 2 + 1 + 1 + 2
        );
        assert_eq!(core::mem::size_of::<super::FlowState>(), 24);
        assert_eq!(core::mem::size_of::<super::FlowKeyV4>(), 16);
    }
}
