//! Runtime description of one `mode http` service: what the proxy needs, already
//! validated. Built by `config::http::validate_http`, never parsed from the wire.

use std::{net::SocketAddr, time::Duration};

/// `timeout connect` when the config gives none: the seed's `contimeout 5000`.
pub const DEFAULT_TIMEOUT_CONNECT: Duration = Duration::from_secs(5);
/// `timeout client` when the config gives none: the seed's `clitimeout 50000`.
pub const DEFAULT_TIMEOUT_CLIENT: Duration = Duration::from_secs(50);
/// `timeout server` when the config gives none: the seed's `srvtimeout 50000`.
pub const DEFAULT_TIMEOUT_SERVER: Duration = Duration::from_secs(50);
/// `timeout http-request` when the config gives none: the value HAProxy's manual
/// recommends (10 s), so a slowloris client cannot hold a connection for `timeout client`.
pub const DEFAULT_TIMEOUT_HTTP_REQUEST: Duration = Duration::from_secs(10);
/// `retries` when the config gives none: HAProxy's default (3).
pub const DEFAULT_RETRIES: u32 = 3;
/// Service-wide `maxconn` (concurrent client connections) when the config gives none:
/// HAProxy's default for a frontend/listen section (2000).
pub const DEFAULT_MAXCONN: u32 = 2000;
/// Server `weight` when the config gives none (HAProxy: 1).
pub const DEFAULT_WEIGHT: u32 = 1;
/// Largest server `weight` HAProxy accepts.
pub const MAX_WEIGHT: u32 = 256;
/// Largest request head (request line + headers) in bytes; HAProxy's `tune.bufsize`
/// default is 16384. Larger heads are answered with 431.
pub const DEFAULT_MAX_REQUEST_HEAD: usize = 16 * 1024;
/// Idle keep-alive connections kept per server for reuse.
pub const DEFAULT_MAX_IDLE_PER_SERVER: usize = 128;
/// How long `serve` waits for in-flight connections after shutdown is requested.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// One `mode http` service: a listener and its server farm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpService {
    /// Service name; the frontend and backend name in the access log and stats.
    pub name: String,
    /// VIP:port to listen on (bound with IP_FREEBIND, may not be local yet).
    pub listen: SocketAddr,
    /// The farm, in config order (order matters for backups and cookie lookups).
    pub servers: Vec<Server>,
    /// How a server is chosen for requests without (valid) persistence.
    pub balance: Balance,
    /// Cookie persistence, when configured.
    pub cookie: Option<CookiePersistence>,
    /// `option forwardfor`: append the client address to X-Forwarded-For.
    pub forwardfor: bool,
    /// `option httpclose`: `Connection: close` towards client and server.
    pub httpclose: bool,
    /// Connection attempts after the first one fails (HAProxy `retries`).
    pub retries: u32,
    /// `option redispatch`: a failed connect may go to another server.
    pub redispatch: bool,
    /// All timeouts of this service.
    pub timeouts: Timeouts,
    /// Concurrent client connections accepted; 0 means unlimited.
    pub maxconn: u32,
    /// Largest request head accepted before answering 431.
    pub max_request_head: usize,
    /// HTTP/1 header names keep their case end to end (hyper's preserve_header_case
    /// and title_case_headers on both sides). Off by default: HAProxy 2.x lowercases
    /// every header name, and preserving case costs a case map per message.
    pub preserve_header_case: bool,
    /// The stats page and metrics this listener answers itself (HAProxy's `stats ...`),
    /// when enabled.
    pub stats: Option<StatsPage>,
}

/// `stats uri` when the config gives none: HAProxy's default, so bookmarks keep working.
pub const DEFAULT_STATS_URI: &str = "/haproxy?stats";
/// `stats realm` when the config gives none: HAProxy's default.
pub const DEFAULT_STATS_REALM: &str = "HAProxy Statistics";

/// Where and for whom a service's listener serves the stats page (HAProxy's `stats
/// enable`, `stats uri`, `stats auth`, `stats realm`, `stats refresh`, `stats admin`)
/// and Prometheus metrics, instead of proxying the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatsPage {
    /// Requests whose path and query start with this are the stats page's
    /// (`;csv`, `;json`, `;norefresh` may follow, as in HAProxy).
    pub uri: String,
    /// Users allowed in with HTTP Basic auth; empty = no authentication.
    pub users: Vec<StatsUser>,
    /// The Basic auth realm.
    pub realm: String,
    /// The page reloads itself this often (a meta refresh; no JavaScript).
    pub refresh: Option<Duration>,
    /// Authenticated users get drain/maint/ready buttons.
    pub admin: bool,
    /// Path answered with Prometheus text metrics (same authentication), if any.
    pub prometheus_uri: Option<String>,
}

/// One `stats auth user:password`.
#[derive(Clone, PartialEq, Eq)]
pub struct StatsUser {
    /// User name.
    pub name: String,
    /// Password, in clear as HAProxy's `stats auth` takes it.
    pub password: String,
}

