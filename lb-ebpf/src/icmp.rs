//! ICMP "fragmentation needed" (IPv4, type 3 code 4) and ICMPv6 "packet too big" (type 2)
//! answers to `ipip` packets that would exceed the egress MTU once encapsulated, built in
//! place and sent back out of the receiving interface (`XDP_TX`), as Katran does.
//!
//! The answer goes from the VIP to the client, to the MAC the packet came from, and quotes
//! the client's IP header and the first [`QUOTE_DATA`] bytes after it (RFC 792 asks for the
//! header and 64 bits; RFC 4443 for as much as fits in 1280 bytes: the quote is kept short
//! and fixed, like Katran's, so the checksum is one bounded helper call). The original
//! packet is truncated to the quote and the new headers are put in front of it.

use crate::{
    csum,
    parse::{ptr_at, EthHdr, Ipv4Hdr, Ipv6Hdr, ETH_LEN, ETH_P_IP, ETH_P_IPV6, PROTO_ICMP},
};
use aya_ebpf::{
    bindings::xdp_action,
    helpers::{bpf_csum_diff, bpf_xdp_adjust_head, bpf_xdp_adjust_tail},
    programs::XdpContext,
};
use core::mem::size_of;
use lb_common::stats::DropReason;

/// Bytes of the client's packet quoted after its IP header (a multiple of 4: the
/// checksum helper sums whole words).
pub const QUOTE_DATA: usize = 64;
/// TTL / hop limit of the answer.
const TTL: u8 = 64;
/// ICMP type "destination unreachable", code "fragmentation needed and DF set".
const ICMP_DEST_UNREACH: u8 = 3;
const ICMP_FRAG_NEEDED: u8 = 4;
/// ICMPv6 type "packet too big".
const ICMPV6_PKT_TOOBIG: u8 = 2;
/// IPv6 next header of ICMPv6.
const PROTO_ICMPV6: u8 = 58;
/// The minimum IPv6 MTU: a "packet too big" never reports less (RFC 8201).
const IPV6_MIN_MTU: u32 = 1280;

/// The 8-byte ICMP / ICMPv6 header of both messages: type, code, checksum and a 32-bit
/// field (IPv4: 16 unused bits then the next-hop MTU; IPv6: the MTU). Network order.
#[repr(C)]
struct IcmpHdr {
    kind: u8,
    code: u8,
    check: u16,
    rest: u32,
}

/// Length of the ICMP message (header and quote) for an IP header of `ip` bytes.
const fn msg_len(ip: usize) -> usize {
    size_of::<IcmpHdr>() + ip + QUOTE_DATA
}
const V4_MSG: usize = msg_len(size_of::<Ipv4Hdr>());
const V6_MSG: usize = msg_len(size_of::<Ipv6Hdr>());
/// The whole answer frames.
const V4_FRAME: usize = ETH_LEN + size_of::<Ipv4Hdr>() + V4_MSG;
const V6_FRAME: usize = ETH_LEN + size_of::<Ipv6Hdr>() + V6_MSG;
const _: () = assert!(V4_MSG % 4 == 0 && (32 + V6_MSG) % 4 == 0);

/// Folds a 32-bit one's-complement sum (from `bpf_csum_diff`) into the 16-bit checksum,
/// in memory order (RFC 1071, 2(B): stored natively it is right on the wire).
#[inline(always)]
fn fold(sum: i64) -> u16 {
    let mut s = sum as u64 & 0xffff_ffff;
    s = (s & 0xffff) + (s >> 16);
    s = (s & 0xffff) + (s >> 16);
    s = (s & 0xffff) + (s >> 16);
    !(s as u16)
}

/// Cuts the frame to `keep` bytes and then puts `room` new bytes in front of it.
#[inline(always)]
fn reshape(ctx: &XdpContext, keep: usize, room: usize) -> Result<(), u32> {
    let len = ctx.data_end() - ctx.data();
    if len < keep {
        return Err(DropReason::TRUNCATED);
    }
    // SAFETY: ctx.ctx is the program's context; the deltas only shrink the frame to bytes
    // it has and grow it into the headroom (the kernel checks both).
    unsafe {
        if bpf_xdp_adjust_tail(ctx.ctx, keep as i32 - len as i32) != 0
            || bpf_xdp_adjust_head(ctx.ctx, -(room as i32)) != 0
        {
            return Err(DropReason::ENCAP_FAILED);
        }
    }
    Ok(())
}

