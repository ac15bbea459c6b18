//! Configuration: TOML -> raw serde structs -> [`validate`] -> the runtime [`Config`].
//!
//! Raw structs mirror the file (every key documented in `docs/config.md`); the runtime
//! types make invalid combinations unrepresentable. Errors name the file, line, column and
//! key, so an operator can fix a file without reading code.

pub mod admin;
mod error;
pub mod global;
pub mod health;
pub mod http;
pub mod l4;
mod raw;
pub mod server;
pub mod vrrp;

use std::{
    net::IpAddr,
    path::{Path, PathBuf},
};

pub use error::ConfigError;
pub use l4::{L4Backend, L4Config};
pub use raw::RawConfig;
pub use vrrp::VrrpConfig;

/// Default bpffs mount point; pinned maps live under `<bpffs>/lb/<instance>`.
pub const DEFAULT_BPFFS: &str = "/sys/fs/bpf";
/// Default instance name: one pin directory per instance, so two daemons never share maps.
pub const DEFAULT_INSTANCE: &str = "default";
/// Longest instance name; it becomes a directory name.
pub const MAX_INSTANCE_LEN: usize = 64;

/// A validated configuration: what the daemon runs on.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// Process-wide settings (`[global]`): the user to run as.
    pub global: global::GlobalConfig,
    /// Names the pin directory and the instance in logs.
    pub instance: String,
    /// Where and how the XDP program attaches.
    pub xdp: XdpConfig,
    /// Services in file order.
    pub services: Vec<Service>,
    /// The admin socket.
    pub admin: admin::AdminConfig,
    /// Virtual routers this node takes part in (`[[vrrp]]`); empty = always serve.
    pub vrrp: Vec<VrrpConfig>,
    /// Conntrack, timeouts and `ipip` sources of the L4 services (`[l4]`).
    pub l4: L4Config,
}

impl Config {
    /// The addresses of every L4 service's backends, sorted and without duplicates: the
    /// hosts whose link-layer addresses the data plane needs (dsr) and whose figures the
    /// stats show.
    pub fn l4_backends(&self) -> Vec<std::net::IpAddr> {
        let mut backends: Vec<std::net::IpAddr> = self
            .services
            .iter()
            .filter(|s| s.mode.is_l4())
            .flat_map(|s| s.backends.iter().map(|b| b.addr))
            .collect();
        backends.sort();
        backends.dedup();
        backends
    }

    /// The directory the instance pins its maps in.
    pub fn pin_dir(&self) -> PathBuf {
        self.xdp.bpffs.join("lb").join(&self.instance)
    }
}

/// XDP attachment settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XdpConfig {
    /// The front interface: where VIP traffic arrives.
    pub interface: String,
    /// The attach mode tried first.
    pub mode: AttachMode,
    /// Whether to fall back to generic mode when native attach is refused.
    pub generic_fallback: bool,
    /// bpffs mount point.
    pub bpffs: PathBuf,
}

/// XDP attach mode, as `ip link set ... xdp{drv,generic}` names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachMode {
    /// In the driver: fastest; needs driver support (veth, most 10G+ NICs).
    Native,
    /// In the kernel's generic receive path: works on any interface, slower.
    Generic,
}

impl AttachMode {
    /// The name used in config files and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            AttachMode::Native => "native",
            AttachMode::Generic => "generic",
        }
    }
}

/// Transport protocol of a VIP.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// TCP (IP protocol 6).
    Tcp,
    /// UDP (IP protocol 17).
    Udp,
}

impl Protocol {
    /// IP protocol number, as the XDP program sees it.
    pub fn number(self) -> u8 {
        match self {
            Protocol::Tcp => lb_common::vip::PROTO_TCP,
            Protocol::Udp => lb_common::vip::PROTO_UDP,
        }
    }

    /// The name used in config files.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

/// A VIP: the (address, port, protocol) a service answers on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Vip {
    /// Virtual address (IPv4 or IPv6).
    pub addr: IpAddr,
    /// Port.
    pub port: u16,
    /// Transport protocol.
    pub protocol: Protocol,
}

