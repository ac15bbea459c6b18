//! The stats page: HAProxy's layout (one table per service, FRONTEND, servers, BACKEND),
//! its status colours, plus the node's VRRP role and the XDP figures. Plain HTML and CSS:
//! it works without JavaScript, and `stats refresh` is a meta refresh.

use super::model::{Row, RowKind, ServiceView, Snapshot};
use crate::admin::AdminState;
use std::fmt::Write;

/// What the page needs besides the snapshot.
#[derive(Clone, Debug, Default)]
pub struct PageOptions<'a> {
    /// The stats uri, for links and the admin form's action.
    pub uri: &'a str,
    /// Seconds between automatic reloads, if any.
    pub refresh: Option<u64>,
    /// The anti-CSRF token when admin buttons are shown (authenticated admin users only).
    pub admin_token: Option<&'a str>,
    /// The authenticated user, if any.
    pub user: Option<&'a str>,
    /// A message to show at the top (the outcome of an admin action).
    pub notice: Option<&'a str>,
    /// The Prometheus endpoint, if enabled.
    pub prometheus_uri: Option<&'a str>,
}

/// Escapes text for HTML content and attribute values.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// `1536` -> `1.5 KiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.1} {}", UNITS[u])
}

/// `1234567` -> `1 234 567` (counts, exact, digits grouped by a thin space).
pub fn count(n: u64) -> String {
    let d = n.to_string();
    let mut o = String::with_capacity(d.len() + d.len() / 3 * 3);
    for (i, c) in d.chars().enumerate() {
        if i > 0 && (d.len() - i).is_multiple_of(3) {
            o.push('\u{2009}');
        }
        o.push(c);
    }
    o
}

/// `3725` seconds -> `1h02m`.
pub fn duration(s: u64) -> String {
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        3600..=86_399 => format!("{}h{:02}m", s / 3600, s / 60 % 60),
        _ => format!("{}d{:02}h", s / 86_400, s / 3600 % 24),
    }
}

