//! `lb import`: turns an HAProxy config, and optionally a keepalived or Wackamole config,
//! into one lb config, so a site running the classic HAProxy + Wackamole/keepalived pair
//! can move over without rewriting its settings by hand.
//!
//! The import never drops anything silently: every source line that produces no TOML is
//! returned as a [`Note`] with its file and line, and the caller prints them. Settings lb
//! is about to grow (health checks, stats) are listed in [`PENDING`]: giving an entry its
//! lb key is the only change needed to translate it.
//!
//! Pipeline: the parsers ([`haproxy`], [`wackamole`], [`keepalived`]) build plain models,
//! [`emit`] resolves them into services and VRRP instances and writes TOML, and
//! [`import`] checks the result with the same validation `lb check` runs.

mod blocks;
pub mod emit;
pub mod haproxy;
pub mod keepalived;
pub mod wackamole;

use std::{
    net::IpAddr,
    path::{Path, PathBuf},
    time::Duration,
};

/// Why an import failed as a whole (individual lines never fail it: they become notes).
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// An input file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file named on the command line.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A `--map` argument is not `FROM=TO` with two addresses of one family.
    #[error("--map {0:?}: expected FROM=TO with two IP addresses of the same family, e.g. 192.168.0.99=198.18.0.99")]
    BadMap(String),
    /// `--interface` is not a usable interface name.
    #[error("--interface {0:?} is not a valid interface name")]
    BadInterface(String),
}

/// How a source line relates to the generated config.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoteKind {
    /// lb has no equivalent (yet): behaviour differs unless the operator acts.
    Untranslated,
    /// lb does this anyway, or needs nothing for it: no TOML is written.
    NotNeeded,
    /// Translated, but with a choice the operator should confirm.
    Assumed,
}

impl NoteKind {
    /// The label printed in front of the reason.
    pub fn label(self) -> &'static str {
        match self {
            NoteKind::Untranslated => "not translated",
            NoteKind::NotNeeded => "not needed",
            NoteKind::Assumed => "check",
        }
    }
}

/// One source line the operator should look at, with the reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    /// The source file as named on the command line.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// The line's text, trimmed (comments included as written).
    pub source: String,
    /// What kind of attention it needs.
    pub kind: NoteKind,
    /// Why, and what to do.
    pub reason: String,
}

impl std::fmt::Display for Note {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}: {}: `{}`: {}",
            self.file,
            self.line,
            self.kind.label(),
            self.source,
            self.reason
        )
    }
}

/// Collects notes for one file; parsers own one each.
#[derive(Debug, Default)]
pub(crate) struct Notes {
    file: String,
    lines: Vec<String>,
    pub(crate) list: Vec<Note>,
}

impl Notes {
    fn new(file: &str, text: &str) -> Notes {
        Notes {
            file: file.to_string(),
            lines: text.lines().map(|l| l.trim().to_string()).collect(),
            list: Vec::new(),
        }
    }

    fn add(&mut self, line: usize, kind: NoteKind, reason: impl Into<String>) {
        let source = self
            .lines
            .get(line.wrapping_sub(1))
            .cloned()
            .unwrap_or_default();
        self.list.push(Note {
            file: self.file.clone(),
            line,
            source,
            kind,
            reason: reason.into(),
        });
    }
}

/// Where a keyword lb cannot express yet would go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// A `server` line keyword: a key of `[[service.server]]`.
    Server,
    /// A proxy keyword: a key of `[[service]]`, or `table.key` for `[service.table]`.
    Service,
}

/// How a pending keyword's value is written once it has a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueKind {
    /// A flag: `key = true`.
    Flag,
    /// An HAProxy time (bare numbers are milliseconds): written as `"2s"`, `"500ms"`.
    Duration,
    /// An HAProxy time whose bare numbers are seconds (`stats refresh`).
    Seconds,
    /// An integer.
    Int,
    /// The rest of the line as one string (`option httpchk HEAD /check.txt HTTP/1.0`).
    Text,
    /// One string per line, written as a list when the keyword repeats (`stats auth`).
    TextList,
}

