//! The demo's backend web server (`lb-demo serve`): a thread-per-connection HTTP/1.1
//! server that plays the seed's Apache backends.
//!
//! - Every page says which server answered and echoes what the backend saw: the peer
//!   address (the load balancer for L7, the client itself for L4 `dsr`), the local address
//!   (the VIP for `dsr`), `X-Forwarded-For` and `Cookie`.
//! - The first visit (no `JSESSIONID` cookie) gets `Set-Cookie: JSESSIONID=<random>`, like
//!   a session-using application; lb's `cookie JSESSIONID prefix` prefixes it with the
//!   server's cookie on the way out and strips it on the way in.
//! - `/check.txt` answers 200 unless the file `<dir>/<name>.down` exists (then 503): the
//!   "down" switch for health checks.
//! - Page views are appended to `<dir>/<name>.access.log`; `/check.txt` is not logged (the
//!   seed's Apache config does the same so health checks do not flood the log).
//!
//! Nothing read from the network can panic the server: malformed requests get a 400 and
//! the connection is closed; every connection has read and write timeouts and a bounded
//! number of requests.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};

/// Largest request head the server reads; larger ones get 431.
const MAX_HEAD: usize = 16 * 1024;
/// Requests served on one keep-alive connection before it is closed.
const MAX_REQUESTS_PER_CONN: usize = 100;
/// Read and write timeout of a connection.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// What `lb-demo serve` was asked to do.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The server's name, shown on every page (`http1`).
    pub name: String,
    /// Where the access log and the down switch live.
    pub dir: PathBuf,
    /// Addresses to listen on (`0.0.0.0:80`, `0.0.0.0:8080`).
    pub listen: Vec<SocketAddr>,
}

impl ServeOptions {
    /// Parses `--name N --dir D --listen ADDR [--listen ADDR ...]`.
    pub fn parse(args: &[String]) -> Result<ServeOptions> {
        let mut name = None;
        let mut dir = None;
        let mut listen = Vec::new();
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let mut value = || it.next().with_context(|| format!("{a} needs a value"));
            match a.as_str() {
                "--name" => name = Some(value()?.clone()),
                "--dir" => dir = Some(PathBuf::from(value()?)),
                "--listen" => listen.push(
                    value()?
                        .parse()
                        .with_context(|| format!("{a}: not an address"))?,
                ),
                other => bail!("serve: unknown argument {other:?}"),
            }
        }
        let name = name.context("serve: --name is required")?;
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            bail!("serve: --name must be letters, digits and '-'");
        }
        if listen.is_empty() {
            bail!("serve: at least one --listen is required");
        }
        Ok(ServeOptions {
            name,
            dir: dir.context("serve: --dir is required")?,
            listen,
        })
    }

    /// `<dir>/<name>.down`: while it exists, /check.txt answers 503.
    pub fn down_switch(&self) -> PathBuf {
        down_switch(&self.dir, &self.name)
    }

    /// `<dir>/<name>.access.log`.
    pub fn access_log(&self) -> PathBuf {
        access_log(&self.dir, &self.name)
    }
}

/// The down switch of server `name` under `dir`.
pub fn down_switch(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.down"))
}

/// The access log of server `name` under `dir`.
pub fn access_log(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.access.log"))
}

/// Binds every address, then serves forever (until the process is killed).
pub fn serve(opts: ServeOptions) -> Result<()> {
    let opts = Arc::new(opts);
    let mut listeners = Vec::new();
    for addr in &opts.listen {
        listeners.push(TcpListener::bind(addr).with_context(|| format!("binding {addr}"))?);
    }
    let mut handles = Vec::new();
    for l in listeners {
        let opts = Arc::clone(&opts);
        handles.push(std::thread::spawn(move || accept_loop(l, opts)));
    }
    for h in handles {
        let _ = h.join();
    }
    Ok(())
}

