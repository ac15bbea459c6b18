//! Connection tracking and backend choice: a conntrack hit keeps its backend while the
//! backend is up and the entry is fresh; anything else gets the Maglev pick, which is
//! recorded.

use crate::maps;
use aya_ebpf::helpers::bpf_jiffies64;
use lb_common::{
    backend::Backend,
    conntrack::{FlowKey, FlowState},
    flow_hash::flow_hash,
    maglev::NO_BACKEND,
    stats::DropReason,
    vip::VipMeta,
};

/// The backend chosen for a packet.
pub struct Choice {
    /// Index into the backends array.
    pub index: u32,
    /// The backend's entry (in the map; userspace rewrites entries whole).
    pub backend: Backend,
    /// The flow hash (for the `ipip` outer source).
    pub hash: u32,
    /// Whether Maglev chose it just now (a new or re-picked flow).
    pub new_flow: bool,
}

/// Chooses the backend for a packet of flow `key` to the VIP `meta`; `Err` is a
/// [`DropReason`].
#[inline(always)]
pub fn choose(key: &FlowKey, meta: &VipMeta) -> Result<Choice, u32> {
    // SAFETY: helper without preconditions.
    let now = unsafe { bpf_jiffies64() };
    if let Some(st) = maps::flow(key) {
        // SAFETY: pointer to the map value, valid for this program run; racing writers
        // only touch whole u64/u32 fields.
        let st = unsafe { &mut *st };
        let t = u64::from(meta.ct_timeout_jiffies);
        if t == 0 || now.wrapping_sub(st.last_seen) <= t {
            if let Some(backend) = maps::backend(st.backend) {
                if backend.is_up() {
                    if st.last_seen != now {
                        st.last_seen = now;
                    }
                    return Ok(Choice {
                        index: st.backend,
                        backend,
                        hash: st.hash,
                        new_flow: false,
                    });
                }
            }
        }
    }
    let hash = flow_hash(&key.src, &key.dst, key.sport, key.dport, key.proto);
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
    maps::insert_flow(
        key,
        &FlowState {
            backend: index,
            hash,
            last_seen: now,
        },
    );
    Ok(Choice {
        index,
        backend,
        hash,
        new_flow: true,
    })
}