/// An HAProxy keyword whose lb key does not exist yet, or just landed.
#[derive(Clone, Copy, Debug)]
pub struct Pending {
    /// The keyword as HAProxy spells it (`stats auth`, `option httpchk`, `inter`).
    pub haproxy: &'static str,
    /// Server or service keyword.
    pub scope: Scope,
    /// How its value is written.
    pub value: ValueKind,
    /// The lb key, once the runtime config has it; `None` lists the line as untranslated.
    pub lb: Option<&'static str>,
    /// Why it is untranslated while `lb` is `None`.
    pub why: &'static str,
}

const HEALTH_WHY: &str = "health checks translate to [[service.server]] check keys and \
                          [service.health]";
const STATS_WHY: &str = "stats lines translate to [service.http.stats]";

/// Keywords lb is growing keys for. When a key lands, set `lb: Some("key")` here and the
/// import writes it instead of listing the line (server keys go into
/// `[[service.server]]`, service keys into `[[service]]` or, as `table.key`, into
/// `[service.table]`).
pub const PENDING: &[Pending] = &[
    pend(
        "check",
        Scope::Server,
        ValueKind::Flag,
        Some("check"),
        HEALTH_WHY,
    ),
    pend(
        "inter",
        Scope::Server,
        ValueKind::Duration,
        Some("inter"),
        HEALTH_WHY,
    ),
    pend(
        "fastinter",
        Scope::Server,
        ValueKind::Duration,
        Some("fastinter"),
        HEALTH_WHY,
    ),
    pend(
        "downinter",
        Scope::Server,
        ValueKind::Duration,
        Some("downinter"),
        HEALTH_WHY,
    ),
    pend(
        "rise",
        Scope::Server,
        ValueKind::Int,
        Some("rise"),
        HEALTH_WHY,
    ),
    pend(
        "fall",
        Scope::Server,
        ValueKind::Int,
        Some("fall"),
        HEALTH_WHY,
    ),
    pend(
        "slowstart",
        Scope::Server,
        ValueKind::Duration,
        Some("slowstart"),
        HEALTH_WHY,
    ),
    pend(
        "observe",
        Scope::Server,
        ValueKind::Text,
        Some("observe"),
        HEALTH_WHY,
    ),
    pend(
        "error-limit",
        Scope::Server,
        ValueKind::Int,
        Some("error_limit"),
        HEALTH_WHY,
    ),
    pend(
        "on-error",
        Scope::Server,
        ValueKind::Text,
        Some("on_error"),
        HEALTH_WHY,
    ),
    pend(
        "option httpchk",
        Scope::Service,
        ValueKind::Text,
        Some("health.httpchk"),
        HEALTH_WHY,
    ),
    pend(
        "timeout check",
        Scope::Service,
        ValueKind::Duration,
        Some("health.timeout_check"),
        HEALTH_WHY,
    ),
    pend(
        "stats enable",
        Scope::Service,
        ValueKind::Flag,
        Some("http.stats.enable"),
        STATS_WHY,
    ),
    pend(
        "stats auth",
        Scope::Service,
        ValueKind::TextList,
        Some("http.stats.auth"),
        STATS_WHY,
    ),
    pend(
        "stats uri",
        Scope::Service,
        ValueKind::Text,
        Some("http.stats.uri"),
        STATS_WHY,
    ),
    pend(
        "stats refresh",
        Scope::Service,
        ValueKind::Seconds,
        Some("http.stats.refresh"),
        STATS_WHY,
    ),
    pend(
        "stats realm",
        Scope::Service,
        ValueKind::Text,
        Some("http.stats.realm"),
        STATS_WHY,
    ),
    pend(
        "stats admin",
        Scope::Service,
        ValueKind::Flag,
        Some("http.stats.admin"),
        STATS_WHY,
    ),
];

const fn pend(
    haproxy: &'static str,
    scope: Scope,
    value: ValueKind,
    lb: Option<&'static str>,
    why: &'static str,
) -> Pending {
    Pending {
        haproxy,
        scope,
        value,
        lb,
        why,
    }
}

