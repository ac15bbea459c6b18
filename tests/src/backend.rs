//! Small TCP servers that stand in for backends in the end-to-end tests: each answers with
//! its name, so a test sees which backend the load balancer chose. One accept loop serves
//! them all; every server stops when its [`Server`] is dropped and no connection outlives
//! [`CONN_LIMIT`], so a failing test leaves no thread serving forever.

use crate::netns::Netns;
use anyhow::Result;
use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{TcpListener, TcpStream},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

/// The longest a served connection may live, whatever the client does.
pub const CONN_LIMIT: Duration = Duration::from_secs(180);
/// How long a connection's read waits before it looks at the stop flag again.
const POLL: Duration = Duration::from_millis(200);

/// A running test server; its accept loops and connections stop when this is dropped.
#[derive(Debug)]
pub struct Server {
    stop: Arc<AtomicBool>,
}

impl Server {
    /// A server with no listener yet: [`Server::accept`] adds them.
    pub fn new() -> Server {
        Server {
            stop: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The flag that is set when the server is dropped (for a handler's own loop).
    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.stop)
    }

    /// Accepts on `listener` until dropped, each connection (made blocking) handed to
    /// `handle` on its own thread.
    pub fn accept<H>(&self, listener: TcpListener, handle: H) -> Result<()>
    where
        H: Fn(TcpStream) + Clone + Send + 'static,
    {
        listener.set_nonblocking(true)?;
        let stop = self.stop_flag();
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((s, _)) => {
                        let _ = s.set_nonblocking(false);
                        let handle = handle.clone();
                        std::thread::spawn(move || handle(s));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        Ok(())
    }
}

impl Default for Server {
    fn default() -> Self {
        Server::new()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Whether a read error only means "nothing yet" (the poll timeout).
fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

/// A server in `ns` on `port` that answers every line with `name` (a line server): the
/// long-lived L4 streams and short fetches of the L4 tests. With `ipv6` it also listens on
/// `[::]:port` (IPv6 only, next to the IPv4 listener).
pub fn line_server(ns: &Netns, name: &str, port: u16, ipv6: bool) -> Result<Server> {
    let listeners = ns.run(|| -> std::io::Result<Vec<TcpListener>> {
        let mut v = vec![TcpListener::bind(("0.0.0.0", port))?];
        if ipv6 {
            v.push(v6_only_listener(port)?);
        }
        Ok(v)
    })??;
    let server = Server::new();
    for l in listeners {
        let (name, stop) = (name.to_string(), server.stop_flag());
        server.accept(l, move |s| answer_lines(s, &name, &stop))?;
    }
    Ok(server)
}

fn answer_lines(mut s: TcpStream, name: &str, stop: &AtomicBool) {
    let _ = s.set_read_timeout(Some(POLL));
    let Ok(r) = s.try_clone() else { return };
    let mut r = BufReader::new(r);
    let started = Instant::now();
    let mut line = String::new();
    while !stop.load(Ordering::SeqCst) && started.elapsed() < CONN_LIMIT {
        line.clear();
        match r.read_line(&mut line) {
            Ok(0) => return,
            Ok(_) => {
                if s.write_all(format!("{name}\n").as_bytes()).is_err() {
                    return;
                }
            }
            Err(e) if is_timeout(&e) => {}
            Err(_) => return,
        }
    }
}

/// An HTTP/1.1 keep-alive server in `ns` on `0.0.0.0:port` answering every request with
/// 200 and `name` as the body; it closes after a request with `Connection: close`.
pub fn http_name_server(ns: &Netns, name: &str, port: u16) -> Result<Server> {
    let l = ns.run(|| TcpListener::bind(("0.0.0.0", port)))??;
    let server = Server::new();
    let (name, stop) = (name.to_string(), server.stop_flag());
    server.accept(l, move |s| answer_http(s, &name, &stop))?;
    Ok(server)
}

fn answer_http(mut s: TcpStream, name: &str, stop: &AtomicBool) {
    let _ = s.set_read_timeout(Some(POLL));
    let started = Instant::now();
    let (mut buf, mut chunk) = (Vec::new(), [0u8; 4096]);
    while !stop.load(Ordering::SeqCst) && started.elapsed() < CONN_LIMIT {
        match s.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if is_timeout(&e) => continue,
            Err(_) => return,
        }
        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            buf.drain(..end + 4);
            let resp = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{name}",
                name.len()
            );
            if s.write_all(resp.as_bytes()).is_err() || head.contains("connection: close") {
                return;
            }
        }
    }
}

/// An IPv6-only listener on `[::]:port`, so it does not clash with an IPv4 one on the
/// same port. Call it inside the namespace (e.g. in [`Netns::run`]).
pub fn v6_only_listener(port: u16) -> std::io::Result<TcpListener> {
    use std::os::fd::FromRawFd;
    // SAFETY: plain socket calls on a fresh fd that we own and hand to TcpListener.
    unsafe {
        let fd = libc::socket(libc::AF_INET6, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let l = TcpListener::from_raw_fd(fd);
        let one: libc::c_int = 1;
        libc::setsockopt(
            fd,
            libc::IPPROTO_IPV6,
            libc::IPV6_V6ONLY,
            &one as *const _ as *const libc::c_void,
            4,
        );
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_REUSEADDR,
            &one as *const _ as *const libc::c_void,
            4,
        );
        let mut sa: libc::sockaddr_in6 = std::mem::zeroed();
        sa.sin6_family = libc::AF_INET6 as libc::sa_family_t;
        sa.sin6_port = port.to_be();
        if libc::bind(
            fd,
            &sa as *const _ as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_in6>() as u32,
        ) != 0
            || libc::listen(fd, 1024) != 0
        {
            return Err(std::io::Error::last_os_error());
        }
        Ok(l)
    }
}
