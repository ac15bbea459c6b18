//! Access log in HAProxy's `option httplog` format, one line per request, written
//! through a pluggable sink so the daemon can send it to stdout, a file or syslog.

use std::{
    fmt::Write as _,
    net::SocketAddr,
    time::{SystemTime, UNIX_EPOCH},
};

/// Everything one httplog line says about a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessRecord {
    /// Client address (`%ci:%cp`).
    pub client: SocketAddr,
    /// When the request was received (`%tr`).
    pub date: SystemTime,
    /// Frontend name (`%ft`): the service.
    pub frontend: String,
    /// Backend name (`%b`): the service too (one listen section).
    pub backend: String,
    /// Server name (`%s`), `<NOSRV>` when none was reached.
    pub server: Option<String>,
    /// `%TR`: ms to receive the request head (-1 unknown).
    pub t_request: i64,
    /// `%Tw`: ms waiting in queues (-1 when the request never got a slot).
    pub t_queue: i64,
    /// `%Tc`: ms to connect to the server (-1 when it never connected).
    pub t_connect: i64,
    /// `%Tr`: ms the server took to send the response head (-1 when none came).
    pub t_response: i64,
    /// `%Ta`: ms from the request to the end of the response.
    pub t_active: i64,
    /// `%ST`: status sent to the client.
    pub status: u16,
    /// `%B`: bytes sent to the client (body bytes here; headers are not counted).
    pub bytes: u64,
    /// `%tsc`: the four termination-state letters.
    pub termination: [char; 4],
    /// `%ac`: connections on the process (we report the service's).
    pub actconn: u32,
    /// `%fc`: connections on the frontend.
    pub feconn: u32,
    /// `%bc`: requests in flight on the backend.
    pub beconn: u32,
    /// `%sc`: requests in flight on the server.
    pub srv_conn: u32,
    /// `%rc`: connection retries.
    pub retries: u32,
    /// Shown as `+` before `%rc` when the request was redispatched.
    pub redispatched: bool,
    /// `%sq`: requests queued ahead on the server.
    pub srv_queue: u32,
    /// `%bq`: requests queued ahead on the backend.
    pub backend_queue: u32,
    /// `%r`: the request line.
    pub request_line: String,
}

impl AccessRecord {
    /// The line, from the client address on (the syslog header with
    /// `haproxy[pid]:` is the sink's business):
    /// `%ci:%cp [%tr] %ft %b/%s %TR/%Tw/%Tc/%Tr/%Ta %ST %B %CC %CS %tsc
    ///  %ac/%fc/%bc/%sc/%rc %sq/%bq %{+Q}r`. Dates are UTC.
    pub fn format(&self) -> String {
        let mut s = String::with_capacity(160 + self.request_line.len());
        self.format_into(&mut s);
        s
    }

    /// [`AccessRecord::format`] appended to `s` (no allocation of its own). Written
    /// field by field without `core::fmt`, which cost about a sixth of the proxy's
    /// user-space instructions per request (callgrind, keep-alive).
    pub fn format_into(&self, s: &mut String) {
        match self.client {
            SocketAddr::V6(a) => match a.ip().to_ipv4_mapped() {
                Some(v4) => push_ipv4(s, v4),
                None => {
                    let _ = write!(s, "{}", a.ip());
                }
            },
            SocketAddr::V4(a) => push_ipv4(s, *a.ip()),
        }
        s.push(':');
        push_u64(s, u64::from(self.client.port()));
        s.push_str(" [");
        log_date_into(s, self.date);
        s.push_str("] ");
        s.push_str(&self.frontend);
        s.push(' ');
        s.push_str(&self.backend);
        s.push('/');
        s.push_str(self.server.as_deref().unwrap_or("<NOSRV>"));
        for (i, t) in [
            self.t_request,
            self.t_queue,
            self.t_connect,
            self.t_response,
            self.t_active,
        ]
        .into_iter()
        .enumerate()
        {
            s.push(if i == 0 { ' ' } else { '/' });
            push_i64(s, t);
        }
        s.push(' ');
        push_u64(s, u64::from(self.status));
        s.push(' ');
        push_u64(s, self.bytes);
        s.push_str(" - - ");
        s.extend(self.termination);
        for (i, n) in [self.actconn, self.feconn, self.beconn, self.srv_conn]
            .into_iter()
            .enumerate()
        {
            s.push(if i == 0 { ' ' } else { '/' });
            push_u64(s, u64::from(n));
        }
        s.push('/');
        if self.redispatched {
            s.push('+');
        }
        push_u64(s, u64::from(self.retries));
        s.push(' ');
        push_u64(s, u64::from(self.srv_queue));
        s.push('/');
        push_u64(s, u64::from(self.backend_queue));
        s.push_str(" \"");
        escape_into(s, &self.request_line);
        s.push('"');
    }
}

