//! Maglev lookup tables as the XDP program sees them.
//!
//! Each VIP owns two slots of the `lb_maglev` array of maps ([`table_slot`]); userspace
//! writes a new table into a fresh inner array, puts it in the slot the VIP does not use,
//! and only then rewrites the VIP's [`crate::vip::VipMeta`] with the new slot and size. A
//! packet reads the meta once and then one table, so it sees the old table or the new one,
//! never a mix, and never a size that does not belong to the table.

/// Largest table size (prime); the inner arrays are created with their real size.
pub const MAX_TABLE_SIZE: u32 = 65537;
/// Slot value meaning "no backend" (the table of a VIP without usable backends).
pub const NO_BACKEND: u32 = u32::MAX;
/// Slots of the outer array: two per VIP (double buffering).
pub const TABLE_SLOTS: u32 = crate::maps::MAX_VIPS * 2;
/// `BPF_F_INNER_MAP`: inner arrays of different sizes may share one outer map.
pub const INNER_MAP_FLAGS: u32 = 1 << 12;

/// Outer index of buffer `generation` (0 or 1) of VIP `vip_id`.
#[inline(always)]
pub const fn table_slot(vip_id: u32, generation: u32) -> u32 {
    vip_id * 2 + (generation & 1)
}
