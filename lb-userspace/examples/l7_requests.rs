//! A fixed number of keep-alive requests through the L7 proxy, in one process, for
//! instruction-level profiles where hardware counters are unavailable:
//! `valgrind --tool=callgrind target/release/examples/l7_requests 20000 >/dev/null`.
//! The bench's setup (cookie prefix, forwardfor, access log to stdout) in front of a
//! minimal keep-alive backend; 4 client threads with blocking sockets.
//!
//! `cargo run --release -p lb-userspace --example l7_requests -- [REQUESTS] [WORKERS] [close]`
//! (`close`: `option httpclose` and a new client connection per request).

use lb::l7::{
    bind, serve, AccessLogSink, BatchedStdoutSink, CookieMode, CookiePersistence, HttpService,
    Server, ServerStates, ServiceStats,
};
use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    sync::Arc,
    time::Instant,
};
use tokio_util::sync::CancellationToken;

#[path = "common/backend.rs"]
mod backend_common;

/// What the backend answers to every request.
const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nServer: nginx\r\nDate: Wed, 25 Nov 2026 02:00:00 GMT\r\nContent-Type: text/plain\r\nContent-Length: 14\r\nConnection: keep-alive\r\nSet-Cookie: JSESSIONID=sA0123456789; Path=/\r\n\r\nhello from A\r\n";

/// A keep-alive backend answering every request like the bench's nginx.
async fn backend() -> SocketAddr {
    backend_common::start(RESPONSE, true).await
}

fn main() {
    let mut args = std::env::args().skip(1);
    let total: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let workers: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(2);
    // `close`: option httpclose, a new client connection per request.
    let close = args.next().is_some_and(|a| a == "close");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
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
        svc.httpclose = close;
        let l = bind("127.0.0.1:0".parse().expect("addr")).expect("bind");
        let addr = l.local_addr().expect("addr");
        svc.listen = addr;
        let sink: Arc<dyn AccessLogSink> = BatchedStdoutSink::start();
        tokio::spawn(serve(
            Arc::new(svc),
            l,
            Arc::new(ServerStates::all_up(2)),
            Arc::new(ServiceStats::new(2)),
            sink,
            CancellationToken::new(),
        ));
        addr
    });
    let clients = 4;
    let t0 = Instant::now();
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(addr).expect("connect");
                s.set_nodelay(true).expect("nodelay");
                let mut buf = [0u8; 4096];
                for _ in 0..total / clients {
                    if close {
                        s = TcpStream::connect(addr).expect("connect");
                    }
                    s.write_all(b"GET / HTTP/1.1\r\nHost: 198.18.20.99\r\n\r\n")
                        .expect("write");
                    let mut got = 0;
                    // The whole response: head and the 14-byte body.
                    while !buf[..got].ends_with(b"hello from A\r\n") {
                        let k = s.read(&mut buf[got..]).expect("read");
                        assert!(k > 0, "closed");
                        got += k;
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("client");
    }
    let dt = t0.elapsed();
    eprintln!(
        "{total} requests in {dt:?}: {:.0} req/s",
        total as f64 / dt.as_secs_f64()
    );
}
