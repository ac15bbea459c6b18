//! The backend table: where an L4 flow is sent, and the Ethernet addresses to send it with.

/// Flag bit in [`Backend::flags`]: the backend takes flows. Cleared (entry zeroed) when the
/// backend is removed, so conntrack hits on it are re-picked.
pub const BACKEND_UP: u8 = 1 << 0;
/// Flag bit: draining; established flows stay, new flows are not sent (it has no Maglev
/// slots). Only meaningful together with [`BACKEND_UP`].
pub const BACKEND_DRAINING: u8 = 1 << 1;

/// One backend, at its index in the backends array (the index the Maglev tables and the
/// conntrack entries hold). Aligned to 8 (size 32, no padding) for word-wise copies.
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Backend {
    /// Backend address, network byte order; IPv4 fills bytes 0..4, the rest zero. The outer
    /// destination for `ipip`; for `dsr` only informative.
    pub addr: [u8; 16],
    /// Ethernet destination to send to: the backend's MAC (`dsr`) or the next hop's (`ipip`).
    pub mac: [u8; 6],
    /// Ethernet source: the MAC of the interface the program transmits on (ours).
    pub src_mac: [u8; 6],
    /// [`crate::vip::FAMILY_V4`] or [`crate::vip::FAMILY_V6`] of `addr`.
    pub family: u8,
    /// Bit set of `BACKEND_*` flags.
    pub flags: u8,
    /// Reserved; zero.
    pub _pad: [u8; 2],
}

impl Backend {
    /// Whether established flows may keep using this backend.
    #[inline(always)]
    pub const fn is_up(&self) -> bool {
        self.flags & BACKEND_UP != 0
    }
}

crate::impl_pod!(Backend);

#[cfg(test)]
mod tests {
    #[test]
    fn layout_has_no_implicit_padding() {
        assert_eq!(
            core::mem::size_of::<super::Backend>(),
            16 + 6 + 6 + 1 + 1 + 2
        );
    }
}
