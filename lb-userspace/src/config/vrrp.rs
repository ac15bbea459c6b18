//! `[[vrrp]]`: the virtual routers this node takes part in (see [`crate::vrrp`]).
//!
//! ```toml
//! [[vrrp]]
//! name = "web"                 # unique; names the instance in logs, status and notify
//! interface = "eth0"
//! vrid = 51                    # 1-255, same on every node of the virtual router
//! priority = 150               # 1-255 (255 = address owner), default 100
//! advert_interval = "100ms"    # 10ms-40.95s, centisecond steps, default 1s
//! preempt = true               # default true
//! preempt_delay = "0s"         # default 0
//! vips = ["198.18.0.99/24"]    # all of one family; the family of the virtual router
//! unicast_peers = []           # if set: adverts go to and are accepted only from these
//! notify = "logger vrrp"       # run via /bin/sh -c on each transition (optional)
//! garp_count = 5               # GARPs / NAs sent on takeover, default 5
//! garp_refresh = "0s"          # repeat them while master; 0 (default) = never
//! track_interface = [{ interface = "eth1", weight = -50 }]  # down: priority - 50
//! track_service = [{ service = "web", weight = 0 }]         # all DOWN: FAULT
//! auth_key = "a shared secret of 16+ bytes"                 # HMAC mode (lb-only)
//! ```

use super::ConfigError;
use serde::Deserialize;
use std::{collections::HashSet, net::IpAddr, path::Path, time::Duration};
use toml::Spanned;

/// Default priority of a non-owner (RFC 5798 6.1).
pub const DEFAULT_PRIORITY: u8 = 100;
/// Default advertisement interval (RFC 5798 6.1: 100 centiseconds).
pub const DEFAULT_ADVERT_INTERVAL: Duration = Duration::from_secs(1);
/// Shortest advertisement interval the wire format carries (1 centisecond).
pub const MIN_ADVERT_INTERVAL: Duration = Duration::from_millis(10);
/// Longest advertisement interval the 12-bit field carries (4095 centiseconds).
pub const MAX_ADVERT_INTERVAL: Duration = Duration::from_millis(40_950);
/// Default number of gratuitous ARPs / unsolicited NAs sent on becoming master.
pub const DEFAULT_GARP_COUNT: u32 = 5;
/// Most GARPs a burst may have: a burst is meant to beat packet loss, not to flood.
pub const MAX_GARP_COUNT: u32 = 100;

/// One `[[vrrp]]` table as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawVrrp {
    /// Unique instance name.
    pub name: Spanned<String>,
    /// Interface the adverts go out on and the VIPs are added to.
    pub interface: Spanned<String>,
    /// Virtual router id, 1-255.
    pub vrid: Spanned<i64>,
    /// Priority, 1-255; default [`DEFAULT_PRIORITY`].
    pub priority: Option<Spanned<i64>>,
    /// Advert interval, e.g. `"100ms"`; default [`DEFAULT_ADVERT_INTERVAL`].
    pub advert_interval: Option<Spanned<String>>,
    /// Preempt a lower-priority master; default true.
    pub preempt: Option<bool>,
    /// Wait this long before preempting; default 0.
    pub preempt_delay: Option<Spanned<String>>,
    /// Virtual addresses with prefix length.
    pub vips: Spanned<Vec<Spanned<String>>>,
    /// Unicast peers (instead of multicast).
    #[serde(default)]
    pub unicast_peers: Vec<Spanned<String>>,
    /// Shell command run on each transition.
    pub notify: Option<String>,
    /// GARPs / NAs per takeover; default [`DEFAULT_GARP_COUNT`].
    pub garp_count: Option<Spanned<i64>>,
    /// Interval of repeated GARPs while master; default off.
    pub garp_refresh: Option<Spanned<String>>,
    /// Interfaces whose loss lowers the priority (keepalived's `track_interface`).
    #[serde(default)]
    pub track_interface: Vec<Spanned<RawTrackInterface>>,
    /// Services whose loss of every server lowers the priority (like `track_script`).
    #[serde(default)]
    pub track_service: Vec<Spanned<RawTrackService>>,
    /// Shared key: adverts are authenticated (HMAC-SHA256) and replay-protected.
    pub auth_key: Option<Spanned<String>>,
}

