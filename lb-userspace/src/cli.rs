//! The `lb` command line: every subcommand, argument and help text, in one place.
//!
//! This module uses only `clap` and `std`, so `xtask` compiles the very same file (with
//! `#[path]`) to generate the man pages (`cargo xtask man`), and the tests walk the same
//! tree to check that every argument has help and that every `lb` command in the docs
//! parses. `main.rs` only dispatches the parsed [`Cli`].

use std::{
    net::{IpAddr, SocketAddr},
    path::PathBuf,
};

use clap::{Parser, Subcommand};

/// A kernel-accelerated L4/L7 load balancer: XDP fast path, HTTP proxy, VRRP failover.
///
/// (The doc comment, not the crate's description: xtask compiles this file too.)
#[derive(Parser, Debug)]
#[command(
    name = "lb",
    version,
    long_about = LONG_ABOUT,
    after_long_help = AFTER_LONG_HELP,
    propagate_version = true
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The description `lb --help` and the man page show.
const LONG_ABOUT: &str = "\
A kernel-accelerated L4/L7 load balancer: XDP fast path, HTTP proxy, VRRP failover.

`lb run` is the daemon: it loads the XDP program onto the configured interface, writes the \
VIPs and backends into its pinned maps, proxies `http` services with HAProxy's semantics, \
runs the health checks and, with [[vrrp]] instances, the VRRPv3 membership that moves the \
VIPs between nodes. The other subcommands check and translate config files, look at the \
pinned maps, and talk to a running daemon through its admin socket.";

/// Signals, environment and files, shown by `lb --help` (and as man page sections).
pub const AFTER_LONG_HELP: &str = "\
Signals (lb run):
  SIGHUP           re-read the config file and apply the difference (as `lb reload`)
  SIGTERM, SIGINT  hand the VIPs over (priority 0 advert), detach XDP and exit 0

Environment:
  LB_LOG           log filter (tracing-subscriber syntax), default `info`
  LB_XDP_OBJECT    load this XDP object file instead of the one built into the binary

