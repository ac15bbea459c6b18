//! `cargo xtask bench`, wire part (issue 9 acceptance 6): short TCP connections (wrk with
//! `Connection: close`) and keep-alive requests to one nginx backend through a `dsr` VIP,
//! against the kernel's own forwarding on the same namespaces in the same run:
//!
//! - `direct`: the client routes the VIP straight to the backend (the floor);
//! - `nft-dsr`: an nftables netdev-ingress rule on the LB's interface rewrites the MACs
//!   (destination chosen by a hash, one backend) and `fwd`s out of the same port;
//! - `ip-forward`: the LB routes the VIP to the backend (plain IP forwarding);
//! - `lb-dsr`: `lb run` with the XDP program.
//!
//! For each: requests/s and whole-machine CPU microseconds per request (busy time from
//! /proc/stat over the run), then each setup's added CPU cost per request over `direct`,
//! and ours as a ratio to nft's (of the medians, then each round's own).
//!
//! ```text
//!  client 198.18.30.1 --+
//!  lb     198.18.30.2 --+-- br0 (own namespace; a pass-through XDP program on the LB's
//!  backend 198.18.30.3 -+         port, which veth needs for XDP_TX)
//!  VIP 198.19.30.100 on the backend's lo; nginx on the backend
//! ```

use crate::stats::median;
use anyhow::{bail, Context, Result};
use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

const SUBNET: &str = "198.18.30";
const VIP: &str = "198.19.30.100";

/// (requests/s, CPU us per request) of one wrk run.
type Pair = (f64, f64);
/// (short connections, keep-alive) of one setup in one round.
type Sample = (Pair, Pair);

/// Options of the wire benchmark.
pub struct WireOptions {
    /// Seconds per wrk run.
    pub duration: u32,
    /// wrk connections.
    pub connections: u32,
    /// Rounds over all setups (medians are reported).
    pub rounds: u32,
}

/// Namespaces and processes of one run; removed on drop, also on error.
struct Lab {
    ns: Vec<String>,
    procs: Vec<Child>,
    dir: PathBuf,
    pin_dir: PathBuf,
}

impl Drop for Lab {
    fn drop(&mut self) {
        for p in &mut self.procs {
            let _ = p.kill();
            let _ = p.wait();
        }
        for ns in &self.ns {
            if let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).output() {
                for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                    let _ = Command::new("kill").args(["-9", pid]).status();
                }
            }
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        let _ = std::fs::remove_dir_all(&self.pin_dir);
    }
}

fn sh(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

impl Lab {
    fn ip(&self, ns: &str, args: &[&str]) -> Result<String> {
        sh(Command::new("ip").arg("-n").arg(ns).args(args))
    }

    fn exec(&self, ns: &str, args: &[&str]) -> Result<String> {
        sh(Command::new("ip").args(["netns", "exec", ns]).args(args))
    }

    fn sysctl(&self, ns: &str, key: &str, value: &str) -> Result<()> {
        self.exec(ns, &["sysctl", "-qw", &format!("{key}={value}")])
            .map(drop)
    }

    fn mac(&self, ns: &str, dev: &str) -> Result<String> {
        let out = self.ip(ns, &["-o", "link", "show", "dev", dev])?;
        out.split_whitespace()
            .skip_while(|w| *w != "link/ether")
            .nth(1)
            .map(str::to_string)
            .context("no MAC")
    }

    fn spawn(&mut self, mut cmd: Command) -> Result<()> {
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {cmd:?}"))?;
        self.procs.push(child);
        Ok(())
    }
}

/// Whole-machine busy time in USER_HZ ticks (user+nice+system+irq+softirq+steal).
fn busy_ticks() -> Result<u64> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    let line = stat.lines().next().context("empty /proc/stat")?;
    let f: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    if f.len() < 8 {
        bail!("unexpected /proc/stat: {line}");
    }
    Ok(f[0] + f[1] + f[2] + f[5] + f[6] + f[7])
}

