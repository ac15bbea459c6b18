//! Active check probes: a TCP connect, or an HTTP request whose status line decides.
//!
//! The HTTP check is a raw HTTP/1.0 (or 1.1) request on a plain `TcpStream`, as HAProxy
//! sends it: `HEAD /check.txt HTTP/1.0\r\n\r\n`, then the status line is read and the
//! connection closed. No HTTP library: a check must be exact on the wire (backends filter
//! it out of their access logs by its request line) and must survive any garbage a broken
//! backend sends back, reading at most [`MAX_STATUS_LINE`] bytes.
//!
//! Results carry HAProxy's status codes and reason text, so logs and the stats page read
//! the same as they did under HAProxy ("Layer4 connection problem, info: \"Connection
//! refused\"", "Layer7 wrong status, code: 404, info: \"Not Found\"").

use super::counter::Verdict;
use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// Most bytes read while looking for the status line; a longer line is an invalid response.
pub const MAX_STATUS_LINE: usize = 4096;
/// Longest reason phrase kept in `info` (logs and stats stay one short line).
pub const MAX_INFO_LEN: usize = 128;
/// `option httpchk` with no argument: HAProxy's default request.
pub const DEFAULT_HTTPCHK: &str = "OPTIONS / HTTP/1.0";

/// Why an `option httpchk` line was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckError {
    /// More than `METHOD URI VERSION`.
    #[error(
        "expected [METHOD] [URI] [VERSION], got {0} words (use httpchk_host for a Host header)"
    )]
    TooManyWords(usize),
    /// The method is not an HTTP token.
    #[error("{0:?} is not an HTTP method")]
    BadMethod(String),
    /// The URI contains control characters.
    #[error("{0:?} is not a valid request URI")]
    BadUri(String),
    /// Only HTTP/1.0 and HTTP/1.1 requests are sent.
    #[error("{0:?} is not a supported HTTP version (HTTP/1.0 or HTTP/1.1)")]
    BadVersion(String),
    /// The Host header value is empty or contains whitespace or control characters.
    #[error("{0:?} is not a valid Host header value")]
    BadHost(String),
}

/// HAProxy's check status, as its stats (`check_status`) and logs name them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CheckStatus {
    /// Socket could not be created.
    SockErr,
    /// TCP connect succeeded (TCP check passed).
    L4Ok,
    /// TCP connect timed out.
    L4Timeout,
    /// Connection refused, reset, unreachable...
    L4Con,
    /// Connected, but no complete status line in time.
    L7Timeout,
    /// Connected, but the answer is not an HTTP status line.
    L7Rsp,
    /// 2xx or 3xx.
    L7Ok,
    /// 404 with `disable-on-404`.
    L7OkCond,
    /// Any other status.
    L7Sts,
    /// Passive observation (`observe`) simulated a failed check.
    Hana,
}

impl CheckStatus {
    /// The short code of the CSV `check_status` column.
    pub fn code(self) -> &'static str {
        match self {
            CheckStatus::SockErr => "SOCKERR",
            CheckStatus::L4Ok => "L4OK",
            CheckStatus::L4Timeout => "L4TOUT",
            CheckStatus::L4Con => "L4CON",
            CheckStatus::L7Timeout => "L7TOUT",
            CheckStatus::L7Rsp => "L7RSP",
            CheckStatus::L7Ok => "L7OK",
            CheckStatus::L7OkCond => "L7OKC",
            CheckStatus::L7Sts => "L7STS",
            CheckStatus::Hana => "HANA",
        }
    }

    /// The description HAProxy's log lines use after "reason: ".
    pub fn description(self) -> &'static str {
        match self {
            CheckStatus::SockErr => "Socket error",
            CheckStatus::L4Ok => "Layer4 check passed",
            CheckStatus::L4Timeout => "Layer4 timeout",
            CheckStatus::L4Con => "Layer4 connection problem",
            CheckStatus::L7Timeout => "Layer7 timeout",
            CheckStatus::L7Rsp => "Layer7 invalid response",
            CheckStatus::L7Ok => "Layer7 check passed",
            CheckStatus::L7OkCond => "Layer7 check conditionally passed",
            CheckStatus::L7Sts => "Layer7 wrong status",
            CheckStatus::Hana => "Health analyze",
        }
    }

    /// How the counter counts this result.
    pub fn verdict(self) -> Verdict {
        match self {
            CheckStatus::L4Ok | CheckStatus::L7Ok => Verdict::Pass,
            CheckStatus::L7OkCond => Verdict::ConditionalPass,
            _ => Verdict::Fail,
        }
    }
}

