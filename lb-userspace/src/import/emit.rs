//! Turns the parsed HAProxy proxies and the VRRP instances into lb's TOML.
//!
//! `listen` sections become one service per bind address; a `frontend` is joined with its
//! `default_backend` (client-side settings from the frontend, server-side ones from the
//! backend). `mode http` becomes `mode = "http"`; `mode tcp` becomes an XDP `dsr`
//! service, the L4 mode that needs no changes on the network (servers hold the VIP on
//! loopback). Written by hand rather than serialized so the file carries comments.

use super::{
    fmt_duration,
    haproxy::{self, Located, Mode, Proxy, ProxyKind, Settings},
    NoteKind, Notes, Options, PendingValue,
};
use crate::config::vrrp::{MAX_ADVERT_INTERVAL, MIN_ADVERT_INTERVAL};
use std::{collections::HashSet, fmt::Write, net::IpAddr, time::Duration};

/// First VRID given to instances whose source has none (keepalived's customary 51).
pub const FIRST_VRID: u8 = 51;
/// Priority given to instances whose source has none (RFC 5798's default).
pub const IMPORT_PRIORITY: u8 = crate::config::vrrp::DEFAULT_PRIORITY;
/// XDP interface when neither `--interface` nor a VRRP instance names one.
pub const FALLBACK_INTERFACE: &str = "eth0";

/// A VRRP instance read from wackamole.conf or keepalived.conf, before defaults.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct VrrpSpec {
    /// Instance name.
    pub name: String,
    /// Source file (for notes).
    pub file: String,
    /// Source line.
    pub line: usize,
    /// Interface; empty = the import's interface.
    pub interface: String,
    /// `virtual_router_id`.
    pub vrid: Option<u8>,
    /// `priority`.
    pub priority: Option<u8>,
    /// `advert_int`.
    pub advert: Option<Duration>,
    /// `nopreempt` / `Prefer None` -> `Some(false)`.
    pub preempt: Option<bool>,
    /// `preempt_delay`.
    pub preempt_delay: Option<Duration>,
    /// Addresses with prefix lengths.
    pub vips: Vec<(IpAddr, u8)>,
    /// `unicast_peer`.
    pub unicast_peers: Vec<IpAddr>,
    /// `garp_master_repeat`.
    pub garp_count: Option<u32>,
    /// Comments written above the instance's priority.
    pub comments: Vec<String>,
}

/// The generated file and the notes made while resolving.
#[derive(Debug)]
pub struct Emitted {
    /// The TOML text.
    pub toml: String,
    /// Notes about choices made (wildcard binds, missing ports, L4 settings).
    pub notes: Vec<super::Note>,
}

