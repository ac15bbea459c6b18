//! HAProxy's cookie persistence (`cookie <name> prefix|insert|rewrite ...`), byte for
//! byte: which server a request's cookie names, how the Cookie header reaches the
//! server, and how Set-Cookie reaches the client. Pure functions over header bytes;
//! any byte sequence is accepted and nothing here can panic on input.
//!
//! Parsing follows HAProxy's `http_manage_client_side_cookies` and
//! `http_manage_server_side_cookies`: in requests both `;` and `,` end a cookie,
//! quoted values are kept whole (quotes included), names starting with `$` are
//! attributes; in a Set-Cookie header only the first `name=value` is the cookie.

use super::{
    balance::{state_of, ServerState},
    service::{CookieMode, CookiePersistence, InsertOptions, Server},
};

/// Separates the server id from the application value in prefix mode.
pub const COOKIE_DELIM: u8 = b'~';
/// Separates the server id from the last/first dates in insert mode with maxidle/maxlife.
pub const COOKIE_DELIM_DATE: u8 = b'|';
/// Cookie dates further in the future than this are ignored (HAProxy: one day).
pub const MAX_FUTURE_SKEW_SECS: i64 = 86_400;
/// Value HAProxy inserts for a server without a cookie: tells the client to drop it.
pub const EXPIRED_COOKIE_ATTRS: &str = "=; Expires=Thu, 01-Jan-1970 00:00:01 GMT; path=/";

/// What the request's persistence cookie said (third letter of the httplog
/// termination state).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CookieStatus {
    /// `-`: no persistence cookie configured.
    NotConfigured,
    /// `N`: the request had no persistence cookie.
    None,
    /// `I`: it named no known server (or was empty).
    Invalid,
    /// `D`: it named a server that is down.
    Down,
    /// `V`: it named a usable server, which gets the request.
    Valid,
    /// `E`: its last-seen date is older than `maxidle` (or too far in the future).
    Expired,
    /// `O`: its first-seen date is older than `maxlife` (or too far in the future).
    Old,
    /// `U`: present but not used (persistence already decided by an earlier cookie).
    Unused,
}

impl CookieStatus {
    /// The httplog letter.
    pub fn letter(self) -> char {
        match self {
            CookieStatus::NotConfigured => '-',
            CookieStatus::None => 'N',
            CookieStatus::Invalid => 'I',
            CookieStatus::Down => 'D',
            CookieStatus::Valid => 'V',
            CookieStatus::Expired => 'E',
            CookieStatus::Old => 'O',
            CookieStatus::Unused => 'U',
        }
    }
}

/// What happened to Set-Cookie in the response (fourth httplog termination letter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetCookieStatus {
    /// `-`: no persistence cookie configured.
    NotConfigured,
    /// `N`: no persistence Set-Cookie seen or added.
    None,
    /// `P`: the server's persistence cookie passed untouched.
    Preserved,
    /// `D`: the server's persistence cookie was removed.
    Deleted,
    /// `I`: a cookie was inserted.
    Inserted,
    /// `U`: a valid cookie's dates were refreshed.
    Updated,
    /// `R`: the server's cookie value was rewritten or prefixed.
    Replaced,
}

impl SetCookieStatus {
    /// The httplog letter.
    pub fn letter(self) -> char {
        match self {
            SetCookieStatus::NotConfigured => '-',
            SetCookieStatus::None => 'N',
            SetCookieStatus::Preserved => 'P',
            SetCookieStatus::Deleted => 'D',
            SetCookieStatus::Inserted => 'I',
            SetCookieStatus::Updated => 'U',
            SetCookieStatus::Replaced => 'R',
        }
    }
}

/// The result of looking at a request's Cookie headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestCookies {
    /// Server the cookie sends the request to (index into the farm).
    pub server: Option<usize>,
    /// For the log and for the response side.
    pub status: CookieStatus,
    /// First-seen date (unix seconds, 4 s resolution) of the assigning cookie; 0 = none.
    pub first_date: u32,
    /// Last-seen date (unix seconds, 4 s resolution) of the assigning cookie; 0 = none.
    pub last_date: u32,
    /// Replacement Cookie header values, one per input header in order, `None` when
    /// nothing changed. Empty values mean "remove this header".
    pub rewritten: Option<Vec<Vec<u8>>>,
}

/// One `name=value` item of a header value, as byte ranges into it.
#[derive(Debug, Clone, Copy)]
struct Item {
    att_beg: usize,
    att_end: usize,
    has_eq: bool,
    val_beg: usize,
    val_end: usize,
}

