//! Map declarations and the only code that touches them.

use aya_ebpf::{
    btf_maps::{Array, HashMap, PerCpuArray},
    macros::btf_map,
};
use lb_common::{
    maps::MAX_VIPS,
    settings::Settings,
    stats::{DropReason, VipStats},
    vip::{VipKey, VipMeta},
};

#[btf_map(name = "lb_vips")]
static VIPS: HashMap<VipKey, VipMeta, { MAX_VIPS as usize }> = HashMap::new();

#[btf_map(name = "lb_vip_stats")]
static VIP_STATS: PerCpuArray<VipStats, { MAX_VIPS as usize }> = PerCpuArray::new();

#[btf_map(name = "lb_drops")]
static DROPS: PerCpuArray<u64, { DropReason::COUNT as usize }> = PerCpuArray::new();

#[btf_map(name = "lb_settings")]
static SETTINGS: Array<Settings, 1> = Array::new();

/// Looks up the VIP a packet is addressed to.
#[inline(always)]
pub fn vip(key: &VipKey) -> Option<VipMeta> {
    // SAFETY: the value is copied out at once; userspace replaces entries whole.
    unsafe { VIPS.get(key).copied() }
}

/// Adds one packet of `bytes` to the VIP's per-CPU counters.
#[inline(always)]
pub fn count_vip(id: u32, bytes: u64) {
    if let Some(s) = VIP_STATS.get_ptr_mut(id) {
        // SAFETY: per-CPU slot; only this CPU writes it while the program runs.
        unsafe {
            (*s).packets += 1;
            (*s).bytes += bytes;
        }
    }
}

/// Counts a dropped packet under `reason`.
#[allow(dead_code)]
#[inline(always)]
pub fn count_drop(reason: u32) {
    if let Some(c) = DROPS.get_ptr_mut(reason) {
        // SAFETY: per-CPU slot.
        unsafe { *c += 1 };
    }
}

/// The instance's run-time settings (all zero until userspace writes them).
#[allow(dead_code)]
#[inline(always)]
pub fn settings() -> Settings {
    SETTINGS.get(0).copied().unwrap_or_default()
}
