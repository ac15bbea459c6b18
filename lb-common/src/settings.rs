//! Run-time switches for the XDP program, written by userspace into a one-slot array.

/// Flag bit in [`Settings::flags`]: emit debug logs from the XDP program.
pub const FLAG_DEBUG_LOG: u32 = 1 << 0;

/// Global settings of one instance's XDP program.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Settings {
    /// Bit set of `FLAG_*` constants, host byte order.
    pub flags: u32,
    /// Reserved; zero.
    pub _pad: u32,
    /// A TCP conntrack entry idle longer than this many jiffies (host order) is treated
    /// as a new flow and re-picked; 0 = no idle timeout (only LRU eviction). Jiffies, not
    /// nanoseconds: `bpf_jiffies64()` is inlined by the verifier (one load), while a
    /// nanosecond clock is a helper call that costs a large share of the per-packet budget.
    /// Userspace converts with the kernel's HZ.
    pub tcp_timeout_jiffies: u64,
    /// Same for UDP.
    pub udp_timeout_jiffies: u64,
}

crate::impl_pod!(Settings);