/// The [`PENDING`] entry for an HAProxy keyword in a scope.
pub fn pending(haproxy: &str, scope: Scope) -> Option<&'static Pending> {
    PENDING
        .iter()
        .find(|p| p.scope == scope && p.haproxy == haproxy)
}

/// A value for a pending key that has landed, ready to write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PendingValue {
    /// `true`.
    Flag,
    /// A duration.
    Duration(Duration),
    /// An integer.
    Int(i64),
    /// A string.
    Text(String),
}

/// Address rewriting (`--map FROM=TO`): documentation or production addresses in the
/// source files become the addresses of the target network (tests use 198.18.0.x).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AddrMap(Vec<(IpAddr, IpAddr)>);

impl AddrMap {
    /// Parses `FROM=TO` arguments.
    pub fn parse<S: AsRef<str>>(args: &[S]) -> Result<AddrMap, ImportError> {
        let mut out = Vec::new();
        for a in args {
            let a = a.as_ref();
            let bad = || ImportError::BadMap(a.to_string());
            let (from, to) = a.split_once('=').ok_or_else(bad)?;
            let from: IpAddr = from.trim().parse().map_err(|_| bad())?;
            let to: IpAddr = to.trim().parse().map_err(|_| bad())?;
            if from.is_ipv4() != to.is_ipv4() {
                return Err(bad());
            }
            out.push((from, to));
        }
        Ok(AddrMap(out))
    }

    /// The address `a` maps to (itself when no mapping names it).
    pub fn apply(&self, a: IpAddr) -> IpAddr {
        self.0
            .iter()
            .find(|(from, _)| *from == a)
            .map_or(a, |(_, to)| *to)
    }
}

/// What to import.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// haproxy.cfg.
    pub haproxy: PathBuf,
    /// keepalived.conf, for `[[vrrp]]`.
    pub keepalived: Option<PathBuf>,
    /// wackamole.conf, for `[[vrrp]]`.
    pub wackamole: Option<PathBuf>,
    /// Interface for `[xdp]` and every `[[vrrp]]` (the target machine's name for it).
    pub interface: Option<String>,
    /// Address rewriting.
    pub map: AddrMap,
}

/// The result of an import.
#[derive(Debug)]
pub struct Imported {
    /// The lb config.
    pub toml: String,
    /// Lines that produced no TOML, or an assumption, in file order per file.
    pub notes: Vec<Note>,
    /// `lb check`'s verdict on [`Imported::toml`].
    pub check: Result<(), crate::config::ConfigError>,
}

