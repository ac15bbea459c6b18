//! Names and sizes of the maps the XDP program declares.
//!
//! Userspace opens maps by these names and pins each under
//! `<bpffs>/lb/<instance>/<name>`; `bpftool map dump pinned` finds them there.

/// VIP table: [`crate::vip::VipKey`] -> [`crate::vip::VipMeta`].
pub const VIPS: &str = "lb_vips";
/// Addresses that carry at least one VIP: [`crate::vip::VipAddrKey`] ->
/// [`crate::vip::VipAddrInfo`].
/// Looked up first, so non-VIP traffic costs one lookup and traffic to a VIP address on a
/// port no service serves can be dropped and counted.
pub const VIP_ADDRS: &str = "lb_vip_addrs";
/// IPv4 VIP addresses: [`crate::vip::VipAddr4Key`] -> [`crate::vip::VipAddrInfo`]
/// ([`VIP_ADDRS`] then holds the IPv6 ones).
pub const VIP_ADDRS4: &str = "lb_vip_addrs4";
/// VIP metas by id: [`crate::vip::VipMeta`] at index `id` (zeroed when the id is free),
/// for established packets (see [`crate::vip::VipMeta::vip_ref`]).
pub const VIP_METAS: &str = "lb_vip_metas";
/// One-slot array: the [`crate::filter::VipFilter`] over all VIP addresses.
pub const VIP_FILTER: &str = "lb_vip_filter";
/// Per-CPU counters per VIP, indexed by [`crate::vip::VipMeta::id`].
pub const VIP_STATS: &str = "lb_vip_stats";
/// Backends: index -> [`crate::backend::Backend`].
pub const BACKENDS: &str = "lb_backends";
/// Per-CPU counters per backend, indexed like [`BACKENDS`].
pub const BACKEND_STATS: &str = "lb_backend_stats";
/// Maglev tables: array of maps, slot [`crate::maglev::table_slot`] -> inner `u32` array.
pub const MAGLEV: &str = "lb_maglev";
/// Connection tracking of IPv6 flows: LRU hash [`crate::conntrack::FlowKey`] ->
/// [`crate::conntrack::FlowState`].
pub const CONNTRACK: &str = "lb_conntrack";
/// Connection tracking of IPv4 flows: [`crate::conntrack::FlowKeyV4`] -> same value.
pub const CONNTRACK4: &str = "lb_conntrack4";
/// Per-CPU drop counters, indexed by [`crate::stats::DropReason`].
pub const DROPS: &str = "lb_drops";
/// One-slot array with [`crate::settings::Settings`] for the XDP program.
pub const SETTINGS: &str = "lb_settings";
/// Decap program (on backends): VIP addresses whose IPIP packets are decapsulated,
/// [`crate::vip::VipAddrKey`] -> `u32` (reserved, 0).
pub const DECAP_VIPS: &str = "lb_decap_vips";

/// All maps pinned per instance, for cleanup and inspection. [`DECAP_VIPS`] is not pinned:
/// it belongs to the decap program, which runs on backends without an instance.
pub const ALL: &[&str] = &[
    VIPS,
    VIP_ADDRS,
    VIP_ADDRS4,
    VIP_METAS,
    VIP_FILTER,
    VIP_STATS,
    BACKENDS,
    BACKEND_STATS,
    MAGLEV,
    CONNTRACK,
    CONNTRACK4,
    DROPS,
    SETTINGS,
];

/// Most VIPs (address, port, protocol) one instance serves.
pub const MAX_VIPS: u32 = 512;
/// Flags of the conntrack LRU: `BPF_F_NO_COMMON_LRU`, per-CPU LRU lists, so inserting a
/// new flow does not contend on (or walk) one global list.
pub const CONNTRACK_FLAGS: u32 = 1 << 1;
/// Most distinct VIP addresses (a VIP address may carry many ports).
pub const MAX_VIP_ADDRS: u32 = MAX_VIPS;
/// Most backends (distinct addresses) over all VIPs of one instance.
pub const MAX_BACKENDS: u32 = 4096;
/// Conntrack entries compiled into the object; userspace overrides it at load time from
/// `l4.conntrack_size` (`EbpfLoader::set_max_entries`).
pub const CONNTRACK_DEFAULT_ENTRIES: u32 = 65536;
/// Most addresses the decap program serves on one backend.
pub const MAX_DECAP_VIPS: u32 = 64;
