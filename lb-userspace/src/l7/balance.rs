//! Server selection, separate from proxying (DESIGN convention 6): plain functions over
//! the farm, a snapshot of server states and in-flight counts. No sockets here.

use super::service::{Balance, Server};
use arc_swap::ArcSwap;
use std::{
    net::IpAddr,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
};

/// Run-time state of one server, as health checks and the admin socket see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerState {
    /// Health checks say UP (or there are none).
    pub up: bool,
    /// Admin `drain`: no new (non-persistent) requests, persistent ones still served.
    pub drain: bool,
    /// Weight in force when it differs from the config's (admin `set weight`, a
    /// `slowstart` ramp); `None` uses the configured weight.
    pub weight: Option<u32>,
}

impl ServerState {
    /// Up, not draining: what a server is before any health check reports.
    pub const UP: ServerState = ServerState {
        up: true,
        drain: false,
        weight: None,
    };
    /// Down: no traffic at all, persistence ignored.
    pub const DOWN: ServerState = ServerState {
        up: false,
        drain: false,
        weight: None,
    };

    /// May receive requests chosen by load balancing.
    pub fn balanced(self) -> bool {
        self.up && !self.drain
    }
}

/// The handle through which health checks (writers) and the proxy (reader) share server
/// states: one immutable `Vec` per service in config order, swapped atomically, so a
/// request reads one consistent snapshot without locking.
#[derive(Debug)]
pub struct ServerStates {
    inner: ArcSwap<Vec<ServerState>>,
    /// Per server, where the proxy reports connection and response outcomes for passive
    /// health (`observe`); a no-op observer for servers without it.
    observers: ArcSwap<Vec<crate::health::Observer>>,
}

impl ServerStates {
    /// All `n` servers up: the state before the first health check result.
    pub fn all_up(n: usize) -> Self {
        ServerStates {
            inner: ArcSwap::from_pointee(vec![ServerState::UP; n]),
            observers: ArcSwap::from_pointee(Vec::new()),
        }
    }

    /// Replaces the whole snapshot (e.g. after a reload or a batch of check results).
    pub fn store(&self, states: Vec<ServerState>) {
        self.inner.store(Arc::new(states));
    }

    /// Changes one server's state; out-of-range indexes are ignored.
    pub fn set(&self, index: usize, state: ServerState) {
        self.inner.rcu(|cur| {
            let mut next = Vec::clone(cur);
            if let Some(s) = next.get_mut(index) {
                *s = state;
            }
            next
        });
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Arc<Vec<ServerState>> {
        self.inner.load_full()
    }

    /// Installs the passive-health observers, one per server (health checks start them).
    pub fn set_observers(&self, observers: Vec<crate::health::Observer>) {
        self.observers.store(Arc::new(observers));
    }

    /// Reports what happened on a connection to or a response from server `index`.
    pub fn observe(&self, index: usize, event: crate::health::ObservedEvent) {
        if let Some(o) = self.observers.load().get(index) {
            o.report(event);
        }
    }
}

/// State of server `i` in `states`; a server missing from the snapshot (farm and
/// snapshot briefly out of step during a reload) counts as up.
pub fn state_of(states: &[ServerState], i: usize) -> ServerState {
    states.get(i).copied().unwrap_or(ServerState::UP)
}

/// Chooses servers for requests that carry no valid persistence. One per service; keeps
/// the round-robin position between requests.
#[derive(Debug)]
pub struct Balancer {
    algo: Balance,
    /// Smooth weighted round robin: current weight per server.
    rr: Mutex<Vec<i64>>,
    /// Rotates the starting point of leastconn ties.
    tie: AtomicUsize,
}

impl Balancer {
    /// A balancer for `n` servers.
    pub fn new(algo: Balance, n: usize) -> Self {
        Balancer {
            algo,
            rr: Mutex::new(vec![0; n]),
            tie: AtomicUsize::new(0),
        }
    }

    /// Picks a server, or `None` when none is usable.
    ///
    /// Usable: up, not draining, weight > 0, `skip(i)` false (servers that already
    /// failed this request, or are full). Backup servers are considered only when no
    /// usable non-backup server exists, and then only the first usable one, as HAProxy
    /// does without `option allbackups`. `inflight[i]` is server i's current requests
    /// (leastconn); missing entries count as 0.
    pub fn pick(
        &self,
        servers: &[Server],
        states: &[ServerState],
        inflight: &[u32],
        client: IpAddr,
        skip: &dyn Fn(usize) -> bool,
    ) -> Option<usize> {
        let weight = |i: usize| {
            let configured = servers.get(i).map_or(0, |s| s.weight);
            state_of(states, i).weight.unwrap_or(configured)
        };
        let usable =
            |i: usize, _: &Server| weight(i) > 0 && state_of(states, i).balanced() && !skip(i);
        let primary: Vec<usize> = servers
            .iter()
            .enumerate()
            .filter(|(i, s)| !s.backup && usable(*i, s))
            .map(|(i, _)| i)
            .collect();
        if primary.is_empty() {
            return servers
                .iter()
                .enumerate()
                .find(|(i, s)| s.backup && usable(*i, s))
                .map(|(i, _)| i);
        }
        match self.algo {
            Balance::RoundRobin => self.pick_rr(servers.len(), &weight, &primary),
            Balance::LeastConn => self.pick_leastconn(&weight, &primary, inflight),
            Balance::Source => pick_source(&weight, &primary, client),
        }
    }

