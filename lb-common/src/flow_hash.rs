//! The flow hash: one function that the XDP program and userspace both call, so that
//! userspace can say which backend a 5-tuple gets (the simulator) and so that two nodes with
//! the same config send a flow to the same backend after a failover.
//!
//! It is Bob Jenkins' lookup3 `hashword` (the `jhash` Katran and the kernel use) over a fixed
//! 10-word image of the 5-tuple, fully unrolled:
//!
//! | word | content                                                        |
//! |------|----------------------------------------------------------------|
//! | 0..4 | source address, 16 bytes as on the wire, read little-endian     |
//! | 4..8 | destination address, same                                      |
//! | 8    | `(sport << 16) \| dport` (ports in host byte order)             |
//! | 9    | `proto` zero-extended                                          |
//!
//! eBPF constraints it respects: no loops, no tables, no division, no `u128`; only `u32`
//! wrapping add/sub, xor and rotates (which LLVM's BPF backend lowers to shifts), and byte
//! reads at literal indexes of fixed-size arrays (no bounds-check or panic paths).
//!
//! Words are read with `from_le_bytes` rather than `from_ne_bytes`: on the eBPF target
//! (`bpfel`) and on x86_64/aarch64 both compile to a plain load, and the result stays the
//! same on a big-endian userspace host, where a native-endian read would silently disagree
//! with the XDP program.
//!
//! The seed is a fixed constant, not per boot: a per-node random seed would make the standby
//! hash flows differently from the master, and that is exactly what a failover must avoid.
//! Changing [`FLOW_HASH_SEED`] or the word layout re-maps every flow, so the known-answer
//! tests below pin the output.

/// Initial value mixed into every flow hash. Fixed (never random) so that every node and
/// every build agrees on it; changing it re-maps every flow at the next upgrade.
pub const FLOW_HASH_SEED: u32 = 0x4c42_6631;

/// Number of 32-bit words the 5-tuple is hashed as (see the module table).
const WORDS: u32 = 10;

/// lookup3's reversible 3-word mix, applied after every full block of three words.
#[inline(always)]
const fn mix(mut a: u32, mut b: u32, mut c: u32) -> (u32, u32, u32) {
    a = a.wrapping_sub(c);
    a ^= c.rotate_left(4);
    c = c.wrapping_add(b);
    b = b.wrapping_sub(a);
    b ^= a.rotate_left(6);
    a = a.wrapping_add(c);
    c = c.wrapping_sub(b);
    c ^= b.rotate_left(8);
    b = b.wrapping_add(a);
    a = a.wrapping_sub(c);
    a ^= c.rotate_left(16);
    c = c.wrapping_add(b);
    b = b.wrapping_sub(a);
    b ^= a.rotate_left(19);
    a = a.wrapping_add(c);
    c = c.wrapping_sub(b);
    c ^= b.rotate_left(4);
    b = b.wrapping_add(a);
    (a, b, c)
}

/// lookup3's final mix: makes every bit of `a`, `b` and `c` affect `c`, the result.
#[inline(always)]
const fn final_mix(mut a: u32, mut b: u32, mut c: u32) -> u32 {
    c ^= b;
    c = c.wrapping_sub(b.rotate_left(14));
    a ^= c;
    a = a.wrapping_sub(c.rotate_left(11));
    b ^= a;
    b = b.wrapping_sub(a.rotate_left(25));
    c ^= b;
    c = c.wrapping_sub(b.rotate_left(16));
    a ^= c;
    a = a.wrapping_sub(c.rotate_left(4));
    b ^= a;
    b = b.wrapping_sub(a.rotate_left(14));
    c ^= b;
    c = c.wrapping_sub(b.rotate_left(24));
    c
}

/// Splits a 16-byte address into four words with literal indexes only, so neither the
/// verifier nor a debug build sees a bounds check.
#[inline(always)]
const fn addr_words(x: &[u8; 16]) -> [u32; 4] {
    [
        u32::from_le_bytes([x[0], x[1], x[2], x[3]]),
        u32::from_le_bytes([x[4], x[5], x[6], x[7]]),
        u32::from_le_bytes([x[8], x[9], x[10], x[11]]),
        u32::from_le_bytes([x[12], x[13], x[14], x[15]]),
    ]
}

/// Hashes a flow's 5-tuple; the Maglev table slot is `flow_hash(..) % table_size`.
///
/// Both sides must pass the fields exactly as the XDP program sees them: addresses in
/// network byte order (IPv4 in bytes 0..4, bytes 4..16 zero), ports in host byte order,
/// `proto` the IP protocol number. `src`/`dst` are the client and the VIP of the packet
/// travelling towards the VIP; the hash is deliberately not symmetric.
#[inline(always)]
pub const fn flow_hash(src: &[u8; 16], dst: &[u8; 16], sport: u16, dport: u16, proto: u8) -> u32 {
    let s = addr_words(src);
    let d = addr_words(dst);
    let ports = ((sport as u32) << 16) | dport as u32;

    let init = 0xdead_beef_u32
        .wrapping_add(WORDS << 2)
        .wrapping_add(FLOW_HASH_SEED);
    let (mut a, mut b, mut c) = (init, init, init);

    a = a.wrapping_add(s[0]);
    b = b.wrapping_add(s[1]);
    c = c.wrapping_add(s[2]);
    (a, b, c) = mix(a, b, c);

    a = a.wrapping_add(s[3]);
    b = b.wrapping_add(d[0]);
    c = c.wrapping_add(d[1]);
    (a, b, c) = mix(a, b, c);

    a = a.wrapping_add(d[2]);
    b = b.wrapping_add(d[3]);
    c = c.wrapping_add(ports);
    (a, b, c) = mix(a, b, c);

    a = a.wrapping_add(proto as u32);
    final_mix(a, b, c)
}

