//! Config for `mode http` services: the `[service.http]` table and the
//! `[[service.server]]` entries, as serde reads them, and their validation into
//! [`crate::l7::service::HttpService`]. Values and defaults follow HAProxy so a
//! migrated `haproxy.cfg` translates line by line.
//!
//! ```toml
//! [[service]]
//! name = "webfarm"
//! vip = "192.168.0.99"
//! port = 80
//! mode = "http"
//! [service.http]
//! balance = "roundrobin"
//! cookie = { name = "JSESSIONID", mode = "prefix" }
//! forwardfor = true
//! httpclose = true
//! retries = 3
//! redispatch = true
//! maxconn = 2000
//! timeout = { connect = "5s", client = "50s", server = "50s", http_request = "10s" }
//! [[service.server]]
//! name = "webA"
//! address = "192.168.0.102:80"
//! cookie = "A"
//! ```

use crate::l7::service::{
    Balance, CookieMode, CookiePersistence, HttpService, InsertOptions, Server, StatsPage,
    StatsUser, Timeouts, DEFAULT_MAXCONN, DEFAULT_MAX_REQUEST_HEAD, DEFAULT_RETRIES,
    DEFAULT_STATS_REALM, DEFAULT_STATS_URI, DEFAULT_TIMEOUT_CLIENT, DEFAULT_TIMEOUT_CONNECT,
    DEFAULT_TIMEOUT_HTTP_REQUEST, DEFAULT_TIMEOUT_SERVER, DEFAULT_WEIGHT, MAX_WEIGHT,
};
use serde::Deserialize;
use std::{collections::HashSet, net::SocketAddr, time::Duration};
use toml::Spanned;

/// Most `retries` accepted (HAProxy has no limit; more than this only delays a 503).
pub const MAX_RETRIES: u32 = 100;
/// Most `maxconn` accepted, service or server.
pub const MAX_MAXCONN: u32 = 1_000_000;
/// Smallest `max_request_head` (hyper cannot work with a smaller read buffer).
pub const MIN_REQUEST_HEAD: usize = 8 * 1024;
/// Largest `max_request_head`.
pub const MAX_REQUEST_HEAD: usize = 1024 * 1024;
/// Longest timeout: HAProxy stores milliseconds in a signed 32-bit integer.
pub const MAX_TIMEOUT: Duration = Duration::from_millis(i32::MAX as u64);

/// `[service.http]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHttp {
    /// `roundrobin` (default), `leastconn` or `source`.
    pub balance: Option<Spanned<String>>,
    /// Cookie persistence.
    pub cookie: Option<Spanned<RawCookie>>,
    /// `option forwardfor`; default false.
    #[serde(default)]
    pub forwardfor: bool,
    /// `option httpclose`; default false (keep-alive).
    #[serde(default)]
    pub httpclose: bool,
    /// Relay HTTP/1 header names with their original case (and Title-Case the ones
    /// the proxy adds) instead of lowercase; default false, which is what HAProxy 2.x
    /// does. For applications that (wrongly) depend on header case, like HAProxy's
    /// `h1-case-adjust-bogus-client/server`.
    #[serde(default)]
    pub preserve_header_case: bool,
    /// `retries`; default [`DEFAULT_RETRIES`].
    pub retries: Option<Spanned<i64>>,
    /// `option redispatch`; default false.
    #[serde(default)]
    pub redispatch: bool,
    /// Concurrent client connections; default [`DEFAULT_MAXCONN`], 0 = unlimited.
    pub maxconn: Option<Spanned<i64>>,
    /// Largest request head in bytes (431 beyond); default [`DEFAULT_MAX_REQUEST_HEAD`].
    pub max_request_head: Option<Spanned<i64>>,
    /// `timeout ...`.
    pub timeout: Option<Spanned<RawTimeouts>>,
    /// `[service.http.stats]`: HAProxy's `stats ...` lines.
    pub stats: Option<Spanned<RawStats>>,
}

