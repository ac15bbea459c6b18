//! The one model every stats rendering reads: HTML, CSV, JSON and Prometheus are views of
//! the same [`Snapshot`], so they cannot disagree.
//!
//! Proxy rows carry HAProxy's `show stat` fields by column name ([`super::csv::COLUMNS`]),
//! typed as numbers or text; what is ours (XDP counters, drops, conntrack, VRRP) sits
//! beside them.

use super::csv::COLUMNS;
use crate::{
    admin::AdminState,
    config::{Config, ServiceMode},
    control::{server_count, Control, ServerStatus},
    dataplane::stats::XdpFigures,
    l7::{Balance, Counters},
};
use lb_common::stats::{BackendStats, DropReason, VipStats};
use serde::Serialize;
use std::{
    net::IpAddr,
    sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed},
    time::{Duration, Instant, SystemTime},
};

/// A field's value: HAProxy prints both kinds in the same CSV, JSON keeps them apart.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Value {
    /// A counter, gauge or id.
    Int(u64),
    /// A status word, address, name.
    Text(String),
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Int(n) => write!(f, "{n}"),
            Value::Text(t) => f.write_str(t),
        }
    }
}

impl From<u64> for Value {
    fn from(n: u64) -> Self {
        Value::Int(n)
    }
}
impl From<u32> for Value {
    fn from(n: u32) -> Self {
        Value::Int(u64::from(n))
    }
}
impl From<usize> for Value {
    fn from(n: usize) -> Self {
        Value::Int(n as u64)
    }
}
impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Text(s.to_string())
    }
}
impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Text(s)
    }
}

/// HAProxy's three kinds of stats rows (`type` 0, 1, 2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RowKind {
    /// The listening side of a service.
    Frontend,
    /// The farm as a whole.
    Backend,
    /// One server.
    Server,
}

impl RowKind {
    /// HAProxy's `type` column.
    pub fn type_code(self) -> u64 {
        match self {
            RowKind::Frontend => 0,
            RowKind::Backend => 1,
            RowKind::Server => 2,
        }
    }
}

/// XDP counters of a VIP (frontend rows) or an L4 backend (server rows).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct XdpCounters {
    /// Packets seen.
    pub packets: u64,
    /// Bytes of those packets as received.
    pub bytes: u64,
    /// Flows given a backend by the Maglev table.
    pub new_flows: u64,
    /// Packets forwarded from a conntrack hit (VIPs only).
    pub conntrack_hits: u64,
}

impl From<VipStats> for XdpCounters {
    fn from(s: VipStats) -> Self {
        XdpCounters {
            packets: s.packets,
            bytes: s.bytes,
            new_flows: s.new_flows,
            conntrack_hits: s.ct_hits,
        }
    }
}

impl From<BackendStats> for XdpCounters {
    fn from(s: BackendStats) -> Self {
        XdpCounters {
            packets: s.packets,
            bytes: s.bytes,
            new_flows: s.new_flows,
            conntrack_hits: 0,
        }
    }
}

/// One stats row: HAProxy's fields by column name, plus our XDP counters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    /// Frontend, backend or server.
    pub kind: RowKind,
    /// Fields in the order they were set; every name is one of [`COLUMNS`].
    fields: Vec<(&'static str, Value)>,
    /// XDP counters, when XDP sees this row's traffic.
    pub xdp: Option<XdpCounters>,
    /// The server's operator state (server rows).
    pub admin: Option<AdminState>,
}

impl Row {
    fn new(kind: RowKind, service: &str, name: &str, iid: usize, sid: usize) -> Row {
        let mut r = Row {
            kind,
            fields: Vec::new(),
            xdp: None,
            admin: None,
        };
        r.set("pxname", service)
            .set("svname", name)
            .set("pid", 1u64)
            .set("iid", iid)
            .set("sid", sid)
            .set("type", kind.type_code());
        r
    }

    /// Sets a column (the last value set wins).
    pub fn set(&mut self, col: &'static str, v: impl Into<Value>) -> &mut Self {
        debug_assert!(COLUMNS.contains(&col), "{col} is not a CSV column");
        let v = v.into();
        match self.fields.iter_mut().find(|(c, _)| *c == col) {
            Some(slot) => slot.1 = v,
            None => self.fields.push((col, v)),
        }
        self
    }

    /// A column's value, if this row fills it.
    pub fn get(&self, col: &str) -> Option<&Value> {
        self.fields.iter().find(|(c, _)| *c == col).map(|(_, v)| v)
    }

