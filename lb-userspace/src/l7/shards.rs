//! Per-core event loops for client connections, as HAProxy runs one thread per core
//! (`nbthread`): every loop, a current-thread tokio runtime on its own thread, accepts
//! on each service's listener and keeps what it accepts with everything it starts (its
//! server connections, timers, tunnels). A request then never crosses threads: on the
//! work-stealing runtime the client and server connection tasks of one request woke
//! each other across workers, and each wake of a parked worker is a futex call; handing
//! accepted connections from one accepting thread to the loops cost a wake-up each.

use std::sync::{
    atomic::{AtomicUsize, Ordering::Relaxed},
    OnceLock,
};
use tokio::runtime::Handle;

/// Most loops started, whatever the core count.
pub const MAX_SHARDS: usize = 64;
/// Period of each loop's heartbeat timer. tokio wakes its own event loop (an eventfd
/// write, then an extra epoll_wait) whenever a timer is armed earlier than the loop's
/// next planned wake-up; with no timer pending that is every connection's first timer
/// (its connect, read or header timeout): about one wasted wake-up per httpclose
/// request. A timer always due within this period keeps the planned wake-up nearer
/// than the proxy's timeouts (seconds), at the cost of one wake-up per period.
pub const HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(1);

static SHARDS: OnceLock<Vec<Handle>> = OnceLock::new();
/// Client connections open on each loop (HAProxy's per-thread count), for [`place`].
static LOADS: [AtomicUsize; MAX_SHARDS] = [const { AtomicUsize::new(0) }; MAX_SHARDS];

thread_local! {
    /// The index of the loop this thread runs, if it is one.
    static INDEX: std::cell::Cell<Option<usize>> = const { std::cell::Cell::new(None) };
}

/// The loops, started on first use: one per available core. Empty if none could be
/// started (connections then stay on the caller's runtime).
pub fn loops() -> &'static [Handle] {
    SHARDS.get_or_init(|| {
        let n = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(MAX_SHARDS);
        (0..n).filter_map(start).collect()
    })
}

fn start(i: usize) -> Option<Handle> {
    let (tx, rx) = std::sync::mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name(format!("lb-http-{i}"))
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::warn!(error = %e, "HTTP event loop {i} could not start");
                    return;
                }
            };
            INDEX.with(|c| c.set(Some(i)));
            let _ = tx.send(rt.handle().clone());
            // Runs the connections handed to it for the life of the process.
            rt.block_on(async {
                let mut beat = tokio::time::interval(HEARTBEAT);
                beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    beat.tick().await;
                }
            });
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "HTTP event loop {i}: no thread");
        return None;
    }
    rx.recv().ok()
}

/// A client connection counted against the loop that serves it, until dropped.
#[derive(Debug)]
pub struct Load(usize);

impl Drop for Load {
    fn drop(&mut self) {
        LOADS[self.0].fetch_sub(1, Relaxed);
    }
}

/// Where a connection just accepted on this thread runs: the loop that accepted it,
/// unless another loop has clearly fewer connections (by two and a quarter), as
/// HAProxy's accept dispatch does. Without this, the loop that happens to be awake
/// takes a whole burst of new connections (wrk's 50 keep-alive connections at once)
/// and keeps them all. `None`: stay on this loop (or thread, if it is none).
pub fn place() -> (Option<&'static Handle>, Load) {
    let all = loops();
    let here = slot();
    let (mut best, mut best_load) = (here, usize::MAX);
    for (i, l) in LOADS.iter().enumerate().take(all.len()) {
        let l = l.load(Relaxed);
        if l < best_load {
            (best, best_load) = (i, l);
        }
    }
    let target = match LOADS.get(here) {
        Some(mine) if here < all.len() => {
            let mine = mine.load(Relaxed);
            if best != here && mine >= best_load + 2 + best_load / 4 {
                best
            } else {
                here
            }
        }
        // Not a loop thread: the least loaded loop.
        _ => best,
    };
    match all.get(target) {
        Some(h) => {
            LOADS[target].fetch_add(1, Relaxed);
            ((target != here).then_some(h), Load(target))
        }
        None => {
            LOADS[0].fetch_add(1, Relaxed);
            (None, Load(0))
        }
    }
}

/// Number of per-loop slots a structure shared by all loops needs: one per loop, plus
/// one for every other thread.
pub fn slots() -> usize {
    loops().len() + 1
}

/// This thread's slot in such a structure (see [`slots`]).
pub fn slot() -> usize {
    INDEX.with(|c| c.get()).unwrap_or(loops().len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn connections_are_spread_over_one_loop_per_core() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert_eq!(slots(), cores.min(MAX_SHARDS) + 1);
        assert_eq!(slot(), slots() - 1, "a test thread is no loop");
        let mut seen = std::collections::BTreeSet::new();
        for h in loops() {
            let (idx, name) = h
                .spawn(async { (slot(), std::thread::current().name().map(String::from)) })
                .await
                .expect("ran");
            assert!(name.is_some_and(|n| n == format!("lb-http-{idx}")));
            seen.insert(idx);
        }
        assert_eq!(seen.len(), cores.min(MAX_SHARDS), "one thread per loop");
    }

    #[tokio::test]
    async fn a_burst_accepted_on_one_loop_is_spread_over_the_others() {
        let all = loops();
        if all.len() < 2 {
            return; // one core: one loop, nothing to spread over
        }
        let placed = all[0]
            .spawn(async { (0..20).map(|_| place()).collect::<Vec<_>>() })
            .await
            .expect("ran");
        let moved = placed.iter().filter(|(h, _)| h.is_some()).count();
        assert!(
            (5..=15).contains(&moved),
            "{moved} of 20 connections accepted on loop 0 placed on another loop"
        );
    }
}
