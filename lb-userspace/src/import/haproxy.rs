//! A hand-written, line-oriented haproxy.cfg parser for what lb can run: sections
//! `global`, `defaults`, `listen`, `frontend`, `backend`; HAProxy 1.3 keywords
//! (`contimeout`, `clitimeout`, `srvtimeout`, `redispatch`, `listen NAME ADDR:PORT`) as
//! well as current ones. Every line it does not turn into a setting becomes a
//! [`Note`](super::Note) with its line number.
//!
//! Defaults inheritance follows HAProxy: a proxy starts from the `defaults` section above
//! it, and each `defaults` section starts from scratch.
//!
//! It never panics, whatever the bytes: lines are tokenized with HAProxy's rules
//! (whitespace separates words, `#` starts a comment, `\` escapes, `"..."` and `'...'`
//! quote) and anything unexpected becomes a note.

use super::{pending, NoteKind, Notes, PendingValue, Scope, ValueKind};
use crate::config::http::{parse_duration, TimeUnit};
use std::{net::IpAddr, time::Duration};

/// Why a line could not be split into words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// A quote that is not closed on the line.
    #[error("unterminated {0} quote")]
    UnterminatedQuote(char),
    /// A backslash at the end of the line (HAProxy has no continuation lines).
    #[error("line ends with a backslash: haproxy.cfg has no continuation lines")]
    TrailingBackslash,
}

/// Splits one line into words with HAProxy's rules.
pub fn tokenize(line: &str) -> Result<Vec<String>, TokenError> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '#' => break,
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\\' => {
                let n = chars.next().ok_or(TokenError::TrailingBackslash)?;
                word.push(n);
                in_word = true;
            }
            '"' | '\'' => {
                in_word = true;
                let mut closed = false;
                while let Some(q) = chars.next() {
                    if q == c {
                        closed = true;
                        break;
                    }
                    if q == '\\' && c == '"' {
                        let n = chars.next().ok_or(TokenError::UnterminatedQuote(c))?;
                        word.push(n);
                    } else {
                        word.push(q);
                    }
                }
                if !closed {
                    return Err(TokenError::UnterminatedQuote(c));
                }
            }
            c => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

/// A value and the line that set it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Located<T> {
    /// The value.
    pub value: T,
    /// 1-based line.
    pub line: usize,
}

/// `mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `mode http`.
    Http,
    /// `mode tcp` (HAProxy's default).
    Tcp,
}

/// `cookie` persistence mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CookieMode {
    /// `prefix`.
    Prefix,
    /// `insert`.
    Insert,
    /// `rewrite`.
    Rewrite,
}

impl CookieMode {
    /// lb's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            CookieMode::Prefix => "prefix",
            CookieMode::Insert => "insert",
            CookieMode::Rewrite => "rewrite",
        }
    }
}

/// `cookie NAME MODE [options]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cookie {
    /// Cookie name.
    pub name: String,
    /// Persistence mode.
    pub mode: CookieMode,
    /// `indirect`.
    pub indirect: bool,
    /// `nocache`.
    pub nocache: bool,
    /// `postonly`.
    pub postonly: bool,
    /// `preserve`.
    pub preserve: bool,
    /// `httponly`.
    pub httponly: bool,
    /// `secure`.
    pub secure: bool,
    /// `domain`, repeated.
    pub domains: Vec<String>,
    /// `maxidle`.
    pub maxidle: Option<Duration>,
    /// `maxlife`.
    pub maxlife: Option<Duration>,
}

/// A pending keyword (see [`super::PENDING`]) whose lb key exists, with its value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingSetting {
    /// The lb key.
    pub key: &'static str,
    /// The value.
    pub value: PendingValue,
    /// Source line.
    pub line: usize,
}

/// Proxy settings that `defaults` passes on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Settings {
    /// `mode`.
    pub mode: Option<Located<Mode>>,
    /// `balance` (`roundrobin`, `leastconn` or `source`).
    pub balance: Option<Located<&'static str>>,
    /// `cookie`.
    pub cookie: Option<Located<Cookie>>,
    /// `option httpclose`.
    pub httpclose: Option<Located<bool>>,
    /// `option forwardfor`.
    pub forwardfor: Option<Located<bool>>,
    /// `option redispatch` / `redispatch`.
    pub redispatch: Option<Located<bool>>,
    /// `retries`.
    pub retries: Option<Located<u32>>,
    /// `maxconn`.
    pub maxconn: Option<Located<u32>>,
    /// `timeout connect` / `contimeout`.
    pub timeout_connect: Option<Located<Duration>>,
    /// `timeout client` / `clitimeout`.
    pub timeout_client: Option<Located<Duration>>,
    /// `timeout server` / `srvtimeout`.
    pub timeout_server: Option<Located<Duration>>,
    /// `timeout http-request`.
    pub timeout_http_request: Option<Located<Duration>>,
    /// `timeout queue`.
    pub timeout_queue: Option<Located<Duration>>,
    /// Pending service keywords whose key exists.
    pub pending: Vec<PendingSetting>,
}

fn loc<T>(value: T, line: usize) -> Option<Located<T>> {
    Some(Located { value, line })
}

