//! `show stat`, `show info` and `show servers state`: HAProxy's formats, so tools written
//! for HAProxy's stats socket read ours.

use super::{server_count, server_is_backup, server_name, Control, ServerStatus};
use crate::{
    admin::{AdminError, AdminState, OutputFormat},
    l7::Counters,
};
use std::{fmt::Write, sync::atomic::Ordering, time::Instant};

/// HAProxy 2.6's `show stat` columns, in its order, up to the last one we fill.
pub const CSV_COLUMNS: &[&str] = &[
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
];

/// One CSV row, keyed by column name; unset columns print empty, as HAProxy leaves them.
#[derive(Default)]
struct Row(Vec<(&'static str, String)>);

impl Row {
    fn set(&mut self, col: &'static str, v: impl ToString) -> &mut Self {
        self.0.push((col, v.to_string()));
        self
    }

    fn counters(&mut self, c: &Counters) -> &mut Self {
        let ld = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        self.set("scur", c.cur.load(Ordering::Relaxed))
            .set("smax", c.max.load(Ordering::Relaxed))
            .set("stot", ld(&c.total))
            .set("bin", ld(&c.bytes_in))
            .set("bout", ld(&c.bytes_out))
            .set("econ", ld(&c.errors_conn))
            .set("eresp", ld(&c.errors_resp))
            .set("wretr", ld(&c.retries))
            .set("wredis", ld(&c.redispatches));
        for (i, col) in [
            "hrsp_1xx",
            "hrsp_2xx",
            "hrsp_3xx",
            "hrsp_4xx",
            "hrsp_5xx",
            "hrsp_other",
        ]
        .into_iter()
        .enumerate()
        {
            self.set(col, ld(&c.status[i]));
        }
        self
    }

    fn render(&self) -> String {
        CSV_COLUMNS
            .iter()
            .map(|col| {
                self.0
                    .iter()
                    .rev()
                    .find(|(c, _)| c == col)
                    .map_or(String::new(), |(_, v)| v.replace(',', " "))
            })
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// `show stat`: HAProxy's CSV (header line `# pxname,svname,...`) or JSON.
pub fn show_stat(control: &Control, format: OutputFormat) -> String {
    let rows = stat_rows(control);
    match format {
        OutputFormat::Default => {
            let mut out = format!("# {}\n", CSV_COLUMNS.join(","));
            for r in &rows {
                out.push_str(&r.render());
                out.push('\n');
            }
            out
        }
        OutputFormat::Json => {
            let objs: Vec<String> = rows
                .iter()
                .map(|r| {
                    let fields: Vec<String> =
                        r.0.iter()
                            .map(|(k, v)| {
                                format!(
                                    "\"{k}\":\"{}\"",
                                    v.replace('\\', "\\\\").replace('"', "\\\"")
                                )
                            })
                            .collect();
                    format!("{{{}}}", fields.join(","))
                })
                .collect();
            format!("[{}]\n", objs.join(","))
        }
    }
}

fn stat_rows(control: &Control) -> Vec<Row> {
    let now = Instant::now();
    let statuses = control.statuses();
    let mut rows = Vec::new();
    let cfg = control.config();
    for (si, svc) in cfg.services.iter().enumerate() {
        let iid = si + 1;
        let http = control.http_stats(si);
        let http = http.as_ref();
        if let Some(stats) = http {
            let mut r = Row::default();
            r.set("pxname", &svc.name)
                .set("svname", "FRONTEND")
                .set("pid", 1)
                .set("iid", iid)
                .set("sid", 0)
                .set("type", 0);
            r.counters(&stats.counters)
                .set("status", "OPEN")
                .set("req_tot", stats.requests.load(Ordering::Relaxed));
            if let Some(h) = &svc.http {
                if h.maxconn > 0 {
                    r.set("slim", h.maxconn);
                }
            }
            rows.push(r);
        }
        let n = server_count(svc);
        let (mut act, mut bck, mut weight) = (0u32, 0u32, 0u32);
        for (i, &st) in statuses[si].iter().enumerate().take(n) {
            let st: ServerStatus = st;
            let mut r = Row::default();
            r.set("pxname", &svc.name)
                .set("svname", server_name(svc, i).unwrap_or("?"))
                .set("pid", 1)
                .set("iid", iid)
                .set("sid", i + 1)
                .set("type", 2);
            let backup = server_is_backup(svc, i);
            r.set("act", if backup { 0 } else { 1 })
                .set("bck", if backup { 1 } else { 0 });
            let w = if st.takes_new() { st.weight } else { 0 };
            r.set("weight", w);
            if st.takes_new() {
                weight += w;
                if backup {
                    bck += 1;
                } else {
                    act += 1;
                }
            }
            let word = st.status_word();
            r.set("status", word)
                .set("lastchg", now.saturating_duration_since(st.since).as_secs());
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
                    .set("check_code", c.check_code)
                    .set("check_duration", c.check_duration)
                    .set("hanafail", c.hanafail);
            } else {
                r.set("check_status", "");
            }
            if let Some(s) = http.and_then(|s| s.servers.get(i)) {
                r.counters(&s.counters)
                    .set("qcur", s.queue_cur.load(Ordering::Relaxed))
                    .set("qmax", s.queue_max.load(Ordering::Relaxed))
                    .set("lbtot", s.counters.total.load(Ordering::Relaxed));
            }
            rows.push(r);
        }
        if n > 0 {
            let mut r = Row::default();
            r.set("pxname", &svc.name)
                .set("svname", "BACKEND")
                .set("pid", 1)
                .set("iid", iid)
                .set("sid", 0)
                .set("type", 1);
            if let Some(stats) = http {
                r.counters(&stats.counters)
                    .set("lbtot", stats.counters.total.load(Ordering::Relaxed));
            }
            r.set("status", if act + bck > 0 { "UP" } else { "DOWN" })
                .set("weight", weight)
                .set("act", act)
                .set("bck", bck);
            rows.push(r);
        }
    }
    rows
}

/// `show info`: process information as `Name: value` lines (HAProxy's style) or JSON.
pub fn show_info(control: &Control, format: OutputFormat) -> String {
    let up = control.started().elapsed().as_secs();
    let cfg = control.config();
    let fields = [
        ("Name", "lb".to_string()),
        ("Version", env!("CARGO_PKG_VERSION").to_string()),
        ("Pid", std::process::id().to_string()),
        ("Uptime_sec", up.to_string()),
        (
            "Uptime",
            format!(
                "{}d {}h{:02}m{:02}s",
                up / 86400,
                up / 3600 % 24,
                up / 60 % 60,
                up % 60
            ),
        ),
        ("Instance", cfg.instance.clone()),
        ("Interface", cfg.xdp.interface.clone()),
        ("Services", cfg.services.len().to_string()),
    ];
    match format {
        OutputFormat::Default => fields.iter().fold(String::new(), |mut s, (k, v)| {
            let _ = writeln!(s, "{k}: {v}");
            s
        }),
        OutputFormat::Json => {
            let body: Vec<String> = fields
                .iter()
                .map(|(k, v)| format!("\"{k}\":\"{v}\""))
                .collect();
            format!("{{{}}}\n", body.join(","))
        }
    }
}

/// `show servers state [service]`: one line per server, HAProxy's field order where it
/// applies (`be_name srv_name srv_addr srv_op_state srv_admin_state srv_uweight ...`).
pub fn show_servers_state(control: &Control, only: Option<&str>) -> Result<String, AdminError> {
    let cfg = control.config();
    if let Some(name) = only {
        if !cfg.services.iter().any(|s| s.name == name) {
            return Err(AdminError::NoSuchService);
        }
    }
    let statuses = control.statuses();
    let mut out = String::from("# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change status\n");
    let now = Instant::now();
    for (si, svc) in cfg.services.iter().enumerate() {
        if only.is_some_and(|n| n != svc.name) {
            continue;
        }
        for (i, &st) in statuses[si].iter().enumerate().take(server_count(svc)) {
            let addr = match &svc.http {
                Some(h) => h.servers[i].addr.to_string(),
                None => svc.backends[i].addr.to_string(),
            };
            // HAProxy: op_state 0 stopped, 2 running; admin_state bit 0x01 maint, 0x08 drain.
            let op = if st.keeps_existing() { 2 } else { 0 };
            let admin = match st.admin {
                AdminState::Ready => 0,
                AdminState::Maint => 1,
                AdminState::Drain => 8,
            };
            let _ = writeln!(
                out,
                "{} {} {} {} {} {} {} {} {} {} {}",
                si + 1,
                svc.name,
                i + 1,
                server_name(svc, i).unwrap_or("?"),
                addr,
                op,
                admin,
                st.weight,
                st.config_weight,
                now.saturating_duration_since(st.since).as_secs(),
                st.status_word()
            );
        }
    }
    Ok(out)
}
