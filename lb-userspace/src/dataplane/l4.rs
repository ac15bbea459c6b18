//! Writing the L4 state: VIPs, VIP addresses, backends and Maglev tables.
//!
//! Order matters, because the program reads these maps while they change: backends are
//! written before any table points at them; a new table goes into a fresh inner array in
//! the VIP's unused slot and the VIP's meta (slot and size) is rewritten only after, so a
//! packet sees one whole table; VIPs and addresses that went away are removed next; and a
//! removed backend's entry is cleared last, when no table names it any more, which makes
//! its conntrack entries re-pick.

mod xdp_log;

use super::{map_err, stats, typed, typed_mut, DataPlane, DataPlaneError};
use crate::{
    config::{L4Config, Service, ServiceMode},
    maglev::{self, MaglevBackend},
};
use aya::maps::{Array, ArrayOfMaps, HashMap, MapData, PerCpuArray, PerCpuValues};
use lb_common::{
    backend::{Backend, BACKEND_DRAINING, BACKEND_UP},
    filter::{self, VipFilter},
    maglev::{table_slot, INNER_MAP_FLAGS},
    maps::{self as names, MAX_BACKENDS, MAX_VIPS},
    settings::{Settings, FLAG_DEBUG_LOG},
    stats::{BackendStats, VipStats},
    vip::{
        vip_ref, VipAddr4Key, VipAddrInfo, VipAddrKey, VipAddrSlot, VipKey, VipMeta, FAMILY_V4,
        FAMILY_V6, MODE_DSR, MODE_IPIP, MODE_PASS, VIP_REF_ID_BITS, VIP_REF_ID_MASK,
    },
};
use std::{
    collections::{HashMap as StdHashMap, HashSet},
    net::{IpAddr, SocketAddr},
};

/// Ethernet addresses to reach one backend with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct L2Addr {
    /// Destination: the backend's MAC (`dsr`) or its next hop's (`ipip`).
    pub dst: [u8; 6],
    /// Source: the MAC of our interface the program transmits on.
    pub src: [u8; 6],
    /// MTU of that interface: the default size limit of `ipip` packets (`l4.ipip_mtu`).
    pub mtu: u16,
}

/// Resolved link-layer addresses by backend address; a backend missing here is treated as
/// unreachable (no new flows, established ones re-picked).
pub type L2Map = StdHashMap<IpAddr, L2Addr>;

/// The IPv4 address-set key of an IPv4 [`VipAddrKey`].
fn v4_key(a: &VipAddrKey) -> VipAddr4Key {
    VipAddr4Key {
        addr: [a.addr[0], a.addr[1], a.addr[2], a.addr[3]],
    }
}

/// The id/slot generation a VIP currently uses, from its `table` field.
fn generation(meta: &VipMeta) -> u32 {
    meta.table & 1
}

fn family(ip: IpAddr) -> u8 {
    if ip.is_ipv4() {
        FAMILY_V4
    } else {
        FAMILY_V6
    }
}

/// Gives every key of `wanted` that has no id yet the lowest free id below `max` (ids of
/// existing keys never move, so conntrack entries stay valid); returns the new ids.
fn assign_ids<K: Copy + Eq + std::hash::Hash>(
    ids: &mut StdHashMap<K, u32>,
    wanted: &[K],
    max: u32,
    what: &'static str,
) -> Result<Vec<u32>, DataPlaneError> {
    let mut used: HashSet<u32> = ids.values().copied().collect();
    let mut fresh = Vec::new();
    for k in wanted {
        if !ids.contains_key(k) {
            let id = free_id(&used, max).ok_or(DataPlaneError::Full { what, max })?;
            used.insert(id);
            ids.insert(*k, id);
            fresh.push(id);
        }
    }
    Ok(fresh)
}

/// The lowest id not in `used`, below `max`.
fn free_id(used: &HashSet<u32>, max: u32) -> Option<u32> {
    (0..max).find(|i| !used.contains(i))
}

