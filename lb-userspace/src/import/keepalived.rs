//! keepalived.conf `vrrp_instance` blocks -> `[[vrrp]]`. lb speaks VRRPv3 (RFC 5798),
//! so a node running the imported config can even take part in the same virtual router
//! as a keepalived node during a migration (with `vrrp_version 3` there).
//!
//! Everything else in the file (global_defs, vrrp_script, virtual_server, ...) and the
//! instance keywords lb has no counterpart for are listed with their lines.

use super::{blocks, emit::VrrpSpec, NoteKind, Notes};
use std::{net::IpAddr, time::Duration};

/// Why a value in a `vrrp_instance` was not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeepalivedError {
    /// A keyword without its value.
    #[error("`{0}` needs a value")]
    MissingValue(String),
    /// A value out of range or of the wrong form.
    #[error("`{keyword} {value}`: expected {expected}")]
    BadValue {
        /// The keyword.
        keyword: String,
        /// What was written.
        value: String,
        /// What would be right.
        expected: &'static str,
    },
}

/// The instances and the notes of one keepalived.conf.
#[derive(Debug, Default)]
pub struct Parsed {
    /// One per `vrrp_instance`.
    pub instances: Vec<VrrpSpec>,
    /// Everything not translated.
    pub notes: Vec<super::Note>,
}

fn value(words: &[String]) -> Result<&str, KeepalivedError> {
    let kw = words.first().map_or("", String::as_str);
    words
        .get(1)
        .map(String::as_str)
        .ok_or_else(|| KeepalivedError::MissingValue(kw.to_string()))
}

fn number<T: std::str::FromStr>(
    words: &[String],
    expected: &'static str,
    ok: impl Fn(&T) -> bool,
) -> Result<T, KeepalivedError> {
    let v = value(words)?;
    v.parse::<T>()
        .ok()
        .filter(|n| ok(n))
        .ok_or_else(|| KeepalivedError::BadValue {
            keyword: words[0].clone(),
            value: v.to_string(),
            expected,
        })
}

/// Seconds, possibly fractional (`advert_int 0.5`), as keepalived writes them.
fn seconds(words: &[String], max: f64) -> Result<Duration, KeepalivedError> {
    let s: f64 = number(words, "a number of seconds", |s: &f64| {
        s.is_finite() && *s >= 0.0 && *s <= max
    })?;
    Ok(Duration::from_millis((s * 1000.0).round() as u64))
}

/// Parses keepalived.conf text; `file` names it in notes.
pub fn parse(file: &str, text: &str) -> Parsed {
    let mut notes = Notes::new(file, text);
    let (stmts, errs) = blocks::parse(text, &['#', '!']);
    for (line, e) in errs {
        notes.add(line, NoteKind::Untranslated, e.to_string());
    }
    let mut instances = Vec::new();
    for s in &stmts {
        let kw = s.words.first().map_or("", String::as_str);
        if kw == "vrrp_instance" {
            if let Some(i) = instance(file, s, &mut notes) {
                instances.push(i);
            }
            continue;
        }
        let range = if s.end_line > s.line {
            format!(" (lines {}-{})", s.line, s.end_line)
        } else {
            String::new()
        };
        let why = match kw {
            "global_defs" => {
                "lb has no global VRRP settings: router id and notification mail are not used"
            }
            "vrrp_script" | "track_script" => "lb has no tracking scripts",
            "vrrp_sync_group" => {
                "lb has no sync groups: put VIPs that must move together in one instance"
            }
            "virtual_server" | "virtual_server_group" | "real_server" => {
                "keepalived's LVS part: write these as [[service]] entries"
            }
            _ => "not known to lb import",
        };
        notes.add(s.line, NoteKind::Untranslated, format!("{why}{range}"));
    }
    Parsed {
        instances,
        notes: notes.list,
    }
}

fn instance(file: &str, s: &blocks::Stmt, notes: &mut Notes) -> Option<VrrpSpec> {
    let Some(name) = s.words.get(1) else {
        notes.add(
            s.line,
            NoteKind::Untranslated,
            "vrrp_instance without a name: skipped",
        );
        return None;
    };
    let mut v = VrrpSpec {
        name: name.clone(),
        file: file.to_string(),
        line: s.line,
        ..VrrpSpec::default()
    };
    for st in s.block.iter().flatten() {
        let kw = st.words.first().map_or("", String::as_str);
        let w = &st.words;
        let r: Result<(), KeepalivedError> = (|| {
            match kw {
                "interface" => v.interface = value(w)?.to_string(),
                "virtual_router_id" => v.vrid = Some(number(w, "1-255", |n: &u8| *n > 0)?),
                "priority" => v.priority = Some(number(w, "1-255", |n: &u8| *n > 0)?),
                "advert_int" => v.advert = Some(seconds(w, 40.95)?),
                "nopreempt" => v.preempt = Some(false),
                "preempt" => v.preempt = Some(true),
                "preempt_delay" => v.preempt_delay = Some(seconds(w, 3600.0)?),
                "state" => notes.add(
                    st.line,
                    NoteKind::NotNeeded,
                    "lb starts every node as backup and lets the priorities elect the master",
                ),
                "unicast_peer" => {
                    for p in st.block.iter().flatten() {
                        match p.words.first().map(|a| a.parse::<IpAddr>()) {
                            Some(Ok(a)) => v.unicast_peers.push(a),
                            _ => notes.add(p.line, NoteKind::Untranslated, "not an IP address"),
                        }
                    }
                }
                "virtual_ipaddress" => {
                    for a in st.block.iter().flatten() {
                        vip(a, &mut v, notes);
                    }
                }
                "authentication" => notes.add(
                    st.line,
                    NoteKind::Untranslated,
                    format!(
                        "VRRPv3 (RFC 5798) has no authentication: protect the segment instead (lines {}-{})",
                        st.line, st.end_line
                    ),
                ),
                "garp_master_repeat" => {
                    v.garp_count = Some(number(w, "a count", |n: &u32| *n <= 100)?)
                }
                "notify" | "notify_master" | "notify_backup" | "notify_fault" | "notify_stop" => {
                    notes.add(
                        st.line,
                        NoteKind::Untranslated,
                        "lb runs one `notify` command (sh -c) on every transition with other arguments than keepalived: write it by hand",
                    )
                }
                other => notes.add(
                    st.line,
                    NoteKind::Untranslated,
                    format!("`{other}` is not supported by lb"),
                ),
            }
            Ok(())
        })();
        if let Err(e) = r {
            notes.add(st.line, NoteKind::Untranslated, e.to_string());
        }
    }
    if v.interface.is_empty() {
        notes.add(
            s.line,
            NoteKind::Assumed,
            "no `interface`: the import's interface is used",
        );
    }
    if v.vips.is_empty() {
        notes.add(
            s.line,
            NoteKind::Untranslated,
            "no virtual_ipaddress: instance skipped",
        );
        return None;
    }
    Some(v)
}

