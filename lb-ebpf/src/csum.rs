//! Checksums: the outer IPv4 header of `ipip` packets.

/// The Internet checksum of a 20-byte IPv4 header given as its ten 16-bit words in
/// memory order (with the checksum word zero), ready to store into the checksum word.
///
/// One's-complement sums do not depend on byte order as long as words are read and the
/// result written back the same way, so the words are summed as native `u16`s and the
/// folded, inverted sum is stored natively (RFC 1071, section 2(B)). Fully unrolled.
#[inline(always)]
pub fn ipv4_header_words(w: &[u16; 10]) -> u16 {
    let mut sum: u32 = w[0] as u32
        + w[1] as u32
        + w[2] as u32
        + w[3] as u32
        + w[4] as u32
        + w[5] as u32
        + w[6] as u32
        + w[7] as u32
        + w[8] as u32
        + w[9] as u32;
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    !(sum as u16)
}
