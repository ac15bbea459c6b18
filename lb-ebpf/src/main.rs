//! The load balancer's XDP programs.
//!
//! `lb_xdp` (front interface): non-VIP traffic passes untouched and uncounted. Traffic to a
//! VIP address is checked (malformed or unsupported packets are dropped and counted per
//! reason), matched to its VIP (address, port, protocol), counted, and handled by the VIP's
//! mode: `pass` to the local stack, `dsr` and `ipip` to a backend chosen by conntrack or
//! Maglev. `lb_decap` (backends of `ipip` VIPs) strips the outer header. `xdp_pass_trivial`
//! is the benchmark's baseline.
#![no_std]
#![no_main]

mod conntrack;
mod csum;
mod decap;
mod forward;
mod icmp;
mod log;
mod maps;
mod parse;

use aya_ebpf::{bindings::xdp_action, macros::xdp, programs::XdpContext};
use conntrack::Key;
use lb_common::{
    filter,
    stats::DropReason,
    vip::{
        VipAddrInfo, VipMeta, ADDR_INLINE_SERVICES, FAMILY_V4, MODE_DSR, MODE_IPIP, MODE_PASS,
        VIP_REF_ID_MASK,
    },
};
use parse::{Flow, L3, L4};

/// Entry point: thin by convention; all logic is in [`try_lb`].
#[xdp]
pub fn lb_xdp(ctx: XdpContext) -> u32 {
    match try_lb(&ctx) {
        Ok(action) => action,
        Err(()) => xdp_action::XDP_ABORTED,
    }
}

/// Backend-side decapsulation of `ipip` traffic.
#[xdp]
pub fn lb_decap(ctx: XdpContext) -> u32 {
    match decap::try_decap(&ctx) {
        Ok(action) => action,
        Err(()) => xdp_action::XDP_ABORTED,
    }
}

/// The benchmark's baseline: does nothing.
#[xdp]
pub fn xdp_pass_trivial(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_PASS
}

/// Drops and counts.
#[inline(always)]
fn drop(reason: u32) -> Result<u32, ()> {
    maps::count_drop(reason);
    if maps::debug_log() {
        log::drop(reason);
    }
    Ok(xdp_action::XDP_DROP)
}

#[inline(always)]
fn try_lb(ctx: &XdpContext) -> Result<u32, ()> {
    // The VIP filter first: a clear bit means no VIP, and the packet passes after one
    // inlined array lookup. Each family then runs its own copy of `serve`, specialized to
    // its conntrack key.
    match parse::l3(ctx) {
        L3::V4(ip) => {
            // SAFETY: bounds checked by ptr_at (in l3).
            let ip = unsafe { &*ip };
            if !maps::vip_filter(filter::bit_v4(ip.daddr)) {
                return Ok(xdp_action::XDP_PASS);
            }
            match parse::flow_v4(ctx, ip) {
                L4::Flow(flow) => serve(ctx, &flow),
                L4::Pass => Ok(xdp_action::XDP_PASS),
                // Malformed: dropped only when it really is for a VIP address (the
                // filter can say yes for other addresses).
                L4::Drop(reason) => match maps::vip_addr4(&parse::addr4_key(ip)) {
                    Some(_) => drop(reason),
                    None => Ok(xdp_action::XDP_PASS),
                },
            }
        }
        L3::V6(ip) => {
            // SAFETY: bounds checked by ptr_at (in l3).
            let ip = unsafe { &*ip };
            if !maps::vip_filter(filter::bit_v6(&ip.daddr)) {
                return Ok(xdp_action::XDP_PASS);
            }
            match parse::flow_v6(ctx, ip) {
                L4::Flow(flow) => serve(ctx, &flow),
                L4::Pass => Ok(xdp_action::XDP_PASS),
                L4::Drop(reason) => match maps::vip_addr(&parse::addr_key_v6(ip)) {
                    Some(_) => drop(reason),
                    None => Ok(xdp_action::XDP_PASS),
                },
            }
        }
        L3::Other => Ok(xdp_action::XDP_PASS),
    }
}

/// The meta of the inline service matching (port, proto), if any; unrolled (4 slots).
#[inline(always)]
fn inline_meta(info: &VipAddrInfo, port: u16, proto: u8) -> Option<&VipMeta> {
    let s = &info.slots;
    let n = info.services;
    if n > 0 && s[0].port == port && s[0].proto == proto {
        return Some(&s[0].meta);
    }
    if n > 1 && s[1].port == port && s[1].proto == proto {
        return Some(&s[1].meta);
    }
    if n > 2 && s[2].port == port && s[2].proto == proto {
        return Some(&s[2].meta);
    }
    if n > 3 && s[3].port == port && s[3].proto == proto {
        return Some(&s[3].meta);
    }
    None
}