/// One wrk run: (requests/s, CPU us per request).
fn wrk(lab: &Lab, client: &str, opts: &WireOptions, close: bool) -> Result<Pair> {
    let url = format!("http://{VIP}/");
    let d = format!("{}s", opts.duration);
    let c = opts.connections.to_string();
    let mut args = vec!["wrk", "-t1", "-c", &c, "-d", &d];
    if close {
        args.extend(["-H", "Connection: close"]);
    }
    args.push(&url);
    let before = busy_ticks()?;
    let out = lab.exec(client, &args)?;
    let after = busy_ticks()?;
    let requests: f64 = out
        .lines()
        .find(|l| l.contains("requests in"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("no request count in wrk output:\n{out}"))?;
    let rps: f64 = out
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .with_context(|| format!("no Requests/sec in wrk output:\n{out}"))?;
    if out.contains("Socket errors") && out.contains("connect") {
        eprintln!("wire bench: wrk reported socket errors:\n{out}");
    }
    // /proc/stat counts in USER_HZ (100/s on Linux): one tick is 10 ms.
    let cpu_us = (after - before) as f64 * 10_000.0 / requests.max(1.0);
    Ok((rps, cpu_us))
}

/// Runs the four setups and prints the table. `lb` is the lb binary.
pub fn run(lb: &Path, opts: &WireOptions) -> Result<()> {
    for tool in ["wrk", "nginx", "nft", "ethtool", "nsenter"] {
        if !Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .status()?
            .success()
        {
            bail!("wire bench needs `{tool}` (scripts/install-deps.sh installs it)");
        }
    }
    let tag = format!("{}", std::process::id());
    let names: Vec<String> = ["br", "c", "l", "b"]
        .iter()
        .map(|n| format!("l4wire-{n}-{tag}"))
        .collect();
    let dir = std::env::temp_dir().join(format!("l4wire-{tag}"));
    let instance = format!("l4wire-{tag}");
    let mut lab = Lab {
        ns: Vec::new(),
        procs: Vec::new(),
        dir: dir.clone(),
        pin_dir: Path::new("/sys/fs/bpf/lb").join(&instance),
    };
    std::fs::create_dir_all(&dir)?;
    for n in &names {
        sh(Command::new("ip").args(["netns", "add", n]))?;
        lab.ns.push(n.clone());
        lab.ip(n, &["link", "set", "lo", "up"])?;
    }
    let (br, client, lbn, backend) = (&names[0], &names[1], &names[2], &names[3]);
    lab.ip(br, &["link", "add", "br0", "type", "bridge"])?;
    lab.ip(br, &["link", "set", "br0", "up"])?;
    for (i, host) in [client, lbn, backend].iter().enumerate() {
        let port = format!("p{i}");
        sh(Command::new("ip").args([
            "link", "add", "wiretmp", "netns", host, "type", "veth", "peer", "name", &port,
            "netns", br,
        ]))?;
        lab.ip(host, &["link", "set", "wiretmp", "name", "eth0"])?;
        lab.ip(
            host,
            &[
                "addr",
                "add",
                &format!("{SUBNET}.{}/24", i + 1),
                "dev",
                "eth0",
            ],
        )?;
        lab.ip(host, &["link", "set", "eth0", "up"])?;
        lab.ip(br, &["link", "set", &port, "master", "br0", "up"])?;
    }
    // Real NICs hand XDP complete checksums; veth does only with offload off (client side).
    lab.exec(client, &["ethtool", "-K", "eth0", "tx", "off"])?;
    for ns in [client, lbn] {
        lab.sysctl(ns, "net.ipv4.conf.all.send_redirects", "0")?;
        lab.sysctl(ns, "net.ipv4.conf.eth0.send_redirects", "0")?;
        lab.sysctl(ns, "net.ipv4.conf.all.accept_redirects", "0")?;
    }
    lab.ip(backend, &["addr", "add", &format!("{VIP}/32"), "dev", "lo"])?;
    lab.sysctl(backend, "net.ipv4.conf.all.arp_ignore", "1")?;
    lab.sysctl(backend, "net.ipv4.conf.all.arp_announce", "2")?;

    // nginx on the backend.
    std::fs::write(dir.join("index.html"), "hello from the backend\n")?;
    let conf = format!(
        "worker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\nevents {{ worker_connections 4096; }}\n\
         http {{ access_log off; keepalive_requests 1000000; client_body_temp_path {d}; proxy_temp_path {d};\n\
         fastcgi_temp_path {d}; uwsgi_temp_path {d}; scgi_temp_path {d};\n\
         server {{ listen 80 reuseport backlog=4096; root {d}; }} }}\n",
        d = dir.display()
    );
    std::fs::write(dir.join("nginx.conf"), conf)?;
    let mut nginx = Command::new("ip");
    nginx
        .args(["netns", "exec", backend, "nginx", "-c"])
        .arg(dir.join("nginx.conf"))
        .args(["-g", "daemon off;"]);
    lab.spawn(nginx)?;
    // XDP_TX on veth needs an XDP program on the peer: pass-through on the LB's bridge port.
    let mut peer = Command::new("nsenter");
    peer.arg(format!("--net=/run/netns/{br}")).arg(lb).args([
        "decap",
        "--interface",
        "p1",
        "--vip",
        "198.19.30.254",
    ]);
    lab.spawn(peer)?;
    std::thread::sleep(Duration::from_millis(500));

    let lb_ip = format!("{SUBNET}.2");
    let backend_ip = format!("{SUBNET}.3");
    let lb_mac = lab.mac(lbn, "eth0")?;
    let backend_mac = lab.mac(backend, "eth0")?;
    // Let every neighbour entry exist before measuring.
    for (from, to) in [
        (client, &lb_ip),
        (client, &backend_ip),
        (lbn, &backend_ip),
        (backend, &format!("{SUBNET}.1")),
    ] {
        let _ = lab.exec(from, &["ping", "-c1", "-W1", to]);
    }

    let via = |lab: &Lab, hop: &str| -> Result<()> {
        let _ = lab.ip(client, &["route", "del", &format!("{VIP}/32")]);
        lab.ip(client, &["route", "add", &format!("{VIP}/32"), "via", hop])
            .map(drop)
    };
    let measure = |lab: &Lab| -> Result<Sample> {
        // Warm up, then short connections and keep-alive.
        let warm = WireOptions {
            duration: 1,
            connections: opts.connections,
            rounds: 1,
        };
        wrk(lab, client, &warm, true)?;
        Ok((
            wrk(lab, client, opts, true)?,
            wrk(lab, client, opts, false)?,
        ))
    };
    let ruleset = format!(
        "table netdev l4wire {{\n chain ingress {{\n  type filter hook ingress device \"eth0\" priority 0; policy accept;\n  \
         ip daddr {VIP} tcp dport 80 ether saddr set {lb_mac} ether daddr set jhash ip saddr . tcp sport mod 1 map {{ 0 : {backend_mac} }} fwd to \"eth0\"\n }}\n}}\n"
    );
    std::fs::write(dir.join("nft.conf"), ruleset)?;
    let cfg = format!(
        "instance = \"{instance}\"\n[xdp]\ninterface = \"eth0\"\n[[service]]\nname = \"web\"\nvip = \"{VIP}\"\nport = 80\nmode = \"dsr\"\n\
         [[service.server]]\nname = \"b\"\naddress = \"{backend_ip}\"\n"
    );
    std::fs::write(dir.join("lb.toml"), cfg)?;

    // The machine is shared and its load drifts: every round measures every setup, in
    // turn, and the table shows the median over rounds.
    const SETUPS: [&str; 4] = ["direct", "nft-dsr", "ip-forward", "lb-dsr"];
    let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); SETUPS.len()];
    for round in 0..opts.rounds.max(1) {
        for (i, setup) in SETUPS.iter().enumerate() {
            let r = match *setup {
                "direct" => {
                    via(&lab, &backend_ip)?;
                    measure(&lab)?
                }
                "nft-dsr" => {
                    // Rewrite MACs (destination by a hash over one backend), fwd back out.
                    via(&lab, &lb_ip)?;
                    lab.exec(
                        lbn,
                        &["nft", "-f", &dir.join("nft.conf").display().to_string()],
                    )?;
                    let r = measure(&lab);
                    lab.exec(lbn, &["nft", "delete", "table", "netdev", "l4wire"])?;
                    r?
                }
                "ip-forward" => {
                    via(&lab, &lb_ip)?;
                    lab.sysctl(lbn, "net.ipv4.ip_forward", "1")?;
                    lab.ip(
                        lbn,
                        &["route", "add", &format!("{VIP}/32"), "via", &backend_ip],
                    )?;
                    let r = measure(&lab);
                    lab.ip(lbn, &["route", "del", &format!("{VIP}/32")])?;
                    lab.sysctl(lbn, "net.ipv4.ip_forward", "0")?;
                    r?
                }
                _ => {
                    via(&lab, &lb_ip)?;
                    let log = dir.join(format!("lb-{round}.log"));
                    let mut cmd = Command::new("nsenter");
                    cmd.arg(format!("--net=/run/netns/{lbn}"))
                        .arg(lb)
                        .args(["run", "--config"])
                        .arg(dir.join("lb.toml"))
                        .stdin(Stdio::null())
                        .stdout(Stdio::null())
                        .stderr(std::fs::File::create(&log)?);
                    let mut child = cmd.spawn().context("starting lb run")?;
                    let start = Instant::now();
                    while !std::fs::read_to_string(&log)
                        .unwrap_or_default()
                        .contains("XDP attached")
                    {
                        if start.elapsed() > Duration::from_secs(20) {
                            let _ = child.kill();
                            let _ = child.wait();
                            bail!(
                                "lb run did not attach:\n{}",
                                std::fs::read_to_string(&log).unwrap_or_default()
                            );
                        }
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    let r = measure(&lab);
                    // SIGTERM: lb detaches XDP and exits.
                    let _ = Command::new("kill").arg(child.id().to_string()).status();
                    let _ = child.wait();
                    r?
                }
            };
            samples[i].push(r);
        }
    }
    let rows: Vec<(&str, Pair, Pair)> = SETUPS
        .iter()
        .zip(&samples)
        .map(|(name, v)| {
            let m = |f: &dyn Fn(&Sample) -> f64| median(v.iter().map(f).collect());
            (
                *name,
                (m(&|r| r.0 .0), m(&|r| r.0 .1)),
                (m(&|r| r.1 .0), m(&|r| r.1 .1)),
            )
        })
        .collect();

    println!();
    println!(
        "wire: wrk -t1 -c{} -d{}s to one nginx backend, median of {} rounds; CPU = whole machine (/proc/stat busy) per request",
        opts.connections, opts.duration, opts.rounds.max(1)
    );
    println!(
        "{:<12} {:>14} {:>14} {:>14} {:>14}",
        "setup", "short req/s", "short us/req", "keep req/s", "keep us/req"
    );
    for (name, s, k) in &rows {
        println!(
            "{name:<12} {:>14.0} {:>14.1} {:>14.0} {:>14.1}",
            s.0, s.1, k.0, k.1
        );
    }
    let get = |n: &str| {
        rows.iter()
            .find(|r| r.0 == n)
            .map(|r| (r.1 .1, r.2 .1))
            .unwrap_or((0.0, 0.0))
    };
    let (d_s, d_k) = get("direct");
    let (n_s, n_k) = get("nft-dsr");
    let (f_s, f_k) = get("ip-forward");
    let (o_s, o_k) = get("lb-dsr");
    // The ratio is of the medians' added costs; each round's own ratio (all four setups
    // measured within a minute) follows, to show the spread. With keep-alive both added
    // costs are a few microseconds, so single rounds' ratios there are mostly noise.
    let at = |name: &str| SETUPS.iter().position(|s| *s == name).unwrap_or(0);
    let per_round = |cpu: fn(&Sample) -> f64| -> Vec<f64> {
        let (d, n, o) = (
            &samples[at("direct")],
            &samples[at("nft-dsr")],
            &samples[at("lb-dsr")],
        );
        d.iter()
            .zip(n)
            .zip(o)
            .map(|((d, n), o)| (cpu(o) - cpu(d)) / (cpu(n) - cpu(d)))
            .collect()
    };
    for (label, (o, n, f, d), cpu) in [
        (
            "short:     ",
            (o_s, n_s, f_s, d_s),
            (|r: &Sample| r.0 .1) as fn(&Sample) -> f64,
        ),
        ("keep-alive:", (o_k, n_k, f_k, d_k), |r: &Sample| r.1 .1),
    ] {
        let rounds = per_round(cpu);
        let each: Vec<String> = rounds.iter().map(|r| format!("{r:.2}")).collect();
        println!(
            "added CPU over direct, {label} lb-dsr {:+.1} us, nft-dsr {:+.1} us, ip-forward {:+.1} us; \
             lb/nft = {:.2}x (by round: {})",
            o - d,
            n - d,
            f - d,
            (o - d) / (n - d),
            each.join(" ")
        );
    }
    Ok(())
}
