//! The `lb` command: runs the daemon and inspects it.

use anyhow::Context;
use clap::Parser;
use lb::{
    cli::{AdminTarget, Cli, Command},
    config,
    dataplane::{self, stats},
    run,
};
use lb_common::{
    backend::Backend,
    maps as names,
    stats::{BackendStats, DropReason, VipStats},
    vip::{VipKey, VipMeta},
};
use std::{io::IsTerminal, path::PathBuf, process::ExitCode};

/// Every HTTP connection allocates and frees its buffers and futures: jemalloc's
/// per-thread caches make that cheap (glibc's malloc was a tenth of the proxy's
/// user-space time under `httpclose`). Not with jemalloc's background purging thread:
/// it blocks every signal, so the privilege drop, which has each thread switch its own
/// credentials on a signal, could not complete.
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// The admin socket `target` names: `--socket`, else the `[admin] socket` of `--config`,
/// else the default instance's.
fn admin_socket(target: &AdminTarget) -> anyhow::Result<PathBuf> {
    if let Some(s) = &target.socket {
        return Ok(s.clone());
    }
    match &target.config {
        Some(c) => Ok(config::load(c)?.admin.socket),
        None => Ok(config::admin::default_socket(config::DEFAULT_INSTANCE)),
    }
}

/// Sends one admin command and prints the reply; exits 1 on an error reply.
fn admin(target: &AdminTarget, verb: &str, words: &[String]) -> ExitCode {
    let socket = match admin_socket(target) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("lb: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let mut line = vec![verb.to_string()];
    line.extend_from_slice(words);
    lb::admin::client::run(&socket, &line)
}

/// Sets up logging to stderr. The daemon logs through a writer thread
/// (tracing-appender's non-blocking writer): its real-time VRRP thread must never wait on
/// a slow stderr (a journal, a file on a busy disk) to send an advert. The returned guard
/// flushes that thread's queue when dropped, so it lives until `main` returns.
fn init_logging(daemon: bool) -> Option<tracing_appender::non_blocking::WorkerGuard> {
    let builder = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LB_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_ansi(std::io::stderr().is_terminal());
    if daemon {
        let (writer, guard) = tracing_appender::non_blocking(std::io::stderr());
        builder.with_writer(writer).init();
        Some(guard)
    } else {
        builder.with_writer(std::io::stderr).init();
        None
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let _log_guard = init_logging(matches!(cli.command, Command::Run { .. }));
    let result = match cli.command {
        Command::Show { target, what } => return admin(&target, "show", &what),
        Command::Set { target, what } => return admin(&target, "set", &what),
        Command::Enable { target, what } => return admin(&target, "enable", &what),
        Command::Disable { target, what } => return admin(&target, "disable", &what),
        Command::Reload { target } => return admin(&target, "reload", &[]),
        Command::Run { config } => run_daemon(config),
        Command::Check { config } => check(config),
        Command::Import {
            haproxy,
            keepalived,
            wackamole,
            interface,
            map,
        } => import(haproxy, keepalived, wackamole, interface, &map),
        Command::Stats { config } => print_stats(config),
        Command::VrrpStatus { config } => vrrp_status(config),
        Command::Decap {
            interface,
            vip,
            generic,
        } => run_decap(&interface, &vip, generic),
        Command::Explain {
            config,
            client,
            vip,
            protocol,
        } => explain(config, client, vip, &protocol),
        Command::XdpBench {
            calls,
            runs,
            cpu,
            bpffs,
        } => xdp_bench(calls, runs, cpu, &bpffs),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lb: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run_daemon(config: PathBuf) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(run::run(&config))?;
    Ok(())
}

fn check(path: PathBuf) -> anyhow::Result<()> {
    let cfg = config::load(&path)?;
    for w in cfg.warnings() {
        eprintln!("lb: warning: {}: {w}", path.display());
    }
    println!(
        "{}: OK ({} service{}, interface {})",
        path.display(),
        cfg.services.len(),
        if cfg.services.len() == 1 { "" } else { "s" },
        cfg.xdp.interface
    );
    Ok(())
}

fn import(
    haproxy: PathBuf,
    keepalived: Option<PathBuf>,
    wackamole: Option<PathBuf>,
    interface: Option<String>,
    map: &[String],
) -> anyhow::Result<()> {
    let usage = |e: lb::import::ImportError| -> ! {
        eprintln!("lb: {e}");
        std::process::exit(2)
    };
    let opts = lb::import::Options {
        haproxy,
        keepalived,
        wackamole,
        interface,
        map: lb::import::AddrMap::parse(map).unwrap_or_else(|e| usage(e)),
    };
    let out = match lb::import::import(&opts) {
        Err(e @ lb::import::ImportError::BadInterface(_)) => usage(e),
        other => other?,
    };
    print!("{}", out.toml);
    if !out.notes.is_empty() {
        eprintln!(
            "lb import: {} source line{} not translated as written (review them):",
            out.notes.len(),
            if out.notes.len() == 1 { "" } else { "s" }
        );
        for n in &out.notes {
            eprintln!("  {n}");
        }
    }
    out.check
        .map_err(|e| anyhow::anyhow!("the generated config does not pass lb check: {e}"))
}

fn print_stats(path: PathBuf) -> anyhow::Result<()> {
    let cfg = config::load(&path)?;
    let vips: aya::maps::HashMap<_, VipKey, VipMeta> =
        dataplane::open_pinned(&cfg, names::VIPS)?.try_into()?;
    let vip_stats: aya::maps::PerCpuArray<_, VipStats> =
        dataplane::open_pinned(&cfg, names::VIP_STATS)?.try_into()?;
    let drops: aya::maps::PerCpuArray<_, u64> =
        dataplane::open_pinned(&cfg, names::DROPS)?.try_into()?;
    let backends: aya::maps::Array<_, Backend> =
        dataplane::open_pinned(&cfg, names::BACKENDS)?.try_into()?;
    let backend_stats: aya::maps::PerCpuArray<_, BackendStats> =
        dataplane::open_pinned(&cfg, names::BACKEND_STATS)?.try_into()?;
    println!(
        "{:<20} {:<32} {:>14} {:>16} {:>12} {:>12}",
        "service", "vip", "packets", "bytes", "new_flows", "ct_hits"
    );
    for svc in &cfg.services {
        let (packets, bytes, new, hits) = match vips.get(&dataplane::vip_key(svc), 0) {
            Ok(meta) => {
                let s = stats::sum_vip(&vip_stats, meta.id)?;
                (
                    s.packets.to_string(),
                    s.bytes.to_string(),
                    s.new_flows.to_string(),
                    s.ct_hits.to_string(),
                )
            }
            Err(_) => ("-".into(), "-".into(), "-".into(), "-".into()),
        };
        println!(
            "{:<20} {:<32} {packets:>14} {bytes:>16} {new:>12} {hits:>12}",
            svc.name,
            svc.vip.to_string()
        );
        for b in &svc.backends {
            let wire = lb::maglev::wire_addr(b.addr);
            let found = (0..lb_common::maps::MAX_BACKENDS).find(|&i| {
                backends
                    .get(&i, 0)
                    .is_ok_and(|e| e.flags != 0 && e.addr == wire)
            });
            let (p, by, n, state) = match found {
                Some(i) => {
                    let s = stats::sum_backend(&backend_stats, i)?;
                    let e = backends.get(&i, 0)?;
                    let state = if e.flags & lb_common::backend::BACKEND_DRAINING != 0 {
                        "drain"
                    } else {
                        "up"
                    };
                    (
                        s.packets.to_string(),
                        s.bytes.to_string(),
                        s.new_flows.to_string(),
                        state,
                    )
                }
                None => ("-".into(), "-".into(), "-".into(), "down"),
            };
            println!(
                "  server {:<13} {:<32} {p:>14} {by:>16} {n:>12} {state:>12}",
                b.name,
                b.addr.to_string()
            );
        }
    }
    for (reason, count) in stats::sum_drops(&drops)?.into_iter().enumerate() {
        println!("drop {:<15} {count}", DropReason::NAMES[reason]);
    }
    Ok(())
}

fn run_decap(interface: &str, vips: &[std::net::IpAddr], generic: bool) -> anyhow::Result<()> {
    lb::preflight::check_privileges()?;
    lb::preflight::check_interface(interface)?;
    let _decap = dataplane::decap::Decap::attach(interface, vips, generic)?;
    tracing::info!(interface, vips = ?vips, "decap attached");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
        Ok::<(), std::io::Error>(())
    })?;
    tracing::info!(interface, "decap detached");
    Ok(())
}

fn explain(
    path: PathBuf,
    client: std::net::SocketAddr,
    vip: std::net::SocketAddr,
    protocol: &str,
) -> anyhow::Result<()> {
    let cfg = config::load(&path)?;
    let proto = match protocol {
        "tcp" => config::Protocol::Tcp,
        "udp" => config::Protocol::Udp,
        other => anyhow::bail!("unknown protocol {other:?}; expected tcp or udp"),
    };
    let svc = cfg
        .services
        .iter()
        .find(|s| s.vip.addr == vip.ip() && s.vip.port == vip.port() && s.vip.protocol == proto)
        .with_context(|| format!("no service on {vip}/{protocol} in {}", path.display()))?;
    anyhow::ensure!(
        svc.mode.is_l4(),
        "service {} is mode {}: the XDP program does not pick a backend",
        svc.name,
        svc.mode.as_str()
    );
    // Ids are what the table stores, not what is hashed: positions give the same choice.
    let mb: Vec<lb::maglev::MaglevBackend> = svc
        .backends
        .iter()
        .enumerate()
        .map(|(i, b)| {
            lb::maglev::MaglevBackend::from_addr(
                i as u32,
                b.weight,
                std::net::SocketAddr::new(b.addr, 0),
            )
        })
        .collect();
    let table = lb::maglev::build_table(svc.table_size, &mb)?;
    let pick = lb::maglev::explain(&table, client, vip, proto.number());
    match svc.backends.get(pick.backend as usize) {
        Some(b) => println!(
            "service {} flow {client} -> {vip}/{protocol}: hash {:#010x}, slot {}/{}, server {} ({})",
            svc.name, pick.hash, pick.slot, svc.table_size, b.name, b.addr
        ),
        None => println!(
            "service {} flow {client} -> {vip}/{protocol}: hash {:#010x}, slot {}/{}, no backend (all weights 0)",
            svc.name, pick.hash, pick.slot, svc.table_size
        ),
    }
    Ok(())
}

fn xdp_bench(calls: u64, runs: usize, cpu: usize, bpffs: &std::path::Path) -> anyhow::Result<()> {
    let object = dataplane::xdp_object()?;
    println!(
        "BPF_PROG_TEST_RUN, repeat = 1, {calls} calls x {runs} runs per case, pinned to CPU {cpu}"
    );
    println!("mean kernel-reported ns per call: min / median / max over runs; ratio = median / trivial median");
    let results = dataplane::bench::run(&object, bpffs, calls, runs, cpu)?;
    let base = results
        .first()
        .map(|r| r.summary().1)
        .unwrap_or(1.0)
        .max(f64::MIN_POSITIVE);
    println!(
        "{:<30} {:>8} {:>8} {:>8} {:>7}",
        "case", "min", "median", "max", "ratio"
    );
    for r in &results {
        let (min, med, max) = r.summary();
        println!(
            "{:<30} {min:>8.1} {med:>8.1} {max:>8.1} {:>6.2}x",
            r.name,
            med / base
        );
    }
    Ok(())
}

fn vrrp_status(path: PathBuf) -> anyhow::Result<()> {
    let cfg = config::load(&path)?;
    let file = lb::vrrp::status_path(&cfg.instance);
    let text = std::fs::read_to_string(&file).with_context(|| {
        format!(
            "no VRRP status at {} (is `lb run` running with [[vrrp]]?)",
            file.display()
        )
    })?;
    print!("{text}");
    Ok(())
}
