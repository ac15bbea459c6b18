//! An HTTP/1.1 backend for the L7 tests: it answers every request with its name and what
//! it received (cookies, X-Forwarded-For, the request line), so a test sees which server
//! the proxy chose and what the proxy forwarded.

use crate::netns::Netns;
use anyhow::Result;
use std::{
    io::{ErrorKind, Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

/// An HTTP backend serving from threads; `stop` (or drop) closes its listener and its
/// connections, so connections are refused from then on, like a stopped server.
pub struct Backend {
    stop: Arc<AtomicBool>,
    served: Arc<AtomicUsize>,
}

impl Backend {
    /// Binds `addr` inside `ns` and serves as server `name`.
    /// Paths: `/login` sets `JSESSIONID=s<name>`; `/slow?ms=N` waits N ms first.
    pub fn start(ns: &Netns, name: &'static str, addr: SocketAddr) -> Result<Backend> {
        let listener = ns.run(move || TcpListener::bind(addr))??;
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let served = Arc::new(AtomicUsize::new(0));
        let (st, sv) = (stop.clone(), served.clone());
        std::thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((s, _)) => {
                        let (st, sv) = (st.clone(), sv.clone());
                        std::thread::spawn(move || serve_conn(s, name, &st, &sv));
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(2))
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
            // Connections the kernel completed but we did not accept yet are served
            // (a stopping server finishes what it took); then the listener closes and
            // new connections are refused.
            while let Ok((s, _)) = listener.accept() {
                let (st, sv) = (st.clone(), sv.clone());
                std::thread::spawn(move || serve_conn(s, name, &st, &sv));
            }
        });
        Ok(Backend { stop, served })
    }

    /// Stops accepting: new connections are refused, idle ones close.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Requests answered so far.
    pub fn served(&self) -> usize {
        self.served.load(Ordering::Relaxed)
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.stop();
    }
}

fn serve_conn(mut s: TcpStream, name: &str, stop: &AtomicBool, served: &AtomicUsize) {
    let _ = s.set_nonblocking(false);
    let _ = s.set_read_timeout(Some(Duration::from_millis(50)));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let idle_limit = Instant::now() + Duration::from_secs(30);
    let mut idle_since = Instant::now();
    loop {
        // Stopping: idle connections close, a request already on its way is answered.
        let quiet = buf.is_empty() && idle_since.elapsed() > Duration::from_millis(200);
        if (stop.load(Ordering::Relaxed) && quiet) || Instant::now() > idle_limit {
            return;
        }
        let Some(end) = find(&buf, b"\r\n\r\n") else {
            match s.read(&mut chunk) {
                Ok(0) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => return,
            }
            continue;
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        buf.drain(..end + 4);
        let mut lines = head.split("\r\n");
        let request_line = lines.next().unwrap_or_default().to_string();
        let path = request_line.split(' ').nth(1).unwrap_or("/").to_string();
        let (mut cookies, mut xff, mut close, mut length) = (Vec::new(), Vec::new(), false, 0);
        for l in lines {
            let Some((k, v)) = l.split_once(':') else {
                continue;
            };
            let v = v.trim().to_string();
            match k.to_ascii_lowercase().as_str() {
                "cookie" => cookies.push(v),
                "x-forwarded-for" => xff.push(v),
                "connection" => close |= v.eq_ignore_ascii_case("close"),
                "content-length" => length = v.parse().unwrap_or(0),
                _ => {}
            }
        }
        // Request bodies are read and dropped.
        while buf.len() < length {
            match s.read(&mut chunk) {
                Ok(0) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                }
                Err(_) => return,
            }
        }
        buf.drain(..length);
        if let Some(ms) = path
            .split_once("/slow?ms=")
            .and_then(|(_, v)| v.parse().ok())
        {
            std::thread::sleep(Duration::from_millis(ms));
        }
        let body = format!(
            "server={name}\ncookie={}\nxff={}\nrequest={request_line}\n",
            cookies.join(" | "),
            xff.join(" | ")
        );
        let mut resp = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Server: {name}\r\nContent-Length: {}\r\n",
            body.len()
        );
        if path.starts_with("/login") {
            resp.push_str(&format!("Set-Cookie: JSESSIONID=s{name}; Path=/\r\n"));
        }
        if close {
            resp.push_str("Connection: close\r\n");
        }
        resp.push_str("\r\n");
        resp.push_str(&body);
        if s.write_all(resp.as_bytes()).is_err() {
            return;
        }
        served.fetch_add(1, Ordering::Relaxed);
        idle_since = Instant::now();
        if close {
            return;
        }
    }
}

/// Where `needle` starts in `hay`.
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
