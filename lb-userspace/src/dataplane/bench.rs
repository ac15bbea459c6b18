//! Per-packet cost of the XDP program through BPF_PROG_TEST_RUN, measured the way Katran's
//! perf tester does: one packet per call (repeat = 1, because with repeat > 1 the kernel
//! re-runs the program on the buffer it already rewrote), many calls, the mean of the
//! kernel-reported durations; several runs, min/median/max; pinned to one CPU so per-CPU
//! maps and caches stay put. `cargo xtask bench` drives it through `lb xdp-bench`.

use super::{testrun, DataPlane, DataPlaneError, L2Addr, L2Map, TRIVIAL_PROGRAM};
use crate::config::{self, ConfigError};
use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    os::fd::{AsRawFd, BorrowedFd},
    path::{Path, PathBuf},
};

/// Why the benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The built-in config did not validate (a bug).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Loading or writing the data plane failed.
    #[error(transparent)]
    DataPlane(#[from] DataPlaneError),
    /// A BPF_PROG_TEST_RUN call or the CPU pinning failed.
    #[error("{what}: {source}")]
    Os {
        /// What was being done.
        what: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A case returned another action than expected (the setup is wrong).
    #[error("case {case}: action {got}, expected {want}")]
    Action {
        /// The case.
        case: &'static str,
        /// Returned action.
        got: u32,
        /// Expected action.
        want: u32,
    },
}

const CONFIG: &str = r#"
[xdp]
interface = "lo"
[l4]
conntrack_size = 1048576
ipip_source_v4 = "198.18.255.0/24"
ipip_source_v6 = "2001:db8:ffff::/112"
[[service]]
name = "dsr4"
vip = "198.18.0.100"
port = 80
mode = "dsr"
[[service.server]]
name = "a"
address = "198.18.0.11"
[[service.server]]
name = "b"
address = "198.18.0.12"
[[service]]
name = "udp4"
vip = "198.18.0.100"
port = 53
protocol = "udp"
mode = "dsr"
[[service.server]]
name = "a"
address = "198.18.0.11"
[[service]]
name = "ipip4"
vip = "198.18.0.101"
port = 80
mode = "ipip"
[[service.server]]
name = "a"
address = "198.18.0.21"
[[service.server]]
name = "b"
address = "198.18.0.22"
[[service]]
name = "dsr6"
vip = "2001:db8::100"
port = 80
mode = "dsr"
[[service.server]]
name = "a"
address = "2001:db8::11"
[[service]]
name = "ipip6"
vip = "2001:db8::101"
port = 80
mode = "ipip"
[[service.server]]
name = "a"
address = "2001:db8::21"
"#;

const XDP_PASS: u32 = 2;
const XDP_TX: u32 = 3;

/// Result of one case: the mean ns per call of each run.
#[derive(Clone, Debug)]
pub struct CaseResult {
    /// Case name.
    pub name: &'static str,
    /// Mean kernel-reported ns per call, one per run.
    pub means: Vec<f64>,
}

impl CaseResult {
    /// (min, median, max) of the run means.
    pub fn summary(&self) -> (f64, f64, f64) {
        let mut m = self.means.clone();
        m.sort_by(f64::total_cmp);
        let n = m.len();
        if n == 0 {
            return (0.0, 0.0, 0.0);
        }
        (m[0], m[n / 2], m[n - 1])
    }
}

/// Ethernet + IPv4/IPv6 + TCP/UDP header bytes with a small payload; checksums are not
/// filled (the program does not verify them).
fn packet(src: IpAddr, dst: IpAddr, sport: u16, dport: u16, proto: u8, syn: bool) -> Vec<u8> {
    let mut p = vec![2, 0, 0, 0, 0, 0x1b, 2, 0, 0, 0, 0, 0xc1];
    let l4_len: usize = if proto == 6 { 20 } else { 8 };
    let payload = [0u8; 16];
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            p.extend_from_slice(&[0x08, 0x00]);
            let tot = (20 + l4_len + payload.len()) as u16;
            p.extend_from_slice(&[0x45, 0]);
            p.extend_from_slice(&tot.to_be_bytes());
            p.extend_from_slice(&[0, 0, 0x40, 0, 64, proto, 0, 0]);
            p.extend_from_slice(&s.octets());
            p.extend_from_slice(&d.octets());
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            p.extend_from_slice(&[0x86, 0xdd]);
            p.extend_from_slice(&[0x60, 0, 0, 0]);
            p.extend_from_slice(&((l4_len + payload.len()) as u16).to_be_bytes());
            p.extend_from_slice(&[proto, 64]);
            p.extend_from_slice(&s.octets());
            p.extend_from_slice(&d.octets());
        }
        _ => {}
    }
    p.extend_from_slice(&sport.to_be_bytes());
    p.extend_from_slice(&dport.to_be_bytes());
    if proto == 6 {
        p.extend_from_slice(&[
            0,
            0,
            0,
            1,
            0,
            0,
            0,
            0,
            0x50,
            if syn { 0x02 } else { 0x10 },
            0xff,
            0xff,
            0,
            0,
            0,
            0,
        ]);
    } else {
        p.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
        p.extend_from_slice(&[0, 0]);
    }
    p.extend_from_slice(&payload);
    p
}

fn pin_cpu(cpu: usize) -> Result<(), BenchError> {
    // SAFETY: a zeroed cpu_set_t is valid; CPU_SET writes inside it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(BenchError::Os {
                what: format!("pinning to CPU {cpu}"),
                source: std::io::Error::last_os_error(),
            });
        }
    }
    Ok(())
}