fn accept_loop(l: TcpListener, opts: Arc<ServeOptions>) {
    loop {
        match l.accept() {
            Ok((s, peer)) => {
                let opts = Arc::clone(&opts);
                std::thread::spawn(move || serve_conn(s, peer, &opts));
            }
            // Out of file descriptors and the like: back off instead of spinning.
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// One parsed request head.
struct Request {
    method: String,
    path: String,
    version: String,
    headers: Vec<(String, String)>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether the connection stays open after this request.
    fn keep_alive(&self) -> bool {
        let conn = self.header("connection").unwrap_or("").to_ascii_lowercase();
        if self.version == "HTTP/1.1" {
            !conn.contains("close")
        } else {
            conn.contains("keep-alive")
        }
    }
}

/// Parses a request head (without the final blank line); `None` if malformed.
fn parse_head(head: &[u8]) -> Option<Request> {
    let text = std::str::from_utf8(head).ok()?;
    let mut lines = text.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_string();
    let path = first.next()?.to_string();
    let version = first.next()?.to_string();
    if first.next().is_some() || method.is_empty() || !path.starts_with('/') {
        return None;
    }
    if version != "HTTP/1.0" && version != "HTTP/1.1" {
        return None;
    }
    let mut headers = Vec::new();
    for line in lines {
        let (k, v) = line.split_once(':')?;
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    Some(Request {
        method,
        path,
        version,
        headers,
    })
}

/// A random session id: 16 hex digits from std's randomly seeded hasher.
fn session_id() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let mut h = RandomState::new().build_hasher();
    h.write_u64(N.fetch_add(1, Ordering::Relaxed));
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    format!("{:016x}", h.finish())
}

/// Whether a `Cookie` header carries a `JSESSIONID`.
fn has_session(cookie: Option<&str>) -> bool {
    cookie.is_some_and(|c| c.split(';').any(|kv| kv.trim().starts_with("JSESSIONID=")))
}

fn serve_conn(mut s: TcpStream, peer: SocketAddr, opts: &ServeOptions) {
    let _ = s.set_read_timeout(Some(IO_TIMEOUT));
    let _ = s.set_write_timeout(Some(IO_TIMEOUT));
    let local = s
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|_| "?".into());
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 4096];
    for _ in 0..MAX_REQUESTS_PER_CONN {
        // Read until a complete head is buffered.
        let end = loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break end;
            }
            if buf.len() > MAX_HEAD {
                let _ = s.write_all(
                    b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
                return;
            }
            match s.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let Some(req) = parse_head(&buf[..end]) else {
            let _ = s.write_all(
                b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
            return;
        };
        buf.drain(..end + 4);
        // Request bodies are not used by the demo: skip a declared one (bounded).
        let body_len: usize = req
            .header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        if body_len > MAX_HEAD {
            return;
        }
        while buf.len() < body_len {
            match s.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        buf.drain(..body_len);

        let keep = req.keep_alive();
        let response = respond(&req, peer, &local, opts, keep);
        if s.write_all(&response).is_err() || !keep {
            return;
        }
    }
}

/// Builds the response to one request, logging page views.
fn respond(
    req: &Request,
    peer: SocketAddr,
    local: &str,
    opts: &ServeOptions,
    keep: bool,
) -> Vec<u8> {
    let conn = if keep { "keep-alive" } else { "close" };
    let head_only = req.method == "HEAD";
    if req.path == "/check.txt" {
        let (status, body) = if opts.down_switch().exists() {
            ("503 Service Unavailable", "down\n")
        } else {
            ("200 OK", "ok\n")
        };
        let mut r = format!(
            "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: {conn}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        if !head_only {
            r.extend_from_slice(body.as_bytes());
        }
        return r;
    }
    let cookie = req.header("cookie");
    let xff = req.header("x-forwarded-for");
    let set_cookie = if has_session(cookie) {
        String::new()
    } else {
        format!("Set-Cookie: JSESSIONID={}; Path=/\r\n", session_id())
    };
    let body = format!(
        "Hello from {name}!\n\
         server={name}\n\
         peer={peer}\n\
         local={local}\n\
         x_forwarded_for={xff}\n\
         cookie={cookie}\n\
         path={path}\n",
        name = opts.name,
        xff = xff.unwrap_or("-"),
        cookie = cookie.unwrap_or("-"),
        path = req.path,
    );
    let line = format!(
        "{peer} \"{} {} {}\" xff={} cookie={}\n",
        req.method,
        req.path,
        req.version,
        xff.unwrap_or("-"),
        cookie.unwrap_or("-")
    );
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(opts.access_log())
    {
        let _ = f.write_all(line.as_bytes());
    }
    let mut r = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n{set_cookie}Connection: {conn}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if !head_only {
        r.extend_from_slice(body.as_bytes());
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_heads_and_rejects_garbage() {
        let r = parse_head(b"GET /x HTTP/1.1\r\nHost: a\r\nCookie: JSESSIONID=1").unwrap();
        assert_eq!((r.method.as_str(), r.path.as_str()), ("GET", "/x"));
        assert!(r.keep_alive());
        assert!(has_session(r.header("COOKIE")));
        assert!(
            parse_head(b"GET /x HTTP/1.0\r\nConnection: close").is_some_and(|r| !r.keep_alive())
        );
        for bad in [
            &b""[..],
            b"GET",
            b"GET x HTTP/1.1",
            b"GET / HTTP/2",
            b"GET / HTTP/1.1\r\nno colon",
            b"\xff\xfe",
        ] {
            assert!(parse_head(bad).is_none(), "{bad:?}");
        }
        assert_ne!(session_id(), session_id());
    }
}
