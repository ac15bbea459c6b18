//! Authenticated adverts (optional, `auth_key`): an HMAC over the advert with a shared key,
//! and a sequence number against replays. Off by default: keepalived and RFC 5798 have no
//! such thing (RFC 5798 removed VRRPv2's authentication), so only `lb` nodes speak it.
//!
//! Wire format (docs/vrrp.md): a VRRPv3 advert whose type nibble is
//! [`TYPE_AUTH`] (10) instead of 1, followed after the addresses by a 28-byte trailer:
//!
//! ```text
//! +0  u8   algorithm, 1 = HMAC-SHA256 truncated to 128 bits
//! +1  u8   key id (0; reserved for key rollover)
//! +2  u16  reserved, 0
//! +4  u64  sequence number, big-endian, strictly increasing per sender
//! +12 [16] HMAC-SHA256(key, src address || dst address || the message up to here,
//!          with the checksum field zero), first 16 bytes
//! ```
//!
//! The checksum covers the whole message, trailer included. A receiver without the key
//! (keepalived, any RFC 5798 router) discards the packet as an unknown type, which RFC
//! 5798 5.2.2 requires; an `lb` without the key counts it under `drop.auth`.
//!
//! The sequence number is the sender's wall clock in nanoseconds (or the previous number
//! plus one, whichever is larger), so it keeps increasing across restarts without any
//! state on disk, as long as the clock does not step back.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::{collections::HashMap, net::IpAddr, time::SystemTime};

/// The type nibble of an authenticated advert (unassigned by RFC 5798).
pub const TYPE_AUTH: u8 = 10;
/// Algorithm byte: HMAC-SHA256, truncated to [`MAC_LEN`] bytes.
pub const ALG_HMAC_SHA256_128: u8 = 1;
/// Bytes of the MAC carried.
pub const MAC_LEN: usize = 16;
/// Bytes of the trailer after the addresses.
pub const TRAILER_LEN: usize = 4 + 8 + MAC_LEN;
/// Most senders whose last sequence number is remembered (only key holders get in).
const MAX_SENDERS: usize = 1024;

/// Why an advert failed authentication (the `auth` drop counter).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AuthFailure {
    /// We have a key and the advert is a plain one (keepalived, or an unkeyed `lb`).
    Missing,
    /// We have no key and the advert is an authenticated one.
    Unexpected,
    /// The MAC does not match: another key, or the packet was altered.
    BadMac,
    /// An algorithm or key id we do not know.
    Algorithm,
}

impl std::fmt::Display for AuthFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AuthFailure::Missing => "unauthenticated advert (auth_key is set here)",
            AuthFailure::Unexpected => "authenticated advert (no auth_key here)",
            AuthFailure::BadMac => "wrong MAC (another key, or altered)",
            AuthFailure::Algorithm => "unknown algorithm or key id",
        })
    }
}

fn mac_over(key: &[u8], src: IpAddr, dst: IpAddr, msg: &[u8]) -> Hmac<Sha256> {
    // HMAC accepts keys of any length; new_from_slice cannot fail for it.
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    match src {
        IpAddr::V4(a) => m.update(&a.octets()),
        IpAddr::V6(a) => m.update(&a.octets()),
    }
    match dst {
        IpAddr::V4(a) => m.update(&a.octets()),
        IpAddr::V6(a) => m.update(&a.octets()),
    }
    // The checksum field (bytes 6-7) counts as zero: it is computed after the MAC.
    m.update(&msg[..6.min(msg.len())]);
    if msg.len() > 8 {
        m.update(&[0, 0]);
        m.update(&msg[8..]);
    } else if msg.len() > 6 {
        m.update(&vec![0u8; msg.len() - 6]);
    }
    m
}

/// Appends the trailer to a message whose type nibble is already [`TYPE_AUTH`] (checksum
/// field still zero): the caller computes the checksum afterwards.
pub fn append_trailer(msg: &mut Vec<u8>, key: &[u8], seq: u64, src: IpAddr, dst: IpAddr) {
    msg.extend_from_slice(&[ALG_HMAC_SHA256_128, 0, 0, 0]);
    msg.extend_from_slice(&seq.to_be_bytes());
    let tag = mac_over(key, src, dst, msg).finalize().into_bytes();
    msg.extend_from_slice(&tag[..MAC_LEN]);
}

