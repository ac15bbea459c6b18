//! `cargo xtask bench http`: issue 3 acceptance 6 and 7. Our L7 proxy (`lb run`, release
//! build) and HAProxy with the equivalent configuration (the seed's listen section:
//! roundrobin, cookie JSESSIONID prefix, forwardfor, retries 3, redispatch) side by side,
//! in the same run, against the same nginx backends, with the same wrk load:
//! req/s, p50/p99 latency, proxy CPU time per request (utime+stime from /proc), for
//! keep-alive and for `option httpclose`, and resident memory per idle keep-alive client
//! connection at 5,000 connections.
//!
//! ```text
//!  client 198.18.20.2 (wrk) --- eth0 lb 198.18.20.1, VIP .99 (lb run), .98 (haproxy)
//!                               eth1 198.18.21.1 --- backend 198.18.21.2:8000,8001 (nginx)
//! ```
//!
//! Options: `--duration SECS` (default 10), `--connections N` (wrk -c, default 50),
//! `--idle N` (idle connections for the memory figure, default 5000), `--rounds N`
//! (default 3: each proxy and mode runs N times, alternating with the other proxy). The
//! table shows each figure's median over the rounds, and each ratio is the median of the
//! rounds' paired ratios (lb's run against HAProxy's run next to it in time): a burst of
//! load from elsewhere on the shared machine moves one round, not the comparison.

use crate::stats::median;
use anyhow::{bail, ensure, Context, Result};
use lb_tests::{
    daemon::Instance,
    netns::{veth_pair, Netns, NsProcess},
};
use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

const VIP: &str = "198.18.20.99";
const HAPROXY_ADDR: &str = "198.18.20.98";
const BACKEND: &str = "198.18.21.2";
/// Keep-alive listener port of both proxies; the httpclose variant listens on +1.
const PORT_KEEPALIVE: u16 = 80;
const PORT_CLOSE: u16 = 81;
/// What `lb run` logs once its listeners and XDP are up.
const READY_LINE: &str = "XDP attached";
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Parsed command-line options.
struct Options {
    rounds: u32,
    duration: u64,
    connections: u32,
    idle: usize,
}

fn options(args: &[String]) -> Result<Options> {
    let mut o = Options {
        rounds: 3,
        duration: 10,
        connections: 50,
        idle: 5000,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || it.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--duration" => o.duration = val()?.parse()?,
            "--connections" => o.connections = val()?.parse()?,
            "--idle" => o.idle = val()?.parse()?,
            "--rounds" => o.rounds = val()?.parse()?,
            other => {
                bail!("unknown option {other:?} (--duration, --connections, --idle, --rounds)")
            }
        }
    }
    ensure!((1..=120).contains(&o.duration), "--duration 1..=120 s");
    ensure!(
        (1..=1000).contains(&o.connections),
        "--connections 1..=1000"
    );
    ensure!((1..=20_000).contains(&o.idle), "--idle 1..=20000");
    ensure!((1..=10).contains(&o.rounds), "--rounds 1..=10");
    Ok(o)
}

