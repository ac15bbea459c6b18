//! Forwarding: `dsr` rewrites the Ethernet addresses, `ipip` encapsulates; both transmit
//! back out of the interface the packet came in on (`XDP_TX`). `Err` is a [`DropReason`];
//! the packet is only modified once every check has passed, so a dropped packet is never
//! half-rewritten.

use crate::{
    conntrack::Key,
    csum,
    parse::{
        ptr_at, EthHdr, Flow, Ipv4Hdr, Ipv6Hdr, ETH_LEN, ETH_P_IP, ETH_P_IPV6, PROTO_IPIP,
        PROTO_IPV6,
    },
};
use aya_ebpf::{bindings::xdp_action, helpers::bpf_xdp_adjust_head, programs::XdpContext};
use core::mem::size_of;
use lb_common::{
    backend::Backend,
    stats::DropReason,
    vip::{VipMeta, FAMILY_V4},
};

/// TTL / hop limit of the outer header.
const OUTER_TTL: u8 = 64;

// The MACs are read and written as 16-bit words (3 per address) instead of byte by byte:
// `Backend` is 8-aligned and both MACs sit at even offsets, and XDP packet data is at
// least 2-aligned (drivers and BPF_PROG_TEST_RUN reserve an even headroom; this program
// only moves it by 20 or 40 bytes).
const _: () = assert!(
    core::mem::offset_of!(Backend, mac) % 2 == 0
        && core::mem::offset_of!(Backend, src_mac) % 2 == 0
        && core::mem::align_of::<Backend>() >= 2
);

/// Copies `count` 16-bit words from `from` to `to`.
///
/// SAFETY (caller): both are 2-aligned and valid for `count` words.
#[inline(always)]
unsafe fn copy_words<const N: usize>(to: *mut u16, from: *const u16) {
    let mut i = 0;
    while i < N {
        // SAFETY: per the caller's contract.
        unsafe { to.add(i).write(from.add(i).read()) };
        i += 1;
    }
}

/// Writes destination and source MAC towards `b` into the Ethernet header at `eth`.
#[inline(always)]
fn write_macs(eth: *mut EthHdr, b: &Backend) {
    let w = eth as *mut u16;
    // SAFETY: `eth` comes from ptr_at (bounds checked, 14 bytes), alignment as above.
    unsafe {
        copy_words::<3>(w, b.mac.as_ptr() as *const u16);
        copy_words::<3>(w.add(3), b.src_mac.as_ptr() as *const u16);
    }
}

/// Writes the Ethernet header towards `b`.
#[inline(always)]
fn write_eth(eth: *mut EthHdr, b: &Backend, proto: u16) {
    write_macs(eth, b);
    // SAFETY: `eth` comes from ptr_at, which checked the bounds.
    unsafe { (*eth).proto = proto.to_be() };
}

/// L2 direct server return: new MACs, same IP packet.
#[inline(always)]
pub fn dsr(ctx: &XdpContext, b: &Backend) -> Result<u32, u32> {
    let eth = ptr_at::<EthHdr>(ctx, 0).ok_or(DropReason::TRUNCATED)?;
    write_macs(eth, b);
    Ok(xdp_action::XDP_TX)
}

// Address fields read as whole words: both sit at 4-aligned offsets of 4-aligned map
// values (a VIP meta also inside a `VipAddrSlot`, at offset 4 of a 4-aligned slot).
const _: () = assert!(
    core::mem::offset_of!(VipMeta, encap_src) % 4 == 0
        && core::mem::align_of::<VipMeta>() >= 4
        && core::mem::offset_of!(lb_common::vip::VipAddrSlot, meta) % 4 == 0
        && core::mem::offset_of!(Backend, addr) % 4 == 0
);

/// Bytes `at..at + 4` (`at` a multiple of 4) of an address field as one native-order
/// word: one load instead of four byte loads and shifts.
#[inline(always)]
fn word_at(a: &[u8; 16], at: usize) -> u32 {
    // SAFETY: `at + 4 <= 16` at every call site (0 or 12); 4-aligned per the assertion.
    unsafe { (a.as_ptr().add(at) as *const u32).read() }
}

/// The outer source's last 32 bits in network order (as a native word): the prefix with
/// host bits from the flow hash. Byte swaps commute with the masking, so the prefix is
/// used as stored.
#[inline(always)]
fn encap_low32(meta: &VipMeta, at: usize, hash: u32) -> u32 {
    let prefix = word_at(&meta.encap_src, at);
    let mask = meta.encap_host_mask.to_be();
    (prefix & !mask) | (hash.to_be() & mask)
}