/// Handles a TCP/UDP packet whose destination passed the VIP filter.
///
/// The established path first (TCP SYNs skip it): a conntrack entry names its VIP by
/// reference, so the VIP's meta comes from an array (no hash lookup) and is trusted only
/// if the reference still matches. Anything else (no entry, a stale reference, a backend gone, an idle timeout,
/// a `pass` VIP) takes the full path: the VIP address maps, then a Maglev pick.
#[inline(always)]
fn serve<K: Key>(ctx: &XdpContext, flow: &Flow<K>) -> Result<u32, ()> {
    let k = &flow.key;
    // A SYN skips the lookup: it starts a new connection, so whatever entry the 5-tuple
    // had is replaced by this pick (a cold bucket walk less per connection).
    let ct = if flow.syn { None } else { k.lookup() };
    if let Some(st) = ct {
        // SAFETY: map value pointer, valid for this run; racing writers touch whole
        // u64/u32 fields.
        let st = unsafe { &mut *st };
        if let Some(meta) = maps::vip_meta(st.vip_ref & VIP_REF_ID_MASK) {
            if meta.vip_ref == st.vip_ref && meta.mode != MODE_PASS {
                if let Some(choice) = conntrack::established(st, meta) {
                    return forward(ctx, flow, meta, choice);
                }
            }
        }
    }
    let Some(info) = k.vip_addr_info() else {
        return Ok(xdp_action::XDP_PASS);
    };
    // SAFETY: map value pointer, valid for this run; userspace replaces values whole.
    let info = unsafe { &*info };
    // Up to ADDR_INLINE_SERVICES services on the address (the common case): their metas
    // came with the address; more than that, the VIP map has them.
    let meta = if info.services as usize <= ADDR_INLINE_SERVICES {
        match inline_meta(info, k.dport(), k.proto()) {
            Some(meta) => meta,
            None => return drop(DropReason::NO_SERVICE),
        }
    } else {
        match maps::vip(&k.vip_key()) {
            Some(meta) => meta,
            None => return drop(DropReason::NO_SERVICE),
        }
    };
    if meta.mode == MODE_PASS {
        maps::count_vip(meta.id, packet_len(ctx), None);
        return Ok(xdp_action::XDP_PASS);
    }
    // Before the pick, so a too-big packet creates no flow.
    if let Some(r) = too_big(ctx, flow, meta) {
        return r;
    }
    match conntrack::choose(k, meta, ct) {
        Ok(choice) => forward(ctx, flow, meta, choice),
        Err(reason) => {
            maps::count_vip(meta.id, packet_len(ctx), None);
            drop(reason)
        }
    }
}

/// The frame's length, Ethernet header included (what the byte counters count).
#[inline(always)]
fn packet_len(ctx: &XdpContext) -> u64 {
    (ctx.data_end() - ctx.data()) as u64
}

/// An `ipip` packet too big for the egress MTU once encapsulated: the client is told with
/// ICMP instead (the NIC would drop it silently). `None`: it fits, or the VIP is `dsr`.
#[inline(always)]
fn too_big<K: Key>(ctx: &XdpContext, flow: &Flow<K>, meta: &VipMeta) -> Option<Result<u32, ()>> {
    if meta.mode != MODE_IPIP
        || meta.encap_max_len == 0
        || u32::from(flow.ip_len) <= meta.encap_max_len
    {
        return None;
    }
    maps::count_vip(meta.id, packet_len(ctx), None);
    let sent = if K::FAMILY == FAMILY_V4 {
        icmp::too_big_v4(ctx, meta.encap_max_len)
    } else {
        icmp::too_big_v6(ctx, meta.encap_max_len)
    };
    Some(match sent {
        Ok(action) => {
            maps::count_drop(DropReason::TOO_BIG);
            if maps::debug_log() {
                log::too_big(K::FAMILY, u32::from(flow.ip_len), meta.encap_max_len);
            }
            Ok(action)
        }
        Err(reason) => drop(reason),
    })
}

/// Sends the packet to the chosen backend per the VIP's mode and counts it. Counters are
/// written once, at the end, so no map pointer lives across the helper calls before.
#[inline(always)]
fn forward<K: Key>(
    ctx: &XdpContext,
    flow: &Flow<K>,
    meta: &VipMeta,
    choice: conntrack::Choice,
) -> Result<u32, ()> {
    let bytes = packet_len(ctx);
    let result = match meta.mode {
        MODE_DSR => forward::dsr(ctx, choice.backend),
        MODE_IPIP => {
            if !choice.new_flow {
                // Established packets meet the size check here (new ones did above).
                if let Some(r) = too_big(ctx, flow, meta) {
                    return r;
                }
            }
            forward::ipip(ctx, flow, meta, choice.backend, choice.hash)
        }
        _ => Err(DropReason::NO_SERVICE),
    };
    match result {
        Ok(action) => {
            maps::count_vip(meta.id, bytes, Some(choice.new_flow));
            maps::count_backend(choice.index, bytes, choice.new_flow);
            Ok(action)
        }
        Err(reason) => {
            maps::count_vip(meta.id, bytes, None);
            drop(reason)
        }
    }
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

/// License declaration the kernel reads to allow GPL-only helpers.
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