/// Runs the HTTP bench from the workspace at `root` with `args` (see the module docs)
/// and prints the comparison table. Needs root, wrk, haproxy and nginx.
pub fn run(root: &Path, args: &[String]) -> Result<()> {
    let opts = options(args)?;
    for prog in ["wrk", "haproxy", "nginx"] {
        ensure!(
            which(prog).is_some(),
            "{prog} not found (apt-get install wrk haproxy nginx)"
        );
    }
    raise_nofile(65_536, 2 * opts.idle as u64 + 1024)?;
    let lb = build_release(root)?;
    let dir = tempfile::tempdir()?;

    let lab = Lab::new()?;
    let _nginx = nginx(&lab.backend, dir.path())?;
    wait_http(&lab.lb, SocketAddr::new(BACKEND.parse()?, 8000))?;

    // Both proxies run side by side (the idle one costs nothing) and the wrk runs
    // alternate, so drift in the shared machine's load hits both alike.
    let inst = Instance::new("benchhttp");
    let lbp = start_lb(&lab.lb, &lb, &inst, dir.path())?;
    let hap = start_haproxy(&lab.lb, dir.path())?;
    let proxies = [("lb", lbp.pid(), VIP), ("haproxy", hap.pid(), HAPROXY_ADDR)];
    let mut rows = Vec::new();
    for (name, pid, addr) in proxies {
        eprintln!(
            "bench: {name}: warm-up, then {} idle keep-alive connections",
            opts.idle
        );
        let ka: SocketAddr = format!("{addr}:{PORT_KEEPALIVE}").parse()?;
        wait_http(&lab.client, ka)?;
        wait_http(&lab.client, format!("{addr}:{PORT_CLOSE}").parse()?)?;
        wrk(&lab, pid, ka, 2, 10)?;
        rows.push(Row {
            name,
            keepalive: Vec::new(),
            close: Vec::new(),
            idle_bytes_per_conn: idle_memory(&lab, pid, ka, opts.idle)?,
        });
    }
    for round in 1..=opts.rounds {
        for (port, mode) in [(PORT_KEEPALIVE, "keep-alive"), (PORT_CLOSE, "httpclose")] {
            for (row, (name, pid, addr)) in rows.iter_mut().zip(proxies) {
                eprintln!(
                    "bench: round {round}/{}: {name}: {mode}, wrk -t2 -c{} -d{}s",
                    opts.rounds, opts.connections, opts.duration
                );
                let to: SocketAddr = format!("{addr}:{port}").parse()?;
                let w = wrk(&lab, pid, to, opts.duration, opts.connections)?;
                if port == PORT_KEEPALIVE {
                    row.keepalive.push(w);
                } else {
                    row.close.push(w);
                }
            }
        }
    }
    print_table(&rows, &opts);
    drop((lbp, hap));
    Ok(())
}

/// One proxy's figures.
struct Row {
    name: &'static str,
    /// One run per round, in round order.
    keepalive: Vec<Wrk>,
    close: Vec<Wrk>,
    idle_bytes_per_conn: f64,
}

/// One wrk run plus the proxy's CPU time during it.
#[derive(Debug, Default, Clone, Copy)]
struct Wrk {
    rps: f64,
    p50_us: f64,
    p99_us: f64,
    requests: u64,
    errors: u64,
    cpu_us_per_req: f64,
    /// Context switches of the proxy's threads per request (voluntary + involuntary):
    /// each is a sleep in epoll_wait or a preemption, so this shows how the proxy's
    /// work is batched.
    switches_per_req: f64,
}

/// Reads one figure of a run.
type Metric = fn(&Wrk) -> f64;

/// A run's figures, for the per-metric medians and ratios.
const METRICS: [(&str, Metric); 4] = [
    ("req/s", |w| w.rps),
    ("p50", |w| w.p50_us),
    ("p99", |w| w.p99_us),
    ("CPU/req", |w| w.cpu_us_per_req),
];

fn print_table(rows: &[Row], o: &Options) {
    println!();
    println!(
        "HTTP bench: wrk -t2 -c{} -d{}s --latency, median of {} alternating runs, cookie JSESSIONID prefix + forwardfor, 2 nginx backends",
        o.connections, o.duration, o.rounds
    );
    println!(
        "{:<10} {:<10} {:>10} {:>10} {:>10} {:>12} {:>10} {:>9} {:>7}",
        "proxy",
        "mode",
        "req/s",
        "p50 ms",
        "p99 ms",
        "CPU us/req",
        "cswch/req",
        "requests",
        "errors"
    );
    for r in rows {
        for (mode, runs) in [("keepalive", &r.keepalive), ("httpclose", &r.close)] {
            let m = |f: Metric| median(runs.iter().map(f).collect());
            println!(
                "{:<10} {:<10} {:>10.0} {:>10.2} {:>10.2} {:>12.1} {:>10.2} {:>9} {:>7}",
                r.name,
                mode,
                m(|w| w.rps),
                m(|w| w.p50_us) / 1000.0,
                m(|w| w.p99_us) / 1000.0,
                m(|w| w.cpu_us_per_req),
                m(|w| w.switches_per_req),
                runs.iter().map(|w| w.requests).sum::<u64>(),
                runs.iter().map(|w| w.errors).sum::<u64>()
            );
        }
    }
    for r in rows {
        println!(
            "{:<10} idle keep-alive connection: {:.1} KiB resident each (RSS delta / {})",
            r.name,
            r.idle_bytes_per_conn / 1024.0,
            o.idle
        );
    }
    if let [us, them] = rows {
        println!("ratios lb/haproxy, median of the rounds' paired ratios (targets: req/s >= 1.0, p99 <= 1.0, CPU/req <= 1.0, idle <= 16 KiB):");
        for (mode, a, b) in [
            ("keepalive", &us.keepalive, &them.keepalive),
            ("httpclose", &us.close, &them.close),
        ] {
            let mut line = format!("  {mode:<10}");
            let mut rounds = Vec::new();
            for (name, f) in METRICS {
                let per_round: Vec<f64> = a.iter().zip(b).map(|(x, y)| f(x) / f(y)).collect();
                line += &format!(" {name} {:.2}x ", median(per_round.clone()));
                rounds.push((name, per_round));
            }
            println!("{}", line.trim_end());
            for (name, per_round) in rounds {
                let each: Vec<String> = per_round.iter().map(|r| format!("{r:.2}")).collect();
                println!("      {name:<8} by round: {}", each.join(" "));
            }
        }
        println!(
            "  idle memory per connection {:.2}x ({:.1} KiB vs {:.1} KiB)",
            us.idle_bytes_per_conn / them.idle_bytes_per_conn,
            us.idle_bytes_per_conn / 1024.0,
            them.idle_bytes_per_conn / 1024.0
        );
    }
}

