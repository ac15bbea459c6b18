//! Prometheus text exposition (format 0.0.4) of the snapshot: HAProxy's exporter names
//! with an `lb_` prefix, units in names (`_total`, `_bytes`, `_seconds`), labels
//! `service` and `server`.
//!
//! Every proxy metric is one CSV column of a row kind ([`FAMILIES`]), so the figures
//! are the CSV's and the JSON's.

use super::model::{Row, RowKind, Snapshot, XdpCounters, HRSP};
use std::fmt::Write;

/// The content type Prometheus expects.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Counter or gauge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Only grows.
    Counter,
    /// Goes up and down.
    Gauge,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        }
    }
}

/// One metric family taken from a CSV column.
#[derive(Clone, Copy, Debug)]
pub struct Family {
    /// Rows it applies to.
    pub kinds: &'static [RowKind],
    /// The CSV column.
    pub column: &'static str,
    /// Name after `lb_<frontend|backend|server>_`.
    pub name: &'static str,
    /// Counter or gauge.
    pub kind: Kind,
    /// Divides the column's value (milliseconds to seconds: 1000).
    pub scale: u32,
    /// `# HELP` text.
    pub help: &'static str,
}

const F: &[RowKind] = &[RowKind::Frontend];
const B: &[RowKind] = &[RowKind::Backend];
const S: &[RowKind] = &[RowKind::Server];
const FBS: &[RowKind] = &[RowKind::Frontend, RowKind::Backend, RowKind::Server];
const BS: &[RowKind] = &[RowKind::Backend, RowKind::Server];

const fn fam(
    kinds: &'static [RowKind],
    column: &'static str,
    name: &'static str,
    kind: Kind,
    help: &'static str,
) -> Family {
    Family {
        kinds,
        column,
        name,
        kind,
        scale: 1,
        help,
    }
}

/// The proxy metrics: (row kinds, CSV column, name, type, help).
pub const FAMILIES: &[Family] = &[
    fam(
        FBS,
        "scur",
        "current_sessions",
        Kind::Gauge,
        "Current sessions (scur).",
    ),
    fam(
        FBS,
        "smax",
        "max_sessions",
        Kind::Gauge,
        "Highest number of concurrent sessions (smax).",
    ),
    fam(
        F,
        "slim",
        "limit_sessions",
        Kind::Gauge,
        "Configured session limit (slim).",
    ),
    fam(
        FBS,
        "stot",
        "sessions_total",
        Kind::Counter,
        "Sessions since start (stot); new flows for L4 services.",
    ),
    fam(
        FBS,
        "bin",
        "bytes_in_total",
        Kind::Counter,
        "Bytes received from clients (bin).",
    ),
    fam(
        FBS,
        "bout",
        "bytes_out_total",
        Kind::Counter,
        "Bytes sent to clients (bout).",
    ),
    fam(
        F,
        "ereq",
        "request_errors_total",
        Kind::Counter,
        "Request errors (ereq).",
    ),
    fam(
        BS,
        "econ",
        "connection_errors_total",
        Kind::Counter,
        "Failed connections to servers (econ).",
    ),
    fam(
        BS,
        "eresp",
        "response_errors_total",
        Kind::Counter,
        "Response errors (eresp).",
    ),
    fam(
        BS,
        "wretr",
        "retry_warnings_total",
        Kind::Counter,
        "Connection retries (wretr).",
    ),
    fam(
        BS,
        "wredis",
        "redispatch_warnings_total",
        Kind::Counter,
        "Redispatches to another server (wredis).",
    ),
    fam(
        BS,
        "qcur",
        "current_queue",
        Kind::Gauge,
        "Requests waiting for a server slot (qcur).",
    ),
    fam(
        BS,
        "qmax",
        "max_queue",
        Kind::Gauge,
        "Highest queue length (qmax).",
    ),
    fam(
        BS,
        "weight",
        "weight",
        Kind::Gauge,
        "Effective weight (weight).",
    ),
    fam(
        B,
        "act",
        "active_servers",
        Kind::Gauge,
        "Usable active servers (act).",
    ),
    fam(
        B,
        "bck",
        "backup_servers",
        Kind::Gauge,
        "Usable backup servers (bck).",
    ),
    fam(
        S,
        "chkfail",
        "check_failures_total",
        Kind::Counter,
        "Failed health checks (chkfail).",
    ),
    fam(
        S,
        "chkdown",
        "check_up_down_total",
        Kind::Counter,
        "UP to DOWN transitions (chkdown).",
    ),
    fam(
        S,
        "lastchg",
        "last_change_seconds",
        Kind::Gauge,
        "Seconds since the last status change (lastchg).",
    ),
    fam(
        BS,
        "downtime",
        "downtime_seconds_total",
        Kind::Counter,
        "Seconds spent DOWN (downtime).",
    ),
    Family {
        scale: 1000,
        ..fam(
            S,
            "check_duration",
            "check_duration_seconds",
            Kind::Gauge,
            "Duration of the last health check (check_duration).",
        )
    },
    fam(
        S,
        "check_code",
        "check_code",
        Kind::Gauge,
        "HTTP status of the last health check (check_code).",
    ),
    fam(
        S,
        "hanafail",
        "observe_failures_total",
        Kind::Counter,
        "Times observed errors reached error_limit (hanafail).",
    ),
    fam(
        BS,
        "lbtot",
        "loadbalanced_total",
        Kind::Counter,
        "Times the server was selected (lbtot).",
    ),
    fam(
        F,
        "req_tot",
        "http_requests_total",
        Kind::Counter,
        "HTTP requests received (req_tot).",
    ),
    fam(
        F,
        "intercepted",
        "intercepted_requests_total",
        Kind::Counter,
        "Requests answered by the listener itself: stats page, metrics (intercepted).",
    ),
];

