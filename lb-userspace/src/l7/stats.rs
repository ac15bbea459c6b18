//! Counters the stats page and admin socket read: lock-free atomics, one set per
//! service and one per server, updated by the proxy as requests flow.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};

/// Counters shared by services and servers (HAProxy's stats columns).
#[derive(Debug, Default)]
pub struct Counters {
    /// `scur`: current sessions (client connections for a service, in-flight requests
    /// for a server).
    pub cur: AtomicU32,
    /// `smax`: highest `cur` seen.
    pub max: AtomicU32,
    /// `stot`: sessions since start.
    pub total: AtomicU64,
    /// `bin`: bytes received from clients (request bodies) forwarded.
    pub bytes_in: AtomicU64,
    /// `bout`: bytes of response bodies sent to clients.
    pub bytes_out: AtomicU64,
    /// `wretr`: connection retries.
    pub retries: AtomicU64,
    /// `wredis`: redispatches to another server.
    pub redispatches: AtomicU64,
    /// `econ` for servers (connect errors), `ereq` for services (bad requests).
    pub errors_conn: AtomicU64,
    /// `eresp`: errors while reading a response (includes server timeouts).
    pub errors_resp: AtomicU64,
    /// `hrsp_1xx`..`hrsp_5xx`, then `hrsp_other`.
    pub status: [AtomicU64; 6],
}

impl Counters {
    /// A session (connection or request) starts: cur+1, max, total+1.
    pub fn open(&self) {
        let now = self.cur.fetch_add(1, Relaxed).saturating_add(1);
        self.max.fetch_max(now, Relaxed);
        self.total.fetch_add(1, Relaxed);
    }

    /// The session ends.
    pub fn close(&self) {
        // Never wraps below zero even if open/close were ever unbalanced.
        let _ = self
            .cur
            .fetch_update(Relaxed, Relaxed, |v| Some(v.saturating_sub(1)));
    }

    /// Counts one response by status class.
    pub fn count_status(&self, status: u16) {
        let i = match status {
            100..=199 => 0,
            200..=299 => 1,
            300..=399 => 2,
            400..=499 => 3,
            500..=599 => 4,
            _ => 5,
        };
        self.status[i].fetch_add(1, Relaxed);
    }
}

/// Counters of one server.
#[derive(Debug, Default)]
pub struct ServerStats {
    /// Traffic and errors.
    pub counters: Counters,
    /// `qcur`: requests waiting for a slot (`maxconn`).
    pub queue_cur: AtomicU32,
    /// `qmax`: highest `qcur` seen.
    pub queue_max: AtomicU32,
}

/// Counters of one service and its servers (same order as the farm).
#[derive(Debug, Default)]
pub struct ServiceStats {
    /// Frontend side: client connections, requests answered, bad requests.
    pub counters: Counters,
    /// Requests received (`req_tot`).
    pub requests: AtomicU64,
    /// Requests answered 503 because no server was usable or the queue timed out.
    pub no_server: AtomicU64,
    /// Upgraded connections (WebSocket) relayed as byte tunnels: `cur`/`max`/`total`
    /// tunnels, `bytes_in` client to server, `bytes_out` server to client.
    pub tunnels: Counters,
    /// Upgrades answered 101 by the server whose tunnel could not be set up.
    pub tunnel_failures: AtomicU64,
    /// Requests answered by the listener itself (stats page, metrics): HAProxy's
    /// `intercepted`.
    pub intercepted: AtomicU64,
    /// Per server, in config order.
    pub servers: Vec<ServerStats>,
}

impl ServiceStats {
    /// Zeroed counters for a farm of `n` servers.
    pub fn new(n: usize) -> Self {
        ServiceStats {
            servers: (0..n).map(|_| ServerStats::default()).collect(),
            ..Default::default()
        }
    }

    /// In-flight requests per server, for leastconn.
    pub fn inflight(&self) -> Vec<u32> {
        self.servers
            .iter()
            .map(|s| s.counters.cur.load(Relaxed))
            .collect()
    }
}
