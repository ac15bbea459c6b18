//! The `lb` daemon: XDP data plane control, L7 proxy, health checks, failover.
//!
//! State flows one way (see docs/architecture.md): config, health checks and admin
//! commands build a snapshot; the proxy reads it and [`dataplane`] alone writes BPF maps.

pub mod config;
pub mod dataplane;
pub mod import;
pub mod maglev;
pub mod netlink_addr;
pub mod neigh;
pub mod preflight;
pub mod run;
pub mod vrrp;