/// One `virtual_ipaddress` line: `ADDR[/LEN] [dev IF] [label L] ...`.
fn vip(a: &blocks::Stmt, v: &mut VrrpSpec, notes: &mut Notes) {
    let Some(first) = a.words.first() else { return };
    let (addr, len) = first.split_once('/').unwrap_or((first, ""));
    let parsed = addr.parse::<IpAddr>().ok().and_then(|ip| {
        let max = if ip.is_ipv4() { 32 } else { 128 };
        if len.is_empty() {
            Some((ip, max))
        } else {
            len.parse::<u8>()
                .ok()
                .filter(|&l| l <= max)
                .map(|l| (ip, l))
        }
    });
    let Some((ip, len)) = parsed else {
        notes.add(
            a.line,
            NoteKind::Untranslated,
            "not an address with an optional prefix length",
        );
        return;
    };
    if v.vips
        .first()
        .is_some_and(|(f, _)| f.is_ipv4() != ip.is_ipv4())
    {
        notes.add(
            a.line,
            NoteKind::Untranslated,
            "IPv4 and IPv6 VIPs need separate instances in lb: write a second [[vrrp]]",
        );
        return;
    }
    v.vips.push((ip, len));
    let rest = &a.words[1..];
    if let Some(i) = rest.iter().position(|w| w == "dev") {
        if let Some(dev) = rest.get(i + 1) {
            if !v.interface.is_empty() && dev != &v.interface {
                notes.add(
                    a.line,
                    NoteKind::Untranslated,
                    format!("lb adds VIPs to the instance's interface, not to {dev}"),
                );
            }
        }
    }
    let mut other = Vec::new();
    let mut words = rest.iter();
    while let Some(w) = words.next() {
        if w == "dev" {
            words.next();
        } else {
            other.push(w.as_str());
        }
    }
    if !other.is_empty() {
        notes.add(
            a.line,
            NoteKind::NotNeeded,
            format!(
                "`{}`: lb adds the address with its prefix only",
                other.join(" ")
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONF: &str = "\
! Configuration File for keepalived
global_defs {
   router_id LB1
}
vrrp_script chk { script \"pidof lb\" }
vrrp_instance VI_1 {
    state MASTER
    interface eth0
    virtual_router_id 51
    priority 150
    advert_int 0.1
    nopreempt
    preempt_delay 5
    authentication {
        auth_type PASS
        auth_pass secret
    }
    unicast_peer {
        192.168.0.101
    }
    virtual_ipaddress {
        192.168.0.99/24 dev eth0 label eth0:1
        192.168.0.98
        2001:db8::1/64
    }
    track_script { chk }
    priority 300
}
";

    #[test]
    fn instance_translates_and_lists_the_rest() {
        let p = parse("keepalived.conf", CONF);
        assert_eq!(p.instances.len(), 1);
        let v = &p.instances[0];
        assert_eq!((v.name.as_str(), v.interface.as_str()), ("VI_1", "eth0"));
        assert_eq!(
            (v.vrid, v.priority, v.preempt),
            (Some(51), Some(150), Some(false))
        );
        assert_eq!(v.advert, Some(Duration::from_millis(100)));
        assert_eq!(v.preempt_delay, Some(Duration::from_secs(5)));
        assert_eq!(
            v.unicast_peers,
            ["192.168.0.101".parse::<IpAddr>().expect("ip")]
        );
        assert_eq!(v.vips.len(), 2);
        assert_eq!(v.vips[1].1, 32);
        let lines: Vec<usize> = p.notes.iter().map(|n| n.line).collect();
        assert_eq!(lines, [2, 5, 7, 14, 22, 24, 26, 27], "{:#?}", p.notes);
        assert!(p.notes[2]
            .to_string()
            .starts_with("keepalived.conf:7: not needed: `state MASTER`"));
        assert!(p.notes[7].reason.contains("1-255"), "{}", p.notes[7]);
    }

    #[test]
    fn broken_files_never_panic() {
        for text in [
            "vrrp_instance {",
            "}}}",
            "vrrp_instance x { virtual_ipaddress { / } }",
            "vrrp_instance x { advert_int NaN priority }",
        ] {
            let _ = parse("k.conf", text);
        }
    }
}
