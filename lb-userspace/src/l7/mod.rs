//! L7 HTTP proxy with HAProxy's semantics (issue 3): cookie persistence (prefix,
//! insert, rewrite), X-Forwarded-For, keep-alive or httpclose, retries and redispatch,
//! maxconn with queues, timeouts, HAProxy error pages and the httplog access log.
//!
//! Selection ([`balance`]) and persistence ([`cookie`]) are plain functions over a
//! snapshot of server states, tested without sockets; [`proxy`] does the I/O.
//! Wiring: build an [`HttpService`] with `config::http::validate_http`, then
//! `serve(service, bind(service.listen)?, states, stats, sink, shutdown)`.

pub mod balance;
pub mod cookie;
pub mod intercept;
pub mod io;
pub mod log;
pub mod pages;
pub mod proxy;
pub mod service;
pub mod shards;
pub mod stats;

pub use balance::{Balancer, ServerState, ServerStates};
pub use log::{AccessLogSink, AccessRecord, BatchedStdoutSink, NullSink, TracingSink};
pub use proxy::{bind, serve, serve_farms, Farm, ProxyError};
pub use service::{
    Balance, CookieMode, CookiePersistence, HttpService, InsertOptions, Server, StatsPage,
    StatsUser, Timeouts,
};
pub use stats::{Counters, ServerStats, ServiceStats};

#[cfg(test)]
mod tests;