// ---------------------------------------------------------------------------------------
// Topology and processes.

struct Lab {
    client: Netns,
    lb: Netns,
    backend: Netns,
}

impl Lab {
    fn new() -> Result<Lab> {
        let client = Netns::new("bhc")?;
        let lb = Netns::new("bhl")?;
        let backend = Netns::new("bhb")?;
        veth_pair(&client, &lb, "eth0", "eth0")?;
        veth_pair(&lb, &backend, "eth1", "eth0")?;
        client.add_addr("eth0", "198.18.20.2/24")?;
        lb.add_addr("eth0", "198.18.20.1/24")?;
        lb.add_addr("eth0", &format!("{VIP}/32"))?;
        lb.add_addr("eth0", &format!("{HAPROXY_ADDR}/32"))?;
        lb.add_addr("eth1", "198.18.21.1/24")?;
        backend.add_addr("eth0", &format!("{BACKEND}/24"))?;
        for (ns, i) in [
            (&client, "eth0"),
            (&lb, "eth0"),
            (&lb, "eth1"),
            (&backend, "eth0"),
        ] {
            ns.wait_link_up(i, Duration::from_secs(5))?;
        }
        // Many short connections (httpclose) from one client address.
        for ns in [&client, &lb] {
            ns.sysctl("net.ipv4.ip_local_port_range", "10000 65000")?;
            ns.sysctl("net.ipv4.tcp_tw_reuse", "1")?;
            ns.sysctl("net.core.somaxconn", "8192")?;
        }
        backend.sysctl("net.core.somaxconn", "8192")?;
        Ok(Lab {
            client,
            lb,
            backend,
        })
    }
}

fn which(prog: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(prog))
            .find(|p| p.is_file())
    })
}

/// Raises the soft open-files limit to `n` (or the hard limit, if lower); children
/// (the proxies, nginx) inherit it. Fails if fewer than `need` descriptors result.
fn raise_nofile(n: u64, need: u64) -> Result<()> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls on a valid struct.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(std::io::Error::last_os_error()).context("getrlimit(RLIMIT_NOFILE)");
    }
    lim.rlim_cur = n.min(lim.rlim_max);
    // SAFETY: as above.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
        return Err(std::io::Error::last_os_error()).context("setrlimit(RLIMIT_NOFILE)");
    }
    ensure!(
        lim.rlim_cur >= need,
        "RLIMIT_NOFILE hard limit {} is below the {need} descriptors needed",
        lim.rlim_max
    );
    Ok(())
}

fn build_release(root: &Path) -> Result<PathBuf> {
    eprintln!("bench: cargo build --release -p lb-userspace");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let st = Command::new(cargo)
        .current_dir(root)
        .args(["build", "--release", "-p", "lb-userspace", "--bin", "lb"])
        .status()
        .context("running cargo")?;
    ensure!(st.success(), "release build of lb failed");
    let bin = root.join("target/release/lb");
    ensure!(bin.is_file(), "{} missing", bin.display());
    Ok(bin)
}

