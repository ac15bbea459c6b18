//! Passive health: `observe layer4|layer7`, `error-limit`, `on-error`.
//!
//! The proxy reports what it sees on real traffic through an [`Observer`] (a cheap clone,
//! one atomic operation per report). After `error-limit` consecutive errors the check task
//! applies the `on-error` action to the server's health counter and brings its next check
//! forward to `fastinter`, as HAProxy does. Which events count at which layer follows
//! HAProxy's table: at `layer4` only connection results count; at `layer7` connection
//! errors and HTTP responses count (5xx except 501 and 505 are errors, everything else
//! resets the run of errors), and successful connects are ignored.

use std::sync::{
    atomic::{AtomicU32, Ordering},
    Arc,
};
use tokio::sync::mpsc;

/// `error-limit` when not configured.
pub const DEFAULT_ERROR_LIMIT: u32 = 10;

/// `observe`: which traffic results count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObserveLayer {
    /// Connection establishment only.
    Layer4,
    /// Connection errors and HTTP responses.
    Layer7,
}

impl ObserveLayer {
    /// The config word.
    pub fn as_str(self) -> &'static str {
        match self {
            ObserveLayer::Layer4 => "layer4",
            ObserveLayer::Layer7 => "layer7",
        }
    }
}

/// `on-error`: what `error-limit` consecutive errors do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnError {
    /// Only bring the next check forward (`fastinter`).
    Fastinter,
    /// Count one failed check (HAProxy's default).
    FailCheck,
    /// Leave one failure of margin and count a failed check: the next failure downs it.
    SuddenDeath,
    /// Mark the server DOWN now.
    MarkDown,
}

impl OnError {
    /// The config word.
    pub fn as_str(self) -> &'static str {
        match self {
            OnError::Fastinter => "fastinter",
            OnError::FailCheck => "fail-check",
            OnError::SuddenDeath => "sudden-death",
            OnError::MarkDown => "mark-down",
        }
    }
}

/// Passive observation settings of one server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ObserveSettings {
    /// What counts.
    pub layer: ObserveLayer,
    /// Consecutive errors that trigger `on_error`.
    pub error_limit: u32,
    /// The action.
    pub on_error: OnError,
}

/// One result the proxy saw on real traffic to a server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObservedEvent {
    /// Connect to the server failed (refused, timeout, reset before established).
    ConnectError,
    /// Connect succeeded.
    ConnectOk,
    /// A response with this status.
    HttpStatus(u16),
    /// The response headers could not be parsed.
    HttpBadHeaders,
    /// The response was not HTTP.
    HttpBadResponse,
    /// Read error while waiting for the response.
    HttpReadError,
    /// `timeout server` expired while waiting for the response.
    HttpReadTimeout,
    /// The server closed before responding.
    HttpBrokenPipe,
}

impl ObservedEvent {
    /// HAProxy's description, used in the "Detected N consecutive errors" reason.
    pub fn description(self) -> &'static str {
        match self {
            ObservedEvent::ConnectError => "L4 unsuccessful connection",
            ObservedEvent::ConnectOk => "L4 successful connection",
            ObservedEvent::HttpStatus(s) if is_http_error(s) => "Wrong http response",
            ObservedEvent::HttpStatus(_) => "Correct http response",
            ObservedEvent::HttpBadHeaders => "Invalid http response (headers)",
            ObservedEvent::HttpBadResponse => "Invalid http response",
            ObservedEvent::HttpReadError => "Read error (http)",
            ObservedEvent::HttpReadTimeout => "Read timeout (http)",
            ObservedEvent::HttpBrokenPipe => "Close from server (http)",
        }
    }

    /// `Some(true)` an error, `Some(false)` a success, `None` ignored at this layer.
    pub fn classify(self, layer: ObserveLayer) -> Option<bool> {
        match (layer, self) {
            (_, ObservedEvent::ConnectError) => Some(true),
            (ObserveLayer::Layer4, ObservedEvent::ConnectOk) => Some(false),
            (ObserveLayer::Layer4, _) => None,
            (ObserveLayer::Layer7, ObservedEvent::ConnectOk) => None,
            (ObserveLayer::Layer7, ObservedEvent::HttpStatus(s)) => Some(is_http_error(s)),
            (ObserveLayer::Layer7, _) => Some(true),
        }
    }
}

/// 5xx is a server error, except 501 (not implemented) and 505 (version not supported),
/// which are about the request.
fn is_http_error(status: u16) -> bool {
    (500..=599).contains(&status) && status != 501 && status != 505
}

/// What the task receives when the error limit is reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Tripped {
    /// Consecutive errors counted.
    pub errors: u32,
    /// The last one.
    pub last: ObservedEvent,
}