impl std::fmt::Display for Vip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.addr {
            IpAddr::V4(a) => write!(f, "{a}:{}/{}", self.port, self.protocol.as_str()),
            IpAddr::V6(a) => write!(f, "[{a}]:{}/{}", self.port, self.protocol.as_str()),
        }
    }
}

/// What happens to a VIP's packets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServiceMode {
    /// Counted by XDP, then passed to the local stack, where a local listener answers.
    Pass,
    /// L2 direct server return: XDP rewrites the MACs towards the backend (which holds the
    /// VIP on `lo`) and transmits; replies go straight to the client.
    Dsr,
    /// XDP encapsulates (IPv4-in-IPv4 / IPv6-in-IPv6) towards the backend, which
    /// decapsulates (`lb decap`) and replies straight to the client.
    Ipip,
    /// Counted by XDP and passed to the local stack, where `lb`'s HTTP proxy answers with
    /// HAProxy's semantics (`[service.http]`, `[[service.server]]`).
    Http,
}

impl ServiceMode {
    /// The name used in config files.
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceMode::Pass => "pass",
            ServiceMode::Dsr => "dsr",
            ServiceMode::Ipip => "ipip",
            ServiceMode::Http => "http",
        }
    }

    /// Whether XDP forwards this mode's packets to backends itself.
    pub fn is_l4(self) -> bool {
        matches!(self, ServiceMode::Dsr | ServiceMode::Ipip)
    }
}

/// One service: a VIP and how it is served.
#[derive(Clone, Debug, PartialEq)]
pub struct Service {
    /// Unique name, used in stats and admin commands.
    pub name: String,
    /// Where it listens.
    pub vip: Vip,
    /// How its packets are handled.
    pub mode: ServiceMode,
    /// L4 modes: the backends in config order (Maglev input); empty for `pass`.
    pub backends: Vec<L4Backend>,
    /// L4 modes: Maglev table size (prime).
    pub table_size: u32,
    /// `http` mode: the proxy's runtime settings and servers; `None` for other modes.
    pub http: Option<std::sync::Arc<crate::l7::HttpService>>,
    /// Health checks of the servers, parallel to `backends` or `http.servers`.
    pub health: ServiceChecks,
}

/// How a service's servers are checked: the probe, and per server (config order) whether
/// and how often.
#[derive(Clone, Debug, PartialEq)]
pub struct ServiceChecks {
    /// The probe (TCP connect or HTTP request) and `timeout check`.
    pub service: health::ServiceHealth,
    /// One entry per server, in config order.
    pub servers: Vec<health::ServerCheck>,
}

/// Reads and validates a config file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(path, &text)
}

/// Parses and validates config text; `path` is only used in messages.
pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
    let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::syntax(path, text, &e))?;
    raw.validate(path, text)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// A sub-table header (`[service.http.stats]`) or a dotted key (`http.timeout.connect`)
    /// defines its parent table implicitly; both must parse like the explicit form (toml
    /// 0.8's `Spanned` rejected implicit tables with a message about "a borrowed string").
    #[test]
    fn implicit_parent_tables_parse() {
        let head = "[xdp]\ninterface = \"lo\"\n\n[[service]]\nname = \"web\"\nvip = \"127.0.0.1\"\nport = 8080\nmode = \"http\"\n";
        let server = "\n[[service.server]]\nname = \"s1\"\naddress = \"127.0.0.1:9000\"\n";
        for body in [
            "\n[service.http.stats]\nauth = \"a:b\"\n",
            "\n[service.http.timeout]\nconnect = \"2s\"\n",
            "http.timeout.connect = \"2s\"\nhttp.stats.auth = \"a:b\"\n",
        ] {
            let text = format!("{head}{body}{server}");
            let cfg = super::parse(Path::new("t.toml"), &text);
            assert!(cfg.is_ok(), "{body}: {:?}", cfg.err());
        }
    }
}
