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
}

crate::impl_pod!(Settings);