/// A `bind` address; `addr: None` is a wildcard (`*:80`, `:80`, `0.0.0.0:80`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bind {
    /// Address, or `None` for all addresses.
    pub addr: Option<IpAddr>,
    /// Port.
    pub port: u16,
}

/// A `server` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Server {
    /// Server name.
    pub name: String,
    /// Address.
    pub addr: IpAddr,
    /// Port; `None` = the port the client connected to.
    pub port: Option<u16>,
    /// Source line.
    pub line: usize,
    /// `cookie`.
    pub cookie: Option<String>,
    /// `weight`.
    pub weight: Option<u32>,
    /// `backup`.
    pub backup: bool,
    /// `maxconn`.
    pub maxconn: Option<u32>,
    /// Pending server keywords whose key exists.
    pub pending: Vec<PendingSetting>,
}

/// Section kind of a proxy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyKind {
    /// `listen`: frontend and backend in one.
    Listen,
    /// `frontend`.
    Frontend,
    /// `backend`.
    Backend,
}

/// A `listen`, `frontend` or `backend` section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proxy {
    /// Kind.
    pub kind: ProxyKind,
    /// Name.
    pub name: String,
    /// Line of the section header.
    pub line: usize,
    /// Listening addresses.
    pub binds: Vec<Located<Bind>>,
    /// Settings, defaults included.
    pub settings: Settings,
    /// Servers in file order.
    pub servers: Vec<Server>,
    /// `default_backend`.
    pub default_backend: Option<Located<String>>,
}

/// A parsed haproxy.cfg.
#[derive(Clone, Debug, Default)]
pub struct Parsed {
    /// Proxies in file order.
    pub proxies: Vec<Proxy>,
    /// Everything not translated, with line numbers.
    pub notes: Vec<super::Note>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Section {
    None,
    Global,
    Defaults,
    Proxy,
    Unsupported(String, usize),
}

/// Sections lb has no use for; their lines are listed, not translated.
const OTHER_SECTIONS: &[&str] = &[
    "userlist",
    "peers",
    "resolvers",
    "mailers",
    "cache",
    "program",
    "http-errors",
    "ring",
    "log-forward",
    "namespace_list",
    "crt-store",
    "traces",
    "fcgi-app",
];

/// Server keywords lb does not translate, with the number of arguments they take, so the
/// rest of the line can still be read.
const SERVER_OTHER: &[(&str, usize)] = &[
    ("addr", 1),
    ("agent-check", 0),
    ("agent-inter", 1),
    ("agent-port", 1),
    ("alpn", 1),
    ("ca-file", 1),
    ("check-send-proxy", 0),
    ("check-ssl", 0),
    ("crt", 1),
    ("disabled", 0),
    ("enabled", 0),
    ("id", 1),
    ("init-addr", 1),
    ("maxqueue", 1),
    ("minconn", 1),
    ("namespace", 1),
    ("no-check", 0),
    ("non-stick", 0),
    ("on-marked-down", 1),
    ("on-marked-up", 1),
    ("pool-max-conn", 1),
    ("port", 1),
    ("proto", 1),
    ("redir", 1),
    ("resolve-prefer", 1),
    ("resolvers", 1),
    ("send-proxy", 0),
    ("send-proxy-v2", 0),
    ("sni", 1),
    ("source", 1),
    ("ssl", 0),
    ("tfo", 0),
    ("track", 1),
    ("verify", 1),
];

const LOG_WHY: &str = "lb logs to stderr (the access log in httplog format); send it to syslog with the service manager";
const GLOBAL_WHY: &str = "lb's config has no global process settings yet";

struct Parser {
    notes: Notes,
    proxies: Vec<Proxy>,
    defaults: Settings,
    section: Section,
}

/// Parses haproxy.cfg text; `file` names it in notes.
pub fn parse(file: &str, text: &str) -> Parsed {
    let mut p = Parser {
        notes: Notes::new(file, text),
        proxies: Vec::new(),
        defaults: Settings::default(),
        section: Section::None,
    };
    for (i, raw) in text.lines().enumerate() {
        p.line(i + 1, raw);
    }
    Parsed {
        proxies: p.proxies,
        notes: p.notes.list,
    }
}

/// Parses `ADDR:PORT`, `*:PORT`, `:PORT`, `[v6]:PORT`, `ipv4@...`; `Err` says why not.
fn parse_endpoint(s: &str, port_required: bool) -> Result<(Option<IpAddr>, Option<u16>), String> {
    let s = s
        .strip_prefix("ipv4@")
        .or_else(|| s.strip_prefix("ipv6@"))
        .unwrap_or(s);
    if s.contains('@') {
        return Err(format!(
            "{s:?}: only IP addresses are supported (no sockets, no `@` families)"
        ));
    }
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, p) = rest
            .split_once(']')
            .ok_or_else(|| format!("{s:?}: missing `]`"))?;
        (h, p.strip_prefix(':'))
    } else if let Some((h, p)) = s.rsplit_once(':') {
        (h, Some(p))
    } else {
        (s, None)
    };
    let port = match port {
        None | Some("") => None,
        Some(p) => Some(p.parse::<u16>().ok().filter(|&p| p != 0).ok_or_else(|| {
            format!("{s:?}: port {p:?} is not a single port (ranges and offsets are not supported)")
        })?),
    };
    if port_required && port.is_none() {
        return Err(format!("{s:?}: no port"));
    }
    let addr = match host {
        "" | "*" => None,
        h => {
            let a: IpAddr = h.parse().map_err(|_| {
                format!(
                    "{h:?} is not an IP address (host names are not resolved: write the address)"
                )
            })?;
            (!a.is_unspecified()).then_some(a)
        }
    };
    Ok((addr, port))
}

