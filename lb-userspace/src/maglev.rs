//! Maglev consistent hashing (Eisenbud et al., NSDI'16; Katran's weighted `MaglevHashV2`):
//! builds the per-VIP lookup table the XDP program indexes with
//! `flow_hash(5-tuple) % table_size`, and predicts which backend a 5-tuple gets.
//!
//! Why Maglev: a new L4 flow must land on the same backend on every node without shared
//! state (so a flow re-hashed on the standby after a failover keeps its backend), and a
//! backend going down or coming back must move as few other flows as possible (those not in
//! the conntrack table yet, or re-picked after a timeout, would break). Maglev gives both:
//! the table depends only on the backend list (order, weights, identities), a fixed seed and
//! the table size; and removing one of N backends moves little more than the 1/N of flows
//! that were on it.
//!
//! Rules a caller must keep so two nodes agree:
//! - same table size, same backends in the same (config) order, same weights, same
//!   identity bytes ([`MaglevBackend::key`]); ids are what the table stores, not what is
//!   hashed, so renumbering ids alone does not move flows;
//! - the identity hash ([`identity_hash`]) and its seeds are part of the on-the-wire
//!   contract: changing them re-maps flows between nodes running different versions.
//!
//! Pure logic: no maps, no sockets. The one module that writes BPF maps copies the table in.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use lb_common::flow_hash::flow_hash;

/// Table size used when the config names none: prime, and about 800x a typical backend
/// count, which keeps each backend's share within a fraction of a percent of its weight.
pub const DEFAULT_TABLE_SIZE: u32 = 16381;
/// Largest table size accepted: bounds the per-VIP BPF map (and its memory) per VIP.
pub const MAX_TABLE_SIZE: u32 = lb_common::maglev::MAX_TABLE_SIZE;
/// Smallest table size accepted (the smallest prime); useful sizes are far larger
/// (the Maglev paper advises at least 100x the number of backends).
pub const MIN_TABLE_SIZE: u32 = 2;
/// Slot value meaning "no backend": the table of a VIP with no backend of positive weight
/// is all `NO_BACKEND`, and the XDP program drops (and counts) such flows. It is a `u32`
/// sentinel rather than an `Option` because the table is copied as-is into a BPF array of
/// `u32`, and `u32::MAX` can never be a valid backend index there.
pub const NO_BACKEND: u32 = lb_common::maglev::NO_BACKEND;

/// Seed of the identity hash that gives each backend its starting slot (`offset`).
const OFFSET_SEED: u64 = 0x4d61_676c_6576_6f66; // "Maglevof"
/// Seed of the identity hash that gives each backend its stride (`skip`).
const SKIP_SEED: u64 = 0x4d61_676c_6576_736b; // "Maglevsk"

/// Why a table could not be built; each variant carries what the operator must change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MaglevError {
    /// The size is outside [`MIN_TABLE_SIZE`]..=[`MAX_TABLE_SIZE`].
    #[error("Maglev table size {size} is out of range {min}..={max}")]
    SizeOutOfRange {
        /// The rejected size.
        size: u32,
        /// Smallest accepted size.
        min: u32,
        /// Largest accepted size.
        max: u32,
    },
    /// The size is not prime: Maglev's per-backend strides only visit every slot when the
    /// table size is prime.
    #[error("Maglev table size {size} is not prime (for example {DEFAULT_TABLE_SIZE} or {MAX_TABLE_SIZE} are)")]
    NotPrime {
        /// The rejected size.
        size: u32,
    },
    /// A backend uses the id reserved for empty slots.
    #[error("backend #{position} has id {NO_BACKEND}, which is reserved to mean \"no backend\"")]
    ReservedId {
        /// Position of the backend in the list (0-based, config order).
        position: usize,
    },
    /// Two backends share an id, so the table could not tell them apart.
    #[error("backends #{first} and #{second} both have id {id}")]
    DuplicateId {
        /// The shared id.
        id: u32,
        /// Position of the first backend with it.
        first: usize,
        /// Position of the second backend with it.
        second: usize,
    },
    /// Two backends share an identity, so they would get the same slot preferences and
    /// their shares would depend on list order alone; include the port in the identity.
    #[error("backends #{first} (id {first_id}) and #{second} (id {second_id}) have the same hash identity")]
    DuplicateKey {
        /// Position of the first backend.
        first: usize,
        /// Id of the first backend.
        first_id: u32,
        /// Position of the second backend.
        second: usize,
        /// Id of the second backend.
        second_id: u32,
    },
    /// More backends with positive weight than slots: some would never get a flow.
    #[error("{count} backends with weight > 0 do not fit in a Maglev table of {size} slots")]
    TooManyBackends {
        /// Backends with positive weight.
        count: usize,
        /// The table size.
        size: u32,
    },
}