    /// Smooth weighted round robin (nginx's algorithm): spreads a heavy server's turns
    /// between the others instead of sending it a burst, as HAProxy's roundrobin does.
    fn pick_rr(
        &self,
        n: usize,
        weight: &dyn Fn(usize) -> u32,
        candidates: &[usize],
    ) -> Option<usize> {
        let mut cur = match self.rr.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        if cur.len() < n {
            cur.resize(n, 0);
        }
        let mut total: i64 = 0;
        let mut best: Option<usize> = None;
        for &i in candidates {
            let w = i64::from(weight(i));
            cur[i] += w;
            total += w;
            if best.is_none_or(|b| cur[i] > cur[b]) {
                best = Some(i);
            }
        }
        if let Some(b) = best {
            cur[b] -= total;
        }
        best
    }

    /// Lowest in-flight/weight ratio; ties go round robin.
    fn pick_leastconn(
        &self,
        weight: &dyn Fn(usize) -> u32,
        candidates: &[usize],
        inflight: &[u32],
    ) -> Option<usize> {
        let n = candidates.len();
        let start = self.tie.fetch_add(1, Ordering::Relaxed) % n;
        let load = |i: usize| u64::from(inflight.get(i).copied().unwrap_or(0)) + 1;
        let mut best: Option<usize> = None;
        for k in 0..n {
            let i = candidates[(start + k) % n];
            best = match best {
                None => Some(i),
                // load(i)/w(i) < load(b)/w(b), compared without division.
                Some(b) if load(i) * u64::from(weight(b)) < load(b) * u64::from(weight(i)) => {
                    Some(i)
                }
                keep => keep,
            };
        }
        best
    }
}

/// Hash of the client address mapped over the weighted candidates (HAProxy's map-based
/// `balance source`): the same client lands on the same server while the set of usable
/// servers does not change.
fn pick_source(
    weight: &dyn Fn(usize) -> u32,
    candidates: &[usize],
    client: IpAddr,
) -> Option<usize> {
    let total: u64 = candidates.iter().map(|&i| u64::from(weight(i))).sum();
    if total == 0 {
        return None;
    }
    let mut slot = source_hash(client) % total;
    for &i in candidates {
        let w = u64::from(weight(i));
        if slot < w {
            return Some(i);
        }
        slot -= w;
    }
    candidates.last().copied()
}

/// FNV-1a over the address bytes, then a final avalanche so nearby addresses spread.
pub fn source_hash(client: IpAddr) -> u64 {
    let client = match client {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |b: u8| {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    };
    match client {
        IpAddr::V4(a) => a.octets().into_iter().for_each(&mut feed),
        IpAddr::V6(a) => a.octets().into_iter().for_each(&mut feed),
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^ (h >> 33)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, SocketAddr};

    fn farm(weights: &[u32]) -> Vec<Server> {
        weights
            .iter()
            .enumerate()
            .map(|(i, &w)| {
                let mut s = Server::new(
                    format!("s{i}"),
                    SocketAddr::from(([127, 0, 0, 1], 1000 + i as u16)),
                );
                s.weight = w;
                s
            })
            .collect()
    }
    const C: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));

    fn run(b: &Balancer, servers: &[Server], states: &[ServerState], n: usize) -> Vec<usize> {
        (0..n)
            .map(|_| {
                b.pick(servers, states, &[], C, &|_| false)
                    .expect("a server")
            })
            .collect()
    }

    #[test]
    fn roundrobin_alternates_equal_weights() {
        let s = farm(&[1, 1]);
        let b = Balancer::new(Balance::RoundRobin, 2);
        assert_eq!(
            run(&b, &s, &[ServerState::UP; 2], 6),
            vec![0, 1, 0, 1, 0, 1]
        );
    }