impl Parser {
    fn note(&mut self, line: usize, kind: NoteKind, reason: impl Into<String>) {
        self.notes.add(line, kind, reason);
    }

    fn line(&mut self, line: usize, raw: &str) {
        let words = match tokenize(raw) {
            Ok(w) => w,
            Err(e) => {
                self.note(line, NoteKind::Untranslated, e.to_string());
                return;
            }
        };
        let Some(kw) = words.first() else { return };
        match kw.as_str() {
            "global" => {
                self.section = Section::Global;
                if words.len() > 1 {
                    self.note(
                        line,
                        NoteKind::Untranslated,
                        "arguments of `global` are ignored",
                    );
                }
            }
            "defaults" => {
                self.section = Section::Defaults;
                self.defaults = Settings::default();
                if words.len() > 1 {
                    self.note(
                        line,
                        NoteKind::Assumed,
                        "named defaults and `from` are read as the defaults for the sections that follow",
                    );
                }
            }
            "listen" | "frontend" | "backend" => self.proxy_header(line, &words),
            s if OTHER_SECTIONS.contains(&s) => {
                self.section = Section::Unsupported(s.to_string(), line);
                self.note(
                    line,
                    NoteKind::Untranslated,
                    format!("lb has no `{s}` section: this section's lines are listed below and not translated"),
                );
            }
            _ => match self.section.clone() {
                Section::None => self.note(line, NoteKind::Untranslated, "outside any section"),
                Section::Global => self.global(line, &words),
                Section::Defaults => {
                    let mut s = std::mem::take(&mut self.defaults);
                    if !self.setting(line, &words, &mut s, None) {
                        self.unsupported(line, &words);
                    }
                    self.defaults = s;
                }
                Section::Proxy => self.proxy_line(line, &words),
                Section::Unsupported(name, at) => self.note(
                    line,
                    NoteKind::Untranslated,
                    format!("inside the `{name}` section of line {at}"),
                ),
            },
        }
    }

    fn unsupported(&mut self, line: usize, words: &[String]) {
        let kw = match words {
            [a, b, ..] if a == "option" || a == "no" || a == "timeout" || a == "stats" => {
                format!("{a} {b}")
            }
            [a, ..] => a.clone(),
            [] => return,
        };
        self.note(
            line,
            NoteKind::Untranslated,
            format!("`{kw}` is not supported by lb"),
        );
    }

    fn global(&mut self, line: usize, words: &[String]) {
        let (kind, why) = match words[0].as_str() {
            "log" => (NoteKind::Untranslated, LOG_WHY.to_string()),
            "maxconn" => (
                NoteKind::Untranslated,
                format!("{GLOBAL_WHY}: limit connections per service with http.maxconn"),
            ),
            "user" | "group" | "uid" | "gid" => (
                NoteKind::Untranslated,
                format!("{GLOBAL_WHY}: run lb with the service manager's user and capabilities"),
            ),
            "daemon" | "pidfile" | "nbproc" | "nbthread" | "quiet" | "debug" | "chroot" => (
                NoteKind::NotNeeded,
                "lb runs in the foreground under a service manager, one process".to_string(),
            ),
            other => (NoteKind::Untranslated, format!("{GLOBAL_WHY} (`{other}`)")),
        };
        self.note(line, kind, why);
    }

    fn proxy_header(&mut self, line: usize, words: &[String]) {
        let kind = match words[0].as_str() {
            "listen" => ProxyKind::Listen,
            "frontend" => ProxyKind::Frontend,
            _ => ProxyKind::Backend,
        };
        let Some(name) = words.get(1) else {
            self.section = Section::Unsupported(words[0].clone(), line);
            self.note(
                line,
                NoteKind::Untranslated,
                "a section without a name: skipped",
            );
            return;
        };
        let mut proxy = Proxy {
            kind,
            name: name.clone(),
            line,
            binds: Vec::new(),
            settings: self.defaults.clone(),
            servers: Vec::new(),
            default_backend: None,
        };
        if let Some(addrs) = words.get(2) {
            if kind == ProxyKind::Backend {
                self.note(line, NoteKind::Untranslated, "a backend has no address");
            } else {
                self.binds(line, addrs, &mut proxy);
            }
        }
        if words.len() > 3 {
            self.note(
                line,
                NoteKind::Untranslated,
                "words after the address are ignored",
            );
        }
        self.proxies.push(proxy);
        self.section = Section::Proxy;
    }

