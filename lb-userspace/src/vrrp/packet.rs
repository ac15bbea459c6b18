//! VRRPv3 advertisements (RFC 5798 section 5): encoding, decoding and the receive checks
//! of section 7.1.
//!
//! Everything here is pure and works on byte slices, so it can be fed arbitrary input by
//! tests: no function in this module panics, whatever the bytes. The IO layer hands us the
//! VRRP payload plus what the kernel told it about the packet (source, destination, TTL or
//! hop limit); [`check`] then says whether the packet counts, or which rule it broke.

use super::auth::{self, AuthFailure, TRAILER_LEN, TYPE_AUTH};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// IP protocol number of VRRP.
pub const IPPROTO_VRRP: u8 = 112;
/// The only protocol version we speak (RFC 5798).
pub const VERSION: u8 = 3;
/// Packet type ADVERTISEMENT, the only type RFC 5798 defines.
pub const TYPE_ADVERT: u8 = 1;
/// Fixed header length, before the addresses.
pub const HEADER_LEN: usize = 8;
/// The TTL / hop limit every VRRP packet must be sent and received with (RFC 5798 5.1.1.3):
/// a packet that crossed a router cannot be from our link.
pub const TTL: u8 = 255;
/// IPv4 multicast group of VRRP.
pub const GROUP_V4: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);
/// IPv6 multicast group of VRRP.
pub const GROUP_V6: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12);
/// Largest advert interval the 12-bit field can carry, in centiseconds.
pub const MAX_INTERVAL_CS: u16 = 0x0fff;
/// Largest number of addresses the 8-bit count can carry.
pub const MAX_ADDRS: usize = 255;

/// Why a received packet was not accepted. Each variant is one drop counter, so the names
/// double as counter names ([`DropReason::name`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum DropReason {
    /// IPv4 TTL or IPv6 hop limit was not 255: the packet was routed, or forged off-link.
    #[error("TTL/hop limit {0} is not 255")]
    Ttl(u8),
    /// The version nibble was not 3 (VRRPv2 speakers land here).
    #[error("VRRP version {0} (only 3 is supported)")]
    Version(u8),
    /// The type nibble was not 1 (ADVERTISEMENT).
    #[error("VRRP packet type {0} (only 1, ADVERTISEMENT, exists)")]
    Type(u8),
    /// Shorter than the fixed header, or than the addresses its count announces.
    #[error("packet of {len} bytes is too short ({need} needed)")]
    Truncated {
        /// Bytes received.
        len: usize,
        /// Bytes the header implies.
        need: usize,
    },
    /// Longer than the header and its addresses imply, or an IP header that does not
    /// parse: the address count and the length disagree.
    #[error("length {len} does not match {count} address(es) ({expect} bytes expected)")]
    Length {
        /// Bytes received.
        len: usize,
        /// The "Count IPvX Addr" field.
        count: u8,
        /// Bytes the count implies.
        expect: usize,
    },
    /// The checksum over the pseudo-header and the message is wrong.
    #[error("bad checksum")]
    Checksum,
    /// A virtual router id this instance does not run (another instance's, usually).
    #[error("VRID {0} is not ours")]
    Vrid(u8),
    /// Max Adver Int is 0, which would make every timer fire at once.
    #[error("advert interval 0")]
    Interval,
    /// We own the addresses (priority 255), so nobody else may advertise them (RFC 7.1).
    #[error("we are the address owner")]
    Owner,
    /// Unicast peers are configured and the source is not one of them.
    #[error("source {0} is not a configured peer")]
    NotPeer(IpAddr),
    /// The packet came from one of our own addresses (looped back).
    #[error("our own advert")]
    Own,
    /// An IPv4 header that is not a VRRP packet (options past the buffer, wrong protocol).
    #[error("malformed IP header")]
    IpHeader,
    /// Authenticated mode: missing, unexpected or wrong authentication.
    #[error("authentication: {0}")]
    Auth(AuthFailure),
    /// Authenticated mode: a sequence number not above the last one accepted from this
    /// sender (a replayed advert).
    #[error("replayed advert: sequence {seq} <= {last}")]
    Replay {
        /// The advert's sequence number.
        seq: u64,
        /// The last one accepted from its source.
        last: u64,
    },
}

