//! Requests a service's listener answers itself instead of proxying: the stats page and
//! metrics (HAProxy's `stats uri`). The proxy only recognises them ([`StatsPage::matches`]);
//! what to answer is up to the one [`Intercept`] handler the daemon installs, which sees the
//! whole process state (server statuses, XDP counters, VRRP), not just this proxy's.
//!
//! [`StatsPage::matches`]: super::service::StatsPage::matches

use bytes::Bytes;
use hyper::{body::Incoming, Request, Response};
use std::{
    future::Future,
    net::SocketAddr,
    pin::Pin,
    sync::{Arc, RwLock},
};

/// A boxed future answering an intercepted request.
pub type InterceptFuture = Pin<Box<dyn Future<Output = Response<Bytes>> + Send>>;

/// Answers the requests a service intercepts.
pub trait Intercept: Send + Sync {
    /// Answers `req`, received by service `service` from `peer`.
    fn handle(&self, service: &str, req: Request<Incoming>, peer: SocketAddr) -> InterceptFuture;
}

static HANDLER: RwLock<Option<Arc<dyn Intercept>>> = RwLock::new(None);

/// Installs the process's handler (replacing any previous one).
pub fn install(handler: Arc<dyn Intercept>) {
    *HANDLER.write().unwrap_or_else(|e| e.into_inner()) = Some(handler);
}

/// Removes the handler; intercepted requests are answered 503 until one is installed.
pub fn uninstall() {
    *HANDLER.write().unwrap_or_else(|e| e.into_inner()) = None;
}

/// The installed handler, if any.
pub fn handler() -> Option<Arc<dyn Intercept>> {
    HANDLER.read().unwrap_or_else(|e| e.into_inner()).clone()
}