/// The result of one check: what happened, the HTTP code if any, detail, and how long it
/// took (from connect start to verdict; `None` for simulated checks).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckOutcome {
    /// HAProxy's status.
    pub status: CheckStatus,
    /// HTTP status code, for L7 results that got one.
    pub code: Option<u16>,
    /// The OS error text or the reason phrase, sanitized and bounded.
    pub info: Option<String>,
    /// Check duration.
    pub duration: Option<Duration>,
}

impl CheckOutcome {
    fn new(status: CheckStatus, code: Option<u16>, info: Option<String>, start: Instant) -> Self {
        CheckOutcome {
            status,
            code,
            info,
            duration: Some(start.elapsed()),
        }
    }

    /// How the counter counts it.
    pub fn verdict(&self) -> Verdict {
        self.status.verdict()
    }

    /// The reason without the duration: `Layer7 wrong status, code: 404, info: "Not Found"`.
    pub fn reason(&self) -> String {
        let mut s = self.status.description().to_string();
        if let Some(code) = self.code {
            s.push_str(&format!(", code: {code}"));
        }
        if let Some(info) = &self.info {
            s.push_str(&format!(", info: \"{info}\""));
        }
        s
    }
}

impl std::fmt::Display for CheckOutcome {
    /// The reason with `, check duration: Nms`, as HAProxy logs a check.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason())?;
        if let Some(d) = self.duration {
            write!(f, ", check duration: {}ms", d.as_millis())?;
        }
        Ok(())
    }
}

/// HTTP version of the check request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HttpVersion {
    /// `HTTP/1.0`: no headers needed; the server closes after answering.
    Http10,
    /// `HTTP/1.1`: a Host header and `Connection: close` are sent.
    Http11,
}

impl HttpVersion {
    /// The protocol token on the request line.
    pub fn as_str(self) -> &'static str {
        match self {
            HttpVersion::Http10 => "HTTP/1.0",
            HttpVersion::Http11 => "HTTP/1.1",
        }
    }
}

/// `option httpchk [METHOD] [URI] [VERSION]` plus `http-check disable-on-404`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpCheck {
    /// Request method, e.g. `HEAD`.
    pub method: String,
    /// Request URI, e.g. `/check.txt`.
    pub uri: String,
    /// Request version.
    pub version: HttpVersion,
    /// Host header for HTTP/1.1; the server's address when `None`.
    pub host: Option<String>,
    /// A 404 means "alive but no new sessions" (NOLB) instead of a failure.
    pub disable_on_404: bool,
}

impl Default for HttpCheck {
    /// HAProxy's default: `OPTIONS / HTTP/1.0`.
    fn default() -> Self {
        HttpCheck {
            method: "OPTIONS".into(),
            uri: "/".into(),
            version: HttpVersion::Http10,
            host: None,
            disable_on_404: false,
        }
    }
}

impl HttpCheck {
    /// Parses HAProxy's argument forms: `""` (defaults), `URI`, `METHOD URI`,
    /// `METHOD URI VERSION`.
    pub fn parse(line: &str) -> Result<Self, CheckError> {
        let words: Vec<&str> = line.split_ascii_whitespace().collect();
        let mut check = HttpCheck::default();
        match words.as_slice() {
            [] => {}
            [uri] => check.uri = (*uri).to_string(),
            [method, uri] => {
                check.method = (*method).to_string();
                check.uri = (*uri).to_string();
            }
            [method, uri, version] => {
                check.method = (*method).to_string();
                check.uri = (*uri).to_string();
                check.version = match *version {
                    "HTTP/1.0" => HttpVersion::Http10,
                    "HTTP/1.1" => HttpVersion::Http11,
                    other => return Err(CheckError::BadVersion(other.to_string())),
                };
            }
            more => return Err(CheckError::TooManyWords(more.len())),
        }
        let tchar = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
        if check.method.is_empty() || !check.method.chars().all(tchar) {
            return Err(CheckError::BadMethod(check.method));
        }
        if check
            .uri
            .chars()
            .any(|c| c.is_control() || c.is_whitespace())
        {
            return Err(CheckError::BadUri(check.uri));
        }
        Ok(check)
    }