    fn binds(&mut self, line: usize, list: &str, proxy: &mut Proxy) {
        for a in list.split(',').filter(|a| !a.is_empty()) {
            match parse_endpoint(a, true) {
                Ok((addr, Some(port))) => proxy.binds.push(Located {
                    value: Bind { addr, port },
                    line,
                }),
                Ok((_, None)) => {}
                Err(e) => self.note(line, NoteKind::Untranslated, e),
            }
        }
    }

    fn proxy_line(&mut self, line: usize, words: &[String]) {
        let Some(mut proxy) = self.proxies.pop() else {
            return;
        };
        let kw = words[0].as_str();
        match kw {
            "bind" if proxy.kind != ProxyKind::Backend => match words.get(1) {
                Some(a) => {
                    self.binds(line, a, &mut proxy);
                    if words.len() > 2 {
                        self.note(
                            line,
                            NoteKind::Untranslated,
                            format!("bind options `{}` are not supported", words[2..].join(" ")),
                        );
                    }
                }
                None => self.note(line, NoteKind::Untranslated, "`bind` without an address"),
            },
            "server" if proxy.kind != ProxyKind::Frontend => {
                if let Some(s) = self.server(line, words) {
                    proxy.servers.push(s);
                }
            }
            "default_backend" if proxy.kind == ProxyKind::Frontend => match words.get(1) {
                Some(b) => {
                    proxy.default_backend = Some(Located {
                        value: b.clone(),
                        line,
                    })
                }
                None => self.note(
                    line,
                    NoteKind::Untranslated,
                    "`default_backend` without a name",
                ),
            },
            "use_backend" => self.note(
                line,
                NoteKind::Untranslated,
                "content switching is not supported: only the default_backend is translated",
            ),
            _ => {
                let mut s = std::mem::take(&mut proxy.settings);
                if !self.setting(line, words, &mut s, Some(&proxy.name)) {
                    self.unsupported(line, words);
                }
                proxy.settings = s;
            }
        }
        self.proxies.push(proxy);
    }

    fn duration(&mut self, line: usize, text: Option<&String>, unit: TimeUnit) -> Option<Duration> {
        let Some(t) = text else {
            self.note(line, NoteKind::Untranslated, "missing time value");
            return None;
        };
        match parse_duration(t, unit) {
            Ok(d) if d.is_zero() => {
                self.note(
                    line,
                    NoteKind::Untranslated,
                    "a zero timeout (no timeout) is not supported by lb: its default applies",
                );
                None
            }
            Ok(d) if d > crate::config::http::MAX_TIMEOUT => {
                self.note(
                    line,
                    NoteKind::Untranslated,
                    "longer than lb's longest timeout",
                );
                None
            }
            Ok(d) => Some(d),
            Err(e) => {
                self.note(line, NoteKind::Untranslated, e);
                None
            }
        }
    }

    fn number(&mut self, line: usize, text: Option<&String>, max: u32) -> Option<u32> {
        match text
            .and_then(|t| t.parse::<u32>().ok())
            .filter(|&n| n <= max)
        {
            Some(n) => Some(n),
            None => {
                self.note(
                    line,
                    NoteKind::Untranslated,
                    format!("expected a number from 0 to {max}"),
                );
                None
            }
        }
    }

    /// A pending keyword: kept when its lb key exists, otherwise listed.
    fn pending(
        &mut self,
        line: usize,
        keyword: &str,
        scope: Scope,
        args: &[String],
    ) -> Option<PendingSetting> {
        let p = pending(keyword, scope)?;
        let Some(key) = p.lb else {
            let reason = match scope {
                Scope::Server => format!("`{keyword}`: {}", p.why),
                Scope::Service => p.why.to_string(),
            };
            self.note(line, NoteKind::Untranslated, reason);
            return None;
        };
        let value = match p.value {
            ValueKind::Flag => PendingValue::Flag,
            ValueKind::Text | ValueKind::TextList => PendingValue::Text(args.join(" ")),
            ValueKind::Int => {
                PendingValue::Int(i64::from(self.number(line, args.first(), u32::MAX)?))
            }
            ValueKind::Duration => {
                PendingValue::Duration(self.duration(line, args.first(), TimeUnit::Millis)?)
            }
            ValueKind::Seconds => {
                PendingValue::Duration(self.duration(line, args.first(), TimeUnit::Seconds)?)
            }
        };
        Some(PendingSetting { key, value, line })
    }

