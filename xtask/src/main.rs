//! Project tasks: `cargo xtask build-ebpf | build | test | bench | bench-http | man | deb`.
//!
//! The eBPF crate builds with Debian's rustc (prebuilt BPF `core`) and bpf-linker, as
//! ../shared/TOOLCHAIN.md describes; everything else with the normal toolchain.

mod bench_http;
mod man;
mod stats;
mod wire;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use std::{
    path::{Path, PathBuf},
    process::Command,
};

/// Debian's rustc with the prebuilt `core` for bpfel-unknown-none.
const BPF_RUSTC: &str = "/usr/bin/rustc";
const BPF_TARGET: &str = "bpfel-unknown-none";

#[derive(Parser)]
#[command(name = "xtask", about = "Build and test tasks for the lb workspace")]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Build the XDP object (release, BTF) into target/bpf/lb-ebpf.o.
    BuildEbpf,
    /// Build the XDP object and the `lb` binary that embeds it.
    Build {
        /// Build `lb` in release mode.
        #[arg(long)]
        release: bool,
    },
    /// Per-packet cost of the XDP program through BPF_PROG_TEST_RUN (one packet per call,
    /// pinned to one CPU), each case as a ratio to a trivial XDP_PASS program.
    Bench {
        /// Calls per run and case (at least 1e6 for the numbers).
        #[arg(long, default_value_t = 1_000_000)]
        calls: u64,
        /// Runs per case (min/median/max are over these).
        #[arg(long, default_value_t = 5)]
        runs: usize,
        /// CPU to pin the measuring thread to.
        #[arg(long, default_value_t = 0)]
        cpu: usize,
        /// Seconds per wrk run in the wire part (lb vs nft vs IP forwarding vs direct).
        #[arg(long, default_value_t = 10)]
        wire_duration: u32,
        /// wrk connections in the wire part.
        #[arg(long, default_value_t = 50)]
        wire_connections: u32,
        /// Rounds over all setups in the wire part (medians are reported).
        #[arg(long, default_value_t = 3)]
        wire_rounds: u32,
        /// Skip the per-packet (BPF_PROG_TEST_RUN) part.
        #[arg(long)]
        skip_packet: bool,
        /// Skip the wire part (namespaces, nginx, wrk, nft).
        #[arg(long)]
        skip_wire: bool,
        /// Skip the HTTP proxy part (lb vs HAProxy 2.6; `cargo xtask bench-http` alone).
        #[arg(long)]
        skip_http: bool,
    },
    /// The HTTP proxy against HAProxy 2.6 with the same config, side by side: req/s,
    /// p50/p99, CPU per request, memory per idle connection (release build of lb).
    BenchHttp {
        /// `--duration S`, `--connections N`, `--idle N`, `--rounds N`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Man pages of `lb` and each subcommand (section 8), from lb's clap definitions.
    Man {
        /// Where to write them.
        #[arg(long, default_value = "target/man")]
        out: PathBuf,
    },
    /// The Debian package: the XDP object, the release `lb` that embeds it, the man pages,
    /// then `cargo deb` (binary, systemd unit, default config, man pages, docs).
    Deb {
        /// Faster, lighter compression of the .deb (cargo deb --fast).
        #[arg(long)]
        fast: bool,
    },
    /// Run the whole suite: unit tests, BPF_PROG_TEST_RUN fixtures, namespace tests.
    Test {
        /// Extra arguments passed to `cargo test` after `--` (e.g. a test name filter).
        #[arg(trailing_var_arg = true)]
        args: Vec<String>,
    },
}

fn main() -> Result<()> {
    let root = workspace_root();
    match Cli::parse().command {
        Task::BuildEbpf => build_ebpf(&root).map(|_| ()),
        Task::Build { release } => {
            build_ebpf(&root)?;
            build_lb(&root, release)
        }
        Task::Bench {
            calls,
            runs,
            cpu,
            wire_duration,
            wire_connections,
            wire_rounds,
            skip_packet,
            skip_wire,
            skip_http,
        } => {
            build_ebpf(&root)?;
            // The daemon as it is deployed: the wire part counts its CPU time too.
            build_lb(&root, true)?;
            let lb = root.join("target").join("release").join("lb");
            if !skip_packet {
                let mut cmd = Command::new(&lb);
                cmd.args([
                    "xdp-bench",
                    "--calls",
                    &calls.to_string(),
                    "--runs",
                    &runs.to_string(),
                ])
                .args(["--cpu", &cpu.to_string()]);
                run(&mut cmd, "lb xdp-bench")?;
            }
            if !skip_wire {
                wire::run(
                    &lb,
                    &wire::WireOptions {
                        duration: wire_duration,
                        connections: wire_connections,
                        rounds: wire_rounds,
                    },
                )?;
            }
            if !skip_http {
                bench_http::run(&root, &[])?;
            }
            Ok(())
        }
        Task::BenchHttp { args } => {
            build_ebpf(&root)?;
            bench_http::run(&root, &args)
        }
        Task::Man { out } => {
            for page in man::generate(&root.join(out))? {
                eprintln!("xtask: {}", page.display());
            }
            Ok(())
        }
        Task::Deb { fast } => deb(&root, fast),
        Task::Test { args } => {
            build_ebpf(&root)?;
            build_lb(&root, false)?;
            let mut cmd = cargo(&root);
            cmd.args(["test", "--workspace", "--no-fail-fast"]);
            if !args.is_empty() {
                cmd.arg("--").args(&args);
            }
            run(&mut cmd, "cargo test")
        }
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .into()
}

fn cargo(root: &Path) -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(root);
    cmd
}