impl DropReason {
    /// Every counter name, in [`DropReason::index`] order.
    pub const NAMES: [&'static str; 14] = [
        "ttl",
        "version",
        "type",
        "truncated",
        "length",
        "checksum",
        "vrid",
        "interval",
        "owner",
        "not_peer",
        "own",
        "ip_header",
        "auth",
        "replay",
    ];

    /// Index of this reason's counter.
    pub fn index(&self) -> usize {
        match self {
            DropReason::Ttl(_) => 0,
            DropReason::Version(_) => 1,
            DropReason::Type(_) => 2,
            DropReason::Truncated { .. } => 3,
            DropReason::Length { .. } => 4,
            DropReason::Checksum => 5,
            DropReason::Vrid(_) => 6,
            DropReason::Interval => 7,
            DropReason::Owner => 8,
            DropReason::NotPeer(_) => 9,
            DropReason::Own => 10,
            DropReason::IpHeader => 11,
            DropReason::Auth(_) => 12,
            DropReason::Replay { .. } => 13,
        }
    }

    /// The counter name (`lb vrrp-status`, logs).
    pub fn name(&self) -> &'static str {
        Self::NAMES[self.index()]
    }
}

/// A VRRPv3 advertisement, as sent or as received after the checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Advert {
    /// Virtual router id (1-255; 0 only appears in hostile input and is rejected by VRID).
    pub vrid: u8,
    /// Sender's priority: 0 = "I am leaving", 255 = address owner.
    pub priority: u8,
    /// Max Adver Int in centiseconds (12 bits).
    pub interval_cs: u16,
    /// The virtual addresses, all of the packet's family.
    pub addrs: Vec<IpAddr>,
}

impl Advert {
    /// Serialises with the checksum computed for a packet from `src` to `dst` (the
    /// pseudo-header of RFC 5798 5.2.8). `addrs` of another family than `src` are skipped,
    /// and at most [`MAX_ADDRS`] are written; the interval is clamped to 12 bits.
    pub fn encode(&self, src: IpAddr, dst: IpAddr) -> Vec<u8> {
        self.encode_with(src, dst, None)
    }

    /// [`Advert::encode`] for authenticated mode: type [`TYPE_AUTH`], the trailer with
    /// `seq` and the MAC under `key` (see [`super::auth`]), checksum over all of it.
    pub fn encode_auth(&self, src: IpAddr, dst: IpAddr, key: &[u8], seq: u64) -> Vec<u8> {
        self.encode_with(src, dst, Some((key, seq)))
    }

    fn encode_with(&self, src: IpAddr, dst: IpAddr, auth: Option<(&[u8], u64)>) -> Vec<u8> {
        let v6 = src.is_ipv6();
        let addrs: Vec<IpAddr> = self
            .addrs
            .iter()
            .copied()
            .filter(|a| a.is_ipv6() == v6)
            .take(MAX_ADDRS)
            .collect();
        let mut out = Vec::with_capacity(HEADER_LEN + addrs.len() * 16 + TRAILER_LEN);
        let kind = if auth.is_some() {
            TYPE_AUTH
        } else {
            TYPE_ADVERT
        };
        out.push((VERSION << 4) | kind);
        out.push(self.vrid);
        out.push(self.priority);
        out.push(addrs.len() as u8);
        out.extend_from_slice(&self.interval_cs.min(MAX_INTERVAL_CS).to_be_bytes());
        out.extend_from_slice(&[0, 0]);
        for a in &addrs {
            match a {
                IpAddr::V4(a) => out.extend_from_slice(&a.octets()),
                IpAddr::V6(a) => out.extend_from_slice(&a.octets()),
            }
        }
        if let Some((key, seq)) = auth {
            auth::append_trailer(&mut out, key, seq, src, dst);
        }
        let sum = checksum(src, dst, &out);
        out[6..8].copy_from_slice(&sum.to_be_bytes());
        out
    }

