//! L4 (XDP-forwarded) parts of the config: the `[l4]` table (conntrack, timeouts, `ipip`
//! outer sources) and the backends of `dsr`/`ipip` services (`[[service.server]]`).
//!
//! Defaults are named constants; validation errors name the file, line and key like the
//! rest of the config.

use super::ConfigError;
use serde::Deserialize;
use std::{
    collections::HashSet,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    path::Path,
    time::Duration,
};
use toml::Spanned;

/// Conntrack entries when `l4.conntrack_size` is not given.
pub const DEFAULT_CONNTRACK_SIZE: u32 = 1 << 18;
/// Smallest accepted conntrack size (below this the LRU thrashes under any real load).
pub const MIN_CONNTRACK_SIZE: u32 = 1024;
/// Largest accepted conntrack size (about 150 MB of kernel memory).
pub const MAX_CONNTRACK_SIZE: u32 = 1 << 24;
/// TCP idle timeout in seconds when `l4.tcp_timeout` is not given.
pub const DEFAULT_TCP_TIMEOUT_SECS: u64 = 900;
/// UDP idle timeout in seconds when `l4.udp_timeout` is not given.
pub const DEFAULT_UDP_TIMEOUT_SECS: u64 = 30;
/// Backend weight when `weight` is not given.
pub const DEFAULT_WEIGHT: u32 = 1;
/// Largest accepted weight (Maglev shares are relative; this keeps the arithmetic small).
pub const MAX_WEIGHT: u32 = 65535;
/// Shortest `ipip` source prefix for IPv6: the program varies only the last 32 bits.
pub const MIN_V6_SOURCE_PREFIX: u8 = 96;
/// Smallest accepted `l4.ipip_mtu`: the IPv6 minimum link MTU (RFC 8200).
pub const MIN_IPIP_MTU: u16 = 1280;

/// `[l4]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawL4 {
    /// Conntrack LRU entries.
    pub conntrack_size: Option<Spanned<i64>>,
    /// TCP idle timeout, seconds.
    pub tcp_timeout: Option<Spanned<i64>>,
    /// UDP idle timeout, seconds.
    pub udp_timeout: Option<Spanned<i64>>,
    /// `ipip` outer source prefix for IPv4 VIPs, CIDR.
    pub ipip_source_v4: Option<Spanned<String>>,
    /// `ipip` outer source prefix for IPv6 VIPs, CIDR (prefix length >= 96).
    pub ipip_source_v6: Option<Spanned<String>>,
    /// MTU of the path to `ipip` backends, bytes; default: the XDP interface's MTU.
    pub ipip_mtu: Option<Spanned<i64>>,
    /// Log new flows, drops and ICMP answers from the XDP program; default false.
    pub debug_log: Option<bool>,
}

/// `[[service.server]]` of an L4 service.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawL4Server {
    /// Unique (per service) server name.
    pub name: Spanned<String>,
    /// Backend IP address (no port: L4 forwarding keeps the VIP's port).
    pub address: Spanned<String>,
    /// Relative share of new flows; default [`DEFAULT_WEIGHT`]; 0 drains.
    pub weight: Option<Spanned<i64>>,
}

/// Global L4 settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct L4Config {
    /// Conntrack LRU size (entries), per address family (IPv4 and IPv6 flows have a table
    /// each).
    pub conntrack_size: u32,
    /// Idle time after which a TCP flow is re-picked.
    pub tcp_timeout: Duration,
    /// Idle time after which a UDP flow is re-picked.
    pub udp_timeout: Duration,
    /// Outer source prefix (address, length) for IPv4 `ipip`.
    pub ipip_source_v4: Option<(Ipv4Addr, u8)>,
    /// Outer source prefix (address, length) for IPv6 `ipip`.
    pub ipip_source_v6: Option<(Ipv6Addr, u8)>,
    /// IP MTU towards `ipip` backends; `None`: the MTU of the interface the backend is
    /// reached through. An encapsulated packet above it is answered with ICMP "too big".
    pub ipip_mtu: Option<u16>,
    /// Whether the XDP program logs (through aya-log) new flows, drops and ICMP answers.
    pub debug_log: bool,
}

impl Default for L4Config {
    fn default() -> Self {
        L4Config {
            conntrack_size: DEFAULT_CONNTRACK_SIZE,
            tcp_timeout: Duration::from_secs(DEFAULT_TCP_TIMEOUT_SECS),
            udp_timeout: Duration::from_secs(DEFAULT_UDP_TIMEOUT_SECS),
            ipip_source_v4: None,
            ipip_source_v6: None,
            ipip_mtu: None,
            debug_log: false,
        }
    }
}

/// One backend of an L4 service.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct L4Backend {
    /// Name, for stats and logs.
    pub name: String,
    /// Address packets are sent to (dsr: its MAC is resolved; ipip: the outer destination).
    pub addr: IpAddr,
    /// Relative share of new flows; 0 = draining (keeps established flows, gets no new).
    pub weight: u32,
}