fn run(cmd: &mut Command, what: &str) -> Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("cannot start {what}"))?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(())
}

/// Builds lb-ebpf and copies the object to where lb-userspace's build.rs embeds it from.
fn build_ebpf(root: &Path) -> Result<PathBuf> {
    if !Path::new(BPF_RUSTC).exists() {
        bail!("{BPF_RUSTC} is missing: run scripts/install-deps.sh (Debian's rustc-web)");
    }
    let linker_ok = Command::new("bpf-linker")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !linker_ok {
        bail!("bpf-linker is not on PATH: run scripts/install-deps.sh");
    }
    let crate_dir = root.join("lb-ebpf");
    let target_dir = crate_dir.join("target");
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(&crate_dir)
        .env("RUSTC", BPF_RUSTC)
        .env("RUSTC_BOOTSTRAP", "1")
        .env("CARGO_RESOLVER_INCOMPATIBLE_RUST_VERSIONS", "fallback")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTC_WRAPPER")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .args(["build", "--release", "--target", BPF_TARGET, "--target-dir"])
        .arg(&target_dir);
    run(&mut cmd, "eBPF build")?;
    let built = target_dir.join(BPF_TARGET).join("release").join("lb-ebpf");
    let out_dir = root.join("target").join("bpf");
    std::fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let out = out_dir.join("lb-ebpf.o");
    // Copy only when changed so cargo does not rebuild lb for nothing.
    let new = std::fs::read(&built).with_context(|| format!("reading {}", built.display()))?;
    if std::fs::read(&out).ok().as_deref() != Some(new.as_slice()) {
        std::fs::write(&out, &new).with_context(|| format!("writing {}", out.display()))?;
    }
    eprintln!("xtask: XDP object at {}", out.display());
    Ok(out)
}

fn build_lb(root: &Path, release: bool) -> Result<()> {
    let mut cmd = cargo(root);
    cmd.args(["build", "-p", "lb-userspace", "--bin", "lb"]);
    if release {
        cmd.arg("--release");
    }
    run(&mut cmd, "cargo build lb")
}

/// Builds the .deb: the XDP object, the release binary (checked to embed that object), the
/// man pages, then `cargo deb --no-build` on what was just built. Prints the package path.
fn deb(root: &Path, fast: bool) -> Result<()> {
    let deb_ok = cargo(root)
        .args(["deb", "--version"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !deb_ok {
        bail!(
            "cargo-deb is missing: run scripts/install-deps.sh (cargo install --locked cargo-deb)"
        );
    }
    let object = build_ebpf(root)?;
    build_lb(root, true)?;
    let binary = root.join("target").join("release").join("lb");
    check_embeds(&binary, &object)?;
    for page in man::generate(&root.join("target").join("man"))? {
        eprintln!("xtask: {}", page.display());
    }
    let mut cmd = cargo(root);
    cmd.args(["deb", "-p", "lb-userspace", "--no-build"]);
    if fast {
        cmd.arg("--fast");
    }
    let out = cmd
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("cannot start cargo deb")?;
    if !out.status.success() {
        bail!("cargo deb failed ({})", out.status);
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let package = stdout
        .lines()
        .rev()
        .find(|l| l.trim_end().ends_with(".deb"))
        .context("cargo deb printed no .deb path")?;
    println!("{}", package.trim());
    Ok(())
}

/// Fails unless `binary` contains the XDP object `object`: a package must never ship the
/// empty placeholder that a build without bpf-linker embeds.
fn check_embeds(binary: &Path, object: &Path) -> Result<()> {
    let obj = std::fs::read(object).with_context(|| format!("reading {}", object.display()))?;
    if obj.len() < 1024 {
        bail!(
            "{} is not a real XDP object ({} bytes)",
            object.display(),
            obj.len()
        );
    }
    let bin = std::fs::read(binary).with_context(|| format!("reading {}", binary.display()))?;
    // A slice from the middle of the object: its program and BTF, not the generic ELF header.
    let probe = &obj[obj.len() / 2..obj.len() / 2 + 256];
    if !bin.windows(probe.len()).any(|w| w == probe) {
        bail!(
            "{} does not embed {}: rebuild with `cargo xtask build --release`",
            binary.display(),
            object.display()
        );
    }
    eprintln!(
        "xtask: {} embeds {} ({} bytes)",
        binary.display(),
        object.display(),
        obj.len()
    );
    Ok(())
}
