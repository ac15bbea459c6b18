//! `<stats uri>;json` and `show stat json`: the snapshot as one JSON document.
//!
//! ```json
//! {"info": {"version": "0.1.0", "pid": 42, "instance": "lb1", "node": "lb1",
//!           "uptime_seconds": 10, "start_time_seconds": 1700000000,
//!           "generated_seconds": 1700000010},
//!  "services": [{"name": "webfarm", "mode": "http", "vip": "198.18.0.99:80/tcp",
//!                "rows": [{"kind": "frontend", "stats": {"pxname": "webfarm",
//!                          "svname": "FRONTEND", "scur": 0, "stot": 12, ...},
//!                          "xdp": {"packets": 90, "bytes": 7000, "new_flows": 0,
//!                                  "conntrack_hits": 0}}, ...]}],
//!  "xdp": {"drops": {"truncated": 0, ...}, "conntrack_entries": 3,
//!          "conntrack_capacity": 65536},
//!  "xdp_error": null,
//!  "vrrp": [{"instance": "webfarm", "vrid": 51, "state": "MASTER", ...}]}
//! ```
//!
//! `stats` holds the filled CSV columns under HAProxy's names, numbers as numbers.

use super::model::{Info, Row, RowKind, Snapshot, VrrpView, XdpCounters};
use serde::{ser::SerializeMap, Serialize, Serializer};

#[derive(Serialize)]
struct Doc<'a> {
    info: &'a Info,
    services: Vec<Service<'a>>,
    xdp: Option<Xdp<'a>>,
    xdp_error: Option<&'a str>,
    vrrp: &'a [VrrpView],
}

#[derive(Serialize)]
struct Service<'a> {
    name: &'a str,
    mode: &'a str,
    vip: &'a str,
    rows: Vec<JsonRow<'a>>,
}

#[derive(Serialize)]
struct JsonRow<'a> {
    kind: RowKind,
    stats: Fields<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    xdp: Option<XdpCounters>,
    #[serde(skip_serializing_if = "Option::is_none")]
    admin: Option<&'static str>,
}

struct Fields<'a>(&'a Row);

impl Serialize for Fields<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        for (k, v) in self.0.filled() {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

#[derive(Serialize)]
struct Xdp<'a> {
    drops: Drops<'a>,
    conntrack_entries: Option<u64>,
    conntrack_capacity: u32,
}

struct Drops<'a>(&'a [(&'static str, u64)]);

impl Serialize for Drops<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

/// The snapshot as JSON (one line, newline-terminated).
pub fn render(snap: &Snapshot) -> String {
    let doc = Doc {
        info: &snap.info,
        services: snap
            .services
            .iter()
            .map(|s| Service {
                name: &s.name,
                mode: s.mode,
                vip: &s.vip,
                rows: s
                    .rows
                    .iter()
                    .map(|r| JsonRow {
                        kind: r.kind,
                        stats: Fields(r),
                        xdp: r.xdp,
                        admin: r.admin.map(|a| a.as_str()),
                    })
                    .collect(),
            })
            .collect(),
        xdp: snap.xdp.as_ref().map(|x| Xdp {
            drops: Drops(&x.drops),
            conntrack_entries: x.conntrack_entries,
            conntrack_capacity: x.conntrack_capacity,
        }),
        xdp_error: snap.xdp_error.as_deref(),
        vrrp: &snap.vrrp,
    };
    let mut s = serde_json::to_string(&doc).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
    s.push('\n');
    s
}