/// Server states `lb_server_status` reports one series for.
pub const SERVER_STATES: [&str; 5] = ["UP", "DOWN", "NOLB", "DRAIN", "MAINT"];
/// VRRP states `lb_vrrp_state` reports one series for.
pub const VRRP_STATES: [&str; 5] = ["INIT", "BACKUP", "MASTER", "STOPPING", "FAULT"];

fn kind_word(k: RowKind) -> &'static str {
    match k {
        RowKind::Frontend => "frontend",
        RowKind::Backend => "backend",
        RowKind::Server => "server",
    }
}

/// A label value, escaped as the exposition format requires.
fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn labels(r: &Row) -> String {
    match r.kind {
        RowKind::Server => format!(
            "service=\"{}\",server=\"{}\"",
            esc(&r.service()),
            esc(&r.name())
        ),
        _ => format!("service=\"{}\"", esc(&r.service())),
    }
}

struct Out(String);

impl Out {
    fn head(&mut self, name: &str, kind: Kind, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} {}", kind.as_str());
    }
    fn sample(&mut self, name: &str, labels: &str, v: impl std::fmt::Display) {
        if labels.is_empty() {
            let _ = writeln!(self.0, "{name} {v}");
        } else {
            let _ = writeln!(self.0, "{name}{{{labels}}} {v}");
        }
    }
}

fn value(n: u64, scale: u32) -> String {
    if scale == 1 {
        n.to_string()
    } else {
        format!("{}", n as f64 / f64::from(scale))
    }
}

