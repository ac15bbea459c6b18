//! The stats page (HAProxy's `stats uri`), its `;csv` and `;json` exports and Prometheus
//! metrics, served on each `http` service's own listener, and `show stat` on the admin
//! socket. One [`model::Snapshot`] feeds every rendering ([`html`], [`csv`], [`json`],
//! [`prometheus`]), so they agree.
//!
//! The daemon [`install`]s the [`Sources`] once its state manager runs; the proxy hands
//! every request its service's [`crate::l7::StatsPage`] matches to [`StatsHandler`].

pub mod auth;
pub mod csv;
pub mod html;
pub mod json;
pub mod model;
pub mod prometheus;

use crate::{
    admin::{AdminCommand, AdminHandler, AdminState, ServerRef},
    control::Control,
    dataplane::stats::XdpReader,
    l7::{
        intercept::{self, Intercept, InterceptFuture},
        StatsPage,
    },
};
use auth::CsrfToken;
use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::{
    body::Incoming,
    header::{self, HeaderValue},
    Method, Request, Response, StatusCode,
};
use model::Snapshot;
use std::{
    net::SocketAddr,
    sync::{Arc, Mutex, RwLock},
    time::Duration,
};

/// Largest admin form body accepted.
pub const MAX_FORM: usize = 4096;
/// How long a client may take to send the admin form body.
pub const FORM_TIMEOUT: Duration = Duration::from_secs(5);

/// VRRP status lines (`instance=... state=...`, one per instance).
pub type VrrpReporter = Arc<dyn Fn() -> String + Send + Sync>;

/// Where the figures come from: the state manager, the XDP counter maps, VRRP.
pub struct Sources {
    control: Arc<Control>,
    xdp: Result<Arc<Mutex<XdpReader>>, String>,
    vrrp: Option<VrrpReporter>,
    token: CsrfToken,
}

impl Sources {
    /// Sources for a running daemon; `xdp` is the reader of its pinned maps (or why
    /// there is none). Fails only if the kernel gives no random bytes for the token.
    pub fn new(
        control: Arc<Control>,
        xdp: Result<XdpReader, String>,
        vrrp: Option<VrrpReporter>,
    ) -> std::io::Result<Sources> {
        Ok(Sources {
            control,
            xdp: xdp.map(|r| Arc::new(Mutex::new(r))),
            vrrp,
            token: CsrfToken::generate()?,
        })
    }

    /// The state manager the figures come from.
    pub fn control(&self) -> &Control {
        &self.control
    }

    /// Takes a snapshot. `conntrack` also counts the conntrack tables (a walk of up to
    /// `2 x l4.conntrack_size` keys, done off the async workers).
    pub async fn snapshot(&self, conntrack: bool) -> Snapshot {
        let cfg = self.control.config();
        let (vips, backends) = model::xdp_targets(&cfg);
        let xdp = match &self.xdp {
            Ok(reader) => {
                let reader = Arc::clone(reader);
                tokio::task::spawn_blocking(move || {
                    let mut r = reader.lock().unwrap_or_else(|e| e.into_inner());
                    r.read(&vips, &backends, conntrack)
                        .map(|f| (f, conntrack))
                        .map_err(|e| e.to_string())
                })
                .await
                .unwrap_or_else(|e| Err(e.to_string()))
            }
            Err(e) => Err(e.clone()),
        };
        model::build(&self.control, xdp, self.vrrp.as_ref().map(|f| f()))
    }
}

static SOURCES: RwLock<Option<Arc<Sources>>> = RwLock::new(None);

/// Makes `sources` what `show stat` and every service's stats page read, and starts
/// answering stats requests on the listeners.
pub fn install(sources: Sources) {
    let s = Arc::new(sources);
    *SOURCES.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::clone(&s));
    intercept::install(Arc::new(StatsHandler { sources: s }));
}