fn is_spht(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// End of a cookie value starting at `s`: the first `,` or `;` outside quotes
/// (HAProxy's `http_find_cookie_value_end`).
fn cookie_value_end(h: &[u8], mut s: usize) -> usize {
    let (mut quoted, mut qdpair) = (false, false);
    while s < h.len() {
        let c = h[s];
        if qdpair {
            qdpair = false;
        } else if quoted {
            if c == b'\\' {
                qdpair = true;
            } else if c == b'"' {
                quoted = false;
            }
        } else if c == b'"' {
            quoted = true;
        } else if c == b',' || c == b';' {
            return s;
        }
        s += 1;
    }
    s
}

/// Splits a header value into items. `list` = every item (Cookie); otherwise only the
/// first (Set-Cookie, whose later items are attributes).
fn items(h: &[u8], list: bool) -> Vec<Item> {
    let mut out = Vec::new();
    let mut prev = 0usize;
    let mut first = true;
    loop {
        let mut att_beg = prev;
        if !first {
            att_beg += 1; // skip the delimiter
        }
        first = false;
        while att_beg < h.len() && is_spht(h[att_beg]) {
            att_beg += 1;
        }
        let (mut equal, mut att_end) = (att_beg, att_beg);
        while equal < h.len() {
            let c = h[equal];
            if c == b'=' || c == b';' || (list && c == b',') {
                break;
            }
            equal += 1;
            if !is_spht(c) {
                att_end = equal;
            }
        }
        let (has_eq, val_beg, mut val_end, next);
        if equal < h.len() && h[equal] == b'=' {
            has_eq = true;
            let mut vb = equal + 1;
            while vb < h.len() && is_spht(h[vb]) {
                vb += 1;
            }
            val_beg = vb;
            next = cookie_value_end(h, vb);
            val_end = next;
            while val_end > val_beg && is_spht(h[val_end - 1]) {
                val_end -= 1;
            }
        } else {
            has_eq = false;
            val_beg = equal;
            val_end = equal;
            next = equal;
        }
        out.push(Item {
            att_beg,
            att_end,
            has_eq,
            val_beg,
            val_end,
        });
        if !list {
            break;
        }
        if next >= h.len() {
            break;
        }
        // `next` points at the delimiter, which the next round skips; since
        // next >= att_beg > prev after the first round, the loop always advances.
        prev = next;
    }
    out
}

/// HAProxy's base64 alphabet for cookie dates.
const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Encodes the low 30 bits of `v` as 5 characters, most significant first
/// (HAProxy's `s30tob64`).
pub fn s30tob64(mut v: u32) -> [u8; 5] {
    let mut out = [0u8; 5];
    for o in &mut out {
        *o = B64[((v >> 24) & 0x3f) as usize];
        v <<= 6;
    }
    out
}

/// Decodes 5 characters made by [`s30tob64`]; `None` for any other byte or a short
/// input (HAProxy's `b64tos30`).
pub fn b64tos30(s: &[u8]) -> Option<u32> {
    let s = s.get(..5)?;
    let mut out: u32 = 0;
    for &c in s {
        let v = B64.iter().position(|&b| b == c)?;
        out = (out << 6) + v as u32;
    }
    Some(out)
}

/// Reads the request's persistence cookie(s) from all Cookie header values.
///
/// `now` is unix seconds. Servers are matched in config order on their cookie value;
/// the first one that is up (draining counts as up) wins, so a cookie may be shared.
pub fn on_request(
    cfg: &CookiePersistence,
    cookie_headers: &[&[u8]],
    servers: &[Server],
    states: &[ServerState],
    now: u64,
) -> RequestCookies {
    let name = cfg.name.as_bytes();
    let prefix = matches!(cfg.mode, CookieMode::Prefix);
    let insert = match &cfg.mode {
        CookieMode::Insert(o) => Some(o),
        _ => None,
    };
    let strip_in_insert = insert.is_some() && cfg.indirect;
    let now_i = i64::try_from(now).unwrap_or(i64::MAX);

    let mut res = RequestCookies {
        server: None,
        status: CookieStatus::None,
        first_date: 0,
        last_date: 0,
        rewritten: None,
    };
    let mut changed_any = false;
    let mut out_headers: Vec<Vec<u8>> = Vec::with_capacity(cookie_headers.len());

    for h in cookie_headers {
        let h: &[u8] = h;
        let its = items(h, true);
        // Per item: None = keep bytes as they are, Some(None) = delete,
        // Some(Some(v)) = keep with the value replaced by v.
        let mut edits: Vec<Option<Option<Vec<u8>>>> = vec![None; its.len()];
        for (k, it) in its.iter().enumerate() {
            if it.att_beg < it.att_end && h[it.att_beg] == b'$' {
                continue;
            }
            if !it.has_eq || &h[it.att_beg..it.att_end] != name {
                continue;
            }
            let val = &h[it.val_beg..it.val_end];
            let mut first_date = 0u32;
            let mut last_date = 0u32;
            // Length of the server id at the start of the value.
            let mut id_len;
            let mut has_delim = false;
            if prefix {
                match val.iter().position(|&b| b == COOKIE_DELIM) {
                    Some(p) => {
                        id_len = p;
                        has_delim = true;
                    }
                    None => id_len = val.len(),
                }
            } else {
                id_len = val.len();
                if let Some(p) = val.iter().position(|&b| b == COOKIE_DELIM_DATE) {
                    id_len = p;
                    let rest = &val[p + 1..];
                    if let Some(v) = b64tos30(rest).filter(|&v| v > 0) {
                        last_date = v << 2;
                    }
                    if let Some(p2) = rest.iter().position(|&b| b == COOKIE_DELIM_DATE) {
                        let after = &rest[p2 + 1..];
                        if after.len() >= 5 {
                            if let Some(v) = b64tos30(after).filter(|&v| v > 0) {
                                first_date = v << 2;
                            }
                        }
                    }
                }
            }

            if let Some(opts) = insert {
                let too_old = |date: u32, max: Option<std::time::Duration>| match max {
                    Some(max) if date != 0 => {
                        let d = i64::from(date);
                        let max = i64::try_from(max.as_secs()).unwrap_or(i64::MAX);
                        now_i - d > max || d - now_i > MAX_FUTURE_SKEW_SECS
                    }
                    _ => false,
                };
                if too_old(first_date, opts.maxlife) {
                    res.status = CookieStatus::Old;
                    id_len = 0;
                    first_date = 0;
                    last_date = 0;
                } else if too_old(last_date, opts.maxidle) {
                    res.status = CookieStatus::Expired;
                    id_len = 0;
                    first_date = 0;
                    last_date = 0;
                }
            }

            let mut found = None;
            if id_len > 0 && res.server.is_none() {
                let id = &val[..id_len];
                for (i, s) in servers.iter().enumerate() {
                    if s.cookie.as_deref().map(str::as_bytes) == Some(id) {
                        if state_of(states, i).up {
                            found = Some(i);
                            res.status = CookieStatus::Valid;
                            break;
                        }
                        res.status = CookieStatus::Down;
                    }
                }
            }
            match found {
                Some(i) => {
                    res.server = Some(i);
                    res.first_date = first_date;
                    res.last_date = last_date;
                }
                None => {
                    if !matches!(
                        res.status,
                        CookieStatus::Down | CookieStatus::Expired | CookieStatus::Old
                    ) {
                        res.status = if res.server.is_some() {
                            CookieStatus::Unused
                        } else {
                            CookieStatus::Invalid
                        };
                    }
                }
            }

            if prefix && has_delim {
                edits[k] = Some(Some(val[id_len + 1..].to_vec()));
            } else if strip_in_insert {
                edits[k] = Some(None);
            }
        }

        if edits.iter().all(Option::is_none) {
            out_headers.push(h.to_vec());
            continue;
        }
        changed_any = true;
        let mut rebuilt: Vec<u8> = Vec::with_capacity(h.len());
        for (it, e) in its.iter().zip(edits) {
            let piece: Vec<u8> = match e {
                Some(None) => continue,
                Some(Some(v)) => {
                    let mut p = h[it.att_beg..it.att_end].to_vec();
                    p.push(b'=');
                    p.extend_from_slice(&v);
                    p
                }
                None => h[it.att_beg..it.val_end.max(it.att_end)].to_vec(),
            };
            if piece.is_empty() {
                continue;
            }
            if !rebuilt.is_empty() {
                rebuilt.extend_from_slice(b"; ");
            }
            rebuilt.extend_from_slice(&piece);
        }
        out_headers.push(rebuilt);
    }
    if changed_any {
        res.rewritten = Some(out_headers);
    }
    res
}

/// What the response side needs to know about the request.
#[derive(Debug, Clone, Copy)]
pub struct ResponseContext {
    /// Server that produced the response.
    pub server: usize,
    /// The request went there because of a valid persistence cookie (HAProxy SF_DIRECT);
    /// false after a redispatch.
    pub direct: bool,
    /// Dates from the request's cookie ([`RequestCookies`]).
    pub first_date: u32,
    /// Dates from the request's cookie ([`RequestCookies`]).
    pub last_date: u32,
    /// The request method was POST (`postonly`).
    pub is_post: bool,
    /// The response may be stored by a shared cache (`nocache`), see [`is_cacheable`].
    pub cacheable: bool,
}

/// The result of looking at a response's Set-Cookie headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseCookies {
    /// Replacement Set-Cookie values, one per input header in order, `None` when
    /// nothing changed; an inner `None` removes that header.
    pub rewritten: Option<Vec<Option<Vec<u8>>>>,
    /// A Set-Cookie value to add (insert mode).
    pub insert: Option<String>,
    /// Add `Cache-control: private` (insert + nocache on a cacheable response).
    pub cache_private: bool,
    /// For the log.
    pub status: SetCookieStatus,
}