    /// Parses the message structure (version, type, length against the address count),
    /// without the checks that need the IP header; `v6` says which address size applies.
    pub fn decode(buf: &[u8], v6: bool) -> Result<Advert, DropReason> {
        match Self::decode_any(buf, v6)? {
            (a, false) => Ok(a),
            (_, true) => Err(DropReason::Auth(AuthFailure::Unexpected)),
        }
    }

    /// [`Advert::decode`] that also accepts an authenticated advert (type
    /// [`TYPE_AUTH`] with its trailer, not verified here); says which it was.
    pub fn decode_any(buf: &[u8], v6: bool) -> Result<(Advert, bool), DropReason> {
        if buf.len() < HEADER_LEN {
            return Err(DropReason::Truncated {
                len: buf.len(),
                need: HEADER_LEN,
            });
        }
        let version = buf[0] >> 4;
        if version != VERSION {
            return Err(DropReason::Version(version));
        }
        let kind = buf[0] & 0x0f;
        if kind != TYPE_ADVERT && kind != TYPE_AUTH {
            return Err(DropReason::Type(kind));
        }
        let authed = kind == TYPE_AUTH;
        let count = buf[3];
        let size = if v6 { 16 } else { 4 };
        let trailer = if authed { TRAILER_LEN } else { 0 };
        let expect = HEADER_LEN + usize::from(count) * size + trailer;
        if buf.len() < expect {
            return Err(DropReason::Truncated {
                len: buf.len(),
                need: expect,
            });
        }
        if buf.len() > expect {
            return Err(DropReason::Length {
                len: buf.len(),
                count,
                expect,
            });
        }
        let interval_cs = u16::from_be_bytes([buf[4], buf[5]]) & MAX_INTERVAL_CS;
        let addrs = buf[HEADER_LEN..expect - trailer]
            .chunks_exact(size)
            .map(|c| match <[u8; 16]>::try_from(c) {
                Ok(b) => IpAddr::V6(Ipv6Addr::from(b)),
                Err(_) => {
                    let mut b = [0u8; 4];
                    b.copy_from_slice(&c[..4.min(c.len())]);
                    IpAddr::V4(Ipv4Addr::from(b))
                }
            })
            .collect();
        Ok((
            Advert {
                vrid: buf[1],
                priority: buf[2],
                interval_cs,
                addrs,
            },
            authed,
        ))
    }
}

/// What the socket layer knows about a received packet besides its VRRP payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RxMeta {
    /// Source address (the sender's primary address; link-local for IPv6).
    pub src: IpAddr,
    /// Destination (the group, or our address for unicast).
    pub dst: IpAddr,
    /// IPv4 TTL or IPv6 hop limit.
    pub ttl: u8,
}

/// What a receiving instance checks packets against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RxPolicy<'a> {
    /// Our virtual router id.
    pub vrid: u8,
    /// Our configured priority; 255 means we own the addresses and accept no adverts.
    pub priority: u8,
    /// If non-empty, only these sources are accepted.
    pub peers: &'a [IpAddr],
    /// Our own addresses on the interface, to ignore our own adverts if they loop back.
    pub own: &'a [IpAddr],
}

/// Runs the receive validation of RFC 5798 7.1 on a VRRP payload and returns the advert,
/// or the first rule it broke. Checks run in the RFC's order, so a packet with several
/// faults is counted under the first, like keepalived does.
pub fn check(payload: &[u8], meta: &RxMeta, policy: &RxPolicy<'_>) -> Result<Advert, DropReason> {
    check_auth(payload, meta, policy, None).map(|(a, _)| a)
}

