//! Forwarding: `dsr` rewrites the Ethernet addresses, `ipip` encapsulates; both transmit
//! back out of the interface the packet came in on (`XDP_TX`). `Err` is a [`DropReason`];
//! the packet is only modified once every check has passed, so a dropped packet is never
//! half-rewritten.

use crate::{
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
    vip::{VipMeta, FAMILY_V4, FAMILY_V6},
};

/// TTL / hop limit of the outer header.
const OUTER_TTL: u8 = 64;

/// Writes the Ethernet header towards `b`.
#[inline(always)]
fn write_eth(eth: *mut EthHdr, b: &Backend, proto: u16) {
    // SAFETY: `eth` comes from ptr_at, which checked the bounds.
    unsafe {
        (*eth).dst = b.mac;
        (*eth).src = b.src_mac;
        (*eth).proto = proto.to_be();
    }
}

/// L2 direct server return: new MACs, same IP packet.
#[inline(always)]
pub fn dsr(ctx: &XdpContext, b: &Backend) -> Result<u32, u32> {
    let eth = ptr_at::<EthHdr>(ctx, 0).ok_or(DropReason::TRUNCATED)?;
    // SAFETY: bounds checked by ptr_at.
    unsafe {
        (*eth).dst = b.mac;
        (*eth).src = b.src_mac;
    }
    Ok(xdp_action::XDP_TX)
}

/// The outer source's last 32 bits: the prefix with host bits from the flow hash.
#[inline(always)]
fn encap_low32(meta: &VipMeta, at: usize, hash: u32) -> [u8; 4] {
    let p = &meta.encap_src;
    let prefix = u32::from_be_bytes([p[at], p[at + 1], p[at + 2], p[at + 3]]);
    let mask = meta.encap_host_mask;
    ((prefix & !mask) | (hash & mask)).to_be_bytes()
}

/// IPv4-in-IPv4 or IPv6-in-IPv6 towards `b`, per the packet's family.
#[inline(always)]
pub fn ipip(
    ctx: &XdpContext,
    flow: &Flow,
    meta: &VipMeta,
    b: &Backend,
    hash: u32,
) -> Result<u32, u32> {
    // The outer length field must hold the inner packet plus the outer header.
    if flow.key.family != b.family || flow.ip_len > u16::MAX - size_of::<Ipv6Hdr>() as u16 {
        return Err(DropReason::ENCAP_FAILED);
    }
    if b.family == FAMILY_V4 {
        ipip_v4(ctx, flow, meta, b, hash)
    } else {
        ipip_v6(ctx, flow, meta, b, hash)
    }
}

#[inline(always)]
fn ipip_v4(
    ctx: &XdpContext,
    flow: &Flow,
    meta: &VipMeta,
    b: &Backend,
    hash: u32,
) -> Result<u32, u32> {
    let mut hdr = Ipv4Hdr {
        vihl: 0x45,
        tos: flow.tos,
        tot_len: flow
            .ip_len
            .wrapping_add(size_of::<Ipv4Hdr>() as u16)
            .to_be(),
        id: 0,
        frag_off: 0,
        ttl: OUTER_TTL,
        proto: PROTO_IPIP,
        check: 0,
        saddr: encap_low32(meta, 0, hash),
        daddr: [b.addr[0], b.addr[1], b.addr[2], b.addr[3]],
    };
    hdr.check = csum::ipv4_header(&hdr);
    // SAFETY: ctx.ctx is the program's context.
    if unsafe { bpf_xdp_adjust_head(ctx.ctx, -(size_of::<Ipv4Hdr>() as i32)) } != 0 {
        return Err(DropReason::ENCAP_FAILED);
    }
    let eth = ptr_at::<EthHdr>(ctx, 0).ok_or(DropReason::ENCAP_FAILED)?;
    let ip = ptr_at::<Ipv4Hdr>(ctx, ETH_LEN).ok_or(DropReason::ENCAP_FAILED)?;
    write_eth(eth, b, ETH_P_IP);
    // SAFETY: bounds checked by ptr_at.
    unsafe { *ip = hdr };
    Ok(xdp_action::XDP_TX)
}

#[inline(always)]
fn ipip_v6(
    ctx: &XdpContext,
    flow: &Flow,
    meta: &VipMeta,
    b: &Backend,
    hash: u32,
) -> Result<u32, u32> {
    if b.family != FAMILY_V6 {
        return Err(DropReason::ENCAP_FAILED);
    }
    let mut saddr = meta.encap_src;
    let low = encap_low32(meta, 12, hash);
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