Files:
  /etc/lb/lb.toml             the packaged config (`lb check --config` validates it)
  /run/lb/<instance>.sock     the admin socket of an instance
  /sys/fs/bpf/lb/<instance>/  the instance's pinned maps (`bpftool map dump pinned ...`)";

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the daemon until SIGTERM/SIGINT; SIGHUP reloads the config.
    ///
    /// Loads the XDP program, pins its maps under <bpffs>/lb/<instance>/, writes the
    /// services, attaches to `[xdp] interface` (with `[[vrrp]]`: only while MASTER), serves
    /// `http` services, runs the health checks and opens the admin socket.
    Run {
        /// The TOML config file (docs/config.md).
        #[arg(short, long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Validate a config file without touching the system.
    ///
    /// Errors name the file, line, column and key; warnings go to stderr. Exit 0 valid
    /// (even with warnings), 1 invalid or unreadable, 2 usage error.
    Check {
        /// The TOML config file.
        #[arg(short, long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Translate HAProxy + keepalived/Wackamole configs into an lb config.
    ///
    /// Prints the lb config on stdout; every source line that could not be translated as
    /// written is listed on stderr with its file and line. Exit 0 printed, 1 unreadable
    /// input or the result fails `lb check`, 2 usage error.
    Import {
        /// haproxy.cfg.
        #[arg(value_name = "HAPROXY_CFG")]
        haproxy: PathBuf,
        /// keepalived.conf: its vrrp_instance blocks become [[vrrp]] instances.
        #[arg(long, value_name = "FILE")]
        keepalived: Option<PathBuf>,
        /// wackamole.conf: its VirtualInterfaces become [[vrrp]] instances.
        #[arg(long, value_name = "FILE")]
        wackamole: Option<PathBuf>,
        /// The interface on the target machine for [xdp] and every [[vrrp]] instance.
        #[arg(long, value_name = "IF")]
        interface: Option<String>,
        /// Rewrite an address everywhere: FROM=TO, e.g. 192.168.0.99=198.18.0.99 (repeat).
        #[arg(long = "map", value_name = "FROM=TO")]
        map: Vec<String>,
    },
    /// Print the VRRP state of a running daemon.
    ///
    /// One line per `[[vrrp]]` instance: state, priority, adverts sent and received, the
    /// last advert heard, the VIPs, and the adverts dropped by each receive check.
    VrrpStatus {
        /// The TOML config file of the instance.
        #[arg(short, long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Print the XDP counters from the pinned maps.
    ///
    /// Per VIP and per backend: packets, bytes, new flows (and conntrack hits per VIP);
    /// then the drop counters by reason. Reads the pins of the config's instance.
    Stats {
        /// The TOML config file of the instance.
        #[arg(short, long, value_name = "FILE")]
        config: PathBuf,
    },
    /// On a backend of `ipip` VIPs: decapsulate IP-in-IP packets in XDP.
    ///
    /// Attaches the decapsulation program to an interface and strips the outer header of
    /// IP-in-IP packets for the given VIPs, until SIGTERM/SIGINT.
    Decap {
        /// The interface the encapsulated packets arrive on.
        #[arg(short, long, value_name = "IF")]
        interface: String,
        /// VIP addresses to decapsulate for (repeat or give several).
        #[arg(long, required = true, num_args = 1.., value_name = "ADDR")]
        vip: Vec<IpAddr>,
        /// Attach in generic (skb) mode instead of native.
        #[arg(long)]
        generic: bool,
    },
    /// Print which backend a new L4 flow gets.
    ///
    /// Uses the same Maglev table and flow hash as the XDP program, assuming every backend
    /// resolves and the flow is not in conntrack yet.
    Explain {
        /// The TOML config file.
        #[arg(short, long, value_name = "FILE")]
        config: PathBuf,
        /// Client address and port, e.g. 198.18.1.7:40000 or [2001:db8::7]:40000.
        #[arg(long, value_name = "ADDR:PORT")]
        client: SocketAddr,
        /// VIP address and port.
        #[arg(long, value_name = "ADDR:PORT")]
        vip: SocketAddr,
        /// tcp or udp.
        #[arg(long, default_value = "tcp", value_parser = ["tcp", "udp"])]
        protocol: String,
    },
    /// Ask a running daemon: stat, info, servers state, flows, vrrp.
    ///
    /// `lb show stat|info|servers state [SVC]|flows [VIP]|vrrp`: stat is HAProxy's CSV.
    Show {
        #[command(flatten)]
        target: AdminTarget,
        /// What to show, e.g. `stat`, `servers state webfarm`, `flows 198.18.0.99:80`.
        #[arg(required = true, num_args = 1.., value_name = "WHAT")]
        what: Vec<String>,
    },
    /// Change a server's state, health or weight in a running daemon.
    ///
    /// `lb set server SVC/SRV state ready|drain|maint`,
    /// `lb set server SVC/SRV health up|stopping|down`, `lb set weight SVC/SRV N|N%`.
    Set {
        #[command(flatten)]
        target: AdminTarget,
        /// The rest of the command, e.g. `server webfarm/webA state drain`.
        #[arg(required = true, num_args = 1.., value_name = "WHAT")]
        what: Vec<String>,
    },
    /// Take a server out of maintenance: `lb enable server SVC/SRV`.
    Enable {
        #[command(flatten)]
        target: AdminTarget,
        /// `server SVC/SRV`.
        #[arg(required = true, num_args = 1.., value_name = "WHAT")]
        what: Vec<String>,
    },
    /// Put a server into maintenance: `lb disable server SVC/SRV`.
    Disable {
        #[command(flatten)]
        target: AdminTarget,
        /// `server SVC/SRV`.
        #[arg(required = true, num_args = 1.., value_name = "WHAT")]
        what: Vec<String>,
    },
    /// Make a running daemon re-read its config file (as SIGHUP).
    ///
    /// An invalid file is refused and the running config stays; see docs/config.md.
    Reload {
        #[command(flatten)]
        target: AdminTarget,
    },
    /// Per-packet cost of the XDP program via BPF_PROG_TEST_RUN (run by `cargo xtask bench`).
    #[command(hide = true)]
    XdpBench {
        /// Calls (one packet each) per run and case.
        #[arg(long, default_value_t = 1_000_000)]
        calls: u64,
        /// Runs per case.
        #[arg(long, default_value_t = 5)]
        runs: usize,
        /// CPU to pin to.
        #[arg(long, default_value_t = 0)]
        cpu: usize,
        /// bpffs mount point (a pin directory is created and removed under it).
        #[arg(long, default_value = "/sys/fs/bpf")]
        bpffs: PathBuf,
    },
}

/// Which daemon an admin command goes to.
#[derive(clap::Args, Debug)]
pub struct AdminTarget {
    /// The admin socket [default: the `[admin] socket` of --config, else /run/lb/default.sock].
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// The config file of the running instance (names its admin socket).
    #[arg(short, long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// Every visible subcommand, at any depth, with its path (`lb show`).
    fn walk(cmd: &clap::Command, path: &str, out: &mut Vec<(String, clap::Command)>) {
        out.push((path.to_string(), cmd.clone()));
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            walk(sub, &format!("{path} {}", sub.get_name()), out);
        }
    }

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_subcommand_and_argument_has_help() {
        let mut cmd = Cli::command();
        cmd.build();
        let mut all = Vec::new();
        walk(&cmd, "lb", &mut all);
        assert!(all.len() >= 13, "{} commands", all.len());
        let mut missing = Vec::new();
        for (path, c) in &all {
            let about = c.get_about().map(|a| a.to_string()).unwrap_or_default();
            if about.trim().is_empty() {
                missing.push(format!("{path}: no about"));
            }
            for arg in c.get_arguments() {
                let help = arg
                    .get_help()
                    .or(arg.get_long_help())
                    .map(|h| h.to_string())
                    .unwrap_or_default();
                if help.trim().is_empty() {
                    missing.push(format!("{path} {}: no help", arg.get_id()));
                }
            }
        }
        assert!(missing.is_empty(), "{missing:#?}");
    }

    #[test]
    fn version_is_the_package_version() {
        assert_eq!(
            Cli::command().render_version(),
            format!("lb {}\n", env!("CARGO_PKG_VERSION"))
        );
    }
}