    /// A numeric column.
    pub fn int(&self, col: &str) -> Option<u64> {
        match self.get(col)? {
            Value::Int(n) => Some(*n),
            Value::Text(_) => None,
        }
    }

    /// A column as text ("" when unset).
    pub fn text(&self, col: &str) -> String {
        self.get(col).map_or(String::new(), Value::to_string)
    }

    /// Every filled column, in [`COLUMNS`] order.
    pub fn filled(&self) -> impl Iterator<Item = (&'static str, &Value)> {
        COLUMNS.iter().filter_map(|c| self.get(c).map(|v| (*c, v)))
    }

    /// `pxname`.
    pub fn service(&self) -> String {
        self.text("pxname")
    }

    /// `svname`.
    pub fn name(&self) -> String {
        self.text("svname")
    }

    fn counters(&mut self, c: &Counters) -> &mut Self {
        self.set("scur", ld32(&c.cur))
            .set("smax", ld32(&c.max))
            .set("stot", ld(&c.total))
            .set("bin", ld(&c.bytes_in))
            .set("bout", ld(&c.bytes_out))
            .set("wretr", ld(&c.retries))
            .set("wredis", ld(&c.redispatches));
        for (i, col) in HRSP.into_iter().enumerate() {
            self.set(col, ld(&c.status[i]));
        }
        self
    }
}

/// The `hrsp_*` columns, in the order of [`Counters::status`].
pub const HRSP: [&str; 6] = [
    "hrsp_1xx",
    "hrsp_2xx",
    "hrsp_3xx",
    "hrsp_4xx",
    "hrsp_5xx",
    "hrsp_other",
];

fn ld(a: &AtomicU64) -> u64 {
    a.load(Relaxed)
}
fn ld32(a: &AtomicU32) -> u64 {
    u64::from(a.load(Relaxed))
}

/// One service: its rows, FRONTEND first, then servers, then BACKEND (HAProxy's order).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceView {
    /// Service name.
    pub name: String,
    /// `http`, `dsr`, `ipip` or `pass`.
    pub mode: &'static str,
    /// The VIP (`addr:port/proto`).
    pub vip: String,
    /// Its rows.
    pub rows: Vec<Row>,
}

/// The XDP program's process-wide figures.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct XdpView {
    /// Drops per reason, in [`DropReason::NAMES`] order.
    pub drops: Vec<(&'static str, u64)>,
    /// Entries in the conntrack tables (IPv4 + IPv6; idle ones until evicted), when
    /// counted.
    pub conntrack_entries: Option<u64>,
    /// Capacity of each conntrack table (`l4.conntrack_size`).
    pub conntrack_capacity: u32,
}

/// One VRRP instance as the stats page shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VrrpView {
    /// Instance name.
    pub instance: String,
    /// Virtual router id.
    pub vrid: u64,
    /// `MASTER`, `BACKUP`, `INIT`, ...
    pub state: String,
    /// Our priority.
    pub priority: u64,
    /// The addresses it moves.
    pub vips: Vec<String>,
    /// Configured unicast peers (empty: multicast).
    pub peers: Vec<String>,
    /// Source and priority of the last advert heard, if any.
    pub last_heard: Option<String>,
    /// State transitions so far.
    pub transitions: u64,
    /// Adverts received.
    pub adverts_rx: u64,
    /// Adverts sent.
    pub adverts_tx: u64,
}

/// Process facts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Info {
    /// `lb`'s version.
    pub version: &'static str,
    /// Process id.
    pub pid: u32,
    /// The config's instance name.
    pub instance: String,
    /// The host name.
    pub node: String,
    /// Seconds since start.
    pub uptime_seconds: u64,
    /// Start time, Unix seconds.
    pub start_time_seconds: u64,
    /// When the snapshot was taken, Unix seconds.
    pub generated_seconds: u64,
}

/// Everything the stats views show, taken at one moment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// Process facts.
    pub info: Info,
    /// Services in config order.
    pub services: Vec<ServiceView>,
    /// XDP figures, if the maps could be read.
    pub xdp: Option<XdpView>,
    /// Why XDP figures are missing.
    pub xdp_error: Option<String>,
    /// VRRP instances (empty without `[[vrrp]]`).
    pub vrrp: Vec<VrrpView>,
}

impl Snapshot {
    /// Every row of every service, in order.
    pub fn rows(&self) -> impl Iterator<Item = &Row> {
        self.services.iter().flat_map(|s| s.rows.iter())
    }
}