/// One backend as Maglev sees it. Only `key` and `weight` (and list position) decide where
/// it lands; `id` is what the table stores and the XDP program forwards to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MaglevBackend {
    /// Backend index the XDP program understands (e.g. index into the backends map); never
    /// [`NO_BACKEND`].
    pub id: u32,
    /// Relative share of new flows; 0 takes the backend out of the table (drain, down).
    pub weight: u32,
    /// Stable identity bytes (see [`addr_key`]); must be equal on every node and survive
    /// restarts and reloads, or flows move.
    pub key: Vec<u8>,
}

impl MaglevBackend {
    /// Backend with an arbitrary identity, e.g. its configured name, for setups where
    /// the address may change but the backend should keep its flows.
    pub fn new(id: u32, weight: u32, key: impl Into<Vec<u8>>) -> Self {
        Self {
            id,
            weight,
            key: key.into(),
        }
    }

    /// Backend identified by its address and port (see [`addr_key`]): what Katran does, and
    /// the natural choice when the config names backends by address.
    pub fn from_addr(id: u32, weight: u32, addr: SocketAddr) -> Self {
        Self::new(id, weight, addr_key(addr))
    }
}

/// Identity bytes for a backend address: family byte (4 or 6), the 16-byte wire layout of
/// the address ([`wire_addr`]), then the port big-endian. The family byte keeps
/// `10.0.0.1` apart from the IPv6 address with the same leading bytes.
pub fn addr_key(addr: SocketAddr) -> Vec<u8> {
    let family = match addr.ip() {
        IpAddr::V4(_) => 4u8,
        IpAddr::V6(_) => 6u8,
    };
    let mut key = Vec::with_capacity(19);
    key.push(family);
    key.extend_from_slice(&wire_addr(addr.ip()));
    key.extend_from_slice(&addr.port().to_be_bytes());
    key
}

/// An address as the XDP program holds it for hashing: network byte order, IPv4 in bytes
/// 0..4 and zeros after. An IPv4-mapped IPv6 address stays IPv6, as it is on the wire.
pub fn wire_addr(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(v4) => {
            let mut out = [0u8; 16];
            out[..4].copy_from_slice(&v4.octets());
            out
        }
        IpAddr::V6(v6) => v6.octets(),
    }
}