    /// A proxy setting (also valid in `defaults`); false when the keyword is unknown.
    fn setting(
        &mut self,
        line: usize,
        words: &[String],
        s: &mut Settings,
        _proxy: Option<&str>,
    ) -> bool {
        let arg = words.get(1);
        match words[0].as_str() {
            "mode" => match arg.map(String::as_str) {
                Some("http") => s.mode = loc(Mode::Http, line),
                Some("tcp") => s.mode = loc(Mode::Tcp, line),
                _ => self.note(
                    line,
                    NoteKind::Untranslated,
                    "only `mode http` and `mode tcp` are supported",
                ),
            },
            "balance" => match arg.map(String::as_str) {
                Some("roundrobin") => {
                    s.balance = Some(Located {
                        value: "roundrobin",
                        line,
                    })
                }
                Some("leastconn") => {
                    s.balance = Some(Located {
                        value: "leastconn",
                        line,
                    })
                }
                Some("source") => {
                    s.balance = Some(Located {
                        value: "source",
                        line,
                    })
                }
                _ => self.note(
                    line,
                    NoteKind::Untranslated,
                    "lb balances with roundrobin, leastconn or source only; roundrobin applies",
                ),
            },
            "cookie" => {
                if let Some(c) = self.cookie(line, &words[1..]) {
                    s.cookie = loc(c, line);
                }
            }
            "redispatch" => s.redispatch = loc(true, line),
            "retries" => {
                if let Some(n) = self.number(line, arg, crate::config::http::MAX_RETRIES) {
                    s.retries = loc(n, line);
                }
            }
            "maxconn" => {
                if let Some(n) = self.number(line, arg, crate::config::http::MAX_MAXCONN) {
                    s.maxconn = loc(n, line);
                }
            }
            "contimeout" => {
                s.timeout_connect = self
                    .duration(line, arg, TimeUnit::Millis)
                    .and_then(|v| loc(v, line))
            }
            "clitimeout" => {
                s.timeout_client = self
                    .duration(line, arg, TimeUnit::Millis)
                    .and_then(|v| loc(v, line))
            }
            "srvtimeout" => {
                s.timeout_server = self
                    .duration(line, arg, TimeUnit::Millis)
                    .and_then(|v| loc(v, line))
            }
            "timeout" => {
                let which = arg.map(String::as_str).unwrap_or("");
                let value = words.get(2);
                let slot = match which {
                    "connect" => &mut s.timeout_connect,
                    "client" => &mut s.timeout_client,
                    "server" => &mut s.timeout_server,
                    "http-request" => &mut s.timeout_http_request,
                    "queue" => &mut s.timeout_queue,
                    _ => {
                        let kw = format!("timeout {which}");
                        if pending(&kw, Scope::Service).is_some() {
                            if let Some(p) = self.pending(line, &kw, Scope::Service, &words[2..]) {
                                s.pending.push(p);
                            }
                        } else {
                            self.note(line, NoteKind::Untranslated, format!("lb has no `{kw}`"));
                        }
                        return true;
                    }
                };
                if let Some(d) = self.duration(line, value, TimeUnit::Millis) {
                    *slot = loc(d, line);
                }
            }
            "option" | "no" => return self.option(line, words, s),
            "stats" => {
                let kw = format!("stats {}", arg.map(String::as_str).unwrap_or(""));
                let cond: Vec<&str> = words.iter().skip(2).map(String::as_str).collect();
                if kw == "stats admin" && cond != ["if", "TRUE"] {
                    self.note(
                        line,
                        NoteKind::Untranslated,
                        "lb's stats admin has no ACL condition: write `admin = true` under \
                         [service.http.stats] to give the buttons to every authenticated user",
                    );
                } else if pending(&kw, Scope::Service).is_some() {
                    if let Some(p) = self.pending(line, &kw, Scope::Service, &words[2..]) {
                        s.pending.push(p);
                    }
                } else {
                    self.note(line, NoteKind::Untranslated, format!("lb has no `{kw}`"));
                }
            }
            "log" => self.note(line, NoteKind::Untranslated, LOG_WHY),
            _ => return false,
        }
        true
    }

    fn option(&mut self, line: usize, words: &[String], s: &mut Settings) -> bool {
        let (negate, rest) = match words[0].as_str() {
            "no" if words.get(1).map(String::as_str) == Some("option") => (true, &words[2..]),
            "option" => (false, &words[1..]),
            _ => return false,
        };
        let Some(name) = rest.first() else {
            self.note(line, NoteKind::Untranslated, "`option` without a name");
            return true;
        };
        let on = Some(Located {
            value: !negate,
            line,
        });
        match name.as_str() {
            "httpclose" | "forceclose" => s.httpclose = on,
            "redispatch" => s.redispatch = on,
            "forwardfor" => {
                s.forwardfor = on;
                if rest.len() > 1 {
                    self.note(
                        line,
                        NoteKind::Untranslated,
                        format!(
                            "`{}`: lb always appends to X-Forwarded-For",
                            rest[1..].join(" ")
                        ),
                    );
                }
            }
            "httplog" => self.note(
                line,
                NoteKind::NotNeeded,
                "lb's access log is always in HAProxy's httplog format",
            ),
            "http-keep-alive" => self.note(
                line,
                NoteKind::NotNeeded,
                "lb keeps connections alive unless httpclose is set",
            ),
            "dontlognull" => self.note(
                line,
                NoteKind::Untranslated,
                "lb's access log has no dontlognull switch",
            ),
            other => {
                let kw = format!("option {other}");
                if pending(&kw, Scope::Service).is_some() && !negate {
                    if let Some(p) = self.pending(line, &kw, Scope::Service, &rest[1..]) {
                        s.pending.push(p);
                    }
                } else {
                    self.note(
                        line,
                        NoteKind::Untranslated,
                        format!(
                            "`{}option {other}` is not supported by lb",
                            if negate { "no " } else { "" }
                        ),
                    );
                }
            }
        }
        true
    }