/// [`flow_hash`] with the source port left out, for a future "sticky per client address"
/// mode (all connections of one client to one backend, e.g. for protocols that open
/// several connections, or for UDP with changing source ports). Same as `sport == 0`.
#[inline(always)]
pub const fn flow_hash_no_sport(src: &[u8; 16], dst: &[u8; 16], dport: u16, proto: u8) -> u32 {
    flow_hash(src, dst, 0, dport, proto)
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use std::{vec, vec::Vec};

    /// IPv4 address in the 16-byte wire layout the XDP program uses.
    fn v4(a: u8, b: u8, c: u8, d: u8) -> [u8; 16] {
        let mut x = [0u8; 16];
        x[..4].copy_from_slice(&[a, b, c, d]);
        x
    }

    /// splitmix64: deterministic pseudo-random test input without a crate.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }
        fn bytes16(&mut self) -> [u8; 16] {
            let mut x = [0u8; 16];
            x[..8].copy_from_slice(&self.next().to_le_bytes());
            x[8..].copy_from_slice(&self.next().to_le_bytes());
            x
        }
    }

    /// Straightforward, loop-based lookup3 `hashlittle` over bytes (little-endian word
    /// reads, zero-padded tail), used to prove the unrolled version is the real thing.
    fn lookup3_bytes(data: &[u8], seed: u32) -> u32 {
        let init = 0xdead_beef_u32
            .wrapping_add(data.len() as u32)
            .wrapping_add(seed);
        let (mut a, mut b, mut c) = (init, init, init);
        let word = |chunk: &[u8], i: usize| -> u32 {
            let mut w = [0u8; 4];
            for (j, slot) in w.iter_mut().enumerate() {
                *slot = chunk.get(i * 4 + j).copied().unwrap_or(0);
            }
            u32::from_le_bytes(w)
        };
        let mut rest = data;
        while rest.len() > 12 {
            a = a.wrapping_add(word(rest, 0));
            b = b.wrapping_add(word(rest, 1));
            c = c.wrapping_add(word(rest, 2));
            (a, b, c) = mix(a, b, c);
            rest = &rest[12..];
        }
        if rest.is_empty() {
            return c;
        }
        a = a.wrapping_add(word(rest, 0));
        b = b.wrapping_add(word(rest, 1));
        c = c.wrapping_add(word(rest, 2));
        final_mix(a, b, c)
    }

    /// The 40-byte image of a 5-tuple described in the module docs.
    fn image(src: &[u8; 16], dst: &[u8; 16], sport: u16, dport: u16, proto: u8) -> [u8; 40] {
        let mut img = [0u8; 40];
        img[..16].copy_from_slice(src);
        img[16..32].copy_from_slice(dst);
        img[32..36].copy_from_slice(&((u32::from(sport) << 16) | u32::from(dport)).to_le_bytes());
        img[36..].copy_from_slice(&u32::from(proto).to_le_bytes());
        img
    }

    #[test]
    fn reference_lookup3_matches_published_vectors() {
        // From the self-test in Bob Jenkins' lookup3.c (driver5).
        assert_eq!(lookup3_bytes(b"", 0), 0xdead_beef);
        assert_eq!(lookup3_bytes(b"", 0xdead_beef), 0xbd5b_7dde);
        assert_eq!(
            lookup3_bytes(b"Four score and seven years ago", 0),
            0x1777_0551
        );
        assert_eq!(
            lookup3_bytes(b"Four score and seven years ago", 1),
            0xcd62_8161
        );
    }

    #[test]
    fn unrolled_hash_is_lookup3_of_the_tuple_image() {
        let mut rng = Rng(1);
        for _ in 0..1000 {
            let (src, dst) = (rng.bytes16(), rng.bytes16());
            let r = rng.next();
            let (sport, dport, proto) = (r as u16, (r >> 16) as u16, (r >> 32) as u8);
            assert_eq!(
                flow_hash(&src, &dst, sport, dport, proto),
                lookup3_bytes(&image(&src, &dst, sport, dport, proto), FLOW_HASH_SEED)
            );
        }
    }

    #[test]
    fn known_answers() {
        // Pinned: a change here re-maps every flow on upgrade (mixed-version pairs disagree).
        let client = v4(192, 0, 2, 10);
        let vip = v4(198, 51, 100, 1);
        let mut client6 = [0u8; 16];
        client6[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        client6[15] = 0x0a;
        let mut vip6 = [0u8; 16];
        vip6[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        vip6[15] = 0x01;
        let zero = [0u8; 16];

        let got = [
            flow_hash(&client, &vip, 40000, 80, 6),
            flow_hash(&client, &vip, 40001, 80, 6),
            flow_hash(&client, &vip, 40000, 53, 17),
            flow_hash(&client6, &vip6, 40000, 443, 6),
            flow_hash(&zero, &zero, 0, 0, 0),
            flow_hash_no_sport(&client, &vip, 80, 6),
        ];
        let want = [
            0x9fca_5785,
            0x1b88_3d40,
            0x7d99_e7de,
            0x942e_404d,
            0x9f88_6005,
            0xd713_c16a,
        ];
        assert_eq!(got, want, "got {got:#010x?}");
        assert_eq!(
            flow_hash_no_sport(&client, &vip, 80, 6),
            flow_hash(&client, &vip, 0, 80, 6)
        );
    }

    /// Largest relative deviation of any bucket from an even share.
    fn worst_deviation(counts: &[u32], total: u32) -> f64 {
        let even = f64::from(total) / counts.len() as f64;
        counts
            .iter()
            .map(|&c| (f64::from(c) - even).abs() / even)
            .fold(0.0, f64::max)
    }

    #[test]
    fn distribution_random_tuples() {
        const N: u32 = 100_000;
        for buckets in [7usize, 13] {
            let mut counts = vec![0u32; buckets];
            let mut rng = Rng(42);
            for _ in 0..N {
                let (src, dst) = (v4_from(rng.next() as u32), v4_from(rng.next() as u32));
                let r = rng.next();
                let h = flow_hash(&src, &dst, r as u16, (r >> 16) as u16, 6);
                counts[h as usize % buckets] += 1;
            }
            let dev = worst_deviation(&counts, N);
            assert!(dev < 0.05, "{buckets} buckets: {counts:?} worst {dev:.4}");
        }
    }

    #[test]
    fn distribution_structured_tuples() {
        // Realistic and adversarial for weak hashes: one VIP, sequential clients and ports.
        const N: u32 = 100_000;
        let vip = v4(198, 51, 100, 1);
        for buckets in [7usize, 13] {
            let mut counts = vec![0u32; buckets];
            for i in 0..N {
                let src = v4(10, 0, (i / 1000) as u8, (i % 250) as u8);
                let h = flow_hash(&src, &vip, 32768 + (i % 1000) as u16, 443, 6);
                counts[h as usize % buckets] += 1;
            }
            let dev = worst_deviation(&counts, N);
            assert!(dev < 0.05, "{buckets} buckets: {counts:?} worst {dev:.4}");
        }
    }

    fn v4_from(x: u32) -> [u8; 16] {
        let b = x.to_be_bytes();
        v4(b[0], b[1], b[2], b[3])
    }

    /// (src, dst, sport, dport, proto), in `flow_hash` argument order.
    type Tuple = ([u8; 16], [u8; 16], u16, u16, u8);

    #[test]
    fn avalanche() {
        // For every one of the 16+16+2+2+1 input bytes' bits, flipping it must change
        // 40-60% of the output bits on average over many random tuples.
        const SAMPLES: u32 = 400;
        let mut rng = Rng(7);
        let tuples: Vec<Tuple> = (0..SAMPLES)
            .map(|_| {
                let r = rng.next();
                (
                    rng.bytes16(),
                    rng.bytes16(),
                    r as u16,
                    (r >> 16) as u16,
                    (r >> 32) as u8,
                )
            })
            .collect();
        let mut worst = (0.5f64, 0usize);
        for bit in 0..(16 + 16 + 2 + 2 + 1) * 8 {
            let mut changed = 0u32;
            for &(src, dst, sport, dport, proto) in &tuples {
                let (mut s, mut d, mut sp, mut dp, mut p) = (src, dst, sport, dport, proto);
                match bit {
                    0..128 => s[bit / 8] ^= 1 << (bit % 8),
                    128..256 => d[(bit - 128) / 8] ^= 1 << (bit % 8),
                    256..272 => sp ^= 1 << (bit - 256),
                    272..288 => dp ^= 1 << (bit - 272),
                    _ => p ^= 1 << (bit - 288),
                }
                let h0 = flow_hash(&src, &dst, sport, dport, proto);
                let h1 = flow_hash(&s, &d, sp, dp, p);
                changed += (h0 ^ h1).count_ones();
            }
            let frac = f64::from(changed) / f64::from(SAMPLES * 32);
            if (frac - 0.5).abs() > (worst.0 - 0.5).abs() {
                worst = (frac, bit);
            }
            assert!(
                (0.40..=0.60).contains(&frac),
                "input bit {bit}: {frac:.3} of output bits flip"
            );
        }
        // Each single input bit flips close to half: the worst seen is printed for the record.
        std::println!(
            "avalanche worst: input bit {} flips {:.3}",
            worst.1,
            worst.0
        );
    }
}