/// One `track_interface` entry as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTrackInterface {
    /// Interface name.
    pub interface: Spanned<String>,
    /// keepalived's weight: negative lowers the priority by that much; 0 (default) = FAULT.
    pub weight: Option<Spanned<i64>>,
}

/// One `track_service` entry as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTrackService {
    /// Service name (a `[[service]]` of this config).
    pub service: Spanned<String>,
    /// keepalived's weight: negative lowers the priority by that much; 0 (default) = FAULT.
    pub weight: Option<Spanned<i64>>,
}

/// Shortest accepted `auth_key`, in bytes: shorter shared secrets are guessable.
pub const MIN_AUTH_KEY_LEN: usize = 16;

/// What a tracked object's failure does to the instance (keepalived's weight semantics).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrackEffect {
    /// Weight 0: the instance goes to FAULT (releases the VIPs, stops advertising).
    Fault,
    /// Negative weight: the advertised priority drops by this much (1-254).
    Lower(u8),
}

/// What is tracked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TrackTarget {
    /// An interface: failed while it is not up with carrier.
    Interface(String),
    /// A service: failed while none of its servers can take new sessions (all DOWN,
    /// in maintenance, drained or weight 0): HAProxy's "no server available".
    Service(String),
}

/// One tracked object and what its failure does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Track {
    /// The object.
    pub target: TrackTarget,
    /// The effect of its failure.
    pub effect: TrackEffect,
}

/// The shared key of authenticated mode; `Debug` does not print it.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthKey(pub Vec<u8>);

impl std::fmt::Debug for AuthKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AuthKey(<{} bytes>)", self.0.len())
    }
}

/// A virtual address and its prefix length, as added to the interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct VipAddr {
    /// The address.
    pub addr: IpAddr,
    /// Prefix length (0-32 or 0-128).
    pub prefix_len: u8,
}

impl std::fmt::Display for VipAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

/// A validated virtual router instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VrrpConfig {
    /// Unique name.
    pub name: String,
    /// Interface name.
    pub interface: String,
    /// Virtual router id.
    pub vrid: u8,
    /// Priority (255 = owner).
    pub priority: u8,
    /// Advert interval, a whole number of centiseconds.
    pub advert_interval: Duration,
    /// Whether to preempt a lower-priority master.
    pub preempt: bool,
    /// Delay before preempting.
    pub preempt_delay: Duration,
    /// Virtual addresses, all of one family.
    pub vips: Vec<VipAddr>,
    /// Unicast peers; empty = multicast.
    pub unicast_peers: Vec<IpAddr>,
    /// Notify command.
    pub notify: Option<String>,
    /// GARPs / NAs per takeover.
    pub garp_count: u32,
    /// Repeat interval of GARPs / NAs while master; `None` = never.
    pub garp_refresh: Option<Duration>,
    /// Tracked interfaces and services.
    pub tracks: Vec<Track>,
    /// Authenticated mode's key; `None` = plain RFC 5798 adverts (keepalived interop).
    pub auth_key: Option<AuthKey>,
}

impl VrrpConfig {
    /// Whether this virtual router is an IPv6 one (its VIPs are IPv6).
    pub fn is_ipv6(&self) -> bool {
        self.vips.first().is_some_and(|v| v.addr.is_ipv6())
    }

    /// Whether `other` differs only in what a running instance can adopt in place
    /// (priority, timers, preempt, notify, GARP settings, tracking, key): the same
    /// interface, VRID, VIPs and peers.
    pub fn same_router(&self, other: &VrrpConfig) -> bool {
        self.name == other.name
            && self.interface == other.interface
            && self.vrid == other.vrid
            && self.vips == other.vips
            && self.unicast_peers == other.unicast_peers
    }

    /// The advert interval in centiseconds, as the wire carries it.
    pub fn interval_cs(&self) -> u16 {
        (self.advert_interval.as_millis() / 10).min(u128::from(u16::MAX)) as u16
    }
}

/// Parses `"100ms"`, `"1s"`, `"1.5s"`, `"2m"`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let (num, unit_ms) = if let Some(n) = s.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1000.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60_000.0)
    } else {
        (s, 1000.0)
    };
    let v: f64 = num.trim().parse().ok()?;
    if !v.is_finite() || v < 0.0 || v * unit_ms > 1e12 {
        return None;
    }
    Some(Duration::from_micros((v * unit_ms * 1000.0).round() as u64))
}