/// `[service.http.stats]`: the stats page and metrics served on the service's listener.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStats {
    /// `stats enable`; default true: the table's presence enables the page, as any
    /// `stats` line does in HAProxy.
    pub enable: Option<bool>,
    /// `stats uri`; default [`DEFAULT_STATS_URI`].
    pub uri: Option<Spanned<String>>,
    /// `stats auth user:password`, one string or a list.
    pub auth: Option<Spanned<RawAuth>>,
    /// `stats realm`; default [`DEFAULT_STATS_REALM`].
    pub realm: Option<Spanned<String>>,
    /// `stats refresh`; bare numbers are seconds, as in HAProxy.
    pub refresh: Option<Spanned<RawDuration>>,
    /// `stats admin if TRUE`: drain/maint/ready buttons for authenticated users.
    #[serde(default)]
    pub admin: bool,
    /// Path of the Prometheus text endpoint (HAProxy's `prometheus-exporter` service),
    /// e.g. `"/metrics"`; default none.
    pub prometheus_uri: Option<Spanned<String>>,
}

/// One `user:password` or a list.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawAuth {
    /// `auth = "admin:secret"`.
    One(String),
    /// `auth = ["admin:secret", "ops:other"]`.
    Many(Vec<String>),
}

/// Longest `stats uri` / `prometheus_uri` accepted.
pub const MAX_STATS_URI: usize = 256;

/// `cookie = { ... }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCookie {
    /// Cookie name.
    pub name: Spanned<String>,
    /// `prefix`, `insert` or `rewrite`.
    pub mode: Spanned<String>,
    /// HAProxy `indirect`.
    #[serde(default)]
    pub indirect: bool,
    /// HAProxy `preserve` (insert and/or indirect only).
    #[serde(default)]
    pub preserve: bool,
    /// HAProxy `nocache` (insert only).
    #[serde(default)]
    pub nocache: Option<Spanned<bool>>,
    /// HAProxy `postonly` (insert only).
    #[serde(default)]
    pub postonly: Option<Spanned<bool>>,
    /// HAProxy `httponly` (insert only).
    #[serde(default)]
    pub httponly: Option<Spanned<bool>>,
    /// HAProxy `secure` (insert only).
    #[serde(default)]
    pub secure: Option<Spanned<bool>>,
    /// HAProxy `domain`, one or several (insert only).
    pub domain: Option<Spanned<RawDomains>>,
    /// HAProxy `maxidle` (insert only); bare numbers are seconds, as in HAProxy.
    pub maxidle: Option<Spanned<RawDuration>>,
    /// HAProxy `maxlife` (insert only); bare numbers are seconds, as in HAProxy.
    pub maxlife: Option<Spanned<RawDuration>>,
}

/// One domain or a list.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawDomains {
    /// `domain = ".example.com"`.
    One(String),
    /// `domain = [".a.example", ".b.example"]`.
    Many(Vec<String>),
}

/// A duration: a string with an optional HAProxy unit (`us`, `ms`, `s`, `m`, `h`, `d`)
/// or a bare integer in the key's default unit.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawDuration {
    /// `50000`.
    Int(i64),
    /// `"5s"`, `"100ms"`, `"50000"`.
    Text(String),
}

/// `timeout = { ... }`; bare numbers are milliseconds, as in HAProxy.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTimeouts {
    /// `timeout connect`; default [`DEFAULT_TIMEOUT_CONNECT`].
    pub connect: Option<Spanned<RawDuration>>,
    /// `timeout client`; default [`DEFAULT_TIMEOUT_CLIENT`].
    pub client: Option<Spanned<RawDuration>>,
    /// `timeout server`; default [`DEFAULT_TIMEOUT_SERVER`].
    pub server: Option<Spanned<RawDuration>>,
    /// `timeout http-request`; default [`DEFAULT_TIMEOUT_HTTP_REQUEST`].
    pub http_request: Option<Spanned<RawDuration>>,
    /// `timeout queue`; default: the connect timeout (HAProxy's rule).
    pub queue: Option<Spanned<RawDuration>>,
}

