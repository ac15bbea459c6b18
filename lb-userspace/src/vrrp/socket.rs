//! Raw IP sockets for protocol 112, one pair per virtual router instance.
//!
//! Two sockets, because one cannot do both jobs: the sending socket is bound to our
//! primary address so the kernel uses exactly the source the checksum was computed over,
//! but a raw socket bound to an address only receives packets addressed to it. So the
//! receiving socket stays unbound (it sees the group and unicast adverts) and the sending
//! one gets a drop-everything socket filter. Both are bound to the interface
//! (SO_BINDTODEVICE), so adverts of other links never reach this instance.

use super::{
    iface::Iface,
    packet::{self, Advert, DropReason, RxMeta, GROUP_V4, GROUP_V6, IPPROTO_VRRP, TTL},
};
use socket2::{Domain, InterfaceIndexOrAddress, Protocol, SockAddr, SockFilter, Socket, Type};
use std::{
    io,
    mem::MaybeUninit,
    net::{IpAddr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6},
    os::fd::AsRawFd,
};
use tokio::io::unix::AsyncFd;

/// Receive buffer size of the receiving socket, in bytes.
const RCVBUF: libc::c_int = 4 << 20;
/// Largest packet we read; adverts are at most 8 + 255 x 16 bytes plus an IP header.
const RECV_BUF: usize = 4200;

/// Why the sockets could not be set up or used.
#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    /// A socket call failed during setup.
    #[error("VRRP socket on {interface}: {what}: {source}")]
    Setup {
        /// Interface name.
        interface: String,
        /// The step that failed.
        what: &'static str,
        /// The OS error.
        source: io::Error,
    },
    /// Sending an advert failed.
    #[error("sending a VRRP advert to {dst}: {source}")]
    Send {
        /// Destination.
        dst: IpAddr,
        /// The OS error.
        source: io::Error,
    },
}

/// A received packet after the IP-level split: metadata plus VRRP payload, or why the IP
/// layer already disqualified it.
pub type Received = Result<(RxMeta, Vec<u8>), DropReason>;

/// The socket pair of one instance.
pub struct VrrpSocket {
    rx: AsyncFd<Socket>,
    tx: Socket,
    v6: bool,
    ifindex: u32,
    src: IpAddr,
    dsts: Vec<IpAddr>,
}