/// Applies the persistence cookie rules to a response's Set-Cookie header values.
pub fn on_response(
    cfg: &CookiePersistence,
    set_cookie_headers: &[&[u8]],
    servers: &[Server],
    ctx: ResponseContext,
    now: u64,
) -> ResponseCookies {
    let name = cfg.name.as_bytes();
    let srv = servers.get(ctx.server);
    let srv_cookie = srv.and_then(|s| s.cookie.as_deref());
    let insert: Option<&InsertOptions> = match &cfg.mode {
        CookieMode::Insert(o) => Some(o),
        _ => None,
    };
    let mut status = SetCookieStatus::None;
    let mut found = false;
    let mut changed = false;
    let mut out: Vec<Option<Vec<u8>>> = Vec::with_capacity(set_cookie_headers.len());

    for h in set_cookie_headers {
        let h: &[u8] = h;
        let Some(it) = items(h, false).into_iter().next() else {
            out.push(Some(h.to_vec()));
            continue;
        };
        if !it.has_eq || &h[it.att_beg..it.att_end] != name {
            out.push(Some(h.to_vec()));
            continue;
        }
        found = true;
        status = SetCookieStatus::Preserved;
        let replace_value = |new: &[u8]| {
            let mut v = Vec::with_capacity(h.len() + new.len());
            v.extend_from_slice(&h[..it.val_beg]);
            v.extend_from_slice(new);
            v.extend_from_slice(&h[it.val_end..]);
            v
        };
        if cfg.preserve {
            out.push(Some(h.to_vec()));
        } else if (srv.is_some() && insert.is_some()) || (ctx.direct && cfg.indirect) {
            out.push(None);
            changed = true;
            status = SetCookieStatus::Deleted;
        } else if let (Some(id), CookieMode::Rewrite) = (srv_cookie, &cfg.mode) {
            out.push(Some(replace_value(id.as_bytes())));
            changed = true;
            status = SetCookieStatus::Replaced;
        } else if let (Some(id), CookieMode::Prefix) = (srv_cookie, &cfg.mode) {
            let mut nv = id.as_bytes().to_vec();
            nv.push(COOKIE_DELIM);
            nv.extend_from_slice(&h[it.val_beg..it.val_end]);
            out.push(Some(replace_value(&nv)));
            changed = true;
            status = SetCookieStatus::Replaced;
        } else {
            out.push(Some(h.to_vec()));
        }
    }

    let mut res = ResponseCookies {
        rewritten: changed.then_some(out),
        insert: None,
        cache_private: false,
        status,
    };
    let (Some(opts), Some(srv)) = (insert, srv) else {
        return res;
    };
    let now32 = u32::try_from(now).unwrap_or(u32::MAX);
    let refresh_idle = (opts.maxidle.is_some() || ctx.last_date != 0)
        && (ctx.last_date == 0 || i64::from(ctx.last_date) - i64::from(now32) < 0);
    let need = !(found && cfg.preserve)
        && (!ctx.direct
            || refresh_idle
            || (opts.maxlife.is_some() && ctx.first_date == 0)
            || (opts.maxlife.is_none() && ctx.first_date != 0))
        && (!opts.postonly || ctx.is_post);
    if !need {
        return res;
    }
    let mut c = String::with_capacity(64);
    c.push_str(&cfg.name);
    match &srv.cookie {
        None => c.push_str(EXPIRED_COOKIE_ATTRS),
        Some(id) => {
            c.push('=');
            c.push_str(id);
            if opts.maxidle.is_some() || opts.maxlife.is_some() {
                let stamp = now32.saturating_add(3) >> 2;
                c.push(COOKIE_DELIM_DATE as char);
                c.push_str(&b64_str(stamp));
                if opts.maxlife.is_some() {
                    let first = if ctx.first_date != 0 {
                        ctx.first_date >> 2
                    } else {
                        stamp
                    };
                    c.push(COOKIE_DELIM_DATE as char);
                    c.push_str(&b64_str(first));
                }
            }
            c.push_str("; path=/");
        }
    }
    for d in &opts.domains {
        c.push_str("; domain=");
        c.push_str(d);
    }
    if opts.httponly {
        c.push_str("; HttpOnly");
    }
    if opts.secure {
        c.push_str("; Secure");
    }
    res.insert = Some(c);
    res.status = if srv.cookie.is_some() && ctx.direct {
        SetCookieStatus::Updated
    } else {
        SetCookieStatus::Inserted
    };
    res.cache_private = opts.nocache && ctx.cacheable;
    res
}

