//! `slowstart`: a server that comes back UP gets its weight ramped from almost nothing to
//! the full value over the slowstart period, so a cold cache or JIT is not flooded.
//!
//! As in HAProxy, the ramp applies only after the server was seen DOWN, never to the
//! initial UP state at start (that would throttle healthy servers on every restart). The
//! state manager recomputes weights with [`slowstart_weight`] while
//! [`slowstart_active`] is true (HAProxy does it about every second) and rebuilds the
//! snapshot (L7 rotation and Maglev tables) when the value changes.

use std::time::{Duration, Instant};

/// Effective weight `now`: `weight` scaled by the elapsed fraction of `slowstart` since
/// `up_since`, rounded up and at least 1 (a server that is UP always gets some traffic).
/// Full weight without a slowstart, without `up_since`, or once the period is over.
pub fn slowstart_weight(
    weight: u32,
    up_since: Option<Instant>,
    slowstart: Option<Duration>,
    now: Instant,
) -> u32 {
    let (Some(since), Some(period)) = (up_since, slowstart) else {
        return weight;
    };
    if weight == 0 || period.is_zero() {
        return weight;
    }
    let elapsed = now.saturating_duration_since(since);
    if elapsed >= period {
        return weight;
    }
    let num = u128::from(weight) * elapsed.as_nanos();
    let w = num.div_ceil(period.as_nanos());
    u32::try_from(w).unwrap_or(weight).clamp(1, weight)
}

/// Whether the ramp is still in progress (the weight must be recomputed later).
pub fn slowstart_active(
    up_since: Option<Instant>,
    slowstart: Option<Duration>,
    now: Instant,
) -> bool {
    match (up_since, slowstart) {
        (Some(since), Some(period)) => now.saturating_duration_since(since) < period,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ramps_linearly_and_rounds_up() {
        let t0 = Instant::now();
        let ss = Some(Duration::from_secs(10));
        let at = |s: u64| t0 + Duration::from_secs(s);
        assert_eq!(slowstart_weight(100, Some(t0), ss, t0), 1);
        assert_eq!(slowstart_weight(100, Some(t0), ss, at(1)), 10);
        assert_eq!(slowstart_weight(100, Some(t0), ss, at(5)), 50);
        assert_eq!(slowstart_weight(100, Some(t0), ss, at(10)), 100);
        assert_eq!(slowstart_weight(100, Some(t0), ss, at(99)), 100);
        assert_eq!(slowstart_weight(3, Some(t0), ss, at(1)), 1);
        assert_eq!(slowstart_weight(3, Some(t0), ss, at(4)), 2);
        assert_eq!(slowstart_weight(0, Some(t0), ss, at(4)), 0);
        assert_eq!(slowstart_weight(7, None, ss, at(1)), 7);
        assert_eq!(slowstart_weight(7, Some(t0), None, at(1)), 7);
        assert_eq!(
            slowstart_weight(u32::MAX, Some(t0), ss, at(5)),
            u32::MAX / 2 + 1
        );
        assert!(slowstart_active(Some(t0), ss, at(9)));
        assert!(!slowstart_active(Some(t0), ss, at(10)));
        assert!(!slowstart_active(None, ss, at(1)));
    }
}