impl VrrpSocket {
    /// Opens the sockets on `iface` with source `src` (our primary address), sending to the
    /// VRRP group, or to `peers` when there are any. Needs CAP_NET_RAW.
    pub fn open(iface: &Iface, src: IpAddr, peers: &[IpAddr]) -> Result<Self, SocketError> {
        let v6 = src.is_ipv6();
        let setup = |what: &'static str| {
            let interface = iface.name.clone();
            move |source| SocketError::Setup {
                interface,
                what,
                source,
            }
        };
        let domain = if v6 { Domain::IPV6 } else { Domain::IPV4 };
        let proto = Some(Protocol::from(i32::from(IPPROTO_VRRP)));
        let rx = Socket::new(domain, Type::RAW, proto).map_err(setup("socket"))?;
        let tx = Socket::new(domain, Type::RAW, proto).map_err(setup("socket"))?;
        for s in [&rx, &tx] {
            s.bind_device(Some(iface.name.as_bytes()))
                .map_err(setup("SO_BINDTODEVICE"))?;
            s.set_nonblocking(true).map_err(setup("O_NONBLOCK"))?;
        }
        // The sending socket never reads: a one-instruction classic BPF "return 0".
        tx.attach_filter(&[SockFilter::new(
            (libc::BPF_RET | libc::BPF_K) as u16,
            0,
            0,
            0,
        )])
        .map_err(setup("SO_ATTACH_FILTER"))?;
        // A deep receive queue, so a burst of junk does not push the master's adverts out
        // before we get to read them (SO_RCVBUFFORCE as root, else capped by rmem_max).
        if setsockopt_int(&rx, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, RCVBUF).is_err() {
            let _ = rx.set_recv_buffer_size(RCVBUF as usize);
        }
        let multicast = peers.is_empty();
        match src {
            IpAddr::V4(a) => {
                tx.set_multicast_ttl_v4(u32::from(TTL))
                    .map_err(setup("IP_MULTICAST_TTL"))?;
                tx.set_ttl_v4(u32::from(TTL)).map_err(setup("IP_TTL"))?;
                tx.set_multicast_loop_v4(false)
                    .map_err(setup("IP_MULTICAST_LOOP"))?;
                tx.set_freebind_v4(true).map_err(setup("IP_FREEBIND"))?;
                tx.bind(&SockAddr::from(SocketAddrV4::new(a, 0)))
                    .map_err(setup("bind"))?;
                if multicast {
                    rx.join_multicast_v4_n(&GROUP_V4, &InterfaceIndexOrAddress::Index(iface.index))
                        .map_err(setup("IP_ADD_MEMBERSHIP"))?;
                }
            }
            IpAddr::V6(a) => {
                tx.set_multicast_hops_v6(u32::from(TTL))
                    .map_err(setup("IPV6_MULTICAST_HOPS"))?;
                tx.set_unicast_hops_v6(u32::from(TTL))
                    .map_err(setup("IPV6_UNICAST_HOPS"))?;
                tx.set_multicast_loop_v6(false)
                    .map_err(setup("IPV6_MULTICAST_LOOP"))?;
                tx.set_multicast_if_v6(iface.index)
                    .map_err(setup("IPV6_MULTICAST_IF"))?;
                tx.set_freebind_v6(true).map_err(setup("IPV6_FREEBIND"))?;
                tx.bind(&SockAddr::from(SocketAddrV6::new(a, 0, 0, iface.index)))
                    .map_err(setup("bind"))?;
                rx.set_recv_hoplimit_v6(true)
                    .map_err(setup("IPV6_RECVHOPLIMIT"))?;
                setsockopt_int(&rx, libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO, 1)
                    .map_err(setup("IPV6_RECVPKTINFO"))?;
                if multicast {
                    rx.join_multicast_v6(&GROUP_V6, iface.index)
                        .map_err(setup("IPV6_JOIN_GROUP"))?;
                }
            }
        }
        let dsts = if multicast {
            vec![if v6 {
                IpAddr::V6(GROUP_V6)
            } else {
                IpAddr::V4(GROUP_V4)
            }]
        } else {
            peers.to_vec()
        };
        // SAFETY: the Socket owns its fd and keeps it open for as long as the AsyncFd
        // (which owns the Socket) lives.
        let rx = unsafe { AsyncFd::register(rx) }
            .map_err(|e| setup("register with tokio")(io::Error::from(e)))?;
        Ok(Self {
            rx,
            tx,
            v6,
            ifindex: iface.index,
            src,
            dsts,
        })
    }

    /// Our source address.
    pub fn src(&self) -> IpAddr {
        self.src
    }

    /// Sends `advert` to the group or to every unicast peer. Stops at the first failure,
    /// but only after trying every destination once.
    pub fn send(&self, advert: &Advert) -> Result<(), SocketError> {
        self.send_auth(advert, None)
    }

    /// [`VrrpSocket::send`]; with `auth` (key, sequence number), as an authenticated
    /// advert (the MAC covers each destination's copy).
    pub fn send_auth(
        &self,
        advert: &Advert,
        auth: Option<(&[u8], u64)>,
    ) -> Result<(), SocketError> {
        let mut first_err = None;
        for &dst in &self.dsts {
            let bytes = match auth {
                Some((key, seq)) => advert.encode_auth(self.src, dst, key, seq),
                None => advert.encode(self.src, dst),
            };
            let addr = match dst {
                IpAddr::V4(d) => SockAddr::from(SocketAddrV4::new(d, 0)),
                IpAddr::V6(d) => {
                    let scope = if needs_scope(&d) { self.ifindex } else { 0 };
                    SockAddr::from(SocketAddrV6::new(d, 0, 0, scope))
                }
            };
            if let Err(source) = self.tx.send_to(&bytes, &addr) {
                first_err.get_or_insert(SocketError::Send { dst, source });
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// Reads a packet that is already queued, without waiting; `None` when none is.
    pub fn try_recv(&self) -> Option<io::Result<Received>> {
        let s = self.rx.get_ref();
        let r = if self.v6 { recv_v6(s) } else { recv_v4(s) };
        match r {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => None,
            r => Some(r),
        }
    }

    /// Waits for the next packet.
    pub async fn recv(&self) -> io::Result<Received> {
        loop {
            let mut guard = self.rx.readable().await?;
            let res = guard.try_io(|fd| {
                if self.v6 {
                    recv_v6(fd.get_ref())
                } else {
                    recv_v4(fd.get_ref())
                }
            });
            match res {
                Ok(r) => return r,
                Err(_would_block) => continue,
            }
        }
    }
}

fn needs_scope(a: &Ipv6Addr) -> bool {
    super::iface::is_link_local(a) || a.is_multicast()
}

fn recv_v4(s: &Socket) -> io::Result<Received> {
    let mut buf = [MaybeUninit::<u8>::uninit(); RECV_BUF];
    let n = s.recv(&mut buf)?;
    // SAFETY: recv initialised the first n bytes.
    let bytes: &[u8] = unsafe { std::slice::from_raw_parts(buf.as_ptr().cast::<u8>(), n) };
    Ok(packet::split_ipv4(bytes).map(|(meta, payload)| (meta, payload.to_vec())))
}

/// recvmsg(2) with IPV6_PKTINFO (destination) and IPV6_HOPLIMIT ancillary data: an IPv6
/// raw socket does not hand us the IP header, and the checks need both.
fn recv_v6(s: &Socket) -> io::Result<Received> {
    let mut buf = vec![0u8; RECV_BUF];
    let mut control = [0u64; 32]; // 256 bytes, 8-aligned as cmsghdr needs
                                  // SAFETY: zeroed sockaddr_in6 / msghdr are valid; all pointers outlive the call.
    let mut from: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = (&mut from as *mut libc::sockaddr_in6).cast();
    msg.msg_namelen = std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: msg describes valid buffers.
    let n = unsafe { libc::recvmsg(s.as_raw_fd(), &mut msg, 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    buf.truncate(n as usize);
    let src = Ipv6Addr::from(from.sin6_addr.s6_addr);
    let mut dst = None;
    let mut hops = None;
    // SAFETY: walking the control buffer the kernel filled, with the libc macros.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            let h = &*c;
            if h.cmsg_level == libc::IPPROTO_IPV6 {
                let data = libc::CMSG_DATA(c);
                if h.cmsg_type == libc::IPV6_PKTINFO {
                    let info = std::ptr::read_unaligned(data.cast::<libc::in6_pktinfo>());
                    dst = Some(Ipv6Addr::from(info.ipi6_addr.s6_addr));
                } else if h.cmsg_type == libc::IPV6_HOPLIMIT {
                    hops = Some(std::ptr::read_unaligned(data.cast::<libc::c_int>()));
                }
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    let (Some(dst), Some(hops)) = (dst, hops) else {
        return Ok(Err(DropReason::IpHeader));
    };
    let meta = RxMeta {
        src: IpAddr::V6(src),
        dst: IpAddr::V6(dst),
        ttl: u8::try_from(hops).unwrap_or(0),
    };
    Ok(Ok((meta, buf)))
}

fn setsockopt_int(s: &Socket, level: i32, name: i32, value: libc::c_int) -> io::Result<()> {
    // SAFETY: passing a pointer to a live c_int and its size.
    let r = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            level,
            name,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The socket address `ip` with port 0, for callers building raw destinations.
pub fn sockaddr(ip: IpAddr, scope: u32) -> SockAddr {
    match ip {
        IpAddr::V4(a) => SockAddr::from(SocketAddr::V4(SocketAddrV4::new(a, 0))),
        IpAddr::V6(a) => SockAddr::from(SocketAddr::V6(SocketAddrV6::new(a, 0, 0, scope))),
    }
}
