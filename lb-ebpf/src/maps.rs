//! Map declarations and the only code that touches them.

use aya_ebpf::{
    btf_maps::{Array, ArrayOfMaps, HashMap, LruHashMap, PerCpuArray},
    macros::btf_map,
};
use lb_common::{
    backend::Backend,
    conntrack::{FlowKey, FlowKeyV4, FlowState},
    filter::{VipFilter, FILTER_BITS},
    maglev::{INNER_MAP_FLAGS, MAX_TABLE_SIZE, NO_BACKEND, TABLE_SLOTS},
    maps::{
        CONNTRACK_DEFAULT_ENTRIES, CONNTRACK_FLAGS, MAX_BACKENDS, MAX_DECAP_VIPS, MAX_VIPS,
        MAX_VIP_ADDRS,
    },
    settings::{Settings, FLAG_DEBUG_LOG},
    stats::{BackendStats, DropReason, VipStats},
    vip::{VipAddr4Key, VipAddrInfo, VipAddrKey, VipKey, VipMeta},
};

#[btf_map(name = "lb_vips")]
static VIPS: HashMap<VipKey, VipMeta, { MAX_VIPS as usize }> = HashMap::new();

#[btf_map(name = "lb_vip_addrs")]
static VIP_ADDRS: HashMap<VipAddrKey, VipAddrInfo, { MAX_VIP_ADDRS as usize }> = HashMap::new();

#[btf_map(name = "lb_vip_addrs4")]
static VIP_ADDRS4: HashMap<VipAddr4Key, VipAddrInfo, { MAX_VIP_ADDRS as usize }> = HashMap::new();

#[btf_map(name = "lb_vip_metas")]
static VIP_METAS: Array<VipMeta, { MAX_VIPS as usize }> = Array::new();

#[btf_map(name = "lb_vip_filter")]
static VIP_FILTER: Array<VipFilter, 1> = Array::new();

#[btf_map(name = "lb_vip_stats")]
static VIP_STATS: PerCpuArray<VipStats, { MAX_VIPS as usize }> = PerCpuArray::new();

#[btf_map(name = "lb_backends")]
static BACKENDS: Array<Backend, { MAX_BACKENDS as usize }> = Array::new();

#[btf_map(name = "lb_backend_stats")]
static BACKEND_STATS: PerCpuArray<BackendStats, { MAX_BACKENDS as usize }> = PerCpuArray::new();

#[btf_map(name = "lb_maglev")]
static MAGLEV: ArrayOfMaps<
    Array<u32, { MAX_TABLE_SIZE as usize }, { INNER_MAP_FLAGS as usize }>,
    { TABLE_SLOTS as usize },
> = ArrayOfMaps::new();

#[btf_map(name = "lb_conntrack")]
static CONNTRACK: LruHashMap<
    FlowKey,
    FlowState,
    { CONNTRACK_DEFAULT_ENTRIES as usize },
    { CONNTRACK_FLAGS as usize },
> = LruHashMap::new();

#[btf_map(name = "lb_conntrack4")]
static CONNTRACK4: LruHashMap<
    FlowKeyV4,
    FlowState,
    { CONNTRACK_DEFAULT_ENTRIES as usize },
    { CONNTRACK_FLAGS as usize },
> = LruHashMap::new();

#[btf_map(name = "lb_drops")]
static DROPS: PerCpuArray<u64, { DropReason::COUNT as usize }> = PerCpuArray::new();

#[btf_map(name = "lb_settings")]
static SETTINGS: Array<Settings, 1> = Array::new();

#[btf_map(name = "lb_decap_vips")]
static DECAP_VIPS: HashMap<VipAddrKey, u32, { MAX_DECAP_VIPS as usize }> = HashMap::new();

/// Whether the VIP filter has bit `bit` (see [`lb_common::filter`]): one inlined array
/// lookup and a load.
#[inline(always)]
pub fn vip_filter(bit: u32) -> bool {
    let Some(f) = VIP_FILTER.get(0) else {
        return false;
    };
    let b = bit & (FILTER_BITS - 1);
    match f.words.get((b >> 6) as usize) {
        Some(w) => w & (1u64 << (b & 63)) != 0,
        None => false,
    }
}

/// The meta of VIP `id` (zeroed when the id is free).
#[inline(always)]
pub fn vip_meta(id: u32) -> Option<&'static VipMeta> {
    VIP_METAS.get(id)
}

