//! The demo's HTTP client: one request per connection (HTTP/1.1, `Connection: close`)
//! with an overall deadline. Call it from a thread inside the client's namespace
//! ([`super::in_ns`]).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// A response as the demo looks at it.
#[derive(Debug, Clone)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Header names and values, in order.
    pub headers: Vec<(String, String)>,
    /// The body as text.
    pub body: String,
}

impl Response {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// A `key=value` line of the demo server's page.
    pub fn field(&self, key: &str) -> Option<&str> {
        self.body
            .lines()
            .find_map(|l| l.split_once('=').filter(|(k, _)| *k == key).map(|(_, v)| v))
    }

    /// Which demo server answered (`http1`, `http2`).
    pub fn server(&self) -> Option<&str> {
        self.field("server")
    }

    /// The IP address the backend saw the connection come from.
    pub fn peer_ip(&self) -> Option<&str> {
        self.field("peer")
            .and_then(|p| p.rsplit_once(':'))
            .map(|(ip, _)| ip)
    }

    /// The `JSESSIONID` value the response sets, if any.
    pub fn session_cookie(&self) -> Option<String> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
            .find_map(|(_, v)| {
                let first = v.split(';').next()?.trim();
                first.strip_prefix("JSESSIONID=").map(str::to_owned)
            })
    }
}

/// `GET path` from `addr`, sending `Cookie: JSESSIONID=<cookie>` when given; fails on any
/// error or when `timeout` passes.
pub fn get(
    addr: SocketAddr,
    path: &str,
    cookie: Option<&str>,
    timeout: Duration,
) -> Result<Response> {
    let cookie = cookie.map_or(String::new(), |c| format!("Cookie: JSESSIONID={c}\r\n"));
    request(addr, path, &cookie, timeout)
}

/// `GET path` with HTTP Basic credentials `user:password` (the stats page).
pub fn get_basic(
    addr: SocketAddr,
    path: &str,
    credentials: &str,
    timeout: Duration,
) -> Result<Response> {
    let auth = format!(
        "Authorization: Basic {}\r\n",
        base64(credentials.as_bytes())
    );
    request(addr, path, &auth, timeout)
}

/// Standard base64 with padding.
pub fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = u32::from_be_bytes([0, b[0], b[1], b[2]]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(A[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// One request with `extra` header lines (each ending in CRLF).
fn request(addr: SocketAddr, path: &str, extra: &str, timeout: Duration) -> Result<Response> {
    let start = Instant::now();
    let left = || {
        timeout
            .checked_sub(start.elapsed())
            .filter(|d| !d.is_zero())
            .context("timed out")
    };
    let mut s =
        TcpStream::connect_timeout(&addr, timeout).with_context(|| format!("connect {addr}"))?;
    s.set_write_timeout(Some(left()?))?;
    s.write_all(
        format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: lb-demo\r\n{extra}Connection: close\r\n\r\n",
            addr.ip()
        )
        .as_bytes(),
    )?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        s.set_read_timeout(Some(left()?))?;
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => return Err(e).context("reading the response"),
        }
        if buf.len() > 4 << 20 {
            bail!("response larger than 4 MiB");
        }
    }
    parse(&buf)
}

/// Parses a complete `Connection: close` response.
fn parse(buf: &[u8]) -> Result<Response> {
    let text = String::from_utf8_lossy(buf);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .context("no end of the header")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("bad status line {status_line:?}"))?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Ok(Response {
        status,
        headers,
        body: body.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_demo_page() {
        let r = parse(
            b"HTTP/1.1 200 OK\r\nSet-Cookie: JSESSIONID=A~12; Path=/\r\n\r\nhi\nserver=http1\npeer=198.18.0.100:4000\n",
        )
        .unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.session_cookie().as_deref(), Some("A~12"));
        assert_eq!(r.server(), Some("http1"));
        assert_eq!(r.peer_ip(), Some("198.18.0.100"));
        assert!(parse(b"HTTP/1.1 200 OK\r\n").is_err());
        assert!(parse(b"garbage\r\n\r\n").is_err());
    }

    #[test]
    fn base64_encodes() {
        assert_eq!(
            base64(b"someuser:somepassword"),
            "c29tZXVzZXI6c29tZXBhc3N3b3Jk"
        );
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b""), "");
    }
}