impl DataPlane {
    /// Reads the ids a previous run left in the pinned maps, so a restart keeps them.
    pub(super) fn adopt_pinned_ids(&mut self) -> Result<(), DataPlaneError> {
        let vips: HashMap<&MapData, VipKey, VipMeta> = typed(&self.ebpf, names::VIPS)?;
        for (k, m) in vips.iter().filter_map(Result::ok) {
            self.vip_ids.insert(k, m.id);
        }
        let backends: Array<&MapData, Backend> = typed(&self.ebpf, names::BACKENDS)?;
        for i in 0..MAX_BACKENDS {
            if let Ok(b) = backends.get(&i, 0) {
                if b.flags != 0 {
                    let ip = if b.family == FAMILY_V4 {
                        IpAddr::from([b.addr[0], b.addr[1], b.addr[2], b.addr[3]])
                    } else {
                        IpAddr::from(b.addr)
                    };
                    self.backend_ids.insert(ip, i);
                }
            }
        }
        Ok(())
    }

    /// Makes the maps hold exactly `services` (VIPs, addresses, backends, Maglev tables),
    /// with Ethernet addresses from `l2`. Established flows keep their backend unless it
    /// was removed or became unreachable.
    pub fn sync(&mut self, services: &[Service], l2: &L2Map) -> Result<(), DataPlaneError> {
        // 1. Ids: keep existing ones, allocate the lowest free ones for new VIPs/backends.
        let wanted_vips: Vec<VipKey> = services.iter().map(super::vip_key).collect();
        let removed_vip_ids: Vec<u32> = self
            .vip_ids
            .iter()
            .filter(|(k, _)| !wanted_vips.contains(k))
            .map(|(_, i)| *i)
            .collect();
        self.vip_ids.retain(|k, _| wanted_vips.contains(k));
        let fresh_vips = assign_ids(&mut self.vip_ids, &wanted_vips, MAX_VIPS, "VIPs")?;
        let wanted_backends: Vec<IpAddr> = {
            let mut seen = HashSet::new();
            services
                .iter()
                .filter(|s| s.mode.is_l4())
                .flat_map(|s| s.backends.iter().map(|b| b.addr))
                .filter(|a| seen.insert(*a))
                .collect()
        };
        let removed_backends: Vec<(IpAddr, u32)> = self
            .backend_ids
            .iter()
            .filter(|(a, _)| !wanted_backends.contains(a))
            .map(|(a, i)| (*a, *i))
            .collect();
        let fresh_backends = assign_ids(
            &mut self.backend_ids,
            &wanted_backends,
            MAX_BACKENDS,
            "backends",
        )?;

        // 2. Counters of fresh ids start at zero (the slot may have served a removed one).
        self.zero_stats(&fresh_vips, &fresh_backends)?;

        // 3. Backends, before any table names them. Draining = up, but weight 0.
        let draining: HashSet<IpAddr> = services
            .iter()
            .flat_map(|s| s.backends.iter())
            .filter(|b| b.weight == 0)
            .map(|b| b.addr)
            .collect();
        {
            let mut arr: Array<&mut MapData, Backend> = typed_mut(&mut self.ebpf, names::BACKENDS)?;
            for a in &wanted_backends {
                let id = self.backend_ids[a];
                let entry = match l2.get(a) {
                    Some(l2) => Backend {
                        addr: maglev::wire_addr(*a),
                        mac: l2.dst,
                        src_mac: l2.src,
                        family: family(*a),
                        flags: BACKEND_UP
                            | if draining.contains(a) {
                                BACKEND_DRAINING
                            } else {
                                0
                            },
                        _pad: [0; 2],
                    },
                    // Unreachable: keep the id (flows come back when it resolves) but down.
                    None => Backend {
                        addr: maglev::wire_addr(*a),
                        family: family(*a),
                        ..Default::default()
                    },
                };
                arr.set(id, entry, 0).map_err(map_err(names::BACKENDS))?;
            }
        }

        // 4. Tables (double-buffered) and VIP metas.
        let mut by_addr: StdHashMap<VipAddrKey, Vec<(VipKey, VipMeta)>> = StdHashMap::new();
        for (svc, key) in services.iter().zip(&wanted_vips) {
            let id = self.vip_ids[key];
            let current: Option<VipMeta> = {
                let vips: HashMap<&MapData, VipKey, VipMeta> = typed(&self.ebpf, names::VIPS)?;
                vips.get(key, 0).ok()
            };
            let mut meta = VipMeta {
                id,
                ..Default::default()
            };
            match svc.mode {
                ServiceMode::Pass | ServiceMode::Http => meta.mode = MODE_PASS,
                ServiceMode::Dsr | ServiceMode::Ipip => {
                    meta.mode = if svc.mode == ServiceMode::Dsr {
                        MODE_DSR
                    } else {
                        MODE_IPIP
                    };
                    let mb: Vec<MaglevBackend> = svc
                        .backends
                        .iter()
                        .map(|b| {
                            let w = if l2.contains_key(&b.addr) {
                                b.weight
                            } else {
                                0
                            };
                            MaglevBackend::from_addr(
                                self.backend_ids[&b.addr],
                                w,
                                SocketAddr::new(b.addr, 0),
                            )
                        })
                        .collect();
                    let table = maglev::build_table(svc.table_size, &mb).map_err(|source| {
                        DataPlaneError::Maglev {
                            service: svc.name.clone(),
                            source,
                        }
                    })?;
                    let unchanged = current.as_ref().is_some_and(|c| {
                        c.id == id
                            && c.table_size == svc.table_size
                            && self.tables.get(key) == Some(&table)
                    });
                    if unchanged {
                        let c = current.unwrap_or_default();
                        meta.table = c.table;
                        meta.table_size = c.table_size;
                    } else {
                        let gen = match &current {
                            Some(c) if c.id == id && c.table_size != 0 => 1 - generation(c),
                            _ => 0,
                        };
                        let slot = table_slot(id, gen);
                        self.write_table(slot, &table)?;
                        meta.table = slot;
                        meta.table_size = svc.table_size;
                        self.tables.insert(*key, table);
                    }
                }
            }
            meta_encap(&mut meta, svc, &self.l4, l2);
            meta.ct_timeout_jiffies = match svc.vip.protocol {
                crate::config::Protocol::Tcp => self.tcp_timeout_jiffies,
                crate::config::Protocol::Udp => self.udp_timeout_jiffies,
            };
            meta.vip_ref = self.vip_ref(id, fresh_vips.contains(&id))?;
            let mut vips: HashMap<&mut MapData, VipKey, VipMeta> =
                typed_mut(&mut self.ebpf, names::VIPS)?;
            vips.insert(key, meta, 0).map_err(map_err(names::VIPS))?;
            let mut metas: Array<&mut MapData, VipMeta> =
                typed_mut(&mut self.ebpf, names::VIP_METAS)?;
            metas.set(id, meta, 0).map_err(map_err(names::VIP_METAS))?;
            by_addr
                .entry(key.addr_key())
                .or_default()
                .push((*key, meta));
        }

        // 5. VIP addresses (IPv4 and IPv6 sets), then stale VIPs and addresses.
        let wanted_addrs: HashSet<VipAddrKey> = wanted_vips.iter().map(VipKey::addr_key).collect();
        for (a, list) in &by_addr {
            let mut info = VipAddrInfo {
                services: list.len() as u32,
                ..Default::default()
            };
            for (slot, (k, m)) in info.slots.iter_mut().zip(list) {
                *slot = VipAddrSlot {
                    port: k.port,
                    proto: k.proto,
                    _pad: 0,
                    meta: *m,
                };
            }
            if a.family == u32::from(FAMILY_V4) {
                let mut addrs: HashMap<&mut MapData, VipAddr4Key, VipAddrInfo> =
                    typed_mut(&mut self.ebpf, names::VIP_ADDRS4)?;
                addrs
                    .insert(v4_key(a), info, 0)
                    .map_err(map_err(names::VIP_ADDRS4))?;
            } else {
                let mut addrs: HashMap<&mut MapData, VipAddrKey, VipAddrInfo> =
                    typed_mut(&mut self.ebpf, names::VIP_ADDRS)?;
                addrs
                    .insert(a, info, 0)
                    .map_err(map_err(names::VIP_ADDRS))?;
            }
        }
        let stale: Vec<VipKey> = {
            let mut vips: HashMap<&mut MapData, VipKey, VipMeta> =
                typed_mut(&mut self.ebpf, names::VIPS)?;
            let stale: Vec<VipKey> = vips
                .keys()
                .filter_map(Result::ok)
                .filter(|k| !wanted_vips.contains(k))
                .collect();
            for k in &stale {
                vips.remove(k).map_err(map_err(names::VIPS))?;
            }
            stale
        };
        for k in &stale {
            self.tables.remove(k);
        }
        {
            let mut addrs: HashMap<&mut MapData, VipAddrKey, VipAddrInfo> =
                typed_mut(&mut self.ebpf, names::VIP_ADDRS)?;
            let stale: Vec<VipAddrKey> = addrs
                .keys()
                .filter_map(Result::ok)
                .filter(|k| !wanted_addrs.contains(k))
                .collect();
            for k in stale {
                addrs.remove(&k).map_err(map_err(names::VIP_ADDRS))?;
            }
        }
        {
            let wanted4: HashSet<VipAddr4Key> = wanted_addrs
                .iter()
                .filter(|a| a.family == u32::from(FAMILY_V4))
                .map(v4_key)
                .collect();
            let mut addrs: HashMap<&mut MapData, VipAddr4Key, VipAddrInfo> =
                typed_mut(&mut self.ebpf, names::VIP_ADDRS4)?;
            let stale: Vec<VipAddr4Key> = addrs
                .keys()
                .filter_map(Result::ok)
                .filter(|k| !wanted4.contains(k))
                .collect();
            for k in stale {
                addrs.remove(&k).map_err(map_err(names::VIP_ADDRS4))?;
            }
        }

        // The filter over the addresses now served; then the metas of ids no VIP holds any
        // more become tombstones: mode `pass` under a new generation, so no flow's
        // reference matches them, nor the next VIP's (generations only move forward).
        {
            let mut filter = VipFilter::default();
            for a in &wanted_addrs {
                filter.set(if a.family == u32::from(FAMILY_V4) {
                    filter::bit_v4(v4_key(a).addr)
                } else {
                    filter::bit_v6(&a.addr)
                });
            }
            let mut arr: Array<&mut MapData, VipFilter> =
                typed_mut(&mut self.ebpf, names::VIP_FILTER)?;
            arr.set(0, filter, 0).map_err(map_err(names::VIP_FILTER))?;
        }
        {
            let mut metas: Array<&mut MapData, VipMeta> =
                typed_mut(&mut self.ebpf, names::VIP_METAS)?;
            for &id in removed_vip_ids.iter().filter(|i| !fresh_vips.contains(i)) {
                let prev = metas.get(&id, 0).unwrap_or_default().vip_ref;
                let tomb = VipMeta {
                    vip_ref: vip_ref(id, next_generation(prev)),
                    ..Default::default()
                };
                metas.set(id, tomb, 0).map_err(map_err(names::VIP_METAS))?;
            }
        }

        // 6. Removed backends last: no table names them now; their flows re-pick.
        if !removed_backends.is_empty() {
            let mut arr: Array<&mut MapData, Backend> = typed_mut(&mut self.ebpf, names::BACKENDS)?;
            for (a, id) in removed_backends {
                arr.set(id, Backend::default(), 0)
                    .map_err(map_err(names::BACKENDS))?;
                self.backend_ids.remove(&a);
            }
        }
        Ok(())
    }

