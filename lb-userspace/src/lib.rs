//! The `lb` daemon: XDP data plane control, L7 proxy, health checks, failover.
//!
//! State flows one way (see docs/architecture.md): config, health checks and admin
//! commands build a snapshot; the proxy reads it and [`dataplane`] alone writes BPF maps.

pub mod admin;
pub mod cli;
pub mod config;
pub mod control;
pub mod dataplane;
pub mod health;
pub mod http_frontends;
pub mod import;
pub mod l7;
pub mod maglev;
pub mod neigh;
pub mod netlink_addr;
pub mod preflight;
pub mod privdrop;
pub mod run;
pub mod stats;
pub mod vrrp;