/// IPv4-in-IPv4 or IPv6-in-IPv6 towards `b`, per the packet's family.
#[inline(always)]
pub fn ipip<K: Key>(
    ctx: &XdpContext,
    flow: &Flow<K>,
    meta: &VipMeta,
    b: &Backend,
    hash: u32,
) -> Result<u32, u32> {
    // The outer length field must hold the inner packet plus the outer header.
    if K::FAMILY != b.family || flow.ip_len > u16::MAX - size_of::<Ipv6Hdr>() as u16 {
        return Err(DropReason::ENCAP_FAILED);
    }
    if K::FAMILY == FAMILY_V4 {
        ipip_v4(ctx, flow, meta, b, hash)
    } else {
        ipip_v6(ctx, flow, meta, b, hash)
    }
}

#[inline(always)]
fn ipip_v4<K>(
    ctx: &XdpContext,
    flow: &Flow<K>,
    meta: &VipMeta,
    b: &Backend,
    hash: u32,
) -> Result<u32, u32> {
    // The outer header as ten 16-bit words in memory order, built in registers, summed
    // for the checksum and stored word by word.
    let pair = |a: u8, b: u8| u16::from_ne_bytes([a, b]);
    let src = encap_low32(meta, 0, hash).to_ne_bytes();
    let dst = word_at(&b.addr, 0).to_ne_bytes();
    let mut w: [u16; 10] = [
        pair(0x45, flow.tos),
        flow.ip_len
            .wrapping_add(size_of::<Ipv4Hdr>() as u16)
            .to_be(),
        0, // id
        0, // flags, fragment offset
        pair(OUTER_TTL, PROTO_IPIP),
        0, // checksum, below
        pair(src[0], src[1]),
        pair(src[2], src[3]),
        pair(dst[0], dst[1]),
        pair(dst[2], dst[3]),
    ];
    w[5] = csum::ipv4_header_words(&w);
    // SAFETY: ctx.ctx is the program's context.
    if unsafe { bpf_xdp_adjust_head(ctx.ctx, -(size_of::<Ipv4Hdr>() as i32)) } != 0 {
        return Err(DropReason::ENCAP_FAILED);
    }
    let eth = ptr_at::<EthHdr>(ctx, 0).ok_or(DropReason::ENCAP_FAILED)?;
    let ip = ptr_at::<Ipv4Hdr>(ctx, ETH_LEN).ok_or(DropReason::ENCAP_FAILED)?;
    write_eth(eth, b, ETH_P_IP);
    // SAFETY: bounds checked by ptr_at (20 bytes); 2-aligned as the Ethernet header.
    unsafe { copy_words::<10>(ip as *mut u16, w.as_ptr()) };
    Ok(xdp_action::XDP_TX)
}

#[inline(always)]
fn ipip_v6<K>(
    ctx: &XdpContext,
    flow: &Flow<K>,
    meta: &VipMeta,
    b: &Backend,
    hash: u32,
) -> Result<u32, u32> {
    let mut saddr = meta.encap_src;
    let low = encap_low32(meta, 12, hash).to_ne_bytes();
    saddr[12] = low[0];
    saddr[13] = low[1];
    saddr[14] = low[2];
    saddr[15] = low[3];
    let hdr = Ipv6Hdr {
        vtcfl: ((6u32 << 28) | ((flow.tos as u32) << 20) | (hash & 0x000f_ffff)).to_be(),
        payload_len: flow
            .ip_len
            .wrapping_add(size_of::<Ipv6Hdr>() as u16)
            .to_be(),
        next_hdr: PROTO_IPV6,
        hop_limit: OUTER_TTL,
        saddr,
        daddr: b.addr,
    };
    // SAFETY: ctx.ctx is the program's context.
    if unsafe { bpf_xdp_adjust_head(ctx.ctx, -(size_of::<Ipv6Hdr>() as i32)) } != 0 {
        return Err(DropReason::ENCAP_FAILED);
    }
    let eth = ptr_at::<EthHdr>(ctx, 0).ok_or(DropReason::ENCAP_FAILED)?;
    let ip = ptr_at::<Ipv6Hdr>(ctx, ETH_LEN).ok_or(DropReason::ENCAP_FAILED)?;
    write_eth(eth, b, ETH_P_IPV6);
    // SAFETY: bounds checked by ptr_at.
    unsafe { *ip = hdr };
    Ok(xdp_action::XDP_TX)
}