    /// The [`VipMeta::vip_ref`] of VIP `id`: the one in `lb_vip_metas` while the id keeps
    /// its VIP (so conntrack entries stay valid across syncs and restarts), a new
    /// generation when the id is `fresh` (given to another VIP) or has none.
    fn vip_ref(&self, id: u32, fresh: bool) -> Result<u32, DataPlaneError> {
        let metas: Array<&MapData, VipMeta> = typed(&self.ebpf, names::VIP_METAS)?;
        let prev = metas.get(&id, 0).unwrap_or_default().vip_ref;
        if !fresh && prev != 0 && prev & VIP_REF_ID_MASK == id {
            return Ok(prev);
        }
        Ok(vip_ref(id, next_generation(prev)))
    }

    /// Writes `table` into a fresh inner array and installs it at outer `slot`.
    fn write_table(&mut self, slot: u32, table: &[u32]) -> Result<(), DataPlaneError> {
        let len = u32::try_from(table.len()).unwrap_or(u32::MAX);
        let syscall = |call: &'static str| {
            move |io_error| map_err(names::MAGLEV)(aya::sys::SyscallError { call, io_error }.into())
        };
        // One syscall for the whole table (see batch.rs), not one per slot.
        let fd = super::batch::create_u32_array(len, INNER_MAP_FLAGS, "lb_maglev_tbl")
            .map_err(syscall("bpf_map_create"))?;
        super::batch::update_all_u32(std::os::fd::AsFd::as_fd(&fd), table)
            .map_err(syscall("bpf_map_update_batch"))?;
        let inner = MapData::from_fd(fd).map_err(map_err(names::MAGLEV))?;
        let mut outer: ArrayOfMaps<&mut MapData, MapData> =
            typed_mut(&mut self.ebpf, names::MAGLEV)?;
        outer.set(slot, &inner, 0).map_err(map_err(names::MAGLEV))
    }

    fn zero_stats(&mut self, vips: &[u32], backends: &[u32]) -> Result<(), DataPlaneError> {
        let cpus = aya::util::nr_cpus().map_err(|(_, e)| DataPlaneError::Cpus(e))?;
        if !vips.is_empty() {
            let mut arr: PerCpuArray<&mut MapData, VipStats> =
                typed_mut(&mut self.ebpf, names::VIP_STATS)?;
            for &id in vips {
                let zero = PerCpuValues::try_from(vec![VipStats::default(); cpus])
                    .map_err(DataPlaneError::Cpus)?;
                arr.set(id, zero, 0).map_err(map_err(names::VIP_STATS))?;
            }
        }
        if !backends.is_empty() {
            let mut arr: PerCpuArray<&mut MapData, BackendStats> =
                typed_mut(&mut self.ebpf, names::BACKEND_STATS)?;
            for &id in backends {
                let zero = PerCpuValues::try_from(vec![BackendStats::default(); cpus])
                    .map_err(DataPlaneError::Cpus)?;
                arr.set(id, zero, 0)
                    .map_err(map_err(names::BACKEND_STATS))?;
            }
        }
        Ok(())
    }

    /// Writes the conntrack timeouts of `l4` into the settings map (in jiffies, see
    /// [`kernel_hz`]) and remembers the `ipip` sources for the next [`DataPlane::sync`].
    pub fn configure_l4(&mut self, l4: &L4Config) -> Result<(), DataPlaneError> {
        self.l4 = l4.clone();
        let hz = kernel_hz();
        let jiffies = |d: std::time::Duration| {
            ((d.as_millis() as u64).saturating_mul(hz) / 1000).clamp(1, u64::from(u32::MAX))
        };
        self.tcp_timeout_jiffies = jiffies(l4.tcp_timeout) as u32;
        self.udp_timeout_jiffies = jiffies(l4.udp_timeout) as u32;
        if l4.debug_log {
            xdp_log::start(&mut self.ebpf);
        }
        self.write_settings(Settings {
            flags: if l4.debug_log { FLAG_DEBUG_LOG } else { 0 },
            tcp_timeout_jiffies: jiffies(l4.tcp_timeout),
            udp_timeout_jiffies: jiffies(l4.udp_timeout),
            ..Default::default()
        })
    }

    /// The id (stats index) of a VIP, if it is in the maps.
    pub fn vip_id(&self, key: &VipKey) -> Option<u32> {
        self.vip_ids.get(key).copied()
    }

    /// The backend index of an address, if it is in the maps.
    pub fn backend_id(&self, addr: IpAddr) -> Option<u32> {
        self.backend_ids.get(&addr).copied()
    }

    /// Per-backend counters summed over CPUs.
    pub fn backend_stats(&self, id: u32) -> Result<BackendStats, DataPlaneError> {
        let arr: PerCpuArray<&MapData, BackendStats> = typed(&self.ebpf, names::BACKEND_STATS)?;
        stats::sum_backend(&arr, id).map_err(map_err(names::BACKEND_STATS))
    }
}

