//! Link-layer addresses of L4 backends, from the kernel's routing and neighbour tables.
//!
//! For each backend: `RTM_GETROUTE` says which interface and next hop (its gateway, or the
//! backend itself when on-link) the kernel would use; `RTM_GETLINK` gives that interface's
//! MAC (the frame's source); `RTM_GETNEIGH` gives the next hop's MAC. A missing neighbour
//! entry is resolved the way the kernel does it for any traffic: we send one UDP datagram
//! towards the next hop (to the discard port), which makes the kernel ARP / neighbour-solicit,
//! and poll the table for a bounded time. XDP_TX sends out of the interface the packet
//! came in on, so a backend routed via another interface is refused.

use crate::dataplane::{L2Addr, L2Map};
use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_DUMP, NLM_F_REQUEST,
};
use netlink_packet_route::{
    link::{LinkAttribute, LinkMessage},
    neighbour::{NeighbourAddress, NeighbourAttribute, NeighbourMessage, NeighbourState},
    route::{RouteAddress, RouteAttribute, RouteMessage},
    AddressFamily, RouteNetlinkMessage,
};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
use std::{
    net::{IpAddr, SocketAddr as InetAddr, UdpSocket},
    os::fd::AsRawFd,
    time::{Duration, Instant},
};

/// How long one netlink answer may take before the request fails.
const RECV_TIMEOUT: Duration = Duration::from_secs(2);
/// Most netlink messages read for one request (bounds a runaway dump).
const MAX_MESSAGES: usize = 100_000;
/// Poll interval while waiting for neighbour resolution.
const POLL: Duration = Duration::from_millis(20);
/// Port the resolution-triggering datagram goes to (discard).
const TRIGGER_PORT: u16 = 9;

/// Why a backend's link-layer address is unknown.
#[derive(Debug, thiserror::Error)]
pub enum NeighError {
    /// Netlink socket or request failure.
    #[error("netlink {what}: {source}")]
    Netlink {
        /// Which request.
        what: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
    /// A netlink answer could not be decoded.
    #[error("netlink {what}: cannot decode the kernel's answer: {message}")]
    Decode {
        /// Which request.
        what: &'static str,
        /// The decoder's message.
        message: String,
    },
    /// No route to the backend.
    #[error("no route to backend {0}")]
    NoRoute(IpAddr),
    /// The route leaves through another interface than the XDP one.
    #[error("backend {backend} is routed via interface index {oif}, not the XDP interface (index {want}); XDP_TX can only send out of the interface it received on")]
    WrongInterface {
        /// The backend.
        backend: IpAddr,
        /// The route's interface.
        oif: u32,
        /// The XDP interface.
        want: u32,
    },
    /// The interface has no Ethernet address.
    #[error("interface index {0} has no Ethernet address")]
    NoLinkAddress(u32),
    /// Neighbour resolution did not finish in time.
    #[error("next hop {next_hop} of backend {backend} did not resolve within {waited:?} (is it up, on the same L2 segment?)")]
    Unresolved {
        /// The backend.
        backend: IpAddr,
        /// Its next hop.
        next_hop: IpAddr,
        /// How long we waited.
        waited: Duration,
    },
}

struct Netlink {
    sock: Socket,
    seq: u32,
}

impl Netlink {
    fn open() -> Result<Self, NeighError> {
        let err = |source| NeighError::Netlink {
            what: "socket",
            source,
        };
        let mut sock = Socket::new(NETLINK_ROUTE).map_err(err)?;
        sock.bind_auto().map_err(err)?;
        sock.connect(&SocketAddr::new(0, 0)).map_err(err)?;
        let tv = libc::timeval {
            tv_sec: RECV_TIMEOUT.as_secs() as libc::time_t,
            tv_usec: 0,
        };
        // SAFETY: valid fd and a timeval of the size given.
        let rc = unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                &tv as *const libc::timeval as *const libc::c_void,
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(err(std::io::Error::last_os_error()));
        }
        Ok(Netlink { sock, seq: 0 })
    }