/// Answers an IPv4 packet whose `tot_len` exceeds `max_len` (the IP MTU left for it) with
/// "fragmentation needed", next-hop MTU `max_len`.
#[inline(always)]
pub fn too_big_v4(ctx: &XdpContext, max_len: u32) -> Result<u32, u32> {
    let eth = ptr_at::<EthHdr>(ctx, 0).ok_or(DropReason::TRUNCATED)?;
    let ip = ptr_at::<Ipv4Hdr>(ctx, ETH_LEN).ok_or(DropReason::TRUNCATED)?;
    // SAFETY: bounds checked by ptr_at.
    let (dst_mac, src_mac, client, vip) =
        unsafe { ((*eth).dst, (*eth).src, (*ip).saddr, (*ip).daddr) };
    let room = size_of::<Ipv4Hdr>() + size_of::<IcmpHdr>();
    reshape(ctx, ETH_LEN + size_of::<Ipv4Hdr>() + QUOTE_DATA, room)?;
    let frame = ptr_at::<[u8; V4_FRAME]>(ctx, 0).ok_or(DropReason::ENCAP_FAILED)?;
    let eth = frame as *mut EthHdr;
    let pair = |a: u8, b: u8| u16::from_ne_bytes([a, b]);
    let mut w: [u16; 10] = [
        pair(0x45, 0),
        ((size_of::<Ipv4Hdr>() + V4_MSG) as u16).to_be(),
        0, // id
        0, // flags, fragment offset
        pair(TTL, PROTO_ICMP),
        0, // checksum, below
        pair(vip[0], vip[1]),
        pair(vip[2], vip[3]),
        pair(client[0], client[1]),
        pair(client[2], client[3]),
    ];
    w[5] = csum::ipv4_header_words(&w);
    // SAFETY: `frame` is bounds checked for the whole answer; every header below lies in
    // it, 2-aligned (the frame start is, and every offset is even).
    unsafe {
        (*eth).dst = src_mac;
        (*eth).src = dst_mac;
        (*eth).proto = ETH_P_IP.to_be();
        let ipw = (frame as *mut u8).add(ETH_LEN) as *mut u16;
        let mut i = 0;
        while i < 10 {
            ipw.add(i).write(w[i]);
            i += 1;
        }
        let icmp = (frame as *mut u8).add(ETH_LEN + size_of::<Ipv4Hdr>()) as *mut IcmpHdr;
        (*icmp).kind = ICMP_DEST_UNREACH;
        (*icmp).code = ICMP_FRAG_NEEDED;
        (*icmp).check = 0;
        (*icmp).rest = (max_len.min(u32::from(u16::MAX))).to_be();
        let sum = bpf_csum_diff(core::ptr::null_mut(), 0, icmp as *mut u32, V4_MSG as u32, 0);
        (*icmp).check = fold(sum);
    }
    Ok(xdp_action::XDP_TX)
}

/// Answers an IPv6 packet whose `payload_len` exceeds `max_len` with "packet too big",
/// MTU `max_len` + 40 (at least 1280).
#[inline(always)]
pub fn too_big_v6(ctx: &XdpContext, max_len: u32) -> Result<u32, u32> {
    let eth = ptr_at::<EthHdr>(ctx, 0).ok_or(DropReason::TRUNCATED)?;
    let ip = ptr_at::<Ipv6Hdr>(ctx, ETH_LEN).ok_or(DropReason::TRUNCATED)?;
    // SAFETY: bounds checked by ptr_at.
    let (dst_mac, src_mac, client, vip) =
        unsafe { ((*eth).dst, (*eth).src, (*ip).saddr, (*ip).daddr) };
    let room = size_of::<Ipv6Hdr>() + size_of::<IcmpHdr>();
    reshape(ctx, ETH_LEN + size_of::<Ipv6Hdr>() + QUOTE_DATA, room)?;
    let frame = ptr_at::<[u8; V6_FRAME]>(ctx, 0).ok_or(DropReason::ENCAP_FAILED)?;
    let eth = frame as *mut EthHdr;
    let mtu = (max_len + size_of::<Ipv6Hdr>() as u32).max(IPV6_MIN_MTU);
    // SAFETY: as in too_big_v4.
    unsafe {
        (*eth).dst = src_mac;
        (*eth).src = dst_mac;
        (*eth).proto = ETH_P_IPV6.to_be();
        let ip = (frame as *mut u8).add(ETH_LEN) as *mut Ipv6Hdr;
        (*ip).vtcfl = (6u32 << 28).to_be();
        (*ip).payload_len = (V6_MSG as u16).to_be();
        (*ip).next_hdr = PROTO_ICMPV6;
        (*ip).hop_limit = TTL;
        (*ip).saddr = vip;
        (*ip).daddr = client;
        let icmp = (frame as *mut u8).add(ETH_LEN + size_of::<Ipv6Hdr>()) as *mut IcmpHdr;
        (*icmp).kind = ICMPV6_PKT_TOOBIG;
        (*icmp).code = 0;
        (*icmp).check = 0;
        (*icmp).rest = mtu.to_be();
        // The pseudo-header's addresses sit right before the message, so one sum covers
        // both; its length and next-header words (32 bits each, network order) are the
        // seed.
        let seed = (V6_MSG as u32 + u32::from(PROTO_ICMPV6)).to_be();
        let sum = bpf_csum_diff(
            core::ptr::null_mut(),
            0,
            (*ip).saddr.as_mut_ptr() as *mut u32,
            (32 + V6_MSG) as u32,
            seed,
        );
        (*icmp).check = fold(sum);
    }
    Ok(xdp_action::XDP_TX)
}
