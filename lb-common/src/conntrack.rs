//! Connection tracking: which backend an established flow uses.

/// A flow's 5-tuple as seen on the way to the VIP (client -> VIP).
#[repr(C)]
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

/// What the program remembers about a flow.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowState {
    /// Backend index, host byte order.
    pub backend: u32,
    /// [`crate::flow_hash::flow_hash`] of the flow (host order), kept so the `ipip` outer
    /// source need not be recomputed for established packets.
    pub hash: u32,
    /// `bpf_ktime_get_ns()` (CLOCK_MONOTONIC ns) of the last packet, host byte order.
    pub last_seen_ns: u64,
}

crate::impl_pod!(FlowKey, FlowState);

#[cfg(test)]
mod tests {
    #[test]
    fn layouts_have_no_implicit_padding() {
        assert_eq!(
            core::mem::size_of::<super::FlowKey>(),
            16 + 16 + 2 + 2 + 1 + 1 + 2
        );
        assert_eq!(core::mem::size_of::<super::FlowState>(), 16);
    }
}