fn b64_str(v: u32) -> String {
    s30tob64(v).iter().map(|&b| b as char).collect()
}

/// Whether a shared cache may store this response, the way HAProxy decides it for
/// `nocache`: GET/HEAD, a status cacheable by default (RFC 7231 6.1), and no
/// `Cache-Control: private/no-cache/no-store/max-age=0/s-maxage=0` or
/// `Pragma: no-cache`.
pub fn is_cacheable(
    get_or_head: bool,
    status: u16,
    cache_control: &[&[u8]],
    pragma_no_cache: bool,
) -> bool {
    if !get_or_head || pragma_no_cache {
        return false;
    }
    if !matches!(
        status,
        200 | 203 | 204 | 206 | 300 | 301 | 308 | 404 | 405 | 410 | 414 | 501
    ) {
        return false;
    }
    !cache_control.iter().any(|v| {
        v.split(|&b| b == b',').any(|d| {
            let d = trim(d).to_ascii_lowercase();
            d.starts_with(b"private")
                || d.starts_with(b"no-cache")
                || d == b"no-store"
                || d == b"max-age=0"
                || d == b"s-maxage=0"
        })
    })
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [f, rest @ ..] = s {
        if !is_spht(*f) {
            break;
        }
        s = rest;
    }
    while let [rest @ .., l] = s {
        if !is_spht(*l) {
            break;
        }
        s = rest;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::{net::SocketAddr, time::Duration};

    fn farm() -> Vec<Server> {
        let mut a = Server::new("webA", SocketAddr::from(([127, 0, 0, 1], 1)));
        a.cookie = Some("A".into());
        let mut b = Server::new("webB", SocketAddr::from(([127, 0, 0, 1], 2)));
        b.cookie = Some("B".into());
        let c = Server::new("nocookie", SocketAddr::from(([127, 0, 0, 1], 3)));
        vec![a, b, c]
    }
    fn cfg(mode: CookieMode) -> CookiePersistence {
        CookiePersistence {
            name: "JSESSIONID".into(),
            mode,
            indirect: false,
            preserve: false,
        }
    }
    const UP: [ServerState; 3] = [ServerState::UP; 3];
    const NOW: u64 = 1_700_000_000;

    fn req(c: &CookiePersistence, hs: &[&str], st: &[ServerState]) -> RequestCookies {
        let hs: Vec<&[u8]> = hs.iter().map(|s| s.as_bytes()).collect();
        on_request(c, &hs, &farm(), st, NOW)
    }
    fn rewritten(r: &RequestCookies) -> Vec<String> {
        r.rewritten
            .as_ref()
            .expect("rewritten")
            .iter()
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .collect()
    }
    fn ctx(server: usize, direct: bool) -> ResponseContext {
        ResponseContext {
            server,
            direct,
            first_date: 0,
            last_date: 0,
            is_post: false,
            cacheable: true,
        }
    }
    fn resp(c: &CookiePersistence, hs: &[&str], x: ResponseContext) -> ResponseCookies {
        let hs: Vec<&[u8]> = hs.iter().map(|s| s.as_bytes()).collect();
        on_response(c, &hs, &farm(), x, NOW)
    }

    #[test]
    fn prefix_request_routes_and_strips() {
        let c = cfg(CookieMode::Prefix);
        let r = req(&c, &["foo=1; JSESSIONID=A~abc; bar=2"], &UP);
        assert_eq!((r.server, r.status), (Some(0), CookieStatus::Valid));
        assert_eq!(rewritten(&r), vec!["foo=1; JSESSIONID=abc; bar=2"]);
        let r = req(&c, &["JSESSIONID=B~x~y"], &UP);
        assert_eq!(
            (r.server, rewritten(&r)),
            (Some(1), vec!["JSESSIONID=x~y".to_string()])
        );
    }

    #[test]
    fn prefix_unknown_down_and_no_delimiter() {
        let c = cfg(CookieMode::Prefix);
        // Unknown id: normal balancing, prefix still removed (HAProxy strips whenever a
        // delimiter is present).
        let r = req(&c, &["JSESSIONID=Z~abc"], &UP);
        assert_eq!((r.server, r.status), (None, CookieStatus::Invalid));
        assert_eq!(rewritten(&r), vec!["JSESSIONID=abc"]);
        // Down server.
        let r = req(
            &c,
            &["JSESSIONID=A~abc"],
            &[ServerState::DOWN, ServerState::UP, ServerState::UP],
        );
        assert_eq!((r.server, r.status), (None, CookieStatus::Down));
        assert_eq!(rewritten(&r), vec!["JSESSIONID=abc"]);
        // Draining server still honours persistence.
        let r = req(
            &c,
            &["JSESSIONID=A~abc"],
            &[
                ServerState {
                    up: true,
                    drain: true,
                    weight: None,
                },
                ServerState::UP,
                ServerState::UP,
            ],
        );
        assert_eq!(r.server, Some(0));
        // No delimiter: the whole value is the id; untouched.
        let r = req(&c, &["JSESSIONID=abc"], &UP);
        assert_eq!(
            (r.server, r.status, r.rewritten),
            (None, CookieStatus::Invalid, None)
        );
        // Empty id.
        let r = req(&c, &["JSESSIONID=~abc"], &UP);
        assert_eq!((r.server, r.status), (None, CookieStatus::Invalid));
        assert_eq!(rewritten(&r), vec!["JSESSIONID=abc"]);
        // No cookie at all.
        let r = req(&c, &["other=1"], &UP);
        assert_eq!(
            (r.server, r.status, r.rewritten),
            (None, CookieStatus::None, None)
        );
    }

    #[test]
    fn duplicates_first_valid_wins_rest_unused() {
        let c = cfg(CookieMode::Prefix);
        let r = req(
            &c,
            &["JSESSIONID=B~1", "JSESSIONID=A~2; JSESSIONID=Z~3"],
            &UP,
        );
        assert_eq!(r.server, Some(1));
        assert_eq!(r.status, CookieStatus::Unused);
        assert_eq!(
            rewritten(&r),
            vec!["JSESSIONID=1", "JSESSIONID=2; JSESSIONID=3"]
        );
        // A down server's cookie then a valid one.
        let r = req(
            &c,
            &["JSESSIONID=A~1, JSESSIONID=B~2"],
            &[ServerState::DOWN, ServerState::UP, ServerState::UP],
        );
        assert_eq!((r.server, r.status), (Some(1), CookieStatus::Valid));
    }

    #[test]
    fn attributes_quotes_and_spaces() {
        let c = cfg(CookieMode::Rewrite);
        let r = req(&c, &["$Version=\"1\"; JSESSIONID = B ; $Path=\"/\""], &UP);
        assert_eq!(r.server, Some(1));
        assert_eq!(r.rewritten, None);
        // Quoted values are kept whole, quotes included, so they do not match.
        let r = req(&c, &["JSESSIONID=\"B\""], &UP);
        assert_eq!(r.status, CookieStatus::Invalid);
        // A quoted comma does not split.
        let r = req(&c, &["x=\"a,JSESSIONID=B\"; y=1"], &UP);
        assert_eq!(r.status, CookieStatus::None);
        // Names are case-sensitive.
        let r = req(&c, &["jsessionid=B"], &UP);
        assert_eq!(r.status, CookieStatus::None);
    }

    #[test]
    fn insert_indirect_removes_cookie_from_request() {
        let mut c = cfg(CookieMode::Insert(InsertOptions::default()));
        c.name = "SRV".into();
        let r = req(&c, &["a=1; SRV=B; b=2", "SRV=A"], &UP);
        assert_eq!(r.server, Some(1));
        assert_eq!(
            r.rewritten, None,
            "without indirect the server sees the cookie"
        );
        c.indirect = true;
        let r = req(&c, &["a=1; SRV=B; b=2", "SRV=A"], &UP);
        assert_eq!(rewritten(&r), vec!["a=1; b=2", ""]);
    }

    #[test]
    fn insert_response_cookie_and_options() {
        let opts = InsertOptions {
            nocache: true,
            httponly: true,
            secure: true,
            domains: vec![".example.com".into(), "b.example".into()],
            ..Default::default()
        };
        let c = CookiePersistence {
            name: "SRV".into(),
            mode: CookieMode::Insert(opts),
            indirect: true,
            preserve: false,
        };
        let r = resp(&c, &["SRV=app; path=/", "other=1"], ctx(0, false));
        assert_eq!(
            r.insert.as_deref(),
            Some("SRV=A; path=/; domain=.example.com; domain=b.example; HttpOnly; Secure")
        );
        assert!(r.cache_private);
        assert_eq!(r.status, SetCookieStatus::Inserted);
        // Server's own SRV cookie is removed in insert mode.
        assert_eq!(r.rewritten, Some(vec![None, Some(b"other=1".to_vec())]));
        // Valid cookie already: nothing inserted.
        let r = resp(&c, &[], ctx(0, true));
        assert_eq!((r.insert, r.status), (None, SetCookieStatus::None));
        // Server without cookie: removal cookie.
        let r = resp(&c, &[], ctx(2, false));
        assert_eq!(
            r.insert
                .as_deref()
                .map(|s| s.starts_with("SRV=; Expires=Thu, 01-Jan-1970 00:00:01 GMT; path=/")),
            Some(true)
        );
        // Not cacheable: no Cache-control.
        let r = resp(
            &c,
            &[],
            ResponseContext {
                cacheable: false,
                ..ctx(1, false)
            },
        );
        assert!(!r.cache_private);
    }

    #[test]
    fn postonly_and_preserve() {
        let opts = InsertOptions {
            postonly: true,
            ..Default::default()
        };
        let mut c = CookiePersistence {
            name: "SRV".into(),
            mode: CookieMode::Insert(opts),
            indirect: false,
            preserve: false,
        };
        assert_eq!(resp(&c, &[], ctx(0, false)).insert, None);
        assert!(resp(
            &c,
            &[],
            ResponseContext {
                is_post: true,
                ..ctx(0, false)
            }
        )
        .insert
        .is_some());
        c.preserve = true;
        let r = resp(
            &c,
            &["SRV=; Max-Age=0"],
            ResponseContext {
                is_post: true,
                ..ctx(0, false)
            },
        );
        assert_eq!(
            (r.rewritten, r.insert, r.status),
            (None, None, SetCookieStatus::Preserved)
        );
    }

    #[test]
    fn prefix_and_rewrite_responses() {
        let c = cfg(CookieMode::Prefix);
        let r = resp(
            &c,
            &["JSESSIONID=v123; Path=/; HttpOnly", "x=1"],
            ctx(0, false),
        );
        assert_eq!(
            r.rewritten,
            Some(vec![
                Some(b"JSESSIONID=A~v123; Path=/; HttpOnly".to_vec()),
                Some(b"x=1".to_vec())
            ])
        );
        assert_eq!((r.insert, r.status), (None, SetCookieStatus::Replaced));
        // Server without a cookie value: untouched.
        let r = resp(&c, &["JSESSIONID=v"], ctx(2, false));
        assert_eq!((r.rewritten, r.status), (None, SetCookieStatus::Preserved));
        // indirect + direct: server's cookie deleted.
        let mut ci = cfg(CookieMode::Prefix);
        ci.indirect = true;
        let r = resp(&ci, &["JSESSIONID=v"], ctx(0, true));
        assert_eq!(
            (r.rewritten, r.status),
            (Some(vec![None]), SetCookieStatus::Deleted)
        );

        let c = cfg(CookieMode::Rewrite);
        let r = resp(&c, &["JSESSIONID=whatever; path=/"], ctx(1, false));
        assert_eq!(
            r.rewritten,
            Some(vec![Some(b"JSESSIONID=B; path=/".to_vec())])
        );
        // Only the first pair of a Set-Cookie is the cookie.
        let r = resp(&c, &["other=1; JSESSIONID=x"], ctx(1, false));
        assert_eq!(r.rewritten, None);
    }

    #[test]
    fn s30_roundtrip_and_known_values() {
        assert_eq!(&s30tob64(0), b"AAAAA");
        assert_eq!(&s30tob64(1), b"AAAAB");
        assert_eq!(&s30tob64((1 << 30) - 1), b"/////");
        for v in [0u32, 1, 63, 64, 425_000_000, (1 << 30) - 1] {
            assert_eq!(b64tos30(&s30tob64(v)), Some(v));
        }
        assert_eq!(b64tos30(b"AAA"), None);
        assert_eq!(b64tos30(b"AA=AA"), None);
        assert_eq!(b64tos30(&[0xff; 5]), None);
    }

    #[test]
    fn maxidle_maxlife_dates() {
        let opts = InsertOptions {
            maxidle: Some(Duration::from_secs(1800)),
            maxlife: Some(Duration::from_secs(8 * 3600)),
            ..Default::default()
        };
        let c = CookiePersistence {
            name: "SRV".into(),
            mode: CookieMode::Insert(opts),
            indirect: true,
            preserve: false,
        };
        let r = resp(&c, &[], ctx(0, false));
        let stamp = b64_str((NOW as u32 + 3) >> 2);
        assert_eq!(r.insert, Some(format!("SRV=A|{stamp}|{stamp}; path=/")));

        let enc = |t: u64| b64_str((t as u32) >> 2);
        // Fresh cookie: valid, dates read back (4 s resolution).
        let v = format!("SRV=A|{}|{}", enc(NOW - 100), enc(NOW - 1000));
        let r = req(&c, &[&v], &UP);
        assert_eq!((r.server, r.status), (Some(0), CookieStatus::Valid));
        assert_eq!(r.last_date, ((NOW - 100) as u32 >> 2) << 2);
        assert_eq!(r.first_date, ((NOW - 1000) as u32 >> 2) << 2);
        // Response to it: refreshed (last date in the past), first date kept.
        let x = ResponseContext {
            first_date: r.first_date,
            last_date: r.last_date,
            ..ctx(0, true)
        };
        let out = resp(&c, &[], x);
        assert_eq!(
            out.insert,
            Some(format!("SRV=A|{stamp}|{}; path=/", enc(NOW - 1000)))
        );
        assert_eq!(out.status, SetCookieStatus::Updated);
        // Idle too long.
        let v = format!("SRV=A|{}|{}", enc(NOW - 4000), enc(NOW - 5000));
        let r = req(&c, &[&v], &UP);
        assert_eq!(
            (r.server, r.status, r.last_date),
            (None, CookieStatus::Expired, 0)
        );
        // Too old.
        let v = format!("SRV=A|{}|{}", enc(NOW - 10), enc(NOW - 9 * 3600));
        assert_eq!(req(&c, &[&v], &UP).status, CookieStatus::Old);
        // Far future.
        let v = format!("SRV=A|{}|{}", enc(NOW + 3 * 86400), enc(NOW - 10));
        assert_eq!(req(&c, &[&v], &UP).status, CookieStatus::Expired);
        // No date: accepted, and the response refreshes it.
        let r = req(&c, &["SRV=A"], &UP);
        assert_eq!((r.server, r.status), (Some(0), CookieStatus::Valid));
        let out = resp(
            &c,
            &[],
            ResponseContext {
                first_date: 0,
                last_date: 0,
                ..ctx(0, true)
            },
        );
        assert!(out.insert.is_some());
        // Garbage dates are ignored, the id still counts.
        let r = req(&c, &["SRV=A|!!|"], &UP);
        assert_eq!((r.server, r.last_date), (Some(0), 0));
    }

    #[test]
    fn cacheability() {
        assert!(is_cacheable(true, 200, &[], false));
        assert!(!is_cacheable(false, 200, &[], false));
        assert!(!is_cacheable(true, 302, &[], false));
        assert!(!is_cacheable(true, 200, &[b"public, Private"], false));
        assert!(!is_cacheable(true, 200, &[b"no-store"], false));
        assert!(!is_cacheable(true, 200, &[], true));
        assert!(is_cacheable(true, 200, &[b"max-age=60"], false));
    }

    /// xorshift64*: deterministic, no extra crate.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn bytes(&mut self, max: usize) -> Vec<u8> {
            let n = (self.next() % (max as u64 + 1)) as usize;
            // Bias towards the bytes that matter to the parser.
            const SPECIAL: &[u8] = b"=;, \t\"\\~|$AB";
            (0..n)
                .map(|_| {
                    let r = self.next();
                    if r.is_multiple_of(3) {
                        SPECIAL[(r >> 8) as usize % SPECIAL.len()]
                    } else {
                        (r >> 16) as u8
                    }
                })
                .collect()
        }
    }

    #[test]
    fn random_bytes_never_panic_and_stay_consistent() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let modes = [
            cfg(CookieMode::Prefix),
            CookiePersistence {
                indirect: true,
                ..cfg(CookieMode::Prefix)
            },
            cfg(CookieMode::Rewrite),
            CookiePersistence {
                name: "JSESSIONID".into(),
                mode: CookieMode::Insert(InsertOptions {
                    maxidle: Some(Duration::from_secs(60)),
                    maxlife: Some(Duration::from_secs(600)),
                    nocache: true,
                    ..Default::default()
                }),
                indirect: true,
                preserve: false,
            },
        ];
        for round in 0..4000 {
            let c = &modes[round % modes.len()];
            let n = (rng.next() % 4) as usize;
            let mut hs: Vec<Vec<u8>> = (0..n).map(|_| rng.bytes(80)).collect();
            if round % 5 == 0 {
                let mut v = b"JSESSIONID=".to_vec();
                v.extend(rng.bytes(20));
                hs.push(v);
            }
            let refs: Vec<&[u8]> = hs.iter().map(|v| v.as_slice()).collect();
            let r = on_request(c, &refs, &farm(), &UP, NOW);
            if let Some(server) = r.server {
                assert!(server < 2);
                assert!(r.status == CookieStatus::Valid || r.status == CookieStatus::Unused);
            }
            if let Some(rw) = &r.rewritten {
                assert_eq!(rw.len(), hs.len());
                // Rewriting is idempotent for the routing decision in insert+indirect:
                // the persistence cookie is gone.
                if matches!(c.mode, CookieMode::Insert(_)) {
                    let refs2: Vec<&[u8]> = rw.iter().map(|v| v.as_slice()).collect();
                    let again = on_request(c, &refs2, &farm(), &UP, NOW);
                    assert_eq!(again.server, None);
                }
            }
            let x = ResponseContext {
                server: (rng.next() % 4) as usize,
                ..ctx(0, round % 2 == 0)
            };
            let out = on_response(c, &refs, &farm(), x, NOW);
            if let Some(rw) = out.rewritten {
                assert_eq!(rw.len(), hs.len());
            }
            let _ = is_cacheable(true, 200, &refs, false);
        }
    }

    #[test]
    fn many_cookies() {
        let c = cfg(CookieMode::Prefix);
        let mut h = String::new();
        for i in 0..2000 {
            h.push_str(&format!("c{i}=v{i}; "));
        }
        h.push_str("JSESSIONID=B~s");
        let r = req(&c, &[&h], &UP);
        assert_eq!(r.server, Some(1));
        assert!(rewritten(&r)[0].ends_with("c1999=v1999; JSESSIONID=s"));
        // Empty pieces and values.
        let r = req(&c, &[";;; ; JSESSIONID=; =;=B~x; JSESSIONID"], &UP);
        assert_eq!(r.server, None);
    }
}