/// Verifies the trailer at the end of `msg` (a whole authenticated advert); returns its
/// sequence number. Constant-time MAC comparison.
pub fn verify(msg: &[u8], key: &[u8], src: IpAddr, dst: IpAddr) -> Result<u64, AuthFailure> {
    let Some(at) = msg.len().checked_sub(TRAILER_LEN) else {
        return Err(AuthFailure::BadMac);
    };
    let t = &msg[at..];
    if t[0] != ALG_HMAC_SHA256_128 || t[1] != 0 {
        return Err(AuthFailure::Algorithm);
    }
    let mut seq = [0u8; 8];
    seq.copy_from_slice(&t[4..12]);
    let signed = &msg[..msg.len() - MAC_LEN];
    mac_over(key, src, dst, signed)
        .verify_truncated_left(&t[12..])
        .map_err(|_| AuthFailure::BadMac)?;
    Ok(u64::from_be_bytes(seq))
}

/// The sending side: the key and the last sequence number used.
#[derive(Clone)]
pub struct Signer {
    key: Vec<u8>,
    last: u64,
}

impl Signer {
    /// A signer with `key`.
    pub fn new(key: &[u8]) -> Self {
        Self {
            key: key.to_vec(),
            last: 0,
        }
    }

    /// The key.
    pub fn key(&self) -> &[u8] {
        &self.key
    }

    /// The next sequence number: the wall clock in ns, or one more than the last one.
    pub fn next_seq(&mut self) -> u64 {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        self.last = now.max(self.last.saturating_add(1));
        self.last
    }
}

/// The receiving side: the last accepted sequence number of each sender.
#[derive(Debug, Default)]
pub struct ReplayGuard {
    last: HashMap<IpAddr, u64>,
}

impl ReplayGuard {
    /// Accepts `seq` from `src` if it is greater than the last one accepted from `src`
    /// (and remembers it); otherwise returns that last one. Call only after the MAC
    /// verified, so only key holders take a slot.
    pub fn accept(&mut self, src: IpAddr, seq: u64) -> Result<(), u64> {
        match self.last.get_mut(&src) {
            Some(last) if seq <= *last => Err(*last),
            Some(last) => {
                *last = seq;
                Ok(())
            }
            None => {
                if self.last.len() >= MAX_SENDERS {
                    self.last.clear();
                }
                self.last.insert(src, seq);
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_verify_and_tamper() {
        let src: IpAddr = "198.18.0.2".parse().unwrap();
        let dst: IpAddr = "224.0.0.18".parse().unwrap();
        let mut msg = vec![0x3a, 7, 100, 1, 0, 10, 0, 0, 198, 18, 0, 99];
        append_trailer(&mut msg, b"0123456789abcdef", 42, src, dst);
        assert_eq!(msg.len(), 12 + TRAILER_LEN);
        // The checksum field does not take part.
        msg[6] = 0xab;
        msg[7] = 0xcd;
        assert_eq!(verify(&msg, b"0123456789abcdef", src, dst), Ok(42));
        assert_eq!(
            verify(&msg, b"0123456789abcdeX", src, dst),
            Err(AuthFailure::BadMac)
        );
        let other: IpAddr = "198.18.0.3".parse().unwrap();
        assert_eq!(
            verify(&msg, b"0123456789abcdef", other, dst),
            Err(AuthFailure::BadMac),
            "the source address is covered"
        );
        let mut t = msg.clone();
        t[2] = 200;
        assert_eq!(
            verify(&t, b"0123456789abcdef", src, dst),
            Err(AuthFailure::BadMac)
        );
        let mut t = msg.clone();
        t[12] = 9;
        assert_eq!(
            verify(&t, b"0123456789abcdef", src, dst),
            Err(AuthFailure::Algorithm)
        );
        assert_eq!(
            verify(&msg[..10], b"0123456789abcdef", src, dst),
            Err(AuthFailure::BadMac)
        );
    }

    #[test]
    fn sequence_increases_and_replays_are_refused() {
        let mut s = Signer::new(b"k");
        let a = s.next_seq();
        let b = s.next_seq();
        assert!(b > a && a > 1_600_000_000_000_000_000, "{a} {b}");
        let mut g = ReplayGuard::default();
        let src: IpAddr = "198.18.0.2".parse().unwrap();
        let other: IpAddr = "198.18.0.3".parse().unwrap();
        assert_eq!(g.accept(src, a), Ok(()));
        assert_eq!(g.accept(src, a), Err(a));
        assert_eq!(g.accept(src, a - 1), Err(a));
        assert_eq!(g.accept(other, a - 1), Ok(()), "per sender");
        assert_eq!(g.accept(src, b), Ok(()));
    }
}
