//! The config file's shape, as serde reads it. Validation turns it into runtime types.

use super::{
    l4::{self, RawL4},
    AttachMode, Config, ConfigError, Protocol, Service, ServiceMode, Vip, XdpConfig, DEFAULT_BPFFS,
    DEFAULT_INSTANCE, MAX_INSTANCE_LEN,
};
use serde::Deserialize;
use std::{collections::HashSet, net::IpAddr, path::Path};
use toml::Spanned;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Instance name (pin directory); default [`DEFAULT_INSTANCE`].
    pub instance: Option<Spanned<String>>,
    /// The `[xdp]` table.
    pub xdp: Spanned<RawXdp>,
    /// The `[[service]]` tables.
    #[serde(default)]
    pub service: Vec<Spanned<RawService>>,
    /// The `[[vrrp]]` tables.
    #[serde(default)]
    pub vrrp: Vec<Spanned<super::vrrp::RawVrrp>>,
    /// The `[l4]` table.
    pub l4: Option<RawL4>,
    /// The `[admin]` table.
    pub admin: Option<super::admin::RawAdmin>,
    /// The `[global]` table.
    pub global: Option<super::global::RawGlobal>,
}

/// `[xdp]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawXdp {
    /// Front interface name.
    pub interface: Spanned<String>,
    /// `native` (default) or `generic`.
    pub mode: Option<Spanned<String>>,
    /// Fall back to generic when native attach is refused; default false.
    #[serde(default)]
    pub generic_fallback: bool,
    /// bpffs mount point; default [`DEFAULT_BPFFS`].
    pub bpffs: Option<String>,
}

/// `[[service]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawService {
    /// Unique service name.
    pub name: Spanned<String>,
    /// Virtual IP address.
    pub vip: Spanned<String>,
    /// Port the service answers on.
    pub port: Spanned<i64>,
    /// `tcp` (default) or `udp`.
    pub protocol: Option<Spanned<String>>,
    /// `pass` (default), `dsr` or `ipip`.
    pub mode: Option<Spanned<String>>,
    /// L4 modes: Maglev table size (prime, default [`crate::maglev::DEFAULT_TABLE_SIZE`]).
    pub table_size: Option<Spanned<i64>>,
    /// `http` mode: the proxy settings (`[service.http]`).
    pub http: Option<Spanned<super::http::RawHttp>>,
    /// The servers: L4 backends (`dsr`/`ipip`) or HTTP servers (`http`).
    #[serde(default)]
    pub server: Vec<Spanned<super::server::RawServer>>,
    /// How the servers are checked (`[service.health]`).
    pub health: Option<Spanned<super::health::RawHealth>>,
}

