//! The backend side of `ipip` (Katran's decap): strips the outer IPv4/IPv6 header of
//! IP-in-IP packets whose inner destination is one of this backend's VIPs, and passes the
//! inner packet to the local stack, so backends need no tunnel driver.

use crate::{
    maps,
    parse::{
        self, ptr_at, EthHdr, Ipv4Hdr, Ipv6Hdr, ETH_LEN, ETH_P_IP, ETH_P_IPV6, L3, PROTO_IPIP,
        PROTO_IPV6,
    },
};
use aya_ebpf::{bindings::xdp_action, helpers::bpf_xdp_adjust_head, programs::XdpContext};
use core::mem::size_of;

/// Decapsulates if the packet is ours; every other packet passes untouched.
#[inline(always)]
pub fn try_decap(ctx: &XdpContext) -> Result<u32, ()> {
    let (outer_len, inner_proto) = match parse::l3(ctx) {
        L3::V4(ip) => {
            // SAFETY: bounds checked by ptr_at (in l3).
            let ip = unsafe { &*ip };
            if ip.vihl != 0x45 || ip.proto != PROTO_IPIP {
                return Ok(xdp_action::XDP_PASS);
            }
            let Some(inner) = ptr_at::<Ipv4Hdr>(ctx, ETH_LEN + size_of::<Ipv4Hdr>()) else {
                return Ok(xdp_action::XDP_PASS);
            };
            // SAFETY: bounds checked by ptr_at.
            if !maps::is_decap_vip(&parse::addr_key_v4(unsafe { &*inner })) {
                return Ok(xdp_action::XDP_PASS);
            }
            (size_of::<Ipv4Hdr>(), ETH_P_IP)
        }
        L3::V6(ip) => {
            // SAFETY: bounds checked by ptr_at (in l3).
            if unsafe { (*ip).next_hdr } != PROTO_IPV6 {
                return Ok(xdp_action::XDP_PASS);
            }
            let Some(inner) = ptr_at::<Ipv6Hdr>(ctx, ETH_LEN + size_of::<Ipv6Hdr>()) else {
                return Ok(xdp_action::XDP_PASS);
            };
            // SAFETY: bounds checked by ptr_at.
            if !maps::is_decap_vip(&parse::addr_key_v6(unsafe { &*inner })) {
                return Ok(xdp_action::XDP_PASS);
            }
            (size_of::<Ipv6Hdr>(), ETH_P_IPV6)
        }
        L3::Other => return Ok(xdp_action::XDP_PASS),
    };
    let eth = ptr_at::<EthHdr>(ctx, 0).ok_or(())?;
    // SAFETY: bounds checked by ptr_at.
    let (dst, src) = unsafe { ((*eth).dst, (*eth).src) };
    // SAFETY: ctx.ctx is the program's context.
    if unsafe { bpf_xdp_adjust_head(ctx.ctx, outer_len as i32) } != 0 {
        return Ok(xdp_action::XDP_PASS);
    }
    let eth = ptr_at::<EthHdr>(ctx, 0).ok_or(())?;
    // SAFETY: bounds checked by ptr_at.
    unsafe {
        (*eth).dst = dst;
        (*eth).src = src;
        (*eth).proto = inner_proto.to_be();
    }
    Ok(xdp_action::XDP_PASS)
}