/// nginx with two servers (8000 = webA, 8001 = webB) answering a small page with a
/// JSESSIONID cookie, so the proxies' cookie prefixing works on every response.
fn nginx(ns: &Netns, dir: &Path) -> Result<NsProcess> {
    let conf = dir.join("nginx.conf");
    let server = |port: u16, name: &str| {
        format!(
            "  server {{\n    listen {BACKEND}:{port} backlog=8192;\n    keepalive_requests 1000000;\n    keepalive_timeout 120s;\n\
             \x20   location / {{\n      add_header Set-Cookie \"JSESSIONID=s{name}0123456789; Path=/\";\n\
             \x20     return 200 \"hello from {name}\\n\";\n    }}\n  }}\n"
        )
    };
    let text = format!(
        "worker_processes 1;\npid {pid};\nerror_log {err} error;\ndaemon off;\n\
         events {{\n  worker_connections 12000;\n}}\nworker_rlimit_nofile 20000;\n\
         http {{\n  access_log off;\n  client_body_temp_path {tmp};\n  proxy_temp_path {tmp};\n\
         \x20 fastcgi_temp_path {tmp};\n  uwsgi_temp_path {tmp};\n  scgi_temp_path {tmp};\n{a}{b}}}\n",
        pid = dir.join("nginx.pid").display(),
        err = dir.join("nginx.err").display(),
        tmp = dir.display(),
        a = server(8000, "A"),
        b = server(8001, "B"),
    );
    std::fs::write(&conf, text)?;
    let mut cmd = ns.command("nginx");
    cmd.arg("-p")
        .arg(dir)
        .arg("-c")
        .arg(&conf)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    NsProcess::spawn(cmd)
}

