//! Connection tracking and backend choice: a conntrack hit keeps its backend while the
//! backend is up and the entry is fresh; anything else gets the Maglev pick, which is
//! recorded.

use crate::{maps, parse::v4_to_16};
use aya_ebpf::helpers::bpf_jiffies64;
use lb_common::{
    backend::Backend,
    conntrack::{FlowKey, FlowKeyV4, FlowState},
    flow_hash::flow_hash,
    maglev::NO_BACKEND,
    stats::DropReason,
    vip::{VipAddr4Key, VipAddrInfo, VipAddrKey, VipKey, VipMeta, FAMILY_V4, FAMILY_V6},
};

/// What the data path needs from a flow's conntrack key, per family; the program is
/// compiled once per family (monomorphized), so neither path tests the family again.
pub trait Key {
    /// [`FAMILY_V4`] or [`FAMILY_V6`].
    const FAMILY: u8;
    /// VIP port, host order.
    fn dport(&self) -> u16;
    /// IP protocol.
    fn proto(&self) -> u8;
    /// The flow's conntrack entry, to read and refresh in place.
    fn lookup(&self) -> Option<*mut FlowState>;
    /// Records the flow.
    fn insert(&self, state: &FlowState);
    /// The flow hash (the same function userspace uses).
    fn hash(&self) -> u32;
    /// The VIP map key of the destination.
    fn vip_key(&self) -> VipKey;
    /// The VIP address entry of the destination, if any VIP lives on it.
    fn vip_addr_info(&self) -> Option<*const VipAddrInfo>;
    /// Debug log: the flow got backend `index`.
    fn log_new_flow(&self, index: u32);
}

impl Key for FlowKeyV4 {
    const FAMILY: u8 = FAMILY_V4;
    #[inline(always)]
    fn dport(&self) -> u16 {
        self.dport
    }
    #[inline(always)]
    fn proto(&self) -> u8 {
        self.proto as u8
    }
    #[inline(always)]
    fn lookup(&self) -> Option<*mut FlowState> {
        maps::flow4(self)
    }
    #[inline(always)]
    fn insert(&self, state: &FlowState) {
        maps::insert_flow4(self, state)
    }
    #[inline(always)]
    fn hash(&self) -> u32 {
        flow_hash(
            &v4_to_16(&self.src),
            &v4_to_16(&self.dst),
            self.sport,
            self.dport,
            self.proto as u8,
        )
    }
    #[inline(always)]
    fn vip_key(&self) -> VipKey {
        VipKey {
            addr: v4_to_16(&self.dst),
            port: self.dport,
            proto: self.proto as u8,
            family: FAMILY_V4,
        }
    }
    #[inline(always)]
    fn vip_addr_info(&self) -> Option<*const VipAddrInfo> {
        maps::vip_addr4(&VipAddr4Key { addr: self.dst })
    }
    #[inline(always)]
    fn log_new_flow(&self, index: u32) {
        crate::log::new_flow4(self, index)
    }
}

impl Key for FlowKey {
    const FAMILY: u8 = FAMILY_V6;
    #[inline(always)]
    fn dport(&self) -> u16 {
        self.dport
    }
    #[inline(always)]
    fn proto(&self) -> u8 {
        self.proto
    }
    #[inline(always)]
    fn lookup(&self) -> Option<*mut FlowState> {
        maps::flow6(self)
    }
    #[inline(always)]
    fn insert(&self, state: &FlowState) {
        maps::insert_flow6(self, state)
    }
    #[inline(always)]
    fn hash(&self) -> u32 {
        flow_hash(&self.src, &self.dst, self.sport, self.dport, self.proto)
    }
    #[inline(always)]
    fn vip_key(&self) -> VipKey {
        VipKey {
            addr: self.dst,
            port: self.dport,
            proto: self.proto,
            family: FAMILY_V6,
        }
    }
    #[inline(always)]
    fn vip_addr_info(&self) -> Option<*const VipAddrInfo> {
        maps::vip_addr(&VipAddrKey {
            addr: self.dst,
            family: u32::from(FAMILY_V6),
        })
    }
    #[inline(always)]
    fn log_new_flow(&self, index: u32) {
        crate::log::new_flow6(self, index)
    }
}

/// The backend chosen for a packet.
pub struct Choice {
    /// Index into the backends array.
    pub index: u32,
    /// The backend's entry (the map value; userspace rewrites entries whole).
    pub backend: &'static Backend,
    /// The flow hash (for the `ipip` outer source).
    pub hash: u32,
    /// Whether Maglev chose it just now (a new or re-picked flow).
    pub new_flow: bool,
}

/// The backend of an established flow with conntrack entry `st` to the VIP `meta`: its
/// recorded backend while that is up and the entry not idle past the VIP's timeout
/// (refreshing the entry's time); `None` means the flow must be picked again.
#[inline(always)]
pub fn established(st: &mut FlowState, meta: &VipMeta) -> Option<Choice> {
    // SAFETY: helper without preconditions (the verifier inlines it: one load).
    let now = unsafe { bpf_jiffies64() };
    let t = u64::from(meta.ct_timeout_jiffies);
    if t != 0 && now.wrapping_sub(st.last_seen) > t {
        return None;
    }
    let backend = maps::backend(st.backend)?;
    if !backend.is_up() {
        return None;
    }
    // Written only when the tick moved: a store to a shared cache line per packet would
    // cost more than the compare.
    if st.last_seen != now {
        st.last_seen = now;
    }
    Some(Choice {
        index: st.backend,
        backend,
        hash: st.hash,
        new_flow: false,
    })
}

/// Chooses the backend for a packet of flow `key` to the VIP `meta` (found through the
/// VIP address maps), given its conntrack entry `ct` if it has one; `Err` is a
/// [`DropReason`]. An entry still good is kept (and its VIP reference brought up to
/// date); otherwise the Maglev table picks and the choice is recorded.
#[inline(always)]
pub fn choose<K: Key>(key: &K, meta: &VipMeta, ct: Option<*mut FlowState>) -> Result<Choice, u32> {
    if let Some(st) = ct {
        // SAFETY: pointer to the map value, valid for this program run.
        let st = unsafe { &mut *st };
        if let Some(c) = established(st, meta) {
            if st.vip_ref != meta.vip_ref {
                st.vip_ref = meta.vip_ref;
            }
            return Ok(c);
        }
    }
    // SAFETY: helper without preconditions.
    let now = unsafe { bpf_jiffies64() };
    let hash = key.hash();
    let index = maps::maglev_pick(meta.table, meta.table_size, hash);
    if index == NO_BACKEND {
        return Err(DropReason::NO_BACKEND);
    }
    let Some(backend) = maps::backend(index) else {
        return Err(DropReason::NO_BACKEND);
    };
    if !backend.is_up() {
        return Err(DropReason::NO_BACKEND);
    }
    key.insert(&FlowState {
        backend: index,
        hash,
        last_seen: now,
        vip_ref: meta.vip_ref,
        _pad: 0,
    });
    if maps::debug_log() {
        key.log_new_flow(index);
    }
    Ok(Choice {
        index,
        backend,
        hash,
        new_flow: true,
    })
}
