//! Summing per-CPU counters.

use aya::maps::{MapData, MapError, PerCpuArray};
use lb_common::stats::{DropReason, VipStats};
use std::borrow::Borrow;

/// Sums one VIP's counters over all CPUs.
pub fn sum_vip<T: Borrow<MapData>>(
    arr: &PerCpuArray<T, VipStats>,
    id: u32,
) -> Result<VipStats, MapError> {
    let mut total = VipStats::default();
    for s in arr.get(&id, 0)?.iter() {
        total.add(s);
    }
    Ok(total)
}

/// Sums every drop reason's counter over all CPUs.
pub fn sum_drops<T: Borrow<MapData>>(arr: &PerCpuArray<T, u64>) -> Result<Vec<u64>, MapError> {
    (0..DropReason::COUNT)
        .map(|r| Ok(arr.get(&r, 0)?.iter().sum()))
        .collect()
}

/// Sums one backend's counters over all CPUs.
pub fn sum_backend<T: Borrow<MapData>>(
    arr: &PerCpuArray<T, lb_common::stats::BackendStats>,
    id: u32,
) -> Result<lb_common::stats::BackendStats, MapError> {
    let mut total = lb_common::stats::BackendStats::default();
    for s in arr.get(&id, 0)?.iter() {
        total.add(s);
    }
    Ok(total)
}

/// The XDP counters of a running instance, for the stats page: per VIP, per backend, per
/// drop reason, and the conntrack tables' occupancy.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct XdpFigures {
    /// Per VIP key, its summed counters (VIPs not in the maps are absent).
    pub vips: std::collections::HashMap<lb_common::vip::VipKey, VipStats>,
    /// Per backend address, its summed counters (backends not in the maps are absent).
    pub backends: std::collections::HashMap<std::net::IpAddr, lb_common::stats::BackendStats>,
    /// Per [`DropReason`] index.
    pub drops: Vec<u64>,
    /// Entries in the IPv4 and IPv6 conntrack LRU tables (idle ones until evicted); 0
    /// unless counted.
    pub conntrack_entries: u64,
}

/// Reads an instance's pinned counter maps, read-only and independently of the task
/// that owns the [`super::DataPlane`], so a stats request never waits for (or delays)
/// map updates. Blocking: call it off the async workers.
pub struct XdpReader {
    vips: aya::maps::HashMap<MapData, lb_common::vip::VipKey, lb_common::vip::VipMeta>,
    vip_stats: PerCpuArray<MapData, VipStats>,
    backends: aya::maps::Array<MapData, lb_common::backend::Backend>,
    backend_stats: PerCpuArray<MapData, lb_common::stats::BackendStats>,
    drops: PerCpuArray<MapData, u64>,
    ct6:
        aya::maps::HashMap<MapData, lb_common::conntrack::FlowKey, lb_common::conntrack::FlowState>,
    ct4: aya::maps::HashMap<
        MapData,
        lb_common::conntrack::FlowKeyV4,
        lb_common::conntrack::FlowState,
    >,
    /// Backend address -> index, verified on every read and rebuilt when stale.
    index: std::collections::HashMap<std::net::IpAddr, u32>,
}

impl XdpReader {
    /// Opens the maps pinned in `pin_dir` (the daemon has loaded the program already).
    pub fn open(pin_dir: &std::path::Path) -> Result<Self, super::DataPlaneError> {
        use lb_common::maps as names;
        fn open<M: TryFrom<aya::maps::Map, Error = MapError>>(
            dir: &std::path::Path,
            name: &'static str,
        ) -> Result<M, super::DataPlaneError> {
            let data = MapData::from_pin(dir.join(name)).map_err(super::map_err(name))?;
            let map = aya::maps::Map::from_map_data(data).map_err(super::map_err(name))?;
            map.try_into().map_err(super::map_err(name))
        }
        Ok(XdpReader {
            vips: open(pin_dir, names::VIPS)?,
            vip_stats: open(pin_dir, names::VIP_STATS)?,
            backends: open(pin_dir, names::BACKENDS)?,
            backend_stats: open(pin_dir, names::BACKEND_STATS)?,
            drops: open(pin_dir, names::DROPS)?,
            ct6: open(pin_dir, names::CONNTRACK)?,
            ct4: open(pin_dir, names::CONNTRACK4)?,
            index: std::collections::HashMap::new(),
        })
    }

    /// The current figures of `vips` and `backends` (addresses), summed over CPUs;
    /// `conntrack` also counts the conntrack entries (in batches of thousands).
    pub fn read(
        &mut self,
        vips: &[lb_common::vip::VipKey],
        backends: &[std::net::IpAddr],
        conntrack: bool,
    ) -> Result<XdpFigures, super::DataPlaneError> {
        use lb_common::maps as names;
        let mut out = XdpFigures::default();
        for key in vips {
            if let Ok(meta) = self.vips.get(key, 0) {
                let s =
                    sum_vip(&self.vip_stats, meta.id).map_err(super::map_err(names::VIP_STATS))?;
                out.vips.insert(*key, s);
            }
        }
        let stale = backends.iter().any(|a| {
            self.index.get(a).is_none_or(|&i| {
                self.backends.get(&i, 0).map_or(true, |b| {
                    b.flags == 0 || b.addr != crate::maglev::wire_addr(*a)
                })
            })
        });
        if stale {
            self.index.clear();
            for i in 0..self.backends.len() {
                if let Ok(b) = self.backends.get(&i, 0) {
                    if b.flags == 0 {
                        continue;
                    }
                    if let Some(a) = backends
                        .iter()
                        .find(|a| crate::maglev::wire_addr(**a) == b.addr)
                    {
                        self.index.insert(*a, i);
                    }
                }
            }
        }
        for a in backends {
            if let Some(&i) = self.index.get(a) {
                let s = sum_backend(&self.backend_stats, i)
                    .map_err(super::map_err(names::BACKEND_STATS))?;
                out.backends.insert(*a, s);
            }
        }
        out.drops = sum_drops(&self.drops).map_err(super::map_err(names::DROPS))?;
        if conntrack {
            use aya::maps::IterableMap;
            use lb_common::conntrack::{FlowKey, FlowKeyV4, FlowState};
            use std::os::fd::AsFd;
            let count = |m: &MapData, name: &'static str, key: usize| {
                super::batch::count_hash_entries(m.fd().as_fd(), key, size_of::<FlowState>())
                    .map_err(|io_error| {
                        super::map_err(name)(MapError::SyscallError(aya::sys::SyscallError {
                            call: "bpf_map_lookup_batch",
                            io_error,
                        }))
                    })
            };
            let v4 = count(self.ct4.map(), names::CONNTRACK4, size_of::<FlowKeyV4>())?;
            let v6 = count(self.ct6.map(), names::CONNTRACK, size_of::<FlowKey>())?;
            out.conntrack_entries = (v4 + v6) as u64;
        }
        Ok(out)
    }
}