/// Decimal digits of `n`, without `core::fmt`.
fn push_u64(s: &mut String, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for &d in &buf[i..] {
        s.push(char::from(d));
    }
}

fn push_i64(s: &mut String, n: i64) {
    if n < 0 {
        s.push('-');
    }
    push_u64(s, n.unsigned_abs());
}

/// `n` with at least `width` digits, zero-padded.
fn push_padded(s: &mut String, n: u64, width: usize) {
    let mut digits = 1;
    let mut m = n / 10;
    while m > 0 {
        digits += 1;
        m /= 10;
    }
    for _ in digits..width {
        s.push('0');
    }
    push_u64(s, n);
}

fn push_ipv4(s: &mut String, ip: std::net::Ipv4Addr) {
    for (i, o) in ip.octets().into_iter().enumerate() {
        if i > 0 {
            s.push('.');
        }
        push_u64(s, u64::from(o));
    }
}

/// HAProxy escapes non-printable bytes and `"` in logged strings as `#XX`.
fn escape_into(out: &mut String, text: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let bytes = text.as_bytes();
    let plain = |b: u8| (0x20..0x7f).contains(&b) && b != b'"' && b != b'#';
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if !plain(b) {
            // Runs of plain bytes are ASCII, hence valid UTF-8, copied in one go.
            out.push_str(std::str::from_utf8(&bytes[start..i]).unwrap_or_default());
            out.push('#');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
            start = i + 1;
        }
    }
    out.push_str(std::str::from_utf8(&bytes[start..]).unwrap_or_default());
}

/// `dd/Mon/yyyy:HH:MM:SS.mmm` in UTC.
pub fn log_date(t: SystemTime) -> String {
    let mut s = String::with_capacity(24);
    log_date_into(&mut s, t);
    s
}

/// [`log_date`] appended to `s`.
fn log_date_into(s: &mut String, t: SystemTime) {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (y, m, day) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    let month = MONTHS
        .get((m as usize).wrapping_sub(1))
        .copied()
        .unwrap_or("???");
    push_padded(s, u64::from(day), 2);
    s.push('/');
    s.push_str(month);
    s.push('/');
    push_padded(s, y.max(0).unsigned_abs(), 4);
    for (sep, v) in [(':', rem / 3600), (':', (rem / 60) % 60), (':', rem % 60)] {
        s.push(sep);
        push_padded(s, v, 2);
    }
    s.push('.');
    push_padded(s, u64::from(d.subsec_millis()), 3);
}

/// Days since 1970-01-01 to (year, month 1-12, day 1-31); Howard Hinnant's algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Where access log records go. Implementations must be cheap: `log` runs on the
/// proxy's tasks once per request.
pub trait AccessLogSink: Send + Sync + std::fmt::Debug {
    /// Records one finished request.
    fn log(&self, record: &AccessRecord);
}

/// Emits each line as a `tracing` event with target `access` at INFO, so the
/// daemon's subscriber decides where it goes (stdout, file, filtering).
#[derive(Debug, Default, Clone, Copy)]
pub struct TracingSink;

impl AccessLogSink for TracingSink {
    fn log(&self, record: &AccessRecord) {
        tracing::info!(target: "access", "{}", record.format());
    }
}

/// How often [`BatchedStdoutSink`] writes what accumulated.
pub const ACCESS_LOG_FLUSH_INTERVAL: std::time::Duration = std::time::Duration::from_millis(50);
/// Pending bytes beyond which [`BatchedStdoutSink::log`] writes at once.
pub const ACCESS_LOG_MAX_PENDING: usize = 1 << 20;