fn read(path: &Path) -> Result<String, ImportError> {
    let bytes = std::fs::read(path).map_err(|source| ImportError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Reads the files, translates them and validates the result.
pub fn import(opts: &Options) -> Result<Imported, ImportError> {
    if let Some(i) = &opts.interface {
        if i.is_empty() || i.len() >= libc::IFNAMSIZ || i.contains('/') || i.contains(' ') {
            return Err(ImportError::BadInterface(i.clone()));
        }
    }
    let name = |p: &Path| p.display().to_string();
    let hap_text = read(&opts.haproxy)?;
    let hap = haproxy::parse(&name(&opts.haproxy), &hap_text);
    let mut notes = hap.notes.clone();
    let mut vrrp = Vec::new();
    let mut sources = vec![name(&opts.haproxy)];
    if let Some(p) = &opts.wackamole {
        let parsed = wackamole::parse(&name(p), &read(p)?);
        vrrp.extend(parsed.instances);
        notes.extend(parsed.notes);
        sources.push(name(p));
    }
    if let Some(p) = &opts.keepalived {
        let parsed = keepalived::parse(&name(p), &read(p)?);
        vrrp.extend(parsed.instances);
        notes.extend(parsed.notes);
        sources.push(name(p));
    }
    let out = emit::emit(&hap, &sources[0], &hap_text, vrrp, opts, &sources);
    notes.extend(out.notes);
    let check = crate::config::parse(Path::new("<lb import output>"), &out.toml).map(|_| ());
    Ok(Imported {
        toml: out.toml,
        notes,
        check,
    })
}

/// Formats a duration the way HAProxy and lb configs write it: the largest exact unit.
pub fn fmt_duration(d: Duration) -> String {
    let us = d.as_micros();
    if us == 0 {
        "0ms".into()
    } else if us.is_multiple_of(3_600_000_000) {
        format!("{}h", us / 3_600_000_000)
    } else if us.is_multiple_of(60_000_000) && us >= 600_000_000 {
        format!("{}m", us / 60_000_000)
    } else if us.is_multiple_of(1_000_000) {
        format!("{}s", us / 1_000_000)
    } else if us.is_multiple_of(1000) {
        format!("{}ms", us / 1000)
    } else {
        format!("{us}us")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_map() {
        let m = AddrMap::parse(&["192.168.0.99=198.18.0.99", " 2001:db8::1 = 2001:db8::2 "])
            .expect("valid");
        assert_eq!(
            m.apply("192.168.0.99".parse().expect("ip")),
            "198.18.0.99".parse::<IpAddr>().expect("ip")
        );
        assert_eq!(
            m.apply("192.168.0.98".parse().expect("ip")),
            "192.168.0.98".parse::<IpAddr>().expect("ip")
        );
        for bad in ["192.168.0.99", "a=b", "192.168.0.1=2001:db8::1", "=1.2.3.4"] {
            assert!(AddrMap::parse(&[bad]).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations_use_the_largest_exact_unit() {
        assert_eq!(fmt_duration(Duration::from_millis(5000)), "5s");
        assert_eq!(fmt_duration(Duration::from_millis(50_000)), "50s");
        assert_eq!(fmt_duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(fmt_duration(Duration::from_secs(1800)), "30m");
        assert_eq!(fmt_duration(Duration::from_secs(120)), "120s");
        assert_eq!(fmt_duration(Duration::from_secs(7200)), "2h");
        assert_eq!(fmt_duration(Duration::from_micros(250)), "250us");
    }

    #[test]
    fn stats_lines_translate_to_the_stats_table() {
        let dir = std::env::temp_dir().join(format!("lb-import-stats-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let cfg = dir.join("haproxy.cfg");
        std::fs::write(
            &cfg,
            "listen webfarm 198.18.0.99:80\n  mode http\n  stats enable\n  stats uri /admin?stats\n\
             \x20 stats auth someuser:somepassword\n  stats auth ops:p:w\n  stats refresh 10\n\
             \x20 stats realm Haproxy\\ Statistics\n  stats admin if TRUE\n\
             \x20 server webA 198.18.0.102:80\n",
        )
        .unwrap();
        let out = import(&Options {
            haproxy: cfg,
            keepalived: None,
            wackamole: None,
            interface: Some("eth0".into()),
            map: AddrMap::parse::<&str>(&[]).unwrap(),
        })
        .unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(out.check.is_ok(), "{:?}\n{}", out.check, out.toml);
        assert!(out.toml.contains("[service.http.stats]"), "{}", out.toml);
        assert!(
            out.toml
                .contains("auth = [\"someuser:somepassword\", \"ops:p:w\"]"),
            "{}",
            out.toml
        );
        assert!(out.notes.is_empty(), "{:#?}", out.notes);
        let c = crate::config::parse(Path::new("t.toml"), &out.toml).unwrap();
        let st = c.services[0]
            .http
            .as_ref()
            .and_then(|h| h.stats.clone())
            .unwrap();
        assert_eq!(st.uri, "/admin?stats");
        assert_eq!(st.users.len(), 2);
        assert_eq!(st.refresh, Some(Duration::from_secs(10)), "bare: seconds");
        assert_eq!(st.realm, "Haproxy Statistics");
        assert!(st.admin);
    }

    #[test]
    fn every_pending_keyword_is_listed_once_per_scope() {
        for (i, p) in PENDING.iter().enumerate() {
            assert!(
                PENDING[..i]
                    .iter()
                    .all(|q| q.haproxy != p.haproxy || q.scope != p.scope),
                "{} twice",
                p.haproxy
            );
        }
    }
}
