//! Types shared by the XDP program (`lb-ebpf`) and userspace (`lb-userspace`).
//!
//! Every map key and value here is `#[repr(C)]`, `Copy`, free of implicit padding (explicit
//! `_pad` fields) and free of `bool`/enum fields, so that the kernel, the eBPF program and
//! userspace agree on the bytes and `bpftool` can print them field by field from BTF. The
//! byte order of every multi-byte field is written next to it. Constants live next to the
//! types they describe, one module per concern (Katran's `balancer_consts.h`).
#![no_std]

pub mod backend;
pub mod conntrack;
pub mod filter;
pub mod flow_hash;
pub mod maglev;
pub mod maps;
pub mod settings;
pub mod stats;
pub mod vip;

/// Implements `aya::Pod` for map types when building userspace (`user` feature).
macro_rules! impl_pod {
    ($($t:ty),* $(,)?) => {
        $(
            #[cfg(feature = "user")]
            // SAFETY: the type is `#[repr(C)]`, `Copy`, has no padding and no invalid bit patterns.
            unsafe impl aya::Pod for $t {}
        )*
    };
}
pub(crate) use impl_pod;