/// [`check`] with authenticated mode: with `key`, only adverts whose MAC verifies pass,
/// and their sequence number is returned (the caller checks it against replays); without,
/// authenticated adverts are dropped. Authentication is checked after the VRID, so
/// another virtual router's adverts on the same link count as `vrid`, not `auth`.
pub fn check_auth(
    payload: &[u8],
    meta: &RxMeta,
    policy: &RxPolicy<'_>,
    key: Option<&[u8]>,
) -> Result<(Advert, Option<u64>), DropReason> {
    if policy.own.contains(&meta.src) {
        return Err(DropReason::Own);
    }
    if !policy.peers.is_empty() && !policy.peers.contains(&meta.src) {
        return Err(DropReason::NotPeer(meta.src));
    }
    if meta.ttl != TTL {
        return Err(DropReason::Ttl(meta.ttl));
    }
    let (advert, authed) = Advert::decode_any(payload, meta.src.is_ipv6())?;
    if checksum(meta.src, meta.dst, payload) != 0 {
        return Err(DropReason::Checksum);
    }
    if advert.vrid != policy.vrid {
        return Err(DropReason::Vrid(advert.vrid));
    }
    let seq = match (key, authed) {
        (None, false) => None,
        (None, true) => return Err(DropReason::Auth(AuthFailure::Unexpected)),
        (Some(_), false) => return Err(DropReason::Auth(AuthFailure::Missing)),
        (Some(k), true) => {
            Some(auth::verify(payload, k, meta.src, meta.dst).map_err(DropReason::Auth)?)
        }
    };
    if policy.priority == 255 {
        return Err(DropReason::Owner);
    }
    if advert.interval_cs == 0 {
        return Err(DropReason::Interval);
    }
    Ok((advert, seq))
}

