//! Reading the conntrack tables for `show flows`.

use super::{typed, DataPlane, DataPlaneError};
use aya::maps::{HashMap, MapData};
use lb_common::{
    conntrack::{FlowKey, FlowKeyV4, FlowState},
    maps as names,
};

impl DataPlane {
    /// Up to `limit` conntrack entries: the IPv4 table first, then the IPv6 one (each in
    /// its LRU map's iteration order), IPv4 keys widened to the common layout.
    pub fn flows(&self, limit: usize) -> Result<Vec<(FlowKey, FlowState)>, DataPlaneError> {
        let ct4: HashMap<&MapData, FlowKeyV4, FlowState> = typed(&self.ebpf, names::CONNTRACK4)?;
        let ct6: HashMap<&MapData, FlowKey, FlowState> = typed(&self.ebpf, names::CONNTRACK)?;
        let v4 = ct4
            .iter()
            .filter_map(Result::ok)
            .map(|(k, v)| (k.widen(), v));
        let v6 = ct6.iter().filter_map(Result::ok);
        Ok(v4.chain(v6).take(limit).collect())
    }
}
