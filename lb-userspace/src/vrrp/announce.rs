//! Telling the segment where a VIP lives now: gratuitous ARP (IPv4) and unsolicited
//! neighbour advertisements (IPv6), sent by a new master so that clients and the router
//! update their neighbour caches at once instead of after their entries time out.
//!
//! Both sockets only send: the ARP one is an AF_PACKET socket with protocol 0 (so the
//! kernel delivers nothing to it), the ICMPv6 one gets a drop-everything socket filter.

use super::iface::Iface;
use socket2::{Domain, Protocol, SockAddr, SockFilter, Socket, Type};
use std::{
    io,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddrV6},
    os::fd::AsRawFd,
};

/// Ethernet type of ARP.
const ETH_P_ARP: u16 = 0x0806;
/// All-nodes multicast: where unsolicited NAs go (RFC 4861 7.2.6).
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
/// ICMPv6 Neighbor Advertisement.
const ND_NEIGHBOR_ADVERT: u8 = 136;
/// NA flags: Override set, Router and Solicited clear.
const NA_FLAG_OVERRIDE: u32 = 0x2000_0000;

/// Why an announcement could not be sent.
#[derive(Debug, thiserror::Error)]
pub enum AnnounceError {
    /// Creating or configuring a socket failed.
    #[error("announce socket on {interface}: {what}: {source}")]
    Setup {
        /// Interface name.
        interface: String,
        /// The step that failed.
        what: &'static str,
        /// The OS error.
        source: io::Error,
    },
    /// Sending failed.
    #[error("sending an announcement for {addr} on {interface}: {source}")]
    Send {
        /// Interface name.
        interface: String,
        /// The VIP.
        addr: IpAddr,
        /// The OS error.
        source: io::Error,
    },
}

/// Sends gratuitous ARPs / unsolicited NAs for a set of VIPs on one interface.
pub struct Announcer {
    iface: Iface,
    arp: Option<Socket>,
    nd: Option<Socket>,
}

impl Announcer {
    /// Opens the sockets the VIPs' families need.
    pub fn new(iface: &Iface, vips: &[IpAddr]) -> Result<Self, AnnounceError> {
        let setup = |what: &'static str| {
            let interface = iface.name.clone();
            move |source| AnnounceError::Setup {
                interface,
                what,
                source,
            }
        };
        let arp = if vips.iter().any(IpAddr::is_ipv4) {
            let s = Socket::new(Domain::PACKET, Type::RAW, Some(Protocol::from(0)))
                .map_err(setup("AF_PACKET socket"))?;
            s.set_nonblocking(true).map_err(setup("O_NONBLOCK"))?;
            Some(s)
        } else {
            None
        };
        let nd = if vips.iter().any(IpAddr::is_ipv6) {
            let s = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6))
                .map_err(setup("ICMPv6 socket"))?;
            s.bind_device(Some(iface.name.as_bytes()))
                .map_err(setup("SO_BINDTODEVICE"))?;
            s.set_multicast_hops_v6(255)
                .map_err(setup("IPV6_MULTICAST_HOPS"))?;
            s.set_multicast_if_v6(iface.index)
                .map_err(setup("IPV6_MULTICAST_IF"))?;
            s.set_multicast_loop_v6(false)
                .map_err(setup("IPV6_MULTICAST_LOOP"))?;
            s.attach_filter(&[SockFilter::new(
                (libc::BPF_RET | libc::BPF_K) as u16,
                0,
                0,
                0,
            )])
            .map_err(setup("SO_ATTACH_FILTER"))?;
            s.set_nonblocking(true).map_err(setup("O_NONBLOCK"))?;
            Some(s)
        } else {
            None
        };
        Ok(Self {
            iface: iface.clone(),
            arp,
            nd,
        })
    }

    /// Announces every VIP once. Returns the first error, after trying all.
    pub fn announce(&self, vips: &[IpAddr]) -> Result<(), AnnounceError> {
        let mut first = None;
        for &vip in vips {
            let r = match vip {
                IpAddr::V4(a) => self.send_garp(a),
                IpAddr::V6(a) => self.send_na(a),
            };
            if let Err(source) = r {
                first.get_or_insert(AnnounceError::Send {
                    interface: self.iface.name.clone(),
                    addr: vip,
                    source,
                });
            }
        }
        first.map_or(Ok(()), Err)
    }

    fn send_garp(&self, vip: Ipv4Addr) -> io::Result<()> {
        let Some(s) = &self.arp else { return Ok(()) };
        let frame = garp_frame(self.iface.mac, vip);
        // SAFETY: a zeroed sockaddr_ll is valid; we fill the fields sendto needs.
        let mut ll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        ll.sll_family = libc::AF_PACKET as u16;
        ll.sll_protocol = ETH_P_ARP.to_be();
        ll.sll_ifindex = self.iface.index as i32;
        ll.sll_halen = 6;
        ll.sll_addr[..6].copy_from_slice(&[0xff; 6]);
        // SAFETY: frame and ll are valid for the duration of the call.
        let r = unsafe {
            libc::sendto(
                s.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&ll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if r < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    fn send_na(&self, vip: Ipv6Addr) -> io::Result<()> {
        let Some(s) = &self.nd else { return Ok(()) };
        let msg = na_message(self.iface.mac, vip);
        let dst = SockAddr::from(SocketAddrV6::new(ALL_NODES, 0, 0, self.iface.index));
        s.send_to(&msg, &dst).map(drop)
    }
}

/// A gratuitous ARP request: sender and target protocol address are both the VIP, so
/// every host that has the VIP cached updates it to our MAC.
pub fn garp_frame(mac: [u8; 6], vip: Ipv4Addr) -> Vec<u8> {
    let mut f = Vec::with_capacity(60);
    f.extend_from_slice(&[0xff; 6]);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&ETH_P_ARP.to_be_bytes());
    f.extend_from_slice(&[0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x01]); // Ethernet/IPv4, request
    f.extend_from_slice(&mac);
    f.extend_from_slice(&vip.octets());
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&vip.octets());
    f.resize(60, 0); // Ethernet minimum frame (without FCS)
    f
}

/// An unsolicited NA with the Override flag and our MAC as target link-layer address; the
/// kernel fills in the ICMPv6 checksum.
pub fn na_message(mac: [u8; 6], vip: Ipv6Addr) -> Vec<u8> {
    let mut m = Vec::with_capacity(32);
    m.extend_from_slice(&[ND_NEIGHBOR_ADVERT, 0, 0, 0]);
    m.extend_from_slice(&NA_FLAG_OVERRIDE.to_be_bytes());
    m.extend_from_slice(&vip.octets());
    m.extend_from_slice(&[2, 1]); // option: target link-layer address, 8 bytes
    m.extend_from_slice(&mac);
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garp_layout() {
        let mac = [2, 0, 0, 0, 0, 1];
        let f = garp_frame(mac, Ipv4Addr::new(198, 18, 0, 99));
        assert_eq!(f.len(), 60);
        assert_eq!(&f[12..14], &[0x08, 0x06]);
        assert_eq!(&f[20..22], &[0, 1]); // request
        assert_eq!(&f[22..28], &mac);
        assert_eq!(&f[28..32], &[198, 18, 0, 99]);
        assert_eq!(&f[38..42], &[198, 18, 0, 99]);
    }

    #[test]
    fn na_layout() {
        let m = na_message([2, 0, 0, 0, 0, 1], "2001:db8::99".parse().unwrap());
        assert_eq!(m.len(), 32);
        assert_eq!(m[0], 136);
        assert_eq!(m[4], 0x20);
        assert_eq!(&m[24..26], &[2, 1]);
    }
}