/// `[[service.server]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    /// Unique within the service.
    pub name: Spanned<String>,
    /// `ip:port` (`[v6]:port` for IPv6).
    pub address: Spanned<String>,
    /// 1..=256; default [`DEFAULT_WEIGHT`].
    pub weight: Option<Spanned<i64>>,
    /// Persistence cookie value.
    pub cookie: Option<Spanned<String>>,
    /// Backup server; default false.
    #[serde(default)]
    pub backup: bool,
    /// Concurrent requests; default 0 = unlimited.
    pub maxconn: Option<Spanned<i64>>,
}

/// A rejected value: byte offset into the config text, the key relative to the service
/// (`http.timeout.connect`, `server[1].address`), and what is wrong. The caller turns
/// it into `ConfigError::invalid(path, text, at, format!("service[{i}].{key}"), message)`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct HttpConfigError {
    /// Byte offset of the offending value in the config text.
    pub at: usize,
    /// Dotted key relative to the service table.
    pub key: String,
    /// What is wrong and what would be right.
    pub message: String,
}

fn err(at: usize, key: impl Into<String>, message: impl Into<String>) -> HttpConfigError {
    HttpConfigError {
        at,
        key: key.into(),
        message: message.into(),
    }
}

/// Unit of a bare number in a duration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeUnit {
    /// Timeouts.
    Millis,
    /// Cookie maxidle/maxlife.
    Seconds,
}

/// Parses an HAProxy duration: digits and an optional unit `us`, `ms`, `s`, `m`, `h`,
/// `d`; bare digits are in `default`.
pub fn parse_duration(text: &str, default: TimeUnit) -> Result<Duration, String> {
    let t = text.trim();
    let digits = t.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return Err(format!(
            "{text:?} is not a duration (e.g. \"5s\", \"100ms\", \"50000\")"
        ));
    }
    let n: u64 = t[..digits]
        .parse()
        .map_err(|_| format!("{text:?}: number too large"))?;
    let unit = &t[digits..];
    let d = match unit {
        "" => match default {
            TimeUnit::Millis => Some(Duration::from_millis(n)),
            TimeUnit::Seconds => Some(Duration::from_secs(n)),
        },
        "us" => Some(Duration::from_micros(n)),
        "ms" => Some(Duration::from_millis(n)),
        "s" => Some(Duration::from_secs(n)),
        "m" => n.checked_mul(60).map(Duration::from_secs),
        "h" => n.checked_mul(3600).map(Duration::from_secs),
        "d" => n.checked_mul(86_400).map(Duration::from_secs),
        other => {
            return Err(format!(
                "{text:?}: unknown unit {other:?}; expected us, ms, s, m, h or d"
            ))
        }
    };
    d.ok_or_else(|| format!("{text:?}: duration too large"))
}

fn duration(
    raw: &Spanned<RawDuration>,
    key: &str,
    unit: TimeUnit,
) -> Result<Duration, HttpConfigError> {
    let at = raw.span().start;
    let d = match raw.get_ref() {
        RawDuration::Int(n) => {
            let n = u64::try_from(*n).map_err(|_| err(at, key, format!("{n} is negative")))?;
            parse_duration(&n.to_string(), unit)
        }
        RawDuration::Text(s) => parse_duration(s, unit),
    }
    .map_err(|m| err(at, key, m))?;
    if d.is_zero() {
        return Err(err(at, key, "must be greater than zero"));
    }
    if d > MAX_TIMEOUT {
        return Err(err(
            at,
            key,
            format!("at most {}ms (about 24.8 days)", MAX_TIMEOUT.as_millis()),
        ));
    }
    Ok(d)
}

fn int_in(raw: &Spanned<i64>, key: &str, lo: i64, hi: i64) -> Result<i64, HttpConfigError> {
    let v = *raw.get_ref();
    if v < lo || v > hi {
        return Err(err(
            raw.span().start,
            key,
            format!("{v} is out of range ({lo}-{hi})"),
        ));
    }
    Ok(v)
}

/// A cookie name must be an RFC 6265 token.
fn valid_cookie_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b))
}

/// A server cookie value must survive in a cookie value and in our delimiters.
fn valid_cookie_value(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_graphic() && !b"\",;\\~|".contains(&b))
}