    fn cookie(&mut self, line: usize, args: &[String]) -> Option<Cookie> {
        let Some(name) = args.first() else {
            self.note(line, NoteKind::Untranslated, "`cookie` without a name");
            return None;
        };
        let mut mode = None;
        let mut c = Cookie {
            name: name.clone(),
            mode: CookieMode::Prefix,
            indirect: false,
            nocache: false,
            postonly: false,
            preserve: false,
            httponly: false,
            secure: false,
            domains: Vec::new(),
            maxidle: None,
            maxlife: None,
        };
        let mut ignored = Vec::new();
        let mut i = 1;
        while let Some(a) = args.get(i) {
            i += 1;
            match a.as_str() {
                "prefix" => mode = Some(CookieMode::Prefix),
                "insert" => mode = Some(CookieMode::Insert),
                "rewrite" => mode = Some(CookieMode::Rewrite),
                "indirect" => c.indirect = true,
                "nocache" => c.nocache = true,
                "postonly" => c.postonly = true,
                "preserve" => c.preserve = true,
                "httponly" => c.httponly = true,
                "secure" => c.secure = true,
                "domain" => match args.get(i) {
                    Some(d) => {
                        c.domains.push(d.clone());
                        i += 1;
                    }
                    None => ignored.push("domain".to_string()),
                },
                "maxidle" | "maxlife" => {
                    let d = self.duration(line, args.get(i), TimeUnit::Seconds);
                    i += 1;
                    if a == "maxidle" {
                        c.maxidle = d;
                    } else {
                        c.maxlife = d;
                    }
                }
                "attr" => {
                    ignored.push(format!("attr {}", args.get(i).map_or("", |s| s.as_str())));
                    i += 1;
                }
                other => ignored.push(other.to_string()),
            }
        }
        if !ignored.is_empty() {
            self.note(
                line,
                NoteKind::Untranslated,
                format!("cookie options `{}` are not supported", ignored.join(" ")),
            );
        }
        let Some(mode) = mode else {
            self.note(
                line,
                NoteKind::Untranslated,
                "a passive cookie (no insert, prefix or rewrite) is not supported: no persistence",
            );
            return None;
        };
        c.mode = mode;
        if mode != CookieMode::Insert {
            let insert_only: Vec<&str> = [
                ("nocache", c.nocache),
                ("postonly", c.postonly),
                ("httponly", c.httponly),
                ("secure", c.secure),
                ("domain", !c.domains.is_empty()),
                ("maxidle", c.maxidle.is_some()),
                ("maxlife", c.maxlife.is_some()),
            ]
            .into_iter()
            .filter_map(|(k, set)| set.then_some(k))
            .collect();
            if !insert_only.is_empty() {
                self.note(
                    line,
                    NoteKind::Untranslated,
                    format!(
                        "`{}` only apply to insert mode (as in HAProxy): dropped",
                        insert_only.join(" ")
                    ),
                );
                c.nocache = false;
                c.postonly = false;
                c.httponly = false;
                c.secure = false;
                c.domains.clear();
                c.maxidle = None;
                c.maxlife = None;
            }
        }
        if c.preserve && !(mode == CookieMode::Insert || c.indirect) {
            self.note(
                line,
                NoteKind::Untranslated,
                "`preserve` needs insert or indirect: dropped",
            );
            c.preserve = false;
        }
        Some(c)
    }