/// A TOML basic string.
pub fn q(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '\t' => o.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(o, "\\u{:04X}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn sock(a: IpAddr, port: u16) -> String {
    std::net::SocketAddr::new(a, port).to_string()
}

fn pending_value(v: &PendingValue) -> String {
    match v {
        PendingValue::Flag => "true".into(),
        PendingValue::Duration(d) => q(&fmt_duration(*d)),
        PendingValue::Int(n) => n.to_string(),
        PendingValue::Text(t) => q(t),
    }
}

/// Frontend-side and backend-side settings of a frontend + backend pair.
fn merge(front: &Settings, back: &Settings) -> Settings {
    let or = |a: &Option<Located<bool>>, b: &Option<Located<bool>>| match (a, b) {
        (Some(x), Some(y)) => Some(if y.value { y.clone() } else { x.clone() }),
        (x, y) => y.clone().or_else(|| x.clone()),
    };
    let mut s = back.clone();
    s.mode = front.mode.clone().or_else(|| back.mode.clone());
    s.maxconn = front.maxconn.clone();
    s.timeout_client = front.timeout_client.clone();
    s.timeout_http_request = front.timeout_http_request.clone();
    s.httpclose = or(&front.httpclose, &back.httpclose);
    s.forwardfor = or(&front.forwardfor, &back.forwardfor);
    s.pending.extend(front.pending.iter().cloned());
    s
}

struct Out {
    toml: String,
    notes: Notes,
    seen: HashSet<(usize, String)>,
}

impl Out {
    fn note(&mut self, line: usize, kind: NoteKind, reason: String) {
        if self.seen.insert((line, reason.clone())) {
            self.notes.add(line, kind, reason);
        }
    }
    fn line(&mut self, s: impl AsRef<str>) {
        self.toml.push_str(s.as_ref());
        self.toml.push('\n');
    }
}

/// Resolves and writes everything. `hap_text` is haproxy.cfg's text (for notes).
pub fn emit(
    hap: &haproxy::Parsed,
    hap_file: &str,
    hap_text: &str,
    mut vrrp: Vec<VrrpSpec>,
    opts: &Options,
    sources: &[String],
) -> Emitted {
    let map = |a: IpAddr| opts.map.apply(a);
    let mut out = Out {
        toml: String::new(),
        notes: Notes::new(hap_file, hap_text),
        seen: HashSet::new(),
    };
    for v in &mut vrrp {
        for (a, _) in &mut v.vips {
            *a = map(*a);
        }
        for p in &mut v.unicast_peers {
            *p = map(*p);
        }
        if let Some(i) = &opts.interface {
            v.interface = i.clone();
        }
    }
    let interface = opts.interface.clone().or_else(|| {
        vrrp.iter()
            .map(|v| v.interface.clone())
            .find(|i| !i.is_empty())
    });
    let first_line = hap.proxies.first().map_or(1, |p| p.line);
    let interface = interface.unwrap_or_else(|| {
        out.note(
            first_line,
            NoteKind::Assumed,
            format!("no --interface and no VRRP interface: [xdp] interface = {FALLBACK_INTERFACE:?}; pass --interface"),
        );
        FALLBACK_INTERFACE.to_string()
    });
    for v in &mut vrrp {
        if v.interface.is_empty() {
            v.interface = interface.clone();
        }
    }

    out.line(format!(
        "# lb config generated by `lb import` from {}.",
        sources.join(", ")
    ));
    out.line("# `lb import` listed on stderr, with line numbers, every source line it did not");
    out.line("# translate and every choice it made: review them before running this on the nodes.");
    out.line("");
    out.line("[xdp]");
    out.line(format!("interface = {}", q(&interface)));

    let mut names = HashSet::new();
    for p in &hap.proxies {
        let back = match p.kind {
            ProxyKind::Listen => p,
            ProxyKind::Backend => {
                let used = hap.proxies.iter().any(|f| {
                    f.kind == ProxyKind::Frontend
                        && f.default_backend
                            .as_ref()
                            .is_some_and(|b| b.value == p.name)
                });
                if !used {
                    out.note(
                        p.line,
                        NoteKind::Untranslated,
                        format!(
                            "backend {:?} is no frontend's default_backend: not translated",
                            p.name
                        ),
                    );
                }
                continue;
            }
            ProxyKind::Frontend => {
                let Some(b) = &p.default_backend else {
                    out.note(
                        p.line,
                        NoteKind::Untranslated,
                        "a frontend without default_backend has no servers: not translated".into(),
                    );
                    continue;
                };
                match hap
                    .proxies
                    .iter()
                    .find(|x| x.kind == ProxyKind::Backend && x.name == b.value)
                {
                    Some(x) => x,
                    None => {
                        out.note(
                            b.line,
                            NoteKind::Untranslated,
                            format!("no backend named {:?}: frontend not translated", b.value),
                        );
                        continue;
                    }
                }
            }
        };
        let settings = if std::ptr::eq(p, back) {
            p.settings.clone()
        } else {
            merge(&p.settings, &back.settings)
        };
        service(&mut out, p, back, &settings, &vrrp, &mut names, &map);
    }

    let mut vrids = HashSet::new();
    let mut vnames = HashSet::new();
    for (i, v) in vrrp.iter().enumerate() {
        write_vrrp(&mut out, i, v, &mut vrids, &mut vnames);
    }
    Emitted {
        toml: out.toml,
        notes: out.notes.list,
    }
}

fn unique(names: &mut HashSet<String>, base: &str) -> String {
    let base = if base.is_empty() { "service" } else { base };
    let mut name = base.to_string();
    let mut n = 2;
    while !names.insert(name.clone()) {
        name = format!("{base}-{n}");
        n += 1;
    }
    name
}

fn service(
    out: &mut Out,
    p: &Proxy,
    back: &Proxy,
    s: &Settings,
    vrrp: &[VrrpSpec],
    names: &mut HashSet<String>,
    map: &dyn Fn(IpAddr) -> IpAddr,
) {
    if p.binds.is_empty() {
        out.note(
            p.line,
            NoteKind::Untranslated,
            format!("{:?} has no bind address: not translated", p.name),
        );
        return;
    }
    let mode = match &s.mode {
        Some(m) => m.value,
        None => {
            out.note(
                p.line,
                NoteKind::Assumed,
                "no `mode`: HAProxy's default is tcp, translated as an L4 (dsr) service".into(),
            );
            Mode::Tcp
        }
    };
    if back.servers.is_empty() {
        out.note(
            back.line,
            NoteKind::Untranslated,
            format!(
                "{:?} has no servers: not translated (lb services need at least one)",
                back.name
            ),
        );
        return;
    }
    for b in &p.binds {
        let addr = match b.value.addr {
            Some(a) => map(a),
            None => match vrrp.iter().flat_map(|v| v.vips.iter()).next() {
                Some((a, _)) => {
                    out.note(
                        b.line,
                        NoteKind::Assumed,
                        format!("a wildcard bind: lb serves a VIP address, the first VRRP VIP {a} is used"),
                    );
                    *a
                }
                None => {
                    out.note(
                        b.line,
                        NoteKind::Untranslated,
                        "a wildcard bind: lb needs the VIP address; bind to it or import a VRRP config".into(),
                    );
                    continue;
                }
            },
        };
        let name = unique(names, &p.name);
        out.line("");
        out.line("[[service]]");
        out.line(format!("name = {}", q(&name)));
        out.line(format!("vip = {}", q(&addr.to_string())));
        out.line(format!("port = {}", b.value.port));
        match mode {
            Mode::Http => http_service(out, back, s, b.value.port, map),
            Mode::Tcp => l4_service(out, back, s, b.value.port, map),
        }
    }
}

/// Writes the pending keys of `table` (`None`: the service's own), the key being the
/// part after the last dot (`http.stats.auth` is `auth` of `[service.http.stats]`). A
/// key given on several lines (`stats auth`) becomes a list.
fn service_level_pending(out: &mut Out, s: &Settings, table: Option<&str>) {
    let mut done: Vec<&str> = Vec::new();
    for p in &s.pending {
        let (t, k) = match p.key.rsplit_once('.') {
            Some((t, k)) => (Some(t), k),
            None => (None, p.key),
        };
        if t != table || done.contains(&p.key) {
            continue;
        }
        done.push(p.key);
        let all: Vec<String> = s
            .pending
            .iter()
            .filter(|q| q.key == p.key)
            .map(|q| pending_value(&q.value))
            .collect();
        match all.as_slice() {
            [one] => out.line(format!("{k} = {one}")),
            many => out.line(format!("{k} = [{}]", many.join(", "))),
        }
    }
}

fn http_service(
    out: &mut Out,
    back: &Proxy,
    s: &Settings,
    port: u16,
    map: &dyn Fn(IpAddr) -> IpAddr,
) {
    out.line("mode = \"http\"");
    service_level_pending(out, s, None);
    out.line("");
    out.line("[service.http]");
    if let Some(b) = &s.balance {
        out.line(format!("balance = {}", q(b.value)));
    }
    if let Some(c) = &s.cookie {
        let c = &c.value;
        let mut parts = vec![
            format!("name = {}", q(&c.name)),
            format!("mode = {}", q(c.mode.as_str())),
        ];
        for (k, v) in [
            ("indirect", c.indirect),
            ("preserve", c.preserve),
            ("nocache", c.nocache),
            ("postonly", c.postonly),
            ("httponly", c.httponly),
            ("secure", c.secure),
        ] {
            if v {
                parts.push(format!("{k} = true"));
            }
        }
        match c.domains.as_slice() {
            [] => {}
            [d] => parts.push(format!("domain = {}", q(d))),
            ds => parts.push(format!(
                "domain = [{}]",
                ds.iter().map(|d| q(d)).collect::<Vec<_>>().join(", ")
            )),
        }
        for (k, v) in [("maxidle", c.maxidle), ("maxlife", c.maxlife)] {
            if let Some(d) = v {
                parts.push(format!("{k} = {}", q(&fmt_duration(d))));
            }
        }
        out.line(format!("cookie = {{ {} }}", parts.join(", ")));
    }
    for (k, v) in [
        ("forwardfor", &s.forwardfor),
        ("httpclose", &s.httpclose),
        ("redispatch", &s.redispatch),
    ] {
        if let Some(v) = v {
            out.line(format!("{k} = {}", v.value));
        }
    }
    if let Some(r) = &s.retries {
        out.line(format!("retries = {}", r.value));
    }
    if let Some(m) = &s.maxconn {
        out.line(format!("maxconn = {}", m.value));
    }
    let timeouts: Vec<String> = [
        ("connect", &s.timeout_connect),
        ("client", &s.timeout_client),
        ("server", &s.timeout_server),
        ("http_request", &s.timeout_http_request),
        ("queue", &s.timeout_queue),
    ]
    .into_iter()
    .filter_map(|(k, v)| {
        v.as_ref()
            .map(|d| format!("{k} = {}", q(&fmt_duration(d.value))))
    })
    .collect();
    if !timeouts.is_empty() {
        out.line(format!("timeout = {{ {} }}", timeouts.join(", ")));
    }
    service_level_pending(out, s, Some("http"));
    let mut tables: Vec<&str> = Vec::new();
    for t in s
        .pending
        .iter()
        .filter_map(|p| p.key.rsplit_once('.').map(|(t, _)| t))
        .filter(|t| *t != "http")
    {
        if !tables.contains(&t) {
            tables.push(t);
        }
    }
    for t in tables {
        out.line("");
        out.line(format!("[service.{t}]"));
        service_level_pending(out, s, Some(t));
    }
    for srv in &back.servers {
        let port = srv.port.unwrap_or_else(|| {
            out.note(
                srv.line,
                NoteKind::Assumed,
                format!("no server port: HAProxy uses the client's port, {port} here"),
            );
            port
        });
        out.line("");
        out.line("[[service.server]]");
        out.line(format!("name = {}", q(&srv.name)));
        out.line(format!("address = {}", q(&sock(map(srv.addr), port))));
        if let Some(c) = &srv.cookie {
            out.line(format!("cookie = {}", q(c)));
        }
        match srv.weight {
            Some(0) => out.note(
                srv.line,
                NoteKind::Untranslated,
                "weight 0 (no new traffic) is a run-time drain in lb: set it with the admin socket; weight 1 applies".into(),
            ),
            Some(w) => out.line(format!("weight = {w}")),
            None => {}
        }
        if srv.backup {
            out.line("backup = true");
        }
        if let Some(m) = srv.maxconn {
            out.line(format!("maxconn = {m}"));
        }
        for p in &srv.pending {
            out.line(format!("{} = {}", p.key, pending_value(&p.value)));
        }
    }
}

fn l4_service(
    out: &mut Out,
    back: &Proxy,
    s: &Settings,
    port: u16,
    map: &dyn Fn(IpAddr) -> IpAddr,
) {
    out.line(
        "# HAProxy `mode tcp` proxied connections; lb forwards the packets in XDP with direct",
    );
    out.line(format!(
        "# server return: every server must hold the VIP on its loopback and serve port {port}."
    ));
    out.line("mode = \"dsr\"");
    let http_only: [(&str, Option<usize>); 10] = [
        ("balance", s.balance.as_ref().map(|v| v.line)),
        ("cookie", s.cookie.as_ref().map(|v| v.line)),
        ("httpclose", s.httpclose.as_ref().map(|v| v.line)),
        ("forwardfor", s.forwardfor.as_ref().map(|v| v.line)),
        ("redispatch", s.redispatch.as_ref().map(|v| v.line)),
        ("retries", s.retries.as_ref().map(|v| v.line)),
        ("maxconn", s.maxconn.as_ref().map(|v| v.line)),
        (
            "timeout connect",
            s.timeout_connect.as_ref().map(|v| v.line),
        ),
        ("timeout client", s.timeout_client.as_ref().map(|v| v.line)),
        ("timeout server", s.timeout_server.as_ref().map(|v| v.line)),
    ];
    for (k, line) in http_only {
        if let Some(line) = line {
            out.note(
                line,
                NoteKind::Untranslated,
                format!("`{k}` has no meaning for an L4 (dsr) service: XDP picks servers by Maglev hashing and keeps no proxy state"),
            );
        }
    }
    let mut addrs = HashSet::new();
    for srv in &back.servers {
        let addr = map(srv.addr);
        if !addrs.insert(addr) {
            out.note(
                srv.line,
                NoteKind::Untranslated,
                "an L4 service lists each server address once: skipped".into(),
            );
            continue;
        }
        if srv.port.is_some_and(|p| p != port) {
            out.note(
                srv.line,
                NoteKind::Untranslated,
                format!("dsr keeps the VIP's port {port}: the server must listen on it"),
            );
        }
        if srv.cookie.is_some() || srv.backup || srv.maxconn.is_some() {
            out.note(
                srv.line,
                NoteKind::Untranslated,
                "cookie, backup and maxconn apply to http services only".into(),
            );
        }
        out.line("");
        out.line("[[service.server]]");
        out.line(format!("name = {}", q(&srv.name)));
        out.line(format!("address = {}", q(&addr.to_string())));
        if let Some(w) = srv.weight {
            out.line(format!("weight = {w}"));
        }
    }
}

fn write_vrrp(
    out: &mut Out,
    i: usize,
    v: &VrrpSpec,
    vrids: &mut HashSet<(String, u8, bool)>,
    names: &mut HashSet<String>,
) {
    let v6 = v.vips.first().is_some_and(|(a, _)| a.is_ipv6());
    let name = unique(names, &v.name);
    out.line("");
    out.line(format!("# From {} line {}.", v.file, v.line));
    out.line("[[vrrp]]");
    out.line(format!("name = {}", q(&name)));
    out.line(format!("interface = {}", q(&v.interface)));
    let vrid = match v.vrid {
        Some(id) => id,
        None => {
            out.line(
                "# The same VRID on every node of this virtual router, unique on the segment.",
            );
            let mut id = FIRST_VRID.saturating_add(i.min(200) as u8);
            while vrids.contains(&(v.interface.clone(), id, v6)) && id < 255 {
                id += 1;
            }
            id
        }
    };
    vrids.insert((v.interface.clone(), vrid, v6));
    out.line(format!("vrid = {vrid}"));
    for c in &v.comments {
        out.line(format!("# {c}"));
    }
    if v.priority.is_none() {
        out.line("# Both nodes run this file: give each its own priority (e.g. 100 on lb1, 90 on");
        out.line("# lb2); with equal priorities the higher primary address wins.");
    }
    out.line(format!(
        "priority = {}",
        v.priority.unwrap_or(IMPORT_PRIORITY)
    ));
    if let Some(a) = v.advert {
        if a >= MIN_ADVERT_INTERVAL && a <= MAX_ADVERT_INTERVAL && a.as_millis() % 10 == 0 {
            out.line(format!("advert_interval = {}", q(&fmt_duration(a))));
        } else {
            out.note_other(
                v,
                "advert_int must be 10ms-40.95s in steps of 10ms: the default 1s applies",
            );
        }
    }
    if let Some(p) = v.preempt {
        out.line(format!("preempt = {p}"));
    }
    if let Some(d) = v.preempt_delay {
        out.line(format!("preempt_delay = {}", q(&fmt_duration(d))));
    }
    let vips: Vec<String> = v.vips.iter().map(|(a, l)| q(&format!("{a}/{l}"))).collect();
    out.line(format!("vips = [{}]", vips.join(", ")));
    if !v.unicast_peers.is_empty() {
        let peers: Vec<String> = v.unicast_peers.iter().map(|a| q(&a.to_string())).collect();
        out.line(format!("unicast_peers = [{}]", peers.join(", ")));
    }
    if let Some(n) = v.garp_count {
        out.line(format!("garp_count = {n}"));
    }
}

impl Out {
    /// A note about a VRRP source file (not haproxy.cfg): no source text at hand.
    fn note_other(&mut self, v: &VrrpSpec, reason: &str) {
        self.notes.list.push(super::Note {
            file: v.file.clone(),
            line: v.line,
            source: format!("instance {}", v.name),
            kind: NoteKind::Untranslated,
            reason: reason.to_string(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_strings_are_escaped() {
        assert_eq!(q("a\"b\\c\n\u{1}"), "\"a\\\"b\\\\c\\n\\u0001\"");
        let v: toml::Value = toml::from_str(&format!("k = {}", q("x\"\\\u{7f}y"))).expect("toml");
        assert_eq!(v["k"].as_str(), Some("x\"\\\u{7f}y"));
    }
}