const CSS: &str = r#"
body{font-family:Arial,Helvetica,sans-serif;font-size:12px;margin:0;background:#f4f5f7;color:#222}
header{background:#20406a;color:#fff;padding:10px 18px;display:flex;align-items:baseline;gap:18px;flex-wrap:wrap}
header h1{font-size:20px;margin:0}
header .meta{font-size:12px;opacity:.9}
header a{color:#cde}
main{padding:12px 18px}
.cards{display:flex;gap:12px;flex-wrap:wrap;margin-bottom:12px}
.card{background:#fff;border:1px solid #ccd;border-radius:6px;padding:8px 12px;min-width:220px}
.card h2{font-size:13px;margin:0 0 6px;color:#20406a}
.role{display:inline-block;font-weight:bold;font-size:15px;padding:2px 10px;border-radius:4px;color:#fff}
.role.MASTER{background:#2e8b32}.role.BACKUP{background:#6b7280}.role.INIT,.role.STOPPING{background:#b45309}.role.FAULT{background:#b91c1c}
.kv{border-collapse:collapse}.kv td.n{text-align:right;padding-right:14px}.kv td{padding:1px 8px 1px 0;vertical-align:top}.kv td:first-child{color:#555}
.legend span{display:inline-block;padding:1px 6px;margin:1px 2px;border:1px solid #999;border-radius:3px}
table.px{border-collapse:collapse;background:#fff;margin-bottom:16px;width:100%}
table.px caption{text-align:left;font-weight:bold;font-size:14px;padding:4px 0;color:#20406a}
table.px caption .sub{font-weight:normal;color:#555;font-size:12px}
table.px th{background:#d8dce6;border:1px solid #aab;padding:2px 3px;font-weight:bold;white-space:nowrap;font-size:11px}
table.px th.grp{background:#b9c2d6}
table.px td{border:1px solid #ccd;padding:2px 4px;text-align:right;white-space:nowrap}
table.px td.name{text-align:left;font-weight:bold}
table.px td.st{text-align:center;font-weight:bold}
tr.frontend td{background:#e7f0fb}tr.backend td{background:#dde3ee;font-weight:bold}
tr.xdponly td{background:#eef3ea}
.active_up{background:#c0ffc0!important}.active_going_down{background:#ffffa0!important}
.active_going_up{background:#ffd020!important}.active_down{background:#ff9090!important}
.active_nolb,.active_draining{background:#20a0ff!important}.maintain{background:#c07820!important;color:#fff}
.backup_up{background:#b0d0ff!important}.no_check{background:#e0e0e0!important}
td.xdp{background:#f2f7ee}
form.adm{display:inline;margin:0}form.adm button{font-size:10px;padding:0 3px;margin:0 1px;cursor:pointer}
.notice{background:#fff7cc;border:1px solid #e5c100;padding:6px 10px;border-radius:4px;margin-bottom:10px}
.err{color:#b91c1c}
footer{color:#666;padding:4px 18px 14px}
"#;

/// HAProxy's colour class of a server row.
fn status_class(r: &Row) -> &'static str {
    let st = r.text("status");
    let backup = r.int("bck") == Some(1);
    if r.admin == Some(AdminState::Maint) || st.starts_with("MAINT") {
        return "maintain";
    }
    if r.admin == Some(AdminState::Drain) || st.starts_with("DRAIN") || st.starts_with("NOLB") {
        return "active_draining";
    }
    if st.starts_with("DOWN") {
        return if st.contains('/') {
            "active_going_up"
        } else {
            "active_down"
        };
    }
    if st.starts_with("UP") {
        if st.contains('/') {
            return "active_going_down";
        }
        return if backup { "backup_up" } else { "active_up" };
    }
    "no_check"
}

fn num(r: &Row, col: &str) -> String {
    r.int(col).map_or(String::new(), count)
}

fn byte_cell(r: &Row, col: &str) -> String {
    match r.int(col) {
        Some(n) => format!("<td title=\"{n} bytes\">{}</td>", bytes(n)),
        None => "<td></td>".into(),
    }
}

fn service_table(o: &mut String, svc: &ServiceView, opts: &PageOptions<'_>) {
    let admin = opts.admin_token.is_some();
    let l4 = matches!(svc.mode, "dsr" | "ipip");
    let _ = write!(
        o,
        "<table class=\"px\"><caption>{} <span class=\"sub\">mode {} &middot; VIP {}</span></caption>",
        esc(&svc.name),
        esc(svc.mode),
        esc(&svc.vip)
    );
    o.push_str(
        "<tr><th class=\"grp\" rowspan=2></th><th class=\"grp\" colspan=3>Queue</th>\
         <th class=\"grp\" colspan=5>Sessions</th><th class=\"grp\" colspan=2>Bytes</th>\
         <th class=\"grp\" colspan=2>Denied</th><th class=\"grp\" colspan=3>Errors</th>\
         <th class=\"grp\" colspan=2>Warnings</th><th class=\"grp\" colspan=8>Server</th>\
         <th class=\"grp\" colspan=3>XDP</th>",
    );
    if admin {
        o.push_str("<th class=\"grp\" rowspan=2>Admin</th>");
    }
    o.push_str(
        "</tr><tr><th>Cur</th><th>Max</th><th>Limit</th>\
         <th>Cur</th><th>Max</th><th>Limit</th><th>Total</th><th>LbTot</th>\
         <th>In</th><th>Out</th><th>Req</th><th>Resp</th>\
         <th>Req</th><th>Conn</th><th>Resp</th><th>Retr</th><th>Redis</th>\
         <th>Status</th><th>LastChk</th><th>Wght</th><th>Act</th><th>Bck</th>\
         <th>Chk</th><th>Dwn</th><th>Dwntme</th>\
         <th>Packets</th><th>Bytes</th><th>New flows</th></tr>",
    );
    for r in &svc.rows {
        let (class, st_class) = match r.kind {
            RowKind::Frontend if r.int("req_tot").is_none() && l4 => ("xdponly", ""),
            RowKind::Frontend => ("frontend", ""),
            RowKind::Backend => ("backend", ""),
            RowKind::Server => ("server", status_class(r)),
        };
        let _ = write!(o, "<tr class=\"{class}\">");
        let title = r
            .get("addr")
            .map(|a| format!(" title=\"{}\"", esc(&a.to_string())));
        let _ = write!(
            o,
            "<td class=\"name {st_class}\"{}>{}</td>",
            title.unwrap_or_default(),
            esc(&r.name())
        );
        for col in [
            "qcur", "qmax", "qlimit", "scur", "smax", "slim", "stot", "lbtot",
        ] {
            let _ = write!(o, "<td>{}</td>", num(r, col));
        }
        o.push_str(&byte_cell(r, "bin"));
        o.push_str(&byte_cell(r, "bout"));
        for col in ["dreq", "dresp", "ereq", "econ", "eresp", "wretr", "wredis"] {
            let _ = write!(o, "<td>{}</td>", num(r, col));
        }
        // Status with the time since the last change, as HAProxy shows it.
        let status = r.text("status");
        let since = r
            .int("lastchg")
            .map(|s| format!("{} ", duration(s)))
            .unwrap_or_default();
        let _ = write!(
            o,
            "<td class=\"st {st_class}\">{since}{}</td>",
            esc(&status)
        );
        let lastchk = match (
            r.get("check_status"),
            r.int("check_code"),
            r.int("check_duration"),
        ) {
            (Some(s), code, ms) if !s.to_string().is_empty() => {
                let mut t = s.to_string();
                if let Some(c) = code {
                    let _ = write!(t, " {c}");
                }
                if let Some(ms) = ms {
                    let _ = write!(t, " in {ms}ms");
                }
                let desc = r.text("check_desc");
                let info = r.text("last_chk");
                format!(
                    "<td title=\"{}\">{}</td>",
                    esc(format!("{desc} {info}").trim()),
                    esc(&t)
                )
            }
            _ => "<td></td>".into(),
        };
        o.push_str(&lastchk);
        for col in ["weight", "act", "bck"] {
            let v = match (r.kind, col, r.int(col)) {
                (RowKind::Server, "act" | "bck", Some(1)) => "Y".to_string(),
                (RowKind::Server, "act" | "bck", Some(_)) => "-".to_string(),
                (_, _, v) => v.map_or(String::new(), |n| n.to_string()),
            };
            let _ = write!(o, "<td>{v}</td>");
        }
        let _ = write!(
            o,
            "<td>{}</td><td>{}</td>",
            num(r, "chkfail"),
            num(r, "chkdown")
        );
        let _ = write!(
            o,
            "<td>{}</td>",
            r.int("downtime").map_or(String::new(), duration)
        );
        match r.xdp {
            Some(x) => {
                let _ = write!(
                    o,
                    "<td class=\"xdp\">{}</td><td class=\"xdp\" title=\"{} bytes\">{}</td><td class=\"xdp\">{}</td>",
                    count(x.packets),
                    x.bytes,
                    bytes(x.bytes),
                    count(x.new_flows)
                );
            }
            None => {
                o.push_str("<td class=\"xdp\"></td><td class=\"xdp\"></td><td class=\"xdp\"></td>")
            }
        }
        if let Some(token) = opts.admin_token {
            o.push_str("<td>");
            if r.kind == RowKind::Server {
                let _ = write!(
                    o,
                    "<form class=\"adm\" method=\"post\" action=\"{}\">\
                     <input type=\"hidden\" name=\"token\" value=\"{}\">\
                     <input type=\"hidden\" name=\"b\" value=\"{}\">\
                     <input type=\"hidden\" name=\"s\" value=\"{}\">\
                     <button name=\"action\" value=\"ready\">Ready</button>\
                     <button name=\"action\" value=\"drain\">Drain</button>\
                     <button name=\"action\" value=\"maint\">Maint</button></form>",
                    esc(opts.uri),
                    esc(token),
                    esc(&r.service()),
                    esc(&r.name())
                );
            }
            o.push_str("</td>");
        }
        o.push_str("</tr>");
    }
    o.push_str("</table>");
}

fn node_cards(o: &mut String, snap: &Snapshot) {
    o.push_str("<div class=\"cards\">");
    // VRRP role and peers.
    o.push_str("<div class=\"card\"><h2>VRRP</h2>");
    if snap.vrrp.is_empty() {
        o.push_str("no VRRP instance: this node always serves its VIPs");
    }
    for v in &snap.vrrp {
        let _ = write!(
            o,
            "<div><span class=\"role {}\">{}</span> <b>{}</b> vrid {} priority {}</div>\
             <table class=\"kv\"><tr><td>VIPs</td><td>{}</td></tr>\
             <tr><td>peers</td><td>{}</td></tr><tr><td>last heard</td><td>{}</td></tr>\
             <tr><td>adverts</td><td>{} in / {} out, {} transitions</td></tr></table>",
            esc(&v.state),
            esc(&v.state),
            esc(&v.instance),
            v.vrid,
            v.priority,
            esc(&v.vips.join(", ")),
            if v.peers.is_empty() {
                "multicast".to_string()
            } else {
                esc(&v.peers.join(", "))
            },
            v.last_heard.as_deref().map_or("-".to_string(), esc),
            count(v.adverts_rx),
            count(v.adverts_tx),
            v.transitions
        );
    }
    o.push_str("</div>");
    // XDP.
    o.push_str("<div class=\"card\"><h2>XDP data plane</h2>");
    match (&snap.xdp, &snap.xdp_error) {
        (Some(x), _) => {
            o.push_str("<table class=\"kv\">");
            let ct = x.conntrack_entries.map_or("-".to_string(), count);
            let _ = write!(
                o,
                "<tr><td>conntrack entries</td><td>{ct} (capacity {} per family)</td></tr>",
                count(u64::from(x.conntrack_capacity))
            );
            let total: u64 = x.drops.iter().map(|(_, n)| n).sum();
            let _ = write!(
                o,
                "<tr><td>drops</td><td>{} total</td></tr></table>",
                count(total)
            );
            // Reasons in two columns, so the card stays short.
            o.push_str("<table class=\"kv\">");
            for pair in x.drops.chunks(2) {
                o.push_str("<tr>");
                for (reason, n) in pair {
                    let _ = write!(
                        o,
                        "<td>{}</td><td class=\"n\">{}</td>",
                        esc(reason),
                        count(*n)
                    );
                }
                o.push_str("</tr>");
            }
            o.push_str("</table>");
        }
        (None, Some(e)) => {
            let _ = write!(
                o,
                "<span class=\"err\">XDP counters unavailable: {}</span>",
                esc(e)
            );
        }
        (None, None) => o.push_str("XDP counters unavailable"),
    }
    o.push_str("</div>");
    // Legend.
    o.push_str(
        "<div class=\"card legend\"><h2>Legend</h2>\
         <span class=\"active_up\">active UP</span><span class=\"backup_up\">backup UP</span>\
         <span class=\"active_going_down\">UP, going down</span>\
         <span class=\"active_going_up\">DOWN, going up</span>\
         <span class=\"active_down\">DOWN</span>\
         <span class=\"active_draining\">DRAIN / NOLB</span>\
         <span class=\"maintain\">MAINT</span>\
         <span class=\"no_check\">not checked</span>\
         <div style=\"margin-top:6px\">Status shows the time since the last change. \
         Bytes in binary units; hover for exact values.</div></div>",
    );
    o.push_str("</div>");
}

/// The whole page.
pub fn render(snap: &Snapshot, opts: &PageOptions<'_>) -> String {
    let mut o = String::with_capacity(32 * 1024);
    let i = &snap.info;
    o.push_str("<!DOCTYPE html><html><head><meta charset=\"utf-8\">");
    if let Some(s) = opts.refresh {
        let _ = write!(o, "<meta http-equiv=\"refresh\" content=\"{s}\">");
    }
    let _ = write!(
        o,
        "<title>Statistics Report for lb on {}</title><style>{CSS}</style></head><body>",
        esc(&i.node)
    );
    let _ = write!(
        o,
        "<header><h1>lb statistics report</h1><span class=\"meta\">node <b>{}</b> &middot; \
         instance {} &middot; pid {} &middot; uptime {} &middot; version {}</span>\
         <span class=\"meta\">",
        esc(&i.node),
        esc(&i.instance),
        i.pid,
        duration(i.uptime_seconds),
        esc(i.version)
    );
    let uri = esc(opts.uri);
    let _ = write!(
        o,
        "<a href=\"{uri};csv\">CSV</a> &middot; <a href=\"{uri};json\">JSON</a>"
    );
    if let Some(p) = opts.prometheus_uri {
        let _ = write!(o, " &middot; <a href=\"{}\">Prometheus</a>", esc(p));
    }
    match opts.refresh {
        Some(s) => {
            let _ = write!(
                o,
                " &middot; refresh every {s}s (<a href=\"{uri};norefresh\">stop</a>)"
            );
        }
        None => o.push_str(""),
    }
    if let Some(u) = opts.user {
        let _ = write!(o, " &middot; user {}", esc(u));
    }
    o.push_str("</span></header><main>");
    if let Some(n) = opts.notice {
        let _ = write!(o, "<div class=\"notice\">{}</div>", esc(n));
    }
    node_cards(&mut o, snap);
    for svc in &snap.services {
        service_table(&mut o, svc, opts);
    }
    let _ = writeln!(
        o,
        "</main><footer>Generated at Unix time {} by lb {}.</footer></body></html>",
        i.generated_seconds,
        esc(i.version)
    );
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(5 * 1024 * 1024), "5.0 MiB");
        assert_eq!(count(999), "999");
        assert_eq!(count(1_234_567), "1\u{2009}234\u{2009}567");
        assert_eq!(count(12_345), "12\u{2009}345");
        assert_eq!(duration(59), "59s");
        assert_eq!(duration(3725), "1h02m");
        assert_eq!(duration(90), "1m30s");
        assert_eq!(duration(90_000), "1d01h");
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