/// Hash of a backend identity used to derive its slot preferences. Written out here
/// (seeded FNV-1a, then MurmurHash3's 64-bit finalizer) rather than taken from `std`,
/// whose hasher may change between Rust releases: nodes built by different compilers must
/// still build the same table.
pub fn identity_hash(key: &[u8], seed: u64) -> u64 {
    const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h = FNV_OFFSET ^ seed;
    for &b in key {
        h ^= u64::from(b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    h ^= (key.len() as u64).rotate_left(32) ^ seed.rotate_left(17);
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    h
}

/// Checks a configured table size early (config validation), with the same rule
/// [`build_table`] applies.
pub fn validate_table_size(size: u32) -> Result<(), MaglevError> {
    if !(MIN_TABLE_SIZE..=MAX_TABLE_SIZE).contains(&size) {
        return Err(MaglevError::SizeOutOfRange {
            size,
            min: MIN_TABLE_SIZE,
            max: MAX_TABLE_SIZE,
        });
    }
    if !is_prime(size) {
        return Err(MaglevError::NotPrime { size });
    }
    Ok(())
}

/// Trial division; sizes are at most [`MAX_TABLE_SIZE`], so at most ~128 divisions.
fn is_prime(n: u32) -> bool {
    if n < 2 {
        return false;
    }
    let mut d = 2u32;
    while d * d <= n {
        if n.is_multiple_of(d) {
            return false;
        }
        d += 1;
    }
    true
}

/// Builds a VIP's Maglev lookup table of `size` slots, each holding a backend id or
/// [`NO_BACKEND`].
///
/// `backends` must be in config order (the order breaks ties, so reordering the config can
/// move some flows). Each backend with positive weight takes turns filling its next
/// preferred free slot; a backend of weight `w` gets `w / max_weight` of a turn per round
/// (Katran's weighted variant), so slot shares follow weights to within one slot.
/// Zero-weight backends get no slots; with no backend of positive weight, every slot is
/// [`NO_BACKEND`]. The result depends on nothing else (no randomness, no global state), so
/// every node with the same config builds the same table.
pub fn build_table(size: u32, backends: &[MaglevBackend]) -> Result<Vec<u32>, MaglevError> {
    validate_table_size(size)?;
    validate_backends(backends)?;

    let m = size as usize;
    let mut table = vec![NO_BACKEND; m];
    let active: Vec<&MaglevBackend> = backends.iter().filter(|b| b.weight > 0).collect();
    if active.is_empty() {
        return Ok(table);
    }
    if active.len() > m {
        return Err(MaglevError::TooManyBackends {
            count: active.len(),
            size,
        });
    }

    let m64 = u64::from(size);
    // Per backend: current position in its permutation (offset, offset + skip, ... mod m),
    // its stride, and its accumulated credit towards the next turn.
    let mut pos: Vec<usize> = Vec::with_capacity(active.len());
    let mut skip: Vec<usize> = Vec::with_capacity(active.len());
    for b in &active {
        pos.push((identity_hash(&b.key, OFFSET_SEED) % m64) as usize);
        // 1..m: with m prime, every stride visits every slot exactly once per m steps.
        skip.push((identity_hash(&b.key, SKIP_SEED) % (m64 - 1) + 1) as usize);
    }
    let mut credit = vec![0u64; active.len()];
    let max_weight = u64::from(active.iter().map(|b| b.weight).max().unwrap_or(1));

    let mut filled = 0usize;
    // Each round the heaviest backend takes a turn, so at most `m` rounds run; each turn
    // ends because the permutation reaches every slot and the table is not yet full.
    loop {
        for (i, b) in active.iter().enumerate() {
            credit[i] += u64::from(b.weight);
            if credit[i] < max_weight {
                continue;
            }
            credit[i] -= max_weight;
            let mut p = pos[i];
            while table[p] != NO_BACKEND {
                p += skip[i];
                if p >= m {
                    p -= m;
                }
            }
            table[p] = b.id;
            p += skip[i];
            if p >= m {
                p -= m;
            }
            pos[i] = p;
            filled += 1;
            if filled == m {
                return Ok(table);
            }
        }
    }
}

/// Rejects backend lists that would build a table the XDP program cannot use or that
/// would depend on accidents of order.
fn validate_backends(backends: &[MaglevBackend]) -> Result<(), MaglevError> {
    let mut ids: HashMap<u32, usize> = HashMap::with_capacity(backends.len());
    let mut keys: HashMap<&[u8], usize> = HashMap::with_capacity(backends.len());
    for (position, b) in backends.iter().enumerate() {
        if b.id == NO_BACKEND {
            return Err(MaglevError::ReservedId { position });
        }
        if let Some(&first) = ids.get(&b.id) {
            return Err(MaglevError::DuplicateId {
                id: b.id,
                first,
                second: position,
            });
        }
        ids.insert(b.id, position);
        if let Some(&first) = keys.get(b.key.as_slice()) {
            return Err(MaglevError::DuplicateKey {
                first,
                first_id: backends[first].id,
                second: position,
                second_id: b.id,
            });
        }
        keys.insert(b.key.as_slice(), position);
    }
    Ok(())
}

/// The backend a flow hash selects: slot `hash % table.len()`, exactly what the XDP
/// program computes for a new flow. Returns [`NO_BACKEND`] for an empty table.
pub fn lookup(table: &[u32], hash: u32) -> u32 {
    if table.is_empty() {
        return NO_BACKEND;
    }
    table[(u64::from(hash) % table.len() as u64) as usize]
}

/// The backend a new flow with this 5-tuple gets, with the fields laid out as the XDP
/// program hashes them (see [`lb_common::flow_hash::flow_hash`]). Flows already in the
/// conntrack table keep their backend regardless.
pub fn backend_for_flow(
    table: &[u32],
    src: &[u8; 16],
    dst: &[u8; 16],
    sport: u16,
    dport: u16,
    proto: u8,
) -> u32 {
    lookup(table, flow_hash(src, dst, sport, dport, proto))
}

/// What the simulator reports for one flow: enough to check by hand which slot of the
/// table (e.g. as dumped from the BPF map) decided it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowPick {
    /// [`lb_common::flow_hash::flow_hash`] of the 5-tuple.
    pub hash: u32,
    /// Index into the table: `hash % table.len()` (0 for an empty table).
    pub slot: u32,
    /// Backend id in that slot, or [`NO_BACKEND`].
    pub backend: u32,
}

/// Explains which backend a new flow from `client` to `vip` over `proto` (IP protocol
/// number) gets, for `lb` CLI questions like "where does this client go?" and for tests.
pub fn explain(table: &[u32], client: SocketAddr, vip: SocketAddr, proto: u8) -> FlowPick {
    let hash = flow_hash(
        &wire_addr(client.ip()),
        &wire_addr(vip.ip()),
        client.port(),
        vip.port(),
        proto,
    );
    if table.is_empty() {
        return FlowPick {
            hash,
            slot: 0,
            backend: NO_BACKEND,
        };
    }
    let slot = (u64::from(hash) % table.len() as u64) as u32;
    FlowPick {
        hash,
        slot,
        backend: table[slot as usize],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};
    use std::time::Instant;

    const TCP: u8 = 6;

    fn backend(i: u32, weight: u32) -> MaglevBackend {
        MaglevBackend::from_addr(
            i,
            weight,
            SocketAddr::new(
                IpAddr::V4(Ipv4Addr::new(10, 0, (i >> 8) as u8, i as u8)),
                8080,
            ),
        )
    }

    fn equal(n: u32) -> Vec<MaglevBackend> {
        (0..n).map(|i| backend(i, 1)).collect()
    }

    /// splitmix64: deterministic synthetic flows without a crate.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }
    }

    /// Flow hashes of 200k synthetic TCP flows from random IPv4 clients to one VIP.
    fn flow_hashes() -> Vec<u32> {
        let vip = wire_addr(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1)));
        let mut rng = Rng(2024);
        (0..200_000)
            .map(|_| {
                let r = rng.next();
                let client = wire_addr(IpAddr::V4(Ipv4Addr::from(r as u32)));
                flow_hash(&client, &vip, (r >> 32) as u16 | 1024, 443, TCP)
            })
            .collect()
    }

    fn shares(table: &[u32]) -> HashMap<u32, f64> {
        let mut counts: HashMap<u32, usize> = HashMap::new();
        for &id in table {
            *counts.entry(id).or_default() += 1;
        }
        counts
            .into_iter()
            .map(|(id, c)| (id, c as f64 / table.len() as f64))
            .collect()
    }

    fn moved_fraction(before: &[u32], after: &[u32], hashes: &[u32]) -> f64 {
        let moved = hashes
            .iter()
            .filter(|&&h| lookup(before, h) != lookup(after, h))
            .count();
        moved as f64 / hashes.len() as f64
    }

    #[test]
    fn deterministic_and_stateless() {
        let a = equal(7);
        let b: Vec<MaglevBackend> = (0..4).map(|i| backend(100 + i, i + 1)).collect();
        let ta1 = build_table(DEFAULT_TABLE_SIZE, &a).unwrap();
        let tb1 = build_table(DEFAULT_TABLE_SIZE, &b).unwrap();
        let tb2 = build_table(DEFAULT_TABLE_SIZE, &b).unwrap();
        let ta2 = build_table(DEFAULT_TABLE_SIZE, &a).unwrap();
        assert_eq!(ta1, ta2);
        assert_eq!(tb1, tb2);
        assert_ne!(ta1, tb1);
    }

    #[test]
    fn known_small_table() {
        // Pinned: identity hash, seeds and fill order are a contract between nodes (and
        // versions) that must build the same table from the same config.
        let backends = vec![backend(0, 1), backend(1, 1), backend(2, 2)];
        let table = build_table(13, &backends).unwrap();
        assert_eq!(table, vec![2, 0, 2, 2, 0, 2, 2, 2, 1, 1, 0, 2, 1]);
        // And a fingerprint of a full-size table.
        let big = build_table(DEFAULT_TABLE_SIZE, &equal(10)).unwrap();
        let bytes: Vec<u8> = big.iter().flat_map(|id| id.to_le_bytes()).collect();
        let fingerprint = identity_hash(&bytes, 0);
        assert_eq!(
            fingerprint, 0x26a1_10f0_5393_4da4,
            "got {fingerprint:#018x}"
        );
    }

    #[test]
    fn ids_are_not_hashed() {
        let a = [backend(0, 1), backend(1, 1)];
        let mut b = a.clone();
        b[0].id = 40;
        b[1].id = 41;
        let ta = build_table(101, &a).unwrap();
        let tb = build_table(101, &b).unwrap();
        let renumbered: Vec<u32> = ta.iter().map(|&id| id + 40).collect();
        assert_eq!(renumbered, tb);
    }

    #[test]
    fn every_slot_filled() {
        for n in [1u32, 2, 3, 10, 100] {
            let table = build_table(DEFAULT_TABLE_SIZE, &equal(n)).unwrap();
            assert_eq!(table.len(), DEFAULT_TABLE_SIZE as usize);
            assert!(table.iter().all(|&id| id < n), "n = {n}");
        }
        // A lone backend of weight 1 among weight-0 ones still fills everything.
        let table = build_table(13, &[backend(0, 0), backend(1, 1), backend(2, 0)]).unwrap();
        assert_eq!(table, vec![1; 13]);
    }

    #[test]
    fn no_backends_means_no_backend_everywhere() {
        let empty = build_table(DEFAULT_TABLE_SIZE, &[]).unwrap();
        assert!(empty.iter().all(|&id| id == NO_BACKEND));
        let drained = build_table(DEFAULT_TABLE_SIZE, &[backend(0, 0), backend(1, 0)]).unwrap();
        assert_eq!(drained, empty);
        assert_eq!(lookup(&empty, 12345), NO_BACKEND);
        assert_eq!(lookup(&[], 12345), NO_BACKEND);
        let client = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), 40000);
        let vip = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1)), 80);
        assert_eq!(explain(&[], client, vip, TCP).backend, NO_BACKEND);
    }

    #[test]
    fn zero_weight_backends_get_no_slots() {
        let backends = vec![backend(0, 1), backend(1, 0), backend(2, 1)];
        let table = build_table(DEFAULT_TABLE_SIZE, &backends).unwrap();
        assert!(!table.contains(&1));
        let s = shares(&table);
        assert!(
            (s[&0] - 0.5).abs() < 0.01 && (s[&2] - 0.5).abs() < 0.01,
            "{s:?}"
        );
    }

    #[test]
    fn weights_honoured() {
        let backends = vec![backend(0, 1), backend(1, 2), backend(2, 3)];
        let table = build_table(DEFAULT_TABLE_SIZE, &backends).unwrap();
        let s = shares(&table);
        for (id, want) in [(0u32, 1.0 / 6.0), (1, 2.0 / 6.0), (2, 3.0 / 6.0)] {
            println!(
                "weights 1:2:3: backend {id} share {:.5} (want {want:.5})",
                s[&id]
            );
            assert!(
                (s[&id] - want).abs() <= 0.02,
                "backend {id}: {:.4} vs {want:.4}",
                s[&id]
            );
        }
        // Large, uneven weights take the same path (credits in u64, no overflow).
        let heavy = vec![backend(0, u32::MAX), backend(1, u32::MAX / 3)];
        let s = shares(&build_table(DEFAULT_TABLE_SIZE, &heavy).unwrap());
        assert!(
            (s[&0] - 0.75).abs() <= 0.02 && (s[&1] - 0.25).abs() <= 0.02,
            "{s:?}"
        );
    }

    #[test]
    fn equal_weights_share_evenly() {
        for n in [2u32, 3, 5, 10, 20, 100] {
            let s = shares(&build_table(DEFAULT_TABLE_SIZE, &equal(n)).unwrap());
            let want = 1.0 / f64::from(n);
            let worst = s.values().map(|v| (v - want).abs()).fold(0.0, f64::max);
            println!("equal weights N={n}: worst share deviation {worst:.5} (bound 0.01)");
            assert_eq!(s.len(), n as usize);
            assert!(worst <= 0.01, "N={n}: {s:?}");
        }
    }

    #[test]
    fn flows_spread_like_slots() {
        // The table's shares carry over to flows through flow_hash.
        let hashes = flow_hashes();
        let table = build_table(DEFAULT_TABLE_SIZE, &equal(5)).unwrap();
        let mut counts = [0usize; 5];
        for &h in &hashes {
            counts[lookup(&table, h) as usize] += 1;
        }
        for c in counts {
            let share = c as f64 / hashes.len() as f64;
            assert!((share - 0.2).abs() < 0.01, "{counts:?}");
        }
    }

    #[test]
    fn disruption_bounded() {
        let hashes = flow_hashes();
        for n in [3u32, 5, 10, 20] {
            let all = equal(n);
            let before = build_table(DEFAULT_TABLE_SIZE, &all).unwrap();

            // Remove each backend in turn; report the worst.
            let bound_remove = 1.0 / f64::from(n) + 0.02;
            let mut worst_remove = 0.0f64;
            for gone in 0..n as usize {
                let mut fewer = all.clone();
                fewer.remove(gone);
                let after = build_table(DEFAULT_TABLE_SIZE, &fewer).unwrap();
                let moved = moved_fraction(&before, &after, &hashes);
                assert!(
                    moved <= bound_remove,
                    "N={n}, removed #{gone}: moved {moved:.4}"
                );
                worst_remove = worst_remove.max(moved);
            }

            // Add one backend at the end (a new config line).
            let mut more = all.clone();
            more.push(backend(n, 1));
            let after = build_table(DEFAULT_TABLE_SIZE, &more).unwrap();
            let moved_add = moved_fraction(&before, &after, &hashes);
            let bound_add = 1.0 / f64::from(n + 1) + 0.02;
            println!(
                "N={n}: remove one moves {worst_remove:.4} at worst (ideal {:.4}, bound {bound_remove:.4}); \
                 add one moves {moved_add:.4} (ideal {:.4}, bound {bound_add:.4})",
                1.0 / f64::from(n),
                1.0 / f64::from(n + 1),
            );
            assert!(
                moved_add <= bound_add,
                "N={n}, added one: moved {moved_add:.4}"
            );
        }
    }

    #[test]
    fn size_validation() {
        assert_eq!(
            build_table(16380, &[]),
            Err(MaglevError::NotPrime { size: 16380 })
        );
        assert_eq!(
            validate_table_size(65535),
            Err(MaglevError::NotPrime { size: 65535 })
        );
        for size in [0, 1, 65539, u32::MAX] {
            assert_eq!(
                validate_table_size(size),
                Err(MaglevError::SizeOutOfRange {
                    size,
                    min: MIN_TABLE_SIZE,
                    max: MAX_TABLE_SIZE
                }),
            );
        }
        for size in [2, 3, 13, 251, DEFAULT_TABLE_SIZE, MAX_TABLE_SIZE] {
            assert_eq!(validate_table_size(size), Ok(()), "{size}");
        }
        let msg = MaglevError::NotPrime { size: 16380 }.to_string();
        assert!(msg.contains("16380") && msg.contains("not prime"), "{msg}");
    }

    #[test]
    fn backend_validation() {
        assert_eq!(
            build_table(13, &[backend(0, 1), MaglevBackend::new(NO_BACKEND, 1, "x")]),
            Err(MaglevError::ReservedId { position: 1 })
        );
        assert_eq!(
            build_table(
                13,
                &[backend(3, 1), backend(4, 1), MaglevBackend::new(3, 1, "x")]
            ),
            Err(MaglevError::DuplicateId {
                id: 3,
                first: 0,
                second: 2
            })
        );
        assert_eq!(
            build_table(
                13,
                &[MaglevBackend::new(1, 1, "a"), MaglevBackend::new(2, 0, "a")]
            ),
            Err(MaglevError::DuplicateKey {
                first: 0,
                first_id: 1,
                second: 1,
                second_id: 2
            })
        );
        assert_eq!(
            build_table(3, &equal(4)),
            Err(MaglevError::TooManyBackends { count: 4, size: 3 })
        );
        // As many backends as slots: each gets exactly one.
        let mut t = build_table(3, &equal(3)).unwrap();
        t.sort_unstable();
        assert_eq!(t, vec![0, 1, 2]);
    }

    #[test]
    fn addr_keys_are_distinct_per_family_and_port() {
        let v4 = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), 80);
        let v6 = SocketAddr::new(
            IpAddr::V6(Ipv6Addr::new(0x0a00, 0x0001, 0, 0, 0, 0, 0, 0)),
            80,
        );
        let other_port = SocketAddr::new(v4.ip(), 81);
        assert_eq!(wire_addr(v4.ip())[..4], [10, 0, 0, 1]);
        assert_eq!(wire_addr(v4.ip())[..4], wire_addr(v6.ip())[..4]);
        assert_ne!(addr_key(v4), addr_key(v6));
        assert_ne!(addr_key(v4), addr_key(other_port));
    }

    #[test]
    fn explain_matches_raw_tuple() {
        let table = build_table(DEFAULT_TABLE_SIZE, &equal(5)).unwrap();
        let client = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10)), 40000);
        let vip = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1)), 80);
        let pick = explain(&table, client, vip, TCP);
        let (src, dst) = (wire_addr(client.ip()), wire_addr(vip.ip()));
        assert_eq!(pick.hash, flow_hash(&src, &dst, 40000, 80, TCP));
        assert_eq!(pick.slot, pick.hash % DEFAULT_TABLE_SIZE);
        assert_eq!(pick.backend, table[pick.slot as usize]);
        assert_eq!(
            pick.backend,
            backend_for_flow(&table, &src, &dst, 40000, 80, TCP)
        );
    }

    #[test]
    fn build_time_max_table() {
        let backends: Vec<MaglevBackend> = (0..100).map(|i| backend(i, 1 + i % 4)).collect();
        let start = Instant::now();
        let table = build_table(MAX_TABLE_SIZE, &backends).unwrap();
        let took = start.elapsed();
        println!("build {MAX_TABLE_SIZE} slots, 100 weighted backends: {took:?}");
        assert!(table.iter().all(|&id| id < 100));
        assert!(took.as_secs_f64() < 2.0, "{took:?}");
    }
}
