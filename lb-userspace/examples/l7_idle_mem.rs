//! Where the memory of idle keep-alive client connections goes (issue 3, acceptance 7),
//! without the namespaces of `cargo xtask bench-http`: the proxy on 127.0.0.1 in front
//! of a tiny keep-alive backend, N client connections that each completed one request,
//! then RSS delta / N next to the heap bytes and allocations still live per connection
//! (a counting global allocator), and the allocation sizes that account for them.
//!
//! `cargo run --release -p lb-userspace --example l7_idle_mem -- [N]` (default 5000).
//! With `TRACE=<bytes>` set, the first allocation of that size made while the
//! connections open prints its backtrace (who holds that buffer).

use lb::l7::{
    bind, serve, CookieMode, CookiePersistence, HttpService, NullSink, Server, ServerStates,
    ServiceStats,
};
use std::{
    alloc::{GlobalAlloc, Layout, System},
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    sync::{
        atomic::{AtomicI64, Ordering::Relaxed},
        Arc,
    },
    time::Duration,
};
use tokio_util::sync::CancellationToken;

/// Allocation sizes tracked one by one; larger ones share the last bucket.
const SIZES: usize = 1 << 16;

struct Counting;
static LIVE_BYTES: AtomicI64 = AtomicI64::new(0);
static LIVE_COUNT: AtomicI64 = AtomicI64::new(0);
static BY_SIZE: [AtomicI64; SIZES] = [const { AtomicI64::new(0) }; SIZES];

fn note(size: usize, sign: i64) {
    LIVE_BYTES.fetch_add(sign * size as i64, Relaxed);
    LIVE_COUNT.fetch_add(sign, Relaxed);
    BY_SIZE[size.min(SIZES - 1)].fetch_add(sign, Relaxed);
}

// SAFETY: forwards to the system allocator unchanged and only counts.
static TRACE: AtomicI64 = AtomicI64::new(-1);
thread_local! { static IN: std::cell::Cell<bool> = const { std::cell::Cell::new(false) }; }
fn trace(size: usize) {
    if TRACE.load(Relaxed) == size as i64 && !IN.with(|c| c.replace(true)) {
        TRACE.store(-1, Relaxed);
        eprintln!(
            "alloc {size}:\n{}",
            std::backtrace::Backtrace::force_capture()
        );
        IN.with(|c| c.set(false));
    }
}
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        note(l.size(), 1);
        trace(l.size());
        // SAFETY: same layout contract as ours.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        note(l.size(), -1);
        // SAFETY: `p` came from `System.alloc` with `l`.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        note(l.size(), -1);
        note(new, 1);
        trace(new);
        // SAFETY: as above.
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn rss() -> i64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<i64>().ok())
        .unwrap_or(0)
        * 1024
}

fn snapshot() -> Vec<i64> {
    BY_SIZE.iter().map(|a| a.load(Relaxed)).collect()
}

#[path = "common/backend.rs"]
mod backend_common;

/// What the backend answers to every request.
const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 14\r\nSet-Cookie: JSESSIONID=sA0123456789; Path=/\r\n\r\nhello from A\r\n";

/// A keep-alive backend answering every request with a small page and a cookie.
async fn backend() -> SocketAddr {
    backend_common::start(RESPONSE, false).await
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(5000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let addr = rt.block_on(async {
        let be = backend().await;
        let mut a = Server::new("webA", be);
        a.cookie = Some("A".into());
        let mut b = Server::new("webB", be);
        b.cookie = Some("B".into());
        let mut svc = HttpService::new("webfarm", "127.0.0.1:0".parse().expect("addr"), vec![a, b]);
        svc.cookie = Some(CookiePersistence {
            name: "JSESSIONID".into(),
            mode: CookieMode::Prefix,
            indirect: false,
            preserve: false,
        });
        svc.forwardfor = true;
        svc.redispatch = true;
        svc.maxconn = 0;
        let l = bind("127.0.0.1:0".parse().expect("addr")).expect("bind");
        let addr = l.local_addr().expect("addr");
        svc.listen = addr;
        tokio::spawn(serve(
            Arc::new(svc),
            l,
            Arc::new(ServerStates::all_up(2)),
            Arc::new(ServiceStats::new(2)),
            Arc::new(NullSink),
            CancellationToken::new(),
        ));
        addr
    });
    let one = |s: &mut TcpStream, buf: &mut [u8]| {
        s.write_all(b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n")
            .expect("write");
        let k = s.read(buf).expect("read");
        assert!(buf[..k].starts_with(b"HTTP/1.1 200"), "no 200");
    };
    let mut buf = [0u8; 4096];
    // Warm-up: the pools and the runtime reach their steady state.
    let mut warm: Vec<TcpStream> = (0..50)
        .map(|_| TcpStream::connect(addr).expect("connect"))
        .collect();
    for _ in 0..20 {
        for s in &mut warm {
            one(s, &mut buf);
        }
    }
    drop(warm);
    std::thread::sleep(Duration::from_millis(500));
    let (r0, b0, c0, s0) = (
        rss(),
        LIVE_BYTES.load(Relaxed),
        LIVE_COUNT.load(Relaxed),
        snapshot(),
    );
    let mut conns = Vec::with_capacity(n);
    if let Some(t) = std::env::var("TRACE").ok().and_then(|v| v.parse().ok()) {
        TRACE.store(t, Relaxed);
    }
    for _ in 0..n {
        let mut s = TcpStream::connect(addr).expect("connect");
        one(&mut s, &mut buf);
        conns.push(s);
    }
    std::thread::sleep(Duration::from_secs(1));
    let (r1, b1, c1, s1) = (
        rss(),
        LIVE_BYTES.load(Relaxed),
        LIVE_COUNT.load(Relaxed),
        snapshot(),
    );
    // The client sockets are in this process too, but their memory is the kernel's.
    let per = |a: i64, b: i64| (b - a) as f64 / n as f64;
    println!("{n} idle keep-alive connections, one request each:");
    println!(
        "  RSS delta      {:8.1} B per connection ({:.2} KiB)",
        per(r0, r1),
        per(r0, r1) / 1024.0
    );
    println!("  live heap      {:8.1} B per connection", per(b0, b1));
    println!("  live allocs    {:8.2} per connection", per(c0, c1));
    let mut rows: Vec<(usize, i64)> = s0
        .iter()
        .zip(&s1)
        .enumerate()
        .map(|(size, (a, b))| (size, b - a))
        .filter(|(_, d)| *d >= n as i64 / 2)
        .collect();
    rows.sort_by_key(|(size, d)| -(*size as i64) * d);
    println!("  allocation sizes live per connection (size x count/conn):");
    for (size, d) in rows.iter().take(20) {
        println!("    {size:>6} B x {:.2}", *d as f64 / n as f64);
    }
    drop(conns);
}