/// What the XDP side contributed to a snapshot.
pub type XdpInput = Result<(XdpFigures, bool), String>;

/// The VIP keys and L4 backend addresses of `config`, for [`crate::dataplane::stats::XdpReader::read`].
pub fn xdp_targets(config: &Config) -> (Vec<lb_common::vip::VipKey>, Vec<IpAddr>) {
    let vips = config
        .services
        .iter()
        .map(crate::dataplane::vip_key)
        .collect();
    let backends = config.l4_backends();
    (vips, backends)
}

fn algo(b: Balance) -> &'static str {
    match b {
        Balance::RoundRobin => "roundrobin",
        Balance::LeastConn => "leastconn",
        Balance::Source => "source",
    }
}

/// Builds the snapshot from the state manager's view, the XDP figures (with whether the
/// conntrack tables were counted) and the VRRP status lines.
pub fn build(control: &Control, xdp: XdpInput, vrrp_lines: Option<String>) -> Snapshot {
    let now = Instant::now();
    let cfg = control.config();
    let statuses = control.statuses();
    let uptime = control.started().elapsed();
    let wall = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    let info = Info {
        version: env!("CARGO_PKG_VERSION"),
        pid: std::process::id(),
        instance: cfg.instance.clone(),
        node: hostname(),
        uptime_seconds: uptime.as_secs(),
        start_time_seconds: wall.saturating_sub(uptime).as_secs(),
        generated_seconds: wall.as_secs(),
    };
    let (figures, xdp_error) = match &xdp {
        Ok((f, _)) => (Some(f), None),
        Err(e) => (None, Some(e.clone())),
    };
    let mut services = Vec::new();
    for (si, svc) in cfg.services.iter().enumerate() {
        let iid = si + 1;
        let http = control.http_stats(si);
        let l4 = svc.mode.is_l4();
        let mode = if svc.mode == ServiceMode::Http {
            "http"
        } else {
            "tcp"
        };
        let vip_xdp = figures
            .and_then(|f| f.vips.get(&crate::dataplane::vip_key(svc)))
            .map(|s| XdpCounters::from(*s));
        let mut rows = Vec::new();

        // FRONTEND: the proxy's client side, or for XDP-only services the VIP's counters.
        let mut fe = Row::new(RowKind::Frontend, &svc.name, "FRONTEND", iid, 0);
        fe.set("status", "OPEN").set("mode", mode);
        fe.xdp = vip_xdp;
        if let Some(stats) = &http {
            fe.counters(&stats.counters)
                .set("ereq", ld(&stats.counters.errors_conn))
                .set("req_tot", ld(&stats.requests))
                .set("intercepted", ld(&stats.intercepted));
            // The frontend's connection-level figures have no retries.
            fe.fields.retain(|(c, _)| *c != "wretr" && *c != "wredis");
            if let Some(h) = &svc.http {
                if h.maxconn > 0 {
                    fe.set("slim", h.maxconn);
                }
            }
        } else if let Some(x) = vip_xdp {
            fe.set("stot", x.new_flows).set("bin", x.bytes);
        }
        rows.push(fe);

        let n = server_count(svc);
        let (mut act, mut bck, mut weight) = (0u64, 0u64, 0u64);
        let mut be_sum = [0u64; 5]; // scur, stot, bin, bout, econ
        let mut be_eresp = 0u64;
        let mut be_hrsp = [0u64; 6];
        let mut be_qcur = 0u64;
        let mut be_qmax = 0u64;
        let mut be_smax = 0u64;
        let mut any_down_since: Option<u64> = None;
        for (i, st) in statuses.get(si).into_iter().flatten().enumerate().take(n) {
            let st: ServerStatus = *st;
            let name = match &svc.http {
                Some(h) => h.servers.get(i).map(|s| s.name.as_str()),
                None => svc.backends.get(i).map(|b| b.name.as_str()),
            }
            .unwrap_or("?");
            let mut r = Row::new(RowKind::Server, &svc.name, name, iid, i + 1);
            r.admin = Some(st.admin);
            r.set("mode", mode);
            let backup = svc
                .http
                .as_ref()
                .and_then(|h| h.servers.get(i))
                .is_some_and(|s| s.backup);
            r.set("act", u64::from(!backup))
                .set("bck", u64::from(backup));
            let w = if st.takes_new() { st.weight } else { 0 };
            r.set("weight", w).set("uweight", st.weight);
            if st.takes_new() {
                weight += u64::from(w);
                if backup {
                    bck += 1;
                } else {
                    act += 1;
                }
            }
            let word = st.status_word();
            r.set("status", word)
                .set("lastchg", now.saturating_duration_since(st.since).as_secs());
            match &svc.http {
                Some(h) => {
                    if let Some(s) = h.servers.get(i) {
                        r.set("addr", s.addr.to_string());
                        if let Some(c) = &s.cookie {
                            r.set("cookie", c.as_str());
                        }
                        if s.maxconn > 0 {
                            r.set("slim", s.maxconn);
                        }
                    }
                }
                None => {
                    if let Some(b) = svc.backends.get(i) {
                        r.set("addr", b.addr.to_string());
                    }
                }
            }
            if let Some(h) = control.health_stats(si, i) {
                let c = h.csv_columns(now);
                let status = if st.admin == AdminState::Ready {
                    c.status
                } else {
                    word.to_string()
                };
                r.set("status", status)
                    .set("chkfail", c.chkfail)
                    .set("chkdown", c.chkdown)
                    .set("lastchg", c.lastchg)
                    .set("downtime", c.downtime)
                    .set("check_status", c.check_status)
                    .set("hanafail", c.hanafail)
                    .set("check_rise", c.check_rise)
                    .set("check_fall", c.check_fall)
                    .set("check_health", c.check_health);
                if let Ok(code) = c.check_code.parse::<u64>() {
                    r.set("check_code", code);
                }
                if let Ok(ms) = c.check_duration.parse::<u64>() {
                    r.set("check_duration", ms);
                }
                if !c.last_chk.is_empty() {
                    r.set("last_chk", c.last_chk);
                }
                if let Some(d) = h.last_check.as_ref().map(|o| o.status.description()) {
                    r.set("check_desc", d);
                }
                if !st.keeps_existing() {
                    any_down_since = Some(any_down_since.unwrap_or(0).max(c.downtime));
                }
            }
            if let Some(s) = http.as_ref().and_then(|s| s.servers.get(i)) {
                r.counters(&s.counters)
                    .set("econ", ld(&s.counters.errors_conn))
                    .set("eresp", ld(&s.counters.errors_resp))
                    .set("qcur", ld32(&s.queue_cur))
                    .set("qmax", ld32(&s.queue_max))
                    .set("lbtot", ld(&s.counters.total));
                be_sum[0] += ld32(&s.counters.cur);
                be_sum[1] += ld(&s.counters.total);
                be_sum[2] += ld(&s.counters.bytes_in);
                be_sum[3] += ld(&s.counters.bytes_out);
                be_sum[4] += ld(&s.counters.errors_conn);
                be_eresp += ld(&s.counters.errors_resp);
                for (k, v) in be_hrsp.iter_mut().enumerate() {
                    *v += ld(&s.counters.status[k]);
                }
                be_qcur += ld32(&s.queue_cur);
                be_qmax = be_qmax.max(ld32(&s.queue_max));
                be_smax = be_smax.max(ld32(&s.counters.max));
            }
            if l4 {
                let bx = svc.backends.get(i).and_then(|b| {
                    figures
                        .and_then(|f| f.backends.get(&b.addr))
                        .map(|s| XdpCounters::from(*s))
                });
                if let Some(x) = bx {
                    r.set("stot", x.new_flows)
                        .set("lbtot", x.new_flows)
                        .set("bin", x.bytes);
                    be_sum[1] += x.new_flows;
                    be_sum[2] += x.bytes;
                }
                r.xdp = bx;
            }
            rows.push(r);
        }
        if n > 0 {
            let mut r = Row::new(RowKind::Backend, &svc.name, "BACKEND", iid, 0);
            r.set("mode", mode);
            if let Some(stats) = &http {
                r.set("scur", be_sum[0])
                    .set("smax", be_smax.max(be_sum[0]))
                    .set("stot", be_sum[1])
                    .set("bin", be_sum[2])
                    .set("bout", be_sum[3])
                    .set("econ", be_sum[4])
                    .set("eresp", be_eresp)
                    .set("qcur", be_qcur)
                    .set("qmax", be_qmax)
                    .set("lbtot", be_sum[1])
                    .set("wretr", ld(&stats.counters.retries))
                    .set("wredis", ld(&stats.counters.redispatches));
                for (k, col) in HRSP.into_iter().enumerate() {
                    r.set(col, be_hrsp[k]);
                }
            } else if l4 && figures.is_some() {
                r.set("stot", be_sum[1])
                    .set("lbtot", be_sum[1])
                    .set("bin", be_sum[2]);
            }
            if let Some(h) = &svc.http {
                r.set("algo", algo(h.balance));
            } else if l4 {
                r.set("algo", "maglev");
            }
            let up = act + bck > 0;
            r.set("status", if up { "UP" } else { "DOWN" })
                .set("weight", weight)
                .set("uweight", weight)
                .set("act", act)
                .set("bck", bck);
            if let Some(d) = any_down_since.filter(|_| !up) {
                r.set("downtime", d);
            }
            rows.push(r);
        }
        services.push(ServiceView {
            name: svc.name.clone(),
            mode: svc.mode.as_str(),
            vip: svc.vip.to_string(),
            rows,
        });
    }
    let xdp_view = match &xdp {
        Ok((f, counted)) => Some(XdpView {
            drops: DropReason::NAMES
                .iter()
                .enumerate()
                .map(|(i, n)| (*n, f.drops.get(i).copied().unwrap_or(0)))
                .collect(),
            conntrack_entries: counted.then_some(f.conntrack_entries),
            conntrack_capacity: cfg.l4.conntrack_size,
        }),
        Err(_) => None,
    };
    Snapshot {
        info,
        services,
        xdp: xdp_view,
        xdp_error,
        vrrp: vrrp_views(&cfg, vrrp_lines.as_deref()),
    }
}

