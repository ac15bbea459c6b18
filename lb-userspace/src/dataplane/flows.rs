//! Reading the conntrack table for `show flows`.

use super::{typed, DataPlane, DataPlaneError};
use aya::maps::{HashMap, MapData};
use lb_common::{
    conntrack::{FlowKey, FlowState},
    maps as names,
};

impl DataPlane {
    /// Up to `limit` conntrack entries (the LRU map's iteration order).
    pub fn flows(&self, limit: usize) -> Result<Vec<(FlowKey, FlowState)>, DataPlaneError> {
        let ct: HashMap<&MapData, FlowKey, FlowState> = typed(&self.ebpf, names::CONNTRACK)?;
        Ok(ct.iter().filter_map(Result::ok).take(limit).collect())
    }
}