/// The generation after the one in reference `prev`: 1..=0xffff, never 0.
fn next_generation(prev: u32) -> u32 {
    (prev >> VIP_REF_ID_BITS) % VIP_REF_ID_MASK + 1
}

/// MTU assumed for `ipip` when neither `l4.ipip_mtu` nor a resolved backend gives one.
pub const FALLBACK_MTU: u16 = 1500;

/// The largest IP length field (IPv4 `tot_len`, IPv6 `payload_len`) of a packet that fits
/// a link of `mtu` bytes once encapsulated (20 or 40 bytes of outer header).
pub fn encap_max_len(mtu: u16, v6: bool) -> u32 {
    let mtu = u32::from(mtu);
    if v6 {
        mtu.saturating_sub(2 * 40)
    } else {
        mtu.saturating_sub(20)
    }
}

/// Fills the `ipip` fields of a VIP's meta: outer source and size limit.
fn meta_encap(meta: &mut VipMeta, svc: &Service, l4: &L4Config, l2: &L2Map) {
    if svc.mode != ServiceMode::Ipip {
        return;
    }
    // The configured MTU, else the smallest of the interfaces the backends are reached by.
    let mtu = l4.ipip_mtu.unwrap_or_else(|| {
        svc.backends
            .iter()
            .filter_map(|b| l2.get(&b.addr).map(|a| a.mtu))
            .filter(|&m| m > 0)
            .min()
            .unwrap_or(FALLBACK_MTU)
    });
    meta.encap_max_len = encap_max_len(mtu, svc.vip.addr.is_ipv6());
    let host_mask = |len: u8, bits: u8| -> u32 {
        let host = bits.saturating_sub(len).min(32);
        if host == 0 {
            0
        } else if host == 32 {
            u32::MAX
        } else {
            (1u32 << host) - 1
        }
    };
    match svc.vip.addr {
        IpAddr::V4(_) => {
            if let Some((a, len)) = l4.ipip_source_v4 {
                meta.encap_src = maglev::wire_addr(IpAddr::V4(a));
                meta.encap_host_mask = host_mask(len, 32);
            }
        }
        IpAddr::V6(_) => {
            if let Some((a, len)) = l4.ipip_source_v6 {
                meta.encap_src = a.octets();
                meta.encap_host_mask = host_mask(len, 128);
            }
        }
    }
}