/// Error builder bound to one file's text.
pub(crate) struct Ctx<'a> {
    pub path: &'a Path,
    pub text: &'a str,
}

impl Ctx<'_> {
    fn err(&self, at: usize, key: &str, msg: String) -> ConfigError {
        ConfigError::invalid(self.path, self.text, at, key, msg)
    }
}

fn ranged(ctx: &Ctx, v: &Spanned<i64>, key: &str, min: i64, max: i64) -> Result<i64, ConfigError> {
    let x = *v.get_ref();
    if x < min || x > max {
        return Err(ctx.err(
            v.span().start,
            key,
            format!("{x} is out of range {min}..={max}"),
        ));
    }
    Ok(x)
}

fn prefix(ctx: &Ctx, v: &Spanned<String>, key: &str) -> Result<(IpAddr, u8), ConfigError> {
    let s = v.get_ref();
    let bad = || {
        ctx.err(
            v.span().start,
            key,
            format!("{s:?} is not an address prefix like 198.18.255.0/24"),
        )
    };
    let (a, l) = s.split_once('/').ok_or_else(bad)?;
    let addr: IpAddr = a.parse().map_err(|_| bad())?;
    let len: u8 = l.parse().map_err(|_| bad())?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    if len > max {
        return Err(bad());
    }
    Ok((addr, len))
}

/// Validates `[l4]`.
pub(crate) fn validate_l4(ctx: &Ctx, raw: Option<RawL4>) -> Result<L4Config, ConfigError> {
    let raw = raw.unwrap_or_default();
    let mut c = L4Config::default();
    if let Some(v) = &raw.conntrack_size {
        c.conntrack_size = ranged(
            ctx,
            v,
            "l4.conntrack_size",
            MIN_CONNTRACK_SIZE.into(),
            MAX_CONNTRACK_SIZE.into(),
        )? as u32;
    }
    if let Some(v) = &raw.tcp_timeout {
        c.tcp_timeout = Duration::from_secs(ranged(ctx, v, "l4.tcp_timeout", 1, 86400 * 7)? as u64);
    }
    if let Some(v) = &raw.udp_timeout {
        c.udp_timeout = Duration::from_secs(ranged(ctx, v, "l4.udp_timeout", 1, 86400 * 7)? as u64);
    }
    if let Some(v) = &raw.ipip_mtu {
        c.ipip_mtu =
            Some(ranged(ctx, v, "l4.ipip_mtu", MIN_IPIP_MTU.into(), u16::MAX.into())? as u16);
    }
    c.debug_log = raw.debug_log.unwrap_or(false);
    if let Some(v) = &raw.ipip_source_v4 {
        match prefix(ctx, v, "l4.ipip_source_v4")? {
            (IpAddr::V4(a), len) => c.ipip_source_v4 = Some((a, len)),
            _ => {
                return Err(ctx.err(
                    v.span().start,
                    "l4.ipip_source_v4",
                    "must be an IPv4 prefix".into(),
                ))
            }
        }
    }
    if let Some(v) = &raw.ipip_source_v6 {
        match prefix(ctx, v, "l4.ipip_source_v6")? {
            (IpAddr::V6(a), len) if len >= MIN_V6_SOURCE_PREFIX => {
                c.ipip_source_v6 = Some((a, len))
            }
            _ => {
                return Err(ctx.err(
                    v.span().start,
                    "l4.ipip_source_v6",
                    format!("must be an IPv6 prefix of length {MIN_V6_SOURCE_PREFIX}..=128"),
                ))
            }
        }
    }
    Ok(c)
}

