//! The VIP address filter: a bit set over a hash of destination addresses, checked before
//! any hash map lookup. A packet whose bit is clear cannot be for a VIP and passes at the
//! cost of an array lookup the verifier inlines; a set bit (a VIP address, or rarely
//! another address with the same bit) goes on to conntrack and the VIP address maps.
//! Userspace sets the bits of every VIP address with the same functions the XDP program
//! uses.

/// Bits in the filter (a power of two).
pub const FILTER_BITS: u32 = 1 << 16;
/// 64-bit words in the filter.
pub const FILTER_WORDS: usize = (FILTER_BITS / 64) as usize;

/// The filter: one value of a one-slot array, bit `i` is word `i / 64`, bit `i % 64`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VipFilter {
    /// Host order words.
    pub words: [u64; FILTER_WORDS],
}

impl Default for VipFilter {
    fn default() -> Self {
        VipFilter {
            words: [0; FILTER_WORDS],
        }
    }
}

impl VipFilter {
    /// Sets bit `bit` (below [`FILTER_BITS`]).
    pub fn set(&mut self, bit: u32) {
        let b = bit & (FILTER_BITS - 1);
        self.words[(b / 64) as usize] |= 1 << (b % 64);
    }

    /// Whether bit `bit` is set.
    pub fn has(&self, bit: u32) -> bool {
        let b = bit & (FILTER_BITS - 1);
        self.words[(b / 64) as usize] & (1 << (b % 64)) != 0
    }
}

/// Fibonacci hashing of one word to the filter's 16 bits.
#[inline(always)]
const fn spread(w: u32) -> u32 {
    w.wrapping_mul(0x9e37_79b1) >> 16
}

/// The filter bit of an IPv4 address (network byte order, as on the wire).
#[inline(always)]
pub const fn bit_v4(addr: [u8; 4]) -> u32 {
    spread(u32::from_le_bytes(addr))
}

/// The filter bit of an IPv6 address (network byte order). Its four words are folded
/// with rotations so that addresses differing in one word only still spread.
#[inline(always)]
pub const fn bit_v6(a: &[u8; 16]) -> u32 {
    let w0 = u32::from_le_bytes([a[0], a[1], a[2], a[3]]);
    let w1 = u32::from_le_bytes([a[4], a[5], a[6], a[7]]);
    let w2 = u32::from_le_bytes([a[8], a[9], a[10], a[11]]);
    let w3 = u32::from_le_bytes([a[12], a[13], a[14], a[15]]);
    spread(w0 ^ w1.rotate_left(8) ^ w2.rotate_left(16) ^ w3.rotate_left(24) ^ 0x6)
}

crate::impl_pod!(VipFilter);

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;

    #[test]
    fn bits_are_in_range_and_set_bits_are_found() {
        let mut f = VipFilter::default();
        let a = bit_v4([198, 18, 0, 100]);
        let b = bit_v6(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        assert!(a < FILTER_BITS && b < FILTER_BITS);
        assert!(!f.has(a));
        f.set(a);
        f.set(b);
        assert!(f.has(a) && f.has(b));
    }

    #[test]
    fn neighbouring_addresses_spread() {
        // 256 consecutive IPv4 and IPv6 addresses land on (nearly) distinct bits.
        let v4: std::collections::HashSet<u32> =
            (0..=255u8).map(|i| bit_v4([198, 18, 0, i])).collect();
        let v6: std::collections::HashSet<u32> = (0..=255u8)
            .map(|i| {
                let mut a = [0u8; 16];
                a[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
                a[15] = i;
                bit_v6(&a)
            })
            .collect();
        assert!(
            v4.len() >= 250 && v6.len() >= 250,
            "{} {}",
            v4.len(),
            v6.len()
        );
    }
}