impl Tripped {
    /// HAProxy's info text for the HANA status.
    pub(crate) fn info(&self) -> String {
        format!(
            "Detected {} consecutive errors, last one was: {}",
            self.errors,
            self.last.description()
        )
    }
}

/// The proxy's handle for reporting traffic results of one server. Cloning is cheap;
/// reporting never blocks. A server without `observe` gets a no-op observer.
#[derive(Clone, Debug, Default)]
pub struct Observer {
    inner: Option<Arc<Inner>>,
}

#[derive(Debug)]
struct Inner {
    settings: ObserveSettings,
    consecutive: AtomicU32,
    trip: mpsc::Sender<Tripped>,
}

impl Observer {
    /// An observer that ignores every report (no `observe` on the server).
    pub fn disabled() -> Self {
        Observer { inner: None }
    }

    pub(crate) fn new(settings: ObserveSettings, trip: mpsc::Sender<Tripped>) -> Self {
        Observer {
            inner: Some(Arc::new(Inner {
                settings,
                consecutive: AtomicU32::new(0),
                trip,
            })),
        }
    }

    /// Whether reports have any effect (lets the proxy skip building them).
    pub fn is_enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// Reports one connection or response result (HAProxy's `health_adjust`).
    pub fn report(&self, event: ObservedEvent) {
        let Some(inner) = &self.inner else { return };
        match event.classify(inner.settings.layer) {
            None => {}
            Some(false) => inner.consecutive.store(0, Ordering::Relaxed),
            Some(true) => {
                let n = inner
                    .consecutive
                    .fetch_add(1, Ordering::Relaxed)
                    .saturating_add(1);
                if n >= inner.settings.error_limit.max(1) {
                    inner.consecutive.store(0, Ordering::Relaxed);
                    // A full channel means a trip is already pending: dropping this one
                    // loses nothing HAProxy would not also have merged.
                    let _ = inner.trip.try_send(Tripped {
                        errors: n,
                        last: event,
                    });
                }
            }
        }
    }

    /// Clears the run of errors: a passed active check does this.
    pub(crate) fn reset(&self) {
        if let Some(inner) = &self.inner {
            inner.consecutive.store(0, Ordering::Relaxed);
        }
    }

    /// Errors counted since the last success or trip.
    pub fn consecutive_errors(&self) -> u32 {
        self.inner
            .as_ref()
            .map_or(0, |i| i.consecutive.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ObservedEvent::*;

    #[test]
    fn classification_follows_haproxy_table() {
        use ObserveLayer::{Layer4 as L4, Layer7 as L7};
        assert_eq!(ConnectError.classify(L4), Some(true));
        assert_eq!(ConnectOk.classify(L4), Some(false));
        assert_eq!(HttpStatus(500).classify(L4), None);
        assert_eq!(HttpReadTimeout.classify(L4), None);
        assert_eq!(ConnectError.classify(L7), Some(true));
        assert_eq!(ConnectOk.classify(L7), None);
        for (s, err) in [
            (200, false),
            (404, false),
            (500, true),
            (501, false),
            (502, true),
            (503, true),
            (505, false),
            (599, true),
        ] {
            assert_eq!(HttpStatus(s).classify(L7), Some(err), "{s}");
        }
        for e in [
            HttpBadHeaders,
            HttpBadResponse,
            HttpReadError,
            HttpReadTimeout,
            HttpBrokenPipe,
        ] {
            assert_eq!(e.classify(L7), Some(true));
        }
    }

    #[test]
    fn trips_after_limit_and_resets() {
        let (tx, mut rx) = mpsc::channel(1);
        let o = Observer::new(
            ObserveSettings {
                layer: ObserveLayer::Layer7,
                error_limit: 3,
                on_error: OnError::FailCheck,
            },
            tx,
        );
        o.report(HttpStatus(502));
        o.report(HttpStatus(502));
        o.report(HttpStatus(200)); // resets
        o.report(HttpStatus(502));
        o.report(ConnectOk); // ignored at layer7
        o.report(HttpReadTimeout);
        assert_eq!(o.consecutive_errors(), 2);
        assert!(rx.try_recv().is_err());
        o.report(ConnectError);
        let t = rx.try_recv().unwrap();
        assert_eq!(t.errors, 3);
        assert_eq!(
            t.info(),
            "Detected 3 consecutive errors, last one was: L4 unsuccessful connection"
        );
        assert_eq!(o.consecutive_errors(), 0);
        // Disabled observers ignore everything.
        let d = Observer::disabled();
        d.report(ConnectError);
        assert!(!d.is_enabled());
        assert_eq!(d.consecutive_errors(), 0);
    }
}
