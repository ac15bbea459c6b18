//! `[[service.server]]`: one table shape for every mode, split by validation into what the
//! L4 data plane, the HTTP proxy and the health checks each need.
//!
//! HAProxy users write one `server` line with everything on it; this keeps that: address,
//! weight, persistence cookie and check settings of a server sit together.

use super::{health::RawServerCheck, http, l4::RawL4Server};
use serde::Deserialize;
use toml::Spanned;

/// One `[[service.server]]` table as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    /// Unique within the service.
    pub name: Spanned<String>,
    /// `http`: `ip:port` (`[v6]:port`); `dsr`/`ipip`: an IP address.
    pub address: Spanned<String>,
    /// Relative share of new sessions or flows.
    pub weight: Option<Spanned<i64>>,
    /// `http`: persistence cookie value.
    pub cookie: Option<Spanned<String>>,
    /// `http`: only used when no active server is up.
    #[serde(default)]
    pub backup: bool,
    /// `http`: concurrent requests to this server; 0 = unlimited.
    pub maxconn: Option<Spanned<i64>>,
    /// Run active health checks.
    pub check: Option<bool>,
    /// Interval between checks while the server is stable.
    pub inter: Option<Spanned<super::health::RawDuration>>,
    /// Interval while the server is changing state.
    pub fastinter: Option<Spanned<super::health::RawDuration>>,
    /// Interval while the server is DOWN.
    pub downinter: Option<Spanned<super::health::RawDuration>>,
    /// Consecutive successful checks to go UP.
    pub rise: Option<Spanned<i64>>,
    /// Consecutive failed checks to go DOWN.
    pub fall: Option<Spanned<i64>>,
    /// Port checks connect to (default: the server's, or the VIP's for L4).
    pub port: Option<Spanned<i64>>,
    /// Time to ramp the weight up after the server comes UP.
    pub slowstart: Option<Spanned<super::health::RawDuration>>,
    /// Passive health: `layer4` or `layer7`.
    pub observe: Option<Spanned<String>>,
    /// Passive health: consecutive errors before `on_error` acts.
    pub error_limit: Option<Spanned<i64>>,
    /// Passive health: `fastinter`, `fail-check`, `sudden-death` or `mark-down`.
    pub on_error: Option<Spanned<String>>,
}

impl RawServer {
    /// Splits the table into its HTTP, L4 and health parts.
    pub fn split(self) -> ServerParts {
        ServerParts {
            l4: RawL4Server {
                name: self.name.clone(),
                address: self.address.clone(),
                weight: self.weight.clone(),
            },
            http: http::RawServer {
                name: self.name,
                address: self.address,
                weight: self.weight,
                cookie: self.cookie,
                backup: self.backup,
                maxconn: self.maxconn,
            },
            check: RawServerCheck {
                check: self.check,
                inter: self.inter,
                fastinter: self.fastinter,
                downinter: self.downinter,
                rise: self.rise,
                fall: self.fall,
                port: self.port,
                slowstart: self.slowstart,
                observe: self.observe,
                error_limit: self.error_limit,
                on_error: self.on_error,
            },
        }
    }
}

/// A [`RawServer`] split by concern.
pub struct ServerParts {
    /// What the L4 data plane reads.
    pub l4: RawL4Server,
    /// What the HTTP proxy reads (it also rejects L7-only keys for L4 services).
    pub http: http::RawServer,
    /// Health check settings.
    pub check: RawServerCheck,
}