/// The installed sources, if any.
pub fn sources() -> Option<Arc<Sources>> {
    SOURCES.read().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Answers stats requests on the services' listeners.
pub struct StatsHandler {
    sources: Arc<Sources>,
}

/// What a stats request asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// The HTML page (`norefresh`: without the meta refresh; `st`: an admin outcome).
    Page {
        /// `;norefresh`.
        norefresh: bool,
        /// `;st=...`.
        st: Option<String>,
    },
    /// `;csv`.
    Csv,
    /// `;json`.
    Json,
    /// The Prometheus endpoint.
    Metrics,
}

/// Which view of `page` a request URI asks for, if any (HAProxy's `;csv`, `;json`,
/// `;norefresh`, `;st=` suffixes after the stats uri).
pub fn target(page: &StatsPage, uri: &hyper::Uri) -> Option<Target> {
    let pq = uri.path_and_query().map_or("/", |p| p.as_str());
    if let Some(rest) = pq.strip_prefix(page.uri.as_str()) {
        let mut t = Target::Page {
            norefresh: false,
            st: None,
        };
        let mut norefresh = false;
        let mut st = None;
        for opt in rest.split(';').filter(|o| !o.is_empty()) {
            match opt {
                "csv" => t = Target::Csv,
                "json" => t = Target::Json,
                "norefresh" => norefresh = true,
                o => {
                    if let Some(v) = o.strip_prefix("st=") {
                        st = Some(v.to_string());
                    }
                }
            }
        }
        if let Target::Page { .. } = t {
            t = Target::Page { norefresh, st };
        }
        return Some(t);
    }
    (page.prometheus_uri.as_deref() == Some(uri.path())).then_some(Target::Metrics)
}