fn start_lb(ns: &Netns, bin: &Path, inst: &Instance, dir: &Path) -> Result<NsProcess> {
    let svc = |name: &str, port: u16, close: bool| {
        format!(
            "\n[[service]]\nname = \"{name}\"\nvip = \"{VIP}\"\nport = {port}\nmode = \"http\"\n\
             [service.http]\nbalance = \"roundrobin\"\ncookie = {{ name = \"JSESSIONID\", mode = \"prefix\" }}\n\
             forwardfor = true\nhttpclose = {close}\nretries = 3\nredispatch = true\nmaxconn = 20000\n\
             timeout = {{ connect = \"5s\", client = \"50s\", server = \"50s\" }}\n\
             [[service.server]]\nname = \"webA\"\naddress = \"{BACKEND}:8000\"\ncookie = \"A\"\n\
             [[service.server]]\nname = \"webB\"\naddress = \"{BACKEND}:8001\"\ncookie = \"B\"\n"
        )
    };
    let text = format!(
        "instance = \"{}\"\n[xdp]\ninterface = \"eth0\"\n{}{}",
        inst.name(),
        svc("webfarm", PORT_KEEPALIVE, false),
        svc("webfarm_close", PORT_CLOSE, true)
    );
    let cfg = dir.join("lb.toml");
    std::fs::write(&cfg, text)?;
    let log = dir.join("lb.log");
    let out = std::fs::File::create(&log)?;
    let mut cmd = ns.command_net_only(bin)?;
    cmd.arg("run")
        .arg("--config")
        .arg(&cfg)
        // LB_BENCH_LOG=warn turns the access log off, to see what it costs.
        .env(
            "LB_LOG",
            std::env::var("LB_BENCH_LOG").unwrap_or_else(|_| "info".into()),
        )
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out);
    let p = NsProcess::spawn(cmd)?;
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        // With LB_BENCH_LOG=warn the ready line is not logged: the listener tells.
        let vip = SocketAddr::new(VIP.parse()?, PORT_KEEPALIVE);
        let listening = ns
            .run(move || TcpStream::connect_timeout(&vip, Duration::from_millis(200)).is_ok())
            .unwrap_or(false);
        if text.contains(READY_LINE) || (listening && std::env::var_os("LB_BENCH_LOG").is_some()) {
            std::thread::sleep(Duration::from_millis(300));
            return Ok(p);
        }
        if Instant::now() > deadline {
            bail!("lb run did not start:\n{text}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// HAProxy 2.6 with the seed's settings in 2.6 syntax; logs like the seed (syslog over
/// UDP to 127.0.0.1), so both proxies pay for an access log line per request.
fn start_haproxy(ns: &Netns, dir: &Path) -> Result<NsProcess> {
    let listen = |name: &str, port: u16, close: bool| {
        format!(
            "listen {name}\n  bind {HAPROXY_ADDR}:{port}\n  maxconn 9000\n  balance roundrobin\n\
             \x20 cookie JSESSIONID prefix\n{}  option forwardfor\n\
             \x20 server webA {BACKEND}:8000 cookie A\n  server webB {BACKEND}:8001 cookie B\n",
            if close { "  option httpclose\n" } else { "" }
        )
    };
    let text = format!(
        "global\n  maxconn 9000\n  log 127.0.0.1:514 local0\n\
         defaults\n  log global\n  mode http\n  option httplog\n  option dontlognull\n  retries 3\n\
         \x20 option redispatch\n  timeout connect 5s\n  timeout client 50s\n  timeout server 50s\n{}{}",
        listen("webfarm", PORT_KEEPALIVE, false),
        listen("webfarm_close", PORT_CLOSE, true)
    );
    let cfg = dir.join("haproxy.cfg");
    std::fs::write(&cfg, text)?;
    let mut cmd = ns.command("haproxy");
    cmd.arg("-db")
        .arg("-f")
        .arg(&cfg)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    NsProcess::spawn(cmd)
}

// ---------------------------------------------------------------------------------------
// Measurements.

/// Waits until `to` answers an HTTP request from `ns`.
fn wait_http(ns: &Netns, to: SocketAddr) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let ok = ns
            .run(move || -> Result<bool> {
                let mut s = TcpStream::connect_timeout(&to, Duration::from_secs(1))?;
                s.set_read_timeout(Some(Duration::from_secs(2)))?;
                s.write_all(b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")?;
                let mut out = Vec::new();
                let _ = s.read_to_end(&mut out);
                Ok(out.starts_with(b"HTTP/1.1 200"))
            })?
            .unwrap_or(false);
        if ok {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{to} does not answer");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Context switches of all of `pid`'s threads so far.
fn switches(pid: u32) -> Result<u64> {
    let mut n = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        // A thread may end between the listing and the read.
        let Ok(status) = std::fs::read_to_string(task?.path().join("status")) else {
            continue;
        };
        for line in status.lines() {
            if let Some(v) = line
                .strip_prefix("voluntary_ctxt_switches:")
                .or_else(|| line.strip_prefix("nonvoluntary_ctxt_switches:"))
            {
                n += v.trim().parse::<u64>()?;
            }
        }
    }
    Ok(n)
}

/// utime + stime of `pid` (all threads), in microseconds.
fn cpu_us(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("malformed /proc stat")?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the comm: state is field 3, utime 14, stime 15 (1-based).
    let ticks: u64 =
        f.get(11).context("utime")?.parse::<u64>()? + f.get(12).context("stime")?.parse::<u64>()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Ok(ticks as f64 * 1e6 / hz)
}

fn rss_bytes(pid: u32) -> Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .context("VmRSS")?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()?;
    Ok(kb * 1024.0)
}

fn wrk(lab: &Lab, pid: u32, to: SocketAddr, secs: u64, conns: u32) -> Result<Wrk> {
    let url = format!("http://{to}/");
    let (d, c) = (format!("{secs}s"), conns.to_string());
    let (cpu0, sw0) = (cpu_us(pid)?, switches(pid)?);
    // LB_BENCH_PERF=<file>: a perf profile of lb during its keep-alive run (with
    // LB_BENCH_PERF_CLOSE set: its httpclose run); a development aid.
    let perf = match std::env::var("LB_BENCH_PERF") {
        Ok(file)
            if to.ip().to_string() == VIP
                && (to.port() == PORT_KEEPALIVE)
                    != std::env::var_os("LB_BENCH_PERF_CLOSE").is_some() =>
        {
            Some(
                Command::new("perf")
                    .args([
                        "record",
                        "-F",
                        "999",
                        "-g",
                        "-o",
                        &file,
                        "-p",
                        &pid.to_string(),
                    ])
                    .args(["--", "sleep", &(secs / 2).max(1).to_string()])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()?,
            )
        }
        _ => None,
    };
    let out = lab.client.exec_timeout(
        &["wrk", "-t2", "-c", &c, "-d", &d, "--latency", &url],
        Duration::from_secs(secs + 30),
    )?;
    let (cpu1, sw1) = (cpu_us(pid)?, switches(pid)?);
    if let Some(mut p) = perf {
        let _ = p.wait();
    }
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut w = parse_wrk(&text).with_context(|| format!("wrk output:\n{text}"))?;
    w.cpu_us_per_req = (cpu1 - cpu0) / (w.requests.max(1) as f64);
    w.switches_per_req = sw1.saturating_sub(sw0) as f64 / (w.requests.max(1) as f64);
    Ok(w)
}

fn parse_wrk(text: &str) -> Result<Wrk> {
    let mut w = Wrk::default();
    for line in text.lines().map(str::trim) {
        let f: Vec<&str> = line.split_whitespace().collect();
        match f.as_slice() {
            ["50%", v] => w.p50_us = duration_us(v)?,
            ["99%", v] => w.p99_us = duration_us(v)?,
            ["Requests/sec:", v] => w.rps = v.parse()?,
            [n, "requests", "in", ..] => w.requests = n.parse()?,
            ["Non-2xx", "or", "3xx", "responses:", n] => w.errors += n.parse::<u64>()?,
            ["Socket", "errors:", rest @ ..] => {
                // connect 0, read 0, write 0, timeout 0
                w.errors += rest
                    .iter()
                    .filter_map(|t| t.trim_end_matches(',').parse::<u64>().ok())
                    .sum::<u64>();
            }
            _ => {}
        }
    }
    ensure!(w.requests > 0 && w.rps > 0.0, "no requests parsed");
    Ok(w)
}

fn duration_us(v: &str) -> Result<f64> {
    let (num, mul) = if let Some(n) = v.strip_suffix("us") {
        (n, 1.0)
    } else if let Some(n) = v.strip_suffix("ms") {
        (n, 1e3)
    } else if let Some(n) = v.strip_suffix('s') {
        (n, 1e6)
    } else {
        (v, 1.0)
    };
    Ok(num.parse::<f64>()? * mul)
}

/// Opens `n` keep-alive connections from the client namespace, one request each, and
/// keeps them idle: (RSS with them - RSS before) / n.
fn idle_memory(lab: &Lab, pid: u32, to: SocketAddr, n: usize) -> Result<f64> {
    std::thread::sleep(Duration::from_millis(500));
    let before = rss_bytes(pid)?;
    let conns = lab.client.run(move || -> Result<Vec<TcpStream>> {
        let mut v = Vec::with_capacity(n);
        let mut buf = [0u8; 4096];
        for i in 0..n {
            let mut s = TcpStream::connect_timeout(&to, Duration::from_secs(5))
                .with_context(|| format!("connection {i}"))?;
            s.set_read_timeout(Some(Duration::from_secs(5)))?;
            s.write_all(b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n")?;
            let k = s.read(&mut buf)?;
            ensure!(
                buf[..k].starts_with(b"HTTP/1.1 200"),
                "connection {i}: no 200"
            );
            v.push(s);
        }
        Ok(v)
    })??;
    std::thread::sleep(Duration::from_secs(1));
    let with = rss_bytes(pid)?;
    drop(conns);
    std::thread::sleep(Duration::from_millis(500));
    Ok((with - before) / n as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_wrk_latency_output() {
        let text = "Running 10s test @ http://198.18.20.99:80/\n  2 threads and 50 connections\n\
  Thread Stats   Avg      Stdev     Max   +/- Stdev\n    Latency     1.71ms    1.02ms  30.00ms   90.00%\n\
  Latency Distribution\n     50%  1.50ms\n     75%    2.00ms\n     90%    2.50ms\n     99%  850.00us\n\
  291234 requests in 10.00s, 50.00MB read\n  Socket errors: connect 0, read 2, write 0, timeout 1\n\
Requests/sec:  29123.40\nTransfer/sec:      5.00MB\n";
        let w = parse_wrk(text).expect("parses");
        assert_eq!(w.requests, 291_234);
        assert!((w.rps - 29_123.4).abs() < 1e-6);
        assert!((w.p50_us - 1500.0).abs() < 1e-6);
        assert!((w.p99_us - 850.0).abs() < 1e-6);
        assert_eq!(w.errors, 3);
    }
}
