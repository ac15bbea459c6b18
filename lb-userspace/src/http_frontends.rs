//! The running HTTP proxies of a config's `mode = "http"` services.
//!
//! Each service gets its listener (bound with IP_FREEBIND, so it can come up before its
//! VIP is local, e.g. on a VRRP backup) and one proxy task. The server states and counters
//! live here so health checks, the admin API and stats can reach them.

use crate::{
    config::Config,
    l7::{self, AccessLogSink, BatchedStdoutSink, NullSink, ServerStates, ServiceStats},
};
use std::{net::SocketAddr, sync::Arc, time::Duration};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// How long a stopping daemon lets open HTTP connections finish.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// A listener could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("service {service}: cannot listen on {addr}: {source}")]
pub struct ListenError {
    /// The service.
    pub service: String,
    /// Its VIP and port.
    pub addr: SocketAddr,
    /// The OS error.
    pub source: std::io::Error,
}

/// One running HTTP service.
pub struct Frontend {
    /// Service name.
    pub name: String,
    /// Server states the proxy balances over (written by health checks and admin).
    pub states: Arc<ServerStates>,
    /// Counters the proxy keeps (read by stats).
    pub stats: Arc<ServiceStats>,
    task: JoinHandle<()>,
}

/// All HTTP services of a config.
pub struct Frontends {
    /// In config order.
    pub frontends: Vec<Frontend>,
    shutdown: CancellationToken,
    access_log: Option<Arc<BatchedStdoutSink>>,
}

impl Frontends {
    /// Binds every `http` service's listener, then starts its proxy. All listeners are
    /// bound before any proxy starts, so a bad address fails the start cleanly.
    pub fn start(config: &Config) -> Result<Frontends, ListenError> {
        let mut bound = Vec::new();
        for svc in &config.services {
            let Some(http) = &svc.http else { continue };
            let listener = l7::bind(http.listen).map_err(|source| ListenError {
                service: svc.name.clone(),
                addr: http.listen,
                source,
            })?;
            bound.push((Arc::clone(http), listener));
        }
        let shutdown = CancellationToken::new();
        // The access log is on when LB_LOG enables target `access` at INFO (it does by
        // default); the lines go to stdout, raw httplog, batched.
        let batched = tracing::enabled!(target: "access", tracing::Level::INFO)
            .then(BatchedStdoutSink::start);
        let sink: Arc<dyn AccessLogSink> = match &batched {
            Some(b) => b.clone(),
            None => Arc::new(NullSink),
        };
        let frontends = bound
            .into_iter()
            .map(|(http, listener)| {
                let states = Arc::new(ServerStates::all_up(http.servers.len()));
                let stats = Arc::new(ServiceStats::new(http.servers.len()));
                let name = http.name.clone();
                info!(service = %name, listen = %http.listen, servers = http.servers.len(), "HTTP proxy listening");
                let task = tokio::spawn({
                    let (states, stats, shutdown) =
                        (Arc::clone(&states), Arc::clone(&stats), shutdown.clone());
                    let sink = Arc::clone(&sink);
                    let name = name.clone();
                    async move {
                        if let Err(e) =
                            l7::serve(http, listener, states, stats, sink, shutdown)
                                .await
                        {
                            warn!(service = %name, error = %e, "HTTP proxy stopped");
                        }
                    }
                });
                Frontend { name, states, stats, task }
            })
            .collect();
        Ok(Frontends {
            frontends,
            shutdown,
            access_log: batched,
        })
    }

    /// Stops accepting, lets open connections finish for up to [`DRAIN_TIMEOUT`].
    pub async fn stop(self) {
        self.shutdown.cancel();
        for f in self.frontends {
            if tokio::time::timeout(DRAIN_TIMEOUT, f.task).await.is_err() {
                warn!(service = %f.name, "HTTP connections still open after {DRAIN_TIMEOUT:?}; closing");
            }
        }
        if let Some(log) = &self.access_log {
            log.flush();
        }
    }
}