impl RawConfig {
    /// Checks every value and builds the runtime [`Config`].
    pub fn validate(self, path: &Path, text: &str) -> Result<Config, ConfigError> {
        let err =
            |at: usize, key: &str, msg: String| ConfigError::invalid(path, text, at, key, msg);

        let instance = match self.instance {
            None => DEFAULT_INSTANCE.to_string(),
            Some(s) => {
                let at = s.span().start;
                let v = s.into_inner();
                let ok = !v.is_empty()
                    && v.len() <= MAX_INSTANCE_LEN
                    && v.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
                if !ok {
                    return Err(err(
                        at,
                        "instance",
                        format!(
                            "{v:?} is not a valid instance name (1-{MAX_INSTANCE_LEN} of A-Z a-z 0-9 - _)"
                        ),
                    ));
                }
                v
            }
        };

        let xdp_at = self.xdp.span().start;
        let raw_xdp = self.xdp.into_inner();
        let if_at = raw_xdp.interface.span().start;
        let interface = raw_xdp.interface.into_inner();
        if interface.is_empty() || interface.len() >= libc::IFNAMSIZ || interface.contains('/') {
            return Err(err(
                if_at,
                "xdp.interface",
                format!("{interface:?} is not a valid interface name"),
            ));
        }
        let mode = match raw_xdp.mode {
            None => AttachMode::Native,
            Some(m) => match m.get_ref().as_str() {
                "native" => AttachMode::Native,
                "generic" => AttachMode::Generic,
                other => {
                    return Err(err(
                        m.span().start,
                        "xdp.mode",
                        format!(
                            "unknown attach mode {other:?}; expected \"native\" or \"generic\""
                        ),
                    ))
                }
            },
        };
        let _ = xdp_at;
        let xdp = XdpConfig {
            interface,
            mode,
            generic_fallback: raw_xdp.generic_fallback,
            bpffs: raw_xdp
                .bpffs
                .unwrap_or_else(|| DEFAULT_BPFFS.to_string())
                .into(),
        };

        let ctx = l4::Ctx { path, text };
        let l4 = l4::validate_l4(&ctx, self.l4)?;

        let mut services = Vec::with_capacity(self.service.len());
        let mut names = HashSet::new();
        let mut vips = HashSet::new();
        for (i, s) in self.service.into_iter().enumerate() {
            let s_at = s.span().start;
            let mut s = s.into_inner();
            let key = |k: &str| format!("service[{i}].{k}");

            let name = s.name.get_ref().clone();
            if name.is_empty() {
                return Err(err(
                    s.name.span().start,
                    &key("name"),
                    "must not be empty".into(),
                ));
            }
            if !names.insert(name.clone()) {
                return Err(err(
                    s.name.span().start,
                    &key("name"),
                    format!("duplicate service name {name:?}"),
                ));
            }
            let addr: IpAddr = s.vip.get_ref().parse().map_err(|_| {
                err(
                    s.vip.span().start,
                    &key("vip"),
                    format!("{:?} is not an IPv4 or IPv6 address", s.vip.get_ref()),
                )
            })?;
            let port = *s.port.get_ref();
            let port = u16::try_from(port)
                .ok()
                .filter(|&p| p != 0)
                .ok_or_else(|| {
                    err(
                        s.port.span().start,
                        &key("port"),
                        format!("{port} is not a port (1-65535)"),
                    )
                })?;
            let protocol = match s.protocol {
                None => Protocol::Tcp,
                Some(p) => match p.get_ref().as_str() {
                    "tcp" => Protocol::Tcp,
                    "udp" => Protocol::Udp,
                    other => {
                        return Err(err(
                            p.span().start,
                            &key("protocol"),
                            format!("unknown protocol {other:?}; expected \"tcp\" or \"udp\""),
                        ))
                    }
                },
            };
            let mode = match s.mode {
                None => ServiceMode::Pass,
                Some(m) => match m.get_ref().as_str() {
                    "pass" => ServiceMode::Pass,
                    "dsr" => ServiceMode::Dsr,
                    "ipip" => ServiceMode::Ipip,
                    "http" => ServiceMode::Http,
                    other => {
                        return Err(err(
                            m.span().start,
                            &key("mode"),
                            format!("unknown service mode {other:?}; expected \"pass\", \"http\", \"dsr\" or \"ipip\""),
                        ))
                    }
                },
            };
            let vip = Vip {
                addr,
                port,
                protocol,
            };
            let mut l4_servers = Vec::with_capacity(s.server.len());
            let mut http_servers = Vec::with_capacity(s.server.len());
            let mut raw_checks = Vec::with_capacity(s.server.len());
            for srv in std::mem::take(&mut s.server) {
                let span = srv.span();
                let parts = srv.into_inner().split();
                l4_servers.push(Spanned::new(span.clone(), parts.l4));
                http_servers.push(Spanned::new(span, parts.http));
                raw_checks.push(parts.check);
            }
            if !vips.insert(vip) {
                return Err(err(
                    s_at,
                    &key("vip"),
                    format!("VIP {vip} is already used by another service"),
                ));
            }
            let (backends, table_size) = if mode.is_l4() {
                let table_size = match &s.table_size {
                    None => crate::maglev::DEFAULT_TABLE_SIZE,
                    Some(t) => {
                        let v = *t.get_ref();
                        let size = u32::try_from(v).unwrap_or(0);
                        crate::maglev::validate_table_size(size)
                            .map_err(|e| err(t.span().start, &key("table_size"), e.to_string()))?;
                        size
                    }
                };
                let ipip = mode == ServiceMode::Ipip;
                if ipip {
                    let missing = match addr {
                        IpAddr::V4(_) => l4.ipip_source_v4.is_none().then_some("l4.ipip_source_v4"),
                        IpAddr::V6(_) => l4.ipip_source_v6.is_none().then_some("l4.ipip_source_v6"),
                    };
                    if let Some(k) = missing {
                        return Err(err(
                            s_at,
                            &key("mode"),
                            format!("mode ipip needs {k} (the outer source prefix)"),
                        ));
                    }
                }
                if let Some(h) = &s.http {
                    return Err(err(
                        h.span().start,
                        &key("http"),
                        format!(
                            "[service.http] is only for mode = \"http\", not {:?}",
                            mode.as_str()
                        ),
                    ));
                }
                for (j, srv) in http_servers.iter().enumerate() {
                    let srv_ref = srv.get_ref();
                    if srv_ref.cookie.is_some() || srv_ref.backup || srv_ref.maxconn.is_some() {
                        return Err(err(
                            srv.span().start,
                            &key(&format!("server[{j}]")),
                            "cookie, backup and maxconn are only for mode = \"http\"".into(),
                        ));
                    }
                }
                let l4_servers = std::mem::take(&mut l4_servers);
                (
                    l4::validate_servers(
                        &ctx,
                        &format!("service[{i}]"),
                        s_at,
                        addr,
                        ipip,
                        l4_servers,
                    )?,
                    table_size,
                )
            } else {
                if mode == ServiceMode::Pass {
                    if let Some(h) = &s.http {
                        return Err(err(
                            h.span().start,
                            &key("http"),
                            "[service.http] is only for mode = \"http\"".into(),
                        ));
                    }
                    if let Some(srv) = http_servers.first() {
                        return Err(err(srv.span().start, &key("server[0]"), "mode = \"pass\" has no servers: use mode \"http\", \"dsr\" or \"ipip\"".into()));
                    }
                }
                (Vec::new(), 0)
            };
            let http = if mode == ServiceMode::Http {
                if protocol != Protocol::Tcp {
                    return Err(err(
                        s_at,
                        &key("protocol"),
                        "mode = \"http\" needs protocol = \"tcp\"".into(),
                    ));
                }
                let listen = std::net::SocketAddr::new(addr, port);
                let svc = super::http::validate_http(
                    &name,
                    listen,
                    s.http.take(),
                    std::mem::take(&mut http_servers),
                    s_at,
                )
                .map_err(|e| err(e.at, &key(&e.key), e.message))?;
                Some(std::sync::Arc::new(svc))
            } else {
                None
            };
            let health = super::ServiceChecks {
                service: s
                    .health
                    .map(|h| {
                        let at = h.span().start;
                        h.into_inner().validate("health.", at)
                    })
                    .unwrap_or_else(|| {
                        super::health::RawHealth::default().validate("health.", s_at)
                    })
                    .map_err(|e| err(e.at, &key(&e.key), e.message))?,
                servers: raw_checks
                    .into_iter()
                    .enumerate()
                    .map(|(j, c)| {
                        c.validate(&format!("server[{j}]."))
                            .map_err(|e| err(e.at, &key(&e.key), e.message))
                    })
                    .collect::<Result<_, _>>()?,
            };
            services.push(Service {
                name,
                vip,
                mode,
                backends,
                table_size,
                http,
                health,
            });
        }
        if services.len() > lb_common::maps::MAX_VIPS as usize {
            return Err(err(
                0,
                "service",
                format!(
                    "{} services; at most {} are supported",
                    services.len(),
                    lb_common::maps::MAX_VIPS
                ),
            ));
        }
        let names: Vec<&str> = services.iter().map(|s| s.name.as_str()).collect();
        let vrrp = super::vrrp::validate(path, text, self.vrrp, &names)?;
        let admin = self
            .admin
            .unwrap_or_default()
            .validate(&instance)
            .map_err(|(at, msg)| err(at, "admin.mode", msg))?;
        let global = self
            .global
            .unwrap_or_default()
            .validate()
            .map_err(|(at, key, msg)| err(at, key, msg))?;
        Ok(Config {
            global,
            instance,
            xdp,
            services,
            l4,
            vrrp,
            admin,
        })
    }
}