    /// Sends one request and collects the answers (all parts of a dump).
    fn request(
        &mut self,
        what: &'static str,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<Vec<RouteNetlinkMessage>, NeighError> {
        self.seq = self.seq.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = flags;
        header.sequence_number = self.seq;
        let mut nl = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(msg));
        nl.finalize();
        let mut buf = vec![0u8; nl.buffer_len()];
        nl.serialize(&mut buf);
        self.sock
            .send(&buf, 0)
            .map_err(|source| NeighError::Netlink { what, source })?;

        let dump = flags & NLM_F_DUMP == NLM_F_DUMP;
        let mut out = Vec::new();
        let mut rbuf = vec![0u8; 1 << 16];
        let mut count = 0usize;
        loop {
            let n = self
                .sock
                .recv(&mut &mut rbuf[..], 0)
                .map_err(|source| NeighError::Netlink { what, source })?;
            let mut off = 0usize;
            while off < n {
                count += 1;
                if count > MAX_MESSAGES {
                    return Err(NeighError::Decode {
                        what,
                        message: "too many messages".into(),
                    });
                }
                let bytes = &rbuf[off..n];
                let m = NetlinkMessage::<RouteNetlinkMessage>::deserialize(bytes).map_err(|e| {
                    NeighError::Decode {
                        what,
                        message: e.to_string(),
                    }
                })?;
                let len = m.header.length as usize;
                if len == 0 {
                    return Err(NeighError::Decode {
                        what,
                        message: "zero-length message".into(),
                    });
                }
                off += (len + 3) & !3;
                if m.header.sequence_number != self.seq {
                    continue;
                }
                match m.payload {
                    NetlinkPayload::Done(_) => return Ok(out),
                    NetlinkPayload::Error(e) => {
                        if e.code.is_none() {
                            return Ok(out);
                        }
                        return Err(NeighError::Netlink {
                            what,
                            source: e.to_io(),
                        });
                    }
                    NetlinkPayload::InnerMessage(inner) => {
                        out.push(inner);
                        if !dump {
                            return Ok(out);
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    /// (output interface, next hop) the kernel would use for `dst`.
    fn route(&mut self, dst: IpAddr) -> Result<(u32, IpAddr), NeighError> {
        let mut m = RouteMessage::default();
        match dst {
            IpAddr::V4(a) => {
                m.header.address_family = AddressFamily::Inet;
                m.header.destination_prefix_length = 32;
                m.attributes
                    .push(RouteAttribute::Destination(RouteAddress::Inet(a)));
            }
            IpAddr::V6(a) => {
                m.header.address_family = AddressFamily::Inet6;
                m.header.destination_prefix_length = 128;
                m.attributes
                    .push(RouteAttribute::Destination(RouteAddress::Inet6(a)));
            }
        }
        let answers = self.request(
            "RTM_GETROUTE",
            RouteNetlinkMessage::GetRoute(m),
            NLM_F_REQUEST,
        )?;
        for a in answers {
            if let RouteNetlinkMessage::NewRoute(r) = a {
                let mut oif = None;
                let mut gw = None;
                for attr in &r.attributes {
                    match attr {
                        RouteAttribute::Oif(i) => oif = Some(*i),
                        RouteAttribute::Gateway(RouteAddress::Inet(g)) => gw = Some(IpAddr::V4(*g)),
                        RouteAttribute::Gateway(RouteAddress::Inet6(g)) => {
                            gw = Some(IpAddr::V6(*g))
                        }
                        _ => {}
                    }
                }
                if let Some(oif) = oif {
                    return Ok((oif, gw.unwrap_or(dst)));
                }
            }
        }
        Err(NeighError::NoRoute(dst))
    }

    /// The Ethernet address and MTU of interface `index`.
    fn link(&mut self, index: u32) -> Result<([u8; 6], u16), NeighError> {
        let mut m = LinkMessage::default();
        m.header.index = index;
        let answers = self.request(
            "RTM_GETLINK",
            RouteNetlinkMessage::GetLink(m),
            NLM_F_REQUEST,
        )?;
        for a in answers {
            if let RouteNetlinkMessage::NewLink(l) = a {
                let mut mac = None;
                let mut mtu = 0u16;
                for attr in &l.attributes {
                    match attr {
                        LinkAttribute::Address(m) => mac = <[u8; 6]>::try_from(m.as_slice()).ok(),
                        LinkAttribute::Mtu(m) => mtu = u16::try_from(*m).unwrap_or(u16::MAX),
                        _ => {}
                    }
                }
                if let Some(mac) = mac {
                    return Ok((mac, mtu));
                }
            }
        }
        Err(NeighError::NoLinkAddress(index))
    }

    /// Usable neighbour entries on `ifindex`: address, MAC, and whether the entry is
    /// STALE (unconfirmed: the kernel re-checks it only when it sends through it).
    fn neighbours(&mut self, ifindex: u32) -> Result<Vec<(IpAddr, [u8; 6], bool)>, NeighError> {
        let mut out = Vec::new();
        for family in [AddressFamily::Inet, AddressFamily::Inet6] {
            let mut m = NeighbourMessage::default();
            m.header.family = family;
            let answers = self.request(
                "RTM_GETNEIGH",
                RouteNetlinkMessage::GetNeighbour(m),
                NLM_F_REQUEST | NLM_F_DUMP,
            )?;
            for a in answers {
                let RouteNetlinkMessage::NewNeighbour(n) = a else {
                    continue;
                };
                if n.header.ifindex != ifindex {
                    continue;
                }
                let usable = matches!(
                    n.header.state,
                    NeighbourState::Reachable
                        | NeighbourState::Stale
                        | NeighbourState::Delay
                        | NeighbourState::Probe
                        | NeighbourState::Permanent
                        | NeighbourState::Noarp
                );
                if !usable {
                    continue;
                }
                let mut dst = None;
                let mut mac = None;
                for attr in &n.attributes {
                    match attr {
                        NeighbourAttribute::Destination(NeighbourAddress::Inet(a)) => {
                            dst = Some(IpAddr::V4(*a))
                        }
                        NeighbourAttribute::Destination(NeighbourAddress::Inet6(a)) => {
                            dst = Some(IpAddr::V6(*a))
                        }
                        NeighbourAttribute::LinkLayerAddress(l) => {
                            mac = <[u8; 6]>::try_from(l.as_slice()).ok()
                        }
                        _ => {}
                    }
                }
                if let (Some(d), Some(m)) = (dst, mac) {
                    out.push((d, m, n.header.state == NeighbourState::Stale));
                }
            }
        }
        Ok(out)
    }
}

/// Makes the kernel resolve `next_hop` by sending it one datagram (errors ignored: an
/// unreachable answer still resolves the MAC, and a failed send is seen as a timeout).
fn trigger(next_hop: IpAddr) {
    let bind: InetAddr = if next_hop.is_ipv4() {
        "0.0.0.0:0".parse()
    } else {
        "[::]:0".parse()
    }
    .unwrap_or_else(|_| InetAddr::from(([0, 0, 0, 0], 0)));
    if let Ok(s) = UdpSocket::bind(bind) {
        let _ = s.send_to(b"lb", InetAddr::new(next_hop, TRIGGER_PORT));
    }
}

/// Resolves the Ethernet addresses for `backends` reached through interface `ifindex`,
/// waiting at most `timeout` for neighbour resolution. Returns the resolved ones and, for
/// the others, why not.
pub fn resolve(
    ifindex: u32,
    backends: &[IpAddr],
    timeout: Duration,
) -> (L2Map, Vec<(IpAddr, NeighError)>) {
    resolve_with(ifindex, backends, timeout, false)
}

/// [`resolve`]; with `confirm_stale`, next hops whose entry is STALE also get a datagram,
/// so the kernel probes them and a changed MAC (a replaced NIC that sent no gratuitous
/// ARP) shows up as a neighbour event: XDP_TX bypasses the neighbour table, so without
/// our traffic through the stack nothing would ever re-check the entry.
fn resolve_with(
    ifindex: u32,
    backends: &[IpAddr],
    timeout: Duration,
    confirm_stale: bool,
) -> (L2Map, Vec<(IpAddr, NeighError)>) {
    let mut l2 = L2Map::new();
    let mut failed = Vec::new();
    let mut nl = match Netlink::open() {
        Ok(nl) => nl,
        Err(e) => {
            let msg = e.to_string();
            for b in backends {
                failed.push((
                    *b,
                    NeighError::Decode {
                        what: "socket",
                        message: msg.clone(),
                    },
                ));
            }
            return (l2, failed);
        }
    };
    let (src, mtu) = match nl.link(ifindex) {
        Ok(m) => m,
        Err(e) => {
            let msg = e.to_string();
            for b in backends {
                failed.push((
                    *b,
                    NeighError::Decode {
                        what: "RTM_GETLINK",
                        message: msg.clone(),
                    },
                ));
            }
            return (l2, failed);
        }
    };
    let mut pending: Vec<(IpAddr, IpAddr)> = Vec::new();
    for &b in backends {
        match nl.route(b) {
            Ok((oif, _)) if oif != ifindex => failed.push((
                b,
                NeighError::WrongInterface {
                    backend: b,
                    oif,
                    want: ifindex,
                },
            )),
            Ok((_, hop)) => pending.push((b, hop)),
            Err(e) => failed.push((b, e)),
        }
    }
    let start = Instant::now();
    let mut triggered = false;
    loop {
        let neigh = match nl.neighbours(ifindex) {
            Ok(n) => n,
            Err(e) => {
                let msg = e.to_string();
                for (b, _) in pending.drain(..) {
                    failed.push((
                        b,
                        NeighError::Decode {
                            what: "RTM_GETNEIGH",
                            message: msg.clone(),
                        },
                    ));
                }
                break;
            }
        };
        pending.retain(|(b, hop)| match neigh.iter().find(|(a, _, _)| a == hop) {
            Some((_, mac, stale)) => {
                if confirm_stale && *stale {
                    trigger(*hop);
                }
                l2.insert(
                    *b,
                    L2Addr {
                        dst: *mac,
                        src,
                        mtu,
                    },
                );
                false
            }
            None => true,
        });
        if pending.is_empty() {
            break;
        }
        if start.elapsed() >= timeout {
            for (b, hop) in pending.drain(..) {
                failed.push((
                    b,
                    NeighError::Unresolved {
                        backend: b,
                        next_hop: hop,
                        waited: timeout,
                    },
                ));
            }
            break;
        }
        if !triggered || start.elapsed().as_millis() % 500 < POLL.as_millis() {
            for (_, hop) in &pending {
                trigger(*hop);
            }
            triggered = true;
        }
        std::thread::sleep(POLL);
    }
    (l2, failed)
}

/// How often the [`Watcher`] re-resolves without being told to by a neighbour event
/// (resolving backends still missing, re-checking STALE entries).
pub const REFRESH_PERIOD: Duration = Duration::from_secs(10);
/// How long one refresh that may send datagrams waits for the answers.
const REFRESH_TIMEOUT: Duration = Duration::from_secs(1);
/// Least time between two refreshes that send datagrams (our own probes cause neighbour
/// events; this keeps them from feeding each other).
const MIN_PROBE_INTERVAL: Duration = Duration::from_secs(1);
/// How long the watcher waits after an event for more (a flush deletes many entries).
const DEBOUNCE: Duration = Duration::from_millis(50);
/// Receive timeout of the event socket: how long a stop request may go unnoticed.
const EVENT_WAIT: Duration = Duration::from_millis(250);
/// Multicast groups of the event socket (bit masks for `bind`): links and neighbours.
const RTMGRP_LINK: u32 = 1;
const RTMGRP_NEIGH: u32 = 4;

/// What the watcher resolves: the interface, the backends, and the addresses the
/// daemon last applied.
struct Watched {
    ifindex: u32,
    backends: Vec<IpAddr>,
    current: L2Map,
}

/// Keeps the L4 backends' Ethernet addresses current after start: a thread subscribed to
/// the kernel's neighbour and link events (RTNLGRP_NEIGH, RTNLGRP_LINK) re-reads the
/// neighbour table when an entry of the XDP interface changes, re-resolves a deleted one,
/// and every [`REFRESH_PERIOD`] resolves the missing and re-checks the STALE ones. Each
/// time the result differs from what the daemon has, it sends the whole new map on the
/// channel; the daemon writes it through the data plane (the only map writer). A backend
/// whose entry disappears keeps its last address until it resolves again (health checks
/// decide whether it is up). Stops when dropped.
pub struct Watcher {
    shared: std::sync::Arc<std::sync::Mutex<Watched>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Watcher {
    /// Starts watching `backends` on interface `ifindex`, starting from `current` (what the
    /// daemon resolved and applied). Updates arrive on the returned channel.
    pub fn start(
        ifindex: u32,
        backends: Vec<IpAddr>,
        current: L2Map,
    ) -> Result<(Watcher, tokio::sync::mpsc::Receiver<L2Map>), NeighError> {
        let sock = event_socket()?;
        let shared = std::sync::Arc::new(std::sync::Mutex::new(Watched {
            ifindex,
            backends,
            current,
        }));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let (s, st) = (shared.clone(), stop.clone());
        std::thread::Builder::new()
            .name("lb-neigh".into())
            .spawn(move || watch_loop(sock, s, st, tx))
            .map_err(|source| NeighError::Netlink {
                what: "watcher thread",
                source,
            })?;
        Ok((Watcher { shared, stop }, rx))
    }

    /// After a reload: the new interface, backends and applied addresses.
    pub fn update(&self, ifindex: u32, backends: Vec<IpAddr>, current: L2Map) {
        let mut w = self.shared.lock().unwrap_or_else(|e| e.into_inner());
        *w = Watched {
            ifindex,
            backends,
            current,
        };
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// A netlink socket subscribed to link and neighbour events, with a receive timeout.
fn event_socket() -> Result<Socket, NeighError> {
    let err = |source| NeighError::Netlink {
        what: "event socket",
        source,
    };
    let mut sock = Socket::new(NETLINK_ROUTE).map_err(err)?;
    sock.bind(&SocketAddr::new(0, RTMGRP_LINK | RTMGRP_NEIGH))
        .map_err(err)?;
    let tv = libc::timeval {
        tv_sec: 0,
        tv_usec: EVENT_WAIT.as_micros() as libc::suseconds_t,
    };
    // SAFETY: valid fd and a timeval of the size given.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            &tv as *const libc::timeval as *const libc::c_void,
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(err(std::io::Error::last_os_error()));
    }
    Ok(sock)
}

/// What a batch of events asks for.
#[derive(Default)]
struct Wanted {
    /// Re-read the table (an entry or our link changed).
    read: bool,
    /// Resolve, sending datagrams (an entry was deleted, or the socket overflowed).
    probe: bool,
}

/// Sorts the events in `buf` that concern interface `ifindex`.
fn classify(buf: &[u8], ifindex: u32, wanted: &mut Wanted) {
    let mut off = 0usize;
    while off < buf.len() {
        let Ok(m) = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&buf[off..]) else {
            // Undecodable: look again rather than miss a change.
            wanted.read = true;
            return;
        };
        let len = m.header.length as usize;
        if len == 0 {
            return;
        }
        off += (len + 3) & !3;
        match m.payload {
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewNeighbour(n))
                if n.header.ifindex == ifindex =>
            {
                wanted.read = true
            }
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelNeighbour(n))
                if n.header.ifindex == ifindex =>
            {
                wanted.probe = true
            }
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(l))
                if l.header.index == ifindex =>
            {
                wanted.read = true
            }
            _ => {}
        }
    }
}

fn watch_loop(
    sock: Socket,
    shared: std::sync::Arc<std::sync::Mutex<Watched>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    tx: tokio::sync::mpsc::Sender<L2Map>,
) {
    let mut buf = vec![0u8; 1 << 16];
    let mut wanted = Wanted::default();
    let mut first_event: Option<Instant> = None;
    let mut last_probe = Instant::now();
    let mut last_periodic = Instant::now();
    while !stop.load(std::sync::atomic::Ordering::Relaxed) && !tx.is_closed() {
        let ifindex = shared.lock().unwrap_or_else(|e| e.into_inner()).ifindex;
        match sock.recv(&mut &mut buf[..], 0) {
            Ok(n) => {
                let before = wanted.read || wanted.probe;
                classify(&buf[..n], ifindex, &mut wanted);
                if !before && (wanted.read || wanted.probe) {
                    first_event = Some(Instant::now());
                }
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                // Events were lost: resolve everything.
                wanted.probe = true;
                first_event.get_or_insert_with(Instant::now);
            }
            Err(_) => {} // timeout (EAGAIN) or a transient error: fall through to timers
        }
        let periodic = last_periodic.elapsed() >= REFRESH_PERIOD;
        let settled = first_event.is_some_and(|t| t.elapsed() >= DEBOUNCE);
        if !periodic && !settled {
            continue;
        }
        let probe = (periodic || wanted.probe) && last_probe.elapsed() >= MIN_PROBE_INTERVAL;
        if !probe && !wanted.read && !periodic {
            // A deletion inside the probe interval: keep it for the next round.
            continue;
        }
        if periodic {
            last_periodic = Instant::now();
        }
        if probe {
            last_probe = Instant::now();
            wanted.probe = false;
        }
        wanted.read = false;
        if !wanted.probe {
            first_event = None;
        }
        let (ifindex, backends) = {
            let w = shared.lock().unwrap_or_else(|e| e.into_inner());
            (w.ifindex, w.backends.clone())
        };
        if backends.is_empty() {
            continue;
        }
        let timeout = if probe {
            REFRESH_TIMEOUT
        } else {
            Duration::ZERO
        };
        let (resolved, _) = resolve_with(ifindex, &backends, timeout, probe && periodic);
        let next = {
            let mut w = shared.lock().unwrap_or_else(|e| e.into_inner());
            if w.ifindex != ifindex || w.backends != backends {
                continue; // a reload changed the set meanwhile: the next round uses it
            }
            let mut next = w.current.clone();
            next.retain(|a, _| backends.contains(a));
            for (a, l2) in &resolved {
                match next.get(a) {
                    Some(old) if old == l2 => {}
                    Some(old) => tracing::info!(
                        backend = %a,
                        old = %fmt_mac(&old.dst),
                        new = %fmt_mac(&l2.dst),
                        "backend link-layer address changed"
                    ),
                    None => tracing::info!(
                        backend = %a,
                        mac = %fmt_mac(&l2.dst),
                        "backend resolved"
                    ),
                }
            }
            next.extend(resolved);
            if next == w.current {
                continue;
            }
            w.current = next.clone();
            next
        };
        if tx.blocking_send(next).is_err() {
            return;
        }
    }
}

/// `aa:bb:cc:dd:ee:ff`.
pub fn fmt_mac(m: &[u8; 6]) -> String {
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        m[0], m[1], m[2], m[3], m[4], m[5]
    )
}

impl Watcher {
    /// [`Watcher::start`] for the L4 backends of `config` on its XDP interface, from the
    /// addresses `l2` the daemon resolved. `None` (logged) when there is nothing to watch
    /// or the watcher cannot start; the channel then never yields.
    pub fn for_config(
        config: &crate::config::Config,
        l2: &L2Map,
    ) -> (Option<Watcher>, tokio::sync::mpsc::Receiver<L2Map>) {
        let backends = config.l4_backends();
        let started = match crate::preflight::check_interface(&config.xdp.interface) {
            Ok(ifindex) => Watcher::start(ifindex, backends, l2.clone()).map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match started {
            Ok((w, rx)) => (Some(w), rx),
            Err(e) => {
                tracing::warn!(error = %e, "backend MAC refresh disabled");
                (None, tokio::sync::mpsc::channel(1).1)
            }
        }
    }

    /// [`Watcher::update`] from a reloaded config and the addresses resolved for it.
    pub fn update_for(&self, config: &crate::config::Config, l2: &L2Map) {
        if let Ok(ifindex) = crate::preflight::check_interface(&config.xdp.interface) {
            self.update(ifindex, config.l4_backends(), l2.clone());
        }
    }
}