/// The VRRP instances from the status lines (`instance=... state=...`) and the config.
fn vrrp_views(cfg: &Config, lines: Option<&str>) -> Vec<VrrpView> {
    let Some(lines) = lines else {
        return Vec::new();
    };
    lines
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(crate::vrrp::status::parse_line)
        .filter_map(|f| {
            let instance = f.get("instance")?.clone();
            let num = |k: &str| f.get(k).and_then(|v| v.parse().ok()).unwrap_or(0);
            let peers = cfg
                .vrrp
                .iter()
                .find(|v| v.name == instance)
                .map(|v| v.unicast_peers.iter().map(IpAddr::to_string).collect())
                .unwrap_or_default();
            let last_heard = match (f.get("last_heard"), f.get("last_heard_priority")) {
                (Some(a), Some(p)) if a != "-" => Some(format!("{a} (priority {p})")),
                _ => None,
            };
            Some(VrrpView {
                vrid: num("vrid"),
                state: f.get("state").cloned().unwrap_or_default(),
                priority: num("priority"),
                vips: f
                    .get("vips")
                    .map(|v| {
                        v.split(',')
                            .filter(|s| !s.is_empty())
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default(),
                peers,
                last_heard,
                transitions: num("transitions"),
                adverts_rx: num("rx"),
                adverts_tx: num("tx"),
                instance,
            })
        })
        .collect()
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        dataplane::{stats::XdpFigures, vip_key},
        l7::{ServerStates, ServiceStats},
    };
    use std::{path::Path, sync::Arc};

    const CONFIG: &str = r#"
instance = "t"
[xdp]
interface = "eth0"
[[service]]
name = "web"
vip = "198.18.0.99"
port = 80
mode = "http"
[service.http]
[service.http.stats]
auth = "u:p"
[[service.server]]
name = "a"
address = "198.18.0.2:80"
[[service.server]]
name = "b"
address = "198.18.0.3:80"
[[service]]
name = "l4"
vip = "198.18.0.98"
port = 8080
mode = "dsr"
[[service.server]]
name = "b1"
address = "198.18.0.2"
[[service.server]]
name = "b2"
address = "198.18.0.3"
"#;

    fn snapshot() -> Snapshot {
        let cfg = crate::config::parse(Path::new("t.toml"), CONFIG).unwrap();
        let stats = Arc::new(ServiceStats::new(2));
        for _ in 0..5 {
            stats.servers[0].counters.open();
            stats.servers[0].counters.close();
            stats.servers[0].counters.count_status(200);
        }
        stats.servers[1].counters.open();
        stats.servers[0].counters.bytes_in.store(500, Relaxed);
        let mut handles = crate::http_frontends::HttpHandles::new();
        handles.insert(
            "web".to_string(),
            (Arc::new(ServerStates::all_up(2)), Arc::clone(&stats)),
        );
        let mut figures = XdpFigures::default();
        figures.vips.insert(
            vip_key(&cfg.services[1]),
            VipStats {
                packets: 100,
                bytes: 6400,
                new_flows: 9,
                ct_hits: 91,
            },
        );
        figures.backends.insert(
            "198.18.0.2".parse().unwrap(),
            BackendStats {
                packets: 60,
                bytes: 4000,
                new_flows: 7,
                _reserved: 0,
            },
        );
        figures.backends.insert(
            "198.18.0.3".parse().unwrap(),
            BackendStats {
                packets: 40,
                bytes: 2400,
                new_flows: 2,
                _reserved: 0,
            },
        );
        figures.drops = vec![0, 1, 2, 0, 0, 0, 3, 0];
        figures.conntrack_entries = 4;
        let (control, _, _) = Control::new(Arc::new(cfg), handles);
        build(&control, Ok((figures, true)), None)
    }

    fn row<'a>(s: &'a Snapshot, svc: &str, name: &str) -> &'a Row {
        s.rows()
            .find(|r| r.service() == svc && r.name() == name)
            .unwrap()
    }

    #[test]
    fn l7_rows_come_from_the_proxy_counters() {
        let s = snapshot();
        let a = row(&s, "web", "a");
        assert_eq!(a.int("stot"), Some(5));
        assert_eq!(a.int("hrsp_2xx"), Some(5));
        assert_eq!(a.int("bin"), Some(500));
        assert_eq!(row(&s, "web", "b").int("scur"), Some(1));
        let be = row(&s, "web", "BACKEND");
        assert_eq!(be.int("stot"), Some(6), "sum of the servers");
        assert_eq!(be.int("scur"), Some(1));
        assert_eq!(be.text("algo"), "roundrobin");
        assert_eq!(be.text("status"), "UP");
        assert_eq!(a.text("addr"), "198.18.0.2:80");
        assert_eq!(row(&s, "web", "FRONTEND").text("mode"), "http");
    }

    #[test]
    fn l4_rows_carry_xdp_figures_in_every_view() {
        let s = snapshot();
        let b1 = row(&s, "l4", "b1");
        assert_eq!(
            b1.int("stot"),
            Some(7),
            "new flows are an L4 server's sessions"
        );
        assert_eq!(b1.int("bin"), Some(4000));
        assert_eq!(b1.xdp.map(|x| x.packets), Some(60));
        let be = row(&s, "l4", "BACKEND");
        assert_eq!(be.int("stot"), Some(9));
        assert_eq!(be.text("algo"), "maglev");
        let fe = row(&s, "l4", "FRONTEND");
        assert_eq!(fe.xdp.map(|x| x.conntrack_hits), Some(91));
        assert_eq!(fe.int("stot"), Some(9));
        assert_eq!(fe.text("mode"), "tcp");
        let x = s.xdp.as_ref().unwrap();
        assert_eq!(x.conntrack_entries, Some(4));
        assert_eq!(x.drops.iter().map(|(_, n)| n).sum::<u64>(), 6);

        let csv = super::super::csv::render(&s);
        let line = csv.lines().find(|l| l.starts_with("l4,b1,")).unwrap();
        let cols: Vec<&str> = line.split(',').collect();
        let at = |c: &str| cols[COLUMNS.iter().position(|x| *x == c).unwrap()];
        assert_eq!(
            (at("stot"), at("bin"), at("addr")),
            ("7", "4000", "198.18.0.2")
        );
        let prom = super::super::prometheus::render(&s);
        assert!(
            prom.contains("lb_xdp_backend_new_flows_total{service=\"l4\",server=\"b1\"} 7\n"),
            "{prom}"
        );
        assert!(prom.contains("lb_server_sessions_total{service=\"l4\",server=\"b1\"} 7\n"));
        assert!(prom.contains(
            "lb_xdp_vip_conntrack_hits_total{service=\"l4\",vip=\"198.18.0.98:8080/tcp\"} 91\n"
        ));
        assert!(prom.contains("lb_xdp_drops_total{reason=\"no_service\"} 3\n"));
        assert!(prom.contains("lb_xdp_conntrack_entries 4\n"));
        let json: serde_json::Value =
            serde_json::from_str(&super::super::json::render(&s)).unwrap();
        let rows = &json["services"][1]["rows"];
        assert_eq!(rows[1]["stats"]["svname"], "b1");
        assert_eq!(rows[1]["stats"]["stot"], 7);
        assert_eq!(rows[1]["xdp"]["packets"], 60);
        assert_eq!(json["xdp"]["drops"]["no_service"], 3);
        let html = super::super::html::render(&s, &super::super::html::PageOptions::default());
        assert!(
            html.contains(">b1<") && html.contains("3.9 KiB"),
            "bytes with units"
        );
    }
}