/// Validates every `[[vrrp]]` table; errors point at the offending value.
/// `services` are the config's service names, for `track_service`.
pub fn validate(
    path: &Path,
    text: &str,
    raw: Vec<Spanned<RawVrrp>>,
    services: &[&str],
) -> Result<Vec<VrrpConfig>, ConfigError> {
    let err = |at: usize, key: String, msg: String| ConfigError::invalid(path, text, at, key, msg);
    let mut out = Vec::with_capacity(raw.len());
    let mut names = HashSet::new();
    let mut routers = HashSet::new();
    for (i, r) in raw.into_iter().enumerate() {
        let at = r.span().start;
        let r = r.into_inner();
        let key = |k: &str| format!("vrrp[{i}].{k}");

        let name = r.name.get_ref().clone();
        if name.is_empty() || name.len() > 64 || name.chars().any(|c| c.is_whitespace() || c == '/')
        {
            return Err(err(
                r.name.span().start,
                key("name"),
                format!("{name:?} is not a valid name (1-64 characters, no spaces or '/')"),
            ));
        }
        if !names.insert(name.clone()) {
            return Err(err(
                r.name.span().start,
                key("name"),
                format!("duplicate vrrp instance name {name:?}"),
            ));
        }
        let interface = r.interface.get_ref().clone();
        if interface.is_empty() || interface.len() >= libc::IFNAMSIZ || interface.contains('/') {
            return Err(err(
                r.interface.span().start,
                key("interface"),
                format!("{interface:?} is not a valid interface name"),
            ));
        }
        let vrid = *r.vrid.get_ref();
        let vrid = u8::try_from(vrid).ok().filter(|&v| v != 0).ok_or_else(|| {
            err(
                r.vrid.span().start,
                key("vrid"),
                format!("{vrid} is not a virtual router id (1-255)"),
            )
        })?;
        let priority = match &r.priority {
            None => DEFAULT_PRIORITY,
            Some(p) => {
                let v = *p.get_ref();
                u8::try_from(v).ok().filter(|&v| v != 0).ok_or_else(|| {
                    err(
                        p.span().start,
                        key("priority"),
                        format!("{v} is not a priority (1-255; 255 = address owner)"),
                    )
                })?
            }
        };
        let duration = |v: &Spanned<String>, k: &str| {
            parse_duration(v.get_ref()).ok_or_else(|| {
                err(
                    v.span().start,
                    key(k),
                    format!(
                        "{:?} is not a duration (e.g. \"100ms\", \"1s\")",
                        v.get_ref()
                    ),
                )
            })
        };
        let advert_interval = match &r.advert_interval {
            None => DEFAULT_ADVERT_INTERVAL,
            Some(v) => {
                let d = duration(v, "advert_interval")?;
                if d < MIN_ADVERT_INTERVAL || d > MAX_ADVERT_INTERVAL || d.as_micros() % 10_000 != 0
                {
                    return Err(err(
                        v.span().start,
                        key("advert_interval"),
                        format!("{:?}: the advert interval is sent in centiseconds: 10ms to 40950ms in steps of 10ms", v.get_ref()),
                    ));
                }
                d
            }
        };
        let preempt_delay = match &r.preempt_delay {
            None => Duration::ZERO,
            Some(v) => {
                let d = duration(v, "preempt_delay")?;
                if d > Duration::from_secs(3600) {
                    return Err(err(
                        v.span().start,
                        key("preempt_delay"),
                        "at most 1 hour".into(),
                    ));
                }
                d
            }
        };
        let garp_refresh = match &r.garp_refresh {
            None => None,
            Some(v) => {
                let d = duration(v, "garp_refresh")?;
                if !d.is_zero() && d < Duration::from_millis(100) {
                    return Err(err(
                        v.span().start,
                        key("garp_refresh"),
                        "0 (off) or at least 100ms".into(),
                    ));
                }
                (!d.is_zero()).then_some(d)
            }
        };
        let garp_count = match &r.garp_count {
            None => DEFAULT_GARP_COUNT,
            Some(v) => {
                let n = *v.get_ref();
                u32::try_from(n)
                    .ok()
                    .filter(|&n| n <= MAX_GARP_COUNT)
                    .ok_or_else(|| {
                        err(
                            v.span().start,
                            key("garp_count"),
                            format!("{n}: expected 0-{MAX_GARP_COUNT}"),
                        )
                    })?
            }
        };

        let vips_at = r.vips.span().start;
        let mut vips = Vec::new();
        for v in r.vips.into_inner() {
            let vip = parse_vip(v.get_ref()).ok_or_else(|| {
                err(
                    v.span().start,
                    key("vips"),
                    format!(
                        "{:?} is not an address with prefix length (e.g. \"198.18.0.99/24\")",
                        v.get_ref()
                    ),
                )
            })?;
            if vips
                .first()
                .is_some_and(|f: &VipAddr| f.addr.is_ipv6() != vip.addr.is_ipv6())
            {
                return Err(err(v.span().start, key("vips"), "IPv4 and IPv6 VIPs need separate [[vrrp]] instances (RFC 5798 runs one virtual router per family)".into()));
            }
            if vips.iter().any(|o: &VipAddr| o.addr == vip.addr) {
                return Err(err(
                    v.span().start,
                    key("vips"),
                    format!("duplicate VIP {}", vip.addr),
                ));
            }
            vips.push(vip);
        }
        if vips.is_empty() {
            return Err(err(
                vips_at,
                key("vips"),
                "at least one VIP is needed".into(),
            ));
        }
        if vips.len() > crate::vrrp::packet::MAX_ADDRS {
            return Err(err(
                vips_at,
                key("vips"),
                "at most 255 VIPs per instance".into(),
            ));
        }
        let v6 = vips[0].addr.is_ipv6();
        let mut unicast_peers = Vec::new();
        for p in &r.unicast_peers {
            let a: IpAddr = p.get_ref().parse().map_err(|_| {
                err(
                    p.span().start,
                    key("unicast_peers"),
                    format!("{:?} is not an IP address", p.get_ref()),
                )
            })?;
            if a.is_ipv6() != v6 {
                return Err(err(
                    p.span().start,
                    key("unicast_peers"),
                    format!("peer {a} is not of the VIPs' address family"),
                ));
            }
            unicast_peers.push(a);
        }
        if !routers.insert((interface.clone(), vrid, v6)) {
            return Err(err(
                at,
                key("vrid"),
                format!(
                    "another instance already runs VRID {vrid} ({}) on {interface}",
                    if v6 { "IPv6" } else { "IPv4" }
                ),
            ));
        }
        let weight = |w: &Option<Spanned<i64>>, k: &str| -> Result<TrackEffect, ConfigError> {
            let Some(w) = w else {
                return Ok(TrackEffect::Fault);
            };
            let v = *w.get_ref();
            match v {
                0 => Ok(TrackEffect::Fault),
                -254..=-1 => {
                    if priority == 255 {
                        return Err(err(
                            w.span().start,
                            key(k),
                            "the address owner (priority 255) cannot lower its priority; use weight = 0 (FAULT)".into(),
                        ));
                    }
                    Ok(TrackEffect::Lower(v.unsigned_abs() as u8))
                }
                _ => Err(err(
                    w.span().start,
                    key(k),
                    format!("weight {v}: expected -254 to -1 (lower the priority by that much) or 0 (FAULT)"),
                )),
            }
        };
        let mut tracks = Vec::new();
        for t in &r.track_interface {
            let t = t.get_ref();
            let name = t.interface.get_ref();
            if name.is_empty() || name.len() >= libc::IFNAMSIZ || name.contains('/') {
                return Err(err(
                    t.interface.span().start,
                    key("track_interface"),
                    format!("{name:?} is not a valid interface name"),
                ));
            }
            tracks.push(Track {
                target: TrackTarget::Interface(name.clone()),
                effect: weight(&t.weight, "track_interface.weight")?,
            });
        }
        for t in &r.track_service {
            let t = t.get_ref();
            let name = t.service.get_ref();
            if !services.contains(&name.as_str()) {
                return Err(err(
                    t.service.span().start,
                    key("track_service"),
                    format!("no [[service]] is named {name:?}"),
                ));
            }
            tracks.push(Track {
                target: TrackTarget::Service(name.clone()),
                effect: weight(&t.weight, "track_service.weight")?,
            });
        }
        let auth_key = match &r.auth_key {
            None => None,
            Some(k) if k.get_ref().len() < MIN_AUTH_KEY_LEN => {
                return Err(err(
                    k.span().start,
                    key("auth_key"),
                    format!("the key must have at least {MIN_AUTH_KEY_LEN} bytes"),
                ))
            }
            Some(k) => Some(AuthKey(k.get_ref().as_bytes().to_vec())),
        };
        out.push(VrrpConfig {
            name,
            interface,
            vrid,
            priority,
            advert_interval,
            preempt: r.preempt.unwrap_or(true),
            preempt_delay,
            vips,
            unicast_peers,
            notify: r.notify.filter(|n| !n.trim().is_empty()),
            garp_count,
            garp_refresh,
            tracks,
            auth_key,
        });
    }
    Ok(out)
}