/// Builds the runtime service from its raw tables.
///
/// `service_at` is the byte offset of the `[[service]]` table, used when an error has no
/// narrower place (no servers at all).
pub fn validate_http(
    name: &str,
    listen: SocketAddr,
    raw: Option<Spanned<RawHttp>>,
    servers: Vec<Spanned<RawServer>>,
    service_at: usize,
) -> Result<HttpService, HttpConfigError> {
    let mut farm = Vec::with_capacity(servers.len());
    let mut names = HashSet::new();
    if servers.is_empty() {
        return Err(err(
            service_at,
            "server",
            "an http service needs at least one [[service.server]]",
        ));
    }
    for (i, s) in servers.into_iter().enumerate() {
        let s = s.into_inner();
        let key = |k: &str| format!("server[{i}].{k}");
        let sname = s.name.get_ref().clone();
        if sname.is_empty() || sname.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(err(
                s.name.span().start,
                key("name"),
                format!("{sname:?} is not a valid server name"),
            ));
        }
        if !names.insert(sname.clone()) {
            return Err(err(
                s.name.span().start,
                key("name"),
                format!("duplicate server name {sname:?}"),
            ));
        }
        let addr: SocketAddr = s.address.get_ref().parse().map_err(|_| {
            err(
                s.address.span().start,
                key("address"),
                format!(
                    "{:?} is not ip:port (use [v6]:port for IPv6)",
                    s.address.get_ref()
                ),
            )
        })?;
        if addr.port() == 0 {
            return Err(err(
                s.address.span().start,
                key("address"),
                "port must not be 0",
            ));
        }
        let weight = match &s.weight {
            None => DEFAULT_WEIGHT,
            Some(w) => int_in(w, &key("weight"), 1, i64::from(MAX_WEIGHT))? as u32,
        };
        let cookie = match s.cookie {
            None => None,
            Some(c) => {
                if !valid_cookie_value(c.get_ref()) {
                    return Err(err(
                        c.span().start,
                        key("cookie"),
                        format!("{:?}: use visible ASCII without \" , ; \\ ~ |", c.get_ref()),
                    ));
                }
                Some(c.into_inner())
            }
        };
        let maxconn = match &s.maxconn {
            None => 0,
            Some(m) => int_in(m, &key("maxconn"), 0, i64::from(MAX_MAXCONN))? as u32,
        };
        farm.push(Server {
            name: sname,
            addr,
            weight,
            cookie,
            backup: s.backup,
            maxconn,
        });
    }

    let mut svc = HttpService::new(name, listen, farm);
    let Some(raw) = raw else {
        return Ok(svc);
    };
    let raw = raw.into_inner();
    if let Some(b) = &raw.balance {
        svc.balance = match b.get_ref().as_str() {
            "roundrobin" => Balance::RoundRobin,
            "leastconn" => Balance::LeastConn,
            "source" => Balance::Source,
            other => {
                return Err(err(
                    b.span().start,
                    "http.balance",
                    format!("unknown algorithm {other:?}; expected \"roundrobin\", \"leastconn\" or \"source\""),
                ))
            }
        };
    }
    svc.forwardfor = raw.forwardfor;
    svc.httpclose = raw.httpclose;
    svc.preserve_header_case = raw.preserve_header_case;
    svc.redispatch = raw.redispatch;
    svc.retries = match &raw.retries {
        None => DEFAULT_RETRIES,
        Some(r) => int_in(r, "http.retries", 0, i64::from(MAX_RETRIES))? as u32,
    };
    svc.maxconn = match &raw.maxconn {
        None => DEFAULT_MAXCONN,
        Some(m) => int_in(m, "http.maxconn", 0, i64::from(MAX_MAXCONN))? as u32,
    };
    svc.max_request_head = match &raw.max_request_head {
        None => DEFAULT_MAX_REQUEST_HEAD,
        Some(m) => int_in(
            m,
            "http.max_request_head",
            MIN_REQUEST_HEAD as i64,
            MAX_REQUEST_HEAD as i64,
        )? as usize,
    };
    if let Some(t) = raw.timeout {
        let t = t.into_inner();
        let get = |v: &Option<Spanned<RawDuration>>, k: &str, d: Duration| match v {
            None => Ok(d),
            Some(v) => duration(v, &format!("http.timeout.{k}"), TimeUnit::Millis),
        };
        let connect = get(&t.connect, "connect", DEFAULT_TIMEOUT_CONNECT)?;
        svc.timeouts = Timeouts {
            connect,
            client: get(&t.client, "client", DEFAULT_TIMEOUT_CLIENT)?,
            server: get(&t.server, "server", DEFAULT_TIMEOUT_SERVER)?,
            http_request: get(
                &t.http_request,
                "http_request",
                DEFAULT_TIMEOUT_HTTP_REQUEST,
            )?,
            queue: get(&t.queue, "queue", connect)?,
        };
    }
    if let Some(c) = raw.cookie {
        svc.cookie = Some(validate_cookie(c.into_inner())?);
    }
    if let Some(st) = raw.stats {
        let at = st.span().start;
        svc.stats = validate_stats(st.into_inner(), at)?;
    }
    Ok(svc)
}