/// Splits a packet from an IPv4 raw socket (which delivers the IP header) into its
/// metadata and VRRP payload. Uses the header's total length, so trailing link padding
/// is ignored.
pub fn split_ipv4(packet: &[u8]) -> Result<(RxMeta, &[u8]), DropReason> {
    if packet.len() < 20 || packet[0] >> 4 != 4 {
        return Err(DropReason::IpHeader);
    }
    let ihl = usize::from(packet[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([packet[2], packet[3]]));
    if ihl < 20 || total < ihl || total > packet.len() || packet[9] != IPPROTO_VRRP {
        return Err(DropReason::IpHeader);
    }
    let src = Ipv4Addr::new(packet[12], packet[13], packet[14], packet[15]);
    let dst = Ipv4Addr::new(packet[16], packet[17], packet[18], packet[19]);
    let meta = RxMeta {
        src: src.into(),
        dst: dst.into(),
        ttl: packet[8],
    };
    Ok((meta, packet.get(ihl..total).unwrap_or_default()))
}

/// The Internet checksum of `payload` with the IPv4 (RFC 768 style) or IPv6 (RFC 8200 8.1)
/// pseudo-header for protocol 112. Over a message with its checksum filled in, a correct
/// packet gives 0. Mixed families (a bug elsewhere) give a checksum nobody accepts.
pub fn checksum(src: IpAddr, dst: IpAddr, payload: &[u8]) -> u16 {
    let mut sum: u64 = 0;
    let len = payload.len() as u32;
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            sum += sum_words(&s.octets()) + sum_words(&d.octets());
            sum += u64::from(IPPROTO_VRRP) + u64::from(len & 0xffff);
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            sum += sum_words(&s.octets()) + sum_words(&d.octets());
            sum += u64::from(len >> 16) + u64::from(len & 0xffff) + u64::from(IPPROTO_VRRP);
        }
        _ => return 0xffff,
    }
    sum += sum_words(payload);
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Sum of big-endian 16-bit words, an odd last byte padded with zero.
fn sum_words(b: &[u8]) -> u64 {
    let mut chunks = b.chunks_exact(2);
    let mut sum: u64 = chunks
        .by_ref()
        .map(|c| u64::from(u16::from_be_bytes([c[0], c[1]])))
        .sum();
    if let [last] = chunks.remainder() {
        sum += u64::from(*last) << 8;
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// An advert keepalived 2.2.7 sent (VRRPv3, vrid 51, priority 150, 100 ms, VIP
    /// 198.18.0.99) from 198.18.0.2 to 224.0.0.18, IP header included, captured with a
    /// raw socket in a namespace: see `fixtures/keepalived_v4.hex`.
    const KEEPALIVED_V4: &str = include_str!("fixtures/keepalived_v4.hex");
    /// The same for IPv6 (VIP 2001:db8::99), source and destination from the capture.
    const KEEPALIVED_V6: &str = include_str!("fixtures/keepalived_v6.hex");

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s
            .lines()
            .filter(|l| !l.starts_with('#'))
            .collect::<String>();
        let s: String = s.chars().filter(|c| c.is_ascii_hexdigit()).collect();
        (0..s.len() / 2)
            .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
            .collect()
    }

    fn fixture_meta(s: &str) -> Vec<(String, String)> {
        s.lines()
            .filter_map(|l| l.strip_prefix("# "))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect()
    }

    fn policy<'a>(vrid: u8) -> RxPolicy<'a> {
        RxPolicy {
            vrid,
            priority: 100,
            peers: &[],
            own: &[],
        }
    }

    #[test]
    fn keepalived_v4_advert_passes_every_check() {
        let pkt = hex(KEEPALIVED_V4);
        let (meta, payload) = split_ipv4(&pkt).unwrap();
        assert_eq!(meta.dst, IpAddr::V4(GROUP_V4));
        assert_eq!(meta.ttl, 255);
        let adv = check(payload, &meta, &policy(51)).unwrap();
        assert_eq!(adv.vrid, 51);
        assert_eq!(adv.priority, 150);
        assert_eq!(adv.interval_cs, 10);
        assert_eq!(adv.addrs, vec!["198.18.0.99".parse::<IpAddr>().unwrap()]);
        // Our encoder produces the same bytes, checksum included.
        assert_eq!(adv.encode(meta.src, meta.dst), payload);
    }

    #[test]
    fn keepalived_v6_advert_passes_every_check() {
        let meta_kv = fixture_meta(KEEPALIVED_V6);
        let get = |k: &str| {
            meta_kv
                .iter()
                .find(|(kk, _)| kk == k)
                .unwrap()
                .1
                .parse::<IpAddr>()
                .unwrap()
        };
        let meta = RxMeta {
            src: get("src"),
            dst: get("dst"),
            ttl: 255,
        };
        let payload = hex(KEEPALIVED_V6);
        let adv = check(&payload, &meta, &policy(52)).unwrap();
        assert_eq!(adv.vrid, 52);
        assert_eq!(adv.interval_cs, 10);
        assert_eq!(adv.addrs, vec!["2001:db8::99".parse::<IpAddr>().unwrap()]);
        assert_eq!(adv.encode(meta.src, meta.dst), payload);
    }

    fn sample() -> (Vec<u8>, RxMeta) {
        let src: IpAddr = "198.18.0.2".parse().unwrap();
        let dst = IpAddr::V4(GROUP_V4);
        let adv = Advert {
            vrid: 7,
            priority: 100,
            interval_cs: 100,
            addrs: vec![
                "198.18.0.99".parse().unwrap(),
                "198.18.0.98".parse().unwrap(),
            ],
        };
        (adv.encode(src, dst), RxMeta { src, dst, ttl: 255 })
    }

    #[test]
    fn each_receive_check_has_its_reason() {
        let (good, meta) = sample();
        assert!(check(&good, &meta, &policy(7)).is_ok());

        let ttl = RxMeta { ttl: 254, ..meta };
        assert_eq!(check(&good, &ttl, &policy(7)), Err(DropReason::Ttl(254)));

        let mut v2 = good.clone();
        v2[0] = 0x21;
        assert_eq!(check(&v2, &meta, &policy(7)), Err(DropReason::Version(2)));

        let mut t = good.clone();
        t[0] = 0x32;
        assert_eq!(check(&t, &meta, &policy(7)), Err(DropReason::Type(2)));

        assert_eq!(
            check(&good[..5], &meta, &policy(7)),
            Err(DropReason::Truncated { len: 5, need: 8 })
        );
        assert_eq!(
            check(&good[..12], &meta, &policy(7)),
            Err(DropReason::Truncated { len: 12, need: 16 })
        );
        let mut long = good.clone();
        long.extend_from_slice(&[0, 0, 0, 0]);
        assert_eq!(
            check(&long, &meta, &policy(7)),
            Err(DropReason::Length {
                len: 20,
                count: 2,
                expect: 16
            })
        );

        let mut bad = good.clone();
        bad[2] = 200; // priority changed after the checksum was computed
        assert_eq!(check(&bad, &meta, &policy(7)), Err(DropReason::Checksum));
        // The checksum covers the pseudo-header: another destination breaks it too.
        let other_dst = RxMeta {
            dst: "198.18.0.3".parse().unwrap(),
            ..meta
        };
        assert_eq!(
            check(&good, &other_dst, &policy(7)),
            Err(DropReason::Checksum)
        );

        assert_eq!(check(&good, &meta, &policy(8)), Err(DropReason::Vrid(7)));

        let owner = RxPolicy {
            priority: 255,
            ..policy(7)
        };
        assert_eq!(check(&good, &meta, &owner), Err(DropReason::Owner));

        let zero = Advert {
            interval_cs: 0,
            ..Advert::decode(&good, false).unwrap()
        }
        .encode(meta.src, meta.dst);
        assert_eq!(check(&zero, &meta, &policy(7)), Err(DropReason::Interval));

        let peers = ["198.18.0.3".parse().unwrap()];
        let strict = RxPolicy {
            peers: &peers,
            ..policy(7)
        };
        assert_eq!(
            check(&good, &meta, &strict),
            Err(DropReason::NotPeer(meta.src))
        );
        let own = [meta.src];
        let mine = RxPolicy {
            own: &own,
            ..policy(7)
        };
        assert_eq!(check(&good, &meta, &mine), Err(DropReason::Own));
    }

    #[test]
    fn reason_names_match_indexes() {
        let all = [
            DropReason::Ttl(0),
            DropReason::Version(0),
            DropReason::Type(0),
            DropReason::Truncated { len: 0, need: 0 },
            DropReason::Length {
                len: 0,
                count: 0,
                expect: 0,
            },
            DropReason::Checksum,
            DropReason::Vrid(0),
            DropReason::Interval,
            DropReason::Owner,
            DropReason::NotPeer(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
            DropReason::Own,
            DropReason::IpHeader,
            DropReason::Auth(AuthFailure::BadMac),
            DropReason::Replay { seq: 0, last: 0 },
        ];
        for (i, r) in all.iter().enumerate() {
            assert_eq!(r.index(), i);
        }
    }

    #[test]
    fn ipv6_round_trip_and_odd_lengths() {
        let src: IpAddr = "fe80::1".parse().unwrap();
        let dst = IpAddr::V6(GROUP_V6);
        let adv = Advert {
            vrid: 1,
            priority: 1,
            interval_cs: 2,
            addrs: vec!["2001:db8::1".parse().unwrap()],
        };
        let bytes = adv.encode(src, dst);
        assert_eq!(bytes.len(), 24);
        let meta = RxMeta { src, dst, ttl: 255 };
        assert_eq!(check(&bytes, &meta, &policy(1)).unwrap(), adv);
        // An odd-length buffer still sums (and fails cleanly).
        assert!(check(&bytes[..23], &meta, &policy(1)).is_err());
        // A v4 address in a v6 advert is skipped by encode rather than mis-sized.
        let mixed = Advert {
            addrs: vec!["198.18.0.1".parse().unwrap()],
            ..adv
        };
        assert_eq!(mixed.encode(src, dst).len(), HEADER_LEN);
    }

    #[test]
    fn authenticated_adverts() {
        let key = b"0123456789abcdef".as_slice();
        let (plain, meta) = sample();
        let adv = Advert::decode(&plain, false).unwrap();
        let signed = adv.encode_auth(meta.src, meta.dst, key, 7);
        assert_eq!(signed.len(), plain.len() + TRAILER_LEN);
        assert_eq!(signed[0], 0x3a);
        assert_eq!(checksum(meta.src, meta.dst, &signed), 0);
        assert_eq!(
            check_auth(&signed, &meta, &policy(7), Some(key)),
            Ok((adv.clone(), Some(7)))
        );
        // Without a key here: counted, not accepted; RFC receivers see an unknown type.
        assert_eq!(
            check(&signed, &meta, &policy(7)),
            Err(DropReason::Auth(AuthFailure::Unexpected))
        );
        // With a key here: plain adverts and other keys are refused.
        assert_eq!(
            check_auth(&plain, &meta, &policy(7), Some(key)),
            Err(DropReason::Auth(AuthFailure::Missing))
        );
        assert_eq!(
            check_auth(&signed, &meta, &policy(7), Some(b"another key 12345")),
            Err(DropReason::Auth(AuthFailure::BadMac))
        );
        // Another virtual router's authenticated advert counts as vrid, not auth.
        assert_eq!(
            check_auth(&signed, &meta, &policy(8), Some(b"another key 12345")),
            Err(DropReason::Vrid(7))
        );
        // A signed advert whose priority was raised (checksum fixed up) fails the MAC.
        let mut forged = signed.clone();
        forged[2] = 250;
        forged[6] = 0;
        forged[7] = 0;
        let sum = checksum(meta.src, meta.dst, &forged);
        forged[6..8].copy_from_slice(&sum.to_be_bytes());
        assert_eq!(
            check_auth(&forged, &meta, &policy(7), Some(key)),
            Err(DropReason::Auth(AuthFailure::BadMac))
        );
        // The trailer is part of the length: cut it and the length check fails.
        assert!(matches!(
            check_auth(&signed[..signed.len() - 1], &meta, &policy(7), Some(key)),
            Err(DropReason::Truncated { .. })
        ));
    }

    #[test]
    fn split_ipv4_rejects_broken_headers() {
        let mut pkt = hex(KEEPALIVED_V4);
        assert!(split_ipv4(&pkt[..19]).is_err());
        pkt[9] = 17;
        assert_eq!(split_ipv4(&pkt).map(|_| ()), Err(DropReason::IpHeader));
        let mut pkt = hex(KEEPALIVED_V4);
        pkt[2] = 0xff; // total length beyond the buffer
        assert_eq!(split_ipv4(&pkt).map(|_| ()), Err(DropReason::IpHeader));
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048),
                                    ttl in any::<u8>(), v6 in any::<bool>()) {
            let _ = split_ipv4(&bytes);
            let (src, dst): (IpAddr, IpAddr) = if v6 {
                ("fe80::1".parse().unwrap(), IpAddr::V6(GROUP_V6))
            } else {
                ("198.18.0.2".parse().unwrap(), IpAddr::V4(GROUP_V4))
            };
            let meta = RxMeta { src, dst, ttl };
            let _ = check(&bytes, &meta, &policy(7));
            let _ = Advert::decode(&bytes, v6);
        }

        #[test]
        fn encode_then_check_round_trips(vrid in 1u8..=255, prio in 0u8..=254, cs in 1u16..=4095,
                                         n in 0usize..20) {
            let (bytes, meta) = sample();
            let _ = bytes;
            let addrs: Vec<IpAddr> = (0..n).map(|i| IpAddr::V4(Ipv4Addr::new(198, 18, 1, i as u8))).collect();
            let adv = Advert { vrid, priority: prio, interval_cs: cs, addrs };
            let enc = adv.encode(meta.src, meta.dst);
            prop_assert_eq!(check(&enc, &meta, &policy(vrid)), Ok(adv));
        }
    }
}
