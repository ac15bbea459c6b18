//! Names and sizes of the maps the XDP program declares.
//!
//! Userspace opens maps by these names and pins each under
//! `<bpffs>/lb/<instance>/<name>`; `bpftool map dump pinned` finds them there.

/// VIP table: [`crate::vip::VipKey`] -> [`crate::vip::VipMeta`].
pub const VIPS: &str = "lb_vips";
/// Per-CPU counters per VIP, indexed by [`crate::vip::VipMeta::id`].
pub const VIP_STATS: &str = "lb_vip_stats";
/// Per-CPU drop counters, indexed by [`crate::stats::DropReason`].
pub const DROPS: &str = "lb_drops";
/// One-slot array with [`crate::settings::Settings`] for the XDP program.
pub const SETTINGS: &str = "lb_settings";

/// All pinned map names, for cleanup and inspection.
pub const ALL: &[&str] = &[VIPS, VIP_STATS, DROPS, SETTINGS];

/// Most VIPs (address, port, protocol) one instance serves.
pub const MAX_VIPS: u32 = 512;
