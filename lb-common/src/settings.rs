//! Run-time switches for the XDP program, written by userspace into a one-slot array.

/// Flag bit in [`Settings::flags`]: emit debug logs from the XDP program.
pub const FLAG_DEBUG_LOG: u32 = 1 << 0;

/// TCP conntrack idle timeout used when [`Settings::tcp_timeout_ns`] is 0 (not written yet).
pub const DEFAULT_TCP_TIMEOUT_NS: u64 = 900 * 1_000_000_000;
/// UDP conntrack idle timeout used when [`Settings::udp_timeout_ns`] is 0.
pub const DEFAULT_UDP_TIMEOUT_NS: u64 = 30 * 1_000_000_000;

/// Global settings of one instance's XDP program.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Settings {
    /// Bit set of `FLAG_*` constants, host byte order.
    pub flags: u32,
    /// Reserved; zero.
    pub _pad: u32,
    /// A TCP conntrack entry idle longer than this (ns, host order) is treated as a new
    /// flow and re-picked; 0 means [`DEFAULT_TCP_TIMEOUT_NS`].
    pub tcp_timeout_ns: u64,
    /// Same for UDP; 0 means [`DEFAULT_UDP_TIMEOUT_NS`].
    pub udp_timeout_ns: u64,
}

crate::impl_pod!(Settings);