/// The snapshot as Prometheus text.
pub fn render(snap: &Snapshot) -> String {
    let mut o = Out(String::new());
    let i = &snap.info;
    o.head("lb_build_info", Kind::Gauge, "lb's version, as a label.");
    o.sample(
        "lb_build_info",
        &format!(
            "version=\"{}\",instance=\"{}\"",
            i.version,
            esc(&i.instance)
        ),
        1,
    );
    o.head(
        "lb_process_start_time_seconds",
        Kind::Gauge,
        "Start time of the daemon, Unix seconds.",
    );
    o.sample("lb_process_start_time_seconds", "", i.start_time_seconds);
    o.head(
        "lb_uptime_seconds",
        Kind::Gauge,
        "Seconds since the daemon started.",
    );
    o.sample("lb_uptime_seconds", "", i.uptime_seconds);

    for kind in [RowKind::Frontend, RowKind::Backend, RowKind::Server] {
        let rows: Vec<&Row> = snap.rows().filter(|r| r.kind == kind).collect();
        if rows.is_empty() {
            continue;
        }
        let k = kind_word(kind);
        for f in FAMILIES.iter().filter(|f| f.kinds.contains(&kind)) {
            let samples: Vec<(&Row, u64)> = rows
                .iter()
                .filter_map(|r| r.int(f.column).map(|v| (*r, v)))
                .collect();
            if samples.is_empty() {
                continue;
            }
            let name = format!("lb_{k}_{}", f.name);
            o.head(&name, f.kind, f.help);
            for (r, v) in samples {
                o.sample(&name, &labels(r), value(v, f.scale));
            }
        }
        // hrsp_* as one family with a `code` label.
        let http: Vec<&&Row> = rows
            .iter()
            .filter(|r| r.int("hrsp_2xx").is_some())
            .collect();
        if !http.is_empty() {
            let name = format!("lb_{k}_http_responses_total");
            o.head(
                &name,
                Kind::Counter,
                "HTTP responses by status class (hrsp_*).",
            );
            for r in http {
                for col in HRSP {
                    let code = col.trim_start_matches("hrsp_");
                    o.sample(
                        &name,
                        &format!("{},code=\"{code}\"", labels(r)),
                        r.int(col).unwrap_or(0),
                    );
                }
            }
        }
        if kind != RowKind::Frontend {
            let name = format!("lb_{k}_status");
            o.head(
                &name,
                Kind::Gauge,
                "Current status: 1 for the state it is in (status).",
            );
            let states: &[&str] = if kind == RowKind::Server {
                &SERVER_STATES
            } else {
                &["UP", "DOWN"]
            };
            for r in &rows {
                let st = r.text("status");
                let word = st.split_whitespace().next().unwrap_or("");
                for s in states {
                    o.sample(
                        &name,
                        &format!("{},state=\"{s}\"", labels(r)),
                        u8::from(word == *s),
                    );
                }
            }
        }
    }

    // Ours: XDP per VIP and per L4 backend.
    let xdp_rows = |kind: RowKind| -> Vec<(&Row, XdpCounters)> {
        snap.rows()
            .filter(|r| r.kind == kind)
            .filter_map(|r| r.xdp.map(|x| (r, x)))
            .collect()
    };
    let vips = xdp_rows(RowKind::Frontend);
    let vip_of = |r: &Row| {
        snap.services
            .iter()
            .find(|s| s.name == r.service())
            .map_or(String::new(), |s| s.vip.clone())
    };
    type Pick = fn(&XdpCounters) -> u64;
    let vip_families: [(&str, &str, Pick); 4] = [
        ("packets_total", "Packets to the VIP seen by XDP.", |x| {
            x.packets
        }),
        (
            "bytes_total",
            "Bytes of packets to the VIP seen by XDP.",
            |x| x.bytes,
        ),
        (
            "new_flows_total",
            "Flows given a backend by the Maglev table.",
            |x| x.new_flows,
        ),
        (
            "conntrack_hits_total",
            "Packets forwarded from a conntrack hit.",
            |x| x.conntrack_hits,
        ),
    ];
    if !vips.is_empty() {
        for (suffix, help, pick) in vip_families {
            let name = format!("lb_xdp_vip_{suffix}");
            o.head(&name, Kind::Counter, help);
            for (r, x) in &vips {
                o.sample(
                    &name,
                    &format!("{},vip=\"{}\"", labels(r), esc(&vip_of(r))),
                    pick(x),
                );
            }
        }
    }
    let backends = xdp_rows(RowKind::Server);
    if !backends.is_empty() {
        for (suffix, help, pick) in &vip_families[..3] {
            let name = format!("lb_xdp_backend_{suffix}");
            o.head(
                &name,
                Kind::Counter,
                &help.replace("the VIP", "the backend"),
            );
            for (r, x) in &backends {
                o.sample(&name, &labels(r), pick(x));
            }
        }
    }
    if let Some(x) = &snap.xdp {
        o.head(
            "lb_xdp_drops_total",
            Kind::Counter,
            "Packets to a VIP address dropped by XDP, by reason.",
        );
        for (reason, n) in &x.drops {
            o.sample("lb_xdp_drops_total", &format!("reason=\"{reason}\""), n);
        }
        if let Some(n) = x.conntrack_entries {
            o.head(
                "lb_xdp_conntrack_entries",
                Kind::Gauge,
                "Entries in the conntrack tables (IPv4 + IPv6).",
            );
            o.sample("lb_xdp_conntrack_entries", "", n);
        }
        o.head(
            "lb_xdp_conntrack_capacity",
            Kind::Gauge,
            "Capacity of each conntrack table.",
        );
        o.sample("lb_xdp_conntrack_capacity", "", x.conntrack_capacity);
    }

    if !snap.vrrp.is_empty() {
        o.head(
            "lb_vrrp_state",
            Kind::Gauge,
            "VRRP state: 1 for the state the instance is in.",
        );
        for v in &snap.vrrp {
            for s in VRRP_STATES {
                o.sample(
                    "lb_vrrp_state",
                    &format!("instance=\"{}\",state=\"{s}\"", esc(&v.instance)),
                    u8::from(v.state == s),
                );
            }
        }
        type VPick = fn(&super::model::VrrpView) -> u64;
        let fams: [(&str, Kind, &str, VPick); 4] = [
            (
                "lb_vrrp_priority",
                Kind::Gauge,
                "This node's VRRP priority.",
                |v| v.priority,
            ),
            (
                "lb_vrrp_transitions_total",
                Kind::Counter,
                "VRRP state transitions.",
                |v| v.transitions,
            ),
            (
                "lb_vrrp_adverts_received_total",
                Kind::Counter,
                "VRRP adverts accepted.",
                |v| v.adverts_rx,
            ),
            (
                "lb_vrrp_adverts_sent_total",
                Kind::Counter,
                "VRRP adverts sent.",
                |v| v.adverts_tx,
            ),
        ];
        for (name, kind, help, pick) in fams {
            o.head(name, kind, help);
            for v in &snap.vrrp {
                o.sample(name, &format!("instance=\"{}\"", esc(&v.instance)), pick(v));
            }
        }
    }
    o.0
}