/// Raw httplog lines on stdout (HAProxy's `log stdout format raw`), written in batches:
/// one `write(2)` per [`ACCESS_LOG_FLUSH_INTERVAL`] instead of a formatted tracing event
/// and a write per request, which cost about a tenth of the proxy's CPU per request in
/// the keep-alive bench. Lines are written within the interval, and by
/// [`BatchedStdoutSink::flush`] at shutdown.
#[derive(Debug)]
pub struct BatchedStdoutSink {
    pending: std::sync::Arc<std::sync::Mutex<String>>,
}

impl BatchedStdoutSink {
    /// The sink and its flushing thread, which ends when the sink is dropped.
    pub fn start() -> std::sync::Arc<BatchedStdoutSink> {
        let pending = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let weak = std::sync::Arc::downgrade(&pending);
        let spawned = std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || loop {
                std::thread::sleep(ACCESS_LOG_FLUSH_INTERVAL);
                let Some(p) = weak.upgrade() else { return };
                write_out(&p);
            });
        if let Err(e) = spawned {
            // Lines are still written when the buffer fills up and at shutdown.
            tracing::warn!(error = %e, "access log: no flushing thread");
        }
        std::sync::Arc::new(BatchedStdoutSink { pending })
    }

    /// Writes everything pending now.
    pub fn flush(&self) {
        write_out(&self.pending);
    }
}

fn lock_pending(p: &std::sync::Mutex<String>) -> std::sync::MutexGuard<'_, String> {
    match p.lock() {
        Ok(g) => g,
        Err(e) => e.into_inner(),
    }
}

fn write_out(p: &std::sync::Mutex<String>) {
    use std::io::Write as _;
    let data = {
        let mut g = lock_pending(p);
        if g.is_empty() {
            return;
        }
        let cap = g.capacity().min(256 * 1024);
        std::mem::replace(&mut *g, String::with_capacity(cap))
    };
    let mut out = std::io::stdout().lock();
    // A closed stdout must not take the proxy down; the lines are lost.
    let _ = out.write_all(data.as_bytes());
    let _ = out.flush();
}

