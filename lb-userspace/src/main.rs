//! The `lb` command: runs the daemon and inspects it.

use anyhow::Context;
use clap::{Parser, Subcommand};
use lb::{
    config,
    dataplane::{self, stats},
    run,
};
use lb_common::{
    maps as names,
    stats::{DropReason, VipStats},
    vip::{VipKey, VipMeta},
};
use std::{io::IsTerminal, path::PathBuf, process::ExitCode};

/// A kernel-accelerated L4/L7 load balancer: XDP fast path, HTTP proxy, VRRP failover.
#[derive(Parser)]
#[command(name = "lb", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Load the XDP program, write the VIPs, attach, and serve until SIGTERM/SIGINT.
    Run {
        /// The TOML config file.
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Validate a config file without touching the system (exit 0 valid, 1 invalid).
    Check {
        /// The TOML config file.
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Print per-VIP packet and byte counters and drop counters from the pinned maps.
    Stats {
        /// The TOML config file of the instance.
        #[arg(short, long)]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LB_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run { config } => run_daemon(config),
        Command::Check { config } => check(config),
        Command::Stats { config } => print_stats(config),
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
    println!(
        "{}: OK ({} service{}, interface {})",
        path.display(),
        cfg.services.len(),
        if cfg.services.len() == 1 { "" } else { "s" },
        cfg.xdp.interface
    );
    Ok(())
}

fn print_stats(path: PathBuf) -> anyhow::Result<()> {
    let cfg = config::load(&path)?;
    let vips: aya::maps::HashMap<_, VipKey, VipMeta> =
        dataplane::open_pinned(&cfg, names::VIPS)?.try_into()?;
    let vip_stats: aya::maps::PerCpuArray<_, VipStats> =
        dataplane::open_pinned(&cfg, names::VIP_STATS)?.try_into()?;
    let drops: aya::maps::PerCpuArray<_, u64> =
        dataplane::open_pinned(&cfg, names::DROPS)?.try_into()?;
    println!("{:<20} {:<32} {:>14} {:>16}", "service", "vip", "packets", "bytes");
    for svc in &cfg.services {
        let (packets, bytes) = match vips.get(&dataplane::vip_key(svc), 0) {
            Ok(meta) => {
                let s = stats::sum_vip(&vip_stats, meta.id)?;
                (s.packets.to_string(), s.bytes.to_string())
            }
            Err(_) => ("-".into(), "-".into()),
        };
        println!("{:<20} {:<32} {packets:>14} {bytes:>16}", svc.name, svc.vip.to_string());
    }
    for (reason, count) in stats::sum_drops(&drops)?.into_iter().enumerate() {
        println!("drop {:<15} {count}", DropReason::NAMES[reason]);
    }
    Ok(())
}