/// Parses `addr/len`; a bare address gets the host prefix (/32 or /128).
fn parse_vip(s: &str) -> Option<VipAddr> {
    let (a, len) = match s.split_once('/') {
        Some((a, l)) => (a, Some(l.parse::<u8>().ok()?)),
        None => (s, None),
    };
    let addr: IpAddr = a.parse().ok()?;
    let max = if addr.is_ipv6() { 128 } else { 32 };
    let prefix_len = len.unwrap_or(max);
    if prefix_len > max || addr.is_unspecified() || addr.is_multicast() || addr.is_loopback() {
        return None;
    }
    Some(VipAddr { addr, prefix_len })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Doc {
        vrrp: Vec<Spanned<RawVrrp>>,
    }

    fn run(text: &str) -> Result<Vec<VrrpConfig>, ConfigError> {
        let doc: Doc = toml::from_str(text).expect("test TOML parses");
        validate(Path::new("lb.toml"), text, doc.vrrp, &["web"])
    }

    fn message(text: &str) -> String {
        run(text).unwrap_err().to_string()
    }

    #[test]
    fn defaults_and_full_instance() {
        let c = run("[[vrrp]]\nname = \"a\"\ninterface = \"eth0\"\nvrid = 51\nvips = [\"198.18.0.99/24\"]\n")
            .unwrap();
        assert_eq!(c[0].priority, 100);
        assert_eq!(c[0].advert_interval, Duration::from_secs(1));
        assert!(c[0].preempt);
        assert_eq!(c[0].garp_count, DEFAULT_GARP_COUNT);
        assert_eq!(c[0].garp_refresh, None);
        assert_eq!(c[0].interval_cs(), 100);

        let c = run(r#"
[[vrrp]]
name = "v6"
interface = "eth0"
vrid = 7
priority = 255
advert_interval = "20ms"
preempt = false
preempt_delay = "2s"
vips = ["2001:db8::99/64", "2001:db8::98"]
unicast_peers = ["fe80::2"]
notify = "true"
garp_refresh = "10s"
"#)
        .unwrap();
        let v = &c[0];
        assert!(v.is_ipv6());
        assert_eq!(v.interval_cs(), 2);
        assert_eq!(v.vips[1].prefix_len, 128);
        assert_eq!(v.preempt_delay, Duration::from_secs(2));
        assert_eq!(v.garp_refresh, Some(Duration::from_secs(10)));
    }

    #[test]
    fn errors_name_line_and_key() {
        let base = "[[vrrp]]\nname = \"a\"\ninterface = \"eth0\"\n";
        let m = message(&format!("{base}vrid = 0\nvips = [\"198.18.0.99/24\"]\n"));
        assert!(m.starts_with("lb.toml:4:8: vrrp[0].vrid:"), "{m}");
        let m = message(&format!(
            "{base}vrid = 1\npriority = 256\nvips = [\"198.18.0.99/24\"]\n"
        ));
        assert!(m.contains(":5:") && m.contains("priority"), "{m}");
        let m = message(&format!(
            "{base}vrid = 1\nadvert_interval = \"15ms\"\nvips = [\"198.18.0.99/24\"]\n"
        ));
        assert!(m.contains("centiseconds"), "{m}");
        let m = message(&format!(
            "{base}vrid = 1\nadvert_interval = \"50s\"\nvips = [\"198.18.0.99/24\"]\n"
        ));
        assert!(m.contains("advert_interval"), "{m}");
        let m = message(&format!(
            "{base}vrid = 1\nvips = [\"198.18.0.99/24\", \"2001:db8::1/64\"]\n"
        ));
        assert!(m.contains(":5:") && m.contains("separate"), "{m}");
        let m = message(&format!("{base}vrid = 1\nvips = []\n"));
        assert!(m.contains("at least one"), "{m}");
        let m = message(&format!("{base}vrid = 1\nvips = [\"198.18.0.99/33\"]\n"));
        assert!(m.contains("prefix"), "{m}");
        let m = message(&format!(
            "{base}vrid = 1\nvips = [\"198.18.0.99\"]\nunicast_peers = [\"fe80::1\"]\n"
        ));
        assert!(m.contains("family"), "{m}");
        let m = message(&format!(
            "{base}vrid = 1\nvips = [\"198.18.0.99\"]\n{base}vrid = 2\nvips = [\"198.18.0.98\"]\n"
        ));
        assert!(m.contains("duplicate vrrp instance name"), "{m}");
        let two = "[[vrrp]]\nname = \"a\"\ninterface = \"eth0\"\nvrid = 1\nvips = [\"198.18.0.99\"]\n\
                   [[vrrp]]\nname = \"b\"\ninterface = \"eth0\"\nvrid = 1\nvips = [\"198.18.0.98\"]\n";
        let m = message(two);
        assert!(m.contains("already runs VRID 1"), "{m}");
        // The same VRID for IPv6 is a different virtual router (RFC 5798 section 7.5).
        let v6 = two.replace("198.18.0.98", "2001:db8::98");
        assert_eq!(run(&v6).unwrap().len(), 2);
    }

    #[test]
    fn tracking_and_auth_key() {
        let base =
            "[[vrrp]]\nname = \"a\"\ninterface = \"eth0\"\nvrid = 1\nvips = [\"198.18.0.99\"]\n";
        let c = run(&format!(
            "{base}track_interface = [{{ interface = \"eth1\", weight = -50 }}, {{ interface = \"eth2\" }}]\n\
             track_service = [{{ service = \"web\", weight = 0 }}]\nauth_key = \"0123456789abcdef\"\n"
        ))
        .unwrap();
        assert_eq!(
            c[0].tracks,
            vec![
                Track {
                    target: TrackTarget::Interface("eth1".into()),
                    effect: TrackEffect::Lower(50)
                },
                Track {
                    target: TrackTarget::Interface("eth2".into()),
                    effect: TrackEffect::Fault
                },
                Track {
                    target: TrackTarget::Service("web".into()),
                    effect: TrackEffect::Fault
                },
            ]
        );
        assert_eq!(
            format!("{:?}", c[0].auth_key),
            "Some(AuthKey(<16 bytes>))",
            "the key is not logged"
        );
        let m = message(&format!(
            "{base}track_service = [{{ service = \"nope\" }}]\n"
        ));
        assert!(
            m.contains(":6:") && m.contains("no [[service]] is named \"nope\""),
            "{m}"
        );
        let m = message(&format!(
            "{base}track_interface = [{{ interface = \"eth1\", weight = 10 }}]\n"
        ));
        assert!(
            m.contains("track_interface.weight") && m.contains("-254 to -1"),
            "{m}"
        );
        let m = message(&format!("{base}auth_key = \"short\"\n"));
        assert!(m.contains("auth_key") && m.contains("16 bytes"), "{m}");
        let owner = base.replace("vrid = 1\n", "vrid = 1\npriority = 255\n");
        let m = message(&format!(
            "{owner}track_interface = [{{ interface = \"eth1\", weight = -10 }}]\n"
        ));
        assert!(m.contains("address owner"), "{m}");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("100ms"), Some(Duration::from_millis(100)));
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2"), Some(Duration::from_secs(2)));
        assert_eq!(parse_duration("1m"), Some(Duration::from_secs(60)));
        assert_eq!(parse_duration("-1s"), None);
        assert_eq!(parse_duration("soon"), None);
        assert_eq!(parse_duration("NaNs"), None);
    }
}