    /// Sets the Host header value after checking it cannot break the request.
    pub fn with_host(mut self, host: &str) -> Result<Self, CheckError> {
        if host.is_empty() || host.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(CheckError::BadHost(host.to_string()));
        }
        self.host = Some(host.to_string());
        Ok(self)
    }

    /// The exact bytes sent to `addr`.
    pub fn request(&self, addr: SocketAddr) -> Vec<u8> {
        let mut req = format!("{} {} {}\r\n", self.method, self.uri, self.version.as_str());
        if self.version == HttpVersion::Http11 {
            match &self.host {
                Some(h) => req.push_str(&format!("Host: {h}\r\n")),
                None => req.push_str(&format!("Host: {addr}\r\n")),
            }
            req.push_str("Connection: close\r\n");
        }
        req.push_str("\r\n");
        req.into_bytes()
    }

    /// The request line as configured (`HEAD /check.txt HTTP/1.0`), for logs and stats.
    pub fn request_line(&self) -> String {
        format!("{} {} {}", self.method, self.uri, self.version.as_str())
    }
}

/// What a check does once connected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Probe {
    /// A TCP connect is the whole check.
    Tcp,
    /// Send a request and judge the status line.
    Http(HttpCheck),
}

/// Check time limits, HAProxy's way: without `timeout check` the whole check must finish
/// within `inter`; with it, the connect gets `min(inter, timeout connect)` and the answer
/// `timeout check` more.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProbeTimeouts {
    /// The server's `inter`.
    pub inter: Duration,
    /// `timeout check`.
    pub timeout_check: Option<Duration>,
    /// `timeout connect` of the service, if the caller has one.
    pub connect: Option<Duration>,
}

impl ProbeTimeouts {
    /// The connect limit.
    pub fn connect_limit(&self) -> Duration {
        match (self.timeout_check, self.connect) {
            (Some(_), Some(c)) => c.min(self.inter),
            _ => self.inter,
        }
    }
}

/// Runs one check against `addr`. Never panics and never returns an error: every failure
/// is a [`CheckOutcome`] with a reason.
pub async fn run_probe(addr: SocketAddr, probe: &Probe, timeouts: &ProbeTimeouts) -> CheckOutcome {
    let start = Instant::now();
    let mut stream =
        match tokio::time::timeout(timeouts.connect_limit(), TcpStream::connect(addr)).await {
            Err(_) => return CheckOutcome::new(CheckStatus::L4Timeout, None, None, start),
            Ok(Err(e)) => {
                return CheckOutcome::new(connect_error_status(&e), None, Some(io_info(&e)), start)
            }
            Ok(Ok(s)) => s,
        };
    let http = match probe {
        Probe::Tcp => return CheckOutcome::new(CheckStatus::L4Ok, None, None, start),
        Probe::Http(h) => h,
    };
    let deadline = match timeouts.timeout_check {
        Some(t) => tokio::time::Instant::now() + t,
        None => tokio::time::Instant::from_std(start) + timeouts.inter,
    };
    let request = http.request(addr);
    let exchange = async {
        stream.write_all(&request).await?;
        read_status_line(&mut stream).await
    };
    let outcome = match tokio::time::timeout_at(deadline, exchange).await {
        Err(_) => CheckOutcome::new(CheckStatus::L7Timeout, None, None, start),
        Ok(Err(e)) => CheckOutcome::new(CheckStatus::L4Con, None, Some(io_info(&e)), start),
        Ok(Ok(buf)) => judge(&buf, http.disable_on_404, start),
    };
    // Dropping the stream closes it; nothing more is read.
    drop(stream);
    outcome
}

fn connect_error_status(e: &std::io::Error) -> CheckStatus {
    match e.raw_os_error() {
        Some(libc::EMFILE) | Some(libc::ENFILE) | Some(libc::ENOBUFS) | Some(libc::ENOMEM) => {
            CheckStatus::SockErr
        }
        _ => CheckStatus::L4Con,
    }
}

/// Reads until the first `\n`, EOF, or [`MAX_STATUS_LINE`] bytes.
async fn read_status_line(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(256);
    let mut chunk = [0u8; 512];
    while buf.len() < MAX_STATUS_LINE {
        let want = chunk.len().min(MAX_STATUS_LINE - buf.len());
        let n = stream.read(&mut chunk[..want]).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        if chunk[..n].contains(&b'\n') {
            break;
        }
    }
    Ok(buf)
}

