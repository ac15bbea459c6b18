//! wackamole.conf -> `[[vrrp]]`. Wackamole moves "virtual interfaces" (groups of
//! addresses) between the nodes of a Spread group; lb moves VIPs with VRRPv3. Each
//! `VirtualInterfaces` entry becomes one VRRP instance; the Spread plumbing has no
//! counterpart and is listed as not needed.
//!
//! Wackamole has no priorities: the emitted instance gets the default priority and a
//! comment saying the nodes need different ones. `Prefer None` ("no node is preferred")
//! means a VIP stays where it is when a node comes back, which is VRRP without preemption.

use super::{blocks, emit::VrrpSpec, NoteKind, Notes};
use std::net::IpAddr;

/// Why a `VirtualInterfaces` entry was not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VifError {
    /// Not `interface:address/prefix`.
    #[error("{0:?} is not interface:address/prefix (e.g. eth0:192.168.0.99/24)")]
    Syntax(String),
}

/// The instances and the notes of one wackamole.conf.
#[derive(Debug, Default)]
pub struct Parsed {
    /// One per virtual interface.
    pub instances: Vec<VrrpSpec>,
    /// Everything not translated.
    pub notes: Vec<super::Note>,
}

/// Parses `eth0:192.168.0.99/24`.
pub fn parse_vif(s: &str) -> Result<(String, IpAddr, u8), VifError> {
    let bad = || VifError::Syntax(s.to_string());
    let (ifname, rest) = s.split_once(':').ok_or_else(bad)?;
    let (addr, len) = rest.split_once('/').unwrap_or((rest, ""));
    let addr: IpAddr = addr.parse().map_err(|_| bad())?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let len = if len.is_empty() {
        max
    } else {
        len.parse::<u8>()
            .ok()
            .filter(|&l| l <= max)
            .ok_or_else(bad)?
    };
    if ifname.is_empty() {
        return Err(bad());
    }
    Ok((ifname.to_string(), addr, len))
}