impl std::fmt::Debug for StatsUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the password (configs are logged in debug output).
        f.debug_struct("StatsUser")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl StatsPage {
    /// Whether the proxy answers this request itself instead of forwarding it.
    pub fn matches(&self, uri: &hyper::Uri) -> bool {
        let pq = uri.path_and_query().map_or("/", |p| p.as_str());
        pq.starts_with(self.uri.as_str())
            || self
                .prometheus_uri
                .as_deref()
                .is_some_and(|m| uri.path() == m)
    }
}

/// One backend server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    /// Server name (logs, stats, admin commands).
    pub name: String,
    /// Where to connect.
    pub addr: SocketAddr,
    /// Relative share of new requests, 1..=256 (HAProxy's range); 0 never happens here
    /// because drain is a run-time state, not a weight.
    pub weight: u32,
    /// Persistence cookie value naming this server, when it takes part in persistence.
    pub cookie: Option<String>,
    /// Only used when no non-backup server is usable.
    pub backup: bool,
    /// Concurrent requests sent to this server; 0 means unlimited. Excess requests wait
    /// in the server's queue for at most `timeout queue`.
    pub maxconn: u32,
}

/// Load-balancing algorithm (HAProxy `balance`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Balance {
    /// Weighted round robin, smooth (interleaved) like HAProxy's dynamic roundrobin.
    #[default]
    RoundRobin,
    /// Fewest in-flight requests relative to weight.
    LeastConn,
    /// Hash of the client address over the weighted usable servers.
    Source,
}

/// `cookie <name> <mode> ...`: one persistence cookie per service, as in HAProxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CookiePersistence {
    /// Cookie name (case-sensitive, like HAProxy).
    pub name: String,
    /// Which of HAProxy's three modes.
    pub mode: CookieMode,
    /// `indirect`: no cookie is emitted to a client that already has a valid one; the
    /// server's own cookie of that name is removed; in insert mode the cookie is also
    /// removed from requests sent to the server.
    pub indirect: bool,
    /// `preserve`: leave a persistence cookie emitted by the server untouched.
    pub preserve: bool,
}

/// HAProxy's cookie modes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CookieMode {
    /// The application's cookie value gets `<server cookie>~` in front.
    Prefix,
    /// The proxy inserts its own cookie.
    Insert(InsertOptions),
    /// The application's cookie value is replaced by the server's cookie value.
    Rewrite,
}

/// Options only meaningful in insert mode.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InsertOptions {
    /// `nocache`: add `Cache-control: private` to cacheable responses getting a cookie.
    pub nocache: bool,
    /// `postonly`: only insert on responses to POST requests.
    pub postonly: bool,
    /// `httponly`: add the HttpOnly attribute.
    pub httponly: bool,
    /// `secure`: add the Secure attribute.
    pub secure: bool,
    /// `domain` (may be repeated in HAProxy): one `; domain=` attribute each.
    pub domains: Vec<String>,
    /// `maxidle`: ignore cookies whose last-seen date is older than this.
    pub maxidle: Option<Duration>,
    /// `maxlife`: ignore cookies whose first-seen date is older than this.
    pub maxlife: Option<Duration>,
}

/// Timeouts of one service, HAProxy's meaning for each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Establishing the TCP connection to a server.
    pub connect: Duration,
    /// Client inactivity (no byte read or written while the client is expected to act).
    pub client: Duration,
    /// Server inactivity: waiting for response headers, and between body chunks.
    pub server: Duration,
    /// Receiving a complete request head; exceeded -> 408.
    pub http_request: Duration,
    /// Waiting in a server queue for a free slot (`maxconn`); exceeded -> 503.
    pub queue: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: DEFAULT_TIMEOUT_CONNECT,
            client: DEFAULT_TIMEOUT_CLIENT,
            server: DEFAULT_TIMEOUT_SERVER,
            http_request: DEFAULT_TIMEOUT_HTTP_REQUEST,
            // HAProxy: "If unset, the connect timeout is used".
            queue: DEFAULT_TIMEOUT_CONNECT,
        }
    }
}

impl HttpService {
    /// A service with HAProxy's defaults and the given farm; handy for tests and for
    /// the validator, which overrides what the config sets.
    pub fn new(name: impl Into<String>, listen: SocketAddr, servers: Vec<Server>) -> Self {
        HttpService {
            name: name.into(),
            listen,
            servers,
            balance: Balance::RoundRobin,
            cookie: None,
            forwardfor: false,
            httpclose: false,
            retries: DEFAULT_RETRIES,
            redispatch: false,
            timeouts: Timeouts::default(),
            maxconn: DEFAULT_MAXCONN,
            max_request_head: DEFAULT_MAX_REQUEST_HEAD,
            preserve_header_case: false,
            stats: None,
        }
    }
}

impl Server {
    /// A server with default weight, no cookie, not backup, unlimited maxconn.
    pub fn new(name: impl Into<String>, addr: SocketAddr) -> Self {
        Server {
            name: name.into(),
            addr,
            weight: DEFAULT_WEIGHT,
            cookie: None,
            backup: false,
            maxconn: 0,
        }
    }
}
