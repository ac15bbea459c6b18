//! Checksums: the outer IPv4 header of `ipip` packets.

use crate::parse::Ipv4Hdr;

/// The Internet checksum of a 20-byte IPv4 header whose `check` field is zero, ready to
/// store into `check` as is.
///
/// One's-complement sums do not depend on byte order as long as words are read and the
/// result written back the same way, so the header's words are summed as native `u16`s and
/// the folded, inverted sum is stored natively (RFC 1071, section 2(B)). Fully unrolled.
#[inline(always)]
pub fn ipv4_header(hdr: &Ipv4Hdr) -> u16 {
    // SAFETY: Ipv4Hdr is repr(C), 20 bytes, 2-byte aligned: exactly ten u16 words.
    let w = unsafe { &*(hdr as *const Ipv4Hdr as *const [u16; 10]) };
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