thread_local! {
    /// Each thread formats its line here, outside the shared buffer's lock.
    static LINE: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

impl AccessLogSink for BatchedStdoutSink {
    fn log(&self, record: &AccessRecord) {
        // The lock is held for a copy only: the per-core event loops log at once.
        let full = LINE.with(|line| {
            let mut line = line.borrow_mut();
            line.clear();
            record.format_into(&mut line);
            line.push('\n');
            let mut g = lock_pending(&self.pending);
            g.push_str(&line);
            g.len() >= ACCESS_LOG_MAX_PENDING
        });
        if full {
            write_out(&self.pending);
        }
    }
}

impl Drop for BatchedStdoutSink {
    fn drop(&mut self) {
        self.flush();
    }
}

/// Drops every record (benchmarks, tests that do not look at logs).
#[derive(Debug, Default, Clone, Copy)]
pub struct NullSink;

impl AccessLogSink for NullSink {
    fn log(&self, _record: &AccessRecord) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn dates() {
        assert_eq!(log_date(UNIX_EPOCH), "01/Jan/1970:00:00:00.000");
        // 2009-02-06 12:14:14.655 UTC, HAProxy manual's example date.
        let t = UNIX_EPOCH + Duration::from_millis(1_233_922_454_655);
        assert_eq!(log_date(t), "06/Feb/2009:12:14:14.655");
        let t = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(&log_date(t)[..11], "29/Feb/2000");
    }

    #[test]
    fn line_matches_httplog_layout() {
        let r = AccessRecord {
            client: "10.0.1.2:33317".parse().expect("addr"),
            date: UNIX_EPOCH + Duration::from_millis(1_233_922_454_655),
            frontend: "http-in".into(),
            backend: "static".into(),
            server: Some("srv1".into()),
            t_request: 10,
            t_queue: 0,
            t_connect: 30,
            t_response: 69,
            t_active: 109,
            status: 200,
            bytes: 2750,
            termination: ['-', '-', 'V', 'N'],
            actconn: 1,
            feconn: 1,
            beconn: 1,
            srv_conn: 1,
            retries: 0,
            redispatched: false,
            srv_queue: 0,
            backend_queue: 0,
            request_line: "GET /index.html HTTP/1.1".into(),
        };
        assert_eq!(
            r.format(),
            "10.0.1.2:33317 [06/Feb/2009:12:14:14.655] http-in static/srv1 10/0/30/69/109 200 2750 - - --VN 1/1/1/1/0 0/0 \"GET /index.html HTTP/1.1\""
        );
        let r2 = AccessRecord {
            redispatched: true,
            retries: 1,
            server: None,
            request_line: "GET /\"x\" HTTP/1.1".into(),
            ..r
        };
        let line = r2.format();
        assert!(line.contains(" static/<NOSRV> "), "{line}");
        assert!(line.contains(" 1/1/1/1/+1 "), "{line}");
        assert!(line.ends_with("\"GET /#22x#22 HTTP/1.1\""), "{line}");
        let r3 = AccessRecord {
            request_line: "GET /\u{e9}#\u{7f} H".into(),
            ..r2
        };
        assert!(
            r3.format().ends_with("\"GET /#C3#A9#23#7F H\""),
            "{}",
            r3.format()
        );
    }

    /// The hand-written formatter says what `core::fmt` would (the reference below is
    /// the former implementation), for negative times, IPv6, odd dates.
    #[test]
    fn hand_formatting_matches_fmt() {
        fn reference(r: &AccessRecord) -> String {
            let ip = match r.client {
                SocketAddr::V6(a) => a
                    .ip()
                    .to_ipv4_mapped()
                    .map_or_else(|| a.ip().to_string(), |v4| v4.to_string()),
                SocketAddr::V4(a) => a.ip().to_string(),
            };
            let d = r.date.duration_since(UNIX_EPOCH).unwrap_or_default();
            let (y, m, day) = civil_from_days((d.as_secs() / 86_400) as i64);
            let rem = d.as_secs() % 86_400;
            let months = [
                "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
            ];
            let date = format!(
                "{:02}/{}/{:04}:{:02}:{:02}:{:02}.{:03}",
                day,
                months[m as usize - 1],
                y,
                rem / 3600,
                (rem / 60) % 60,
                rem % 60,
                d.subsec_millis()
            );
            format!(
                "{}:{} [{}] {} {}/{} {}/{}/{}/{}/{} {} {} - - {}{}{}{} {}/{}/{}/{}/{}{} {}/{} \"",
                ip,
                r.client.port(),
                date,
                r.frontend,
                r.backend,
                r.server.as_deref().unwrap_or("<NOSRV>"),
                r.t_request,
                r.t_queue,
                r.t_connect,
                r.t_response,
                r.t_active,
                r.status,
                r.bytes,
                r.termination[0],
                r.termination[1],
                r.termination[2],
                r.termination[3],
                r.actconn,
                r.feconn,
                r.beconn,
                r.srv_conn,
                if r.redispatched { "+" } else { "" },
                r.retries,
                r.srv_queue,
                r.backend_queue,
            )
        }
        let base = AccessRecord {
            client: "[2001:db8::7]:65535".parse().expect("addr"),
            date: UNIX_EPOCH + Duration::from_millis(4_102_444_799_009),
            frontend: "fe".into(),
            backend: "be".into(),
            server: None,
            t_request: -1,
            t_queue: -1,
            t_connect: i64::MAX,
            t_response: 0,
            t_active: 1_000_000,
            status: 503,
            bytes: u64::MAX,
            termination: ['s', 'C', '-', '-'],
            actconn: 0,
            feconn: u32::MAX,
            beconn: 10,
            srv_conn: 9,
            retries: 3,
            redispatched: true,
            srv_queue: 100,
            backend_queue: 0,
            request_line: String::new(),
        };
        let mapped = AccessRecord {
            client: "[::ffff:198.18.0.1]:1".parse().expect("addr"),
            date: UNIX_EPOCH + Duration::from_millis(86_399_999),
            t_connect: i64::MIN,
            redispatched: false,
            ..base.clone()
        };
        let v4 = AccessRecord {
            client: "0.0.0.0:0".parse().expect("addr"),
            date: UNIX_EPOCH,
            ..base.clone()
        };
        for r in [base, mapped, v4] {
            let mut want = reference(&r);
            want.push('"');
            assert_eq!(r.format(), want);
        }
    }
}