    fn server(&mut self, line: usize, words: &[String]) -> Option<Server> {
        let (Some(name), Some(addr)) = (words.get(1), words.get(2)) else {
            self.note(
                line,
                NoteKind::Untranslated,
                "`server` needs a name and an address",
            );
            return None;
        };
        let (ip, port) = match parse_endpoint(addr, false) {
            Ok((Some(ip), port)) => (ip, port),
            Ok((None, _)) => {
                self.note(
                    line,
                    NoteKind::Untranslated,
                    "a server needs an address: skipped",
                );
                return None;
            }
            Err(e) => {
                self.note(line, NoteKind::Untranslated, format!("{e}: server skipped"));
                return None;
            }
        };
        let mut s = Server {
            name: name.clone(),
            addr: ip,
            port,
            line,
            cookie: None,
            weight: None,
            backup: false,
            maxconn: None,
            pending: Vec::new(),
        };
        let mut i = 3;
        while let Some(kw) = words.get(i) {
            i += 1;
            let kw = kw.as_str();
            match kw {
                "cookie" => {
                    s.cookie = words.get(i).cloned();
                    i += 1;
                }
                "weight" => {
                    s.weight = self.number(line, words.get(i), 256);
                    i += 1;
                }
                "maxconn" => {
                    s.maxconn = self.number(line, words.get(i), crate::config::http::MAX_MAXCONN);
                    i += 1;
                }
                "backup" => s.backup = true,
                _ => {
                    if let Some(p) = pending(kw, Scope::Server) {
                        let n = usize::from(p.value != ValueKind::Flag);
                        let args = words.get(i..i + n).unwrap_or(&[]);
                        i += n;
                        if let Some(v) = self.pending(line, kw, Scope::Server, args) {
                            s.pending.push(v);
                        }
                    } else if let Some((_, n)) = SERVER_OTHER.iter().find(|(k, _)| *k == kw) {
                        let args = words.get(i..i + n).unwrap_or(&[]).join(" ");
                        i += n;
                        let text = format!("{kw} {args}");
                        self.note(
                            line,
                            NoteKind::Untranslated,
                            format!("server option `{}` is not supported by lb", text.trim()),
                        );
                    } else {
                        self.note(
                            line,
                            NoteKind::Untranslated,
                            format!(
                                "server option `{}` is not known to lb import: it and the rest of the line are not translated",
                                words[i - 1..].join(" ")
                            ),
                        );
                        break;
                    }
                }
            }
        }
        Some(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: &str = include_str!("testdata/haproxy.cfg");

    fn notes_at(p: &Parsed, line: usize) -> Vec<String> {
        p.notes
            .iter()
            .filter(|n| n.line == line)
            .map(|n| n.to_string())
            .collect()
    }

    #[test]
    fn tokenizer_follows_haproxy() {
        let t = |s: &str| tokenize(s).expect("tokenizes");
        assert_eq!(
            t("  server  a 1.2.3.4:80   check # comment"),
            ["server", "a", "1.2.3.4:80", "check"]
        );
        assert_eq!(t("#log loghost local0 info"), Vec::<String>::new());
        assert_eq!(
            t("stats auth \"user:pass word\""),
            ["stats", "auth", "user:pass word"]
        );
        assert_eq!(t("reqrep ^(.*)\\ HTTP x"), ["reqrep", "^(.*) HTTP", "x"]);
        assert_eq!(t("x 'a \"b\" # c'"), ["x", "a \"b\" # c"]);
        assert_eq!(t("a\\#b"), ["a#b"]);
        assert_eq!(t("x \"a\\\"b\""), ["x", "a\"b"]);
        assert_eq!(tokenize("x \"abc"), Err(TokenError::UnterminatedQuote('"')));
        assert_eq!(tokenize("x 'abc"), Err(TokenError::UnterminatedQuote('\'')));
        assert_eq!(tokenize("x \\"), Err(TokenError::TrailingBackslash));
    }

    #[test]
    fn seed_imports_with_defaults_inheritance() {
        let p = parse("haproxy.cfg", SEED);
        assert_eq!(p.proxies.len(), 1);
        let w = &p.proxies[0];
        assert_eq!(
            (w.kind, w.name.as_str(), w.line),
            (ProxyKind::Listen, "webfarm", 23)
        );
        assert_eq!(w.binds[0].value.port, 80);
        assert_eq!(
            w.binds[0].value.addr,
            Some("192.168.0.99".parse().expect("ip"))
        );
        let s = &w.settings;
        assert_eq!(
            s.mode.as_ref().map(|m| (m.value, m.line)),
            Some((Mode::Http, 24))
        );
        assert_eq!(
            s.retries.as_ref().map(|r| (r.value, r.line)),
            Some((3, 16)),
            "from defaults"
        );
        assert_eq!(
            s.redispatch.as_ref().map(|r| r.line),
            Some(17),
            "1.3 `redispatch`"
        );
        assert_eq!(s.maxconn.as_ref().map(|m| m.value), Some(2000));
        assert_eq!(
            s.timeout_connect.as_ref().map(|t| t.value),
            Some(Duration::from_secs(5))
        );
        assert_eq!(
            s.timeout_client.as_ref().map(|t| t.value),
            Some(Duration::from_secs(50))
        );
        assert_eq!(
            s.timeout_server.as_ref().map(|t| t.value),
            Some(Duration::from_secs(50))
        );
        assert_eq!(s.balance.as_ref().map(|b| b.value), Some("roundrobin"));
        let c = &s.cookie.as_ref().expect("cookie").value;
        assert_eq!(
            (c.name.as_str(), c.mode),
            ("JSESSIONID", CookieMode::Prefix)
        );
        assert_eq!(s.httpclose.as_ref().map(|v| v.value), Some(true));
        assert_eq!(s.forwardfor.as_ref().map(|v| v.value), Some(true));
        assert_eq!(w.servers.len(), 2);
        assert_eq!(w.servers[1].name, "webB");
        assert_eq!(w.servers[1].cookie.as_deref(), Some("B"));
        assert_eq!(w.servers[1].port, Some(80));

        // Nothing is dropped silently: each untranslated line of the seed is listed.
        let lines: Vec<usize> = p.notes.iter().map(|n| n.line).collect();
        for l in [2, 3, 5, 8, 9, 12, 14, 15] {
            assert!(lines.contains(&l), "line {l} not listed: {:#?}", p.notes);
        }
        // Health checks translate (option httpchk, server ... check), and so do the
        // stats lines (25, 26).
        for l in [
            1, 4, 6, 7, 10, 11, 13, 16, 17, 18, 19, 20, 21, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32,
            33,
        ] {
            assert!(
                !lines.contains(&l),
                "line {l} translated or blank but listed"
            );
        }
    }

    #[test]
    fn current_syntax_frontend_backend() {
        let text = "\
defaults
    mode http
    timeout connect 5s
    timeout client 1m
    timeout server 30s
    timeout http-request 10s
    option forwardfor except 127.0.0.1
defaults
    mode tcp
frontend fe
    mode http
    bind 198.18.0.99:8080,198.18.0.98:8080 ssl crt /x.pem
    default_backend be
    acl foo path_beg /x
backend be
    mode http
    balance leastconn
    cookie SRV insert indirect nocache httponly secure domain .example.com maxidle 30m maxlife 8h
    no option redispatch
    server a 198.18.0.102:80 weight 10 maxconn 100 backup send-proxy check inter 2s rise 2 fall 3
    server b [2001:db8::2]:80 id 4 frobnicate 1 cookie x
    server c www.example.com:80
";
        let p = parse("h.cfg", text);
        let fe = &p.proxies[0];
        assert_eq!(fe.binds.len(), 2);
        assert_eq!(
            fe.default_backend.as_ref().map(|b| b.value.as_str()),
            Some("be")
        );
        assert!(
            fe.settings.timeout_client.is_none(),
            "a second defaults starts from scratch"
        );
        let be = &p.proxies[1];
        let c = &be.settings.cookie.as_ref().expect("cookie").value;
        assert_eq!(c.mode, CookieMode::Insert);
        assert!(c.indirect && c.nocache && c.httponly && c.secure);
        assert_eq!(c.domains, [".example.com"]);
        assert_eq!(c.maxidle, Some(Duration::from_secs(1800)));
        assert_eq!(c.maxlife, Some(Duration::from_secs(8 * 3600)));
        assert_eq!(
            be.settings.redispatch.as_ref().map(|r| r.value),
            Some(false)
        );
        assert_eq!(be.servers.len(), 2, "the host name server is skipped");
        let a = &be.servers[0];
        assert_eq!((a.weight, a.maxconn, a.backup), (Some(10), Some(100), true));
        assert_eq!(
            be.servers[1].addr,
            "2001:db8::2".parse::<IpAddr>().expect("ip")
        );
        assert_eq!(
            be.servers[1].cookie, None,
            "after an unknown option the line stops"
        );
        let n = |l| notes_at(&p, l).join("\n");
        assert!(n(7).contains("except 127.0.0.1"), "{}", n(7));
        assert!(n(12).contains("bind options `ssl crt /x.pem`"), "{}", n(12));
        assert!(n(14).contains("`acl` is not supported"), "{}", n(14));
        assert!(
            n(20).contains("send-proxy")
                && !n(20).contains("`check`")
                && !n(20).contains("`inter`"),
            "{}",
            n(20)
        );
        assert!(
            n(21).contains("`id 4`") && n(21).contains("frobnicate 1 cookie x"),
            "{}",
            n(21)
        );
        assert!(n(22).contains("host names are not resolved"), "{}", n(22));
    }

    #[test]
    fn unknown_and_broken_lines_are_listed_with_line_numbers() {
        let text = "frontend\nlisten x *:80\n  bogus keyword\n  timeout tunnel 1h\n  balance uri\n  cookie S\n  retries many\n  server s 1.2.3.4:99999\n  option \"unterminated\nuserlist L\n  user u password p\nserver outside 1.2.3.4:80\n";
        let p = parse("h.cfg", text);
        let lines: Vec<usize> = p.notes.iter().map(|n| n.line).collect();
        for l in 1..=11 {
            if l == 2 {
                continue;
            }
            assert!(lines.contains(&l), "line {l} not listed: {:#?}", p.notes);
        }
        assert_eq!(
            p.proxies[0].binds[0].value,
            Bind {
                addr: None,
                port: 80
            }
        );
        assert!(p
            .notes
            .iter()
            .any(|n| n.line == 9 && n.reason.contains("unterminated")));
    }

    #[test]
    fn random_input_never_panics() {
        // A small deterministic generator: no extra dependency, same cases every run.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let words = [
            "listen",
            "frontend",
            "backend",
            "defaults",
            "global",
            "server",
            "bind",
            "cookie",
            "option",
            "no",
            "timeout",
            "stats",
            "mode",
            "http",
            "tcp",
            "balance",
            "retries",
            "1.2.3.4:80",
            "[::1]:80",
            "*:80",
            ":",
            "[",
            "@",
            "\"",
            "'",
            "\\",
            "#",
            "check",
            "inter",
            "weight",
            "insert",
            "prefix",
            "domain",
            "maxidle",
            "99999999999999999999",
            "-1",
            "0",
            "5s",
            "userlist",
            "\u{0}",
            "é",
            "\t",
        ];
        for _ in 0..3000 {
            let mut text = String::new();
            for _ in 0..(next() % 12) {
                for _ in 0..(next() % 8) {
                    text.push_str(words[(next() % words.len() as u64) as usize]);
                    text.push(if next() % 5 == 0 { '\t' } else { ' ' });
                }
                text.push('\n');
            }
            let _ = parse("fuzz.cfg", &text);
            let bytes: Vec<u8> = (0..(next() % 200)).map(|_| next() as u8).collect();
            let _ = parse("fuzz.cfg", &String::from_utf8_lossy(&bytes));
        }
    }
}