/// HZ values Linux is built with.
const KNOWN_HZ: [u64; 5] = [100, 250, 300, 500, 1000];
/// HZ assumed when it cannot be determined (the most common distribution setting).
pub const FALLBACK_HZ: u64 = 250;

/// The kernel's tick rate, for converting timeouts into the jiffies the XDP program
/// compares (it reads `jiffies` because that is nearly free, unlike a nanosecond clock).
///
/// `/proc/timer_list` shows, in one snapshot, monotonic time (`now at N nsecs`) and
/// `jiffies`, which started at `2^32 - 300 * HZ` at boot (INITIAL_JIFFIES), so
/// `HZ = (jiffies - 2^32) / (now_s - 300)`; the estimate is snapped to the nearest value
/// Linux supports. Falls back to [`FALLBACK_HZ`] (with a warning) when the file is missing.
/// Read once: the file is root-only, and a daemon that dropped privileges
/// (`[global] user`) reloads too.
pub fn kernel_hz() -> u64 {
    static HZ: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *HZ.get_or_init(read_kernel_hz)
}

fn read_kernel_hz() -> u64 {
    match std::fs::read_to_string("/proc/timer_list")
        .ok()
        .and_then(|t| hz_from_timer_list(&t))
    {
        Some(hz) => hz,
        None => {
            tracing::warn!(
                hz = FALLBACK_HZ,
                "cannot read HZ from /proc/timer_list; conntrack timeouts assume it"
            );
            FALLBACK_HZ
        }
    }
}

fn hz_from_timer_list(text: &str) -> Option<u64> {
    let now_ns: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("now at "))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let jiffies: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("jiffies: "))?
        .trim()
        .parse()
        .ok()?;
    let secs = now_ns / 1e9 - 300.0;
    if secs <= 1.0 {
        return None;
    }
    let est = (jiffies - 4_294_967_296.0) / secs;
    KNOWN_HZ
        .iter()
        .copied()
        .min_by(|a, b| (*a as f64 - est).abs().total_cmp(&(*b as f64 - est).abs()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hz_from_a_timer_list_snapshot() {
        // Taken on a HZ=250 kernel 2176 s after boot.
        let t = "Timer List Version: v0.10\nnow at 2176677306967 nsecs\n\ncpu: 0\njiffies: 4295436401\n";
        assert_eq!(hz_from_timer_list(t), Some(250));
        assert_eq!(hz_from_timer_list("nothing"), None);
    }
}