/// Validates the servers of a `dsr`/`ipip` service; `key` is e.g. `service[0]`.
pub(crate) fn validate_servers(
    ctx: &Ctx,
    key: &str,
    at: usize,
    vip: IpAddr,
    ipip: bool,
    servers: Vec<Spanned<RawL4Server>>,
) -> Result<Vec<L4Backend>, ConfigError> {
    if servers.is_empty() {
        return Err(ctx.err(
            at,
            &format!("{key}.server"),
            "an L4 service needs at least one [[service.server]]".into(),
        ));
    }
    let mut names = HashSet::new();
    let mut addrs = HashSet::new();
    let mut out = Vec::with_capacity(servers.len());
    for (j, s) in servers.into_iter().enumerate() {
        let s = s.into_inner();
        let k = |f: &str| format!("{key}.server[{j}].{f}");
        let name = s.name.get_ref().clone();
        if name.is_empty() || !names.insert(name.clone()) {
            return Err(ctx.err(
                s.name.span().start,
                &k("name"),
                format!("{name:?} is empty or used twice"),
            ));
        }
        let addr: IpAddr = s.address.get_ref().parse().map_err(|_| {
            ctx.err(
                s.address.span().start,
                &k("address"),
                format!(
                    "{:?} is not an IP address (L4 servers take no port)",
                    s.address.get_ref()
                ),
            )
        })?;
        if !addrs.insert(addr) {
            return Err(ctx.err(
                s.address.span().start,
                &k("address"),
                format!("{addr} is listed twice"),
            ));
        }
        if ipip && addr.is_ipv4() != vip.is_ipv4() {
            return Err(ctx.err(
                s.address.span().start,
                &k("address"),
                "ipip encapsulates IPv4 in IPv4 and IPv6 in IPv6: the server must have the VIP's family".into(),
            ));
        }
        let weight = match &s.weight {
            None => DEFAULT_WEIGHT,
            Some(w) => ranged(ctx, w, &k("weight"), 0, MAX_WEIGHT.into())? as u32,
        };
        out.push(L4Backend { name, addr, weight });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use crate::config::{self, ConfigError, ServiceMode};
    use std::path::Path;

    const BASE: &str = "[xdp]\ninterface = \"eth0\"\n";

    fn parse(body: &str) -> Result<config::Config, ConfigError> {
        config::parse(Path::new("l4.toml"), &format!("{BASE}{body}"))
    }

    fn invalid_key(body: &str) -> String {
        match parse(body) {
            Err(ConfigError::Invalid { key, .. }) => key,
            other => panic!("expected an invalid value, got {other:?}"),
        }
    }

    const DSR: &str = r#"
[[service]]
name = "web"
vip = "198.18.0.100"
port = 80
mode = "dsr"
[[service.server]]
name = "a"
address = "198.18.0.11"
[[service.server]]
name = "b"
address = "198.18.0.12"
weight = 3
"#;

    #[test]
    fn dsr_service_with_servers() {
        let c = parse(DSR).unwrap();
        let s = &c.services[0];
        assert_eq!(s.mode, ServiceMode::Dsr);
        assert_eq!(s.table_size, crate::maglev::DEFAULT_TABLE_SIZE);
        assert_eq!(s.backends.len(), 2);
        assert_eq!((s.backends[0].weight, s.backends[1].weight), (1, 3));
        assert_eq!(c.l4.conntrack_size, super::DEFAULT_CONNTRACK_SIZE);
    }

    #[test]
    fn l4_table_and_timeouts() {
        let c = parse(&format!(
            "[l4]\nconntrack_size = 4096\ntcp_timeout = 60\nudp_timeout = 5\nipip_source_v4 = \"198.18.255.0/24\"\n{DSR}"
        ))
        .unwrap();
        assert_eq!(c.l4.conntrack_size, 4096);
        assert_eq!(c.l4.tcp_timeout.as_secs(), 60);
        assert_eq!(c.l4.udp_timeout.as_secs(), 5);
        assert_eq!(
            c.l4.ipip_source_v4,
            Some(("198.18.255.0".parse().unwrap(), 24))
        );
        assert_eq!((c.l4.ipip_mtu, c.l4.debug_log), (None, false));
    }

    #[test]
    fn ipip_mtu_and_debug_log() {
        let c = parse(&format!("[l4]\nipip_mtu = 9000\ndebug_log = true\n{DSR}")).unwrap();
        assert_eq!((c.l4.ipip_mtu, c.l4.debug_log), (Some(9000), true));
        assert_eq!(
            invalid_key(&format!("[l4]\nipip_mtu = 1000\n{DSR}")),
            "l4.ipip_mtu"
        );
        assert_eq!(
            invalid_key(&format!("[l4]\nipip_mtu = 70000\n{DSR}")),
            "l4.ipip_mtu"
        );
    }

    #[test]
    fn errors_name_the_key() {
        assert_eq!(
            invalid_key(&DSR.replace("mode = \"dsr\"", "mode = \"ipip\"")),
            "service[0].mode",
            "ipip needs l4.ipip_source_v4"
        );
        assert_eq!(
            invalid_key(&DSR.replace("port = 80\n", "port = 80\ntable_size = 16380\n")),
            "service[0].table_size"
        );
        assert_eq!(
            invalid_key(&DSR.replace("198.18.0.12", "198.18.0.11")),
            "service[0].server[1].address"
        );
        assert_eq!(
            invalid_key(&DSR.replace("weight = 3", "weight = -1")),
            "service[0].server[1].weight"
        );
        assert_eq!(
            invalid_key(&format!("[l4]\nipip_source_v6 = \"2001:db8::/64\"\n{DSR}")),
            "l4.ipip_source_v6"
        );
        let v6_server = format!(
            "[l4]\nipip_source_v4 = \"198.18.255.0/24\"\n{}",
            DSR.replace("mode = \"dsr\"", "mode = \"ipip\"")
                .replace("198.18.0.12", "2001:db8::12")
        );
        assert_eq!(invalid_key(&v6_server), "service[0].server[1].address");
        assert_eq!(
            invalid_key(&format!("[l4]\nconntrack_size = 10\n{DSR}")),
            "l4.conntrack_size"
        );
    }

    #[test]
    fn l4_services_need_servers() {
        let no_servers =
            "[[service]]\nname = \"web\"\nvip = \"198.18.0.100\"\nport = 80\nmode = \"dsr\"\n";
        assert_eq!(invalid_key(no_servers), "service[0].server");
    }
}