fn judge(buf: &[u8], disable_on_404: bool, start: Instant) -> CheckOutcome {
    let rsp =
        |info: &str| CheckOutcome::new(CheckStatus::L7Rsp, None, Some(info.to_string()), start);
    if buf.is_empty() {
        return rsp("Connection closed without a response");
    }
    let line = match buf.iter().position(|&b| b == b'\n') {
        Some(i) => &buf[..i],
        None if buf.len() >= MAX_STATUS_LINE => return rsp("Status line too long"),
        None => buf,
    };
    match parse_status_line(line) {
        None => rsp("Not an HTTP status line"),
        Some((code, reason)) => {
            let info = (!reason.is_empty()).then_some(reason);
            let status = match code {
                200..=399 => CheckStatus::L7Ok,
                404 if disable_on_404 => CheckStatus::L7OkCond,
                _ => CheckStatus::L7Sts,
            };
            CheckOutcome::new(status, Some(code), info, start)
        }
    }
}

/// Parses `HTTP/x.y NNN reason` (trailing `\r` allowed) into the code and a sanitized,
/// bounded reason phrase. `None` when it is not a status line.
pub fn parse_status_line(line: &[u8]) -> Option<(u16, String)> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let rest = line.strip_prefix(b"HTTP/")?;
    let (version, rest) = rest.split_at(rest.iter().position(|&b| b == b' ')?);
    let version_ok = version.len() == 3
        && version[0].is_ascii_digit()
        && version[1] == b'.'
        && version[2].is_ascii_digit();
    if !version_ok {
        return None;
    }
    let rest = &rest[1..];
    if rest.len() < 3 || !rest[..3].iter().all(u8::is_ascii_digit) {
        return None;
    }
    let code = rest[..3]
        .iter()
        .fold(0u16, |acc, &d| acc * 10 + u16::from(d - b'0'));
    let reason = match rest.get(3) {
        None => "",
        Some(b' ') => std::str::from_utf8(&rest[4..]).unwrap_or("").trim(),
        Some(_) => return None,
    };
    Some((code, sanitize(reason)))
}

/// Keeps printable ASCII (no quotes, so the log's `info: "..."` stays parseable), bounded.
fn sanitize(s: &str) -> String {
    s.chars()
        .filter(|c| (' '..='~').contains(c) && *c != '"')
        .take(MAX_INFO_LEN)
        .collect()
}

