//! What a start finds in the instance's pin directory from an earlier run: maps (reused
//! when their layout matches this build's object, replaced otherwise) and the XDP link an
//! `lb` stopped for upgrade left attached (taken over by the next start, see
//! docs/upgrade.md).

use crate::config::AttachMode;
use aya::maps::MapInfo;
use lb_common::maps as names;
use std::{
    fmt,
    path::{Path, PathBuf},
};

/// File name prefix of a pinned XDP link in the pin directory.
pub const LINK_PREFIX: &str = "xdp_link-";

/// The pin of the XDP link on `interface` in `mode`: `xdp_link-<mode>-<interface>`. The
/// mode is part of the name because a link cannot change mode: a start with another mode
/// must replace the link, not take it over. bpffs reserves names with a dot (EPERM), so
/// a dot of a VLAN interface name (`eth0.100`) is written as `:`.
pub fn link_pin(pin_dir: &Path, interface: &str, mode: AttachMode) -> PathBuf {
    pin_dir.join(format!(
        "{LINK_PREFIX}{}-{}",
        mode.as_str(),
        interface.replace('.', ":")
    ))
}

/// Pinned XDP links in `pin_dir` other than `keep` (another interface or mode).
pub fn other_links(pin_dir: &Path, keep: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(pin_dir) else {
        return Vec::new();
    };
    rd.filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(LINK_PREFIX))
                && p != keep
        })
        .collect()
}

/// The shape of a map: what must match for a pinned map to be used by a program built
/// against another definition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// `bpf_map_type`.
    pub map_type: u32,
    /// Key size in bytes.
    pub key_size: u32,
    /// Value size in bytes.
    pub value_size: u32,
    /// Capacity (not compared for the conntrack tables, whose size is a setting).
    pub max_entries: u32,
    /// Creation flags.
    pub flags: u32,
}

impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "type {} key {} B value {} B entries {} flags {:#x}",
            self.map_type, self.key_size, self.value_size, self.max_entries, self.flags
        )
    }
}

/// A pinned map whose layout is not the one this build's object defines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mismatch {
    /// Map name.
    pub name: String,
    /// What is pinned.
    pub pinned: Layout,
    /// What the object wants.
    pub object: Layout,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: pinned {}, this build {}",
            self.name, self.pinned, self.object
        )
    }
}

/// Whether a pinned map of `name` with layout `pinned` can serve a program that defines
/// it as `object`.
pub fn compatible(name: &str, pinned: &Layout, object: &Layout) -> bool {
    let sized_by_config = name == names::CONNTRACK || name == names::CONNTRACK4;
    pinned.map_type == object.map_type
        && pinned.key_size == object.key_size
        && pinned.value_size == object.value_size
        && pinned.flags == object.flags
        && (sized_by_config || pinned.max_entries == object.max_entries)
}

/// The maps pinned in `pin_dir` whose layout differs from `object`'s definitions (an
/// earlier build with other key/value types or sizes). An object that does not parse is
/// left for the loader to report.
pub fn mismatches(object: &[u8], pin_dir: &Path) -> Vec<Mismatch> {
    let Ok(obj) = aya_obj::Object::parse(object) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for &name in names::ALL {
        let path = pin_dir.join(name);
        if !path.exists() {
            continue;
        }
        let Some(def) = obj.maps.get(name) else {
            continue;
        };
        let want = Layout {
            map_type: def.map_type(),
            key_size: def.key_size(),
            value_size: def.value_size(),
            max_entries: def.max_entries(),
            flags: def.map_flags(),
        };
        let have = match MapInfo::from_pin(&path) {
            Ok(info) => Layout {
                map_type: info.map_type().map_or(u32::MAX, |t| t as u32),
                key_size: info.key_size(),
                value_size: info.value_size(),
                max_entries: info.max_entries(),
                flags: info.map_flags(),
            },
            // Not a map any more (or unreadable): it cannot be reused either.
            Err(_) => Layout {
                map_type: u32::MAX,
                key_size: 0,
                value_size: 0,
                max_entries: 0,
                flags: 0,
            },
        };
        if !compatible(name, &have, &want) {
            out.push(Mismatch {
                name: name.to_string(),
                pinned: have,
                object: want,
            });
        }
    }
    out
}

/// Removes every map pin of the instance (not the pinned link), so the next load creates
/// them afresh. A program still attached keeps its own references until it is replaced.
pub fn remove_maps(pin_dir: &Path) -> std::io::Result<()> {
    for &name in names::ALL {
        match std::fs::remove_file(pin_dir.join(name)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const L: Layout = Layout {
        map_type: 1,
        key_size: 8,
        value_size: 16,
        max_entries: 512,
        flags: 0,
    };

    #[test]
    fn layouts_must_match_except_conntrack_size() {
        assert!(compatible(names::VIPS, &L, &L));
        for other in [
            Layout {
                value_size: 24,
                ..L
            },
            Layout { key_size: 4, ..L },
            Layout { map_type: 2, ..L },
            Layout { flags: 2, ..L },
            Layout {
                max_entries: 1024,
                ..L
            },
        ] {
            assert!(!compatible(names::VIPS, &other, &L), "{other}");
        }
        let bigger = Layout {
            max_entries: 1 << 20,
            ..L
        };
        assert!(compatible(names::CONNTRACK, &bigger, &L));
        assert!(!compatible(
            names::CONNTRACK,
            &Layout { value_size: 8, ..L },
            &L
        ));
    }

    #[test]
    fn link_pins_name_interface_and_mode() {
        let dir = Path::new("/sys/fs/bpf/lb/x");
        assert_eq!(
            link_pin(dir, "eth0", AttachMode::Generic),
            dir.join("xdp_link-generic-eth0")
        );
        let vlan = link_pin(dir, "eth0.100", AttachMode::Native);
        assert_eq!(vlan, dir.join("xdp_link-native-eth0:100"));
        assert!(!vlan.file_name().unwrap().to_str().unwrap().contains('.'));
    }
}
