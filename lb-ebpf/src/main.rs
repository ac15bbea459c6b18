//! The load balancer's XDP program.
//!
//! Non-VIP traffic passes untouched. Traffic to a configured VIP (address, port, protocol)
//! is counted per VIP in per-CPU counters and handled by the VIP's mode.
#![no_std]
#![no_main]

mod maps;
mod parse;

use aya_ebpf::{bindings::xdp_action, macros::xdp, programs::XdpContext};
use lb_common::vip::MODE_PASS;

/// Entry point: thin by convention; all logic is in [`try_lb`].
#[xdp]
pub fn lb_xdp(ctx: XdpContext) -> u32 {
    match try_lb(&ctx) {
        Ok(action) => action,
        Err(()) => xdp_action::XDP_ABORTED,
    }
}

#[inline(always)]
fn try_lb(ctx: &XdpContext) -> Result<u32, ()> {
    let flow = match parse::parse(ctx) {
        parse::Parsed::Flow(flow) => flow,
        parse::Parsed::NotIp => return Ok(xdp_action::XDP_PASS),
    };
    let Some(meta) = maps::vip(&flow.vip_key()) else {
        return Ok(xdp_action::XDP_PASS);
    };
    maps::count_vip(meta.id, (ctx.data_end() - ctx.data()) as u64);
    match meta.mode {
        MODE_PASS => Ok(xdp_action::XDP_PASS),
        _ => Ok(xdp_action::XDP_PASS),
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