/// The VIP address entry of an IPv4 address, if any VIP lives on it.
#[inline(always)]
pub fn vip_addr4(key: &VipAddr4Key) -> Option<*const VipAddrInfo> {
    VIP_ADDRS4.get_ptr(key)
}

/// The VIP address entry of an IPv6 address, if any VIP lives on it.
#[inline(always)]
pub fn vip_addr(key: &VipAddrKey) -> Option<*const VipAddrInfo> {
    VIP_ADDRS.get_ptr(key)
}

/// Looks up the VIP a packet is addressed to.
#[inline(always)]
pub fn vip(key: &VipKey) -> Option<&'static VipMeta> {
    // SAFETY: a map value stays valid for the program run; userspace replaces entries
    // whole (a hash map update installs a new element), so fields are never torn.
    unsafe { VIPS.get(key) }
}

/// The backend at `index` (userspace rewrites entries whole). A reference to the map
/// value rather than a copy: the fast path reads only the flags and the MACs.
#[inline(always)]
pub fn backend(index: u32) -> Option<&'static Backend> {
    BACKENDS.get(index)
}

/// The backend id in slot `hash % size` of Maglev table `table`.
#[inline(always)]
pub fn maglev_pick(table: u32, size: u32, hash: u32) -> u32 {
    if size == 0 {
        return NO_BACKEND;
    }
    match MAGLEV.get_value(table, &(hash % size)) {
        Some(id) => *id,
        None => NO_BACKEND,
    }
}

/// The conntrack entry of an IPv4 flow, to read and refresh in place.
#[inline(always)]
pub fn flow4(key: &FlowKeyV4) -> Option<*mut FlowState> {
    CONNTRACK4.get_ptr_mut(key)
}

/// The conntrack entry of an IPv6 flow.
#[inline(always)]
pub fn flow6(key: &FlowKey) -> Option<*mut FlowState> {
    CONNTRACK.get_ptr_mut(key)
}

/// Records an IPv4 flow's backend (LRU: the least recently used entry makes room). A
/// failed insert only costs a Maglev lookup on the flow's next packet.
#[inline(always)]
pub fn insert_flow4(key: &FlowKeyV4, state: &FlowState) {
    let _ = CONNTRACK4.insert(key, state, 0);
}

/// Records an IPv6 flow's backend.
#[inline(always)]
pub fn insert_flow6(key: &FlowKey, state: &FlowState) {
    let _ = CONNTRACK.insert(key, state, 0);
}

/// Adds one packet of `bytes` to the VIP's per-CPU counters; `forwarded` says whether it
/// went to a backend as a new flow (`Some(true)`) or from conntrack (`Some(false)`).
#[inline(always)]
pub fn count_vip(id: u32, bytes: u64, forwarded: Option<bool>) {
    if let Some(s) = VIP_STATS.get_ptr_mut(id) {
        // SAFETY: per-CPU slot; only this CPU writes it while the program runs.
        unsafe {
            (*s).packets += 1;
            (*s).bytes += bytes;
            match forwarded {
                Some(true) => (*s).new_flows += 1,
                Some(false) => (*s).ct_hits += 1,
                None => {}
            }
        }
    }
}

/// Adds one packet to a backend's per-CPU counters.
#[inline(always)]
pub fn count_backend(index: u32, bytes: u64, new_flow: bool) {
    if let Some(s) = BACKEND_STATS.get_ptr_mut(index) {
        // SAFETY: per-CPU slot.
        unsafe {
            (*s).packets += 1;
            (*s).bytes += bytes;
            if new_flow {
                (*s).new_flows += 1;
            }
        }
    }
}

/// Counts a dropped packet under `reason`.
#[inline(always)]
pub fn count_drop(reason: u32) {
    if let Some(c) = DROPS.get_ptr_mut(reason) {
        // SAFETY: per-CPU slot.
        unsafe { *c += 1 };
    }
}

/// Whether userspace turned on debug logging ([`FLAG_DEBUG_LOG`]): one array lookup (the
/// verifier inlines it), one load and a branch. Asked only off the established path.
#[inline(always)]
pub fn debug_log() -> bool {
    match SETTINGS.get(0) {
        Some(s) => s.flags & FLAG_DEBUG_LOG != 0,
        None => false,
    }
}

/// Whether the decap program serves this (inner destination) address.
#[inline(always)]
pub fn is_decap_vip(key: &VipAddrKey) -> bool {
    DECAP_VIPS.get_ptr(key).is_some()
}