    #[test]
    fn roundrobin_is_smooth_and_weighted() {
        let s = farm(&[5, 1, 1]);
        let b = Balancer::new(Balance::RoundRobin, 3);
        let seq = run(&b, &s, &[ServerState::UP; 3], 7);
        // nginx's classic example: a a b a c a a
        assert_eq!(seq, vec![0, 0, 1, 0, 2, 0, 0]);
        let seq = run(&b, &s, &[ServerState::UP; 3], 700);
        assert_eq!(seq.iter().filter(|&&i| i == 0).count(), 500);
    }

    #[test]
    fn runtime_weight_overrides_the_configured_one() {
        let s = farm(&[1, 1]);
        let b = Balancer::new(Balance::RoundRobin, 2);
        let st = [
            ServerState {
                weight: Some(3),
                ..ServerState::UP
            },
            ServerState::UP,
        ];
        let picks = run(&b, &s, &st, 8);
        assert_eq!(picks.iter().filter(|&&i| i == 0).count(), 6, "{picks:?}");
        let st = [
            ServerState {
                weight: Some(0),
                ..ServerState::UP
            },
            ServerState::UP,
        ];
        assert_eq!(
            run(&b, &s, &st, 3),
            vec![1, 1, 1],
            "weight 0 takes no new requests"
        );
    }

    #[test]
    fn down_and_drain_are_skipped_backup_only_when_needed() {
        let mut s = farm(&[1, 1, 1, 1]);
        s[2].backup = true;
        s[3].backup = true;
        let b = Balancer::new(Balance::RoundRobin, 4);
        let st = [
            ServerState::DOWN,
            ServerState {
                up: true,
                drain: true,
                weight: None,
            },
            ServerState::UP,
            ServerState::UP,
        ];
        // Only the first usable backup, as HAProxy without allbackups.
        assert_eq!(run(&b, &s, &st, 3), vec![2, 2, 2]);
        let st = [
            ServerState::DOWN,
            ServerState::UP,
            ServerState::UP,
            ServerState::UP,
        ];
        assert_eq!(run(&b, &s, &st, 3), vec![1, 1, 1]);
        let st = [ServerState::DOWN; 4];
        assert_eq!(b.pick(&s, &st, &[], C, &|_| false), None);
    }

    #[test]
    fn skip_excludes_failed_servers() {
        let s = farm(&[1, 1, 1]);
        let b = Balancer::new(Balance::RoundRobin, 3);
        for _ in 0..10 {
            assert_ne!(
                b.pick(&s, &[ServerState::UP; 3], &[], C, &|i| i == 1),
                Some(1)
            );
        }
        assert_eq!(b.pick(&s, &[ServerState::UP; 3], &[], C, &|_| true), None);
    }

    #[test]
    fn leastconn_prefers_lowest_ratio() {
        let s = farm(&[1, 2, 1]);
        let b = Balancer::new(Balance::LeastConn, 3);
        let st = [ServerState::UP; 3];
        // (3+1)/1, (5+1)/2, (2+1)/1 -> 3 vs 3: tie between 1 and 2.
        let got = b.pick(&s, &st, &[3, 5, 2], C, &|_| false);
        assert!(matches!(got, Some(1) | Some(2)));
        assert_eq!(b.pick(&s, &st, &[3, 1, 2], C, &|_| false), Some(1));
        // Ties rotate.
        let picks: Vec<_> = (0..3)
            .map(|_| {
                b.pick(
                    &s[..1].iter().chain(&s[2..]).cloned().collect::<Vec<_>>(),
                    &st,
                    &[],
                    C,
                    &|_| false,
                )
            })
            .collect();
        assert!(picks.contains(&Some(0)) && picks.contains(&Some(1)));
    }

    #[test]
    fn source_is_stable_and_spreads() {
        let s = farm(&[1, 1, 1]);
        let b = Balancer::new(Balance::Source, 3);
        let st = [ServerState::UP; 3];
        let mut seen = [0usize; 3];
        for a in 0..=255u8 {
            let ip = IpAddr::V4(Ipv4Addr::new(192, 0, 2, a));
            let first = b.pick(&s, &st, &[], ip, &|_| false).expect("server");
            assert_eq!(b.pick(&s, &st, &[], ip, &|_| false), Some(first));
            seen[first] += 1;
        }
        assert!(seen.iter().all(|&n| n > 40), "{seen:?}");
        // IPv4-mapped IPv6 hashes like the IPv4 address.
        let v4 = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().expect("addr");
        assert_eq!(source_hash(v4), source_hash(mapped));
    }

    #[test]
    fn states_handle_swaps() {
        let h = ServerStates::all_up(2);
        h.set(1, ServerState::DOWN);
        h.set(7, ServerState::DOWN);
        assert_eq!(*h.snapshot(), vec![ServerState::UP, ServerState::DOWN]);
        h.store(vec![ServerState::DOWN]);
        assert_eq!(state_of(&h.snapshot(), 1), ServerState::UP);
    }
}
