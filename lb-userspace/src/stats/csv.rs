//! HAProxy's CSV (`show stat`, `<stats uri>;csv`): its header line `# pxname,svname,...`,
//! its column order, one line per row, empty fields for what a row does not fill, and a
//! comma after every field.

use super::model::Snapshot;

/// HAProxy 2.6's `show stat` columns, in its order, up to the last one we fill
/// (`uweight`). A tool reading HAProxy's CSV by name or by position reads ours.
pub const COLUMNS: &[&str] = &[
    "pxname",
    "svname",
    "qcur",
    "qmax",
    "scur",
    "smax",
    "slim",
    "stot",
    "bin",
    "bout",
    "dreq",
    "dresp",
    "ereq",
    "econ",
    "eresp",
    "wretr",
    "wredis",
    "status",
    "weight",
    "act",
    "bck",
    "chkfail",
    "chkdown",
    "lastchg",
    "downtime",
    "qlimit",
    "pid",
    "iid",
    "sid",
    "throttle",
    "lbtot",
    "tracked",
    "type",
    "rate",
    "rate_lim",
    "rate_max",
    "check_status",
    "check_code",
    "check_duration",
    "hrsp_1xx",
    "hrsp_2xx",
    "hrsp_3xx",
    "hrsp_4xx",
    "hrsp_5xx",
    "hrsp_other",
    "hanafail",
    "req_rate",
    "req_rate_max",
    "req_tot",
    "cli_abrt",
    "srv_abrt",
    "comp_in",
    "comp_out",
    "comp_byp",
    "comp_rsp",
    "lastsess",
    "last_chk",
    "last_agt",
    "qtime",
    "ctime",
    "rtime",
    "ttime",
    "agent_status",
    "agent_code",
    "agent_duration",
    "check_desc",
    "agent_desc",
    "check_rise",
    "check_fall",
    "check_health",
    "agent_rise",
    "agent_fall",
    "agent_health",
    "addr",
    "cookie",
    "mode",
    "algo",
    "conn_rate",
    "conn_rate_max",
    "conn_tot",
    "intercepted",
    "dcon",
    "dses",
    "wrew",
    "connect",
    "reuse",
    "cache_lookups",
    "cache_hits",
    "srv_icur",
    "src_ilim",
    "qtime_max",
    "ctime_max",
    "rtime_max",
    "ttime_max",
    "eint",
    "idle_conn_cur",
    "safe_conn_cur",
    "used_conn_cur",
    "need_conn_est",
    "uweight",
];

/// The header line, as HAProxy writes it (every field, the last one too, ends with a
/// comma).
pub fn header() -> String {
    format!("# {},\n", COLUMNS.join(","))
}

/// The whole CSV: header and one line per row.
pub fn render(snap: &Snapshot) -> String {
    let mut out = header();
    for row in snap.rows() {
        let line: Vec<String> = COLUMNS
            .iter()
            .map(|c| {
                row.get(c).map_or(String::new(), |v| {
                    v.to_string().replace([',', '\n', '\r'], " ")
                })
            })
            .collect();
        out.push_str(&line.join(","));
        out.push_str(",\n");
    }
    out
}