/// Runs `calls` calls of `make(i)` (the packet for call i) and returns the mean ns.
fn measure(
    prog: BorrowedFd<'_>,
    case: &'static str,
    want: u32,
    calls: u64,
    mut make: impl FnMut(u64, &mut Vec<u8>),
    base: &[u8],
) -> Result<f64, BenchError> {
    let mut pkt = base.to_vec();
    let mut out = vec![0u8; base.len() + 256];
    let mut total: u64 = 0;
    for i in 0..calls {
        make(i, &mut pkt);
        let (action, ns) =
            testrun::run_timed(prog, &pkt, &mut out).map_err(|source| BenchError::Os {
                what: format!("BPF_PROG_TEST_RUN ({case})"),
                source,
            })?;
        if action != want {
            return Err(BenchError::Action {
                case,
                got: action,
                want,
            });
        }
        total += u64::from(ns);
    }
    Ok(total as f64 / calls.max(1) as f64)
}

/// Removes the benchmark's pin directory when dropped.
struct PinGuard(PathBuf);

impl Drop for PinGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs every case: `calls` calls per run, `runs` runs, on CPU `cpu`. The data plane is
/// loaded from `object` with its maps pinned under `bpffs/lb/bench-<pid>` (removed after).
pub fn run(
    object: &[u8],
    bpffs: &Path,
    calls: u64,
    runs: usize,
    cpu: usize,
) -> Result<Vec<CaseResult>, BenchError> {
    let instance = format!("bench-{}", std::process::id());
    let cfg = config::parse(
        Path::new("bench.toml"),
        &format!("instance = \"{instance}\"\n{CONFIG}"),
    )?;
    let pin_dir = bpffs.join("lb").join(&instance);
    let _guard = PinGuard(pin_dir.clone());
    let mut dp = DataPlane::load_object_with(object, &pin_dir, cfg.l4.conntrack_size)?;
    dp.configure_l4(&cfg.l4)?;
    let mut l2 = L2Map::new();
    for s in &cfg.services {
        for b in &s.backends {
            l2.insert(
                b.addr,
                L2Addr {
                    dst: [2, 0, 0, 0, 0, 0x99],
                    src: [2, 0, 0, 0, 0, 0x1b],
                    mtu: 1500,
                },
            );
        }
    }
    dp.sync(&cfg.services, &l2)?;
    pin_cpu(cpu)?;

    let c4 = IpAddr::V4(Ipv4Addr::new(198, 18, 1, 7));
    let c6 = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 7));
    let vip_dsr4 = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 100));
    let vip_ipip4 = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 101));
    let vip_dsr6: IpAddr = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x100));
    let vip_ipip6: IpAddr = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x101));
    let non_vip = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1));

    type Case = (&'static str, bool, u32, Vec<u8>, bool);
    // (name, trivial program?, expected action, packet, fresh flow per call?)
    let cases: Vec<Case> = vec![
        (
            "trivial XDP_PASS",
            true,
            XDP_PASS,
            packet(c4, non_vip, 40000, 80, 6, false),
            false,
        ),
        (
            "non-VIP pass",
            false,
            XDP_PASS,
            packet(c4, non_vip, 40000, 80, 6, false),
            false,
        ),
        (
            "new TCP flow (SYN, v4 dsr)",
            false,
            XDP_TX,
            packet(c4, vip_dsr4, 40000, 80, 6, true),
            true,
        ),
        (
            "established TCP v4 dsr",
            false,
            XDP_TX,
            packet(c4, vip_dsr4, 40001, 80, 6, false),
            false,
        ),
        (
            "established TCP v4 ipip",
            false,
            XDP_TX,
            packet(c4, vip_ipip4, 40002, 80, 6, false),
            false,
        ),
        (
            "established TCP v6 dsr",
            false,
            XDP_TX,
            packet(c6, vip_dsr6, 40003, 80, 6, false),
            false,
        ),
        (
            "established TCP v6 ipip",
            false,
            XDP_TX,
            packet(c6, vip_ipip6, 40004, 80, 6, false),
            false,
        ),
        (
            "established UDP v4 dsr",
            false,
            XDP_TX,
            packet(c4, vip_dsr4, 40005, 53, 17, false),
            false,
        ),
    ];
    let mut results = Vec::new();
    for (name, trivial, want, base, fresh) in cases {
        let fd = if trivial {
            dp.extra_program_fd(TRIVIAL_PROGRAM)?
        } else {
            dp.program_fd()?
        };
        // SAFETY: the fd stays open while `dp` lives, which outlives this borrow.
        let prog = unsafe { BorrowedFd::borrow_raw(fd.as_raw_fd()) };
        // Warm up (and make established flows established).
        measure(prog, name, want, 1000.min(calls), |_, _| {}, &base)?;
        let mut means = Vec::with_capacity(runs);
        let mut serial: u64 = 0;
        for _ in 0..runs {
            let m = measure(
                prog,
                name,
                want,
                calls,
                |_, p| {
                    if fresh {
                        // New client address and port every call: a conntrack miss.
                        serial += 1;
                        let s = serial;
                        p[28] = 10 + (s >> 24) as u8;
                        p[29] = (s >> 16) as u8;
                        p[34..36].copy_from_slice(&(s as u16).to_be_bytes());
                    }
                },
                &base,
            )?;
            means.push(m);
        }
        results.push(CaseResult { name, means });
    }
    Ok(results)
}