/// Parses wackamole.conf text; `file` names it in notes.
pub fn parse(file: &str, text: &str) -> Parsed {
    let mut notes = Notes::new(file, text);
    let (stmts, errs) = blocks::parse(text, &['#']);
    for (line, e) in errs {
        notes.add(line, NoteKind::Untranslated, e.to_string());
    }
    let mut prefer_none = None;
    let mut instances = Vec::new();
    for s in &stmts {
        let key = s
            .words
            .first()
            .map(|w| w.to_ascii_lowercase())
            .unwrap_or_default();
        let range = if s.end_line > s.line {
            format!(" (lines {}-{})", s.line, s.end_line)
        } else {
            String::new()
        };
        match key.as_str() {
            "virtualinterfaces" => {
                for entry in s.block.iter().flatten() {
                    // `eth0:a/24` alone, or `{ eth0:a/24 eth0:b/24 }`: one group moves together.
                    let words: Vec<&String> = entry
                        .words
                        .iter()
                        .chain(entry.block.iter().flatten().flat_map(|i| i.words.iter()))
                        .collect();
                    let mut spec = VrrpSpec {
                        line: entry.line,
                        file: file.to_string(),
                        ..VrrpSpec::default()
                    };
                    for w in words {
                        match parse_vif(w) {
                            Ok((ifname, addr, len)) => {
                                if spec.interface.is_empty() {
                                    spec.interface = ifname;
                                } else if spec.interface != ifname {
                                    notes.add(
                                        entry.line,
                                        NoteKind::Assumed,
                                        format!("{w}: one VRRP instance runs on one interface; {} is used", spec.interface),
                                    );
                                }
                                spec.vips.push((addr, len));
                            }
                            Err(e) => notes.add(entry.line, NoteKind::Untranslated, e.to_string()),
                        }
                    }
                    if !spec.vips.is_empty() {
                        spec.name = format!("vif{}", instances.len() + 1);
                        instances.push(spec);
                    }
                }
                if s.block.is_none() {
                    notes.add(s.line, NoteKind::Untranslated, "VirtualInterfaces without a { } block");
                }
            }
            "prefer" => match s.words.get(1).map(|w| w.to_ascii_lowercase()).as_deref() {
                Some("none") => {
                    prefer_none = Some(s.line);
                    notes.add(
                        s.line,
                        NoteKind::Assumed,
                        "no preferred node: a VIP stays where it is when a node returns, which is VRRP without preemption: preempt = false",
                    );
                }
                _ => notes.add(
                    s.line,
                    NoteKind::Untranslated,
                    "to prefer a node, give it the higher VRRP priority on that node (preempt stays on)",
                ),
            },
            "spread" | "spreadretryinterval" | "group" | "control" => notes.add(
                s.line,
                NoteKind::NotNeeded,
                "lb's nodes talk VRRPv3 to each other: no Spread daemon, group or control socket",
            ),
            "arp-cache" => notes.add(
                s.line,
                NoteKind::NotNeeded,
                "lb announces a taken-over VIP with gratuitous ARP / unsolicited NA (garp_count) instead of sharing ARP caches",
            ),
            "notify" => notes.add(
                s.line,
                NoteKind::NotNeeded,
                format!("lb sends gratuitous ARPs to the whole segment on takeover (garp_count, garp_refresh){range}"),
            ),
            "balance" => notes.add(
                s.line,
                NoteKind::NotNeeded,
                format!("VRRP elects one master per instance: there is nothing to balance{range}"),
            ),
            "mature" => notes.add(
                s.line,
                NoteKind::NotNeeded,
                "a starting lb node waits for the master-down interval before claiming a VIP",
            ),
            "" => notes.add(s.line, NoteKind::Untranslated, format!("a block without a name{range}")),
            other => notes.add(
                s.line,
                NoteKind::Untranslated,
                format!("`{other}` is not known to lb import{range}"),
            ),
        }
    }
    if let Some(line) = prefer_none {
        for i in &mut instances {
            i.preempt = Some(false);
            i.comments.push(format!(
                "wackamole `Prefer None` (line {line}): a returning node does not take the VIP back"
            ));
        }
    }
    Parsed {
        instances,
        notes: notes.list,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: &str = include_str!("testdata/wackamole.conf");

    #[test]
    fn seed() {
        let p = parse("wackamole.conf", SEED);
        assert_eq!(p.instances.len(), 1);
        let v = &p.instances[0];
        assert_eq!(v.interface, "eth0");
        assert_eq!(v.vips, [("192.168.0.99".parse().expect("ip"), 24)]);
        assert_eq!(v.preempt, Some(false));
        assert_eq!(v.line, 9);
        let lines: Vec<usize> = p.notes.iter().map(|n| n.line).collect();
        // Spread, SpreadRetryInterval, Group, Control, Prefer, Arp-Cache, Notify, balance, mature.
        assert_eq!(lines, [1, 2, 3, 4, 6, 12, 14, 19, 23], "{:#?}", p.notes);
        assert!(p.notes[6].reason.contains("lines 14-18"), "{}", p.notes[6]);
    }

    #[test]
    fn groups_and_errors() {
        let text = "VirtualInterfaces {\n { eth1:10.0.0.1/24 eth1:10.0.0.2/24 }\n eth0:2001:db8::9/64\n bogus\n}\nPrefer 10.0.0.1\n";
        let p = parse("w.conf", text);
        assert_eq!(p.instances.len(), 2);
        assert_eq!(p.instances[0].vips.len(), 2);
        assert_eq!(p.instances[1].vips[0].1, 64);
        assert_eq!(p.instances[1].preempt, None);
        let lines: Vec<usize> = p.notes.iter().map(|n| n.line).collect();
        assert_eq!(lines, [4, 6]);
    }
}