/// The OS error text without Rust's ` (os error N)` suffix: HAProxy prints strerror.
fn io_info(e: &std::io::Error) -> String {
    let s = e.to_string();
    let s = match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    };
    sanitize(&s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    #[test]
    fn httpchk_forms() {
        assert_eq!(HttpCheck::parse("").unwrap(), HttpCheck::default());
        assert_eq!(HttpCheck::default().request_line(), DEFAULT_HTTPCHK);
        let c = HttpCheck::parse("/health").unwrap();
        assert_eq!(c.request_line(), "OPTIONS /health HTTP/1.0");
        let c = HttpCheck::parse("HEAD /check.txt").unwrap();
        assert_eq!(c.request_line(), "HEAD /check.txt HTTP/1.0");
        let c = HttpCheck::parse("  HEAD   /check.txt  HTTP/1.0 ").unwrap();
        let addr: SocketAddr = "192.0.2.1:80".parse().unwrap();
        assert_eq!(c.request(addr), b"HEAD /check.txt HTTP/1.0\r\n\r\n");
        let c = HttpCheck::parse("GET /x HTTP/1.1").unwrap();
        assert_eq!(
            c.request(addr),
            b"GET /x HTTP/1.1\r\nHost: 192.0.2.1:80\r\nConnection: close\r\n\r\n"
        );
        let c = c.with_host("www.example.com").unwrap();
        assert_eq!(
            c.request(addr),
            b"GET /x HTTP/1.1\r\nHost: www.example.com\r\nConnection: close\r\n\r\n"
        );
    }

    #[test]
    fn httpchk_errors() {
        assert_eq!(
            HttpCheck::parse("GET / HTTP/1.1\r\nHost:\\ x"),
            Err(CheckError::TooManyWords(5))
        );
        assert_eq!(
            HttpCheck::parse("GET / HTTP/2"),
            Err(CheckError::BadVersion("HTTP/2".into()))
        );
        assert_eq!(
            HttpCheck::parse("G(T /"),
            Err(CheckError::BadMethod("G(T".into()))
        );
        assert_eq!(
            HttpCheck::parse("GET /\u{7f}"),
            Err(CheckError::BadUri("/\u{7f}".into()))
        );
        assert!(HttpCheck::default().with_host("a b").is_err());
        assert!(HttpCheck::default().with_host("").is_err());
    }

    #[test]
    fn status_lines() {
        assert_eq!(
            parse_status_line(b"HTTP/1.0 200 OK\r"),
            Some((200, "OK".into()))
        );
        assert_eq!(
            parse_status_line(b"HTTP/1.1 404 Not Found"),
            Some((404, "Not Found".into()))
        );
        assert_eq!(
            parse_status_line(b"HTTP/1.1 204"),
            Some((204, String::new()))
        );
        assert_eq!(
            parse_status_line(b"HTTP/1.1 500 "),
            Some((500, String::new()))
        );
        for bad in [
            &b""[..],
            b"HTTP/1.1",
            b"HTTP/1.1 ",
            b"HTTP/1.1 20",
            b"HTTP/1.1 2000 x",
            b"HTTP/11 200 OK",
            b"SSH-2.0-OpenSSH",
            b"http/1.1 200 OK",
            b"HTTP/1.1 abc",
            b"\xff\xfe\x00",
        ] {
            assert_eq!(parse_status_line(bad), None, "{bad:?}");
        }
        // Garbage reason phrases are sanitized, not rejected.
        assert_eq!(
            parse_status_line(b"HTTP/1.1 200 \xff\"quoted\"\x1b"),
            Some((200, String::new()))
        );
        assert_eq!(
            parse_status_line(b"HTTP/1.1 200 a\"b\x07c"),
            Some((200, "abc".into()))
        );
    }

    #[test]
    fn reason_formats() {
        let o = CheckOutcome {
            status: CheckStatus::L7Sts,
            code: Some(404),
            info: Some("Not Found".into()),
            duration: Some(Duration::from_millis(1)),
        };
        assert_eq!(
            o.to_string(),
            "Layer7 wrong status, code: 404, info: \"Not Found\", check duration: 1ms"
        );
        let o = CheckOutcome {
            status: CheckStatus::L4Con,
            code: None,
            info: Some("Connection refused".into()),
            duration: None,
        };
        assert_eq!(
            o.reason(),
            "Layer4 connection problem, info: \"Connection refused\""
        );
        let o = CheckOutcome {
            status: CheckStatus::L4Timeout,
            code: None,
            info: None,
            duration: Some(Duration::from_millis(2001)),
        };
        assert_eq!(o.to_string(), "Layer4 timeout, check duration: 2001ms");
        assert_eq!(o.verdict(), Verdict::Fail);
        assert_eq!(CheckStatus::L7OkCond.verdict(), Verdict::ConditionalPass);
        assert_eq!(CheckStatus::L7Ok.code(), "L7OK");
    }

    /// A one-shot server on loopback answering every connection with `reply` (after
    /// reading the request head), or staying silent when `reply` is `None`.
    async fn backend(
        reply: Option<&'static [u8]>,
    ) -> (SocketAddr, tokio::task::JoinHandle<Vec<u8>>) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let h = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut got = Vec::new();
            let mut b = [0u8; 1024];
            while !got.ends_with(b"\r\n\r\n") && got.len() < 4096 {
                match s.read(&mut b).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got.extend_from_slice(&b[..n]),
                }
            }
            match reply {
                Some(r) => {
                    let _ = s.write_all(r).await;
                }
                None => tokio::time::sleep(Duration::from_secs(5)).await,
            }
            got
        });
        (addr, h)
    }

    fn http(disable_on_404: bool) -> Probe {
        Probe::Http(HttpCheck {
            disable_on_404,
            ..HttpCheck::parse("HEAD /check.txt HTTP/1.0").unwrap()
        })
    }

    fn timeouts(ms: u64) -> ProbeTimeouts {
        ProbeTimeouts {
            inter: Duration::from_millis(ms),
            timeout_check: None,
            connect: None,
        }
    }

    /// (reply, disable_on_404, expected status, code, info).
    type Case = (
        &'static [u8],
        bool,
        CheckStatus,
        Option<u16>,
        Option<&'static str>,
    );

    #[tokio::test]
    async fn http_check_results() {
        let cases: [Case; 7] = [
            (
                b"HTTP/1.0 200 OK\r\n\r\n",
                false,
                CheckStatus::L7Ok,
                Some(200),
                Some("OK"),
            ),
            (
                b"HTTP/1.1 302 Found\r\nLocation: /\r\n\r\n",
                false,
                CheckStatus::L7Ok,
                Some(302),
                Some("Found"),
            ),
            (
                b"HTTP/1.0 404 Not Found\r\n\r\n",
                false,
                CheckStatus::L7Sts,
                Some(404),
                Some("Not Found"),
            ),
            (
                b"HTTP/1.0 404 Not Found\r\n\r\n",
                true,
                CheckStatus::L7OkCond,
                Some(404),
                Some("Not Found"),
            ),
            (
                b"HTTP/1.0 503 Service Unavailable\r\n",
                true,
                CheckStatus::L7Sts,
                Some(503),
                Some("Service Unavailable"),
            ),
            (
                b"SSH-2.0-OpenSSH_9.6\r\n",
                false,
                CheckStatus::L7Rsp,
                None,
                Some("Not an HTTP status line"),
            ),
            (
                b"",
                false,
                CheckStatus::L7Rsp,
                None,
                Some("Connection closed without a response"),
            ),
        ];
        for (reply, d404, status, code, info) in cases {
            let (addr, h) = backend(Some(reply)).await;
            let o = run_probe(addr, &http(d404), &timeouts(2000)).await;
            assert_eq!(
                (o.status, o.code, o.info.as_deref()),
                (status, code, info),
                "{reply:?}"
            );
            assert!(o.duration.is_some());
            assert_eq!(h.await.unwrap(), b"HEAD /check.txt HTTP/1.0\r\n\r\n");
        }
    }

    #[tokio::test]
    async fn oversized_garbage_is_bounded() {
        static BIG: [u8; 100_000] = [b'A'; 100_000];
        let (addr, _h) = backend(Some(&BIG)).await;
        let o = run_probe(addr, &http(false), &timeouts(2000)).await;
        assert_eq!(o.status, CheckStatus::L7Rsp);
        assert_eq!(o.info.as_deref(), Some("Status line too long"));
    }

    #[tokio::test]
    async fn silent_server_times_out_at_l7() {
        let (addr, _h) = backend(None).await;
        let o = run_probe(addr, &http(false), &timeouts(200)).await;
        assert_eq!(o.status, CheckStatus::L7Timeout);
        assert!(o.duration.unwrap() >= Duration::from_millis(190));
        // With `timeout check` the read gets its own budget after the connect.
        let (addr, _h) = backend(None).await;
        let t = ProbeTimeouts {
            inter: Duration::from_secs(10),
            timeout_check: Some(Duration::from_millis(100)),
            connect: Some(Duration::from_secs(1)),
        };
        let o = run_probe(addr, &http(false), &t).await;
        assert_eq!(o.status, CheckStatus::L7Timeout);
        assert!(o.duration.unwrap() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn tcp_check_and_refused() {
        let (addr, _h) = backend(None).await;
        let o = run_probe(addr, &Probe::Tcp, &timeouts(1000)).await;
        assert_eq!(o.status, CheckStatus::L4Ok);
        assert_eq!(o.reason(), "Layer4 check passed");
        // A port nobody listens on: bind, learn the port, close.
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let dead = l.local_addr().unwrap();
        drop(l);
        let o = run_probe(dead, &Probe::Tcp, &timeouts(1000)).await;
        assert_eq!(o.status, CheckStatus::L4Con);
        assert_eq!(
            o.reason(),
            "Layer4 connection problem, info: \"Connection refused\""
        );
    }

    /// A listener with a full accept queue drops further SYNs, so a connect hangs: the
    /// check reports a Layer4 timeout within `inter` (loopback only).
    #[tokio::test]
    async fn connect_timeout_is_layer4_timeout() {
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let l = sock.listen(0).unwrap();
        let addr = l.local_addr().unwrap();
        // Fill the accept queue; never accept.
        let mut held = Vec::new();
        for _ in 0..4 {
            if let Ok(Ok(s)) =
                tokio::time::timeout(Duration::from_millis(100), TcpStream::connect(addr)).await
            {
                held.push(s);
            }
        }
        let o = run_probe(addr, &Probe::Tcp, &timeouts(200)).await;
        assert_eq!(o.status, CheckStatus::L4Timeout, "{o}");
        assert_eq!(o.reason(), "Layer4 timeout");
        drop(l);
    }

    #[test]
    fn connect_limit_follows_haproxy() {
        let mut t = timeouts(2000);
        assert_eq!(t.connect_limit(), Duration::from_millis(2000));
        t.connect = Some(Duration::from_millis(500));
        assert_eq!(t.connect_limit(), Duration::from_millis(2000));
        t.timeout_check = Some(Duration::from_secs(1));
        assert_eq!(t.connect_limit(), Duration::from_millis(500));
        t.connect = Some(Duration::from_secs(5));
        assert_eq!(t.connect_limit(), Duration::from_millis(2000));
    }
}