fn stats_uri(raw: &Spanned<String>, key: &str) -> Result<String, HttpConfigError> {
    let u = raw.get_ref();
    if !u.starts_with('/')
        || u.len() > MAX_STATS_URI
        || u.bytes().any(|b| !b.is_ascii_graphic() || b == b'#')
    {
        return Err(err(
            raw.span().start,
            key,
            format!(
                "{u:?}: a path starting with / (visible ASCII, no #, at most {MAX_STATS_URI} bytes)"
            ),
        ));
    }
    Ok(u.clone())
}

fn validate_stats(st: RawStats, table_at: usize) -> Result<Option<StatsPage>, HttpConfigError> {
    if st.enable == Some(false) {
        return Ok(None);
    }
    let uri = match &st.uri {
        None => DEFAULT_STATS_URI.to_string(),
        Some(u) => stats_uri(u, "http.stats.uri")?,
    };
    let prometheus_uri = match &st.prometheus_uri {
        None => None,
        Some(u) => {
            let p = stats_uri(u, "http.stats.prometheus_uri")?;
            if p.contains('?') || p.contains(';') || p.starts_with(uri.as_str()) {
                return Err(err(
                    u.span().start,
                    "http.stats.prometheus_uri",
                    format!("{p:?}: a plain path (no ? or ;) that does not start with the stats uri {uri:?}"),
                ));
            }
            Some(p)
        }
    };
    let mut users: Vec<StatsUser> = Vec::new();
    if let Some(a) = st.auth {
        let at = a.span().start;
        let list = match a.into_inner() {
            RawAuth::One(s) => vec![s],
            RawAuth::Many(v) => v,
        };
        for entry in list {
            let Some((name, password)) = entry.split_once(':') else {
                return Err(err(at, "http.stats.auth", "expected \"user:password\""));
            };
            if name.is_empty() || name.chars().any(char::is_control) {
                return Err(err(
                    at,
                    "http.stats.auth",
                    "the user name must not be empty",
                ));
            }
            if users.iter().any(|u| u.name == name) {
                return Err(err(
                    at,
                    "http.stats.auth",
                    format!("user {name:?} is listed twice"),
                ));
            }
            users.push(StatsUser {
                name: name.to_string(),
                password: password.to_string(),
            });
        }
    }
    let realm = match &st.realm {
        None => DEFAULT_STATS_REALM.to_string(),
        Some(r) => {
            let v = r.get_ref();
            if v.is_empty()
                || v.bytes()
                    .any(|b| !(b == b' ' || b.is_ascii_graphic()) || b == b'"' || b == b'\\')
            {
                return Err(err(
                    r.span().start,
                    "http.stats.realm",
                    format!("{v:?}: printable ASCII without \" or \\"),
                ));
            }
            v.clone()
        }
    };
    let refresh = st
        .refresh
        .as_ref()
        .map(|d| duration(d, "http.stats.refresh", TimeUnit::Seconds))
        .transpose()?;
    if st.admin && users.is_empty() {
        return Err(err(
            table_at,
            "http.stats.admin",
            "admin actions are only for authenticated users: add stats auth",
        ));
    }
    Ok(Some(StatsPage {
        uri,
        users,
        realm,
        refresh,
        admin: st.admin,
        prometheus_uri,
    }))
}