fn respond(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Bytes> {
    let mut r = Response::new(body.into());
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

/// HAProxy's 401 page with the realm's challenge.
fn unauthorized(realm: &str) -> Response<Bytes> {
    let mut r = respond(
        StatusCode::UNAUTHORIZED,
        "text/html",
        "<html><body><h1>401 Unauthorized</h1>\nYou need a valid user and password to access this content.\n</body></html>\n",
    );
    if let Ok(v) = HeaderValue::from_str(&format!("Basic realm=\"{realm}\"")) {
        r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    r
}

fn plain(status: StatusCode, text: &str) -> Response<Bytes> {
    respond(status, "text/plain; charset=utf-8", format!("{text}\n"))
}

/// Decodes `application/x-www-form-urlencoded` text.
pub fn form_decode(body: &str) -> Vec<(String, String)> {
    fn dec(s: &str) -> String {
        let b = s.as_bytes();
        let mut out = Vec::with_capacity(b.len());
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < b.len() => {
                    let hex = std::str::from_utf8(&b[i + 1..i + 3])
                        .ok()
                        .and_then(|h| u8::from_str_radix(h, 16).ok());
                    match hex {
                        Some(v) => {
                            out.push(v);
                            i += 2;
                        }
                        None => out.push(b'%'),
                    }
                }
                c => out.push(c),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    body.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (dec(k), dec(v))
        })
        .collect()
}

/// Whether the request's Origin (or, without one, Referer) is this listener's own page:
/// browsers send one of them with a cross-site form POST, so a forged one shows here.
/// A request with neither (not a browser) relies on the token alone.
pub fn same_origin(req_headers: &hyper::HeaderMap) -> bool {
    let Some(host) = req_headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    let ok = |u: &str| {
        ["http://", "https://"].iter().any(|scheme| {
            u.strip_prefix(scheme).is_some_and(|rest| {
                rest == host || rest.strip_prefix(host).is_some_and(|r| r.starts_with('/'))
            })
        })
    };
    if let Some(o) = req_headers.get(header::ORIGIN) {
        return o.to_str().is_ok_and(ok);
    }
    if let Some(r) = req_headers.get(header::REFERER) {
        return r.to_str().is_ok_and(ok);
    }
    true
}

impl StatsHandler {
    async fn answer(&self, service: &str, req: Request<Incoming>) -> Response<Bytes> {
        let cfg = self.sources.control.config();
        let Some(page) = cfg
            .services
            .iter()
            .find(|s| s.name == service)
            .and_then(|s| s.http.as_ref())
            .and_then(|h| h.stats.clone())
        else {
            return plain(StatusCode::NOT_FOUND, "no stats page here");
        };
        let Some(target) = target(&page, req.uri()) else {
            return plain(StatusCode::NOT_FOUND, "no stats page here");
        };
        let user = auth::authenticate(
            &page.users,
            req.headers()
                .get(header::AUTHORIZATION)
                .map(|v| v.as_bytes()),
        )
        .map(str::to_string);
        if !page.users.is_empty() && user.is_none() {
            return unauthorized(&page.realm);
        }
        match *req.method() {
            Method::GET | Method::HEAD => {}
            Method::POST if matches!(target, Target::Page { .. }) => {
                return self.admin_action(&page, user.is_some(), req).await;
            }
            _ => {
                let mut r = plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
                r.headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD, POST"));
                return r;
            }
        }
        match target {
            Target::Csv => {
                let snap = self.sources.snapshot(false).await;
                respond(StatusCode::OK, "text/csv", csv::render(&snap))
            }
            Target::Json => {
                let snap = self.sources.snapshot(true).await;
                respond(StatusCode::OK, "application/json", json::render(&snap))
            }
            Target::Metrics => {
                let snap = self.sources.snapshot(true).await;
                respond(
                    StatusCode::OK,
                    prometheus::CONTENT_TYPE,
                    prometheus::render(&snap),
                )
            }
            Target::Page { norefresh, st } => {
                let snap = self.sources.snapshot(true).await;
                let notice = st.as_deref().map(|s| match s {
                    "DONE" => "Action processed successfully.",
                    "NOSRV" => "Action not processed: no such server.",
                    "DENY" => "Action denied.",
                    _ => "Action not processed.",
                });
                let admin = page.admin && user.is_some();
                let opts = html::PageOptions {
                    uri: &page.uri,
                    refresh: page
                        .refresh
                        .filter(|_| !norefresh)
                        .map(|d| d.as_secs().max(1)),
                    admin_token: admin.then(|| self.sources.token.as_str()),
                    user: user.as_deref(),
                    notice,
                    prometheus_uri: page.prometheus_uri.as_deref(),
                };
                let mut r = respond(
                    StatusCode::OK,
                    "text/html; charset=utf-8",
                    html::render(&snap, &opts),
                );
                // No framing (clickjacking of the admin buttons), no scripts, forms
                // only to this page.
                let h = r.headers_mut();
                h.insert("x-frame-options", HeaderValue::from_static("DENY"));
                h.insert(
                    header::CONTENT_SECURITY_POLICY,
                    HeaderValue::from_static(
                        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
                    ),
                );
                h.insert(
                    header::REFERRER_POLICY,
                    HeaderValue::from_static("same-origin"),
                );
                r
            }
        }
    }

    /// A drain/maint/ready button: authenticated admin, right token, same origin.
    async fn admin_action(
        &self,
        page: &StatsPage,
        authenticated: bool,
        req: Request<Incoming>,
    ) -> Response<Bytes> {
        if !page.admin || !authenticated {
            return plain(
                StatusCode::FORBIDDEN,
                "admin actions are not enabled for you",
            );
        }
        if !same_origin(req.headers()) {
            return plain(StatusCode::FORBIDDEN, "cross-site request refused");
        }
        let body = Limited::new(req.into_body(), MAX_FORM);
        let body = match tokio::time::timeout(FORM_TIMEOUT, body.collect()).await {
            Ok(Ok(b)) => b.to_bytes(),
            Ok(Err(_)) => return plain(StatusCode::PAYLOAD_TOO_LARGE, "form too large"),
            Err(_) => return plain(StatusCode::REQUEST_TIMEOUT, "form not received in time"),
        };
        let form = form_decode(&String::from_utf8_lossy(&body));
        let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        if !get("token").is_some_and(|t| self.sources.token.verify(t)) {
            return plain(
                StatusCode::FORBIDDEN,
                "missing or wrong form token: reload the page",
            );
        }
        let state = match get("action") {
            Some("ready") => AdminState::Ready,
            Some("drain") => AdminState::Drain,
            Some("maint") => AdminState::Maint,
            _ => {
                return plain(
                    StatusCode::BAD_REQUEST,
                    "action must be ready, drain or maint",
                )
            }
        };
        let (Some(b), Some(s)) = (get("b"), get("s")) else {
            return plain(StatusCode::BAD_REQUEST, "missing b (service) or s (server)");
        };
        let r = ServerRef {
            service: b.to_string(),
            server: s.to_string(),
        };
        tracing::info!(target: "health", server = %r, state = state.as_str(), "stats page admin action");
        let st = match self
            .sources
            .control
            .handle(AdminCommand::SetState(r, state))
            .await
        {
            Ok(_) => "DONE",
            Err(_) => "NOSRV",
        };
        let mut resp = respond(StatusCode::SEE_OTHER, "text/plain", Bytes::new());
        if let Ok(v) = HeaderValue::from_str(&format!("{};st={st}", page.uri)) {
            resp.headers_mut().insert(header::LOCATION, v);
        }
        resp
    }
}

impl Intercept for StatsHandler {
    fn handle(&self, service: &str, req: Request<Incoming>, _peer: SocketAddr) -> InterceptFuture {
        let me = StatsHandler {
            sources: Arc::clone(&self.sources),
        };
        let service = service.to_string();
        Box::pin(async move { me.answer(&service, req).await })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page() -> StatsPage {
        StatsPage {
            uri: "/haproxy?stats".into(),
            users: vec![],
            realm: "r".into(),
            refresh: None,
            admin: false,
            prometheus_uri: Some("/metrics".into()),
        }
    }

    #[test]
    fn targets_follow_haproxy_suffixes() {
        let p = page();
        let t = |u: &str| target(&p, &u.parse().unwrap());
        assert_eq!(
            t("/haproxy?stats"),
            Some(Target::Page {
                norefresh: false,
                st: None
            })
        );
        assert_eq!(t("/haproxy?stats;csv"), Some(Target::Csv));
        assert_eq!(t("/haproxy?stats;csv;norefresh"), Some(Target::Csv));
        assert_eq!(t("/haproxy?stats;json"), Some(Target::Json));
        assert_eq!(
            t("/haproxy?stats;norefresh;st=DONE"),
            Some(Target::Page {
                norefresh: true,
                st: Some("DONE".into())
            })
        );
        assert_eq!(t("/metrics"), Some(Target::Metrics));
        assert_eq!(t("/metrics?x=1"), Some(Target::Metrics));
        assert_eq!(t("/"), None);
        assert_eq!(t("/haproxy"), None);
    }

    #[test]
    fn forms_decode() {
        assert_eq!(
            form_decode("token=ab%20c&b=web+farm&s=%E2%9C%93&x"),
            vec![
                ("token".into(), "ab c".into()),
                ("b".into(), "web farm".into()),
                ("s".into(), "\u{2713}".into()),
                ("x".into(), String::new())
            ]
        );
        assert_eq!(
            form_decode("a=%zz&b=%4"),
            vec![("a".into(), "%zz".into()), ("b".into(), "%4".into())]
        );
    }

    #[test]
    fn origin_checks() {
        let mut h = hyper::HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("198.18.0.99"));
        assert!(same_origin(&h), "no Origin/Referer: token only");
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://198.18.0.99"),
        );
        assert!(same_origin(&h));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://evil.example"),
        );
        assert!(!same_origin(&h));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://198.18.0.99.evil.example"),
        );
        assert!(!same_origin(&h));
        h.remove(header::ORIGIN);
        h.insert(
            header::REFERER,
            HeaderValue::from_static("http://198.18.0.99/haproxy?stats"),
        );
        assert!(same_origin(&h));
        h.insert(
            header::REFERER,
            HeaderValue::from_static("http://evil.example/x"),
        );
        assert!(!same_origin(&h));
    }
}
