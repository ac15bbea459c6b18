//! Connection tracking and backend choice: a conntrack hit keeps its backend while the
//! backend is up and the entry is fresh; anything else gets the Maglev pick, which is
//! recorded.

use crate::maps;
use aya_ebpf::helpers::bpf_ktime_get_ns;
use lb_common::{
    backend::Backend,
    conntrack::{FlowKey, FlowState},
    flow_hash::flow_hash,
    maglev::NO_BACKEND,
    settings::{DEFAULT_TCP_TIMEOUT_NS, DEFAULT_UDP_TIMEOUT_NS},
    stats::DropReason,
    vip::{VipMeta, PROTO_TCP},
};

/// The backend chosen for a packet.
pub struct Choice {
    /// Index into the backends array.
    pub index: u32,
    /// The backend's entry.
    pub backend: Backend,
    /// The flow hash (for the `ipip` outer source).
    pub hash: u32,
    /// Whether Maglev chose it just now (a new or re-picked flow).
    pub new_flow: bool,
}

/// Idle timeout for the flow's protocol.
#[inline(always)]
fn timeout_ns(proto: u8) -> u64 {
    let (tcp, udp) = match maps::settings() {
        Some(s) => (s.tcp_timeout_ns, s.udp_timeout_ns),
        None => (0, 0),
    };
    if proto == PROTO_TCP {
        if tcp == 0 {
            DEFAULT_TCP_TIMEOUT_NS
        } else {
            tcp
        }
    } else if udp == 0 {
        DEFAULT_UDP_TIMEOUT_NS
    } else {
        udp
    }
}

/// Chooses the backend for a packet of flow `key` to the VIP `meta`; `Err` is a
/// [`DropReason`].
#[inline(always)]
pub fn choose(key: &FlowKey, meta: &VipMeta) -> Result<Choice, u32> {
    // SAFETY: helper without preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    if let Some(st) = maps::flow(key) {
        // SAFETY: pointer to the map value, valid for this program run; racing writers
        // only touch whole u64/u32 fields.
        let st = unsafe { &mut *st };
        if now.wrapping_sub(st.last_seen_ns) <= timeout_ns(key.proto) {
            if let Some(backend) = maps::backend(st.backend) {
                if backend.is_up() {
                    st.last_seen_ns = now;
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
            last_seen_ns: now,
        },
    );
    Ok(Choice {
        index,
        backend,
        hash,
        new_flow: true,
    })
}