fn validate_cookie(c: RawCookie) -> Result<CookiePersistence, HttpConfigError> {
    if !valid_cookie_name(c.name.get_ref()) {
        return Err(err(
            c.name.span().start,
            "http.cookie.name",
            format!("{:?} is not a cookie name", c.name.get_ref()),
        ));
    }
    let insert_only: [(&str, Option<usize>); 8] = [
        ("nocache", c.nocache.as_ref().map(|v| v.span().start)),
        ("postonly", c.postonly.as_ref().map(|v| v.span().start)),
        ("httponly", c.httponly.as_ref().map(|v| v.span().start)),
        ("secure", c.secure.as_ref().map(|v| v.span().start)),
        ("domain", c.domain.as_ref().map(|v| v.span().start)),
        ("maxidle", c.maxidle.as_ref().map(|v| v.span().start)),
        ("maxlife", c.maxlife.as_ref().map(|v| v.span().start)),
        ("", None),
    ];
    let mode = match c.mode.get_ref().as_str() {
        "prefix" => CookieMode::Prefix,
        "rewrite" => CookieMode::Rewrite,
        "insert" => {
            let domains = match c.domain {
                None => Vec::new(),
                Some(d) => {
                    let at = d.span().start;
                    let list = match d.into_inner() {
                        RawDomains::One(s) => vec![s],
                        RawDomains::Many(v) => v,
                    };
                    if let Some(bad) = list.iter().find(|s| {
                        s.is_empty()
                            || !s
                                .bytes()
                                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
                    }) {
                        return Err(err(
                            at,
                            "http.cookie.domain",
                            format!("{bad:?} is not a domain name"),
                        ));
                    }
                    list
                }
            };
            let flag = |v: &Option<Spanned<bool>>| v.as_ref().is_some_and(|b| *b.get_ref());
            CookieMode::Insert(InsertOptions {
                nocache: flag(&c.nocache),
                postonly: flag(&c.postonly),
                httponly: flag(&c.httponly),
                secure: flag(&c.secure),
                domains,
                maxidle: c
                    .maxidle
                    .as_ref()
                    .map(|d| duration(d, "http.cookie.maxidle", TimeUnit::Seconds))
                    .transpose()?,
                maxlife: c
                    .maxlife
                    .as_ref()
                    .map(|d| duration(d, "http.cookie.maxlife", TimeUnit::Seconds))
                    .transpose()?,
            })
        }
        other => {
            return Err(err(
                c.mode.span().start,
                "http.cookie.mode",
                format!(
                    "unknown cookie mode {other:?}; expected \"prefix\", \"insert\" or \"rewrite\""
                ),
            ))
        }
    };
    if !matches!(mode, CookieMode::Insert(_)) {
        if let Some((k, Some(at))) = insert_only.iter().find(|(_, at)| at.is_some()) {
            return Err(err(
                *at,
                format!("http.cookie.{k}"),
                "only valid with mode = \"insert\" (as in HAProxy)",
            ));
        }
    }
    if c.preserve && !(matches!(mode, CookieMode::Insert(_)) || c.indirect) {
        return Err(err(
            c.mode.span().start,
            "http.cookie.preserve",
            "needs mode = \"insert\" and/or indirect = true",
        ));
    }
    Ok(CookiePersistence {
        name: c.name.into_inner(),
        mode,
        indirect: c.indirect,
        preserve: c.preserve,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Doc {
        http: Option<Spanned<RawHttp>>,
        #[serde(default)]
        server: Vec<Spanned<RawServer>>,
    }

    fn load(text: &str) -> Result<HttpService, HttpConfigError> {
        let d: Doc = toml::from_str(text).expect("toml");
        validate_http(
            "webfarm",
            "192.168.0.99:80".parse().expect("addr"),
            d.http,
            d.server,
            0,
        )
    }

    const SEED: &str = r#"
[http]
balance = "roundrobin"
cookie = { name = "JSESSIONID", mode = "prefix" }
forwardfor = true
httpclose = true
retries = 3
redispatch = true
maxconn = 2000
timeout = { connect = 5000, client = 50000, server = "50s" }
[[server]]
name = "webA"
address = "192.168.0.102:80"
cookie = "A"
[[server]]
name = "webB"
address = "192.168.0.103:80"
cookie = "B"
"#;

    #[test]
    fn seed_config() {
        let s = load(SEED).expect("valid");
        assert_eq!(s.servers.len(), 2);
        assert_eq!(s.servers[1].cookie.as_deref(), Some("B"));
        assert_eq!(
            s.cookie.as_ref().map(|c| c.mode.clone()),
            Some(CookieMode::Prefix)
        );
        assert!(s.forwardfor && s.httpclose && s.redispatch);
        assert!(
            !s.preserve_header_case,
            "HAProxy 2.x lowercases header names"
        );
        assert_eq!(s.timeouts.connect, Duration::from_secs(5));
        assert_eq!(s.timeouts.client, Duration::from_secs(50));
        assert_eq!(
            s.timeouts.queue,
            Duration::from_secs(5),
            "queue defaults to connect"
        );
        assert_eq!(s.timeouts.http_request, DEFAULT_TIMEOUT_HTTP_REQUEST);
    }

    #[test]
    fn defaults_without_http_table() {
        let s = load("[[server]]\nname = \"a\"\naddress = \"[::1]:8080\"\n").expect("valid");
        assert_eq!(s.retries, DEFAULT_RETRIES);
        assert_eq!(s.maxconn, DEFAULT_MAXCONN);
        assert_eq!(s.servers[0].weight, DEFAULT_WEIGHT);
        assert_eq!(s.balance, Balance::RoundRobin);
        assert!(s.cookie.is_none());
    }

    #[test]
    fn durations() {
        let ms = TimeUnit::Millis;
        assert_eq!(parse_duration("5s", ms), Ok(Duration::from_secs(5)));
        assert_eq!(
            parse_duration("50000", ms),
            Ok(Duration::from_millis(50_000))
        );
        assert_eq!(parse_duration("100ms", ms), Ok(Duration::from_millis(100)));
        assert_eq!(parse_duration("250us", ms), Ok(Duration::from_micros(250)));
        assert_eq!(parse_duration("30m", ms), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_duration("8h", ms), Ok(Duration::from_secs(8 * 3600)));
        assert_eq!(parse_duration("1d", ms), Ok(Duration::from_secs(86_400)));
        assert_eq!(
            parse_duration("30", TimeUnit::Seconds),
            Ok(Duration::from_secs(30))
        );
        for bad in [
            "",
            "s",
            "-5s",
            "5 s",
            "5x",
            "1.5s",
            "99999999999999999999",
            "18446744073709551615d",
        ] {
            assert!(parse_duration(bad, ms).is_err(), "{bad}");
        }
    }

    fn error_of(text: &str) -> HttpConfigError {
        load(text).expect_err("must be rejected")
    }

    #[test]
    fn errors_point_at_the_value() {
        let text = SEED.replace("server = \"50s\"", "server = \"50 parsecs\"");
        let e = error_of(&text);
        assert_eq!(e.key, "http.timeout.server");
        assert!(
            text[e.at..].starts_with("\"50 parsecs\""),
            "{}",
            &text[e.at..]
        );

        let text = SEED.replace("192.168.0.103:80", "192.168.0.103");
        let e = error_of(&text);
        assert_eq!(e.key, "server[1].address");
        assert!(text[e.at..].starts_with("\"192.168.0.103\""));

        let text = SEED.replace("\"webB\"", "\"webA\"");
        assert_eq!(error_of(&text).key, "server[1].name");

        let text = SEED.replace("cookie = \"B\"", "cookie = \"B~x\"");
        assert_eq!(error_of(&text).key, "server[1].cookie");

        let text = SEED.replace("cookie = \"B\"", "cookie = \"B\"\nweight = 257");
        assert_eq!(error_of(&text).key, "server[1].weight");

        let text = SEED.replace("\"roundrobin\"", "\"random\"");
        assert_eq!(error_of(&text).key, "http.balance");

        let text = SEED.replace("mode = \"prefix\"", "mode = \"prefix\", maxidle = \"30m\"");
        assert_eq!(error_of(&text).key, "http.cookie.maxidle");

        let text = SEED.replace("mode = \"prefix\"", "mode = \"sticky\"");
        assert_eq!(error_of(&text).key, "http.cookie.mode");

        let text = SEED.replace("retries = 3", "retries = -1");
        assert_eq!(error_of(&text).key, "http.retries");

        let text = SEED.replace("connect = 5000", "connect = 0");
        assert_eq!(error_of(&text).key, "http.timeout.connect");

        let e = load("[http]\nforwardfor = true\n").expect_err("no servers");
        assert_eq!(e.key, "server");
    }

    #[test]
    fn unknown_keys_are_syntax_errors() {
        let r: Result<Doc, _> = toml::from_str("[http]\nforwardfr = true\n");
        assert!(r.is_err());
        let r: Result<Doc, _> =
            toml::from_str("[[server]]\nname = \"a\"\naddress = \"1.2.3.4:80\"\ncheck = true\n");
        assert!(r.is_err());
    }

    #[test]
    fn stats_keys() {
        let s = load(&format!(
            "{SEED}\n[http.stats]\nauth = \"someuser:some:pw\"\n"
        ))
        .expect("valid");
        let st = s.stats.expect("enabled by the table");
        assert_eq!(st.uri, DEFAULT_STATS_URI);
        assert_eq!(st.realm, DEFAULT_STATS_REALM);
        assert_eq!(st.users[0].name, "someuser");
        assert_eq!(st.users[0].password, "some:pw", "split at the first colon");
        assert!(
            !format!("{st:?}").contains("some:pw"),
            "Debug hides passwords"
        );
        let s = load(&format!(
            "{SEED}\n[http.stats]\nuri = \"/st\"\nauth = [\"a:1\", \"b:2\"]\nrefresh = 5\nadmin = true\nprometheus_uri = \"/metrics\"\n"
        ))
        .expect("valid");
        let st = s.stats.expect("on");
        assert_eq!(st.users.len(), 2);
        assert_eq!(
            st.refresh,
            Some(Duration::from_secs(5)),
            "bare number: seconds"
        );
        assert!(st.matches(&"/st;csv".parse().unwrap()));
        assert!(st.matches(&"/metrics".parse().unwrap()));
        assert!(!st.matches(&"/index.html".parse().unwrap()));
        let off = load(&format!("{SEED}\n[http.stats]\nenable = false\n")).expect("valid");
        assert!(off.stats.is_none());
        for (bad, key) in [
            ("uri = \"stats\"", "http.stats.uri"),
            ("auth = \"nocolon\"", "http.stats.auth"),
            ("auth = [\"a:1\", \"a:2\"]", "http.stats.auth"),
            ("admin = true", "http.stats.admin"),
            ("realm = \"a\\\"b\"", "http.stats.realm"),
            (
                "prometheus_uri = \"/haproxy?stats\"",
                "http.stats.prometheus_uri",
            ),
            ("refresh = 0", "http.stats.refresh"),
        ] {
            let e = error_of(&format!("{SEED}\n[http.stats]\n{bad}\n"));
            assert_eq!(e.key, key, "{bad}");
        }
    }

    #[test]
    fn insert_options() {
        let text = SEED.replace(
            "mode = \"prefix\"",
            "mode = \"insert\", indirect = true, nocache = true, httponly = true, secure = true, domain = [\".example.com\"], maxidle = \"30m\", maxlife = 28800",
        );
        let s = load(&text).expect("valid");
        let c = s.cookie.expect("cookie");
        assert!(c.indirect);
        match c.mode {
            CookieMode::Insert(o) => {
                assert!(o.nocache && o.httponly && o.secure && !o.postonly);
                assert_eq!(o.domains, vec![".example.com".to_string()]);
                assert_eq!(o.maxidle, Some(Duration::from_secs(1800)));
                assert_eq!(o.maxlife, Some(Duration::from_secs(28_800)));
            }
            other => panic!("{other:?}"),
        }
    }
}
