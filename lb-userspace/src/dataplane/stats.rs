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
