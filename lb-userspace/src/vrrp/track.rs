//! Priority tracking (keepalived's `track_interface` and, for services, `track_script`):
//! a tracked interface that is down, or a tracked service none of whose servers can take
//! new sessions, lowers the priority the instance advertises by its weight, or puts the
//! instance in FAULT when the weight is 0. It is restored when the object recovers.
//!
//! Services are followed through the one flow of state: [`crate::control`] publishes
//! which services have a server available with every status change (health checks and
//! admin commands alike). Interfaces are read with `SIOCGIFFLAGS` whenever netlink
//! announces a link change, and on the instance's 100 ms link poll as a fallback.

use crate::config::vrrp::{Track, TrackEffect, TrackTarget};
use crate::control::ServiceAvailability;
use futures_util::StreamExt;
use rtnetlink::{new_multicast_connection, MulticastGroup};
use tokio::sync::watch;
use tracing::{debug, warn};

/// What the tracked objects say now.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tracked {
    /// A weight-0 object failed: the instance must be in FAULT.
    pub fault: bool,
    /// Sum of the weights of the failed objects.
    pub lower: u32,
    /// The failed objects, for logs and the status (`if:eth1`, `svc:web`).
    pub failed: Vec<String>,
}

impl Tracked {
    /// The priority to advertise for `base`: lowered by the failed weights, never under 1
    /// (keepalived's clamp); an address owner (255) is never lowered (config refuses it).
    pub fn priority(&self, base: u8) -> u8 {
        if base == 255 {
            return base;
        }
        let lowered = u32::from(base).saturating_sub(self.lower).max(1);
        u8::try_from(lowered).unwrap_or(1)
    }
}

/// Evaluates `tracks`; `link_up` says whether an interface is up with carrier. A service
/// missing from `services` (not published yet) counts as available.
pub fn evaluate(
    tracks: &[Track],
    services: &ServiceAvailability,
    link_up: impl Fn(&str) -> bool,
) -> Tracked {
    let mut t = Tracked::default();
    for tr in tracks {
        let (failed, label) = match &tr.target {
            TrackTarget::Interface(i) => (!link_up(i), format!("if:{i}")),
            TrackTarget::Service(s) => (
                !services.get(s).copied().unwrap_or(true),
                format!("svc:{s}"),
            ),
        };
        if failed {
            match tr.effect {
                TrackEffect::Fault => t.fault = true,
                TrackEffect::Lower(w) => t.lower += u32::from(w),
            }
            t.failed.push(label);
        }
    }
    t
}

/// A counter bumped on every netlink link event (RTM_NEWLINK/DELLINK): instances
/// re-read their tracked interfaces when it changes. Without netlink (it could not be
/// opened) it never changes and the 100 ms poll alone notices.
pub fn link_events() -> watch::Receiver<u64> {
    let (tx, rx) = watch::channel(0u64);
    match new_multicast_connection(&[MulticastGroup::Link]) {
        Ok((conn, _handle, mut messages)) => {
            tokio::spawn(conn);
            tokio::spawn(async move {
                while let Some((msg, _)) = messages.next().await {
                    debug!(?msg.header, "netlink link event");
                    tx.send_modify(|n| *n += 1);
                }
            });
        }
        Err(e) => warn!("netlink link events unavailable ({e}); tracked interfaces are polled"),
    }
    rx
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::{collections::BTreeMap, sync::Arc};

    fn tracks() -> Vec<Track> {
        vec![
            Track {
                target: TrackTarget::Interface("eth1".into()),
                effect: TrackEffect::Lower(50),
            },
            Track {
                target: TrackTarget::Service("web".into()),
                effect: TrackEffect::Lower(30),
            },
            Track {
                target: TrackTarget::Service("db".into()),
                effect: TrackEffect::Fault,
            },
        ]
    }

    fn services(web: bool, db: bool) -> ServiceAvailability {
        Arc::new(BTreeMap::from([("web".into(), web), ("db".into(), db)]))
    }

    #[test]
    fn weights_add_up_and_weight_zero_faults() {
        let all_ok = evaluate(&tracks(), &services(true, true), |_| true);
        assert_eq!(all_ok, Tracked::default());
        assert_eq!(all_ok.priority(150), 150);

        let t = evaluate(&tracks(), &services(false, true), |i| i != "eth1");
        assert_eq!(t.lower, 80);
        assert!(!t.fault);
        assert_eq!(t.failed, vec!["if:eth1", "svc:web"]);
        assert_eq!(t.priority(150), 70);
        assert_eq!(t.priority(50), 1, "clamped to 1");
        assert_eq!(t.priority(255), 255);

        let t = evaluate(&tracks(), &services(true, false), |_| true);
        assert!(t.fault);
        assert_eq!(t.priority(150), 150);

        let unknown = Arc::new(BTreeMap::new());
        assert!(!evaluate(&tracks(), &unknown, |_| true).fault);
    }
}
